//! The XDP relay in program test runs (BPF_PROG_TEST_RUN), with its maps filled as dhcp6d
//! fills them: a Relay-Reply from a group server comes out as the client's message, in a frame
//! to the client's MAC with a valid UDP checksum, reported to userspace when it is a Reply;
//! every Relay-Reply or client message the relay must not carry in XDP is passed untouched,
//! counted by reason. (The Relay-Forwards XDP builds are checked against userspace's byte for
//! byte in dhcp6-user's relay::fast_path tests, and taken by Kea and dhcp6d in tests/relay.rs.)

use std::net::Ipv6Addr;

use dhcp6_common::{
    counters::Verdict,
    relay::{AccessKey, ClientMacKey, InterfaceIdKey, RelayGroup, RelayReport, RelayServer, Vlans, RELAY_BUCKETS},
};
use dhcp6_user::{
    codec::{
        frame::{ethernet::multicast_mac, EthernetFrame, UdpFrameRepr},
        option::{DhcpOption, IaAddr, IaNa, Options},
        ClientMessage, Duid, Message, MessageType, RelayMessage, TransactionId, CLIENT_PORT, SERVER_PORT,
    },
    relay::{xdp_head::relay_link, AccessInterface},
    xdp::{RelayMaps, XdpProgram},
};

const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;
/// Test runs come in on loopback: it is both the access interface and the upstream one here.
const LO: u32 = 1;
const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x53];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
const OUR_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xc1);
const SERVER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1);
const RELAY: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 2);

/// An Ethernet frame with a UDP datagram, its checksum computed.
fn udp_frame(to: [u8; 6], from: [u8; 6], src: Ipv6Addr, dst: Ipv6Addr, ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let (src_port, dst_port) = ports;
    let repr = UdpFrameRepr {
        src_mac: from,
        dst_mac: to,
        vlans: Vlans::NONE,
        src_ip: src,
        dst_ip: dst,
        src_port,
        dst_port,
        hop_limit: 64,
    };
    repr.to_vec(payload).unwrap()
}

fn client_message(msg_type: MessageType) -> Vec<u8> {
    let duid: &'static [u8] = &[0, 3, 0, 1, 2, 0, 0, 0, 0, 0xc1];
    Message::Client(ClientMessage {
        msg_type,
        transaction_id: TransactionId::from_u32(0x00ab_cdef),
        options: Options(vec![
            DhcpOption::ClientId(Duid::new(duid).unwrap()),
            DhcpOption::IaNa(IaNa {
                iaid: 1,
                t1: 300,
                t2: 480,
                options: Options(vec![DhcpOption::IaAddr(IaAddr {
                    address: "2001:db8:2::100".parse().unwrap(),
                    preferred_lifetime: 600,
                    valid_lifetime: 900,
                    options: Options::new(),
                })]),
            }),
        ]),
    })
    .to_vec()
    .unwrap()
}

/// A Relay-Reply to `peer` naming interface `interface_id` (None: no Interface-ID) and
/// carrying `inner` (None: no Relay Message option).
fn relay_reply(peer: Ipv6Addr, interface_id: Option<&'static [u8]>, inner: Option<&[u8]>) -> Vec<u8> {
    let mut options = Options::new();
    if let Some(id) = interface_id {
        options.push(DhcpOption::InterfaceId(id));
    }
    if let Some(inner) = inner {
        let inner = Message::decode(Box::leak(inner.to_vec().into_boxed_slice())).unwrap();
        options.push(DhcpOption::RelayMsg(Box::new(inner)));
    }
    Message::Relay(RelayMessage {
        msg_type: MessageType::RelayRepl,
        hop_count: 0,
        link_address: "2001:db8:2::1".parse().unwrap(),
        peer_address: peer,
        options,
    })
    .to_vec()
    .unwrap()
}

fn from_server(payload: &[u8]) -> Vec<u8> {
    udp_frame(OUR_MAC, SERVER_MAC, SERVER, RELAY, (547, 547), payload)
}

/// The VLANs of the tagged access entries on "lo": S-VLAN 100 alone ("lo.100") and with
/// C-VLAN 200 ("lo.100.200").
const TAGGED: [(Vlans, &[u8]); 2] =
    [(Vlans { outer: 100, inner: 0 }, b"lo.100"), (Vlans { outer: 100, inner: 200 }, b"lo.100.200")];

/// The program with its relay maps as dhcp6d writes them for one access interface ("lo", by
/// Interface-ID "lo", and its VLANs of [`TAGGED`]) relaying to one server, and the client's
/// MAC learnt on each.
fn relay_program() -> (XdpProgram, RelayMaps) {
    let mut program = XdpProgram::load().expect("load the XDP program");
    let mut maps = program.take_relay().expect("the relay's maps");
    let mac = [CLIENT_MAC[0], CLIENT_MAC[1], CLIENT_MAC[2], CLIENT_MAC[3], CLIENT_MAC[4], CLIENT_MAC[5], 0, 0];
    for (vlans, id) in [(Vlans::NONE, &b"lo"[..])].into_iter().chain(TAGGED) {
        let iface = AccessInterface {
            name: "lo".into(),
            vlans,
            link_address: "2001:db8:2::1".parse().unwrap(),
            group: 0,
            interface_id: id.to_vec(),
            remote_id: Some((2011, "{interface}:{vlan}:{mac}".into())),
            client_link_layer_address: true,
        };
        let key = AccessKey { ifindex: LO, vlans };
        maps.links.insert(key, relay_link(&iface, 0, OUR_MAC, OUR_LINK_LOCAL, None).unwrap(), 0).unwrap();
        maps.interface_ids.insert(InterfaceIdKey::new(id).unwrap(), key, 0).unwrap();
        maps.client_macs.insert(ClientMacKey { ifindex: LO, vlans, peer: CLIENT.octets() }, mac, 0).unwrap();
    }
    let (word, bit) = dhcp6_common::relay::access_bit(LO).unwrap();
    maps.access_bits.set(word, bit, 0).unwrap();
    maps.servers.set(0, RelayServer { address: SERVER.octets(), source: RELAY.octets() }, 0).unwrap();
    maps.server_slots.insert(SERVER.octets(), 0, 0).unwrap();
    maps.groups.set(0, RelayGroup { buckets: [0; RELAY_BUCKETS] }, 0).unwrap();
    (program, maps)
}

/// Runs `frame` and returns the action, the frame out, and which verdict counter moved.
fn run(program: &XdpProgram, frame: &[u8]) -> (u32, Vec<u8>, Vec<Verdict>) {
    let before = program.counters().unwrap();
    let out = program.test_run_on(frame, LO, 1).unwrap();
    let after = program.counters().unwrap();
    let moved = Verdict::ALL.iter().copied().filter(|v| after.verdict(*v) > before.verdict(*v)).collect();
    (out.action, out.frame, moved)
}

/// A Relay-Reply naming `interface_id` (whose VLANs are `vlans`) comes out of XDP as the
/// client's message, in a frame with those tags, and a Reply is reported.
fn goes_down(interface_id: &'static [u8], vlans: Vlans) {
    let (program, mut maps) = relay_program();
    for (msg_type, reported) in [(MessageType::Reply, true), (MessageType::Advertise, false)] {
        let inner = client_message(msg_type);
        let relay_reply = relay_reply(CLIENT, Some(interface_id), Some(&inner));
        let (action, tagged_out, moved) = run(&program, &from_server(&relay_reply));
        assert_eq!((action, moved), (XDP_REDIRECT, vec![Verdict::RelayReplied]), "{msg_type:?}");
        // Ethernet to the client from us, tagged (802.1Q alone, 802.1ad over 802.1Q), IPv6 from
        // our link-local address to the client, 547 -> 546: the frame userspace writes.
        let frame = EthernetFrame::new_checked(&tagged_out[..]).unwrap();
        let tpids: Vec<u16> = frame.vlan_tags().map(|t| t.tpid).collect();
        assert_eq!(tpids, [&[][..], &[0x8100], &[0x88a8, 0x8100]][vlans.tags()], "{vlans:?}: the tags, outer first");
        let (got, udp) = UdpFrameRepr::parse(&frame).unwrap();
        let down = UdpFrameRepr {
            src_mac: OUR_MAC,
            dst_mac: CLIENT_MAC,
            vlans,
            src_ip: OUR_LINK_LOCAL,
            dst_ip: CLIENT,
            src_port: SERVER_PORT,
            dst_port: CLIENT_PORT,
            hop_limit: 64,
        };
        assert_eq!(got, down, "{vlans:?}");
        assert_eq!(udp.payload(), &inner[..], "the client's message, nothing after it");
        assert!(udp.verify_checksum(&got.src_ip, &got.dst_ip), "UDP checksum");
        assert_eq!(tagged_out, down.to_vec(&inner).unwrap(), "{vlans:?}: byte for byte");
        let report = maps.reports.next().map(|item| {
            // SAFETY: XDP writes whole reports; plain integers and bytes.
            unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<RelayReport>()) }
        });
        match (reported, report) {
            (true, Some(r)) => {
                assert_eq!((r.ifindex, r.vlans, Ipv6Addr::from(r.peer)), (LO, vlans, CLIENT));
                assert_eq!(&r.mac[..6], &CLIENT_MAC, "the MAC XDP learnt");
                assert_eq!(&r.msg[..r.len as usize], &inner[..], "the Reply, reported whole");
            }
            (false, None) => {}
            (want, got) => panic!("{msg_type:?}: report wanted {want}, got {}", got.is_some()),
        }
    }
}

#[test]
fn a_relay_reply_from_our_server_goes_down_to_the_client_and_its_reply_is_reported() {
    goes_down(b"lo", Vlans::NONE);
}

#[test]
fn a_relay_reply_naming_a_vlan_goes_down_tagged_with_it() {
    for (vlans, id) in TAGGED {
        goes_down(id, vlans);
    }
}

#[test]
fn relay_replies_xdp_must_not_carry_are_passed_untouched() {
    let (program, _maps) = relay_program();
    let reply = client_message(MessageType::Reply);
    let good = relay_reply(CLIENT, Some(b"lo"), Some(&reply));
    let mut bad_checksum = from_server(&good);
    let last = bad_checksum.len() - 1;
    bad_checksum[last] ^= 0x01;
    let mut cut_option = good.clone();
    // The Interface-ID option (right after the 34-byte header) claims more than there is.
    cut_option[36..38].copy_from_slice(&0x4000u16.to_be_bytes());
    let nested = relay_reply(CLIENT, Some(b"lo"), Some(&relay_reply(CLIENT, Some(b"x"), Some(&reply))));
    let cases: Vec<(&str, Vec<u8>, Verdict)> = vec![
        ("a bad UDP checksum", bad_checksum, Verdict::RelayUnfit),
        (
            "an Interface-ID of no access interface",
            from_server(&relay_reply(CLIENT, Some(b"eth9"), Some(&reply))),
            Verdict::RelayUnfit,
        ),
        ("no Interface-ID", from_server(&relay_reply(CLIENT, None, Some(&reply))), Verdict::RelayUnfit),
        ("no Relay Message", from_server(&relay_reply(CLIENT, Some(b"lo"), None)), Verdict::RelayUnfit),
        ("a Relay-Reply inside (for a downstream relay)", from_server(&nested), Verdict::RelayUnfit),
        ("an option running past the end", from_server(&cut_option), Verdict::RelayUnfit),
        (
            "sent to an address that is not ours toward the server",
            udp_frame(OUR_MAC, SERVER_MAC, SERVER, "2001:db8:ff::99".parse().unwrap(), (547, 547), &good),
            Verdict::RelayUnfit,
        ),
        (
            "from no server of ours",
            udp_frame(OUR_MAC, SERVER_MAC, "2001:db8:ff::66".parse().unwrap(), RELAY, (547, 547), &good),
            Verdict::Dhcp6Passed,
        ),
        (
            "for a client whose MAC XDP has not seen",
            from_server(&relay_reply("fe80::99".parse().unwrap(), Some(b"lo"), Some(&reply))),
            Verdict::RelayNoPeer,
        ),
    ];
    for (what, frame, verdict) in cases {
        let (action, out, moved) = run(&program, &frame);
        assert_eq!((action, moved), (XDP_PASS, vec![verdict]), "{what}");
        assert_eq!(out, frame, "{what}: passed as it came");
    }
}

#[test]
fn client_messages_xdp_must_not_carry_are_passed_untouched() {
    let (program, _maps) = relay_program();
    let all_relays: Ipv6Addr = "ff02::1:2".parse().unwrap();
    let to_relays =
        |payload: &[u8]| udp_frame(multicast_mac(&all_relays), CLIENT_MAC, CLIENT, all_relays, (546, 547), payload);
    let solicit = client_message(MessageType::Solicit);
    let mut bad_checksum = to_relays(&solicit);
    let last = bad_checksum.len() - 1;
    bad_checksum[last] ^= 0x01;
    let mut long_duid = solicit.clone();
    // The Client ID option (first, at 4) claims a DUID longer than RFC 9915 allows.
    long_duid[6..8].copy_from_slice(&200u16.to_be_bytes());
    long_duid.resize(4 + 4 + 200, 0);
    let cases: Vec<(&str, Vec<u8>, Verdict)> = vec![
        // No route toward the server here: the kernel and userspace take them (and resolve it).
        ("a Solicit with no route to the server", to_relays(&solicit), Verdict::RelayNoRoute),
        ("a Release with no route", to_relays(&client_message(MessageType::Release)), Verdict::RelayNoRoute),
        ("a Decline with no route", to_relays(&client_message(MessageType::Decline)), Verdict::RelayNoRoute),
        ("an Advertise (server to client)", to_relays(&client_message(MessageType::Advertise)), Verdict::RelayUnfit),
        ("a bad UDP checksum", bad_checksum, Verdict::RelayUnfit),
        ("a Client ID longer than a DUID can be", to_relays(&long_duid), Verdict::RelayUnfit),
        (
            "a unicast to a server (routed, not relayed)",
            udp_frame(OUR_MAC, CLIENT_MAC, CLIENT, SERVER, (546, 547), &solicit),
            Verdict::RelayUnfit,
        ),
        // Tagged: matched to the access entry of its VLANs (which has no route here either),
        // or to none.
        (
            "a Solicit on VLAN 100 with no route",
            dhcp6_tests::tagged(&to_relays(&solicit), Vlans { outer: 100, inner: 0 }),
            Verdict::RelayNoRoute,
        ),
        (
            "a Solicit on VLANs 100.200 with no route",
            dhcp6_tests::tagged(&to_relays(&solicit), Vlans { outer: 100, inner: 200 }),
            Verdict::RelayNoRoute,
        ),
        (
            "a Solicit on a VLAN no entry relays",
            dhcp6_tests::tagged(&to_relays(&solicit), Vlans { outer: 300, inner: 0 }),
            Verdict::Dhcp6Passed,
        ),
        (
            "a Solicit on VLANs 100.300 (only 100 alone and 100.200 are relayed)",
            dhcp6_tests::tagged(&to_relays(&solicit), Vlans { outer: 100, inner: 300 }),
            Verdict::Dhcp6Passed,
        ),
    ];
    for (what, frame, verdict) in cases {
        let (action, out, moved) = run(&program, &frame);
        assert_eq!((action, moved), (XDP_PASS, vec![verdict]), "{what}");
        assert_eq!(out, frame, "{what}: passed as it came");
    }
}
