//! dhcp6d as a relay agent (userspace path) between real clients and a DHCPv6 server:
//! dhclient -> dhcp6d relay -> dhcp6d server, the relay's options seen on the wire, user
//! entries learned, and Relay-Replies from outside the group dropped.

use std::{net::UdpSocket, time::Duration};

use dhcp6_codec::{option::DhcpOption, Message, MessageType};
use dhcp6_tests::{
    netns::{Netns, Veth},
    peers::{wait_for, Dhclient, Dhcp6d, Scratch},
    relay_lab::RelayLab,
};

const SECS: Duration = Duration::from_secs(30);

use dhcp6_tests::RELAYED_LINK_SERVER as SERVER;

fn relay_config(access: &str) -> String {
    format!(
        r#"[server]

[relay]
route_hold = 2
[[relay.group]]
name = "core"
servers = ["2001:db8:ff::1"]

[[relay.interface]]
name = "{access}"
group = "core"
link_address = "2001:db8:2::1"
remote_id = {{ enterprise = 2011, template = "{{interface}}:{{mac}}" }}
client_link_layer_address = true
"#
    )
}

#[test]
fn dhclient_through_the_dhcp6d_relay_to_a_dhcp6d_server() {
    relay_to_a_dhcp6d_server(false);
}

#[test]
fn dhclient_through_the_dhcp6d_xdp_relay_to_a_dhcp6d_server() {
    relay_to_a_dhcp6d_server(true);
}

/// dhclient -> dhcp6d relay (from userspace, or in XDP) -> dhcp6d server, the relay restarted
/// on the way (with XDP, its program keeps relaying while no dhcp6d runs).
fn relay_to_a_dhcp6d_server(xdp: bool) {
    let scratch = Scratch::new(if xdp { "d6relayx" } else { "d6relay" });
    let lab = RelayLab::new(&scratch, "d6s");
    let (server_ns, relay_ns, client_ns, up, access) =
        (&lab.server_ns, &lab.relay_ns, &lab.client_ns, &lab.up, &lab.access);
    let relay_args: &[&str] = if xdp {
        lab.wire_like();
        &[]
    } else {
        &["--no-xdp"]
    };
    let server = Dhcp6d::start(server_ns, &scratch, "srv", SERVER, &["--no-xdp"]);
    let relay = Dhcp6d::start(relay_ns, &scratch, "relay", &relay_config(access.b()), relay_args);
    let client = Dhclient::start(client_ns, &scratch, "dhclient", access.a(), &["-N", "-P"]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    let prefix = client.wait_event("BOUND6", "new_ip6_prefix", SECS);
    assert!(address.starts_with("2001:db8:2::1"), "{address}");

    // The relay learned both bindings, with the client's link-local address.
    let users = wait_for("two user entries", SECS, || {
        relay.try_show("relay users").filter(|u| u.as_array().map_or(0, Vec::len) == 2)
    });
    let resources: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["resource"].as_str().unwrap()).collect();
    assert!(resources.contains(&format!("{address}/128").as_str()) && resources.contains(&prefix.as_str()), "{users}");
    assert!(users[0]["link_local"].as_str().unwrap().starts_with("fe80::"));
    // The delegated prefix is routed via the client's link-local, with our protocol and metric.
    let link_local = users[0]["link_local"].as_str().unwrap().to_string();
    let routes = || lab.routes();
    let route = wait_for("the PD route", SECS, || Some(routes()).filter(|r| r.contains(&prefix)));
    assert!(route.contains(&format!("{prefix} via {link_local} dev {} metric 1024", access.b())), "{route}");

    let servers = wait_for("the server's answers counted", SECS, || {
        relay.try_show("relay servers").filter(|s| s["servers"][0]["answered"].as_u64() >= Some(2))
    });
    assert_eq!(servers["servers"][0]["state"], "up");
    assert!(server.stat("received", "RELAY-FORW") >= 2);
    if xdp {
        let counts = relay.show("statistics")["xdp"].clone();
        assert!(
            counts["relay_forwarded"].as_u64() >= Some(2) && counts["relay_replied"].as_u64() >= Some(2),
            "{counts}"
        );
    }

    // The relay restarts: its user entries come back at once (before any client renews), and
    // they claim the route, which outlives the hold given to unclaimed routes.
    // With XDP, the program stays attached (its links and maps pinned) and the next dhcp6d
    // takes it over.
    let relay = {
        let pins = relay.stop_keeping_pins();
        let saved = std::fs::read_to_string(scratch.path("relay-state/relay-users.json")).unwrap();
        assert!(saved.contains(&prefix), "{saved}");
        Dhcp6d::start_pinned(relay_ns, &scratch, "relay", &relay_config(access.b()), relay_args, pins)
    };
    // As they were (the seconds left go on counting down).
    let without_countdown = |v: serde_json::Value| {
        let mut v = v;
        for u in v.as_array_mut().unwrap() {
            assert!(u["expires_in"].as_u64().is_some_and(|s| s > 0), "{u}");
            u.as_object_mut().unwrap().remove("expires_in");
        }
        v
    };
    assert_eq!(without_countdown(relay.show("relay users")), without_countdown(users), "restored as they were");
    std::thread::sleep(Duration::from_secs(4));
    assert!(routes().contains(&prefix), "the restored entry keeps its route past route_hold");
    assert!(relay.process.log_text().contains("relay user entries restored entries=2"), "{}", relay.process.log_text());

    // On the wire: Relay-Forward with Interface-ID, Remote-ID and Client Link-Layer Address.
    let forwards = lab.forwards();
    assert!(!forwards.is_empty());
    let Message::Relay(f) = Message::decode(&forwards[0]).unwrap() else { panic!("not a relay message") };
    assert!(f.options.iter().any(|o| *o == DhcpOption::InterfaceId(access.b().as_bytes())));
    assert!(f.options.iter().any(|o| matches!(o, DhcpOption::RemoteId(r) if r.enterprise_number == 2011 && r.remote_id.starts_with(access.b().as_bytes()))));
    assert!(f
        .options
        .iter()
        .any(|o| matches!(o, DhcpOption::ClientLinkLayerAddr(l) if l.link_layer_type == 1 && l.address.len() == 6)));

    // A Relay-Reply from outside the group is dropped and counted. The server now has a second
    // address, which the kernel would pick for its answers: dhcp6d answers from the address a
    // Relay-Forward came to, so the Release below still comes back from a group member.
    server_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::66/128", "dev", up.b(), "nodad"]);
    let forged = Message::decode(&forwards[0]).unwrap();
    let Message::Relay(mut reply) = forged else { unreachable!() };
    reply.msg_type = MessageType::RelayRepl;
    let bytes = Message::Relay(reply).to_vec().unwrap();
    server_ns.run(|| {
        let s = UdpSocket::bind("[2001:db8:ff::66]:0").unwrap();
        s.send_to(&bytes, "[2001:db8:ff::2]:547").unwrap();
    });
    wait_for("the forged Relay-Reply to be counted", SECS, || {
        relay.try_show("relay servers").filter(|s| s["stats"]["dropped"]["not_a_group_member"] == 1)
    });

    // Release: the user entries and the route go.
    lab.release(&scratch, client);
    wait_for("the route to go", SECS, || Some(()).filter(|_| !routes().contains(&prefix)));
    assert!(relay.show("relay users").as_array().unwrap().is_empty());
}

/// Kea serving the relayed link 2001:db8:2::/64 from `pool`, listening on `interface` at
/// `address` (Kea takes unicast only on an address it is told).
fn kea_config(dir: &std::path::Path, interface: &str, address: &str, pool: &str) -> String {
    format!(
        r#"{{ "Dhcp6": {{
  "interfaces-config": {{ "interfaces": [ "{interface}/{address}" ] }},
  "data-directory": "{dir}",
  "lease-database": {{ "type": "memfile", "persist": false }},
  "preferred-lifetime": 60, "valid-lifetime": 90, "renew-timer": 30, "rebind-timer": 50,
  "subnet6": [ {{ "id": 1, "subnet": "2001:db8:2::/64", "rapid-commit": true,
                  "pools": [ {{ "pool": "{pool}" }} ] }} ]
}} }}"#,
        dir = dir.display()
    )
}

/// Starts kea-dhcp6 in `ns` with its files in `dir`.
fn start_kea(ns: &Netns, dir: &std::path::Path, config: &str) -> dhcp6_tests::netns::Process {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("kea-dhcp6.json");
    std::fs::write(&path, config).unwrap();
    let env = [format!("KEA_PIDFILE_DIR={}", dir.display()), format!("KEA_LOCKFILE_DIR={}", dir.display())];
    ns.spawn(&["env", &env[0], &env[1], "kea-dhcp6", "-c", path.to_str().unwrap()], &dir.join("kea.log"))
}

#[test]
fn two_kea_servers_share_the_clients_and_one_takes_over_when_the_other_dies() {
    two_kea_servers(false);
}

#[test]
fn two_kea_servers_with_the_xdp_relay_share_the_clients_and_fail_over() {
    two_kea_servers(true);
}

/// Two Kea servers in one group behind the relay, relaying from userspace or in XDP (where
/// the server of each client is XDP's bucket map, and the failover is driven by XDP's counts).
fn two_kea_servers(xdp: bool) {
    use dhcp6_tests::client::{client_duid, TestClient};
    let scratch = Scratch::new(if xdp { "kea2x" } else { "kea2" });
    let relay_ns = Netns::new("d6r");
    let client_ns = Netns::new("d6c");
    let access = Veth::new(&client_ns, &relay_ns);
    relay_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:2::1/64", "dev", access.b(), "nodad"]);
    let mut keas = Vec::new();
    for n in 1..=2 {
        let ns = Netns::new("d6k");
        let up = Veth::new(&relay_ns, &ns);
        relay_ns.exec(&["ip", "-6", "addr", "add", &format!("2001:db8:f{n}::2/64"), "dev", up.a(), "nodad"]);
        let address = format!("2001:db8:f{n}::1");
        ns.exec(&["ip", "-6", "addr", "add", &format!("{address}/64"), "dev", up.b(), "nodad"]);
        let dir = scratch.path(&format!("kea{n}"));
        let pool = format!("2001:db8:2::{n}000-2001:db8:2::{n}fff");
        let kea = start_kea(&ns, &dir, &kea_config(&dir, up.b(), &address, &pool));
        keas.push((ns, up, Some(kea)));
    }
    let config = format!(
        "[server]\n\n[relay]\n[[relay.group]]\nname = \"pair\"\nservers = [\"2001:db8:f1::1\", \"2001:db8:f2::1\"]\ndead_after = 2\nanswer_timeout = 1\nretry_after = 300\n\n[[relay.interface]]\nname = \"{}\"\ngroup = \"pair\"\nlink_address = \"2001:db8:2::1\"\n",
        access.b()
    );
    if xdp {
        let mut ends = vec![(&client_ns, access.a())];
        ends.extend(keas.iter().map(|(ns, up, _)| (ns, up.b())));
        dhcp6_tests::relay_lab::wire_like(&relay_ns, &ends, &["2001:db8:f1::1", "2001:db8:f2::1"]);
    }
    let relay = Dhcp6d::start(&relay_ns, &scratch, "relay", &config, if xdp { &[] } else { &["--no-xdp"] });
    std::thread::sleep(Duration::from_secs(2));

    // Clients, each tried until a Reply comes: spread over both servers by their DUIDs.
    let serve = |clients: std::ops::Range<u32>| -> Vec<String> {
        client_ns.run(|| {
            let mut client = TestClient::new(access.a());
            clients
                .map(|n| {
                    (0..20)
                        .find_map(|_| client.rapid_solicit(&client_duid(n)).map(|(g, _)| g.address.to_string()))
                        .unwrap_or_else(|| panic!("client {n} was never served"))
                })
                .collect()
        })
    };
    let first = serve(0..16);
    let from = |n: char| first.iter().filter(|a| a.starts_with(&format!("2001:db8:2::{n}"))).count();
    assert!(from('1') > 0 && from('2') > 0, "clients spread over both servers: {first:?}");
    if xdp {
        let counts = relay.show("statistics")["xdp"].clone();
        assert!(counts["relay_forwarded"].as_u64() >= Some(16), "XDP relayed every client: {counts}");
        assert!(counts["relay_replied"].as_u64() >= Some(16), "{counts}");
    }

    // The first server dies: its clients' messages go unanswered, it is marked down, and every
    // new client is served by the second.
    keas[0].2 = None;
    let later = serve(100..116);
    assert!(later.iter().all(|a| a.starts_with("2001:db8:2::2")), "{later:?}");
    let servers = relay.show("relay servers");
    let state = |addr: &str| {
        servers["servers"].as_array().unwrap().iter().find(|s| s["server"] == addr).unwrap()["state"].clone()
    };
    assert_eq!((state("2001:db8:f1::1"), state("2001:db8:f2::1")), ("down".into(), "up".into()), "{servers}");
}

/// A failover pair behind the relay (`send_to = "all"`), the relay's XDP program attached:
/// dhclient's every message reaches both dhcp6d servers (XDP passes them to userspace, which
/// sends a copy to each), both answer its Solicit, and it binds with one of them.
#[test]
fn a_group_sending_to_all_relays_dhclients_messages_to_both_dhcp6d_servers() {
    let scratch = Scratch::new("d6all");
    let relay_ns = Netns::new("d6r");
    let client_ns = Netns::new("d6c");
    let access = Veth::new(&client_ns, &relay_ns);
    relay_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:2::1/64", "dev", access.b(), "nodad"]);
    let mut servers = Vec::new();
    for n in 1..=2 {
        let ns = Netns::new("d6s");
        let up = Veth::new(&relay_ns, &ns);
        relay_ns.exec(&["ip", "-6", "addr", "add", &format!("2001:db8:f{n}::2/64"), "dev", up.a(), "nodad"]);
        ns.exec(&["ip", "-6", "addr", "add", &format!("2001:db8:f{n}::1/64"), "dev", up.b(), "nodad"]);
        // Each server its own share of the link's addresses, as a failover pair splits a pool.
        let config = SERVER.replace(
            r#"ranges = [{ low = "2001:db8:2::100", high = "2001:db8:2::1ff" }]"#,
            &format!(r#"ranges = [{{ low = "2001:db8:2::{n}00", high = "2001:db8:2::{n}ff" }}]"#),
        );
        let server = Dhcp6d::start(&ns, &scratch, &format!("srv{n}"), &config, &["--no-xdp"]);
        servers.push((ns, up, server));
    }
    let config = dhcp6_tests::relay_to_pair(access.b());
    // Links as a real router's, so that XDP would relay these clients if it took them.
    let mut ends = vec![(&client_ns, access.a())];
    ends.extend(servers.iter().map(|(ns, up, _)| (ns, up.b())));
    dhcp6_tests::relay_lab::wire_like(&relay_ns, &ends, &["2001:db8:f1::1", "2001:db8:f2::1"]);
    let relay = Dhcp6d::start(&relay_ns, &scratch, "relay", &config, &[]);
    let client = Dhclient::start(&client_ns, &scratch, "dhclient", access.a(), &[]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);

    // Both servers received the Solicit and the Request; the one not chosen dropped the Request
    // (another server's), the other bound the address from its share.
    let (one, two) = (&servers[0].2, &servers[1].2);
    let chosen = if address.starts_with("2001:db8:2::1") { 0 } else { 1 };
    assert!(address.starts_with(&format!("2001:db8:2::{}", chosen + 1)), "{address}");
    for server in [one, two] {
        assert!(server.stat("received", "SOLICIT") >= 1 && server.stat("received", "REQUEST") >= 1);
        assert!(server.stat("sent", "ADVERTISE") >= 1, "both servers answered the Solicit");
    }
    assert_eq!(servers[chosen].2.bound(), [(format!("{address}/128"), "ia_na".to_string())]);
    assert!(servers[1 - chosen].2.stat("dropped", "other_server") >= 1);

    // The relay counted each server's messages and answers, and relayed it all from userspace:
    // XDP left the group's clients and servers alone.
    let shown = wait_for("both servers' answers counted", SECS, || {
        relay
            .try_show("relay servers")
            .filter(|s| s["servers"].as_array().is_some_and(|a| a.iter().all(|s| s["answered"].as_u64() >= Some(1))))
    });
    for s in shown["servers"].as_array().unwrap() {
        assert_eq!(s["state"], "up", "{shown}");
        assert!(s["sent"].as_u64() >= Some(2), "the Solicit and the Request: {shown}");
    }
    assert_eq!(shown["servers"][0]["sent"], shown["servers"][1]["sent"], "{shown}");
    let xdp = relay.show("statistics")["xdp"].clone();
    assert_eq!((xdp["relay_forwarded"].as_u64(), xdp["relay_replied"].as_u64()), (Some(0), Some(0)), "{xdp}");
    assert!(xdp["dhcp6_passed"].as_u64() >= Some(2), "{xdp}");
}

#[test]
fn isc_dhcrelay_in_front_of_the_dhcp6d_relay_adds_a_hop() {
    let scratch = Scratch::new("nested");
    let server_ns = Netns::new("d6s");
    let relay_ns = Netns::new("d6r");
    let edge_ns = Netns::new("d6e");
    let client_ns = Netns::new("d6c");
    let up = Veth::new(&relay_ns, &server_ns);
    let middle = Veth::new(&edge_ns, &relay_ns);
    let access = Veth::new(&client_ns, &edge_ns);
    server_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::1/64", "dev", up.b(), "nodad"]);
    relay_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::2/64", "dev", up.a(), "nodad"]);
    relay_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:e::1/64", "dev", middle.b(), "nodad"]);
    edge_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:e::2/64", "dev", middle.a(), "nodad"]);
    edge_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:2::1/64", "dev", access.b(), "nodad"]);
    let server = Dhcp6d::start(&server_ns, &scratch, "srv", SERVER, &["--no-xdp"]);
    let relay_conf =
        relay_config(middle.b()).replace("link_address = \"2001:db8:2::1\"", "link_address = \"2001:db8:e::1\"");
    let _relay = Dhcp6d::start(&relay_ns, &scratch, "relay", &relay_conf, &["--no-xdp"]);
    let upstream = format!("2001:db8:e::1%{}", middle.a());
    let _dhcrelay = edge_ns
        .spawn(&["dhcrelay", "-6", "-d", "-I", "-l", access.b(), "-u", &upstream], &scratch.path("dhcrelay.log"));
    let client = Dhclient::start(&client_ns, &scratch, "dhclient", access.a(), &["-N", "-P"]);
    // The pool is chosen by the innermost link-address, dhcrelay's 2001:db8:2::1.
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    assert!(address.starts_with("2001:db8:2::1"), "{address}");
    assert!(server.stat("received", "RELAY-FORW") >= 4, "two levels per message");
    assert_eq!(server.bound().len(), 2);
}

#[test]
fn dhclient_through_the_dhcp6d_relay_with_xdp_to_kea() {
    let scratch = Scratch::new("d6kea");
    let lab = RelayLab::new(&scratch, "d6k");
    let (kea_ns, relay_ns, client_ns, up, access) =
        (&lab.server_ns, &lab.relay_ns, &lab.client_ns, &lab.up, &lab.access);
    // Kea with an address pool and a prefix pool, leases kept in a file we read afterwards.
    let dir = scratch.path("kea");
    let leases = dir.join("leases6.csv");
    let config = kea_config(&dir, up.b(), "2001:db8:ff::1", "2001:db8:2::1000-2001:db8:2::1fff")
        .replace(
            r#""persist": false }"#,
            &format!(r#""persist": true, "name": "{}", "lfc-interval": 0 }}"#, leases.display()),
        )
        // The MAC only from the relay's Client Link-Layer Address option, not from the DUID.
        .replace(r#""lease-database""#, r#""mac-sources": [ "client-link-addr-option" ], "lease-database""#)
        .replace(
            r#""pools": ["#,
            r#""pd-pools": [ { "prefix": "2001:db8:9000::", "prefix-len": 40, "delegated-len": 60 } ], "pools": ["#,
        );
    let _kea = start_kea(kea_ns, &dir, &config);
    // The relay with its XDP program attached (the default), relaying in XDP.
    lab.wire_like();
    let relay = Dhcp6d::start(relay_ns, &scratch, "relay", &relay_config(access.b()), &[]);
    std::thread::sleep(Duration::from_secs(2));
    let client = Dhclient::start(client_ns, &scratch, "dhclient", access.a(), &["-N", "-P"]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    let prefix = client.wait_event("BOUND6", "new_ip6_prefix", SECS);
    assert!(address.starts_with("2001:db8:2::1"), "{address}");
    assert!(prefix.starts_with("2001:db8:90"), "{prefix}");
    let routes = || lab.routes();
    wait_for("the PD route", SECS, || Some(routes()).filter(|r| r.contains(&prefix)));
    // XDP carried both ways (Solicit and Request up, Advertise and Reply down): the route and
    // the user entries came from the Reply it reported.
    let xdp = relay.show("statistics")["xdp"].clone();
    assert!(xdp["relay_forwarded"].as_u64().unwrap() >= 2, "{xdp}");
    assert!(xdp["relay_replied"].as_u64().unwrap() >= 2, "{xdp}");
    assert_eq!(relay.show("relay users").as_array().unwrap().len(), 2);
    // XDP's counts reach the server's state at the relay's next tick.
    wait_for("the server's answers counted", SECS, || {
        relay.try_show("relay servers").filter(|s| s["servers"][0]["answered"].as_u64() >= Some(2))
    });

    // Kea received Interface-ID and Remote-ID, and took the client's MAC from option 79.
    let forwards = lab.forwards();
    assert!(!forwards.is_empty());
    for f in &forwards {
        let Message::Relay(f) = Message::decode(f).unwrap() else { panic!("not a relay message") };
        assert!(f.options.iter().any(|o| *o == DhcpOption::InterfaceId(access.b().as_bytes())));
        assert!(f.options.iter().any(|o| matches!(o, DhcpOption::RemoteId(r) if r.enterprise_number == 2011)));
    }
    let out = client_ns.exec(&["cat", &format!("/sys/class/net/{}/address", access.a())]);
    let mac = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(mac.len(), 17, "{mac}");
    let lease_file = wait_for("Kea's lease file to hold the address", SECS, || {
        std::fs::read_to_string(&leases).ok().filter(|t| t.contains(&address))
    });
    let line = lease_file.lines().find(|l| l.starts_with(&address)).unwrap();
    // Columns 12, 15 and 16: hwaddr, hwtype, hwaddr_source (8: the relay's option 79).
    let fields: Vec<&str> = line.split(',').collect();
    assert_eq!((fields[12], fields[15], fields[16]), (mac.as_str(), "1", "8"), "Kea's lease: {line}");

    // Release, relayed in XDP too (reported on its way, so that its Reply removes what it gives
    // back): the route goes, and so do the user entries.
    let forwarded = |r: &Dhcp6d| r.show("statistics")["xdp"]["relay_forwarded"].as_u64().unwrap();
    let before = forwarded(&relay);
    lab.release(&scratch, client);
    wait_for("the route to go", SECS, || Some(()).filter(|_| !routes().contains(&prefix)));
    assert!(relay.show("relay users").as_array().unwrap().is_empty());
    assert!(forwarded(&relay) > before, "the Release went up through XDP");
}

#[test]
fn the_xdp_relay_takes_replies_on_an_upstream_interface_routed_after_it_started() {
    let scratch = Scratch::new("d6late");
    let lab = RelayLab::new(&scratch, "d6s");
    let (server_ns, relay_ns, client_ns, up, access) =
        (&lab.server_ns, &lab.relay_ns, &lab.client_ns, &lab.up, &lab.access);
    let _server = Dhcp6d::start(server_ns, &scratch, "srv", SERVER, &["--no-xdp"]);
    // The relay starts with no route toward its server (as before a routing daemon converges).
    relay_ns.exec(&["ip", "-6", "addr", "del", "2001:db8:ff::2/64", "dev", up.a()]);
    let relay = Dhcp6d::start(relay_ns, &scratch, "relay", &relay_config(access.b()), &[]);
    relay_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::2/64", "dev", up.a(), "nodad"]);
    lab.wire_like();
    wait_for("XDP on the upstream interface", SECS, || {
        let out = relay_ns.exec(&["ip", "link", "show", "dev", up.a()]);
        Some(()).filter(|_| String::from_utf8_lossy(&out.stdout).contains("xdp"))
    });
    let client = Dhclient::start(client_ns, &scratch, "dhclient", access.a(), &["-N", "-P"]);
    client.wait_event("BOUND6", "new_ip6_prefix", SECS);
    let counts = relay.show("statistics")["xdp"].clone();
    assert!(counts["relay_replied"].as_u64() >= Some(2), "Relay-Replies unwrapped in XDP: {counts}");
}

/// The relay config for tagged clients on `trunk`: S-VLAN 100 alone, and C-VLANs 1-4000
/// under it.
fn vlan_relay_config(trunk: &str) -> String {
    let entry = |vlans: &str| {
        format!(
            r#"
[[relay.interface]]
name = "{trunk}"
{vlans}
group = "core"
link_address = "2001:db8:2::1"
remote_id = {{ enterprise = 2011, template = "{{interface}}/{{vlan}}/{{inner_vlan}}/{{mac}}" }}
client_link_layer_address = true
"#
        )
    };
    format!(
        "[server]\n\n[relay]\n[[relay.group]]\nname = \"core\"\nservers = [\"2001:db8:ff::1\"]\n{}{}",
        entry("vlan = 100"),
        // A range: an entry for each of C-VLANs 1 to 4000 under S-VLAN 100 (4,001 entries).
        entry("vlan = 100\ninner_vlan = \"1-4000\"")
    )
}

#[test]
fn tagged_clients_through_the_xdp_relay_to_kea() {
    tagged_clients_to_kea(true);
}

#[test]
fn tagged_clients_through_the_userspace_relay_to_kea() {
    tagged_clients_to_kea(false);
}

/// Two dhclients behind an access switch that tags one's line with VLAN 100 and the other's
/// with 100.200 (QinQ), toward one relay trunk: each is matched to its access entry, Kea sees
/// an Interface-ID and a Remote-ID naming its VLANs, and the answers go down tagged again
/// (the switch delivers only frames with the line's tags).
fn tagged_clients_to_kea(xdp: bool) {
    use dhcp6_tests::{access_switch::AccessSwitch, relay_lab::wire_like};
    use dhcp6_user::relay::Vlans;
    let scratch = Scratch::new(if xdp { "d6vlx" } else { "d6vlu" });
    let kea_ns = Netns::new("d6vk");
    let relay_ns = Netns::new("d6vr");
    let switch_ns = Netns::new("d6vs");
    let clients = [Netns::new("d6va"), Netns::new("d6vb")];
    let (up, capture, _tcpdump) = dhcp6_tests::relay_lab::upstream(&scratch, &relay_ns, &kea_ns);
    let trunk = Veth::new(&switch_ns, &relay_ns);
    let lines: Vec<Veth> = clients.iter().map(|c| Veth::new(c, &switch_ns)).collect();
    let vlans = [Vlans { outer: 100, inner: 0 }, Vlans { outer: 100, inner: 200 }];
    let ports: Vec<(String, Vlans)> = lines.iter().zip(vlans).map(|(l, v)| (l.b().to_string(), v)).collect();
    let _switch = AccessSwitch::start(&switch_ns, trunk.a(), &ports);
    let mut ends: Vec<(&Netns, &str)> = clients.iter().zip(&lines).map(|(c, l)| (c, l.a())).collect();
    ends.push((&switch_ns, trunk.a()));
    ends.push((&kea_ns, up.b()));
    wire_like(&relay_ns, &ends, &["2001:db8:ff::1"]);

    let dir = scratch.path("kea");
    let _kea =
        start_kea(&kea_ns, &dir, &kea_config(&dir, up.b(), "2001:db8:ff::1", "2001:db8:2::1000-2001:db8:2::1fff"));
    let flags: &[&str] = if xdp { &[] } else { &["--no-xdp"] };
    let relay = Dhcp6d::start(&relay_ns, &scratch, "relay", &vlan_relay_config(trunk.b()), flags);
    std::thread::sleep(Duration::from_secs(2));
    let dhclients: Vec<Dhclient> = clients
        .iter()
        .zip(&lines)
        .enumerate()
        .map(|(n, (c, l))| Dhclient::start(c, &scratch, &format!("dhclient{n}"), l.a(), &["-N"]))
        .collect();
    for d in &dhclients {
        let address = d.wait_event("BOUND6", "new_ip6_address", SECS);
        assert!(address.starts_with("2001:db8:2::1"), "{address}");
    }

    // Each client's messages went up naming its VLANs, with its MAC in the Remote-ID (read from
    // the capture until they are there: tcpdump hands packets over in blocks, up to a second
    // late).
    let expected: Vec<(String, String)> = clients
        .iter()
        .zip(&lines)
        .zip([(format!("{}.100", trunk.b()), "100/"), (format!("{}.100.200", trunk.b()), "100/200")])
        .map(|((client, line), (id, vlans))| {
            let out = client.exec(&["cat", &format!("/sys/class/net/{}/address", line.a())]);
            let mac = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (id, format!("{}/{vlans}/{mac}", trunk.b()))
        })
        .collect();
    let named = |forwards: &[Vec<u8>], id: &str, remote: &str| {
        forwards
            .iter()
            .filter(|f| {
                let Message::Relay(f) = Message::decode(f).unwrap() else { return false };
                f.options.iter().any(|o| *o == DhcpOption::InterfaceId(id.as_bytes()))
                    && f.options
                        .iter()
                        .any(|o| matches!(o, DhcpOption::RemoteId(r) if r.remote_id == remote.as_bytes()))
            })
            .count()
    };
    let forwards = || -> Vec<Vec<u8>> {
        dhcp6_user::capture::read_pcap(&capture)
            .map(|ds| {
                ds.into_iter()
                    .map(|d| d.payload)
                    .filter(|p| p.first() == Some(&(MessageType::RelayForw as u8)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let seen = wait_for("each client's Solicit and Request, naming its VLANs, in the capture", SECS, || {
        let f = forwards();
        expected.iter().all(|(id, remote)| named(&f, id, remote) >= 2).then_some(f)
    });
    let ours: usize = expected.iter().map(|(id, remote)| named(&seen, id, remote)).sum();
    assert_eq!(ours, seen.len(), "every Relay-Forward names one client's VLANs: {expected:?}");

    // The user entries name interface and VLANs; XDP carried it all, or userspace did.
    let users = relay.show("relay users");
    let mut interfaces: Vec<String> =
        users.as_array().unwrap().iter().map(|u| u["interface"].as_str().unwrap().to_string()).collect();
    interfaces.sort();
    assert_eq!(interfaces, [format!("{}.100", trunk.b()), format!("{}.100.200", trunk.b())]);
    let mut tags: Vec<(u64, u64)> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["vlan"].as_u64().unwrap(), u["inner_vlan"].as_u64().unwrap_or(0)))
        .collect();
    tags.sort();
    assert_eq!(tags, [(100, 0), (100, 200)], "{users}");
    let xdp_counts = relay.show("statistics")["xdp"].clone();
    let carried = |verdict: &str| xdp_counts[verdict].as_u64().unwrap_or(0);
    if xdp {
        assert!(carried("relay_forwarded") >= 4 && carried("relay_replied") >= 4, "{xdp_counts}");
    } else {
        let stats = relay.show("relay servers")["stats"].clone();
        assert!(stats["forwarded"].as_u64() >= Some(4) && stats["replies_relayed"].as_u64() >= Some(4), "{stats}");
        assert_eq!(carried("relay_forwarded"), 0);
    }
}

/// The relay's packet socket for tagged clients takes only tagged frames with UDP to port 547
/// (on a subscriber trunk every data frame is tagged too), and reads them with their tags as
/// they were on the wire.
#[test]
fn the_relays_packet_socket_takes_only_tagged_dhcpv6_to_servers() {
    use dhcp6_tests::netns::send_frames;
    use dhcp6_user::{
        daemon::{packet_socket::PacketSocket, relay_frames::client_frame, socket::if_index},
        relay::Vlans,
    };
    let (relay_ns, peer_ns) = (Netns::new("d6pr"), Netns::new("d6pp"));
    let link = Veth::new(&relay_ns, &peer_ns);
    let (mac, relays) = ([2, 0, 0, 0, 0, 0xc1], "ff02::1:2".parse().unwrap());
    let frame = |vlans: Vlans, port: u16| {
        client_frame(
            [0x33, 0x33, 0, 1, 0, 2],
            mac,
            vlans,
            ("fe80::c1".parse().unwrap(), relays),
            (546, port),
            &[1, 0, 0, 7],
        )
        .unwrap()
    };
    let (one, two) = (Vlans { outer: 100, inner: 0 }, Vlans { outer: 100, inner: 200 });
    let wanted = [frame(one, 547), frame(two, 547)];
    let others = [frame(Vlans::NONE, 547), frame(one, 53), frame(two, 53)];
    let socket = relay_ns.run(|| PacketSocket::open(if_index(link.a()).unwrap(), true).unwrap());
    let frames: Vec<Vec<u8>> = others.iter().chain(&wanted).cloned().collect();
    peer_ns.run(|| send_frames(link.b(), &frames));
    std::thread::sleep(Duration::from_millis(300));
    let mut buf = vec![0u8; 10_000];
    let mut got = Vec::new();
    while let Ok(r) = socket.recv(&mut buf) {
        got.push(buf[..r.len].to_vec());
    }
    assert_eq!(got, wanted, "only the tagged DHCPv6 frames to port 547, tags and all");
}
