//! The XDP Renew/Rebind fast path in program test runs (BPF_PROG_TEST_RUN): the real Renews
//! and Rebinds of the captures, answered by the XDP program from a lease map that userspace
//! filled from the engine, must come out as the engine's own Reply to the same request, in a
//! frame addressed back to the client with a valid UDP checksum, with and without VLAN tags,
//! sent to the multicast address or to ours, with the Client ID first (as clients send it) or
//! last, with two bytes of padding after the options (as dhcpcd sends some). What the fast path must not answer is passed untouched. For one of a failover pair
//! (RFC 8156), what the state forbids is passed too (Rebinds left to the partner), and no
//! answer tells a client more than the MCLT past what the partner acknowledged. A prefix's
//! Prefix Exclude (RFC 6603) is answered to the clients that ask for it.

use std::{
    collections::VecDeque,
    net::{Ipv6Addr, SocketAddrV6},
};

use dhcp6_common::{
    counters::Verdict,
    renewal::LinkEntry,
    wire::frame::{ETH_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN},
};
use dhcp6_tests::{tagged, vector_frames, with_ip};
use dhcp6_user::{
    codec::{
        frame::{EthernetFrame, UdpDatagram, UdpFrameRepr, Vlans},
        option::{DhcpOption, Options},
        option_code, Message, MessageType, CLIENT_PORT, SERVER_PORT,
    },
    config::Config,
    failover::{
        partner_lifetime_to_send, Action, Event, Failover, FailoverConfig, FailoverStatus, History, Persisted, Role,
        State,
    },
    renewal::{lease_entry, lease_key, link_entry, Clock},
    server::{Duties, Half, IaType, Inbound, Lease, LeaseState, Server},
    xdp::clock_now,
    xdp::{FastPathMaps, XdpProgram},
};
use ipnet::Ipv6Net;

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
/// Test runs come in on loopback, the one interface every namespace has.
const LO: u32 = 1;
const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x53];
const OUR_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x53);

const CONFIG: &str = r#"
[server]
state_dir = "/nonexistent"
preferred_lifetime = 600
valid_lifetime = 900
dns_servers = ["2001:db8::53", "2001:db8::54"]
domain_search = ["example.net", "lab.example"]

[[subnet]]
interface = "lo"
prefix = "2001:db8:1::/64"
ranges = [{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }]

[[subnet.pd_pool]]
prefix = "2001:db8:8000::/40"
delegated_length = 56
"#;

/// The frame with its UDP checksum computed. Most captures were taken on the sending veth,
/// before checksum offload filled the checksum in (tshark calls them bad); a NIC delivers
/// them whole.
fn with_checksum(frame: &[u8]) -> Vec<u8> {
    with_ip(frame, |ip| {
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        UdpDatagram::new_checked(ip.payload_mut()).expect("a UDP datagram").fill_checksum(&src, &dst);
    })
}

/// Every Renew and Rebind frame of the captures (sent by a client, to port 547).
fn renewals() -> Vec<Vec<u8>> {
    vector_frames()
        .into_iter()
        .filter(|frame| {
            dhcp6_user::capture::dhcp6_datagram(frame).is_some_and(|d| {
                let kind = d.payload.first().copied();
                d.destination.port() == 547
                    && (kind == Some(MessageType::Renew as u8) || kind == Some(MessageType::Rebind as u8))
            })
        })
        .map(|frame| with_checksum(&frame))
        .collect()
}

/// The frame with its DHCPv6 payload replaced (lengths and checksum made right).
fn with_payload(frame: &[u8], payload: &[u8]) -> Vec<u8> {
    let headers = EthernetFrame::new_checked(frame).unwrap().header_len() + IPV6_HEADER_LEN + UDP_HEADER_LEN;
    let udp_len = u16::try_from(UDP_HEADER_LEN + payload.len()).unwrap();
    let out = with_ip(&[&frame[..headers], payload].concat(), |ip| {
        ip.set_payload_len(udp_len);
        UdpDatagram::new_unchecked(ip.payload_mut()).set_len(udp_len);
    });
    with_checksum(&out)
}

/// The request as sent (multicast), with its Client ID moved last, and sent to our unicast
/// address: each with the address the Reply must come from.
fn variants(frame: &[u8]) -> Vec<(&'static str, Vec<u8>, Ipv6Addr)> {
    let d = dhcp6_user::capture::dhcp6_datagram(frame).unwrap();
    let Message::Client(mut msg) = Message::decode(&d.payload).unwrap() else { panic!("not a client message") };
    let (client_id, mut rest): (Vec<DhcpOption>, Vec<DhcpOption>) =
        msg.options.iter().cloned().partition(|o| matches!(o, DhcpOption::ClientId(_)));
    rest.extend(client_id);
    msg.options = Options::new();
    for o in rest {
        msg.options.push(o);
    }
    let reordered = with_payload(frame, &Message::Client(msg).to_vec().unwrap());
    let ours = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x53);
    let unicast = with_ip(frame, |ip| ip.set_dst_addr(&ours));
    // dhcpcd 9 ends some messages with two zero bytes past the last option.
    let padded = with_payload(frame, &[&d.payload[..], &[0, 0]].concat());
    vec![
        ("multicast", frame.to_vec(), OUR_LINK_LOCAL),
        ("Client ID last", reordered, OUR_LINK_LOCAL),
        ("unicast", with_checksum(&unicast), ours),
        ("padded", padded, OUR_LINK_LOCAL),
    ]
}

struct Case {
    server: Server,
    frame: Vec<u8>,
}

/// A server that holds, for the client of `frame`, a bound lease on each IA the request names,
/// and whose DUID is the one the request names (a Rebind names none: Kea's is used).
fn case(frame: &[u8], now: u64) -> Case {
    case_with(frame, now, CONFIG)
}

/// [`case`], with the configuration `config`.
fn case_with(frame: &[u8], now: u64, config: &str) -> Case {
    let d = dhcp6_user::capture::dhcp6_datagram(frame).unwrap();
    let Message::Client(msg) = Message::decode_padded(&d.payload).unwrap() else { panic!("not a client message") };
    let kea_duid = dhcp6_user::codec::parse_hex("00:01:00:01:2c:7a:54:4d:02:00:00:00:00:01").unwrap();
    let server_duid = msg.options.server_id().map_or(kea_duid, |s| s.as_bytes().to_vec());
    let client = msg.options.client_id().unwrap().as_bytes().to_vec();
    let config = Config::parse(config).unwrap();
    let mut leases = Vec::new();
    for o in msg.options.iter() {
        let (ia_type, iaid, resources): (IaType, u32, Vec<Ipv6Net>) = match o {
            DhcpOption::IaNa(ia) => (
                IaType::Na,
                ia.iaid,
                ia.options
                    .iter()
                    .filter_map(|o| match o {
                        DhcpOption::IaAddr(a) => Some(Ipv6Net::from(a.address)),
                        _ => None,
                    })
                    .collect(),
            ),
            DhcpOption::IaPd(ia) => (
                IaType::Pd,
                ia.iaid,
                ia.options
                    .iter()
                    .filter_map(|o| match o {
                        DhcpOption::IaPrefix(p) => Ipv6Net::new(p.prefix, p.prefix_len).ok(),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => continue,
        };
        for resource in resources {
            leases.push(Lease {
                resource,
                ia_type,
                duid: client.clone(),
                iaid,
                subnet: 0,
                state: LeaseState::Bound,
                preferred_lifetime: 600,
                valid_lifetime: 900,
                expires: now + 2000,
                interface: Some("lo".into()),
                // A client holding a Reconfigure Key: the key is given in the Reply to a
                // Request only, so a Renew's Reply is still what XDP sends.
                reconfigure_key: Some(dhcp6_user::server::ReconfigureKey([0x5a; 16])),
                relay: None,
            });
        }
    }
    let mut server = Server::new(config.server, server_duid, leases);
    server.enable_fast_path();
    Case { server, frame: frame.to_vec() }
}

/// Fills the maps from the engine: the link entry for loopback, one entry per fast binding.
fn fill(maps: &mut FastPathMaps, server: &Server) -> usize {
    fill_on(maps, server, LO)
}

/// [`fill`], with the bindings on interface `ifindex`.
fn fill_on(maps: &mut FastPathMaps, server: &Server, ifindex: u32) -> usize {
    fill_at(maps, server, ifindex, &clock_now())
}

/// [`fill_on`], with deadlines converted by `clock` (a clock ahead of the real one makes the
/// program see the moment it says).
fn fill_at(maps: &mut FastPathMaps, server: &Server, ifindex: u32, clock: &Clock) -> usize {
    for key in maps.leases.keys().map(Result::unwrap).collect::<Vec<_>>() {
        maps.leases.remove(&key).unwrap();
    }
    let subnet = &server.config().subnets[0];
    let link: LinkEntry = link_entry(server.duid(), subnet, OUR_MAC, OUR_LINK_LOCAL).unwrap();
    maps.links.insert(LO, link, 0).unwrap();
    let bindings = server.fast_bindings();
    for b in &bindings {
        maps.leases.insert(lease_key(b).unwrap(), lease_entry(b, ifindex, clock).unwrap(), 0).unwrap();
    }
    bindings.len()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Checks the frame XDP sent (from `source`) against the request and the engine's Reply.
fn check_reply(request: &[u8], out: &[u8], engine_reply: &[u8], source: Ipv6Addr, what: &str) {
    let request = EthernetFrame::new_checked(request).unwrap();
    let (client, _) = UdpFrameRepr::parse(&request).unwrap();
    let frame = EthernetFrame::new_checked(out).unwrap_or_else(|e| panic!("{what}: {e}"));
    let tags = |f: &EthernetFrame<&[u8]>| f.vlan_tags().collect::<Vec<_>>();
    assert_eq!(tags(&frame), tags(&request), "{what}: VLAN tags kept");
    let (got, udp) = UdpFrameRepr::parse(&frame).unwrap_or_else(|e| panic!("{what}: {e}"));
    // Back to the client's MAC and address from ours, 547 -> 546.
    let reply = UdpFrameRepr {
        src_mac: OUR_MAC,
        dst_mac: client.src_mac,
        vlans: client.vlans,
        src_ip: source,
        dst_ip: client.src_ip,
        src_port: SERVER_PORT,
        dst_port: CLIENT_PORT,
        hop_limit: 64,
    };
    assert_eq!(got, reply, "{what}: addressed back to the client");
    assert_eq!(udp.payload(), engine_reply, "{what}: the engine's Reply, byte for byte");
    // IPv6 forbids a zero UDP checksum; the pseudo-header, UDP header and payload fold to all ones.
    assert!(udp.verify_checksum(&got.src_ip, &got.dst_ip), "{what}: UDP checksum");
    assert_eq!(out, reply.to_vec(engine_reply).unwrap(), "{what}: the frame userspace would write, byte for byte");
}

#[test]
fn renews_and_rebinds_of_the_captures_are_answered_as_the_engine_answers_them() {
    dhcp6_tests::netns::require_root();
    let mut program = XdpProgram::load_with(4096).expect("load the XDP program");
    let mut maps = program.take_fast_path().unwrap();
    let frames = renewals();
    assert!(frames.len() >= 5, "the captures hold Renews and Rebinds: {}", frames.len());
    let mut answered = 0;
    for frame in &frames {
        for (sent, variant, source) in variants(frame) {
            for tags in [Vlans::NONE, Vlans { outer: 100, inner: 0 }, Vlans { outer: 10, inner: 20 }] {
                let now = now();
                let mut c = case(&variant, now);
                let request = tagged(&c.frame, tags);
                let what = format!("{} bytes, {sent}, tags {tags:?}", request.len());
                assert!(fill(&mut maps, &c.server) >= 1, "{what}: bindings in the map");
                let d = dhcp6_user::capture::dhcp6_datagram(&c.frame).unwrap();
                let from = SocketAddrV6::new(*d.source.ip(), 546, 0, LO);
                let outcome =
                    c.server.handle(&Inbound { payload: &d.payload, source: from, interface: Some("lo"), now });
                let reply = outcome.reply.expect("the engine answers").payload;
                let before = program.counters().unwrap();
                let run = program.test_run_on(&request, LO, 1).unwrap();
                if run.action != XDP_TX {
                    let after = program.counters().unwrap();
                    let why: Vec<_> = Verdict::ALL
                        .iter()
                        .filter(|v| after.verdict(**v) != before.verdict(**v))
                        .map(|v| v.name())
                        .collect();
                    panic!("{what}: passed, not answered in XDP: {why:?}");
                }
                check_reply(&request, &run.frame, &reply, source, &what);
                answered += 1;
                // The same with the link entry as dhcp6d wrote it before the DNS servers and
                // domain list were also held together (each then written on its own).
                let mut link = maps.links.get(&LO, 0).unwrap();
                assert_ne!(link.both_len, 0, "{what}: the options are held together");
                link.both_len = 0;
                maps.links.insert(LO, link, 0).unwrap();
                let run = program.test_run_on(&request, LO, 1).unwrap();
                assert_eq!(run.action, XDP_TX, "{what}, options apart: answered");
                check_reply(&request, &run.frame, &reply, source, &format!("{what}, options apart"));
            }
        }
    }
    assert_eq!(answered, frames.len() * 12);
}

#[test]
fn what_the_fast_path_must_not_answer_is_passed_untouched() {
    dhcp6_tests::netns::require_root();
    let mut program = XdpProgram::load_with(4096).expect("load the XDP program");
    let mut maps = program.take_fast_path().unwrap();
    let verdicts_before = program.counters().unwrap();
    let frames = renewals();
    let pass = |program: &XdpProgram, frame: &[u8], what: &str| {
        let run = program.test_run_on(frame, LO, 1).unwrap();
        assert_eq!(run.action, XDP_PASS, "{what}");
        assert_eq!(run.frame, frame, "{what}: untouched");
    };
    for frame in &frames {
        let c = case(frame, now());
        fill(&mut maps, &c.server);
        // Truncated anywhere: the kernel refuses runs shorter than an Ethernet header.
        for len in (ETH_HEADER_LEN..frame.len()).step_by(7) {
            pass(&program, &frame[..len], &format!("cut to {len}"));
        }
        // A flipped payload byte breaks the checksum.
        let mut bad = frame.clone();
        *bad.last_mut().unwrap() ^= 0x40;
        pass(&program, &bad, "bad checksum");
        // A binding on another interface than the one the request came in on.
        fill_on(&mut maps, &c.server, 999);
        pass(&program, frame, "another interface's binding");
        fill(&mut maps, &c.server);
        // An IPv6 extension header (hop-by-hop) before UDP.
        pass(&program, &with_ip(frame, |ip| ip.set_next_header(0)), "extension header");
        // A Renew naming another server.
        let msg = dhcp6_user::capture::dhcp6_datagram(frame).unwrap().payload;
        if msg[0] == MessageType::Renew as u8 {
            let other = Server::new(Config::parse(CONFIG).unwrap().server, vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 9], vec![]);
            let mut c2 = case(frame, now());
            c2.server = {
                let leases = c.server.leases();
                let mut s = Server::new(Config::parse(CONFIG).unwrap().server, other.duid().to_vec(), leases);
                s.enable_fast_path();
                s
            };
            fill(&mut maps, &c2.server);
            pass(&program, frame, "another server's Renew");
            // A Server ID of our DUID's length that differs from it in one byte only: the
            // first, or the last (which the word compare masks to the option's end).
            let ours = c.server.duid().to_vec();
            for at in [0, ours.len() - 1] {
                let mut duid = ours.clone();
                duid[at] ^= 0x01;
                let mut s = Server::new(Config::parse(CONFIG).unwrap().server, duid, c.server.leases());
                s.enable_fast_path();
                fill(&mut maps, &s);
                pass(&program, frame, &format!("a Server ID differing at byte {at}"));
            }
            fill(&mut maps, &c.server);
        }
        // The bindings of a client whose DUID differs from the request's in its last byte only.
        let client = dhcp6_user::capture::dhcp6_datagram(frame)
            .and_then(|d| match Message::decode(&d.payload).ok()? {
                Message::Client(m) => m.options.client_id().map(|d| d.as_bytes().to_vec()),
                _ => None,
            })
            .unwrap();
        let mut leases = c.server.leases();
        for l in &mut leases {
            let last = l.duid.len() - 1;
            assert_eq!(l.duid, client);
            l.duid[last] ^= 0x01;
        }
        let mut s = Server::new(Config::parse(CONFIG).unwrap().server, c.server.duid().to_vec(), leases);
        s.enable_fast_path();
        fill(&mut maps, &s);
        pass(&program, frame, "another client's bindings (DUIDs differing in the last byte)");
        fill(&mut maps, &c.server);
    }
    // Past the deadline: leases that end now cannot be renewed by XDP.
    for frame in &frames {
        let mut c = case(frame, now());
        let mut leases = c.server.leases();
        for l in &mut leases {
            l.expires = now() + 100;
        }
        c.server = Server::new(Config::parse(CONFIG).unwrap().server, c.server.duid().to_vec(), leases);
        c.server.enable_fast_path();
        fill(&mut maps, &c.server);
        pass(&program, frame, "past the deadline");
    }
    // Not in the map.
    for key in maps.leases.keys().map(Result::unwrap).collect::<Vec<_>>() {
        maps.leases.remove(&key).unwrap();
    }
    for frame in &frames {
        pass(&program, frame, "no binding");
    }
    let after = program.counters().unwrap();
    assert_eq!(after.verdict(Verdict::Replied), verdicts_before.verdict(Verdict::Replied), "nothing answered");
    assert!(after.verdict(Verdict::NoLease) > 0 && after.verdict(Verdict::PastDeadline) > 0);
    assert!(after.verdict(Verdict::Unfit) > 0 && after.verdict(Verdict::NotUdp) > 0);
}

/// The verdict counts a test run added, by verdict.
fn run_counted(program: &XdpProgram, frame: &[u8]) -> (u32, Vec<u8>, impl Fn(Verdict) -> u64) {
    let before = program.counters().unwrap();
    let run = program.test_run_on(frame, LO, 1).unwrap();
    let after = program.counters().unwrap();
    (run.action, run.frame, move |v| after.verdict(v) - before.verdict(v))
}

/// The engine's Reply to `frame`'s request at `now`.
fn engine_reply(server: &mut Server, frame: &[u8], now: u64) -> Option<Vec<u8>> {
    let d = dhcp6_user::capture::dhcp6_datagram(frame).unwrap();
    let from = SocketAddrV6::new(*d.source.ip(), 546, 0, LO);
    server.handle(&Inbound { payload: &d.payload, source: from, interface: Some("lo"), now }).reply.map(|r| r.payload)
}

fn is_rebind(frame: &[u8]) -> bool {
    dhcp6_user::capture::dhcp6_datagram(frame).unwrap().payload[0] == MessageType::Rebind as u8
}

/// One of a failover pair whose state answers its own clients' Renews but leaves Rebinds to
/// the partner: its entries carry ENTRY_RENEW_ONLY, and XDP answers the Renews as the engine
/// does and passes the Rebinds untouched, counted as `renew_only` (the engine, which they go
/// up to, does not answer them either).
#[test]
fn a_renew_only_entry_answers_renews_and_passes_rebinds() {
    dhcp6_tests::netns::require_root();
    let mut program = XdpProgram::load_with(4096).expect("load the XDP program");
    let mut maps = program.take_fast_path().unwrap();
    let renew_only = Duties { new_clients: false, own_clients: true, rebind: false, partner_share: false };
    let (mut renews, mut rebinds) = (0, 0);
    for frame in &renewals() {
        let now = now();
        let mut c = case(frame, now);
        c.server.pair_up(Half::Lower, renew_only);
        assert!(c.server.fast_bindings().iter().all(|b| b.renew_only), "every entry is renew-only");
        assert!(fill(&mut maps, &c.server) >= 1);
        let (action, out, counted) = run_counted(&program, frame);
        if is_rebind(frame) {
            assert_eq!((action, counted(Verdict::RenewOnly), counted(Verdict::Replied)), (XDP_PASS, 1, 0));
            assert_eq!(out, *frame, "passed untouched");
            assert_eq!(engine_reply(&mut c.server, frame, now), None, "left to the partner by the engine too");
            rebinds += 1;
        } else {
            assert_eq!((action, counted(Verdict::Replied)), (XDP_TX, 1), "a Renew is answered");
            let reply = engine_reply(&mut c.server, frame, now).expect("the engine answers");
            check_reply(frame, &out, &reply, OUR_LINK_LOCAL, "renew-only entry");
            renews += 1;
        }
    }
    assert!(renews >= 1 && rebinds >= 1, "the captures hold both: {renews} Renews, {rebinds} Rebinds");
}

/// The request with OPTION_PD_EXCLUDE (RFC 6603) in its ORO (`ask`), or not (some captured
/// clients, dhcpcd's, ask for it).
fn asking_for_pd_exclude(frame: &[u8], ask: bool) -> Vec<u8> {
    let d = dhcp6_user::capture::dhcp6_datagram(frame).unwrap();
    let Message::Client(mut msg) = Message::decode(&d.payload).unwrap() else { panic!("not a client message") };
    let mut oro = false;
    for o in msg.options.0.iter_mut() {
        if let DhcpOption::Oro(codes) = o {
            codes.retain(|c| *c != option_code::PD_EXCLUDE);
            if ask {
                codes.push(option_code::PD_EXCLUDE);
            }
            oro = true;
        }
    }
    if ask && !oro {
        msg.options.push(DhcpOption::Oro(vec![option_code::PD_EXCLUDE]));
    }
    with_payload(frame, &Message::Client(msg).to_vec().unwrap())
}

/// Whether a Reply's IAPREFIXes carry a Prefix Exclude.
fn carries_pd_exclude(reply: &[u8]) -> bool {
    let m = Message::decode(reply).unwrap();
    m.options().iter().any(|o| match o {
        DhcpOption::IaPd(ia) => ia.options.iter().any(|p| match p {
            DhcpOption::IaPrefix(p) => p.options.contains(option_code::PD_EXCLUDE),
            _ => false,
        }),
        _ => false,
    })
}

/// With a Prefix Exclude (RFC 6603) on the PD pool: a renewal of a prefix whose ORO asks for
/// OPTION_PD_EXCLUDE is answered in XDP with the option in its IAPREFIX, as the engine answers
/// it, byte for byte; one that does not ask is passed up (`unfit`), for the engine to answer
/// without the option.
#[test]
fn a_prefix_exclude_is_answered_in_xdp_to_the_renewals_that_ask_for_it() {
    dhcp6_tests::netns::require_root();
    let mut program = XdpProgram::load_with(4096).expect("load the XDP program");
    let mut maps = program.take_fast_path().unwrap();
    let config = CONFIG
        .replace("delegated_length = 56\n", "delegated_length = 56\nexcluded_prefix = \"2001:db8:8000:1::/64\"\n");
    let pool: Ipv6Net = "2001:db8:8000::/40".parse().unwrap();
    let mut excluded = 0;
    for frame in &renewals() {
        // The prefixes the request renews: a Prefix Exclude is the pool's, for its /56s.
        let d = dhcp6_user::capture::dhcp6_datagram(frame).unwrap();
        let request = Message::decode(&d.payload).unwrap();
        let prefixes: Vec<Ipv6Net> = request
            .options()
            .iter()
            .filter_map(|o| match o {
                DhcpOption::IaPd(ia) => Some(ia.options.iter().filter_map(|p| match p {
                    DhcpOption::IaPrefix(p) => Ipv6Net::new(p.prefix, p.prefix_len).ok(),
                    _ => None,
                })),
                _ => None,
            })
            .flatten()
            .collect();
        if prefixes.is_empty() {
            continue;
        }
        let in_pool = prefixes.iter().all(|p| pool.contains(p) && p.prefix_len() == 56);
        for (what, asks) in [("asks", true), ("does not ask", false)] {
            let request = asking_for_pd_exclude(frame, asks);
            let now = now();
            let mut c = case_with(&request, now, &config);
            assert!(fill(&mut maps, &c.server) >= 1, "{what}: bindings in the map");
            let reply = engine_reply(&mut c.server, &request, now).expect("the engine answers");
            let with_exclude = asks && in_pool;
            assert_eq!(carries_pd_exclude(&reply), with_exclude, "{what} ({prefixes:?}): the engine's Reply");
            let (action, out, counted) = run_counted(&program, &request);
            if asks || !in_pool {
                assert_eq!((action, counted(Verdict::Replied)), (XDP_TX, 1), "{what} ({prefixes:?}): answered in XDP");
                check_reply(&request, &out, &reply, OUR_LINK_LOCAL, what);
            } else {
                assert_eq!((action, counted(Verdict::Unfit)), (XDP_PASS, 1), "{what}: passed up");
                assert_eq!(out, request, "{what}: untouched");
            }
        }
        excluded += usize::from(in_pool);
    }
    assert!(excluded >= 1, "the captures hold renewals of the pool's prefixes");
}

/// Below the lifetimes of [`CONFIG`] (valid 900 s), so that the MCLT is what limits XDP.
const MCLT: u32 = 300;

/// Hands each event to its engine (0: the primary, 1: the secondary) and carries out what
/// follows as the drivers and TCP would: messages cross, received bindings are taken, and
/// queues asked for are done.
fn exchange(primary: &mut Failover, secondary: &mut Failover, events: Vec<(usize, Event)>, now: u64) {
    let mut pending: VecDeque<(usize, Event)> = events.into();
    while let Some((side, event)) = pending.pop_front() {
        let engine = if side == 0 { &mut *primary } else { &mut *secondary };
        let mut out = Vec::new();
        engine.handle(event, now, &mut out).unwrap();
        for action in out {
            match action {
                Action::Send(msg) => pending.push_back((1 - side, Event::Received(msg))),
                Action::ApplyBndUpd(records) => {
                    let applied = records.into_iter().map(|r| (r, FailoverStatus::Success)).collect();
                    pending.push_back((side, Event::BndUpdApplied(applied)));
                }
                Action::ResendUnacked | Action::SendAllBindings => pending.push_back((side, Event::AllUpdatesQueued)),
                _ => {}
            }
        }
    }
}

/// A pair restarted in NORMAL and connected (in memory): the primary's engine, the
/// secondary's.
fn normal_pair(now: u64) -> (Failover, Failover) {
    let engine = |role| {
        let config = FailoverConfig { role, mclt: MCLT, ..FailoverConfig::default() };
        Failover::new(config, Some(Persisted::fresh(State::Normal, now - 100)), History::MayHaveServed, now).unwrap()
    };
    let (mut primary, mut secondary) = (engine(Role::Primary), engine(Role::Secondary));
    exchange(&mut primary, &mut secondary, vec![(1, Event::Connected), (0, Event::Connected)], now);
    assert_eq!((primary.state(), secondary.state()), (State::Normal, State::Normal));
    (primary, secondary)
}

/// A clock that makes the program see Unix second `now + ahead` where it is `now`.
fn ahead(now: u64, ahead: u64) -> Clock {
    Clock::at(clock_now().mono_ns(now), (now + ahead) * 1_000_000_000)
}

/// The valid lifetimes of the addresses and prefixes a Reply frame tells.
fn valid_lifetimes(frame: &[u8]) -> Vec<u32> {
    let frame = EthernetFrame::new_checked(frame).unwrap();
    let (_, udp) = UdpFrameRepr::parse(&frame).unwrap();
    let Message::Client(reply) = Message::decode(udp.payload()).unwrap() else { panic!("not a Reply") };
    let mut out = Vec::new();
    for o in reply.options.iter() {
        let inner = match o {
            DhcpOption::IaNa(ia) => &ia.options,
            DhcpOption::IaPd(ia) => &ia.options,
            _ => continue,
        };
        for o in inner.iter() {
            match o {
                DhcpOption::IaAddr(a) => out.push(a.valid_lifetime),
                DhcpOption::IaPrefix(p) => out.push(p.valid_lifetime),
                _ => {}
            }
        }
    }
    out
}

/// The MCLT rule (RFC 8156 section 4.4) in the entries: the primary of a pair in NORMAL,
/// whose leases the store holds far ahead. Before the partner acknowledged anything, a valid
/// lifetime above the MCLT cannot be told at all: the entry's deadline is past, and XDP
/// passes the renewal. Once the partner acknowledged each binding (BNDUPD, BNDREPLY, as the
/// driver sends them), XDP answers, and at every moment up to the entry's deadline the
/// lifetime it tells ends no later than the acknowledged expiry plus the MCLT; a second past
/// the deadline, it passes.
#[test]
fn xdp_never_tells_more_than_the_mclt_past_what_the_partner_acknowledged() {
    dhcp6_tests::netns::require_root();
    let mut program = XdpProgram::load_with(4096).expect("load the XDP program");
    let mut maps = program.take_fast_path().unwrap();
    for frame in &renewals() {
        let now = now();
        let c = case(frame, now);
        let leases: Vec<Lease> = c.server.leases().into_iter().map(|l| Lease { expires: now + 5000, ..l }).collect();
        let (primary, mut secondary) = normal_pair(now);
        let mut server = Server::new(Config::parse(CONFIG).unwrap().server, c.server.duid().to_vec(), leases.clone());
        server.enable_fast_path();
        server.pair_with(primary, now);
        assert_eq!(server.duties(), Duties { partner_share: false, ..Duties::ALL }, "the primary in NORMAL");

        // Nothing acknowledged: 900 s told now would end past now + MCLT.
        assert!(fill(&mut maps, &server) >= 1);
        let (action, out, counted) = run_counted(&program, frame);
        assert_eq!((action, counted(Verdict::PastDeadline)), (XDP_PASS, 1), "nothing acknowledged: passed");
        assert_eq!(out, *frame);

        let mut limit = u64::MAX;
        for lease in &leases {
            let record = dhcp6_user::daemon::failover::record_of(lease, now).unwrap();
            let engine = server.failover_mut().unwrap();
            exchange(engine, &mut secondary, vec![(0, Event::BindingChanged(record))], now);
            let acked = server.failover().unwrap().updates().acked_partner_expiry(&lease.resource);
            assert_eq!(acked, Some(partner_lifetime_to_send(now, lease.valid_lifetime)), "acknowledged");
            limit = limit.min(acked.unwrap() + u64::from(MCLT));
        }
        assert!(limit < now + 5000, "the MCLT, not the store, is what limits XDP here");

        // At every moment up to each entry's deadline, the lifetime told ends by the limit.
        let clock = clock_now();
        assert!(fill_at(&mut maps, &server, LO, &clock) >= 1);
        let mut last = u64::MAX;
        for b in server.fast_bindings() {
            let entry = maps.leases.get(&lease_key(&b).unwrap(), 0).unwrap();
            let deadline = clock.unix(entry.deadline_ns);
            assert!(deadline + u64::from(b.valid) <= limit, "{deadline} + {} past {limit}", b.valid);
            last = last.min(deadline);
        }
        let (action, answered, _) = run_counted(&program, frame);
        assert_eq!(action, XDP_TX, "answered once acknowledged");
        let told = valid_lifetimes(&answered);
        assert!(!told.is_empty() && told.iter().all(|v| now + 1 + u64::from(*v) <= limit), "{told:?}, limit {limit}");
        // Two seconds before the deadline the program still answers, within the limit; a
        // second after it, it passes.
        let late = last.saturating_sub(2) - now;
        fill_at(&mut maps, &server, LO, &ahead(now, late));
        let (action, out, _) = run_counted(&program, frame);
        assert_eq!(action, XDP_TX, "answered two seconds before the deadline");
        assert!(valid_lifetimes(&out).iter().all(|v| now + late + 2 + u64::from(*v) <= limit));
        fill_at(&mut maps, &server, LO, &ahead(now, last + 1 - now));
        let (action, _, counted) = run_counted(&program, frame);
        assert_eq!((action, counted(Verdict::PastDeadline)), (XDP_PASS, 1), "passed past the deadline");
        // What XDP answered is the engine's own Reply, which keeps to the same cap.
        let reply = engine_reply(&mut server, frame, now).expect("the engine answers");
        check_reply(frame, &answered, &reply, OUR_LINK_LOCAL, "acknowledged binding");
    }
}

/// `dhcp6d xdp bench` times the answered frames in live-frame test runs where the kernel
/// allows them, in plain ones where it refuses them (some hosts do, even to root), and says
/// which; `--plain` asks for plain ones, as a refusal leaves them.
#[test]
fn xdp_bench_falls_back_to_plain_test_runs_and_names_its_timing() {
    let ns = dhcp6_tests::netns::Netns::new("d6bn");
    let bin = dhcp6_tests::peers::dhcp6d_binary();
    let bench = |extra: &[&str]| {
        let mut args = vec![bin.to_str().unwrap(), "xdp", "bench", "--repeat", "6400"];
        args.extend_from_slice(extra);
        String::from_utf8_lossy(&ns.exec(&args).stdout).into_owned()
    };
    let answered_in = |text: &str, mode: &str| {
        // Two Renews and a Rebind, and a Renew again with storm protection's bucket on.
        let answered: Vec<&str> = text.lines().filter(|l| l.contains("XDP_TX")).collect();
        answered.len() == 4 && answered.iter().all(|l| l.ends_with(mode))
    };
    let plain = bench(&["--plain"]);
    assert!(plain.starts_with("answered frames timed in plain test runs"), "{plain}");
    assert!(answered_in(&plain, "(plain)"), "{plain}");

    let either = bench(&[]);
    let live = either.starts_with("answered frames timed in live-frame test runs");
    assert!(live || either.contains("the kernel refused live frames"), "{either}");
    assert!(answered_in(&either, if live { "(live)" } else { "(plain)" }), "{either}");
}
