//! The metrics endpoint: `GET /metrics` over HTTP/1.1 for Prometheus (`[metrics] listen`).
//!
//! A scrape waits in the engine's queue like a control request and is answered between two
//! batches with a [`Snapshot`] of the counters the engine loop owns (nothing is counted twice,
//! nothing is locked against the engine); the commit thread's histograms and the queue's depth
//! are read here. Encoding happens on this task, not the engine's. The pools' counts take a
//! pass over every lease, so the engine counts them at most every [`POOL_COUNTS_EVERY`] and
//! scrapes between reuse them. Anything but `GET /metrics` gets an error status; headers past
//! [`MAX_HEADERS`] bytes get 431 from hyper.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::{body::Bytes, header, server::conn::http1, service::service_fn, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot},
};
use tracing::{info, warn};

use super::{committer::CommitHistograms, driver::Daemon, input::Input};
use crate::metrics::{self, FailoverSnapshot, Format, QueueDepth, RelaySnapshot, Snapshot};

/// Most bytes of a request's head (hyper's smallest buffer): a scrape's is a few hundred.
pub const MAX_HEADERS: usize = 8192;
/// A client that has not sent its request's head by then is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How old the pools' counts a scrape shows may be: a pass over a million leases takes the
/// engine tens of milliseconds, too much to spend every second Prometheus scrapes, and a
/// pool fills up over minutes.
pub const POOL_COUNTS_EVERY: Duration = Duration::from_secs(10);

/// The pools' counts the engine last made, and when, shared by the endpoint's connections.
#[derive(Default)]
struct PoolCounts {
    counted: Option<(Instant, Vec<crate::server::PoolCounts>)>,
}

impl PoolCounts {
    fn stale(&self, now: Instant) -> bool {
        self.counted.as_ref().is_none_or(|(at, _)| now.duration_since(*at) >= POOL_COUNTS_EVERY)
    }
}

/// Binds the endpoint's listener.
pub async fn bind(address: SocketAddr) -> Result<TcpListener> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("binding the metrics endpoint to {address} ([metrics] listen)"))?;
    info!(%address, "metrics served at /metrics");
    Ok(listener)
}

/// Accepts scrapes for as long as the daemon runs.
pub async fn serve(listener: TcpListener, engine: mpsc::Sender<Input>, commits: CommitHistograms) {
    let pools = Arc::new(Mutex::new(PoolCounts::default()));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, say: wait rather than spin.
                warn!(error = %e, "the metrics endpoint could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (engine, commits, pools) = (engine.clone(), commits.clone(), pools.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| respond(request, engine.clone(), commits.clone(), pools.clone()));
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADERS)
                .serve_connection(TokioIo::new(stream), service);
            // A client that sends garbage or goes away is hyper's to answer or drop.
            let _ = connection.await;
        });
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

async fn respond<B>(
    request: Request<B>,
    engine: mpsc::Sender<Input>,
    commits: CommitHistograms,
    pools: Arc<Mutex<PoolCounts>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if request.uri().path() != "/metrics" {
        return Ok(reply(StatusCode::NOT_FOUND, TEXT, "not found: metrics are at /metrics\n"));
    }
    if request.method() != Method::GET {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n");
        r.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET"));
        return Ok(r);
    }
    let format = Format::from_accept(request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    // Read before the scrape joins the queue: what waited ahead of it.
    let queue = QueueDepth { depth: engine.max_capacity() - engine.capacity(), capacity: engine.max_capacity() };
    // A poisoned lock only means another connection's task panicked: the counts are whole.
    let count_pools = pools.lock().unwrap_or_else(|p| p.into_inner()).stale(Instant::now());
    let (answer, snapshot) = oneshot::channel();
    if engine.send(Input::Metrics { pools: count_pools, answer }).await.is_err() {
        return Ok(reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, "dhcp6d is stopping\n"));
    }
    let Ok(mut snapshot) = snapshot.await else {
        return Ok(reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, "dhcp6d is stopping\n"));
    };
    {
        let mut pools = pools.lock().unwrap_or_else(|p| p.into_inner());
        if count_pools {
            pools.counted = Some((Instant::now(), snapshot.pools.clone()));
        } else if let Some((_, counted)) = &pools.counted {
            snapshot.pools = counted.clone();
        }
    }
    let text = metrics::encode(&snapshot, Some(&commits), queue, format);
    Ok(reply(StatusCode::OK, format.content_type(), text))
}

impl Daemon {
    /// The engines' counters and states as `dhcp6d show` reads them, for a scrape; the pools'
    /// counts only if `pools`.
    pub fn metrics_snapshot(&self, pools: bool, now: u64) -> Snapshot {
        let server = &self.serve.server;
        let relay = self.relaying.as_ref().map(|r| RelaySnapshot {
            servers: crate::control::RelayServers { servers: r.relay.servers(now), stats: r.relay.stats().clone() },
            users: r.relay.user_count(),
        });
        let failover = server.failover().map(|f| FailoverSnapshot {
            state: f.state(),
            partner_state: f.partner_state(),
            connected: f.is_connected(),
        });
        let standby = self
            .relaying
            .as_ref()
            .and_then(|r| r.standby_status())
            .map_or_else(Vec::new, |s| s.profiles.into_iter().map(|p| (p.name, p.role)).collect());
        Snapshot {
            statistics: super::control_socket::statistics(server, self.xdp.as_ref(), &self.serve.drops()),
            leases: server.lease_count(),
            pools: if pools { server.pool_counts() } else { Vec::new() },
            relay,
            failover,
            standby,
        }
    }
}
