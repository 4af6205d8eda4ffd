//! A failover pair (RFC 8156) with XDP on both servers: the primary's XDP answers the client's
//! Renews, the renewals it answers reach the secondary (its expiry of the binding moves
//! forward), and the secondary in NORMAL answers nothing, in XDP or otherwise.
//!
//! The client link is a bridge; each server's bridge port runs `dhcp6d xdp pass`, so that the
//! Replies the servers' XDP sends with XDP_TX cross it (a veth passes on its peer's XDP_TX
//! frames only when it runs an XDP program itself).

use std::time::Duration;

use dhcp6_tests::{
    netns::{Netns, Veth},
    peers::{dhcp6d_binary, wait_for, Dhclient, Dhcp6d, Scratch},
};

const SECS: Duration = Duration::from_secs(30);

/// A server of the pair on the client link `interface`; the primary is 2001:db8:ff::1 on the
/// servers' link, the secondary ::2. Renewals every 3 s. The valid lifetime (40 s) is above
/// the MCLT (30 s): XDP may answer a binding only once the partner has acknowledged it. A
/// binding granted before that was told the MCLT and made durable for it plus the horizon
/// (16 s), so that, acknowledged, XDP may answer its renewals up to 6 s after the grant
/// (46 s less the 40 s it tells), and moves on from there as the renewals are recorded.
fn config(interface: &str, primary: bool) -> String {
    let (role, local, partner) = if primary {
        ("primary", "2001:db8:ff::1", "2001:db8:ff::2")
    } else {
        ("secondary", "2001:db8:ff::2", "2001:db8:ff::1")
    };
    format!(
        r#"[server]
renewal_horizon = 16
preferred_lifetime = 30
valid_lifetime = 40
t1 = 3
t2 = 30

[[subnet]]
interface = "{interface}"
prefix = "2001:db8:1::/64"
ranges = [{{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }}]

[failover]
role = "{role}"
local = "[{local}]:647"
partner = "[{partner}]:647"
mclt = 30
keepalive = 1
"#
    )
}

fn state(server: &Dhcp6d) -> String {
    server.show("failover")["state"].as_str().unwrap_or_default().to_string()
}

/// The expiry `server` holds for `address`, if it holds it.
fn expiry(server: &Dhcp6d, address: &str) -> Option<u64> {
    let bindings = server.show("bindings");
    let lease = bindings.as_array()?.iter().find(|l| l["resource"] == format!("{address}/128"))?.clone();
    lease["expires"].as_u64()
}

#[test]
fn the_primarys_xdp_answers_renewals_that_reach_the_secondary() {
    let primary_ns = Netns::new("d6xp");
    let secondary_ns = Netns::new("d6xs");
    let client_ns = Netns::new("d6xc");
    let switch_ns = Netns::new("d6xw");
    let p_port = Veth::new(&primary_ns, &switch_ns);
    let s_port = Veth::new(&secondary_ns, &switch_ns);
    let c_port = Veth::new(&client_ns, &switch_ns);
    switch_ns.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
    switch_ns.exec(&["ip", "link", "set", "br0", "up"]);
    for port in [p_port.b(), s_port.b(), c_port.b()] {
        switch_ns.exec(&["ip", "link", "set", port, "master", "br0"]);
    }
    // A NIC delivers checksums whole, which XDP checks; a veth sender leaves them to offload.
    client_ns.exec(&["ethtool", "-K", c_port.a(), "tx", "off"]);
    let between = Veth::new(&primary_ns, &secondary_ns);
    primary_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::1/64", "dev", between.a(), "nodad"]);
    secondary_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::2/64", "dev", between.b(), "nodad"]);

    let scratch = Scratch::new("failover-xdp");
    let binary = dhcp6d_binary();
    let _passes: Vec<_> = [p_port.b(), s_port.b()]
        .into_iter()
        .map(|port| {
            let log = scratch.path(&format!("pass-{port}.log"));
            let pass = switch_ns.spawn(&[binary.to_str().unwrap(), "xdp", "pass", "--interface", port], &log);
            wait_for(&format!("XDP on bridge port {port}"), SECS, || {
                let out = switch_ns.exec(&["ip", "-d", "link", "show", port]);
                String::from_utf8_lossy(&out.stdout).contains("prog/xdp").then_some(())
            });
            pass
        })
        .collect();

    let secondary = Dhcp6d::start(&secondary_ns, &scratch, "fxsec", &config(s_port.a(), false), &[]);
    let primary = Dhcp6d::start(&primary_ns, &scratch, "fxpri", &config(p_port.a(), true), &[]);
    for server in [&primary, &secondary] {
        wait_for("the pair in NORMAL", SECS, || (state(server) == "NORMAL").then_some(()));
    }

    let client = Dhclient::start(&client_ns, &scratch, "client", c_port.a(), &[]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    let replicated = wait_for("the secondary to hold the binding", SECS, || expiry(&secondary, &address));

    // The Renews (T1 3 s) are answered in the primary's XDP; none comes up to its userspace.
    let renewed = wait_for("three renewals", SECS, || {
        let v = client.values("RENEW6", "new_ip6_address");
        (v.len() >= 3).then_some(v)
    });
    assert!(renewed.iter().all(|a| *a == address), "the same address kept: {renewed:?}");
    let xdp = primary.show("statistics")["xdp"].clone();
    assert!(xdp["replied"].as_u64() >= Some(3), "answered in the primary's XDP: {xdp}");
    assert_eq!(primary.stat("received", "RENEW"), 0, "no Renew reached the primary's userspace: {xdp}");

    // The renewals XDP answered reach the secondary: as the binding's deadline nears, the
    // primary records them, and the lease change goes to the partner as a BNDUPD.
    wait_for("the secondary's expiry to move forward", SECS, || {
        (expiry(&secondary, &address)? > replicated).then_some(())
    });

    // The secondary in NORMAL answers nothing: no entry for XDP, no Reply from userspace.
    let xdp = secondary.show("statistics")["xdp"].clone();
    assert_eq!(xdp["replied"].as_u64(), Some(0), "the secondary's XDP answered nothing: {xdp}");
    let stats = secondary.show("statistics");
    assert!(stats["received"]["RENEW"].as_u64() >= Some(3), "XDP handed the Renews up: {stats}");
    assert_eq!(stats["sent"]["REPLY"].as_u64().unwrap_or(0), 0, "the secondary answered nobody: {stats}");
    assert_eq!(state(&secondary), "NORMAL");
}
