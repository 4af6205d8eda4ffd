//! Relay dual-device hot standby with real keepalived: two dhcp6d relays on one access bridge,
//! each with keepalived (VRRPv3, advert_int 0.5) for the access interface, one dhcp6d server
//! upstream, dhclient clients (IA_NA + IA_PD, short T1). The master relays and backs its
//! entries up; the backup holds them with PD routes at the degraded metric; when the master's
//! dhcp6d and keepalived die (kill -9), the backup takes over and relays the next Renew and a
//! new client's Solicit, with no entry lost.

use std::{fs, time::Duration};

use dhcp6_tests::{
    netns::{Netns, Process, Veth},
    peers::{wait_for, Dhclient, Dhcp6d, Scratch},
};
use serde_json::Value;

const SECS: Duration = Duration::from_secs(30);

/// The server: short lifetimes, so that clients renew every few seconds (T1 4 s).
const SERVER: &str = r#"[server]
preferred_lifetime = 10
valid_lifetime = 20
t1 = 4
t2 = 6

[[subnet]]
prefix = "2001:db8:2::/64"
ranges = [{ low = "2001:db8:2::100", high = "2001:db8:2::1ff" }]

[[subnet.pd_pool]]
prefix = "2001:db8:9000::/40"
delegated_length = 60
"#;

/// The relays' first virtual address: link-local, as VRRPv3 for IPv6 wants it.
const VIP: &str = "fe80::61";

fn relay_config(access: &str, source: &str, peer: &str, fifo: &str) -> String {
    format!(
        r#"[server]

[relay]
[[relay.group]]
name = "core"
servers = ["2001:db8:ff::1"]

[[relay.interface]]
name = "{access}"
group = "core"
link_address = "2001:db8:2::1"

[relay.standby]
notify_fifo = "{fifo}"

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
degrade_metric = 100
virtual_address = "{VIP}"
"#
    )
}

/// keepalived for the access interface, in the foreground, with its own pid files, writing
/// its notices to `fifo`.
fn keepalived(ns: &Netns, scratch: &Scratch, name: &str, interface: &str, priority: u8, fifo: &str) -> Process {
    let conf = format!(
        r#"global_defs {{
    vrrp_version 3
    vrrp_notify_fifo {fifo}
}}
vrrp_instance RELAY6 {{
    state BACKUP
    interface {interface}
    virtual_router_id 61
    priority {priority}
    advert_int 0.5
    virtual_ipaddress {{
        {VIP}/64
    }}
}}
"#
    );
    let path = scratch.path(&format!("{name}.conf"));
    fs::write(&path, conf).unwrap();
    let pid = scratch.path(&format!("{name}.pid"));
    let vrrp_pid = scratch.path(&format!("{name}-vrrp.pid"));
    ns.spawn(
        &[
            "keepalived",
            "-n",
            "-l",
            "-D",
            "-P",
            "-f",
            path.to_str().unwrap(),
            "-p",
            pid.to_str().unwrap(),
            "-r",
            vrrp_pid.to_str().unwrap(),
        ],
        &scratch.path(&format!("{name}.log")),
    )
}

/// A relay's standby profile, as `show relay standby` says.
fn profile(relay: &Dhcp6d) -> Value {
    relay.show("relay standby")["profiles"][0].clone()
}

fn resources(users: &Value) -> Vec<String> {
    let mut r: Vec<String> =
        users.as_array().unwrap().iter().map(|u| u["resource"].as_str().unwrap().to_string()).collect();
    r.sort();
    r
}

fn routes(ns: &Netns) -> String {
    String::from_utf8_lossy(&ns.exec(&["ip", "-6", "route", "show", "proto", "200"]).stdout).into_owned()
}

#[test]
fn the_backup_relay_holds_the_masters_entries_and_takes_over_when_it_dies() {
    let scratch = Scratch::new("d6standby");
    let switch = Netns::new("d6sw");
    let server_ns = Netns::new("d6s");
    let a_ns = Netns::new("d6ra");
    let b_ns = Netns::new("d6rb");
    let c1_ns = Netns::new("d6c1");
    let c2_ns = Netns::new("d6c2");
    for bridge in ["br-up", "br-access"] {
        switch.exec(&["ip", "link", "add", bridge, "type", "bridge"]);
        switch.exec(&["ip", "link", "set", "dev", bridge, "up"]);
    }
    let plug = |ns: &Netns, bridge: &str| {
        let v = Veth::new(ns, &switch);
        switch.exec(&["ip", "link", "set", v.b(), "master", bridge]);
        v
    };
    let s_up = plug(&server_ns, "br-up");
    let a_up = plug(&a_ns, "br-up");
    let b_up = plug(&b_ns, "br-up");
    let a_access = plug(&a_ns, "br-access");
    let b_access = plug(&b_ns, "br-access");
    let c1 = plug(&c1_ns, "br-access");
    let c2 = plug(&c2_ns, "br-access");
    server_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::1/64", "dev", s_up.a(), "nodad"]);
    a_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::a/64", "dev", a_up.a(), "nodad"]);
    b_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::b/64", "dev", b_up.a(), "nodad"]);
    a_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:2::a/64", "dev", a_access.a(), "nodad"]);
    b_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:2::b/64", "dev", b_access.a(), "nodad"]);

    let server = Dhcp6d::start(&server_ns, &scratch, "srv", SERVER, &["--no-xdp"]);
    let fifo = |name: &str| scratch.path(&format!("{name}.fifo")).display().to_string();
    let (a_fifo, b_fifo) = (fifo("ka"), fifo("kb"));
    let a_config = relay_config(a_access.a(), "2001:db8:ff::a", "2001:db8:ff::b", &a_fifo);
    let b_config = relay_config(b_access.a(), "2001:db8:ff::b", "2001:db8:ff::a", &b_fifo);
    let relay_a = Dhcp6d::start(&a_ns, &scratch, "ra", &a_config, &["--no-xdp"]);
    let relay_b = Dhcp6d::start(&b_ns, &scratch, "rb", &b_config, &["--no-xdp"]);
    let keepalived_a = keepalived(&a_ns, &scratch, "ka", a_access.a(), 200, &a_fifo);
    let _keepalived_b = keepalived(&b_ns, &scratch, "kb", b_access.a(), 100, &b_fifo);

    // Roles settle: a master (the higher priority), b backup; the backup link is up.
    let log = |r: &Dhcp6d, k: &str| {
        format!(
            "{}\nkeepalived:\n{}",
            r.process.log_text(),
            fs::read_to_string(scratch.path(&format!("{k}.log"))).unwrap_or_default()
        )
    };
    wait_for("relay a to be master", SECS, || (profile(&relay_a)["role"] == "master").then_some(()));
    wait_for("relay b to be backup", SECS, || (profile(&relay_b)["role"] == "backup").then_some(()));
    wait_for("the backup link", SECS, || {
        relay_b.show("relay standby")["services"][0]["connected"].as_bool().filter(|c| *c)
    });
    // The kernel confirms it: the virtual address is on the master's access interface.
    wait_for("the virtual address on the master", SECS, || {
        (profile(&relay_a)["virtual_address_present"] == true).then_some(())
    });

    // A client binds through the master; the backup lists its entries within a second.
    let client1 = Dhclient::start(&c1_ns, &scratch, "c1", c1.a(), &["-N", "-P"]);
    let prefix = client1.wait_event("BOUND6", "new_ip6_prefix", SECS);
    let on_a = wait_for("the master's two entries", SECS, || {
        relay_a.try_show("relay users").filter(|u| u.as_array().map_or(0, Vec::len) == 2)
    });
    let listed = wait_for("the backup's copy", Duration::from_millis(1500), || {
        relay_b.try_show("relay users").filter(|u| resources(u) == resources(&on_a))
    });
    assert_eq!(resources(&listed), resources(&on_a));
    // The backup routes the prefix at the degraded metric, the master at the normal one.
    let degraded =
        wait_for("the backup's degraded route", SECS, || Some(routes(&b_ns)).filter(|r| r.contains(&prefix)));
    assert!(degraded.contains("metric 1124"), "{degraded}");
    assert!(routes(&a_ns).contains("metric 1024"), "{}", routes(&a_ns));
    // The backup left the client's messages to the master.
    assert!(relay_b.show("relay servers")["stats"]["dropped"]["standby"].as_u64() >= Some(1));
    assert_eq!(relay_b.show("relay servers")["stats"]["forwarded"], 0);

    // The master dies: its dhcp6d and keepalived are killed.
    relay_a.process.signal(libc::SIGKILL);
    keepalived_a.signal(libc::SIGKILL);
    let renewals_before = client1.values("RENEW6", "new_ip6_prefix").len();
    wait_for("relay b to become master", SECS, || (profile(&relay_b)["role"] == "master").then_some(()));
    let normal = wait_for("the new master's normal route", SECS, || {
        Some(routes(&b_ns)).filter(|r| r.contains(&prefix) && r.contains("metric 1024"))
    });
    assert!(!normal.contains("metric 1124"), "the degraded route is gone: {normal}");
    // The client's next Renew, and a new client's Solicit, are relayed by the new master.
    wait_for("a renewal through the new master", SECS, || {
        (client1.values("RENEW6", "new_ip6_prefix").len() > renewals_before).then_some(())
    });
    let client2 = Dhclient::start(&c2_ns, &scratch, "c2", c2.a(), &["-N", "-P"]);
    let prefix2 = client2.wait_event("BOUND6", "new_ip6_prefix", SECS);
    let users = wait_for("four entries on the new master", SECS, || {
        relay_b.try_show("relay users").filter(|u| u.as_array().map_or(0, Vec::len) == 4)
    });
    let all = resources(&users);
    assert!(all.contains(&prefix) && all.contains(&prefix2), "no entry lost: {users}");
    assert!(relay_b.show("relay servers")["stats"]["forwarded"].as_u64() >= Some(2), "{}", log(&relay_b, "kb"));
    assert!(server.stat("received", "RELAY-FORW") >= 4);
}
