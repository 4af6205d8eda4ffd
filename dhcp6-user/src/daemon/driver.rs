//! The daemon's driver pieces together, as start-up left them: what a batch of inputs, a tick
//! and a stop do across them. The loop in [`super::run`] calls these.

use std::path::PathBuf;

use super::{
    dispatch, failover::Partnership, input::now, input::Input, live_trace::Tracing, relaying::Relaying, reload::Reload,
    serve::Serve,
};
use crate::{
    control::{Answer, Request},
    xdp::XdpProgram,
};

/// The driver pieces, as start-up left them.
pub struct Daemon {
    pub serve: Serve,
    pub relaying: Option<Relaying>,
    /// This server's side of a failover pair, when it is one.
    pub failover: Option<Partnership>,
    pub xdp: Option<XdpProgram>,
    /// The live traces running (`dhcp6d trace`).
    pub tracing: Tracing,
    pub control_path: PathBuf,
    /// The configuration file, read again on SIGHUP and `dhcp6d reload`.
    pub reload: Reload,
}

impl Daemon {
    /// Hands a batch of queued inputs to the engines and carries out what they decided.
    pub async fn handle(&mut self, inputs: impl Iterator<Item = Input>) {
        let handled = dispatch::handle_batch(
            &mut self.serve,
            self.relaying.as_mut(),
            inputs,
            self.xdp.as_ref(),
            &mut self.tracing,
        );
        // Relayed datagrams hold no lease of ours: they go at once.
        self.serve.send_now(handled.relayed);
        let changed = match self.failover.is_some() {
            true => handled.batch.changes.clone(),
            false => Vec::new(),
        };
        self.serve.submit(handled.batch);
        let now = now();
        if let Some(f) = self.failover.as_mut() {
            f.link_events(&mut self.serve, handled.failover, now);
            // The partner hears after the clients (RFC 8156 section 4.3, lazy update).
            f.changed(&mut self.serve, &changed, now);
        }
        for (request, answer) in handled.failover_requests {
            let value = match (self.failover.as_mut(), request) {
                (None, _) => Answer::Failover(None),
                (Some(f), Request::FailoverPartnerDown) => match f.partner_down(&mut self.serve, now) {
                    Ok(()) => Answer::Failover(f.answer(&self.serve.server, now).map(Box::new)),
                    Err(e) => Answer::error(e),
                },
                (Some(f), _) => Answer::Failover(f.answer(&self.serve.server, now).map(Box::new)),
            };
            let _ = answer.send(value);
        }
        if let Some(r) = self.relaying.as_mut() {
            r.after_batch(handled.frames).await;
        }
        for answer in handled.reloads {
            let _ = answer.send(self.reload());
        }
        for (pools, answer) in handled.metrics {
            let _ = answer.send(Box::new(self.metrics_snapshot(pools, now)));
        }
    }

    /// Reads the configuration file again and runs from it, or keeps the running one and
    /// says why (logged either way).
    pub fn reload(&mut self) -> Answer {
        match self.reload.reload(&mut self.serve, self.relaying.as_mut()) {
            Ok(done) => {
                // New servers may be behind interfaces XDP is not attached to yet.
                if let (Some(r), Some(program)) = (self.relaying.as_mut(), self.xdp.as_mut()) {
                    r.follow_upstream(program);
                }
                Answer::Reloaded(done)
            }
            Err(e) => Answer::error(format!("reload refused: {e}")),
        }
    }

    /// Once a second.
    pub async fn tick(&mut self) {
        self.tracing.forget_ended();
        if let Some(r) = self.relaying.as_mut() {
            r.tick(self.xdp.as_mut()).await;
        }
        let now = now();
        let changed = self.serve.tick(now);
        if let Some(f) = self.failover.as_mut() {
            f.changed(&mut self.serve, &changed, now);
            f.tick(&mut self.serve, now);
        }
    }

    /// One line for the service manager's status: what dhcp6d serves and how.
    pub fn status(&self) -> String {
        let interfaces = self.serve.listeners.iter().filter_map(|l| l.interface.as_deref()).collect::<Vec<_>>();
        let xdp = match &self.xdp {
            Some(_) => "XDP attached",
            None => "without XDP",
        };
        let relay = match &self.relaying {
            Some(_) => ", relaying",
            None => "",
        };
        format!(
            "serving {} leases on {} ({xdp}{relay})",
            self.serve.server.lease_count(),
            match interfaces.is_empty() {
                true => "relayed links only".to_string(),
                false => interfaces.join(", "),
            }
        )
    }

    /// Why the daemon must stop, if it must (the failover state could not be written).
    pub fn fatal(&self) -> Option<&str> {
        self.failover.as_ref().and_then(|f| f.fatal.as_deref())
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
