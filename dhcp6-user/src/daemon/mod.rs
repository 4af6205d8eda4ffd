//! The daemon: the engine driven by sockets, a clock and the control socket.
//!
//! Socket readers hand datagrams to one engine loop through a bounded queue (full: counted
//! and dropped, so overload sheds load instead of queueing without bound); on-link clients'
//! messages come from AF_XDP sockets ([`xsk`]) where XDP runs, the rest from UDP sockets. The loop handles
//! what is queued as a batch and hands the batch's lease changes and replies to the commit
//! thread ([`committer`]), which makes the changes durable (one fdatasync for every batch
//! queued meanwhile) and only then hands the replies to the sender thread ([`sender`]). The
//! engine never waits for the disk.

pub mod committer;
pub mod control_socket;
pub mod dispatch;
pub mod identity;
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
pub mod start;
pub mod state_file;
pub mod vlan_frames;
pub mod xsk;

use std::{
    net::SocketAddrV6,
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Result;
use tokio::sync::oneshot;
use tracing::info;

use crate::{config::Config, control::Request, xdp::XdpProgram};
use relaying::Relaying;
use serve::Serve;

/// Most datagrams waiting for the engine; past this, new ones are dropped and counted.
const QUEUE: usize = 32768;
/// Most datagrams handled per batch.
const BATCH: usize = 1024;
/// Queued datagrams past which new Solicits are shed: about 100 ms of work at full rate, so
/// that a stall of the disk (an fdatasync can take that long) is caught up with, not shed,
/// while a load the server cannot keep up with still sheds new exchanges first.
const SHED_BACKLOG: usize = 16 * BATCH;

/// What the engine loop takes from its queue.
pub enum Input {
    Datagram {
        listener: usize,
        from: SocketAddrV6,
        to: Option<std::net::Ipv6Addr>,
        payload: Vec<u8>,
        /// Came as a frame through an AF_XDP socket, from this client.
        peer: Option<xsk::Peer>,
    },
    /// A tagged client's message for the relay's access entry `access`, from a frame.
    Frame {
        access: usize,
        from: SocketAddrV6,
        mac: [u8; 6],
        payload: Vec<u8>,
    },
    Control {
        request: Request,
        answer: oneshot::Sender<crate::control::Answer>,
    },
}

/// How `dhcp6d run` was asked to run.
pub struct RunOptions {
    pub config: Config,
    /// Attach the XDP program to the served interfaces, and answer renewals there.
    pub xdp: bool,
    /// Where the XDP program's maps and links are pinned.
    pub bpf_dir: PathBuf,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The driver pieces, as start-up left them.
pub struct Daemon {
    serve: Serve,
    relaying: Option<Relaying>,
    xdp: Option<XdpProgram>,
    control_path: PathBuf,
}

impl Daemon {
    /// Hands a batch of queued inputs to the engines and carries out what they decided.
    async fn handle(&mut self, inputs: impl Iterator<Item = Input>) {
        let handled = dispatch::handle_batch(&mut self.serve, self.relaying.as_mut(), inputs, self.xdp.as_ref());
        // Relayed datagrams hold no lease of ours: they go at once.
        self.serve.send_now(handled.relayed);
        self.serve.submit(handled.batch);
        if let Some(r) = self.relaying.as_mut() {
            r.after_batch(handled.frames).await;
        }
    }

    async fn tick(&mut self) {
        if let Some(r) = self.relaying.as_mut() {
            r.tick(self.xdp.as_mut()).await;
        }
        self.serve.tick(now());
    }

    /// What was handed over is made durable and its replies sent.
    fn stop(mut self) {
        if let Some(r) = self.relaying.as_mut() {
            r.stop();
        }
        self.serve.finish();
        let _ = std::fs::remove_file(&self.control_path);
    }
}

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
    }
    daemon.stop();
    info!("stopped");
    Ok(())
}
