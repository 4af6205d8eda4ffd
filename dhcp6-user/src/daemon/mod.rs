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
pub mod identity;
pub mod packet_socket;
pub mod reader;
pub mod relay_frames;
pub mod relay_users;
pub mod relay_xdp;
pub mod renewal_upkeep;
pub mod sender;
pub mod socket;
pub mod state_file;
pub mod vlan_frames;
pub mod xsk;

use std::{
    net::SocketAddrV6,
    os::unix::fs::PermissionsExt,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};
use tracing::{info, warn};

use crate::{
    codec::MessageType,
    config::Config,
    control::{Answer, Binding, Cleared, RelayServers, RelayUser, Request, StatisticsAnswer},
    json::hex,
    lease_store::LeaseStore,
    netlink::{PdRoute, PdRoutes},
    relay::{PdRouteIntent, Relay, RelayDrop, RelayOut, RouteChange, Vlans},
    server::{DropReason, Inbound, LeaseChange, Server},
    store::{Journal, JOURNAL_FILE},
    xdp::XdpProgram,
};
use renewal_upkeep::RenewalUpkeep;
use socket::{Listener, Role};

/// Most datagrams waiting for the engine; past this, new ones are dropped and counted.
const QUEUE: usize = 32768;
/// Most datagrams handled per batch.
const BATCH: usize = 1024;
/// Queued datagrams past which new Solicits are shed: about 100 ms of work at full rate, so
/// that a stall of the disk (an fdatasync can take that long) is caught up with, not shed,
/// while a load the server cannot keep up with still sheds new exchanges first.
const SHED_BACKLOG: usize = 16 * BATCH;

enum Input {
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
        answer: oneshot::Sender<Answer>,
    },
}

/// Datagrams dropped outside the engine.
struct Drops<'a> {
    /// By the readers, and by the kernel before them.
    read: &'a reader::Dropped,
    /// Solicits XDP shed.
    xdp_shed: Option<&'a crate::xdp::ShedSwitch>,
    /// Replies the kernel refused to send.
    send_failed: &'a AtomicU64,
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

/// Runs until SIGINT or SIGTERM.
pub async fn run(options: RunOptions) -> Result<()> {
    let config = options.config;
    let served = config.server.subnets.iter().filter_map(|s| s.interface.clone()).map(|i| (i, Role::Serve));
    let access = config.relay.iter().flat_map(|r| r.interfaces.iter().enumerate());
    // Untagged clients come through a UDP socket on their interface; tagged ones, which the
    // kernel's stack does not take, as frames (see `vlan_frames`).
    let relayed =
        access.clone().filter(|(_, a)| a.vlans == Vlans::NONE).map(|(n, a)| (a.name.clone(), Role::RelayAccess(n)));
    let roles: Vec<(String, Role)> = served.chain(relayed).collect();
    let mut interfaces: Vec<String> = roles.iter().map(|(i, _)| i.clone()).collect();
    for (_, a) in access {
        if !interfaces.contains(&a.name) {
            interfaces.push(a.name.clone());
        }
    }
    let mut relay = config.relay.clone().map(Relay::new);
    // XDP also runs where the relay's servers are reached: their Relay-Replies come in there.
    let upstream: Vec<String> = relay
        .as_ref()
        .map(relay_xdp::upstream_interfaces)
        .unwrap_or_default()
        .into_iter()
        .filter(|i| !interfaces.contains(i))
        .collect();
    interfaces.extend(upstream.iter().cloned());
    let duid = identity::load_or_create(&config.daemon.state_dir, interfaces.first().map(String::as_str))?;
    info!(duid = %hex(&duid), "server identity");
    let journal = config.daemon.state_dir.join(JOURNAL_FILE);
    let started = std::time::Instant::now();
    let daemon = config.daemon;
    let control_path = daemon.control_socket.clone();
    let mut server = Server::new(config.server, duid, Vec::new());
    if options.xdp {
        // Before any lease is bound: bound leases are made durable a horizon past their
        // valid lifetime, which is how long XDP may answer their renewals alone.
        server.enable_fast_path();
    }
    let mut store =
        Journal::open(&journal).with_context(|| format!("opening the lease journal {}", journal.display()))?;
    store
        .load(&mut |change| server.restore(change))
        .with_context(|| format!("loading the lease journal {}", journal.display()))?;
    server.shrink_to_fit();
    // Leases that ended while the server was down go back to the pool before anything else.
    let reclaimed = server.expire(now());
    store.commit(&reclaimed).context("recording leases that expired while stopped")?;
    info!(
        leases = server.lease_count(),
        reclaimed = reclaimed.len(),
        ms = started.elapsed().as_millis() as u64,
        "leases loaded"
    );

    let served: Vec<String> = server.config().subnets.iter().filter_map(|s| s.interface.clone()).collect();
    let mut shed_switch = None;
    let (mut xdp, mut fast, mut relay_fast) = if options.xdp {
        info!(interfaces = ?interfaces, "attaching XDP");
        let capacity = daemon.fast_path_bindings;
        let (mut program, fast) = attach_xdp(&options.bpf_dir, &interfaces, &served, capacity)?;
        // Under overload, Solicits are shed in XDP, before they cost the stack anything.
        shed_switch = Some(Arc::new(program.take_shed().context("opening the XDP shedding map")?));
        let relay_fast = match &relay {
            Some(r) => {
                let maps = program.take_relay().context("opening the XDP relay's maps")?;
                info!(upstream = ?upstream, "XDP relays between the access interfaces and these");
                Some(relay_xdp::RelayXdp::new(maps, r))
            }
            None => None,
        };
        (Some(program), Some(fast), relay_fast)
    } else {
        for i in &interfaces {
            if XdpProgram::unpin_link(&options.bpf_dir, i).unwrap_or(false) {
                info!(interface = %i, "detached the XDP program an earlier dhcp6d left pinned");
            }
        }
        (None, None, None)
    };
    if let Some(f) = fast.as_mut() {
        // What XDP answered while no dhcp6d ran (the entries' stamps), then the map against
        // the store.
        let changes = f.reconcile(&mut server);
        store.commit(&changes).context("recording renewals the XDP fast path answered")?;
        info!(renewals = changes.len(), "renewals answered by XDP while stopped recorded");
        f.rewrite_all(&server);
        f.ensure_links(&server);
    }

    let reports = match &relay_fast {
        Some(f) => {
            let fd = f.ring_fd()?;
            // SAFETY: as the renewal ring's, above.
            let registered =
                unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
            Some(registered.map_err(|e| anyhow::anyhow!("waiting on the XDP relay's reports: {e}"))?)
        }
        None => None,
    };
    let listeners: Arc<Vec<Listener>> = Arc::new(socket::open(&roles)?);
    let (xsk_readers, xsk_senders) = match xdp.as_mut() {
        Some(program) if daemon.af_xdp => open_xsks(program, &listeners),
        _ => (Vec::new(), Vec::new()),
    };
    let sender = sender::Sender::start(listeners.clone(), xsk_senders).context("starting the sender thread")?;
    let dropped = Arc::new(reader::Dropped::default());
    let (tx, mut rx) = mpsc::channel::<Input>(QUEUE);
    let shedding = reader::Shedding { backlog: SHED_BACKLOG, xdp: shed_switch.clone() };
    for index in 0..listeners.len() {
        tokio::spawn(reader::read_loop(listeners.clone(), index, tx.clone(), shedding.clone(), dropped.clone()));
    }
    for (k, (rx, listener)) in xsk_readers.into_iter().enumerate() {
        tokio::spawn(reader::xsk_read_loop(rx, k, listener, tx.clone(), shedding.clone(), dropped.clone()));
    }
    let vlan_frames = match &relay {
        Some(r) => vlan_frames::VlanFrames::open(r.config())?,
        None => None,
    };
    if let Some(v) = &vlan_frames {
        for port in 0..v.ports() {
            tokio::spawn(v.clone().read_loop(port, tx.clone()));
        }
    }
    let routes = match &relay {
        Some(r) => Some(
            PdRoutes::connect(r.config().route_protocol, r.config().route_metric)
                .context("opening netlink for delegated-prefix routes")?,
        ),
        None => None,
    };
    let state_dir = daemon.state_dir.clone();
    if let (Some(routes), Some(relay)) = (&routes, relay.as_mut()) {
        reconcile_routes(routes, relay, &listeners).await;
    }
    let mut user_journal = None;
    if let Some(r) = relay.as_mut() {
        // Restored entries claim their routes (added if missing); the others wait a hold.
        match relay_users::UserJournal::open(&state_dir) {
            Ok((journal, saved)) => {
                let restored = r.restore_users(saved, now());
                info!(entries = restored, "relay user entries restored");
                user_journal = Some(journal);
            }
            Err(e) => warn!(error = %e, "the relay's user entries are not kept across restarts"),
        }
    }
    if let (Some(f), Some(r)) = (relay_fast.as_mut(), relay.as_mut()) {
        // Replies XDP carried while no dhcp6d ran, then the maps.
        let taken = f.take_reports(r, now());
        info!(replies = taken, "replies relayed by XDP while stopped learnt from");
        f.sync(r, now());
    }
    if let (Some(routes), Some(relay)) = (&routes, relay.as_mut()) {
        apply_routes(routes, relay, &listeners).await;
    }
    let control = bind_control(&control_path)?;
    tokio::spawn(control_loop(control, tx.clone()));
    info!(interfaces = ?interfaces, control = %control_path.display(), "serving");

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // XDP wakes dhcp6d for its relay reports only once many wait: they are read this often.
    let mut report_tick = tokio::time::interval(Duration::from_millis(dhcp6_common::relay::RELAY_REPORT_EVERY_MS));
    report_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut batch = Vec::with_capacity(BATCH);
    let writer = fast.as_mut().and_then(|f| f.take_writer()).map(|w| Box::new(w) as Box<dyn committer::MapWriter>);
    let mut committer = committer::Committer::start(Box::new(store), writer, {
        let sender = sender.clone();
        move |replies| sender.send(replies)
    })
    .context("starting the commit thread")?;
    loop {
        tokio::select! {
            // A disk that stalls holds the engine back here: datagrams queue, then are shed.
            n = rx.recv_many(&mut batch, BATCH), if committer.in_flight() < committer::MAX_IN_FLIGHT => {
                if n == 0 {
                    break;
                }
                let drops = Drops { read: &dropped, xdp_shed: shed_switch.as_deref(), send_failed: &sender.failed };
                let mut engines = Engines { server: &mut server, relay: relay.as_mut(), fast: fast.as_mut() };
                let handled =
                    handle_batch(&mut engines, &listeners, vlan_frames.as_deref(), batch.drain(..), xdp.as_ref(), &drops);
                // Relayed datagrams hold no lease of ours: they go at once.
                sender.send(handled.relayed);
                if let Some(done) = committer.submit(handled.batch) {
                    heard(done, &mut server, fast.as_mut(), &mut committer);
                }
                if let Some(v) = &vlan_frames {
                    for out in handled.frames {
                        if let Err(e) = v.send(&out) {
                            warn!(destination = %out.destination, error = %e, "sending a tagged frame down failed");
                        }
                    }
                }
                if let (Some(routes), Some(relay)) = (&routes, relay.as_mut()) {
                    apply_routes(routes, relay, &listeners).await;
                }
            }
            Some(done) = committer.next() => {
                heard(done, &mut server, fast.as_mut(), &mut committer);
                // What else it said meanwhile, without going round the loop for each.
                while let Some(done) = committer.try_next() {
                    heard(done, &mut server, fast.as_mut(), &mut committer);
                }
            }
            _ = tick.tick() => {
                if let Some(r) = relay.as_mut() {
                    if let Some(f) = relay_fast.as_mut() {
                        f.count(r, now());
                    }
                    if let Some(v) = &vlan_frames {
                        r.count_dropped(RelayDrop::BadFrame, v.dropped.swap(0, Ordering::Relaxed));
                        r.count_dropped(RelayDrop::QueueFull, v.queue_full.swap(0, Ordering::Relaxed));
                    }
                    r.tick(now());
                    if let Some(f) = relay_fast.as_mut() {
                        // Servers marked down or back up move their buckets.
                        f.sync(r, now());
                    }
                    if let (Some(program), Some(f)) = (xdp.as_mut(), relay_fast.as_ref()) {
                        // Routes toward the servers may come later (a routing daemon still
                        // converging) or move: XDP follows them to new upstream interfaces.
                        attach_upstream(program, f.upstream_interfaces(), &mut interfaces);
                    }
                    if let Some(routes) = &routes {
                        apply_routes(routes, r, &listeners).await;
                    }
                    keep_users(r, user_journal.as_mut(), false);
                }
                let mut changes = server.expire(now());
                if let Some(f) = fast.as_mut() {
                    changes.extend(f.take_renewals(&mut server, renewal_upkeep::STAMP_READS));
                    f.ensure_links(&server);
                }
                let map = fast.as_mut().map(|f| f.ops(&server, &changes)).unwrap_or_default();
                if let Some(done) = committer.submit(committer::Batch { changes, map, ..Default::default() }) {
                    heard(done, &mut server, fast.as_mut(), &mut committer);
                }
                // Also finishes a background compaction whose snapshot is written.
                committer.tick(server.lease_count());
            }
            ready = async {
                tokio::select! {
                    r = reports.as_ref().expect("guarded").readable() => r.map(Some),
                    _ = report_tick.tick() => Ok(None),
                }
            }, if reports.is_some() => {
                if let Ok(Some(mut guard)) = ready {
                    guard.clear_ready();
                }
                if let (Some(f), Some(r)) = (relay_fast.as_mut(), relay.as_mut()) {
                    f.take_reports(r, now());
                    if let Some(routes) = &routes {
                        apply_routes(routes, r, &listeners).await;
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    if let (Some(f), Some(r)) = (relay_fast.as_mut(), relay.as_mut()) {
        f.take_reports(r, now());
    }
    // What was handed over is made durable and its replies sent.
    committer.finish();
    if let Some(Err(e)) = shed_switch.as_ref().map(|s| s.stop()) {
        warn!(error = %e, "stopping XDP's shedding failed (it lapses by itself)");
    }
    if let Some(r) = relay.as_mut() {
        keep_users(r, user_journal.as_mut(), true);
    }
    let _ = std::fs::remove_file(&control_path);
    info!("stopped");
    Ok(())
}

/// Opens AF_XDP sockets on the served interfaces (one per receive queue) and has XDP hand
/// their on-link clients' messages to them. An interface whose sockets cannot be opened is
/// read through its UDP socket alone (warned). Returns the receiving halves, each with the
/// listener of its interface, and the sending halves, in the same order.
fn open_xsks(program: &mut XdpProgram, listeners: &[Listener]) -> (Vec<(xsk::XskRx, usize)>, Vec<xsk::XskTx>) {
    let (mut readers, mut senders) = (Vec::new(), Vec::new());
    let mut maps = match program.take_xsks() {
        Ok(maps) => maps,
        Err(e) => {
            warn!(error = %e, "no AF_XDP sockets: clients are read through the UDP sockets");
            return (readers, senders);
        }
    };
    let mut links = 0;
    for (index, listener) in listeners.iter().enumerate().filter(|(_, l)| l.role == Role::Serve) {
        let Some(name) = &listener.interface else { continue };
        if links == dhcp6_common::xsk::XSK_LINKS {
            warn!(interface = %name, "no AF_XDP socket: too many interfaces; read through the UDP socket");
            continue;
        }
        let first = links * dhcp6_common::xsk::XSK_QUEUES;
        match open_link_xsks(&mut maps, name, listener.index, first) {
            Ok(pairs) => {
                info!(interface = %name, queues = pairs.len(), "AF_XDP sockets open: on-link clients bypass the IP stack");
                for (rx, tx) in pairs {
                    readers.push((rx, index));
                    senders.push(tx);
                }
                links += 1;
            }
            Err(e) => warn!(interface = %name, error = %e, "no AF_XDP socket: read through the UDP socket"),
        }
    }
    (readers, senders)
}

/// The AF_XDP sockets of interface `name` (`ifindex`), in slots from `first` of the map.
fn open_link_xsks(
    maps: &mut crate::xdp::XskMaps,
    name: &str,
    ifindex: u32,
    first: u32,
) -> Result<Vec<(xsk::XskRx, xsk::XskTx)>> {
    let (mac, link_local) = xsk::link_addresses(name, ifindex)?;
    let queues = xsk::rx_queues(name);
    if queues > dhcp6_common::xsk::XSK_QUEUES {
        anyhow::bail!("{queues} receive queues, more than {}", dhcp6_common::xsk::XSK_QUEUES);
    }
    let frames = xsk::rx_frames_per_queue(queues);
    let mut pairs = Vec::new();
    for queue in 0..queues {
        let (rx, tx) = xsk::open(ifindex, queue, frames, mac, link_local)
            .with_context(|| format!("opening the socket of receive queue {queue}"))?;
        maps.sockets.set(first + queue, rx.watch(), 0).context("adding the socket to XDP's map")?;
        pairs.push((rx, tx));
    }
    // Only now does XDP redirect there: every queue has its socket.
    maps.slots.insert(ifindex, first, 0).context("adding the interface to XDP's map")?;
    Ok(pairs)
}

/// Attaches the XDP program to the `upstream` interfaces (toward the relay's servers) it is
/// not on yet, and adds them to `interfaces`.
fn attach_upstream(program: &mut XdpProgram, upstream: Vec<String>, interfaces: &mut Vec<String>) {
    for i in upstream {
        if interfaces.contains(&i) {
            continue;
        }
        match program.attach_pinned(&i) {
            Ok(_) => info!(interface = %i, "XDP attached toward the relay's servers"),
            Err(e) => warn!(interface = %i, error = %e, "attaching XDP toward the relay's servers failed"),
        }
        // Tried once: a failure is not retried every second.
        interfaces.push(i);
    }
}

/// Journals the relay's user entry changes; folds the journal into a snapshot once it has
/// outgrown the entries, or when `stopping`.
fn keep_users(relay: &mut Relay, journal: Option<&mut relay_users::UserJournal>, stopping: bool) {
    let changes = relay.take_user_changes();
    let Some(journal) = journal else { return };
    if let Err(e) = journal.append(&changes) {
        warn!(error = %e, "journalling the relay's user entries failed");
    }
    if stopping || journal.wants_snapshot(relay.user_count()) {
        if let Err(e) = journal.snapshot(&relay.users()) {
            warn!(error = %e, "saving the relay's user entries failed");
        }
    }
}

/// The interface index of relay access interface `access`.
fn access_ifindex(listeners: &[Listener], access: usize) -> Option<u32> {
    listeners.iter().find(|l| l.role == Role::RelayAccess(access)).map(|l| l.index)
}

/// Applies the relay's route decisions to the kernel.
async fn apply_routes(routes: &PdRoutes, relay: &mut Relay, listeners: &[Listener]) {
    for change in relay.take_route_changes() {
        let (RouteChange::Replace(intent) | RouteChange::Remove(intent)) = change;
        let Some(ifindex) = access_ifindex(listeners, intent.access) else { continue };
        let route = PdRoute { prefix: intent.prefix, via: intent.via, ifindex };
        let result = match change {
            RouteChange::Replace(_) => routes.replace(&route).await,
            RouteChange::Remove(_) => routes.remove(&route).await,
        };
        if let Err(e) = result {
            warn!(prefix = %route.prefix, via = %route.via, error = %e, "changing a delegated-prefix route failed");
        }
    }
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

/// Loads the XDP program with its maps pinned under `dir` and attaches it to `interfaces`
/// through pinned links (taking over those an earlier dhcp6d left); the fast path answers on
/// the `served` ones.
fn attach_xdp(
    dir: &std::path::Path,
    interfaces: &[String],
    served: &[String],
    capacity: u32,
) -> Result<(XdpProgram, RenewalUpkeep)> {
    let mut program = XdpProgram::load_pinned(dir, capacity)
        .with_context(|| format!("loading the XDP program with its maps pinned under {}", dir.display()))?;
    for i in interfaces {
        let took_over = program.attach_pinned(i).with_context(|| format!("attaching XDP to {i}"))?;
        info!(interface = %i, took_over, "XDP attached");
    }
    let maps = program.take_fast_path().context("opening the fast path's maps")?;
    if maps.lease_capacity != capacity {
        // The map an earlier dhcp6d pinned is reused as it is, with the renewals XDP answered
        // while no dhcp6d ran. Removing it with dhcp6d stopped loses none of those clients'
        // leases (XDP tells no expiry past what the store holds); their stamps only let the
        // store's expiries move on.
        let pin = dir.join(dhcp6_common::PIN_LAYOUT).join(dhcp6_common::maps::LEASES);
        warn!(
            pinned = maps.lease_capacity,
            configured = capacity,
            pin = %pin.display(),
            "the pinned XDP lease map keeps its size: to resize it to fast_path_bindings, stop dhcp6d, remove the pin, and start it again"
        );
    }
    let mut indexes = std::collections::HashMap::new();
    for i in served {
        let index = socket::if_index(i).with_context(|| format!("no interface {i}"))?;
        indexes.insert(i.clone(), index);
    }
    Ok((program, RenewalUpkeep::new(maps, indexes)))
}

/// What handles datagrams: the server engine, and the relay agent if any.
struct Engines<'a> {
    server: &'a mut Server,
    relay: Option<&'a mut Relay>,
    /// The XDP fast path's maps, kept in step with the server's leases.
    fast: Option<&'a mut RenewalUpkeep>,
}

/// The listener a relay's datagram leaves from: its access interface going down (with the
/// interface's scope on the link-local destination), the unicast one going up.
fn relay_out(listeners: &[Listener], out: RelayOut) -> Option<sender::Outgoing> {
    let (listener, scope) = match out.interface {
        Some(access) => {
            let i = listeners.iter().position(|l| l.role == Role::RelayAccess(access))?;
            (i, listeners[i].index)
        }
        None => (listeners.iter().position(|l| l.role == Role::Unicast)?, 0),
    };
    let d = out.destination;
    Some(sender::Outgoing {
        listener,
        payload: out.payload,
        destination: SocketAddrV6::new(*d.ip(), d.port(), 0, scope),
        source: None,
        peer: None,
    })
}

/// What the commit thread said about a batch, as the engine takes it.
fn heard(
    done: committer::Done,
    server: &mut Server,
    fast: Option<&mut RenewalUpkeep>,
    committer: &mut committer::Committer,
) {
    match done {
        committer::Done::Committed => {}
        committer::Done::Refused(changes) => {
            server.store_failed(&changes);
            if let Some(f) = fast {
                // Their entries go from the lease map, after what is queued already (with the
                // commit thread gone, nothing is written anywhere any more).
                let map = f.refused(&changes);
                let _ = committer.submit(committer::Batch { map, ..Default::default() });
            }
        }
        committer::Done::WantsSnapshot => committer.compact(server.durable_leases()),
    }
}

/// What a batch of datagrams gave.
struct Handled {
    /// Relayed datagrams, to send now.
    relayed: Vec<sender::Outgoing>,
    /// What goes down to tagged clients, as frames.
    frames: Vec<RelayOut>,
    /// The server's lease changes and the replies that wait for them to be durable.
    batch: committer::Batch,
}

/// Handles a batch: every datagram through its engine. The server's lease changes, and the
/// replies and control answers that announce them, are for the commit thread.
fn handle_batch(
    engines: &mut Engines<'_>,
    listeners: &[Listener],
    vlan_frames: Option<&vlan_frames::VlanFrames>,
    inputs: impl Iterator<Item = Input>,
    xdp: Option<&XdpProgram>,
    drops: &Drops<'_>,
) -> Handled {
    let Engines { server, relay, fast } = engines;
    let now = now();
    let mut relayed = Vec::new();
    let mut frames = Vec::new();
    let mut route = |out: RelayOut, relayed: &mut Vec<_>| match (out.interface, vlan_frames) {
        (Some(access), Some(v)) if v.carries(access) => frames.push(out),
        _ => relayed.extend(relay_out(listeners, out)),
    };
    let mut batch = committer::Batch::default();
    for input in inputs {
        match input {
            Input::Datagram { listener, from, to, payload, peer } => {
                let role = listeners[listener].role;
                let is_relay_reply = payload.first() == Some(&(MessageType::RelayRepl as u8));
                // The relay takes what comes on its access interfaces, and Relay-Replies.
                let for_relay = match (relay.as_deref_mut(), role) {
                    (Some(r), Role::RelayAccess(access)) => Some(r.from_client(access, &payload, from, None, now)),
                    (Some(r), Role::Unicast) if is_relay_reply => Some(r.from_server(&payload, from, now)),
                    _ => None,
                };
                if let Some(out) = for_relay {
                    if let Some(out) = out {
                        route(out, &mut relayed);
                    }
                    continue;
                }
                // The unicast listener learns the interface from a link-local sender's scope;
                // global senders (relays) have none, and need no lookup.
                let by_scope = match listeners[listener].interface {
                    None if from.scope_id() != 0 => socket::if_name(from.scope_id()),
                    _ => None,
                };
                let interface = listeners[listener].interface.as_deref().or(by_scope.as_deref());
                let outcome = server.handle(&Inbound { payload: &payload, source: from, interface, now });
                batch.changes.extend(outcome.changes);
                if let Some(reply) = outcome.reply {
                    // Answers to unicast leave from the address they came to.
                    let source = to.filter(|a| !a.is_multicast() && (role == Role::Unicast || peer.is_some()));
                    batch.replies.push(sender::Outgoing {
                        listener,
                        payload: reply.payload,
                        destination: reply.destination,
                        source,
                        peer,
                    });
                }
            }
            Input::Frame { access, from, mac, payload } => {
                if let Some(out) =
                    relay.as_deref_mut().and_then(|r| r.from_client(access, &payload, from, Some(mac), now))
                {
                    route(out, &mut relayed);
                }
            }
            Input::Control { request, answer } => {
                let (value, control_changes) = control_answer(server, relay.as_deref(), request, xdp, drops, now);
                batch.changes.extend(control_changes);
                // Control answers, like replies, go out once what they announce is durable.
                batch.answers.push((answer, value));
            }
        }
    }
    if let Some(f) = fast.as_deref_mut() {
        batch.map = f.ops(server, &batch.changes);
    }
    Handled { relayed, frames, batch }
}

fn bind_control(path: &PathBuf) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

async fn control_loop(listener: UnixListener, tx: mpsc::Sender<Input>) {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let allowed = stream.peer_cred().is_ok_and(|c| c.uid() == 0 || c.uid() == me);
        tokio::spawn(control_connection(stream, allowed, tx.clone()));
    }
}

async fn control_connection(stream: UnixStream, allowed: bool, tx: mpsc::Sender<Input>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    if BufReader::new(read).read_line(&mut line).await.is_err() {
        return;
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

/// The answer to a control request, and the lease changes it made.
fn control_answer(
    server: &mut Server,
    relay: Option<&Relay>,
    request: Request,
    xdp: Option<&XdpProgram>,
    drops: &Drops<'_>,
    now: u64,
) -> (Answer, Vec<LeaseChange>) {
    if let Request::ClearConflicting { address } = request {
        let changes = server.clear_conflicting(address);
        return (Answer::Cleared(Cleared { cleared: changes.len() }), changes);
    }
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
        Request::Statistics => {
            let mut server = server.statistics().clone();
            let dropped = &mut server.dropped;
            dropped.set(DropReason::QueueFull, drops.read.queue_full.load(Ordering::Relaxed));
            let in_xdp = drops.xdp_shed.map_or(0, |s| s.shed());
            dropped.set(DropReason::ShedSolicit, drops.read.shed_solicits.load(Ordering::Relaxed) + in_xdp);
            dropped.set(DropReason::SocketFull, drops.read.socket_full.load(Ordering::Relaxed));
            dropped.set(DropReason::BadFrame, drops.read.bad_frames.load(Ordering::Relaxed));
            dropped.set(DropReason::SendFailed, drops.send_failed.load(Ordering::Relaxed));
            let xdp = match xdp.map(XdpProgram::counters) {
                Some(Ok(c)) => Some(c.by_verdict),
                _ => None,
            };
            Answer::Statistics(Box::new(StatisticsAnswer { server, xdp }))
        }
        Request::Pools => Answer::Pools(server.pool_counts()),
        Request::ClearConflicting { .. } => Answer::Cleared(Cleared { cleared: 0 }),
        Request::RelayUsers => Answer::RelayUsers(relay.map_or_else(Vec::new, |r| {
            let users = r.users().into_iter();
            users.map(|entry| RelayUser { expires_in: entry.expires.saturating_sub(now), entry }).collect()
        })),
        Request::RelayServers => Answer::RelayServers(
            relay.map(|r| Box::new(RelayServers { servers: r.servers(now), stats: r.stats().clone() })),
        ),
    };
    (value, Vec::new())
}
