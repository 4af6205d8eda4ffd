//! `cargo xtask run` with no arguments: a lab of network namespaces with real clients on an
//! access link, served by dhcp6d (XDP attached) from `examples/lab.toml`, and one more client
//! behind a dhcp6d relay (relaying in XDP, `examples/lab-relay.toml`). It shows the clients'
//! leases, the relay's user entries and the counters, stays up until Ctrl-C, then removes
//! everything: namespaces, pins, and the bpffs if it mounted one (also on Ctrl-C during
//! set-up, or when set-up fails).
//!
//! ```text
//!  lab-c1 (dhclient IA_NA) ──┐
//!                            ├── lab-sw (bridge) ── lab-srv: dhcp6d on "lab-srv"
//!  lab-c2 (dhclient -N -P) ──┤
//!                            └── "uplink" lab-rly: dhcp6d relay "acc" ── lab-c3 (dhclient -N -P)
//! ```

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use dhcp6_netns::Netns;

use crate::netns::{veth, Host};

/// Where the lab keeps its files; `examples/lab.toml` points its state and socket here.
const RUN_DIR: &str = "/run/dhcp6-lab";

/// A dhclient script that configures nothing (the stock one would rewrite the host's
/// resolv.conf): the lab only shows what the clients were given.
const HOOK: &str = "#!/bin/sh\nexit 0\n";

/// What the lab made outside the [`Host`] values that remove themselves: the names of its
/// namespaces (one whose set-up failed half-way has no value to drop), its pin folders, and
/// the bpffs it mounted for them, if it did. Dropped after the namespaces (it is made
/// before them), whose processes hold the pinned programs and maps.
struct Lab {
    bpffs: PathBuf,
    namespaces: Vec<String>,
    pins: Vec<PathBuf>,
    mounted: bool,
}

impl Lab {
    fn new(bpffs: &Path) -> Lab {
        Lab { bpffs: bpffs.to_path_buf(), namespaces: Vec::new(), pins: Vec::new(), mounted: false }
    }

    /// A fresh namespace `name`, removed with the lab at the latest.
    fn netns(&mut self, name: &str) -> Result<Host> {
        self.namespaces.push(name.to_string());
        Host::new(name)
    }

    /// A fresh pin folder `name` on the lab's bpffs (mounted first if need be), removed with
    /// the lab.
    fn pin_dir(&mut self, name: &str) -> Result<PathBuf> {
        let (dir, mounted) = crate::setup::fresh_pin_dir(&self.bpffs, name)?;
        self.mounted |= mounted;
        self.pins.push(dir.clone());
        Ok(dir)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in self.namespaces.iter().rev() {
            Netns::remove(name);
        }
        // Removing a pin detaches what it held (the XDP links) once no process holds it.
        for dir in &self.pins {
            let _ = std::fs::remove_dir_all(dir);
        }
        if self.mounted && crate::shell::output(Command::new("umount").arg(&self.bpffs)).is_some() {
            let _ = std::fs::remove_dir(&self.bpffs);
        }
    }
}

/// Ctrl-C, caught from the start of set-up on, so that the process lives on to remove what
/// the lab made. Set-up checks for it between steps (a command the terminal's SIGINT killed
/// fails its step just as well).
struct Interrupt(mpsc::Receiver<()>);

impl Interrupt {
    fn install() -> Result<Interrupt> {
        let (tx, rx) = mpsc::channel();
        ctrlc::set_handler(move || {
            let _ = tx.send(());
        })
        .context("installing the Ctrl-C handler")?;
        Ok(Interrupt(rx))
    }

    /// An error once Ctrl-C was pressed: set-up stops, and what it made is removed.
    fn check(&self) -> Result<()> {
        match self.0.try_recv() {
            Ok(()) => anyhow::bail!("interrupted during set-up: the lab is removed"),
            Err(_) => Ok(()),
        }
    }

    fn wait(&self) {
        let _ = self.0.recv();
    }
}

pub fn run(root: &Path, dhcp6d: &Path) -> Result<()> {
    let interrupt = Interrupt::install()?;
    set_up_and_serve(root, dhcp6d, &interrupt)
}

/// Sets the lab up, serves until Ctrl-C, then removes it; on Ctrl-C during set-up, or a step
/// that fails, what was made is removed.
fn set_up_and_serve(root: &Path, dhcp6d: &Path, interrupt: &Interrupt) -> Result<()> {
    // Made before the namespaces, so dropped after them.
    let mut lab = Lab::new(Path::new(crate::setup::NETNS_BPFFS));
    let dir = PathBuf::from(RUN_DIR);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let hook = dir.join("hook.sh");
    std::fs::write(&hook, HOOK)?;
    crate::shell::run(std::process::Command::new("chmod").arg("755").arg(&hook))?;

    // Dropped in reverse order: clients, then the server, then the switch.
    let mut switch = lab.netns("lab-sw")?;
    switch.exec(&["ip", "link", "add", "br0", "type", "bridge"])?;
    switch.exec(&["ip", "link", "set", "br0", "up"])?;
    interrupt.check()?;
    let mut server = lab.netns("lab-srv")?;
    veth(&mut server, "lab-srv", &switch, "sw-srv")?;
    switch.exec(&["ip", "link", "set", "sw-srv", "master", "br0"])?;
    server.exec(&["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "lab-srv", "nodad"])?;
    let config = root.join("examples/lab.toml");
    let config_arg = config.to_str().context("the repository path is not UTF-8")?;
    let dhcp6d_arg = dhcp6d.to_str().context("the build path is not UTF-8")?;
    // The Replies XDP sends back on lab-srv reach the bridge only through a port that runs
    // XDP itself; without one, dhcp6d would find them lost and answer renewals from
    // userspace. Attached before dhcp6d starts, which looks at the peer then.
    switch.start(&[dhcp6d_arg, "xdp", "pass", "--interface", "sw-srv"], &dir.join("sw-srv-xdp.log"))?;
    wait_for_xdp(&switch, "sw-srv", &dir.join("sw-srv-xdp.log"), interrupt)?;
    let pins = lab.pin_dir("lab")?;
    let pins_arg = pins.to_str().context("path")?;
    server.start(&[dhcp6d_arg, "run", "--config", config_arg, "--bpf-dir", pins_arg], &dir.join("dhcp6d.log"))?;
    wait_for_socket(&dir.join("dhcp6d.sock"), &dir.join("dhcp6d.log"), interrupt)?;

    // The relay: upstream on the switch, an access link of its own with one client. Its links
    // are set up as a router's: IPv6 forwarding on, whole checksums from the hosts whose
    // frames XDP checks, GRO on the veth ends XDP redirects into.
    let mut relay = lab.netns("lab-rly")?;
    veth(&mut relay, "uplink", &switch, "sw-rly")?;
    switch.exec(&["ip", "link", "set", "sw-rly", "master", "br0"])?;
    switch.exec(&["ethtool", "-K", "sw-rly", "gro", "on"])?;
    server.exec(&["ethtool", "-K", "lab-srv", "tx", "off"])?;
    relay.exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])?;
    relay.exec(&["ip", "-6", "addr", "add", "2001:db8:1::2/64", "dev", "uplink", "nodad"])?;
    interrupt.check()?;
    let mut c3 = lab.netns("lab-c3")?;
    veth(&mut c3, "eth0", &relay, "acc")?;
    relay.exec(&["ip", "-6", "addr", "add", "2001:db8:2::1/64", "dev", "acc", "nodad"])?;
    c3.exec(&["ethtool", "-K", "eth0", "tx", "off", "gro", "on"])?;
    relay.wait_link_local("acc")?;
    let relay_config = root.join("examples/lab-relay.toml");
    let relay_config_arg = relay_config.to_str().context("the repository path is not UTF-8")?;
    let relay_pins = lab.pin_dir("lab-relay")?;
    let relay_pins_arg = relay_pins.to_str().context("path")?;
    relay.start(
        &[dhcp6d_arg, "run", "--config", relay_config_arg, "--bpf-dir", relay_pins_arg],
        &dir.join("relay.log"),
    )?;
    wait_for_socket(&dir.join("relay.sock"), &dir.join("relay.log"), interrupt)?;

    // Two clients on the switch, one behind the relay.
    let mut hosts = Vec::new();
    for name in ["lab-c1", "lab-c2"] {
        interrupt.check()?;
        let mut ns = lab.netns(name)?;
        let port = format!("sw-{}", &name[4..]);
        veth(&mut ns, "eth0", &switch, &port)?;
        switch.exec(&["ip", "link", "set", &port, "master", "br0"])?;
        // Whole checksums, as from a NIC: XDP checks them and hands the messages to dhcp6d's
        // AF_XDP socket (a veth leaves them to offload, and such frames go up the stack).
        ns.exec(&["ethtool", "-K", "eth0", "tx", "off"])?;
        hosts.push(ns);
    }
    hosts.push(c3);
    let mut clients = Vec::new();
    for (mut ns, flags) in hosts.into_iter().zip([&[][..], &["-N", "-P"][..], &["-N", "-P"][..]]) {
        let name = ns.name().to_string();
        let files = |f: &str| dir.join(format!("{name}.{f}")).display().to_string();
        let mut args = vec!["dhclient", "-6", "-d", "-v"];
        args.extend_from_slice(flags);
        let (pf, lf, sf) = (files("pid"), files("leases"), hook.display().to_string());
        args.extend_from_slice(&["-pf", &pf, "-lf", &lf, "-sf", &sf, "eth0"]);
        ns.start(&args, &dir.join(format!("{name}.log")))?;
        clients.push(ns);
    }

    println!(
        "lab: dhcp6d serves 2001:db8:1::/64 on lab-srv; lab-c1 runs `dhclient -6`, lab-c2 `dhclient -6 -N -P`;\n\
         lab-c3 runs `dhclient -6 -N -P` behind the dhcp6d relay in lab-rly (2001:db8:2::/64, relayed in XDP)"
    );
    let show_with = |config: &str, what: &str| {
        let mut args: Vec<&str> = vec!["show"];
        args.extend(what.split_whitespace());
        args.extend(["--config", config]);
        if let Ok(out) = std::process::Command::new(dhcp6d).args(&args).output() {
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
    };
    let show = |what: &str| show_with(config_arg, what);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        interrupt.check()?;
        let out =
            std::process::Command::new(dhcp6d).args(["show", "bindings", "--json", "--config", config_arg]).output()?;
        if String::from_utf8_lossy(&out.stdout).matches("\"bound\"").count() >= 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    println!("\n$ dhcp6d show bindings");
    show("bindings");
    println!("\n$ dhcp6d show statistics");
    show("statistics");
    println!("\n$ dhcp6d show pools");
    show("pools");
    println!("\n$ dhcp6d show relay users --config examples/lab-relay.toml");
    show_with(relay_config_arg, "relay users");
    println!("\n$ dhcp6d show relay servers --config examples/lab-relay.toml");
    show_with(relay_config_arg, "relay servers");
    println!("\n$ dhcp6d show statistics --config examples/lab-relay.toml   (relay_* verdicts: relayed in XDP)");
    show_with(relay_config_arg, "statistics");
    println!("\nThe lab stays up: try `dhcp6d show bindings --config examples/lab.toml`, or");
    println!("`ip netns exec lab-srv bpftool net` to see the XDP program. Logs in {RUN_DIR}. Ctrl-C removes it.");

    interrupt.wait();
    println!("\nlab: removing namespaces and pins");
    drop(clients);
    drop(relay);
    drop(server);
    drop(switch);
    drop(lab);
    Ok(())
}

/// Waits until `interface` runs an XDP program in driver mode.
fn wait_for_xdp(host: &Host, interface: &str, log: &Path, interrupt: &Interrupt) -> Result<()> {
    for _ in 0..300 {
        interrupt.check()?;
        if host.printed(&["ip", "-d", "link", "show", "dev", interface])?.contains("prog/xdp") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("no XDP on {interface}; its log says:\n{}", std::fs::read_to_string(log).unwrap_or_default())
}

fn wait_for_socket(socket: &Path, log: &Path, interrupt: &Interrupt) -> Result<()> {
    for _ in 0..100 {
        interrupt.check()?;
        if socket.exists() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("dhcp6d did not start; its log says:\n{}", std::fs::read_to_string(log).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::{fresh_pin_dir, is_mount_point};

    /// Pins an array map at `path` (as dhcp6d pins its maps), with bpftool.
    fn pin_map(path: &Path) {
        let args = ["type", "array", "key", "4", "value", "4", "entries", "1", "name", "lab_test"];
        crate::shell::run(Command::new("bpftool").args(["map", "create"]).arg(path).args(args)).expect("bpftool");
    }

    #[test]
    fn a_ctrl_c_during_set_up_stops_it_and_removes_what_it_made() {
        assert!(crate::shell::is_root(), "this test makes the lab's namespaces: run it as root");
        // It makes the lab's own namespaces: a lab that is up is left alone.
        if Netns::exists("lab-sw") {
            eprintln!("the lab is up (namespace lab-sw): not tried now");
            return;
        }
        let (tx, rx) = mpsc::channel();
        tx.send(()).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let e = set_up_and_serve(root, Path::new("/nonexistent/dhcp6d"), &Interrupt(rx)).unwrap_err();
        assert!(e.to_string().contains("interrupted during set-up"), "{e}");
        assert!(!Netns::exists("lab-sw"), "the switch made before Ctrl-C is removed");
    }

    #[test]
    fn teardown_removes_the_namespaces_pins_and_bpffs_the_lab_made() {
        assert!(crate::shell::is_root(), "this test makes a namespace and mounts a bpffs: run it as root");
        let id = std::process::id();
        let bpffs = PathBuf::from(format!("/run/dhcp6-lab-test-{id}"));
        let name = format!("lab-test-{id}");

        let mut lab = Lab::new(&bpffs);
        // A namespace as set-up leaves it when interrupted half-way: no Host value removes it.
        std::mem::forget(lab.netns(&name).expect("a namespace"));
        let pins = lab.pin_dir("lab").expect("a pin folder");
        std::fs::create_dir_all(&pins).unwrap();
        pin_map(&pins.join("MAP"));
        assert!(Netns::exists(&name) && pins.join("MAP").exists() && is_mount_point(&bpffs).unwrap());
        drop(lab);
        assert!(!Netns::exists(&name), "the namespace is removed");
        assert!(!pins.exists(), "the pins are removed");
        assert!(!is_mount_point(&bpffs).unwrap() && !bpffs.exists(), "the bpffs the lab mounted is unmounted");

        // A bpffs mounted before the lab stays, with the pins that are not the lab's.
        let (other, mounted) = fresh_pin_dir(&bpffs, "other").unwrap();
        assert!(mounted);
        std::fs::create_dir_all(&other).unwrap();
        let mut lab = Lab::new(&bpffs);
        let pins = lab.pin_dir("lab").unwrap();
        std::fs::create_dir_all(&pins).unwrap();
        drop(lab);
        assert!(!pins.exists() && other.exists() && is_mount_point(&bpffs).unwrap(), "only the lab's pins go");
        crate::shell::run(Command::new("umount").arg(&bpffs)).unwrap();
        std::fs::remove_dir(&bpffs).unwrap();
    }
}
