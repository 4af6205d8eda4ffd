//! Start-up: the interfaces and their roles, the server's identity and leases, XDP attached
//! (taking over an earlier dhcp6d's pins), the sockets and their readers, the commit and send
//! threads, the relay, the control socket. What it builds is the [`Daemon`] the loop drives.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{
    committer, control_socket, driver::Daemon, failover::Partnership, identity, input::now, input::Input, input::QUEUE,
    input::SHED_BACKLOG, live_trace, metrics_endpoint, reader, relay_xdp, relaying::Relaying,
    renewal_upkeep::RenewalUpkeep, sender, serve::Serve, socket, socket::Listener, socket::Role,
    storm_guard::StormGuard, xsk,
};
use crate::{
    config::{Config, DaemonSettings, LeaseDatabase},
    json::hex,
    lease_store::LeaseStore,
    relay::{Relay, Vlans},
    server::Server,
    store::{
        postgresql::{listener, DatabaseHealth, Postgres, PostgresSettings},
        Journal, JOURNAL_FILE,
    },
    xdp::XdpProgram,
};

/// How `dhcp6d run` was asked to run.
pub struct RunOptions {
    pub config: Config,
    /// The file `config` was read from: SIGHUP and `dhcp6d reload` read it again.
    pub config_path: PathBuf,
    /// Attach the XDP program to the served interfaces, and answer renewals there.
    pub xdp: bool,
    /// Where the XDP program's maps and links are pinned.
    pub bpf_dir: PathBuf,
}

/// The interfaces dhcp6d listens on, each with its role, and every interface XDP goes on
/// (those, the relay's tagged-only access interfaces, and the interfaces toward the relay's
/// servers, whose Relay-Replies come in there).
fn interfaces(config: &Config, relay: Option<&Relay>) -> (Vec<(String, Role)>, Vec<String>) {
    let served = config.server.subnets.iter().filter_map(|s| s.interface.clone()).map(|i| (i, Role::Serve));
    let access = config.relay.iter().flat_map(|r| r.interfaces.iter().enumerate());
    // Untagged clients come through a UDP socket on their interface; tagged ones, which the
    // kernel's stack does not take, as frames (see `vlan_frames`).
    let relayed =
        access.clone().filter(|(_, a)| a.vlans == Vlans::NONE).map(|(n, a)| (a.name.clone(), Role::RelayAccess(n)));
    let roles: Vec<(String, Role)> = served.chain(relayed).collect();
    let mut interfaces: Vec<String> = roles.iter().map(|(i, _)| i.clone()).collect();
    let more = access.map(|(_, a)| a.name.clone()).chain(relay.map(relay_xdp::upstream_interfaces).unwrap_or_default());
    for i in more {
        if !interfaces.contains(&i) {
            interfaces.push(i);
        }
    }
    (roles, interfaces)
}

/// Runs `f` on a thread of its own and waits for it: the database client blocks on a
/// runtime of its own, which it may not do on the daemon's.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// The shared lease database a daemon runs with: what its listener needs.
struct SharedDatabase {
    settings: PostgresSettings,
    application: String,
    health: Arc<DatabaseHealth>,
}

/// The lease store the configuration names, open: the journal in `state_dir`, or the
/// PostgreSQL database (its rows written as `duid`'s).
fn open_store(settings: &DaemonSettings, duid: &[u8]) -> Result<(Box<dyn LeaseStore>, Option<SharedDatabase>, String)> {
    match &settings.lease_database {
        LeaseDatabase::Journal => {
            let path = settings.state_dir.join(JOURNAL_FILE);
            let journal =
                Journal::open(&path).with_context(|| format!("opening the lease journal {}", path.display()))?;
            Ok((Box::new(journal), None, format!("the lease journal {}", path.display())))
        }
        LeaseDatabase::Postgresql(pg) => {
            let what = format!("the lease database {} on {}:{}", pg.database, pg.host, pg.port);
            let store = Postgres::open(pg, duid).with_context(|| format!("opening {what}"))?;
            let shared = SharedDatabase {
                settings: pg.clone(),
                application: store.application().to_string(),
                health: store.health(),
            };
            Ok((Box::new(store), Some(shared), what))
        }
    }
}

/// The server with every lease the store holds, and the store, open.
fn load_leases(
    server: &mut Server,
    settings: &DaemonSettings,
) -> Result<(Box<dyn LeaseStore>, Option<SharedDatabase>)> {
    let started = std::time::Instant::now();
    let (mut store, shared, what) = open_store(settings, server.duid())?;
    store.load(&mut |change| server.restore(change)).with_context(|| format!("loading {what}"))?;
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
    Ok((store, shared))
}

/// Starts everything; the receiver is the engine's queue.
pub async fn start(options: RunOptions) -> Result<(Daemon, mpsc::Receiver<Input>)> {
    let config = options.config;
    let reload = super::reload::Reload::new(options.config_path, config.clone());
    let mut relay = config.relay.clone().map(Relay::new);
    let (roles, interfaces) = interfaces(&config, relay.as_ref());
    let settings = config.daemon;
    let duid = identity::load_or_create(&settings.state_dir, interfaces.first().map(String::as_str))?;
    info!(duid = %hex(&duid), "server identity");
    if let (Some(r), true) = (relay.as_mut(), config.leasequery.relay_id_from_duid) {
        // `relay_id = "duid"`: the relay's Relay-ID is the identity just loaded.
        r.set_relay_id(Some(duid.clone()));
    }
    let mut server = Server::new(config.server, duid.clone(), Vec::new());
    // Reconfigure Keys (RFC 9915 section 20.4) must be cryptographically strong: rand's
    // thread generator is a CSPRNG seeded from the system's.
    server.enable_reconfigure(Box::new(|buf: &mut [u8]| rand::fill(buf)));
    server.set_leasequery_access(config.leasequery.access.clone());
    if matches!(settings.lease_database, LeaseDatabase::Postgresql(_)) {
        // Other servers search the same pools: each starts where its identity says.
        let seed = server
            .duid()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u128, |h, b| (h ^ u128::from(*b)).wrapping_mul(0x0100_0000_01b3));
        server.spread_searches(seed);
    }
    if options.xdp {
        // Before any lease is bound: bound leases are made durable a horizon past their
        // valid lifetime, which is how long XDP may answer their renewals alone.
        server.enable_fast_path();
    }
    // The kernel verifies the XDP programs on one core while the leases load on another: each
    // takes most of a second with a million leases, and neither needs the other. Nothing is
    // attached before the leases are loaded.
    let loading = options.xdp.then(|| {
        let (dir, capacity) = (options.bpf_dir.clone(), settings.fast_path_bindings);
        std::thread::Builder::new().name("dhcp6d-xdp-load".into()).spawn(move || {
            XdpProgram::load_pinned(&dir, capacity)
                .with_context(|| format!("loading the XDP program with its maps pinned under {}", dir.display()))
        })
    });
    let (mut store, shared) = off_runtime(|| load_leases(&mut server, &settings))?;
    let failover = match config.failover {
        Some(f) => Some(Partnership::new(f, settings.state_dir.clone(), &mut server, now())?),
        None => None,
    };

    let served: Vec<String> = server.config().subnets.iter().filter_map(|s| s.interface.clone()).collect();
    let (mut xdp, mut renewal, relay_maps, shed, trace_maps, storm) = if let Some(loading) = loading {
        let program = loading
            .context("starting the thread that loads the XDP program")?
            .join()
            .map_err(|_| anyhow::anyhow!("the thread loading the XDP program panicked"))??;
        info!(interfaces = ?interfaces, "attaching XDP");
        let (mut program, renewal) =
            attach_xdp(program, &options.bpf_dir, &interfaces, &served, settings.fast_path_bindings)?;
        // Under overload, Solicits are shed in XDP, before they cost the stack anything.
        let shed = Arc::new(program.take_shed().context("opening the XDP shedding map")?);
        let relay_maps = match &relay {
            Some(_) => Some(program.take_relay().context("opening the XDP relay's maps")?),
            None => None,
        };
        let trace_maps = program.take_trace().context("opening the XDP trace's maps")?;
        let storm = program
            .take_storm(dhcp6_common::storm::StormConfig::OFF)
            .and_then(|maps| StormGuard::start(maps, settings.storm))
            .context("opening the XDP storm protection's maps")?;
        if let Some(s) = settings.storm {
            info!(rate = s.rate, burst = s.burst, "storm protection: each client's excess is cut in XDP");
        }
        (Some(program), Some(renewal), relay_maps, Some(shed), Some(trace_maps), Some(storm))
    } else {
        for i in &interfaces {
            if XdpProgram::unpin_link(&options.bpf_dir, i).unwrap_or(false) {
                info!(interface = %i, "detached the XDP program an earlier dhcp6d left pinned");
            }
        }
        if settings.storm.is_some() {
            warn!("[storm] needs XDP: with --no-xdp no client is limited");
        }
        (None, None, None, None, None, None)
    };
    if let Some(r) = renewal.as_mut() {
        // What XDP answered while no dhcp6d ran (the entries' stamps), then the map against
        // the store.
        let started = std::time::Instant::now();
        let changes = r.reconcile(&mut server);
        off_runtime(|| store.commit(&changes)).context("recording renewals the XDP fast path answered")?;
        info!(
            renewals = changes.len(),
            ms = started.elapsed().as_millis() as u64,
            "renewals answered by XDP while stopped recorded"
        );
        r.rewrite_all(&server);
        r.ensure_links(&server);
    }

    let listeners: Arc<Vec<Listener>> = Arc::new(socket::open(&roles)?);
    let (xsk_readers, xsk_senders) = match xdp.as_mut() {
        Some(program) if settings.af_xdp => open_xsks(program, &listeners),
        _ => (Vec::new(), Vec::new()),
    };
    let sender = sender::Sender::start(listeners.clone(), xsk_senders).context("starting the sender thread")?;
    let dropped = Arc::new(reader::Dropped::default());
    let (tx, rx) = mpsc::channel::<Input>(QUEUE);
    let shedding = reader::Shedding { backlog: SHED_BACKLOG, xdp: shed.clone() };
    for index in 0..listeners.len() {
        tokio::spawn(reader::read_loop(listeners.clone(), index, tx.clone(), shedding.clone(), dropped.clone()));
    }
    for (k, (rx, listener)) in xsk_readers.into_iter().enumerate() {
        tokio::spawn(reader::xsk_read_loop(rx, k, listener, tx.clone(), shedding.clone(), dropped.clone()));
    }
    let relaying = match relay {
        Some(relay) => {
            if relay_maps.is_some() {
                info!(upstream = ?relay_xdp::upstream_interfaces(&relay), "XDP relays between the access interfaces and these");
            }
            let rebuild =
                super::relaying::Rebuild { by: config.leasequery.rebuild, identity: duid.clone(), queue: tx.clone() };
            Some(
                Relaying::start(
                    relay,
                    relay_maps,
                    listeners.clone(),
                    &settings.state_dir,
                    interfaces.clone(),
                    &tx,
                    rebuild,
                )
                .await?,
            )
        }
        None => None,
    };
    if let Some(f) = &failover {
        f.connect(tx.clone())?;
    }
    let control = control_socket::bind(&settings.control_socket)?;
    let metrics = match settings.metrics_listen {
        Some(address) => Some(metrics_endpoint::bind(address).await?),
        None => None,
    };
    tokio::spawn(control_socket::serve(control, tx.clone()));
    if let Some(address) = config.leasequery.listen {
        let listener = super::leasequery_listener::bind(address)?;
        tokio::spawn(super::leasequery_listener::serve(listener, tx.clone()));
    }
    info!(interfaces = ?interfaces, control = %settings.control_socket.display(), "serving");

    let writer = renewal.as_mut().and_then(|r| r.take_writer()).map(|w| Box::new(w) as Box<dyn committer::MapWriter>);
    let committer = committer::Committer::start(store, writer, {
        let sender = sender.clone();
        move |replies| sender.send_replies(replies)
    })
    .context("starting the commit thread")?;
    if let Some(listener) = metrics {
        tokio::spawn(metrics_endpoint::serve(listener, tx.clone(), committer.histograms().clone()));
    }
    let mut serve = Serve::new(server, listeners, renewal, committer, sender, dropped, shed).with_storm(storm);
    if let Some(db) = shared {
        serve.set_database(db.health.clone());
        // Other servers' changes reach the table through the engine's queue, as datagrams do.
        let tx = tx.clone();
        let duid = serve.server.duid().to_vec();
        listener::spawn(db.settings, duid, db.application, db.health, move |changes| {
            if changes.is_empty() {
                return !tx.is_closed();
            }
            tx.blocking_send(Input::Learnt(changes)).is_ok()
        })
        .context("starting the lease database listener")?;
    }
    let tracing = live_trace::Tracing::new(trace_maps);
    Ok((Daemon { serve, relaying, failover, xdp, tracing, control_path: settings.control_socket, reload }, rx))
}

/// Attaches `program`, loaded with its maps pinned under `dir`, to `interfaces` through
/// pinned links (taking over those an earlier dhcp6d left); the fast path answers on the
/// `served` ones.
fn attach_xdp(
    mut program: XdpProgram,
    dir: &std::path::Path,
    interfaces: &[String],
    served: &[String],
    capacity: u32,
) -> Result<(XdpProgram, RenewalUpkeep)> {
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
            Err(e) => {
                warn!(interface = %name, error = %format!("{e:#}"), "no AF_XDP socket: read through the UDP socket")
            }
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
