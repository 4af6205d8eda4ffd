//! The control socket: newline-delimited JSON requests from `dhcp6d show` and `dhcp6d clear`,
//! answered from the engines' state with the typed answers of [`crate::control`]; and
//! `dhcp6d trace`, answered with a line per event for as long as it runs.

use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use anyhow::{Context, Result};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{
        unix::{OwnedReadHalf, OwnedWriteHalf},
        UnixListener, UnixStream,
    },
    sync::{mpsc, oneshot},
};

use super::{
    input::Input, live_trace::TRACE_QUEUE, reader, relaying::Relaying, sender::SentCounts, storm_guard::StormGuard,
};
use crate::{
    control::{
        Answer, Binding, Cleared, PoolLocked, RelayServers, RelayUser, Request, StatisticsAnswer, StormCounts,
        StormsAnswer, XdpTxOff,
    },
    json::hex,
    server::{DropReason, LeaseChange, ReconfigureTarget, ReconfigureType, Server},
    trace::TraceFilter,
    xdp::{ShedSwitch, XdpProgram},
};

/// Datagrams dropped outside the engine, for `show statistics`.
pub struct Drops<'a> {
    /// By the readers, and by the kernel before them.
    pub read: &'a reader::Dropped,
    /// Solicits XDP shed.
    pub xdp_shed: Option<&'a ShedSwitch>,
    /// What XDP's storm protection cut.
    pub xdp_storm: Option<&'a StormGuard>,
    /// Replies the kernel refused to send.
    pub send_failed: &'a AtomicU64,
    /// Replies handed to the sender, by type.
    pub sent: &'a SentCounts,
    /// Interfaces where XDP's answers do not reach the link (renewals answered here).
    pub xdp_tx_off: &'a [XdpTxOff],
    /// The shared lease database, when leases are kept in one.
    pub database: Option<&'a crate::store::postgresql::DatabaseHealth>,
}

/// Binds the control socket at `path` (replacing a stale one), for root and the daemon's own
/// user only.
pub fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Accepts connections for as long as the daemon runs; each request waits in the engine's
/// queue like a datagram.
pub async fn serve(listener: UnixListener, tx: mpsc::Sender<Input>) {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let allowed = stream.peer_cred().is_ok_and(|c| c.uid() == 0 || c.uid() == me);
        tokio::spawn(connection(stream, allowed, tx.clone()));
    }
}

async fn connection(stream: UnixStream, allowed: bool, tx: mpsc::Sender<Input>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    if read.read_line(&mut line).await.is_err() {
        return;
    }
    if allowed {
        if let Ok(TraceRequest::Trace(filter)) = serde_json::from_str::<TraceRequest>(&line) {
            return trace(read, write, filter, tx).await;
        }
    }
    let answer = if !allowed {
        Answer::error("permission denied: the control socket is for root")
    } else {
        match serde_json::from_str::<Request>(&line) {
            Err(e) => Answer::error(format!("bad request: {e}")),
            Ok(request) => {
                let (answer, rx) = oneshot::channel();
                // Control requests wait in the same queue as datagrams.
                if tx.send(Input::Control { request, answer }).await.is_err() {
                    return;
                }
                rx.await.unwrap_or_else(|_| Answer::error("the server is stopping"))
            }
        }
    };
    let Ok(mut text) = serde_json::to_string(&answer) else { return };
    text.push('\n');
    let _ = write.write_all(text.as_bytes()).await;
}

/// A streaming request: `{"trace":{...}}` (`dhcp6d trace`), answered by a line per event
/// until the client goes.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum TraceRequest {
    Trace(TraceFilter),
}

/// Streams the events of a trace with `filter`, one JSON line each, until the client closes
/// its end (or the daemon stops). A client that reads too slowly loses events, not the engine
/// its pace.
async fn trace(
    mut read: BufReader<OwnedReadHalf>,
    mut write: OwnedWriteHalf,
    filter: TraceFilter,
    tx: mpsc::Sender<Input>,
) {
    let (events, mut rx) = mpsc::channel(TRACE_QUEUE);
    if tx.send(Input::Trace { filter, events }).await.is_err() {
        return;
    }
    let mut ignored = Vec::new();
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { return };
                let Ok(mut text) = serde_json::to_string(&event) else { continue };
                text.push('\n');
                if write.write_all(text.as_bytes()).await.is_err() {
                    return;
                }
            }
            // The client sends nothing more: a read returns when it closes.
            n = read.read_until(b'\n', &mut ignored) => {
                if matches!(n, Ok(0) | Err(_)) {
                    return;
                }
                ignored.clear();
            }
        }
    }
}

/// The server's counters with the driver's drops and XDP's verdicts: `show statistics`, and
/// the metrics endpoint's counters.
pub fn statistics(server: &Server, xdp: Option<&XdpProgram>, drops: &Drops<'_>) -> StatisticsAnswer {
    let mut server = server.statistics().clone();
    server.sent = drops.sent.counts();
    let dropped = &mut server.dropped;
    dropped.set(DropReason::QueueFull, drops.read.queue_full.load(Ordering::Relaxed));
    let in_xdp = drops.xdp_shed.map_or(0, |s| s.shed());
    dropped.set(DropReason::ShedSolicit, drops.read.shed_solicits.load(Ordering::Relaxed) + in_xdp);
    dropped.set(DropReason::SocketFull, drops.read.socket_full.load(Ordering::Relaxed));
    dropped.set(DropReason::BadFrame, drops.read.bad_frames.load(Ordering::Relaxed));
    dropped.set(DropReason::SendFailed, drops.send_failed.load(Ordering::Relaxed));
    let storm = drops.xdp_storm.map(StormGuard::counts);
    dropped.set(DropReason::Storm, storm.map_or(0, |s| s.cut_by_mac + s.cut_by_duid));
    let xdp = match xdp.map(XdpProgram::counters) {
        Some(Ok(c)) => Some(c.by_verdict),
        _ => None,
    };
    let database = drops.database.map(|d| d.status());
    StatisticsAnswer { server, xdp, xdp_tx_off: drops.xdp_tx_off.to_vec(), storm, database }
}

/// The answer to a control request, and the lease changes it made.
/// `dhcp6d reconfigure`: starts sending Reconfigure messages to a client or a pool's clients
/// (the serve piece sends the first ones with the batch this request is in).
fn reconfigure(
    server: &mut Server,
    client: Option<String>,
    pool: Option<String>,
    msg: ReconfigureType,
    now: u64,
) -> Answer {
    let duid;
    let target = match (&client, &pool) {
        (Some(c), None) => match crate::codec::parse_hex(c) {
            Some(d) => {
                duid = d;
                ReconfigureTarget::Client(&duid)
            }
            None => return Answer::error(format!("{c:?} is no DUID (hex, colon-separated or not)")),
        },
        (None, Some(p)) => ReconfigureTarget::Pool(p),
        _ => return Answer::error("name a client (--client DUID) or a pool (--pool NAME)"),
    };
    match server.start_reconfigure(&target, msg, now * 1000) {
        Ok(started) => {
            tracing::info!(client = ?client, pool = ?pool, message = msg.name(), started = started.started,
                without_key = started.without_key, unreachable = started.unreachable, "Reconfigure asked by the operator");
            Answer::Reconfigure(started)
        }
        Err(e) => Answer::error(e.to_string()),
    }
}

pub fn answer(
    server: &mut Server,
    relaying: Option<&mut Relaying>,
    request: Request,
    xdp: Option<&XdpProgram>,
    drops: &Drops<'_>,
    now: u64,
) -> (Answer, Vec<LeaseChange>) {
    let value = match request {
        Request::Bindings => Answer::Bindings(
            server
                .leases()
                .into_iter()
                .map(|l| Binding {
                    resource: l.resource,
                    ia_type: l.ia_type,
                    duid: hex(&l.duid),
                    iaid: l.iaid,
                    state: l.state,
                    expires: l.expires,
                    expires_in: l.expires.saturating_sub(now),
                    preferred_lifetime: l.preferred_lifetime,
                    valid_lifetime: l.valid_lifetime,
                    subnet: server.config().subnets.get(l.subnet).map(|s| s.prefix),
                    interface: l.interface,
                })
                .collect(),
        ),
        Request::Statistics => Answer::Statistics(Box::new(statistics(server, xdp, drops))),
        Request::Pools => Answer::Pools(server.pool_counts()),
        Request::ClearConflicting { address } => {
            let changes = server.clear_conflicting(address);
            return (Answer::Cleared(Cleared { cleared: changes.len() }), changes);
        }
        Request::RelayUsers => Answer::RelayUsers(relaying.map_or_else(Vec::new, |r| {
            let users = r.relay.users().into_iter();
            users.map(|entry| RelayUser { expires_in: entry.expires.saturating_sub(now), entry }).collect()
        })),
        // Answered by the failover piece, which the dispatch hands these to.
        Request::Failover | Request::FailoverPartnerDown => Answer::Failover(None),
        Request::RelayServers => Answer::RelayServers(
            relaying.map(|r| Box::new(RelayServers { servers: r.relay.servers(now), stats: r.relay.stats().clone() })),
        ),
        Request::RelayStandby => Answer::RelayStandby(relaying.and_then(|r| r.standby_status()).map(Box::new)),
        Request::RelayBackupNow => match relaying {
            Some(r) if r.standby_status().is_some() => Answer::BackupStarted { peers: r.backup_now() },
            _ => Answer::error("this dhcp6d has no [relay.standby] profiles"),
        },
        Request::RelayRebuild { by } => match relaying {
            Some(r) => match r.start_rebuild(by) {
                Ok(queries) => Answer::RebuildStarted { queries },
                Err(e) => Answer::error(e.to_string()),
            },
            None => Answer::error("this dhcp6d does not relay"),
        },
        Request::PoolLock { name, locked } => match server.set_locked(&name, locked) {
            Ok(changed) => {
                tracing::info!(pool = %name, locked, changed, "pool lock set by the operator");
                Answer::PoolLocked(PoolLocked { pool: name, locked, changed })
            }
            Err(e) => Answer::error(e.to_string()),
        },
        Request::Reconfigure { client, pool, message } => reconfigure(server, client, pool, message, now),
        Request::Storms => Answer::Storms(drops.xdp_storm.map_or_else(
            || StormsAnswer { rate: None, burst: None, counts: StormCounts::default(), clients: Vec::new() },
            StormGuard::answer,
        )),
        // Answered by the driver, which the dispatch hands it to.
        Request::Reload => Answer::error("reload is not answered here"),
    };
    (value, Vec::new())
}
