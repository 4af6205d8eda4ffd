//! The XDP Renew/Rebind fast path in program test runs (BPF_PROG_TEST_RUN): the real Renews
//! and Rebinds of the captures, answered by the XDP program from a lease map that userspace
//! filled from the engine, must come out as the engine's own Reply to the same request, in a
//! frame addressed back to the client with a valid UDP checksum, with and without VLAN tags,
//! sent to the multicast address or to ours, with the Client ID first (as clients send it) or
//! last. What the fast path must not answer is passed untouched.

use std::net::{Ipv6Addr, SocketAddrV6};

use dhcp6_common::{
    counters::Verdict,
    renewal::{checksum, LinkEntry},
    wire::frame::ETH_HEADER_LEN,
};
use dhcp6_tests::{tagged, vector_frames};
use dhcp6_user::{
    codec::{
        option::{DhcpOption, Options},
        Message, MessageType,
    },
    config::Config,
    renewal::{lease_entry, lease_key, link_entry},
    server::{IaType, Inbound, Lease, LeaseState, Server},
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
fn with_checksum(mut frame: Vec<u8>) -> Vec<u8> {
    let ip = ip_offset(&frame);
    let udp = ip + 40;
    frame[udp + 6] = 0;
    frame[udp + 7] = 0;
    let mut sum = checksum::add(checksum::sum(&frame[ip + 8..ip + 40]), (frame.len() - udp) as u32);
    sum = checksum::add(sum, 17);
    sum = checksum::add(sum, checksum::sum(&frame[udp..]));
    let c = !checksum::fold(sum);
    frame[udp + 6..udp + 8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
    frame
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
        .map(with_checksum)
        .collect()
}

/// The frame with its DHCPv6 payload replaced (lengths and checksum made right).
fn with_payload(frame: &[u8], payload: &[u8]) -> Vec<u8> {
    let udp = ip_offset(frame) + 40;
    let mut out = frame[..udp + 8].to_vec();
    out.extend_from_slice(payload);
    let udp_len = ((out.len() - udp) as u16).to_be_bytes();
    out[udp - 36..udp - 34].copy_from_slice(&udp_len);
    out[udp + 4..udp + 6].copy_from_slice(&udp_len);
    with_checksum(out)
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
    let mut unicast = frame.to_vec();
    let ip = ip_offset(frame);
    unicast[ip + 24..ip + 40].copy_from_slice(&ours.octets());
    vec![
        ("multicast", frame.to_vec(), OUR_LINK_LOCAL),
        ("Client ID last", reordered, OUR_LINK_LOCAL),
        ("unicast", with_checksum(unicast), ours),
    ]
}

/// Where the IPv6 header starts in an Ethernet frame, after any VLAN tags.
fn ip_offset(frame: &[u8]) -> usize {
    let mut at = 12;
    while matches!(u16::from_be_bytes([frame[at], frame[at + 1]]), 0x8100 | 0x88a8) {
        at += 4;
    }
    at + 2
}

struct Case {
    server: Server,
    frame: Vec<u8>,
}

/// A server that holds, for the client of `frame`, a bound lease on each IA the request names,
/// and whose DUID is the one the request names (a Rebind names none: Kea's is used).
fn case(frame: &[u8], now: u64) -> Case {
    let d = dhcp6_user::capture::dhcp6_datagram(frame).unwrap();
    let Message::Client(msg) = Message::decode(&d.payload).unwrap() else { panic!("not a client message") };
    let kea_duid = dhcp6_user::codec::parse_hex("00:01:00:01:2c:7a:54:4d:02:00:00:00:00:01").unwrap();
    let server_duid = msg.options.server_id().map_or(kea_duid, |s| s.as_bytes().to_vec());
    let client = msg.options.client_id().unwrap().as_bytes().to_vec();
    let config = Config::parse(CONFIG).unwrap();
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
    for key in maps.leases.keys().map(Result::unwrap).collect::<Vec<_>>() {
        maps.leases.remove(&key).unwrap();
    }
    let subnet = &server.config().subnets[0];
    let link: LinkEntry = link_entry(server.duid(), subnet, OUR_MAC, OUR_LINK_LOCAL).unwrap();
    maps.links.insert(LO, link, 0).unwrap();
    let clock = clock_now();
    let bindings = server.fast_bindings();
    for b in &bindings {
        maps.leases.insert(lease_key(b).unwrap(), lease_entry(b, ifindex, &clock).unwrap(), 0).unwrap();
    }
    bindings.len()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Checks the frame XDP sent (from `source`) against the request and the engine's Reply.
fn check_reply(request: &[u8], out: &[u8], engine_reply: &[u8], source: Ipv6Addr, what: &str) {
    let ip = ip_offset(request);
    assert_eq!(ip_offset(out), ip, "{what}: VLAN tags kept");
    assert_eq!(out[..6], request[6..12], "{what}: back to the client's MAC");
    assert_eq!(out[6..12], OUR_MAC, "{what}: from ours");
    assert_eq!(out[12..ip], request[12..ip], "{what}: tags and EtherType unchanged");
    let (src, dst) = (&out[ip + 8..ip + 24], &out[ip + 24..ip + 40]);
    assert_eq!(dst, &request[ip + 8..ip + 24], "{what}: to the client's address");
    assert_eq!(src, source.octets(), "{what}: from {source}");
    assert_eq!(out[ip + 6], 17, "{what}: UDP");
    let udp = ip + 40;
    let udp_len = usize::from(u16::from_be_bytes([out[udp + 4], out[udp + 5]]));
    assert_eq!(usize::from(u16::from_be_bytes([out[ip + 4], out[ip + 5]])), udp_len, "{what}: IPv6 payload length");
    assert_eq!(out.len(), udp + udp_len, "{what}: frame length");
    assert_eq!(u16::from_be_bytes([out[udp], out[udp + 1]]), 547, "{what}: source port");
    assert_eq!(u16::from_be_bytes([out[udp + 2], out[udp + 3]]), 546, "{what}: destination port");
    assert_eq!(&out[udp + 8..], engine_reply, "{what}: the engine's Reply, byte for byte");
    // The checksum over pseudo-header, UDP header and payload folds to all ones.
    let mut sum = checksum::add(checksum::sum(src), checksum::sum(dst));
    sum = checksum::add(sum, udp_len as u32);
    sum = checksum::add(sum, 17);
    sum = checksum::add(sum, checksum::sum(&out[udp..]));
    assert_eq!(checksum::fold(sum), 0xffff, "{what}: UDP checksum");
    assert_ne!(&out[udp + 6..udp + 8], &[0, 0], "{what}: IPv6 forbids a zero UDP checksum");
    assert_eq!(&out[udp + 8..], engine_reply, "{what}: the engine's Reply, byte for byte");
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
            for tags in [&[][..], &[(0x8100, 100)][..], &[(0x88a8, 10), (0x8100, 20)][..]] {
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
    assert_eq!(answered, frames.len() * 9);
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
        let ip = ip_offset(frame);
        let udp = ip + 40;
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
        let mut ext = frame.clone();
        ext[ip + 6] = 0;
        pass(&program, &ext, "extension header");
        // A Renew naming another server.
        let msg = &frame[udp + 8..];
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
        let answered: Vec<&str> = text.lines().filter(|l| l.contains("XDP_TX")).collect();
        answered.len() == 3 && answered.iter().all(|l| l.ends_with(mode))
    };
    let plain = bench(&["--plain"]);
    assert!(plain.starts_with("answered frames timed in plain test runs"), "{plain}");
    assert!(answered_in(&plain, "(plain)"), "{plain}");

    let either = bench(&[]);
    let live = either.starts_with("answered frames timed in live-frame test runs");
    assert!(live || either.contains("the kernel refused live frames"), "{either}");
    assert!(answered_in(&either, if live { "(live)" } else { "(plain)" }), "{either}");
}
