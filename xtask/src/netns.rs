//! The lab's and the benchmarks' hosts: namespaces of `dhcp6-netns` that keep the programs
//! started and the links made in them until they are dropped (also when a run fails
//! half-way), and measure the work done in them: CPU time and XDP run time.

use std::{
    ops::Deref,
    path::Path,
    process::{Command, Output},
};

use anyhow::Result;
use dhcp6_netns::{Netns, Process, Veth};

use crate::shell::output;

/// A namespace made for this run, with what runs in it.
pub struct Host {
    // Dropped in this order: the programs stopped (SIGTERM first, so that dhcp6d cleans up),
    // the links deleted, then the namespace removed.
    processes: Vec<Process>,
    links: Vec<Veth>,
    netns: Netns,
    /// An interface whose XDP program's run time counts as this host's work (see
    /// [`Host::work_seconds`]).
    pub xdp_counted: Option<String>,
}

impl Deref for Host {
    type Target = Netns;

    fn deref(&self) -> &Netns {
        &self.netns
    }
}

impl Host {
    /// Makes the namespace `name` ([`Netns::new`]: a stale one is removed first).
    pub fn new(name: &str) -> Result<Host> {
        Ok(Host { processes: Vec::new(), links: Vec::new(), netns: Netns::new(name)?, xdp_counted: None })
    }

    /// What a command in the namespace printed (stdout, then stderr), whatever its status.
    pub fn printed(&self, args: &[&str]) -> Result<String> {
        let Output { stdout, stderr, .. } = self.output(args)?;
        Ok(String::from_utf8_lossy(&stdout).into_owned() + &String::from_utf8_lossy(&stderr))
    }

    /// Starts a long-running command in the namespace, output to `log`; it is stopped when the
    /// host is dropped.
    pub fn start(&mut self, args: &[&str], log: &Path) -> Result<()> {
        let process = self.netns.spawn(args, log)?;
        self.processes.push(process);
        Ok(())
    }

    /// The pid of the `index`th process started with [`Host::start`].
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.processes.get(index).map(Process::id)
    }

    /// Stops every process started with [`Host::start`] (SIGTERM first, so that daemons clean
    /// up: dhcp6d removes its control socket), waiting for each.
    pub fn stop(&mut self) {
        self.processes.clear();
    }

    /// CPU seconds (user + system) used so far by the `index`th process started with
    /// [`Host::start`].
    pub fn cpu_seconds(&self, index: usize) -> Option<f64> {
        let pid = self.processes.get(index)?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        let per_second: f64 =
            output(Command::new("getconf").arg("CLK_TCK")).and_then(|s| s.trim().parse().ok()).unwrap_or(100.0);
        Some(ticks / per_second)
    }

    /// CPU seconds of the first process started with [`Host::start`], plus the time spent in
    /// the XDP program on [`Host::xdp_counted`] (which the kernel counts while
    /// `kernel.bpf_stats_enabled` is 1; the time is the program's on every interface it runs
    /// on).
    pub fn work_seconds(&self) -> Option<f64> {
        let process = self.cpu_seconds(0)?;
        match &self.xdp_counted {
            Some(interface) => Some(process + xdp_run_stats(self, interface)?.0 as f64 / 1e9),
            None => Some(process),
        }
    }
}

/// A veth pair `a` (in `left`) to `b` (in `right`), both up with link-local addresses; it lasts
/// as long as `left`.
pub fn veth(left: &mut Host, a: &str, right: &Host, b: &str) -> Result<()> {
    let link = Veth::new(left, a, right, b)?;
    left.links.push(link);
    Ok(())
}

/// The kernel's run time (ns) and run count of the XDP program attached to `interface` in
/// `ns` (counted while `kernel.bpf_stats_enabled` is 1).
pub fn xdp_run_stats(ns: &Netns, interface: &str) -> Option<(u64, u64)> {
    let out = ns.command(&["bpftool", "--json", "net", "show", "dev", interface]).output().ok()?;
    let net: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let id = net[0]["xdp"][0]["id"].as_u64()?;
    let out = Command::new("bpftool").args(["--json", "prog", "show", "id", &id.to_string()]).output().ok()?;
    let prog: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some((prog["run_time_ns"].as_u64()?, prog["run_cnt"].as_u64()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_keeps_its_links_and_programs_until_dropped() {
        assert!(crate::shell::is_root(), "this test makes namespaces: run it as root");
        let id = std::process::id();
        let (left_name, right_name) = (format!("xt-l-{id}"), format!("xt-r-{id}"));
        let mut left = Host::new(&left_name).expect("a namespace");
        let right = Host::new(&right_name).expect("a namespace");
        veth(&mut left, "xt-a", &right, "xt-b").expect("a veth pair");
        assert!(left.exec(&["ip", "link", "show", "xt-a"]).is_ok(), "the link outlives the call that made it");
        let log = std::env::temp_dir().join(format!("xtask-host-{id}.log"));
        left.start(&["sleep", "1000"], &log).expect("sleep starts");
        let pid = left.processes[0].id();
        assert_eq!(left.printed(&["sh", "-c", "echo out; echo err >&2; exit 1"]).expect("runs"), "out\nerr\n");
        assert!(left.cpu_seconds(0).is_some());

        drop(left);
        assert!(!Netns::exists(&left_name), "the namespace is removed");
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "its program is stopped");
        assert!(right.exec(&["ip", "link", "show", "xt-b"]).is_err(), "its link is deleted");
        let _ = std::fs::remove_file(log);
    }
}
