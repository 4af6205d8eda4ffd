//! Whole frames: a real one from the captures, read, written again and cut everywhere; and
//! properties over generated ones.

use core::net::Ipv6Addr;

use proptest::prelude::*;

use super::*;

/// dhcpcd's Solicit, as captured (`shared/vectors/dhcpcd-ia-na-pd.pcap`, frame 1): untagged,
/// 02:00:00:00:00:c0 to 33:33:00:01:00:02, fe80::ff:fe00:c0 to ff02::1:2 with flow label
/// 0x8651e and hop limit 1, port 546 to 547, UDP checksum 0xe72f (whole: taken on the
/// receiving side).
pub(crate) const SOLICIT: [u8; 196] = [
    0x33, 0x33, 0x00, 0x01, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x86, 0xdd, 0x60, 0x08, 0x65, 0x1e, 0x00,
    0x8e, 0x11, 0x01, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xfe, 0x00, 0x00, 0xc0,
    0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x02, 0x02, 0x22, 0x02,
    0x23, 0x00, 0x8e, 0xe7, 0x2f, 0x01, 0xd4, 0x71, 0xba, 0x00, 0x01, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x32, 0x96,
    0x97, 0xf8, 0x02, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x03, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x19, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x06, 0x00, 0x06, 0x00, 0x52, 0x00, 0x53, 0x00, 0x43, 0x00, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00,
    0x10, 0x00, 0x3c, 0x00, 0x00, 0x9f, 0x08, 0x00, 0x36, 0x64, 0x68, 0x63, 0x70, 0x63, 0x64, 0x2d, 0x39, 0x2e, 0x34,
    0x2e, 0x31, 0x3a, 0x4c, 0x69, 0x6e, 0x75, 0x78, 0x2d, 0x36, 0x2e, 0x31, 0x38, 0x2e, 0x34, 0x34, 0x2d, 0x66, 0x63,
    0x2d, 0x76, 0x35, 0x39, 0x35, 0x3a, 0x78, 0x38, 0x36, 0x5f, 0x36, 0x34, 0x3a, 0x47, 0x65, 0x6e, 0x75, 0x69, 0x6e,
    0x65, 0x49, 0x6e, 0x74, 0x65, 0x6c,
];

/// Where the IPv6 header's first word (version, traffic class, flow label) is in [`SOLICIT`].
const FLOW: core::ops::Range<usize> = 14..18;

fn solicit_repr() -> UdpFrameRepr {
    UdpFrameRepr {
        src_mac: [2, 0, 0, 0, 0, 0xc0],
        dst_mac: [0x33, 0x33, 0, 1, 0, 2],
        vlans: Vlans::NONE,
        src_ip: "fe80::ff:fe00:c0".parse().unwrap(),
        dst_ip: "ff02::1:2".parse().unwrap(),
        src_port: 546,
        dst_port: 547,
        hop_limit: 1,
    }
}

/// `bytes` read as a frame holding a datagram: its repr and payload.
fn parse(bytes: &[u8]) -> Result<(UdpFrameRepr, &[u8]), FrameError> {
    let frame = EthernetFrame::new_checked(bytes)?;
    UdpFrameRepr::parse(&frame).map(|(repr, udp)| (repr, udp.payload()))
}

#[test]
fn a_captured_frame_reads_as_sent() {
    let (repr, payload) = parse(&SOLICIT).unwrap();
    assert_eq!(repr, solicit_repr());
    assert_eq!(payload, &SOLICIT[62..]);
    assert_eq!(payload[0], 1, "a Solicit");
    let (_, udp) = UdpFrameRepr::parse(&EthernetFrame::new_checked(&SOLICIT[..]).unwrap()).unwrap();
    assert!(udp.verify_checksum(&repr.src_ip, &repr.dst_ip));
    assert_eq!(UdpFrameRepr::from_client(repr.src_mac, repr.src_ip), repr, "what a client sends");
}

#[test]
fn a_captured_frame_is_written_again_byte_for_byte_but_its_flow_label() {
    let mut expected = SOLICIT;
    expected[FLOW].copy_from_slice(&[0x60, 0, 0, 0]);
    assert_eq!(solicit_repr().to_vec(&SOLICIT[62..]).unwrap(), expected);
    let mut buf = [0xaa; 300];
    assert_eq!(solicit_repr().emit(&mut buf, &SOLICIT[62..]), Ok(196));
    assert_eq!(buf[..196], expected);
    assert!(buf[196..].iter().all(|b| *b == 0xaa), "nothing written past the frame");
}

#[test]
fn tagged_the_captured_frame_reads_with_its_vlans() {
    for vlans in [Vlans { outer: 100, inner: 0 }, Vlans { outer: 10, inner: 20 }] {
        let repr = UdpFrameRepr { vlans, ..solicit_repr() };
        let bytes = repr.to_vec(&SOLICIT[62..]).unwrap();
        assert_eq!(bytes.len(), SOLICIT.len() + 4 * vlans.tags());
        let (parsed, payload) = parse(&bytes).unwrap();
        assert_eq!((parsed, payload), (repr, &SOLICIT[62..]));
        let untagged = [&bytes[..12], &bytes[12 + 4 * vlans.tags()..]].concat();
        assert_eq!(untagged[18..], SOLICIT[18..], "the same datagram, the same checksum");
    }
}

#[test]
fn every_cut_of_the_captured_frame_is_refused_and_padding_is_left_out() {
    for len in 0..SOLICIT.len() {
        assert!(parse(&SOLICIT[..len]).is_err(), "cut to {len}");
    }
    assert_eq!(parse(&SOLICIT[..60]), Err(FrameError::Truncated { what: "IPv6 payload", needed: 182, available: 46 }));
    let padded = [&SOLICIT[..], &[0; 10]].concat();
    assert_eq!(parse(&padded).unwrap().1, &SOLICIT[62..]);
}

#[test]
fn frames_that_are_not_udp_over_ipv6_are_refused() {
    let changed = |at: usize, bytes: &[u8]| {
        let mut f = SOLICIT;
        f[at..at + bytes.len()].copy_from_slice(bytes);
        parse(&f).map(|_| ()).unwrap_err()
    };
    assert_eq!(changed(12, &[0x08, 0x00]), FrameError::NotIpv6(0x0800));
    assert_eq!(changed(14, &[0x45]), FrameError::BadIpVersion(4));
    assert_eq!(changed(20, &[58]), FrameError::NotUdp(58));
    assert_eq!(changed(20, &[44]), FrameError::Fragment, "a Fragment header of more fragments (M set)");
    assert_eq!(changed(58, &[0, 7]), FrameError::BadUdpLength(7));
    assert_eq!(changed(18, &[0, 0x8d]), FrameError::Truncated { what: "UDP datagram", needed: 142, available: 141 });
}

#[test]
fn udp_is_found_past_extension_headers_and_bytes_past_its_length_are_left_out() {
    // A Hop-by-Hop Options header (8 bytes of padding) before UDP.
    let mut f = [&SOLICIT[..54], &[17, 0, 1, 4, 0, 0, 0, 0], &SOLICIT[54..]].concat();
    f[18..20].copy_from_slice(&150u16.to_be_bytes());
    f[20] = 0;
    assert_eq!(parse(&f), Ok((solicit_repr(), &SOLICIT[62..])));
    // A UDP length short of the IPv6 payload: the kernel's stack trims the rest, and so does
    // the layer.
    let mut f = SOLICIT;
    f[58..60].copy_from_slice(&141u16.to_be_bytes());
    assert_eq!(parse(&f), Ok((solicit_repr(), &SOLICIT[62..195])));
}

#[test]
fn what_cannot_be_written_is_refused() {
    let repr = solicit_repr();
    assert_eq!(repr.emit(&mut [0; 100], &[0; 39]), Err(FrameError::NoRoom { needed: 101, available: 100 }));
    assert_eq!(repr.emit(&mut [0; 100], &[0; 38]), Ok(100));
    let huge = vec![0; 65536 - 8];
    assert_eq!(repr.to_vec(&huge).unwrap_err(), FrameError::PayloadTooLong(65528));
    assert_eq!(repr.to_vec(&huge[1..]).map(|f| f.len()), Ok(62 + 65527));
}

fn vlans() -> impl Strategy<Value = Vlans> {
    prop_oneof![
        Just(Vlans::NONE),
        (1..4096u16).prop_map(|outer| Vlans { outer, inner: 0 }),
        (1..4096u16, 1..4096u16).prop_map(|(outer, inner)| Vlans { outer, inner }),
    ]
}

prop_compose! {
    fn reprs()(
        src_mac in any::<[u8; 6]>(),
        dst_mac in any::<[u8; 6]>(),
        vlans in vlans(),
        src_ip in any::<u128>(),
        dst_ip in any::<u128>(),
        src_port in any::<u16>(),
        dst_port in any::<u16>(),
        hop_limit in any::<u8>(),
    ) -> UdpFrameRepr {
        let (src_ip, dst_ip) = (Ipv6Addr::from(src_ip), Ipv6Addr::from(dst_ip));
        UdpFrameRepr { src_mac, dst_mac, vlans, src_ip, dst_ip, src_port, dst_port, hop_limit }
    }
}

/// Reads `bytes` every way the layer offers; none may panic.
fn read_every_way(bytes: &[u8]) {
    let Ok(frame) = EthernetFrame::new_checked(bytes) else { return };
    let _ = (frame.dst_mac(), frame.src_mac(), frame.vlans(), frame.vlan_tag(2), frame.ethertype());
    if let Ok((repr, udp)) = UdpFrameRepr::parse(&frame) {
        let _ = (udp.payload(), udp.verify_checksum(&repr.src_ip, &repr.dst_ip));
    }
    let Ok(ip) = Ipv6Packet::new_checked(frame.payload()) else { return };
    let _ = (ip.traffic_class(), ip.flow_label(), ip.src_addr(), ip.dst_addr());
    if let Ok((_, upper)) = ip.upper_layer() {
        if let Ok(udp) = UdpDatagram::new_checked(upper) {
            let _ =
                (udp.src_port(), udp.dst_port(), udp.payload(), udp.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        read_every_way(&bytes);
    }

    /// Arbitrary bytes rarely get past the Ethernet header: frames with a few bytes changed
    /// and cut somewhere reach every check of every layer.
    #[test]
    fn damaged_frames_never_panic(
        repr in reprs(),
        payload in prop::collection::vec(any::<u8>(), 0..64),
        changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = repr.to_vec(&payload).unwrap();
        for (at, value) in changes {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        let cut = cut.index(bytes.len() + 1);
        read_every_way(&bytes[..cut]);
        read_every_way(&bytes);
    }

    #[test]
    fn emit_then_parse_round_trips(
        repr in reprs(),
        payload in prop::collection::vec(any::<u8>(), 0..600),
        padding in 0..40usize,
    ) {
        let mut bytes = repr.to_vec(&payload).unwrap();
        prop_assert_eq!(bytes.len(), repr.header_len() + payload.len());
        bytes.resize(bytes.len() + padding, 0);
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        let (parsed, udp) = UdpFrameRepr::parse(&frame).unwrap();
        prop_assert_eq!(parsed, repr);
        prop_assert_eq!(udp.payload(), &payload[..]);
        prop_assert!(udp.verify_checksum(&repr.src_ip, &repr.dst_ip));
    }
}
