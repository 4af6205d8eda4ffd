//! The DHCPv6 server engine, sans-IO: a datagram, where it came from and the time go in; the
//! datagram to send back and the lease changes to make durable first come out.
//!
//! Validation follows RFC 9915 section 16; the server's behaviour per message, section 18.3.
//! An IA keeps the leases it holds; a new resource comes from the subnet's allocation strategy
//! ([`allocation`]: by default a reservation for the client's DUID, then the address the client
//! asked for, then the one it had before, then the next free one by a cyclic ascending search);
//! with none to give, the IA gets NoAddrsAvail (NoPrefixAvail for prefixes).

pub mod allocation;
pub mod config;
pub mod lease;
pub mod leasequery;
pub mod pool;
pub mod reconfigure_message;
pub mod reload;
pub mod stats;
pub mod table;

use std::{
    collections::HashMap,
    net::{Ipv6Addr, SocketAddrV6},
    sync::Arc,
};

use dhcp6_codec::{
    option::{DhcpOption, IaAddr, IaNa, IaPd, IaPrefix, Options, Status, StatusCode},
    option_code, ClientMessage, Duid, Message, MessageType, RelayMessage,
};
use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};

use crate::failover::{AllocateFrom, Failover, Role, Service};
use allocation::{Allocator, Ask, Pools, Resources};
pub use config::ServerConfig;
use config::{Lifetimes, Subnet};
pub use lease::{IaType, Lease, LeaseChange, LeaseState, ReconfigureKey, RelayRecord};
use pool::Pool;
use reconfigure_message::{HopRef, Reconfiguring};
pub use reconfigure_message::{ReconfigureOut, ReconfigureStarted, ReconfigureType};
use table::LeaseTable;

/// How many ended leases the server remembers for their clients' return.
const MAX_PREVIOUS: usize = 100_000;
pub use stats::{DropReason, Statistics};

/// A datagram received on port 547.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub payload: &'a [u8],
    /// Who sent it: a client (port 546) or a relay agent (port 547).
    pub source: SocketAddrV6,
    /// The interface it came in on, when known.
    pub interface: Option<&'a str>,
    /// Unix seconds.
    pub now: u64,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub payload: Vec<u8>,
    pub destination: SocketAddrV6,
}

/// What handling one datagram decided. The driver makes `changes` durable, then sends `reply`;
/// if the store refuses, it calls [`Server::store_failed`] and sends nothing.
#[derive(Debug, Default)]
pub struct Outcome {
    pub reply: Option<Outbound>,
    pub changes: Vec<LeaseChange>,
    /// Why there is no reply, when the message was dropped (counted in the statistics).
    pub dropped: Option<DropReason>,
}

/// Addresses and prefixes per state in one pool, for `dhcp6d show pools`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PoolCounts {
    pub subnet: String,
    pub pool: String,
    /// What `dhcp6d pool lock` calls it.
    #[serde(default)]
    pub name: String,
    /// Locked: it gives nothing to new clients.
    #[serde(default)]
    pub locked: bool,
    pub total: String,
    pub assignable: String,
    pub in_use: u64,
    pub expired: u64,
    pub conflicting: u64,
    pub unassignable: u64,
}

/// An IA the client sent: what it is and which resources it named.
struct IaRequest {
    ia_type: IaType,
    iaid: u32,
    hints: Vec<Ipv6Net>,
}

/// An IA to put in the reply.
struct IaReply {
    ia_type: IaType,
    iaid: u32,
    t1: u32,
    t2: u32,
    /// Resource, preferred and valid lifetimes.
    resources: Vec<(Ipv6Net, u32, u32)>,
    status: Option<(Status, &'static str)>,
}

impl IaReply {
    /// An IA holding `got`, each with the lifetimes `l`.
    fn granted(ia_type: IaType, iaid: u32, l: Lifetimes, got: &[Ipv6Net]) -> IaReply {
        IaReply {
            ia_type,
            iaid,
            t1: l.t1,
            t2: l.t2,
            resources: got.iter().map(|r| (*r, l.preferred, l.valid)).collect(),
            status: None,
        }
    }

    /// An IA with no lifetimes: what `resources` lists, each with lifetimes of zero, and `status`.
    fn ended(ia: &IaRequest, resources: Vec<(Ipv6Net, u32, u32)>, status: Option<(Status, &'static str)>) -> IaReply {
        IaReply { ia_type: ia.ia_type, iaid: ia.iaid, t1: 0, t2: 0, resources, status }
    }
}

/// An IA the server has no binding for (RFC 9915 sections 18.3.4 to 18.3.8).
const NO_BINDING: Option<(Status, &str)> = Some((Status::NO_BINDING, "No binding for this IA"));

/// A reply decided but not yet encoded.
struct Plan {
    msg_type: MessageType,
    ias: Vec<IaReply>,
    status: Option<(Status, &'static str)>,
    rapid_commit: bool,
    preference: bool,
    /// The Reconfigure Key to give the client (RFC 9915 section 20.4.2: in the Reply of the
    /// initial exchange, to a client that sent Reconfigure Accept).
    give_key: Option<ReconfigureKey>,
}

/// Who asked, from where.
struct Ctx<'a> {
    subnet: usize,
    duid: &'a [u8],
    client_link_local: Option<Ipv6Addr>,
    interface: Option<&'a str>,
    /// The relays the message came through, kept with the leases it binds (for leasequery).
    relay: Option<Arc<RelayRecord>>,
    now: u64,
    /// The Reconfigure Key the client's leases get: its own while it accepts Reconfigure.
    key: Option<ReconfigureKey>,
}

/// Where the server's randomness comes from (Reconfigure Keys, retransmission jitter): a
/// parameter, so that tests are deterministic.
pub type Entropy = Box<dyn FnMut(&mut [u8]) + Send>;

/// Which clients `dhcp6d reconfigure` (or a reload) asks to come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconfigureTarget<'a> {
    /// One client, by DUID.
    Client(&'a [u8]),
    /// Every client with a lease in the pool of this name.
    Pool(&'a str),
    /// Every client with a lease in these subnets (by index).
    Subnets(Vec<usize>),
}

/// Why nobody was asked to reconfigure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconfigureError {
    #[error(transparent)]
    UnknownPool(#[from] reload::UnknownPool),
    #[error("the client holds no bound lease")]
    NoBinding,
    #[error("Reconfigure is off (no source of random keys)")]
    Off,
}

pub struct Server {
    config: ServerConfig,
    duid: Vec<u8>,
    /// Each subnet's pools, and the strategy that picks new resources from them.
    subnets: Vec<Pools>,
    allocators: Vec<Box<dyn Allocator>>,
    table: LeaseTable,
    /// The last resource of clients whose lease ended, for the third choice of the allocation order; bounded.
    previous: HashMap<(Vec<u8>, IaType), Ipv6Net>,
    stats: Statistics,
    /// Whether the XDP fast path answers renewals: bound leases are then kept a horizon past
    /// their valid lifetime.
    fast_path: bool,
    /// When the server is one of a failover pair: its share of each subnet's pools and what
    /// the pair's state lets it do.
    pair: Option<Pair>,
    /// Clients being sent Reconfigure messages, and the routes to those with keys.
    reconfiguring: Reconfiguring,
    /// Randomness for Reconfigure Keys; without it no client is given a key.
    entropy: Option<Entropy>,
    /// Who may ask leasequeries (RFC 5007, RFC 5460).
    leasequery: leasequery::Access,
}

/// Which half of each pool a server of a failover pair allocates from on its own (RFC 8156
/// section 4.2.1, independent allocation): the primary the lower, the secondary the upper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Half {
    Lower,
    Upper,
}

/// What a failover pair's state lets one of its servers do for clients (RFC 8156 section 8:
/// each state says which clients a server may answer and from whose share it may allocate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Duties {
    /// Solicit, Request, Confirm and Information-Request: clients not yet bound to a server.
    pub new_clients: bool,
    /// Renew, Release and Decline that name this server.
    pub own_clients: bool,
    /// Rebind, which names no server.
    pub rebind: bool,
    /// New leases may come from the partner's half too (PARTNER-DOWN, once the MCLT has
    /// passed); otherwise only from this server's own half.
    pub partner_share: bool,
}

impl Duties {
    /// Everything: a server on its own.
    pub const ALL: Duties = Duties { new_clients: true, own_clients: true, rebind: true, partner_share: true };
    /// Nothing at all.
    pub const NONE: Duties = Duties { new_clients: false, own_clients: false, rebind: false, partner_share: false };
}

impl Duties {
    /// What a failover state's service allows. A Rebind is answered only where the state
    /// allows it for the partner's bindings too: the server does not tell whose a binding is.
    pub fn of(service: &Service) -> Duties {
        let on = service.answers_clients;
        Duties {
            new_clients: on && service.allocate_from != AllocateFrom::Nothing,
            own_clients: on && service.answer_renew,
            rebind: on && service.answer_rebind && service.answer_rebind_for_partner,
            partner_share: on && service.allocate_from == AllocateFrom::PartnersShareToo,
        }
    }
}

/// A server's side of a failover pair.
#[derive(Debug)]
struct Pair {
    /// Which half of each pool is this server's.
    half: Half,
    /// Each subnet's pools: this server's half, and the partner's.
    own: Vec<Pools>,
    partner: Vec<Pools>,
    duties: Duties,
    /// The relationship, when the server runs one: its state gives the duties
    /// ([`Server::refresh_duties`]) and its lazy-update bookkeeping caps every lifetime.
    failover: Option<Failover>,
}

/// A binding whose renewals the XDP fast path may answer: one IA of one client, holding one
/// bound lease, on a link the server serves directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastBinding<'a> {
    pub duid: &'a [u8],
    pub iaid: u32,
    pub ia_type: IaType,
    pub resource: Ipv6Net,
    /// The served interface the client is on.
    pub interface: &'a str,
    /// The valid lifetime a Reply tells, in seconds.
    pub valid: u32,
    /// The durable expiry, Unix seconds: a renewal may be answered up to `expires - valid`.
    pub expires: u64,
    /// The IA option of the Reply to a renewal, as [`Server::handle`] encodes it.
    pub ia_option: Vec<u8>,
    /// Only its Renews may be answered, not its Rebinds (the failover state leaves them to
    /// the partner).
    pub renew_only: bool,
    /// `ia_option` carries a Prefix Exclude (RFC 6603): only a renewal whose ORO asks for
    /// OPTION_PD_EXCLUDE may be answered with it.
    pub needs_pd_exclude: bool,
}

impl Server {
    /// A server with identity `duid`, starting from the leases a store loaded.
    pub fn new(config: ServerConfig, duid: Vec<u8>, leases: Vec<Lease>) -> Server {
        let subnets = config.subnets.iter().map(Pools::of).collect();
        let allocators = config.subnets.iter().map(|s| allocation::built_in(s.allocation)).collect();
        let limited = config.subnets.iter().map(|s| s.client_limit.is_some()).collect();
        let mut server = Server {
            config,
            duid,
            subnets,
            allocators,
            table: LeaseTable::new(limited),
            previous: HashMap::new(),
            stats: Statistics::default(),
            fast_path: false,
            pair: None,
            reconfiguring: Reconfiguring::default(),
            entropy: None,
            leasequery: leasequery::Access::default(),
        };
        for lease in leases {
            server.restore(LeaseChange::Upsert(lease));
        }
        server
    }

    /// Has subnet `subnet` (its index in the configuration) pick new resources with
    /// `allocator` instead of the strategy its configuration names. `false` if there is no
    /// such subnet.
    pub fn set_allocator(&mut self, subnet: usize, allocator: Box<dyn Allocator>) -> bool {
        match self.allocators.get_mut(subnet) {
            Some(a) => {
                *a = allocator;
                true
            }
            None => false,
        }
    }

    /// Makes the server one of a failover pair that owns `own` half of each pool, doing what
    /// `duties` allow until told otherwise.
    pub fn pair_up(&mut self, own: Half, duties: Duties) {
        let (mine, theirs) = split(&self.subnets, own);
        self.pair = Some(Pair { half: own, own: mine, partner: theirs, duties, failover: None });
    }

    /// Makes the server one of a failover pair run by `failover`: its role gives the half it
    /// owns (the primary the lower), its state what the server does.
    pub fn pair_with(&mut self, failover: Failover, now: u64) {
        let own = match failover.role() {
            Role::Primary => Half::Lower,
            Role::Secondary => Half::Upper,
        };
        let duties = Duties::of(&failover.service(now));
        self.pair_up(own, duties);
        if let Some(p) = self.pair.as_mut() {
            p.failover = Some(failover);
        }
    }

    /// The failover relationship, when the server runs one.
    pub fn failover(&self) -> Option<&Failover> {
        self.pair.as_ref().and_then(|p| p.failover.as_ref())
    }

    pub fn failover_mut(&mut self) -> Option<&mut Failover> {
        self.pair.as_mut().and_then(|p| p.failover.as_mut())
    }

    /// Takes the duties the relationship's state gives at `now` (they change with the state,
    /// and in PARTNER-DOWN once the MCLT has passed). `true` if they changed.
    pub fn refresh_duties(&mut self, now: u64) -> bool {
        let Some(p) = self.pair.as_mut() else { return false };
        let Some(f) = p.failover.as_ref() else { return false };
        let duties = Duties::of(&f.service(now));
        let changed = duties != p.duties;
        p.duties = duties;
        changed
    }

    /// The longest valid lifetime, at most `valid`, a client may be told for `resource` at
    /// `now`: the MCLT past what the partner acknowledged (RFC 8156 section 4.4).
    fn lifetime_cap(&self, resource: &Ipv6Net, valid: u32, now: u64) -> u32 {
        match self.failover() {
            Some(f) => f.updates().lifetime_cap(resource, valid, now),
            None => valid,
        }
    }

    /// What the pair's state now lets the server do; nothing when it is on its own.
    pub fn set_duties(&mut self, duties: Duties) {
        if let Some(p) = self.pair.as_mut() {
            p.duties = duties;
        }
    }

    /// What the server may do for clients: [`Duties::ALL`] when it is on its own.
    pub fn duties(&self) -> Duties {
        self.pair.as_ref().map_or(Duties::ALL, |p| p.duties)
    }

    /// Applies a change read back from the store, at start-up.
    pub fn restore(&mut self, change: LeaseChange) {
        match change {
            LeaseChange::Upsert(mut lease) => {
                // Subnet positions may have moved since the lease was written: find it again.
                if let Some(subnet) = self.subnet_of(&lease.resource, lease.ia_type) {
                    lease.subnet = subnet;
                }
                self.put(lease);
            }
            LeaseChange::Remove(r) => {
                self.remove(&r);
            }
        }
    }

    /// Gives clients that send Reconfigure Accept a Reconfigure Key drawn from `entropy`, so
    /// that they can be sent Reconfigure messages (RFC 9915 section 20.4).
    pub fn enable_reconfigure(&mut self, entropy: Entropy) {
        self.entropy = Some(entropy);
    }

    /// Starts every pool's search at a place chosen by `seed` rather than at its first
    /// resource: servers sharing one lease database, each seeded with its own identity, then
    /// seldom offer the same free address at once (the database would refuse all but one).
    pub fn spread_searches(&mut self, seed: u128) {
        for pools in &mut self.subnets {
            pools.addresses.start_at(seed);
            for p in &mut pools.prefixes {
                p.start_at(seed);
            }
        }
    }

    /// Turns on the horizons of the XDP fast path: from now on a bound lease is made durable
    /// until its valid lifetime plus the horizon, which is how long XDP may answer its
    /// renewals without userspace.
    pub fn enable_fast_path(&mut self) {
        self.fast_path = true;
    }

    /// Seconds past the valid lifetime that a bound lease of `subnet` is kept.
    fn horizon(&self, subnet: usize) -> u64 {
        match (self.fast_path, self.config.subnets.get(subnet)) {
            (true, Some(s)) => u64::from(self.config.renewal_horizon.unwrap_or(s.lifetimes.t2)),
            _ => 0,
        }
    }

    /// When the client of `lease` last talked to a server about it, as far as the lease tells
    /// (the store keeps no such time): its expiry less the valid lifetime, less the horizon a
    /// bound lease is kept past it with the fast path on, and never later than `now`. Without
    /// the horizon taken off, a binding renewed in XDP would look newer than it is, and its
    /// partner's next update of it outdated (RFC 8156 section 7.3 compares these times).
    pub fn last_transaction(&self, lease: &Lease, now: u64) -> u64 {
        let horizon = if lease.state == LeaseState::Bound { self.horizon(lease.subnet) } else { 0 };
        lease.expires.saturating_sub(u64::from(lease.valid_lifetime) + horizon).min(now)
    }

    /// The binding of IA (`duid`, `iaid`, `ia_type`) if the fast path may answer its renewals.
    pub fn fast_binding<'a>(&'a self, duid: &'a [u8], iaid: u32, ia_type: IaType) -> Option<FastBinding<'a>> {
        // A client being reconfigured renews through the engine, which sees its answer.
        if self.reconfiguring.is_pending(duid) {
            return None;
        }
        let mut held = self.table.ia_leases(duid, iaid, ia_type);
        let (Some(lease), None) = (held.next(), held.next()) else { return None };
        let subnet = self.config.subnets.get(lease.subnet)?;
        let interface = subnet.interface.as_deref()?;
        // The subnet a client on that interface is served from must be the lease's.
        let serving = self.config.subnets.iter().position(|s| s.interface.as_deref() == Some(interface));
        if lease.state != LeaseState::Bound || lease.interface != Some(interface) || serving != Some(lease.subnet) {
            return None;
        }
        // A failover state that leaves this server's own clients to the partner leaves XDP
        // nothing to answer.
        if !self.duties().own_clients {
            return None;
        }
        let l = subnet.lifetimes;
        // What `extend` answers for this IA: the one resource with the subnet's lifetimes.
        let reply = IaReply::granted(ia_type, iaid, l, &[lease.resource]);
        // With the Prefix Exclude its pool gives, for XDP to answer the clients that ask for
        // it (the others, without it, are answered from userspace).
        let exclude = match ia_type {
            IaType::Pd => pd_exclude(subnet, &lease.resource),
            IaType::Na => None,
        };
        let needs_pd_exclude = exclude.is_some();
        let ia_option = ia_option(&reply, |_| exclude.clone()).to_vec().ok()?;
        // XDP tells `valid` from any moment up to `expires - valid`. One of a failover pair may
        // tell no more than the MCLT past what the partner acknowledged (RFC 8156 section
        // 4.4): a valid lifetime within the MCLT always keeps to that; a longer one only
        // while the moment is at most the acknowledged expiry plus the MCLT, less `valid`.
        let expires = match self.failover() {
            Some(f) if l.valid > f.config().mclt => {
                let acked = f.updates().acked_partner_expiry(&lease.resource).unwrap_or(0);
                lease.expires.min(acked + u64::from(f.config().mclt))
            }
            _ => lease.expires,
        };
        Some(FastBinding {
            duid,
            iaid,
            ia_type,
            resource: lease.resource,
            interface,
            valid: l.valid,
            expires,
            ia_option,
            renew_only: !self.duties().rebind,
            needs_pd_exclude,
        })
    }

    /// Every binding the fast path may answer.
    pub fn fast_bindings(&self) -> Vec<FastBinding<'_>> {
        // Only a bound lease of a client seen on the served interface can be one (see
        // `fast_binding`): leases imported from another server, or relayed, are left out
        // before the sort, which for a million of them took a second.
        let mut ias: Vec<(&[u8], u32, IaType)> = self.table.bound_ias_on_interfaces().collect();
        ias.sort();
        ias.dedup();
        ias.into_iter().filter_map(|(d, i, t)| self.fast_binding(d, i, t)).collect()
    }

    /// XDP answered a renewal of this binding at `at` (Unix seconds), telling the client the
    /// valid lifetime from then: the lease is kept until then plus the horizon. Returns the
    /// durable change, if the expiry moved.
    pub fn renewed(&mut self, duid: &[u8], iaid: u32, ia_type: IaType, at: u64) -> Option<LeaseChange> {
        let (resource, valid) = self.fast_binding(duid, iaid, ia_type).map(|b| (b.resource, b.valid))?;
        let lease = self.table.get(&resource)?;
        let expires = at + u64::from(valid) + self.horizon(lease.subnet);
        if expires <= lease.expires {
            return None;
        }
        self.stats.count_fast_renewal();
        let lease = Lease { expires, ..lease };
        self.put(lease.clone());
        Some(LeaseChange::Upsert(lease))
    }

    /// The lease of `resource`, whatever its state.
    pub fn lease_of(&self, resource: &Ipv6Net) -> Option<Lease> {
        self.table.get(resource)
    }

    /// Gives back memory reserved for growth, once the store is loaded.
    pub fn shrink_to_fit(&mut self) {
        self.table.shrink_to_fit();
    }

    pub fn duid(&self) -> &[u8] {
        &self.duid
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub fn statistics(&self) -> &Statistics {
        &self.stats
    }

    /// How many leases the server holds (offers included).
    pub fn lease_count(&self) -> usize {
        self.table.len()
    }

    /// Every durable lease (offers left out), for a store's snapshot.
    pub fn durable_leases(&self) -> Vec<Lease> {
        self.table.iter().filter(|l| l.state.is_durable()).collect()
    }

    /// Every lease, sorted by resource.
    pub fn leases(&self) -> Vec<Lease> {
        let mut all: Vec<Lease> = self.table.iter().collect();
        all.sort_by_key(|l| (l.resource.network(), l.resource.prefix_len()));
        all
    }

    /// Handles one datagram.
    pub fn handle(&mut self, inbound: &Inbound<'_>) -> Outcome {
        // As a client sends it, dhcpcd's padding included (the XDP fast path reads past it too).
        let msg = match Message::decode_padded(inbound.payload) {
            Ok(m) => m,
            Err(_) => return self.drop(DropReason::Malformed),
        };
        if let Message::Client(c) = &msg {
            if c.msg_type == MessageType::Leasequery {
                self.stats.count_received(MessageType::Leasequery);
                return self.leasequery_udp(inbound, c);
            }
        }
        let mut relays: Vec<&RelayMessage<'_>> = Vec::new();
        let mut m = &msg;
        let client = loop {
            match m {
                Message::Relay(r) if r.msg_type == MessageType::RelayForw => {
                    self.stats.count_received(MessageType::RelayForw);
                    relays.push(r);
                    match r.options.relay_message() {
                        Some(inner) => m = inner,
                        None => return self.drop(DropReason::NoRelayMessage),
                    }
                }
                Message::Relay(r) => {
                    self.stats.count_received(r.msg_type);
                    return self.drop(DropReason::NotForServer);
                }
                Message::Client(c) => break c,
            }
        };
        self.stats.count_received(client.msg_type);
        if matches!(client.msg_type, MessageType::Advertise | MessageType::Reply | MessageType::Reconfigure) {
            return self.drop(DropReason::NotForServer);
        }
        // The link: the innermost relay's link-address (or the first set one going out), or
        // for a client on our own link, the interface it came in on.
        let (subnet, client_link_local) = match relays.last() {
            Some(innermost) => {
                let link = relays.iter().rev().map(|r| r.link_address).find(|a| !a.is_unspecified());
                (
                    link.and_then(|a| self.config.subnets.iter().position(|s| s.prefix.contains(&a))),
                    Some(innermost.peer_address),
                )
            }
            None => (
                inbound
                    .interface
                    .and_then(|i| self.config.subnets.iter().position(|s| s.interface.as_deref() == Some(i))),
                Some(*inbound.source.ip()),
            ),
        };
        let Some(subnet) = subnet else {
            return self.drop(DropReason::NoSubnet);
        };
        let options = &client.options;
        let Some(client_id) = options.client_id() else {
            if client.msg_type == MessageType::InformationRequest {
                // Information-Request may come without a Client ID (RFC 9915 section 16.12).
                let ctx = Ctx {
                    subnet,
                    duid: &[],
                    client_link_local,
                    interface: inbound.interface,
                    relay: None,
                    now: inbound.now,
                    key: None,
                };
                let plan = Plan {
                    msg_type: MessageType::Reply,
                    ias: vec![],
                    status: None,
                    rapid_commit: false,
                    preference: false,
                    give_key: None,
                };
                return self.answer(inbound, &relays, client, &ctx, plan, vec![]);
            }
            return self.drop(DropReason::NoClientId);
        };
        let (key, initial) = self.key_for(client.msg_type, client_id.as_bytes(), options);
        let ctx = Ctx {
            subnet,
            duid: client_id.as_bytes(),
            client_link_local,
            interface: inbound.interface,
            // Only for messages that bind: encoding it for every Solicit would cost for nothing.
            relay: match client.msg_type {
                MessageType::Request | MessageType::Renew | MessageType::Rebind | MessageType::Solicit
                    if client.msg_type != MessageType::Solicit || options.contains(option_code::RAPID_COMMIT) =>
                {
                    relays.first().and_then(|outer| relay_record(*inbound.source.ip(), outer))
                }
                _ => None,
            },
            now: inbound.now,
            key,
        };
        let server_id = options.server_id();
        let ours = server_id.map(|d| d.as_bytes() == self.duid.as_slice());
        use MessageType::*;
        // RFC 9915 section 16: which messages must, may or must not name a server.
        match (client.msg_type, ours) {
            (Solicit | Confirm | Rebind, Some(_)) => return self.drop(DropReason::UnexpectedServerId),
            (Request | Renew | Release | Decline, None) => return self.drop(DropReason::MissingServerId),
            (Request, Some(false)) => {
                // The client chose another server: what we offered it goes back at once.
                self.release_offers(ctx.duid, &requested_ias(options));
                return self.drop(DropReason::OtherServer);
            }
            (Renew | Release | Decline | InformationRequest, Some(false)) => return self.drop(DropReason::OtherServer),
            _ => {}
        }
        let duties = self.duties();
        let allowed = match (client.msg_type, ours) {
            (Rebind, _) => duties.rebind,
            (Renew | Release | Decline, Some(true)) => duties.own_clients,
            _ => duties.new_clients,
        };
        if !allowed {
            return self.drop(DropReason::PartnersTurn);
        }
        let mut ias = requested_ias(options);
        if matches!(client.msg_type, Solicit | Request) {
            let limit = self.config.max_ias_per_message as usize;
            if ias.len() > limit {
                self.stats.ias_over_limit += (ias.len() - limit) as u64;
                ias.truncate(limit);
            }
        }
        let mut changes = Vec::new();
        let plan = match client.msg_type {
            Solicit => {
                let rapid = options.contains(option_code::RAPID_COMMIT) && self.config.subnets[subnet].rapid_commit;
                let mut replies = Vec::new();
                for ia in &ias {
                    let got = self.allocate(&ctx, ia);
                    let reply =
                        if rapid { self.bind(&ctx, ia, &got, &mut changes) } else { self.offer(&ctx, ia, &got) };
                    replies.push(reply);
                }
                let rapid = rapid && !changes.is_empty();
                Plan {
                    msg_type: if rapid { Reply } else { Advertise },
                    ias: replies,
                    status: None,
                    rapid_commit: rapid,
                    preference: true,
                    give_key: None,
                }
            }
            Request => {
                let replies = ias
                    .iter()
                    .map(|ia| {
                        let got = self.allocate(&ctx, ia);
                        self.bind(&ctx, ia, &got, &mut changes)
                    })
                    .collect();
                Plan {
                    msg_type: Reply,
                    ias: replies,
                    status: None,
                    rapid_commit: false,
                    preference: false,
                    give_key: None,
                }
            }
            Renew | Rebind => {
                let replies = ias.iter().map(|ia| self.extend(&ctx, ia, &mut changes)).collect();
                Plan {
                    msg_type: Reply,
                    ias: replies,
                    status: None,
                    rapid_commit: false,
                    preference: false,
                    give_key: None,
                }
            }
            Release | Decline => {
                let decline = client.msg_type == Decline;
                let replies = ias.iter().filter_map(|ia| self.give_back(&ctx, ia, decline, &mut changes)).collect();
                let status = Some((
                    Status::SUCCESS,
                    if decline { "Declined addresses are marked conflicting" } else { "Released" },
                ));
                Plan { msg_type: Reply, ias: replies, status, rapid_commit: false, preference: false, give_key: None }
            }
            Confirm => {
                let addresses: Vec<Ipv6Net> =
                    ias.iter().filter(|ia| ia.ia_type == IaType::Na).flat_map(|ia| ia.hints.clone()).collect();
                if addresses.is_empty() {
                    // Nothing to check: RFC 9915 section 18.3.3 says not to reply.
                    return self.drop(DropReason::Invalid);
                }
                let link = self.config.subnets[subnet].prefix;
                let status = if addresses.iter().all(|a| link.contains(&a.network())) {
                    (Status::SUCCESS, "All addresses are on-link")
                } else {
                    (Status::NOT_ON_LINK, "Some addresses are not on-link")
                };
                Plan {
                    msg_type: Reply,
                    ias: vec![],
                    status: Some(status),
                    rapid_commit: false,
                    preference: false,
                    give_key: None,
                }
            }
            InformationRequest => {
                if !ias.is_empty() {
                    return self.drop(DropReason::Invalid);
                }
                Plan {
                    msg_type: Reply,
                    ias: vec![],
                    status: None,
                    rapid_commit: false,
                    preference: false,
                    give_key: None,
                }
            }
            Advertise | Reply | Reconfigure | RelayForw | RelayRepl | Leasequery | LeasequeryReply | LeasequeryDone
            | LeasequeryData => return self.drop(DropReason::NotForServer),
        };
        let mut plan = plan;
        // The key goes in the Reply that binds the initial exchange's leases.
        if initial && plan.msg_type == Reply && !changes.is_empty() {
            plan.give_key = ctx.key;
        }
        self.heard(inbound, &relays, &ctx, client.msg_type);
        self.answer(inbound, &relays, client, &ctx, plan, changes)
    }

    /// Undoes `changes` after the store refused them: the client is told nothing, and the
    /// resources go back to how the store has them. Bound leases it did not record are dropped.
    pub fn store_failed(&mut self, changes: &[LeaseChange]) {
        self.stats.count_drop(DropReason::StoreFailed);
        for change in changes {
            if let LeaseChange::Upsert(l) = change {
                self.remove(&l.resource);
            }
        }
    }

    /// A shared store refused `change` on its own: another server holds its resource. The
    /// change is undone and the table takes the store's `holder` instead; `replies` Replies
    /// that announced it were not sent.
    pub fn taken_elsewhere(&mut self, change: &LeaseChange, holder: Option<Lease>, replies: usize) {
        for _ in 0..replies {
            self.stats.count_drop(DropReason::LeaseTakenElsewhere);
        }
        self.remove(change.resource());
        if let Some(holder) = holder {
            self.restore(LeaseChange::Upsert(holder));
        }
    }

    /// Takes a change another server made in a shared store (its lease, or a lease gone), so
    /// that this server offers nothing another holds. Nothing is written back.
    pub fn learn(&mut self, change: LeaseChange) {
        self.restore(change);
    }

    /// Moves leases whose state ended by `now` along: bound ones to expired (kept for the
    /// grace period), expired and declined ones back to the pool, offers away. Returns the
    /// durable changes.
    pub fn expire(&mut self, now: u64) -> Vec<LeaseChange> {
        let mut changes = Vec::new();
        for resource in self.table.due(now) {
            let Some(lease) = self.table.get(&resource) else { continue };
            if lease.expires > now {
                continue;
            }
            let when = lease.expires;
            match lease.state {
                LeaseState::Bound => {
                    let grace = self.config.subnets.get(lease.subnet).map_or(0, |s| s.grace_period);
                    if grace == 0 {
                        self.retire(&lease, &mut changes);
                    } else {
                        let expired = Lease { state: LeaseState::Expired, expires: when + u64::from(grace), ..lease };
                        changes.push(LeaseChange::Upsert(expired.clone()));
                        self.put(expired);
                    }
                }
                LeaseState::Expired | LeaseState::Declined => self.retire(&lease, &mut changes),
                LeaseState::Offered => {
                    self.remove(&resource);
                }
            }
        }
        changes
    }

    /// Counts per pool and state, from one pass over the leases (a metrics scrape asks for
    /// them every few seconds, with millions of leases).
    pub fn pool_counts(&self) -> Vec<PoolCounts> {
        // Per subnet, per pool (the addresses first, then the PD pools in order): leases in
        // use (bound or offered), expired, declined.
        let mut tallies: Vec<Vec<[u64; 3]>> = self.subnets.iter().map(|s| vec![[0; 3]; 1 + s.prefixes.len()]).collect();
        for (resource, st, subnet) in self.table.briefs() {
            let (Some(state), Some(tally)) = (self.subnets.get(subnet), tallies.get_mut(subnet)) else { continue };
            let column = match st {
                LeaseState::Bound | LeaseState::Offered => 0,
                LeaseState::Expired => 1,
                LeaseState::Declined => 2,
            };
            let pools = std::iter::once(&state.addresses).chain(&state.prefixes);
            for (pool, counts) in pools.zip(tally.iter_mut()) {
                if pool.contains(&resource) {
                    counts[column] += 1;
                }
            }
        }
        let mut out = Vec::new();
        for (id, subnet) in self.config.subnets.iter().enumerate() {
            let state = &self.subnets[id];
            let mut tally = tallies[id].iter();
            let mut push = |label: String, name: &str, pool: &Pool, unassignable: u64| {
                let [in_use, expired, conflicting] = tally.next().copied().unwrap_or_default();
                let total = pool.size();
                let taken = u128::from(in_use + expired + conflicting + unassignable);
                out.push(PoolCounts {
                    subnet: subnet.prefix.to_string(),
                    pool: label,
                    name: name.to_string(),
                    locked: pool.is_locked(),
                    total: total.to_string(),
                    assignable: total.saturating_sub(taken).to_string(),
                    in_use,
                    expired,
                    conflicting,
                    unassignable,
                });
            };
            let excluded =
                subnet.excluded.iter().filter(|a| state.addresses.contains(&Ipv6Net::from(**a))).count() as u64;
            push("addresses".into(), &subnet.name, &state.addresses, excluded);
            for (pool, conf) in state.prefixes.iter().zip(&subnet.pd_pools) {
                push(format!("{} as /{}", conf.prefix, conf.delegated_length), &conf.name, pool, 0);
            }
        }
        out
    }

    fn drop(&mut self, reason: DropReason) -> Outcome {
        self.stats.count_drop(reason);
        Outcome { dropped: Some(reason), ..Outcome::default() }
    }

    /// The subnet whose pools (or prefix) hold `resource`.
    pub fn subnet_of(&self, resource: &Ipv6Net, ia_type: IaType) -> Option<usize> {
        subnet_holding(&self.config, &self.subnets, resource, ia_type)
    }

    fn put(&mut self, lease: Lease) {
        self.table.put(&lease);
    }

    fn remove(&mut self, resource: &Ipv6Net) -> Option<Lease> {
        self.table.remove(resource)
    }

    /// Returns a lease's resource to the pool, remembering it as the client's previous one.
    fn retire(&mut self, lease: &Lease, changes: &mut Vec<LeaseChange>) {
        self.remove(&lease.resource);
        if lease.state != LeaseState::Declined {
            // A memory, not a promise: past the bound, older memories go.
            if self.previous.len() >= MAX_PREVIOUS {
                self.previous.clear();
            }
            self.previous.insert((lease.duid.clone(), lease.ia_type), lease.resource);
        }
        if !self.reconfiguring.is_empty() && self.table.client_leases(&lease.duid) == 0 {
            self.reconfiguring.forget(&lease.duid);
        }
        changes.push(LeaseChange::Remove(lease.resource));
    }

    /// Drops what was offered to `duid` in these IAs.
    fn release_offers(&mut self, duid: &[u8], ias: &[IaRequest]) {
        for ia in ias {
            let offered: Vec<Ipv6Net> = self
                .table
                .ia_leases(duid, ia.iaid, ia.ia_type)
                .filter(|l| l.state == LeaseState::Offered)
                .map(|l| l.resource)
                .collect();
            for r in offered {
                self.remove(&r);
            }
        }
    }

    /// This IA's live leases in the subnet.
    fn current(&self, ctx: &Ctx<'_>, ia: &IaRequest) -> Vec<Ipv6Net> {
        self.table
            .ia_leases(ctx.duid, ia.iaid, ia.ia_type)
            .filter(|l| l.subnet == ctx.subnet)
            .map(|l| l.resource)
            .collect()
    }

    fn max_per_binding(&self, ctx: &Ctx<'_>) -> usize {
        self.config.subnets[ctx.subnet].max_leases_per_binding as usize
    }

    /// Removes declined (conflicting) leases: the one for `address`, or all. An operator's
    /// clearing of the conflicting state. Returns the durable changes.
    pub fn clear_conflicting(&mut self, address: Option<Ipv6Addr>) -> Vec<LeaseChange> {
        let declined: Vec<Lease> = self
            .table
            .briefs()
            .filter(|(r, state, _)| *state == LeaseState::Declined && address.is_none_or(|a| r.addr() == a))
            .filter_map(|(r, _, _)| self.table.get(&r))
            .collect();
        let mut changes = Vec::new();
        for lease in declined {
            self.retire(&lease, &mut changes);
        }
        changes
    }

    /// Picks the resources for an IA in the allocation order. Existing leases come first.
    fn allocate(&mut self, ctx: &Ctx<'_>, ia: &IaRequest) -> Vec<Ipv6Net> {
        let mut current = self.current(ctx, ia);
        if !current.is_empty() {
            current.truncate(self.max_per_binding(ctx));
            return current;
        }
        if self.table.client_leases(ctx.duid) >= self.config.max_leases_per_client {
            self.stats.ias_over_limit += 1;
            return vec![];
        }
        let subnet = &self.config.subnets[ctx.subnet];
        if let Some(limit) = subnet.client_limit {
            if let Some((clients, known)) = self.table.subnet_clients(ctx.subnet, ctx.duid) {
                if clients as u64 >= u64::from(limit) && !known {
                    return vec![];
                }
            }
        }
        let ask = Ask {
            duid: ctx.duid,
            ia_type: ia.ia_type,
            hints: &ia.hints,
            previous: self.previous.get(&(ctx.duid.to_vec(), ia.ia_type)).copied(),
            link_local: ctx.client_link_local,
        };
        let probes = (self.table.len() + subnet.excluded.len() + subnet.reservations.len() + 1) as u128;
        let Server { subnets, allocators, table, config, pair, .. } = self;
        let subnet = &config.subnets[ctx.subnet];
        let table = &*table;
        let free = |r: &Ipv6Net| free_for(table, subnet, r, ctx.duid);
        let taken = |r: &Ipv6Net| {
            table.contains(r)
                || subnet.excluded.contains(&r.network())
                || subnet
                    .reservations
                    .iter()
                    .any(|res| res.address.map(Ipv6Net::from) == Some(*r) || res.prefix == Some(*r))
        };
        // One of a failover pair allocates from its own half, then, when its state allows,
        // from the partner's; a server on its own from the whole pools.
        let (first, second) = match pair.as_mut() {
            Some(p) => (&mut p.own[ctx.subnet], p.duties.partner_share.then_some(&mut p.partner[ctx.subnet])),
            None => (&mut subnets[ctx.subnet], None),
        };
        let mut resources = Resources { subnet, pools: first, free: &free, taken: &taken, probes };
        let mut picked = allocators[ctx.subnet].pick(&ask, &mut resources);
        if let (None, Some(pools)) = (picked, second) {
            let mut resources = Resources { subnet, pools, free: &free, taken: &taken, probes };
            picked = allocators[ctx.subnet].pick(&ask, &mut resources);
        }
        // Whatever a strategy picks must be free for this client and of this subnet (an
        // address of its prefix, a prefix of a pool's delegated length, or its reservation):
        // a strategy plugged in cannot take another client's lease.
        let of_subnet = |r: &Ipv6Net| match ia.ia_type {
            IaType::Na => r.prefix_len() == 128 && subnet.prefix.contains(&r.network()),
            IaType::Pd => {
                subnet.pd_pools.iter().any(|p| p.prefix.contains(r) && r.prefix_len() == p.delegated_length)
                    || subnet.reservations.iter().any(|res| res.prefix == Some(*r))
            }
        };
        // Nor may it be in the partner's half when the state keeps this server to its own.
        let partners = |r: &Ipv6Net| {
            pair.as_ref().is_some_and(|p| !p.duties.partner_share && p.partner[ctx.subnet].contains(ia.ia_type, r))
        };
        // Nor from a locked pool: a locked address pool gives no address at all, whatever the
        // strategy (interface-identifier addresses lie outside the ranges) and reservations
        // included; a locked PD pool nothing inside its prefix.
        let locked = |r: &Ipv6Net| match ia.ia_type {
            IaType::Na => subnet.locked,
            IaType::Pd => subnet.pd_pools.iter().any(|p| p.locked && p.prefix.contains(r)),
        };
        picked.filter(|r| free(r) && of_subnet(r) && !partners(r) && !locked(r)).into_iter().collect()
    }

    fn lease(&self, ctx: &Ctx<'_>, ia: &IaRequest, resource: Ipv6Net, state: LeaseState, expires: u64) -> Lease {
        let l = self.config.subnets[ctx.subnet].lifetimes;
        Lease {
            resource,
            ia_type: ia.ia_type,
            duid: ctx.duid.to_vec(),
            iaid: ia.iaid,
            subnet: ctx.subnet,
            state,
            preferred_lifetime: l.preferred,
            valid_lifetime: l.valid,
            expires,
            interface: ctx.interface.map(str::to_string),
            reconfigure_key: ctx.key,
            relay: ctx.relay.clone(),
        }
    }

    /// An IA of an Advertise: new resources are held as offers, not persisted.
    fn offer(&mut self, ctx: &Ctx<'_>, ia: &IaRequest, got: &[Ipv6Net]) -> IaReply {
        let hold = ctx.now + u64::from(self.config.offer_lifetime);
        for r in got {
            if !self.table.contains(r) {
                let lease = self.lease(ctx, ia, *r, LeaseState::Offered, hold);
                self.put(lease);
            }
        }
        self.ia_reply(ctx, ia, got)
    }

    /// An IA of a Reply: the resources are bound, and the changes go to the store.
    fn bind(&mut self, ctx: &Ctx<'_>, ia: &IaRequest, got: &[Ipv6Net], changes: &mut Vec<LeaseChange>) -> IaReply {
        let l = self.config.subnets[ctx.subnet].lifetimes;
        // One of a failover pair tells no more than the MCLT past what its partner knows.
        let valid = got.iter().map(|r| self.lifetime_cap(r, l.valid, ctx.now)).min().unwrap_or(l.valid);
        let l = l.capped(valid);
        let expires = ctx.now + u64::from(valid) + self.horizon(ctx.subnet);
        for r in got {
            let mut lease = self.lease(ctx, ia, *r, LeaseState::Bound, expires);
            (lease.preferred_lifetime, lease.valid_lifetime) = (l.preferred, l.valid);
            changes.push(LeaseChange::Upsert(lease.clone()));
            self.put(lease);
        }
        if got.is_empty() {
            return self.ia_reply(ctx, ia, got);
        }
        IaReply::granted(ia.ia_type, ia.iaid, l, got)
    }

    fn ia_reply(&self, ctx: &Ctx<'_>, ia: &IaRequest, got: &[Ipv6Net]) -> IaReply {
        let l = self.config.subnets[ctx.subnet].lifetimes;
        if got.is_empty() {
            let status = match ia.ia_type {
                IaType::Na => (Status::NO_ADDRS_AVAIL, "No addresses available"),
                IaType::Pd => (Status::NO_PREFIX_AVAIL, "No prefixes available"),
            };
            return IaReply::ended(ia, vec![], Some(status));
        }
        IaReply::granted(ia.ia_type, ia.iaid, l, got)
    }

    /// Renew and Rebind: extend what the IA holds; what the client names that is not right
    /// for its link comes back with zero lifetimes (RFC 9915 sections 18.3.4 and 18.3.5).
    fn extend(&mut self, ctx: &Ctx<'_>, ia: &IaRequest, changes: &mut Vec<LeaseChange>) -> IaReply {
        let mut current = self.current(ctx, ia);
        // Past max_leases_per_binding: the extras end now, told with zero lifetimes.
        let extras = current.split_off(current.len().min(self.max_per_binding(ctx)));
        for r in &extras {
            if let Some(lease) = self.table.get(r) {
                self.retire(&lease, changes);
            }
        }
        let subnet = &self.config.subnets[ctx.subnet];
        let on_link = |r: &Ipv6Net| match ia.ia_type {
            IaType::Na => subnet.prefix.contains(&r.network()),
            IaType::Pd => {
                self.subnets[ctx.subnet].prefixes.iter().any(|p| p.contains(r))
                    || subnet.reservations.iter().any(|x| x.prefix == Some(*r))
            }
        };
        let stale: Vec<(Ipv6Net, u32, u32)> = ia
            .hints
            .iter()
            .filter(|r| !current.contains(r) && !on_link(r))
            .chain(&extras)
            .map(|r| (*r, 0, 0))
            .collect();
        if current.is_empty() {
            let status = if stale.is_empty() { NO_BINDING } else { None };
            return IaReply::ended(ia, stale, status);
        }
        let mut reply = self.bind(ctx, ia, &current, changes);
        reply.resources.extend(stale);
        reply
    }

    /// Release and Decline of one IA: `None` when every named resource was the client's.
    fn give_back(
        &mut self,
        ctx: &Ctx<'_>,
        ia: &IaRequest,
        decline: bool,
        changes: &mut Vec<LeaseChange>,
    ) -> Option<IaReply> {
        let current = self.current(ctx, ia);
        let mine: Vec<Ipv6Net> = ia.hints.iter().filter(|r| current.contains(r)).copied().collect();
        for r in &mine {
            let Some(lease) = self.table.get(r) else { continue };
            if decline && ia.ia_type == IaType::Na {
                let probation = ctx.now + u64::from(self.config.decline_probation);
                let declined = Lease { state: LeaseState::Declined, expires: probation, ..lease };
                changes.push(LeaseChange::Upsert(declined.clone()));
                self.put(declined);
            } else {
                self.retire(&lease, changes);
            }
        }
        if !mine.is_empty() && mine.len() == ia.hints.len() {
            return None;
        }
        Some(IaReply::ended(ia, vec![], NO_BINDING))
    }

    /// Encodes the reply, wraps it back through the relays, and counts it.
    fn answer(
        &mut self,
        inbound: &Inbound<'_>,
        relays: &[&RelayMessage<'_>],
        client: &ClientMessage<'_>,
        ctx: &Ctx<'_>,
        plan: Plan,
        changes: Vec<LeaseChange>,
    ) -> Outcome {
        let subnet = &self.config.subnets[ctx.subnet];
        let requested =
            |code: u16| client.options.iter().any(|o| matches!(o, DhcpOption::Oro(codes) if codes.contains(&code)));
        let mut options = Options::new();
        if let Some(id) = client.options.client_id() {
            options.push(DhcpOption::ClientId(id));
        }
        let server_duid = match Duid::new(&self.duid) {
            Ok(d) => d,
            // The DUID is generated by us and checked at start-up.
            Err(_) => return self.drop(DropReason::Invalid),
        };
        options.push(DhcpOption::ServerId(server_duid));
        // RFC 6603: the prefix excluded from each delegated prefix, to a client that asks.
        let wants_exclude = requested(option_code::PD_EXCLUDE);
        for ia in &plan.ias {
            options.push(ia_option(ia, |r| if wants_exclude { pd_exclude(subnet, r) } else { None }));
        }
        if let Some((status, message)) = plan.status {
            options.push(DhcpOption::StatusCode(StatusCode { status, message: message.as_bytes() }));
        }
        if plan.preference {
            if let Some(p) = subnet.preference {
                options.push(DhcpOption::Preference(p));
            }
        }
        if plan.rapid_commit {
            options.push(DhcpOption::RapidCommit);
        }
        if !subnet.dns_servers.is_empty() && requested(option_code::DNS_SERVERS) {
            options.push(DhcpOption::DnsServers(subnet.dns_servers.clone()));
        }
        if !subnet.domain_search.is_empty() && requested(option_code::DOMAIN_LIST) {
            options.push(DhcpOption::DomainList(subnet.domain_search.clone()));
        }
        let mut key_info = [0u8; 17];
        if let Some(key) = plan.give_key.as_ref() {
            // RFC 9915 section 21.20: the server's Reconfigure Accept tells the client it may
            // be sent Reconfigure messages; section 20.4.2: the key in the Authentication option.
            options.push(DhcpOption::ReconfAccept);
            let replay = self.reconfiguring.next_replay(ctx.now);
            options.push(reconfigure_message::key_option(key, replay, &mut key_info));
        }
        let reply = reconfigure_message::wrap_in_relay_replies(
            Message::Client(ClientMessage { msg_type: plan.msg_type, transaction_id: client.transaction_id, options }),
            relays.iter().map(|r| HopRef::of(r)),
        );
        let payload = match reply.to_vec() {
            Ok(p) => p,
            Err(_) => return self.drop(DropReason::Invalid),
        };
        let port = if relays.is_empty() { dhcp6_codec::CLIENT_PORT } else { dhcp6_codec::SERVER_PORT };
        let source = inbound.source;
        let destination = SocketAddrV6::new(*source.ip(), port, 0, source.scope_id());
        Outcome { reply: Some(Outbound { payload, destination }), changes, dropped: None }
    }
}

/// The relays of a relayed message as leasequery tells them: `outer` (received from `peer`)
/// and the relays inside it, without the client's message. None if it is too long to keep.
fn relay_record(peer: Ipv6Addr, outer: &RelayMessage<'_>) -> Option<Arc<RelayRecord>> {
    fn strip<'a>(r: &RelayMessage<'a>) -> RelayMessage<'a> {
        let options = r
            .options
            .iter()
            .filter_map(|o| match o {
                DhcpOption::RelayMsg(inner) => match &**inner {
                    Message::Relay(next) => Some(DhcpOption::RelayMsg(Box::new(Message::Relay(strip(next))))),
                    Message::Client(_) => None,
                },
                other => Some(other.clone()),
            })
            .collect();
        RelayMessage {
            msg_type: r.msg_type,
            hop_count: r.hop_count,
            link_address: r.link_address,
            peer_address: r.peer_address,
            options,
        }
    }
    let message = Message::Relay(strip(outer)).to_vec().ok()?;
    (message.len() <= lease::MAX_RELAY_RECORD).then(|| Arc::new(RelayRecord { peer, message }))
}

/// The IAs of a client message with the addresses or prefixes each names.
fn requested_ias(options: &Options<'_>) -> Vec<IaRequest> {
    options
        .iter()
        .filter_map(|o| match o {
            DhcpOption::IaNa(ia) => Some(IaRequest {
                ia_type: IaType::Na,
                iaid: ia.iaid,
                hints: ia
                    .options
                    .iter()
                    .filter_map(|o| match o {
                        DhcpOption::IaAddr(a) => Some(Ipv6Net::from(a.address)),
                        _ => None,
                    })
                    .collect(),
            }),
            DhcpOption::IaPd(ia) => Some(IaRequest {
                ia_type: IaType::Pd,
                iaid: ia.iaid,
                hints: ia
                    .options
                    .iter()
                    .filter_map(|o| match o {
                        DhcpOption::IaPrefix(p) => Ipv6Net::new(p.prefix, p.prefix_len).ok().map(|n| n.trunc()),
                        _ => None,
                    })
                    .collect(),
            }),
            _ => None,
        })
        .collect()
}

/// The Prefix Exclude option for delegated prefix `r`, if a PD pool of `subnet` delegates it
/// and has an excluded prefix.
fn pd_exclude(subnet: &Subnet, r: &Ipv6Net) -> Option<dhcp6_codec::pd_exclude::PdExclude> {
    subnet.pd_pools.iter().find(|p| p.prefix.contains(r)).and_then(|p| p.exclude_for(r))
}

/// The IA option of `ia`; each delegated prefix with the Prefix Exclude `exclude` gives it.
fn ia_option(
    ia: &IaReply,
    exclude: impl Fn(&Ipv6Net) -> Option<dhcp6_codec::pd_exclude::PdExclude>,
) -> DhcpOption<'static> {
    let mut options: Options<'static> = ia
        .resources
        .iter()
        .map(|(r, preferred, valid)| match ia.ia_type {
            IaType::Na => DhcpOption::IaAddr(IaAddr {
                address: r.network(),
                preferred_lifetime: *preferred,
                valid_lifetime: *valid,
                options: Options::new(),
            }),
            IaType::Pd => DhcpOption::IaPrefix(IaPrefix {
                preferred_lifetime: *preferred,
                valid_lifetime: *valid,
                prefix_len: r.prefix_len(),
                prefix: r.network(),
                options: exclude(r).map(DhcpOption::PdExclude).into_iter().collect(),
            }),
        })
        .collect();
    if let Some((status, message)) = ia.status {
        options.push(DhcpOption::StatusCode(StatusCode { status, message: message.as_bytes() }));
    }
    match ia.ia_type {
        IaType::Na => DhcpOption::IaNa(IaNa { iaid: ia.iaid, t1: ia.t1, t2: ia.t2, options }),
        IaType::Pd => DhcpOption::IaPd(IaPd { iaid: ia.iaid, t1: ia.t1, t2: ia.t2, options }),
    }
}

/// The subnet of `config` (with its `pools`) whose prefix, for an address, or pools or
/// reservations, for a prefix, hold `resource`.
fn subnet_holding(config: &ServerConfig, pools: &[Pools], resource: &Ipv6Net, ia_type: IaType) -> Option<usize> {
    config.subnets.iter().enumerate().find_map(|(i, s)| {
        let inside = match ia_type {
            IaType::Na => s.prefix.contains(&resource.network()),
            IaType::Pd => {
                pools.get(i).is_some_and(|p| p.prefixes.iter().any(|p| p.contains(resource)))
                    || s.reservations.iter().any(|r| r.prefix == Some(*resource))
            }
        };
        inside.then_some(i)
    })
}

/// Each subnet's pools cut in two: the half `own` names, and the other.
fn split(subnets: &[Pools], own: Half) -> (Vec<Pools>, Vec<Pools>) {
    subnets
        .iter()
        .map(|pools| {
            let (lower, upper) = pools.halves();
            match own {
                Half::Lower => (lower, upper),
                Half::Upper => (upper, lower),
            }
        })
        .unzip()
}

/// Whether `resource` may be given to the client `duid`: not leased, declined, excluded or
/// reserved for another client.
fn free_for(table: &LeaseTable, subnet: &Subnet, resource: &Ipv6Net, duid: &[u8]) -> bool {
    !table.contains(resource)
        && !subnet.excluded.contains(&resource.network())
        && !subnet
            .reservations
            .iter()
            .any(|r| r.duid != duid && (r.address.map(Ipv6Net::from) == Some(*resource) || r.prefix == Some(*resource)))
}

#[cfg(test)]
pub(crate) mod tests;
