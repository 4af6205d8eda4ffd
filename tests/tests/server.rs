//! dhcp6d as a server to real clients in network namespaces: ISC dhclient, dhcpcd and
//! perfdhcp, directly and behind ISC dhcrelay, and two dhcp6d servers sharing one /64.

use std::time::Duration;

use dhcp6_tests::{
    netns::{Netns, Veth},
    peers::{spawn_in, wait_for, Dhclient, Dhcp6d, Scratch},
};
use ipnet::Ipv6Net;

const SECS: Duration = Duration::from_secs(30);

/// Short renewal times so that renewals happen within a test: T1 2 s, T2 4 s. The valid
/// lifetime outlasts dhclient's first Renew retransmission (about 10 s), after which it
/// notices T2 has passed and rebinds.
fn config(interface: &str) -> String {
    format!(
        r#"[server]
preferred_lifetime = 20
valid_lifetime = 30
t1 = 2
t2 = 4
dns_servers = ["2001:db8::53"]
domain_search = ["example.net"]
rapid_commit = true

[[subnet]]
interface = "{interface}"
prefix = "2001:db8:1::/64"
ranges = [{{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }}]

[[subnet.pd_pool]]
prefix = "2001:db8:8000::/40"
delegated_length = 56
"#
    )
}

/// A server namespace and a client namespace joined by a veth.
struct DirectLink {
    server: Netns,
    client: Netns,
    veth: Veth,
    scratch: Scratch,
}

fn direct_link(name: &str) -> DirectLink {
    let server = Netns::new("d6s");
    let client = Netns::new("d6c");
    let veth = Veth::new(&server, &client);
    server.exec(&["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", &veth.a, "nodad"]);
    DirectLink { server, client, veth, scratch: Scratch::new(name) }
}

fn in_range(addr: &str) -> bool {
    let a: std::net::Ipv6Addr = addr.parse().unwrap();
    let lo: std::net::Ipv6Addr = "2001:db8:1::100".parse().unwrap();
    let hi: std::net::Ipv6Addr = "2001:db8:1::1ff".parse().unwrap();
    (lo..=hi).contains(&a)
}

#[test]
fn dhclient_gets_an_address_renews_rebinds_and_releases() {
    let lab = direct_link("na");
    let server = Dhcp6d::start(&lab.server, &lab.scratch, "srv", &config(&lab.veth.a), &[]);
    let client = Dhclient::start(&lab.client, &lab.scratch, "dhclient", &lab.veth.b, &[]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    assert!(in_range(&address), "{address}");
    assert_eq!(server.bound(), vec![(format!("{address}/128"), "ia_na".to_string())]);

    // Renew at T1 (2 s), answered with the same address.
    assert_eq!(client.wait_event("RENEW6", "new_ip6_address", SECS), address);
    assert!(server.stat("received", "RENEW") >= 1);

    // Stop answering: the Renew goes unanswered past T2; at its retransmission (about 10 s)
    // dhclient rebinds instead.
    let renews = client.values("RENEW6", "new_ip6_address").len();
    server.process.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(13));
    server.process.signal(libc::SIGCONT);
    assert_eq!(client.wait_event("REBIND6", "new_ip6_address", SECS), address);
    assert!(server.stat("received", "REBIND") >= 1);
    assert!(client.values("RENEW6", "new_ip6_address").len() <= renews + 1);

    // Release: dhclient -r with the same lease file.
    drop(client.process);
    let releaser = Dhclient { process: spawn_in(&lab.client, &["sleep", "0"], lab.scratch.path("noop.log")), dir: client.dir.clone() };
    releaser.run_once(&lab.client, &lab.veth.b, &["-r"]);
    wait_for("the lease to be released", SECS, || server.bound().is_empty().then_some(()));
    assert!(server.stat("received", "RELEASE") >= 1);
    assert_eq!(server.stat("dropped", "malformed"), 0);
}

#[test]
fn dhclient_gets_an_address_and_a_prefix() {
    let lab = direct_link("napd");
    let server = Dhcp6d::start(&lab.server, &lab.scratch, "srv", &config(&lab.veth.a), &[]);
    let client = Dhclient::start(&lab.client, &lab.scratch, "dhclient", &lab.veth.b, &["-N", "-P"]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    let prefix = client.wait_event("BOUND6", "new_ip6_prefix", SECS);
    assert!(in_range(&address));
    let p: Ipv6Net = prefix.parse().unwrap();
    assert_eq!(p.prefix_len(), 56);
    assert!("2001:db8:8000::/40".parse::<Ipv6Net>().unwrap().contains(&p));
    let mut bound = server.bound();
    bound.sort();
    assert_eq!(bound, vec![(format!("{address}/128"), "ia_na".into()), (prefix, "ia_pd".into())]);
}

#[test]
fn dhclient_stateless_gets_options_and_no_lease() {
    let lab = direct_link("stateless");
    let server = Dhcp6d::start(&lab.server, &lab.scratch, "srv", &config(&lab.veth.a), &[]);
    let client = Dhclient::start(&lab.client, &lab.scratch, "dhclient", &lab.veth.b, &["-S"]);
    let dns = wait_for("dhclient to record name servers", SECS, || {
        client.events().into_iter().find_map(|(_, v)| v.get("new_dhcp6_name_servers").cloned())
    });
    assert_eq!(dns, "2001:db8::53");
    assert!(server.stat("received", "INFORMATION-REQUEST") >= 1);
    assert!(server.bound().is_empty());
}
