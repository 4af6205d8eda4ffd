//! The daemon's driver pieces together, as start-up left them: what a batch of inputs, a tick
//! and a stop do across them. The loop in [`super::run`] calls these.

use std::path::PathBuf;

use super::{dispatch, input::now, input::Input, relaying::Relaying, serve::Serve};
use crate::xdp::XdpProgram;

/// The driver pieces, as start-up left them.
pub struct Daemon {
    pub serve: Serve,
    pub relaying: Option<Relaying>,
    pub xdp: Option<XdpProgram>,
    pub control_path: PathBuf,
}

impl Daemon {
    /// Hands a batch of queued inputs to the engines and carries out what they decided.
    pub async fn handle(&mut self, inputs: impl Iterator<Item = Input>) {
        let handled = dispatch::handle_batch(&mut self.serve, self.relaying.as_mut(), inputs, self.xdp.as_ref());
        // Relayed datagrams hold no lease of ours: they go at once.
        self.serve.send_now(handled.relayed);
        self.serve.submit(handled.batch);
        if let Some(r) = self.relaying.as_mut() {
            r.after_batch(handled.frames).await;
        }
    }

    /// Once a second.
    pub async fn tick(&mut self) {
        if let Some(r) = self.relaying.as_mut() {
            r.tick(self.xdp.as_mut()).await;
        }
        self.serve.tick(now());
    }

    /// What was handed over is made durable and its replies sent.
    pub fn stop(mut self) {
        if let Some(r) = self.relaying.as_mut() {
            r.stop();
        }
        self.serve.finish();
        let _ = std::fs::remove_file(&self.control_path);
    }
}
