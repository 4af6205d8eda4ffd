//! dhcp6d as a server to real clients in network namespaces: ISC dhclient, dhcpcd and
//! perfdhcp, directly and behind ISC dhcrelay, and two dhcp6d servers sharing one /64.

use std::time::Duration;

use dhcp6_tests::{
    netns::{Netns, Veth},
    peers::{wait_for, Dhclient, Dhcp6d, Scratch},
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
    server.exec(&["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", veth.a(), "nodad"]);
    DirectLink { server, client, veth, scratch: Scratch::new(name) }
}

/// A link whose clients' frames carry their UDP checksums, as from a NIC (a veth leaves them
/// to offload, and XDP sends such frames up the stack, which knows, instead of to dhcp6d's
/// AF_XDP socket).
fn nic_link(name: &str) -> DirectLink {
    let lab = direct_link(name);
    lab.client.exec(&["ethtool", "-K", lab.veth.b(), "tx", "off"]);
    lab
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
    // Userspace alone: with XDP, the fast path would answer the Renews this test leaves
    // unanswered to make dhclient rebind (tests/fast_path.rs is about that).
    let server = Dhcp6d::start(&lab.server, &lab.scratch, "srv", &config(lab.veth.a()), &["--no-xdp"]);
    let client = Dhclient::start(&lab.client, &lab.scratch, "dhclient", lab.veth.b(), &[]);
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
    let releaser =
        Dhclient { process: lab.client.spawn(&["sleep", "0"], &lab.scratch.path("noop.log")), dir: client.dir.clone() };
    releaser.run_once(&lab.client, lab.veth.b(), &["-r"]);
    wait_for("the lease to be released", SECS, || server.bound().is_empty().then_some(()));
    assert!(server.stat("received", "RELEASE") >= 1);
    assert_eq!(server.stat("dropped", "malformed"), 0);
}

#[test]
fn dhclient_gets_an_address_and_a_prefix() {
    let lab = nic_link("napd");
    let server = Dhcp6d::start(&lab.server, &lab.scratch, "srv", &config(lab.veth.a()), &[]);
    let client = Dhclient::start(&lab.client, &lab.scratch, "dhclient", lab.veth.b(), &["-N", "-P"]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    let prefix = client.wait_event("BOUND6", "new_ip6_prefix", SECS);
    assert!(in_range(&address));
    let p: Ipv6Net = prefix.parse().unwrap();
    assert_eq!(p.prefix_len(), 56);
    assert!("2001:db8:8000::/40".parse::<Ipv6Net>().unwrap().contains(&p));
    let mut bound = server.bound();
    bound.sort();
    assert_eq!(bound, vec![(format!("{address}/128"), "ia_na".into()), (prefix, "ia_pd".into())]);
    // Its Solicit and Request came through the AF_XDP socket, and the answers went back
    // through it (dhclient took them).
    let via_af_xdp = server.stat("xdp", "to_af_xdp");
    assert!(via_af_xdp >= 2, "{via_af_xdp} messages through AF_XDP");
    let received: u64 =
        server.show("statistics")["received"].as_object().unwrap().values().filter_map(|n| n.as_u64()).sum();
    assert_eq!(via_af_xdp, received, "every message came that way");
}

#[test]
fn checksums_left_to_offload_go_up_the_stack_and_are_served_there() {
    // A veth's own frames, their checksums left to offload: XDP cannot check them, the stack
    // can; dhcp6d reads them from its UDP socket and answers there.
    let lab = direct_link("offload");
    let server = Dhcp6d::start(&lab.server, &lab.scratch, "srv", &config(lab.veth.a()), &[]);
    let client = Dhclient::start(&lab.client, &lab.scratch, "dhclient", lab.veth.b(), &[]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    assert!(in_range(&address), "{address}");
    assert_eq!(server.stat("xdp", "to_af_xdp"), 0);
    assert!(server.stat("xdp", "dhcp6_passed") >= 2);
}

#[test]
fn af_xdp_off_in_the_config_serves_through_the_udp_socket() {
    let lab = nic_link("noafxdp");
    let config = config(lab.veth.a()).replace("[server]\n", "[server]\naf_xdp = false\n");
    let server = Dhcp6d::start(&lab.server, &lab.scratch, "srv", &config, &[]);
    let client = Dhclient::start(&lab.client, &lab.scratch, "dhclient", lab.veth.b(), &[]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    assert!(in_range(&address), "{address}");
    assert_eq!(server.stat("xdp", "to_af_xdp"), 0, "XDP hands nothing to a socket that is not there");
    assert!(server.stat("xdp", "dhcp6_passed") >= 2);
}

#[test]
fn dhclient_stateless_gets_options_and_no_lease() {
    let lab = direct_link("stateless");
    let server = Dhcp6d::start(&lab.server, &lab.scratch, "srv", &config(lab.veth.a()), &[]);
    let client = Dhclient::start(&lab.client, &lab.scratch, "dhclient", lab.veth.b(), &["-S"]);
    let dns = wait_for("dhclient to record name servers", SECS, || {
        client.events().into_iter().find_map(|(_, v)| v.get("new_dhcp6_name_servers").cloned())
    });
    assert_eq!(dns, "2001:db8::53");
    assert!(server.stat("received", "INFORMATION-REQUEST") >= 1);
    assert!(server.bound().is_empty());
}

/// Runs dhcpcd once (IA_NA + IA_PD, no router advertisements, no hooks) and returns its log.
fn dhcpcd_once(ns: &Netns, scratch: &Scratch, interface: &str) -> String {
    let conf = scratch.path("dhcpcd.conf");
    std::fs::write(
        &conf,
        format!("noipv6rs\nipv6only\nnohook resolv.conf\ninterface {interface}\n  ia_na 1\n  ia_pd 2\n"),
    )
    .unwrap();
    let out = ns.exec_status(&[
        "timeout",
        "30",
        "dhcpcd",
        "-f",
        conf.to_str().unwrap(),
        "-c",
        "/bin/true",
        "-B",
        "-6",
        "-1",
        "-t",
        "20",
        interface,
    ]);
    let _ = std::fs::remove_file(format!("/var/lib/dhcpcd/{interface}.lease6"));
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

#[test]
fn dhcpcd_gets_an_address_and_a_prefix() {
    let lab = nic_link("dhcpcd");
    let server = Dhcp6d::start(&lab.server, &lab.scratch, "srv", &config(lab.veth.a()), &[]);
    let log = dhcpcd_once(&lab.client, &lab.scratch, lab.veth.b());
    let mut kinds: Vec<String> = server.bound().into_iter().map(|(_, t)| t).collect();
    kinds.sort();
    assert_eq!(kinds, vec!["ia_na", "ia_pd"], "dhcpcd said:\n{log}");
    assert!(server.stat("xdp", "to_af_xdp") >= 2, "dhcpcd's Solicit and Request through AF_XDP");
}

/// perfdhcp's summary for one exchange: (sent, received, rejected leases, non unique addresses).
fn perfdhcp_stats(output: &str, exchange: &str) -> (u64, u64, u64, u64) {
    let section = output
        .split("***Statistics for: ")
        .find(|s| s.starts_with(exchange))
        .unwrap_or_else(|| panic!("no {exchange} in:\n{output}"));
    let value = |key: &str| -> u64 {
        section
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {exchange}"))
    };
    (value("sent packets:"), value("received packets:"), value("rejected leases:"), value("non unique addresses:"))
}

#[test]
fn perfdhcp_four_message_exchanges_complete_without_rejects_or_duplicates() {
    let lab = nic_link("perf4");
    let config = config(lab.veth.a()).replace(
        "low = \"2001:db8:1::100\", high = \"2001:db8:1::1ff\"",
        "low = \"2001:db8:1::1:0\", high = \"2001:db8:1::2:0\"",
    );
    let server = Dhcp6d::start(&lab.server, &lab.scratch, "srv", &config, &[]);
    let out = lab.client.exec_status(&[
        "timeout",
        "60",
        "perfdhcp",
        "-6",
        "-l",
        lab.veth.b(),
        "-r",
        "200",
        "-n",
        "1000",
        "-R",
        "1000",
        "-p",
        "20",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for exchange in ["SOLICIT-ADVERTISE", "REQUEST-REPLY"] {
        let (sent, received, rejected, duplicates) = perfdhcp_stats(&text, exchange);
        assert!(sent >= 900, "{exchange}: sent {sent}\n{text}");
        assert!(received * 100 >= sent * 99, "{exchange}: {received} of {sent} answered\n{text}");
        assert_eq!((rejected, duplicates), (0, 0), "{exchange}\n{text}");
    }
    let bindings = server.bound();
    let unique: std::collections::BTreeSet<&String> = bindings.iter().map(|(r, _)| r).collect();
    assert_eq!(unique.len(), bindings.len());
    assert!(bindings.len() >= 500, "{} bindings", bindings.len());
    assert_eq!(server.stat("dropped", "malformed"), 0);
    let received = server.stat("received", "SOLICIT") + server.stat("received", "REQUEST");
    assert_eq!(server.stat("xdp", "to_af_xdp"), received, "every message through the AF_XDP socket");
}

#[test]
fn perfdhcp_two_message_exchanges_with_rapid_commit_bind_each_client_once() {
    let lab = direct_link("perf2");
    let server = Dhcp6d::start(&lab.server, &lab.scratch, "srv", &config(lab.veth.a()), &[]);
    // perfdhcp 2.2 matches a rapid-commit Reply against a Request it never sent: with a rate
    // it stops at the first Reply, and its summary counts none. So each client runs its own
    // one-exchange perfdhcp, and the server's counters and bindings are the check.
    const CLIENTS: usize = 40;
    for i in 0..CLIENTS {
        let duid = format!("duid=0001000100000000000c0102{i:04x}");
        lab.client.exec_status(&["perfdhcp", "-6", "-l", lab.veth.b(), "-c", "-i", "-n", "1", "-b", &duid]);
    }
    assert_eq!(server.stat("received", "SOLICIT"), CLIENTS as u64);
    assert_eq!(server.stat("sent", "REPLY"), CLIENTS as u64, "every rapid-commit Solicit gets a Reply");
    assert_eq!(server.stat("sent", "ADVERTISE"), 0);
    let bindings = server.bound();
    let unique: std::collections::BTreeSet<&String> = bindings.iter().map(|(r, _)| r).collect();
    assert_eq!((bindings.len(), unique.len()), (CLIENTS, CLIENTS), "one distinct address per client");
}

#[test]
fn clients_behind_isc_dhcrelay_are_served_with_interface_id_echoed() {
    let scratch = Scratch::new("relay");
    let lab = dhcp6_tests::relay_lab::RelayLab::new(&scratch, "d6s");
    let (server_ns, relay_ns, client_ns, up, access) =
        (&lab.server_ns, &lab.relay_ns, &lab.client_ns, &lab.up, &lab.access);
    let server = Dhcp6d::start(server_ns, &scratch, "srv", dhcp6_tests::RELAYED_LINK_SERVER, &[]);
    let upstream = format!("2001:db8:ff::1%{}", up.a());
    let _relay = relay_ns
        .spawn(&["dhcrelay", "-6", "-d", "-I", "-l", access.b(), "-u", &upstream], &scratch.path("dhcrelay.log"));
    let client = Dhclient::start(client_ns, &scratch, "dhclient", access.a(), &["-N", "-P"]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    assert!(address.starts_with("2001:db8:2::1"), "{address}");
    let prefix: Ipv6Net = client.wait_event("BOUND6", "new_ip6_prefix", SECS).parse().unwrap();
    assert_eq!(prefix.prefix_len(), 60);
    assert!(server.stat("received", "RELAY-FORW") >= 2);
    assert!(server.stat("sent", "RELAY-REPL") >= 2);
    assert_eq!(server.bound().len(), 2);

    // dhcpcd on the same access link, once dhclient has let go of port 546.
    drop(client.process);
    let log = dhcpcd_once(client_ns, &scratch, access.a());
    let bound = server.bound();
    assert_eq!(bound.len(), 4, "dhcpcd said:\n{log}");
    assert!(bound.iter().all(|(r, _)| r.starts_with("2001:db8:2::") || r.starts_with("2001:db8:90")), "{bound:?}");
}

#[test]
fn two_servers_split_one_slash_64_and_either_confirms() {
    let scratch = Scratch::new("split");
    let switch = Netns::new("d6w");
    switch.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
    switch.exec(&["ip", "link", "set", "br0", "up"]);
    let mut hosts = Vec::new();
    for prefix in ["d6s", "d6s", "d6c"] {
        let ns = Netns::new(prefix);
        let veth = Veth::new(&ns, &switch);
        switch.exec(&["ip", "link", "set", veth.b(), "master", "br0"]);
        hosts.push((ns, veth));
    }
    let half = |i: usize, range: &str| {
        let (ns, veth) = &hosts[i];
        ns.exec(&["ip", "-6", "addr", "add", &format!("2001:db8:1::{}/64", i + 1), "dev", veth.a(), "nodad"]);
        let config = format!(
            "[server]\npreferred_lifetime = 60\nvalid_lifetime = 90\n\n[[subnet]]\ninterface = \"{}\"\nprefix = \"2001:db8:1::/64\"\nranges = [{{ prefix = \"{range}\" }}]\n",
            veth.a()
        );
        Dhcp6d::start(ns, &scratch, &format!("srv{i}"), &config, &[])
    };
    let servers = [half(0, "2001:db8:1::/65"), half(1, "2001:db8:1:0:8000::/65")];
    let (client_ns, client_veth) = &hosts[2];
    let client = Dhclient::start(client_ns, &scratch, "dhclient", client_veth.a(), &[]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    let owners: Vec<usize> = (0..2).filter(|i| !servers[*i].bound().is_empty()).collect();
    assert_eq!(owners.len(), 1, "exactly one server binds the client");
    let first_half = address.parse::<std::net::Ipv6Addr>().unwrap().segments()[4] < 0x8000;
    assert_eq!(owners[0] == 0, first_half, "{address} comes from the server owning its half");

    // The client restarts with its lease and Confirms; each server alone confirms it.
    drop(client.process);
    for answering in 0..2 {
        let silent = &servers[1 - answering];
        silent.process.signal(libc::SIGSTOP);
        let before = servers[answering].stat("received", "CONFIRM");
        let _ = std::fs::remove_dir_all(client.dir.join("events"));
        let args = dhclient_args(&client.dir, client_veth.a());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let restarted = Dhclient {
            process: client_ns.spawn(&refs, &scratch.path(&format!("confirm{answering}.log"))),
            dir: client.dir.clone(),
        };
        // dhclient reports a confirmed lease as BOUND6, having sent Confirm, not Solicit.
        assert_eq!(restarted.wait_event("BOUND6", "new_ip6_address", SECS), address);
        assert!(servers[answering].stat("received", "CONFIRM") > before);
        assert_eq!(
            servers[answering].stat("received", "SOLICIT"),
            1,
            "the restarted client confirmed; it did not solicit again"
        );
        drop(restarted);
        silent.process.signal(libc::SIGCONT);
    }
}

/// The arguments of a foreground dhclient using the files in `dir`.
fn dhclient_args(dir: &std::path::Path, interface: &str) -> Vec<String> {
    let file = |f: &str| dir.join(f).display().to_string();
    [
        "dhclient",
        "-6",
        "-d",
        "-v",
        "-pf",
        &file("dhclient.pid"),
        "-lf",
        &file("dhclient.leases"),
        "-sf",
        &file("hook.sh"),
        interface,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
