//! Zero-copy views over a DHCPv6 message and its options: the hot path reads fields straight
//! from the buffer, without building a [`crate::Message`].
//!
//! ```
//! use dhcp6_codec::{Packet, MessageType};
//! // A Solicit, transaction id 0x2a5726, with an Elapsed Time option of 0.
//! let bytes = [1, 0x2a, 0x57, 0x26, 0, 8, 0, 2, 0, 0];
//! let packet = Packet::new_checked(&bytes[..]).unwrap();
//! assert_eq!(packet.msg_type(), MessageType::Solicit);
//! assert_eq!(packet.transaction_id(), Some(0x2a5726));
//! let option = packet.options().next().unwrap().unwrap();
//! assert_eq!((option.code, option.data), (8, &[0u8, 0][..]));
//! ```

use core::net::Ipv6Addr;

use dhcp6_common::wire::{CLIENT_HEADER_LEN, OPTION_HEADER_LEN, RELAY_HEADER_LEN};

use crate::{DecodeError, MessageType};

/// Byte offsets of the fixed header fields (RFC 9915 sections 8 and 9).
mod field {
    use core::ops::Range;
    pub const TRANSACTION_ID: Range<usize> = 1..4;
    pub const HOP_COUNT: usize = 1;
    pub const LINK_ADDRESS: Range<usize> = 2..18;
    pub const PEER_ADDRESS: Range<usize> = 18..34;
}

/// A DHCPv6 message in a buffer whose header has been checked.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
    msg_type: MessageType,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the message type and that the fixed header fits; options are checked as they
    /// are read.
    pub fn new_checked(buffer: T) -> Result<Self, DecodeError> {
        let bytes = buffer.as_ref();
        let first = *bytes.first().ok_or(DecodeError::Truncated { what: "message header", needed: 1, available: 0 })?;
        let msg_type = MessageType::from_u8(first).ok_or(DecodeError::UnknownMessageType(first))?;
        let needed = Self::header_len_of(msg_type);
        if bytes.len() < needed {
            return Err(DecodeError::Truncated { what: "message header", needed, available: bytes.len() });
        }
        Ok(Packet { buffer, msg_type })
    }

    const fn header_len_of(msg_type: MessageType) -> usize {
        if msg_type.is_relay() {
            RELAY_HEADER_LEN
        } else {
            CLIENT_HEADER_LEN
        }
    }

    pub fn msg_type(&self) -> MessageType {
        self.msg_type
    }

    /// Length of the fixed header: 34 for relay messages, 4 otherwise.
    pub fn header_len(&self) -> usize {
        Self::header_len_of(self.msg_type)
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The 24-bit transaction id of a client/server message; `None` for relay messages.
    pub fn transaction_id(&self) -> Option<u32> {
        if self.msg_type.is_relay() {
            return None;
        }
        let b = &self.bytes()[field::TRANSACTION_ID];
        Some(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }

    /// Hop count of a relay message (RFC 9915 section 9); `None` otherwise.
    pub fn hop_count(&self) -> Option<u8> {
        self.msg_type.is_relay().then(|| self.bytes()[field::HOP_COUNT])
    }

    /// Link-address of a relay message; `None` otherwise.
    pub fn link_address(&self) -> Option<Ipv6Addr> {
        self.msg_type.is_relay().then(|| addr_at(self.bytes(), field::LINK_ADDRESS.start))
    }

    /// Peer-address of a relay message; `None` otherwise.
    pub fn peer_address(&self) -> Option<Ipv6Addr> {
        self.msg_type.is_relay().then(|| addr_at(self.bytes(), field::PEER_ADDRESS.start))
    }

    /// The options area, after the fixed header.
    pub fn options_bytes(&self) -> &[u8] {
        &self.bytes()[self.header_len()..]
    }

    /// The top-level options, each checked against the end of the message as it is read.
    pub fn options(&self) -> OptionIter<'_> {
        OptionIter::new(self.options_bytes())
    }
}

/// One option as it stands on the wire: its code and its data, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOption<'a> {
    pub code: u16,
    pub data: &'a [u8],
}

/// Iterates over a sequence of options; yields an error (and then stops) at the first option
/// whose header or data runs past the end.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> OptionIter<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        OptionIter { rest: bytes, failed: false }
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<RawOption<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let result = split_option(self.rest);
        match result {
            Ok((option, rest)) => {
                self.rest = rest;
                Some(Ok(option))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn split_option(bytes: &[u8]) -> Result<(RawOption<'_>, &[u8]), DecodeError> {
    if bytes.len() < OPTION_HEADER_LEN {
        return Err(DecodeError::Truncated {
            what: "option header",
            needed: OPTION_HEADER_LEN,
            available: bytes.len(),
        });
    }
    let code = u16::from_be_bytes([bytes[0], bytes[1]]);
    let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    let body = &bytes[OPTION_HEADER_LEN..];
    if body.len() < len {
        return Err(DecodeError::OptionOverrun { code, declared: len, available: body.len() });
    }
    let (data, rest) = body.split_at(len);
    Ok((RawOption { code, data }, rest))
}

/// The IPv6 address at `offset`; the caller has checked that 16 bytes are there.
pub(crate) fn addr_at(bytes: &[u8], offset: usize) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&bytes[offset..offset + 16]);
    Ipv6Addr::from(octets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_header_fields() {
        let mut b = vec![12u8, 3];
        b.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1).octets());
        b.extend_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xc1).octets());
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.hop_count(), Some(3));
        assert_eq!(p.transaction_id(), None);
        assert_eq!(p.link_address().unwrap().to_string(), "2001:db8:2::1");
        assert_eq!(p.peer_address().unwrap().to_string(), "fe80::c1");
        assert_eq!(p.options().count(), 0);
    }

    #[test]
    fn short_relay_header_is_truncated() {
        let b = [13u8; 33];
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            DecodeError::Truncated { what: "message header", needed: 34, available: 33 }
        );
    }

    #[test]
    fn option_overrun_stops_iteration() {
        let b = [0u8, 1, 0, 5, 1, 2];
        let mut it = OptionIter::new(&b);
        assert_eq!(it.next(), Some(Err(DecodeError::OptionOverrun { code: 1, declared: 5, available: 2 })));
        assert_eq!(it.next(), None);
    }
}
