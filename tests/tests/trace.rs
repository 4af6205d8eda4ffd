//! `dhcp6d trace` for real: dhcp6d with XDP attached serves two dhclients across a bridge
//! (whose port toward dhcp6d runs `dhcp6d xdp pass`, so that XDP's answers reach the clients);
//! a trace of one client's MAC shows that client's Solicit, Advertise, Request and Reply as
//! dhcp6d handled them, then its Renew taken up and answered in XDP, and nothing of the other
//! client.

use std::{fs, time::Duration};

use dhcp6_tests::{
    netns::{Netns, Veth},
    peers::{bpf_dir, dhcp6d_binary, wait_for, Dhclient, Dhcp6d, Scratch},
};
use serde_json::Value;

const SECS: Duration = Duration::from_secs(40);

fn config(interface: &str) -> String {
    format!(
        r#"[server]
preferred_lifetime = 10
valid_lifetime = 20
t1 = 4
t2 = 8

[[subnet]]
interface = "{interface}"
prefix = "2001:db8:1::/64"
ranges = [{{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }}]
"#
    )
}

/// The MAC of `interface` in `ns`, as `ip` prints it.
fn mac(ns: &Netns, interface: &str) -> String {
    let out = ns.exec(&["ip", "-j", "link", "show", "dev", interface]);
    let links: Value = serde_json::from_slice(&out.stdout).unwrap();
    links[0]["address"].as_str().unwrap().to_string()
}

/// The trace's events so far (its output is a JSON document per line).
fn events(path: &std::path::Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Whether `events` hold one of message `kind` by `by` whose `what` contains `what`.
fn has(events: &[Value], kind: &str, by: &str, what: &str) -> bool {
    events
        .iter()
        .any(|e| e["message"]["type"] == kind && e["by"] == by && e["what"].as_str().is_some_and(|w| w.contains(what)))
}

#[test]
fn a_trace_of_one_client_shows_its_exchange_and_its_renew_answered_in_xdp_and_nothing_of_another() {
    let server_ns = Netns::new("d6ts");
    let switch_ns = Netns::new("d6tw");
    let (a_ns, b_ns) = (Netns::new("d6ta"), Netns::new("d6tb"));
    let port_srv = Veth::new(&server_ns, &switch_ns);
    let port_a = Veth::new(&a_ns, &switch_ns);
    let port_b = Veth::new(&b_ns, &switch_ns);
    switch_ns.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
    switch_ns.exec(&["ip", "link", "set", "br0", "up"]);
    for port in [port_srv.b(), port_a.b(), port_b.b()] {
        switch_ns.exec(&["ip", "link", "set", port, "master", "br0"]);
    }
    a_ns.exec(&["ethtool", "-K", port_a.a(), "tx", "off"]);
    b_ns.exec(&["ethtool", "-K", port_b.a(), "tx", "off"]);
    let scratch = Scratch::new("trace");
    let binary = dhcp6d_binary();
    let binary = binary.to_str().unwrap();
    let _pass = switch_ns.spawn(&[binary, "xdp", "pass", "--interface", port_srv.b()], &scratch.path("pass.log"));
    wait_for("XDP on the bridge port", SECS, || {
        let out = switch_ns.exec(&["ip", "-d", "link", "show", port_srv.b()]);
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp").then_some(())
    });
    let server = Dhcp6d::start_pinned(&server_ns, &scratch, "srv", &config(port_srv.a()), &[], Some(bpf_dir("trace")));

    let a_mac = mac(&a_ns, port_a.a());
    let b_mac = mac(&b_ns, port_b.a());
    let out = scratch.path("trace.jsonl");
    let socket = server.socket.to_str().unwrap().to_string();
    let _trace = server_ns.spawn(&[binary, "trace", "--client", &a_mac, "--json", "--socket", &socket], &out);
    wait_for("the trace to start", SECS, || server.process.log_text().contains("trace started").then_some(()));

    let a = Dhclient::start(&a_ns, &scratch, "a", port_a.a(), &[]);
    let b = Dhclient::start(&b_ns, &scratch, "b", port_b.a(), &[]);
    a.wait_event("BOUND6", "new_ip6_address", SECS);
    b.wait_event("BOUND6", "new_ip6_address", SECS);
    a.wait_event("RENEW6", "new_ip6_address", SECS);

    let seen = wait_for("the trace to show a's Renew answered in XDP", SECS, || {
        let e = events(&out);
        (has(&e, "RENEW", "xdp", "taken up by XDP's fast path") && has(&e, "REPLY", "xdp", "answered in XDP"))
            .then_some(e)
    });
    assert!(has(&seen, "SOLICIT", "dhcp6d", "answered by dhcp6d"), "{seen:#?}");
    assert!(has(&seen, "ADVERTISE", "dhcp6d", "sent by dhcp6d"), "{seen:#?}");
    assert!(has(&seen, "REQUEST", "dhcp6d", "answered by dhcp6d"), "{seen:#?}");
    assert!(has(&seen, "REPLY", "dhcp6d", "sent by dhcp6d once its leases are on disk"), "{seen:#?}");
    // XDP passed the Solicit up to dhcp6d's AF_XDP socket, and said so.
    assert!(has(&seen, "SOLICIT", "xdp", "passed up to dhcp6d"), "{seen:#?}");

    // Everything traced is a's: its DUID (from its Solicit) on every message, its MAC on
    // every frame; nothing of b's.
    let duid = seen.iter().find(|e| e["message"]["type"] == "SOLICIT").unwrap()["message"]["client"].clone();
    for e in &seen {
        assert_eq!(e["message"]["client"], duid, "only a's messages: {e}");
        assert_ne!(e["mac"].as_str(), Some(b_mac.as_str()), "nothing of b: {e}");
        if let Some(m) = e["mac"].as_str() {
            assert_eq!(m, a_mac, "{e}");
        }
    }
}
