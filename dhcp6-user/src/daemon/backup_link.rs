//! The backup link's driver: one task per backup service, holding the TCP connection to the
//! peer relay. The end with the lower address connects (from its `source`), the other
//! listens on `source`, port `port`, and takes connections from the peer's address alone:
//! any other is closed at once and counted. A new connection from the peer replaces the one
//! held (the peer restarted and the old one is dead). Messages are framed as
//! [`LinkMessage`] says; what the peer sends goes to the engine's queue, what the engine
//! hands over is written in order. A connection silent for
//! [`link::LINK_DEAD_AFTER`] seconds is dropped; a [`LinkMessage::Ping`] keeps a quiet one
//! alive. While down, what the engine hands over is dropped: the batch on the next connection
//! carries it. With TLS ([`LinkTlsEnd`]) each connection is a TLS 1.3 session in which both
//! ends present their certificate and take only the peer's pinned one; a connection from the
//! peer's address whose handshake fails is refused and counted like a forged one.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use dhcp6_engine::relay::standby::{
    link::{self, LinkMessage},
    BackupService,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufWriter},
    net::{TcpListener, TcpSocket, TcpStream},
    sync::mpsc,
};
use tracing::{info, warn};

use super::{
    input::{Input, StandbyInput},
    link_tls::{LinkStream, LinkTlsEnd},
};

/// Messages the engine may queue for one link before it counts them lost (and sends a batch
/// instead): a chunk of a batch or a hot message each.
const QUEUE: usize = 1024;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// Starts the task of service `index` (its TLS end, when it has TLS); returns where the engine
/// queues its messages.
pub fn spawn(
    index: usize,
    service: BackupService,
    tls: Option<LinkTlsEnd>,
    tx: mpsc::Sender<Input>,
) -> mpsc::Sender<LinkMessage> {
    let (out_tx, out_rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(index, service, tls, tx, out_rx));
    out_tx
}

/// The TLS handshake over a new connection, when the link has TLS; a failed one from a
/// listening end is counted as a refused connection.
async fn secure(
    stream: TcpStream,
    tls: Option<&LinkTlsEnd>,
    service: &BackupService,
    index: usize,
    tx: &mpsc::Sender<Input>,
) -> Option<LinkStream> {
    let Some(tls) = tls else { return Some(Box::new(stream)) };
    let failed = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.handshake(stream, service.peer)).await {
        Ok(Ok(s)) => return Some(s),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "it timed out".to_string(),
    };
    warn!(service = %service.name, peer = %service.peer, error = %failed, "backup link: the TLS handshake failed");
    if matches!(tls, LinkTlsEnd::Listens(_)) {
        let _ = tx.send(Input::Standby(StandbyInput::Refused { service: index })).await;
    }
    None
}

async fn run(
    index: usize,
    service: BackupService,
    tls: Option<LinkTlsEnd>,
    tx: mpsc::Sender<Input>,
    mut out: mpsc::Receiver<LinkMessage>,
) {
    let listener = if service.connects() { None } else { Some(listen(&service, &mut out).await) };
    let mut next: Option<TcpStream> = None;
    loop {
        let stream = match next.take() {
            Some(s) => s,
            None => match &listener {
                None => match connect(&service).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(peer = %service.peer, error = %e, "backup link: connecting failed");
                        drain_for(&mut out, Duration::from_secs(1)).await;
                        continue;
                    }
                },
                Some(l) => match accept_peer(l, &service, index, &tx, &mut out).await {
                    Some(s) => s,
                    None => continue,
                },
            },
        };
        let _ = stream.set_nodelay(true);
        let Some(stream) = secure(stream, tls.as_ref(), &service, index, &tx).await else {
            if listener.is_none() {
                drain_for(&mut out, Duration::from_secs(1)).await;
            }
            continue;
        };
        info!(service = %service.name, peer = %service.peer, tls = tls.is_some(), "backup link up");
        if tx.send(Input::Standby(StandbyInput::LinkUp { service: index })).await.is_err() {
            return;
        }
        next = connection(stream, index, &service, &tx, &mut out, listener.as_ref()).await;
        warn!(service = %service.name, peer = %service.peer, "backup link down");
        if tx.send(Input::Standby(StandbyInput::LinkDown { service: index })).await.is_err() {
            return;
        }
    }
}

/// Binds the listening socket, retrying while the source address is not (yet) usable.
async fn listen(service: &BackupService, out: &mut mpsc::Receiver<LinkMessage>) -> TcpListener {
    let at = SocketAddr::new(IpAddr::V6(service.source), service.port);
    loop {
        let bound = TcpSocket::new_v6().and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(at)?;
            s.listen(8)
        });
        match bound {
            Ok(l) => return l,
            Err(e) => {
                warn!(address = %at, error = %e, "backup link: cannot listen yet");
                drain_for(out, Duration::from_secs(1)).await;
            }
        }
    }
}

async fn connect(service: &BackupService) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v6()?;
    socket.bind(SocketAddr::new(IpAddr::V6(service.source), 0))?;
    let peer = SocketAddr::new(IpAddr::V6(service.peer), service.port);
    match tokio::time::timeout(Duration::from_secs(3), socket.connect(peer)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connecting timed out")),
    }
}

/// Whether a connection from `from` is the peer's; if not, it is counted.
async fn is_peer(from: SocketAddr, service: &BackupService, index: usize, tx: &mpsc::Sender<Input>) -> bool {
    let peer = match from.ip() {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
        v4 => v4,
    };
    if peer == IpAddr::V6(service.peer) {
        return true;
    }
    warn!(service = %service.name, from = %from, "backup link: refused a connection from another address than the peer's");
    let _ = tx.send(Input::Standby(StandbyInput::Refused { service: index })).await;
    false
}

/// Waits for the peer's connection, refusing others; drops what the engine queues meanwhile.
async fn accept_peer(
    listener: &TcpListener,
    service: &BackupService,
    index: usize,
    tx: &mpsc::Sender<Input>,
    out: &mut mpsc::Receiver<LinkMessage>,
) -> Option<TcpStream> {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, from) = accepted.ok()?;
                if is_peer(from, service, index, tx).await {
                    return Some(stream);
                }
            }
            m = out.recv() => {
                m?;
            }
        }
    }
}

/// Drops what the engine queues for `wait`.
async fn drain_for(out: &mut mpsc::Receiver<LinkMessage>, wait: Duration) {
    let until = tokio::time::Instant::now() + wait;
    while let Ok(Some(_)) = tokio::time::timeout_at(until, out.recv()).await {}
}

/// Serves one connection until it dies; returns a new connection from the peer that
/// replaced it, if that is why it ended.
async fn connection(
    stream: LinkStream,
    index: usize,
    service: &BackupService,
    tx: &mpsc::Sender<Input>,
    out: &mut mpsc::Receiver<LinkMessage>,
    listener: Option<&TcpListener>,
) -> Option<TcpStream> {
    let (read, write) = tokio::io::split(stream);
    let mut reader = tokio::spawn(read_loop(read, index, tx.clone()));
    let mut write = BufWriter::new(write);
    let mut ping = tokio::time::interval(Duration::from_secs(1));
    let mut wrote = false;
    let replaced = loop {
        tokio::select! {
            m = out.recv() => {
                let Some(m) = m else { break None };
                if write.write_all(&m.to_frame()).await.is_err() {
                    break None;
                }
                // Write as soon as the engine's queue is empty: hot changes go at once.
                if out.is_empty() && write.flush().await.is_err() {
                    break None;
                }
                wrote = true;
            }
            _ = ping.tick() => {
                if !wrote {
                    let sent = write.write_all(&LinkMessage::Ping.to_frame()).await;
                    if sent.is_err() || write.flush().await.is_err() {
                        break None;
                    }
                }
                wrote = false;
            }
            _ = &mut reader => break None,
            accepted = accept(listener) => {
                if let Ok((stream, from)) = accepted {
                    if is_peer(from, service, index, tx).await {
                        info!(service = %service.name, "backup link: the peer connected again; the old connection is dropped");
                        break Some(stream);
                    }
                }
            }
        }
    };
    reader.abort();
    replaced
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Reads the peer's messages into the engine's queue until the connection fails, goes
/// silent, or sends something that is no message.
async fn read_loop(mut read: impl AsyncRead + Unpin, index: usize, tx: mpsc::Sender<Input>) {
    let dead_after = Duration::from_secs(link::LINK_DEAD_AFTER);
    let mut body = Vec::new();
    loop {
        let mut header = [0u8; 4];
        match tokio::time::timeout(dead_after, read.read_exact(&mut header)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                warn!("backup link: the peer went silent");
                return;
            }
        }
        let len = match LinkMessage::body_len(header) {
            Ok(len) => len,
            Err(e) => {
                warn!(error = %e, "backup link: the peer sent something that is no message");
                return;
            }
        };
        body.resize(len, 0);
        if !matches!(tokio::time::timeout(dead_after, read.read_exact(&mut body)).await, Ok(Ok(_))) {
            return;
        }
        let message = match LinkMessage::from_body(&body) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "backup link: the peer sent something that is no message");
                return;
            }
        };
        if matches!(message, LinkMessage::Ping) {
            continue;
        }
        if tx.send(Input::Standby(StandbyInput::Message { service: index, message })).await.is_err() {
            return;
        }
    }
}
