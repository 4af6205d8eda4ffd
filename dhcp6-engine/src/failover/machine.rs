//! The failover endpoint: the connection handshake (RFC 8156 section 6), the state machine
//! (section 8) and the flow of binding updates (section 7) between them.

use super::{
    binding::LazyUpdates,
    message::{BindingResult, FailoverStatus, Msg, ServerFlags, PROTOCOL_VERSION},
    state::{AllocateFrom, History, Persisted, Role, Service, State},
    Action, CloseReason, Event, FailoverConfig, FailoverError, UNREACHABLE_KEEPALIVES,
};

/// Where the connection with the partner stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    Down,
    /// Secondary: TCP is up, CONNECT not yet received.
    AwaitingConnect {
        since: u64,
    },
    /// Primary: CONNECT sent, CONNECTREPLY not yet received.
    AwaitingReply {
        since: u64,
    },
    /// Handshake done: STATE, binding updates and keepalives flow.
    Up {
        partner_keepalive: u32,
    },
}

/// An update request from the partner being answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answering {
    /// The driver has queued every binding asked for.
    queued: bool,
}

/// One end of a failover relationship. See the module documentation for the driver's part.
#[derive(Debug)]
pub struct Failover {
    config: FailoverConfig,
    state: State,
    /// When `state` was entered (for STARTUP: when the state before it was).
    since: u64,
    /// In STARTUP: the state held before the restart, which STARTUP returns to.
    previous: State,
    /// When STARTUP gives up waiting for the partner.
    startup_until: u64,
    /// In PARTNER-DOWN: since when the partner is held down.
    partner_down_time: Option<u64>,
    /// In RECOVER and RECOVER-WAIT: when RECOVER-DONE may be entered (RECOVER's start plus
    /// the MCLT: whatever this server gave before it lost its bindings has ended by then).
    recover_done_at: Option<u64>,
    partner_state: Option<State>,
    partner_in_startup: bool,
    conn: Conn,
    last_received: u64,
    last_sent: u64,
    updates: LazyUpdates,
    answering: Option<Answering>,
    /// This server sent UPDREQ or UPDREQALL and waits for UPDDONE.
    awaiting_done: bool,
    /// Bindings changed before the restart may not have reached the partner: ask the driver
    /// to resend them on the first connection.
    resend_after_start: bool,
    /// The server held no binding and served no client before this RECOVER
    /// ([`History::NeverServed`]): it need not wait the MCLT when its partner is recovering
    /// too.
    never_served: bool,
}

impl Failover {
    /// The endpoint after a start at `now`, from what the state file held (`None` when there
    /// is none: a first start, lost storage, or a server that served on its own until now).
    /// It begins in STARTUP (RFC 8156 section 8.3) and returns to the state it held before.
    /// With no state file, `history` ([`History::at_start`] decides it from the state file
    /// and the lease store) says where to: a server with leases knows its bindings and goes
    /// to COMMUNICATIONS-INTERRUPTED, sending them all once connected; one without goes to
    /// RECOVER to learn them from its partner first, and waits the MCLT after that unless it
    /// never served and its partner is recovering too (a new pair serves as soon as it has
    /// met).
    pub fn new(
        config: FailoverConfig,
        persisted: Option<Persisted>,
        history: History,
        now: u64,
    ) -> Result<Failover, FailoverError> {
        for (value, name) in
            [(config.mclt, "mclt"), (config.keepalive, "keepalive"), (config.max_unacked_bndupd, "max-unacked-bndupd")]
        {
            if value == 0 {
                return Err(FailoverError::Zero(name));
            }
        }
        let (previous, since, partner_state, partner_down_time, recover_done_at) = match persisted {
            Some(p) if p.state != State::Startup => {
                (p.state, p.since, p.partner_state, p.partner_down_time, p.recover_done_at)
            }
            // Served alone until now, every binding it gave in its store: as if it had lost
            // its partner.
            _ if history == History::Standalone => (State::CommunicationsInterrupted, now, None, None, None),
            _ => (State::Recover, now, None, None, None),
        };
        let recover_done_at = match previous {
            State::Recover | State::RecoverWait => Some(recover_done_at.unwrap_or(since + u64::from(config.mclt))),
            _ => None,
        };
        let updates = LazyUpdates::new(config.mclt, config.max_unacked_bndupd);
        let startup_until = now + u64::from(config.keepalive * UNREACHABLE_KEEPALIVES);
        Ok(Failover {
            config,
            state: State::Startup,
            since,
            previous,
            startup_until,
            partner_down_time,
            recover_done_at,
            partner_state,
            partner_in_startup: false,
            conn: Conn::Down,
            last_received: now,
            last_sent: now,
            updates,
            answering: None,
            awaiting_done: false,
            resend_after_start: true,
            never_served: history == History::NeverServed,
        })
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn role(&self) -> Role {
        self.config.role
    }

    pub fn config(&self) -> &FailoverConfig {
        &self.config
    }

    /// The partner's last announced state, if any.
    pub fn partner_state(&self) -> Option<State> {
        self.partner_state
    }

    /// Whether the handshake is done and messages flow.
    pub fn is_connected(&self) -> bool {
        matches!(self.conn, Conn::Up { .. })
    }

    /// The lazy update bookkeeping: [`LazyUpdates::lifetime_cap`] is what bounds every
    /// lifetime a client is told.
    pub fn updates(&self) -> &LazyUpdates {
        &self.updates
    }

    /// What this state lets the server do for clients at `now` (the table is on
    /// [`Service`]).
    pub fn service(&self, now: u64) -> Service {
        match (self.state, self.config.role) {
            (State::Startup | State::PotentialConflict | State::Recover | State::RecoverWait, _) => Service::SILENT,
            (State::Normal | State::ConflictDone, Role::Primary) => Service::full(AllocateFrom::OwnShare),
            (State::Normal | State::ConflictDone, Role::Secondary) => Service::SILENT,
            (State::CommunicationsInterrupted | State::ResolutionInterrupted, _) => {
                Service::full(AllocateFrom::OwnShare)
            }
            (State::PartnerDown, _) => {
                let down = self.partner_down_time.unwrap_or(self.since);
                if now >= down + u64::from(self.config.mclt) {
                    Service::full(AllocateFrom::PartnersShareToo)
                } else {
                    Service::full(AllocateFrom::OwnShare)
                }
            }
            (State::RecoverDone, _) => Service::EXTEND_ONLY,
        }
    }

    /// What the state file must hold now.
    pub fn persisted(&self) -> Persisted {
        let state = if self.state == State::Startup { self.previous } else { self.state };
        Persisted {
            state,
            since: self.since,
            partner_state: self.partner_state,
            partner_down_time: self.partner_down_time,
            recover_done_at: self.recover_done_at,
        }
    }

    /// Handles one event at `now` (Unix seconds), appending what the driver must do to `out`,
    /// in order. Refuses only an operator command the state does not allow; anything the
    /// partner does wrong closes the connection instead.
    pub fn handle(&mut self, event: Event, now: u64, out: &mut Vec<Action>) -> Result<(), FailoverError> {
        match event {
            Event::Connected => {
                // A new connection while the old one still counts as up: the partner came
                // back (restarted, or its side timed out first) before this side noticed the
                // old one die, and the driver took the new one in its place. The old one is
                // lost first, so that the updates it left unanswered go again and its requests
                // end.
                if self.conn != Conn::Down {
                    self.lost(now, out);
                }
                self.connected(now, out)
            }
            Event::ConnectionLost => {
                if self.conn != Conn::Down {
                    self.lost(now, out);
                }
            }
            Event::Received(msg) => self.received(msg, now, out),
            Event::Tick => self.tick(now, out),
            Event::OperatorPartnerDown => match self.state {
                State::CommunicationsInterrupted | State::ResolutionInterrupted => {
                    self.transition(State::PartnerDown, now, out)
                }
                s => return Err(FailoverError::PartnerDownNotAllowed(s)),
            },
            Event::BindingChanged(record) => {
                self.updates.enqueue(record);
                self.flush(now, out);
            }
            Event::BndUpdApplied(applied) => {
                let mut results = Vec::with_capacity(applied.len());
                for (record, status) in applied {
                    if status == FailoverStatus::Success {
                        self.updates.accepted_from_partner(&record);
                    }
                    results.push(BindingResult { key: record.key(), status });
                }
                self.send(Msg::BndReply { sent_time: now, results }, now, out);
            }
            Event::AllUpdatesQueued => {
                if let Some(a) = &mut self.answering {
                    a.queued = true;
                }
                self.flush(now, out);
            }
        }
        Ok(())
    }

    fn connected(&mut self, now: u64, out: &mut Vec<Action>) {
        self.last_received = now;
        match self.config.role {
            Role::Primary => {
                self.conn = Conn::AwaitingReply { since: now };
                let c = &self.config;
                let connect = Msg::Connect {
                    sent_time: now,
                    version: PROTOCOL_VERSION,
                    relationship: c.relationship.clone(),
                    mclt: c.mclt,
                    max_unacked_bndupd: c.max_unacked_bndupd,
                    keepalive: c.keepalive,
                };
                self.send(connect, now, out);
            }
            Role::Secondary => self.conn = Conn::AwaitingConnect { since: now },
        }
    }

    /// Whether the partner's announced settings fit ours; the reason to close if not.
    fn check_partner(
        &self,
        sent_time: u64,
        version: super::message::ProtocolVersion,
        relationship: &Option<String>,
        mclt: u32,
        now: u64,
    ) -> Result<(), (FailoverStatus, CloseReason)> {
        if sent_time.abs_diff(now) > u64::from(self.config.max_time_skew) {
            return Err((FailoverStatus::ExcessiveTimeSkew, CloseReason::TimeSkew));
        }
        if version.major != PROTOCOL_VERSION.major {
            return Err((FailoverStatus::UnspecFail, CloseReason::VersionMismatch));
        }
        if mclt != self.config.mclt || *relationship != self.config.relationship {
            return Err((FailoverStatus::ConfigurationConflict, CloseReason::ConfigurationConflict));
        }
        Ok(())
    }

    fn received(&mut self, msg: Msg, now: u64, out: &mut Vec<Action>) {
        if self.conn == Conn::Down {
            return;
        }
        self.last_received = now;
        match (self.conn, msg) {
            (_, Msg::Disconnect { status, .. }) => self.close(CloseReason::PartnerDisconnected(status), now, out),
            (
                Conn::AwaitingConnect { .. },
                Msg::Connect { sent_time, version, relationship, mclt, max_unacked_bndupd, keepalive },
            ) => {
                let c = &self.config;
                let reply = |status| Msg::ConnectReply {
                    sent_time: now,
                    status,
                    version: PROTOCOL_VERSION,
                    relationship: c.relationship.clone(),
                    mclt: c.mclt,
                    max_unacked_bndupd: c.max_unacked_bndupd,
                    keepalive: c.keepalive,
                };
                match self.check_partner(sent_time, version, &relationship, mclt, now) {
                    Ok(()) => {
                        let ok = reply(FailoverStatus::Success);
                        self.send(ok, now, out);
                        self.established(max_unacked_bndupd, keepalive, now, out);
                    }
                    Err((status, reason)) => {
                        let no = reply(status);
                        self.send(no, now, out);
                        self.close(reason, now, out);
                    }
                }
            }
            (
                Conn::AwaitingReply { .. },
                Msg::ConnectReply { sent_time, status, version, relationship, mclt, max_unacked_bndupd, keepalive },
            ) => {
                if status != FailoverStatus::Success {
                    return self.close(CloseReason::Refused(status), now, out);
                }
                match self.check_partner(sent_time, version, &relationship, mclt, now) {
                    Ok(()) => self.established(max_unacked_bndupd, keepalive, now, out),
                    Err((status, reason)) => {
                        self.send(Msg::Disconnect { sent_time: now, status }, now, out);
                        self.close(reason, now, out);
                    }
                }
            }
            // Only the primary sends CONNECT: two primaries, or a repeated handshake.
            (Conn::AwaitingReply { .. } | Conn::Up { .. }, Msg::Connect { .. }) => {
                let status = FailoverStatus::ConfigurationConflict;
                let c = &self.config;
                let no = Msg::ConnectReply {
                    sent_time: now,
                    status,
                    version: PROTOCOL_VERSION,
                    relationship: c.relationship.clone(),
                    mclt: c.mclt,
                    max_unacked_bndupd: c.max_unacked_bndupd,
                    keepalive: c.keepalive,
                };
                self.send(no, now, out);
                self.close(CloseReason::ConfigurationConflict, now, out);
            }
            (Conn::Up { .. }, msg) => self.received_up(msg, now, out),
            (_, msg) => self.close(CloseReason::Unexpected(msg.name()), now, out),
        }
    }

    /// The handshake is done: announce our state, and start what the state asks of a
    /// connection (RFC 8156 section 6.3).
    fn established(&mut self, partner_max_unacked: u32, partner_keepalive: u32, now: u64, out: &mut Vec<Action>) {
        self.conn = Conn::Up { partner_keepalive: partner_keepalive.max(1) };
        self.updates.set_window(partner_max_unacked.max(1));
        self.send(self.state_msg(now), now, out);
        if std::mem::take(&mut self.resend_after_start) {
            out.push(Action::ResendUnacked);
        }
        self.request_updates(now, out);
        self.flush(now, out);
    }

    /// Asks the partner for bindings when the state needs them: RECOVER for all of them,
    /// the primary in POTENTIAL-CONFLICT for those it has not acknowledged (section 8.10).
    fn request_updates(&mut self, now: u64, out: &mut Vec<Action>) {
        if !self.is_connected() || self.awaiting_done {
            return;
        }
        let request = match (self.state, self.config.role) {
            (State::Recover, _) => Msg::UpdReqAll { sent_time: now },
            (State::PotentialConflict, Role::Primary) => Msg::UpdReq { sent_time: now },
            (State::PotentialConflict, Role::Secondary)
                if self.partner_state == Some(State::ConflictDone) && !self.partner_in_startup =>
            {
                Msg::UpdReq { sent_time: now }
            }
            _ => return,
        };
        self.awaiting_done = true;
        self.send(request, now, out);
    }

    fn received_up(&mut self, msg: Msg, now: u64, out: &mut Vec<Action>) {
        match msg {
            Msg::State { state, flags, .. } => {
                self.partner_state = Some(state);
                self.partner_in_startup = flags.startup;
                if self.state == State::Startup {
                    self.leave_startup(Some(state), now, out);
                }
                self.react_to_partner(now, out);
            }
            Msg::Contact { .. } => {}
            Msg::BndUpd { bindings, .. } => out.push(Action::ApplyBndUpd(bindings)),
            Msg::BndReply { results, .. } => {
                let rejected = self.updates.on_bndreply(&results);
                if !rejected.is_empty() {
                    out.push(Action::BindingsRejected(rejected));
                }
                self.flush(now, out);
            }
            Msg::UpdReq { .. } => {
                self.answering = Some(Answering { queued: false });
                out.push(Action::ResendUnacked);
            }
            Msg::UpdReqAll { .. } => {
                self.answering = Some(Answering { queued: false });
                out.push(Action::SendAllBindings);
            }
            Msg::UpdDone { .. } => self.update_done(now, out),
            // Prefixes are split like addresses (see `crate::server::Server::pair_up`): there is no FREE-BACKUP
            // to hand over, so the answer follows no BNDUPD.
            Msg::PoolReq { .. } => self.send(Msg::PoolResp { sent_time: now }, now, out),
            Msg::PoolResp { .. } => {}
            Msg::Connect { .. } | Msg::ConnectReply { .. } | Msg::Disconnect { .. } => {
                self.close(CloseReason::Unexpected(msg.name()), now, out)
            }
        }
    }

    /// The partner sent every binding this server asked for.
    fn update_done(&mut self, now: u64, out: &mut Vec<Action>) {
        if !std::mem::take(&mut self.awaiting_done) {
            return;
        }
        match (self.state, self.config.role) {
            (State::Recover, _) => {
                // Nothing given out before, nothing to let run out; but only a partner that is
                // recovering as well shows that this server is new rather than emptied.
                let partner_recovering =
                    matches!(self.partner_state, Some(State::Recover | State::RecoverWait | State::RecoverDone));
                let ready = self.recover_done_at.is_none_or(|t| now >= t) || (self.never_served && partner_recovering);
                let next = if ready { State::RecoverDone } else { State::RecoverWait };
                self.transition(next, now, out);
            }
            (State::PotentialConflict, Role::Primary) => self.transition(State::ConflictDone, now, out),
            (State::PotentialConflict, Role::Secondary) => self.transition(State::Normal, now, out),
            _ => {}
        }
    }

    /// Leaves STARTUP for the state held before, knowing the partner's state when it is
    /// known (RFC 8156 section 8.3): a partner in PARTNER-DOWN has served our clients, so
    /// unless we were in PARTNER-DOWN too (or already recovering from it) we recover.
    fn leave_startup(&mut self, partner: Option<State>, now: u64, out: &mut Vec<Action>) {
        let expected =
            matches!(self.previous, State::PartnerDown | State::Recover | State::RecoverWait | State::RecoverDone);
        let back = if partner == Some(State::PartnerDown) && !expected { State::Recover } else { self.previous };
        let to = if partner.is_none() { comm_lost_of(back) } else { back };
        if to == self.previous {
            // Back to where we were: the state's start time and timers carry on.
            self.enter(to, self.since, now, out);
        } else {
            self.transition(to, now, out);
        }
    }

    /// The transitions a partner's state causes (RFC 8156 sections 8.4 to 8.12).
    fn react_to_partner(&mut self, now: u64, out: &mut Vec<Action>) {
        // A few rounds at most: each reaction moves towards NORMAL or settles.
        for _ in 0..4 {
            let Some(partner) = self.partner_state else { return };
            if self.partner_in_startup || !self.is_connected() {
                return;
            }
            let recovering = matches!(partner, State::Recover | State::RecoverWait);
            let conflicting = matches!(
                partner,
                State::PartnerDown | State::PotentialConflict | State::ResolutionInterrupted | State::ConflictDone
            );
            let to = match self.state {
                State::Normal | State::CommunicationsInterrupted if recovering => State::PartnerDown,
                State::Normal
                    if matches!(
                        partner,
                        State::PartnerDown | State::PotentialConflict | State::ResolutionInterrupted
                    ) =>
                {
                    State::PotentialConflict
                }
                State::CommunicationsInterrupted if conflicting => State::PotentialConflict,
                State::CommunicationsInterrupted => State::Normal,
                State::PartnerDown if partner == State::RecoverDone => State::Normal,
                State::PartnerDown if !recovering => State::PotentialConflict,
                State::PotentialConflict | State::ResolutionInterrupted | State::ConflictDone if recovering => {
                    State::PartnerDown
                }
                State::ResolutionInterrupted => State::PotentialConflict,
                State::ConflictDone if partner == State::Normal => State::Normal,
                State::RecoverDone if matches!(partner, State::Normal | State::RecoverDone) => State::Normal,
                _ => self.state,
            };
            if to == self.state {
                // No move, but the partner's state may still call for an update request.
                self.request_updates(now, out);
                return;
            }
            self.transition(to, now, out);
        }
    }

    /// What losing the partner does to the current state.
    fn comm_lost_transition(&mut self, now: u64, out: &mut Vec<Action>) {
        self.transition(comm_lost_of(self.state), now, out);
    }

    fn tick(&mut self, now: u64, out: &mut Vec<Action>) {
        match self.conn {
            Conn::Up { partner_keepalive } => {
                let limit = u64::from(partner_keepalive) * u64::from(UNREACHABLE_KEEPALIVES);
                if now.saturating_sub(self.last_received) >= limit {
                    self.close(CloseReason::PartnerUnreachable, now, out);
                } else if now.saturating_sub(self.last_sent) >= u64::from(self.config.keepalive) {
                    self.send(Msg::Contact { sent_time: now }, now, out);
                }
            }
            Conn::AwaitingConnect { since } | Conn::AwaitingReply { since } => {
                let limit = u64::from(self.config.keepalive) * u64::from(UNREACHABLE_KEEPALIVES);
                if now.saturating_sub(since) >= limit {
                    self.close(CloseReason::HandshakeTimeout, now, out);
                }
            }
            Conn::Down => {}
        }
        match self.state {
            State::Startup if now >= self.startup_until => {
                let partner = if self.is_connected() { self.partner_state } else { None };
                self.leave_startup(partner, now, out);
                self.react_to_partner(now, out);
            }
            State::CommunicationsInterrupted => {
                if let Some(after) = self.config.auto_partner_down {
                    if now >= self.since + u64::from(after) {
                        self.transition(State::PartnerDown, now, out);
                    }
                }
            }
            State::RecoverWait if self.recover_done_at.is_none_or(|t| now >= t) => {
                self.transition(State::RecoverDone, now, out);
            }
            _ => {}
        }
    }

    /// Closes the connection: the engine's side of it is gone at once.
    fn close(&mut self, reason: CloseReason, now: u64, out: &mut Vec<Action>) {
        out.push(Action::Close(reason));
        self.lost(now, out);
    }

    fn lost(&mut self, now: u64, out: &mut Vec<Action>) {
        let was_up = self.is_connected();
        self.conn = Conn::Down;
        self.updates.connection_lost();
        self.answering = None;
        self.awaiting_done = false;
        self.partner_in_startup = false;
        if was_up && self.state != State::Startup {
            self.comm_lost_transition(now, out);
        }
    }

    /// Moves to `to` at `now`: persist, report, announce; then what entering it starts.
    fn transition(&mut self, to: State, now: u64, out: &mut Vec<Action>) {
        if to != self.state {
            self.enter(to, now, now, out);
        }
    }

    /// Enters `to`, which began at `since`.
    fn enter(&mut self, to: State, since: u64, now: u64, out: &mut Vec<Action>) {
        let from = self.state;
        self.state = to;
        self.since = since;
        match to {
            State::PartnerDown => {
                self.partner_down_time.get_or_insert(since);
            }
            _ => self.partner_down_time = None,
        }
        match to {
            State::Recover => {
                if from != State::Startup || self.recover_done_at.is_none() {
                    self.recover_done_at = Some(since + u64::from(self.config.mclt));
                }
            }
            State::RecoverWait => {}
            _ => self.recover_done_at = None,
        }
        // Past RECOVER the server may serve: a later RECOVER has history to wait for.
        if !matches!(to, State::Startup | State::Recover) {
            self.never_served = false;
        }
        // A new state ends any request that belonged to the old one.
        if from != State::Startup {
            self.awaiting_done = false;
        }
        out.push(Action::Persist(self.persisted()));
        out.push(Action::StateChanged { from, to });
        if self.is_connected() {
            self.send(self.state_msg(now), now, out);
        }
        self.request_updates(now, out);
    }

    /// STATE as this server announces it now; in STARTUP, the state before with the STARTUP
    /// flag.
    fn state_msg(&self, now: u64) -> Msg {
        let p = self.persisted();
        Msg::State {
            sent_time: now,
            state: p.state,
            start_time_of_state: p.since,
            flags: ServerFlags { startup: self.state == State::Startup },
            partner_down_time: p.partner_down_time,
        }
    }

    /// Sends what the window allows of the queued binding updates, and UPDDONE once an
    /// update request is fully answered.
    fn flush(&mut self, now: u64, out: &mut Vec<Action>) {
        if !self.is_connected() {
            return;
        }
        for record in self.updates.take_sendable() {
            self.send(Msg::BndUpd { sent_time: now, bindings: vec![record] }, now, out);
        }
        if self.answering.is_some_and(|a| a.queued) && self.updates.is_idle() {
            self.answering = None;
            self.send(Msg::UpdDone { sent_time: now }, now, out);
        }
    }

    fn send(&mut self, msg: Msg, now: u64, out: &mut Vec<Action>) {
        self.last_sent = now;
        out.push(Action::Send(msg));
    }
}

/// The state a server in `state` moves to when it loses its partner (RFC 8156 sections 8.8,
/// 8.10 and 8.12); the others stay where they are.
fn comm_lost_of(state: State) -> State {
    match state {
        State::Normal | State::ConflictDone => State::CommunicationsInterrupted,
        State::PotentialConflict => State::ResolutionInterrupted,
        s => s,
    }
}
