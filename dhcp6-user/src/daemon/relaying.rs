//! The relay's driver piece: the relay engine with its XDP side, its packet sockets for
//! tagged clients, the delegated-prefix routes it installs, the journal of its user entries,
//! and its hot standby (which access entries it relays on, the backup of its entries).

use std::{
    collections::HashMap,
    net::SocketAddrV6,
    os::fd::OwnedFd,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use futures_util::future::join_all;
use tokio::{io::unix::AsyncFd, sync::mpsc, time::Interval};
use tracing::{info, warn};

use super::{
    input::now, input::now_ms, input::Input, input::StandbyInput, leasequery_client, relay_users::UserJournal,
    relay_xdp::RelayXdp, sender::Outgoing, socket::Listener, socket::Role, standby::StandbyDriver,
    vlan_frames::VlanFrames,
};
use crate::{
    config::MAX_ACCESS_ENTRIES,
    netlink::{PdRoute, PdRoutes},
    relay::{
        reload::RelayReloaded,
        standby::{StandbyStatus, Switch},
        AccessInterface, PdRouteIntent, RebuildBy, RebuildError, Relay, RelayConfig, RelayDrop, RelayOut, RouteChange,
        UserChange, Vlans,
    },
    xdp::{RelayMaps, XdpProgram},
};
use ipnet::Ipv6Net;

/// How long a rebuild waits for a server: to connect, and for each read of its answer.
const REBUILD_WAIT: Duration = Duration::from_secs(10);

/// The relay and what carries its decisions out.
pub struct Relaying {
    pub relay: Relay,
    /// The relay's maps in XDP, when XDP runs.
    xdp: Option<RelayXdp>,
    /// XDP's report ring (the Replies it relayed), watched for readiness.
    reports: Option<AsyncFd<OwnedFd>>,
    /// XDP wakes dhcp6d for its reports only once many wait: they are read this often too.
    report_tick: Interval,
    /// Tagged clients, which the kernel's stack does not take, come and go as frames.
    vlan_frames: Option<Arc<VlanFrames>>,
    routes: PdRoutes,
    /// The user entries across restarts.
    users: Option<UserJournal>,
    listeners: Arc<Vec<Listener>>,
    /// Interfaces XDP is attached to (or was tried on), so that upstream ones are added once.
    attached: Vec<String>,
    /// The routes installed, by prefix (with their metric, which a standby role changes).
    installed: HashMap<Ipv6Net, PdRoute>,
    /// Hot standby, when the relay has profiles.
    standby: Option<StandbyDriver>,
    /// User entry changes not journalled yet (the relay's own, and those a peer backed up).
    unjournaled: Vec<UserChange>,
    /// The relay's own changes waiting to go to the standby peers ([`HOT_BACKUP_EVERY`]).
    hot_pending: Vec<UserChange>,
    /// When hot changes last went to the peers.
    hot_sent_at: Instant,
    /// Rebuilding the user entries from the servers by bulk leasequery.
    rebuild: Rebuild,
}

/// A rebuild of the user entries by bulk leasequery: how to ask, and who answered.
pub struct Rebuild {
    /// What `[relay] rebuild` says (the default of `dhcp6d relay rebuild`).
    pub by: Option<RebuildBy>,
    /// The relay's DUID: the requestor's Client Identifier.
    pub identity: Vec<u8>,
    /// Where the servers' answers go.
    pub queue: mpsc::Sender<Input>,
}

/// Hot changes go to the standby peers at most this often (or once [`HOT_BACKUP_MAX`] wait):
/// one message, one write and one wake-up of the peer per interval rather than per batch of
/// the engine, which at tens of thousands of exchanges a second took a tenth of the relay's
/// CPU and more of the peer's. Well inside the second a change may take to reach the peer.
const HOT_BACKUP_EVERY: Duration = Duration::from_millis(100);
const HOT_BACKUP_MAX: usize = 4096;

impl Relaying {
    /// Starts relaying: the XDP maps (`maps`, when XDP runs), the packet sockets for tagged
    /// clients (their readers feed `tx`), the routes found at start, the user entries kept.
    pub async fn start(
        mut relay: Relay,
        maps: Option<RelayMaps>,
        listeners: Arc<Vec<Listener>>,
        state_dir: &Path,
        attached: Vec<String>,
        tx: &mpsc::Sender<Input>,
        rebuild: Rebuild,
    ) -> Result<Relaying> {
        let mut xdp = maps.map(|m| RelayXdp::new(m, &relay));
        let reports = match &xdp {
            Some(x) => {
                let fd = x.ring_fd()?;
                // SAFETY: the AsyncFd owns the descriptor, so it stays open for as long as it is
                // registered.
                let registered = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
                Some(registered.context("waiting on the XDP relay's reports")?)
            }
            None => None,
        };
        let vlan_frames = VlanFrames::open(relay.config())?;
        if let Some(v) = &vlan_frames {
            for port in 0..v.ports() {
                tokio::spawn(v.clone().read_loop(port, tx.clone()));
            }
        }
        let routes =
            PdRoutes::connect(relay.config().route_protocol).context("opening netlink for delegated-prefix routes")?;
        let installed = reconcile_routes(&routes, &mut relay, &listeners).await;
        let mut standby = StandbyDriver::start(relay.config(), now(), tx)?;
        if let Some(s) = standby.as_mut() {
            // keepalived may be master already (dhcp6d restarted under it).
            for (profile, present) in s.virtual_addresses() {
                s.engine.address_seen(profile, present, now());
            }
        }
        let relays = |a: usize| standby.as_ref().is_none_or(|s| s.engine.relays(a));
        // Restored entries claim their routes (added if missing); the others wait a hold.
        let mut restored = 0;
        let users = match UserJournal::open(state_dir) {
            Ok((journal, saved)) => {
                restored = relay.restore_users(saved, now());
                info!(entries = restored, "relay user entries restored");
                Some(journal)
            }
            Err(e) => {
                warn!(error = %e, "the relay's user entries are not kept across restarts");
                None
            }
        };
        if let Some(x) = xdp.as_mut() {
            // Replies XDP carried while no dhcp6d ran, then the maps.
            let taken = x.take_reports(&mut relay, now());
            info!(replies = taken, "replies relayed by XDP while stopped learnt from");
            x.sync(&relay, now(), relays);
            let stopped: Vec<usize> = (0..relay.config().interfaces.len()).filter(|&a| !relays(a)).collect();
            // Entries an earlier dhcp6d left while it was master.
            x.stop_relaying(&stopped);
        }
        let mut report_tick = tokio::time::interval(Duration::from_millis(dhcp6_common::relay::RELAY_REPORT_EVERY_MS));
        report_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut relaying = Relaying {
            relay,
            xdp,
            reports,
            report_tick,
            vlan_frames,
            routes,
            users,
            listeners,
            attached,
            installed,
            standby,
            unjournaled: Vec::new(),
            hot_pending: Vec::new(),
            hot_sent_at: Instant::now(),
            rebuild,
        };
        relaying.apply_routes().await;
        if let (0, Some(by)) = (restored, relaying.rebuild.by) {
            // Nothing kept (no snapshot, or a new relay): the servers know what was relayed.
            match relaying.start_rebuild(Some(by)) {
                Ok(n) => info!(queries = n, by = ?by, "no user entries kept: asking the servers by bulk leasequery"),
                Err(e) => warn!(error = %e, "no rebuild of the user entries"),
            }
        }
        Ok(relaying)
    }

    /// Asks every server of every group for the bindings relayed here, by bulk leasequery
    /// (`by`, or `[relay] rebuild`'s way): each answer comes back as [`Input::Rebuilt`].
    /// Returns how many queries went out.
    pub fn start_rebuild(&mut self, by: Option<RebuildBy>) -> Result<usize, RebuildError> {
        let by = by.or(self.rebuild.by).unwrap_or(match self.relay.config().relay_id {
            Some(_) => RebuildBy::RelayId,
            None => RebuildBy::LinkAddress,
        });
        let xid = (now() as u32).wrapping_mul(2_654_435_761) & 0xff_ffff;
        let queries = self.relay.rebuild_queries(by, &self.rebuild.identity, xid)?;
        for (server, query) in &queries {
            let (server, query, queue) =
                (SocketAddrV6::new(*server, dhcp6_codec::SERVER_PORT, 0, 0), query.clone(), self.rebuild.queue.clone());
            tokio::spawn(async move {
                let answer = leasequery_client::bulk(server, &query, REBUILD_WAIT).await.map_err(|e| e.to_string());
                let _ = queue.send(Input::Rebuilt { server, answer }).await;
            });
        }
        Ok(queries.len())
    }

    /// A server's answer to a rebuild's query: its bindings become user entries and routes
    /// (journalled and backed up after the batch, as the relay's own).
    pub fn rebuilt(&mut self, server: SocketAddrV6, answer: Result<Vec<Vec<u8>>, String>) {
        let messages = match answer {
            Ok(m) => m,
            Err(e) => {
                warn!(server = %server.ip(), error = %e, "the server gave no bulk leasequery answer: entries not rebuilt from it");
                return;
            }
        };
        let now = now();
        let (mut entries, mut unplaced, mut status) = (0, 0, None);
        for m in &messages {
            let learnt = self.relay.learn_bulk(m, now);
            entries += learnt.entries;
            unplaced += learnt.unplaced;
            status = status.or(learnt.status);
        }
        match status {
            Some(s) => {
                warn!(server = %server.ip(), status = s.0, name = s.name().unwrap_or("unknown"), "the server refused the bulk leasequery")
            }
            None => info!(server = %server.ip(), entries, unplaced, "user entries rebuilt from the server's bindings"),
        }
        if let Some(x) = self.xdp.as_mut() {
            // XDP sends Replies down to the clients whose MACs it knows.
            let all: Vec<usize> = (0..self.relay.config().interfaces.len()).collect();
            x.fill_client_macs(&self.relay, &all);
        }
    }

    /// Whether the relay relays on access entry `access` (a standby backup does not).
    pub fn relays(&self, access: usize) -> bool {
        self.standby.as_ref().is_none_or(|s| s.engine.relays(access))
    }

    /// A client's message on access entry `access` that the standby master relays, not
    /// this relay: counted.
    pub fn left_to_master(&mut self) {
        self.relay.count_dropped(RelayDrop::Standby, 1);
    }

    /// What keepalived or a backup link said.
    pub fn standby_input(&mut self, input: StandbyInput) {
        let Some(s) = self.standby.as_mut() else { return };
        let now_ms = now_ms();
        match input {
            StandbyInput::Notice(notice) => {
                info!(vrrp = %notice.name, state = ?notice.state, priority = notice.priority, "keepalived notice");
                let switches = s.engine.notice(&notice, now_ms / 1000);
                for switch in switches {
                    self.switch(switch);
                }
            }
            StandbyInput::VirtualAddress { profile, present } => {
                info!(profile, present, "the virtual address appeared or left");
                if let Some(switch) = s.engine.address_seen(profile, present, now_ms / 1000) {
                    self.switch(switch);
                }
            }
            StandbyInput::LinkUp { service } => {
                let out = s.engine.link_up(service, &s.node.clone(), &self.relay, now_ms);
                s.send(out.into_iter().map(|m| (service, m)).collect());
            }
            StandbyInput::LinkDown { service } => s.engine.link_down(service, now_ms / 1000),
            StandbyInput::Message { service, message } => {
                // The relay's own changes before the peer's, in the journal too.
                self.hot_backup(true);
                let Some(s) = self.standby.as_mut() else { return };
                let taken = s.engine.receive(service, message, &mut self.relay, now_ms);
                self.unjournaled.extend(taken);
            }
            StandbyInput::Refused { service } => s.engine.refused_connection(service),
        }
    }

    /// A switchover: relaying on a profile's access entries starts or stops, in XDP too, and
    /// their routes go back at the role's metric.
    fn switch(&mut self, switch: Switch) {
        let Some(s) = self.standby.as_ref() else { return };
        let access = s.engine.access_of(switch.profile).to_vec();
        let name = s.engine.config().profiles[switch.profile].name.clone();
        if switch.relaying {
            // What this relay knew of the servers' health is from before it stopped relaying.
            self.relay.revive_groups(&access);
        }
        if let Some(x) = self.xdp.as_mut() {
            if switch.relaying {
                let engine = &s.engine;
                x.sync(&self.relay, now(), |a| engine.relays(a));
                let macs = x.fill_client_macs(&self.relay, &access);
                info!(profile = %name, client_macs = macs, "XDP relays on the profile's access entries");
            } else {
                x.stop_relaying(&access);
            }
        }
        self.relay.refresh_routes(|a| access.contains(&a));
        info!(profile = %name, relaying = switch.relaying, "standby switchover");
    }

    /// Takes a reloaded configuration (see [`crate::relay::reload`]): the engine's, then the
    /// XDP maps and the tagged entries' frames. An added entry must be a VLAN on an interface
    /// whose VLANs are read already (a new interface needs its socket and XDP program, which
    /// only a start makes). Refused, the relay runs on as it was.
    pub fn reload(&mut self, new: RelayConfig) -> Result<RelayReloaded, String> {
        let vlan_frames = self.vlan_frames.as_deref();
        let cannot: Vec<String> = self
            .relay
            .entries_added(&new)
            .into_iter()
            .filter(|i| i.vlans == Vlans::NONE || !vlan_frames.is_some_and(|v| v.reads(&i.name)))
            .map(AccessInterface::label)
            .collect();
        if !cannot.is_empty() {
            return Err(format!(
                "access entries {} are new on an interface not relayed on before, or untagged: that needs a restart",
                cannot.join(", ")
            ));
        }
        let metric = self.relay.config().route_metric;
        let done = self.relay.reload(new, MAX_ACCESS_ENTRIES, now()).map_err(|e| e.to_string())?;
        if let Some(v) = &self.vlan_frames {
            v.add(self.relay.config(), &done.added);
        }
        if let Some(x) = self.xdp.as_mut() {
            x.reload(&self.relay, &done);
            let standby = &self.standby;
            x.sync(&self.relay, now(), |a| standby.as_ref().is_none_or(|s| s.engine.relays(a)));
        }
        if self.relay.config().route_metric != metric {
            self.relay.refresh_routes(|_| true);
        }
        Ok(done)
    }

    /// Batches to every connected peer (`dhcp6d relay backup now`); how many peers.
    pub fn backup_now(&mut self) -> usize {
        let Some(s) = self.standby.as_mut() else { return 0 };
        let out = s.engine.backup_now(&self.relay, now_ms());
        let mut peers: Vec<usize> = out.iter().map(|(n, _)| *n).collect();
        peers.dedup();
        s.send(out);
        peers.len()
    }

    /// The standby's state, when it is on.
    pub fn standby_status(&self) -> Option<StandbyStatus> {
        self.standby.as_ref().map(|s| s.engine.status(&self.relay))
    }

    /// The relay's own entry changes since the last call go to the peers at once, and wait
    /// for the next tick's journal write.
    /// With `force`, or once [`HOT_BACKUP_EVERY`] has passed, or [`HOT_BACKUP_MAX`] wait.
    fn hot_backup(&mut self, force: bool) {
        let changes = self.relay.take_user_changes();
        let Some(s) = self.standby.as_mut() else {
            self.unjournaled.extend(changes);
            return;
        };
        self.hot_pending.extend(changes);
        let due = force || self.hot_pending.len() >= HOT_BACKUP_MAX || self.hot_sent_at.elapsed() >= HOT_BACKUP_EVERY;
        if self.hot_pending.is_empty() || !due {
            return;
        }
        let out = s.engine.local_changes(&self.hot_pending, now_ms());
        s.send(out);
        // Journalled in the order they were made.
        self.unjournaled.append(&mut self.hot_pending);
        self.hot_sent_at = Instant::now();
    }

    /// Where a relayed datagram goes: as a frame to a tagged client, or through a socket.
    pub fn route(&self, out: RelayOut, relayed: &mut Vec<Outgoing>, frames: &mut Vec<RelayOut>) {
        match (out.interface, &self.vlan_frames) {
            (Some(access), Some(v)) if v.carries(access) => frames.push(out),
            _ => relayed.extend(relay_out(&self.listeners, out)),
        }
    }

    /// After a batch: its frames down to tagged clients, and the routes it changed.
    pub async fn after_batch(&mut self, frames: Vec<RelayOut>) {
        if let Some(v) = &self.vlan_frames {
            for out in frames {
                if let Err(e) = v.send(&out) {
                    warn!(destination = %out.destination, error = %e, "sending a tagged frame down failed");
                }
            }
        }
        self.hot_backup(false);
        self.apply_routes().await;
    }

    /// Once a second: XDP's counts, servers' liveness, routes, user entries.
    pub async fn tick(&mut self, program: Option<&mut XdpProgram>) {
        let now = now();
        if let Some(x) = self.xdp.as_mut() {
            x.count(&mut self.relay, now);
        }
        if let Some(v) = &self.vlan_frames {
            let ordering = std::sync::atomic::Ordering::Relaxed;
            self.relay.count_dropped(RelayDrop::BadFrame, v.dropped.swap(0, ordering));
            self.relay.count_dropped(RelayDrop::QueueFull, v.queue_full.swap(0, ordering));
        }
        self.relay.tick(now);
        if let Some(s) = self.standby.as_mut() {
            let drained: Vec<bool> = (0..s.engine.config().services.len()).map(|n| s.drained(n)).collect();
            let out = s.engine.tick(&self.relay, now_ms(), |n| drained.get(n).copied().unwrap_or(false));
            s.send(out);
        }
        let standby = self.standby.as_ref().map(|s| &s.engine);
        if let Some(x) = self.xdp.as_mut() {
            // Servers marked down or back up move their buckets.
            x.sync(&self.relay, now, |a| standby.is_none_or(|s| s.relays(a)));
        }
        if let Some(program) = program {
            self.follow_upstream(program);
        }
        self.apply_routes().await;
        self.keep_users(false);
    }

    /// Attaches XDP to the interfaces toward the servers not attached yet: routes toward them
    /// may come later (a routing daemon still converging) or move, and a reload may name new
    /// servers.
    pub fn follow_upstream(&mut self, program: &mut XdpProgram) {
        if let Some(x) = self.xdp.as_ref() {
            attach_upstream(program, x.upstream_interfaces(), &mut self.attached);
        }
    }

    /// Waits until XDP's reports are due: its ring says so, or their tick comes. Without XDP,
    /// the tick only while hot changes wait for the standby peers.
    pub async fn reports_due(&mut self) {
        let Some(reports) = self.reports.as_ref() else {
            // Without XDP, the tick still carries the hot changes waiting.
            if self.hot_pending.is_empty() {
                return std::future::pending().await;
            }
            self.report_tick.tick().await;
            return;
        };
        tokio::select! {
            ready = reports.readable() => {
                if let Ok(mut guard) = ready {
                    guard.clear_ready();
                }
            }
            _ = self.report_tick.tick() => {}
        }
    }

    /// Learns from the Replies XDP relayed.
    pub async fn take_reports(&mut self) {
        if let Some(x) = self.xdp.as_mut() {
            x.take_reports(&mut self.relay, now());
        }
        self.hot_backup(false);
        self.apply_routes().await;
    }

    /// Learns what XDP relayed last, and saves the user entries whole.
    pub fn stop(&mut self) {
        if let Some(x) = self.xdp.as_mut() {
            x.take_reports(&mut self.relay, now());
        }
        self.keep_users(true);
    }

    /// Applies the relay's route decisions to the kernel, each at its access entry's metric
    /// (a standby backup's is degraded). A route moved to another metric is added at the new
    /// one before it goes from the old, so that the prefix is never without one. Requests go
    /// [`ROUTES_IN_FLIGHT`] at a time, each prefix at most once among them, so that the
    /// decisions about one prefix reach the kernel in order.
    async fn apply_routes(&mut self) {
        let base = self.relay.config().route_metric;
        let mut window: Vec<(bool, PdRoute)> = Vec::new();
        let mut prefixes = std::collections::HashSet::new();
        for change in self.relay.take_route_changes() {
            let (replace, intent) = match change {
                RouteChange::Replace(intent) => (true, intent),
                RouteChange::Remove(intent) => (false, intent),
            };
            let Some(ifindex) = access_ifindex(&self.listeners, intent.access) else { continue };
            let offset = self.standby.as_ref().map_or(0, |s| s.engine.metric_offset(intent.access));
            let route = PdRoute { prefix: intent.prefix, via: intent.via, ifindex, metric: base + offset };
            if window.len() == ROUTES_IN_FLIGHT || !prefixes.insert(route.prefix) {
                self.route_window(std::mem::take(&mut window)).await;
                prefixes.clear();
                prefixes.insert(route.prefix);
            }
            window.push((replace, route));
        }
        self.route_window(window).await;
    }

    /// Sends a window of route requests (replace, or remove) at once and waits for every
    /// answer; then removes the routes the replaced ones moved from another metric.
    async fn route_window(&mut self, window: Vec<(bool, PdRoute)>) {
        if window.is_empty() {
            return;
        }
        // A removal takes the route as it was installed: its metric may be another's.
        let requests: Vec<(bool, PdRoute)> = window
            .into_iter()
            .map(|(replace, route)| match replace {
                true => (true, route),
                false => (false, self.installed.remove(&route.prefix).unwrap_or(route)),
            })
            .collect();
        let routes = &self.routes;
        let results = join_all(requests.iter().map(|(replace, route)| async move {
            match replace {
                true => routes.replace(route).await,
                false => routes.remove(route).await,
            }
        }))
        .await;
        let mut moved = Vec::new();
        for ((replace, route), result) in requests.into_iter().zip(results) {
            match result {
                Err(e) => {
                    warn!(prefix = %route.prefix, via = %route.via, error = %e, "changing a delegated-prefix route failed")
                }
                Ok(()) if replace => {
                    if let Some(old) = self.installed.insert(route.prefix, route) {
                        if old.metric != self.installed[&old.prefix].metric {
                            moved.push(old);
                        }
                    }
                }
                Ok(()) => {}
            }
        }
        let results = join_all(moved.iter().map(|old| routes.remove(old))).await;
        for (old, result) in moved.iter().zip(results) {
            if let Err(e) = result {
                warn!(prefix = %old.prefix, metric = old.metric, error = %e, "removing a route at its old metric failed");
            }
        }
    }

    /// Journals the user entry changes; folds the journal into a snapshot once it has
    /// outgrown the entries, or when `stopping`.
    fn keep_users(&mut self, stopping: bool) {
        self.hot_backup(true);
        let changes = std::mem::take(&mut self.unjournaled);
        let Some(journal) = self.users.as_mut() else { return };
        if let Err(e) = journal.append(&changes) {
            warn!(error = %e, "journalling the relay's user entries failed");
        }
        if stopping || journal.wants_snapshot(self.relay.user_count()) {
            if let Err(e) = journal.snapshot(&self.relay.users()) {
                warn!(error = %e, "saving the relay's user entries failed");
            }
        }
    }
}

/// Route requests sent to the kernel before their answers are waited for: one at a time,
/// 100,000 routes (a standby batch) took seconds.
const ROUTES_IN_FLIGHT: usize = 256;

/// Waits until the relay's XDP reports are due; never, without a relay.
pub async fn reports_due(relaying: Option<&mut Relaying>) {
    match relaying {
        Some(r) => r.reports_due().await,
        None => std::future::pending().await,
    }
}

/// The interface index of relay access interface `access`.
fn access_ifindex(listeners: &[Listener], access: usize) -> Option<u32> {
    listeners.iter().find(|l| l.role == Role::RelayAccess(access)).map(|l| l.index)
}

/// The listener a relay's datagram leaves from: its access interface going down (with the
/// interface's scope on the link-local destination), the unicast one going up.
fn relay_out(listeners: &[Listener], out: RelayOut) -> Option<Outgoing> {
    let (listener, scope) = match out.interface {
        Some(access) => {
            let i = listeners.iter().position(|l| l.role == Role::RelayAccess(access))?;
            (i, listeners[i].index)
        }
        None => (listeners.iter().position(|l| l.role == Role::Unicast)?, 0),
    };
    let d = out.destination;
    Some(Outgoing {
        listener,
        payload: out.payload,
        destination: SocketAddrV6::new(*d.ip(), d.port(), 0, scope),
        source: None,
        peer: None,
    })
}

/// At start: routes of ours on an access interface wait for a Reply to claim them (for the
/// configured hold); routes of ours anywhere else are removed. Returns those kept.
async fn reconcile_routes(routes: &PdRoutes, relay: &mut Relay, listeners: &[Listener]) -> HashMap<Ipv6Net, PdRoute> {
    let mut kept = HashMap::new();
    let found = match routes.ours().await {
        Ok(found) => found,
        Err(e) => {
            warn!(error = %e, "listing delegated-prefix routes failed");
            return kept;
        }
    };
    for route in found {
        let access = listeners.iter().find_map(|l| match l.role {
            Role::RelayAccess(a) if l.index == route.ifindex => Some(a),
            _ => None,
        });
        match access {
            Some(access) => {
                relay.adopt_route(PdRouteIntent { prefix: route.prefix, via: route.via, access }, now());
                // A prefix with routes at two metrics (a switchover cut short) keeps one; the
                // other is removed.
                if let Some(twin) = kept.insert(route.prefix, route) {
                    if let Err(e) = routes.remove(&twin).await {
                        warn!(prefix = %twin.prefix, error = %e, "removing a stale route failed");
                    }
                }
            }
            None => {
                if let Err(e) = routes.remove(&route).await {
                    warn!(prefix = %route.prefix, error = %e, "removing a stale route failed");
                }
            }
        }
    }
    kept
}

/// Attaches the XDP program to the `upstream` interfaces (toward the relay's servers) it is
/// not on yet, and adds them to `attached`.
fn attach_upstream(program: &mut XdpProgram, upstream: Vec<String>, attached: &mut Vec<String>) {
    for i in upstream {
        if attached.contains(&i) {
            continue;
        }
        match program.attach_pinned(&i) {
            Ok(_) => info!(interface = %i, "XDP attached toward the relay's servers"),
            Err(e) => warn!(interface = %i, error = %e, "attaching XDP toward the relay's servers failed"),
        }
        // Tried once: a failure is not retried every second.
        attached.push(i);
    }
}
