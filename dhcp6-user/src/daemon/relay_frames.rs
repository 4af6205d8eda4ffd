//! VLAN-tagged clients' frames, for the relay to take and answer without the kernel's stack
//! (which has no interface for their VLANs): what a tagged frame from a client holds, and the
//! tagged frame that carries a message down to it. Pure: the daemon reads and writes the
//! frames (`daemon::packet_socket`).

use std::net::{Ipv6Addr, SocketAddrV6};

use dhcp6_common::{
    relay::Vlans,
    wire::{ALL_DHCP_RELAY_AGENTS_AND_SERVERS, SERVER_PORT},
};

use crate::codec::frame::{EthernetFrame, FrameError, UdpFrameRepr};

/// Hop limit of the frames going down to clients (the kernel's default for unicast).
const HOP_LIMIT: u8 = 64;

/// A client's datagram, from a tagged frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedDatagram {
    pub vlans: Vlans,
    /// The sender's MAC.
    pub mac: [u8; 6],
    pub source: SocketAddrV6,
    pub payload: Vec<u8>,
}

/// Why a frame is not a client's datagram for the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameDrop {
    #[error("not a UDP datagram to All_DHCP_Relay_Agents_and_Servers port 547")]
    NotForRelays,
    #[error("bad UDP checksum")]
    Checksum,
}

/// The client's datagram in `frame` (tags inline, as on the wire). `checksum_trusted`: the
/// kernel vouches for the UDP checksum (checked it, or the frame was built on this machine
/// and it is still to be computed); else it is checked here.
pub fn client_datagram(frame: &[u8], checksum_trusted: bool) -> Result<TaggedDatagram, FrameDrop> {
    let frame = EthernetFrame::new_checked(frame).map_err(|_| FrameDrop::NotForRelays)?;
    let (d, udp) = UdpFrameRepr::parse(&frame).map_err(|_| FrameDrop::NotForRelays)?;
    if d.dst_port != SERVER_PORT || d.dst_ip.octets() != ALL_DHCP_RELAY_AGENTS_AND_SERVERS {
        return Err(FrameDrop::NotForRelays);
    }
    if !checksum_trusted && !udp.verify_checksum(&d.src_ip, &d.dst_ip) {
        return Err(FrameDrop::Checksum);
    }
    let source = SocketAddrV6::new(d.src_ip, d.src_port, 0, 0);
    Ok(TaggedDatagram { vlans: d.vlans, mac: d.src_mac, source, payload: udp.payload().to_vec() })
}

/// The frame that carries `payload` down to a client: Ethernet `to` <- `from` tagged with
/// `vlans`, IPv6 `addresses` (source, destination), UDP `ports`, checksummed.
pub fn client_frame(
    to: [u8; 6],
    from: [u8; 6],
    vlans: Vlans,
    addresses: (Ipv6Addr, Ipv6Addr),
    ports: (u16, u16),
    payload: &[u8],
) -> Result<Vec<u8>, FrameError> {
    UdpFrameRepr {
        src_mac: from,
        dst_mac: to,
        vlans,
        src_ip: addresses.0,
        dst_ip: addresses.1,
        src_port: ports.0,
        dst_port: ports.1,
        hop_limit: HOP_LIMIT,
    }
    .to_vec(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::frame::{ethernet::multicast_mac, Ipv6Packet};

    const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc1];
    const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn from_client(vlans: Vlans) -> Vec<u8> {
        let client: Ipv6Addr = "fe80::c1".parse().unwrap();
        let relays = Ipv6Addr::from(ALL_DHCP_RELAY_AGENTS_AND_SERVERS);
        client_frame(multicast_mac(&relays), CLIENT_MAC, vlans, (client, relays), (546, 547), b"\x01\x00\x00\x07")
            .unwrap()
    }

    #[test]
    fn a_tagged_client_frame_reads_back_whatever_its_tags() {
        for vlans in [Vlans::NONE, Vlans { outer: 100, inner: 0 }, Vlans { outer: 100, inner: 200 }] {
            let frame = from_client(vlans);
            assert_eq!(frame.len(), 14 + 4 * vlans.tags() + 40 + 8 + 4);
            let d = client_datagram(&frame, false).unwrap();
            assert_eq!((d.vlans, d.mac), (vlans, CLIENT_MAC));
            assert_eq!(d.source, "[fe80::c1]:546".parse().unwrap());
            assert_eq!(d.payload, b"\x01\x00\x00\x07");
        }
        let qinq = from_client(Vlans { outer: 100, inner: 200 });
        assert_eq!(&qinq[12..22], &[0x88, 0xa8, 0, 100, 0x81, 0, 0, 200, 0x86, 0xdd]);
        let ip = EthernetFrame::new_checked(&qinq[..]).unwrap().payload();
        assert_eq!(Ipv6Packet::new_checked(ip).unwrap().hop_limit(), 64);
    }

    #[test]
    fn bad_checksums_and_other_frames_are_refused() {
        let mut frame = from_client(Vlans { outer: 7, inner: 0 });
        let last = frame.len() - 1;
        frame[last] ^= 1;
        assert_eq!(client_datagram(&frame, false), Err(FrameDrop::Checksum));
        assert!(client_datagram(&frame, true).is_ok(), "a checksum the kernel vouches for is not checked again");
        let unicast = client_frame(
            OUR_MAC,
            CLIENT_MAC,
            Vlans { outer: 7, inner: 0 },
            ("fe80::c1".parse().unwrap(), "2001:db8::1".parse().unwrap()),
            (546, 547),
            b"\x01\x00\x00\x07",
        )
        .unwrap();
        assert_eq!(client_datagram(&unicast, false), Err(FrameDrop::NotForRelays));
        assert_eq!(client_datagram(&frame[..30], false), Err(FrameDrop::NotForRelays));
    }
}
