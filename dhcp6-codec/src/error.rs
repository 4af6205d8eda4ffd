//! Errors of the codec: one enum for decoding, one for encoding, each variant naming what was
//! wrong so that a counted drop can say why.

use thiserror::Error;

/// Why a byte buffer is not a valid DHCPv6 message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The buffer ends inside a fixed header (message header or an option's fixed fields).
    #[error("truncated {what}: needs {needed} bytes, has {available}")]
    Truncated { what: &'static str, needed: usize, available: usize },
    /// The first byte is not a message type of the protocol decoded: RFC 9915's for
    /// [`crate::Message`], RFC 8156's for [`crate::FailoverMessage`].
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    /// An option's length field runs past the end of the message or option that holds it.
    #[error("option {code} declares {declared} bytes but only {available} remain in its parent")]
    OptionOverrun { code: u16, declared: usize, available: usize },
    /// A fixed-size (or minimum-size) option has the wrong length.
    #[error("option {code} has length {len}, expected {expected}")]
    BadOptionLength { code: u16, len: usize, expected: &'static str },
    /// More Relay-Forward/Relay-Reply levels than HOP_COUNT_LIMIT allows.
    #[error("relay messages nested deeper than {limit}")]
    RelayNestingTooDeep { limit: u8 },
    /// Options encapsulating options deeper than any DHCPv6 option layout needs.
    #[error("options nested deeper than {limit}")]
    OptionNestingTooDeep { limit: usize },
    /// A DUID too short for its type, or longer than 130 bytes (RFC 9915 section 11.1).
    #[error("invalid DUID: {0}")]
    InvalidDuid(&'static str),
    /// A domain name that is not in RFC 1035 wire format.
    #[error("invalid domain name in option {code}: {reason}")]
    InvalidDomainName { code: u16, reason: &'static str },
    /// A list of length-prefixed items (User Class, Vendor Class) whose items overrun it.
    #[error("option {code}: item overruns the option")]
    BadListItem { code: u16 },
}

/// Why a message cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// An option's data would exceed the 16-bit length field.
    #[error("option {code} would be {len} bytes, more than 65535")]
    OptionTooLong { code: u16, len: usize },
    /// More relay levels than a receiver would accept.
    #[error("relay messages nested deeper than {limit}")]
    RelayNestingTooDeep { limit: u8 },
    /// An item of a length-prefixed list is longer than 65535 bytes.
    #[error("a list item of option {code} is longer than 65535 bytes")]
    ListItemTooLong { code: u16 },
    /// A message too long for the 16-bit length before it on a TCP stream (RFC 5460 section 5.1).
    #[error("a message of {len} bytes does not fit a 16-bit frame length")]
    MessageTooLong { len: usize },
}

/// Why a TCP stream of length-prefixed messages (RFC 5460 section 5.1) cannot be read on.
/// Either error loses the framing: the connection is to be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FramingError {
    /// A length of zero: no DHCPv6 message is empty.
    #[error("a frame of length zero")]
    Empty,
    /// A length over the cap the reader was made with.
    #[error("a frame of {len} bytes, more than the {max} allowed")]
    TooLong { len: usize, max: usize },
}
