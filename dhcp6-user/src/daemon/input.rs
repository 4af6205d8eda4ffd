//! The engine's queue: what the readers, the packet sockets and the control socket hand the
//! engine loop, and how much of it may wait.

use std::{
    net::SocketAddrV6,
    time::{SystemTime, UNIX_EPOCH},
};

use tokio::sync::oneshot;

use super::{failover_link, xsk};
use crate::{
    control::{Answer, Request},
    relay::standby::{link::LinkMessage, vrrp::VrrpNotice},
};

/// Most datagrams waiting for the engine; past this, new ones are dropped and counted.
pub const QUEUE: usize = 32768;
/// Most datagrams handled per batch.
pub const BATCH: usize = 1024;
/// Queued datagrams past which new Solicits are shed: about 100 ms of work at full rate, so
/// that a stall of the disk (an fdatasync can take that long) is caught up with, not shed,
/// while a load the server cannot keep up with still sheds new exchanges first.
pub const SHED_BACKLOG: usize = 16 * BATCH;

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
        answer: oneshot::Sender<Answer>,
    },
    /// The failover partner's connection came, went, or brought a message.
    Failover(failover_link::LinkEvent),
    /// From keepalived's notify FIFO, the kernel's address events or a backup link.
    Standby(StandbyInput),
    /// A `dhcp6d trace` started: its filter, and where its events go.
    Trace {
        filter: crate::trace::TraceFilter,
        events: tokio::sync::mpsc::Sender<crate::trace::TraceEvent>,
    },
    /// A bulk leasequery from a TCP requestor; the engine's answer (None: not a query, close
    /// the connection) goes back.
    Leasequery {
        payload: Vec<u8>,
        requestor: std::net::Ipv6Addr,
        answer: oneshot::Sender<Option<Vec<Vec<u8>>>>,
    },
    /// A server's answer to the relay's rebuild query: every message, or why there was none.
    Rebuilt {
        server: SocketAddrV6,
        answer: Result<Vec<Vec<u8>>, String>,
    },
    /// A scrape of the metrics endpoint, answered between two batches; the pools' counts (a
    /// pass over every lease) only when `pools` asks for them.
    Metrics {
        pools: bool,
        answer: oneshot::Sender<Box<crate::metrics::Snapshot>>,
    },
    /// Leases other servers changed in the shared lease database.
    Learnt(Vec<crate::server::LeaseChange>),
}

/// What the standby's tasks hand the engine.
pub enum StandbyInput {
    /// A line of keepalived's notify FIFO.
    Notice(VrrpNotice),
    /// Profile `profile`'s virtual address appeared on (or left) its interface.
    VirtualAddress {
        profile: usize,
        present: bool,
    },
    /// Backup service `service` connected to its peer.
    LinkUp {
        service: usize,
    },
    LinkDown {
        service: usize,
    },
    /// A message from the peer of backup service `service`.
    Message {
        service: usize,
        message: LinkMessage,
    },
    /// A connection to backup service `service` from another address than the peer's was
    /// refused.
    Refused {
        service: usize,
    },
}

/// Unix seconds now: the time each input is handled at.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Unix milliseconds now: the backup link's times.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
