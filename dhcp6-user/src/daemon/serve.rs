//! The server's driver piece: the server engine, the upkeep of XDP's renewal maps, and the
//! commit and send threads its answers go through. The engine never waits for the disk: a
//! batch's lease changes go to the commit thread, and its replies leave only once they are
//! durable.

use std::{collections::HashMap, net::SocketAddrV6, sync::Arc};

use tracing::warn;

use super::{
    committer::{self, Batch, Committer, Done},
    control_socket::{self, Drops},
    input::now_ms,
    interface::link_local,
    reader,
    relaying::Relaying,
    renewal_upkeep::{self, RenewalUpkeep},
    sender::{Outgoing, Sender},
    socket::{Listener, Role},
    storm_guard::StormGuard,
};
use crate::{
    control::{Answer, Request},
    server::{
        reload::Reloaded as EngineReloaded, Lease, LeaseChange, LeaseState, ReconfigureOut, ReconfigureStarted,
        ReconfigureTarget, ReconfigureType, Server, ServerConfig,
    },
    store::postgresql::DatabaseHealth,
    xdp::{ShedSwitch, XdpProgram},
};

/// What the driver counted around the engine, from its pieces.
fn drops<'a>(
    dropped: &'a reader::Dropped,
    shed: &'a Option<Arc<ShedSwitch>>,
    storm: &'a Option<StormGuard>,
    sender: &'a Sender,
    renewal: &'a Option<RenewalUpkeep>,
    database: &'a Option<Arc<DatabaseHealth>>,
) -> Drops<'a> {
    Drops {
        read: dropped,
        xdp_shed: shed.as_deref(),
        xdp_storm: storm.as_ref(),
        send_failed: &sender.failed,
        sent: &sender.sent,
        xdp_tx_off: renewal.as_ref().map_or(&[], |r| r.xdp_tx_off()),
        database: database.as_deref(),
    }
}

/// The server engine with what carries its decisions out.
pub struct Serve {
    pub server: Server,
    /// Every socket datagrams come in on and replies leave from.
    pub listeners: Arc<Vec<Listener>>,
    /// The XDP Renew/Rebind answer's maps, kept in step with the server's leases.
    pub renewal: Option<RenewalUpkeep>,
    committer: Committer,
    sender: Sender,
    /// Counted by the readers.
    pub dropped: Arc<reader::Dropped>,
    /// XDP's Solicit shedding, when XDP runs.
    shed: Option<Arc<ShedSwitch>>,
    /// XDP's per-client storm protection, when XDP runs.
    storm: Option<StormGuard>,
    /// The shared lease database's state, when leases are kept in one.
    database: Option<Arc<DatabaseHealth>>,
}

impl Serve {
    pub fn new(
        server: Server,
        listeners: Arc<Vec<Listener>>,
        renewal: Option<RenewalUpkeep>,
        committer: Committer,
        sender: Sender,
        dropped: Arc<reader::Dropped>,
        shed: Option<Arc<ShedSwitch>>,
    ) -> Serve {
        Serve { server, listeners, renewal, committer, sender, dropped, shed, storm: None, database: None }
    }

    /// With XDP's storm protection, whose counts `show statistics` and `show storms` read.
    pub fn with_storm(self, storm: Option<StormGuard>) -> Serve {
        Serve { storm, ..self }
    }

    /// Tells `show statistics` of the shared lease database.
    pub fn set_database(&mut self, health: Arc<DatabaseHealth>) {
        self.database = Some(health);
    }

    /// Whether the engine may take more datagrams: not while the commit thread is far behind
    /// (a disk that stalls holds the engine back; datagrams queue, then are shed).
    pub fn ready(&self) -> bool {
        self.committer.in_flight() < committer::MAX_IN_FLIGHT
    }

    /// What the commit thread says next about a batch.
    pub async fn next_done(&mut self) -> Option<Done> {
        self.committer.next().await
    }

    /// Takes what the commit thread said, and whatever else it said meanwhile, without going
    /// round the loop for each.
    pub fn heard_all(&mut self, first: Done) {
        self.heard(first);
        while let Some(done) = self.committer.try_next() {
            self.heard(done);
        }
    }

    fn heard(&mut self, done: Done) {
        match done {
            Done::Committed(taken) if taken.is_empty() => {}
            Done::Committed(taken) => {
                let changes: Vec<LeaseChange> = taken.iter().map(|t| t.change.clone()).collect();
                for t in taken {
                    self.server.taken_elsewhere(&t.change, t.holder, t.replies);
                }
                self.forget_fast_path(&changes);
            }
            Done::Refused(changes) => {
                self.server.store_failed(&changes);
                self.forget_fast_path(&changes);
            }
            Done::WantsSnapshot => self.committer.compact(self.server.durable_leases()),
        }
    }

    /// The lease map's entries of `changes` go, after what is queued already (with the commit
    /// thread gone, nothing is written anywhere any more): the store refused them, or another
    /// server changed those leases.
    fn forget_fast_path(&mut self, changes: &[LeaseChange]) {
        if let Some(r) = self.renewal.as_mut() {
            let map = r.refused(changes);
            let _ = self.committer.submit(Batch { map, ..Default::default() });
        }
    }

    /// Another server changed these leases in the shared lease database: the table takes
    /// them, and XDP answers none of them any more (this server did not write their expiry).
    pub fn learn(&mut self, changes: Vec<LeaseChange>) {
        self.forget_fast_path(&changes);
        for change in changes {
            self.server.learn(change);
        }
    }

    /// Hands a batch to the commit thread: its lease changes (and the lease map's changes
    /// they bring), then its replies and answers once those are durable. The Reconfigure
    /// messages due go with it, after the XDP entries of the clients they ask have left the
    /// lease map (their Renews must reach the engine); entries of clients no longer being
    /// reconfigured come back.
    pub fn submit(&mut self, mut batch: Batch) {
        let due = self.server.reconfigures_due(now_ms());
        batch.replies.extend(self.reconfigure_datagrams(due));
        let rewritten: Vec<LeaseChange> =
            self.server.take_fast_path_changes().into_iter().map(LeaseChange::Upsert).collect();
        if let Some(r) = self.renewal.as_mut() {
            for ops in [r.ops(&self.server, &batch.changes), r.ops(&self.server, &rewritten)] {
                batch.map.removals.extend(ops.removals);
                batch.map.entries.extend(ops.entries);
            }
        }
        if let Some(done) = self.committer.submit(batch) {
            self.heard(done);
        }
    }

    /// Sends what holds no lease of ours (relayed datagrams) at once.
    pub fn send_now(&self, datagrams: Vec<Outgoing>) {
        self.sender.send(datagrams);
    }

    /// Once a second: leases whose time is up, and renewals XDP answered whose deadline comes
    /// near, made durable. Returns the changes (a failover partner learns of them).
    pub fn tick(&mut self, now: u64) -> Vec<LeaseChange> {
        let mut changes = self.server.expire(now);
        if let Some(r) = self.renewal.as_mut() {
            changes.extend(r.take_renewals(&mut self.server, renewal_upkeep::STAMP_READS));
            r.ensure_links(&self.server);
        }
        self.submit(Batch { changes: changes.clone(), ..Default::default() });
        // Also finishes a background compaction whose snapshot is written.
        self.committer.tick(self.server.lease_count());
        changes
    }

    /// Rewrites XDP's entry of every bound lease, as the server now has it (its failover
    /// duties changed, or what the partner acknowledged): nothing is written to the store.
    pub fn refresh_fast_path(&mut self) {
        self.refresh_fast_path_of(self.server.leases());
    }

    /// [`Self::refresh_fast_path`] for some leases only.
    pub fn refresh_fast_path_of(&mut self, leases: Vec<Lease>) {
        let Some(r) = self.renewal.as_mut() else { return };
        let upserts: Vec<LeaseChange> =
            leases.into_iter().filter(|l| l.state == LeaseState::Bound).map(LeaseChange::Upsert).collect();
        let map = r.ops(&self.server, &upserts);
        if let Some(done) = self.committer.submit(Batch { map, ..Default::default() }) {
            self.heard(done);
        }
    }

    /// Runs the server from `config` from now on, keeping every lease, and rewrites what XDP
    /// answers renewals with (link entries with the options, the entry of every binding with
    /// its lifetimes), as on a failover duty change. Nothing is written to the store.
    ///
    /// The clients of subnets whose options changed are asked to renew (a Reconfigure to each
    /// client holding a Reconfigure Key); the answer says how many.
    pub fn reload(&mut self, config: ServerConfig) -> (EngineReloaded, Option<ReconfigureStarted>) {
        let done = self.server.reload(config);
        let asked = match done.options_changed.is_empty() {
            true => None,
            false => {
                let subnets = ReconfigureTarget::Subnets(done.options_changed.clone());
                self.server.start_reconfigure(&subnets, ReconfigureType::Renew, now_ms()).ok()
            }
        };
        if let Some(r) = self.renewal.as_mut() {
            r.relink(&self.server);
        }
        self.refresh_fast_path();
        // The first Reconfigures, after the rewrite above took their clients' entries out.
        self.submit(Batch::default());
        (done, asked)
    }

    /// The Reconfigure messages the engine made, as datagrams: to a client on a served link
    /// from that interface's socket and link-local address (clients check that a Reconfigure
    /// comes from a link-local address, as RFC 9915 section 18.3.11's unicast from the
    /// server's interface gives), to a relay from the unicast socket.
    fn reconfigure_datagrams(&self, due: Vec<ReconfigureOut>) -> Vec<Outgoing> {
        let mut sources: HashMap<u32, Option<std::net::Ipv6Addr>> = HashMap::new();
        let mut out = Vec::with_capacity(due.len());
        for r in due {
            let found = match &r.interface {
                Some(name) => self
                    .listeners
                    .iter()
                    .position(|l| l.role == Role::Serve && l.interface.as_deref() == Some(name.as_str())),
                None => self.listeners.iter().position(|l| l.role == Role::Unicast),
            };
            let Some(listener) = found else {
                warn!(interface = ?r.interface, "no socket to send a Reconfigure from");
                continue;
            };
            let (destination, source) = match r.interface {
                Some(_) => {
                    let index = self.listeners[listener].index;
                    let source = *sources.entry(index).or_insert_with(|| link_local(index));
                    (SocketAddrV6::new(*r.destination.ip(), r.destination.port(), 0, index), source)
                }
                None => (r.destination, None),
            };
            out.push(Outgoing { listener, payload: r.payload, destination, source, peer: None });
        }
        out
    }

    /// The answer to a control request, and the lease changes it made.
    pub fn answer(
        &mut self,
        request: Request,
        relaying: Option<&mut Relaying>,
        xdp: Option<&XdpProgram>,
        now: u64,
    ) -> (Answer, Vec<LeaseChange>) {
        // The drops borrow the driver's fields, the answer the server.
        let Serve { server, dropped, shed, storm, sender, renewal, database, .. } = self;
        let drops = drops(dropped, shed, storm, sender, renewal, database);
        control_socket::answer(server, relaying, request, xdp, &drops, now)
    }

    /// What the driver counted around the engine, for `show statistics` and metrics.
    pub fn drops(&self) -> Drops<'_> {
        drops(&self.dropped, &self.shed, &self.storm, &self.sender, &self.renewal, &self.database)
    }

    /// Makes what was handed over durable and sends its replies; stops shedding in XDP.
    pub fn finish(&mut self) {
        self.committer.finish();
        if let Some(Err(e)) = self.shed.as_ref().map(|s| s.stop()) {
            warn!(error = %e, "stopping XDP's shedding failed (it lapses by itself)");
        }
    }
}
