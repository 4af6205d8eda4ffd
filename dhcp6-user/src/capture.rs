//! Reading DHCPv6 datagrams out of packet captures (pcap, Ethernet link type): Ethernet with
//! optional 802.1Q/802.1ad tags, IPv6 (extension headers included), UDP to or from 546/547.

use std::{fs::File, io::BufReader, net::SocketAddrV6, path::Path, time::Duration};

use etherparse::{NetSlice, SlicedPacket, TransportSlice, VlanSlice};
use pcap_file::{pcap::PcapReader, DataLink};

use dhcp6_common::wire::{CLIENT_PORT, SERVER_PORT};

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
    let sliced = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(NetSlice::Ipv6(ip)) = &sliced.net else {
        return None;
    };
    let Some(TransportSlice::Udp(udp)) = &sliced.transport else {
        return None;
    };
    let (sport, dport) = (udp.source_port(), udp.destination_port());
    let is_dhcp = |p| p == CLIENT_PORT || p == SERVER_PORT;
    if !is_dhcp(sport) && !is_dhcp(dport) {
        return None;
    }
    let vlans = match &sliced.vlan {
        None => vec![],
        Some(VlanSlice::SingleVlan(v)) => vec![v.vlan_identifier().value()],
        Some(VlanSlice::DoubleVlan(v)) => {
            vec![v.outer().vlan_identifier().value(), v.inner().vlan_identifier().value()]
        }
    };
    let header = ip.header();
    Some(Datagram {
        frame: 0,
        timestamp: Duration::ZERO,
        vlans,
        source: SocketAddrV6::new(header.source_addr(), sport, 0, 0),
        destination: SocketAddrV6::new(header.destination_addr(), dport, 0, 0),
        payload: udp.payload().to_vec(),
    })
}
