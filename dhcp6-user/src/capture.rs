//! Reading DHCPv6 datagrams out of packet captures (pcap, Ethernet link type): Ethernet with
//! optional 802.1Q/802.1ad tags, IPv6 (extension headers included), UDP to or from 546/547,
//! read through the codec's frame layer.

use std::{fs::File, io::BufReader, net::SocketAddrV6, path::Path, time::Duration};

use pcap_file::{pcap::PcapReader, DataLink};

use crate::codec::{
    frame::{EthernetFrame, UdpFrameRepr},
    CLIENT_PORT, SERVER_PORT,
};

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot open capture: {0}")]
    Open(#[from] std::io::Error),
    #[error("not a readable pcap file: {0}")]
    Pcap(#[from] pcap_file::PcapError),
    #[error("link type {0:?} is not Ethernet")]
    LinkType(DataLink),
}

/// A UDP datagram to or from a DHCPv6 port, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// 1-based frame number in the capture, as tshark counts.
    pub frame: usize,
    /// Capture time since the Unix epoch.
    pub timestamp: Duration,
    /// VLAN ids, outer first.
    pub vlans: Vec<u16>,
    pub source: SocketAddrV6,
    pub destination: SocketAddrV6,
    /// The UDP payload: the DHCPv6 message.
    pub payload: Vec<u8>,
}

/// Every DHCPv6 datagram in the pcap file at `path`, in capture order. Frames that are not
/// IPv6/UDP on a DHCPv6 port are skipped.
pub fn read_pcap(path: &Path) -> Result<Vec<Datagram>, CaptureError> {
    let mut reader = PcapReader::new(BufReader::new(File::open(path)?))?;
    let link = reader.header().datalink;
    if link != DataLink::ETHERNET {
        return Err(CaptureError::LinkType(link));
    }
    let mut out = Vec::new();
    let mut frame = 0;
    while let Some(packet) = reader.next_packet() {
        let packet = packet?;
        frame += 1;
        if let Some(mut d) = dhcp6_datagram(&packet.data) {
            d.frame = frame;
            d.timestamp = packet.timestamp;
            out.push(d);
        }
    }
    Ok(out)
}

/// The DHCPv6 datagram in an Ethernet frame, if it holds one.
pub fn dhcp6_datagram(frame: &[u8]) -> Option<Datagram> {
    let frame = EthernetFrame::new_checked(frame).ok()?;
    let (d, udp) = UdpFrameRepr::parse(&frame).ok()?;
    let is_dhcp = |p| p == CLIENT_PORT || p == SERVER_PORT;
    if !is_dhcp(d.src_port) && !is_dhcp(d.dst_port) {
        return None;
    }
    Some(Datagram {
        frame: 0,
        timestamp: Duration::ZERO,
        vlans: frame.vlan_tags().map(|t| t.vid()).collect(),
        source: SocketAddrV6::new(d.src_ip, d.src_port, 0, 0),
        destination: SocketAddrV6::new(d.dst_ip, d.dst_port, 0, 0),
        payload: udp.payload().to_vec(),
    })
}
