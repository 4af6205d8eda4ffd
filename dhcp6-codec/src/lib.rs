//! The DHCPv6 wire codec of dhcp6 (RFC 9915, which obsoletes RFC 8415).
//!
//! Two ways in, after smoltcp's `wire` module:
//! - [`Packet`]: a zero-copy view that checks the fixed header once and reads fields and
//!   options straight from the buffer; for hot paths that look at a few fields.
//! - [`Message`]: the whole message decoded into typed options that borrow their bytes from the
//!   buffer, and encoded back. Options the codec does not type are kept raw, so every valid
//!   message re-encodes to exactly the bytes it was decoded from.
//!
//! No input makes it panic; recursion is bounded by the relay hop limit (32) and by
//! [`option::MAX_OPTION_NESTING`], and allocation by the input's length.
//!
//! [`frame`] does the same for the frames the messages travel in on a link: Ethernet with
//! VLAN tags, IPv6, UDP.
//!
//! [`failover`] holds the messages of the DHCPv6 Failover Protocol (RFC 8156) and the framing
//! of the TCP stream they travel in.

pub mod domain;
pub mod duid;
mod error;
pub mod failover;
pub mod frame;
pub mod message;
pub mod option;
pub mod packet;
pub mod pd_exclude;
mod text;

pub use dhcp6_common::wire::{option_code, MessageType, CLIENT_PORT, HOP_COUNT_LIMIT, SERVER_PORT};
pub use domain::DomainName;
pub use duid::{hex_string, parse_hex, Duid, DuidKind, Hex};
pub use error::{DecodeError, EncodeError, FramingError};
pub use failover::{FailoverMessage, FailoverMessageType, FailoverOption, FailoverOptions, FrameReader};
pub use message::{ClientMessage, Message, RelayMessage, TransactionId};
pub use option::{DhcpOption, Options, Status, StatusCode};
pub use packet::{OptionIter, Packet, RawOption};
