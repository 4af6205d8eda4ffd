//! The daemon: the engine driven by sockets, a clock and the control socket.
//!
//! Socket readers hand datagrams to one engine loop through a bounded queue (full: counted
//! and dropped, so overload sheds load instead of queueing without bound); on-link clients'
//! messages come from AF_XDP sockets ([`xsk`]) where XDP runs, the rest from UDP sockets. The loop handles
//! what is queued as a batch and hands the batch's lease changes and replies to the commit
//! thread ([`committer`]), which makes the changes durable (one fdatasync for every batch
//! queued meanwhile) and only then hands the replies to the sender thread ([`sender`]). The
//! engine never waits for the disk.

pub mod backup_link;
pub mod committer;
pub mod control_socket;
pub mod dispatch;
pub mod driver;
pub mod failover;
pub mod failover_link;
pub mod identity;
pub mod input;
pub mod interface;
pub mod leasequery_client;
pub mod leasequery_listener;
pub mod link_tls;
pub mod live_trace;
pub mod metrics_endpoint;
pub mod packet_socket;
pub mod reader;
pub mod relay_frames;
pub mod relay_users;
pub mod relay_xdp;
pub mod relaying;
pub mod reload;
pub mod renewal_upkeep;
pub mod sender;
pub mod serve;
pub mod service_manager;
pub mod socket;
pub mod standby;
pub mod start;
pub mod state_file;
pub mod storm_guard;
pub mod throttle;
pub mod virtual_address;
pub mod vlan_frames;
pub mod vrrp_fifo;
pub mod xdp_tx_check;
pub mod xsk;

use std::time::Duration;

use anyhow::Result;
use tracing::info;

use input::BATCH;
use service_manager::ServiceManager;

pub use start::RunOptions;

/// Runs until SIGINT or SIGTERM; SIGHUP reloads the configuration file.
pub async fn run(options: RunOptions) -> Result<()> {
    let mut service = ServiceManager::from_env();
    // Taken before start-up, which may take seconds: a SIGHUP meanwhile would otherwise end
    // the daemon (its default action); it reloads once serving.
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let (mut daemon, mut inputs) = start::start(options).await?;
    service.ready(daemon.status());
    let mut keep_alive = service.keep_alive_every().map(|every| {
        let mut timer = tokio::time::interval(every);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        timer
    });
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            // A disk that stalls holds the engine back here: datagrams queue, then are shed.
            n = inputs.recv_many(&mut batch, BATCH), if daemon.serve.ready() => {
                if n == 0 {
                    break;
                }
                daemon.handle(batch.drain(..)).await;
            }
            Some(done) = daemon.serve.next_done() => daemon.serve.heard_all(done),
            _ = tick.tick() => {
                daemon.tick().await;
                if service.listening() {
                    service.status(daemon.status());
                }
            }
            () = daemon.tracing.xdp_due() => daemon.tracing.take_xdp(),
            () = relaying::reports_due(daemon.relaying.as_mut()) => {
                if let Some(r) = daemon.relaying.as_mut() {
                    r.take_reports().await;
                }
            }
            // Only this loop sends keep-alives: an engine stuck in a batch sends none.
            _ = next_keep_alive(keep_alive.as_mut()) => service.keep_alive(),
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            // Logged, refused or not: there is no one to answer.
            _ = hangup.recv() => {
                daemon.reload();
            }
        }
        if daemon.fatal().is_some() {
            break;
        }
    }
    service.stopping();
    let fatal = daemon.fatal().map(str::to_string);
    daemon.stop();
    info!("stopped");
    match fatal {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => Ok(()),
    }
}

/// The next keep-alive's time; never, without a watchdog.
async fn next_keep_alive(timer: Option<&mut tokio::time::Interval>) {
    match timer {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
