//! The socket readers: a task per listener on the engine's thread that drains its socket
//! into the engine's queue between the engine's batches (a thread of their own cost more in
//! wake-ups and in the engine's core than they saved). Overload is decided here, by message
//! type: once the queue holds a backlog, new Solicits are shed first, so that exchanges under
//! way complete and the rate holds near its peak. What is dropped anyway is counted, the
//! kernel's own drops (a socket buffer full) included.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use tokio::{io::Interest, sync::mpsc};
use tracing::warn;

use super::{
    socket::{self, Listener},
    Input,
};
use crate::codec::MessageType;

/// Most datagrams a reader takes from its socket before letting the engine run.
const READ_BURST: usize = 1024;

/// Datagrams dropped before the engine saw them.
#[derive(Default)]
pub struct Dropped {
    /// The engine's queue was full.
    pub queue_full: AtomicU64,
    /// Solicits shed under overload.
    pub shed_solicits: AtomicU64,
    /// Dropped by the kernel: a socket's receive buffer was full.
    pub socket_full: AtomicU64,
}

/// Reads listener `index`'s socket into `queue` while it holds less than `shed_backlog`
/// datagrams, and after that everything but Solicits; returns once the engine is gone.
pub(super) async fn read_loop(
    listeners: Arc<Vec<Listener>>,
    index: usize,
    queue: mpsc::Sender<Input>,
    shed_backlog: usize,
    dropped: Arc<Dropped>,
) {
    let socket = &listeners[index].socket;
    let size = queue.max_capacity();
    let mut receiver = socket::Receiver::default();
    // The kernel's drop count of the socket, as last seen.
    let mut overflowed = 0u32;
    loop {
        if let Err(e) = socket.readable().await {
            warn!(error = %e, "waiting on a socket failed");
            continue;
        }
        // Drain what the kernel holds, so that overload is decided here rather than by the
        // socket buffer overflowing on whatever comes next.
        for _ in 0..READ_BURST / socket::RECV_BATCH {
            let received = socket.try_io(Interest::READABLE, || {
                receiver.try_recv(socket, |r, payload| {
                    if let Some(n) = r.overflowed {
                        dropped.socket_full.fetch_add(u64::from(n.wrapping_sub(overflowed)), Ordering::Relaxed);
                        overflowed = n;
                    }
                    if queue.capacity() < size - shed_backlog && payload.first() == Some(&(MessageType::Solicit as u8))
                    {
                        dropped.shed_solicits.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    let input = Input::Datagram { listener: index, from: r.from, to: r.to, payload: payload.to_vec() };
                    if let Err(mpsc::error::TrySendError::Full(_)) = queue.try_send(input) {
                        dropped.queue_full.fetch_add(1, Ordering::Relaxed);
                    }
                })
            });
            match received {
                Ok(n) if n < socket::RECV_BATCH => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    warn!(error = %e, "receive failed");
                    break;
                }
            }
        }
        if queue.is_closed() {
            return;
        }
        tokio::task::yield_now().await;
    }
}
