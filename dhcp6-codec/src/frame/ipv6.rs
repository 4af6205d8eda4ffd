//! IPv6 packets (RFC 8200): the fixed header, and a walk over extension headers to the
//! upper-layer protocol.

use core::net::Ipv6Addr;

use dhcp6_common::wire::frame::IPV6_HEADER_LEN;

use super::{check_len, read_u16, FrameError};
use crate::packet::addr_at;

/// Byte offsets of the fixed header's fields (RFC 8200 section 3).
pub mod field {
    use core::ops::Range;

    /// Version (4 bits), Traffic Class (8), Flow Label (20).
    pub const VERSION_CLASS_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LENGTH: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SOURCE: Range<usize> = 8..24;
    pub const DESTINATION: Range<usize> = 24..40;
}

/// Extension headers [`Ipv6Packet::upper_layer`] steps over (IANA "IPv6 Extension Header Types").
mod extension {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const AUTHENTICATION: u8 = 51;
    pub const DESTINATION_OPTIONS: u8 = 60;
    /// Most extension headers in a row: RFC 8200 section 4.1 orders six kinds, each once but
    /// Destination Options twice; the limit bounds the walk over a crafted chain.
    pub const MAX: usize = 8;
}

/// An IPv6 packet in a buffer whose fixed header and payload length have been checked.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// The buffer as an IPv6 packet, unchecked: for writing a header into it. Reading a field
    /// past the buffer's end panics.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Checks the version and that the fixed header and the payload it declares are there
    /// (bytes past the payload, such as Ethernet padding, are not part of the packet).
    pub fn new_checked(buffer: T) -> Result<Self, FrameError> {
        let bytes = buffer.as_ref();
        check_len(bytes, IPV6_HEADER_LEN, "IPv6 header")?;
        let packet = Ipv6Packet { buffer };
        if packet.version() != 6 {
            return Err(FrameError::BadIpVersion(packet.version()));
        }
        check_len(packet.buffer.as_ref(), packet.total_len(), "IPv6 payload")?;
        Ok(packet)
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn total_len(&self) -> usize {
        IPV6_HEADER_LEN + usize::from(self.payload_len())
    }

    pub fn version(&self) -> u8 {
        self.bytes()[field::VERSION_CLASS_FLOW.start] >> 4
    }

    pub fn traffic_class(&self) -> u8 {
        let b = &self.bytes()[field::VERSION_CLASS_FLOW];
        (b[0] << 4) | (b[1] >> 4)
    }

    pub fn flow_label(&self) -> u32 {
        let b = &self.bytes()[field::VERSION_CLASS_FLOW];
        u32::from_be_bytes([0, b[1] & 0x0f, b[2], b[3]])
    }

    /// Bytes after the fixed header: extension headers and the upper-layer data.
    pub fn payload_len(&self) -> u16 {
        read_u16(self.bytes(), field::PAYLOAD_LENGTH)
    }

    pub fn next_header(&self) -> u8 {
        self.bytes()[field::NEXT_HEADER]
    }

    pub fn hop_limit(&self) -> u8 {
        self.bytes()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        addr_at(self.bytes(), field::SOURCE.start)
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        addr_at(self.bytes(), field::DESTINATION.start)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv6Packet<&'a T> {
    /// The payload, as long as the header says.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[IPV6_HEADER_LEN..self.total_len()]
    }

    /// The upper-layer protocol and its data, past any extension headers: Hop-by-Hop Options,
    /// Routing, Destination Options (RFC 8200 section 4), Authentication (RFC 4302) and the
    /// Fragment header of a datagram that is whole; a fragment of one that is not is refused.
    pub fn upper_layer(&self) -> Result<(u8, &'a [u8]), FrameError> {
        let (mut next, mut rest) = (self.next_header(), self.payload());
        for _ in 0..extension::MAX {
            use extension::*;
            if !matches!(next, HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS | AUTHENTICATION | FRAGMENT) {
                return Ok((next, rest));
            }
            // Each starts with the next header's number and its length: in 8-octet units not
            // counting the first (in 4-octet units not counting the first two for AH; the
            // Fragment header's is fixed).
            check_len(rest, 2, "IPv6 extension header")?;
            let units = usize::from(rest[1]);
            let len = match next {
                AUTHENTICATION => 4 * (2 + units),
                FRAGMENT => 8,
                _ => 8 * (1 + units),
            };
            check_len(rest, len, "IPv6 extension header")?;
            // The Fragment Offset (13 bits) and the M flag (the last bit) of a Fragment header.
            if next == FRAGMENT && read_u16(rest, 2..4) & 0xfff9 != 0 {
                return Err(FrameError::Fragment);
            }
            next = rest[0];
            rest = &rest[len..];
        }
        Err(FrameError::TooManyExtensionHeaders(extension::MAX))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the version, the traffic class and the flow label.
    pub fn set_version_class_flow(&mut self, version: u8, traffic_class: u8, flow_label: u32) {
        let word = u32::from(version) << 28 | u32::from(traffic_class) << 20 | (flow_label & 0x000f_ffff);
        self.bytes_mut()[field::VERSION_CLASS_FLOW].copy_from_slice(&word.to_be_bytes());
    }

    pub fn set_payload_len(&mut self, len: u16) {
        self.bytes_mut()[field::PAYLOAD_LENGTH].copy_from_slice(&len.to_be_bytes());
    }

    pub fn set_next_header(&mut self, next_header: u8) {
        self.bytes_mut()[field::NEXT_HEADER] = next_header;
    }

    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.bytes_mut()[field::HOP_LIMIT] = hop_limit;
    }

    pub fn set_src_addr(&mut self, addr: &Ipv6Addr) {
        self.bytes_mut()[field::SOURCE].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: &Ipv6Addr) {
        self.bytes_mut()[field::DESTINATION].copy_from_slice(&addr.octets());
    }

    /// The payload, as long as the header says.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.bytes_mut()[IPV6_HEADER_LEN..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::SOLICIT;

    /// The IPv6 packet of a captured frame.
    const PACKET: &[u8] = SOLICIT.split_at(14).1;

    #[test]
    fn the_fixed_header_reads_its_fields() {
        let packet = Ipv6Packet::new_checked(PACKET).unwrap();
        assert_eq!((packet.version(), packet.traffic_class(), packet.flow_label()), (6, 0, 0x8651e));
        assert_eq!((packet.payload_len(), packet.next_header(), packet.hop_limit()), (142, 17, 1));
        assert_eq!(packet.src_addr(), "fe80::ff:fe00:c0".parse::<Ipv6Addr>().unwrap());
        assert_eq!(packet.dst_addr(), "ff02::1:2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(packet.payload(), &PACKET[40..]);
        assert_eq!(packet.upper_layer(), Ok((17, &PACKET[40..])));
    }

    #[test]
    fn padding_is_left_out_and_short_or_other_packets_are_refused() {
        let padded = [PACKET, &[0; 6]].concat();
        assert_eq!(Ipv6Packet::new_checked(&padded[..]).unwrap().payload(), &PACKET[40..]);
        for len in 0..PACKET.len() {
            let e = if len < 40 {
                FrameError::Truncated { what: "IPv6 header", needed: 40, available: len }
            } else {
                FrameError::Truncated { what: "IPv6 payload", needed: PACKET.len(), available: len }
            };
            assert_eq!(Ipv6Packet::new_checked(&PACKET[..len]).unwrap_err(), e);
        }
        let mut v4 = PACKET.to_vec();
        v4[0] = 0x45;
        assert_eq!(Ipv6Packet::new_checked(&v4[..]).unwrap_err(), FrameError::BadIpVersion(4));
    }

    /// A packet whose UDP datagram of 8 bytes is behind `extensions` (each: the next header's
    /// number, a length, the rest), the first of them of type `first`.
    fn behind(first: u8, extensions: &[&[u8]]) -> Vec<u8> {
        let mut p = PACKET[..40].to_vec();
        let chain: Vec<u8> = extensions.concat();
        p[4..6].copy_from_slice(&((chain.len() + 8) as u16).to_be_bytes());
        p[6] = first;
        p.extend(chain);
        p.extend([2, 0x22, 2, 0x23, 0, 8, 0, 0]);
        p
    }

    #[test]
    fn extension_headers_are_stepped_over_to_udp() {
        // Hop-by-Hop (8 bytes, padding) -> Destination Options (16) -> Fragment (whole) -> UDP.
        let hop_by_hop: &[u8] = &[60, 0, 1, 4, 0, 0, 0, 0];
        let destination: &[u8] = &[44, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let fragment: &[u8] = &[17, 0, 0, 0, 0, 0, 0, 1];
        let p = behind(0, &[hop_by_hop, destination, fragment]);
        let packet = Ipv6Packet::new_checked(&p[..]).unwrap();
        assert_eq!(packet.upper_layer(), Ok((17, &[2, 0x22, 2, 0x23, 0, 8, 0, 0][..])));
        // Routing, then Authentication (its length in 4-octet units, less 2).
        let routing: &[u8] = &[51, 0, 0, 0, 0, 0, 0, 0];
        let auth: &[u8] = &[17, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2];
        let p = behind(43, &[routing, auth]);
        assert_eq!(Ipv6Packet::new_checked(&p[..]).unwrap().upper_layer().map(|(n, d)| (n, d.len())), Ok((17, 8)));
    }

    #[test]
    fn fragments_cut_chains_and_endless_chains_are_refused() {
        for offset_and_m in [[0, 1], [0, 8], [0xff, 0xf8]] {
            let p = behind(44, &[&[17, 0, offset_and_m[0], offset_and_m[1], 0, 0, 0, 1]]);
            assert_eq!(Ipv6Packet::new_checked(&p[..]).unwrap().upper_layer(), Err(FrameError::Fragment));
        }
        // A Destination Options header claiming 24 bytes where 16 are left.
        let p = behind(60, &[&[17, 2, 0, 0, 0, 0, 0, 0]]);
        assert_eq!(
            Ipv6Packet::new_checked(&p[..]).unwrap().upper_layer(),
            Err(FrameError::Truncated { what: "IPv6 extension header", needed: 24, available: 16 })
        );
        let mut p = PACKET[..41].to_vec();
        p[4..6].copy_from_slice(&1u16.to_be_bytes());
        p[6] = 0;
        assert_eq!(
            Ipv6Packet::new_checked(&p[..]).unwrap().upper_layer(),
            Err(FrameError::Truncated { what: "IPv6 extension header", needed: 2, available: 1 })
        );
        let p = behind(0, &[&[0u8, 0, 0, 0, 0, 0, 0, 0].repeat(9)]);
        assert_eq!(Ipv6Packet::new_checked(&p[..]).unwrap().upper_layer(), Err(FrameError::TooManyExtensionHeaders(8)));
    }

    #[test]
    fn setters_write_in_place() {
        let mut buf = vec![0u8; PACKET.len()];
        let mut packet = Ipv6Packet::new_unchecked(&mut buf[..]);
        packet.set_version_class_flow(6, 0, 0x8651e);
        packet.set_payload_len(142);
        packet.set_next_header(17);
        packet.set_hop_limit(1);
        packet.set_src_addr(&"fe80::ff:fe00:c0".parse().unwrap());
        packet.set_dst_addr(&"ff02::1:2".parse().unwrap());
        packet.payload_mut().copy_from_slice(&PACKET[40..]);
        assert_eq!(buf, PACKET);
        let mut packet = Ipv6Packet::new_unchecked(&mut buf[..]);
        packet.set_version_class_flow(6, 0xab, 0xfff_ffff);
        assert_eq!((packet.version(), packet.traffic_class(), packet.flow_label()), (6, 0xab, 0xf_ffff));
    }
}
