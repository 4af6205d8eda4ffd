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
    committer::Batch, failover_link, input::now, input::Input, relaying::Relaying, sender::Outgoing, serve::Serve,
    socket, socket::Role,
};

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
) -> Handled {
    let now = now();
    let mut handled = Handled {
        relayed: Vec::new(),
        frames: Vec::new(),
        batch: Batch::default(),
        failover: Vec::new(),
        failover_requests: Vec::new(),
        metrics: Vec::new(),
    };
    for input in inputs {
        match input {
            Input::Datagram { listener, from, to, payload, peer } => {
                let Some(l) = serve.listeners.get(listener) else { continue };
                let role = l.role;
                let is_relay_reply = payload.first() == Some(&(MessageType::RelayRepl as u8));
                // The relay takes what comes on its access interfaces, and Relay-Replies.
                if let Some(r) = relaying.as_deref_mut() {
                    let taken = match role {
                        Role::RelayAccess(access) if !r.relays(access) => {
                            r.left_to_master();
                            continue;
                        }
                        Role::RelayAccess(access) => {
                            // One Relay-Forward, or one per server of a group that sends to all.
                            for out in r.relay.from_client(access, &payload, from, None, now) {
                                r.route(out, &mut handled.relayed, &mut handled.frames);
                            }
                            true
                        }
                        Role::Unicast if is_relay_reply => {
                            if let Some(out) = r.relay.from_server(&payload, from, now) {
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
                handled.batch.changes.extend(outcome.changes);
                if let Some(reply) = outcome.reply {
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
                    if !r.relays(access) {
                        r.left_to_master();
                        continue;
                    }
                    for out in r.relay.from_client(access, &payload, from, Some(mac), now) {
                        r.route(out, &mut handled.relayed, &mut handled.frames);
                    }
                }
            }
            Input::Control { request: request @ (Request::Failover | Request::FailoverPartnerDown), answer } => {
                handled.failover_requests.push((request, answer));
            }
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
            Input::Metrics { pools, answer } => handled.metrics.push((pools, answer)),
        }
    }
    handled
}
