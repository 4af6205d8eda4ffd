//! Configuration: TOML parsed into plain serde structs (`raw`), then checked into the typed
//! [`Config`] the server runs from. Every error names its line and column.
//!
//! ```toml
//! [server]
//! state_dir = "/var/lib/dhcp6d"
//! preferred_lifetime = 3600
//! valid_lifetime = 7200
//!
//! [[subnet]]
//! interface = "eth1"
//! prefix = "2001:db8:1::/64"
//! ranges = [{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }]
//! dns_servers = ["2001:db8::53"]
//!
//! [[subnet.pd_pool]]
//! prefix = "2001:db8:8000::/40"
//! delegated_length = 56
//! ```

use std::{
    fmt,
    net::{Ipv6Addr, SocketAddr, SocketAddrV6},
    path::{Path, PathBuf},
};

use dhcp6_codec::{parse_hex, HOP_COUNT_LIMIT};
use dhcp6_engine::{
    relay::{
        self,
        standby::{daily::DailyTime, vrrp::VrrpSubject, BackupService, LinkTls, StandbyConfig, StandbyProfile},
        AccessInterface, GroupMember, RelayConfig, SendTo, ServerGroup, Vlans,
    },
    server::config::{
        AddressRange, Allocation, Lifetimes, PdPool, Reservation, ServerConfig, Subnet, DEFAULT_MAX_IAS_PER_MESSAGE,
        DEFAULT_MAX_LEASES_PER_CLIENT,
    },
};
use ipnet::Ipv6Net;
use serde::Deserialize;
use toml::Spanned;

/// A configuration error with where it is in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}

/// The sizes the XDP lease map may be given: 16 million bindings are about 3 GiB of kernel
/// memory at most.
pub const FAST_PATH_BINDINGS: std::ops::RangeInclusive<u32> = 1024..=1 << 24;

/// What the daemon itself runs from: where it keeps state and how it uses XDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSettings {
    /// Where the server DUID and the lease journal are kept.
    pub state_dir: PathBuf,
    /// The control socket `dhcp6d show` talks to.
    pub control_socket: PathBuf,
    /// With the XDP renewal answer: how many bindings its lease map holds (those past it are
    /// renewed from userspace).
    pub fast_path_bindings: u32,
    /// With XDP: on-link clients' messages come up through AF_XDP sockets, past the kernel's
    /// IP and UDP stack, and their replies go down the same way (`daemon::xsk`).
    pub af_xdp: bool,
    /// Where Prometheus metrics are served (`[metrics] listen`); none: not served.
    pub metrics_listen: Option<SocketAddr>,
    /// Per-client storm protection in XDP (`[storm]`); none: off.
    pub storm: Option<StormSettings>,
    /// Where leases are kept (`[lease_database]`).
    pub lease_database: LeaseDatabase,
}

/// `[storm]`: each client may send `rate` messages a second to the server or the relay, in
/// bursts of up to `burst`; XDP cuts the rest (`dhcp6_common::storm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StormSettings {
    pub rate: u32,
    pub burst: u32,
}

/// `[lease_database]`: the journal in `state_dir` (the default), or a PostgreSQL database
/// several servers share.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LeaseDatabase {
    #[default]
    Journal,
    Postgresql(crate::store::postgresql::PostgresSettings),
}

/// A whole configuration file, checked: the daemon's own settings (the `[server]` table's
/// state and XDP keys) and what each engine runs from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub daemon: DaemonSettings,
    /// The server engine's part: `[server]`'s lease keys and every `[[subnet]]`.
    pub server: ServerConfig,
    /// The relay engine's part, when it relays.
    pub relay: Option<RelayConfig>,
    /// This server's side of a failover pair, when it is one.
    pub failover: Option<FailoverSettings>,
    /// Leasequery, the server's side (`[leasequery]`) and the relay's (`relay_id`, `rebuild`).
    pub leasequery: LeasequerySettings,
}

/// Leasequery (RFC 5007, RFC 5460): who may ask this server, where bulk queries are taken, and
/// how a relay sends its Relay-ID and rebuilds its entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeasequerySettings {
    /// Requestors' prefixes (`[leasequery] allow`); others are answered NotAllowed.
    pub access: crate::server::leasequery::Access,
    /// Where bulk leasequery is taken over TCP (`[leasequery] listen`, by default `[::]:547`
    /// once `[leasequery]` is there); none: no TCP.
    pub listen: Option<SocketAddrV6>,
    /// `[relay] relay_id = "duid"`: the relay's Relay-ID is its server DUID (filled in at start).
    pub relay_id_from_duid: bool,
    /// `[relay] rebuild`: how a relay that starts with no user entries asks its servers for them.
    pub rebuild: Option<crate::relay::RebuildBy>,
}

/// Which server of a failover pair this is (RFC 8156): the primary connects to the secondary
/// and owns the lower half of each pool; the secondary listens and owns the upper half.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailoverRole {
    Primary,
    Secondary,
}

/// The port RFC 8156 section 5.1 gives the failover protocol.
pub const FAILOVER_PORT: u16 = 647;

/// `[failover]`: this server's side of a failover pair (RFC 8156).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverSettings {
    pub role: FailoverRole,
    /// The partner's address and port: the primary connects there; the secondary takes a
    /// connection from that address only.
    pub partner: SocketAddrV6,
    /// This server's address on the link between them, and (for the secondary) the port it
    /// listens on.
    pub local: SocketAddrV6,
    /// Maximum Client Lead Time, seconds: how far past what the partner has acknowledged a
    /// client's lifetime may reach (RFC 8156 section 4.4).
    pub mclt: u32,
    /// Seconds between CONTACTs on an idle connection; the partner is taken for unreachable
    /// after three of them pass without a word.
    pub keepalive: u32,
    /// Seconds in COMMUNICATIONS-INTERRUPTED after which the server goes to PARTNER-DOWN by
    /// itself; none: only an operator's `dhcp6d failover partner-down` does.
    pub auto_partner_down: Option<u32>,
    /// Binding updates sent and not yet acknowledged before the sender waits.
    pub max_unacked_updates: u32,
    /// TLS on the partner connection, the partner's certificate pinned (`[failover.tls]`).
    pub tls: Option<crate::tls::TlsFiles>,
}

/// What the file says, before checking.
mod raw {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        #[serde(default)]
        pub server: Server,
        #[serde(default)]
        pub subnet: Vec<Spanned<Subnet>>,
        pub relay: Option<Relay>,
        pub failover: Option<Spanned<Failover>>,
        pub metrics: Option<Metrics>,
        pub leasequery: Option<Leasequery>,
        pub storm: Option<Storm>,
        pub lease_database: Option<Spanned<LeaseDatabase>>,
    }

    /// `[leasequery]`: who may ask this server, and where bulk queries come over TCP.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Leasequery {
        #[serde(default)]
        pub allow: Vec<Spanned<String>>,
        pub listen: Option<Spanned<String>>,
    }

    /// `[storm]`: per-client storm protection.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Storm {
        pub rate: Spanned<u32>,
        pub burst: Option<Spanned<u32>>,
    }

    /// `[lease_database]`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct LeaseDatabase {
        #[serde(rename = "type")]
        pub kind: Spanned<String>,
        pub host: Option<String>,
        pub port: Option<u16>,
        pub database: Option<String>,
        pub user: Option<String>,
        pub password_file: Option<PathBuf>,
        pub tls: Option<crate::store::postgresql::TlsMode>,
        pub tls_ca: Option<PathBuf>,
        pub pool_size: Option<Spanned<u32>>,
        pub commit_wait_ms: Option<Spanned<u64>>,
    }

    /// `[metrics]`: the HTTP endpoint Prometheus scrapes.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Metrics {
        pub listen: Spanned<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Failover {
        pub role: super::FailoverRole,
        pub partner: Spanned<String>,
        pub local: Spanned<String>,
        pub mclt: Option<Spanned<u32>>,
        pub keepalive: Option<Spanned<u32>>,
        pub auto_partner_down: Option<u32>,
        pub max_unacked_updates: Option<Spanned<u32>>,
        pub tls: Option<FailoverTls>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FailoverTls {
        pub certificate: PathBuf,
        pub key: PathBuf,
        pub partner_certificate: PathBuf,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Relay {
        #[serde(default)]
        pub group: Vec<Spanned<RelayGroup>>,
        #[serde(default)]
        pub interface: Vec<Spanned<RelayInterface>>,
        pub route_protocol: Option<u8>,
        pub route_metric: Option<u32>,
        pub route_hold: Option<u64>,
        pub hop_count_limit: Option<Spanned<u8>>,
        pub standby: Option<Spanned<Standby>>,
        pub relay_id: Option<Spanned<String>>,
        pub rebuild: Option<crate::relay::RebuildBy>,
    }

    /// `[relay.standby]`: dual-device hot standby.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Standby {
        pub notify_fifo: Option<PathBuf>,
        #[serde(default)]
        pub service: Vec<Spanned<BackupService>>,
        #[serde(default)]
        pub profile: Vec<Spanned<StandbyProfile>>,
    }

    /// `[[relay.standby.service]]`: a backup link to the peer relay.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct BackupService {
        pub name: String,
        pub peer: Ipv6Addr,
        pub source: Ipv6Addr,
        pub port: u16,
        pub tls: Option<LinkTls>,
        /// `"HH:MM"` or `"HH:MM:SS"`, UTC.
        pub daily_batch: Option<Spanned<String>>,
    }

    /// `tls = { certificate = "...", key = "...", peer_certificate = "..." }`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct LinkTls {
        pub certificate: std::path::PathBuf,
        pub key: std::path::PathBuf,
        pub peer_certificate: std::path::PathBuf,
    }

    /// `[[relay.standby.profile]]`: access entries following one VRRP instance.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct StandbyProfile {
        pub name: String,
        pub vrrp_instance: Option<String>,
        pub vrrp_group: Option<String>,
        pub service: String,
        pub interfaces: Vec<String>,
        pub degrade_metric: Option<u32>,
        pub virtual_address: Option<Ipv6Addr>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RelayGroup {
        pub name: String,
        pub servers: Vec<GroupServer>,
        /// `"one"` (the default): each client to one server; `"all"`: every message to every
        /// server.
        pub send_to: Option<SendTo>,
        pub dead_after: Option<u32>,
        pub answer_timeout: Option<u64>,
        pub retry_after: Option<u64>,
    }

    /// A server of a group: its address, or `{ address = "...", weight = N }`.
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a server address, or { address = \"...\", weight = N }")]
    pub enum GroupServer {
        Address(Ipv6Addr),
        Weighted(WeightedServer),
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct WeightedServer {
        pub address: Ipv6Addr,
        pub weight: Option<u32>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RemoteId {
        pub enterprise: u32,
        pub template: String,
    }

    /// A VLAN ID, or a range of them, "low-high".
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a VLAN ID (1 to 4094), or a range of them as \"low-high\"")]
    pub enum VlanSpec {
        Id(u16),
        Range(String),
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RelayInterface {
        pub name: String,
        /// The VLAN ID of the clients' outer (or only) tag: only frames so tagged are relayed
        /// by this entry. A range ("100-199") makes an entry per VLAN.
        pub vlan: Option<VlanSpec>,
        /// The VLAN ID (or range) of their inner tag (under `vlan`).
        pub inner_vlan: Option<VlanSpec>,
        pub group: String,
        pub link_address: Ipv6Addr,
        pub interface_id: Option<String>,
        pub remote_id: Option<RemoteId>,
        #[serde(default)]
        pub client_link_layer_address: bool,
    }

    /// Lease attributes settable server-wide and per subnet, gathered from either.
    #[derive(Default, Clone)]
    pub struct Attributes {
        pub preferred_lifetime: Option<u32>,
        pub valid_lifetime: Option<u32>,
        pub t1: Option<u32>,
        pub t2: Option<u32>,
        pub max_lease_time: Option<u32>,
        pub grace_period: Option<u32>,
        pub dns_servers: Option<Vec<Ipv6Addr>>,
        pub domain_search: Option<Vec<String>>,
        pub preference: Option<u8>,
        pub rapid_commit: Option<bool>,
        pub interface_client_limit: Option<u32>,
        pub max_leases_per_binding: Option<u32>,
    }

    /// Declares a table that also holds every [`Attributes`] field. The fields are written
    /// into the table rather than `#[serde(flatten)]`ed, because flattening loses the line
    /// and column of errors inside them.
    macro_rules! with_attributes {
        ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
            $(#[$meta])*
            pub struct $name {
                $($(#[$fmeta])* pub $field: $ty,)*
                pub preferred_lifetime: Option<u32>,
                pub valid_lifetime: Option<u32>,
                pub t1: Option<u32>,
                pub t2: Option<u32>,
                pub max_lease_time: Option<u32>,
                pub grace_period: Option<u32>,
                pub dns_servers: Option<Vec<Ipv6Addr>>,
                pub domain_search: Option<Vec<String>>,
                pub preference: Option<u8>,
                pub rapid_commit: Option<bool>,
                pub interface_client_limit: Option<u32>,
                pub max_leases_per_binding: Option<u32>,
            }

            impl $name {
                pub fn attributes(&self) -> Attributes {
                    Attributes {
                        preferred_lifetime: self.preferred_lifetime,
                        valid_lifetime: self.valid_lifetime,
                        t1: self.t1,
                        t2: self.t2,
                        max_lease_time: self.max_lease_time,
                        grace_period: self.grace_period,
                        dns_servers: self.dns_servers.clone(),
                        domain_search: self.domain_search.clone(),
                        preference: self.preference,
                        rapid_commit: self.rapid_commit,
                        interface_client_limit: self.interface_client_limit,
                        max_leases_per_binding: self.max_leases_per_binding,
                    }
                }
            }
        };
    }

    with_attributes! {
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        pub struct Server {
            pub state_dir: Option<PathBuf>,
            pub control_socket: Option<PathBuf>,
            pub offer_lifetime: Option<Spanned<u32>>,
            pub decline_probation: Option<u32>,
            pub max_ias_per_message: Option<Spanned<u32>>,
            pub max_leases_per_client: Option<Spanned<u32>>,
            pub renewal_horizon: Option<u32>,
            pub fast_path_bindings: Option<Spanned<u32>>,
            pub af_xdp: Option<bool>,
        }
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, untagged)]
    pub enum Range {
        Bounds { low: Ipv6Addr, high: Ipv6Addr },
        Prefix { prefix: Ipv6Net },
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct PdPool {
        pub prefix: Ipv6Net,
        pub delegated_length: u8,
        #[serde(default)]
        pub ranges: Vec<Ipv6Net>,
        /// For `dhcp6d pool lock` and `show pools`; by default the prefix.
        pub name: Option<String>,
        #[serde(default)]
        pub locked: bool,
        /// RFC 6603: the prefix excluded from each delegated prefix (its bits past
        /// `delegated_length`), for clients that ask for OPTION_PD_EXCLUDE.
        pub excluded_prefix: Option<Ipv6Net>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Reservation {
        pub duid: String,
        pub address: Option<Ipv6Addr>,
        pub prefix: Option<Ipv6Net>,
    }

    with_attributes! {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Subnet {
            pub interface: Option<String>,
            pub prefix: Ipv6Net,
            #[serde(default)]
            pub allocation: Allocation,
            #[serde(default)]
            pub ranges: Vec<Spanned<Range>>,
            #[serde(default)]
            pub excluded: Vec<Ipv6Addr>,
            #[serde(default)]
            pub pd_pool: Vec<Spanned<PdPool>>,
            #[serde(default)]
            pub reservation: Vec<Spanned<Reservation>>,
            /// The name of the address pool (the ranges); by default the prefix.
            pub name: Option<String>,
            /// The address pool gives nothing to new clients.
            #[serde(default)]
            pub locked: bool,
        }
    }
}

/// Line and column (1-based) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Checks `[lease_database]`.
fn check_lease_database(d: Spanned<raw::LeaseDatabase>) -> Result<LeaseDatabase, (usize, String)> {
    let start = d.span().start;
    let d = d.into_inner();
    match d.kind.get_ref().as_str() {
        "journal" => {
            let postgres_keys = d.host.is_some()
                || d.port.is_some()
                || d.database.is_some()
                || d.user.is_some()
                || d.password_file.is_some()
                || d.tls.is_some()
                || d.tls_ca.is_some()
                || d.pool_size.is_some()
                || d.commit_wait_ms.is_some();
            match postgres_keys {
                true => {
                    Err((start, "type = \"journal\" takes no database keys: they are for type = \"postgresql\"".into()))
                }
                false => Ok(LeaseDatabase::Journal),
            }
        }
        "postgresql" => {
            use crate::store::postgresql::{PostgresSettings, TlsMode};
            let pool_size = match d.pool_size {
                Some(n) if !(1..=64).contains(n.get_ref()) => {
                    return Err((n.span().start, format!("pool_size is {}: it must be from 1 to 64", n.get_ref())))
                }
                Some(n) => *n.get_ref() as usize,
                None => 2,
            };
            let commit_wait_ms = match d.commit_wait_ms {
                Some(n) if !(100..=60_000).contains(n.get_ref()) => {
                    return Err((
                        n.span().start,
                        format!("commit_wait_ms is {}: it must be from 100 to 60000", n.get_ref()),
                    ))
                }
                Some(n) => *n.get_ref(),
                None => 3000,
            };
            let tls = d.tls.unwrap_or(TlsMode::Disable);
            if tls == TlsMode::VerifyFull && d.tls_ca.is_none() {
                return Err((
                    start,
                    "tls = \"verify-full\" needs tls_ca, the CA certificates (PEM) to check the server's against"
                        .into(),
                ));
            }
            let database = d.database.ok_or((start, "type = \"postgresql\" needs database".to_string()))?;
            Ok(LeaseDatabase::Postgresql(PostgresSettings {
                host: d.host.unwrap_or_else(|| "localhost".into()),
                port: d.port.unwrap_or(5432),
                user: d.user.unwrap_or_else(|| "dhcp6d".into()),
                database,
                password_file: d.password_file,
                tls,
                tls_ca: d.tls_ca,
                pool_size,
                commit_wait: std::time::Duration::from_millis(commit_wait_ms),
            }))
        }
        other => {
            Err((d.kind.span().start, format!("lease_database type {other:?}: it is \"journal\" or \"postgresql\"")))
        }
    }
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigFileError> {
        let bytes = std::fs::read(path).map_err(|e| ConfigFileError::Read(path.to_path_buf(), e))?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let valid = &bytes[..e.valid_up_to()];
            // Everything before the bad byte is text: its lines and columns are counted there.
            let (line, column) = position(std::str::from_utf8(valid).unwrap_or_default(), valid.len());
            let message = format!("not UTF-8: the byte at offset {} does not start a character", e.valid_up_to());
            ConfigFileError::Invalid(path.to_path_buf(), ConfigError { line, column, message })
        })?;
        Config::parse(text).map_err(|e| ConfigFileError::Invalid(path.to_path_buf(), e))
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let at = |offset: usize, message: String| {
            let (line, column) = position(text, offset);
            ConfigError { line, column, message }
        };
        let file: raw::File = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, e.message().trim().to_string())
        })?;
        let defaults = file.server.attributes();
        let fast_path_bindings = match &file.server.fast_path_bindings {
            Some(n) if !FAST_PATH_BINDINGS.contains(n.get_ref()) => {
                return Err(at(
                    n.span().start,
                    format!(
                        "fast_path_bindings is {}: it must be from {} to {}",
                        n.get_ref(),
                        FAST_PATH_BINDINGS.start(),
                        FAST_PATH_BINDINGS.end()
                    ),
                ))
            }
            Some(n) => *n.get_ref(),
            None => dhcp6_common::renewal::LEASE_MAP_ENTRIES,
        };
        let daemon = DaemonSettings {
            state_dir: file.server.state_dir.unwrap_or_else(|| PathBuf::from("/var/lib/dhcp6d")),
            control_socket: file.server.control_socket.unwrap_or_else(|| PathBuf::from("/run/dhcp6d.sock")),
            fast_path_bindings,
            af_xdp: file.server.af_xdp.unwrap_or(true),
            metrics_listen: match &file.metrics {
                Some(m) => Some(check_metrics_listen(&m.listen).map_err(|(offset, m)| at(offset, m))?),
                None => None,
            },
            storm: match &file.storm {
                Some(s) => Some(check_storm(s).map_err(|(offset, m)| at(offset, m))?),
                None => None,
            },
            lease_database: match file.lease_database {
                Some(d) => check_lease_database(d).map_err(|(offset, m)| at(offset, m))?,
                None => LeaseDatabase::Journal,
            },
        };
        let offer_lifetime = match &file.server.offer_lifetime {
            Some(o) if *o.get_ref() == 0 => {
                return Err(at(
                    o.span().start,
                    "offer_lifetime is 0: an offer would end before the Request for it".into(),
                ))
            }
            Some(o) => *o.get_ref(),
            None => 60,
        };
        let decline_probation = file.server.decline_probation.unwrap_or(86_400);
        let renewal_horizon = file.server.renewal_horizon;
        let mut subnets = Vec::new();
        for (id, spanned) in file.subnet.into_iter().enumerate() {
            let start = spanned.span().start;
            let subnet = check_subnet(id, spanned.into_inner(), &defaults)
                .map_err(|(offset, m)| at(offset.unwrap_or(start), m))?;
            for other in &subnets {
                let other: &Subnet = other;
                if other.prefix.contains(&subnet.prefix) || subnet.prefix.contains(&other.prefix) {
                    return Err(at(start, format!("subnet {} overlaps subnet {}", subnet.prefix, other.prefix)));
                }
                if let (Some(i), Some(j)) = (&subnet.interface, &other.interface) {
                    if i == j {
                        return Err(at(
                            start,
                            format!(
                                "subnet {} is on interface {i}, as subnet {} is: one subnet per interface (several prefixes on one link are not supported)",
                                subnet.prefix, other.prefix
                            ),
                        ));
                    }
                }
            }
            let twice = {
                let names = subnets.iter().chain([&subnet]).flat_map(pool_names);
                pool_names(&subnet).find(|n| names.clone().filter(|m| m == n).count() > 1).map(str::to_string)
            };
            if let Some(twice) = twice {
                return Err(at(
                    start,
                    format!("pool name {twice:?} is used twice: give one of them another `name` (`dhcp6d pool lock` takes it)"),
                ));
            }
            subnets.push(subnet);
        }
        let mut leasequery = match &file.leasequery {
            Some(l) => check_leasequery(l).map_err(|(offset, m)| at(offset, m))?,
            None => LeasequerySettings::default(),
        };
        if let Some(r) = &file.relay {
            leasequery.relay_id_from_duid = r.relay_id.as_ref().is_some_and(|id| id.get_ref() == "duid");
            leasequery.rebuild = r.rebuild;
            if let (Some(crate::relay::RebuildBy::RelayId), None) = (r.rebuild, &r.relay_id) {
                return Err(at(0, "[relay] rebuild = \"relay-id\" needs a relay_id (\"duid\" or hex)".into()));
            }
        }
        let relay = match file.relay {
            Some(r) => Some(check_relay(r).map_err(|(offset, m)| at(offset, m))?),
            None => None,
        };
        if let Some(r) = &relay {
            if let Some(i) =
                r.interfaces.iter().find(|i| subnets.iter().any(|s| s.interface.as_deref() == Some(&i.name)))
            {
                return Err(at(
                    0,
                    format!("{} is both a relay interface and a served subnet's: one role each", i.name),
                ));
            }
        }
        if subnets.is_empty() && relay.is_none() {
            return Err(at(0, "no [[subnet]] and no [relay]: dhcp6d would have nothing to do".into()));
        }
        let max_ias_per_message = match &file.server.max_ias_per_message {
            Some(n) if *n.get_ref() == 0 => {
                return Err(at(n.span().start, "max_ias_per_message is 0: no client would get anything".into()))
            }
            Some(n) => *n.get_ref(),
            None => DEFAULT_MAX_IAS_PER_MESSAGE,
        };
        let max_leases_per_client = match &file.server.max_leases_per_client {
            Some(n) if *n.get_ref() == 0 => {
                return Err(at(n.span().start, "max_leases_per_client is 0: no client would get anything".into()))
            }
            Some(n) => *n.get_ref(),
            None => DEFAULT_MAX_LEASES_PER_CLIENT,
        };
        let server = ServerConfig {
            offer_lifetime,
            decline_probation,
            renewal_horizon,
            max_ias_per_message,
            max_leases_per_client,
            subnets,
        };
        let failover = match file.failover {
            Some(f) => Some(check_failover(f).map_err(|(offset, m)| at(offset, m))?),
            None => None,
        };
        if failover.is_some() && server.subnets.is_empty() {
            return Err(at(0, "[failover] with no [[subnet]]: a failover pair shares a server's leases".into()));
        }
        Ok(Config { daemon, server, relay, failover, leasequery })
    }
}

/// `[metrics] listen` checked: an address with its port (IPv4 or IPv6: Prometheus often
/// scrapes over loopback).
fn check_metrics_listen(listen: &Spanned<String>) -> Result<SocketAddr, (usize, String)> {
    let text = listen.get_ref();
    text.parse::<SocketAddr>().map_err(|_| {
        (listen.span().start, format!("metrics listen {text:?} is no address with a port (like \"[::1]:9547\")"))
    })
}

/// `[leasequery]` checked: prefixes, and the TCP address (port 547 unless given).
fn check_leasequery(l: &raw::Leasequery) -> Result<LeasequerySettings, (usize, String)> {
    let mut allow = Vec::new();
    for p in &l.allow {
        let text = p.get_ref();
        let net = text.parse::<Ipv6Net>().or_else(|_| text.parse::<Ipv6Addr>().map(Ipv6Net::from)).map_err(|_| {
            (p.span().start, format!("leasequery allow {text:?} is no IPv6 prefix (like \"2001:db8::/32\")"))
        })?;
        allow.push(net.trunc());
    }
    let listen = match &l.listen {
        Some(text) => match text.get_ref().parse::<SocketAddr>() {
            Ok(SocketAddr::V6(a)) => a,
            _ => {
                return Err((
                    text.span().start,
                    format!(
                        "leasequery listen {:?} is no IPv6 address with a port (like \"[::]:547\")",
                        text.get_ref()
                    ),
                ))
            }
        },
        None => SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, dhcp6_codec::SERVER_PORT, 0, 0),
    };
    Ok(LeasequerySettings {
        access: crate::server::leasequery::Access { allow },
        listen: Some(listen),
        ..LeasequerySettings::default()
    })
}

/// `[storm]` checked: a rate and a burst of at least one message, at most
/// [`dhcp6_common::storm::STORM_MAX`]. The burst defaults to twice the rate: a client that
/// retransmits its exchange at once after a restart is not cut for it.
fn check_storm(s: &raw::Storm) -> Result<StormSettings, (usize, String)> {
    let limits = 1..=dhcp6_common::storm::STORM_MAX;
    let check = |value: &Spanned<u32>, what: &str| {
        let v = *value.get_ref();
        if limits.contains(&v) {
            Ok(v)
        } else {
            Err((value.span().start, format!("storm {what} is {v}: it must be from 1 to {} messages", limits.end())))
        }
    };
    let rate = check(&s.rate, "rate")?;
    let burst = match &s.burst {
        Some(b) => check(b, "burst")?,
        None => rate.saturating_mul(2).min(*limits.end()),
    };
    Ok(StormSettings { rate, burst })
}

/// `[failover]` checked: addresses with their ports, and timers that make sense together.
fn check_failover(f: Spanned<raw::Failover>) -> Result<FailoverSettings, (usize, String)> {
    let f = f.into_inner();
    let address = |s: &Spanned<String>, what: &str| -> Result<SocketAddrV6, (usize, String)> {
        let text = s.get_ref();
        let parsed = match text.parse::<SocketAddr>() {
            Ok(SocketAddr::V6(a)) => Ok(a),
            Ok(SocketAddr::V4(_)) => Err(format!("{what} {text:?} is IPv4: the pair talks over IPv6")),
            Err(_) => match text.parse::<Ipv6Addr>() {
                Ok(a) => Ok(SocketAddrV6::new(a, FAILOVER_PORT, 0, 0)),
                Err(_) => Err(format!("{what} {text:?} is no IPv6 address (with a port: \"[2001:db8::1]:647\")")),
            },
        };
        parsed.map_err(|m| (s.span().start, m))
    };
    let partner = address(&f.partner, "partner")?;
    let local = address(&f.local, "local")?;
    if partner.ip() == local.ip() {
        return Err((f.partner.span().start, "partner and local are the same address".into()));
    }
    let mclt = match f.mclt {
        Some(m) if *m.get_ref() == 0 => {
            return Err((
                m.span().start,
                "mclt is 0: no client could be told any lifetime before the partner acknowledged it".into(),
            ))
        }
        Some(m) => *m.get_ref(),
        None => DEFAULT_MCLT,
    };
    let keepalive = match f.keepalive {
        Some(k) if *k.get_ref() == 0 || *k.get_ref() > 3600 => {
            return Err((k.span().start, format!("keepalive is {}: it must be from 1 to 3600 seconds", k.get_ref())))
        }
        Some(k) => *k.get_ref(),
        None => DEFAULT_KEEPALIVE,
    };
    let max_unacked_updates = match f.max_unacked_updates {
        Some(m) if *m.get_ref() == 0 => {
            return Err((m.span().start, "max_unacked_updates is 0: no update could be sent".into()))
        }
        Some(m) => *m.get_ref(),
        None => DEFAULT_MAX_UNACKED,
    };
    Ok(FailoverSettings {
        role: f.role,
        partner,
        local,
        mclt,
        keepalive,
        auto_partner_down: f.auto_partner_down.filter(|s| *s > 0),
        max_unacked_updates,
        tls: f.tls.map(|t| crate::tls::TlsFiles {
            certificate: t.certificate,
            key: t.key,
            peer_certificate: t.partner_certificate,
        }),
    })
}

/// The MCLT when none is configured: an hour, what RFC 8156 section 4.4 discusses. A client
/// of a server whose partner is unreachable gets at most this much beyond what the partner
/// acknowledged, and a server in PARTNER-DOWN waits this long before it takes its partner's
/// half: longer makes a partner's failure cheaper for its clients, shorter a takeover quicker.
pub const DEFAULT_MCLT: u32 = 3600;
/// Seconds between CONTACTs: small enough that a partner that died without closing its
/// connection is noticed within three seconds, the time a takeover must take.
pub const DEFAULT_KEEPALIVE: u32 = 1;
/// Binding updates in flight: enough to keep a connection busy at a high lease rate, few
/// enough that the partner's journal keeps up (RFC 8156's OPTION_F_MAX_UNACKED_BNDUPD).
pub const DEFAULT_MAX_UNACKED: u32 = 1024;

/// A failure to load a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Invalid(PathBuf, ConfigError),
}

/// The names of a subnet's pools: its address pool's, then each PD pool's.
fn pool_names(s: &Subnet) -> impl Iterator<Item = &str> + Clone {
    std::iter::once(s.name.as_str()).chain(s.pd_pools.iter().map(|p| p.name.as_str()))
}

/// Checks one subnet; an error carries the byte offset of what is wrong when it has one.
fn check_subnet(id: usize, s: raw::Subnet, defaults: &raw::Attributes) -> Result<Subnet, (Option<usize>, String)> {
    let a = &s.attributes();
    let pick = |own: Option<u32>, server: Option<u32>, default: u32| own.or(server).unwrap_or(default);
    let max_lease_time = a.max_lease_time.or(defaults.max_lease_time);
    let mut valid = pick(a.valid_lifetime, defaults.valid_lifetime, 7200);
    if let Some(max) = max_lease_time {
        valid = valid.min(max);
    }
    if valid == 0 {
        return Err((None, format!("subnet {}: valid_lifetime is 0: every lease would end as it is given", s.prefix)));
    }
    let preferred = pick(a.preferred_lifetime, defaults.preferred_lifetime, valid / 2 + valid / 4);
    if preferred == 0 {
        return Err((None, format!("subnet {}: preferred_lifetime is 0: no address could be used", s.prefix)));
    }
    if preferred > valid {
        return Err((
            None,
            format!(
                "subnet {}: preferred_lifetime ({preferred}) is above the valid lifetime ({valid}{}); RFC 9915 section 21.6 has the preferred lifetime at most the valid one",
                s.prefix,
                if max_lease_time.is_some_and(|m| m == valid) { ", max_lease_time" } else { "" }
            ),
        ));
    }
    let t1 = pick(a.t1, defaults.t1, preferred / 2);
    let t2 = pick(a.t2, defaults.t2, (u64::from(preferred) * 4 / 5) as u32);
    if t1 > t2 {
        return Err((None, format!("subnet {}: t1 ({t1}) is after t2 ({t2})", s.prefix)));
    }
    let prefix = s.prefix.trunc();
    let mut ranges = Vec::new();
    for r in &s.ranges {
        let range = match r.get_ref() {
            raw::Range::Bounds { low, high } => AddressRange { low: u128::from(*low), high: u128::from(*high) },
            raw::Range::Prefix { prefix } => {
                AddressRange { low: u128::from(prefix.network()), high: u128::from(prefix.broadcast()) }
            }
        };
        let at = Some(r.span().start);
        if range.low > range.high {
            return Err((at, "range: low is above high".into()));
        }
        if !prefix.contains(&Ipv6Addr::from(range.low)) || !prefix.contains(&Ipv6Addr::from(range.high)) {
            return Err((at, format!("range is not inside the subnet prefix {prefix}")));
        }
        if ranges.iter().any(|o: &AddressRange| o.low <= range.high && range.low <= o.high) {
            return Err((at, "range overlaps another range of this subnet".into()));
        }
        ranges.push(range);
    }
    if s.allocation == Allocation::InterfaceIdentifier && prefix.prefix_len() > 64 {
        return Err((
            None,
            format!("subnet {prefix}: interface-identifier allocation needs a prefix of /64 or shorter"),
        ));
    }
    let mut pd_pools = Vec::new();
    for p in &s.pd_pool {
        let at = Some(p.span().start);
        let pool = p.get_ref();
        if pool.delegated_length < pool.prefix.prefix_len() || pool.delegated_length > 128 {
            return Err((at, format!("delegated_length {} does not fit in {}", pool.delegated_length, pool.prefix)));
        }
        let ranges = if pool.ranges.is_empty() {
            vec![pool.prefix.trunc()]
        } else {
            pool.ranges.iter().map(Ipv6Net::trunc).collect()
        };
        for r in &ranges {
            if !pool.prefix.contains(r) || r.prefix_len() > pool.delegated_length {
                return Err((
                    at,
                    format!("pd range {r} is not inside {} or is longer than /{}", pool.prefix, pool.delegated_length),
                ));
            }
        }
        if let Some(x) = pool.excluded_prefix {
            if !pool.prefix.contains(&x) || x.prefix_len() <= pool.delegated_length {
                return Err((
                    at,
                    format!(
                        "excluded_prefix {x} must be inside {} and longer than the delegated /{} (RFC 6603)",
                        pool.prefix, pool.delegated_length
                    ),
                ));
            }
        }
        pd_pools.push(PdPool {
            name: pool.name.clone().unwrap_or_else(|| pool.prefix.trunc().to_string()),
            locked: pool.locked,
            prefix: pool.prefix.trunc(),
            delegated_length: pool.delegated_length,
            ranges,
            excluded_prefix: pool.excluded_prefix.map(|x| x.trunc()),
        });
    }
    let mut reservations = Vec::new();
    for r in &s.reservation {
        let at = Some(r.span().start);
        let res = r.get_ref();
        let duid =
            parse_hex(&res.duid).ok_or((at, format!("reservation duid {:?} is not colon-separated hex", res.duid)))?;
        if duid.len() < 2 {
            return Err((at, "reservation duid is shorter than 2 bytes".into()));
        }
        if let Some(addr) = res.address {
            if !prefix.contains(&addr) {
                return Err((at, format!("reserved address {addr} is not in {prefix}")));
            }
        }
        if let Some(p) = res.prefix {
            if !pd_pools.iter().any(|pool| pool.prefix.contains(&p) && p.prefix_len() == pool.delegated_length) {
                return Err((at, format!("reserved prefix {p} is not a delegated-length prefix of any pd_pool")));
            }
        }
        reservations.push(Reservation { duid, address: res.address, prefix: res.prefix.map(|p| p.trunc()) });
    }
    let domain_search = a
        .domain_search
        .clone()
        .or_else(|| defaults.domain_search.clone())
        .unwrap_or_default()
        .iter()
        .map(|name| {
            dhcp6_codec::DomainName::from_dotted(name)
                .ok_or((None, format!("domain_search entry {name:?} is not a domain name")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Subnet {
        id,
        interface: s.interface,
        prefix,
        allocation: s.allocation,
        ranges,
        name: s.name.unwrap_or_else(|| prefix.to_string()),
        locked: s.locked,
        // The Subnet-Router anycast address (RFC 4291 section 2.6.1) is never handed out.
        excluded: s.excluded.into_iter().chain([prefix.network()]).collect(),
        pd_pools,
        lifetimes: Lifetimes { preferred, valid, t1, t2 },
        grace_period: pick(a.grace_period, defaults.grace_period, 3600),
        dns_servers: a.dns_servers.clone().or_else(|| defaults.dns_servers.clone()).unwrap_or_default(),
        domain_search,
        preference: a.preference.or(defaults.preference),
        rapid_commit: a.rapid_commit.or(defaults.rapid_commit).unwrap_or(false),
        client_limit: a.interface_client_limit.or(defaults.interface_client_limit),
        max_leases_per_binding: a.max_leases_per_binding.or(defaults.max_leases_per_binding).unwrap_or(1).max(1),
        reservations,
    })
}

/// Most relay access entries (interfaces times VLANs), as many as the XDP relay's link map
/// holds.
pub const MAX_ACCESS_ENTRIES: usize = dhcp6_common::relay::RELAY_LINK_ENTRIES as usize;

/// Checks the relay section; an error carries the byte offset of what is wrong.
fn check_relay(r: raw::Relay) -> Result<RelayConfig, (usize, String)> {
    let mut groups = Vec::new();
    for g in &r.group {
        let at = g.span().start;
        let group = g.get_ref();
        if group.servers.is_empty() {
            return Err((at, format!("relay group {:?} has no servers", group.name)));
        }
        if groups.iter().any(|x: &ServerGroup| x.name == group.name) {
            return Err((at, format!("relay group {:?} is defined twice", group.name)));
        }
        let servers: Vec<GroupMember> = group
            .servers
            .iter()
            .map(|s| match s {
                raw::GroupServer::Address(address) => GroupMember::new(*address),
                raw::GroupServer::Weighted(w) => GroupMember { address: w.address, weight: w.weight.unwrap_or(1) },
            })
            .collect();
        let repeated = servers.iter().enumerate().find(|(i, m)| servers[..*i].iter().any(|o| o.address == m.address));
        if let Some((_, m)) = repeated {
            return Err((at, format!("relay group {:?} lists server {} twice", group.name, m.address)));
        }
        let send_to = group.send_to.unwrap_or_default();
        let weighted = group.servers.iter().find_map(|s| match s {
            raw::GroupServer::Weighted(w) if w.weight.is_some() => Some(w.address),
            _ => None,
        });
        if let (SendTo::All, Some(address)) = (send_to, weighted) {
            return Err((
                at,
                format!(
                    "relay group {:?} sends to all its servers: the weight of {address} means nothing there",
                    group.name
                ),
            ));
        }
        groups.push(ServerGroup {
            name: group.name.clone(),
            servers,
            send_to,
            dead_after: group.dead_after.unwrap_or(5).max(1),
            answer_timeout: group.answer_timeout.unwrap_or(3),
            retry_after: group.retry_after.unwrap_or(60),
        });
    }
    let mut interfaces = Vec::new();
    // (interface, VLANs) and Interface-IDs taken so far (-> entry).
    let mut entries = std::collections::HashSet::new();
    let mut ids_taken = std::collections::HashMap::new();
    for i in &r.interface {
        let at = i.span().start;
        let iface = i.get_ref();
        let group = groups
            .iter()
            .position(|g| g.name == iface.group)
            .ok_or((at, format!("relay interface {} names no group {:?}", iface.name, iface.group)))?;
        let ids = |v: &Option<raw::VlanSpec>, what: &str| -> Result<Vec<u16>, (usize, String)> {
            let bad = |text: String| {
                (
                    at,
                    format!(
                        "relay interface {}: {what} {text} is not a VLAN ID (1 to 4094) or a range of them",
                        iface.name
                    ),
                )
            };
            let id = |n: u16| if (1..=4094).contains(&n) { Ok(n) } else { Err(bad(n.to_string())) };
            match v {
                None => Ok(vec![0]),
                Some(raw::VlanSpec::Id(n)) => Ok(vec![id(*n)?]),
                Some(raw::VlanSpec::Range(text)) => {
                    // "7" is a range of one.
                    let (low, high) = text.split_once('-').unwrap_or((text, text));
                    let parse = |s: &str| {
                        s.trim().parse::<u16>().ok().and_then(|n| id(n).ok()).ok_or_else(|| bad(format!("{text:?}")))
                    };
                    let (low, high) = (parse(low)?, parse(high)?);
                    if low > high {
                        return Err(bad(format!("{text:?}")));
                    }
                    Ok((low..=high).collect())
                }
            }
        };
        let (outers, inners) = (ids(&iface.vlan, "vlan")?, ids(&iface.inner_vlan, "inner_vlan")?);
        if iface.vlan.is_none() && iface.inner_vlan.is_some() {
            return Err((at, format!("relay interface {}: inner_vlan needs the outer vlan", iface.name)));
        }
        for &outer in &outers {
            for &inner in &inners {
                let vlans = Vlans { outer, inner };
                let label = relay::label(&iface.name, vlans);
                if !entries.insert((iface.name.clone(), vlans)) {
                    return Err((at, format!("relay interface {label} is defined twice")));
                }
                let interface_id = match &iface.interface_id {
                    Some(template) => relay::fill(template, &iface.name, vlans),
                    None => label.clone(),
                }
                .into_bytes();
                if !interface_id.is_empty() {
                    if let Some(&other) = ids_taken.get(&interface_id) {
                        let other: &AccessInterface = &interfaces[other];
                        return Err((
                            at,
                            format!("relay interfaces {} and {label} have the same Interface-ID", other.label()),
                        ));
                    }
                    ids_taken.insert(interface_id.clone(), interfaces.len());
                }
                if interfaces.len() >= MAX_ACCESS_ENTRIES {
                    return Err((
                        at,
                        format!("more than {MAX_ACCESS_ENTRIES} relay access entries (interfaces times VLANs)"),
                    ));
                }
                interfaces.push(AccessInterface {
                    name: iface.name.clone(),
                    vlans,
                    link_address: iface.link_address,
                    group,
                    interface_id,
                    remote_id: iface.remote_id.as_ref().map(|r| (r.enterprise, r.template.clone())),
                    client_link_layer_address: iface.client_link_layer_address,
                });
            }
        }
    }
    if interfaces.is_empty() {
        return Err((0, "[relay] has no [[relay.interface]]".into()));
    }
    let hop_count_limit = match &r.hop_count_limit {
        // Past 32 relays the codec refuses the message anyway; a Relay-Forward must be able to
        // cross at least one.
        Some(h) if !(1..=HOP_COUNT_LIMIT).contains(h.get_ref()) => {
            return Err((
                h.span().start,
                format!("hop_count_limit is {}: it must be from 1 to {HOP_COUNT_LIMIT}", h.get_ref()),
            ))
        }
        Some(h) => *h.get_ref(),
        None => relay::DEFAULT_HOP_COUNT_LIMIT,
    };
    let route_metric = r.route_metric.unwrap_or(1024);
    let standby = match r.standby {
        Some(s) => check_standby(s, &interfaces, route_metric)?,
        None => StandbyConfig::default(),
    };
    Ok(RelayConfig {
        interfaces,
        groups,
        route_protocol: r.route_protocol.unwrap_or(200),
        route_metric,
        route_hold: r.route_hold.unwrap_or(600),
        hop_count_limit,
        standby,
        relay_id: match &r.relay_id {
            // The server DUID, filled in at start once it is loaded or made.
            Some(id) if id.get_ref() == "duid" => None,
            Some(id) => {
                Some(dhcp6_codec::parse_hex(id.get_ref()).filter(|d| dhcp6_codec::Duid::new(d).is_ok()).ok_or_else(
                    || (id.span().start, format!("relay_id {:?} is neither \"duid\" nor a DUID in hex", id.get_ref())),
                )?)
            }
            None => None,
        },
    })
}

/// The metric added to a backup's delegated-prefix routes unless a profile sets its own.
pub const DEFAULT_DEGRADE_METRIC: u32 = 100;

/// Checks `[relay.standby]` against the relay's access entries.
fn check_standby(
    s: Spanned<raw::Standby>,
    interfaces: &[AccessInterface],
    route_metric: u32,
) -> Result<StandbyConfig, (usize, String)> {
    let table_at = s.span().start;
    let s = s.into_inner();
    let mut services: Vec<BackupService> = Vec::new();
    for spanned in &s.service {
        let at = spanned.span().start;
        let b = spanned.get_ref();
        if services.iter().any(|x| x.name == b.name) {
            return Err((at, format!("standby service {:?} is defined twice", b.name)));
        }
        if b.peer == b.source {
            return Err((at, format!("standby service {:?}: peer and source are both {}", b.name, b.peer)));
        }
        if b.port == 0 {
            return Err((at, format!("standby service {:?}: port 0 is no port", b.name)));
        }
        for (what, a) in [("peer", b.peer), ("source", b.source)] {
            if a.is_unspecified() || a.is_multicast() || a.is_unicast_link_local() {
                return Err((
                    at,
                    format!(
                        "standby service {:?}: {what} {a} must be a global or unique-local unicast address",
                        b.name
                    ),
                ));
            }
        }
        let tls = b.tls.as_ref().map(|t| LinkTls {
            certificate: t.certificate.clone(),
            key: t.key.clone(),
            peer_certificate: t.peer_certificate.clone(),
        });
        let daily_batch = match &b.daily_batch {
            Some(d) => Some(
                DailyTime::parse(d.get_ref())
                    .map_err(|e| (d.span().start, format!("standby service {:?}: daily_batch {e}", b.name)))?,
            ),
            None => None,
        };
        services.push(BackupService {
            name: b.name.clone(),
            peer: b.peer,
            source: b.source,
            port: b.port,
            tls,
            daily_batch,
        });
    }
    let mut profiles: Vec<StandbyProfile> = Vec::new();
    let mut taken: std::collections::HashMap<usize, String> = std::collections::HashMap::new();
    for spanned in &s.profile {
        let at = spanned.span().start;
        let p = spanned.get_ref();
        let name = &p.name;
        if profiles.iter().any(|x| &x.name == name) {
            return Err((at, format!("standby profile {name:?} is defined twice")));
        }
        let (vrrp, vrrp_subject) = match (&p.vrrp_instance, &p.vrrp_group) {
            (Some(i), None) => (i.clone(), VrrpSubject::Instance),
            (None, Some(g)) => (g.clone(), VrrpSubject::Group),
            _ => {
                return Err((at, format!("standby profile {name:?} needs one of vrrp_instance and vrrp_group")));
            }
        };
        let service = services
            .iter()
            .position(|b| b.name == p.service)
            .ok_or((at, format!("standby profile {name:?} names no standby service {:?}", p.service)))?;
        if p.interfaces.is_empty() {
            return Err((at, format!("standby profile {name:?} lists no interfaces")));
        }
        let mut access = Vec::new();
        for wanted in &p.interfaces {
            // An access entry by its label (eth0.100), or every entry of an interface (eth0).
            let by_label: Vec<usize> = (0..interfaces.len()).filter(|&a| &interfaces[a].label() == wanted).collect();
            let found = if by_label.is_empty() {
                (0..interfaces.len()).filter(|&a| &interfaces[a].name == wanted).collect()
            } else {
                by_label
            };
            if found.is_empty() {
                return Err((at, format!("standby profile {name:?}: {wanted} is no [[relay.interface]] entry")));
            }
            for a in found {
                if let Some(other) = taken.insert(a, name.clone()) {
                    return Err((
                        at,
                        format!(
                            "relay interface {} is in standby profiles {other:?} and {name:?}: one each",
                            interfaces[a].label()
                        ),
                    ));
                }
                access.push(a);
            }
        }
        let degrade_metric = p.degrade_metric.unwrap_or(DEFAULT_DEGRADE_METRIC);
        if route_metric.checked_add(degrade_metric).is_none() {
            return Err((at, format!("standby profile {name:?}: route_metric plus degrade_metric is past 4294967295")));
        }
        if let Some(v) = p.virtual_address {
            // RFC 9568 section 5.2.9 (VRRPv3): for IPv6, the first virtual address is the
            // link-local one.
            if !v.is_unicast_link_local() {
                return Err((
                    at,
                    format!("standby profile {name:?}: virtual_address {v} must be the VRRP group's first, link-local address"),
                ));
            }
        }
        profiles.push(StandbyProfile {
            name: name.clone(),
            vrrp,
            vrrp_subject,
            service,
            access,
            degrade_metric,
            virtual_address: p.virtual_address,
        });
    }
    if let Some(unused) = services.iter().enumerate().find(|(n, _)| !profiles.iter().any(|p| p.service == *n)) {
        return Err((table_at, format!("standby service {:?} backs up no profile", unused.1.name)));
    }
    if !profiles.is_empty() && s.notify_fifo.is_none() {
        return Err((
            table_at,
            "[relay.standby] needs notify_fifo: keepalived's notify FIFO the profiles follow".into(),
        ));
    }
    Ok(StandbyConfig { notify_fifo: s.notify_fifo, services, profiles })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
preferred_lifetime = 100
valid_lifetime = 200

[[subnet]]
interface = "eth1"
prefix = "2001:db8:1::/64"
ranges = [{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }, { prefix = "2001:db8:1:0:8000::/65" }]
excluded = ["2001:db8:1::150"]
dns_servers = ["2001:db8::53"]
domain_search = ["example.net"]
preference = 255
rapid_commit = true

[[subnet.pd_pool]]
prefix = "2001:db8:8000::/40"
delegated_length = 56

[[subnet.reservation]]
duid = "00:01:00:01:32:96:98:99:02:00:00:00:00:c1"
address = "2001:db8:1::10"
"#;

    #[test]
    fn metrics_are_off_unless_an_address_is_given() {
        assert_eq!(Config::parse(GOOD).unwrap().daemon.metrics_listen, None);
        let on = format!("{GOOD}\n[metrics]\nlisten = \"[::1]:9547\"\n");
        assert_eq!(Config::parse(&on).unwrap().daemon.metrics_listen, Some("[::1]:9547".parse().unwrap()));
        for bad in ["\"::1\"", "\"[::1]:99999\"", "\"localhost:9547\""] {
            let text = format!("{GOOD}\n[metrics]\nlisten = {bad}\n");
            let e = Config::parse(&text).unwrap_err();
            let line = text.lines().position(|l| l.starts_with("listen")).unwrap() + 1;
            assert_eq!((e.line, e.column), (line, 10), "{bad}: {e}");
            assert!(e.message.contains("no address with a port"), "{e}");
        }
        let unknown = format!("{GOOD}\n[metrics]\nlisten = \"[::1]:9547\"\npath = \"/m\"\n");
        assert!(Config::parse(&unknown).unwrap_err().message.contains("unknown field"));
    }

    #[test]
    fn a_pd_pool_may_exclude_a_prefix_inside_it_longer_than_what_it_delegates() {
        let pd = "[[subnet.pd_pool]]\nname = \"cpe\"\nprefix = \"2001:db8:8000::/40\"\ndelegated_length = 56\n";
        let with = |x: &str| format!("{GOOD}\n{pd}excluded_prefix = \"{x}\"\n");
        let config = Config::parse(&with("2001:db8:8000:1::/64")).unwrap();
        let pool = config.server.subnets[0].pd_pools.last().unwrap();
        assert_eq!(pool.excluded_prefix, Some("2001:db8:8000:1::/64".parse().unwrap()));
        let delegated = "2001:db8:8000:4200::/56".parse().unwrap();
        let exclude = pool.exclude_for(&delegated).unwrap();
        assert_eq!(
            exclude.excluded(("2001:db8:8000:4200::".parse().unwrap(), 56)),
            Some(("2001:db8:8000:4201::".parse().unwrap(), 64)),
            "the configured /64's subnet ID (01), in each delegated /56"
        );
        for bad in ["2001:db8:9000::/64", "2001:db8:8000::/56"] {
            let e = Config::parse(&with(bad)).unwrap_err();
            assert!(e.message.contains("excluded_prefix"), "{bad}: {e}");
        }
    }

    #[test]
    fn storm_protection_is_off_unless_a_rate_is_given() {
        assert_eq!(Config::parse(GOOD).unwrap().daemon.storm, None);
        let on = format!("{GOOD}\n[storm]\nrate = 20\nburst = 50\n");
        assert_eq!(Config::parse(&on).unwrap().daemon.storm, Some(StormSettings { rate: 20, burst: 50 }));
        let default_burst = format!("{GOOD}\n[storm]\nrate = 20\n");
        assert_eq!(Config::parse(&default_burst).unwrap().daemon.storm, Some(StormSettings { rate: 20, burst: 40 }));
        for (bad, key) in [("rate = 0", "rate"), ("rate = 5\nburst = 0", "burst"), ("rate = 2000000", "rate")] {
            let text = format!("{GOOD}\n[storm]\n{bad}\n");
            let e = Config::parse(&text).unwrap_err();
            let line = text.lines().position(|l| l.starts_with(key) && !l.ends_with(" 5")).unwrap() + 1;
            assert_eq!(e.line, line, "{bad}: {e}");
            assert!(e.message.contains(&format!("storm {key} is")), "{e}");
        }
        let no_rate = format!("{GOOD}\n[storm]\nburst = 5\n");
        assert!(Config::parse(&no_rate).unwrap_err().message.contains("rate"));
    }

    #[test]
    fn the_lease_database_is_the_journal_unless_postgresql_is_named() {
        assert_eq!(Config::parse(GOOD).unwrap().daemon.lease_database, LeaseDatabase::Journal);
        let pg = format!(
            "{GOOD}\n[lease_database]\ntype = \"postgresql\"\nhost = \"db1\"\ndatabase = \"leases\"\npool_size = 4\ntls = \"verify-full\"\ntls_ca = \"/etc/ca.pem\"\n"
        );
        let LeaseDatabase::Postgresql(p) = Config::parse(&pg).unwrap().daemon.lease_database else {
            panic!("not postgresql")
        };
        assert_eq!((p.host.as_str(), p.port, p.database.as_str(), p.user.as_str()), ("db1", 5432, "leases", "dhcp6d"));
        assert_eq!((p.pool_size, p.tls), (4, crate::store::postgresql::TlsMode::VerifyFull));
        for (bad, said) in [
            ("type = \"mysql\"", "\"journal\" or \"postgresql\""),
            ("type = \"postgresql\"", "needs database"),
            ("type = \"postgresql\"\ndatabase = \"l\"\npool_size = 0", "pool_size is 0"),
            ("type = \"postgresql\"\ndatabase = \"l\"\ntls = \"verify-full\"", "needs tls_ca"),
            ("type = \"journal\"\nhost = \"db1\"", "takes no database keys"),
        ] {
            let text = format!("{GOOD}\n[lease_database]\n{bad}\n");
            let e = Config::parse(&text).unwrap_err();
            assert!(e.message.contains(said), "{bad}: {e}");
        }
    }

    #[test]
    fn af_xdp_is_on_unless_turned_off() {
        assert!(Config::parse(GOOD).unwrap().daemon.af_xdp);
        let off = GOOD.replacen("[server]\n", "[server]\naf_xdp = false\n", 1);
        assert!(!Config::parse(&off).unwrap().daemon.af_xdp);
        let bad = GOOD.replacen("[server]\n", "[server]\naf_xdp = \"no\"\n", 1);
        let e = Config::parse(&bad).unwrap_err();
        let line = bad.lines().position(|l| l.starts_with("af_xdp")).unwrap() + 1;
        assert_eq!(e.line, line, "{e}");
    }

    #[test]
    fn the_fast_path_map_size_has_a_default_and_bounds() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.daemon.fast_path_bindings, dhcp6_common::renewal::LEASE_MAP_ENTRIES);
        let set = GOOD.replacen("[server]\n", "[server]\nfast_path_bindings = 4000000\n", 1);
        assert_eq!(Config::parse(&set).unwrap().daemon.fast_path_bindings, 4_000_000);
        let small = GOOD.replacen("[server]\n", "[server]\nfast_path_bindings = 10\n", 1);
        let e = Config::parse(&small).unwrap_err();
        assert!(e.message.contains("fast_path_bindings is 10"), "{e}");
        let line = small.lines().position(|l| l.starts_with("fast_path_bindings")).unwrap() + 1;
        assert_eq!((e.line, e.column), (line, 22), "{e}");
    }

    #[test]
    fn parses_a_full_subnet_with_defaults() {
        let c = Config::parse(GOOD).unwrap();
        let s = &c.server.subnets[0];
        assert_eq!(s.lifetimes, Lifetimes { preferred: 100, valid: 200, t1: 50, t2: 80 });
        assert_eq!(s.ranges.len(), 2);
        assert_eq!(s.ranges[1].size(), 1u128 << 63);
        assert_eq!(s.pd_pools[0].ranges, vec!["2001:db8:8000::/40".parse::<Ipv6Net>().unwrap()]);
        assert_eq!(s.reservations[0].duid.len(), 14);
        assert_eq!(s.preference, Some(255));
        assert!(s.rapid_commit);
    }

    #[test]
    fn errors_carry_line_and_column() {
        let bad = GOOD.replace("2001:db8:1::1ff", "2001:db8:2::1ff");
        let e = Config::parse(&bad).unwrap_err();
        assert_eq!((e.line, e.column), (9, 11), "{e}");
        assert!(e.message.contains("not inside"), "{e}");

        let typo = GOOD.replace("preference = 255", "preferense = 255");
        let e = Config::parse(&typo).unwrap_err();
        assert_eq!((e.line, e.column), (13, 1), "{e}");
        assert!(e.message.contains("unknown field `preferense`"), "{e}");

        let bad_addr = GOOD.replace("\"2001:db8::53\"", "\"2001:zz8::53\"");
        let e = Config::parse(&bad_addr).unwrap_err();
        assert_eq!(e.line, 11, "{e}");
    }

    #[test]
    fn lifetimes_and_offers_that_cannot_work_are_refused_with_their_line() {
        let cases = [
            ("valid_lifetime = 200", "valid_lifetime = 0", "valid_lifetime is 0"),
            ("preferred_lifetime = 100", "preferred_lifetime = 0", "preferred_lifetime is 0"),
            (
                "preferred_lifetime = 100",
                "preferred_lifetime = 300",
                "preferred_lifetime (300) is above the valid lifetime (200)",
            ),
            ("[server]\n", "[server]\noffer_lifetime = 0\n", "offer_lifetime is 0"),
        ];
        for (from, to, says) in cases {
            let e = Config::parse(&GOOD.replace(from, to)).unwrap_err();
            assert!(e.message.contains(says), "{to}: {e}");
            assert!(e.line > 1, "{to}: {e}");
        }
        let capped = GOOD.replace("valid_lifetime = 200", "valid_lifetime = 200\nmax_lease_time = 50");
        assert!(Config::parse(&capped).unwrap_err().message.contains("(50, max_lease_time)"));
    }

    #[test]
    fn one_subnet_per_interface() {
        let second = format!("{GOOD}\n[[subnet]]\ninterface = \"eth1\"\nprefix = \"2001:db8:7::/64\"\n");
        let e = Config::parse(&second).unwrap_err();
        assert!(e.message.contains("subnet 2001:db8:7::/64 is on interface eth1, as subnet 2001:db8:1::/64 is"), "{e}");
        assert_eq!(e.line, 24, "the second [[subnet]]: {e}");
        let relayed = format!("{GOOD}\n[[subnet]]\nprefix = \"2001:db8:7::/64\"\n");
        assert!(Config::parse(&relayed).is_ok(), "subnets without an interface are matched by link-address");
    }

    #[test]
    fn a_file_that_is_not_utf8_is_refused_with_the_offset_of_the_bad_byte() {
        let dir = std::env::temp_dir().join(format!("dhcp6-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("latin1.toml");
        std::fs::write(&path, b"[server]\n# caf\xe9\n").unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.contains("line 2, column 6: not UTF-8: the byte at offset 14"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rejects_overlapping_subnets_and_bad_pd() {
        let twice = format!("{GOOD}\n[[subnet]]\nprefix = \"2001:db8:1::/48\"\n");
        assert!(Config::parse(&twice).unwrap_err().message.contains("overlaps"));
        let pd = GOOD.replace("delegated_length = 56", "delegated_length = 32");
        assert!(Config::parse(&pd).unwrap_err().message.contains("does not fit"));
    }

    #[test]
    fn pools_are_named_by_prefix_unless_named_and_may_be_locked() {
        let c = Config::parse(GOOD).unwrap();
        let s = &c.server.subnets[0];
        assert_eq!((s.name.as_str(), s.locked), ("2001:db8:1::/64", false));
        assert_eq!((s.pd_pools[0].name.as_str(), s.pd_pools[0].locked), ("2001:db8:8000::/40", false));
        let named = GOOD
            .replace("rapid_commit = true\n", "rapid_commit = true\nname = \"lan\"\nlocked = true\n")
            .replace("delegated_length = 56\n", "delegated_length = 56\nname = \"pd\"\nlocked = true\n");
        let c = Config::parse(&named).unwrap();
        let s = &c.server.subnets[0];
        assert_eq!((s.name.as_str(), s.locked), ("lan", true));
        assert_eq!((s.pd_pools[0].name.as_str(), s.pd_pools[0].locked), ("pd", true));
        let twice = format!("{named}\n[[subnet]]\nprefix = \"2001:db8:7::/64\"\nname = \"pd\"\n");
        let e = Config::parse(&twice).unwrap_err();
        assert!(e.message.contains("pool name \"pd\" is used twice"), "{e}");
        assert_eq!(
            e.line,
            twice.lines().collect::<Vec<_>>().iter().rposition(|l| *l == "[[subnet]]").unwrap() + 1,
            "the second subnet: {e}"
        );
    }

    const RELAY: &str = r#"[relay]
[[relay.group]]
name = "core"
servers = ["2001:db8:ff::1", { address = "2001:db8:ff::2", weight = 3 }, { address = "2001:db8:ff::3", weight = 0 }]

[[relay.interface]]
name = "eth0"
group = "core"
link_address = "2001:db8:2::1"
"#;

    #[test]
    fn relay_servers_take_weights() {
        use relay::GroupMember;
        let c = Config::parse(RELAY).unwrap();
        let servers = &c.relay.unwrap().groups[0].servers;
        let weights: Vec<(String, u32)> =
            servers.iter().map(|m: &GroupMember| (m.address.to_string(), m.weight)).collect();
        assert_eq!(
            weights,
            [("2001:db8:ff::1".to_string(), 1), ("2001:db8:ff::2".to_string(), 3), ("2001:db8:ff::3".to_string(), 0)]
        );
    }

    #[test]
    fn max_ias_per_message_has_a_small_default_and_is_not_zero() {
        assert_eq!(Config::parse(GOOD).unwrap().server.max_ias_per_message, 4);
        assert_eq!(Config::parse(GOOD).unwrap().server.max_leases_per_client, 8);
        let e = Config::parse(&GOOD.replace("[server]\n", "[server]\nmax_leases_per_client = 0\n")).unwrap_err();
        assert!(e.message.contains("max_leases_per_client is 0"), "{e}");
        let set = GOOD.replace("[server]\n", "[server]\nmax_ias_per_message = 16\n");
        assert_eq!(Config::parse(&set).unwrap().server.max_ias_per_message, 16);
        let e = Config::parse(&GOOD.replace("[server]\n", "[server]\nmax_ias_per_message = 0\n")).unwrap_err();
        assert!(e.message.contains("max_ias_per_message is 0"), "{e}");
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn the_hop_count_limit_is_the_rfcs_unless_set_and_checked() {
        assert_eq!(Config::parse(RELAY).unwrap().relay.unwrap().hop_count_limit, 8);
        let set = RELAY.replace("[relay]\n", "[relay]\nhop_count_limit = 32\n");
        assert_eq!(Config::parse(&set).unwrap().relay.unwrap().hop_count_limit, 32);
        for bad in ["0", "33"] {
            let e =
                Config::parse(&RELAY.replace("[relay]\n", &format!("[relay]\nhop_count_limit = {bad}\n"))).unwrap_err();
            assert!(e.message.contains("it must be from 1 to 32"), "{e}");
            assert_eq!(e.line, 2, "{e}");
        }
    }

    #[test]
    fn relay_server_errors_are_clear() {
        let e = Config::parse(&RELAY.replace("weight = 3", "weigth = 3")).unwrap_err();
        assert!(e.to_string().contains("a server address, or { address"), "{e}");
        assert_eq!(e.line, 4, "{e}");
        let e = Config::parse(&RELAY.replace("2001:db8:ff::3", "2001:db8:ff::1")).unwrap_err();
        assert!(e.to_string().contains("lists server 2001:db8:ff::1 twice"), "{e}");
    }

    #[test]
    fn a_relay_group_sends_to_one_server_unless_told_all() {
        let groups = |text: &str| Config::parse(text).map(|c| c.relay.unwrap().groups);
        assert_eq!(groups(RELAY).unwrap()[0].send_to, SendTo::One);
        let one = RELAY.replace("name = \"core\"\n", "name = \"core\"\nsend_to = \"one\"\n");
        assert_eq!(groups(&one).unwrap()[0].send_to, SendTo::One);
        let to_all = RELAY.replace("name = \"core\"\n", "name = \"core\"\nsend_to = \"all\"\n");
        // Without weights: a pair has no shares.
        let pair = to_all.replace(
            r#"{ address = "2001:db8:ff::2", weight = 3 }, { address = "2001:db8:ff::3", weight = 0 }"#,
            r#"{ address = "2001:db8:ff::2" }"#,
        );
        assert_eq!(groups(&pair).unwrap()[0].send_to, SendTo::All);

        let misspelt = pair.replace("\"all\"", "\"every\"");
        let e = groups(&misspelt).unwrap_err();
        assert!(e.message.contains("unknown variant `every`, expected `one` or `all`"), "{e}");
        assert_eq!((e.line, e.column), (4, 11), "{e}");
        let e = groups(&to_all).unwrap_err();
        assert!(
            e.message.contains("sends to all its servers: the weight of 2001:db8:ff::2 means nothing there"),
            "{e}"
        );
        assert_eq!(e.line, 2, "the group: {e}");
    }

    /// [`RELAY`] with a second access entry on eth0 with these extra lines.
    fn with_vlan_entry(lines: &str) -> String {
        format!("{RELAY}\n[[relay.interface]]\nname = \"eth0\"\ngroup = \"core\"\nlink_address = \"2001:db8:3::1\"\n{lines}\n")
    }

    #[test]
    fn relay_interfaces_match_vlans_each_with_its_own_interface_id() {
        let c = Config::parse(&with_vlan_entry("vlan = 100\ninner_vlan = 200")).unwrap();
        let interfaces = c.relay.unwrap().interfaces;
        use relay::Vlans;
        assert_eq!(interfaces[0].vlans, Vlans::NONE);
        assert_eq!(interfaces[0].interface_id, b"eth0");
        assert_eq!(interfaces[1].vlans, Vlans { outer: 100, inner: 200 });
        assert_eq!(interfaces[1].interface_id, b"eth0.100.200", "the default names the VLANs");
        assert_eq!(interfaces[1].label(), "eth0.100.200");
    }

    #[test]
    fn a_vlan_range_makes_an_entry_per_vlan() {
        let c = Config::parse(&with_vlan_entry(
            "vlan = 100\ninner_vlan = \"200-299\"\ninterface_id = \"{interface}:{vlan}:{inner_vlan}\"",
        ))
        .unwrap();
        let interfaces = c.relay.unwrap().interfaces;
        assert_eq!(interfaces.len(), 1 + 100);
        let last = &interfaces[100];
        assert_eq!((last.vlans.outer, last.vlans.inner), (100, 299));
        assert_eq!(last.interface_id, b"eth0:100:299", "the Interface-ID template filled per VLAN");
        // Every entry its own Interface-ID: a template naming no VLAN is refused.
        let e = Config::parse(&with_vlan_entry("vlan = \"5-6\"\ninterface_id = \"{interface}\"")).unwrap_err();
        assert!(e.to_string().contains("have the same Interface-ID"), "{e}");
    }

    const STANDBY: &str = r#"
[[relay.interface]]
name = "eth1"
vlan = "100-101"
group = "core"
link_address = "2001:db8:3::1"

[relay.standby]
notify_fifo = "/run/keepalived/dhcp6d.fifo"

[[relay.standby.service]]
name = "peer"
peer = "2001:db8:ff::b"
source = "2001:db8:ff::a"
port = 7547
daily_batch = "03:30"

[[relay.standby.profile]]
name = "access"
vrrp_instance = "RELAY6"
service = "peer"
interfaces = ["eth0", "eth1.101"]
degrade_metric = 50
virtual_address = "fe80::1"
"#;

    #[test]
    fn standby_profiles_name_access_entries_by_label_or_interface() {
        let c = Config::parse(&format!("{RELAY}{STANDBY}")).unwrap().relay.unwrap();
        let s = &c.standby;
        assert_eq!(s.notify_fifo.as_deref(), Some(Path::new("/run/keepalived/dhcp6d.fifo")));
        assert_eq!(s.services[0].port, 7547);
        assert_eq!(s.services[0].daily_batch, DailyTime::new(3, 30));
        let p = &s.profiles[0];
        let labels: Vec<String> = p.access.iter().map(|&a| c.interfaces[a].label()).collect();
        assert_eq!(labels, ["eth0", "eth1.101"]);
        assert_eq!((p.vrrp.as_str(), p.vrrp_subject, p.degrade_metric), ("RELAY6", VrrpSubject::Instance, 50));
        let whole = STANDBY.replace("\"eth0\", \"eth1.101\"", "\"eth1\"");
        let c = Config::parse(&format!("{RELAY}{whole}")).unwrap().relay.unwrap();
        assert_eq!(c.standby.profiles[0].access.len(), 2, "an interface's name takes all its VLAN entries");
        let defaulted = STANDBY.replace("degrade_metric = 50\n", "");
        let c = Config::parse(&format!("{RELAY}{defaulted}")).unwrap().relay.unwrap();
        assert_eq!(c.standby.profiles[0].degrade_metric, DEFAULT_DEGRADE_METRIC);
        assert!(Config::parse(RELAY).unwrap().relay.unwrap().standby.profiles.is_empty());
    }

    #[test]
    fn standby_errors_are_clear() {
        let cases = [
            (
                "vrrp_instance = \"RELAY6\"",
                "vrrp_group = \"G\"\nvrrp_instance = \"RELAY6\"",
                "needs one of vrrp_instance and vrrp_group",
            ),
            ("vrrp_instance = \"RELAY6\"\n", "", "needs one of vrrp_instance and vrrp_group"),
            ("service = \"peer\"\ninterfaces", "service = \"other\"\ninterfaces", "names no standby service \"other\""),
            ("\"eth1.101\"]", "\"eth9\"]", "eth9 is no [[relay.interface]] entry"),
            ("\"eth1.101\"]", "\"eth0\"]", "relay interface eth0 is in standby profiles \"access\" and \"access\""),
            ("interfaces = [\"eth0\", \"eth1.101\"]", "interfaces = []", "lists no interfaces"),
            ("\"fe80::1\"", "\"2001:db8::1\"", "must be the VRRP group's first, link-local address"),
            ("peer = \"2001:db8:ff::b\"", "peer = \"2001:db8:ff::a\"", "peer and source are both"),
            ("peer = \"2001:db8:ff::b\"", "peer = \"fe80::b\"", "peer fe80::b must be a global"),
            ("port = 7547", "port = 0", "port 0 is no port"),
            ("degrade_metric = 50", "degrade_metric = 4294967295", "past 4294967295"),
            ("notify_fifo = \"/run/keepalived/dhcp6d.fifo\"\n", "", "needs notify_fifo"),
            ("\"03:30\"", "\"3:30\"", "daily_batch \"3:30\" is not a time of day as HH:MM or HH:MM:SS"),
            ("\"03:30\"", "\"24:00\"", "daily_batch \"24:00\": the hour must be from 00 to 23"),
            ("\"03:30\"", "\"03:60\"", "daily_batch \"03:60\": the minute must be from 00 to 59"),
            ("name = \"access\"", "name = \"access\"\nbogus = 1", "unknown field `bogus`"),
        ];
        for (from, to, want) in cases {
            let text = format!("{RELAY}{}", STANDBY.replacen(from, to, 1));
            let e = Config::parse(&text).unwrap_err();
            assert!(e.to_string().contains(want), "{from:?} -> {to:?}: {e}");
        }
        let unused = format!("{RELAY}{STANDBY}\n[[relay.standby.service]]\nname = \"spare\"\npeer = \"2001:db8:ff::c\"\nsource = \"2001:db8:ff::a\"\nport = 1\n");
        assert!(Config::parse(&unused).unwrap_err().to_string().contains("\"spare\" backs up no profile"));
        let text = format!("{RELAY}{}", STANDBY.replace("\"03:30\"", "\"3h30\""));
        let e = Config::parse(&text).unwrap_err();
        let line = text.lines().position(|l| l.starts_with("daily_batch")).unwrap() + 1;
        assert_eq!((e.line, e.column), (line, 15), "the error points at the value: {e}");
    }

    #[test]
    fn relay_vlan_errors_are_clear() {
        let cases = [
            ("vlan = 4095", "vlan 4095 is not a VLAN ID (1 to 4094)"),
            ("vlan = 0", "vlan 0 is not a VLAN ID"),
            ("inner_vlan = 7", "inner_vlan needs the outer vlan"),
            ("vlan = \"9-3\"", "vlan \"9-3\" is not a VLAN ID (1 to 4094) or a range of them"),
            ("vlan = \"1-5000\"", "vlan \"1-5000\" is not a VLAN ID"),
            ("vlan = \"x\"", "vlan \"x\" is not a VLAN ID"),
            ("vlan = \"1-4094\"\ninner_vlan = \"1-4094\"", "more than 16384 relay access entries"),
            ("", "relay interface eth0 is defined twice"),
            ("vlan = 5\ninterface_id = \"eth0\"", "relay interfaces eth0 and eth0.5 have the same Interface-ID"),
        ];
        for (lines, want) in cases {
            let e = Config::parse(&with_vlan_entry(lines)).unwrap_err();
            assert!(e.to_string().contains(want), "{lines:?}: {e}");
            assert!(e.line > 10, "{lines:?}: the error points at the second entry: {e}");
        }
    }
}
