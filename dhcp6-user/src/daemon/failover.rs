//! The failover driver piece (RFC 8156): the relationship engine (inside the server engine,
//! whose duties and lifetimes it sets) fed with the partner link's events, the clock and the
//! server's lease changes; its actions carried out: the state file written before a state
//! takes effect, messages encoded and sent, the partner's bindings applied and made durable
//! before they are acknowledged.

use std::{
    path::PathBuf,
    sync::{atomic::Ordering, Arc},
};

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{
    committer::Batch,
    failover_link::{self, LinkCounts, LinkEvent, Side},
    input::Input,
    serve::Serve,
    state_file,
};
use crate::{
    config::{FailoverRole, FailoverSettings},
    control::FailoverAnswer,
    failover::{
        binding::LocalBinding, partner_lifetime_to_send, receive_bndupd, wire, Action, BindingRecord, BindingStatus,
        Event, Failover, FailoverConfig, FailoverStatus, History, Msg, Persisted, Role,
    },
    server::{Lease, LeaseChange, LeaseState, Server},
    tls::PinnedTls,
};

/// The state file in the state directory.
pub const STATE_FILE: &str = "failover.state";

/// The relationship's driver state: the link, the state file, counters.
pub struct Partnership {
    settings: FailoverSettings,
    state_dir: PathBuf,
    /// The connection messages go to, while one is up.
    link: Option<(u64, mpsc::UnboundedSender<Vec<u8>>)>,
    counts: Arc<LinkCounts>,
    tls: Option<PinnedTls>,
    transaction_id: u32,
    /// Transaction ids of the partner's requests not yet answered, oldest first, per the
    /// reply that answers them: a reply carries its request's id (RFC 8156 section 5.2).
    request_ids: [std::collections::VecDeque<u32>; 4],
    /// Bindings sent to the partner, and received from it (applied or not).
    pub bindings_sent: u64,
    pub bindings_received: u64,
    pub bindings_rejected: u64,
    /// Unix seconds of the last message from the partner.
    pub last_contact: Option<u64>,
    /// Messages from the partner that did not decode.
    pub malformed: u64,
    /// Why the daemon must stop: the state file could not be written.
    pub fatal: Option<String>,
}

impl Partnership {
    /// Reads the state file and makes `server` one of the pair (before XDP's entries are
    /// written: they follow the state's duties).
    pub fn new(settings: FailoverSettings, state_dir: PathBuf, server: &mut Server, now: u64) -> Result<Partnership> {
        let path = state_dir.join(STATE_FILE);
        let persisted = match std::fs::read(&path) {
            Ok(bytes) => Some(
                Persisted::decode(&bytes).with_context(|| format!("reading the failover state {}", path.display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading the failover state {}", path.display())),
        };
        let config = FailoverConfig {
            role: match settings.role {
                FailoverRole::Primary => Role::Primary,
                FailoverRole::Secondary => Role::Secondary,
            },
            mclt: settings.mclt,
            keepalive: settings.keepalive,
            auto_partner_down: settings.auto_partner_down,
            max_unacked_bndupd: settings.max_unacked_updates,
            ..FailoverConfig::default()
        };
        let history = History::at_start(persisted.as_ref(), server.lease_count());
        let engine = Failover::new(config, persisted, history, now).context("starting failover")?;
        info!(role = ?engine.role(), state = %engine.state(), "failover");
        let tls = match &settings.tls {
            Some(files) => Some(PinnedTls::load(files).context("setting up TLS for the failover partner")?),
            None => None,
        };
        server.pair_with(engine, now);
        Ok(Partnership {
            tls,
            settings,
            state_dir,
            link: None,
            counts: Arc::new(LinkCounts::default()),
            transaction_id: 0,
            request_ids: Default::default(),
            bindings_sent: 0,
            bindings_received: 0,
            bindings_rejected: 0,
            last_contact: None,
            malformed: 0,
            fatal: None,
        })
    }

    /// Starts the link: connects to the partner, or listens for it. Its events go to `queue`.
    pub fn connect(&self, queue: mpsc::Sender<Input>) -> Result<()> {
        let (local, partner) = (self.settings.local, self.settings.partner);
        let side = match self.settings.role {
            FailoverRole::Primary => Side::Connect { local, partner },
            FailoverRole::Secondary => Side::Listen { local, partner },
        };
        failover_link::spawn(side, self.tls.clone(), queue, self.counts.clone())
            .with_context(|| format!("listening for the failover partner on {local}"))
    }

    /// What the link said in a batch.
    pub fn link_events(&mut self, serve: &mut Serve, events: Vec<LinkEvent>, now: u64) {
        // Bindings the partner acknowledged: XDP may answer them longer (the MCLT cap).
        let mut acked = Vec::new();
        for event in events {
            let event = match event {
                LinkEvent::Up { connection, out } => {
                    self.link = Some((connection, out));
                    self.request_ids.iter_mut().for_each(std::collections::VecDeque::clear);
                    Event::Connected
                }
                LinkEvent::Down { connection, why } => {
                    if self.link.as_ref().map(|l| l.0) != Some(connection) {
                        continue;
                    }
                    info!(why = %why, "the failover connection is down");
                    self.link = None;
                    Event::ConnectionLost
                }
                LinkEvent::Message { connection, bytes } => {
                    if self.link.as_ref().map(|l| l.0) != Some(connection) {
                        continue;
                    }
                    match wire::decode(&bytes) {
                        Ok((msg, id)) => {
                            self.last_contact = Some(now);
                            if let Some(k) = request_kind(&msg) {
                                // A partner that never waits for answers cannot grow this.
                                if self.request_ids[k].len() < 65_536 {
                                    self.request_ids[k].push_back(id);
                                }
                            }
                            match &msg {
                                Msg::BndUpd { bindings, .. } => self.bindings_received += bindings.len() as u64,
                                Msg::BndReply { results, .. } => acked.extend(
                                    results
                                        .iter()
                                        .filter(|r| r.status == FailoverStatus::Success)
                                        .map(|r| r.key.resource),
                                ),
                                _ => {}
                            }
                            Event::Received(msg)
                        }
                        Err(e) => {
                            self.malformed += 1;
                            warn!(error = %e, "a malformed failover message: closing the connection");
                            self.link = None;
                            Event::ConnectionLost
                        }
                    }
                }
            };
            self.feed(serve, event, now);
        }
        if !acked.is_empty() && serve.renewal.is_some() {
            let leases = acked.iter().filter_map(|r| serve.server.lease_of(r)).collect();
            serve.refresh_fast_path_of(leases);
        }
    }

    /// Once a second.
    pub fn tick(&mut self, serve: &mut Serve, now: u64) {
        self.feed(serve, Event::Tick, now);
        self.refresh_duties(serve, now);
    }

    /// The server changed these leases: the partner learns of them (lazily: the clients were
    /// answered already, or are as the changes become durable).
    pub fn changed(&mut self, serve: &mut Serve, changes: &[LeaseChange], now: u64) {
        for change in changes {
            let LeaseChange::Upsert(lease) = change else { continue };
            if let Some(record) = record_of(lease, now) {
                self.feed(serve, Event::BindingChanged(record), now);
            }
        }
    }

    /// `dhcp6d failover partner-down`.
    pub fn partner_down(&mut self, serve: &mut Serve, now: u64) -> Result<(), String> {
        let mut actions = Vec::new();
        let Some(engine) = serve.server.failover_mut() else { return Err("not in a failover pair".into()) };
        engine.handle(Event::OperatorPartnerDown, now, &mut actions).map_err(|e| e.to_string())?;
        self.carry_out(serve, actions, now);
        Ok(())
    }

    /// For `show failover`.
    pub fn answer(&self, server: &Server, now: u64) -> Option<FailoverAnswer> {
        let f = server.failover()?;
        let p = f.persisted();
        Some(FailoverAnswer {
            role: match f.role() {
                Role::Primary => "primary",
                Role::Secondary => "secondary",
            }
            .to_string(),
            state: f.state().name().to_string(),
            since: p.since,
            partner_state: f.partner_state().map(|s| s.name().to_string()),
            partner: self.settings.partner.to_string(),
            connected: f.is_connected(),
            mclt: f.config().mclt,
            unacked_updates: f.updates().unacked() as u64,
            bindings_sent: self.bindings_sent,
            bindings_received: self.bindings_received,
            bindings_rejected: self.bindings_rejected,
            last_contact: self.last_contact,
            seconds_since_contact: self.last_contact.map(|t| now.saturating_sub(t)),
            refused_connections: self.counts.refused.load(Ordering::Relaxed),
            tls_failed: self.counts.tls_failed.load(Ordering::Relaxed),
            malformed_messages: self.malformed,
        })
    }

    fn feed(&mut self, serve: &mut Serve, event: Event, now: u64) {
        if self.fatal.is_some() {
            return;
        }
        let mut actions = Vec::new();
        let Some(engine) = serve.server.failover_mut() else { return };
        // Only an operator command can be refused, and that goes through `partner_down`.
        let _ = engine.handle(event, now, &mut actions);
        self.carry_out(serve, actions, now);
    }

    /// Carries out `actions` in order; a Persist is durable before anything after it.
    fn carry_out(&mut self, serve: &mut Serve, actions: Vec<Action>, now: u64) {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Persist(p) => {
                    if let Err(e) = state_file::replace(&self.state_dir, STATE_FILE, &p.encode()) {
                        // A state must not take effect unless it would survive a crash (a
                        // restart that forgot PARTNER-DOWN or RECOVER could hand out what the
                        // partner holds): nothing more is done, and the daemon stops.
                        warn!(error = format!("{e:#}"), "the failover state could not be written: stopping");
                        self.link = None;
                        self.fatal = Some(format!("writing the failover state: {e:#}"));
                        serve.server.set_duties(crate::server::Duties::NONE);
                        return;
                    }
                }
                Action::StateChanged { from, to } => {
                    info!(from = %from, to = %to, "failover state");
                    self.refresh_duties(serve, now);
                }
                Action::Send(msg) => self.send(&msg),
                Action::Close(reason) => {
                    info!(reason = ?reason, "closing the failover connection");
                    self.link = None;
                }
                Action::ApplyBndUpd(records) => {
                    let (applied, changes) = apply(&mut serve.server, records, now);
                    self.bindings_rejected +=
                        applied.iter().filter(|(_, s)| *s != FailoverStatus::Success).count() as u64;
                    // The answer leaves once the bindings are durable.
                    let mut answer = Vec::new();
                    if let Some(engine) = serve.server.failover_mut() {
                        let _ = engine.handle(Event::BndUpdApplied(applied), now, &mut answer);
                    }
                    let mut partner = Vec::new();
                    let mut rest = Vec::new();
                    for a in answer {
                        match a {
                            Action::Send(msg) => {
                                let bytes = self.encode(&msg);
                                if let (Some((_, out)), Ok(bytes)) = (&self.link, bytes) {
                                    partner.push((out.clone(), bytes));
                                }
                            }
                            other => rest.push(other),
                        }
                    }
                    serve.submit(Batch { changes, partner, ..Default::default() });
                    for a in rest.into_iter().rev() {
                        queue.push_front(a);
                    }
                }
                Action::ResendUnacked | Action::SendAllBindings => {
                    let leases = serve.server.durable_leases();
                    let mut more = Vec::new();
                    if let Some(engine) = serve.server.failover_mut() {
                        for lease in &leases {
                            if let Some(record) = record_of(lease, now) {
                                let _ = engine.handle(Event::BindingChanged(record), now, &mut more);
                            }
                        }
                        let _ = engine.handle(Event::AllUpdatesQueued, now, &mut more);
                    }
                    for a in more.into_iter().rev() {
                        queue.push_front(a);
                    }
                }
                Action::BindingsRejected(results) => {
                    warn!(count = results.len(), "the failover partner refused binding updates");
                }
            }
        }
    }

    fn encode(&mut self, msg: &Msg) -> Result<Vec<u8>, wire::WireError> {
        let answered = reply_kind(msg).and_then(|k| self.request_ids[k].pop_front());
        let id = answered.unwrap_or_else(|| {
            self.transaction_id = (self.transaction_id + 1) & 0x00ff_ffff;
            self.transaction_id
        });
        wire::encode(msg, id)
    }

    fn send(&mut self, msg: &Msg) {
        if let Msg::BndUpd { bindings, .. } = msg {
            self.bindings_sent += bindings.len() as u64;
        }
        match self.encode(msg) {
            Ok(bytes) => {
                if let Some((_, out)) = &self.link {
                    let _ = out.send(bytes);
                }
            }
            Err(e) => warn!(error = %e, message = msg.name(), "a failover message could not be encoded"),
        }
    }

    /// The duties of the state now; the XDP answers follow them.
    fn refresh_duties(&mut self, serve: &mut Serve, now: u64) {
        if self.fatal.is_none() && serve.server.refresh_duties(now) {
            serve.refresh_fast_path();
        }
    }
}

/// Which queue of request ids a request's id goes to ...
fn request_kind(msg: &Msg) -> Option<usize> {
    match msg {
        Msg::Connect { .. } => Some(0),
        Msg::BndUpd { .. } => Some(1),
        Msg::PoolReq { .. } => Some(2),
        Msg::UpdReq { .. } | Msg::UpdReqAll { .. } => Some(3),
        _ => None,
    }
}

/// ... and which one a reply takes its id from.
fn reply_kind(msg: &Msg) -> Option<usize> {
    match msg {
        Msg::ConnectReply { .. } => Some(0),
        Msg::BndReply { .. } => Some(1),
        Msg::PoolResp { .. } => Some(2),
        Msg::UpdDone { .. } => Some(3),
        _ => None,
    }
}

/// A lease as a binding update: bound leases ACTIVE, expired ones EXPIRED, declined ones
/// ABANDONED until their state ends. Offers are not sent (they are not durable either).
pub fn record_of(lease: &Lease, now: u64) -> Option<BindingRecord> {
    let (status, state_expiration_time) = match lease.state {
        LeaseState::Bound => (BindingStatus::Active, None),
        LeaseState::Expired => (BindingStatus::Expired, Some(lease.expires)),
        LeaseState::Declined => (BindingStatus::Abandoned, Some(lease.expires)),
        LeaseState::Offered => return None,
    };
    let valid = lease.valid_lifetime;
    Some(BindingRecord {
        duid: lease.duid.clone(),
        ia_type: lease.ia_type,
        iaid: lease.iaid,
        resource: lease.resource,
        status,
        t1: valid / 2,
        t2: valid / 5 * 4,
        preferred_lifetime: lease.preferred_lifetime,
        valid_lifetime: valid,
        client_last_transaction: now,
        start_time_of_state: now,
        state_expiration_time,
        partner_lifetime: (status == BindingStatus::Active).then(|| partner_lifetime_to_send(now, valid)),
        partner_raw_clt: None,
        expiration_time: lease.expires,
    })
}

/// The partner's bindings applied to the server, each with the status to answer; the changes
/// to make durable before the answer leaves.
fn apply(
    server: &mut Server,
    records: Vec<BindingRecord>,
    now: u64,
) -> (Vec<(BindingRecord, FailoverStatus)>, Vec<LeaseChange>) {
    let mut applied = Vec::with_capacity(records.len());
    let mut changes = Vec::new();
    for record in records {
        let Some(subnet) = server.subnet_of(&record.resource, record.ia_type) else {
            applied.push((record, FailoverStatus::ConfigurationConflict));
            continue;
        };
        let local = server.lease_of(&record.resource);
        let local = local.as_ref().map(|lease| LocalBinding { lease, clt: server.last_transaction(lease, now) });
        match receive_bndupd(&record, local, subnet, now) {
            Ok(change) => {
                server.restore(change.clone());
                changes.push(change);
                applied.push((record, FailoverStatus::Success));
            }
            Err(status) => applied.push((record, status)),
        }
    }
    (applied, changes)
}
