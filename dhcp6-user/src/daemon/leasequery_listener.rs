//! Bulk leasequery over TCP (RFC 5460 section 5): a listener on port 547 (`[leasequery]
//! listen`); each connection's queries, framed with their length in two octets, go into the
//! engine's queue, and the engine's answer (LEASEQUERY-REPLY, -DATA per binding, -DONE) comes
//! back to be written out. Queries on one connection are answered one after the other (section
//! 6.2). Who may ask is the engine's decision (NotAllowed); here only the connections are
//! bounded: how many at once, and how long one may stay idle.

use std::{
    net::{IpAddr, SocketAddr, SocketAddrV6},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result};
use dhcp6_codec::failover::{encode_framed_bytes, FrameReader};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
    sync::{mpsc, oneshot, Semaphore},
};
use tracing::{info, warn};

use super::input::Input;

/// Most connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 16;
/// A connection with no query for this long is closed.
pub const IDLE: Duration = Duration::from_secs(60);
/// The longest query taken: a LEASEQUERY is a few dozen bytes.
const MAX_QUERY: usize = 4096;

/// Binds the listener.
pub fn bind(address: SocketAddrV6) -> Result<TcpListener> {
    let socket = TcpSocket::new_v6().context("opening the bulk leasequery socket")?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(SocketAddr::V6(address))
        .with_context(|| format!("binding bulk leasequery to {address} ([leasequery] listen)"))?;
    let listener = socket.listen(64)?;
    info!(%address, "bulk leasequery taken over TCP");
    Ok(listener)
}

/// Accepts requestors for as long as the daemon runs.
pub async fn serve(listener: TcpListener, engine: mpsc::Sender<Input>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "bulk leasequery could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let engine = engine.clone();
        tokio::spawn(async move {
            let requestor = match from.ip() {
                IpAddr::V6(a) => a,
                IpAddr::V4(a) => a.to_ipv6_mapped(),
            };
            if let Err(e) = connection(stream, requestor, engine).await {
                info!(requestor = %requestor, reason = %e, "bulk leasequery connection closed");
            }
            drop(permit);
        });
    }
}

/// One requestor's connection: its queries answered in turn until it closes, idles, sends
/// something that is no query, or breaks the framing.
async fn connection(mut stream: TcpStream, requestor: std::net::Ipv6Addr, engine: mpsc::Sender<Input>) -> Result<()> {
    let _ = stream.set_nodelay(true);
    let mut reader = FrameReader::new(MAX_QUERY);
    let mut buf = vec![0u8; 4096];
    loop {
        while let Some(frame) = reader.next_frame() {
            let payload = frame.map_err(|e| anyhow::anyhow!("framing: {e}"))?.to_vec();
            let (answer, answered) = oneshot::channel();
            engine
                .send(Input::Leasequery { payload, requestor, answer })
                .await
                .map_err(|_| anyhow::anyhow!("the daemon is stopping"))?;
            let Some(messages) = answered.await.context("the daemon is stopping")? else {
                anyhow::bail!("not a leasequery");
            };
            let mut out = Vec::new();
            for m in &messages {
                encode_framed_bytes(m, &mut out).context("an answer too long for a frame")?;
            }
            stream.write_all(&out).await?;
        }
        let n = tokio::time::timeout(IDLE, stream.read(&mut buf)).await.context("idle")??;
        if n == 0 {
            return Ok(());
        }
        reader.push(&buf[..n]);
    }
}
