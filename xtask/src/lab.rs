//! `cargo xtask run` with no arguments: a lab of network namespaces with real clients on an
//! access link, served by dhcp6d (XDP attached) from `examples/lab.toml`. It shows the clients'
//! leases and the counters, stays up until Ctrl-C, then removes everything.
//!
//! ```text
//!  lab-c1 (dhclient IA_NA) ──┐
//!                            ├── lab-sw (bridge) ── lab-srv: dhcp6d on "lab-srv"
//!  lab-c2 (dhclient -N -P) ──┘
//! ```

use std::{
    path::{Path, PathBuf},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::netns::{veth, Netns};

/// Where the lab keeps its files; `examples/lab.toml` points its state and socket here.
const RUN_DIR: &str = "/run/dhcp6-lab";

/// A dhclient script that configures nothing (the stock one would rewrite the host's
/// resolv.conf): the lab only shows what the clients were given.
const HOOK: &str = "#!/bin/sh\nexit 0\n";

pub fn run(root: &Path, dhcp6d: &Path) -> Result<()> {
    let dir = PathBuf::from(RUN_DIR);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let hook = dir.join("hook.sh");
    std::fs::write(&hook, HOOK)?;
    crate::shell::run(std::process::Command::new("chmod").arg("755").arg(&hook))?;

    // Dropped in reverse order: clients, then the server, then the switch.
    let switch = Netns::new("lab-sw")?;
    switch.exec(&["ip", "link", "add", "br0", "type", "bridge"])?;
    switch.exec(&["ip", "link", "set", "br0", "up"])?;
    let mut server = Netns::new("lab-srv")?;
    veth(&server, "lab-srv", &switch, "sw-srv")?;
    switch.exec(&["ip", "link", "set", "sw-srv", "master", "br0"])?;
    server.exec(&["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "lab-srv", "nodad"])?;
    let config = root.join("examples/lab.toml");
    let config_arg = config.to_str().context("the repository path is not UTF-8")?;
    let dhcp6d_arg = dhcp6d.to_str().context("the build path is not UTF-8")?;
    let pins = crate::setup::netns_pin_dir("lab")?;
    let pins_arg = pins.to_str().context("path")?;
    server.spawn(&[dhcp6d_arg, "run", "--config", config_arg, "--bpf-dir", pins_arg], &dir.join("dhcp6d.log"))?;
    wait_for_socket(&dir.join("dhcp6d.sock"), &dir.join("dhcp6d.log"))?;

    let mut clients = Vec::new();
    for (name, flags) in [("lab-c1", &[][..]), ("lab-c2", &["-N", "-P"][..])] {
        let mut ns = Netns::new(name)?;
        let port = format!("sw-{}", &name[4..]);
        veth(&ns, "eth0", &switch, &port)?;
        switch.exec(&["ip", "link", "set", &port, "master", "br0"])?;
        let files = |f: &str| dir.join(format!("{name}.{f}")).display().to_string();
        let mut args = vec!["dhclient", "-6", "-d", "-v"];
        args.extend_from_slice(flags);
        let (pf, lf, sf) = (files("pid"), files("leases"), hook.display().to_string());
        args.extend_from_slice(&["-pf", &pf, "-lf", &lf, "-sf", &sf, "eth0"]);
        ns.spawn(&args, &dir.join(format!("{name}.log")))?;
        clients.push(ns);
    }

    println!("lab: dhcp6d serves 2001:db8:1::/64 on lab-srv; lab-c1 runs `dhclient -6`, lab-c2 `dhclient -6 -N -P`");
    let show = |what: &str| {
        let out = std::process::Command::new(dhcp6d).args(["show", what, "--config", config_arg]).output();
        if let Ok(out) = out {
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let out =
            std::process::Command::new(dhcp6d).args(["show", "bindings", "--json", "--config", config_arg]).output()?;
        if String::from_utf8_lossy(&out.stdout).matches("\"bound\"").count() >= 3 {
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
    println!("\nThe lab stays up: try `dhcp6d show bindings --config examples/lab.toml`, or");
    println!("`ip netns exec lab-srv bpftool net` to see the XDP program. Logs in {RUN_DIR}. Ctrl-C removes it.");

    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .context("installing the Ctrl-C handler")?;
    let _ = rx.recv();
    println!("\nlab: removing namespaces");
    drop(clients);
    drop(server);
    drop(switch);
    Ok(())
}

fn wait_for_socket(socket: &Path, log: &Path) -> Result<()> {
    for _ in 0..100 {
        if socket.exists() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("dhcp6d did not start; its log says:\n{}", std::fs::read_to_string(log).unwrap_or_default())
}
