//! Network namespaces for the lab and the benchmarks, removed with everything in them when
//! dropped (also when a run fails half-way).

use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

use crate::shell::{output, run};

/// A namespace created for this run.
pub struct Netns {
    pub name: String,
    children: Vec<Child>,
    /// An interface whose XDP program's run time counts as this namespace's work (see
    /// [`Netns::work_seconds`]).
    pub xdp_counted: Option<String>,
}

impl Netns {
    /// Creates `name` (removing a stale one left by an interrupted run), loopback up,
    /// duplicate address detection off.
    pub fn new(name: &str) -> Result<Netns> {
        let _ = Command::new("ip").args(["netns", "del", name]).stderr(Stdio::null()).status();
        run(Command::new("ip").args(["netns", "add", name]))?;
        let ns = Netns { name: name.to_string(), children: Vec::new(), xdp_counted: None };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"])?;
        Ok(ns)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    /// Runs a command in the namespace; an error unless it succeeds.
    pub fn exec(&self, args: &[&str]) -> Result<()> {
        let out = self.command(args).output().with_context(|| format!("running {args:?} in {}", self.name))?;
        if !out.status.success() {
            anyhow::bail!("{args:?} in {} failed: {}", self.name, String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    /// Runs a command in the namespace and returns its stdout, whatever its status.
    pub fn output(&self, args: &[&str]) -> Result<String> {
        let out = self.command(args).output().with_context(|| format!("running {args:?} in {}", self.name))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    }

    /// Starts a long-running command in the namespace; it is stopped when the namespace is
    /// dropped. Its output goes to `log`.
    pub fn spawn(&mut self, args: &[&str], log: &std::path::Path) -> Result<()> {
        let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {args:?}"))?;
        self.children.push(child);
        Ok(())
    }

    /// The pid of the `index`th process started with [`Netns::spawn`] (`ip netns exec` execs
    /// it, so the pid is the program's own).
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.children.get(index).map(Child::id)
    }

    /// Stops every process started with [`Netns::spawn`]: SIGTERM, so that daemons clean up
    /// (dhcp6d removes its control socket), then waits for them.
    pub fn stop(&mut self) {
        for child in &mut self.children {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
        self.children.clear();
    }

    /// CPU seconds (user + system) used so far by the `index`th process started with
    /// [`Netns::spawn`] (`ip netns exec` execs it, so the pid is the program's own).
    pub fn cpu_seconds(&self, index: usize) -> Option<f64> {
        let pid = self.children.get(index)?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        let per_second: f64 =
            output(Command::new("getconf").arg("CLK_TCK")).and_then(|s| s.trim().parse().ok()).unwrap_or(100.0);
        Some(ticks / per_second)
    }

    /// CPU seconds of the first process started with [`Netns::spawn`], plus the time spent in
    /// the XDP program on [`Netns::xdp_counted`] (which the kernel counts while
    /// `kernel.bpf_stats_enabled` is 1; the time is the program's on every interface it runs
    /// on).
    pub fn work_seconds(&self) -> Option<f64> {
        let process = self.cpu_seconds(0)?;
        match &self.xdp_counted {
            Some(interface) => Some(process + xdp_run_stats(self, interface)?.0 as f64 / 1e9),
            None => Some(process),
        }
    }

    /// Waits until `interface` has a link-local address.
    pub fn wait_link_local(&self, interface: &str) -> Result<()> {
        for _ in 0..100 {
            if self.output(&["ip", "-6", "addr", "show", "dev", interface, "scope", "link"])?.contains("fe80::") {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        anyhow::bail!("{interface} in {} got no link-local address", self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.stop();
        let _ = output(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// A veth pair `a` (in `left`) to `b` (in `right`), both up with link-local addresses.
pub fn veth(left: &Netns, a: &str, right: &Netns, b: &str) -> Result<()> {
    run(Command::new("ip").args([
        "link",
        "add",
        a,
        "netns",
        &left.name,
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        &right.name,
    ]))?;
    left.exec(&["ip", "link", "set", a, "up"])?;
    right.exec(&["ip", "link", "set", b, "up"])?;
    left.wait_link_local(a)?;
    right.wait_link_local(b)
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
