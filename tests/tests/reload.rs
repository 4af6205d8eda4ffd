//! Reloading the configuration of a running dhcp6d (`dhcp6d reload`, SIGHUP) and locking a
//! pool, with real dhclient: no lease is lost, the XDP program stays attached (the same
//! program id), and XDP's renewal answers follow the new options.
//!
//! The lab: dhcp6d's veth goes to a bridge in a switch namespace, where two client
//! namespaces have a port each: one runs dhclient, the other the test crate's own client
//! (each binds port 546, so they cannot share a namespace).

use std::{process::Output, time::Duration};

use aya::programs::XdpMode;
use dhcp6_tests::{
    client::{client_duid, TestClient},
    netns::{Netns, Veth},
    peers::{wait_for, Dhclient, Dhcp6d, Scratch},
};
use dhcp6_user::xdp::XdpProgram;

const SECS: Duration = Duration::from_secs(40);

/// Status code NoAddrsAvail (RFC 9915 section 21.13).
const NO_ADDRS_AVAIL: u16 = 2;

/// Renewals within a test: T1 2 s. `pools` are the subnet's `ranges` entries; `extra` goes
/// into the `[[subnet]]` table.
fn config(interface: &str, dns: &str, pools: &str, extra: &str) -> String {
    format!(
        r#"[server]
preferred_lifetime = 20
valid_lifetime = 30
t1 = 2
t2 = 4
dns_servers = ["{dns}"]
rapid_commit = true

[[subnet]]
interface = "{interface}"
prefix = "2001:db8:1::/64"
name = "lan"
ranges = [{pools}]
{extra}
"#
    )
}

const FIRST: &str = r#"{ low = "2001:db8:1::100", high = "2001:db8:1::100" }"#;
const SECOND: &str = r#"{ low = "2001:db8:1::200", high = "2001:db8:1::2ff" }"#;

/// dhcp6d's namespace, a switch, and two client namespaces on its bridge.
struct Lab {
    server: Netns,
    clients: [Netns; 2],
    up: Veth,
    ports: Vec<Veth>,
    scratch: Scratch,
    // Declared last: dropped after the links.
    _switch: Netns,
    _switch_xdp: XdpProgram,
}

fn lab(name: &str) -> Lab {
    let server = Netns::new("d6s");
    let switch = Netns::new("d6w");
    let clients = [Netns::new("d6c"), Netns::new("d6c")];
    let up = Veth::new(&server, &switch);
    server.exec(&["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", up.a(), "nodad"]);
    switch.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
    switch.exec(&["ip", "link", "set", "br0", "up"]);
    switch.exec(&["ip", "link", "set", up.b(), "master", "br0"]);
    let ports: Vec<Veth> = clients.iter().map(|c| Veth::new(&switch, c)).collect();
    for (port, client) in ports.iter().zip(&clients) {
        switch.exec(&["ip", "link", "set", port.a(), "master", "br0"]);
        // A NIC delivers checksums whole; a veth leaves them to offload unless told not to,
        // and XDP passes such frames up the stack instead of answering them.
        client.exec(&["ethtool", "-K", port.b(), "tx", "off"]);
    }
    // A veth takes the frames its peer sends with XDP_TX only when it runs XDP itself: the
    // switch's end gets a program of its own, which passes everything.
    let mut switch_xdp = XdpProgram::load_with(16).unwrap();
    switch.run(|| switch_xdp.attach(up.b(), XdpMode::Driver)).unwrap();
    Lab { server, clients, up, ports, scratch: Scratch::new(name), _switch: switch, _switch_xdp: switch_xdp }
}

impl Lab {
    /// The id of the XDP program attached to dhcp6d's interface.
    fn xdp_prog_id(&self) -> u64 {
        let out = self.server.exec(&["ip", "-j", "link", "show", "dev", self.up.a()]);
        let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        links[0]["xdp"]["prog"]["id"].as_u64().unwrap_or_else(|| panic!("no XDP program on {}: {links}", self.up.a()))
    }

    /// The IA_NA status of a Rapid Commit Solicit of client `n`, sent from the second client
    /// namespace.
    fn ia_na_status(&self, n: u32) -> u16 {
        let interface = self.ports[1].b();
        wait_for("an answer to the test client", SECS, || {
            self.clients[1].run(|| TestClient::new(interface).ia_na_status(&client_duid(n)))
        })
    }

    /// Client `n` (second namespace) binds an address with Rapid Commit.
    fn bind(&self, n: u32) -> std::net::Ipv6Addr {
        let interface = self.ports[1].b();
        wait_for("the test client to be granted an address", SECS, || {
            self.clients[1].run(|| TestClient::new(interface).rapid_solicit(&client_duid(n))).map(|(g, _)| g.address)
        })
    }
}

/// Waits for dhclient to renew `times` more times, each with `address`; returns the last
/// renewal's variables.
fn renews(client: &Dhclient, address: &str, times: usize) -> std::collections::BTreeMap<String, String> {
    let before = client.values("RENEW6", "new_ip6_address").len();
    let mut renewals = wait_for(&format!("{times} more renewals"), SECS, || {
        let events: Vec<_> = client.events().into_iter().filter(|(r, _)| r == "RENEW6").map(|(_, v)| v).collect();
        (events.len() >= before + times).then_some(events)
    });
    let new = renewals.split_off(before);
    let addresses: Vec<Option<&String>> = new.iter().map(|v| v.get("new_ip6_address")).collect();
    assert!(addresses.iter().all(|a| *a == Some(&address.to_string())), "renewed with {address}: {addresses:?}");
    new.into_iter().last().unwrap_or_default()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn reloads_add_a_pool_remove_one_and_refuse_a_bad_file_while_dhclient_renews() {
    let lab = lab("reload");
    let interface = lab.up.a().to_string();
    let server = Dhcp6d::start(&lab.server, &lab.scratch, "srv", &config(&interface, "2001:db8::53", FIRST, ""), &[]);
    let prog = lab.xdp_prog_id();
    let client = Dhclient::start(&lab.clients[0], &lab.scratch, "dhclient", lab.ports[0].b(), &[]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    assert_eq!(address, "2001:db8:1::100", "the first pool's only address");
    renews(&client, &address, 1);
    // The first pool is full: a new client gets nothing.
    assert_eq!(lab.ia_na_status(1), NO_ADDRS_AVAIL);

    // 1. `dhcp6d reload`: a second pool, and another name server.
    server.rewrite_config(&config(&interface, "2001:db8::54", &format!("{FIRST}, {SECOND}"), ""));
    let out = server.command(&["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("subnet 2001:db8:1::/64 changed: ranges, dns_servers"), "{}", text(&out));
    let new_client = lab.bind(1);
    assert!(
        (0x200..=0x2ff).contains(&new_client.segments()[7])
            && new_client.segments()[..7] == [0x2001, 0xdb8, 1, 0, 0, 0, 0],
        "served from the new pool: {new_client}"
    );
    // dhclient's renewals now carry the new name server, XDP's answers included (their
    // entries were rewritten: XDP would otherwise tell the old one).
    wait_for("a renewal telling the new name server", SECS, || {
        let last = renews(&client, &address, 1);
        (last.get("new_dhcp6_name_servers").map(String::as_str) == Some("2001:db8::54")).then_some(())
    });
    let before = server.stat("xdp", "replied");
    let last = renews(&client, &address, 2);
    assert_eq!(last.get("new_dhcp6_name_servers").map(String::as_str), Some("2001:db8::54"));
    assert!(server.stat("xdp", "replied") > before, "XDP answered renewals after the reload");

    // 2. SIGHUP: the first pool goes. dhclient keeps its address, renewed.
    server.rewrite_config(&config(&interface, "2001:db8::54", SECOND, ""));
    server.process.signal(libc::SIGHUP);
    wait_for("the SIGHUP reload in the log", SECS, || {
        server.process.log_text().contains("leases outside the new pools renew until they expire").then_some(())
    });
    renews(&client, &address, 2);
    assert!(server.bound().contains(&(format!("{address}/128"), "ia_na".into())));
    // A new client is served from the pool that stays.
    let third = lab.bind(2);
    assert!((0x200..=0x2ff).contains(&third.segments()[7]), "{third}");

    // 3. A file that does not parse: refused with its line, the running configuration stays.
    server.rewrite_config("[server]\nvalid_lifetime = 30\n[[subnet\n");
    let out = server.command(&["reload"]);
    assert!(!out.status.success(), "a bad file is refused: {}", text(&out));
    assert!(text(&out).contains("line 5"), "the error names its line: {}", text(&out));
    renews(&client, &address, 2);
    assert_eq!(lab.bind(2), third, "the test client is still served, with its address");

    assert_eq!(lab.xdp_prog_id(), prog, "the XDP program stayed attached throughout");
    let log = server.process.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_locked_pool_gives_new_clients_nothing_and_its_clients_renew() {
    let lab = lab("poollock");
    let interface = lab.up.a().to_string();
    let open = config(&interface, "2001:db8::53", SECOND, "");
    let server = Dhcp6d::start(&lab.server, &lab.scratch, "srv", &open, &[]);
    let prog = lab.xdp_prog_id();
    let client = Dhclient::start(&lab.clients[0], &lab.scratch, "dhclient", lab.ports[0].b(), &[]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);

    let out = server.command(&["pool", "lock", "lan"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("pool \"lan\" locked"), "{}", text(&out));
    let locked = |server: &Dhcp6d| server.show("pools")[0]["locked"].as_bool();
    assert_eq!(locked(&server), Some(true), "show pools --json shows the lock");
    let out = server.command(&["show", "pools"]);
    assert!(text(&out).contains(" lan ") && text(&out).contains(" locked "), "the table shows it: {}", text(&out));
    assert_eq!(lab.ia_na_status(1), NO_ADDRS_AVAIL, "a new client gets nothing");
    renews(&client, &address, 2);
    let out = server.command(&["pool", "lock", "nowhere"]);
    assert!(!out.status.success() && text(&out).contains("no pool is named \"nowhere\""), "{}", text(&out));

    // A reload takes the configuration's value: unlocked.
    let out = server.command(&["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(locked(&server), Some(false), "the reload put the configuration's lock back");
    assert_eq!(lab.ia_na_status(1), 0, "served again");
    // ... and `locked = true` in the file locks it.
    server.rewrite_config(&config(&interface, "2001:db8::53", SECOND, "locked = true"));
    server.process.signal(libc::SIGHUP);
    wait_for("the lock from the file", SECS, || (locked(&server) == Some(true)).then_some(()));
    assert_eq!(lab.ia_na_status(2), NO_ADDRS_AVAIL);
    renews(&client, &address, 1);
    assert_eq!(lab.xdp_prog_id(), prog);
}

/// The relay's configuration for [`a_relay_reload_moves_a_group_to_another_server_and_retires_an_entry`]:
/// `servers` in its one group, the access entry `entry` (a `[[relay.interface]]` table's
/// body, or nothing).
fn relay_config(servers: &str, entries: &str) -> String {
    format!("[server]\n\n[relay]\n[[relay.group]]\nname = \"core\"\nservers = [{servers}]\n\n{entries}")
}

/// A `[[relay.interface]]` on `name` (with `vlan`, if given).
fn relay_entry(name: &str, interface_id: &str, vlan: Option<u16>) -> String {
    let vlan = vlan.map(|v| format!("vlan = {v}\n")).unwrap_or_default();
    format!("[[relay.interface]]\nname = \"{name}\"\n{vlan}group = \"core\"\nlink_address = \"2001:db8:2::1\"\ninterface_id = \"{interface_id}\"\n")
}

/// A relay with its XDP program attached, two dhcp6d servers upstream (each with its own share
/// of the link's addresses): reloads move the group to the second server, change the access
/// entry's Interface-ID (XDP keeps relaying, by the new maps) and add a VLAN entry on it,
/// refuse an entry on an interface the relay does not relay on, then retire the untagged entry.
#[test]
fn a_relay_reload_moves_a_group_to_another_server_and_retires_an_entry() {
    use dhcp6_tests::RELAYED_LINK_SERVER;
    let scratch = Scratch::new("rreload");
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
        // Rapid Commit, for the test client.
        let config = RELAYED_LINK_SERVER.replacen("[server]\n", "[server]\nrapid_commit = true\n", 1).replace(
            r#"ranges = [{ low = "2001:db8:2::100", high = "2001:db8:2::1ff" }]"#,
            &format!(r#"ranges = [{{ low = "2001:db8:2::{n}00", high = "2001:db8:2::{n}ff" }}]"#),
        );
        let server = Dhcp6d::start(&ns, &scratch, &format!("srv{n}"), &config, &["--no-xdp"]);
        servers.push((ns, up, server));
    }
    let mut ends = vec![(&client_ns, access.a())];
    ends.extend(servers.iter().map(|(ns, up, _)| (ns, up.b())));
    dhcp6_tests::relay_lab::wire_like(&relay_ns, &ends, &["2001:db8:f1::1", "2001:db8:f2::1"]);
    // The untagged clients, and a VLAN's (so that the relay reads the link's tagged frames).
    let vlan100 = relay_entry(access.b(), "vlan100", Some(100));
    let entry = format!("{}\n{vlan100}", relay_entry(access.b(), "first", None));
    let relay = Dhcp6d::start(&relay_ns, &scratch, "relay", &relay_config("\"2001:db8:f1::1\"", &entry), &[]);
    let prog_id = || {
        let out = relay_ns.exec(&["ip", "-j", "link", "show", "dev", access.b()]);
        let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        links[0]["xdp"]["prog"]["id"].as_u64().unwrap_or_else(|| panic!("no XDP program on the access link: {links}"))
    };
    let prog = wait_for("the relay's XDP program", SECS, || std::panic::catch_unwind(prog_id).ok());
    // Each client tried until a Reply comes; the addresses they were given.
    let serve = |clients: std::ops::Range<u32>| -> Vec<String> {
        client_ns.run(|| {
            let mut client = TestClient::new(access.a());
            clients
                .map(|n| {
                    wait_for(&format!("client {n} served"), SECS, || {
                        client.rapid_solicit(&client_duid(n)).map(|(g, _)| g.address.to_string())
                    })
                })
                .collect()
        })
    };
    let xdp = |name: &str| relay.show("statistics")["xdp"][name].as_u64().unwrap_or(0);
    let first = serve(0..8);
    assert!(first.iter().all(|a| a.starts_with("2001:db8:2::1")), "the first server's: {first:?}");
    let (forwarded, replied) = (xdp("relay_forwarded"), xdp("relay_replied"));
    assert!(forwarded >= 8 && replied >= 8, "XDP relayed both ways: {forwarded} {replied}");

    // 1. The group moves to the second server, the entry's Interface-ID changes, and VLAN 200
    // gets an entry.
    let vlans = format!("{vlan100}\n{}", relay_entry(access.b(), "vlan200", Some(200)));
    let entries = format!("{}\n{vlans}", relay_entry(access.b(), "second", None));
    relay.rewrite_config(&relay_config("\"2001:db8:f2::1\"", &entries));
    let out = relay.command(&["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("relay: group core: servers 2001:db8:f2::1"), "{said}");
    assert!(said.contains(&format!("relay: access entry {} changed", access.b())), "{said}");
    assert!(said.contains(&format!("relay: access entry {}.200 added", access.b())), "{said}");
    let second = serve(100..108);
    assert!(second.iter().all(|a| a.starts_with("2001:db8:2::2")), "the second server's: {second:?}");
    // XDP relayed them, Replies too: its group map and Interface-ID map were rewritten (a
    // Relay-Reply naming "second" is found only in the new one).
    assert!(xdp("relay_forwarded") >= forwarded + 8, "XDP relayed up after the reload");
    assert!(xdp("relay_replied") >= replied + 8, "XDP relayed the Replies down after the reload");
    let servers_now = relay.show("relay servers");
    let listed: Vec<&str> =
        servers_now["servers"].as_array().unwrap().iter().filter_map(|s| s["server"].as_str()).collect();
    assert_eq!(listed, ["2001:db8:f2::1"], "{servers_now}");

    // 2. An entry on an interface the relay does not relay on needs a restart: refused, and the
    // running configuration stays.
    let more = format!("{entries}\n{}", relay_entry(servers[0].1.a(), "upstream", None));
    relay.rewrite_config(&relay_config("\"2001:db8:f2::1\"", &more));
    let out = relay.command(&["reload"]);
    assert!(!out.status.success(), "refused: {}", text(&out));
    assert!(text(&out).contains("needs a restart"), "{}", text(&out));
    assert!(serve(200..202).iter().all(|a| a.starts_with("2001:db8:2::2")));

    // 3. The untagged entry is removed: its clients are no longer relayed, and what comes is
    // counted.
    relay.rewrite_config(&relay_config("\"2001:db8:f2::1\"", &vlans));
    let out = relay.command(&["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("relay: access entry {} removed", access.b())), "{}", text(&out));
    let answered = client_ns.run(|| TestClient::new(access.a()).rapid_solicit(&client_duid(300)).is_some());
    assert!(!answered, "a removed entry relays nothing");
    wait_for("the retired entry's drop counted", SECS, || {
        let stats = relay.show("relay servers");
        (stats["stats"]["dropped"]["retired"].as_u64() >= Some(1)).then_some(())
    });
    assert_eq!(prog_id(), prog, "the relay's XDP program stayed attached throughout");
    let log = relay.process.log_text();
    assert!(!log.contains("panicked"), "{log}");
}
