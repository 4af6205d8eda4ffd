//! The live trace's driver piece: who traces (each `dhcp6d trace` on the control socket, with
//! its filter), what XDP is told to report (nothing while nobody traces; the MACs traced, or
//! every DHCPv6 frame when a trace names no MAC), and the events going to each trace. A trace
//! that cannot keep up loses events (counted in its stream's end), never slows the engine.

use std::{collections::HashSet, os::fd::AsFd, os::fd::OwnedFd, time::SystemTime};

use dhcp6_common::trace::{TraceConfig, TraceMac, TraceReport};
use tokio::{io::unix::AsyncFd, sync::mpsc};
use tracing::{info, warn};

use crate::{
    trace::{TraceEvent, TraceFilter},
    xdp::TraceMaps,
};

/// Events queued for one trace before it loses them.
pub const TRACE_QUEUE: usize = 4096;

/// A trace: its filter and where its events go.
struct Subscriber {
    filter: TraceFilter,
    events: mpsc::Sender<TraceEvent>,
}

/// Every running trace, and XDP's trace maps when XDP runs.
pub struct Tracing {
    subscribers: Vec<Subscriber>,
    xdp: Option<(TraceMaps, AsyncFd<OwnedFd>)>,
    /// The MACs written to XDP's map now.
    macs: HashSet<[u8; 6]>,
}

impl Tracing {
    /// Tracing, off; with XDP's maps (and the ring's descriptor to wait on) when XDP runs.
    pub fn new(maps: Option<TraceMaps>) -> Tracing {
        let xdp = maps.and_then(|m| {
            let fd = m.ring.as_fd().try_clone_to_owned().ok()?;
            // SAFETY: the AsyncFd owns the descriptor, so it stays open for as long as it is
            // registered.
            match unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) } {
                Ok(fd) => Some((m, fd)),
                Err(e) => {
                    warn!(error = %e, "the XDP trace ring cannot be waited on: traces show what dhcp6d handles only");
                    None
                }
            }
        });
        Tracing { subscribers: Vec::new(), xdp, macs: HashSet::new() }
    }

    /// Whether anyone traces: nothing is built for a trace otherwise.
    pub fn on(&self) -> bool {
        !self.subscribers.is_empty()
    }

    /// A new trace.
    pub fn subscribe(&mut self, filter: TraceFilter, events: mpsc::Sender<TraceEvent>) {
        info!(filter = ?filter, "trace started");
        self.subscribers.push(Subscriber { filter, events });
        self.tell_xdp();
    }

    /// Hands `event` to each trace whose filter takes it.
    pub fn emit(&mut self, event: TraceEvent) {
        let mut gone = false;
        for s in &self.subscribers {
            if s.filter.matches(&event) {
                match s.events.try_send(event.clone()) {
                    Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                    Err(mpsc::error::TrySendError::Closed(_)) => gone = true,
                }
            }
        }
        if gone {
            self.forget_ended();
        }
    }

    /// Forgets the traces whose reader went (the client closed); XDP follows.
    pub fn forget_ended(&mut self) {
        let before = self.subscribers.len();
        self.subscribers.retain(|s| !s.events.is_closed());
        if self.subscribers.len() != before {
            info!(ended = before - self.subscribers.len(), running = self.subscribers.len(), "trace ended");
            self.tell_xdp();
        }
    }

    /// Writes what XDP must report: off when nobody traces; every frame when a trace names no
    /// MAC; else the traced MACs.
    fn tell_xdp(&mut self) {
        let on = self.on();
        let wanted: Option<HashSet<[u8; 6]>> = self.subscribers.iter().map(|s| s.filter.xdp_mac()).collect();
        let Some((maps, _)) = self.xdp.as_mut() else { return };
        let all = wanted.is_none() && on;
        let wanted = wanted.unwrap_or_default();
        let key = |mac: &[u8; 6]| -> TraceMac { [mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0] };
        for gone in self.macs.difference(&wanted) {
            let _ = maps.macs.remove(&key(gone));
        }
        for new in wanted.difference(&self.macs) {
            if let Err(e) = maps.macs.insert(key(new), 0, 0) {
                warn!(error = %e, "XDP cannot trace one more MAC: its trace shows what dhcp6d handles only");
            }
        }
        self.macs = wanted;
        let config = TraceConfig { on: u32::from(on), all: u32::from(all) };
        if let Err(e) = maps.config.set(0, config, 0) {
            warn!(error = %e, "switching XDP's trace failed");
        }
    }

    /// Waits until XDP has reports; never while nobody traces or without XDP.
    pub async fn xdp_due(&mut self) {
        match self.xdp.as_ref() {
            Some((_, fd)) if self.on() => {
                if let Ok(mut guard) = fd.readable().await {
                    guard.clear_ready();
                }
            }
            _ => std::future::pending().await,
        }
    }

    /// Every report XDP made, to the traces.
    pub fn take_xdp(&mut self) {
        let Some((maps, _)) = self.xdp.as_mut() else { return };
        let time = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let mut events = Vec::new();
        while let Some(item) = maps.ring.next() {
            if item.len() < std::mem::size_of::<TraceReport>() {
                continue;
            }
            // SAFETY: XDP writes whole `TraceReport`s; the item holds at least one, and its
            // integers and bytes take any bit pattern.
            let r: TraceReport = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            let captured = (r.captured as usize).min(r.frame.len());
            let interface = super::socket::if_name(r.ifindex);
            events.push(crate::trace::xdp_event(
                time,
                interface,
                r.verdict,
                r.why,
                r.len as usize,
                &r.frame[..captured],
            ));
        }
        for e in events {
            self.emit(e);
        }
    }
}
