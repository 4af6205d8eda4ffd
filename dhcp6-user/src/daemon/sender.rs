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
};

use nix::sys::socket::{sendmmsg, MsgFlags, MultiHeaders, SockaddrIn6};
use tracing::warn;

use super::{
    socket::{self, Listener},
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

/// The handle the engine sends through.
#[derive(Clone)]
pub struct Sender {
    queue: mpsc::SyncSender<Vec<Outgoing>>,
    /// Datagrams the kernel refused (counted, and logged at most once a batch).
    pub failed: Arc<AtomicU64>,
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
            for batch in batches {
                let refused = send_all(&listeners, &mut xsks, &mut headers, &batch);
                if refused > 0 {
                    counter.fetch_add(refused, Ordering::Relaxed);
                }
            }
        })?;
        Ok(Sender { queue, failed })
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

/// Sends a batch; returns how many datagrams the kernel refused.
fn send_all(
    listeners: &[Listener],
    xsks: &mut [XskTx],
    headers: &mut MultiHeaders<SockaddrIn6>,
    batch: &[Outgoing],
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
            warn!(error = %e, "sending frames through an AF_XDP socket failed");
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
                warn!(destination = %first.destination, error = %e, "sending a reply failed");
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
                warn!(destination = %first.destination, error = %e, "sending a reply failed");
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
