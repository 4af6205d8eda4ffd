//! Two dhcp6d servers as one failover pair (RFC 8156), with real clients: the pair forms and
//! reaches NORMAL, a binding made by the primary reaches the secondary, the secondary takes
//! over when the primary dies, answers the first client's Rebind with the same address and
//! prefix, and the pair comes back to NORMAL when the primary returns. Split brain (both serve
//! from their own half, and agree on every binding once the link heals), the operator's
//! partner-down and the MCLT it waits, restarts in NORMAL, COMMUNICATIONS-INTERRUPTED and
//! PARTNER-DOWN, seed 003's migration of two servers that each served half of a /64, and the
//! pair behind ISC dhcrelay and behind a dhcp6d relay sending to both.

use std::{
    collections::BTreeMap,
    process::Command,
    time::{Duration, Instant},
};

use dhcp6_tests::{
    client::{client_duid, TestClient},
    netns::{Netns, Veth},
    peers::{dhcp6d_binary, wait_for, Dhclient, Dhcp6d, Scratch},
};
use serde_json::Value;

const SECS: Duration = Duration::from_secs(30);

/// The `[server]` table of a server of the pair, then its `subnets`, then its `[failover]`
/// table: it reaches its partner over the 2001:db8:ff::/64 link, the primary ::1, the
/// secondary ::2. Short lifetimes so that clients renew and rebind within a test.
fn pair_config(subnets: &str, primary: bool, mclt: u32) -> String {
    let (role, local, partner) = if primary {
        ("primary", "2001:db8:ff::1", "2001:db8:ff::2")
    } else {
        ("secondary", "2001:db8:ff::2", "2001:db8:ff::1")
    };
    format!(
        r#"[server]
preferred_lifetime = 20
valid_lifetime = 30
t1 = 3
t2 = 5

{subnets}
[failover]
role = "{role}"
local = "[{local}]:647"
partner = "[{partner}]:647"
mclt = {mclt}
keepalive = 1
"#
    )
}

/// The subnet `net`::/64 (2001:db8:1 for the client link, on `interface`; 2001:db8:2 for the
/// relayed link, with none: matched by the relay's link-address): addresses ::100-::1ff (the
/// primary owns ::100-::17f, the secondary ::180-::1ff) and /56 prefixes of 2001:db8:8000::/48
/// (the primary the lower /49).
fn subnet(interface: Option<&str>, net: &str) -> String {
    let interface = interface.map(|i| format!("interface = \"{i}\"\n")).unwrap_or_default();
    format!(
        r#"[[subnet]]
{interface}prefix = "{net}::/64"
ranges = [{{ low = "{net}::100", high = "{net}::1ff" }}]

[[subnet.pd_pool]]
prefix = "2001:db8:8000::/40"
delegated_length = 56
ranges = ["2001:db8:8000::/48"]
"#
    )
}

/// A server of the pair on the client link `interface`, with an MCLT of 30 s.
fn config(interface: &str, primary: bool) -> String {
    pair_config(&subnet(Some(interface), "2001:db8:1"), primary, 30)
}

/// The primary (in `primary_ns`) or the secondary with `config`; a restart keeps its state
/// folder.
fn start_member(primary_ns: &Netns, secondary_ns: &Netns, scratch: &Scratch, primary: bool, config: &str) -> Dhcp6d {
    match primary {
        true => Dhcp6d::start(primary_ns, scratch, "primary", config, &["--no-xdp"]),
        false => Dhcp6d::start(secondary_ns, scratch, "secondary", config, &["--no-xdp"]),
    }
}

/// A host on a bridge: its namespace and its port.
struct Host {
    ns: Netns,
    port: Veth,
}

impl Host {
    /// A new host named `prefix` on `switch`'s br0.
    fn on(switch: &Netns, prefix: &str) -> Host {
        let ns = Netns::new(prefix);
        let port = Veth::new(&ns, switch);
        switch.exec(&["ip", "link", "set", port.b(), "master", "br0"]);
        Host { ns, port }
    }

    /// `dhclient -6 FLAGS` on the host (one per host: dhclients on one interface would
    /// share port 546).
    fn dhclient(&self, scratch: &Scratch, name: &str, flags: &[&str]) -> Dhclient {
        Dhclient::start(&self.ns, scratch, name, self.port.a(), flags)
    }
}

/// A namespace holding a bridge, br0.
fn switch(prefix: &str) -> Netns {
    let switch = Netns::new(prefix);
    switch.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
    switch.exec(&["ip", "link", "set", "br0", "up"]);
    switch
}

/// The servers' own link: the primary 2001:db8:ff::1, the secondary ::2, addresses kept while
/// the link is down (so that it can be cut and healed).
fn servers_link(primary_ns: &Netns, secondary_ns: &Netns) -> Veth {
    let between = Veth::new(primary_ns, secondary_ns);
    for (ns, end) in [(primary_ns, between.a()), (secondary_ns, between.b())] {
        ns.exec(&["sysctl", "-qw", &format!("net.ipv6.conf.{end}.keep_addr_on_down=1")]);
    }
    address_servers_link(primary_ns, secondary_ns, &between);
    between
}

fn address_servers_link(primary_ns: &Netns, secondary_ns: &Netns, between: &Veth) {
    primary_ns.exec(&["ip", "-6", "addr", "replace", "2001:db8:ff::1/64", "dev", between.a(), "nodad"]);
    secondary_ns.exec(&["ip", "-6", "addr", "replace", "2001:db8:ff::2/64", "dev", between.b(), "nodad"]);
}

/// The client link (a bridge in its own namespace) with both servers and a client on it, and
/// the servers' own link.
struct Lab {
    primary_ns: Netns,
    secondary_ns: Netns,
    client_ns: Netns,
    /// A second client host: two dhclients on one interface would share port 546.
    other_ns: Netns,
    switch_ns: Netns,
    p_port: Veth,
    s_port: Veth,
    c_port: Veth,
    o_port: Veth,
    between: Veth,
}

impl Lab {
    fn new() -> Lab {
        let primary_ns = Netns::new("d6fp");
        let secondary_ns = Netns::new("d6fs");
        let client_ns = Netns::new("d6fc");
        let switch_ns = switch("d6fw");
        let p_port = Veth::new(&primary_ns, &switch_ns);
        let s_port = Veth::new(&secondary_ns, &switch_ns);
        let c_port = Veth::new(&client_ns, &switch_ns);
        let other_ns = Netns::new("d6fo");
        let o_port = Veth::new(&other_ns, &switch_ns);
        for port in [p_port.b(), s_port.b(), c_port.b(), o_port.b()] {
            switch_ns.exec(&["ip", "link", "set", port, "master", "br0"]);
        }
        let between = servers_link(&primary_ns, &secondary_ns);
        Lab { primary_ns, secondary_ns, client_ns, other_ns, switch_ns, p_port, s_port, c_port, o_port, between }
    }

    fn primary(&self, scratch: &Scratch) -> Dhcp6d {
        self.start(scratch, true, &config(self.p_port.a(), true))
    }

    fn secondary(&self, scratch: &Scratch) -> Dhcp6d {
        self.start(scratch, false, &config(self.s_port.a(), false))
    }

    /// The primary or the secondary with `config`.
    fn start(&self, scratch: &Scratch, primary: bool, config: &str) -> Dhcp6d {
        start_member(&self.primary_ns, &self.secondary_ns, scratch, primary, config)
    }

    /// One more client host on the client link.
    fn host(&self, prefix: &str) -> Host {
        Host::on(&self.switch_ns, prefix)
    }

    /// Cuts the servers' link (not the clients').
    fn cut(&self) {
        self.primary_ns.exec(&["ip", "link", "set", self.between.a(), "down"]);
    }

    fn heal(&self) {
        self.primary_ns.exec(&["ip", "link", "set", self.between.a(), "up"]);
        address_servers_link(&self.primary_ns, &self.secondary_ns, &self.between);
    }

    /// Takes a server's port off the client link (`false`) or puts it back.
    fn attach(&self, port: &Veth, on: bool) {
        let master: &[&str] = if on { &["master", "br0"] } else { &["nomaster"] };
        let mut args = vec!["ip", "link", "set", port.b()];
        args.extend_from_slice(master);
        self.switch_ns.exec(&args);
    }
}

fn state(server: &Dhcp6d) -> String {
    server.show("failover")["state"].as_str().unwrap_or_default().to_string()
}

fn wait_state(server: &Dhcp6d, want: &str, timeout: Duration) {
    wait_for(&format!("failover state {want}"), timeout, || (state(server) == want).then_some(()));
}

fn holds(server: &Dhcp6d, resource: &str) -> bool {
    server.bound().iter().any(|(r, _)| r.split('/').next() == resource.split('/').next())
}

/// Every lease a server holds, bound or past its end (not offers): the resource's network
/// (an address without its /128) and the client's DUID.
fn held(server: &Dhcp6d) -> BTreeMap<String, String> {
    let leases = server.show("bindings");
    leases
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["state"] != "offered")
        .map(|l| {
            let resource = l["resource"].as_str().unwrap();
            (resource.trim_end_matches("/128").to_string(), l["duid"].as_str().unwrap().to_string())
        })
        .collect()
}

/// Waits until both servers hold the same leases, every one of `resources` among them: then
/// no address or prefix is held by two clients across the pair (each server holds a resource
/// once, and both name the same client for it).
fn wait_agreed(primary: &Dhcp6d, secondary: &Dhcp6d, resources: &[&str]) -> BTreeMap<String, String> {
    wait_for("both servers to hold the same bindings", SECS, || {
        let (p, s) = (held(primary), held(secondary));
        (p == s && resources.iter().all(|r| p.contains_key(r.trim_end_matches("/128")))).then_some(p)
    })
}

/// The address and prefix a dhclient event gave.
fn granted(client: &Dhclient, reason: &str) -> (String, String) {
    let address = client.wait_event(reason, "new_ip6_address", SECS);
    let prefix = client.wait_event(reason, "new_ip6_prefix", SECS);
    (address, prefix)
}

fn in_upper_half(address: &str) -> bool {
    // The pool ::100-::1ff: the primary owns ::100-::17f, the secondary ::180-::1ff.
    let a: std::net::Ipv6Addr = address.parse().unwrap();
    (u128::from(a) & 0xffff) >= 0x180
}

/// Whether a /56 of 2001:db8:8000::/48 is in its upper /49, the secondary's.
fn prefix_in_upper_half(prefix: &str) -> bool {
    let network: std::net::Ipv6Addr = prefix.split('/').next().unwrap().parse().unwrap();
    network.segments()[3] >= 0x8000
}

/// The first client's Rebind (T2 5 s) answered with the same address and prefix (dhclient
/// reports each in an event of its own).
fn assert_rebound(client: &Dhclient, address: &str, prefix: &str) {
    let rebound = |key: &str| {
        wait_for(&format!("the first client to rebind its {key}"), SECS, || {
            client
                .events()
                .into_iter()
                .find(|(r, v)| r == "REBIND6" && v.contains_key(key))
                .map(|(_, v)| v[key].clone())
        })
    };
    assert_eq!(rebound("new_ip6_address"), address);
    assert_eq!(rebound("new_ip6_prefix"), prefix);
}

/// `dhcp6d failover partner-down` through the real CLI: what it printed, or its error.
fn partner_down(server: &Dhcp6d) -> Result<String, String> {
    let out = Command::new(dhcp6d_binary())
        .args(["failover", "partner-down", "--socket"])
        .arg(&server.socket)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// Kills a server as a crash would (SIGKILL), and waits for it to be gone.
fn crash(mut server: Dhcp6d) {
    server.process.signal(libc::SIGKILL);
    let _ = server.process.wait();
}

#[test]
fn a_pair_forms_replicates_takes_over_and_recovers() {
    let lab = Lab::new();
    let scratch = Scratch::new("failover-pair");
    let secondary = lab.secondary(&scratch);
    let mut primary = lab.primary(&scratch);
    wait_state(&primary, "NORMAL", SECS);
    wait_state(&secondary, "NORMAL", SECS);
    assert_eq!(secondary.show("failover")["partner_state"], "NORMAL");

    // A client binds through the primary; the secondary lists the binding within a second.
    let first = Dhclient::start(&lab.client_ns, &scratch, "first", lab.c_port.a(), &["-N", "-P"]);
    let (address, prefix) = granted(&first, "BOUND6");
    assert!(!in_upper_half(&address), "the primary gives from its own half: {address}");
    let bound_at = Instant::now();
    wait_for("the secondary to hold the binding", SECS, || {
        (holds(&secondary, &address) && holds(&secondary, &prefix)).then_some(())
    });
    assert!(bound_at.elapsed() < Duration::from_secs(1), "replicated in {:?}", bound_at.elapsed());
    assert_eq!(secondary.stat("sent", "REPLY"), 0, "the secondary answered nobody in NORMAL");
    let sent = primary.show("failover");
    assert!(sent["bindings_sent"].as_u64().unwrap() >= 2, "{sent}");

    // kill -9 the primary: the secondary serves a new client from its own half. (How soon is
    // the takeover figure of `cargo xtask bench --only failover`, not a timed test.)
    primary.process.signal(libc::SIGKILL);
    let _ = primary.process.wait();
    wait_state(&secondary, "COMMUNICATIONS-INTERRUPTED", SECS);
    let second = Dhclient::start(&lab.other_ns, &scratch, "second", lab.o_port.a(), &["-N"]);
    let new_address = second.wait_event("BOUND6", "new_ip6_address", SECS);
    assert!(in_upper_half(&new_address), "the secondary gives from its own half: {new_address}");
    // The first client's Rebind is answered by the secondary with the same address and prefix.
    assert_rebound(&first, &address, &prefix);
    assert!(secondary.stat("received", "REBIND") >= 1);

    // The primary returns: both back in NORMAL, both hold every binding.
    drop(primary);
    primary = lab.primary(&scratch);
    wait_state(&primary, "NORMAL", Duration::from_secs(60));
    wait_state(&secondary, "NORMAL", SECS);
    for resource in [&address, &prefix, &new_address] {
        wait_for(&format!("both to hold {resource}"), SECS, || {
            (holds(&primary, resource) && holds(&secondary, resource)).then_some(())
        });
    }
}

#[test]
fn a_connection_from_another_address_is_refused_and_counted() {
    let lab = Lab::new();
    let scratch = Scratch::new("failover-forged");
    let secondary = lab.secondary(&scratch);
    // From the primary's namespace but another address of its link.
    lab.primary_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::99/64", "dev", lab.between.a(), "nodad"]);
    // bash's /dev/tcp connects from the route's source; bind that source by asking for it.
    lab.primary_ns.exec(&[
        "ip",
        "-6",
        "route",
        "replace",
        "2001:db8:ff::2/128",
        "dev",
        lab.between.a(),
        "src",
        "2001:db8:ff::99",
    ]);
    let _ = lab.primary_ns.exec_status(&["bash", "-c", "exec 3<>/dev/tcp/2001:db8:ff::2/647; sleep 0.5"]);
    wait_for("the refusal to be counted", SECS, || {
        let f: Value = secondary.show("failover");
        (f["refused_connections"].as_u64() >= Some(1)).then_some(())
    });
    let f = secondary.show("failover");
    assert_eq!(f["connected"], false, "{f}");
    assert_eq!(f["bindings_received"], 0, "{f}");
}

/// A self-signed certificate and its key (PEM), made with openssl, in `dir`.
fn certificate(dir: &std::path::Path, name: &str) -> (String, String) {
    let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={name}"), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (Debian's openssl package)");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    (cert.display().to_string(), key.display().to_string())
}

fn with_tls(config: String, own: &(String, String), partner: &str) -> String {
    format!(
        "{config}\n[failover.tls]\ncertificate = {:?}\nkey = {:?}\npartner_certificate = {partner:?}\n",
        own.0, own.1
    )
}

#[test]
fn over_tls_the_pair_forms_with_pinned_certificates_and_refuses_another() {
    let lab = Lab::new();
    let scratch = Scratch::new("failover-tls");
    let dir = scratch.path("certs");
    std::fs::create_dir_all(&dir).unwrap();
    let (p, s, stranger) =
        (certificate(&dir, "primary"), certificate(&dir, "secondary"), certificate(&dir, "stranger"));
    let secondary_config = with_tls(config(lab.s_port.a(), false), &s, &p.0);
    let secondary = Dhcp6d::start(&lab.secondary_ns, &scratch, "secondary", &secondary_config, &["--no-xdp"]);
    // A primary whose certificate is not the pinned one gets nowhere.
    let impostor_config = with_tls(config(lab.p_port.a(), true), &stranger, &s.0);
    let impostor = Dhcp6d::start(&lab.primary_ns, &scratch, "impostor", &impostor_config, &["--no-xdp"]);
    wait_for("the refused handshake to be counted", SECS, || {
        (secondary.show("failover")["tls_failed"].as_u64() >= Some(1)).then_some(())
    });
    assert_eq!(secondary.show("failover")["connected"], false);
    // With TLS 1.3 the client's handshake ends before the server checks its certificate:
    // the impostor learns of the refusal when the connection closes, and never connects.
    assert_eq!(impostor.show("failover")["connected"], false);
    drop(impostor);
    // The real primary: the pair forms and replicates over TLS.
    let primary_config = with_tls(config(lab.p_port.a(), true), &p, &s.0);
    let primary = Dhcp6d::start(&lab.primary_ns, &scratch, "primary", &primary_config, &["--no-xdp"]);
    wait_state(&primary, "NORMAL", SECS);
    wait_state(&secondary, "NORMAL", SECS);
    let client = Dhclient::start(&lab.client_ns, &scratch, "client", lab.c_port.a(), &["-N"]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    wait_for("the secondary to hold the binding", SECS, || holds(&secondary, &address).then_some(()));
}

/// Split brain: the servers' link is cut, not the clients'. Both go to
/// COMMUNICATIONS-INTERRUPTED and serve new clients, each from its own half (each alone on the
/// client link for one client, then both answering one); once the link heals both are NORMAL
/// again and hold the same bindings, no address or prefix given to two clients.
#[test]
fn split_brain_both_serve_from_their_own_half_and_agree_once_healed() {
    let lab = Lab::new();
    let scratch = Scratch::new("failover-split");
    let secondary = lab.secondary(&scratch);
    let primary = lab.primary(&scratch);
    wait_state(&primary, "NORMAL", SECS);
    wait_state(&secondary, "NORMAL", SECS);
    let first = Dhclient::start(&lab.client_ns, &scratch, "first", lab.c_port.a(), &["-N", "-P"]);
    let (address, prefix) = granted(&first, "BOUND6");
    assert!(!in_upper_half(&address) && !prefix_in_upper_half(&prefix), "{address} {prefix}");

    lab.cut();
    wait_state(&primary, "COMMUNICATIONS-INTERRUPTED", SECS);
    wait_state(&secondary, "COMMUNICATIONS-INTERRUPTED", SECS);

    // The secondary alone on the client link: a new client gets its half.
    lab.attach(&lab.p_port, false);
    let second = Dhclient::start(&lab.other_ns, &scratch, "second", lab.o_port.a(), &["-N", "-P"]);
    let (second_address, second_prefix) = granted(&second, "BOUND6");
    assert!(in_upper_half(&second_address), "{second_address}");
    assert!(prefix_in_upper_half(&second_prefix), "{second_prefix}");
    lab.attach(&lab.p_port, true);
    // The primary alone: a third client gets the lower half.
    lab.attach(&lab.s_port, false);
    let third_host = lab.host("d6ft");
    let third = third_host.dhclient(&scratch, "third", &["-N", "-P"]);
    let (third_address, third_prefix) = granted(&third, "BOUND6");
    assert!(!in_upper_half(&third_address), "{third_address}");
    assert!(!prefix_in_upper_half(&third_prefix), "{third_prefix}");
    lab.attach(&lab.s_port, true);
    // Both on the link: both answer the Solicit, and the client takes one.
    let advertised = (primary.stat("sent", "ADVERTISE"), secondary.stat("sent", "ADVERTISE"));
    let fourth_host = lab.host("d6fu");
    let fourth = fourth_host.dhclient(&scratch, "fourth", &["-N"]);
    let fourth_address = fourth.wait_event("BOUND6", "new_ip6_address", SECS);
    assert!(primary.stat("sent", "ADVERTISE") > advertised.0, "the primary answered in COMMUNICATIONS-INTERRUPTED");
    assert!(secondary.stat("sent", "ADVERTISE") > advertised.1, "the secondary answered too");

    // Healed: both NORMAL, holding the same bindings, every client's among them.
    lab.heal();
    wait_state(&primary, "NORMAL", SECS);
    wait_state(&secondary, "NORMAL", SECS);
    let resources =
        [&address, &prefix, &second_address, &second_prefix, &third_address, &third_prefix, &fourth_address];
    let resources: Vec<&str> = resources.iter().map(|r| r.as_str()).collect();
    let agreed = wait_agreed(&primary, &secondary, &resources);
    let clients: std::collections::BTreeSet<&String> = resources.iter().map(|r| &agreed[*r]).collect();
    assert_eq!(clients.len(), 4, "four clients, each holding its own resources: {agreed:?}");
    assert_eq!(primary.show("failover")["bindings_rejected"], 0);
    assert_eq!(secondary.show("failover")["bindings_rejected"], 0);
}

/// A restart in NORMAL and one in COMMUNICATIONS-INTERRUPTED each come back to the state
/// before (through STARTUP), and the pair to NORMAL; partner-down is refused in NORMAL.
#[test]
fn restarts_in_normal_and_communications_interrupted_come_back_to_normal() {
    let lab = Lab::new();
    let scratch = Scratch::new("failover-restarts");
    let mut secondary = lab.secondary(&scratch);
    let mut primary = lab.primary(&scratch);
    wait_state(&primary, "NORMAL", SECS);
    wait_state(&secondary, "NORMAL", SECS);
    let refused = partner_down(&secondary).expect_err("partner-down in NORMAL");
    assert!(refused.contains("partner-down refused in NORMAL"), "{refused}");
    assert_eq!(state(&secondary), "NORMAL");

    // The secondary restarts in NORMAL.
    secondary.stop_keeping_pins();
    wait_state(&primary, "COMMUNICATIONS-INTERRUPTED", SECS);
    secondary = lab.secondary(&scratch);
    wait_state(&secondary, "NORMAL", SECS);
    wait_state(&primary, "NORMAL", SECS);

    // The primary restarts while cut off: back in COMMUNICATIONS-INTERRUPTED, serving.
    lab.cut();
    wait_state(&primary, "COMMUNICATIONS-INTERRUPTED", SECS);
    wait_state(&secondary, "COMMUNICATIONS-INTERRUPTED", SECS);
    primary.stop_keeping_pins();
    primary = lab.primary(&scratch);
    let first = state(&primary);
    assert!(["STARTUP", "COMMUNICATIONS-INTERRUPTED"].contains(&first.as_str()), "{first}");
    wait_state(&primary, "COMMUNICATIONS-INTERRUPTED", SECS);
    let client = Dhclient::start(&lab.client_ns, &scratch, "client", lab.c_port.a(), &["-N"]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    lab.heal();
    wait_state(&primary, "NORMAL", SECS);
    wait_state(&secondary, "NORMAL", SECS);
    wait_agreed(&primary, &secondary, &[&address]);
}

/// The operator's partner-down, with an MCLT of 8 s and a pool of four addresses (two per
/// half): refused in NORMAL; after the primary's crash the secondary takes PARTNER-DOWN and
/// gives only its own half until the MCLT has passed, then the primary's; restarted, it comes
/// back in PARTNER-DOWN from the same time; the primary returns through RECOVER to NORMAL, and
/// both hold every binding.
#[test]
fn partner_down_waits_the_mclt_survives_a_restart_and_the_primary_recovers() {
    const MCLT: u64 = 8;
    let lab = Lab::new();
    let scratch = Scratch::new("failover-partner-down");
    let tiny = |primary: bool| {
        let port = if primary { &lab.p_port } else { &lab.s_port };
        let subnet = format!(
            r#"[[subnet]]
interface = "{}"
prefix = "2001:db8:1::/64"
ranges = [{{ low = "2001:db8:1::100", high = "2001:db8:1::103" }}]
rapid_commit = true
"#,
            port.a()
        );
        pair_config(&subnet, primary, MCLT as u32)
    };
    let mut secondary = lab.start(&scratch, false, &tiny(false));
    let primary = lab.start(&scratch, true, &tiny(true));
    wait_state(&primary, "NORMAL", SECS);
    wait_state(&secondary, "NORMAL", SECS);
    let refused = partner_down(&primary).expect_err("partner-down in NORMAL");
    assert!(refused.contains("partner-down refused in NORMAL"), "{refused}");
    // One rapid-commit exchange for client `n`: the address it was given.
    let grant = |n: u32| {
        let interface = lab.c_port.a();
        lab.client_ns
            .run(|| TestClient::new(interface).rapid_solicit(&client_duid(n)))
            .map(|(g, _)| g.address.to_string())
    };
    let primarys = ["2001:db8:1::100", "2001:db8:1::101"];
    let secondarys = ["2001:db8:1::102", "2001:db8:1::103"];
    let one = grant(1).expect("the primary serves in NORMAL");
    assert!(primarys.contains(&one.as_str()), "{one}");
    wait_for("the secondary to hold the first binding", SECS, || holds(&secondary, &one).then_some(()));

    crash(primary);
    wait_state(&secondary, "COMMUNICATIONS-INTERRUPTED", SECS);
    let answer = partner_down(&secondary).expect("partner-down in COMMUNICATIONS-INTERRUPTED");
    let down_at = Instant::now();
    assert!(answer.contains("PARTNER-DOWN"), "{answer}");
    assert_eq!(state(&secondary), "PARTNER-DOWN");
    let down_since = secondary.show("failover")["since"].clone();

    // Within the MCLT: its own half, and nothing more.
    let mut given = vec![one.clone()];
    for n in [2, 3] {
        let address = grant(n).expect("the secondary's own half");
        assert!(secondarys.contains(&address.as_str()), "{address}");
        given.push(address);
    }
    assert_eq!(grant(4), None, "the own half is used up and the primary's waits for the MCLT");
    assert!(down_at.elapsed() < Duration::from_secs(MCLT), "checked within the MCLT");
    // Past the MCLT: the primary's half too.
    let four = wait_for("the primary's half, once the MCLT has passed", SECS, || grant(4));
    assert!(down_at.elapsed() >= Duration::from_secs(MCLT - 1), "{:?}", down_at.elapsed());
    assert!(primarys.contains(&four.as_str()) && four != one, "{four}");
    given.push(four);

    // A restart in PARTNER-DOWN comes back to it, from the same time.
    secondary.stop_keeping_pins();
    secondary = lab.start(&scratch, false, &tiny(false));
    wait_state(&secondary, "PARTNER-DOWN", SECS);
    assert_eq!(secondary.show("failover")["since"], down_since);

    // The primary returns: RECOVER (its partner held it down), then NORMAL, every binding on
    // both.
    let primary = lab.start(&scratch, true, &tiny(true));
    wait_for("the primary to recover", SECS, || {
        matches!(state(&primary).as_str(), "RECOVER" | "RECOVER-WAIT" | "RECOVER-DONE" | "NORMAL").then_some(())
    });
    wait_state(&primary, "NORMAL", SECS);
    wait_state(&secondary, "NORMAL", SECS);
    let given: Vec<&str> = given.iter().map(String::as_str).collect();
    wait_agreed(&primary, &secondary, &given);
}

/// Seed 003's migration: two standalone servers, each giving addresses from one /65 of a /64
/// and prefixes from one /49 of a /48, each with a client bound, are made a pair for the
/// whole /64 and /48. They start as COMMUNICATIONS-INTERRUPTED would (not RECOVER: each holds
/// its leases), send each other their bindings, both end NORMAL holding both sets, and a new
/// client then gets the primary's lower half.
#[test]
fn two_servers_each_serving_half_of_a_slash_64_become_a_pair() {
    let lab = Lab::new();
    let scratch = Scratch::new("failover-migrate");
    let standalone = |port: &Veth, range: &str, prefixes: &str| {
        format!(
            r#"[server]
preferred_lifetime = 200
valid_lifetime = 300

[[subnet]]
interface = "{}"
prefix = "2001:db8:1::/64"
ranges = [{{ prefix = "{range}" }}]

[[subnet.pd_pool]]
prefix = "2001:db8:8000::/40"
delegated_length = 56
ranges = ["{prefixes}"]
"#,
            port.a()
        )
    };
    let lower = standalone(&lab.p_port, "2001:db8:1::/65", "2001:db8:8000::/49");
    let upper = standalone(&lab.s_port, "2001:db8:1:0:8000::/65", "2001:db8:8000:8000::/49");
    // One server at a time, so that each client binds with the one meant for it.
    let bind = |primary: bool, config: &str, ns: &Netns, port: &Veth, name: &str| {
        let server = lab.start(&scratch, primary, config);
        let client = Dhclient::start(ns, &scratch, name, port.a(), &["-N", "-P"]);
        let got = granted(&client, "BOUND6");
        server.stop_keeping_pins();
        drop(client);
        got
    };
    let (a_address, a_prefix) = bind(true, &lower, &lab.client_ns, &lab.c_port, "a");
    let (b_address, b_prefix) = bind(false, &upper, &lab.other_ns, &lab.o_port, "b");
    let upper_64 = |a: &str| a.parse::<std::net::Ipv6Addr>().unwrap().segments()[4] >= 0x8000;
    assert!(!upper_64(&a_address) && !prefix_in_upper_half(&a_prefix), "{a_address} {a_prefix}");
    assert!(upper_64(&b_address) && prefix_in_upper_half(&b_prefix), "{b_address} {b_prefix}");

    // Both reconfigured for the whole /64 and /48, as a pair.
    let whole = |port: &Veth| {
        format!(
            r#"[[subnet]]
interface = "{}"
prefix = "2001:db8:1::/64"
ranges = [{{ prefix = "2001:db8:1::/64" }}]

[[subnet.pd_pool]]
prefix = "2001:db8:8000::/40"
delegated_length = 56
ranges = ["2001:db8:8000::/48"]
"#,
            port.a()
        )
    };
    let secondary = lab.start(&scratch, false, &pair_config(&whole(&lab.s_port), false, 30));
    let primary = lab.start(&scratch, true, &pair_config(&whole(&lab.p_port), true, 30));
    for server in [&primary, &secondary] {
        let first = state(server);
        assert!(["STARTUP", "COMMUNICATIONS-INTERRUPTED", "NORMAL"].contains(&first.as_str()), "{first}");
    }
    // Within seconds: no RECOVER, and no MCLT (30 s) to wait.
    wait_state(&primary, "NORMAL", Duration::from_secs(10));
    wait_state(&secondary, "NORMAL", Duration::from_secs(10));
    wait_agreed(&primary, &secondary, &[&a_address, &a_prefix, &b_address, &b_prefix]);
    for server in [&primary, &secondary] {
        let f = server.show("failover");
        assert!(f["bindings_sent"].as_u64() >= Some(2) && f["bindings_received"].as_u64() >= Some(2), "{f}");
        assert_eq!(f["bindings_rejected"], 0, "{f}");
    }

    // A new client: the primary's lower half, by the RFC's allocation.
    let c_host = lab.host("d6ft");
    let c = c_host.dhclient(&scratch, "c", &["-N", "-P"]);
    let (c_address, c_prefix) = granted(&c, "BOUND6");
    assert!(!upper_64(&c_address) && !prefix_in_upper_half(&c_prefix), "{c_address} {c_prefix}");
    assert!(c_address != a_address && c_prefix != a_prefix);
    wait_agreed(&primary, &secondary, &[&a_address, &a_prefix, &b_address, &b_prefix, &c_address, &c_prefix]);
}

/// The clients' access link behind a relay: the relay on a bridge with the client hosts, each
/// server on a link of its own to the relay (the primary 2001:db8:f1::1, the secondary
/// 2001:db8:f2::1, the relay ::2 of each), and the servers' own link.
struct RelayedLab {
    primary_ns: Netns,
    secondary_ns: Netns,
    relay_ns: Netns,
    switch_ns: Netns,
    /// The relay's port on the access link (2001:db8:2::1), its end in the relay.
    access: Veth,
    /// The relay's links to the primary and to the secondary, their ends in the relay.
    up: [Veth; 2],
    _between: Veth,
}

impl RelayedLab {
    fn new() -> RelayedLab {
        let primary_ns = Netns::new("d6fp");
        let secondary_ns = Netns::new("d6fs");
        let relay_ns = Netns::new("d6fr");
        let switch_ns = switch("d6fw");
        let access = Veth::new(&relay_ns, &switch_ns);
        switch_ns.exec(&["ip", "link", "set", access.b(), "master", "br0"]);
        relay_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:2::1/64", "dev", access.a(), "nodad"]);
        let up = [(&primary_ns, 1), (&secondary_ns, 2)].map(|(ns, n)| {
            let up = Veth::new(&relay_ns, ns);
            relay_ns.exec(&["ip", "-6", "addr", "add", &format!("2001:db8:f{n}::2/64"), "dev", up.a(), "nodad"]);
            ns.exec(&["ip", "-6", "addr", "add", &format!("2001:db8:f{n}::1/64"), "dev", up.b(), "nodad"]);
            up
        });
        let _between = servers_link(&primary_ns, &secondary_ns);
        RelayedLab { primary_ns, secondary_ns, relay_ns, switch_ns, access, up, _between }
    }

    /// A server of the pair serving the relayed link 2001:db8:2::/64 (no interface: matched by
    /// the relay's link-address), with the same halves as the client link's.
    fn server(&self, scratch: &Scratch, primary: bool) -> Dhcp6d {
        let config = pair_config(&subnet(None, "2001:db8:2"), primary, 30);
        start_member(&self.primary_ns, &self.secondary_ns, scratch, primary, &config)
    }

    fn host(&self, prefix: &str) -> Host {
        Host::on(&self.switch_ns, prefix)
    }

    /// The pair in NORMAL, then: a client binds through the relay with the primary, the
    /// secondary holds the binding (the relay sent it every message); the primary crashes, a
    /// new client is served by the secondary from its half, and the first client's Rebind
    /// keeps its address and prefix.
    fn takeover(&self, scratch: &Scratch, primary: Dhcp6d, secondary: &Dhcp6d) {
        wait_state(&primary, "NORMAL", SECS);
        wait_state(secondary, "NORMAL", SECS);
        let first_host = self.host("d6fc");
        let first = first_host.dhclient(scratch, "first", &["-N", "-P"]);
        let (address, prefix) = granted(&first, "BOUND6");
        assert!(address.starts_with("2001:db8:2::") && !in_upper_half(&address), "{address}");
        wait_for("the secondary to hold the binding", SECS, || {
            (holds(secondary, &address) && holds(secondary, &prefix)).then_some(())
        });
        assert!(secondary.stat("received", "RELAY-FORW") >= 2, "the relay sent the secondary the exchange too");
        assert_eq!(secondary.stat("sent", "RELAY-REPL"), 0, "the secondary answered nobody in NORMAL");

        crash(primary);
        wait_state(secondary, "COMMUNICATIONS-INTERRUPTED", SECS);
        let second_host = self.host("d6fo");
        let second = second_host.dhclient(scratch, "second", &["-N"]);
        let second_address = second.wait_event("BOUND6", "new_ip6_address", SECS);
        assert!(second_address.starts_with("2001:db8:2::") && in_upper_half(&second_address), "{second_address}");
        assert_rebound(&first, &address, &prefix);
        assert!(secondary.stat("sent", "RELAY-REPL") >= 2);
    }
}

/// ISC dhcrelay with both servers as upstreams sends every client message to both.
#[test]
fn behind_isc_dhcrelay_the_secondary_holds_the_bindings_and_takes_over() {
    let lab = RelayedLab::new();
    let scratch = Scratch::new("failover-dhcrelay");
    let secondary = lab.server(&scratch, false);
    let primary = lab.server(&scratch, true);
    let upstream = |n: usize| format!("2001:db8:f{}::1%{}", n + 1, lab.up[n].a());
    let _dhcrelay = lab.relay_ns.spawn(
        &["dhcrelay", "-6", "-d", "-l", lab.access.a(), "-u", &upstream(0), "-u", &upstream(1)],
        &scratch.path("dhcrelay.log"),
    );
    lab.takeover(&scratch, primary, &secondary);
}

/// The dhcp6d relay with both servers in one `send_to = "all"` group.
#[test]
fn behind_a_dhcp6d_relay_sending_to_all_the_secondary_holds_the_bindings_and_takes_over() {
    let lab = RelayedLab::new();
    let scratch = Scratch::new("failover-d6relay");
    let secondary = lab.server(&scratch, false);
    let primary = lab.server(&scratch, true);
    let config = dhcp6_tests::relay_to_pair(lab.access.a());
    let relay = Dhcp6d::start(&lab.relay_ns, &scratch, "relay", &config, &["--no-xdp"]);
    lab.takeover(&scratch, primary, &secondary);
    let servers = relay.show("relay servers");
    for s in servers["servers"].as_array().unwrap() {
        assert!(s["sent"].as_u64() >= Some(4), "every message to both servers: {servers}");
    }
}
