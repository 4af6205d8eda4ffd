//! Counters an operator reads with `dhcp6d show statistics` (like seed 004's).

use std::collections::BTreeMap;

use dhcp6_codec::MessageType;
use serde::Serialize;

/// Why a message got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// Not a valid DHCPv6 message.
    Malformed,
    /// A type servers do not accept (Advertise, Reply, Reconfigure, Relay-Reply).
    NotForServer,
    /// A Relay-Forward with no Relay Message option.
    NoRelayMessage,
    NoClientId,
    /// A Server ID where RFC 9915 forbids one (Solicit, Confirm, Rebind).
    UnexpectedServerId,
    /// No Server ID where RFC 9915 requires one (Request, Renew, Release, Decline).
    MissingServerId,
    /// Meant for another server.
    OtherServer,
    /// No configured subnet for the link the client is on.
    NoSubnet,
    /// Information-Request with IA options, Confirm with no addresses, and the like.
    Invalid,
    /// The lease store did not accept the change: no Reply was sent.
    StoreFailed,
}

impl DropReason {
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NotForServer => "not_for_server",
            DropReason::NoRelayMessage => "no_relay_message",
            DropReason::NoClientId => "no_client_id",
            DropReason::UnexpectedServerId => "unexpected_server_id",
            DropReason::MissingServerId => "missing_server_id",
            DropReason::OtherServer => "other_server",
            DropReason::NoSubnet => "no_subnet",
            DropReason::Invalid => "invalid",
            DropReason::StoreFailed => "store_failed",
        }
    }
}

/// Messages received and sent per type, and drops per reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Statistics {
    pub received: BTreeMap<String, u64>,
    pub sent: BTreeMap<String, u64>,
    pub dropped: BTreeMap<String, u64>,
    /// Renewals the XDP fast path answered that moved a lease's durable expiry.
    pub fast_path_renewals: u64,
}

/// Adds one to `name`'s count; the name is copied only the first time (this runs for every
/// message).
fn bump(counts: &mut BTreeMap<String, u64>, name: &str) {
    match counts.get_mut(name) {
        Some(n) => *n += 1,
        None => {
            counts.insert(name.to_string(), 1);
        }
    }
}

impl Statistics {
    pub fn count_received(&mut self, t: MessageType) {
        bump(&mut self.received, t.name());
    }

    pub fn count_sent(&mut self, t: MessageType) {
        bump(&mut self.sent, t.name());
    }

    pub fn count_drop(&mut self, reason: DropReason) {
        bump(&mut self.dropped, reason.name());
    }

    pub fn count_fast_renewal(&mut self) {
        self.fast_path_renewals += 1;
    }

    pub fn received(&self, t: MessageType) -> u64 {
        self.received.get(t.name()).copied().unwrap_or(0)
    }

    pub fn sent(&self, t: MessageType) -> u64 {
        self.sent.get(t.name()).copied().unwrap_or(0)
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(reason.name()).copied().unwrap_or(0)
    }
}
