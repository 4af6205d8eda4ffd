//! Failover state machine tests: one per transition of RFC 8156 section 8 (named after it),
//! the handshake's checks, keepalives and timeouts, the persistence order, the service table,
//! and whole scenarios run by a [`Pair`] of endpoints in virtual time.

use std::collections::VecDeque;

use super::message::{ProtocolVersion, PROTOCOL_VERSION};
use super::wire;
use super::*;
use crate::server::IaType;

/// 2024-01-01T00:00:00Z: failover times on the wire count from 2000.
const T0: u64 = 1_704_067_200;
const MCLT: u32 = 3600;

fn config(role: Role) -> FailoverConfig {
    FailoverConfig { role, mclt: MCLT, keepalive: 10, ..FailoverConfig::default() }
}

/// An endpoint restarted at `T0` that was in `before` since `T0 - 100` (`None`: no state file,
/// and known to have served: storage lost, not a new server).
fn restarted(role: Role, before: Option<State>) -> Failover {
    let persisted = before.map(|s| Persisted::fresh(s, T0 - 100));
    Failover::new(config(role), persisted, History::MayHaveServed, T0).unwrap()
}

/// A brand-new endpoint started at `T0`: no state file, no leases.
fn brand_new(role: Role) -> Failover {
    Failover::new(config(role), None, History::at_start(None, 0), T0).unwrap()
}

/// An endpoint that served on its own until `T0` and now starts as one of a pair: leases, no
/// state file.
fn upgraded(role: Role) -> Failover {
    Failover::new(config(role), None, History::at_start(None, 2), T0).unwrap()
}

fn run(f: &mut Failover, event: Event, now: u64) -> Vec<Action> {
    let mut out = Vec::new();
    f.handle(event, now, &mut out).unwrap();
    out
}

fn sent(actions: &[Action]) -> Vec<&'static str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(m) => Some(m.name()),
            _ => None,
        })
        .collect()
}

fn changes(actions: &[Action]) -> Vec<(State, State)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StateChanged { from, to } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

fn connect_msg(now: u64) -> Msg {
    connect_with(now, PROTOCOL_VERSION, None, MCLT)
}

fn connect_with(now: u64, version: ProtocolVersion, relationship: Option<String>, mclt: u32) -> Msg {
    Msg::Connect { sent_time: now, version, relationship, mclt, max_unacked_bndupd: 100, keepalive: 10 }
}

fn reply_msg(now: u64, status: FailoverStatus) -> Msg {
    Msg::ConnectReply {
        sent_time: now,
        status,
        version: PROTOCOL_VERSION,
        relationship: None,
        mclt: MCLT,
        max_unacked_bndupd: 100,
        keepalive: 10,
    }
}

fn state_msg(state: State, now: u64) -> Msg {
    Msg::State {
        sent_time: now,
        state,
        start_time_of_state: now,
        flags: ServerFlags::default(),
        partner_down_time: None,
    }
}

/// Completes `f`'s handshake with a scripted partner; returns what `f` did.
fn handshake(f: &mut Failover, now: u64) -> Vec<Action> {
    let mut out = run(f, Event::Connected, now);
    let partners = match f.role() {
        Role::Primary => reply_msg(now, FailoverStatus::Success),
        Role::Secondary => connect_msg(now),
    };
    out.extend(run(f, Event::Received(partners), now));
    assert!(f.is_connected());
    out
}

/// Connects `f` to a scripted partner in `partner`, and returns what `f` did on its STATE.
fn meet(f: &mut Failover, partner: State, now: u64) -> Vec<Action> {
    handshake(f, now);
    run(f, Event::Received(state_msg(partner, now)), now)
}

/// An endpoint in `state`, connected to a partner in `partner` (the way there is not tested
/// here but in the transition's own test).
fn in_state(role: Role, state: State, partner: State) -> Failover {
    let mut f = restarted(role, Some(state));
    meet(&mut f, partner, T0);
    assert_eq!(f.state(), state, "set-up");
    f
}

// STARTUP (8.3).

#[test]
fn startup_to_normal_when_partner_is_normal() {
    let mut f = restarted(Role::Primary, Some(State::Normal));
    assert_eq!(f.state(), State::Startup);
    let out = meet(&mut f, State::Normal, T0);
    assert_eq!(changes(&out), vec![(State::Startup, State::Normal)]);
    assert_eq!(f.persisted().since, T0 - 100, "returning to the state before keeps its start");
}

#[test]
fn startup_to_recover_on_first_start() {
    let mut f = restarted(Role::Secondary, None);
    let out = meet(&mut f, State::PartnerDown, T0);
    assert_eq!(changes(&out), vec![(State::Startup, State::Recover)]);
    assert_eq!(sent(&out), vec!["STATE", "UPDREQALL"]);
}

#[test]
fn startup_to_recover_when_partner_is_partner_down() {
    let mut f = restarted(Role::Primary, Some(State::Normal));
    let out = meet(&mut f, State::PartnerDown, T0);
    assert_eq!(changes(&out), vec![(State::Startup, State::Recover)]);
    assert!(sent(&out).contains(&"UPDREQALL"));
}

#[test]
fn startup_to_partner_down_when_it_was_partner_down() {
    let persisted = Persisted { partner_down_time: Some(T0 - 50), ..Persisted::fresh(State::PartnerDown, T0 - 100) };
    let mut f = Failover::new(config(Role::Primary), Some(persisted), History::MayHaveServed, T0).unwrap();
    let out = run(&mut f, Event::Tick, T0 + 30);
    assert_eq!(changes(&out), vec![(State::Startup, State::PartnerDown)]);
    // The MCLT wait counts from the persisted time, across the restart.
    assert_eq!(f.service(T0 - 50 + u64::from(MCLT)).allocate_from, AllocateFrom::PartnersShareToo);
}

#[test]
fn startup_to_communications_interrupted_after_the_wait_when_it_was_normal() {
    let mut f = restarted(Role::Primary, Some(State::Normal));
    assert!(changes(&run(&mut f, Event::Tick, T0 + 29)).is_empty(), "STARTUP waits three keepalives");
    let out = run(&mut f, Event::Tick, T0 + 30);
    assert_eq!(changes(&out), vec![(State::Startup, State::CommunicationsInterrupted)]);
}

#[test]
fn startup_to_resolution_interrupted_after_the_wait_when_it_was_in_potential_conflict() {
    let mut f = restarted(Role::Primary, Some(State::PotentialConflict));
    let out = run(&mut f, Event::Tick, T0 + 30);
    assert_eq!(changes(&out), vec![(State::Startup, State::ResolutionInterrupted)]);
}

#[test]
fn startup_to_recover_after_the_wait_on_first_start() {
    let mut f = restarted(Role::Primary, None);
    let out = run(&mut f, Event::Tick, T0 + 30);
    assert_eq!(changes(&out), vec![(State::Startup, State::Recover)]);
}

#[test]
fn startup_waits_while_the_partner_is_in_startup_too() {
    let mut f = restarted(Role::Primary, Some(State::CommunicationsInterrupted));
    handshake(&mut f, T0);
    let startup = Msg::State {
        sent_time: T0,
        state: State::Normal,
        start_time_of_state: T0,
        flags: ServerFlags { startup: true },
        partner_down_time: None,
    };
    let out = run(&mut f, Event::Received(startup), T0);
    // Back to COMMUNICATIONS-INTERRUPTED, but no reaction to a partner still starting.
    assert_eq!(changes(&out), vec![(State::Startup, State::CommunicationsInterrupted)]);
    let out = run(&mut f, Event::Received(state_msg(State::Normal, T0 + 1)), T0 + 1);
    assert_eq!(changes(&out), vec![(State::CommunicationsInterrupted, State::Normal)]);
}

// NORMAL (8.8).

#[test]
fn normal_to_communications_interrupted_on_connection_lost() {
    let mut f = in_state(Role::Primary, State::Normal, State::Normal);
    let out = run(&mut f, Event::ConnectionLost, T0 + 5);
    assert_eq!(changes(&out), vec![(State::Normal, State::CommunicationsInterrupted)]);
    assert!(sent(&out).is_empty(), "no STATE on a lost connection");
}

#[test]
fn normal_to_communications_interrupted_when_partner_is_unreachable() {
    let mut f = in_state(Role::Secondary, State::Normal, State::Normal);
    let out = run(&mut f, Event::Tick, T0 + 10);
    assert_eq!(sent(&out), vec!["CONTACT"], "a keepalive after 10 s of silence");
    assert!(changes(&run(&mut f, Event::Tick, T0 + 29)).is_empty());
    let out = run(&mut f, Event::Tick, T0 + 30);
    assert_eq!(out[0], Action::Close(CloseReason::PartnerUnreachable));
    assert_eq!(changes(&out), vec![(State::Normal, State::CommunicationsInterrupted)]);
}

#[test]
fn normal_to_partner_down_when_partner_recovers() {
    let mut f = in_state(Role::Primary, State::Normal, State::Normal);
    let out = run(&mut f, Event::Received(state_msg(State::Recover, T0 + 1)), T0 + 1);
    assert_eq!(changes(&out), vec![(State::Normal, State::PartnerDown)]);
}

#[test]
fn normal_to_potential_conflict_when_partner_is_partner_down() {
    let mut f = in_state(Role::Primary, State::Normal, State::Normal);
    let out = run(&mut f, Event::Received(state_msg(State::PartnerDown, T0 + 1)), T0 + 1);
    assert_eq!(changes(&out), vec![(State::Normal, State::PotentialConflict)]);
    assert_eq!(sent(&out), vec!["STATE", "UPDREQ"], "the primary asks first");
}

// COMMUNICATIONS-INTERRUPTED (8.9).

#[test]
fn communications_interrupted_to_normal_when_partner_is_back() {
    for partner in [State::Normal, State::CommunicationsInterrupted, State::RecoverDone] {
        let mut f = restarted(Role::Secondary, Some(State::CommunicationsInterrupted));
        let out = meet(&mut f, partner, T0);
        assert_eq!(
            changes(&out),
            vec![(State::Startup, State::CommunicationsInterrupted), (State::CommunicationsInterrupted, State::Normal)],
            "partner in {partner}"
        );
    }
}

#[test]
fn communications_interrupted_to_partner_down_by_operator() {
    let mut f = restarted(Role::Primary, Some(State::CommunicationsInterrupted));
    run(&mut f, Event::Tick, T0 + 30);
    let out = run(&mut f, Event::OperatorPartnerDown, T0 + 40);
    assert_eq!(changes(&out), vec![(State::CommunicationsInterrupted, State::PartnerDown)]);
    assert_eq!(f.persisted().partner_down_time, Some(T0 + 40));
}

#[test]
fn communications_interrupted_to_partner_down_automatically() {
    let cfg = FailoverConfig { auto_partner_down: Some(600), ..config(Role::Primary) };
    let mut f =
        Failover::new(cfg, Some(Persisted::fresh(State::Normal, T0 - 100)), History::MayHaveServed, T0).unwrap();
    run(&mut f, Event::Tick, T0 + 30);
    assert_eq!(f.state(), State::CommunicationsInterrupted);
    assert!(changes(&run(&mut f, Event::Tick, T0 + 629)).is_empty());
    let out = run(&mut f, Event::Tick, T0 + 630);
    assert_eq!(changes(&out), vec![(State::CommunicationsInterrupted, State::PartnerDown)]);
}

#[test]
fn communications_interrupted_to_partner_down_when_partner_recovers() {
    let mut f = restarted(Role::Primary, Some(State::CommunicationsInterrupted));
    let out = meet(&mut f, State::Recover, T0);
    assert_eq!(changes(&out).last(), Some(&(State::CommunicationsInterrupted, State::PartnerDown)));
}

#[test]
fn communications_interrupted_to_potential_conflict_when_partner_is_partner_down() {
    let mut f = restarted(Role::Secondary, Some(State::CommunicationsInterrupted));
    run(&mut f, Event::Tick, T0 + 30);
    let out = meet(&mut f, State::PartnerDown, T0 + 31);
    assert_eq!(changes(&out), vec![(State::CommunicationsInterrupted, State::PotentialConflict)]);
    assert_eq!(sent(&out), vec!["STATE"], "the secondary waits for the primary's CONFLICT-DONE");
}

// PARTNER-DOWN (8.4).

#[test]
fn partner_down_to_potential_conflict_when_partner_was_up_meanwhile() {
    let mut f = restarted(Role::Primary, Some(State::PartnerDown));
    let out = meet(&mut f, State::CommunicationsInterrupted, T0);
    assert_eq!(
        changes(&out),
        vec![(State::Startup, State::PartnerDown), (State::PartnerDown, State::PotentialConflict)]
    );
}

#[test]
fn partner_down_to_normal_when_partner_is_recover_done() {
    let mut f = restarted(Role::Primary, Some(State::PartnerDown));
    let out = meet(&mut f, State::RecoverDone, T0);
    assert_eq!(changes(&out).last(), Some(&(State::PartnerDown, State::Normal)));
    assert_eq!(f.persisted().partner_down_time, None);
}

#[test]
fn partner_down_stays_and_sends_everything_while_partner_recovers() {
    let mut f = restarted(Role::Primary, Some(State::PartnerDown));
    meet(&mut f, State::Recover, T0);
    assert_eq!(f.state(), State::PartnerDown);
    let out = run(&mut f, Event::Received(Msg::UpdReqAll { sent_time: T0 }), T0);
    assert_eq!(out, vec![Action::SendAllBindings]);
    let out = run(&mut f, Event::BindingChanged(binding("2001:db8::1/128")), T0);
    assert_eq!(sent(&out), vec!["BNDUPD"]);
    assert!(sent(&run(&mut f, Event::AllUpdatesQueued, T0)).is_empty(), "UPDDONE waits for the acks");
    let ack = bndreply(&binding("2001:db8::1/128"), FailoverStatus::Success);
    assert_eq!(sent(&run(&mut f, Event::Received(ack), T0)), vec!["UPDDONE"]);
}

#[test]
fn partner_down_stays_when_the_connection_is_lost() {
    let mut f = restarted(Role::Primary, Some(State::PartnerDown));
    meet(&mut f, State::Recover, T0);
    let out = run(&mut f, Event::ConnectionLost, T0 + 1);
    assert!(changes(&out).is_empty());
    assert_eq!(f.state(), State::PartnerDown);
}

// RECOVER (8.5), RECOVER-WAIT (8.6), RECOVER-DONE (8.7).

#[test]
fn recover_to_recover_wait_on_upddone_within_the_mclt() {
    let mut f = restarted(Role::Secondary, None);
    meet(&mut f, State::PartnerDown, T0);
    let out = run(&mut f, Event::Received(Msg::UpdDone { sent_time: T0 + 60 }), T0 + 60);
    assert_eq!(changes(&out), vec![(State::Recover, State::RecoverWait)]);
    assert_eq!(f.service(T0 + 60), Service::SILENT);
}

#[test]
fn recover_to_recover_done_on_upddone_after_the_mclt() {
    // RECOVER began long ago (a restart in RECOVER keeps its start).
    let persisted = Persisted::fresh(State::Recover, T0 - u64::from(MCLT));
    let mut f = Failover::new(config(Role::Secondary), Some(persisted), History::MayHaveServed, T0).unwrap();
    let out = meet(&mut f, State::PartnerDown, T0);
    assert_eq!(sent(&out), vec!["STATE", "UPDREQALL"]);
    let out = run(&mut f, Event::Received(Msg::UpdDone { sent_time: T0 }), T0);
    assert_eq!(changes(&out), vec![(State::Recover, State::RecoverDone)]);
}

#[test]
fn recover_to_recover_done_on_upddone_when_never_served_and_the_partner_recovers_too() {
    let mut f = brand_new(Role::Secondary);
    meet(&mut f, State::Recover, T0 + 1);
    assert_eq!(f.state(), State::Recover);
    let out = run(&mut f, Event::Received(Msg::UpdDone { sent_time: T0 + 2 }), T0 + 2);
    assert_eq!(changes(&out), vec![(State::Recover, State::RecoverDone)]);
}

#[test]
fn recover_to_recover_wait_when_never_served_but_the_partner_has_been_serving() {
    // Empty and without a state file: brand new, or emptied by a lost disk. A partner in
    // PARTNER-DOWN has been serving, so this may be a server that lost bindings the partner
    // never heard of: it waits the MCLT.
    let mut f = brand_new(Role::Secondary);
    meet(&mut f, State::PartnerDown, T0 + 1);
    let out = run(&mut f, Event::Received(Msg::UpdDone { sent_time: T0 + 2 }), T0 + 2);
    assert_eq!(changes(&out), vec![(State::Recover, State::RecoverWait)]);
    let out = run(&mut f, Event::Tick, T0 + u64::from(MCLT));
    assert_eq!(changes(&out), vec![(State::RecoverWait, State::RecoverDone)]);
}

#[test]
fn a_restart_in_recover_with_nothing_learnt_is_still_never_served() {
    let mut f = brand_new(Role::Secondary);
    run(&mut f, Event::Tick, T0 + 30);
    assert_eq!(f.state(), State::Recover);
    let p = f.persisted();
    assert_eq!(p.recover_done_at, Some(T0 + u64::from(MCLT)));
    // RECOVER serves no client, so with no lease learnt the server has still given nothing
    // out after the restart.
    let history = History::at_start(Some(&p), 0);
    assert_eq!(history, History::NeverServed);
    let mut f = Failover::new(config(Role::Secondary), Some(p), history, T0 + 40).unwrap();
    meet(&mut f, State::Recover, T0 + 40);
    let out = run(&mut f, Event::Received(Msg::UpdDone { sent_time: T0 + 41 }), T0 + 41);
    assert_eq!(changes(&out), vec![(State::Recover, State::RecoverDone)]);
}

#[test]
fn recover_wait_to_recover_done_when_the_mclt_has_passed() {
    let mut f = restarted(Role::Secondary, None);
    meet(&mut f, State::PartnerDown, T0);
    run(&mut f, Event::Received(Msg::UpdDone { sent_time: T0 }), T0);
    assert!(changes(&run(&mut f, Event::Received(Msg::Contact { sent_time: T0 + 5 }), T0 + 5)).is_empty());
    assert!(changes(&run(&mut f, Event::Tick, T0 + u64::from(MCLT) - 1)).is_empty());
    let out = run(&mut f, Event::Tick, T0 + u64::from(MCLT));
    assert_eq!(changes(&out), vec![(State::RecoverWait, State::RecoverDone)]);
}

#[test]
fn recover_wait_keeps_its_deadline_across_a_restart() {
    let persisted = Persisted { recover_done_at: Some(T0 + 500), ..Persisted::fresh(State::RecoverWait, T0 - 100) };
    let mut f = Failover::new(config(Role::Secondary), Some(persisted), History::MayHaveServed, T0).unwrap();
    run(&mut f, Event::Tick, T0 + 30);
    assert_eq!(f.state(), State::RecoverWait);
    let out = run(&mut f, Event::Tick, T0 + 500);
    assert_eq!(changes(&out), vec![(State::RecoverWait, State::RecoverDone)]);
}

#[test]
fn recover_done_to_normal_when_partner_is_normal() {
    let mut f = in_state(Role::Secondary, State::RecoverDone, State::PartnerDown);
    let out = run(&mut f, Event::Received(state_msg(State::Normal, T0 + 1)), T0 + 1);
    assert_eq!(changes(&out), vec![(State::RecoverDone, State::Normal)]);
}

// POTENTIAL-CONFLICT (8.10), CONFLICT-DONE (8.12), RESOLUTION-INTERRUPTED (8.11).

#[test]
fn potential_conflict_to_conflict_done_on_upddone_for_the_primary() {
    let mut f = restarted(Role::Primary, Some(State::PotentialConflict));
    let out = meet(&mut f, State::PotentialConflict, T0);
    assert_eq!(sent(&out), vec!["STATE", "UPDREQ"]);
    let out = run(&mut f, Event::Received(Msg::UpdDone { sent_time: T0 }), T0);
    assert_eq!(changes(&out), vec![(State::PotentialConflict, State::ConflictDone)]);
}

#[test]
fn potential_conflict_to_normal_on_upddone_for_the_secondary() {
    let mut f = in_state(Role::Secondary, State::PotentialConflict, State::PotentialConflict);
    let out = run(&mut f, Event::Received(state_msg(State::ConflictDone, T0 + 1)), T0 + 1);
    assert_eq!(sent(&out), vec!["UPDREQ"], "the secondary's turn");
    let out = run(&mut f, Event::Received(Msg::UpdDone { sent_time: T0 + 2 }), T0 + 2);
    assert_eq!(changes(&out), vec![(State::PotentialConflict, State::Normal)]);
}

#[test]
fn potential_conflict_to_resolution_interrupted_on_connection_lost() {
    let mut f = in_state(Role::Secondary, State::PotentialConflict, State::PotentialConflict);
    let out = run(&mut f, Event::ConnectionLost, T0 + 1);
    assert_eq!(changes(&out), vec![(State::PotentialConflict, State::ResolutionInterrupted)]);
}

#[test]
fn conflict_done_to_normal_when_partner_is_normal() {
    let mut f = in_state(Role::Primary, State::ConflictDone, State::PotentialConflict);
    let out = run(&mut f, Event::Received(state_msg(State::Normal, T0 + 1)), T0 + 1);
    assert_eq!(changes(&out), vec![(State::ConflictDone, State::Normal)]);
}

#[test]
fn conflict_done_to_communications_interrupted_on_connection_lost() {
    let mut f = in_state(Role::Primary, State::ConflictDone, State::PotentialConflict);
    let out = run(&mut f, Event::ConnectionLost, T0 + 1);
    assert_eq!(changes(&out), vec![(State::ConflictDone, State::CommunicationsInterrupted)]);
}

#[test]
fn resolution_interrupted_to_potential_conflict_when_partner_is_back() {
    let mut f = restarted(Role::Primary, Some(State::ResolutionInterrupted));
    let out = meet(&mut f, State::ResolutionInterrupted, T0);
    assert_eq!(changes(&out).last(), Some(&(State::ResolutionInterrupted, State::PotentialConflict)));
    assert!(sent(&out).contains(&"UPDREQ"));
}

#[test]
fn resolution_interrupted_to_partner_down_by_operator() {
    let mut f = restarted(Role::Primary, Some(State::ResolutionInterrupted));
    run(&mut f, Event::Tick, T0 + 30);
    let out = run(&mut f, Event::OperatorPartnerDown, T0 + 31);
    assert_eq!(changes(&out), vec![(State::ResolutionInterrupted, State::PartnerDown)]);
}

#[test]
fn operator_partner_down_is_refused_elsewhere() {
    let mut f = in_state(Role::Primary, State::Normal, State::Normal);
    let mut out = Vec::new();
    assert_eq!(
        f.handle(Event::OperatorPartnerDown, T0, &mut out),
        Err(FailoverError::PartnerDownNotAllowed(State::Normal))
    );
    assert!(out.is_empty());
}

// The handshake (section 6).

#[test]
fn the_primary_sends_connect_and_the_secondary_waits() {
    let mut p = restarted(Role::Primary, Some(State::Normal));
    let out = run(&mut p, Event::Connected, T0);
    assert_eq!(out, vec![Action::Send(connect_msg(T0))]);
    let mut s = restarted(Role::Secondary, Some(State::Normal));
    assert!(run(&mut s, Event::Connected, T0).is_empty());
    let out = run(&mut s, Event::Received(connect_msg(T0)), T0);
    assert_eq!(sent(&out), vec!["CONNECTREPLY", "STATE"]);
    assert_eq!(out[0], Action::Send(reply_msg(T0, FailoverStatus::Success)));
    assert_eq!(out[2], Action::ResendUnacked, "bindings from before the restart");
}

#[test]
fn connect_with_excessive_time_skew_is_refused() {
    let mut s = restarted(Role::Secondary, Some(State::Normal));
    run(&mut s, Event::Connected, T0);
    let out = run(&mut s, Event::Received(connect_msg(T0 - 61)), T0);
    assert!(matches!(&out[0], Action::Send(Msg::ConnectReply { status: FailoverStatus::ExcessiveTimeSkew, .. })));
    assert_eq!(out[1], Action::Close(CloseReason::TimeSkew));
    assert!(!s.is_connected());
    // Within the limit it is fine.
    run(&mut s, Event::Connected, T0);
    run(&mut s, Event::Received(connect_msg(T0 + 60)), T0);
    assert!(s.is_connected());
}

#[test]
fn connectreply_with_excessive_time_skew_is_disconnected() {
    let mut p = restarted(Role::Primary, Some(State::Normal));
    run(&mut p, Event::Connected, T0);
    let out = run(&mut p, Event::Received(reply_msg(T0 + 100, FailoverStatus::Success)), T0);
    assert!(matches!(&out[0], Action::Send(Msg::Disconnect { status: FailoverStatus::ExcessiveTimeSkew, .. })));
    assert_eq!(out[1], Action::Close(CloseReason::TimeSkew));
}

#[test]
fn connect_with_another_mclt_or_relationship_is_a_configuration_conflict() {
    let other_mclt = connect_with(T0, PROTOCOL_VERSION, None, 1800);
    let other_name = connect_with(T0, PROTOCOL_VERSION, Some("other".into()), MCLT);
    for connect in [other_mclt, other_name] {
        let mut s = restarted(Role::Secondary, Some(State::Normal));
        run(&mut s, Event::Connected, T0);
        let out = run(&mut s, Event::Received(connect), T0);
        assert!(matches!(
            &out[0],
            Action::Send(Msg::ConnectReply { status: FailoverStatus::ConfigurationConflict, .. })
        ));
        assert_eq!(out[1], Action::Close(CloseReason::ConfigurationConflict));
    }
}

#[test]
fn connect_with_another_major_version_is_refused() {
    let mut s = restarted(Role::Secondary, Some(State::Normal));
    run(&mut s, Event::Connected, T0);
    let connect = connect_with(T0, ProtocolVersion { major: 2, minor: 0 }, None, MCLT);
    let out = run(&mut s, Event::Received(connect), T0);
    assert_eq!(out[1], Action::Close(CloseReason::VersionMismatch));
}

#[test]
fn connect_to_a_primary_means_two_primaries() {
    let mut p = restarted(Role::Primary, Some(State::Normal));
    run(&mut p, Event::Connected, T0);
    let out = run(&mut p, Event::Received(connect_msg(T0)), T0);
    assert!(matches!(&out[0], Action::Send(Msg::ConnectReply { status: FailoverStatus::ConfigurationConflict, .. })));
    assert_eq!(out[1], Action::Close(CloseReason::ConfigurationConflict));
}

#[test]
fn a_refused_connect_closes() {
    let mut p = restarted(Role::Primary, Some(State::Normal));
    run(&mut p, Event::Connected, T0);
    let out = run(&mut p, Event::Received(reply_msg(T0, FailoverStatus::ConfigurationConflict)), T0);
    assert_eq!(out, vec![Action::Close(CloseReason::Refused(FailoverStatus::ConfigurationConflict))]);
}

#[test]
fn a_handshake_that_never_ends_times_out() {
    let mut p = restarted(Role::Primary, Some(State::Normal));
    run(&mut p, Event::Connected, T0);
    assert!(run(&mut p, Event::Tick, T0 + 29).iter().all(|a| !matches!(a, Action::Close(_))));
    let out = run(&mut p, Event::Tick, T0 + 30);
    assert!(out.contains(&Action::Close(CloseReason::HandshakeTimeout)));
}

#[test]
fn a_message_before_the_handshake_closes() {
    let mut s = restarted(Role::Secondary, Some(State::Normal));
    run(&mut s, Event::Connected, T0);
    let out = run(&mut s, Event::Received(state_msg(State::Normal, T0)), T0);
    assert_eq!(out, vec![Action::Close(CloseReason::Unexpected("STATE"))]);
}

#[test]
fn disconnect_closes_and_interrupts() {
    let mut f = in_state(Role::Primary, State::Normal, State::Normal);
    let bye = Msg::Disconnect { sent_time: T0, status: FailoverStatus::ServerShuttingDown };
    let out = run(&mut f, Event::Received(bye), T0);
    assert_eq!(out[0], Action::Close(CloseReason::PartnerDisconnected(FailoverStatus::ServerShuttingDown)));
    assert_eq!(f.state(), State::CommunicationsInterrupted);
}

#[test]
fn the_state_is_persisted_before_it_is_reported_or_announced() {
    let mut f = in_state(Role::Primary, State::Normal, State::Normal);
    let out = run(&mut f, Event::Received(state_msg(State::Recover, T0 + 1)), T0 + 1);
    let persisted = Persisted {
        partner_state: Some(State::Recover),
        partner_down_time: Some(T0 + 1),
        ..Persisted::fresh(State::PartnerDown, T0 + 1)
    };
    assert_eq!(out[0], Action::Persist(persisted));
    assert_eq!(out[1], Action::StateChanged { from: State::Normal, to: State::PartnerDown });
    assert!(matches!(&out[2], Action::Send(Msg::State { state: State::PartnerDown, .. })));
}

#[test]
fn startup_announces_the_state_before_with_the_startup_flag() {
    let mut f = restarted(Role::Primary, Some(State::PartnerDown));
    let out = handshake(&mut f, T0);
    let announced = out.iter().find_map(|a| match a {
        Action::Send(Msg::State { state, flags, start_time_of_state, .. }) => {
            Some((*state, *flags, *start_time_of_state))
        }
        _ => None,
    });
    assert_eq!(announced, Some((State::PartnerDown, ServerFlags { startup: true }, T0 - 100)));
}

#[test]
fn a_new_connection_replaces_one_still_up_and_resends_what_was_in_flight() {
    let mut f = in_state(Role::Secondary, State::Normal, State::Normal);
    let b = binding("2001:db8::1/128");
    assert_eq!(sent(&run(&mut f, Event::BindingChanged(b), T0 + 1)), vec!["BNDUPD"]);
    // The partner restarted and connects again before this side noticed: no ConnectionLost.
    let out = run(&mut f, Event::Connected, T0 + 2);
    assert_eq!(changes(&out), vec![(State::Normal, State::CommunicationsInterrupted)]);
    let out = run(&mut f, Event::Received(connect_msg(T0 + 2)), T0 + 2);
    assert_eq!(sent(&out), vec!["CONNECTREPLY", "STATE", "BNDUPD"], "the update left unanswered goes again");
    assert_eq!(f.updates().unacked(), 1);
}

#[test]
fn a_pool_request_is_answered_with_nothing_to_hand_over() {
    let mut f = in_state(Role::Primary, State::Normal, State::Normal);
    let out = run(&mut f, Event::Received(Msg::PoolReq { sent_time: T0 }), T0);
    assert_eq!(out, vec![Action::Send(Msg::PoolResp { sent_time: T0 })]);
}

// Binding updates through the endpoint.

fn binding(resource: &str) -> BindingRecord {
    BindingRecord {
        duid: b"client".to_vec(),
        ia_type: IaType::Na,
        iaid: 1,
        resource: resource.parse().unwrap(),
        status: BindingStatus::Active,
        t1: 900,
        t2: 1440,
        preferred_lifetime: 1800,
        valid_lifetime: 3600,
        client_last_transaction: T0,
        start_time_of_state: T0,
        state_expiration_time: None,
        partner_lifetime: Some(partner_lifetime_to_send(T0, 3600)),
        partner_raw_clt: None,
        expiration_time: T0 + 3600,
    }
}

fn bndreply(record: &BindingRecord, status: FailoverStatus) -> Msg {
    Msg::BndReply { sent_time: T0, results: vec![BindingResult { key: record.key(), status }] }
}

#[test]
fn a_binding_change_is_sent_and_its_ack_raises_the_lifetime_cap() {
    let mut f = in_state(Role::Primary, State::Normal, State::Normal);
    let b = binding("2001:db8::1/128");
    assert_eq!(f.updates().lifetime_cap(&b.resource, 7200, T0), MCLT);
    let out = run(&mut f, Event::BindingChanged(b.clone()), T0);
    assert_eq!(out, vec![Action::Send(Msg::BndUpd { sent_time: T0, bindings: vec![b.clone()] })]);
    run(&mut f, Event::Received(bndreply(&b, FailoverStatus::Success)), T0);
    assert_eq!(f.updates().lifetime_cap(&b.resource, 7200, T0), 7200);
}

#[test]
fn binding_changes_wait_for_the_connection() {
    let mut f = restarted(Role::Primary, Some(State::CommunicationsInterrupted));
    run(&mut f, Event::Tick, T0 + 30);
    let b = binding("2001:db8::1/128");
    assert!(run(&mut f, Event::BindingChanged(b.clone()), T0 + 31).is_empty());
    let out = handshake(&mut f, T0 + 40);
    assert!(out.contains(&Action::Send(Msg::BndUpd { sent_time: T0 + 40, bindings: vec![b] })));
}

#[test]
fn a_received_bndupd_is_applied_then_answered() {
    let mut f = in_state(Role::Secondary, State::Normal, State::Normal);
    let b = binding("2001:db8::2/128");
    let out = run(&mut f, Event::Received(Msg::BndUpd { sent_time: T0, bindings: vec![b.clone()] }), T0);
    assert_eq!(out, vec![Action::ApplyBndUpd(vec![b.clone()])]);
    let out = run(&mut f, Event::BndUpdApplied(vec![(b.clone(), FailoverStatus::Success)]), T0);
    assert_eq!(out, vec![Action::Send(bndreply(&b, FailoverStatus::Success))]);
    assert_eq!(f.updates().acked_partner_expiry(&b.resource), Some(T0 + 3600));
}

#[test]
fn rejected_updates_are_reported() {
    let mut f = in_state(Role::Primary, State::Normal, State::Normal);
    let b = binding("2001:db8::1/128");
    run(&mut f, Event::BindingChanged(b.clone()), T0);
    let out = run(&mut f, Event::Received(bndreply(&b, FailoverStatus::AddressInUse)), T0);
    assert_eq!(
        out,
        vec![Action::BindingsRejected(vec![BindingResult { key: b.key(), status: FailoverStatus::AddressInUse }])]
    );
}

#[test]
fn updreq_is_answered_with_the_unacked_then_upddone() {
    let mut f = in_state(Role::Secondary, State::PotentialConflict, State::ConflictDone);
    let out = run(&mut f, Event::Received(Msg::UpdReq { sent_time: T0 }), T0);
    assert_eq!(out, vec![Action::ResendUnacked]);
    assert_eq!(sent(&run(&mut f, Event::AllUpdatesQueued, T0)), vec!["UPDDONE"], "nothing unacked");
}

// The service table (see `Service`).

#[test]
fn service_in_normal_is_the_primarys_alone() {
    let p = in_state(Role::Primary, State::Normal, State::Normal);
    assert_eq!(p.service(T0), Service::full(AllocateFrom::OwnShare));
    let s = in_state(Role::Secondary, State::Normal, State::Normal);
    assert_eq!(s.service(T0), Service::SILENT, "not even Rebind");
}

#[test]
fn service_in_communications_interrupted_is_both_from_their_own_share() {
    for role in [Role::Primary, Role::Secondary] {
        let mut f = restarted(role, Some(State::CommunicationsInterrupted));
        run(&mut f, Event::Tick, T0 + 30);
        assert_eq!(f.service(T0 + 30), Service::full(AllocateFrom::OwnShare));
    }
}

#[test]
fn service_in_partner_down_takes_the_partners_share_after_the_mclt() {
    let mut f = restarted(Role::Secondary, Some(State::CommunicationsInterrupted));
    run(&mut f, Event::Tick, T0 + 30);
    run(&mut f, Event::OperatorPartnerDown, T0 + 100);
    assert_eq!(f.service(T0 + 100 + u64::from(MCLT) - 1).allocate_from, AllocateFrom::OwnShare);
    assert_eq!(f.service(T0 + 100 + u64::from(MCLT)).allocate_from, AllocateFrom::PartnersShareToo);
}

#[test]
fn service_is_silent_while_starting_resolving_or_recovering() {
    let f = restarted(Role::Primary, Some(State::Normal));
    assert_eq!(f.service(T0), Service::SILENT);
    for state in [State::Recover, State::RecoverWait] {
        let mut f = restarted(Role::Primary, Some(state));
        run(&mut f, Event::Tick, T0 + 30);
        assert_eq!(f.service(T0 + 30), Service::SILENT, "{state}");
    }
    let f = in_state(Role::Secondary, State::PotentialConflict, State::PotentialConflict);
    assert_eq!(f.service(T0), Service::SILENT);
    let f = in_state(Role::Primary, State::RecoverDone, State::PartnerDown);
    assert_eq!(f.service(T0), Service::EXTEND_ONLY);
    let f = in_state(Role::Primary, State::ConflictDone, State::PotentialConflict);
    assert_eq!(f.service(T0), Service::full(AllocateFrom::OwnShare));
}

#[test]
fn config_defaults_and_checks() {
    let c: FailoverConfig = serde_json::from_str(r#"{"role": "secondary"}"#).unwrap();
    assert_eq!((c.role, c.mclt, c.max_unacked_bndupd, c.keepalive), (Role::Secondary, 3600, 100, 10));
    assert_eq!((c.auto_partner_down, c.max_time_skew, c.relationship), (None, 60, None));
    assert!(serde_json::from_str::<FailoverConfig>(r#"{"role": "primary", "mclt2": 1}"#).is_err());
    let zero = FailoverConfig { mclt: 0, ..config(Role::Primary) };
    assert_eq!(Failover::new(zero, None, History::NeverServed, T0).unwrap_err(), FailoverError::Zero("mclt"));
}

// Whole scenarios: two endpoints wired together, in virtual time.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Primary,
    Secondary,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Primary => Side::Secondary,
            Side::Secondary => Side::Primary,
        }
    }
}

/// A primary and a secondary whose actions are carried out at once: every message encoded
/// with [`wire::encode`] and decoded with [`wire::decode`] on its way (checked to come out as
/// it went in), updates applied to the receiver's `leases` and accepted, requests for
/// bindings answered with every lease the side holds.
struct Pair {
    primary: Failover,
    secondary: Failover,
    now: u64,
    pending: VecDeque<(Side, Event)>,
    /// Each side's lease store, by `Side as usize`.
    leases: [Vec<BindingRecord>; 2],
    /// Every message that crossed the wire: who sent it, and its name.
    sent: Vec<(Side, &'static str)>,
    next_transaction_id: u32,
    /// The transaction id of the last request each side received, which its reply echoes.
    last_request: [u32; 2],
}

impl Pair {
    /// Two endpoints restarted in these states (see [`restarted`]).
    fn new(primary: Option<State>, secondary: Option<State>) -> Pair {
        Pair::of(restarted(Role::Primary, primary), restarted(Role::Secondary, secondary))
    }

    fn of(primary: Failover, secondary: Failover) -> Pair {
        Pair {
            primary,
            secondary,
            now: T0,
            pending: VecDeque::new(),
            leases: [Vec::new(), Vec::new()],
            sent: Vec::new(),
            next_transaction_id: 0,
            last_request: [0; 2],
        }
    }

    fn side(&mut self, side: Side) -> &mut Failover {
        match side {
            Side::Primary => &mut self.primary,
            Side::Secondary => &mut self.secondary,
        }
    }

    /// Hands `event` to `side` now, and carries out what follows.
    fn event(&mut self, side: Side, event: Event) {
        self.pending.push_back((side, event));
        self.drive();
    }

    /// Encodes `msg` from `from` and decodes it for the other side, as TCP would carry it.
    fn transmit(&mut self, from: Side, msg: Msg) -> Msg {
        let transaction_id = if msg.is_reply() {
            self.last_request[from as usize]
        } else {
            self.next_transaction_id += 1;
            self.next_transaction_id
        };
        let bytes = wire::encode(&msg, transaction_id).unwrap_or_else(|e| panic!("{}: {e}", msg.name()));
        let decoded = wire::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", msg.name()));
        assert_eq!(decoded, (msg.clone(), transaction_id), "{} changed on the wire", msg.name());
        let (msg, transaction_id) = decoded;
        if !msg.is_reply() {
            self.last_request[from.other() as usize] = transaction_id;
        }
        self.sent.push((from, msg.name()));
        msg
    }

    fn states(&self) -> (State, State) {
        (self.primary.state(), self.secondary.state())
    }

    fn connect(&mut self) {
        self.pending.push_back((Side::Secondary, Event::Connected));
        self.pending.push_back((Side::Primary, Event::Connected));
        self.drive();
    }

    fn disconnect(&mut self) {
        self.pending.push_back((Side::Primary, Event::ConnectionLost));
        self.pending.push_back((Side::Secondary, Event::ConnectionLost));
        self.drive();
    }

    /// Advances the clock by `secs`, ticking both every `step` seconds.
    fn wait(&mut self, secs: u64, step: u64) {
        let end = self.now + secs;
        while self.now < end {
            self.now = (self.now + step).min(end);
            self.pending.push_back((Side::Primary, Event::Tick));
            self.pending.push_back((Side::Secondary, Event::Tick));
            self.drive();
        }
    }

    fn drive(&mut self) {
        while let Some((side, event)) = self.pending.pop_front() {
            let now = self.now;
            let mut out = Vec::new();
            self.side(side).handle(event, now, &mut out).unwrap();
            let other = side.other();
            for action in out {
                match action {
                    Action::Send(m) => {
                        let m = self.transmit(side, m);
                        self.pending.push_back((other, Event::Received(m)));
                    }
                    Action::Close(_) => self.pending.push_back((other, Event::ConnectionLost)),
                    Action::ApplyBndUpd(bs) => {
                        let leases = &mut self.leases[side as usize];
                        for b in &bs {
                            leases.retain(|l| l.resource != b.resource);
                            leases.push(b.clone());
                        }
                        let applied = bs.into_iter().map(|b| (b, FailoverStatus::Success)).collect();
                        self.pending.push_back((side, Event::BndUpdApplied(applied)));
                    }
                    Action::ResendUnacked | Action::SendAllBindings => {
                        for b in self.leases[side as usize].clone() {
                            self.pending.push_back((side, Event::BindingChanged(b)));
                        }
                        self.pending.push_back((side, Event::AllUpdatesQueued))
                    }
                    Action::Persist(_) | Action::StateChanged { .. } | Action::BindingsRejected(_) => {}
                }
            }
        }
    }
}

#[test]
fn a_new_pair_is_normal_within_seconds_of_connecting() {
    let mut pair = Pair::of(brand_new(Role::Primary), brand_new(Role::Secondary));
    pair.wait(2, 1);
    pair.connect();
    pair.wait(3, 1);
    assert_eq!(pair.states(), (State::Normal, State::Normal));
    assert!(pair.primary.service(pair.now).answers_clients && !pair.secondary.service(pair.now).answers_clients);
}

#[test]
fn a_new_server_meeting_a_partner_down_partner_recovers_and_waits_the_mclt() {
    let mut pair =
        Pair::of(restarted(Role::Primary, Some(State::CommunicationsInterrupted)), brand_new(Role::Secondary));
    pair.wait(30, 10);
    pair.primary.handle(Event::OperatorPartnerDown, pair.now, &mut Vec::new()).unwrap();
    pair.connect();
    pair.wait(3, 1);
    // It cannot tell a new disk from an emptied one, and the partner serves everyone meanwhile.
    assert_eq!(pair.states(), (State::PartnerDown, State::RecoverWait));
    assert!(pair.primary.service(pair.now).answers_clients);
    pair.wait(u64::from(MCLT), 10);
    assert_eq!(pair.states(), (State::Normal, State::Normal));
}

#[test]
fn a_binding_update_crosses_the_wire_and_its_ack_raises_the_lifetime_cap() {
    let mut pair = Pair::new(Some(State::Normal), Some(State::Normal));
    pair.connect();
    let b = BindingRecord { client_last_transaction: pair.now - 5, ..binding("2001:db8::1/128") };
    assert_eq!(pair.primary.updates().lifetime_cap(&b.resource, 7200, pair.now), MCLT);
    pair.sent.clear();
    pair.event(Side::Primary, Event::BindingChanged(b.clone()));
    assert_eq!(pair.sent, [(Side::Primary, "BNDUPD"), (Side::Secondary, "BNDREPLY")]);
    assert_eq!(pair.leases[Side::Secondary as usize], std::slice::from_ref(&b), "every field crossed the wire");
    assert_eq!(pair.primary.updates().lifetime_cap(&b.resource, 7200, pair.now), 7200);
    assert_eq!(pair.secondary.updates().acked_partner_expiry(&b.resource), Some(b.expiration_time));
}

#[test]
fn a_new_server_learns_its_partners_bindings_over_the_wire() {
    let mut pair =
        Pair::of(restarted(Role::Primary, Some(State::CommunicationsInterrupted)), brand_new(Role::Secondary));
    let prefix = BindingRecord { ia_type: IaType::Pd, iaid: 2, ..binding("2001:db8:9000::/56") };
    pair.leases[Side::Primary as usize] = vec![binding("2001:db8::1/128"), prefix];
    pair.wait(30, 10);
    pair.primary.handle(Event::OperatorPartnerDown, pair.now, &mut Vec::new()).unwrap();
    pair.connect();
    assert_eq!(pair.states(), (State::PartnerDown, State::RecoverWait));
    pair.wait(u64::from(MCLT), 10);
    assert_eq!(pair.states(), (State::Normal, State::Normal));
    let mut learnt = pair.leases[Side::Secondary as usize].clone();
    learnt.sort_by_key(|b| b.resource);
    assert_eq!(learnt, pair.leases[Side::Primary as usize]);
    for m in ["UPDREQALL", "BNDUPD", "BNDREPLY", "UPDDONE"] {
        assert!(pair.sent.iter().any(|(_, sent)| *sent == m), "{m} went over the wire");
    }
}

#[test]
fn a_pair_that_lost_its_storage_recovers_then_waits_the_mclt_then_is_normal() {
    let mut pair = Pair::new(None, None);
    pair.connect();
    pair.wait(30, 10);
    assert_eq!(pair.states(), (State::RecoverWait, State::RecoverWait));
    pair.wait(u64::from(MCLT), 10);
    assert_eq!(pair.states(), (State::Normal, State::Normal));
    assert!(pair.primary.service(pair.now).answers_clients && !pair.secondary.service(pair.now).answers_clients);
}

#[test]
fn a_lost_partner_is_noticed_and_a_return_is_normal_again() {
    let mut pair = Pair::new(Some(State::Normal), Some(State::Normal));
    pair.connect();
    assert_eq!(pair.states(), (State::Normal, State::Normal));
    pair.wait(60, 1);
    assert_eq!(pair.states(), (State::Normal, State::Normal), "CONTACTs keep the connection");
    pair.disconnect();
    assert_eq!(pair.states(), (State::CommunicationsInterrupted, State::CommunicationsInterrupted));
    pair.connect();
    assert_eq!(pair.states(), (State::Normal, State::Normal));
}

#[test]
fn both_partners_down_resolve_the_conflict_primary_first() {
    let mut pair = Pair::new(Some(State::PartnerDown), Some(State::PartnerDown));
    pair.connect();
    assert_eq!(pair.states(), (State::Normal, State::Normal));
}

#[test]
fn a_partner_back_with_lost_storage_recovers_from_partner_down() {
    let mut pair = Pair::new(Some(State::CommunicationsInterrupted), None);
    pair.wait(30, 10);
    pair.primary.handle(Event::OperatorPartnerDown, pair.now, &mut Vec::new()).unwrap();
    pair.connect();
    assert_eq!(pair.states(), (State::PartnerDown, State::RecoverWait));
    pair.wait(u64::from(MCLT), 10);
    assert_eq!(pair.states(), (State::Normal, State::Normal));
}

// Migration (seed 003): servers that served on their own become a pair.

#[test]
fn an_upgraded_server_alone_serves_its_share_as_communications_interrupted() {
    let mut f = upgraded(Role::Secondary);
    assert_eq!(f.state(), State::Startup);
    assert_eq!(f.service(T0), Service::SILENT);
    let out = run(&mut f, Event::Tick, T0 + 30);
    assert_eq!(changes(&out), vec![(State::Startup, State::CommunicationsInterrupted)]);
    assert_eq!(f.service(T0 + 30), Service::full(AllocateFrom::OwnShare));
    // Nothing acknowledged: every lifetime it tells is capped by the MCLT.
    let resource: ipnet::Ipv6Net = "2001:db8:1:0:8000::100/128".parse().unwrap();
    assert_eq!(f.updates().lifetime_cap(&resource, 7200, T0 + 30), MCLT);
}

#[test]
fn an_upgraded_server_meeting_its_partner_is_normal_and_sends_every_binding() {
    let mut f = upgraded(Role::Primary);
    let connected = handshake(&mut f, T0 + 1);
    assert!(connected.contains(&Action::ResendUnacked), "every binding, on connecting");
    assert!(!sent(&connected).contains(&"UPDREQALL"), "nothing to relearn");
    let out = run(&mut f, Event::Received(state_msg(State::CommunicationsInterrupted, T0 + 1)), T0 + 1);
    assert_eq!(
        changes(&out),
        vec![(State::Startup, State::CommunicationsInterrupted), (State::CommunicationsInterrupted, State::Normal)]
    );
}

#[test]
fn two_upgraded_servers_exchange_their_bindings_and_are_normal() {
    let mut pair = Pair::of(upgraded(Role::Primary), upgraded(Role::Secondary));
    let (lower, upper) = (binding("2001:db8:1::100/128"), binding("2001:db8:1:0:8000::100/128"));
    let lower = BindingRecord { duid: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1], ..lower };
    let upper = BindingRecord { duid: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 2], ..upper };
    pair.leases = [vec![lower.clone()], vec![upper.clone()]];
    pair.wait(30, 10);
    assert_eq!(pair.states(), (State::CommunicationsInterrupted, State::CommunicationsInterrupted));
    pair.connect();
    pair.wait(3, 1);
    assert_eq!(pair.states(), (State::Normal, State::Normal));
    for side in [Side::Primary, Side::Secondary] {
        let mut held = pair.leases[side as usize].clone();
        held.sort_by_key(|b| b.resource);
        assert_eq!(held, [lower.clone(), upper.clone()], "{side:?} holds both");
    }
    assert!(!pair.sent.iter().any(|(_, m)| *m == "UPDREQALL"), "nothing to relearn");
}

#[test]
fn an_upgraded_server_meeting_a_new_partner_serves_everyone_while_it_recovers() {
    let mut pair = Pair::of(upgraded(Role::Primary), brand_new(Role::Secondary));
    pair.leases[Side::Primary as usize] = vec![binding("2001:db8:1::100/128")];
    pair.connect();
    pair.wait(3, 1);
    assert_eq!(pair.states(), (State::PartnerDown, State::RecoverWait));
    assert_eq!(pair.leases[Side::Secondary as usize], pair.leases[Side::Primary as usize]);
    pair.wait(u64::from(MCLT), 10);
    assert_eq!(pair.states(), (State::Normal, State::Normal));
}
