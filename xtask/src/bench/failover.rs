//! `cargo xtask bench --only failover`: failover pairs against single servers, in one run.
//!
//! The clients reach the servers through a bridge, as on an access link where a pair's two
//! servers both hear every client; the servers talk over a link of their own
//! (2001:db8:ff::1, the primary, and ::2). Measured:
//!
//! - four-message exchanges per second (dhcp6-load, the same offered rates for every server):
//!   one dhcp6d on its own, a dhcp6d pair in NORMAL, and Kea 2.2 with its HA hook in
//!   hot-standby (two kea-dhcp6 talking HTTP over the servers' link);
//! - takeover: from kill -9 of the primary until the secondary's first Reply to a new client,
//!   for dhcp6d with the default keepalive and for Kea HA with its defaults.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::{
    cpu_per_exchange, dhcp6d_config, kea_config, peak, start_kea, sweep, Generator, Outcome, DIR, MAX_DROP_RATIO,
    SECONDS,
};
use crate::netns::{veth, Host};

/// Offered rates, the same for every server: from below Kea HA's rate up past dhcp6d's.
const RATES: &[u32] = &[1000, 2000, 5000, 10000, 20000, 40000, 80000, 160000];
/// New clients the takeover probe runs, each soliciting every 200 ms: more than Kea HA's
/// default `max-unacked-clients` (10), which its standby counts before it takes over.
const PROBE_CLIENTS: &str = "16";
/// Most seconds a takeover is waited for.
const PROBE_SECONDS: &str = "240";
/// Targets of issue 18.
const PAIR_SHARE_TARGET: f64 = 0.85;
const KEA_RATIO_TARGET: f64 = 10.0;
const TAKEOVER_TARGET: Duration = Duration::from_secs(3);

/// The namespaces: clients, a switch, the primary (or the single server), the secondary.
/// Their names and their interfaces' are this part's own (`fo-*`), apart from the other
/// parts' `bench-*`, which another checkout's bench may be using on the same machine.
struct Lab {
    client: Host,
    primary: Host,
    secondary: Option<Host>,
    _switch: Host,
}

impl Lab {
    /// The client link through a bridge, with one server port, or two and the servers' link.
    fn new(pair: bool) -> Result<Lab> {
        let switch = Host::new("fo-sw")?;
        let mut client = Host::new("fo-cli")?;
        let mut primary = Host::new("fo-pri")?;
        veth(&mut client, "fo-cli", &switch, "fs-cli")?;
        veth(&mut primary, "fo-pri", &switch, "fs-pri")?;
        let mut ports = vec!["fs-cli", "fs-pri"];
        let secondary = if pair {
            let mut secondary = Host::new("fo-sec")?;
            veth(&mut secondary, "fo-sec", &switch, "fs-sec")?;
            ports.push("fs-sec");
            veth(&mut primary, "fo-link1", &secondary, "fo-link2")?;
            primary.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::1/64", "dev", "fo-link1", "nodad"])?;
            secondary.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::2/64", "dev", "fo-link2", "nodad"])?;
            secondary.exec(&["ip", "-6", "addr", "add", "2001:db8:1::2/64", "dev", "fo-sec", "nodad"])?;
            Some(secondary)
        } else {
            None
        };
        switch.exec(&["ip", "link", "add", "br0", "type", "bridge"])?;
        switch.exec(&["ip", "link", "set", "br0", "up"])?;
        for port in ports {
            switch.exec(&["ip", "link", "set", port, "master", "br0"])?;
        }
        primary.exec(&["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "fo-pri", "nodad"])?;
        // Whole checksums from the clients, as from a NIC: dhcp6d takes them through AF_XDP.
        client.exec(&["ethtool", "-K", "fo-cli", "tx", "off"])?;
        Ok(Lab { client, primary, secondary, _switch: switch })
    }
}

/// Which servers a run starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Servers {
    Dhcp6dSingle,
    Dhcp6dPair,
    KeaHa,
}

/// dhcp6d's configuration: the exchange benchmark's, plus a `[failover]` section with the
/// defaults (MCLT, keepalive) when one of a pair.
fn dhcp6d_pair_config(name: &str, interface: &str, role: Option<&str>) -> String {
    let mut config = dhcp6d_config(name, interface);
    if let Some(role) = role {
        let (local, partner) = if role == "primary" { (1, 2) } else { (2, 1) };
        config.push_str(&format!(
            "\n[failover]\nrole = \"{role}\"\nlocal = \"[2001:db8:ff::{local}]:647\"\npartner = \"[2001:db8:ff::{partner}]:647\"\n"
        ));
    }
    config
}

/// Starts dhcp6d `name` in `host` with XDP (pins of its own).
fn start_dhcp6d(host: &mut Host, dhcp6d: &Path, name: &str, config: &str) -> Result<()> {
    let dir = PathBuf::from(DIR);
    let _ = std::fs::remove_dir_all(dir.join(format!("{name}-state")));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config)?;
    let pins = crate::setup::netns_pin_dir(&format!("bench-{name}"))?;
    let bin = dhcp6d.to_str().context("build path is not UTF-8")?;
    let args = [bin, "run", "--config", path.to_str().context("path")?, "--bpf-dir", pins.to_str().context("path")?];
    host.start(&args, &dir.join(format!("{name}.log")))
}

/// The failover state dhcp6d `name` reports.
fn failover_state(dhcp6d: &Path, name: &str) -> String {
    let out = Command::new(dhcp6d)
        .args(["show", "failover", "--json", "--socket"])
        .arg(PathBuf::from(DIR).join(format!("{name}.sock")))
        .output();
    let json: serde_json::Value = out.ok().and_then(|o| serde_json::from_slice(&o.stdout).ok()).unwrap_or_default();
    json["state"].as_str().unwrap_or_default().to_string()
}

/// Waits until `ready` holds, at most `seconds`.
fn wait(what: &str, seconds: u64, mut ready: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while !ready() {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(seconds), "{what} not within {seconds} s");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The directory of an HA Kea.
fn kea_dir(name: &str) -> PathBuf {
    PathBuf::from(DIR).join(name)
}

/// Where Debian's Kea keeps its hook libraries: beside `libdhcp_ha.so`, as dpkg knows it.
fn kea_hooks() -> Result<PathBuf> {
    let out = crate::shell::output(Command::new("dpkg-query").args(["-S", "*/libdhcp_ha.so"]))
        .context("dpkg does not know libdhcp_ha.so: is kea-common installed?")?;
    let path = out.lines().next().and_then(|l| l.split_once(": ")).map(|(_, p)| p.trim()).context("dpkg-query")?;
    Ok(Path::new(path).parent().context("hook path")?.to_path_buf())
}

/// Kea with the lease_cmds and HA hooks, hot-standby, its HTTP listener inside the server
/// (multi-threaded, as Kea 2.2 needs for it) on the servers' link. HA timers are Kea's
/// defaults (heartbeat 10 s, max-response-delay 60 s, max-ack-delay 10 s, max-unacked-clients 10).
fn kea_ha_config(this: &str, interface: &str, hooks: &Path) -> String {
    let hooks = hooks.display();
    let more = format!(
        r#""multi-threading": {{ "enable-multi-threading": true, "thread-pool-size": 2, "packet-queue-size": 64 }},
  "hooks-libraries": [
    {{ "library": "{hooks}/libdhcp_lease_cmds.so" }},
    {{ "library": "{hooks}/libdhcp_ha.so", "parameters": {{ "high-availability": [ {{
      "this-server-name": "{this}",
      "mode": "hot-standby",
      "multi-threading": {{ "enable-multi-threading": true, "http-dedicated-listener": true,
                           "http-listener-threads": 2, "http-client-threads": 2 }},
      "peers": [
        {{ "name": "primary", "url": "http://[2001:db8:ff::1]:8000/", "role": "primary", "auto-failover": true }},
        {{ "name": "standby", "url": "http://[2001:db8:ff::2]:8000/", "role": "standby", "auto-failover": true }}
      ] }} ] }} }}
  ],"#
    );
    let dir = kea_dir(this);
    let ha_log = format!(
        r#", {{ "name": "kea-dhcp6.ha-hooks", "output_options": [ {{ "output": "{}/kea-ha.log" }} ], "severity": "INFO" }}"#,
        dir.display()
    );
    kea_config(&dir, interface, &more, &ha_log)
}

/// Whether HA Kea `name` logged that it entered `state` (e.g. "HOT-STANDBY").
fn kea_in_state(name: &str, state: &str) -> bool {
    let log = std::fs::read_to_string(kea_dir(name).join("kea-ha.log")).unwrap_or_default();
    log.lines().any(|l| l.contains("HA_STATE_TRANSITION") && l.contains(&format!("to {state} state")))
}

/// Starts the servers of `which` in `lab`, and waits until they are ready: the pair in
/// NORMAL, the HA pair in hot-standby.
fn start(lab: &mut Lab, which: Servers, dhcp6d: &Path) -> Result<()> {
    match which {
        Servers::Dhcp6dSingle => {
            start_dhcp6d(&mut lab.primary, dhcp6d, "fo-single", &dhcp6d_pair_config("fo-single", "fo-pri", None))?;
            std::thread::sleep(Duration::from_secs(2));
        }
        Servers::Dhcp6dPair => {
            let secondary = lab.secondary.as_mut().context("a pair needs its secondary")?;
            let config = dhcp6d_pair_config("fo-sec", "fo-sec", Some("secondary"));
            start_dhcp6d(secondary, dhcp6d, "fo-sec", &config)?;
            let config = dhcp6d_pair_config("fo-pri", "fo-pri", Some("primary"));
            start_dhcp6d(&mut lab.primary, dhcp6d, "fo-pri", &config)?;
            for name in ["fo-pri", "fo-sec"] {
                wait(&format!("{name} in NORMAL"), 60, || failover_state(dhcp6d, name) == "NORMAL")?;
            }
        }
        Servers::KeaHa => {
            let hooks = kea_hooks()?;
            let secondary = lab.secondary.as_mut().context("a pair needs its secondary")?;
            let _ = std::fs::remove_dir_all(kea_dir("standby"));
            let _ = std::fs::remove_dir_all(kea_dir("primary"));
            start_kea(secondary, &kea_dir("standby"), &kea_ha_config("standby", "fo-sec", &hooks))?;
            start_kea(&mut lab.primary, &kea_dir("primary"), &kea_ha_config("primary", "fo-pri", &hooks))?;
            wait("Kea HA in hot-standby (see kea-ha.log)", 120, || {
                kea_in_state("primary", "HOT-STANDBY") && kea_in_state("standby", "HOT-STANDBY")
            })?;
        }
    }
    Ok(())
}

/// The exchange sweep of `which`, in a fresh lab; CPU is the primary's (or the single
/// server's).
fn exchanges(name: &str, which: Servers, dhcp6d: &Path, load: &Path) -> Result<Outcome> {
    let mut lab = Lab::new(which != Servers::Dhcp6dSingle)?;
    start(&mut lab, which, dhcp6d)?;
    let (runs, overload) = sweep(Generator::Own(load), RATES, name, &lab.primary, &lab.client, "fo-cli")?;
    if which == Servers::Dhcp6dPair {
        let out = Command::new(dhcp6d)
            .args(["show", "failover", "--socket"])
            .arg(PathBuf::from(DIR).join("fo-pri.sock"))
            .output()?;
        println!("  {name}: the primary's failover afterwards:\n{}", String::from_utf8_lossy(&out.stdout).trim_end());
    }
    drop(lab);
    // Kept apart from the takeover runs', which use the same names.
    for kept in ["fo-single.log", "fo-pri.log", "fo-sec.log", "primary", "standby"] {
        let (from, to) = (PathBuf::from(DIR).join(kept), PathBuf::from(DIR).join(format!("exchanges-{kept}")));
        if from.exists() {
            let _ = std::fs::remove_dir_all(&to);
            std::fs::rename(from, to)?;
        }
    }
    Ok(Outcome { peak: peak(&runs), overload, cpu: cpu_per_exchange(&runs) })
}

/// Kills the primary with SIGKILL, then times until the secondary's first Reply to a new
/// client (dhcp6-load --probe, started right after the kill).
fn takeover(which: Servers, dhcp6d: &Path, load: &Path) -> Result<Duration> {
    let mut lab = Lab::new(true)?;
    start(&mut lab, which, dhcp6d)?;
    let pid = lab.primary.pid(0).context("no primary process")?;
    let killed = Instant::now();
    crate::shell::run(Command::new("kill").args(["-9", &pid.to_string()]))?;
    let load = load.to_str().context("build path is not UTF-8")?;
    let text = lab.client.printed(&[
        load,
        "-i",
        "fo-cli",
        "-r",
        "1",
        "-s",
        PROBE_SECONDS,
        "--base",
        "4000000000",
        "--probe",
        PROBE_CLIENTS,
    ])?;
    let took = killed.elapsed();
    anyhow::ensure!(text.contains("probe: first Reply"), "no takeover: {}", text.trim());
    Ok(took)
}

fn line(name: &str, o: &Outcome) {
    match (o.peak, o.overload) {
        (Some(p), overload) => println!(
            "  {name:<22} {:>9.1} exchanges/s sustained, {:>6.1} us primary CPU/exchange{}",
            p.achieved,
            o.cpu,
            overload.map_or(String::new(), |r| format!(", {:.1}/s at 4x", r.achieved))
        ),
        (None, _) => println!("  {name:<22} sustained none of the offered rates"),
    }
}

/// The failover part: exchanges of one dhcp6d, a dhcp6d pair and Kea HA; takeover times.
pub fn failover(dhcp6d: &Path) -> Result<()> {
    let load = dhcp6d.with_file_name("dhcp6-load");
    println!(
        "failover pairs, four-message exchanges with dhcp6-load through a bridge, {SECONDS} s per rate, \
         sustained = at most {}% lost; then takeover after kill -9 of the primary:",
        MAX_DROP_RATIO * 100.0
    );
    let single = exchanges("dhcp6d alone", Servers::Dhcp6dSingle, dhcp6d, &load)?;
    let pair = exchanges("dhcp6d pair", Servers::Dhcp6dPair, dhcp6d, &load)?;
    let kea = match exchanges("kea HA hot-standby", Servers::KeaHa, dhcp6d, &load) {
        Ok(o) => Some(o),
        Err(e) => {
            println!("  kea HA: {e:#}");
            None
        }
    };
    let dhcp6d_takeover = takeover(Servers::Dhcp6dPair, dhcp6d, &load);
    let kea_takeover = takeover(Servers::KeaHa, dhcp6d, &load);

    println!("summary:");
    line("dhcp6d alone", &single);
    line("dhcp6d pair (NORMAL)", &pair);
    if let Some(k) = &kea {
        line("kea HA hot-standby", k);
    }
    let rate = |o: &Outcome| o.peak.map(|p| p.achieved);
    if let (Some(s), Some(p)) = (rate(&single), rate(&pair)) {
        let share = p / s;
        let verdict = if share >= PAIR_SHARE_TARGET { "met" } else { "missed" };
        println!(
            "  pair / alone: {:.0}% (target at least {:.0}%: {verdict})",
            share * 100.0,
            PAIR_SHARE_TARGET * 100.0
        );
    }
    if let (Some(p), Some(k)) = (rate(&pair), kea.as_ref().and_then(rate)) {
        let ratio = p / k;
        let verdict = if ratio >= KEA_RATIO_TARGET { "met" } else { "missed" };
        println!("  dhcp6d pair / kea HA: {ratio:.1}x (target at least {KEA_RATIO_TARGET:.0}x: {verdict})");
    }
    let show = |name: &str, t: &Result<Duration>| match t {
        Ok(d) => {
            println!("  takeover, {name}: {:.2} s from kill -9 to the first Reply to a new client", d.as_secs_f64())
        }
        Err(e) => println!("  takeover, {name}: {e:#}"),
    };
    show("dhcp6d (default keepalive)", &dhcp6d_takeover);
    show("kea HA (default timers)", &kea_takeover);
    if let Ok(d) = &dhcp6d_takeover {
        let verdict = if *d < TAKEOVER_TARGET { "met" } else { "missed" };
        println!("  dhcp6d takeover target under {:.0} s: {verdict}", TAKEOVER_TARGET.as_secs_f64());
    }
    dhcp6d_takeover.map(|_| ())
}
