//! Sends what the engine answers from a thread of its own, so that the engine's thread goes on
//! with the next batch while the kernel carries this one out (on a veth, a send also runs the
//! receiving side's stack: it was a fifth of the engine thread's time under load).
//!
//! The commit thread hands over a batch of replies only once the store has made what they
//! announce durable; the relay's datagrams come straight from the engine. Replies to clients
//! whose messages came through an AF_XDP socket go back through it as frames ([`xsk`]), a
//! send call per batch of them; datagrams to one socket without a chosen source address go
//! out together in one `sendmmsg`; the others one `sendmsg` each.

use std::{
    io::{self, IoSlice},
    net::{Ipv6Addr, SocketAddrV6},
    os::fd::{AsRawFd, RawFd},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc, Arc,
    },
    time::Instant,
};

use nix::sys::socket::{sendmmsg, MsgFlags, MultiHeaders, SockaddrIn6};
use tracing::warn;

use crate::{
    codec::{option_code, MessageType, OptionIter, Packet},
    counters::Counts,
};

use super::{
    socket::{self, Listener},
    throttle::{repeats, Throttle},
    xsk::{Peer, XskTx},
};

/// Batches waiting for the sender thread; past this the engine waits (backpressure).
const QUEUE: usize = 64;
/// Most datagrams per `sendmmsg`.
const MMSG: usize = 64;
/// How long a send waits for room in a full socket buffer before the datagram is dropped.
const WAIT_MS: i32 = 100;

/// A datagram to send from listener `listener`, from `source` if given (else the kernel picks),
/// as a frame through the AF_XDP socket the client's message came in on if `peer` says so.
pub struct Outgoing {
    pub listener: usize,
    pub payload: Vec<u8>,
    pub destination: SocketAddrV6,
    pub source: Option<Ipv6Addr>,
    pub peer: Option<Peer>,
}

/// Replies counted per message type as they are handed to the sender, once the changes they
/// announce are durable (a reply whose changes the store refused is never sent, nor counted).
/// A Reply relayed back through a relay counts as RELAY-REPL and as the message inside it.
#[derive(Debug, Default)]
pub struct SentCounts([AtomicU64; 18]);

impl SentCounts {
    pub fn count(&self, replies: &[Outgoing]) {
        for r in replies {
            let Some(&first) = r.payload.first() else { continue };
            self.bump(first);
            if first == MessageType::RelayRepl as u8 {
                if let Some(inner) = innermost_type(&r.payload) {
                    self.bump(inner as u8);
                }
            }
        }
    }

    fn bump(&self, msg_type: u8) {
        if let Some(n) = self.0.get(usize::from(msg_type)) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What was counted, by message type.
    pub fn counts(&self) -> Counts<MessageType> {
        let mut counts = Counts::default();
        for t in MessageType::ALL {
            counts.set(t, self.0[t as usize].load(Ordering::Relaxed));
        }
        counts
    }
}

/// The type of the client message inside (possibly nested) Relay-Replies, read in place with
/// the codec's view (this runs for every relayed reply).
fn innermost_type(payload: &[u8]) -> Option<MessageType> {
    let mut bytes = payload;
    loop {
        let packet = Packet::new_checked(bytes).ok()?;
        if packet.msg_type() != MessageType::RelayRepl {
            return Some(packet.msg_type());
        }
        let options = OptionIter::new(bytes.get(packet.header_len()..)?);
        bytes = options.filter_map(Result::ok).find(|o| o.code == option_code::RELAY_MSG)?.data;
    }
}

/// The handle the engine sends through.
#[derive(Clone)]
pub struct Sender {
    queue: mpsc::SyncSender<Vec<Outgoing>>,
    /// Datagrams the kernel refused (counted, and logged at most once a batch).
    pub failed: Arc<AtomicU64>,
    /// The server's replies handed over, by type.
    pub sent: Arc<SentCounts>,
}

impl Sender {
    /// Starts the sender thread for `listeners`' sockets and the sending halves of the AF_XDP
    /// sockets `xsks`.
    pub fn start(listeners: Arc<Vec<Listener>>, mut xsks: Vec<XskTx>) -> io::Result<Sender> {
        let (queue, batches) = mpsc::sync_channel::<Vec<Outgoing>>(QUEUE);
        let failed = Arc::new(AtomicU64::new(0));
        let counter = failed.clone();
        std::thread::Builder::new().name("dhcp6d-send".into()).spawn(move || {
            let mut headers = MultiHeaders::<SockaddrIn6>::preallocate(MMSG, None);
            let mut warnings = SendWarnings::default();
            for batch in batches {
                let refused = send_all(&listeners, &mut xsks, &mut headers, &batch, &mut warnings);
                if refused > 0 {
                    counter.fetch_add(refused, Ordering::Relaxed);
                }
            }
        })?;
        Ok(Sender { queue, failed, sent: Arc::default() })
    }

    /// Hands the server's replies over, counting them by type: their changes are durable, so
    /// they leave now.
    pub fn send_replies(&self, replies: Vec<Outgoing>) {
        self.sent.count(&replies);
        self.send(replies);
    }

    /// Hands a batch over; waits if the sender thread is [`QUEUE`] batches behind.
    pub fn send(&self, batch: Vec<Outgoing>) {
        if batch.is_empty() {
            return;
        }
        if self.queue.send(batch).is_err() {
            warn!("the sender thread is gone: replies are not sent");
        }
    }
}

/// The sender thread's repeated warnings, each said once per window.
#[derive(Default)]
struct SendWarnings {
    frames: Throttle,
    datagrams: Throttle,
}

impl SendWarnings {
    fn failed(&mut self, destination: SocketAddrV6, e: &io::Error) {
        if let Some(more) = self.datagrams.hit(Instant::now()) {
            let also = repeats(more);
            warn!(destination = %destination, error = %e, "sending a reply failed{also}");
        }
    }
}

/// Sends a batch; returns how many datagrams the kernel refused.
fn send_all(
    listeners: &[Listener],
    xsks: &mut [XskTx],
    headers: &mut MultiHeaders<SockaddrIn6>,
    batch: &[Outgoing],
    warnings: &mut SendWarnings,
) -> u64 {
    let mut refused = 0;
    // Frames first, into their transmit rings (the kernel sends them at the flush below);
    // what does not fit, or has no socket, goes by the listener's socket.
    let mut rest = Vec::new();
    for o in batch {
        let framed = match (o.peer, o.peer.and_then(|p| xsks.get_mut(p.xsk))) {
            (Some(peer), Some(xsk)) => xsk.push(peer.mac, o.source, o.destination, &o.payload),
            _ => false,
        };
        if !framed {
            rest.push(o);
        }
    }
    for xsk in xsks.iter_mut() {
        if let Err(e) = xsk.flush() {
            if let Some(more) = warnings.frames.hit(Instant::now()) {
                let also = repeats(more);
                warn!(error = %e, "sending frames through an AF_XDP socket failed{also}");
            }
        }
    }
    let batch = rest;
    let mut at = 0;
    while at < batch.len() {
        let first = batch[at];
        let Some(listener) = listeners.get(first.listener) else {
            refused += 1;
            at += 1;
            continue;
        };
        let fd = listener.socket.as_raw_fd();
        if let Some(source) = first.source {
            if let Err(e) = retrying(fd, || socket::send_from(fd, &first.payload, first.destination, source)) {
                warnings.failed(first.destination, &e);
                refused += 1;
            }
            at += 1;
            continue;
        }
        // The run of datagrams for this socket without a source address.
        let run =
            batch[at..].iter().take(MMSG).take_while(|o| o.listener == first.listener && o.source.is_none()).count();
        let group = &batch[at..at + run];
        let slices: Vec<[IoSlice<'_>; 1]> = group.iter().map(|o| [IoSlice::new(&o.payload)]).collect();
        let addresses: Vec<Option<SockaddrIn6>> =
            group.iter().map(|o| Some(SockaddrIn6::from(o.destination))).collect();
        let sent = retrying(fd, || {
            sendmmsg(fd, headers, &slices, &addresses, [], MsgFlags::empty())
                .map(|r| r.count())
                .map_err(io::Error::from)
        });
        match sent {
            // Fewer than all: the rest go on the next round.
            Ok(n) if n > 0 => at += n,
            Ok(_) => {
                refused += 1;
                at += 1;
            }
            Err(e) => {
                warnings.failed(first.destination, &e);
                refused += 1;
                at += 1;
            }
        }
    }
    refused
}

/// Runs `send`, waiting for room (up to [`WAIT_MS`]) when the socket buffer is full.
fn retrying<T>(fd: RawFd, mut send: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    match send() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            let mut pfd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, WAIT_MS) };
            send()
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{option::DhcpOption, ClientMessage, Message, Options, RelayMessage, TransactionId};

    fn outgoing(payload: Vec<u8>) -> Outgoing {
        Outgoing { listener: 0, payload, destination: "[::1]:546".parse().unwrap(), source: None, peer: None }
    }

    #[test]
    fn replies_are_counted_by_type_and_a_relayed_one_as_what_it_carries_too() {
        let reply = Message::Client(ClientMessage {
            msg_type: MessageType::Reply,
            transaction_id: TransactionId::from_u32(1),
            options: Options::new(),
        });
        let direct = reply.to_vec().unwrap();
        let relayed = Message::Relay(RelayMessage {
            msg_type: MessageType::RelayRepl,
            hop_count: 0,
            link_address: "2001:db8::1".parse().unwrap(),
            peer_address: "fe80::1".parse().unwrap(),
            options: Options(vec![DhcpOption::RelayMsg(Box::new(reply))]),
        })
        .to_vec()
        .unwrap();
        let sent = SentCounts::default();
        sent.count(&[outgoing(direct), outgoing(relayed), outgoing(Vec::new()), outgoing(vec![200])]);
        let counts = sent.counts();
        assert_eq!((counts[MessageType::Reply], counts[MessageType::RelayRepl]), (2, 1));
        assert_eq!(counts.total(), 3, "an empty or unknown payload counts nowhere");
    }
}
