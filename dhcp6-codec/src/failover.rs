//! The wire format of the DHCPv6 Failover Protocol (RFC 8156): the messages two partner
//! servers exchange over TCP port 647, their options, and the length-prefixed framing of the
//! stream (RFC 5460 section 5.1).
//!
//! Failover messages are a separate protocol sharing DHCPv6's option format, so they have
//! their own types here rather than a place in [`crate::MessageType`] (which the XDP program
//! shares) or in [`crate::DhcpOption`] (which client messages are decoded into). Options a
//! failover message carries that client messages carry too (Client Identifier, IA_NA, IA_PD,
//! Status Code...) are decoded by the client codec, inside [`FailoverOption::Dhcp`].
//!
//! ```
//! use dhcp6_codec::failover::{FailoverMessage, FailoverMessageType, FailoverOption, ServerState};
//! // A STATE message: transaction id 7, sent 2024-01-01T00:00:00Z, state NORMAL.
//! let bytes = [34, 0, 0, 7, 0x2d, 0x24, 0xbd, 0x00, 0, 132, 0, 1, 2];
//! let msg = FailoverMessage::decode(&bytes).unwrap();
//! assert_eq!(msg.msg_type, FailoverMessageType::State);
//! assert_eq!(dhcp6_codec::failover::unix_from_failover_time(msg.sent_time), 1_704_067_200);
//! assert_eq!(msg.options.0, [FailoverOption::ServerState(ServerState::NORMAL)]);
//! assert_eq!(msg.to_vec().unwrap(), bytes);
//! ```

mod framing;
mod option;

pub use framing::{encode_framed, encode_framed_bytes, FrameReader, MAX_FRAME_LEN};
pub use option::{
    BindingStatus, FailoverOption, FailoverOptions, ProtocolVersion, ReconfigureData, ServerState,
    FAILOVER_OPTION_CODES,
};

use crate::{message::Nesting, DecodeError, EncodeError, TransactionId};

/// The TCP port failover partners connect to (RFC 8156 section 5.1, "dhcp-failover").
pub const FAILOVER_PORT: u16 = 647;

/// Length of the fixed header: msg-type, transaction-id, sent-time (RFC 8156 section 5.2).
pub const FAILOVER_HEADER_LEN: usize = 8;

/// Unix time of 2000-01-01T00:00:00Z, the epoch of failover times (RFC 8156 section 5.2).
pub const EPOCH_2000_UNIX: u64 = 946_684_800;

/// A Unix time in seconds as failover carries times: seconds since 2000-01-01 UTC, modulo
/// 2^32 (RFC 8156 section 5.2, sent-time; the time options use the same scale).
pub const fn failover_time_from_unix(unix_secs: u64) -> u32 {
    // Modulo 2^32 by the RFC: the truncation is the point.
    unix_secs.wrapping_sub(EPOCH_2000_UNIX) as u32
}

/// The Unix time in seconds of a failover time, read as the first 2^32 seconds after 2000
/// (until 2136).
pub const fn unix_from_failover_time(time: u32) -> u64 {
    EPOCH_2000_UNIX + time as u64
}

/// Failover message types (RFC 8156 section 5.3; numbers from section 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum FailoverMessageType {
    BndUpd = 24,
    BndReply = 25,
    PoolReq = 26,
    PoolResp = 27,
    UpdReq = 28,
    UpdReqAll = 29,
    UpdDone = 30,
    Connect = 31,
    ConnectReply = 32,
    Disconnect = 33,
    State = 34,
    Contact = 35,
}

impl FailoverMessageType {
    /// Every failover message type, in numeric order.
    pub const ALL: [FailoverMessageType; 12] = [
        FailoverMessageType::BndUpd,
        FailoverMessageType::BndReply,
        FailoverMessageType::PoolReq,
        FailoverMessageType::PoolResp,
        FailoverMessageType::UpdReq,
        FailoverMessageType::UpdReqAll,
        FailoverMessageType::UpdDone,
        FailoverMessageType::Connect,
        FailoverMessageType::ConnectReply,
        FailoverMessageType::Disconnect,
        FailoverMessageType::State,
        FailoverMessageType::Contact,
    ];

    /// The message type for a wire value, if it is one RFC 8156 defines.
    pub const fn from_u8(v: u8) -> Option<FailoverMessageType> {
        if v >= 24 && v <= 35 {
            Some(Self::ALL[v as usize - 24])
        } else {
            None
        }
    }

    /// The name RFC 8156 uses, e.g. `BNDUPD`.
    pub const fn name(self) -> &'static str {
        match self {
            FailoverMessageType::BndUpd => "BNDUPD",
            FailoverMessageType::BndReply => "BNDREPLY",
            FailoverMessageType::PoolReq => "POOLREQ",
            FailoverMessageType::PoolResp => "POOLRESP",
            FailoverMessageType::UpdReq => "UPDREQ",
            FailoverMessageType::UpdReqAll => "UPDREQALL",
            FailoverMessageType::UpdDone => "UPDDONE",
            FailoverMessageType::Connect => "CONNECT",
            FailoverMessageType::ConnectReply => "CONNECTREPLY",
            FailoverMessageType::Disconnect => "DISCONNECT",
            FailoverMessageType::State => "STATE",
            FailoverMessageType::Contact => "CONTACT",
        }
    }
}

/// A failover message (RFC 8156 section 5.2), borrowing its byte fields from the buffer it
/// was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverMessage<'a> {
    pub msg_type: FailoverMessageType,
    pub transaction_id: TransactionId,
    /// When the message was sent, in seconds since 2000-01-01 UTC modulo 2^32: see
    /// [`failover_time_from_unix`]. The receiver measures the partners' clock skew with it.
    pub sent_time: u32,
    pub options: FailoverOptions<'a>,
}

impl<'a> FailoverMessage<'a> {
    /// Decodes a whole message: header, options and the options they encapsulate.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let first = *bytes.first().ok_or(DecodeError::Truncated { what: "message header", needed: 1, available: 0 })?;
        let msg_type = FailoverMessageType::from_u8(first).ok_or(DecodeError::UnknownMessageType(first))?;
        let header = bytes.get(..FAILOVER_HEADER_LEN).ok_or(DecodeError::Truncated {
            what: "message header",
            needed: FAILOVER_HEADER_LEN,
            available: bytes.len(),
        })?;
        Ok(FailoverMessage {
            msg_type,
            transaction_id: TransactionId::new([header[1], header[2], header[3]]),
            sent_time: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
            options: FailoverOptions::decode(&bytes[FAILOVER_HEADER_LEN..], Nesting::default())?,
        })
    }

    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.msg_type as u8);
        out.extend_from_slice(&self.transaction_id.bytes());
        out.extend_from_slice(&self.sent_time.to_be_bytes());
        self.options.encode(out, Nesting::default())
    }

    /// The wire form in a new buffer.
    pub fn to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        // Room for a BNDUPD of one binding with an address and a prefix.
        let mut out = Vec::with_capacity(256);
        self.encode(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_round_trips_every_byte() {
        for v in 0..=255u8 {
            match FailoverMessageType::from_u8(v) {
                Some(t) => assert_eq!(t as u8, v),
                None => assert!(!(24..=35).contains(&v)),
            }
        }
        let names: Vec<&str> = FailoverMessageType::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(
            names,
            [
                "BNDUPD",
                "BNDREPLY",
                "POOLREQ",
                "POOLRESP",
                "UPDREQ",
                "UPDREQALL",
                "UPDDONE",
                "CONNECT",
                "CONNECTREPLY",
                "DISCONNECT",
                "STATE",
                "CONTACT"
            ]
        );
    }

    #[test]
    fn every_message_type_round_trips_with_no_options() {
        for t in FailoverMessageType::ALL {
            let bytes = [t as u8, 0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78];
            let msg = FailoverMessage::decode(&bytes).unwrap();
            assert_eq!(msg.msg_type, t);
            assert_eq!(msg.transaction_id.as_u32(), 0xabcdef);
            assert_eq!(msg.sent_time, 0x1234_5678);
            assert!(msg.options.0.is_empty());
            assert_eq!(msg.to_vec().unwrap(), bytes);
        }
    }

    #[test]
    fn client_message_types_and_short_headers_are_refused() {
        assert_eq!(FailoverMessage::decode(&[1, 0, 0, 1, 0, 0, 0, 0]), Err(DecodeError::UnknownMessageType(1)));
        assert_eq!(FailoverMessage::decode(&[36, 0, 0, 1, 0, 0, 0, 0]), Err(DecodeError::UnknownMessageType(36)));
        assert_eq!(
            FailoverMessage::decode(&[]),
            Err(DecodeError::Truncated { what: "message header", needed: 1, available: 0 })
        );
        // A client/server header (4 bytes) is too short for a failover one.
        assert_eq!(
            FailoverMessage::decode(&[31, 0, 0, 1]),
            Err(DecodeError::Truncated { what: "message header", needed: 8, available: 4 })
        );
    }

    #[test]
    fn failover_time_counts_from_2000_modulo_2_pow_32() {
        assert_eq!(failover_time_from_unix(EPOCH_2000_UNIX), 0);
        assert_eq!(failover_time_from_unix(1_704_067_200), 757_382_400);
        assert_eq!(unix_from_failover_time(757_382_400), 1_704_067_200);
        // 2^32 seconds after 2000 wraps to 0; a second before 2000 is 2^32 - 1.
        assert_eq!(failover_time_from_unix(EPOCH_2000_UNIX + (1 << 32)), 0);
        assert_eq!(failover_time_from_unix(EPOCH_2000_UNIX - 1), u32::MAX);
        assert_eq!(unix_from_failover_time(u32::MAX), EPOCH_2000_UNIX + u64::from(u32::MAX));
    }
}
