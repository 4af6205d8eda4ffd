//! The XDP fast path for real: dhclient binds through dhcp6d on a veth, dhcp6d stops, and
//! dhclient's Renews are still answered, by XDP from the pinned lease map; a new dhcp6d picks
//! the pins up, and its store holds the expiry the renewal gave; while it runs, the renewals
//! XDP answers move the store's expiries too.

use std::{
    path::Path,
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aya::programs::XdpMode;
use dhcp6_common::PIN_LAYOUT;
use dhcp6_tests::{
    netns::{Netns, Veth},
    peers::{bpf_dir, dhcp6_load_binary, wait_for, Dhclient, Dhcp6d, Scratch},
};
use dhcp6_user::xdp::XdpProgram;
use serde_json::Value;

const SECS: Duration = Duration::from_secs(40);

/// Renewals within a test: T1 4 s. The horizon lets XDP answer for 30 s without dhcp6d.
const HORIZON: u64 = 30;

fn config(interface: &str) -> String {
    format!(
        r#"[server]
renewal_horizon = {HORIZON}
preferred_lifetime = 10
valid_lifetime = 20
t1 = 4
t2 = 8
dns_servers = ["2001:db8::53"]

[[subnet]]
interface = "{interface}"
prefix = "2001:db8:1::/64"
ranges = [{{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }}]
"#
    )
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// `bpftool -j map dump pinned PATH`.
fn bpftool_dump(path: &Path) -> Value {
    let out = Command::new("bpftool").args(["-j", "map", "dump", "pinned"]).arg(path).output().unwrap();
    assert!(out.status.success(), "bpftool: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The XDP program's count of Renews and Rebinds it answered, summed over CPUs, from the pin.
fn replied(dir: &Path) -> u64 {
    let dump = bpftool_dump(&dir.join(PIN_LAYOUT).join("VERDICT_COUNTS"));
    let replied = dhcp6_common::counters::Verdict::Replied as u64;
    let entry = dump.as_array().unwrap().iter().find(|e| e["formatted"]["key"].as_u64() == Some(replied)).cloned();
    let values = entry.map(|e| e["formatted"]["values"].clone()).unwrap_or(Value::Null);
    values.as_array().map_or(0, |v| v.iter().map(|c| c["value"].as_u64().unwrap_or(0)).sum())
}

fn expiry(server: &Dhcp6d, address: &str) -> u64 {
    let b = server.show("bindings");
    let lease = b.as_array().unwrap().iter().find(|l| l["resource"] == format!("{address}/128")).cloned();
    lease.unwrap_or_else(|| panic!("no binding for {address}: {b}"))["expires"].as_u64().unwrap()
}

#[test]
fn renewals_are_answered_by_xdp_while_dhcp6d_restarts() {
    let server_ns = Netns::new("d6s");
    let client_ns = Netns::new("d6c");
    let veth = Veth::new(&server_ns, &client_ns);
    // A NIC delivers checksums whole; a veth sender leaves them to offload unless told not to.
    client_ns.exec(&["ethtool", "-K", veth.b(), "tx", "off"]);
    // A veth takes the frames its peer sends with XDP_TX only when it runs XDP itself (its
    // NAPI is off otherwise): the client side gets a program of its own, which passes all.
    let mut client_xdp = XdpProgram::load_with(16).unwrap();
    client_ns.run(|| client_xdp.attach(veth.b(), XdpMode::Driver)).unwrap();
    let scratch = Scratch::new("fastpath");
    let dir = bpf_dir("fp");
    let config = config(veth.a());
    let server = Dhcp6d::start_pinned(&server_ns, &scratch, "srv", &config, &[], Some(dir.clone()));
    let client = Dhclient::start(&client_ns, &scratch, "dhclient", veth.b(), &[]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    let bound_expiry = expiry(&server, &address);

    // dhcp6d stops before T1; XDP stays, and answers the Renews.
    let renews = client.values("RENEW6", "new_ip6_address").len();
    let answered = replied(&dir);
    let log = server.process.log().to_path_buf();
    let dir = server.stop_keeping_pins().unwrap();
    let stopped = now();
    let deadline = std::time::Instant::now() + SECS;
    let renewed = loop {
        let v = client.values("RENEW6", "new_ip6_address");
        if v.len() > renews {
            break v.last().unwrap().clone();
        }
        if std::time::Instant::now() > deadline {
            let verdicts = bpftool_dump(&dir.join(PIN_LAYOUT).join("VERDICT_COUNTS"));
            let link = server_ns.exec(&["ethtool", "-S", veth.a()]);
            panic!(
                "no Renew answered while dhcp6d was stopped; verdicts {verdicts}\n{}",
                String::from_utf8_lossy(&link.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let renewed_at = now();
    assert_eq!(renewed, address, "renewed with the same address");
    assert!(replied(&dir) > answered, "answered in XDP: {}", std::fs::read_to_string(&log).unwrap_or_default());

    // The binding is in the pinned map, which bpftool prints with named fields.
    let text = bpftool_dump(&dir.join(PIN_LAYOUT).join("LEASES")).to_string();
    for field in ["\"iaid\"", "\"duid_len\"", "\"deadline_ns\"", "\"ifindex\"", "\"resource\"", "\"ia\""] {
        assert!(text.contains(field), "bpftool shows {field}: {text}");
    }

    // A new dhcp6d takes the pins over; the store holds the expiry the renewal told.
    let server = Dhcp6d::start_pinned(&server_ns, &scratch, "srv", &config, &[], Some(dir.clone()));
    // The new dhcp6d read the stamps before its control socket answered: no renewal it
    // recorded came later than this. (With T1 at 4 s, a slow start lets XDP answer a second
    // Renew after the first one seen above.)
    let recorded_by = now();
    let renewed_expiry = expiry(&server, &address);
    assert!(renewed_expiry >= stopped + 20, "{renewed_expiry} covers the valid lifetime from the renewal");
    assert!(renewed_expiry > bound_expiry, "the renewal moved the expiry: {bound_expiry} -> {renewed_expiry}");
    assert!(
        renewed_expiry <= recorded_by.max(renewed_at) + 20 + HORIZON + 1,
        "within the horizon: {renewed_expiry}, last renewal by {recorded_by}"
    );
    assert!(server.show("statistics")["fast_path_renewals"].as_u64().unwrap_or(0) >= 1);

    // And renewals go on through the new program.
    let renews = client.values("RENEW6", "new_ip6_address").len();
    let answered = replied(&dir);
    wait_for("another renewal", SECS, || (client.values("RENEW6", "new_ip6_address").len() > renews).then_some(()));
    assert!(replied(&dir) > answered);
    assert_eq!(server.stat("received", "RENEW"), 0, "every Renew answered in XDP");

    // While dhcp6d runs, the renewals XDP answers reach the store too: as the binding's
    // deadline nears, dhcp6d reads the entry's stamp, persists the later expiry and moves the
    // deadline, so that XDP goes on answering (without that, the deadline would pass and the
    // next Renew would come up to userspace).
    let restarted_expiry = expiry(&server, &address);
    wait_for("the store's expiry moved by renewals XDP answered", SECS, || {
        (expiry(&server, &address) > restarted_expiry).then_some(())
    });
    assert_eq!(server.stat("received", "RENEW"), 0, "still every Renew answered in XDP");

    // Release (dhclient -r with the same lease file): the binding leaves the map, and a
    // Renew from the client would now go up to userspace.
    let dir_of_client = client.dir.clone();
    drop(client);
    let releaser =
        Dhclient { process: client_ns.spawn(&["sleep", "0"], &scratch.path("noop.log")), dir: dir_of_client };
    releaser.run_once(&client_ns, veth.b(), &["-r"]);
    wait_for("the lease to be released", SECS, || server.bound().is_empty().then_some(()));
    let leases = bpftool_dump(&dir.join(PIN_LAYOUT).join("LEASES"));
    assert_eq!(leases.as_array().map(Vec::len), Some(0), "the released binding left the map: {leases}");

    // dhcp6d --no-xdp detaches the program the earlier one left pinned.
    let xdp_attached = || {
        let out = server_ns.exec(&["ip", "link", "show", veth.a()]);
        String::from_utf8_lossy(&out.stdout).contains(" xdp")
    };
    assert!(xdp_attached());
    let dir = server.stop_keeping_pins().unwrap();
    assert!(xdp_attached(), "the program stays attached while no dhcp6d runs");
    let server = Dhcp6d::start_pinned(&server_ns, &scratch, "srv", &config, &["--no-xdp"], Some(dir.clone()));
    assert!(!xdp_attached(), "--no-xdp detached it");
    assert!(server.show("statistics")["xdp"].is_null(), "no XDP counters without XDP");
}

/// The interface is deleted while dhcp6d is stopped and made anew with the same name: the
/// link pinned to the old one outlives it, severed. The next dhcp6d removes that pin (and
/// says so), attaches XDP afresh to the new interface, and serves on it.
#[test]
fn a_link_pinned_to_a_deleted_interface_is_replaced_at_start() {
    let server_ns = Netns::new("d6rs");
    let client_ns = Netns::new("d6rc");
    let veth = Veth::new(&server_ns, &client_ns);
    let scratch = Scratch::new("fastpathrecreated");
    let config = config(veth.a());
    let server = Dhcp6d::start_pinned(&server_ns, &scratch, "srv", &config, &[], Some(bpf_dir("fprec")));
    let dir = server.stop_keeping_pins().unwrap();
    assert!(XdpProgram::link_pin(&dir, veth.a()).exists(), "the link stays pinned while no dhcp6d runs");

    let (a, b) = (veth.a().to_string(), veth.b().to_string());
    drop(veth);
    let veth = Veth::named(&server_ns, &client_ns, &a, &b);
    assert!(XdpProgram::link_pin(&dir, veth.a()).exists(), "the severed link's pin outlives its interface");
    let xdp_attached = || {
        let out = server_ns.exec(&["ip", "-d", "link", "show", veth.a()]);
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
    };
    assert!(!xdp_attached(), "the new interface starts without XDP");

    let server = Dhcp6d::start_pinned(&server_ns, &scratch, "srv", &config, &[], Some(dir));
    let log = server.process.log_text();
    assert!(xdp_attached(), "XDP attached to the new interface: {log}");
    assert!(log.contains("removed the stale pinned XDP link"), "said once: {log}");
    let client = Dhclient::start(&client_ns, &scratch, "dhclient", veth.b(), &[]);
    client.wait_event("BOUND6", "new_ip6_address", SECS);
    assert!(server.show("statistics")["xdp"].is_object(), "with XDP counters");
}

/// A client whose veth end runs no XDP program: the frames XDP would send back with XDP_TX
/// never reach it (counted as errors without GRO, lost silently with GRO). dhcp6d sees that
/// the peer runs no XDP, answers the renewals from userspace, and says so; XDP counts none as
/// replied.
fn renewals_reach_a_peer_without_xdp(gro: &str, tag: &str) {
    let server_ns = Netns::new(&format!("d6{tag}s"));
    let client_ns = Netns::new(&format!("d6{tag}c"));
    let veth = Veth::new(&server_ns, &client_ns);
    client_ns.exec(&["ethtool", "-K", veth.b(), "tx", "off"]);
    client_ns.exec(&["ethtool", "-K", veth.b(), "gro", gro]);
    let scratch = Scratch::new(&format!("fastpath{tag}"));
    let dir = bpf_dir(&format!("fp{tag}"));
    let server = Dhcp6d::start_pinned(&server_ns, &scratch, "srv", &config(veth.a()), &[], Some(dir.clone()));
    let client = Dhclient::start(&client_ns, &scratch, "dhclient", veth.b(), &[]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);

    // T1 4 s, valid 20 s: a Renew lost would end in a Rebind, and three lost in an expiry.
    let renewed = wait_for("three renewals", SECS, || {
        let v = client.values("RENEW6", "new_ip6_address");
        (v.len() >= 3).then_some(v)
    });
    assert!(renewed.iter().all(|a| *a == address), "the same address kept: {renewed:?}");
    assert!(client.values("EXPIRE6", "old_ip6_address").is_empty(), "the lease never expired");
    assert_eq!(replied(&dir), 0, "no Renew counted replied in XDP without reaching the client");
    assert!(server.stat("received", "RENEW") >= 3, "the Renews were answered from userspace");
    let stats = server.show("statistics");
    let off = stats["xdp_tx_off"].as_array().cloned().unwrap_or_default();
    assert!(off.iter().any(|o| o["interface"] == veth.a()), "statistics name the interface: {stats}");
    let log = server.process.log_text();
    let said = format!("renewals on {} are answered from userspace", veth.a());
    assert_eq!(log.matches(&said).count(), 1, "said once: {log}");
}

#[test]
fn renewals_reach_a_peer_without_xdp_or_gro() {
    renewals_reach_a_peer_without_xdp("off", "ng");
}

#[test]
fn renewals_reach_a_peer_with_gro_but_no_xdp() {
    renewals_reach_a_peer_without_xdp("on", "gr");
}

/// As in the lab (`cargo xtask run`): dhcp6d's veth peer is a bridge port, given an XDP
/// program of its own by `dhcp6d xdp pass`; the Replies XDP sends with XDP_TX cross the
/// bridge, and the client's Renews are answered in XDP.
#[test]
fn renewals_across_a_bridge_port_running_xdp_pass_are_answered_in_xdp() {
    let server_ns = Netns::new("d6bs");
    let switch_ns = Netns::new("d6bw");
    let client_ns = Netns::new("d6bc");
    let port_srv = Veth::new(&server_ns, &switch_ns);
    let port_cli = Veth::new(&client_ns, &switch_ns);
    switch_ns.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
    switch_ns.exec(&["ip", "link", "set", "br0", "up"]);
    for port in [port_srv.b(), port_cli.b()] {
        switch_ns.exec(&["ip", "link", "set", port, "master", "br0"]);
    }
    client_ns.exec(&["ethtool", "-K", port_cli.a(), "tx", "off"]);
    let scratch = Scratch::new("fastpathbridge");
    let binary = dhcp6_tests::peers::dhcp6d_binary();
    let pass_log = scratch.path("pass.log");
    let _pass = switch_ns.spawn(&[binary.to_str().unwrap(), "xdp", "pass", "--interface", port_srv.b()], &pass_log);
    wait_for("XDP on the bridge port", SECS, || {
        let out = switch_ns.exec(&["ip", "-d", "link", "show", port_srv.b()]);
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp").then_some(())
    });
    let dir = bpf_dir("fpbr");
    let server = Dhcp6d::start_pinned(&server_ns, &scratch, "srv", &config(port_srv.a()), &[], Some(dir.clone()));
    let client = Dhclient::start(&client_ns, &scratch, "dhclient", port_cli.a(), &[]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    let renewed = wait_for("two renewals", SECS, || {
        let v = client.values("RENEW6", "new_ip6_address");
        (v.len() >= 2).then_some(v)
    });
    assert!(renewed.iter().all(|a| *a == address), "the same address kept: {renewed:?}");
    assert!(replied(&dir) >= 2, "answered in XDP");
    assert_eq!(server.stat("received", "RENEW"), 0, "no Renew came up to userspace");
    let stats = server.show("statistics");
    assert_eq!(stats["xdp_tx_off"].as_array().map(Vec::len), Some(0), "{stats}");
}

/// A lease map smaller than the bindings: it fills, and the bindings past it are left to
/// userspace by the engine (said in the log), not handed to the map to refuse one by one;
/// every client still gets its lease.
#[test]
fn a_full_lease_map_leaves_the_bindings_past_it_to_userspace() {
    let server_ns = Netns::new("d6fs");
    let client_ns = Netns::new("d6fc");
    let veth = Veth::new(&server_ns, &client_ns);
    let scratch = Scratch::new("fastpathfull");
    let config = format!(
        r#"[server]
fast_path_bindings = 1024

[[subnet]]
interface = "{}"
prefix = "2001:db8:1::/64"
ranges = [{{ low = "2001:db8:1::1:0", high = "2001:db8:1::1:ffff" }}]
"#,
        veth.a()
    );
    let server = Dhcp6d::start(&server_ns, &scratch, "srv", &config, &[]);
    let load = dhcp6_load_binary();
    let out = client_ns.exec(&[load.to_str().unwrap(), "-i", veth.b(), "-r", "500", "-s", "3"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "dhcp6-load: {text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("completed 1500 "), "every exchange completed: {text}");
    assert_eq!(server.bound().len(), 1500, "every client holds its lease");

    let dir = server.bpf_dir.clone().expect("pinned");
    let entries = bpftool_dump(&dir.join(PIN_LAYOUT).join("LEASES")).as_array().map_or(0, Vec::len);
    assert_eq!(entries, 1024, "the map is full, and holds no more");
    let log = server.process.log_text();
    assert!(log.contains("the fast path's lease map is full"), "said: {log}");
    assert!(!log.contains("could not be written"), "no write was handed to the map to refuse: {log}");
}
