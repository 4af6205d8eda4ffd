//! `cargo xtask bench --only standby`: the relay's hot standby. A batch of 100,000 user
//! entries reaching the backup relay with their routes installed (target: under 5 s), and the
//! switchover of a pair under keepalived (advert_int 0.5) when the master dies, from
//! keepalived's MASTER notice to the first client message the new master relays (target:
//! under 100 ms). The XDP relay's sustained rate with hot backup on against the same relay
//! without standby (target: at least 90%) is measured in the relay part's run
//! ([`compare_rates`]), where the issue asks for it.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};

use super::{relayed_server_config, Outcome, DIR};
use crate::netns::{veth, Host};

/// User entries in the batch.
const ENTRIES: u32 = 100_000;
const BATCH_TARGET: Duration = Duration::from_secs(5);
/// The share of the standalone relay's sustained rate that the relay with hot backup keeps.
const RATE_TARGET: f64 = 0.9;

/// The `[relay.standby]` part of a relay's configuration: one backup service from `source`
/// to `peer` carrying profile "access" of `access`, whose VRRP group's virtual address is
/// fe80::61.
pub fn standby_config(name: &str, access: &str, source: &str, peer: &str) -> String {
    format!(
        r#"
[relay.standby]
notify_fifo = "{DIR}/{name}.fifo"

[[relay.standby.service]]
name = "peer"
peer = "{peer}"
source = "{source}"
port = 7547

[[relay.standby.profile]]
name = "access"
vrrp_instance = "RELAY6"
service = "peer"
interfaces = ["{access}"]
virtual_address = "fe80::61"
"#
    )
}

/// A relay's configuration: one access interface, one server, standby as `standby` says.
fn relay_config(name: &str, access: &str, standby: &str) -> String {
    format!(
        r#"[server]
state_dir = "{DIR}/{name}-state"
control_socket = "{DIR}/{name}.sock"

[relay]
[[relay.group]]
name = "core"
servers = ["2001:db8:ff::1"]

[[relay.interface]]
name = "{access}"
group = "core"
link_address = "2001:db8:1::1"
{standby}"#
    )
}

/// The backup relay of the rate benchmark, in a namespace of its own joined to `relay`'s
/// (2001:db8:ee::1, the relay at ::2 holding the virtual address, so master from the start).
/// Its access interface leads nowhere: it only holds what the relay backs up.
pub fn backup_peer(relay: &mut Host, dhcp6d: &Path) -> Result<Host> {
    let mut backup = Host::new("bench-bak")?;
    veth(&mut backup, "bench-bk", relay, "bench-sync")?;
    veth(&mut backup, "bench-bacc", relay, "bench-bx")?;
    backup.exec(&["ip", "-6", "addr", "add", "2001:db8:ee::1/64", "dev", "bench-bk", "nodad"])?;
    relay.exec(&["ip", "-6", "addr", "add", "2001:db8:ee::2/64", "dev", "bench-sync", "nodad"])?;
    relay.exec(&["ip", "-6", "addr", "add", "fe80::61/64", "dev", "bench-acc", "nodad"])?;
    start_relay(&mut backup, dhcp6d, "bak", "bench-bacc", "2001:db8:ee::1", "2001:db8:ee::2", &[])?;
    Ok(backup)
}

/// Starts dhcp6d relaying on `access` with a backup service from `source` to `peer`; waits
/// until its control socket answers.
fn start_relay(
    host: &mut Host,
    dhcp6d: &Path,
    name: &str,
    access: &str,
    source: &str,
    peer: &str,
    extra: &[&str],
) -> Result<PathBuf> {
    let dir = PathBuf::from(DIR);
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, relay_config(name, access, &standby_config(name, access, source, peer)))?;
    let bin = dhcp6d.to_str().context("build path is not UTF-8")?;
    let mut args = vec![bin, "run", "--config", config.to_str().context("path")?, "--no-xdp"];
    args.extend_from_slice(extra);
    host.start(&args, &dir.join(format!("{name}.log")))?;
    let socket = dir.join(format!("{name}.sock"));
    wait_until(Duration::from_secs(20), || standby_status(dhcp6d, &socket).is_some())
        .with_context(|| format!("dhcp6d {name} did not answer on its control socket"))?;
    Ok(socket)
}

/// `dhcp6d show relay standby --json`.
fn standby_status(dhcp6d: &Path, socket: &Path) -> Option<serde_json::Value> {
    let out = std::process::Command::new(dhcp6d)
        .args(["show", "relay", "standby", "--json", "--socket"])
        .arg(socket)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Polls `f` every 20 ms until it holds; the time it took, or None after `timeout`.
fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Delegated-prefix routes of ours (protocol 200) in `host`.
fn routes(host: &Host) -> usize {
    host.printed(&["ip", "-6", "route", "show", "proto", "200"]).map_or(0, |t| t.lines().count())
}

/// The relay's saved user entries: `n` delegated /64s on `access`, an hour to go.
fn entries(n: u32, access: &str) -> Result<Vec<u8>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let list: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let (hi, lo) = (i >> 16, i & 0xffff);
            serde_json::json!({
                "duid": format!("00:03:00:01:02:00:00:{:02x}:{:02x}:{:02x}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff),
                "iaid": 1,
                "ia_type": "ia_pd",
                "resource": format!("2001:db8:{:x}:{lo:x}::/64", 0x9000 + hi),
                "preferred_lifetime": 1800,
                "valid_lifetime": 3600,
                "expires": now + 3600,
                "interface": access,
                "link_local": format!("fe80::2:{hi:x}:{lo:x}"),
                "mac": null,
            })
        })
        .collect();
    Ok(serde_json::to_vec(&list)?)
}

/// The master (its user entries restored from a snapshot of [`ENTRIES`], their routes
/// installed) and then the backup start; the backup's batch is timed from its link coming up
/// (its log) until it lists every entry, and until every route is in its kernel.
fn batch(dhcp6d: &Path) -> Result<()> {
    let dir = PathBuf::from(DIR);
    let mut master = Host::new("bench-sa")?;
    let mut backup = Host::new("bench-sb")?;
    let access = Host::new("bench-sw")?;
    veth(&mut master, "bench-sa", &backup, "bench-sb")?;
    veth(&mut master, "bench-aacc", &access, "bench-sw1")?;
    veth(&mut backup, "bench-bacc", &access, "bench-sw2")?;
    master.exec(&["ip", "-6", "addr", "add", "2001:db8:ee::1/64", "dev", "bench-sa", "nodad"])?;
    backup.exec(&["ip", "-6", "addr", "add", "2001:db8:ee::2/64", "dev", "bench-sb", "nodad"])?;
    for name in ["ma", "mb"] {
        let _ = std::fs::remove_dir_all(dir.join(format!("{name}-state")));
    }
    std::fs::create_dir_all(dir.join("ma-state"))?;
    std::fs::write(dir.join("ma-state/relay-users.json"), entries(ENTRIES, "bench-aacc")?)?;
    let total = ENTRIES as usize;
    let ma = start_relay(&mut master, dhcp6d, "ma", "bench-aacc", "2001:db8:ee::1", "2001:db8:ee::2", &[])?;
    let entries_of = |socket: &Path| {
        standby_status(dhcp6d, socket).and_then(|s| s["profiles"][0]["entries"].as_u64()).unwrap_or(0) as usize
    };
    wait_until(Duration::from_secs(60), || entries_of(&ma) == total && routes(&master) == total)
        .context("the master did not restore its entries and routes")?;
    let mb = start_relay(&mut backup, dhcp6d, "mb", "bench-bacc", "2001:db8:ee::2", "2001:db8:ee::1", &[])?;
    let listed = wait_until(Duration::from_secs(60), || entries_of(&mb) == total);
    // Listing the kernel's 100,000 routes takes a core for a while: polled every 20 ms from the
    // start, it slowed what it measured. Routes are counted once every entry is listed, then
    // every 100 ms (the time found is late by up to that and one listing, never early).
    let routed = wait_until(Duration::from_secs(60), || {
        let done = routes(&backup) == total;
        if !done {
            std::thread::sleep(Duration::from_millis(80));
        }
        done
    });
    let finished = SystemTime::now();
    let (Some(_), Some(_)) = (listed, routed) else {
        anyhow::bail!("the backup did not hold {total} entries and routes within a minute (see {DIR}/mb.log)");
    };
    // Measured from the link coming up, as the backup logged it.
    let up = logged_at(&dir.join("mb.log"), "backup link up").context("no link in the backup's log")?;
    // The entries were all listed when the wait for the routes began.
    let listed_at = finished - routed.unwrap_or_default();
    let secs = |t: SystemTime| t.duration_since(up).map_or(0.0, |d| d.as_secs_f64());
    println!(
        "  batch of {ENTRIES} entries: all on the backup {:.2} s after the link came up, all routes installed after {:.2} s (target: under {} s)",
        secs(listed_at),
        secs(finished),
        BATCH_TARGET.as_secs()
    );
    Ok(())
}

/// Seconds since the epoch of tracing's UTC timestamps (`2026-12-07T18:12:35.315121Z`).
fn parse_rfc3339(t: &str) -> Option<SystemTime> {
    let (date, time) = t.trim_end_matches('Z').split_once('T')?;
    let d: Vec<i64> = date.split('-').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let h: Vec<u64> = hms.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let (y, m, day) = (d[0], d[1], d[2]);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    let nanos: u64 = format!("{frac:0<9}")[..9].parse().ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(days * 86_400 + h[0] * 3600 + h[1] * 60 + h[2]) + Duration::from_nanos(nanos))
}

const SWITCHOVER_TARGET: Duration = Duration::from_millis(100);

/// keepalived for `interface` in `host`, VRRPv3 with advert_int 0.5, its notices to the FIFO
/// of relay `name`; its own pid files, so that the bench can kill it and its VRRP process.
fn keepalived(host: &mut Host, name: &str, interface: &str, priority: u8) -> Result<PathBuf> {
    let dir = PathBuf::from(DIR);
    let conf = format!(
        "global_defs {{\n vrrp_version 3\n vrrp_notify_fifo {DIR}/{name}.fifo\n}}\nvrrp_instance RELAY6 {{\n state BACKUP\n interface {interface}\n virtual_router_id 61\n priority {priority}\n advert_int 0.5\n virtual_ipaddress {{\n  fe80::61/64\n }}\n}}\n"
    );
    let path = dir.join(format!("k{name}.conf"));
    std::fs::write(&path, conf)?;
    let (pid, vrrp_pid) = (dir.join(format!("k{name}.pid")), dir.join(format!("k{name}-vrrp.pid")));
    let text = |p: &Path| p.to_str().map(str::to_string).context("path");
    host.start(
        &["keepalived", "-n", "-l", "-D", "-P", "-f", &text(&path)?, "-p", &text(&pid)?, "-r", &text(&vrrp_pid)?],
        &dir.join(format!("k{name}.log")),
    )?;
    Ok(vrrp_pid)
}

/// The time of the first line of `log` (tracing's or tcpdump -tt's) that contains `what`.
fn logged_at(log: &Path, what: &str) -> Option<SystemTime> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().filter(|l| l.contains(what)).find_map(|l| {
        let first = l.split_whitespace().next()?;
        match first.parse::<f64>() {
            Ok(secs) => Some(UNIX_EPOCH + Duration::from_secs_f64(secs)),
            Err(_) => parse_rfc3339(first),
        }
    })
}

/// Two relays (`--no-xdp`) with keepalived on one access bridge, a client sending Solicits
/// (200/s), the server behind; the master's dhcp6d and keepalived (its VRRP process too) are
/// killed: VRRP's detection, then from the backup's MASTER notice to the first Relay-Forward
/// it sends (tcpdump on the server's side).
fn switchover(dhcp6d: &Path) -> Result<()> {
    let dir = PathBuf::from(DIR);
    let switch = Host::new("bench-ksw")?;
    let mut server = Host::new("bench-ksrv")?;
    let mut a = Host::new("bench-ka")?;
    let mut b = Host::new("bench-kb")?;
    let mut client = Host::new("bench-kcli")?;
    for bridge in ["br-up", "br-acc"] {
        switch.exec(&["ip", "link", "add", bridge, "type", "bridge"])?;
        switch.exec(&["ip", "link", "set", "dev", bridge, "up"])?;
    }
    // Each host's ends on the switch, as (host's end, switch port, bridge).
    let plug = |host: &mut Host, end: &str, port: &str, bridge: &str| -> Result<()> {
        veth(host, end, &switch, port)?;
        switch.exec(&["ip", "link", "set", port, "master", bridge])?;
        Ok(())
    };
    plug(&mut server, "bench-ksrv", "bench-p0", "br-up")?;
    plug(&mut a, "bench-kaup", "bench-p1", "br-up")?;
    plug(&mut b, "bench-kbup", "bench-p2", "br-up")?;
    plug(&mut a, "bench-kaacc", "bench-p3", "br-acc")?;
    plug(&mut b, "bench-kbacc", "bench-p4", "br-acc")?;
    plug(&mut client, "bench-kcli", "bench-p5", "br-acc")?;
    server.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::1/64", "dev", "bench-ksrv", "nodad"])?;
    a.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::a/64", "dev", "bench-kaup", "nodad"])?;
    b.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::b/64", "dev", "bench-kbup", "nodad"])?;
    let config = dir.join("relayed.toml");
    std::fs::write(&config, relayed_server_config())?;
    let _ = std::fs::remove_dir_all(dir.join("relayed-state"));
    let bin = dhcp6d.to_str().context("build path is not UTF-8")?;
    server.start(&[bin, "run", "--config", config.to_str().context("path")?, "--no-xdp"], &dir.join("relayed.log"))?;
    for name in ["ka", "kb"] {
        let _ = std::fs::remove_dir_all(dir.join(format!("{name}-state")));
    }
    let sa = start_relay(&mut a, dhcp6d, "ka", "bench-kaacc", "2001:db8:ff::a", "2001:db8:ff::b", &[])?;
    let sb = start_relay(&mut b, dhcp6d, "kb", "bench-kbacc", "2001:db8:ff::b", "2001:db8:ff::a", &[])?;
    let a_vrrp = keepalived(&mut a, "ka", "bench-kaacc", 200)?;
    keepalived(&mut b, "kb", "bench-kbacc", 100)?;
    let role = |socket: &Path| {
        standby_status(dhcp6d, socket).and_then(|s| s["profiles"][0]["role"].as_str().map(str::to_string))
    };
    wait_until(Duration::from_secs(30), || {
        role(&sa).as_deref() == Some("master") && role(&sb).as_deref() == Some("backup")
    })
    .context("the pair did not settle: a master, b backup")?;
    let capture = dir.join("switchover-tcpdump.log");
    server.start(
        &["tcpdump", "-l", "-tt", "-n", "-i", "bench-ksrv", "src 2001:db8:ff::b and udp dst port 547"],
        &capture,
    )?;
    let load = dhcp6d.with_file_name("dhcp6-load");
    client.start(
        &[load.to_str().context("path")?, "-i", "bench-kcli", "-r", "200", "-s", "8"],
        &dir.join("switchover-load.log"),
    )?;
    std::thread::sleep(Duration::from_secs(2));
    // The master dies: keepalived's VRRP process, keepalived, dhcp6d (the first process).
    let vrrp = std::fs::read_to_string(&a_vrrp)?.trim().to_string();
    let killed = SystemTime::now();
    let dhcp6d_pid = a.pid(0).context("the master's pid")?.to_string();
    let keepalived_pid = a.pid(1).context("keepalived's pid")?.to_string();
    crate::shell::run(std::process::Command::new("kill").args(["-9", &vrrp, &keepalived_pid, &dhcp6d_pid]))?;
    wait_until(Duration::from_secs(10), || role(&sb).as_deref() == Some("master"))
        .context("b did not become master")?;
    std::thread::sleep(Duration::from_secs(1));
    let notice = logged_at(&dir.join("kb.log"), "state=Some(Master)").context("no MASTER notice in b's log")?;
    let first = logged_at(&capture, "").context("b relayed nothing")?;
    let ms = |from: SystemTime, to: SystemTime| to.duration_since(from).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    println!(
        "  switchover (advert_int 0.5, --no-xdp, a client sending 200 Solicits/s): master killed -> backup's MASTER notice {:.0} ms (VRRP's detection); notice -> first Relay-Forward from the new master {:.1} ms (target: under {} ms); {:.0} ms in all",
        ms(killed, notice),
        ms(notice, first),
        SWITCHOVER_TARGET.as_millis(),
        ms(killed, first)
    );
    Ok(())
}

pub fn run(dhcp6d: &Path) -> Result<()> {
    println!("relay hot standby (its rate with hot backup is measured in the relay part):");
    batch(dhcp6d)?;
    switchover(dhcp6d)
}

/// The XDP relay's sustained rate alone and as a hot standby master, from the relay part's
/// sweeps in the same run.
pub fn compare_rates(alone: &Outcome, hot: &Outcome) {
    if let (Some(a), Some(h)) = (alone.peak, hot.peak) {
        println!(
            "  XDP relay: {:.1} exchanges/s sustained alone, {:.1} with hot backup: {:.1}% (target: at least {:.0}%); relay CPU {:.1} vs {:.1} us per exchange",
            a.achieved,
            h.achieved,
            h.achieved / a.achieved * 100.0,
            RATE_TARGET * 100.0,
            alone.cpu,
            hot.cpu
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_timestamps_are_read_as_utc() {
        let t = parse_rfc3339("2026-12-07T18:12:35.315121Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap(), Duration::from_micros(1_796_667_155_315_121));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(UNIX_EPOCH + Duration::from_secs(1)));
    }
}
