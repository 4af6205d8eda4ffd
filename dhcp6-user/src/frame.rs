//! Untagged Ethernet frames holding one IPv6 UDP datagram: reading a client's, and writing
//! one in place. Pure: the AF_XDP sockets (`daemon::xsk`) and the fast path's tests use it.

use std::net::{Ipv6Addr, SocketAddrV6};

use dhcp6_common::{
    renewal::checksum,
    wire::frame::{ETHERTYPE_IPV6, ETH_HEADER_LEN, IPPROTO_UDP, IPV6_HEADER_LEN, UDP_HEADER_LEN},
};

/// Bytes before the UDP payload.
pub const HEADERS: usize = ETH_HEADER_LEN + IPV6_HEADER_LEN + UDP_HEADER_LEN;

/// A datagram read from a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameDatagram<'a> {
    /// The sender's MAC.
    pub mac: [u8; 6],
    pub source: SocketAddrV6,
    pub destination: SocketAddrV6,
    pub payload: &'a [u8],
}

/// The UDP datagram of an untagged IPv6 frame (no extension headers), if its lengths agree
/// (Ethernet padding may follow). The checksum is not checked: XDP did before handing the
/// frame over.
pub fn read_udp(frame: &[u8]) -> Option<FrameDatagram<'_>> {
    if frame.len() < HEADERS || frame[12..14] != ETHERTYPE_IPV6.to_be_bytes() || frame[14] >> 4 != 6 {
        return None;
    }
    let ip = &frame[ETH_HEADER_LEN..];
    if ip[6] != IPPROTO_UDP {
        return None;
    }
    let ip_payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let udp = &ip[IPV6_HEADER_LEN..];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len != ip_payload || udp_len < UDP_HEADER_LEN || udp.len() < udp_len {
        return None;
    }
    let address = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&ip[at..at + 16]).expect("16 bytes"));
    let port = |at: usize| u16::from_be_bytes([udp[at], udp[at + 1]]);
    let mut mac = [0; 6];
    mac.copy_from_slice(&frame[6..12]);
    Some(FrameDatagram {
        mac,
        source: SocketAddrV6::new(address(8), port(0), 0, 0),
        destination: SocketAddrV6::new(address(24), port(2), 0, 0),
        payload: &udp[UDP_HEADER_LEN..udp_len],
    })
}

/// The frame [`write_udp`] writes, as a new buffer.
pub fn udp_frame(
    to: [u8; 6],
    from: [u8; 6],
    addresses: (Ipv6Addr, Ipv6Addr),
    ports: (u16, u16),
    hop_limit: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = vec![0; HEADERS + payload.len()];
    let len = write_udp(&mut f, to, from, addresses, ports, hop_limit, payload)
        .expect("a buffer of the frame's length, a payload that fits a datagram");
    f.truncate(len);
    f
}

/// Writes into `buf` the frame carrying `payload` to `to` from `from` (MACs), IPv6
/// `addresses` (source, destination) with `hop_limit`, UDP `ports` (source, destination),
/// checksummed. Returns its length, or None if `buf` is too short.
pub fn write_udp(
    buf: &mut [u8],
    to: [u8; 6],
    from: [u8; 6],
    addresses: (Ipv6Addr, Ipv6Addr),
    ports: (u16, u16),
    hop_limit: u8,
    payload: &[u8],
) -> Option<usize> {
    let len = HEADERS + payload.len();
    let udp_len = u16::try_from(UDP_HEADER_LEN + payload.len()).ok()?;
    let f = buf.get_mut(..len)?;
    let (src, dst) = (addresses.0.octets(), addresses.1.octets());
    f[..6].copy_from_slice(&to);
    f[6..12].copy_from_slice(&from);
    f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    f[14..18].copy_from_slice(&[0x60, 0, 0, 0]);
    f[18..20].copy_from_slice(&udp_len.to_be_bytes());
    f[20] = IPPROTO_UDP;
    f[21] = hop_limit;
    f[22..38].copy_from_slice(&src);
    f[38..54].copy_from_slice(&dst);
    let udp = ETH_HEADER_LEN + IPV6_HEADER_LEN;
    f[udp..udp + 2].copy_from_slice(&ports.0.to_be_bytes());
    f[udp + 2..udp + 4].copy_from_slice(&ports.1.to_be_bytes());
    f[udp + 4..udp + 6].copy_from_slice(&udp_len.to_be_bytes());
    f[udp + 6..udp + 8].copy_from_slice(&[0, 0]);
    f[HEADERS..].copy_from_slice(payload);
    let mut sum = checksum::add(checksum::sum(&src), checksum::sum(&dst));
    sum = checksum::add(sum, u32::from(udp_len) + u32::from(IPPROTO_UDP));
    sum = checksum::add(sum, checksum::sum(&f[udp..]));
    let c = !checksum::fold(sum);
    // IPv6 forbids a zero UDP checksum: all ones says the same.
    f[udp + 6..udp + 8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
    Some(len)
}

/// An Ethernet frame carrying a client's `payload` from `src` port 546 to `dst` port 547
/// (to 33:33:00:01:00:02 from `mac`), with its UDP checksum: what a client on a NIC sends.
/// The benchmarks replay such frames.
pub fn client_frame(mac: [u8; 6], src: Ipv6Addr, dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
    udp_frame([0x33, 0x33, 0, 1, 0, 2], mac, (src, dst), (546, 547), 1, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc1];
    const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn addresses() -> (Ipv6Addr, Ipv6Addr) {
        ("fe80::1".parse().unwrap(), "fe80::c1".parse().unwrap())
    }

    #[test]
    fn a_written_frame_reads_back_and_its_checksum_holds() {
        let mut buf = [0u8; 256];
        let payload = b"\x07\x12\x34\x56\x00\x01\x00\x00";
        let len = write_udp(&mut buf, CLIENT_MAC, OUR_MAC, addresses(), (547, 546), 64, payload).unwrap();
        assert_eq!(len, HEADERS + payload.len());
        let d = read_udp(&buf[..len]).unwrap();
        assert_eq!(d.mac, OUR_MAC);
        assert_eq!(d.source, "[fe80::1]:547".parse().unwrap());
        assert_eq!(d.destination, "[fe80::c1]:546".parse().unwrap());
        assert_eq!(d.payload, payload);
        // The ones' complement sum over pseudo-header and datagram is all ones.
        let (src, dst) = addresses();
        let udp = &buf[ETH_HEADER_LEN + IPV6_HEADER_LEN..len];
        let mut sum = checksum::add(checksum::sum(&src.octets()), checksum::sum(&dst.octets()));
        sum = checksum::add(sum, udp.len() as u32 + 17);
        sum = checksum::add(sum, checksum::sum(udp));
        assert_eq!(checksum::fold(sum), 0xffff);
        // The frame etherparse reads is the same datagram.
        let parsed = crate::capture::dhcp6_datagram(&buf[..len]).unwrap();
        assert_eq!((parsed.source, parsed.destination), (d.source, d.destination));
        assert_eq!(parsed.payload, payload);
    }

    #[test]
    fn padding_is_left_out_and_bad_frames_are_refused() {
        let mut buf = [0u8; 256];
        let len = write_udp(&mut buf, CLIENT_MAC, OUR_MAC, addresses(), (546, 547), 64, b"\x01\0\0\x07").unwrap();
        let padded = &buf[..len + 10];
        assert_eq!(read_udp(padded).unwrap().payload, b"\x01\0\0\x07", "Ethernet padding past the datagram");
        assert_eq!(read_udp(&buf[..len - 1]), None, "cut short");
        let mut other = buf;
        other[12] = 0x08;
        assert_eq!(read_udp(&other[..len]), None, "not IPv6");
        let mut tcp = buf;
        tcp[20] = 6;
        assert_eq!(read_udp(&tcp[..len]), None, "not UDP");
        let mut long = buf;
        long[18] = 0x10;
        assert_eq!(read_udp(&long[..len]), None, "lengths that disagree");
        assert_eq!(read_udp(&[]), None);
        assert_eq!(write_udp(&mut [0u8; 60], CLIENT_MAC, OUR_MAC, addresses(), (547, 546), 64, &[0; 8]), None);
    }
}
