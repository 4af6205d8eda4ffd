//! Fuzzes the frame layer: no input may panic, and a frame holding a UDP datagram over IPv6
//! must be written again, from what was read of it, into a frame that reads the same.
#![no_main]

use dhcp6_codec::frame::{EthernetFrame, Ipv6Packet, UdpDatagram, UdpFrameRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = EthernetFrame::new_checked(data) else { return };
    let _ = (frame.vlans(), frame.vlan_tags().count());
    if let Ok(ip) = Ipv6Packet::new_checked(frame.payload()) {
        let _ = (ip.traffic_class(), ip.flow_label());
        if let Ok((_, upper)) = ip.upper_layer() {
            if let Ok(udp) = UdpDatagram::new_checked(upper) {
                let _ = udp.verify_checksum(&ip.src_addr(), &ip.dst_addr());
            }
        }
    }
    let Ok((repr, udp)) = UdpFrameRepr::parse(&frame) else { return };
    let again = repr.to_vec(udp.payload()).expect("a payload read from a datagram fits one");
    let written = EthernetFrame::new_checked(&again[..]).expect("a frame written reads");
    let (reread, udp_again) = UdpFrameRepr::parse(&written).expect("a frame written reads");
    // Tags of VLAN 0 name none, and are not written again.
    if repr.vlans.tags() == frame.tag_count() {
        assert_eq!(reread, repr);
    }
    assert_eq!(udp_again.payload(), udp.payload());
    assert!(udp_again.verify_checksum(&reread.src_ip, &reread.dst_ip));
});
