//! Two dhcp6d servers as one failover pair (RFC 8156), with a real client: the pair forms and
//! reaches NORMAL, a binding made by the primary reaches the secondary, the secondary takes
//! over when the primary dies, answers the first client's Rebind with the same address and
//! prefix, and the pair comes back to NORMAL when the primary returns.

use std::time::{Duration, Instant};

use dhcp6_tests::{
    netns::{Netns, Veth},
    peers::{wait_for, Dhclient, Dhcp6d, Scratch},
};
use serde_json::Value;

const SECS: Duration = Duration::from_secs(30);

/// A server of the pair on the client link `interface`, reaching its partner over the
/// 2001:db8:ff::/64 link: the primary is ::1, the secondary ::2. Short lifetimes so that the
/// client rebinds within the test; an MCLT of 30 s.
fn config(interface: &str, primary: bool) -> String {
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

[[subnet]]
interface = "{interface}"
prefix = "2001:db8:1::/64"
ranges = [{{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }}]

[[subnet.pd_pool]]
prefix = "2001:db8:8000::/40"
delegated_length = 56
ranges = ["2001:db8:8000::/48"]

[failover]
role = "{role}"
local = "[{local}]:647"
partner = "[{partner}]:647"
mclt = 30
keepalive = 1
"#
    )
}

/// The client link (a bridge in its own namespace) with both servers and a client on it, and
/// the servers' own link.
struct Lab {
    primary_ns: Netns,
    secondary_ns: Netns,
    client_ns: Netns,
    /// A second client host: two dhclients on one interface would share port 546.
    other_ns: Netns,
    _switch_ns: Netns,
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
        let switch_ns = Netns::new("d6fw");
        let p_port = Veth::new(&primary_ns, &switch_ns);
        let s_port = Veth::new(&secondary_ns, &switch_ns);
        let c_port = Veth::new(&client_ns, &switch_ns);
        let other_ns = Netns::new("d6fo");
        let o_port = Veth::new(&other_ns, &switch_ns);
        switch_ns.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
        switch_ns.exec(&["ip", "link", "set", "br0", "up"]);
        for port in [p_port.b(), s_port.b(), c_port.b(), o_port.b()] {
            switch_ns.exec(&["ip", "link", "set", port, "master", "br0"]);
        }
        let between = Veth::new(&primary_ns, &secondary_ns);
        primary_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::1/64", "dev", between.a(), "nodad"]);
        secondary_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::2/64", "dev", between.b(), "nodad"]);
        Lab {
            primary_ns,
            secondary_ns,
            client_ns,
            other_ns,
            _switch_ns: switch_ns,
            p_port,
            s_port,
            c_port,
            o_port,
            between,
        }
    }

    fn primary(&self, scratch: &Scratch) -> Dhcp6d {
        Dhcp6d::start(&self.primary_ns, scratch, "primary", &config(self.p_port.a(), true), &["--no-xdp"])
    }

    fn secondary(&self, scratch: &Scratch) -> Dhcp6d {
        Dhcp6d::start(&self.secondary_ns, scratch, "secondary", &config(self.s_port.a(), false), &["--no-xdp"])
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

    // kill -9 the primary: within 3 s the secondary serves a new client from its own half.
    primary.process.signal(libc::SIGKILL);
    let _ = primary.process.wait();
    let killed = Instant::now();
    wait_state(&secondary, "COMMUNICATIONS-INTERRUPTED", SECS);
    let second = Dhclient::start(&lab.other_ns, &scratch, "second", lab.o_port.a(), &["-N"]);
    let (new_address, _) = (second.wait_event("BOUND6", "new_ip6_address", SECS), ());
    assert!(killed.elapsed() < Duration::from_secs(3) || in_upper_half(&new_address));
    assert!(in_upper_half(&new_address), "the secondary gives from its own half: {new_address}");
    // The first client's Rebind (T2 5 s) is answered by the secondary with the same
    // address and prefix.
    // dhclient reports the address and the prefix in an event each.
    let rebound = |key: &str| {
        wait_for(&format!("the first client to rebind its {key}"), SECS, || {
            first.events().into_iter().find(|(r, v)| r == "REBIND6" && v.contains_key(key)).map(|(_, v)| v[key].clone())
        })
    };
    assert_eq!(rebound("new_ip6_address"), address);
    assert_eq!(rebound("new_ip6_prefix"), prefix);
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
    let _ = lab.between.a();
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
