//! The Reconfigure message (RFC 9915 section 18.3.11) and the Reconfigure Key authentication
//! protocol (section 20.4): the server asks a bound client to Renew, Rebind or send an
//! Information-Request, so that it picks up changed options or lifetimes before its T1.
//!
//! Only clients that accept Reconfigure are asked: a client that sent Reconfigure Accept in its
//! Request gets a Reconfigure Key (16 random octets) in the Reply, in an Authentication option
//! of type 1, and the server keeps the key with the client's leases (the store makes it
//! durable). Each Reconfigure carries an Authentication option of type 2: the HMAC-MD5 of the
//! whole message, computed with that field zeroed, keyed with the client's key. The key is sent
//! in the initial exchange only (section 20.4.2), never in a Reply to a Renew or Rebind, so the
//! XDP fast path, which answers those, has nothing to add.
//!
//! The engine decides and the daemon sends: [`Reconfiguring`] holds each client asked and
//! when its next transmission is due (REC_TIMEOUT 2 s, doubling, REC_MAX_RC 8 transmissions,
//! section 7.6), and the route to it: the client's own address on a served link, or the relays
//! its last message came through, whose Relay-Reply wrapping the Reconfigure goes back in.
//! A client's Renew, Rebind, Request, Solicit or Information-Request ends the retransmissions.
//! While a client is being reconfigured its bindings leave the XDP fast path, so that its Renew
//! reaches the engine.

use std::{
    collections::HashMap,
    net::{Ipv6Addr, SocketAddrV6},
};

use dhcp6_codec::{
    option::{Auth, DhcpOption, Options},
    ClientMessage, Duid, Message, MessageType, RelayMessage, TransactionId,
};
use hmac::{KeyInit, Mac};
use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};

use super::{
    lease::{IaType, Lease, LeaseState, ReconfigureKey},
    reload::UnknownPool,
    Ctx, Inbound, ReconfigureError, ReconfigureTarget, Server,
};

/// Authentication option's protocol: the Reconfigure Key protocol (RFC 9915 section 20.4.1).
pub const PROTOCOL_RECONFIGURE_KEY: u8 = 3;
/// Authentication option's algorithm: HMAC-MD5 (section 20.4.1).
pub const ALGORITHM_HMAC_MD5: u8 = 1;
/// Authentication option's replay detection method: a monotonically increasing counter
/// (section 20.4.1).
pub const RDM_MONOTONIC: u8 = 0;
/// Reconfigure Key authentication information type: the key, in a Reply (section 20.4.1).
pub const INFO_KEY: u8 = 1;
/// Reconfigure Key authentication information type: the HMAC-MD5 digest, in a Reconfigure.
pub const INFO_HMAC_MD5: u8 = 2;
/// REC_TIMEOUT, in milliseconds (section 7.6).
pub const REC_TIMEOUT_MS: u64 = 2_000;
/// REC_MAX_RC: transmissions of one Reconfigure before the server gives up (section 7.6).
pub const REC_MAX_RC: u32 = 8;
/// Most first transmissions per call of [`Reconfiguring::due`]: reconfiguring a whole pool
/// sends to its clients in waves, not in one burst.
pub const FIRST_SENDS_PER_CALL: usize = 1_000;

/// What the client is asked to send (the Reconfigure Message option, section 21.19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ReconfigureType {
    #[default]
    Renew,
    Rebind,
    InformationRequest,
}

impl ReconfigureType {
    pub fn message_type(self) -> MessageType {
        match self {
            ReconfigureType::Renew => MessageType::Renew,
            ReconfigureType::Rebind => MessageType::Rebind,
            ReconfigureType::InformationRequest => MessageType::InformationRequest,
        }
    }

    /// The name the CLI and the control socket use.
    pub fn name(self) -> &'static str {
        match self {
            ReconfigureType::Renew => "renew",
            ReconfigureType::Rebind => "rebind",
            ReconfigureType::InformationRequest => "information-request",
        }
    }
}

impl std::str::FromStr for ReconfigureType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "renew" => Ok(ReconfigureType::Renew),
            "rebind" => Ok(ReconfigureType::Rebind),
            "information-request" => Ok(ReconfigureType::InformationRequest),
            other => Err(format!("{other:?} is no Reconfigure message type (renew, rebind, information-request)")),
        }
    }
}

/// One relay a client's message came through, outermost first in a [`Route`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayHop {
    pub hop_count: u8,
    pub link_address: Ipv6Addr,
    pub peer_address: Ipv6Addr,
    /// The Interface-ID the relay put in, which its Relay-Reply must carry back.
    pub interface_id: Option<Vec<u8>>,
}

impl RelayHop {
    /// This relay's fields, borrowed, for [`wrap_in_relay_replies`].
    pub fn as_ref(&self) -> HopRef<'_> {
        HopRef {
            hop_count: self.hop_count,
            link_address: self.link_address,
            peer_address: self.peer_address,
            interface_id: self.interface_id.as_deref(),
        }
    }
}

/// A relay's fields a Relay-Reply back through it carries, borrowed from its Relay-Forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopRef<'a> {
    pub hop_count: u8,
    pub link_address: Ipv6Addr,
    pub peer_address: Ipv6Addr,
    pub interface_id: Option<&'a [u8]>,
}

impl<'a> HopRef<'a> {
    pub fn of(relay: &RelayMessage<'a>) -> HopRef<'a> {
        HopRef {
            hop_count: relay.hop_count,
            link_address: relay.link_address,
            peer_address: relay.peer_address,
            interface_id: relay.options.iter().find_map(|o| match o {
                DhcpOption::InterfaceId(id) => Some(*id),
                _ => None,
            }),
        }
    }

    pub fn to_owned(self) -> RelayHop {
        RelayHop {
            hop_count: self.hop_count,
            link_address: self.link_address,
            peer_address: self.peer_address,
            interface_id: self.interface_id.map(<[u8]>::to_vec),
        }
    }
}

/// Where a Reconfigure to a client goes (section 18.3.11: unicast to the client, or through
/// the relays it came through).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A client on a served link: its address there (the link-local one it sent from, or its
    /// leased address when it was not heard from since a restart).
    Direct { interface: String, address: Ipv6Addr },
    /// A relayed client: the relay that sent the Relay-Forward, and every relay's fields,
    /// outermost first.
    Relayed { relay: SocketAddrV6, hops: Vec<RelayHop> },
}

/// `message` wrapped in a Relay-Reply per relay of `hops` (outermost first), as RFC 9915
/// section 19.3 has a server answer through relays: each with the relay's hop count,
/// link-address, peer-address and Interface-ID.
pub fn wrap_in_relay_replies<'a>(
    message: Message<'a>,
    hops: impl DoubleEndedIterator<Item = HopRef<'a>>,
) -> Message<'a> {
    let mut reply = message;
    for hop in hops.rev() {
        let mut options = Options::new();
        if let Some(id) = hop.interface_id {
            options.push(DhcpOption::InterfaceId(id));
        }
        options.push(DhcpOption::RelayMsg(Box::new(reply)));
        reply = Message::Relay(RelayMessage {
            msg_type: MessageType::RelayRepl,
            hop_count: hop.hop_count,
            link_address: hop.link_address,
            peer_address: hop.peer_address,
            options,
        });
    }
    reply
}

/// A Reconfigure to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconfigureOut {
    /// The Reconfigure, or the Relay-Reply holding it.
    pub payload: Vec<u8>,
    /// The client (port 546) or its relay (port 547).
    pub destination: SocketAddrV6,
    /// The served interface a client on a served link is on; `None` for a relay.
    pub interface: Option<String>,
}

/// A client being reconfigured.
#[derive(Debug, Clone)]
struct Pending {
    msg: ReconfigureType,
    route: Route,
    /// The resources it held when asked, whose XDP entries come back when this ends.
    resources: Vec<Ipv6Net>,
    /// Transmissions so far.
    sent: u32,
    /// The retransmission timeout now (RT of section 15), in milliseconds.
    rt_ms: u64,
    /// When the next transmission (or giving up) is due, in milliseconds.
    next_ms: u64,
}

/// How a request to reconfigure went, in clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconfigureStarted {
    /// Clients that will be sent a Reconfigure.
    pub started: usize,
    /// Bound clients without a Reconfigure Key (they did not send Reconfigure Accept): never
    /// sent one.
    pub without_key: usize,
    /// Clients with a key but no known route (relayed, or holding prefixes only, and not heard
    /// from since the server started).
    pub unreachable: usize,
    /// Clients being reconfigured already.
    pub already: usize,
}

/// The retransmission timeout after `rt` (0: the first), randomised by `rand` in -0.1..0.1
/// of it as section 15 says (RT = IRT + RAND*IRT, then 2*RTprev + RAND*RTprev; no MRT).
fn next_rt(rt_ms: u64, rand: i64) -> u64 {
    let base = if rt_ms == 0 { REC_TIMEOUT_MS } else { 2 * rt_ms };
    let previous = if rt_ms == 0 { REC_TIMEOUT_MS } else { rt_ms };
    // rand in -1000..=1000 thousandths of a tenth.
    (base as i64 + previous as i64 * rand.clamp(-1000, 1000) / 10_000).max(1) as u64
}

/// The HMAC-MD5 of `message` keyed with `key` (RFC 2104).
pub fn hmac_md5(key: &[u8], message: &[u8]) -> [u8; 16] {
    // HMAC takes a key of any length.
    let mut mac = <hmac::Hmac<md5::Md5> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The Authentication option of a Reply that gives the client its key (section 20.4.1).
pub fn key_option<'a>(key: &ReconfigureKey, replay_detection: u64, info: &'a mut [u8; 17]) -> DhcpOption<'a> {
    info[0] = INFO_KEY;
    info[1..].copy_from_slice(&key.0);
    DhcpOption::Auth(Auth {
        protocol: PROTOCOL_RECONFIGURE_KEY,
        algorithm: ALGORITHM_HMAC_MD5,
        rdm: RDM_MONOTONIC,
        replay_detection,
        auth_info: info,
    })
}

/// The Reconfigure to client `client_duid` from server `server_duid`, signed with `key`:
/// Server ID, Client ID, Reconfigure Message and, last, the Authentication option whose
/// HMAC-MD5 covers the whole message with the digest's 16 octets zeroed (section 20.4.2).
pub fn signed_reconfigure(
    server_duid: Duid<'_>,
    client_duid: Duid<'_>,
    msg: ReconfigureType,
    key: &ReconfigureKey,
    replay_detection: u64,
) -> Option<Vec<u8>> {
    let mut info = [0u8; 17];
    info[0] = INFO_HMAC_MD5;
    let message = Message::Client(ClientMessage {
        msg_type: MessageType::Reconfigure,
        // Section 18.3.11: the transaction-id is 0.
        transaction_id: TransactionId::from_u32(0),
        options: Options(vec![
            DhcpOption::ServerId(server_duid),
            DhcpOption::ClientId(client_duid),
            DhcpOption::ReconfMsg(msg.message_type() as u8),
            DhcpOption::Auth(Auth {
                protocol: PROTOCOL_RECONFIGURE_KEY,
                algorithm: ALGORITHM_HMAC_MD5,
                rdm: RDM_MONOTONIC,
                replay_detection,
                auth_info: &info,
            }),
        ]),
    });
    let mut bytes = message.to_vec().ok()?;
    // The Authentication option is the last one, its digest the message's last 16 octets.
    let at = bytes.len().checked_sub(16)?;
    let digest = hmac_md5(&key.0, &bytes);
    bytes[at..].copy_from_slice(&digest);
    Some(bytes)
}

/// Whether `message` (a Reconfigure as the client receives it) carries a valid HMAC-MD5 for
/// `key`, computed as section 20.4.3 has the client compute it.
pub fn verify(message: &[u8], key: &ReconfigureKey) -> bool {
    let Ok(Message::Client(c)) = Message::decode(message) else { return false };
    let Some(auth) = c.options.iter().find_map(|o| match o {
        DhcpOption::Auth(a) if a.protocol == PROTOCOL_RECONFIGURE_KEY => Some(a.clone()),
        _ => None,
    }) else {
        return false;
    };
    if auth.auth_info.len() != 17 || auth.auth_info[0] != INFO_HMAC_MD5 {
        return false;
    }
    // Where the digest lies in the message: the option borrows from it.
    let start = auth.auth_info.as_ptr() as usize - message.as_ptr() as usize + 1;
    let mut zeroed = message.to_vec();
    zeroed[start..start + 16].fill(0);
    hmac_md5(&key.0, &zeroed)[..] == auth.auth_info[1..]
}

/// The clients being reconfigured and the routes to every client with a key. Time is in
/// milliseconds, passed in.
#[derive(Debug, Default)]
pub struct Reconfiguring {
    /// Where each client with a Reconfigure Key was last heard from (memory only: after a
    /// restart a client is reached at its leased address, or once it is heard from again).
    routes: HashMap<Vec<u8>, Route>,
    pending: HashMap<Vec<u8>, Pending>,
    /// The last replay detection value used: each Authentication option the server sends
    /// carries a larger one (section 20.4.1, RDM 0).
    last_replay: u64,
    /// Clients whose bindings left or may rejoin the XDP fast path since the last
    /// [`Reconfiguring::take_fast_path_changes`]: the resources they held.
    fast_path_changes: Vec<Ipv6Net>,
    /// Reconfigures given up after REC_MAX_RC transmissions without an answer.
    pub gave_up: u64,
}

impl Reconfiguring {
    /// Whether no client is tracked at all.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.pending.is_empty()
    }

    /// The next replay detection value at `now` (Unix seconds): larger than every one before,
    /// and, from the clock, larger than any an earlier run of the server sent.
    pub fn next_replay(&mut self, now: u64) -> u64 {
        self.last_replay = (self.last_replay + 1).max(now << 32);
        self.last_replay
    }

    /// Whether `duid` is being reconfigured (its bindings stay out of the XDP fast path).
    pub fn is_pending(&self, duid: &[u8]) -> bool {
        !self.pending.is_empty() && self.pending.contains_key(duid)
    }

    /// A message of type `msg_type` came from client `duid` by `route`: the route is kept, and
    /// an answer to a Reconfigure ends its retransmissions.
    pub fn heard(&mut self, duid: &[u8], route: Route, msg_type: MessageType) {
        use MessageType::*;
        if matches!(msg_type, Renew | Rebind | Request | Solicit | InformationRequest) {
            if let Some(p) = self.pending.remove(duid) {
                self.fast_path_changes.extend(p.resources);
            }
        }
        match self.routes.get_mut(duid) {
            Some(r) if *r == route => {}
            Some(r) => *r = route,
            None => {
                self.routes.insert(duid.to_vec(), route);
            }
        }
    }

    /// Forgets client `duid` (it holds no lease any more, or no key).
    pub fn forget(&mut self, duid: &[u8]) {
        if self.routes.is_empty() && self.pending.is_empty() {
            return;
        }
        self.routes.remove(duid);
        if let Some(p) = self.pending.remove(duid) {
            self.fast_path_changes.extend(p.resources);
        }
    }

    /// The route last heard from for `duid`.
    pub fn route(&self, duid: &[u8]) -> Option<&Route> {
        self.routes.get(duid)
    }

    /// Starts reconfiguring `duid` by `route`, with a first transmission due at `now_ms`;
    /// `false` if it is being reconfigured already.
    pub fn start(
        &mut self,
        duid: &[u8],
        msg: ReconfigureType,
        route: Route,
        resources: Vec<Ipv6Net>,
        now_ms: u64,
    ) -> bool {
        if self.pending.contains_key(duid) {
            return false;
        }
        self.fast_path_changes.extend(resources.iter().copied());
        self.pending.insert(duid.to_vec(), Pending { msg, route, resources, sent: 0, rt_ms: 0, next_ms: now_ms });
        true
    }

    /// How many clients are being reconfigured.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The resources whose XDP entries must be written again (their clients' reconfiguring
    /// started or ended), since the last call.
    pub fn take_fast_path_changes(&mut self) -> Vec<Ipv6Net> {
        std::mem::take(&mut self.fast_path_changes)
    }

    /// The transmissions due by `now_ms`: for each, the client, what to ask and the route;
    /// the caller signs and sends them. Clients asked REC_MAX_RC times are given up on, and
    /// at most [`FIRST_SENDS_PER_CALL`] clients get their first transmission.
    /// `rand` gives the retransmission jitter, in -1000..=1000.
    pub fn due(&mut self, now_ms: u64, mut rand: impl FnMut() -> i64) -> Vec<(Vec<u8>, ReconfigureType, Route)> {
        let mut out = Vec::new();
        let mut gave_up = Vec::new();
        let mut first = 0;
        for (duid, p) in self.pending.iter_mut() {
            if p.next_ms > now_ms {
                continue;
            }
            if p.sent >= REC_MAX_RC {
                gave_up.push(duid.clone());
                continue;
            }
            if p.sent == 0 {
                if first >= FIRST_SENDS_PER_CALL {
                    continue;
                }
                first += 1;
            }
            p.sent += 1;
            p.rt_ms = next_rt(p.rt_ms, rand());
            p.next_ms = now_ms + p.rt_ms;
            out.push((duid.clone(), p.msg, p.route.clone()));
        }
        for duid in gave_up {
            if let Some(p) = self.pending.remove(&duid) {
                self.gave_up += 1;
                self.fast_path_changes.extend(p.resources);
            }
        }
        out
    }
}

impl Server {
    /// The Reconfigure Key the leases of client `duid` get from a message of `msg_type`, and
    /// whether that message begins the exchange whose Reply gives the key. A client keeps its
    /// key while its messages carry Reconfigure Accept (RFC 9915 section 21.20: without it a
    /// client is unwilling); a Request or a Solicit with Rapid Commit that carries it gets its
    /// key, a new one if it had none. Other messages leave the key as it is.
    pub(super) fn key_for(
        &mut self,
        msg_type: MessageType,
        duid: &[u8],
        options: &Options<'_>,
    ) -> (Option<ReconfigureKey>, bool) {
        let accepts = options.contains(dhcp6_codec::option_code::RECONF_ACCEPT);
        if !accepts && !self.table.has_keys() {
            return (None, false);
        }
        let current = self.table.reconfigure_key(duid);
        let initial = match msg_type {
            MessageType::Request => true,
            MessageType::Solicit => options.contains(dhcp6_codec::option_code::RAPID_COMMIT),
            MessageType::Renew | MessageType::Rebind => false,
            _ => return (current, false),
        };
        if !accepts {
            if current.is_some() {
                self.reconfiguring.forget(duid);
            }
            return (None, false);
        }
        if !initial || current.is_some() {
            return (current, initial);
        }
        let Some(entropy) = self.entropy.as_mut() else { return (None, false) };
        let mut key = [0u8; 16];
        entropy(&mut key);
        (Some(ReconfigureKey(key)), true)
    }

    /// Keeps the route a message of a client with a key came by (and ends its Reconfigure's
    /// retransmissions if this answers it).
    pub(super) fn heard(
        &mut self,
        inbound: &Inbound<'_>,
        relays: &[&RelayMessage<'_>],
        ctx: &Ctx<'_>,
        msg_type: MessageType,
    ) {
        if ctx.key.is_none() {
            return;
        }
        let route = match relays.first() {
            Some(_) => Route::Relayed {
                relay: SocketAddrV6::new(*inbound.source.ip(), dhcp6_codec::SERVER_PORT, 0, inbound.source.scope_id()),
                hops: relays.iter().map(|r| HopRef::of(r).to_owned()).collect(),
            },
            None => match inbound.interface {
                Some(i) => Route::Direct { interface: i.to_string(), address: *inbound.source.ip() },
                None => return,
            },
        };
        self.reconfiguring.heard(ctx.duid, route, msg_type);
    }

    /// Asks the clients of `target` to send `msg` (their first Reconfigure is due at once:
    /// [`Server::reconfigures_due`] builds it). Bound clients without a key, or without a
    /// route, are counted and left alone.
    pub fn start_reconfigure(
        &mut self,
        target: &ReconfigureTarget<'_>,
        msg: ReconfigureType,
        now_ms: u64,
    ) -> Result<ReconfigureStarted, ReconfigureError> {
        if self.entropy.is_none() {
            return Err(ReconfigureError::Off);
        }
        if let ReconfigureTarget::Pool(name) = target {
            let known =
                self.config.subnets.iter().any(|s| s.name == *name || s.pd_pools.iter().any(|p| p.name == *name));
            if !known {
                return Err(UnknownPool(name.to_string()).into());
            }
        }
        let wanted = |l: &Lease| -> bool {
            match target {
                ReconfigureTarget::Client(duid) => l.duid == *duid,
                ReconfigureTarget::Subnets(subnets) => subnets.contains(&l.subnet),
                ReconfigureTarget::Pool(name) => self.config.subnets.get(l.subnet).is_some_and(|s| match l.ia_type {
                    IaType::Na => s.name == *name,
                    IaType::Pd => s.pd_pools.iter().any(|p| p.name == *name && p.prefix.contains(&l.resource)),
                }),
            }
        };
        // Each client's bound leases, in the order first seen.
        let mut clients: HashMap<Vec<u8>, Vec<Lease>> = HashMap::new();
        for lease in self.table.iter().filter(|l| l.state == LeaseState::Bound && wanted(l)) {
            clients.entry(lease.duid.clone()).or_default().push(lease);
        }
        if clients.is_empty() && matches!(target, ReconfigureTarget::Client(_)) {
            return Err(ReconfigureError::NoBinding);
        }
        let mut done = ReconfigureStarted::default();
        for (duid, leases) in clients {
            if leases.iter().all(|l| l.reconfigure_key.is_none()) {
                done.without_key += 1;
                continue;
            }
            // Not heard from since the start: a client on a served link at its leased address.
            let fallback = || {
                leases.iter().find_map(|l| match (&l.interface, l.ia_type) {
                    (Some(i), IaType::Na) => Some(Route::Direct { interface: i.clone(), address: l.address() }),
                    _ => None,
                })
            };
            let Some(route) = self.reconfiguring.route(&duid).cloned().or_else(fallback) else {
                done.unreachable += 1;
                continue;
            };
            let resources = leases.iter().map(|l| l.resource).collect();
            match self.reconfiguring.start(&duid, msg, route, resources, now_ms) {
                true => done.started += 1,
                false => done.already += 1,
            }
        }
        Ok(done)
    }

    /// The Reconfigure messages due by `now_ms` (Unix milliseconds), signed, wrapped for their
    /// relays, with where each goes.
    pub fn reconfigures_due(&mut self, now_ms: u64) -> Vec<ReconfigureOut> {
        if self.reconfiguring.pending() == 0 {
            return Vec::new();
        }
        let Server { reconfiguring, entropy, .. } = self;
        let due = reconfiguring.due(now_ms, || {
            let mut b = [0u8; 2];
            if let Some(e) = entropy.as_mut() {
                e(&mut b);
            }
            i64::from(u16::from_be_bytes(b) % 2001) - 1000
        });
        self.stats.reconfigures_given_up = self.reconfiguring.gave_up;
        let mut out = Vec::with_capacity(due.len());
        let Ok(server) = Duid::new(&self.duid) else { return out };
        for (duid, msg, route) in due {
            let (Some(key), Ok(client)) = (self.table.reconfigure_key(&duid), Duid::new(&duid)) else {
                // Its key went (its leases ended): nothing to sign with.
                self.reconfiguring.forget(&duid);
                continue;
            };
            let replay = self.reconfiguring.next_replay(now_ms / 1000);
            let Some(signed) = signed_reconfigure(server, client, msg, &key, replay) else { continue };
            match route {
                Route::Direct { interface, address } => out.push(ReconfigureOut {
                    payload: signed,
                    destination: SocketAddrV6::new(address, dhcp6_codec::CLIENT_PORT, 0, 0),
                    interface: Some(interface),
                }),
                Route::Relayed { relay, hops } => {
                    let Ok(inner) = Message::decode(&signed) else { continue };
                    let wrapped = wrap_in_relay_replies(inner, hops.iter().map(RelayHop::as_ref));
                    let Ok(payload) = wrapped.to_vec() else { continue };
                    out.push(ReconfigureOut { payload, destination: relay, interface: None });
                }
            }
        }
        out
    }

    /// The bound leases whose XDP fast-path entries must be written again: their clients'
    /// reconfiguring started (they leave the fast path) or ended (they come back).
    pub fn take_fast_path_changes(&mut self) -> Vec<Lease> {
        self.reconfiguring
            .take_fast_path_changes()
            .iter()
            .filter_map(|r| self.table.get(r))
            .filter(|l| l.state == LeaseState::Bound)
            .collect()
    }

    /// How many clients are being sent Reconfigure messages.
    pub fn reconfigures_pending(&self) -> usize {
        self.reconfiguring.pending()
    }
}

#[cfg(test)]
mod tests;
