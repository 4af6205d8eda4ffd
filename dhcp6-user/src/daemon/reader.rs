//! The socket readers: a task per listener, and one per AF_XDP socket ([`xsk_read_loop`], its
//! receive ring standing for the socket buffer below), on the engine's thread, that drains its
//! socket into the engine's queue between the engine's batches (a thread of their own cost more
//! in wake-ups and in the engine's core than they saved). Overload is decided here, by message
//! type. The sign of it is the socket filling up (the engine takes a burst of reads per
//! batch, so the backlog builds in the socket, not in the queue), or the queue holding a
//! backlog (a stalled disk). Then new Solicits are shed first, so that exchanges under way
//! complete and the rate holds near its peak: with XDP attached, by XDP ([`ShedSwitch`]), a
//! share of them that grows with the socket's fill (`xdp_share`), for a short window each
//! burst of reads renews, where a Solicit costs nanoseconds instead of the stack's and the
//! reader's microseconds, and Requests no longer lose their place in a socket full of
//! Solicits; and past half full, by the reader as it reads them, until the socket is down to
//! a quarter. What is dropped is counted, the kernel's own drops included.

use std::{
    net::SocketAddrV6,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use dhcp6_common::counters::SHED_SHARE_ONE;
use tokio::{
    io::{unix::AsyncFd, Interest},
    sync::mpsc,
};
use tracing::warn;

use super::{
    input::Input,
    socket::{self, Listener},
    throttle::{repeats, Throttle},
    xsk::{self, Peer, XskRx},
};
use crate::{codec::MessageType, xdp::ShedSwitch};

/// Most datagrams a reader takes from its socket before letting the engine run.
const READ_BURST: usize = 1024;
/// How long XDP sheds Solicits after the last sign of overload, if the reader does not say
/// sooner that it is over (a reader that stopped reading, or a dhcp6d that stopped).
const XDP_SHED_WINDOW: std::time::Duration = std::time::Duration::from_millis(50);

/// The share of Solicits XDP sheds (in 1/[`SHED_SHARE_ONE`]) for a socket holding `held` bytes
/// of its `buffer`: none below a quarter of it, all of them at a half (where the reader sheds
/// too), in proportion between, in steps of 1/64. Under a steady overload the socket settles
/// where as many Solicits come up as the engine takes, rather than XDP letting all of them up
/// at times, to be read and shed by the reader at the stack's cost, and none at others. (Lower
/// marks, an eighth to a quarter, shed at the peak rate for what were only scheduling delays
/// on a loaded machine, and held 72% of the peak at 4x overload against 95% now: the 16 MiB
/// buffer takes such bursts.)
fn xdp_share(held: u32, buffer: u32) -> u64 {
    let (low, high) = (u64::from(buffer / 4), u64::from(buffer / 2));
    let held = u64::from(held);
    if held <= low || high <= low {
        return if held > high { SHED_SHARE_ONE } else { 0 };
    }
    let share = (held - low).min(high - low) * SHED_SHARE_ONE / (high - low);
    share / (SHED_SHARE_ONE / 64) * (SHED_SHARE_ONE / 64)
}

/// When Solicits are shed.
#[derive(Clone)]
pub struct Shedding {
    /// Datagrams queued for the engine past which they are.
    pub backlog: usize,
    /// XDP's switch, when XDP is attached.
    pub xdp: Option<Arc<ShedSwitch>>,
}

/// Datagrams dropped before the engine saw them.
#[derive(Default)]
pub struct Dropped {
    /// The engine's queue was full.
    pub queue_full: AtomicU64,
    /// Solicits shed under overload.
    pub shed_solicits: AtomicU64,
    /// Dropped by the kernel: a socket's receive buffer (or an AF_XDP socket's ring) was full.
    pub socket_full: AtomicU64,
    /// Frames from an AF_XDP socket that held no UDP datagram.
    pub bad_frames: AtomicU64,
}

/// The overload state of one reader, and XDP's shedding as it last asked for it.
struct Overload {
    shedding: Shedding,
    /// Past half full, until down to a quarter.
    overloaded: bool,
    /// Whether XDP was last asked to shed.
    xdp_shedding: bool,
    /// Whether asking XDP last failed (warned once until it works again).
    xdp_failed: bool,
    /// The engine queue's size.
    size: usize,
}

impl Overload {
    fn new(shedding: Shedding, queue: &mpsc::Sender<Input>) -> Overload {
        Overload { shedding, overloaded: false, xdp_shedding: false, xdp_failed: false, size: queue.max_capacity() }
    }

    /// As a burst of reads starts, with `held` of `buffer` waiting (bytes of a socket buffer,
    /// frames of a ring): half full is overload, and it lasts until a quarter (lower, and the
    /// engine ran dry before Solicits were let in again). Returns the share XDP is to shed.
    fn start(&mut self, held: u32, buffer: u32) -> u64 {
        self.overloaded = held > buffer / 2 || (self.overloaded && held > buffer / 4);
        xdp_share(held, buffer)
    }

    /// Whether the queue holds a backlog.
    fn backlogged(&self, queue: &mpsc::Sender<Input>) -> bool {
        queue.capacity() < self.size - self.shedding.backlog
    }

    /// Queues `input` for the engine, unless it is a Solicit to shed; counts what is dropped.
    fn take(&self, input: Input, payload_type: Option<u8>, queue: &mpsc::Sender<Input>, dropped: &Dropped) {
        let shed = self.overloaded || self.backlogged(queue);
        if shed && payload_type == Some(MessageType::Solicit as u8) {
            dropped.shed_solicits.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = queue.try_send(input) {
            dropped.queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// As a burst of reads ends: XDP sheds `share` of the Solicits, all of them if the reader
    /// is overloaded, the queue backlogged or the kernel `overflowed` in the burst.
    fn end(&mut self, mut share: u64, queue: &mpsc::Sender<Input>, overflowed: bool) {
        if self.overloaded || self.backlogged(queue) || overflowed {
            share = SHED_SHARE_ONE;
        }
        let Some(xdp) = &self.shedding.xdp else { return };
        // Stopped as soon as the overload is over: the engine is not to wait out the window.
        let asked = match (share > 0, self.xdp_shedding) {
            (true, _) => xdp.shed_share_for(share, XDP_SHED_WINDOW),
            (false, true) => xdp.stop(),
            (false, false) => Ok(()),
        };
        self.xdp_shedding = share > 0;
        match asked {
            Ok(()) => self.xdp_failed = false,
            Err(e) if !self.xdp_failed => {
                warn!(error = %e, "asking XDP to shed Solicits failed");
                self.xdp_failed = true;
            }
            Err(_) => {}
        }
    }
}

/// Reads listener `index`'s socket into `queue`, shedding Solicits as `shedding` says;
/// returns once the engine is gone.
pub(super) async fn read_loop(
    listeners: Arc<Vec<Listener>>,
    index: usize,
    queue: mpsc::Sender<Input>,
    shedding: Shedding,
    dropped: Arc<Dropped>,
) {
    let mut overload = Overload::new(shedding, &queue);
    let socket = &listeners[index].socket;
    let mut receiver = socket::Receiver::default();
    // The kernel's drop count of the socket, as last seen.
    let mut overflowed = 0u32;
    let mut failures = Throttle::default();
    loop {
        let mut ready = match socket.readable().await {
            Ok(guard) => guard,
            Err(e) => {
                if let Some(more) = failures.hit(Instant::now()) {
                    let also = repeats(more);
                    warn!(error = %e, "waiting on a socket failed{also}");
                }
                continue;
            }
        };
        let overflowed_before = overflowed;
        let share = match socket::receive_fill(socket) {
            Ok((held, buffer)) => overload.start(held, buffer),
            Err(_) => 0,
        };
        // Drain what the kernel holds, so that overload is decided here rather than by the
        // socket buffer overflowing on whatever comes next.
        for _ in 0..READ_BURST / socket::RECV_BATCH {
            let received = ready.try_io(|socket| {
                receiver.try_recv(socket, |r, payload| {
                    if let Some(n) = r.overflowed {
                        dropped.socket_full.fetch_add(u64::from(n.wrapping_sub(overflowed)), Ordering::Relaxed);
                        overflowed = n;
                    }
                    let input = Input::Datagram {
                        listener: index,
                        from: r.from,
                        to: r.to,
                        payload: payload.to_vec(),
                        peer: None,
                    };
                    overload.take(input, payload.first().copied(), &queue, &dropped);
                })
            });
            match received {
                Ok(Ok(n)) if n < socket::RECV_BATCH => break,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    if let Some(more) = failures.hit(Instant::now()) {
                        let also = repeats(more);
                        warn!(error = %e, "receive failed{also}");
                    }
                    break;
                }
                // Drained: the runtime is told to wait for the next datagram.
                Err(_would_block) => break,
            }
        }
        if queue.is_closed() {
            return;
        }
        overload.end(share, &queue, overflowed != overflowed_before);
        tokio::task::yield_now().await;
    }
}

/// Reads the receive ring of AF_XDP socket `xsk` (on listener `listener`'s interface) into
/// `queue`, as [`read_loop`] reads a socket: the ring's fill is the sign of overload.
pub(super) async fn xsk_read_loop(
    mut rx: XskRx,
    xsk: usize,
    listener: usize,
    queue: mpsc::Sender<Input>,
    shedding: Shedding,
    dropped: Arc<Dropped>,
) {
    // SAFETY: the descriptor stays open as long as `watched` (it holds the socket).
    let watched = match unsafe { AsyncFd::register_with_interest(rx.watch(), Interest::READABLE) } {
        Ok(w) => w,
        Err(e) => {
            warn!(error = %e, ifindex = rx.ifindex, queue = rx.queue, "waiting on an AF_XDP socket failed: it is not read");
            return;
        }
    };
    let mut overload = Overload::new(shedding, &queue);
    let mut kernel_dropped = 0;
    let mut bad_frames = 0u64;
    loop {
        let mut ready = match watched.readable().await {
            Ok(guard) => guard,
            Err(e) => {
                warn!(error = %e, "waiting on an AF_XDP socket failed");
                continue;
            }
        };
        let (held, size) = rx.held();
        let share = overload.start(held, size);
        let ifindex = rx.ifindex;
        let mut taken = 0;
        while taken < READ_BURST as u32 {
            let n = rx.recv(socket::RECV_BATCH as u32, |frame| {
                let Some((d, payload)) = xsk::client_datagram(frame) else {
                    bad_frames += 1;
                    return;
                };
                let from = SocketAddrV6::new(d.src_ip, d.src_port, 0, ifindex);
                let to = Some(d.dst_ip);
                let peer = Some(Peer { xsk, mac: d.src_mac });
                let input = Input::Datagram { listener, from, to, payload: payload.to_vec(), peer };
                overload.take(input, payload.first().copied(), &queue, &dropped);
            });
            taken += n;
            if n < socket::RECV_BATCH as u32 {
                break;
            }
        }
        if rx.held().0 == 0 {
            // Drained: wait for the kernel's next wake-up.
            ready.clear_ready();
        }
        if bad_frames > 0 {
            dropped.bad_frames.fetch_add(std::mem::take(&mut bad_frames), Ordering::Relaxed);
        }
        if queue.is_closed() {
            return;
        }
        let before = kernel_dropped;
        if let Ok(stats) = rx.statistics() {
            let now = xsk::dropped(&stats);
            dropped.socket_full.fetch_add(now.saturating_sub(kernel_dropped), Ordering::Relaxed);
            kernel_dropped = now;
        }
        overload.end(share, &queue, kernel_dropped != before);
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdp_sheds_a_share_growing_with_the_socket_fill() {
        let buffer = 16 << 20;
        assert_eq!(xdp_share(0, buffer), 0);
        assert_eq!(xdp_share(buffer / 4, buffer), 0, "none up to a quarter");
        let mid = xdp_share(buffer / 4 + (buffer / 2 - buffer / 4) / 2, buffer);
        assert_eq!(mid, SHED_SHARE_ONE / 2, "half way, half of them");
        assert_eq!(xdp_share(buffer / 2, buffer), SHED_SHARE_ONE, "all from a half");
        assert_eq!(xdp_share(buffer, buffer), SHED_SHARE_ONE);
        let shares: Vec<u64> = (0..=64).map(|i| xdp_share(buffer / 64 * i, buffer)).collect();
        assert!(shares.windows(2).all(|w| w[0] <= w[1]), "never less for a fuller socket: {shares:?}");
        assert!(shares.iter().all(|s| s % (SHED_SHARE_ONE / 64) == 0), "in steps of 1/64");
        assert_eq!(xdp_share(5, 0), SHED_SHARE_ONE, "a socket reporting no buffer but holding data");
        assert_eq!(xdp_share(0, 0), 0);
    }
}
