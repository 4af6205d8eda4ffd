//! The relay agent, sans-IO (RFC 9915 section 19): client messages from an access interface
//! go up as Relay-Forward to a server of the interface's group (or to every server of it, see
//! [`SendTo`]), with Interface-ID (18),
//! Remote-ID (37, RFC 4649) and Client Link-Layer Address (79, RFC 6939); Relay-Replies from
//! members of a group come back down, unwrapped, to the peer they name. The relay learns each
//! client's bindings from the Replies it carries (its user entries: a lease proxy that
//! installs routes for delegated prefixes and survives restarts).

pub mod config;
pub mod group;
pub mod rebuild;
pub mod reload;
pub mod standby;
pub mod xdp_head;

use std::{
    collections::HashMap,
    net::{Ipv6Addr, SocketAddrV6},
};

use dhcp6_codec::{
    hex_string,
    option::{DhcpOption, LinkLayerAddr, Options, RemoteId},
    Message, MessageType, RelayMessage, CLIENT_PORT, SERVER_PORT,
};
use ipnet::Ipv6Net;

use crate::{counters::Counts, server::IaType};
pub use config::{
    fill, label, AccessInterface, GroupMember, RelayConfig, SendTo, ServerGroup, DEFAULT_HOP_COUNT_LIMIT,
};
pub use dhcp6_common::relay::{vlan_tags, Vlans};
use serde::{Deserialize, Serialize};

pub use group::{GroupState, ServerState};
pub use rebuild::{Learnt, RebuildBy, RebuildError};

/// A route for a delegated prefix: via the client's link-local, out of access interface
/// `access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdRouteIntent {
    pub prefix: Ipv6Net,
    pub via: Ipv6Addr,
    pub access: usize,
}

/// A change the kernel's routing table must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteChange {
    Replace(PdRouteIntent),
    Remove(PdRouteIntent),
}

crate::counted_enum! {
    /// Why a message was not relayed.
    pub enum RelayDrop {
        Malformed => "malformed",
        /// A server-to-client type arriving from a client.
        WrongDirection => "wrong_direction",
        HopLimit => "hop_limit",
        /// Every server of the group is down.
        NoServer => "no_server",
        /// A Relay-Reply from an address that is no member of any group.
        NotAGroupMember => "not_a_group_member",
        /// A Relay-Reply naming no interface of ours.
        UnknownInterface => "unknown_interface",
        /// A tagged frame the daemon's packet socket could not read as a client's datagram.
        BadFrame => "bad_frame",
        /// The engine's queue was full: the daemon's reader dropped the message.
        QueueFull => "queue_full",
        /// A client's message on an access entry whose standby profile is not master here:
        /// the master relays it.
        Standby => "standby",
        /// A client's message on an access entry a reload removed.
        Retired => "retired",
    }
}

/// A client's binding, as the relay saw it in a Reply. (Also the form in which the daemon
/// keeps them across restarts.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    pub duid: String,
    pub iaid: u32,
    pub ia_type: IaType,
    pub resource: String,
    pub preferred_lifetime: u32,
    pub valid_lifetime: u32,
    /// Unix seconds.
    pub expires: u64,
    /// The access entry: the interface, with its VLANs (see [`AccessInterface::label`]).
    pub interface: String,
    /// The VLAN IDs of the client's tags (outer, inner), if it is tagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_vlan: Option<u16>,
    pub link_local: Ipv6Addr,
    pub mac: Option<String>,
}

/// A change of the user entries, as the daemon journals it (see `daemon::relay_users`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserChange {
    /// Added or refreshed.
    Put(UserEntry),
    /// Removed (released, declined, zero lifetimes, expired).
    Del {
        duid: String,
        iaid: u32,
        ia_type: IaType,
        resource: String,
        /// Unix seconds it was removed at: a copy learnt before then (a standby peer's) must
        /// not bring it back. 0 in journals of earlier versions.
        #[serde(default)]
        at: u64,
        /// Unix seconds past which no copy learnt before `at` can still be valid: how long
        /// the removal is remembered.
        #[serde(default)]
        until: u64,
    },
}

impl UserChange {
    /// The entry it changes: client DUID (hex), IAID, IA type, resource.
    pub fn key(&self) -> (&str, u32, IaType, &str) {
        match self {
            UserChange::Put(e) => (&e.duid, e.iaid, e.ia_type, &e.resource),
            UserChange::Del { duid, iaid, ia_type, resource, .. } => (duid, *iaid, *ia_type, resource),
        }
    }
}

/// Counters of the relay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayStats {
    /// Relay-Forwards sent up: one per server a message went to.
    pub forwarded: u64,
    pub replies_relayed: u64,
    pub dropped: Counts<RelayDrop>,
}

/// Whether a server of a group is taking clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    Up,
    Down,
}

/// One server of a group, with its state and counters, for `show relay servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub group: String,
    pub server: Ipv6Addr,
    pub weight: u32,
    pub state: Liveness,
    /// Messages relayed to it.
    pub sent: u64,
    /// Relay-Replies it sent back that were relayed.
    pub answered: u64,
    /// Messages it left unanswered past the group's answer timeout.
    pub timed_out: u64,
}

/// A datagram to send: from an access interface (`interface` Some) or upstream (None).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayOut {
    pub payload: Vec<u8>,
    pub destination: SocketAddrV6,
    /// The access interface to send it out of, for replies going down.
    pub interface: Option<usize>,
}

/// Seconds a forwarded Release or Decline waits for its Reply (clients retransmit for longer,
/// and each retransmission is noted again).
const GIVING_BACK_WAIT: u64 = 60;

/// A user entry's key: client DUID, IAID, IA type, address or prefix.
type UserKey = (Box<[u8]>, u32, IaType, Ipv6Net);

/// A client's binding as the relay keeps it, compact ([`UserEntry`] is its outside form,
/// made for `show` and the journal): a relay keeps one per subscriber's IA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct User {
    preferred: u32,
    valid: u32,
    /// Unix seconds.
    expires: u64,
    /// Index of the access interface.
    access: u16,
    link_local: Ipv6Addr,
    mac: Option<[u8; 6]>,
}

/// The removal of the entry `key` at `now`, as journalled: remembered for as long as a copy
/// of it learnt before `now` could live.
fn removal(key: &UserKey, user: &User, now: u64) -> UserChange {
    UserChange::Del {
        duid: hex_string(&key.0),
        iaid: key.1,
        ia_type: key.2,
        resource: key.3.to_string(),
        at: now,
        until: now + u64::from(user.valid),
    }
}

/// The key of an entry in its outside form; None if its DUID or resource does not parse.
fn user_key(duid: &str, iaid: u32, ia_type: IaType, resource: &str) -> Option<UserKey> {
    let duid = dhcp6_codec::parse_hex(duid)?;
    let resource = resource.parse::<Ipv6Net>().ok()?;
    Some((duid.into_boxed_slice(), iaid, ia_type, resource))
}

/// The relay agent's state.
pub struct Relay {
    config: RelayConfig,
    /// Access entries by Interface-ID, and by label (a relay may have thousands: one per VLAN).
    by_interface_id: HashMap<Vec<u8>, usize>,
    by_label: HashMap<String, usize>,
    groups: Vec<GroupState>,
    users: HashMap<UserKey, User>,
    /// Releases and Declines forwarded: (client DUID, transaction id) -> what they named, and
    /// when (forgotten after [`GIVING_BACK_WAIT`] unanswered).
    giving_back: HashMap<(Vec<u8>, u32), (Vec<Ipv6Net>, u64)>,
    /// Routes found at start, kept until a Reply claims them or their hold ends.
    adopted: HashMap<Ipv6Net, (PdRouteIntent, u64)>,
    routes: Vec<RouteChange>,
    stats: RelayStats,
    /// User entry changes since [`Relay::take_user_changes`] last took them.
    user_changes: Vec<UserChange>,
    /// Access entries a reload removed, by index (see [`reload`]): they relay nothing.
    retired: Vec<bool>,
}

/// The MAC inside a modified EUI-64 interface identifier, if the address has one.
fn eui64_mac(addr: Ipv6Addr) -> Option<[u8; 6]> {
    let o = addr.octets();
    (o[11] == 0xff && o[12] == 0xfe).then(|| [o[8] ^ 0x02, o[9], o[10], o[13], o[14], o[15]])
}

impl Relay {
    /// The groups of access entries `access` start afresh (every server up, nothing
    /// outstanding): a standby switchover made this relay relay for them again.
    pub fn revive_groups(&mut self, access: &[usize]) {
        let mut groups: Vec<usize> =
            access.iter().filter_map(|a| self.config.interfaces.get(*a).map(|i| i.group)).collect();
        groups.sort_unstable();
        groups.dedup();
        for g in groups {
            if let Some(state) = self.groups.get_mut(g) {
                state.revive();
            }
        }
    }

    /// The outside form of an entry.
    fn user_entry(&self, key: &UserKey, u: &User) -> UserEntry {
        let access = self.config.interfaces.get(usize::from(u.access));
        let vlans = access.map_or(Vlans::NONE, |i| i.vlans);
        let id = |v: u16| (v != 0).then_some(v);
        UserEntry {
            duid: hex_string(&key.0),
            iaid: key.1,
            ia_type: key.2,
            resource: key.3.to_string(),
            preferred_lifetime: u.preferred,
            valid_lifetime: u.valid,
            expires: u.expires,
            interface: access.map_or_else(String::new, AccessInterface::label),
            vlan: id(vlans.outer),
            inner_vlan: id(vlans.inner),
            link_local: u.link_local,
            mac: u.mac.as_ref().map(|m| hex_string(m)),
        }
    }

    pub fn new(config: RelayConfig) -> Relay {
        let groups = config.groups.iter().map(|g| GroupState::new(g.servers.len())).collect();
        let entries = config.interfaces.iter().enumerate();
        let by_interface_id = entries.clone().map(|(n, i)| (i.interface_id.clone(), n)).collect();
        let by_label = entries.map(|(n, i)| (i.label(), n)).collect();
        Relay {
            config,
            by_interface_id,
            by_label,
            groups,
            users: HashMap::new(),
            giving_back: HashMap::new(),
            adopted: HashMap::new(),
            routes: Vec::new(),
            stats: RelayStats::default(),
            user_changes: Vec::new(),
            retired: Vec::new(),
        }
    }

    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Sends `id` as OPTION_RELAY_ID (RFC 5460) in every Relay-Forward from now on (None: no
    /// more); the daemon gives its DUID when told `relay_id = "duid"`.
    pub fn set_relay_id(&mut self, id: Option<Vec<u8>>) {
        self.config.relay_id = id;
    }

    /// Counts a message dropped for `reason`; nothing to send.
    fn drop<T: Default>(&mut self, reason: RelayDrop) -> T {
        self.stats.dropped.bump(reason);
        T::default()
    }

    /// Counts `n` messages dropped for `reason` before they reached the relay (tagged frames
    /// refused by the daemon's reader).
    pub fn count_dropped(&mut self, reason: RelayDrop, n: u64) {
        self.stats.dropped.add(reason, n);
    }

    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    /// Is `addr` a server of some group?
    pub fn is_member(&self, addr: &Ipv6Addr) -> bool {
        self.config.groups.iter().any(|g| g.servers.iter().any(|m| m.address == *addr))
    }

    /// A message from a client or a downstream relay on access interface `access`; `mac` is
    /// the sender's when the frame was seen (else a client's is read from its EUI-64
    /// link-local address, if it has one). Returns its Relay-Forward to the server of its
    /// group that takes the client, or one to each server of a group that sends to all
    /// ([`SendTo::All`]); none if it is dropped.
    pub fn from_client(
        &mut self,
        access: usize,
        payload: &[u8],
        source: SocketAddrV6,
        mac: Option<[u8; 6]>,
        now: u64,
    ) -> Vec<RelayOut> {
        if self.is_retired(access) {
            return self.drop(RelayDrop::Retired);
        }
        let Ok(msg) = Message::decode(payload) else { return self.drop(RelayDrop::Malformed) };
        let hop_count = match &msg {
            Message::Relay(r) if r.msg_type == MessageType::RelayForw => {
                if r.hop_count >= self.config.hop_count_limit {
                    return self.drop(RelayDrop::HopLimit);
                }
                r.hop_count + 1
            }
            Message::Client(c)
                if !matches!(c.msg_type, MessageType::Advertise | MessageType::Reply | MessageType::Reconfigure) =>
            {
                0
            }
            _ => return self.drop(RelayDrop::WrongDirection),
        };
        let client = msg.innermost();
        let duid = client.options().client_id().map(|d| d.as_bytes().to_vec()).unwrap_or_default();
        let iface = self.config.interfaces[access].clone();
        let group = &self.config.groups[iface.group];
        let servers = match group.send_to {
            SendTo::One => match self.groups[iface.group].pick(&duid, group, now) {
                Some(server) => server..server + 1,
                None => return self.drop(RelayDrop::NoServer),
            },
            // Down or not: no other server could take a member's place in the pair.
            SendTo::All => 0..group.servers.len(),
        };
        if servers.is_empty() {
            return self.drop(RelayDrop::NoServer);
        }
        if let Message::Client(c) = client {
            self.note_giving_back(&duid, c, now);
        }
        let mut options = Options::new();
        if !iface.interface_id.is_empty() {
            options.push(DhcpOption::InterfaceId(&iface.interface_id));
        }
        let mac = (hop_count == 0).then(|| mac.or_else(|| eui64_mac(*source.ip()))).flatten();
        let remote = iface.remote_id_template().map(|(enterprise, template)| {
            let text = template
                .replace("{mac}", &mac.map(|m| hex_string(&m)).unwrap_or_default())
                .replace("{peer}", &source.ip().to_string());
            (enterprise, text.into_bytes())
        });
        if let Some((enterprise_number, id)) = &remote {
            options.push(DhcpOption::RemoteId(RemoteId { enterprise_number: *enterprise_number, remote_id: id }));
        }
        if let (true, Some(mac)) = (iface.client_link_layer_address, &mac) {
            options.push(DhcpOption::ClientLinkLayerAddr(LinkLayerAddr { link_layer_type: 1, address: mac }));
        }
        let relay_id = self.config.relay_id.clone();
        if let Some(id) = relay_id.as_deref().and_then(|d| dhcp6_codec::Duid::new(d).ok()) {
            options.push(DhcpOption::RelayId(id));
        }
        options.push(DhcpOption::RelayMsg(Box::new(msg.clone())));
        let forward = Message::Relay(RelayMessage {
            msg_type: MessageType::RelayForw,
            hop_count,
            link_address: iface.link_address,
            peer_address: *source.ip(),
            options,
        });
        let Ok(mut bytes) = forward.to_vec() else { return self.drop(RelayDrop::Malformed) };
        let last = servers.end - 1;
        let mut out = Vec::with_capacity(servers.len());
        for server in servers {
            self.groups[iface.group].sent(server, now);
            // The last (for most groups the only) copy takes the bytes themselves.
            let payload = if server == last { std::mem::take(&mut bytes) } else { bytes.clone() };
            let address = self.config.groups[iface.group].servers[server].address;
            out.push(RelayOut { payload, destination: SocketAddrV6::new(address, SERVER_PORT, 0, 0), interface: None });
        }
        // One per Relay-Forward sent, as the servers' `sent` counts (and XDP's) add up.
        self.stats.forwarded += out.len() as u64;
        out
    }

    /// A Relay-Reply from upstream: checked, unwrapped and sent down to its peer.
    pub fn from_server(&mut self, payload: &[u8], source: SocketAddrV6, now: u64) -> Option<RelayOut> {
        let Some((g, s)) = self
            .config
            .groups
            .iter()
            .enumerate()
            .find_map(|(g, group)| group.servers.iter().position(|m| m.address == *source.ip()).map(|s| (g, s)))
        else {
            return self.drop(RelayDrop::NotAGroupMember);
        };
        let Ok(Message::Relay(reply)) = Message::decode(payload) else { return self.drop(RelayDrop::Malformed) };
        if reply.msg_type != MessageType::RelayRepl {
            return self.drop(RelayDrop::WrongDirection);
        }
        // RFC 9915 section 19.2: with an Interface-ID the relay sends the message out of the
        // interface it names (one it does not know is no interface of ours); without one, out of
        // the interface whose link-address the Relay-Reply carries.
        let interface_id = reply.options.iter().find_map(|o| match o {
            DhcpOption::InterfaceId(id) => Some(*id),
            _ => None,
        });
        let access = match interface_id {
            Some(id) => self.by_interface_id.get(id).copied(),
            None => (0..self.config.interfaces.len())
                .find(|&n| self.config.interfaces[n].link_address == reply.link_address && !self.is_retired(n)),
        };
        let Some(access) = access else { return self.drop(RelayDrop::UnknownInterface) };
        let Some(inner) = reply.options.relay_message() else { return self.drop(RelayDrop::Malformed) };
        let port = if matches!(inner, Message::Relay(_)) { SERVER_PORT } else { CLIENT_PORT };
        if let Message::Client(c) = inner {
            if c.msg_type == MessageType::Reply {
                self.learn(access, reply.peer_address, None, c, now);
            }
        }
        let Ok(bytes) = inner.to_vec() else { return self.drop(RelayDrop::Malformed) };
        // Only a Relay-Reply relayed counts as the server's answer.
        self.groups[g].answered(s);
        self.stats.replies_relayed += 1;
        Some(RelayOut {
            payload: bytes,
            destination: SocketAddrV6::new(reply.peer_address, port, 0, 0),
            interface: Some(access),
        })
    }

    /// A Reply the XDP relay carried down to `peer` on access interface `access`: learnt
    /// from as if this relay had carried it.
    /// `mac` is the client's, as XDP saw it on its frames.
    pub fn reported_reply(&mut self, access: usize, peer: Ipv6Addr, mac: [u8; 6], payload: &[u8], now: u64) {
        if access >= self.config.interfaces.len() || self.is_retired(access) {
            return;
        }
        if let Ok(Message::Client(c)) = Message::decode(payload) {
            if c.msg_type == MessageType::Reply {
                self.learn(access, peer, Some(mac), &c, now);
            }
        }
    }

    /// Notes what a Release or Decline gives back, to forget it when its Reply comes.
    fn note_giving_back(&mut self, duid: &[u8], c: &dhcp6_codec::ClientMessage<'_>, now: u64) {
        if matches!(c.msg_type, MessageType::Release | MessageType::Decline) {
            let named = ia_resources(&c.options).into_iter().map(|(_, _, r, _, _)| r).collect();
            self.giving_back.insert((duid.to_vec(), c.transaction_id.as_u32()), (named, now));
        }
    }

    /// A Release or Decline the XDP relay carried up (reported before it went).
    pub fn reported_giving_back(&mut self, payload: &[u8], now: u64) {
        if let Ok(Message::Client(c)) = Message::decode(payload) {
            let duid = c.options.client_id().map(|d| d.as_bytes().to_vec()).unwrap_or_default();
            self.note_giving_back(&duid, &c, now);
        }
    }

    /// What the XDP relay sent to and took from server `server` of group `group` since the
    /// last call: the server's state and the relay's counters follow.
    pub fn xdp_counted(&mut self, group: usize, server: usize, sent: u64, answered: u64, now: u64) {
        let Some(state) = self.groups.get_mut(group) else { return };
        if server >= state.servers.len() {
            return;
        }
        state.sent_many(server, sent, now);
        state.answered_many(server, answered);
        self.stats.forwarded += sent;
        self.stats.replies_relayed += answered;
    }

    /// The server of each bucket of group `group`'s clients, for the XDP relay (which relays
    /// for groups that send to one server only).
    pub fn buckets(&self, group: usize, now: u64) -> Vec<u8> {
        self.groups[group].buckets(&self.config.groups[group], now)
    }

    /// Takes a route of ours found in the kernel at start: kept for `route_hold` seconds for a
    /// Reply to claim it, removed after that.
    pub fn adopt_route(&mut self, route: PdRouteIntent, now: u64) {
        self.adopted.insert(route.prefix, (route, now + self.config.route_hold));
    }

    /// Takes back the user entries an earlier run kept (see [`Relay::users`]): those not yet
    /// expired, on an interface still relayed; each prefix's route is (re)installed, claiming
    /// the route adopted for it (as a Reply does). Returns how many were taken.
    pub fn restore_users(&mut self, entries: Vec<UserEntry>, now: u64) -> usize {
        entries.iter().filter(|e| self.put_user(e, now)).count()
    }

    /// Holds `entry` as given (a restored one, or one a standby peer backed up), replacing
    /// the entry of the same key, and (re)installs its prefix's route. Not taken (false): it
    /// has expired, or names an access entry, DUID or resource this relay cannot read. Not
    /// counted among [`Relay::take_user_changes`]: the caller keeps what it puts.
    pub fn put_user(&mut self, entry: &UserEntry, now: u64) -> bool {
        let Some(&access) = self.by_label.get(&entry.interface) else { return false };
        let Some(key) = user_key(&entry.duid, entry.iaid, entry.ia_type, &entry.resource) else { return false };
        let Ok(access16) = u16::try_from(access) else { return false };
        if entry.expires <= now {
            return false;
        }
        if entry.ia_type == IaType::Pd {
            self.adopted.remove(&key.3);
            self.routes.push(RouteChange::Replace(PdRouteIntent { prefix: key.3, via: entry.link_local, access }));
        }
        let mac = entry.mac.as_deref().and_then(dhcp6_codec::parse_hex).and_then(|m| <[u8; 6]>::try_from(m).ok());
        let user = User {
            preferred: entry.preferred_lifetime,
            valid: entry.valid_lifetime,
            expires: entry.expires,
            access: access16,
            link_local: entry.link_local,
            mac,
        };
        self.users.insert(key, user);
        true
    }

    /// The entry of this key, if the relay holds it.
    pub fn user(&self, duid: &str, iaid: u32, ia_type: IaType, resource: &str) -> Option<UserEntry> {
        let key = user_key(duid, iaid, ia_type, resource)?;
        self.users.get(&key).map(|u| self.user_entry(&key, u))
    }

    /// Removes the entry of this key and its prefix's route (a standby peer's removal);
    /// whether it was held. Not counted among [`Relay::take_user_changes`], as
    /// [`Relay::put_user`].
    pub fn remove_user(&mut self, duid: &str, iaid: u32, ia_type: IaType, resource: &str) -> bool {
        let Some(key) = user_key(duid, iaid, ia_type, resource) else { return false };
        let Some(user) = self.users.remove(&key) else { return false };
        if ia_type == IaType::Pd {
            let access = usize::from(user.access);
            self.routes.push(RouteChange::Remove(PdRouteIntent { prefix: key.3, via: user.link_local, access }));
        }
        true
    }

    /// The entries on the access entries `on` picks, sorted as [`Relay::users`].
    pub fn users_on(&self, on: impl Fn(usize) -> bool) -> Vec<UserEntry> {
        let mut all: Vec<UserEntry> =
            self.users.iter().filter(|(_, u)| on(usize::from(u.access))).map(|(k, u)| self.user_entry(k, u)).collect();
        all.sort_by(|a, b| (&a.interface, &a.resource).cmp(&(&b.interface, &b.resource)));
        all
    }

    /// How many user entries are on the access entries `on` picks ([`Self::users_on`]
    /// without building them).
    pub fn user_count_on(&self, on: impl Fn(usize) -> bool) -> usize {
        self.users.values().filter(|u| on(usize::from(u.access))).count()
    }

    /// Installs again the routes of the delegated prefixes on the access entries `on` picks
    /// (their metric changes with a standby role).
    pub fn refresh_routes(&mut self, on: impl Fn(usize) -> bool) {
        for (key, u) in &self.users {
            let access = usize::from(u.access);
            if key.2 == IaType::Pd && on(access) {
                self.routes.push(RouteChange::Replace(PdRouteIntent { prefix: key.3, via: u.link_local, access }));
            }
        }
    }

    /// (access entry, client link-local address, MAC) of every entry whose MAC is known on the
    /// access entries `on` picks: what the XDP relay needs to send a Reply down to them.
    pub fn client_macs_on(&self, on: impl Fn(usize) -> bool) -> Vec<(usize, Ipv6Addr, [u8; 6])> {
        let mut out: Vec<_> = self
            .users
            .values()
            .filter(|u| on(usize::from(u.access)))
            .filter_map(|u| u.mac.map(|m| (usize::from(u.access), u.link_local, m)))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The user entry changes since the last call (the daemon journals them).
    pub fn take_user_changes(&mut self) -> Vec<UserChange> {
        std::mem::take(&mut self.user_changes)
    }

    /// How many user entries there are.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The route changes decided since the last call.
    pub fn take_route_changes(&mut self) -> Vec<RouteChange> {
        std::mem::take(&mut self.routes)
    }

    /// Removes user entries matching `gone` at `now`, and the routes of the prefixes among
    /// them.
    fn forget(&mut self, now: u64, gone: impl Fn(&UserKey, &User) -> bool) {
        let routes = &mut self.routes;
        let changes = &mut self.user_changes;
        self.users.retain(|key, user| {
            if !gone(key, user) {
                return true;
            }
            changes.push(removal(key, user, now));
            if key.2 == IaType::Pd {
                let access = usize::from(user.access);
                routes.push(RouteChange::Remove(PdRouteIntent { prefix: key.3, via: user.link_local, access }));
            }
            false
        });
    }

    /// Updates user entries from a Reply: bindings with lifetimes are added or refreshed,
    /// zero lifetimes and answered Releases/Declines remove them.
    fn learn(
        &mut self,
        access: usize,
        peer: Ipv6Addr,
        mac: Option<[u8; 6]>,
        reply: &dhcp6_codec::ClientMessage<'_>,
        now: u64,
    ) {
        let Some(duid) = reply.options.client_id().map(|d| d.as_bytes().to_vec()) else { return };
        let Ok(access16) = u16::try_from(access) else { return };
        if !self.giving_back.is_empty() {
            if let Some((released, _)) = self.giving_back.remove(&(duid.clone(), reply.transaction_id.as_u32())) {
                self.forget(now, |(d, _, _, r), _| **d == *duid && released.contains(r));
                return;
            }
        }
        let duid: Box<[u8]> = duid.into_boxed_slice();
        for (iaid, ia_type, resource, preferred, valid) in ia_resources(&reply.options) {
            let key = (duid.clone(), iaid, ia_type, resource);
            if iaid != 0 {
                // The entry a rebuild made without knowing the IAID (see `rebuild`) is this one.
                let rebuilt = (duid.clone(), 0, ia_type, resource);
                if let Some(user) = self.users.remove(&rebuilt) {
                    self.user_changes.push(removal(&rebuilt, &user, now));
                }
            }
            if valid == 0 {
                self.forget(now, |k, _| *k == key);
                continue;
            }
            if ia_type == IaType::Pd {
                // Every Reply carrying the prefix refreshes its route, not only the first.
                self.adopted.remove(&resource);
                self.routes.push(RouteChange::Replace(PdRouteIntent { prefix: resource, via: peer, access }));
            }
            let user = User {
                preferred,
                valid,
                expires: now + u64::from(valid),
                access: access16,
                link_local: peer,
                mac: mac.or_else(|| eui64_mac(peer)),
            };
            self.user_changes.push(UserChange::Put(self.user_entry(&key, &user)));
            self.users.insert(key, user);
        }
    }

    /// Forgets user entries whose lifetimes ended, and notes unanswered servers.
    pub fn tick(&mut self, now: u64) {
        self.forget(now, |_, u| u.expires <= now);
        self.giving_back.retain(|_, (_, at)| now.saturating_sub(*at) < GIVING_BACK_WAIT);
        let routes = &mut self.routes;
        self.adopted.retain(|_, (route, until)| {
            let keep = *until > now;
            if !keep {
                routes.push(RouteChange::Remove(*route));
            }
            keep
        });
        for (g, state) in self.groups.iter_mut().enumerate() {
            state.check_timeouts(&self.config.groups[g], now);
        }
    }

    /// Every user entry, sorted.
    pub fn users(&self) -> Vec<UserEntry> {
        let mut all: Vec<UserEntry> = self.users.iter().map(|(k, u)| self.user_entry(k, u)).collect();
        all.sort_by(|a, b| (&a.interface, &a.resource).cmp(&(&b.interface, &b.resource)));
        all
    }

    /// Every server with its state and counters.
    pub fn servers(&self, now: u64) -> Vec<ServerStatus> {
        let mut out = Vec::new();
        for (g, group) in self.config.groups.iter().enumerate() {
            for (s, member) in group.servers.iter().enumerate() {
                let st = &self.groups[g].servers[s];
                out.push(ServerStatus {
                    group: group.name.clone(),
                    server: member.address,
                    weight: member.weight,
                    state: if st.is_down(now) { Liveness::Down } else { Liveness::Up },
                    sent: st.sent,
                    answered: st.answered,
                    timed_out: st.timed_out,
                });
            }
        }
        out
    }
}

/// (iaid, type, resource, preferred, valid) of each address and prefix.
fn ia_resources(options: &Options<'_>) -> Vec<(u32, IaType, Ipv6Net, u32, u32)> {
    let mut out = Vec::new();
    for o in options.iter() {
        let (iaid, ia_type, inner) = match o {
            DhcpOption::IaNa(ia) => (ia.iaid, IaType::Na, &ia.options),
            DhcpOption::IaPd(ia) => (ia.iaid, IaType::Pd, &ia.options),
            _ => continue,
        };
        for i in inner.iter() {
            match i {
                DhcpOption::IaAddr(a) => {
                    out.push((iaid, ia_type, Ipv6Net::from(a.address), a.preferred_lifetime, a.valid_lifetime))
                }
                DhcpOption::IaPrefix(p) => {
                    if let Ok(n) = Ipv6Net::new(p.prefix, p.prefix_len) {
                        out.push((iaid, ia_type, n.trunc(), p.preferred_lifetime, p.valid_lifetime));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
