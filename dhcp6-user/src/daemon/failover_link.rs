//! The failover partner's TCP connection (RFC 8156 section 5.1): the primary connects to its
//! partner, and keeps trying while there is none; the secondary listens and takes a connection
//! only from its partner's address (others are counted and closed). Messages travel with a
//! two-octet length before each (RFC 5460 section 5.1 framing); this module moves whole
//! messages and says when the connection comes and goes. What they mean is the failover
//! engine's business.

use std::{
    net::{SocketAddr, SocketAddrV6},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpSocket},
    sync::mpsc,
};
use tracing::{info, warn};

use super::input::Input;
use crate::tls::PinnedTls;

/// Longest failover message taken: a BNDUPD carries one binding with a few IAs; anything
/// near the framing's 64 KiB limit is not one.
pub const MAX_MESSAGE: usize = 65_535;
/// How long the primary waits between attempts to reach its partner.
pub const RECONNECT: Duration = Duration::from_millis(500);

/// What the link tells the engine loop.
#[derive(Debug)]
pub enum LinkEvent {
    /// A connection to the partner is up; messages for it go to `out` until it goes down.
    Up { connection: u64, out: mpsc::UnboundedSender<Vec<u8>> },
    /// A whole message from the partner (without its length).
    Message { connection: u64, bytes: Vec<u8> },
    /// The connection is gone (closed, reset, or a malformed frame).
    Down { connection: u64, why: String },
}

/// Counters of the link, read by `show failover`.
#[derive(Debug, Default)]
pub struct LinkCounts {
    /// Connections from an address that is not the partner's, closed at once.
    pub refused: AtomicU64,
    /// TLS handshakes that failed (the peer presented another certificate than the pinned
    /// one, or none).
    pub tls_failed: AtomicU64,
    pub connections: AtomicU64,
}

/// Which side of the connection this server is.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    /// Connects to `partner` from `local` (its port 0: any).
    Connect { local: SocketAddrV6, partner: SocketAddrV6 },
    /// Listens on `local`; takes connections only from `partner`'s address.
    Listen { local: SocketAddrV6, partner: SocketAddrV6 },
}

/// Starts the link's task; its events go into the engine's queue.
/// With `tls`, every connection is TLS with the partner's certificate pinned.
pub fn spawn(
    side: Side,
    tls: Option<PinnedTls>,
    queue: mpsc::Sender<Input>,
    counts: Arc<LinkCounts>,
) -> std::io::Result<()> {
    match side {
        Side::Connect { local, partner } => {
            tokio::spawn(connect_loop(local, partner, tls, queue, counts));
        }
        Side::Listen { local, partner } => {
            let socket = TcpSocket::new_v6()?;
            socket.set_reuseaddr(true)?;
            socket.bind(SocketAddr::V6(local))?;
            let listener = socket.listen(4)?;
            tokio::spawn(listen_loop(listener, partner, tls, queue, counts));
        }
    }
    Ok(())
}

async fn connect_loop(
    local: SocketAddrV6,
    partner: SocketAddrV6,
    tls: Option<PinnedTls>,
    queue: mpsc::Sender<Input>,
    counts: Arc<LinkCounts>,
) {
    let mut logged = false;
    loop {
        let attempt = async {
            let socket = TcpSocket::new_v6()?;
            socket.set_reuseaddr(true)?;
            socket.bind(SocketAddr::V6(SocketAddrV6::new(*local.ip(), 0, 0, local.scope_id())))?;
            tokio::time::timeout(RECONNECT * 4, socket.connect(SocketAddr::V6(partner)))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))?
        };
        match attempt.await {
            Ok(stream) => {
                logged = false;
                let _ = stream.set_nodelay(true);
                let going = match &tls {
                    None => {
                        info!(partner = %partner, "connected to the failover partner");
                        serve_connection(stream, &queue, &counts).await
                    }
                    Some(tls) => match tls.connector.connect(PinnedTls::server_name(*partner.ip()), stream).await {
                        Ok(stream) => {
                            info!(partner = %partner, "connected to the failover partner (TLS)");
                            serve_connection(stream, &queue, &counts).await
                        }
                        Err(e) => {
                            counts.tls_failed.fetch_add(1, Ordering::Relaxed);
                            warn!(partner = %partner, error = %e, "the TLS handshake with the failover partner failed");
                            true
                        }
                    },
                };
                if !going {
                    return;
                }
            }
            Err(e) => {
                if !logged {
                    warn!(partner = %partner, error = %e, "the failover partner cannot be reached; trying again");
                    logged = true;
                }
            }
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

async fn listen_loop(
    listener: TcpListener,
    partner: SocketAddrV6,
    tls: Option<PinnedTls>,
    queue: mpsc::Sender<Input>,
    counts: Arc<LinkCounts>,
) {
    // The connection being served, so that a new one from the partner (it restarted and its
    // old connection is dead without our knowing) replaces it.
    let mut current: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "accepting a failover connection failed");
                tokio::time::sleep(RECONNECT).await;
                continue;
            }
        };
        let from_partner = match from {
            SocketAddr::V6(a) => a.ip() == partner.ip(),
            SocketAddr::V4(_) => false,
        };
        if !from_partner {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            warn!(from = %from, partner = %partner.ip(), "refused a failover connection from an address that is not the partner's");
            drop(stream);
            continue;
        }
        info!(from = %from, "the failover partner connected");
        if let Some(old) = current.take() {
            old.abort();
        }
        let (queue, counts, tls) = (queue.clone(), counts.clone(), tls.clone());
        let _ = stream.set_nodelay(true);
        current = Some(tokio::spawn(async move {
            match tls {
                None => {
                    serve_connection(stream, &queue, &counts).await;
                }
                Some(tls) => match tls.acceptor.accept(stream).await {
                    Ok(stream) => {
                        serve_connection(stream, &queue, &counts).await;
                    }
                    Err(e) => {
                        counts.tls_failed.fetch_add(1, Ordering::Relaxed);
                        warn!(from = %from, error = %e, "a TLS handshake on the failover port failed");
                    }
                },
            }
        }));
    }
}

/// Carries one connection until it ends: reads frames into the queue, writes what the engine
/// hands the sender. `false` when the engine's queue is gone (the daemon stops).
async fn serve_connection<S: AsyncRead + AsyncWrite + Send>(
    stream: S,
    queue: &mpsc::Sender<Input>,
    counts: &LinkCounts,
) -> bool {
    let connection = counts.connections.fetch_add(1, Ordering::Relaxed) + 1;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (out, mut to_send) = mpsc::unbounded_channel::<Vec<u8>>();
    if queue.send(Input::Failover(LinkEvent::Up { connection, out })).await.is_err() {
        return false;
    }
    let write = async {
        while let Some(message) = to_send.recv().await {
            // One write for the length and the message, and for whatever else is waiting.
            let mut buffer = Vec::with_capacity(message.len() + 2);
            frame_into(&message, &mut buffer);
            while let Ok(more) = to_send.try_recv() {
                frame_into(&more, &mut buffer);
            }
            writer.write_all(&buffer).await?;
            writer.flush().await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let read = async {
        loop {
            let len = usize::from(reader.read_u16().await?);
            if len == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a frame of length 0"));
            }
            let mut bytes = vec![0; len];
            reader.read_exact(&mut bytes).await?;
            if queue.send(Input::Failover(LinkEvent::Message { connection, bytes })).await.is_err() {
                return Ok(());
            }
        }
    };
    let why = tokio::select! {
        r = write => r.err().map_or_else(|| "closed by this server".to_string(), |e| e.to_string()),
        r = read => r.err().map_or_else(|| "the daemon stops".to_string(), |e| e.to_string()),
    };
    queue.send(Input::Failover(LinkEvent::Down { connection, why })).await.is_ok()
}

/// `message` with its two-octet length before it, appended to `buffer`. Messages longer than
/// [`MAX_MESSAGE`] are not framed (the engine never builds one).
pub fn frame_into(message: &[u8], buffer: &mut Vec<u8>) {
    if let Ok(len) = u16::try_from(message.len()) {
        buffer.extend_from_slice(&len.to_be_bytes());
        buffer.extend_from_slice(message);
    }
}
