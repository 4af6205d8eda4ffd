//! Relay dual-device hot standby, sans-IO: two relays on one access link in a VRRP group
//! (keepalived's), each backing its user entries up to the other over a TCP backup link.
//!
//! A *profile* binds access entries to the VRRP instance (or sync group) they follow and to
//! the *backup service* (the link to the peer) their entries travel over. Per profile:
//!
//! - **Master** (keepalived says MASTER): the relay relays on the profile's access entries,
//!   and the routes of their delegated prefixes carry the normal metric.
//! - **Any other role** (BACKUP, FAULT, STOP, or nothing heard yet): the relay leaves the
//!   clients' messages to the master, holds the entries the peer backs up, and installs their
//!   routes with `degrade_metric` added, so that routing prefers the master's.
//!
//! The driver feeds in what keepalived notifies ([`Standby::notice`]), what the link does
//! ([`Standby::link_up`], [`Standby::receive`], [`Standby::link_down`]), the relay's own
//! entry changes ([`Standby::local_changes`]) and the time; it gets back the messages to send
//! and the switchovers to carry out ([`Switch`]: the XDP relay's access entries and client
//! MACs filled or emptied, routes installed again at the role's metric). How entries from
//! both sides are reconciled is in [`reconcile`].

pub mod daily;
pub mod link;
pub mod reconcile;
pub mod vrrp;

use std::{collections::HashMap, net::Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::{Relay, RelayConfig, UserChange, UserEntry};
use daily::DailyTime;
use link::{LinkMessage, BATCH_CHUNK, LINK_VERSION};
use reconcile::{key_of, put_wins, removal_wins, Tombstone, Tombstones};
use vrrp::{VrrpNotice, VrrpState, VrrpSubject};

/// A backup link to the peer relay (its TCP connection's ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupService {
    pub name: String,
    /// The peer's address: the only one a connection is taken from.
    pub peer: Ipv6Addr,
    /// This relay's address: the link's source, and where it listens.
    pub source: Ipv6Addr,
    /// The TCP port, the same on both relays.
    pub port: u16,
    /// TLS on the link, with the peer's certificate pinned; None: plain TCP.
    pub tls: Option<LinkTls>,
    /// When a batch goes to the peer each day (UTC); None: only on connect and on demand.
    pub daily_batch: Option<DailyTime>,
}

/// The backup link's TLS files (PEM): this relay's certificate and key, and the peer's
/// certificate, the only one taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTls {
    pub certificate: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub peer_certificate: std::path::PathBuf,
}

impl BackupService {
    /// Whether this end opens the connection: the lower address connects, the higher one
    /// listens, so that the two never race to two connections.
    pub fn connects(&self) -> bool {
        self.source < self.peer
    }
}

/// A standby profile: access entries, the VRRP instance they follow, the link they are
/// backed up over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandbyProfile {
    /// Its backup ID: the same on both relays.
    pub name: String,
    /// The keepalived instance (or sync group) it follows.
    pub vrrp: String,
    pub vrrp_subject: VrrpSubject,
    /// Index of its service in [`StandbyConfig::services`].
    pub service: usize,
    /// Its access entries (indexes into [`RelayConfig::interfaces`]).
    pub access: Vec<usize>,
    /// Added to the route metric of its delegated prefixes while not master.
    pub degrade_metric: u32,
    /// The VRRP group's first virtual address (link-local), on the interface while master.
    pub virtual_address: Option<Ipv6Addr>,
}

/// The standby part of the relay's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StandbyConfig {
    /// keepalived's notify FIFO (`vrrp_notify_fifo` or `notify_fifo`).
    pub notify_fifo: Option<std::path::PathBuf>,
    pub services: Vec<BackupService>,
    pub profiles: Vec<StandbyProfile>,
}

/// A profile's role, as keepalived last told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Nothing heard from keepalived yet: not relaying.
    Init,
    Master,
    Backup,
    Fault,
    Stop,
}

impl Role {
    /// Every role, for exporters that show one series per role.
    pub const ALL: [Role; 5] = [Role::Init, Role::Master, Role::Backup, Role::Fault, Role::Stop];

    /// Whether the relay relays in this role.
    pub fn relays(self) -> bool {
        self == Role::Master
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Init => "init",
            Role::Master => "master",
            Role::Backup => "backup",
            Role::Fault => "fault",
            Role::Stop => "stop",
        }
    }
}

impl From<VrrpState> for Role {
    fn from(s: VrrpState) -> Role {
        match s {
            VrrpState::Master => Role::Master,
            VrrpState::Backup => Role::Backup,
            VrrpState::Fault => Role::Fault,
            VrrpState::Stop => Role::Stop,
        }
    }
}

/// A switchover the driver carries out: relaying on profile `profile`'s access entries starts
/// (`relaying`) or stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switch {
    pub profile: usize,
    pub relaying: bool,
}

/// Whether a link is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Down,
    Up,
}

/// A profile's state, for `show relay standby`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileStatus {
    pub name: String,
    pub vrrp: String,
    pub role: Role,
    /// Unix seconds since it has this role.
    pub since: u64,
    /// The priority keepalived last reported.
    pub priority: u8,
    pub relaying: bool,
    /// Its access entries.
    pub interfaces: Vec<String>,
    pub degrade_metric: u32,
    pub virtual_address: Option<Ipv6Addr>,
    /// Whether that address was on the interface when last looked (None: not looked).
    pub virtual_address_present: Option<bool>,
    /// User entries held on its access entries.
    pub entries: usize,
    pub service: String,
}

/// A backup link's state and counters, for `show relay standby`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub peer: Option<Ipv6Addr>,
    pub source: Option<Ipv6Addr>,
    pub port: u16,
    pub connected: bool,
    /// The peer's name, from its Hello.
    pub peer_node: Option<String>,
    /// Unix seconds since it is connected (or down).
    pub since: u64,
    /// Changes sent to and received from the peer.
    pub sent: u64,
    pub received: u64,
    /// Received changes taken, and those refused as older than what is held.
    pub applied: u64,
    pub stale: u64,
    /// Received entries on access entries this relay does not back up over this link.
    pub unknown: u64,
    /// Connections from other addresses than the peer's, refused.
    pub refused_connections: u64,
    /// Unix seconds of the last batch sent, and received whole.
    pub last_batch_sent: Option<u64>,
    /// The configured daily batch time (UTC), as written (`03:30`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_batch: Option<String>,
    pub last_batch_received: Option<u64>,
    /// Milliseconds between the peer sending its last change and this relay taking it.
    pub lag_ms: Option<u64>,
    /// The peer's Hello named other profiles than ours (backup IDs must be the same).
    pub profile_mismatch: bool,
    /// Hot changes could not be queued: a batch follows.
    pub resync_pending: bool,
}

/// The standby's state, for `show relay standby`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandbyStatus {
    pub profiles: Vec<ProfileStatus>,
    pub services: Vec<ServiceStatus>,
    /// Removals remembered, so that no peer's older copy undoes them.
    pub tombstones: usize,
}

#[derive(Debug, Clone)]
struct ProfileState {
    role: Role,
    since: u64,
    priority: u8,
    address_present: Option<bool>,
}

/// What the relays' standby does.
pub struct Standby {
    config: StandbyConfig,
    /// Access entry labels -> index.
    by_label: HashMap<String, usize>,
    labels: Vec<String>,
    /// Per access entry, its profile.
    profile_of: Vec<Option<usize>>,
    /// Per access entry of a profile, its name on the backup link (`access#0`).
    wire_names: Vec<Option<String>>,
    profiles: Vec<ProfileState>,
    services: Vec<ServiceStatus>,
    tombstones: Tombstones,
}

impl Standby {
    /// The standby of a relay configured with `relay` (its `standby` part); `now` in Unix
    /// seconds.
    pub fn new(relay: &RelayConfig, now: u64) -> Standby {
        let config = relay.standby.clone();
        let labels: Vec<String> = relay.interfaces.iter().map(|i| i.label()).collect();
        let by_label = labels.iter().enumerate().map(|(n, l)| (l.clone(), n)).collect();
        let mut profile_of = vec![None; relay.interfaces.len()];
        for (p, profile) in config.profiles.iter().enumerate() {
            for &a in &profile.access {
                if let Some(slot) = profile_of.get_mut(a) {
                    *slot = Some(p);
                }
            }
        }
        let wire_names = (0..relay.interfaces.len())
            .map(|a| {
                let profile = &config.profiles[profile_of[a]?];
                let at = profile.access.iter().position(|&x| x == a)?;
                Some(format!("{}#{at}", profile.name))
            })
            .collect();
        let profiles = config
            .profiles
            .iter()
            .map(|_| ProfileState { role: Role::Init, since: now, priority: 0, address_present: None })
            .collect();
        let services = config
            .services
            .iter()
            .map(|s| ServiceStatus {
                name: s.name.clone(),
                peer: Some(s.peer),
                source: Some(s.source),
                port: s.port,
                since: now,
                daily_batch: s.daily_batch.map(|d| d.to_string()),
                ..ServiceStatus::default()
            })
            .collect();
        Standby {
            config,
            by_label,
            labels,
            profile_of,
            wire_names,
            profiles,
            services,
            tombstones: Tombstones::default(),
        }
    }

    pub fn config(&self) -> &StandbyConfig {
        &self.config
    }

    /// Whether any profile is configured.
    pub fn is_on(&self) -> bool {
        !self.config.profiles.is_empty()
    }

    /// Whether the relay relays on access entry `access`: one in no profile always does.
    pub fn relays(&self, access: usize) -> bool {
        match self.profile_of.get(access).copied().flatten() {
            Some(p) => self.profiles[p].role.relays(),
            None => true,
        }
    }

    /// What is added to the route metric of delegated prefixes on access entry `access`.
    pub fn metric_offset(&self, access: usize) -> u32 {
        match self.profile_of.get(access).copied().flatten() {
            Some(p) if !self.profiles[p].role.relays() => self.config.profiles[p].degrade_metric,
            _ => 0,
        }
    }

    /// The access entries of profile `profile`.
    pub fn access_of(&self, profile: usize) -> &[usize] {
        self.config.profiles.get(profile).map_or(&[], |p| p.access.as_slice())
    }

    /// The profile of access entry `access`.
    pub fn profile_of(&self, access: usize) -> Option<usize> {
        self.profile_of.get(access).copied().flatten()
    }

    /// A line of keepalived's notify FIFO: the roles of the profiles following its instance
    /// change, and the switchovers that follow.
    pub fn notice(&mut self, notice: &VrrpNotice, now: u64) -> Vec<Switch> {
        let mut switches = Vec::new();
        for (p, profile) in self.config.profiles.iter().enumerate() {
            if profile.vrrp != notice.name || profile.vrrp_subject != notice.subject {
                continue;
            }
            let state = &mut self.profiles[p];
            state.priority = notice.priority;
            let Some(new) = notice.state.map(Role::from) else { continue };
            if new == state.role {
                continue;
            }
            let was = state.role.relays();
            *state = ProfileState { role: new, since: now, ..state.clone() };
            if was != new.relays() {
                switches.push(Switch { profile: p, relaying: new.relays() });
            }
        }
        switches
    }

    /// Whether profile `profile`'s virtual address is on its interface (the kernel's word,
    /// through rtnetlink). Before keepalived has said anything, an address present means it
    /// is master already (dhcp6d started after it): relaying starts.
    pub fn address_seen(&mut self, profile: usize, present: bool, now: u64) -> Option<Switch> {
        let state = self.profiles.get_mut(profile)?;
        state.address_present = Some(present);
        if state.role == Role::Init && present {
            *state = ProfileState { role: Role::Master, since: now, ..state.clone() };
            return Some(Switch { profile, relaying: true });
        }
        None
    }

    /// An entry as it travels: its access entry named by profile and position in the profile
    /// (`access#0`), not by this relay's interface names, which the peer's may not share.
    fn wire_entry(&self, mut entry: UserEntry) -> UserEntry {
        let name = self.by_label.get(&entry.interface).and_then(|&a| self.wire_names.get(a)?.as_ref());
        if let Some(name) = name {
            entry.interface.clone_from(name);
        }
        entry
    }

    /// A received entry with its access entry named as this relay names it; None if it names
    /// no profile that service `service` carries.
    fn received_entry(&self, service: usize, mut entry: UserEntry) -> Option<UserEntry> {
        let (name, at) = entry.interface.rsplit_once('#')?;
        let at: usize = at.parse().ok()?;
        let profile = self.config.profiles.iter().find(|p| p.name == name && p.service == service)?;
        entry.interface = self.labels.get(*profile.access.get(at)?)?.clone();
        Some(entry)
    }

    /// Whether service `service` backs up the entries of access entry `access`.
    fn carries(&self, service: usize, access: usize) -> bool {
        self.profile_of(access).is_some_and(|p| self.config.profiles[p].service == service)
    }

    /// The profiles (backup IDs) service `service` carries.
    pub fn profiles_of(&self, service: usize) -> Vec<String> {
        let of = self.config.profiles.iter().filter(|p| p.service == service);
        of.map(|p| p.name.clone()).collect()
    }

    /// The Hello this relay, named `node`, sends first on service `service`.
    pub fn hello(&self, service: usize, node: &str) -> LinkMessage {
        LinkMessage::Hello { version: LINK_VERSION, node: node.to_string(), profiles: self.profiles_of(service) }
    }

    /// A batch for service `service`: every entry it carries, then every removal remembered.
    pub fn batch(&mut self, service: usize, relay: &Relay, now_ms: u64) -> Vec<LinkMessage> {
        let mut changes: Vec<UserChange> = relay
            .users_on(|a| self.carries(service, a))
            .into_iter()
            .map(|e| UserChange::Put(self.wire_entry(e)))
            .collect();
        changes.extend(self.tombstones.removals());
        let Some(status) = self.services.get_mut(service) else { return Vec::new() };
        status.sent += changes.len() as u64;
        status.last_batch_sent = Some(now_ms / 1000);
        status.resync_pending = false;
        let mut chunks: Vec<LinkMessage> = changes
            .chunks(BATCH_CHUNK)
            .map(|c| LinkMessage::Batch { sent_ms: now_ms, changes: c.to_vec(), last: false })
            .collect();
        match chunks.last_mut() {
            Some(LinkMessage::Batch { last, .. }) => *last = true,
            _ => chunks.push(LinkMessage::Batch { sent_ms: now_ms, changes: Vec::new(), last: true }),
        }
        chunks
    }

    /// Service `service` connected to its peer: the Hello and the batch to send.
    pub fn link_up(&mut self, service: usize, node: &str, relay: &Relay, now_ms: u64) -> Vec<LinkMessage> {
        let Some(status) = self.services.get_mut(service) else { return Vec::new() };
        status.connected = true;
        status.since = now_ms / 1000;
        status.peer_node = None;
        let mut out = vec![self.hello(service, node)];
        out.extend(self.batch(service, relay, now_ms));
        out
    }

    /// Service `service` lost its peer: what is not sent now goes in the next batch.
    pub fn link_down(&mut self, service: usize, now: u64) {
        if let Some(status) = self.services.get_mut(service) {
            status.connected = false;
            status.since = now;
        }
    }

    /// The relay's own entry changes (learnt, renewed, removed): removals are remembered,
    /// and each connected service gets those it carries, as one hot message.
    pub fn local_changes(&mut self, changes: &[UserChange], now_ms: u64) -> Vec<(usize, LinkMessage)> {
        for c in changes {
            if let UserChange::Del { at, until, .. } = c {
                self.tombstones.insert(key_of(c), Tombstone { at: *at, until: (*until).max(*at) });
            } else if !self.tombstones.is_empty() {
                self.tombstones.remove(&key_of(c));
            }
        }
        // A link that lost messages gets a batch of everything: hot changes queued before it
        // would only lengthen the backlog it could not drain.
        let open = |s: &ServiceStatus| s.connected && !s.resync_pending;
        if !self.services.iter().any(open) {
            return Vec::new();
        }
        let mut carried: Vec<Vec<UserChange>> = vec![Vec::new(); self.services.len()];
        for c in changes {
            match c {
                UserChange::Put(e) => {
                    let Some(&access) = self.by_label.get(&e.interface) else { continue };
                    let Some(p) = self.profile_of(access) else { continue };
                    let service = self.config.profiles[p].service;
                    if self.services.get(service).is_some_and(open) {
                        carried[service].push(UserChange::Put(self.wire_entry(e.clone())));
                    }
                }
                // A removal names no access entry: the peer forgets it if it holds it.
                del => {
                    for (service, status) in self.services.iter().enumerate() {
                        if open(status) {
                            carried[service].push(del.clone());
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (service, changes) in carried.into_iter().enumerate() {
            if changes.is_empty() {
                continue;
            }
            self.services[service].sent += changes.len() as u64;
            out.push((service, LinkMessage::Hot { sent_ms: now_ms, changes }));
        }
        out
    }

    /// A message could not be queued for service `service` (its queue was full): a batch
    /// follows at the next [`Standby::tick`].
    pub fn lost_messages(&mut self, service: usize) {
        if let Some(status) = self.services.get_mut(service) {
            status.resync_pending = true;
        }
    }

    /// A connection from `from`, not the peer of service `service`, was refused.
    pub fn refused_connection(&mut self, service: usize) {
        if let Some(status) = self.services.get_mut(service) {
            status.refused_connections += 1;
        }
    }

    /// A message from the peer of service `service`: entries taken into `relay` as
    /// [`reconcile`] rules. Returns the changes taken (for the driver to keep them).
    pub fn receive(&mut self, service: usize, message: LinkMessage, relay: &mut Relay, now_ms: u64) -> Vec<UserChange> {
        let now = now_ms / 1000;
        let (sent_ms, changes, last) = match message {
            LinkMessage::Hello { version, node, profiles } => {
                let ours = self.profiles_of(service);
                if let Some(status) = self.services.get_mut(service) {
                    status.peer_node = Some(node);
                    let mut theirs = profiles;
                    theirs.sort();
                    let mut ours = ours;
                    ours.sort();
                    status.profile_mismatch = version != LINK_VERSION || theirs != ours;
                }
                return Vec::new();
            }
            LinkMessage::Ping => return Vec::new(),
            LinkMessage::Batch { sent_ms, changes, last } => (sent_ms, changes, last),
            LinkMessage::Hot { sent_ms, changes } => (sent_ms, changes, false),
        };
        let mut applied = Vec::new();
        let (mut stale, mut unknown) = (0u64, 0u64);
        let received = changes.len() as u64;
        for change in changes {
            let change = match change {
                UserChange::Put(entry) => match self.received_entry(service, entry) {
                    Some(entry) => UserChange::Put(entry),
                    None => {
                        unknown += 1;
                        continue;
                    }
                },
                del => del,
            };
            let (duid, iaid, ia_type, resource) = change.key();
            let held = relay.user(duid, iaid, ia_type, resource);
            let applies = match &change {
                UserChange::Put(entry) => {
                    // Most entries have no removal remembered: their key is not even built.
                    let key = (!self.tombstones.is_empty()).then(|| key_of(&change));
                    let tombstone = key.as_ref().and_then(|k| self.tombstones.get(k));
                    let wins = put_wins(entry, held.as_ref(), tombstone, now) && relay.put_user(entry, now);
                    if let (true, Some(k)) = (wins, key.filter(|_| tombstone.is_some())) {
                        self.tombstones.remove(&k);
                    }
                    stale += u64::from(!wins);
                    wins
                }
                UserChange::Del { at, until, .. } => {
                    self.tombstones.insert(key_of(&change), Tombstone { at: *at, until: (*until).max(*at) });
                    match held {
                        Some(h) if removal_wins(*at, &h) => relay.remove_user(duid, iaid, ia_type, resource),
                        Some(_) => {
                            stale += 1;
                            false
                        }
                        None => false,
                    }
                }
            };
            if applies {
                applied.push(change);
            }
        }
        if let Some(status) = self.services.get_mut(service) {
            status.received += received;
            status.applied += applied.len() as u64;
            status.stale += stale;
            status.unknown += unknown;
            status.lag_ms = Some(now_ms.saturating_sub(sent_ms));
            if last {
                status.last_batch_received = Some(now);
            }
        }
        applied
    }

    /// Once a second: tombstones past their time are forgotten; services that lost hot
    /// changes get a batch once their link has sent everything queued before (`drained`), so
    /// that a peer that cannot keep up gets one batch at the pace it takes them, not one per
    /// second piling up; services whose daily batch is due ([`DailyTime::due`]) get it.
    pub fn tick(&mut self, relay: &Relay, now_ms: u64, drained: impl Fn(usize) -> bool) -> Vec<(usize, LinkMessage)> {
        let now = now_ms / 1000;
        self.tombstones.purge(now);
        let mut out = Vec::new();
        for service in 0..self.services.len() {
            let status = &self.services[service];
            let daily = self.config.services[service].daily_batch;
            let due = if status.resync_pending {
                drained(service)
            } else {
                daily.is_some_and(|d| d.due(status.last_batch_sent, now))
            };
            if status.connected && due {
                out.extend(self.batch(service, relay, now_ms).into_iter().map(|m| (service, m)));
            }
        }
        out
    }

    /// Batches for every connected service (`dhcp6d relay backup now`); how many services.
    pub fn backup_now(&mut self, relay: &Relay, now_ms: u64) -> Vec<(usize, LinkMessage)> {
        let mut out = Vec::new();
        for service in 0..self.services.len() {
            if self.services[service].connected {
                out.extend(self.batch(service, relay, now_ms).into_iter().map(|m| (service, m)));
            }
        }
        out
    }

    /// The state of every profile and link.
    pub fn status(&self, relay: &Relay) -> StandbyStatus {
        let profiles = self
            .config
            .profiles
            .iter()
            .zip(&self.profiles)
            .enumerate()
            .map(|(p, (profile, state))| ProfileStatus {
                name: profile.name.clone(),
                vrrp: profile.vrrp.clone(),
                role: state.role,
                since: state.since,
                priority: state.priority,
                relaying: state.role.relays(),
                interfaces: profile.access.iter().filter_map(|&a| self.labels.get(a).cloned()).collect(),
                degrade_metric: profile.degrade_metric,
                virtual_address: profile.virtual_address,
                virtual_address_present: state.address_present,
                entries: relay.user_count_on(|a| self.profile_of(a) == Some(p)),
                service: self.config.services.get(profile.service).map_or_else(String::new, |s| s.name.clone()),
            })
            .collect();
        StandbyStatus { profiles, services: self.services.clone(), tombstones: self.tombstones.len() }
    }
}

#[cfg(test)]
mod tests;
