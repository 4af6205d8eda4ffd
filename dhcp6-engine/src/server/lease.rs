//! Leases and the store that keeps them.

use std::{net::Ipv6Addr, sync::Arc};

use dhcp6_codec::{
    option::{DhcpOption, RemoteId},
    Duid, Message,
};
use ipnet::Ipv6Net;

/// The kind of IA a lease belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum IaType {
    /// IA_NA: one address per lease.
    #[serde(rename = "ia_na")]
    Na,
    /// IA_PD: one delegated prefix per lease.
    #[serde(rename = "ia_pd")]
    Pd,
}

impl IaType {
    pub fn name(self) -> &'static str {
        match self {
            IaType::Na => "ia_na",
            IaType::Pd => "ia_pd",
        }
    }
}

/// Where a lease stands (the address states of the allocation policy, from the lease's side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// Offered in an Advertise and held for the client a short while; never persisted.
    Offered,
    /// Given in a Reply: the client may use it until `expires`.
    Bound,
    /// Past its valid lifetime, kept for the client until the grace period ends.
    Expired,
    /// Declined by a client: a conflicting address, not offered again until `expires`.
    Declined,
}

impl LeaseState {
    pub fn name(self) -> &'static str {
        match self {
            LeaseState::Offered => "offered",
            LeaseState::Bound => "bound",
            LeaseState::Expired => "expired",
            LeaseState::Declined => "declined",
        }
    }

    /// Whether the store must keep this state across restarts.
    pub fn is_durable(self) -> bool {
        !matches!(self, LeaseState::Offered)
    }
}

/// One address or delegated prefix and who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The address (as a /128) or the delegated prefix.
    pub resource: Ipv6Net,
    pub ia_type: IaType,
    pub duid: Vec<u8>,
    pub iaid: u32,
    /// Index of the subnet in the configuration.
    pub subnet: usize,
    pub state: LeaseState,
    pub preferred_lifetime: u32,
    pub valid_lifetime: u32,
    /// Unix seconds when the current state ends: the valid lifetime of a bound lease, the
    /// offer's hold, the grace period, or the probation of a declined address.
    pub expires: u64,
    /// The interface the client was seen on, when it came directly.
    pub interface: Option<String>,
    /// The client's Reconfigure Key (RFC 9915 section 20.4), when it accepts Reconfigure
    /// messages: one per client, the same in each of its leases, kept across restarts.
    pub reconfigure_key: Option<ReconfigureKey>,
    /// The relay agents that relayed the client's last message, when it came relayed: kept
    /// for leasequery (RFC 5007, RFC 5460). Shared by the client's leases.
    pub relay: Option<Arc<RelayRecord>>,
}

/// A client's Reconfigure Key: 16 random octets the server gives it in the Reply to its
/// Request, and signs each Reconfigure to it with (RFC 9915 section 20.4). A secret: its
/// `Debug` does not print it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ReconfigureKey(pub [u8; 16]);

impl std::fmt::Debug for ReconfigureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReconfigureKey(..)")
    }
}

/// What leasequery tells of the relays a client's last message came through
/// (OPTION_LQ_RELAY_DATA, RFC 5007 section 4.1.2.4), and what bulk leasequery finds bindings
/// by (Relay-ID, Remote-ID, link-address; RFC 5460 section 5.3). The Relay-Forward is kept
/// whole rather than as chosen fields, so that the answer carries every option the relays
/// added, as the RFC asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayRecord {
    /// The relay agent the server received the message from.
    pub peer: Ipv6Addr,
    /// The outermost Relay-Forward, encoded, without the client's message.
    pub message: Vec<u8>,
}

/// The longest Relay-Forward a [`RelayRecord`] keeps (the journal's records are bounded);
/// relays' options are a few dozen bytes.
pub const MAX_RELAY_RECORD: usize = 640;

impl RelayRecord {
    /// The Relay-Forward decoded; None if it does not decode (it was checked when kept).
    pub fn forward(&self) -> Option<Message<'_>> {
        Message::decode(&self.message).ok()
    }

    /// What `read` makes of the relay nearest the client (its link-address, its peer-address:
    /// the client's address on that link, its options).
    pub fn innermost<R>(&self, read: impl FnOnce(&dhcp6_codec::RelayMessage<'_>) -> R) -> Option<R> {
        self.forward()?.innermost_relay().map(read)
    }

    /// Whether any of the relays put this Relay-ID (OPTION_RELAY_ID, RFC 5460) in.
    pub fn has_relay_id(&self, id: &Duid<'_>) -> bool {
        self.any_relay(|o| matches!(o, DhcpOption::RelayId(d) if d.as_bytes() == id.as_bytes()))
    }

    /// Whether any of the relays put this Remote-ID (RFC 4649) in.
    pub fn has_remote_id(&self, id: &RemoteId<'_>) -> bool {
        self.any_relay(|o| matches!(o, DhcpOption::RemoteId(r) if r == id))
    }

    fn any_relay(&self, pred: impl Fn(&DhcpOption<'_>) -> bool) -> bool {
        let Some(msg) = self.forward() else { return false };
        let mut m = Some(&msg);
        while let Some(Message::Relay(r)) = m {
            if r.options.iter().any(&pred) {
                return true;
            }
            m = r.options.relay_message();
        }
        false
    }
}

impl Lease {
    pub fn address(&self) -> Ipv6Addr {
        self.resource.network()
    }
}

/// A change the store must make durable before a client hears of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseChange {
    Upsert(Lease),
    Remove(Ipv6Net),
}

impl LeaseChange {
    /// The address or prefix the change is about.
    pub fn resource(&self) -> &Ipv6Net {
        match self {
            LeaseChange::Upsert(l) => &l.resource,
            LeaseChange::Remove(r) => r,
        }
    }
}
