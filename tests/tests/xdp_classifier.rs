//! The XDP program for real: built, loaded, attached in native mode to a veth in a network
//! namespace, fed the captured frames (plain, 802.1Q, 802.1ad+802.1Q and broken variants)
//! from the peer namespace, and its per-CPU counters read back from userspace. (The fast path
//! itself has its own tests, `xdp_fast_path.rs`.)

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use aya::programs::XdpMode;
use dhcp6_common::{
    counters::Verdict,
    wire::frame::{ETH_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN},
};
use dhcp6_tests::{
    netns::{send_frames, Netns, Veth},
    tagged, vector_frames, with_ip,
};
use dhcp6_user::{
    capture::dhcp6_datagram,
    codec::frame::{ipv6, EthernetFrame, UdpDatagram, Vlans},
    xdp::XdpProgram,
};

/// Bytes of an untagged frame's headers, up to the DHCPv6 message.
const HEADERS: usize = ETH_HEADER_LEN + IPV6_HEADER_LEN + UDP_HEADER_LEN;

#[test]
fn xdp_counts_dhcpv6_frames_by_type_and_verdict_on_a_veth() {
    let server = Netns::new("d6s");
    let client = Netns::new("d6c");
    let veth = Veth::new(&server, &client);
    // The sender's own IPv6 traffic (MLD, router solicitations) would add frames we did not send.
    client.exec(&["sysctl", "-qw", &format!("net.ipv6.conf.{}.disable_ipv6=1", veth.b())]);

    let mut program = XdpProgram::load().expect("load the XDP program");
    server.run(|| program.attach(veth.a(), XdpMode::Driver)).expect("attach in native mode");

    let vectors = vector_frames();
    let mut frames = Vec::new();
    let mut expected_types: BTreeMap<u8, u64> = BTreeMap::new();
    let mut expected = BTreeMap::from(Verdict::ALL.map(|v| (v.name(), 0u64)));
    for frame in &vectors {
        let dhcp = dhcp6_datagram(frame).expect("every vector frame is DHCPv6");
        for tags in [Vlans::NONE, Vlans { outer: 100, inner: 0 }, Vlans { outer: 10, inner: 20 }] {
            frames.push(tagged(frame, tags));
            *expected_types.entry(dhcp.payload[0]).or_default() += 1;
            // Renews and Rebinds go to the fast path, which has no binding (and no link) for them.
            let renewal = matches!(dhcp.payload[0], 5 | 6) && dhcp.destination.port() == 547;
            *expected.get_mut(if renewal { "no_lease" } else { "dhcp6_passed" }).unwrap() += 1;
        }
    }
    let sample = &vectors[0];
    // ARP ethertype: not IPv6.
    let mut arp = sample.clone();
    EthernetFrame::new_checked(&mut arp[..]).unwrap().set_ethertype(0x0806);
    // ICMPv6 as next header: not UDP.
    let icmp = with_ip(sample, |ip| ip.set_next_header(58));
    // UDP to port 53.
    let dns = with_ip(sample, |ip| UdpDatagram::new_unchecked(ip.payload_mut()).set_dst_port(53));
    // Cut inside the IPv6 header, and cut right after the UDP header.
    let cut_ip = sample[..ETH_HEADER_LEN + IPV6_HEADER_LEN / 2].to_vec();
    let cut_udp = sample[..HEADERS].to_vec();
    for (frame, verdict) in
        [(arp, "not_ipv6"), (icmp, "not_udp"), (dns, "other_port"), (cut_ip, "truncated"), (cut_udp, "truncated")]
    {
        frames.push(frame);
        *expected.get_mut(verdict).unwrap() += 1;
    }

    client.run(|| send_frames(veth.b(), &frames));

    let total: u64 = expected.values().sum();
    let deadline = Instant::now() + Duration::from_secs(10);
    let counters = loop {
        let c = program.counters().expect("read counters");
        let seen: u64 = c.by_verdict.iter().map(|(_, n)| n).sum();
        if seen >= total || Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let got_verdicts: BTreeMap<&str, u64> = counters.by_verdict.iter().map(|(v, n)| (v.name(), n)).collect();
    assert_eq!(got_verdicts, expected);
    let got_types: BTreeMap<u8, u64> = counters.by_msg_type.iter().copied().collect();
    assert_eq!(got_types, expected_types);
    assert!(expected_types.len() >= 10, "the vectors cover most message types: {expected_types:?}");
}

#[test]
fn test_run_passes_every_vector_frame_and_its_broken_variants() {
    dhcp6_tests::netns::require_root();
    let program = XdpProgram::load().expect("load the XDP program");
    const XDP_PASS: u32 = 2;
    for frame in vector_frames() {
        // Whole, and cut in each header (at IPv6's next header, after it, around the end of
        // UDP's); the kernel refuses runs shorter than Ethernet's header.
        let next_header = ETH_HEADER_LEN + ipv6::field::NEXT_HEADER;
        for len in
            [ETH_HEADER_LEN, next_header, HEADERS - UDP_HEADER_LEN, HEADERS - 1, HEADERS, HEADERS + 1, frame.len()]
        {
            let len = len.min(frame.len());
            assert_eq!(program.test_run(&frame[..len]).unwrap(), XDP_PASS, "frame cut to {len}");
        }
    }
}

/// A link an earlier layout's dhcp6d left pinned (in its own folder) is taken over by the
/// new program, atomically, and pinned again in the new layout's folder: an upgrade that
/// changes the maps' layout still attaches.
#[test]
fn a_link_pinned_by_an_earlier_layout_is_taken_over() {
    let ns = Netns::new("d6up");
    let peer = Netns::new("d6uq");
    let veth = Veth::new(&ns, &peer);
    let dir = dhcp6_tests::peers::bpf_dir("upgrade");
    let current = XdpProgram::link_pin(&dir, veth.a());
    let earlier = dir.join("v0").join(current.file_name().unwrap());
    ns.run(|| {
        let mut first = XdpProgram::load_pinned(&dir, 1024).expect("load");
        assert!(!first.attach_pinned(veth.a()).expect("attach"), "nothing to take over yet");
    });
    // As an earlier layout would have left it.
    std::fs::create_dir_all(earlier.parent().unwrap()).unwrap();
    std::fs::rename(&current, &earlier).unwrap();
    let attached = || String::from_utf8_lossy(&ns.exec(&["ip", "link", "show", veth.a()]).stdout).contains("xdp");
    assert!(attached(), "the pinned link keeps the program attached");
    ns.run(|| {
        let mut second = XdpProgram::load_pinned(&dir, 1024).expect("load");
        assert!(second.attach_pinned(veth.a()).expect("attach over the earlier link"), "taken over");
    });
    assert!(current.exists() && !earlier.exists(), "pinned again in this layout's folder only");
    assert!(attached());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A link pinned under one interface's name but attached to another (the interface was
/// renamed, and a new one took its name) is not taken over: its pin is removed, which
/// detaches XDP from the other interface, and XDP is attached afresh to the one of that name.
#[test]
fn a_link_pinned_to_another_interface_is_not_taken_over() {
    let ns = Netns::new("d6st");
    let peer = Netns::new("d6su");
    let (first, second) = (Veth::new(&ns, &peer), Veth::new(&ns, &peer));
    let dir = dhcp6_tests::peers::bpf_dir("stale");
    ns.run(|| {
        let mut program = XdpProgram::load_pinned(&dir, 1024).expect("load");
        assert!(!program.attach_pinned(first.a()).expect("attach"), "nothing to take over yet");
    });
    std::fs::rename(XdpProgram::link_pin(&dir, first.a()), XdpProgram::link_pin(&dir, second.a())).unwrap();
    let attached =
        |i: &str| String::from_utf8_lossy(&ns.exec(&["ip", "-d", "link", "show", i]).stdout).contains("prog/xdp");
    assert!(attached(first.a()) && !attached(second.a()), "the pinned link holds XDP on the first interface");
    ns.run(|| {
        let mut program = XdpProgram::load_pinned(&dir, 1024).expect("load");
        assert!(!program.attach_pinned(second.a()).expect("attach afresh"), "not taken over");
    });
    assert!(attached(second.a()), "attached to the interface of that name");
    assert!(!attached(first.a()), "released from the other one");
    assert!(XdpProgram::link_pin(&dir, second.a()).exists(), "the new link is pinned");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_lease_map_takes_the_configured_size_and_a_pinned_one_keeps_its_own() {
    let dir = dhcp6_tests::peers::bpf_dir("capacity");
    let capacity =
        |size: u32| XdpProgram::load_pinned(&dir, size).expect("load").take_fast_path().unwrap().lease_capacity;
    assert_eq!(capacity(4096), 4096, "a new map has the size asked for");
    assert_eq!(capacity(8192), 4096, "the pinned map is reused as it is");
    std::fs::remove_file(dir.join(dhcp6_common::PIN_LAYOUT).join(dhcp6_common::maps::LEASES)).unwrap();
    assert_eq!(capacity(8192), 8192, "once its pin is removed, the next load makes it anew");
    let _ = std::fs::remove_dir_all(&dir);
}
