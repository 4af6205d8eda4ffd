//! The relay's tagged clients, in userspace: a packet socket on each access interface that
//! has VLAN entries takes their frames (those XDP does not relay itself, or all of them with
//! `--no-xdp`) for the relay, and carries what goes down to them as tagged frames, to the MAC
//! each client's frames came from.

use std::{
    collections::HashMap,
    net::Ipv6Addr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
};

use tokio::{io::unix::AsyncFd, sync::mpsc};
use tracing::warn;

use super::{
    input::Input,
    interface::{link_local, mac_address},
    packet_socket::{PacketSocket, FRAME_MAX},
    relay_frames::{client_datagram, client_frame, FrameDrop},
    socket,
    throttle::{repeats, Throttle},
};
use crate::relay::{RelayConfig, RelayOut, Vlans};
use dhcp6_common::relay::AccessKey;

/// Most clients whose MAC is remembered (past it, the oldest knowledge is dropped whole; a
/// client's next message teaches it again).
const MACS_MAX: usize = 1 << 20;

/// One access interface's packet socket, and its own addresses once known.
struct Port {
    name: String,
    socket: AsyncFd<PacketSocket>,
    /// MAC and link-local address: the source of frames going down.
    addresses: Mutex<Option<([u8; 6], Ipv6Addr)>>,
}

/// The tagged access entries.
#[derive(Default)]
struct Entries {
    /// (ifindex, VLANs) -> access entry.
    access: HashMap<AccessKey, usize>,
    /// Access entry -> (port, VLANs).
    ports: HashMap<usize, (usize, Vlans)>,
}

/// The tagged access entries' frames, both ways.
pub struct VlanFrames {
    ports: Vec<Port>,
    /// Which entry a tagged frame is for, and where each entry's frames go (more come with a
    /// reload that adds VLANs on an interface read already).
    entries: RwLock<Entries>,
    /// The MAC of each client (by access entry and link-local address), from its frames.
    macs: Mutex<HashMap<(usize, Ipv6Addr), [u8; 6]>>,
    /// Frames refused (bad checksum).
    pub dropped: AtomicU64,
    /// Clients' messages dropped because the engine's queue was full (they retransmit).
    pub queue_full: AtomicU64,
}

impl VlanFrames {
    /// Opens a packet socket on each interface with tagged entries in `config`; `None` if
    /// there are none.
    pub fn open(config: &RelayConfig) -> anyhow::Result<Option<Arc<VlanFrames>>> {
        let mut ports: Vec<Port> = Vec::new();
        let mut access = HashMap::new();
        let mut entries = HashMap::new();
        for (n, iface) in config.interfaces.iter().enumerate() {
            if iface.vlans == Vlans::NONE {
                continue;
            }
            let ifindex = socket::if_index(&iface.name)
                .ok_or_else(|| anyhow::anyhow!("relay interface {}: no such interface", iface.name))?;
            let port = match ports.iter().position(|p| p.name == iface.name) {
                Some(p) => p,
                None => {
                    let socket = PacketSocket::open(ifindex, true)
                        .map_err(|e| anyhow::anyhow!("a packet socket on {} for its VLANs: {e}", iface.name))?;
                    ports.push(Port {
                        name: iface.name.clone(),
                        // SAFETY: the AsyncFd owns the socket, whose descriptor stays open until
                        // it is dropped.
                        socket: unsafe { AsyncFd::register(socket) }
                            .map_err(|e| anyhow::anyhow!("waiting on a packet socket on {}: {e}", iface.name))?,
                        addresses: Mutex::new(None),
                    });
                    ports.len() - 1
                }
            };
            access.insert(AccessKey { ifindex, vlans: iface.vlans }, n);
            entries.insert(n, (port, iface.vlans));
        }
        if ports.is_empty() {
            return Ok(None);
        }
        Ok(Some(Arc::new(VlanFrames {
            ports,
            entries: RwLock::new(Entries { access, ports: entries }),
            macs: Mutex::new(HashMap::new()),
            dropped: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
        })))
    }

    /// Whether access entry `access` is relayed through these frames.
    pub fn carries(&self, access: usize) -> bool {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).ports.contains_key(&access)
    }

    /// Whether the VLANs of interface `name` are read here already.
    pub fn reads(&self, name: &str) -> bool {
        self.ports.iter().any(|p| p.name == name)
    }

    /// Carries the tagged access entries `added` of `config` (a reload's) too, each on an
    /// interface read already ([`Self::reads`]).
    pub fn add(&self, config: &RelayConfig, added: &[usize]) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        for &n in added {
            let Some(iface) = config.interfaces.get(n) else { continue };
            let port = self.ports.iter().position(|p| p.name == iface.name);
            if let (false, Some(port), Some(ifindex)) =
                (iface.vlans == Vlans::NONE, port, socket::if_index(&iface.name))
            {
                entries.access.insert(AccessKey { ifindex, vlans: iface.vlans }, n);
                entries.ports.insert(n, (port, iface.vlans));
            }
        }
    }

    /// Reads port `port`'s frames for as long as the daemon runs, handing clients' datagrams
    /// of the tagged entries to the engine.
    pub(super) async fn read_loop(self: Arc<Self>, port: usize, tx: mpsc::Sender<Input>) {
        let mut buf = vec![0u8; FRAME_MAX + 4];
        let p = &self.ports[port];
        let mut failures = Throttle::default();
        loop {
            let mut guard = match p.socket.readable().await {
                Ok(g) => g,
                Err(e) => {
                    warn!(interface = %p.name, error = %e, "waiting on a packet socket failed");
                    return;
                }
            };
            loop {
                let received = match p.socket.get_ref().recv(&mut buf) {
                    Ok(r) => r,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        guard.clear_ready();
                        break;
                    }
                    Err(e) => {
                        if let Some(more) = failures.hit(std::time::Instant::now()) {
                            let also = repeats(more);
                            warn!(interface = %p.name, error = %e, "reading a packet socket failed{also}");
                        }
                        guard.clear_ready();
                        break;
                    }
                };
                let d = match client_datagram(&buf[..received.len], received.checksum_trusted) {
                    Ok(d) => d,
                    // Not a client's message for relays: another frame of the trunk's.
                    Err(FrameDrop::NotForRelays) => continue,
                    Err(_) => {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                let key = AccessKey { ifindex: p.socket.get_ref().ifindex(), vlans: d.vlans };
                let found = self.entries.read().unwrap_or_else(|e| e.into_inner()).access.get(&key).copied();
                let Some(access) = found else { continue };
                {
                    let mut macs = self.macs.lock().unwrap_or_else(|e| e.into_inner());
                    if macs.len() >= MACS_MAX {
                        macs.clear();
                    }
                    macs.insert((access, *d.source.ip()), d.mac);
                }
                let input = Input::Frame { access, from: d.source, mac: d.mac, payload: d.payload };
                if tx.try_send(input).is_err() {
                    // The engine is behind: the client retransmits.
                    self.queue_full.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    pub fn ports(&self) -> usize {
        self.ports.len()
    }

    /// Sends `out` (a message going down to a client of a tagged entry) as a tagged frame.
    pub fn send(&self, out: &RelayOut) -> anyhow::Result<()> {
        let access = out.interface.ok_or_else(|| anyhow::anyhow!("not a message going down"))?;
        let found = self.entries.read().unwrap_or_else(|e| e.into_inner()).ports.get(&access).copied();
        let (port, vlans) = found.ok_or_else(|| anyhow::anyhow!("not a tagged entry"))?;
        let peer = *out.destination.ip();
        let to = *self
            .macs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(access, peer))
            .ok_or_else(|| anyhow::anyhow!("no frame from {peer} seen: its MAC is unknown"))?;
        let p = &self.ports[port];
        let ifindex = p.socket.get_ref().ifindex();
        let mut known = p.addresses.lock().unwrap_or_else(|e| e.into_inner());
        if known.is_none() {
            *known = mac_address(&p.name).zip(link_local(ifindex));
        }
        let (mac, ll) = known.ok_or_else(|| anyhow::anyhow!("{} has no MAC or link-local address yet", p.name))?;
        let frame =
            client_frame(to, mac, vlans, (ll, peer), (dhcp6_codec::SERVER_PORT, out.destination.port()), &out.payload)?;
        p.socket.get_ref().send(&frame)?;
        Ok(())
    }
}
