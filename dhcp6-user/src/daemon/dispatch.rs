//! Where each queued input goes: a datagram to the relay (from its access interfaces, and
//! Relay-Replies) or to the server, a tagged client's frame to the relay, a control request
//! to the control socket's answer.

use tokio::sync::oneshot;

use crate::{
    codec::MessageType,
    control::{Answer, Request},
    relay::RelayOut,
    server::Inbound,
    xdp::XdpProgram,
};

use super::{
    committer::Batch, failover_link, input::now, input::Input, live_trace::Tracing, relaying::Relaying,
    sender::Outgoing, serve::Serve, socket, socket::Role,
};
use crate::trace::{daemon_event, Direction};

/// What a batch of inputs gave.
pub struct Handled {
    /// Relayed datagrams, to send now.
    pub relayed: Vec<Outgoing>,
    /// What goes down to tagged clients, as frames.
    pub frames: Vec<RelayOut>,
    /// The server's lease changes and the replies and control answers that wait for them to
    /// be durable.
    pub batch: Batch,
    /// What the failover partner's link said, for the failover piece.
    pub failover: Vec<failover_link::LinkEvent>,
    /// Control requests for the failover piece.
    pub failover_requests: Vec<(Request, oneshot::Sender<Answer>)>,
    /// `dhcp6d reload`s, for the driver once the batch is handed over: the inputs before
    /// them are served by the running configuration.
    pub reloads: Vec<oneshot::Sender<Answer>>,
    /// Scrapes of the metrics endpoint (and whether each wants the pools' counts), answered
    /// once the batch is handled.
    pub metrics: Vec<(bool, oneshot::Sender<Box<crate::metrics::Snapshot>>)>,
}

/// Handles a batch: every input through its engine.
pub fn handle_batch(
    serve: &mut Serve,
    mut relaying: Option<&mut Relaying>,
    inputs: impl Iterator<Item = Input>,
    xdp: Option<&XdpProgram>,
    tracing: &mut Tracing,
) -> Handled {
    let now = now();
    // Traces cost nothing while nobody traces: no event is built.
    let traced = tracing.on();
    let time = match traced {
        true => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
        false => 0.0,
    };
    let mut events = Vec::new();
    let mut subscribed = Vec::new();
    let mut trace = |interface: Option<&str>, mac: Option<[u8; 6]>, direction, what: String, payload: &[u8]| {
        if traced {
            events.push(daemon_event(time, interface.map(str::to_string), mac, direction, what, payload));
        }
    };
    let mut handled = Handled {
        relayed: Vec::new(),
        frames: Vec::new(),
        batch: Batch::default(),
        failover: Vec::new(),
        failover_requests: Vec::new(),
        reloads: Vec::new(),
        metrics: Vec::new(),
    };
    for input in inputs {
        match input {
            Input::Datagram { listener, from, to, payload, peer } => {
                let Some(l) = serve.listeners.get(listener) else { continue };
                let role = l.role;
                let mac = peer.as_ref().map(|p| p.mac);
                let is_relay_reply = payload.first() == Some(&(MessageType::RelayRepl as u8));
                // The relay takes what comes on its access interfaces, and Relay-Replies.
                if let Some(r) = relaying.as_deref_mut() {
                    let taken = match role {
                        Role::RelayAccess(access) if !r.relays(access) => {
                            r.left_to_master();
                            trace(
                                l.interface.as_deref(),
                                mac,
                                Direction::In,
                                "left to the standby master".into(),
                                &payload,
                            );
                            continue;
                        }
                        Role::RelayAccess(access) => {
                            // One Relay-Forward, or one per server of a group that sends to all.
                            let outs = r.relay.from_client(access, &payload, from, None, now);
                            let what = relayed_up(outs.len());
                            trace(l.interface.as_deref(), mac, Direction::In, what, &payload);
                            for out in outs {
                                r.route(out, &mut handled.relayed, &mut handled.frames);
                            }
                            true
                        }
                        Role::Unicast if is_relay_reply => {
                            let out = r.relay.from_server(&payload, from, now);
                            let what = match out {
                                Some(_) => "relayed down to the client by dhcp6d",
                                None => "not relayed down: dropped by the relay (see show relay servers)",
                            };
                            trace(l.interface.as_deref(), None, Direction::In, what.into(), &payload);
                            if let Some(out) = out {
                                r.route(out, &mut handled.relayed, &mut handled.frames);
                            }
                            true
                        }
                        _ => false,
                    };
                    if taken {
                        continue;
                    }
                }
                // The unicast listener learns the interface from a link-local sender's scope;
                // global senders (relays) have none, and need no lookup.
                let by_scope = match l.interface {
                    None if from.scope_id() != 0 => socket::if_name(from.scope_id()),
                    _ => None,
                };
                let interface = l.interface.as_deref().or(by_scope.as_deref());
                let outcome = serve.server.handle(&Inbound { payload: &payload, source: from, interface, now });
                if traced {
                    let what = match (&outcome.reply, outcome.dropped) {
                        (Some(_), _) => "answered by dhcp6d".to_string(),
                        (None, Some(reason)) => format!("dropped by dhcp6d: {}", reason.name()),
                        (None, None) => "taken by dhcp6d, no answer due".to_string(),
                    };
                    trace(interface, mac, Direction::In, what, &payload);
                    if let Some(reply) = &outcome.reply {
                        let what = match outcome.changes.is_empty() {
                            true => "sent by dhcp6d",
                            false => "sent by dhcp6d once its leases are on disk",
                        };
                        trace(interface, mac, Direction::Out, what.into(), &reply.payload);
                    }
                }
                let first = handled.batch.changes.len();
                handled.batch.changes.extend(outcome.changes);
                let announced = first..handled.batch.changes.len();
                if let Some(reply) = outcome.reply {
                    handled.batch.announces.push(announced);
                    // Answers to unicast leave from the address they came to.
                    let source = to.filter(|a| !a.is_multicast() && (role == Role::Unicast || peer.is_some()));
                    handled.batch.replies.push(Outgoing {
                        listener,
                        payload: reply.payload,
                        destination: reply.destination,
                        source,
                        peer,
                    });
                }
            }
            Input::Frame { access, from, mac, payload } => {
                if let Some(r) = relaying.as_deref_mut() {
                    // Named for the trace only: no string per frame while nobody traces.
                    let interface =
                        traced.then(|| r.relay.config().interfaces.get(access).map(|i| i.name.clone())).flatten();
                    if !r.relays(access) {
                        r.left_to_master();
                        trace(
                            interface.as_deref(),
                            Some(mac),
                            Direction::In,
                            "left to the standby master".into(),
                            &payload,
                        );
                        continue;
                    }
                    let outs = r.relay.from_client(access, &payload, from, Some(mac), now);
                    trace(interface.as_deref(), Some(mac), Direction::In, relayed_up(outs.len()), &payload);
                    for out in outs {
                        r.route(out, &mut handled.relayed, &mut handled.frames);
                    }
                }
            }
            Input::Control { request: request @ (Request::Failover | Request::FailoverPartnerDown), answer } => {
                handled.failover_requests.push((request, answer));
            }
            Input::Control { request: Request::Reload, answer } => handled.reloads.push(answer),
            Input::Standby(input) => {
                if let Some(r) = relaying.as_deref_mut() {
                    r.standby_input(input);
                }
            }
            Input::Control { request, answer } => {
                let (value, changes) = serve.answer(request, relaying.as_deref_mut(), xdp, now);
                handled.batch.changes.extend(changes);
                // Control answers, like replies, go out once what they announce is durable.
                handled.batch.answers.push((answer, value));
            }
            Input::Failover(event) => handled.failover.push(event),
            Input::Trace { filter, events } => subscribed.push((filter, events)),
            Input::Metrics { pools, answer } => handled.metrics.push((pools, answer)),
            Input::Leasequery { payload, requestor, answer } => {
                let _ = answer.send(serve.server.bulk_leasequery(&payload, &requestor, now));
            }
            Input::Rebuilt { server, answer } => {
                if let Some(r) = relaying.as_deref_mut() {
                    r.rebuilt(server, answer);
                }
            }
            Input::Learnt(changes) => serve.learn(changes),
        }
    }
    for e in events {
        tracing.emit(e);
    }
    for (filter, events) in subscribed {
        tracing.subscribe(filter, events);
    }
    handled
}

/// What the relay did with a client's message, for the trace.
fn relayed_up(forwards: usize) -> String {
    match forwards {
        0 => "not relayed: dropped by the relay (see show relay servers and show statistics)".into(),
        1 => "relayed up by dhcp6d".into(),
        n => format!("relayed up by dhcp6d to {n} servers"),
    }
}
