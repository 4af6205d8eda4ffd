//! The relay engine's configuration: access interfaces (with their VLANs and relay options)
//! and the server groups their clients are relayed to. The daemon parses its file into these.

use std::net::Ipv6Addr;

pub use dhcp6_common::relay::Vlans;
use serde::{Deserialize, Serialize};

/// How one access interface relays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessInterface {
    pub name: String,
    /// The VLANs of the clients relayed here ([`Vlans::NONE`]: the untagged ones).
    pub vlans: Vlans,
    /// The link-address put in Relay-Forward: a global address of the clients' link.
    pub link_address: Ipv6Addr,
    /// Index of the server group in [`RelayConfig::groups`].
    pub group: usize,
    /// Interface-ID option content (by default [`AccessInterface::label`]).
    pub interface_id: Vec<u8>,
    /// Remote-ID: enterprise number and template (`{interface}`, `{vlan}`, `{inner_vlan}`,
    /// `{mac}`, `{peer}`).
    pub remote_id: Option<(u32, String)>,
    /// Insert the Client Link-Layer Address option when the client's MAC is known.
    pub client_link_layer_address: bool,
}

impl AccessInterface {
    /// How it is named in `show` and in the user entries: the interface, with its VLANs as
    /// Linux names VLAN sub-interfaces (`eth1.100`, `eth1.100.200`).
    pub fn label(&self) -> String {
        label(&self.name, self.vlans)
    }

    /// The Remote-ID's enterprise number and template, with what is fixed for this interface
    /// written in (`{interface}`, `{vlan}`, `{inner_vlan}`); `{mac}` and `{peer}` are the
    /// client's.
    pub fn remote_id_template(&self) -> Option<(u32, String)> {
        self.remote_id.as_ref().map(|(enterprise, template)| (*enterprise, fill(template, &self.name, self.vlans)))
    }
}

/// `template` with an access entry's `{interface}`, `{vlan}` and `{inner_vlan}` written in
/// (a VLAN the entry has not: empty).
pub fn fill(template: &str, name: &str, vlans: Vlans) -> String {
    let vlan = |id: u16| if id == 0 { String::new() } else { id.to_string() };
    template
        .replace("{interface}", name)
        .replace("{vlan}", &vlan(vlans.outer))
        .replace("{inner_vlan}", &vlan(vlans.inner))
}

/// An access interface's name with its VLANs (see [`AccessInterface::label`]).
pub fn label(name: &str, vlans: Vlans) -> String {
    match (vlans.outer, vlans.inner) {
        (0, _) => name.to_string(),
        (outer, 0) => format!("{name}.{outer}"),
        (outer, inner) => format!("{name}.{outer}.{inner}"),
    }
}

/// One server of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupMember {
    pub address: Ipv6Addr,
    /// Its share of the group's clients, relative to the others' (default 1). Weight 0 makes
    /// it a backup: it gets clients only while every weighted server is down.
    pub weight: u32,
}

impl GroupMember {
    pub fn new(address: Ipv6Addr) -> GroupMember {
        GroupMember { address, weight: 1 }
    }
}

/// Which servers of a group a client's message is relayed to (`send_to` in the configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendTo {
    /// One server per client, picked by a hash of its DUID in proportion to the servers'
    /// weights; a server marked down hands its clients to the others (load balancing).
    #[default]
    One,
    /// Every server, each client message to each of them, whether marked down or not: a DHCPv6
    /// failover pair (RFC 8156) needs every message at both servers, as ISC dhcrelay gives them
    /// when named several upstreams.
    All,
}

/// A group of servers clients are relayed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerGroup {
    pub name: String,
    pub servers: Vec<GroupMember>,
    pub send_to: SendTo,
    /// Messages in a row left unanswered that mark a server down.
    pub dead_after: u32,
    /// Seconds a message may wait for its answer before it counts as unanswered.
    pub answer_timeout: u64,
    /// Seconds a server stays down before it is tried again.
    pub retry_after: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    pub interfaces: Vec<AccessInterface>,
    pub groups: Vec<ServerGroup>,
    /// Routing protocol id of the delegated-prefix routes (so ours can be told apart).
    pub route_protocol: u8,
    pub route_metric: u32,
    /// Seconds a route found at start, with no user entry yet, is kept for a Reply to claim it.
    pub route_hold: u64,
    /// A Relay-Forward that has crossed this many relays already is discarded (RFC 9915
    /// section 19.1.2); the relay's own Relay-Forward then carries at most this hop count.
    pub hop_count_limit: u8,
    /// Dual-device hot standby: the backup links and the profiles that follow VRRP
    /// instances (empty: every access entry relays, nothing is backed up).
    pub standby: super::standby::StandbyConfig,
    /// OPTION_RELAY_ID (RFC 5460 section 5.4.1): the relay's DUID, put in every Relay-Forward,
    /// by which a bulk leasequery finds the bindings relayed here again. None: not sent.
    pub relay_id: Option<Vec<u8>>,
}

/// RFC 9915 section 7.6: HOP_COUNT_LIMIT.
pub const DEFAULT_HOP_COUNT_LIMIT: u8 = 8;
