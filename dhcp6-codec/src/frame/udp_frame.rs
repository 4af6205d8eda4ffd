//! A whole frame holding one UDP datagram over IPv6: what DHCPv6 clients, relays and servers on
//! a link send each other, read and written in one go.

use core::net::Ipv6Addr;

use dhcp6_common::wire::{
    frame::{ETHERTYPE_IPV6, IPPROTO_UDP, IPV6_HEADER_LEN, UDP_HEADER_LEN},
    ALL_DHCP_RELAY_AGENTS_AND_SERVERS, CLIENT_PORT, SERVER_PORT,
};

use super::{ethernet::multicast_mac, EthernetFrame, EthernetRepr, FrameError, Ipv6Packet, UdpDatagram, Vlans};

/// The addresses and ports of an Ethernet frame carrying one UDP datagram over IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFrameRepr {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// The VLANs, tagged as [`EthernetRepr::vlans`] says.
    pub vlans: Vlans,
    pub src_ip: Ipv6Addr,
    pub dst_ip: Ipv6Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub hop_limit: u8,
}

impl UdpFrameRepr {
    /// What a client sends from `mac` and its link-local address `src` to
    /// All_DHCP_Relay_Agents_and_Servers (RFC 9915 sections 7.1 and 7.2): untagged, to the
    /// group's multicast MAC, hop limit 1, port 546 to 547.
    pub fn from_client(mac: [u8; 6], src: Ipv6Addr) -> UdpFrameRepr {
        let dst_ip = Ipv6Addr::from(ALL_DHCP_RELAY_AGENTS_AND_SERVERS);
        UdpFrameRepr {
            src_mac: mac,
            dst_mac: multicast_mac(&dst_ip),
            vlans: Vlans::NONE,
            src_ip: src,
            dst_ip,
            src_port: CLIENT_PORT,
            dst_port: SERVER_PORT,
            hop_limit: 1,
        }
    }

    /// Reads the frame's datagram, and returns it with the frame's addresses and ports. What
    /// the kernel's stack would take: an IPv6 frame, extension headers stepped over to UDP
    /// (not a fragment), the UDP length at most what the IPv6 payload holds (bytes past it, and
    /// Ethernet padding, are not part of the datagram). The checksum is left to
    /// [`UdpDatagram::verify_checksum`], for where the kernel or XDP has not checked it.
    pub fn parse<'a, T: AsRef<[u8]> + ?Sized>(
        frame: &EthernetFrame<&'a T>,
    ) -> Result<(UdpFrameRepr, UdpDatagram<&'a [u8]>), FrameError> {
        if frame.ethertype() != ETHERTYPE_IPV6 {
            return Err(FrameError::NotIpv6(frame.ethertype()));
        }
        let ip = Ipv6Packet::new_checked(frame.payload())?;
        let (protocol, upper) = ip.upper_layer()?;
        if protocol != IPPROTO_UDP {
            return Err(FrameError::NotUdp(protocol));
        }
        let udp = UdpDatagram::new_checked(upper)?;
        let ethernet = EthernetRepr::parse(frame);
        let repr = UdpFrameRepr {
            src_mac: ethernet.src_mac,
            dst_mac: ethernet.dst_mac,
            vlans: ethernet.vlans,
            src_ip: ip.src_addr(),
            dst_ip: ip.dst_addr(),
            src_port: udp.src_port(),
            dst_port: udp.dst_port(),
            hop_limit: ip.hop_limit(),
        };
        Ok((repr, udp))
    }

    fn ethernet(&self) -> EthernetRepr {
        EthernetRepr { dst_mac: self.dst_mac, src_mac: self.src_mac, vlans: self.vlans, ethertype: ETHERTYPE_IPV6 }
    }

    /// Bytes before the payload: the Ethernet header (14, and 4 per tag), IPv6's 40, UDP's 8.
    pub fn header_len(&self) -> usize {
        self.ethernet().header_len() + IPV6_HEADER_LEN + UDP_HEADER_LEN
    }

    /// Writes the frame carrying `payload` at the start of `buf`, its UDP checksum filled in
    /// (traffic class and flow label 0), and returns its length.
    pub fn emit(&self, buf: &mut [u8], payload: &[u8]) -> Result<usize, FrameError> {
        let too_long = FrameError::PayloadTooLong(payload.len());
        let udp_len = u16::try_from(UDP_HEADER_LEN + payload.len()).map_err(|_| too_long)?;
        let len = self.header_len() + payload.len();
        let available = buf.len();
        let buf = buf.get_mut(..len).ok_or(FrameError::NoRoom { needed: len, available })?;
        let mut frame = self.ethernet().emit(buf)?;
        let mut ip = Ipv6Packet::new_unchecked(frame.payload_mut());
        ip.set_version_class_flow(6, 0, 0);
        ip.set_payload_len(udp_len);
        ip.set_next_header(IPPROTO_UDP);
        ip.set_hop_limit(self.hop_limit);
        ip.set_src_addr(&self.src_ip);
        ip.set_dst_addr(&self.dst_ip);
        let mut udp = UdpDatagram::new_unchecked(ip.payload_mut());
        udp.set_src_port(self.src_port);
        udp.set_dst_port(self.dst_port);
        udp.set_len(udp_len);
        udp.payload_mut().copy_from_slice(payload);
        udp.fill_checksum(&self.src_ip, &self.dst_ip);
        Ok(len)
    }

    /// The frame [`UdpFrameRepr::emit`] writes, in a buffer of its own.
    pub fn to_vec(&self, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut frame = vec![0; self.header_len() + payload.len()];
        self.emit(&mut frame, payload)?;
        Ok(frame)
    }
}
