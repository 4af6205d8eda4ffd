//! Per-client storm protection (`[storm]`): in program test runs, XDP cuts a client past its
//! burst, by its MAC, and a relayed client by its DUID, and no one else; with dhcp6d between
//! real peers, one dhcp6-load client storming at 50,000 Solicits a second is cut in XDP while
//! perfdhcp's clients on another link bind at their normal rate without a drop.

use std::time::Duration;

use dhcp6_common::storm::{StormConfig, KEY_DUID, KEY_MAC};
use dhcp6_tests::{
    netns::{Netns, Veth},
    peers::{dhcp6_load_binary, wait_for, Dhcp6d, Scratch},
};
use dhcp6_user::{codec::frame::UdpFrameRepr, xdp::XdpProgram};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

fn option(out: &mut Vec<u8>, code: u16, data: &[u8]) {
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// A Solicit of the client with DUID-LL `mac`.
fn solicit(duid_mac: [u8; 6]) -> Vec<u8> {
    let mut m = vec![1, 0x12, 0x34, 0x56];
    let mut duid = vec![0, 3, 0, 1];
    duid.extend_from_slice(&duid_mac);
    option(&mut m, 1, &duid);
    option(&mut m, 8, &[0, 0]);
    m
}

/// The frame of a client's message from `mac` to ff02::1:2.
fn from_client(mac: [u8; 6], message: &[u8]) -> Vec<u8> {
    UdpFrameRepr::from_client(mac, "fe80::1".parse().unwrap()).to_vec(message).unwrap()
}

/// The frame of a relay's Relay-Forward (from `relay_mac`, to the server's address) carrying
/// `message`.
fn relay_forward(relay_mac: [u8; 6], message: &[u8]) -> Vec<u8> {
    let mut m = vec![12, 0];
    m.extend_from_slice(&"2001:db8:1::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    m.extend_from_slice(&"fe80::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    option(&mut m, 9, message);
    let repr = UdpFrameRepr {
        src_mac: relay_mac,
        dst_mac: [2, 0, 0, 0, 0, 0xfe],
        vlans: Default::default(),
        src_ip: "2001:db8:ff::1".parse().unwrap(),
        dst_ip: "2001:db8:ff::2".parse().unwrap(),
        src_port: 547,
        dst_port: 547,
        hop_limit: 64,
    };
    repr.to_vec(&m).unwrap()
}

/// The actions of `runs` runs of the program on `frame`, one at a time.
fn actions(program: &XdpProgram, frame: &[u8], runs: usize) -> Vec<u32> {
    (0..runs).map(|_| program.test_run(frame).unwrap()).collect()
}

/// How many of `actions` are drops; every other one is a pass.
fn drops(actions: &[u32]) -> usize {
    assert!(actions.iter().all(|a| *a == XDP_DROP || *a == XDP_PASS), "{actions:?}");
    actions.iter().filter(|a| **a == XDP_DROP).count()
}

/// A limit of one message a second in bursts of three: of ten messages sent at once, three
/// pass and seven are cut (eight, nine or ten pass only if the runs spread over seconds, each
/// second adding one).
#[test]
fn xdp_cuts_a_client_past_its_burst_by_mac_and_a_relayed_one_by_duid() {
    let mut program = XdpProgram::load().expect("load the XDP program");
    let mut storm = program.take_storm(StormConfig::OFF).expect("the storm maps");
    let (storming, quiet, relay) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]);
    let stormer_solicit = from_client(storming, &solicit(storming));

    // Off: nothing is cut.
    assert_eq!(drops(&actions(&program, &stormer_solicit, 20)), 0, "storm protection off");
    assert_eq!(storm.cut(), (0, 0));

    storm.set(StormConfig::new(1, 3)).unwrap();
    let cut = drops(&actions(&program, &stormer_solicit, 10));
    assert!((5..=7).contains(&cut), "past the burst of 3, cut: {cut} of 10");
    assert_eq!(storm.cut(), (cut as u64, 0), "counted by MAC");
    // Another client on the link has its own bucket; the same client's other DUID does not
    // help it (a MAC is a MAC).
    assert_eq!(drops(&actions(&program, &from_client(quiet, &solicit(quiet)), 3)), 0, "another MAC");
    assert!(drops(&actions(&program, &from_client(storming, &solicit(quiet)), 3)) >= 2, "same MAC");
    // Answers to clients (port 546) are nobody's storm.
    let mut advertise = solicit(storming);
    advertise[0] = 2;
    let to_client =
        UdpFrameRepr { src_port: 547, dst_port: 546, ..UdpFrameRepr::from_client(quiet, "fe80::2".parse().unwrap()) };
    assert_eq!(drops(&actions(&program, &to_client.to_vec(&advertise).unwrap(), 10)), 0, "an Advertise");

    // Relayed: the relay's MAC is every relayed client's; the client inside is the key.
    let (cut_by_mac, _) = storm.cut();
    let relayed_storm = relay_forward(relay, &solicit(storming));
    let relayed_cut = drops(&actions(&program, &relayed_storm, 10));
    assert!((5..=7).contains(&relayed_cut), "a relayed client past its burst, cut: {relayed_cut} of 10");
    let others: Vec<u32> =
        (10..20u8).flat_map(|n| actions(&program, &relay_forward(relay, &solicit([2, 0, 0, 0, 1, n])), 1)).collect();
    assert_eq!(drops(&others), 0, "ten other clients through the same relay: {others:?}");
    assert_eq!(storm.cut(), (cut_by_mac, relayed_cut as u64), "counted by DUID");

    // Both recorded for `show storms`: the MAC, and the DUID's bytes.
    let records = storm.records();
    let mac = records.iter().find(|(k, _)| k.kind == KEY_MAC).expect("the MAC's record");
    assert_eq!(&mac.1.id[..6], &storming);
    assert!(mac.1.cut >= cut as u64);
    let duid = records.iter().find(|(k, _)| k.kind == KEY_DUID).expect("the DUID's record");
    assert_eq!((duid.1.id_len, &duid.1.id[..4]), (10, &[0u8, 3, 0, 1][..]));
    assert_eq!(duid.1.cut, relayed_cut as u64);
    assert_eq!(records.len(), 2, "no one else: {records:?}");

    // Off again: the storming client passes.
    storm.set(StormConfig::OFF).unwrap();
    assert_eq!(drops(&actions(&program, &stormer_solicit, 10)), 0);
}

/// perfdhcp's summary for one exchange: (sent, received).
fn perfdhcp_sent_received(output: &str, exchange: &str) -> (u64, u64) {
    let section = output
        .split("***Statistics for: ")
        .find(|s| s.starts_with(exchange))
        .unwrap_or_else(|| panic!("no {exchange} in:\n{output}"));
    let value = |key: &str| -> u64 {
        section
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {exchange}:\n{output}"))
    };
    (value("sent packets:"), value("received packets:"))
}

/// The MAC of `interface` in `ns`, as `ip link` shows it.
fn mac_of(ns: &Netns, interface: &str) -> String {
    let out = ns.exec(&["ip", "-j", "link", "show", "dev", interface]);
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    links[0]["address"].as_str().unwrap().to_string()
}

#[test]
fn a_storming_client_is_cut_in_xdp_while_perfdhcp_clients_bind_without_a_drop() {
    let server_ns = Netns::new("d6ss");
    let stormer_ns = Netns::new("d6sc");
    let perf_ns = Netns::new("d6sp");
    let storm_link = Veth::new(&server_ns, &stormer_ns);
    let perf_link = Veth::new(&server_ns, &perf_ns);
    let scratch = Scratch::new("storm");
    // Their frames carry whole checksums, as from a NIC.
    stormer_ns.exec(&["ethtool", "-K", storm_link.b(), "tx", "off"]);
    perf_ns.exec(&["ethtool", "-K", perf_link.b(), "tx", "off"]);
    let config = format!(
        r#"[server]
valid_lifetime = 600

[storm]
rate = 100
burst = 200

[[subnet]]
interface = "{}"
prefix = "2001:db8:1::/64"
ranges = [{{ low = "2001:db8:1::1:0", high = "2001:db8:1::2:0" }}]

[[subnet]]
interface = "{}"
prefix = "2001:db8:2::/64"
ranges = [{{ low = "2001:db8:2::1:0", high = "2001:db8:2::2:0" }}]
"#,
        storm_link.a(),
        perf_link.a()
    );
    let server = Dhcp6d::start(&server_ns, &scratch, "srv", &config, &[]);

    // One client, 50,000 Solicits a second, for as long as perfdhcp needs.
    let load = dhcp6_load_binary();
    let mut stormer = stormer_ns.spawn(
        &[load.to_str().unwrap(), "-i", storm_link.b(), "-r", "50000", "-s", "60", "--storm"],
        &scratch.path("storm.log"),
    );
    wait_for("the storm to be cut", Duration::from_secs(30), || {
        (server.stat("dropped", "storm") > 10_000).then_some(())
    });

    // perfdhcp's clients, on the other link, at their normal rate: each exchange completes.
    let out = perf_ns.exec_status(&[
        "timeout",
        "60",
        "perfdhcp",
        "-6",
        "-l",
        perf_link.b(),
        "-r",
        "20",
        "-n",
        "100",
        "-p",
        "30",
        "-W",
        "3000000",
        "-d",
        "5",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for exchange in ["SOLICIT-ADVERTISE", "REQUEST-REPLY"] {
        let (sent, received) = perfdhcp_sent_received(&text, exchange);
        assert!(sent >= 100, "{exchange}: sent {sent}\n{text}");
        assert_eq!(
            received,
            sent,
            "{exchange}: no drops for perfdhcp's clients\n{text}\n{}\n{}",
            server.show("statistics"),
            server.show("storms")
        );
    }

    // Still storming: `show storms` names the storming MAC, and no one else.
    let storms = server.show("storms");
    let clients = storms["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 1, "{storms}");
    assert_eq!(clients[0]["key"], "mac");
    assert_eq!(clients[0]["interface"], storm_link.a());
    assert_eq!(clients[0]["id"], mac_of(&stormer_ns, storm_link.b()));
    assert_eq!((storms["rate"].as_u64(), storms["burst"].as_u64()), (Some(100), Some(200)));
    let text_out = server.command(&["show", "storms"]);
    assert!(String::from_utf8_lossy(&text_out.stdout).contains(&mac_of(&stormer_ns, storm_link.b())));

    stormer.signal(libc::SIGINT);
    let _ = stormer.wait();
    // What reached the server of the storm is at most the rate over the time (60 s at most)
    // and the burst; the rest was cut, counted by MAC, and under `dropped` as `storm`.
    let stats = server.show("statistics");
    let cut = stats["storm"]["cut_by_mac"].as_u64().unwrap();
    assert_eq!(server.stat("dropped", "storm"), cut);
    assert_eq!(stats["storm"]["cut_by_duid"].as_u64(), Some(0));
    let solicits = server.stat("received", "SOLICIT");
    assert!(solicits <= 100 * 60 + 200 + 200, "{solicits} Solicits reached the server");
    assert!(cut > 10 * solicits, "cut {cut}, let through {solicits}");
}
