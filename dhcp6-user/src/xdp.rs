//! Loading the XDP program into the kernel, attaching it to an interface, and reading its
//! counters and maps. The object is built by `build.rs` and embedded in the binary.
//!
//! A daemon loads it pinned ([`XdpProgram::load_pinned`]): its maps and its links to the
//! interfaces live under the pin directory, so that the fast path keeps answering while dhcp6d
//! restarts, and the next dhcp6d picks them up and swaps its own program in.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, ProgramArray, RingBuf, XskMap},
    programs::{links::FdLink, links::PinnedLink, ProgramError, Xdp, XdpMode},
    Ebpf, EbpfError, EbpfLoader,
};
use dhcp6_common::{
    counters::{self, Verdict},
    jobs, maps,
    relay::{AccessKey, ClientMacKey, InterfaceIdKey, RelayGroup, RelayLink, RelayServer},
    renewal::{LeaseEntry, LeaseKey, LinkEntry, LEASE_MAP_ENTRIES},
    storm::{StormConfig, StormKey, StormRecord, CUT_BY_DUID, CUT_BY_MAC},
    trace::{TraceConfig, TraceMac},
    MessageType, PIN_LAYOUT, XDP_PROGRAM,
};
use dhcp6_engine::{counters::Counts, renewal::Clock};

/// The XDP object, aligned as aya's ELF parser needs it.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dhcp6-ebpf"));

/// Why the XDP program could not be loaded, attached or read.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("loading the XDP object: {0}")]
    Load(#[from] EbpfError),
    #[error("XDP program: {0}")]
    Program(#[from] ProgramError),
    #[error("map {name}: {source}")]
    Map { name: &'static str, source: aya::maps::MapError },
    #[error("the XDP object has no {0}")]
    Missing(&'static str),
    #[error("pinning {path}: {message}")]
    Pin { path: PathBuf, message: String },
    #[error("per-CPU values for the possible CPUs: {0}")]
    Cpus(std::io::Error),
    #[error("duplicating the descriptor of map {name}: {source}")]
    Duplicate { name: &'static str, source: std::io::Error },
}

/// The loaded XDP program. Dropping it detaches the program from the interfaces it was
/// attached to without pins; pinned links stay.
pub struct XdpProgram {
    ebpf: Ebpf,
    /// `<pin dir>/<layout>`, when loaded pinned.
    pins: Option<PathBuf>,
    /// Whether this object's job programs are in the entry program's job table. With pinned
    /// maps the table is shared with the entry program an earlier dhcp6d left attached: the
    /// jobs go in only when this one attaches, so that the earlier program keeps relaying with
    /// its own jobs (and their filled maps) until it is replaced, or for good if this start
    /// fails first.
    jobs_installed: bool,
}

/// What makes XDP drop Solicits while dhcp6d is overloaded: a deadline XDP compares with
/// its clock, so that shedding lapses by itself when dhcp6d stops asking (or stops).
pub struct ShedSwitch {
    map: std::sync::Mutex<PerCpuArray<MapData, u64>>,
    /// The deadline last written, CLOCK_MONOTONIC nanoseconds.
    until: std::sync::atomic::AtomicU64,
    /// The share last written, in 1/[`counters::SHED_SHARE_ONE`].
    share: std::sync::atomic::AtomicU64,
}

impl ShedSwitch {
    /// Has XDP drop every Solicit for `window` from now.
    pub fn shed_for(&self, window: Duration) -> Result<(), XdpError> {
        self.shed_share_for(counters::SHED_SHARE_ONE, window)
    }

    /// Has XDP drop a share of the Solicits (in 1/[`counters::SHED_SHARE_ONE`], chosen at
    /// random) for `window` from now. The map is written only when the share changes, or less
    /// than half of the window is left, so that calling this for every burst of reads is cheap.
    pub fn shed_share_for(&self, share: u64, window: Duration) -> Result<(), XdpError> {
        use std::sync::atomic::Ordering;
        let share = share.min(counters::SHED_SHARE_ONE);
        if self.share.load(Ordering::Relaxed) != share {
            self.write(counters::SHED_SHARE, share)?;
            self.share.store(share, Ordering::Relaxed);
        }
        let now = monotonic_ns();
        let window = window.as_nanos() as u64;
        if self.until.load(Ordering::Relaxed) > now + window / 2 {
            return Ok(());
        }
        self.write(counters::SHED_UNTIL, now + window)?;
        self.until.store(now + window, Ordering::Relaxed);
        Ok(())
    }

    /// Stops shedding now.
    pub fn stop(&self) -> Result<(), XdpError> {
        self.write(counters::SHED_UNTIL, 0)?;
        self.until.store(0, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Writes `value` into `slot` on every CPU.
    fn write(&self, slot: u32, value: u64) -> Result<(), XdpError> {
        let error = |source| XdpError::Map { name: maps::SHED, source };
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| XdpError::Cpus(e))?;
        let values = aya::maps::PerCpuValues::try_from(vec![value; cpus]).map_err(XdpError::Cpus)?;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.set(slot, values, 0).map_err(error)
    }

    /// Solicits XDP dropped so, since the program was loaded.
    pub fn shed(&self) -> u64 {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&counters::SHED_COUNT, 0).map_or(0, |v| v.iter().sum())
    }
}

/// The fast path's maps, taken out of the program for the daemon to own.
pub struct FastPathMaps {
    pub leases: HashMap<MapData, LeaseKey, LeaseEntry>,
    pub links: HashMap<MapData, u32, LinkEntry>,
    /// A second handle on the lease map, for the thread that writes bindings into it.
    pub lease_writer: HashMap<MapData, LeaseKey, LeaseEntry>,
    /// How many bindings the lease map holds: as loaded, or as an earlier dhcp6d pinned it
    /// (a pinned map is reused with the size it has).
    pub lease_capacity: u32,
}

/// The AF_XDP maps: which slots an interface's sockets take, and the sockets.
pub struct XskMaps {
    pub slots: HashMap<MapData, u32, u32>,
    pub sockets: XskMap<MapData>,
}

/// The relay's maps, taken out of the program for the daemon to own.
pub struct RelayMaps {
    pub links: HashMap<MapData, AccessKey, RelayLink>,
    pub access_bits: Array<MapData, u64>,
    pub groups: Array<MapData, RelayGroup>,
    pub servers: Array<MapData, RelayServer>,
    pub server_slots: HashMap<MapData, [u8; 16], u32>,
    pub interface_ids: HashMap<MapData, InterfaceIdKey, AccessKey>,
    pub sent: PerCpuArray<MapData, u64>,
    pub answered: PerCpuArray<MapData, u64>,
    pub reports: RingBuf<MapData>,
    /// The clients' MACs XDP learnt (an LRU hash; XDP writes it, userspace only reads it).
    pub client_macs: HashMap<MapData, ClientMacKey, [u8; 8]>,
}

/// The live trace's maps ([`dhcp6_common::trace`]), taken out of the program for the daemon.
pub struct TraceMaps {
    pub config: Array<MapData, TraceConfig>,
    pub macs: HashMap<MapData, TraceMac, u32>,
    pub ring: RingBuf<MapData>,
}

/// Storm protection's maps ([`dhcp6_common::storm`]): the limit XDP applies, the clients it
/// cut, and its counts.
pub struct StormMaps {
    config: Array<MapData, StormConfig>,
    records: HashMap<MapData, StormKey, StormRecord>,
    cut: PerCpuArray<MapData, u64>,
}

impl StormMaps {
    /// Has XDP apply `config` from now on ([`StormConfig::OFF`]: none).
    pub fn set(&mut self, config: StormConfig) -> Result<(), XdpError> {
        self.config.set(0, config, 0).map_err(|source| XdpError::Map { name: maps::STORM_CONFIG, source })
    }

    /// Messages cut since the program was loaded: (by MAC, by DUID).
    pub fn cut(&self) -> (u64, u64) {
        let sum = |slot: u32| self.cut.get(&slot, 0).map_or(0, |v| v.iter().sum());
        (sum(CUT_BY_MAC), sum(CUT_BY_DUID))
    }

    /// The clients XDP keeps a record of cutting (the most recent [`dhcp6_common::storm::STORM_RECORDS`]).
    pub fn records(&self) -> Vec<(StormKey, StormRecord)> {
        self.records.iter().flatten().collect()
    }
}

/// What one program test run gave.
#[derive(Debug, Clone)]
pub struct TestRunOutput {
    /// The XDP action.
    pub action: u32,
    /// The frame as the program left it.
    pub frame: Vec<u8>,
    /// Mean time per run.
    pub duration: Duration,
}

/// A snapshot of the program's counters, summed over CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XdpCounters {
    /// Messages seen per DHCPv6 message type byte, only the types seen.
    pub by_msg_type: Vec<(u8, u64)>,
    /// Frames per verdict.
    pub by_verdict: Counts<Verdict>,
}

impl XdpCounters {
    /// Count of messages with this type.
    pub fn msg_type(&self, t: MessageType) -> u64 {
        self.by_msg_type.iter().find(|(ty, _)| *ty == t as u8).map_or(0, |(_, n)| *n)
    }

    /// Count of frames with this verdict.
    pub fn verdict(&self, v: Verdict) -> u64 {
        self.by_verdict[v]
    }
}

impl std::fmt::Display for XdpCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (verdict, n) in self.by_verdict.iter() {
            writeln!(f, "verdict {:<14} {n}", verdict.name())?;
        }
        for (t, n) in &self.by_msg_type {
            let name = MessageType::from_u8(*t).map_or("unknown", MessageType::name);
            writeln!(f, "msg-type {t:>3} {name:<20} {n}")?;
        }
        Ok(())
    }
}

impl XdpProgram {
    /// Puts this object's job programs in the job table, once.
    fn install_jobs(&mut self) -> Result<(), XdpError> {
        if !self.jobs_installed {
            install_jobs(&mut self.ebpf)?;
            self.jobs_installed = true;
        }
        Ok(())
    }

    /// Loads the embedded object and verifies the program, with maps of its own (nothing
    /// pinned) and a lease map for `lease_capacity` bindings; nothing is attached yet.
    pub fn load_with(lease_capacity: u32) -> Result<Self, XdpError> {
        let started = std::time::Instant::now();
        let mut ebpf = EbpfLoader::new().map_max_entries(maps::LEASES, lease_capacity).load(OBJECT)?;
        verify(&mut ebpf, started)?;
        install_jobs(&mut ebpf)?;
        Ok(XdpProgram { ebpf, pins: None, jobs_installed: true })
    }

    /// [`XdpProgram::load_with`] the default lease capacity.
    pub fn load() -> Result<Self, XdpError> {
        Self::load_with(LEASE_MAP_ENTRIES)
    }

    /// Loads the object with its maps pinned under `dir` (in the layout's folder): maps
    /// pinned there already, by an earlier dhcp6d, are reused as they are.
    pub fn load_pinned(dir: &Path, lease_capacity: u32) -> Result<Self, XdpError> {
        let pins = dir.join(PIN_LAYOUT);
        std::fs::create_dir_all(&pins).map_err(|e| XdpError::Pin { path: pins.clone(), message: e.to_string() })?;
        let paths: Vec<(&str, PathBuf)> = maps::PINNED.iter().map(|m| (*m, pins.join(m))).collect();
        let started = std::time::Instant::now();
        let mut loader = EbpfLoader::new();
        loader.map_max_entries(maps::LEASES, lease_capacity);
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(OBJECT)?;
        verify(&mut ebpf, started)?;
        // Maps of this layout that an earlier version pinned and this one no longer uses.
        for retired in maps::RETIRED {
            let _ = std::fs::remove_file(pins.join(retired));
        }
        Ok(XdpProgram { ebpf, pins: Some(pins), jobs_installed: false })
    }

    /// Where the link to `interface` is pinned under `dir`.
    pub fn link_pin(dir: &Path, interface: &str) -> PathBuf {
        dir.join(PIN_LAYOUT).join(format!("link-{interface}"))
    }

    /// Attaches to `interface` through a pinned link, which outlives this process. A link an
    /// earlier dhcp6d pinned is taken over: this program replaces the one it ran, atomically.
    /// A pinned link that is stale (its interface was deleted, or it is attached to another
    /// interface than the one of that name now) has its pin removed, which releases it, and
    /// XDP is attached afresh. Native mode first, generic if the driver has none. Returns
    /// whether a pinned link was taken over.
    pub fn attach_pinned(&mut self, interface: &str) -> Result<bool, XdpError> {
        self.install_jobs()?;
        let Some(pins) = &self.pins else { return Err(XdpError::Missing("pin directory")) };
        let path = pins.join(format!("link-{interface}"));
        let pin_error = |message: String| XdpError::Pin { path: path.clone(), message };
        let program = program_mut(&mut self.ebpf)?;
        if path.exists() {
            if take_over_pinned(program, &path, interface)?.is_some() {
                return Ok(true);
            }
        } else {
            // A dhcp6d of an earlier layout left its link pinned in its own folder: taken over
            // the same way (the program replaced atomically), and pinned again in this layout's.
            let earlier = pins.parent().and_then(|dir| std::fs::read_dir(dir).ok()).and_then(|entries| {
                entries.flatten().map(|e| e.path().join(format!("link-{interface}"))).find(|p| *p != path && p.exists())
            });
            if let Some(old) = earlier {
                if let Some(id) = take_over_pinned(program, &old, interface)? {
                    let fd_link = FdLink::try_from(program.take_link(id)?).map_err(|e| pin_error(e.to_string()))?;
                    fd_link.pin(&path).map_err(|e| pin_error(e.to_string()))?;
                    std::fs::remove_file(&old)
                        .map_err(|e| XdpError::Pin { path: old.clone(), message: e.to_string() })?;
                    return Ok(true);
                }
            }
        }
        let id = match program.attach(interface, XdpMode::Driver) {
            Ok(id) => id,
            Err(native) => match program.attach(interface, XdpMode::Skb) {
                Ok(id) => id,
                // The native mode's error says more (the generic one fails the same way).
                Err(_) => return Err(native.into()),
            },
        };
        let link = program.take_link(id)?;
        let fd_link = FdLink::try_from(link).map_err(|e| pin_error(e.to_string()))?;
        fd_link.pin(&path).map_err(|e| pin_error(e.to_string()))?;
        Ok(false)
    }

    /// Removes the pinned link to `interface` under `dir`, which detaches the program there.
    /// Returns whether there was one.
    pub fn unpin_link(dir: &Path, interface: &str) -> Result<bool, XdpError> {
        let path = Self::link_pin(dir, interface);
        if !path.exists() {
            return Ok(false);
        }
        std::fs::remove_file(&path).map_err(|e| XdpError::Pin { path, message: e.to_string() })?;
        Ok(true)
    }

    /// Takes the fast path's maps out of the program.
    pub fn take_fast_path(&mut self) -> Result<FastPathMaps, XdpError> {
        let mut take = |name: &'static str| self.ebpf.take_map(name).ok_or(XdpError::Missing(name));
        let (leases, links) = (take(maps::LEASES)?, take(maps::LINKS)?);
        let map_error = |name: &'static str| move |source| XdpError::Map { name, source };
        let (second, lease_capacity) = match &leases {
            aya::maps::Map::HashMap(data) => {
                let capacity = data.info().map_err(map_error(maps::LEASES))?.max_entries();
                use std::os::fd::AsFd;
                let fd = data
                    .fd()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|source| XdpError::Duplicate { name: maps::LEASES, source })?;
                (aya::maps::Map::HashMap(MapData::from_fd(fd).map_err(map_error(maps::LEASES))?), capacity)
            }
            _ => return Err(XdpError::Missing(maps::LEASES)),
        };
        Ok(FastPathMaps {
            leases: HashMap::try_from(leases).map_err(map_error(maps::LEASES))?,
            links: HashMap::try_from(links).map_err(map_error(maps::LINKS))?,
            lease_writer: HashMap::try_from(second).map_err(map_error(maps::LEASES))?,
            lease_capacity,
        })
    }

    /// Takes the maps through which XDP hands client messages to dhcp6d's AF_XDP sockets.
    pub fn take_xsks(&mut self) -> Result<XskMaps, XdpError> {
        let mut take = |name: &'static str| self.ebpf.take_map(name).ok_or(XdpError::Missing(name));
        let (slots, sockets) = (take(maps::XSK_SLOTS)?, take(maps::XSKS)?);
        let map_error = |name: &'static str| move |source| XdpError::Map { name, source };
        Ok(XskMaps {
            slots: HashMap::try_from(slots).map_err(map_error(maps::XSK_SLOTS))?,
            sockets: XskMap::try_from(sockets).map_err(map_error(maps::XSKS))?,
        })
    }

    /// Takes the map through which dhcp6d has XDP shed Solicits; shedding starts stopped.
    pub fn take_shed(&mut self) -> Result<ShedSwitch, XdpError> {
        let map = self.ebpf.take_map(maps::SHED).ok_or(XdpError::Missing(maps::SHED))?;
        let map = PerCpuArray::try_from(map).map_err(|source| XdpError::Map { name: maps::SHED, source })?;
        // No share written yet: the first shedding writes its own.
        let switch = ShedSwitch {
            map: std::sync::Mutex::new(map),
            until: std::sync::atomic::AtomicU64::new(u64::MAX),
            share: std::sync::atomic::AtomicU64::new(u64::MAX),
        };
        switch.stop()?;
        Ok(switch)
    }

    /// Takes storm protection's maps out of the program and has XDP apply `config`.
    pub fn take_storm(&mut self, config: StormConfig) -> Result<StormMaps, XdpError> {
        let e = &mut self.ebpf;
        let mut maps = StormMaps {
            config: take(e, maps::STORM_CONFIG)?,
            records: take(e, maps::STORMS)?,
            cut: take(e, maps::STORM_CUT)?,
        };
        maps.set(config)?;
        Ok(maps)
    }

    /// Takes the relay's maps out of the program.
    pub fn take_relay(&mut self) -> Result<RelayMaps, XdpError> {
        let e = &mut self.ebpf;
        Ok(RelayMaps {
            links: take(e, maps::RELAY_LINKS)?,
            access_bits: take(e, maps::RELAY_ACCESS_BITS)?,
            groups: take(e, maps::RELAY_GROUPS)?,
            servers: take(e, maps::RELAY_SERVERS)?,
            server_slots: take(e, maps::RELAY_SERVER_SLOTS)?,
            interface_ids: take(e, maps::RELAY_INTERFACE_IDS)?,
            sent: take(e, maps::RELAY_SENT)?,
            answered: take(e, maps::RELAY_ANSWERED)?,
            reports: take(e, maps::RELAY_REPORTS)?,
            client_macs: take(e, maps::RELAY_CLIENT_MACS)?,
        })
    }

    /// Takes the live trace's maps out of the program; tracing starts off.
    pub fn take_trace(&mut self) -> Result<TraceMaps, XdpError> {
        let e = &mut self.ebpf;
        let mut maps = TraceMaps {
            config: take(e, maps::TRACE_CONFIG)?,
            macs: take(e, maps::TRACE_MACS)?,
            ring: take(e, maps::TRACE_RING)?,
        };
        maps.config
            .set(0, TraceConfig::default(), 0)
            .map_err(|source| XdpError::Map { name: maps::TRACE_CONFIG, source })?;
        Ok(maps)
    }

    /// Attaches to `interface` in `mode` (native, `XdpMode::Driver`, on real NICs and veth).
    pub fn attach(&mut self, interface: &str, mode: XdpMode) -> Result<(), XdpError> {
        self.install_jobs()?;
        program_mut(&mut self.ebpf)?.attach(interface, mode)?;
        Ok(())
    }

    /// Runs the program once on `frame` (BPF_PROG_TEST_RUN) and returns its XDP action.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, XdpError> {
        Ok(self.test_run_on(frame, 0, 1)?.action)
    }

    /// Runs the program `repeat` times on `frame` as if it came in on interface `ifindex`
    /// (0: none) and returns the action, the frame it left and the mean time per run.
    pub fn test_run_on(&self, frame: &[u8], ifindex: u32, repeat: u32) -> Result<TestRunOutput, XdpError> {
        use aya::programs::{TestRun, TestRunOptions};
        let program: &Xdp = self.ebpf.program(XDP_PROGRAM).ok_or(XdpError::Missing("XDP program"))?.try_into()?;
        let mut out = vec![0u8; frame.len() + 1024];
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
        let md: [u32; 6] = [0, frame.len() as u32, 0, ifindex, 0, 0];
        let ctx: Vec<u8> = md.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: if ifindex == 0 { None } else { Some(&ctx) },
            repeat: repeat.max(1),
            ..Default::default()
        };
        let result = program.test_run(opts)?;
        out.truncate(result.data_size_out as usize);
        Ok(TestRunOutput { action: result.return_value, frame: out, duration: result.duration })
    }

    /// Runs the program on `runs` fresh copies of `frame` in one live-frame test run
    /// (BPF_F_TEST_XDP_LIVE_FRAMES), as if they came in on interface `ifindex`: each run gets
    /// a page of its own holding the frame, as from a NIC's ring, and what the program sends
    /// back with XDP_TX goes to the interface. (`runs` at most one batch: pages of a later
    /// batch would be recycled ones, holding what the program wrote.) Returns the mean time
    /// per run of the whole test run.
    pub fn test_run_live(&self, frame: &[u8], ifindex: u32, runs: u32) -> Result<Duration, XdpError> {
        use aya::programs::{TestRun, TestRunAttrs, TestRunOptions};
        let program: &Xdp = self.ebpf.program(XDP_PROGRAM).ok_or(XdpError::Missing("XDP program"))?.try_into()?;
        let md: [u32; 6] = [0, frame.len() as u32, 0, ifindex, 0, 0];
        let ctx: Vec<u8> = md.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let opts = TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(&ctx),
            repeat: runs.max(1),
            attrs: TestRunAttrs::new().xdp_live_frames(runs.max(1)),
            ..Default::default()
        };
        Ok(program.test_run(opts)?.duration)
    }

    /// The kernel's run statistics of the program (time in it, runs), counted while
    /// [`enable_run_stats`] is held.
    pub fn run_stats(&self) -> Result<(Duration, u64), XdpError> {
        let program: &Xdp = self.ebpf.program(XDP_PROGRAM).ok_or(XdpError::Missing("XDP program"))?.try_into()?;
        let info = program.info()?;
        Ok((info.run_time(), info.run_count()))
    }

    /// Reads every counter, summed over CPUs.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        let by_msg_type = per_cpu_sums(&self.ebpf, maps::MSG_TYPE_COUNTS)?
            .into_iter()
            .enumerate()
            .filter(|(_, n)| *n > 0)
            // The map has 256 slots, one per type byte.
            .map(|(t, n)| (t as u8, n))
            .collect();
        let verdicts = per_cpu_sums(&self.ebpf, maps::VERDICT_COUNTS)?;
        let mut by_verdict = Counts::default();
        for v in Verdict::ALL {
            by_verdict.set(v, verdicts.get(v as usize).copied().unwrap_or(0));
        }
        Ok(XdpCounters { by_msg_type, by_verdict })
    }
}

/// Writes `keys[i]` -> `values[i]` into the hash map `map`, in order, with one system call
/// per chunk (BPF_MAP_UPDATE_BATCH, Linux 5.6) rather than one per entry: a start with a
/// million bindings spent most of its time in those calls. Returns how many were written,
/// with the error that stopped the kernel at the next one (a full map, say), if one did.
pub fn insert_batch<K: aya::Pod, V: aya::Pod>(
    map: &HashMap<MapData, K, V>,
    keys: &[K],
    values: &[V],
) -> (usize, Option<std::io::Error>) {
    use aya::maps::IterableMap;
    use std::os::fd::{AsFd, AsRawFd};
    /// `bpf_attr`'s part for the batch commands (`struct { ... } batch` in linux/bpf.h).
    #[repr(C)]
    struct BatchAttr {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
    }
    const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
    /// Entries per call: the kernel copies each in on its own, so a chunk only bounds how
    /// long one call holds the thread.
    const CHUNK: usize = 65_536;
    let fd = map.map().fd().as_fd().as_raw_fd() as u32;
    let n = keys.len().min(values.len());
    let mut done = 0;
    while done < n {
        let count = (n - done).min(CHUNK);
        let mut attr = BatchAttr {
            in_batch: 0,
            out_batch: 0,
            keys: keys[done..].as_ptr() as u64,
            values: values[done..].as_ptr() as u64,
            count: count as u32,
            map_fd: fd,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: `attr` is the batch part of bpf_attr, zero-padded as the kernel checks it;
        // keys and values point at `count` entries each of the map's key and value types
        // (K and V are the map's, checked when it was opened), which the kernel only reads;
        // it writes back `attr.count` alone.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_BATCH,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>(),
            )
        };
        if ret < 0 {
            let error = std::io::Error::last_os_error();
            // Failing inside its loop, the kernel writes back how many it wrote before the one
            // it refused; failing before it (no batch command for this map, a check of the
            // attributes), it leaves `count` as it was, and wrote none.
            let wrote = if (attr.count as usize) < count { attr.count as usize } else { 0 };
            return (done + wrote, Some(error));
        }
        done += count;
    }
    (done, None)
}

/// Turns on the kernel's BPF run-time statistics for as long as the descriptor is held.
pub fn enable_run_stats() -> Result<std::os::fd::OwnedFd, XdpError> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|e| XdpError::Pin { path: PathBuf::from("BPF_ENABLE_STATS"), message: e.to_string() })
}

/// Has `program` take over the XDP link pinned at `path` for `interface`, replacing the
/// program it runs, atomically. A stale link is not taken over: one whose interface was
/// deleted (the kernel severs it: it shows no interface, and updating it fails with ENOLINK),
/// or one attached to another interface than `interface` is now (deleted and made anew, or
/// renamed). Its pin is removed, which releases it, and `None` returned.
fn take_over_pinned(
    program: &mut Xdp,
    path: &Path,
    interface: &str,
) -> Result<Option<aya::programs::xdp::XdpLinkId>, XdpError> {
    let pin_error = |message: String| XdpError::Pin { path: path.to_path_buf(), message };
    let link = FdLink::from(PinnedLink::from_pin(path).map_err(|e| pin_error(e.to_string()))?);
    let pinned_to = link.info().ok().and_then(|info| xdp_link_ifindex(info.id()));
    let current = nix::net::if_::if_nametoindex(interface).ok();
    let stale = match (pinned_to, current) {
        (Some(0), _) => Some("its interface was deleted".to_string()),
        (Some(pinned), Some(current)) if pinned != current => {
            Some(format!("it is attached to ifindex {pinned}, {interface} is ifindex {current}"))
        }
        _ => None,
    };
    let stale = match stale {
        Some(reason) => reason,
        None => {
            let link = aya::programs::xdp::XdpLink::try_from(link).map_err(|e| pin_error(e.to_string()))?;
            match program.attach_to_link(link) {
                Ok(id) => return Ok(Some(id)),
                Err(ProgramError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOLINK) => {
                    "the kernel severed it from its interface".to_string()
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    std::fs::remove_file(path).map_err(|e| pin_error(e.to_string()))?;
    tracing::warn!(
        interface,
        pin = %path.display(),
        reason = %stale,
        "removed the stale pinned XDP link; attaching XDP afresh"
    );
    Ok(None)
}

/// The ifindex of the interface XDP link `link_id` is attached to (0 once the interface is
/// gone), from the fdinfo of the descriptor in this process that holds the link. `None` when
/// no descriptor's fdinfo says (no /proc, say).
fn xdp_link_ifindex(link_id: u32) -> Option<u32> {
    let entries = std::fs::read_dir("/proc/self/fdinfo").ok()?;
    entries.flatten().find_map(|entry| fdinfo_xdp_ifindex(&std::fs::read_to_string(entry.path()).ok()?, link_id))
}

/// The `ifindex` of an fdinfo text, if it is that of XDP link `link_id`.
fn fdinfo_xdp_ifindex(fdinfo: &str, link_id: u32) -> Option<u32> {
    let field = |name: &str| fdinfo.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::trim);
    if field("link_type")? != "xdp" || field("link_id")?.parse::<u32>().ok()? != link_id {
        return None;
    }
    field("ifindex")?.parse().ok()
}

/// Loads the object's programs into the kernel, which verifies each (BPF_PROG_LOAD), and says
/// how long the verification took: the object's maps were made from `started` on, then the
/// verifier ran. Its time is most of a start-up without leases, and grows with the paths
/// through a program.
fn verify(ebpf: &mut Ebpf, started: std::time::Instant) -> Result<(), XdpError> {
    let maps_ms = started.elapsed().as_secs_f64() * 1e3;
    let verifying = std::time::Instant::now();
    let mut instructions = 0;
    let mut each = Vec::new();
    for name in std::iter::once(XDP_PROGRAM).chain(jobs::PROGRAMS.iter().map(|(_, name)| *name)) {
        let program: &mut Xdp = ebpf.program_mut(name).ok_or(XdpError::Missing("an XDP job program"))?.try_into()?;
        let one = std::time::Instant::now();
        program.load()?;
        let n = program.info().ok().and_then(|i| i.verified_instruction_count()).unwrap_or(0);
        instructions += n;
        each.push(format!("{name} {:.0} ms {n}", one.elapsed().as_secs_f64() * 1e3));
    }
    let ms = verifying.elapsed().as_secs_f64() * 1e3;
    tracing::info!(
        ms = format!("{ms:.1}"),
        maps_ms = format!("{maps_ms:.1}"),
        verified_instructions = instructions,
        programs = %each.join(", "),
        "XDP program loaded and verified"
    );
    Ok(())
}

/// Puts the job programs in the entry program's job table.
fn install_jobs(ebpf: &mut Ebpf) -> Result<(), XdpError> {
    let mut fds = Vec::new();
    for (slot, name) in jobs::PROGRAMS {
        let program: &Xdp = ebpf.program(name).ok_or(XdpError::Missing("an XDP job program"))?.try_into()?;
        fds.push((slot, program.fd()?.try_clone().map_err(|source| XdpError::Duplicate { name: maps::JOBS, source })?));
    }
    let map = ebpf.map_mut(maps::JOBS).ok_or(XdpError::Missing(maps::JOBS))?;
    let mut array = ProgramArray::try_from(map).map_err(|source| XdpError::Map { name: maps::JOBS, source })?;
    for (slot, fd) in &fds {
        array.set(*slot, fd, 0).map_err(|source| XdpError::Map { name: maps::JOBS, source })?;
    }
    Ok(())
}

fn program_mut(ebpf: &mut Ebpf) -> Result<&mut Xdp, XdpError> {
    Ok(ebpf.program_mut(XDP_PROGRAM).ok_or(XdpError::Missing("XDP program"))?.try_into()?)
}

/// Every slot of a per-CPU `u64` array, each summed over CPUs.
fn per_cpu_sums(ebpf: &Ebpf, name: &'static str) -> Result<Vec<u64>, XdpError> {
    let map = ebpf.map(name).ok_or(XdpError::Missing(name))?;
    let array: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(|source| XdpError::Map { name, source })?;
    (0..array.len())
        .map(|i| {
            let values = array.get(&i, 0).map_err(|source| XdpError::Map { name, source })?;
            Ok(values.iter().sum())
        })
        .collect()
}

/// CLOCK_MONOTONIC now, in nanoseconds: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(0, |t| (t.tv_sec() as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec() as u64))
}

/// The XDP program's clock and Unix time, read now (see [`Clock`]).
pub fn clock_now() -> Clock {
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    Clock::at(monotonic_ns(), unix)
}

/// Takes map `name` out of the program, as its typed map.
fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<T, XdpError> {
    let map = ebpf.take_map(name).ok_or(XdpError::Missing(name))?;
    T::try_from(map).map_err(|source| XdpError::Map { name, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fdinfo of an XDP link's descriptor: the fields bpf_link_show_fdinfo writes, then
    /// the XDP link's own (its ifindex, 0 once severed).
    const XDP_LINK: &str = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\nlink_type:\txdp\nlink_id:\t7\n\
                            prog_tag:\t9a4b5c6d7e8f0a1b\nprog_id:\t42\nifindex:\t3\n";

    #[test]
    fn an_xdp_links_ifindex_is_read_from_its_fdinfo() {
        assert_eq!(fdinfo_xdp_ifindex(XDP_LINK, 7), Some(3));
        assert_eq!(fdinfo_xdp_ifindex(&XDP_LINK.replace("ifindex:\t3", "ifindex:\t0"), 7), Some(0), "severed");
        assert_eq!(fdinfo_xdp_ifindex(XDP_LINK, 8), None, "another link");
        assert_eq!(fdinfo_xdp_ifindex(&XDP_LINK.replace("xdp", "tcx"), 7), None, "not an XDP link");
        assert_eq!(fdinfo_xdp_ifindex("pos:\t0\nflags:\t02\n", 7), None, "not a link");
    }
}
