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
pub mod link_tls;
pub mod metrics_endpoint;
pub mod packet_socket;
pub mod reader;
pub mod relay_frames;
pub mod relay_users;
pub mod relay_xdp;
pub mod relaying;
pub mod renewal_upkeep;
pub mod sender;
pub mod serve;
pub mod socket;
pub mod standby;
pub mod start;
pub mod state_file;
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

pub use start::RunOptions;

/// Runs until SIGINT or SIGTERM.
pub async fn run(options: RunOptions) -> Result<()> {
    let (mut daemon, mut inputs) = start::start(options).await?;
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
            _ = tick.tick() => daemon.tick().await,
            () = relaying::reports_due(daemon.relaying.as_mut()) => {
                if let Some(r) = daemon.relaying.as_mut() {
                    r.take_reports().await;
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
        if daemon.fatal().is_some() {
            break;
        }
    }
    let fatal = daemon.fatal().map(str::to_string);
    daemon.stop();
    info!("stopped");
    match fatal {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => Ok(()),
    }
}
