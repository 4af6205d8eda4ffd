//! The frames DHCPv6 travels in on a link: Ethernet (with up to two VLAN tags), IPv6, UDP.
//!
//! The same two ways in as the message codec, after smoltcp's `wire` module:
//! - zero-copy views, [`EthernetFrame`], [`Ipv6Packet`] and [`UdpDatagram`], each over a byte
//!   buffer, its lengths checked once by `new_checked`, its fields read and written in place
//!   at the offsets its `field` module names;
//! - [`UdpFrameRepr`], the addresses and ports of a whole frame holding one UDP datagram, read
//!   from a frame with `parse` and written around a payload with `emit`.
//!
//! Every offset of these headers is in this module and nowhere else in userspace (the XDP
//! program, which cannot use these views, shares their lengths and EtherTypes through
//! `dhcp6_common::wire::frame`).
//!
//! ```
//! use std::net::Ipv6Addr;
//! use dhcp6_codec::frame::{EthernetFrame, UdpFrameRepr, Vlans};
//!
//! let repr = UdpFrameRepr {
//!     dst_mac: [0x33, 0x33, 0, 1, 0, 2],
//!     src_mac: [2, 0, 0, 0, 0, 0xc1],
//!     vlans: Vlans { outer: 100, inner: 0 },
//!     src_ip: "fe80::c1".parse().unwrap(),
//!     dst_ip: "ff02::1:2".parse().unwrap(),
//!     src_port: 546,
//!     dst_port: 547,
//!     hop_limit: 1,
//! };
//! let bytes = repr.to_vec(b"\x01\x00\x00\x07").unwrap();
//! let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
//! let (parsed, udp) = UdpFrameRepr::parse(&frame).unwrap();
//! assert_eq!(parsed, repr);
//! assert_eq!(udp.payload(), b"\x01\x00\x00\x07");
//! assert!(udp.verify_checksum(&parsed.src_ip, &parsed.dst_ip));
//! ```

pub mod ethernet;
pub mod ipv6;
pub mod udp;
mod udp_frame;

pub use dhcp6_common::relay::Vlans;
pub use ethernet::{EthernetFrame, EthernetRepr, VlanTag};
pub use ipv6::Ipv6Packet;
pub use udp::UdpDatagram;
pub use udp_frame::UdpFrameRepr;

use thiserror::Error;

/// Why bytes are not the frame, packet or datagram asked for, or why one cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The buffer ends inside a header, or before the length a header declares.
    #[error("truncated {what}: needs {needed} bytes, has {available}")]
    Truncated { what: &'static str, needed: usize, available: usize },
    /// A third VLAN tag after an outer and an inner one.
    #[error("more VLAN tags than two")]
    TooManyVlanTags,
    /// The EtherType after the tags is not IPv6's.
    #[error("EtherType {0:#06x} is not IPv6")]
    NotIpv6(u16),
    /// The IP version field is not 6.
    #[error("IP version {0}, not 6")]
    BadIpVersion(u8),
    /// The upper-layer protocol, past any extension headers, is not UDP.
    #[error("upper-layer protocol {0} is not UDP")]
    NotUdp(u8),
    /// A fragment of a datagram that is not whole (RFC 8200 section 4.5).
    #[error("a fragment of a fragmented datagram")]
    Fragment,
    /// More extension headers in a row than any real packet carries.
    #[error("more than {0} IPv6 extension headers")]
    TooManyExtensionHeaders(usize),
    /// A UDP length field shorter than the UDP header (RFC 768).
    #[error("UDP length {0} is shorter than the UDP header")]
    BadUdpLength(u16),
    /// A payload too long for the 16-bit UDP length field.
    #[error("a payload of {0} bytes does not fit a UDP datagram")]
    PayloadTooLong(usize),
    /// A buffer too short for the frame to be written into it.
    #[error("no room: the frame needs {needed} bytes, the buffer has {available}")]
    NoRoom { needed: usize, available: usize },
}

/// `bytes` at least `needed` long, else [`FrameError::Truncated`] naming `what`.
fn check_len(bytes: &[u8], needed: usize, what: &'static str) -> Result<(), FrameError> {
    if bytes.len() < needed {
        return Err(FrameError::Truncated { what, needed, available: bytes.len() });
    }
    Ok(())
}

/// The big-endian u16 at `range` (two bytes the caller has checked are there).
fn read_u16(bytes: &[u8], range: core::ops::Range<usize>) -> u16 {
    let b = &bytes[range];
    u16::from_be_bytes([b[0], b[1]])
}

#[cfg(test)]
mod tests;
