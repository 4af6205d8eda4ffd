//! Reconfigure (RFC 9915 section 18.3.11) and its key (section 20.4) against dhcpcd, which
//! checks the key: dhcpcd sends Reconfigure Accept, is given a key in the Reply to its
//! Request, and renews when dhcp6d sends it a Reconfigure signed with that key, after a reload
//! that changed its DNS server (it then holds the new one), after `dhcp6d reconfigure`, and
//! behind the dhcp6d relay. dhclient, which sends no Reconfigure Accept, gets neither a key nor
//! a Reconfigure. What dhcp6d sent is read back from captures, and tshark reads the
//! Authentication and Reconfigure Message options as the codec does.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use dhcp6_codec::{option::DhcpOption, Message, MessageType};
use dhcp6_common::PIN_LAYOUT;
use dhcp6_tests::{
    netns::{Netns, Process, Veth},
    peers::{wait_for, Dhclient, Dhcp6d, Dhcpcd, Scratch},
    relay_lab::RelayLab,
};
use dhcp6_user::{
    capture::read_pcap,
    server::{reconfigure_message, ReconfigureKey},
};

const SECS: Duration = Duration::from_secs(30);

/// T1 half an hour away: within a test a client renews only when asked to.
fn config(interface: Option<&str>, prefix: &str, dns: &str) -> String {
    let interface = interface.map(|i| format!("interface = \"{i}\"\n")).unwrap_or_default();
    format!(
        r#"[server]
preferred_lifetime = 3000
valid_lifetime = 3600
t1 = 1800
t2 = 2880
dns_servers = ["{dns}"]

[[subnet]]
{interface}prefix = "{prefix}::/64"
name = "lan"
ranges = [{{ low = "{prefix}::100", high = "{prefix}::1ff" }}]
"#
    )
}

/// A server and a client namespace on one link, the client's side captured (ports 546 and
/// 547). The client's frames carry whole UDP checksums, as a NIC's do, so that they reach
/// dhcp6d through XDP's AF_XDP socket.
struct Lab {
    server: Netns,
    client: Netns,
    veth: Veth,
    scratch: Scratch,
    capture: PathBuf,
    _tcpdump: Process,
}

fn lab(name: &str) -> Lab {
    let server = Netns::new("rcs");
    let client = Netns::new("rcc");
    let veth = Veth::new(&server, &client);
    server.exec(&["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", veth.a(), "nodad"]);
    client.exec(&["ethtool", "-K", veth.b(), "tx", "off"]);
    let scratch = Scratch::new(name);
    // On the client's side: replies dhcp6d sends through its AF_XDP socket pass no packet
    // tap on the server's.
    let (capture, tcpdump) = capture(&client, &scratch, veth.b());
    Lab { server, client, veth, scratch, capture, _tcpdump: tcpdump }
}

/// tcpdump on `interface` in `ns`, DHCPv6 both ways, to a file of the scratch folder.
fn capture(ns: &Netns, scratch: &Scratch, interface: &str) -> (PathBuf, Process) {
    let path = scratch.path(&format!("{interface}.pcap"));
    let tcpdump = ns.spawn(
        &["tcpdump", "-U", "-i", interface, "-w", path.to_str().unwrap(), "udp port 546 or udp port 547"],
        &scratch.path(&format!("tcpdump-{interface}.log")),
    );
    // tcpdump captures from when it has opened the interface.
    wait_for("tcpdump to listen", SECS, || {
        std::fs::read_to_string(scratch.path(&format!("tcpdump-{interface}.log")))
            .ok()
            .filter(|l| l.contains("listening"))
    });
    (path, tcpdump)
}

/// The client messages in a capture (unwrapped from Relay-Replies and Relay-Forwards), with
/// their frame numbers, once `enough` says they are all there (tcpdump hands frames over in
/// blocks, a while after they passed).
fn messages(capture: &Path, enough: impl Fn(&[(usize, Vec<u8>)]) -> bool) -> Vec<(usize, Vec<u8>)> {
    wait_for("the capture to hold the messages", SECS, || Some(captured(capture)).filter(|m| enough(m)))
}

fn captured(capture: &Path) -> Vec<(usize, Vec<u8>)> {
    let mut out = Vec::new();
    for d in read_pcap(capture).unwrap() {
        let Ok(m) = Message::decode(&d.payload) else { continue };
        if let Ok(inner) = m.innermost().to_vec() {
            out.push((d.frame, inner));
        }
    }
    out
}

/// The Authentication option of a message: (protocol, algorithm, RDM, replay detection, info).
fn auth(message: &[u8]) -> Option<(u8, u8, u8, u64, Vec<u8>)> {
    let m = Message::decode(message).ok()?;
    m.options().iter().find_map(|o| match o {
        DhcpOption::Auth(a) => Some((a.protocol, a.algorithm, a.rdm, a.replay_detection, a.auth_info.to_vec())),
        _ => None,
    })
}

fn msg_type(message: &[u8]) -> Option<MessageType> {
    Message::decode(message).ok().map(|m| m.msg_type())
}

/// The key the Replies in `capture` gave (type 1 of the Reconfigure Key protocol), checking
/// that each Reconfigure there is signed with it and that tshark reads every Authentication
/// and Reconfigure Message option as the codec does. Waits for `at_least` Reconfigures to be
/// there; returns the key and how many there were.
fn key_and_reconfigures(capture: &Path, at_least: usize) -> (ReconfigureKey, usize) {
    let count =
        |all: &[(usize, Vec<u8>)]| all.iter().filter(|(_, m)| msg_type(m) == Some(MessageType::Reconfigure)).count();
    let all = messages(capture, |all| count(all) >= at_least);
    let keys: Vec<[u8; 16]> = all
        .iter()
        .filter(|(_, m)| msg_type(m) == Some(MessageType::Reply))
        .filter_map(|(_, m)| auth(m))
        .map(|(protocol, algorithm, rdm, _, info)| {
            assert_eq!((protocol, algorithm, rdm, info[0], info.len()), (3, 1, 0, 1, 17), "RFC 9915 section 20.4.1");
            info[1..].try_into().unwrap()
        })
        .collect();
    let key = ReconfigureKey(*keys.first().expect("a Reply giving a Reconfigure Key"));
    assert!(keys.iter().all(|k| *k == key.0), "one key per client");
    let reconfigures: Vec<&Vec<u8>> =
        all.iter().filter(|(_, m)| msg_type(m) == Some(MessageType::Reconfigure)).map(|(_, m)| m).collect();
    for r in &reconfigures {
        assert!(reconfigure_message::verify(r, &key), "a Reconfigure signed with the client's key");
    }
    tshark_agrees(capture, &all);
    (key, reconfigures.len())
}

/// tshark's reading of the Authentication and Reconfigure Message options of every frame of
/// `capture` is the codec's (`messages` is what the codec read, by frame).
fn tshark_agrees(capture: &Path, messages: &[(usize, Vec<u8>)]) {
    let fields = [
        "frame.number",
        "dhcpv6.auth.protocol",
        "dhcpv6.auth.algorithm",
        "dhcpv6.auth.rdm",
        "dhcpv6.auth.replay_detection",
        "dhcpv6.auth.info",
        "dhcpv6.reconf_msg",
    ];
    let mut command = Command::new("tshark");
    command.arg("-r").arg(capture).args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=l"]);
    for f in fields {
        command.args(["-e", f]);
    }
    let out = command.output().expect("this test needs tshark");
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    let theirs: BTreeMap<usize, Vec<String>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut f = l.split('|').map(str::to_string);
            (f.next().unwrap().parse().unwrap(), f.collect())
        })
        .collect();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut compared = 0;
    for (frame, m) in messages {
        let reconf_msg = Message::decode(m).unwrap().options().iter().find_map(|o| match o {
            DhcpOption::ReconfMsg(t) => Some(t.to_string()),
            _ => None,
        });
        let ours: Vec<String> = match auth(m) {
            Some((p, a, r, replay, info)) => {
                vec![p.to_string(), a.to_string(), r.to_string(), hex(&replay.to_be_bytes()), hex(&info)]
            }
            None => vec![String::new(); 5],
        }
        .into_iter()
        .chain([reconf_msg.unwrap_or_default()])
        .collect();
        let theirs = theirs.get(frame).unwrap_or_else(|| panic!("tshark printed no frame {frame}"));
        // tshark prints bytes with colons.
        let theirs: Vec<String> = theirs.iter().map(|v| v.replace(':', "")).collect();
        assert_eq!(theirs, ours, "frame {frame}: tshark, then the codec");
        compared += usize::from(!ours[0].is_empty());
    }
    assert!(compared > 0, "no Authentication option to compare");
}

/// dhcpcd binds (DNS 2001:db8::53); the file's DNS server becomes 2001:db8::54 and `dhcp6d
/// reload` sends it a Reconfigure; dhcpcd renews and holds the new server.
#[test]
fn dhcpcd_renews_on_the_reconfigure_a_reload_sends_and_takes_the_new_dns_server() {
    let lab = lab("reconf-reload");
    let interface = lab.veth.a();
    let server =
        Dhcp6d::start(&lab.server, &lab.scratch, "srv", &config(Some(interface), "2001:db8:1", "2001:db8::53"), &[]);
    let client = Dhcpcd::start(&lab.client, &lab.scratch, "dhcpcd", lab.veth.b());
    client.wait_value("new_dhcp6_name_servers", "2001:db8::53", SECS);
    assert_eq!(server.bound().len(), 1, "dhcpcd said:\n{}", client.log());
    let renews = server.stat("received", "RENEW");

    server.rewrite_config(&config(Some(interface), "2001:db8:1", "2001:db8::54"));
    let out = server.command(&["reload"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("1 client(s) sent a Reconfigure (renew)"), "{said}");

    let reason = client.wait_value("new_dhcp6_name_servers", "2001:db8::54", SECS);
    assert_eq!(reason, "RENEW6", "dhcpcd said:\n{}", client.log());
    assert!(server.stat("received", "RENEW") > renews);
    assert!(server.stat("sent", "RECONFIGURE") >= 1);
    assert!(client.log().contains("accepted reconfigure key"), "{}", client.log());
    let (_, reconfigures) = key_and_reconfigures(&lab.capture, 1);
    assert!(reconfigures >= 1);
    // Its Renew ended the retransmissions (REC_TIMEOUT is 2 s): none more.
    let sent = server.stat("sent", "RECONFIGURE");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(server.stat("sent", "RECONFIGURE"), sent, "{}", server.process.log_text());
}

/// `dhcp6d reconfigure --client DUID` makes dhcpcd renew (its T1 is half an hour away), and
/// `--pool` names a pool's clients.
#[test]
fn dhcp6d_reconfigure_client_makes_dhcpcd_renew() {
    let lab = lab("reconf-client");
    let interface = lab.veth.a();
    let server =
        Dhcp6d::start(&lab.server, &lab.scratch, "srv", &config(Some(interface), "2001:db8:1", "2001:db8::53"), &[]);
    let client = Dhcpcd::start(&lab.client, &lab.scratch, "dhcpcd", lab.veth.b());
    client.wait_value("new_dhcp6_name_servers", "2001:db8::53", SECS);
    let duid = server.show("bindings")[0]["duid"].as_str().unwrap().to_string();
    assert!(client.events().iter().all(|(r, _)| r != "RENEW6"));

    let out = server.command(&["reconfigure", "--client", &duid]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("1 client(s) sent a Reconfigure (renew)"), "{said}{}", String::from_utf8_lossy(&out.stderr));
    wait_for("dhcpcd to renew", SECS, || client.events().iter().any(|(r, _)| r == "RENEW6").then_some(()));
    assert!(server.stat("received", "RENEW") >= 1);

    // The pool's clients: dhcpcd again, once its Renew ended the first Reconfigure.
    let out = server.command(&["reconfigure", "--pool", "lan"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 client(s) sent a Reconfigure (renew)"));
    wait_for("dhcpcd to renew again", SECS, || {
        (client.events().iter().filter(|(r, _)| r == "RENEW6").count() >= 2).then_some(())
    });
    let out = server.command(&["reconfigure", "--pool", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pool is named \"nope\""));
    let (_, reconfigures) = key_and_reconfigures(&lab.capture, 2);
    assert!(reconfigures >= 2);
}

/// dhclient sends no Reconfigure Accept: its Reply carries no key, and it is sent no
/// Reconfigure, by client or by pool.
#[test]
fn dhclient_without_reconfigure_accept_gets_no_key_and_no_reconfigure() {
    let lab = lab("reconf-dhclient");
    let interface = lab.veth.a();
    let server =
        Dhcp6d::start(&lab.server, &lab.scratch, "srv", &config(Some(interface), "2001:db8:1", "2001:db8::53"), &[]);
    let client = Dhclient::start(&lab.client, &lab.scratch, "dhclient", lab.veth.b(), &[]);
    client.wait_event("BOUND6", "new_ip6_address", SECS);
    let duid = server.show("bindings")[0]["duid"].as_str().unwrap().to_string();
    for args in [["reconfigure", "--client", duid.as_str()], ["reconfigure", "--pool", "lan"]] {
        let out = server.command(&args);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("0 client(s) sent a Reconfigure"), "{said}");
        assert!(said.contains("1 client(s) without a Reconfigure Key"), "{said}");
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(server.stat("sent", "RECONFIGURE"), 0);
    // dhclient's Solicit, Request and their answers, at least.
    let all = messages(&lab.capture, |all| all.len() >= 4);
    assert!(all.iter().any(|(_, m)| msg_type(m) == Some(MessageType::Reply)), "the Reply was captured");
    assert!(all.iter().all(|(_, m)| auth(m).is_none()), "no Authentication option anywhere");
    assert!(all.iter().all(|(_, m)| msg_type(m) != Some(MessageType::Reconfigure)));
}

#[test]
fn a_relayed_dhcpcd_gets_the_reconfigure_through_the_dhcp6d_relay() {
    relayed_dhcpcd(false);
}

#[test]
fn a_relayed_dhcpcd_gets_the_reconfigure_through_the_dhcp6d_xdp_relay() {
    relayed_dhcpcd(true);
}

/// dhcpcd behind the dhcp6d relay (from userspace, or in XDP): the Reconfigure goes in a
/// Relay-Reply to the relay, which carries it down; dhcpcd renews through the relay and holds
/// the new DNS server.
fn relayed_dhcpcd(xdp: bool) {
    let scratch = Scratch::new(if xdp { "reconf-relayx" } else { "reconf-relay" });
    let lab = RelayLab::new(&scratch, "rcs");
    let relay_args: &[&str] = if xdp {
        lab.wire_like();
        &[]
    } else {
        lab.client_ns.exec(&["ethtool", "-K", lab.access.a(), "tx", "off"]);
        &["--no-xdp"]
    };
    let relay_config = format!(
        r#"[server]

[relay]
[[relay.group]]
name = "core"
servers = ["2001:db8:ff::1"]

[[relay.interface]]
name = "{}"
group = "core"
link_address = "2001:db8:2::1"
"#,
        lab.access.b()
    );
    let server =
        Dhcp6d::start(&lab.server_ns, &scratch, "srv", &config(None, "2001:db8:2", "2001:db8::53"), &["--no-xdp"]);
    let relay = Dhcp6d::start(&lab.relay_ns, &scratch, "relay", &relay_config, relay_args);
    let client = Dhcpcd::start(&lab.client_ns, &scratch, "dhcpcd", lab.access.a());
    client.wait_value("new_dhcp6_name_servers", "2001:db8::53", SECS);

    let xdp_replied = |relay: &Dhcp6d| relay.show("statistics")["xdp"]["relay_replied"].as_u64().unwrap_or(0);
    let replied_before = xdp_replied(&relay);
    server.rewrite_config(&config(None, "2001:db8:2", "2001:db8::54"));
    let out = server.command(&["reload"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 client(s) sent a Reconfigure (renew)"));
    let reason = client.wait_value("new_dhcp6_name_servers", "2001:db8::54", SECS);
    assert_eq!(reason, "RENEW6", "dhcpcd said:\n{}", client.log());
    // On the server's side: the Reconfigure inside a Relay-Reply to the relay.
    let relay_replies = || -> Vec<Vec<u8>> {
        read_pcap(&lab.capture)
            .unwrap()
            .into_iter()
            .filter(|d| d.destination.ip() == &"2001:db8:ff::2".parse::<std::net::Ipv6Addr>().unwrap())
            .map(|d| d.payload)
            .collect()
    };
    let relay_replies = wait_for("the Reconfigure's Relay-Reply in the capture", SECS, || {
        Some(relay_replies()).filter(|r| r.len() >= 4)
    });
    assert!(relay_replies.iter().any(|p| {
        Message::decode(p).is_ok_and(|m| {
            m.msg_type() == MessageType::RelayRepl && m.innermost().msg_type() == MessageType::Reconfigure
        })
    }));
    let (_, reconfigures) = key_and_reconfigures(&lab.capture, 1);
    assert!(reconfigures >= 1);
    if xdp {
        // The Reconfigure and the Reply to the Renew it brought, carried down in XDP.
        assert!(xdp_replied(&relay) >= replied_before + 2, "{}", relay.show("statistics"));
    }
}

/// Entries in the XDP lease map pinned under `dir`.
fn fast_path_entries(dir: &Path) -> usize {
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(dir.join(PIN_LAYOUT).join("LEASES"))
        .output()
        .unwrap();
    assert!(out.status.success(), "bpftool: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap().as_array().map_or(0, Vec::len)
}

/// dhcpcd's renewals are answered in XDP (its link crosses a bridge whose port runs `dhcp6d
/// xdp pass`, as in the lab). A Reconfigure takes its binding out of the XDP lease map first,
/// so that its Renew reaches dhcp6d, which sees the answer and stops; then the binding is
/// back in the map.
#[test]
fn a_client_answered_in_xdp_renews_through_dhcp6d_when_reconfigured() {
    let server_ns = Netns::new("rcbs");
    let switch_ns = Netns::new("rcbw");
    let client_ns = Netns::new("rcbc");
    let port_srv = Veth::new(&server_ns, &switch_ns);
    let port_cli = Veth::new(&client_ns, &switch_ns);
    switch_ns.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
    switch_ns.exec(&["ip", "link", "set", "br0", "up"]);
    for port in [port_srv.b(), port_cli.b()] {
        switch_ns.exec(&["ip", "link", "set", port, "master", "br0"]);
    }
    client_ns.exec(&["ethtool", "-K", port_cli.a(), "tx", "off"]);
    let scratch = Scratch::new("reconf-xdp");
    let binary = dhcp6_tests::peers::dhcp6d_binary();
    let _pass = switch_ns
        .spawn(&[binary.to_str().unwrap(), "xdp", "pass", "--interface", port_srv.b()], &scratch.path("pass.log"));
    wait_for("XDP on the bridge port", SECS, || {
        let out = switch_ns.exec(&["ip", "-d", "link", "show", port_srv.b()]);
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp").then_some(())
    });
    let server =
        Dhcp6d::start(&server_ns, &scratch, "srv", &config(Some(port_srv.a()), "2001:db8:1", "2001:db8::53"), &[]);
    let dir = server.bpf_dir.clone().expect("XDP pinned");
    let client = Dhcpcd::start(&client_ns, &scratch, "dhcpcd", port_cli.a());
    client.wait_value("new_dhcp6_name_servers", "2001:db8::53", SECS);
    wait_for("the binding in the XDP lease map", SECS, || (fast_path_entries(&dir) == 1).then_some(()));
    let xdp_replied = || server.show("statistics")["xdp"]["replied"].as_u64().unwrap_or(0);
    let replied = xdp_replied();

    let duid = server.show("bindings")[0]["duid"].as_str().unwrap().to_string();
    let out = server.command(&["reconfigure", "--client", &duid]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 client(s) sent a Reconfigure"));
    wait_for("dhcpcd to renew", SECS, || client.events().iter().any(|(r, _)| r == "RENEW6").then_some(()));
    assert!(server.stat("received", "RENEW") >= 1, "the Renew came up to dhcp6d");
    assert_eq!(xdp_replied(), replied, "XDP answered none of it");
    wait_for("the binding back in the XDP lease map", SECS, || (fast_path_entries(&dir) == 1).then_some(()));
    let sent = server.stat("sent", "RECONFIGURE");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(server.stat("sent", "RECONFIGURE"), sent, "no retransmission after the answer");
}
