//! UDP datagrams (RFC 768) over IPv6, with their checksum (RFC 8200 section 8.1).

use core::net::Ipv6Addr;

use dhcp6_common::{
    renewal::checksum,
    wire::frame::{IPPROTO_UDP, UDP_HEADER_LEN},
};

use super::{check_len, read_u16, FrameError};

/// Byte offsets of the header's fields.
pub mod field {
    use core::ops::Range;

    pub const SOURCE_PORT: Range<usize> = 0..2;
    pub const DESTINATION_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// A UDP datagram in a buffer whose header and length field have been checked.
#[derive(Debug, Clone, Copy)]
pub struct UdpDatagram<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpDatagram<T> {
    /// The buffer as a datagram, unchecked: for writing a header into it. Reading a field past
    /// the buffer's end panics.
    pub fn new_unchecked(buffer: T) -> Self {
        UdpDatagram { buffer }
    }

    /// Checks that the header is there and that its length field covers the header and no
    /// more than the buffer (bytes past it are not part of the datagram).
    pub fn new_checked(buffer: T) -> Result<Self, FrameError> {
        check_len(buffer.as_ref(), UDP_HEADER_LEN, "UDP header")?;
        let datagram = UdpDatagram { buffer };
        let len = datagram.len();
        if usize::from(len) < UDP_HEADER_LEN {
            return Err(FrameError::BadUdpLength(len));
        }
        check_len(datagram.buffer.as_ref(), usize::from(len), "UDP datagram")?;
        Ok(datagram)
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn src_port(&self) -> u16 {
        read_u16(self.bytes(), field::SOURCE_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        read_u16(self.bytes(), field::DESTINATION_PORT)
    }

    /// The length field: header and payload.
    #[allow(clippy::len_without_is_empty)] // never empty: the header is part of it
    pub fn len(&self) -> u16 {
        read_u16(self.bytes(), field::LENGTH)
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.bytes(), field::CHECKSUM)
    }

    /// Whether the checksum holds for a datagram from `src` to `dst`: the ones' complement sum
    /// of the pseudo-header and the datagram is all ones. A zero checksum never holds: IPv6
    /// forbids leaving it out (RFC 8200 section 8.1).
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        self.checksum() != 0 && self.sum(src, dst) == 0xffff
    }

    /// The folded ones' complement sum of the pseudo-header and the datagram, its checksum
    /// field as it stands.
    fn sum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> u16 {
        // The pseudo-header (RFC 8200 section 8.1): the addresses, the upper-layer length and
        // the next header.
        let addresses = checksum::add(checksum::sum(&src.octets()), checksum::sum(&dst.octets()));
        let pseudo_header = checksum::add(addresses, u32::from(self.len()) + u32::from(IPPROTO_UDP));
        checksum::fold(checksum::add(pseudo_header, checksum::sum(&self.bytes()[..usize::from(self.len())])))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> UdpDatagram<&'a T> {
    /// The payload, as long as the length field says.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[UDP_HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpDatagram<T> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    pub fn set_src_port(&mut self, port: u16) {
        self.bytes_mut()[field::SOURCE_PORT].copy_from_slice(&port.to_be_bytes());
    }

    pub fn set_dst_port(&mut self, port: u16) {
        self.bytes_mut()[field::DESTINATION_PORT].copy_from_slice(&port.to_be_bytes());
    }

    pub fn set_len(&mut self, len: u16) {
        self.bytes_mut()[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }

    pub fn set_checksum(&mut self, checksum: u16) {
        self.bytes_mut()[field::CHECKSUM].copy_from_slice(&checksum.to_be_bytes());
    }

    /// The payload, as long as the length field says.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.bytes_mut()[UDP_HEADER_LEN..end]
    }

    /// Computes the checksum of the datagram from `src` to `dst` and writes it: all ones
    /// where the sum gives zero, which IPv6 forbids.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let c = !self.sum(src, dst);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::SOLICIT;

    /// The UDP datagram of a captured frame, its checksum as sent.
    const DATAGRAM: &[u8] = SOLICIT.split_at(54).1;

    fn addresses() -> (Ipv6Addr, Ipv6Addr) {
        ("fe80::ff:fe00:c0".parse().unwrap(), "ff02::1:2".parse().unwrap())
    }

    #[test]
    fn a_captured_datagram_reads_and_its_checksum_holds() {
        let (src, dst) = addresses();
        let udp = UdpDatagram::new_checked(DATAGRAM).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port(), udp.len(), udp.checksum()), (546, 547, 142, 0xe72f));
        assert_eq!(udp.payload(), &DATAGRAM[8..]);
        assert!(udp.verify_checksum(&src, &dst));
        assert!(!udp.verify_checksum(&src, &"ff02::1:3".parse().unwrap()), "the pseudo-header counts");
    }

    #[test]
    fn a_filled_checksum_is_the_one_sent() {
        let (src, dst) = addresses();
        let mut bytes = DATAGRAM.to_vec();
        let mut udp = UdpDatagram::new_checked(&mut bytes[..]).unwrap();
        udp.set_checksum(0x1234);
        assert!(!udp.verify_checksum(&src, &dst));
        udp.fill_checksum(&src, &dst);
        assert_eq!(bytes, DATAGRAM);
    }

    #[test]
    fn a_sum_of_zero_is_sent_as_all_ones_and_a_zero_checksum_never_holds() {
        // A payload chosen to make the sum come out zero.
        let (src, dst) = addresses();
        let mut bytes = [0u8; 10];
        let mut udp = UdpDatagram::new_unchecked(&mut bytes[..]);
        udp.set_len(10);
        udp.fill_checksum(&src, &dst);
        let c = udp.checksum();
        udp.payload_mut().copy_from_slice(&c.to_be_bytes());
        udp.fill_checksum(&src, &dst);
        assert_eq!(udp.checksum(), 0xffff);
        assert!(udp.verify_checksum(&src, &dst));
        udp.set_checksum(0);
        assert!(!udp.verify_checksum(&src, &dst), "IPv6 forbids a zero checksum");
    }

    #[test]
    fn short_datagrams_and_bad_lengths_are_refused() {
        for len in 0..8 {
            let e = FrameError::Truncated { what: "UDP header", needed: 8, available: len };
            assert_eq!(UdpDatagram::new_checked(&DATAGRAM[..len]).unwrap_err(), e);
        }
        for len in 8..DATAGRAM.len() {
            let e = FrameError::Truncated { what: "UDP datagram", needed: 142, available: len };
            assert_eq!(UdpDatagram::new_checked(&DATAGRAM[..len]).unwrap_err(), e);
        }
        let mut short = DATAGRAM.to_vec();
        short[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(UdpDatagram::new_checked(&short[..]).unwrap_err(), FrameError::BadUdpLength(7));
        let padded = [DATAGRAM, &[0; 4]].concat();
        assert_eq!(UdpDatagram::new_checked(&padded[..]).unwrap().payload(), &DATAGRAM[8..], "bytes past it left out");
    }

    #[test]
    fn setters_write_in_place() {
        let mut bytes = [0u8; 9];
        let mut udp = UdpDatagram::new_unchecked(&mut bytes[..]);
        udp.set_src_port(547);
        udp.set_dst_port(546);
        udp.set_len(9);
        udp.set_checksum(0xabcd);
        udp.payload_mut()[0] = 7;
        assert_eq!(bytes, [2, 0x23, 2, 0x22, 0, 9, 0xab, 0xcd, 7]);
    }
}
