//! Whole DHCPv6 messages: client/server messages and relay messages (RFC 9915 sections 8-9).

use core::net::Ipv6Addr;

use dhcp6_common::wire::HOP_COUNT_LIMIT;

use crate::{option::Options, packet::Packet, DecodeError, EncodeError, MessageType};

/// A decoded DHCPv6 message, borrowing its byte fields from the buffer it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// One of the 11 client/server message types.
    Client(ClientMessage<'a>),
    /// Relay-Forward or Relay-Reply.
    Relay(RelayMessage<'a>),
}

/// A client/server message (RFC 9915 section 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessage<'a> {
    pub msg_type: MessageType,
    pub transaction_id: TransactionId,
    pub options: Options<'a>,
}

/// A relay agent/server message (RFC 9915 section 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayMessage<'a> {
    pub msg_type: MessageType,
    pub hop_count: u8,
    /// An address on the link the client is on (or unspecified), chosen by the relay.
    pub link_address: Ipv6Addr,
    /// The address of the client or relay the message came from.
    pub peer_address: Ipv6Addr,
    pub options: Options<'a>,
}

/// A 24-bit transaction id; the type keeps it within 24 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId([u8; 3]);

impl TransactionId {
    pub const fn new(bytes: [u8; 3]) -> Self {
        TransactionId(bytes)
    }

    /// The low 24 bits of `v`.
    pub const fn from_u32(v: u32) -> Self {
        let b = v.to_be_bytes();
        TransactionId([b[1], b[2], b[3]])
    }

    pub const fn as_u32(self) -> u32 {
        u32::from_be_bytes([0, self.0[0], self.0[1], self.0[2]])
    }

    pub const fn bytes(self) -> [u8; 3] {
        self.0
    }
}

/// How deep the decoder or encoder is: relay levels and option encapsulation within the
/// current message. Bounding both keeps recursion (and stack) bounded whatever the input.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Nesting {
    pub relays: u8,
    pub options: usize,
}

impl Nesting {
    pub fn deeper_option(self) -> Nesting {
        Nesting { options: self.options + 1, ..self }
    }
}

impl<'a> Message<'a> {
    /// Decodes a whole message: header, options, encapsulated options and relayed messages.
    ///
    /// ```
    /// use dhcp6_codec::{Message, MessageType};
    /// let bytes = [11, 0, 0, 1, 0, 6, 0, 2, 0, 23];
    /// let msg = Message::decode(&bytes).unwrap();
    /// assert_eq!(msg.msg_type(), MessageType::InformationRequest);
    /// assert_eq!(msg.to_vec().unwrap(), bytes);
    /// ```
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode_nested(bytes, Nesting::default())
    }

    /// [`Message::decode`], for a server: also a message whose options are followed by one to
    /// three zero bytes, which it decodes as if they were not there (and which it does not
    /// re-encode, unlike every message [`Message::decode`] takes). dhcpcd 9 ends its
    /// Requests and Renews for a prefix so, after an empty Prefix Exclude hint (RFC 6603).
    pub fn decode_padded(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        match Self::decode(bytes) {
            Err(e) => Self::decode(without_padding(bytes).ok_or(e)?),
            ok => ok,
        }
    }

    /// Decodes a message found in a Relay Message option of a message at depth `outer`.
    pub(crate) fn decode_nested(bytes: &'a [u8], outer: Nesting) -> Result<Self, DecodeError> {
        let packet = Packet::new_checked(bytes)?;
        let mut nesting = Nesting { relays: outer.relays, options: 0 };
        if packet.msg_type().is_relay() {
            nesting.relays += 1;
            if nesting.relays > HOP_COUNT_LIMIT {
                return Err(DecodeError::RelayNestingTooDeep { limit: HOP_COUNT_LIMIT });
            }
        }
        let options = Options::decode(&bytes[packet.header_len()..], nesting)?;
        Ok(match (packet.transaction_id(), packet.hop_count(), packet.link_address(), packet.peer_address()) {
            (Some(xid), ..) => Message::Client(ClientMessage {
                msg_type: packet.msg_type(),
                transaction_id: TransactionId::from_u32(xid),
                options,
            }),
            (None, Some(hop_count), Some(link_address), Some(peer_address)) => Message::Relay(RelayMessage {
                msg_type: packet.msg_type(),
                hop_count,
                link_address,
                peer_address,
                options,
            }),
            // A checked packet has either a transaction id or all three relay fields.
            _ => return Err(DecodeError::UnknownMessageType(packet.msg_type() as u8)),
        })
    }

    pub fn msg_type(&self) -> MessageType {
        match self {
            Message::Client(m) => m.msg_type,
            Message::Relay(m) => m.msg_type,
        }
    }

    pub fn options(&self) -> &Options<'a> {
        match self {
            Message::Client(m) => &m.options,
            Message::Relay(m) => &m.options,
        }
    }

    /// Follows Relay Message options down to the client's own message, if there is one.
    pub fn innermost(&self) -> &Message<'a> {
        let mut m = self;
        while let Message::Relay(r) = m {
            match r.options.relay_message() {
                Some(inner) => m = inner,
                None => break,
            }
        }
        m
    }

    /// The relay message nearest the client: the innermost Relay-Forward or Relay-Reply (whose
    /// Relay Message option, if any, holds no relay message). None for a client message.
    pub fn innermost_relay(&self) -> Option<&RelayMessage<'a>> {
        let mut m = self;
        loop {
            match m {
                Message::Relay(r) => match r.options.relay_message() {
                    Some(inner @ Message::Relay(_)) => m = inner,
                    _ => return Some(r),
                },
                Message::Client(_) => return None,
            }
        }
    }

    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.encode_nested(out, Nesting::default())
    }

    /// The wire form in a new buffer.
    pub fn to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        // Room for a reply with a few IAs and options, relayed once or twice: the buffer is
        // not grown (copied) five times on the way.
        let mut out = Vec::with_capacity(512);
        self.encode(&mut out)?;
        Ok(out)
    }

    pub(crate) fn encode_nested(&self, out: &mut Vec<u8>, outer: Nesting) -> Result<(), EncodeError> {
        let mut nesting = Nesting { relays: outer.relays, options: 0 };
        match self {
            Message::Client(m) => {
                out.push(m.msg_type as u8);
                out.extend_from_slice(&m.transaction_id.bytes());
                m.options.encode(out, nesting)
            }
            Message::Relay(m) => {
                nesting.relays += 1;
                if nesting.relays > HOP_COUNT_LIMIT {
                    return Err(EncodeError::RelayNestingTooDeep { limit: HOP_COUNT_LIMIT });
                }
                out.push(m.msg_type as u8);
                out.push(m.hop_count);
                out.extend_from_slice(&m.link_address.octets());
                out.extend_from_slice(&m.peer_address.octets());
                m.options.encode(out, nesting)
            }
        }
    }
}

/// A client message without what follows its last whole option, if that is one to three
/// zero bytes (dhcpcd 9 counts room for its empty Prefix Exclude hint's content, and sends
/// it as zeros).
fn without_padding(bytes: &[u8]) -> Option<&[u8]> {
    // The client message header: type and transaction ID.
    let body = bytes.get(4..)?;
    let mut off = 0;
    while off + 4 <= body.len() {
        let len = usize::from(u16::from_be_bytes([body[off + 2], body[off + 3]]));
        if off + 4 + len > body.len() {
            return None;
        }
        off += 4 + len;
    }
    let rest = &body[off..];
    (!rest.is_empty() && rest.iter().all(|b| *b == 0)).then_some(&bytes[..4 + off])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_to_three_zero_bytes_after_the_last_option_are_padding() {
        // A Renew: Elapsed Time, then dhcpcd's two zero bytes.
        let renew = [5u8, 0, 0, 1, 0, 8, 0, 2, 0, 0];
        let padded = [&renew[..], &[0, 0]].concat();
        assert!(Message::decode(&padded).is_err(), "not by the exact decoder");
        let m = Message::decode_padded(&padded).unwrap();
        assert_eq!(m.to_vec().unwrap(), renew, "decoded as without them");
        for bad in [&[0u8, 1][..], &[0, 0, 1], &[1]] {
            let with = [&renew[..], bad].concat();
            assert!(Message::decode_padded(&with).is_err(), "{bad:?} after the options is no padding");
        }
    }
}
