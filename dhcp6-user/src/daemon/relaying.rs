//! The relay's driver piece: the relay engine with its XDP side, its packet sockets for
//! tagged clients, the delegated-prefix routes it installs and the journal of its user
//! entries.

use std::{net::SocketAddrV6, os::fd::OwnedFd, path::Path, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use tokio::{io::unix::AsyncFd, sync::mpsc, time::Interval};
use tracing::{info, warn};

use super::{
    input::now, input::Input, relay_users::UserJournal, relay_xdp::RelayXdp, sender::Outgoing, socket::Listener,
    socket::Role, vlan_frames::VlanFrames,
};
use crate::{
    netlink::{PdRoute, PdRoutes},
    relay::{PdRouteIntent, Relay, RelayDrop, RelayOut, RouteChange},
    xdp::{RelayMaps, XdpProgram},
};

/// The relay and what carries its decisions out.
pub struct Relaying {
    pub relay: Relay,
    /// The relay's maps in XDP, when XDP runs.
    xdp: Option<RelayXdp>,
    /// XDP's report ring (the Replies it relayed), watched for readiness.
    reports: Option<AsyncFd<OwnedFd>>,
    /// XDP wakes dhcp6d for its reports only once many wait: they are read this often too.
    report_tick: Interval,
    /// Tagged clients, which the kernel's stack does not take, come and go as frames.
    vlan_frames: Option<Arc<VlanFrames>>,
    routes: PdRoutes,
    /// The user entries across restarts.
    users: Option<UserJournal>,
    listeners: Arc<Vec<Listener>>,
    /// Interfaces XDP is attached to (or was tried on), so that upstream ones are added once.
    attached: Vec<String>,
}

impl Relaying {
    /// Starts relaying: the XDP maps (`maps`, when XDP runs), the packet sockets for tagged
    /// clients (their readers feed `tx`), the routes found at start, the user entries kept.
    pub async fn start(
        mut relay: Relay,
        maps: Option<RelayMaps>,
        listeners: Arc<Vec<Listener>>,
        state_dir: &Path,
        attached: Vec<String>,
        tx: &mpsc::Sender<Input>,
    ) -> Result<Relaying> {
        let mut xdp = maps.map(|m| RelayXdp::new(m, &relay));
        let reports = match &xdp {
            Some(x) => {
                let fd = x.ring_fd()?;
                // SAFETY: the AsyncFd owns the descriptor, so it stays open for as long as it is
                // registered.
                let registered = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
                Some(registered.context("waiting on the XDP relay's reports")?)
            }
            None => None,
        };
        let vlan_frames = VlanFrames::open(relay.config())?;
        if let Some(v) = &vlan_frames {
            for port in 0..v.ports() {
                tokio::spawn(v.clone().read_loop(port, tx.clone()));
            }
        }
        let routes = PdRoutes::connect(relay.config().route_protocol, relay.config().route_metric)
            .context("opening netlink for delegated-prefix routes")?;
        reconcile_routes(&routes, &mut relay, &listeners).await;
        // Restored entries claim their routes (added if missing); the others wait a hold.
        let users = match UserJournal::open(state_dir) {
            Ok((journal, saved)) => {
                let restored = relay.restore_users(saved, now());
                info!(entries = restored, "relay user entries restored");
                Some(journal)
            }
            Err(e) => {
                warn!(error = %e, "the relay's user entries are not kept across restarts");
                None
            }
        };
        if let Some(x) = xdp.as_mut() {
            // Replies XDP carried while no dhcp6d ran, then the maps.
            let taken = x.take_reports(&mut relay, now());
            info!(replies = taken, "replies relayed by XDP while stopped learnt from");
            x.sync(&relay, now());
        }
        let mut report_tick = tokio::time::interval(Duration::from_millis(dhcp6_common::relay::RELAY_REPORT_EVERY_MS));
        report_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut relaying =
            Relaying { relay, xdp, reports, report_tick, vlan_frames, routes, users, listeners, attached };
        relaying.apply_routes().await;
        Ok(relaying)
    }

    /// Where a relayed datagram goes: as a frame to a tagged client, or through a socket.
    pub fn route(&self, out: RelayOut, relayed: &mut Vec<Outgoing>, frames: &mut Vec<RelayOut>) {
        match (out.interface, &self.vlan_frames) {
            (Some(access), Some(v)) if v.carries(access) => frames.push(out),
            _ => relayed.extend(relay_out(&self.listeners, out)),
        }
    }

    /// After a batch: its frames down to tagged clients, and the routes it changed.
    pub async fn after_batch(&mut self, frames: Vec<RelayOut>) {
        if let Some(v) = &self.vlan_frames {
            for out in frames {
                if let Err(e) = v.send(&out) {
                    warn!(destination = %out.destination, error = %e, "sending a tagged frame down failed");
                }
            }
        }
        self.apply_routes().await;
    }

    /// Once a second: XDP's counts, servers' liveness, routes, user entries.
    pub async fn tick(&mut self, program: Option<&mut XdpProgram>) {
        let now = now();
        if let Some(x) = self.xdp.as_mut() {
            x.count(&mut self.relay, now);
        }
        if let Some(v) = &self.vlan_frames {
            let ordering = std::sync::atomic::Ordering::Relaxed;
            self.relay.count_dropped(RelayDrop::BadFrame, v.dropped.swap(0, ordering));
            self.relay.count_dropped(RelayDrop::QueueFull, v.queue_full.swap(0, ordering));
        }
        self.relay.tick(now);
        if let Some(x) = self.xdp.as_mut() {
            // Servers marked down or back up move their buckets.
            x.sync(&self.relay, now);
        }
        if let (Some(program), Some(x)) = (program, self.xdp.as_ref()) {
            // Routes toward the servers may come later (a routing daemon still converging) or
            // move: XDP follows them to new upstream interfaces.
            attach_upstream(program, x.upstream_interfaces(), &mut self.attached);
        }
        self.apply_routes().await;
        self.keep_users(false);
    }

    /// Waits until XDP's reports are due: its ring says so, or their tick comes. Never, when
    /// XDP does not relay.
    pub async fn reports_due(&mut self) {
        let Some(reports) = self.reports.as_ref() else { return std::future::pending().await };
        tokio::select! {
            ready = reports.readable() => {
                if let Ok(mut guard) = ready {
                    guard.clear_ready();
                }
            }
            _ = self.report_tick.tick() => {}
        }
    }

    /// Learns from the Replies XDP relayed.
    pub async fn take_reports(&mut self) {
        if let Some(x) = self.xdp.as_mut() {
            x.take_reports(&mut self.relay, now());
            self.apply_routes().await;
        }
    }

    /// Learns what XDP relayed last, and saves the user entries whole.
    pub fn stop(&mut self) {
        if let Some(x) = self.xdp.as_mut() {
            x.take_reports(&mut self.relay, now());
        }
        self.keep_users(true);
    }

    /// Applies the relay's route decisions to the kernel.
    async fn apply_routes(&mut self) {
        for change in self.relay.take_route_changes() {
            let (RouteChange::Replace(intent) | RouteChange::Remove(intent)) = change;
            let Some(ifindex) = access_ifindex(&self.listeners, intent.access) else { continue };
            let route = PdRoute { prefix: intent.prefix, via: intent.via, ifindex };
            let result = match change {
                RouteChange::Replace(_) => self.routes.replace(&route).await,
                RouteChange::Remove(_) => self.routes.remove(&route).await,
            };
            if let Err(e) = result {
                warn!(prefix = %route.prefix, via = %route.via, error = %e, "changing a delegated-prefix route failed");
            }
        }
    }

    /// Journals the user entry changes; folds the journal into a snapshot once it has
    /// outgrown the entries, or when `stopping`.
    fn keep_users(&mut self, stopping: bool) {
        let changes = self.relay.take_user_changes();
        let Some(journal) = self.users.as_mut() else { return };
        if let Err(e) = journal.append(&changes) {
            warn!(error = %e, "journalling the relay's user entries failed");
        }
        if stopping || journal.wants_snapshot(self.relay.user_count()) {
            if let Err(e) = journal.snapshot(&self.relay.users()) {
                warn!(error = %e, "saving the relay's user entries failed");
            }
        }
    }
}

/// Waits until the relay's XDP reports are due; never, without a relay.
pub async fn reports_due(relaying: Option<&mut Relaying>) {
    match relaying {
        Some(r) => r.reports_due().await,
        None => std::future::pending().await,
    }
}

/// The interface index of relay access interface `access`.
fn access_ifindex(listeners: &[Listener], access: usize) -> Option<u32> {
    listeners.iter().find(|l| l.role == Role::RelayAccess(access)).map(|l| l.index)
}

/// The listener a relay's datagram leaves from: its access interface going down (with the
/// interface's scope on the link-local destination), the unicast one going up.
fn relay_out(listeners: &[Listener], out: RelayOut) -> Option<Outgoing> {
    let (listener, scope) = match out.interface {
        Some(access) => {
            let i = listeners.iter().position(|l| l.role == Role::RelayAccess(access))?;
            (i, listeners[i].index)
        }
        None => (listeners.iter().position(|l| l.role == Role::Unicast)?, 0),
    };
    let d = out.destination;
    Some(Outgoing {
        listener,
        payload: out.payload,
        destination: SocketAddrV6::new(*d.ip(), d.port(), 0, scope),
        source: None,
        peer: None,
    })
}

/// At start: routes of ours on an access interface wait for a Reply to claim them (for the
/// configured hold); routes of ours anywhere else are removed.
async fn reconcile_routes(routes: &PdRoutes, relay: &mut Relay, listeners: &[Listener]) {
    let found = match routes.ours().await {
        Ok(found) => found,
        Err(e) => {
            warn!(error = %e, "listing delegated-prefix routes failed");
            return;
        }
    };
    for route in found {
        let access = listeners.iter().find_map(|l| match l.role {
            Role::RelayAccess(a) if l.index == route.ifindex => Some(a),
            _ => None,
        });
        match access {
            Some(access) => relay.adopt_route(PdRouteIntent { prefix: route.prefix, via: route.via, access }, now()),
            None => {
                if let Err(e) = routes.remove(&route).await {
                    warn!(prefix = %route.prefix, error = %e, "removing a stale route failed");
                }
            }
        }
    }
}

/// Attaches the XDP program to the `upstream` interfaces (toward the relay's servers) it is
/// not on yet, and adds them to `attached`.
fn attach_upstream(program: &mut XdpProgram, upstream: Vec<String>, attached: &mut Vec<String>) {
    for i in upstream {
        if attached.contains(&i) {
            continue;
        }
        match program.attach_pinned(&i) {
            Ok(_) => info!(interface = %i, "XDP attached toward the relay's servers"),
            Err(e) => warn!(interface = %i, error = %e, "attaching XDP toward the relay's servers failed"),
        }
        // Tried once: a failure is not retried every second.
        attached.push(i);
    }
}
