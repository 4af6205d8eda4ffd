//! The control socket: newline-delimited JSON over a Unix socket that only root (or the
//! daemon's own user) may use. `dhcp6d show ...` is its client.

use std::path::Path;

use dhcp6_common::counters::Verdict;
use dhcp6_engine::{
    counters::Counts,
    relay::{standby::StandbyStatus, RelayStats, ServerStatus, UserEntry},
    server::{IaType, LeaseState, PoolCounts, ReconfigureStarted, ReconfigureType, Statistics},
};
use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
};

/// What a client may ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    Bindings,
    Statistics,
    Pools,
    /// Return declined (conflicting) addresses to the pool: one, or all.
    ClearConflicting {
        address: Option<std::net::Ipv6Addr>,
    },
    /// The relay's user entries.
    RelayUsers,
    /// The relay's servers: state and counters.
    RelayServers,
    /// The failover relationship's state and counters.
    Failover,
    /// The operator says the failover partner is down (RFC 8156 PARTNER-DOWN).
    FailoverPartnerDown,
    /// The relay's hot standby: roles, backup links, counters.
    RelayStandby,
    /// A batch backup of every user entry to the standby peers, now.
    RelayBackupNow,
    /// Ask the servers for the relay's bindings by bulk leasequery (by `by`, or as `[relay]
    /// rebuild` says) and rebuild the user entries from the answers.
    RelayRebuild {
        by: Option<dhcp6_engine::relay::RebuildBy>,
    },
    /// Read the configuration file again and run from it (as SIGHUP does).
    Reload,
    /// Lock (or unlock) the pool of this name: it gives nothing to new clients.
    PoolLock {
        name: String,
        locked: bool,
    },
    /// Send Reconfigure messages (RFC 9915 section 18.3.11): to the client with this DUID
    /// (hex), or to every client with a lease in the pool of this name, asking each to send
    /// `message`. Only clients holding a Reconfigure Key are sent one.
    Reconfigure {
        client: Option<String>,
        pool: Option<String>,
        #[serde(default)]
        message: ReconfigureType,
    },
    /// The clients storm protection is cutting now.
    Storms,
}

/// What a reload did, for `dhcp6d reload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    /// The configuration file read.
    pub config: String,
    /// What changed, one line each (`subnet 2001:db8:1::/64 changed: ranges`).
    pub changes: Vec<String>,
    /// Bound leases outside the new pools: they renew until they expire.
    pub outside_pools: usize,
    /// Leases of removed subnets: kept until they expire, answered no more.
    pub orphaned: usize,
    /// The clients of subnets whose options changed, asked to renew with a Reconfigure.
    #[serde(default)]
    pub reconfigure: Option<ReconfigureStarted>,
}

/// A pool locked or unlocked, for `dhcp6d pool lock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolLocked {
    pub pool: String,
    pub locked: bool,
    /// Whether it was otherwise before.
    pub changed: bool,
}

/// The failover relationship, for `show failover`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverAnswer {
    pub role: String,
    pub state: String,
    /// Unix seconds since when.
    pub since: u64,
    /// The partner's last announced state.
    pub partner_state: Option<String>,
    pub partner: String,
    pub connected: bool,
    pub mclt: u32,
    /// Binding updates sent and not yet acknowledged, or waiting to be sent.
    pub unacked_updates: u64,
    pub bindings_sent: u64,
    pub bindings_received: u64,
    /// Received bindings this server refused (its own binding of the resource is newer, or
    /// another client's).
    pub bindings_rejected: u64,
    /// Unix seconds of the last message from the partner.
    pub last_contact: Option<u64>,
    pub seconds_since_contact: Option<u64>,
    /// Connections from addresses that are not the partner's, refused.
    pub refused_connections: u64,
    /// TLS handshakes that failed (another certificate than the pinned one, or none).
    #[serde(default)]
    pub tls_failed: u64,
    /// Messages from the partner that did not decode (each closes the connection).
    pub malformed_messages: u64,
}

/// One lease, for `show bindings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub resource: Ipv6Net,
    #[serde(rename = "type")]
    pub ia_type: IaType,
    /// The client's DUID, colon-separated hex.
    pub duid: String,
    pub iaid: u32,
    pub state: LeaseState,
    /// Unix seconds when the state ends.
    pub expires: u64,
    /// Seconds until then.
    pub expires_in: u64,
    pub preferred_lifetime: u32,
    pub valid_lifetime: u32,
    pub interface: Option<String>,
    /// The prefix of the lease's subnet.
    pub subnet: Option<Ipv6Net>,
}

/// The server's counters with the XDP program's verdicts, for `show statistics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatisticsAnswer {
    #[serde(flatten)]
    pub server: Statistics,
    /// Frames per verdict, when XDP is attached.
    pub xdp: Option<Counts<Verdict>>,
    /// Interfaces where XDP does not answer renewals, its XDP_TX frames not reaching the
    /// link: userspace answers them there.
    #[serde(default)]
    pub xdp_tx_off: Vec<XdpTxOff>,
    /// Storm protection's counts, when XDP is attached.
    #[serde(default)]
    pub storm: Option<StormCounts>,
    /// The shared lease database, when leases are kept in one.
    #[serde(default)]
    pub database: Option<crate::store::postgresql::DatabaseStatus>,
}

/// What storm protection cut, for `show statistics` and the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StormCounts {
    /// Messages cut of clients known by their MAC (on-link, and on the relay's access links).
    pub cut_by_mac: u64,
    /// Messages cut of clients known by their DUID (in Relay-Forwards).
    pub cut_by_duid: u64,
    /// Clients cut within the last [`STORM_NOW_SECONDS`]: those being limited now.
    pub clients: u64,
}

/// A client counts as being limited now when XDP cut a message of it this recently.
pub const STORM_NOW_SECONDS: u64 = 2;

/// The clients storm protection limits, for `show storms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StormsAnswer {
    /// Messages a second and burst per client; `None`: storm protection is off (no `[storm]`,
    /// or no XDP).
    pub rate: Option<u32>,
    pub burst: Option<u32>,
    pub counts: StormCounts,
    /// The clients cut within the last [`STORM_NOW_SECONDS`], most cut first.
    pub clients: Vec<StormClient>,
}

/// A client being limited now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StormClient {
    /// `mac` (known by its MAC on `interface`) or `duid` (in Relay-Forwards).
    pub key: String,
    pub interface: Option<String>,
    /// Colon-separated hex: the MAC, or the DUID (its first 24 bytes, then `..` if longer).
    pub id: String,
    /// Messages cut since XDP first cut it (while its record lasts).
    pub cut: u64,
    /// Seconds since its first cut.
    pub cutting_for: u64,
}

/// An interface whose renewals are answered from userspace because XDP_TX frames sent
/// there do not reach the link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdpTxOff {
    pub interface: String,
    /// How that was found.
    pub reason: String,
}

/// A relay user entry, for `show relay users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayUser {
    #[serde(flatten)]
    pub entry: UserEntry,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// The relay's servers and counters, for `show relay servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayServers {
    pub servers: Vec<ServerStatus>,
    pub stats: RelayStats,
}

/// Conflicting addresses returned to their pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleared {
    pub cleared: usize,
}

/// What dhcp6d answers, one variant per [`Request`], or an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    Bindings(Vec<Binding>),
    Statistics(Box<StatisticsAnswer>),
    Pools(Vec<PoolCounts>),
    Cleared(Cleared),
    RelayUsers(Vec<RelayUser>),
    /// `None` when dhcp6d does not relay.
    RelayServers(Option<Box<RelayServers>>),
    /// `None` when dhcp6d is in no failover pair.
    Failover(Option<Box<FailoverAnswer>>),
    /// `None` when dhcp6d has no standby profiles.
    RelayStandby(Option<Box<StandbyStatus>>),
    /// A batch went to this many connected peers.
    BackupStarted {
        peers: usize,
    },
    /// A rebuild sent this many bulk leasequeries.
    RebuildStarted {
        queries: usize,
    },
    Reloaded(Reloaded),
    PoolLocked(PoolLocked),
    Reconfigure(ReconfigureStarted),
    Storms(StormsAnswer),
    Error {
        error: String,
    },
}

impl Answer {
    pub fn error(message: impl Into<String>) -> Answer {
        Answer::Error { error: message.into() }
    }
}

/// Errors of the control client.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot reach dhcp6d at {path}: {source} (is it running, and are you root?)")]
    Connect { path: String, source: std::io::Error },
    #[error("control socket I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("dhcp6d answered something that is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("dhcp6d refused: {0}")]
    Refused(String),
}

/// Sends one request and returns the daemon's JSON answer.
pub async fn ask(socket: &Path, request: Request) -> Result<Value, ControlError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| ControlError::Connect { path: socket.display().to_string(), source })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(&request)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    let value: Value = serde_json::from_str(&answer)?;
    if let Some(e) = value.get("error").and_then(Value::as_str) {
        return Err(ControlError::Refused(e.to_string()));
    }
    Ok(value)
}

/// Runs a trace with `filter` (`dhcp6d trace`): hands each event to `each` until it returns
/// false, the daemon stops, or the connection breaks.
pub async fn trace(
    socket: &Path,
    filter: &crate::trace::TraceFilter,
    mut each: impl FnMut(crate::trace::TraceEvent) -> bool,
) -> Result<(), ControlError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| ControlError::Connect { path: socket.display().to_string(), source })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(&serde_json::json!({ "trace": filter }))?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let value: Value = serde_json::from_str(&line)?;
        if let Some(e) = value.get("error").and_then(Value::as_str) {
            return Err(ControlError::Refused(e.to_string()));
        }
        if !each(serde_json::from_value(value)?) {
            break;
        }
    }
    Ok(())
}
