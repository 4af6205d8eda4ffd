//! DHCPv6 failover (RFC 8156), sans-IO: the connection with the partner and the failover
//! state machine ([`Failover`]), the lazy update bookkeeping and conflict rules of binding
//! updates ([`binding`]), the messages as the engine sees them ([`message`]) and their
//! translation to and from the wire ([`wire`]). Which half of each pool a server allocates
//! from is the server engine's (`crate::server::Server::pair_up`).
//! The daemon's driver owns the TCP connection and its framing, the clock and the state file;
//! it feeds [`Event`]s in and carries out [`Action`]s.
//!
//! Hot standby only, as RFC 8156 defines it: the primary serves clients while both are up;
//! each server allocates new resources from its own share; a server that cannot reach its
//! partner keeps serving from its share with lifetimes capped by the MCLT, and takes over the
//! partner's share only in PARTNER-DOWN, the MCLT after the partner went down.
//!
//! ```
//! use dhcp6_engine::failover::{Action, Event, Failover, FailoverConfig, History, Role, State};
//!
//! let config = FailoverConfig { role: Role::Primary, ..FailoverConfig::default() };
//! // First start (no state file, no leases): STARTUP, on the way to RECOVER to learn the
//! // bindings; no MCLT to wait after it when the partner is new as well.
//! let history = History::at_start(None, 0);
//! let mut primary = Failover::new(config, None, history, 1_000).unwrap();
//! assert_eq!(primary.state(), State::Startup);
//! let mut out = Vec::new();
//! primary.handle(Event::Connected, 1_000, &mut out).unwrap();
//! assert!(matches!(&out[..], [Action::Send(m)] if m.name() == "CONNECT"));
//! ```

pub mod binding;
mod machine;
pub mod message;
pub mod state;
pub mod wire;

#[cfg(test)]
mod tests;

use serde::Deserialize;

pub use binding::{partner_lifetime_to_send, receive_bndupd, LazyUpdates, LocalBinding};
pub use machine::Failover;
pub use message::{BindingKey, BindingRecord, BindingResult, BindingStatus, FailoverStatus, Msg, ServerFlags};
pub use state::{AllocateFrom, History, Persisted, PersistedError, Role, Service, State};
pub use wire::WireError;

/// A failover relationship's settings, as the daemon's configuration file gives them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FailoverConfig {
    pub role: Role,
    /// OPTION_F_RELATIONSHIP_NAME: when set, the partner's CONNECT must name the same.
    #[serde(default)]
    pub relationship: Option<String>,
    /// Maximum client lead time, seconds: how far past what the partner knows a client's
    /// lifetime may reach, and how long PARTNER-DOWN and RECOVER-WAIT wait. Both partners must
    /// agree. Default 3600: the hour RFC 8156's examples and the DHCPv4 failover draft use, a
    /// balance between short lifetimes while the partner is away and a long wait before its
    /// share can be taken.
    #[serde(default = "default_mclt")]
    pub mclt: u32,
    /// How many BNDUPDs this server accepts unacknowledged (OPTION_F_MAX_UNACKED_BNDUPD).
    /// Default 100: enough to keep a link busy during a full resynchronisation, small enough
    /// that an answer is never long in coming.
    #[serde(default = "default_max_unacked")]
    pub max_unacked_bndupd: u32,
    /// Seconds between messages this server sends at least (OPTION_F_KEEPALIVE_TIME): a
    /// CONTACT goes out when nothing else did. The partner is unreachable after
    /// [`UNREACHABLE_KEEPALIVES`] of its own keepalive times without a message. Default 10:
    /// a lost partner is noticed within 30 s, at one small message per 10 s.
    #[serde(default = "default_keepalive")]
    pub keepalive: u32,
    /// Seconds in COMMUNICATIONS-INTERRUPTED after which the server moves to PARTNER-DOWN on
    /// its own. Default none: RFC 8156 leaves automatic PARTNER-DOWN to the operator's choice,
    /// since a partner that is merely cut off keeps serving its clients.
    #[serde(default)]
    pub auto_partner_down: Option<u32>,
    /// Most seconds the partners' clocks may differ; a CONNECT or CONNECTREPLY past it is
    /// refused with ExcessiveTimeSkew (RFC 8156 section 6.1). Default 60.
    #[serde(default = "default_max_time_skew")]
    pub max_time_skew: u32,
}

fn default_mclt() -> u32 {
    3600
}

fn default_max_unacked() -> u32 {
    100
}

fn default_keepalive() -> u32 {
    10
}

fn default_max_time_skew() -> u32 {
    60
}

impl Default for FailoverConfig {
    fn default() -> FailoverConfig {
        FailoverConfig {
            role: Role::Primary,
            relationship: None,
            mclt: default_mclt(),
            max_unacked_bndupd: default_max_unacked(),
            keepalive: default_keepalive(),
            auto_partner_down: None,
            max_time_skew: default_max_time_skew(),
        }
    }
}

/// How many of the partner's keepalive times may pass without a message before the partner
/// counts as unreachable (and how long STARTUP and a connection handshake wait).
pub const UNREACHABLE_KEEPALIVES: u32 = 3;

/// What happened, for [`Failover::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The TCP connection with the partner is up (the primary connected, or the secondary
    /// accepted). The primary then sends CONNECT; the secondary waits for it.
    Connected,
    /// The TCP connection broke or was closed by the partner.
    ConnectionLost,
    /// A message from the partner, decoded.
    Received(Msg),
    /// Time passed: call at least once a second (keepalives, timeouts, MCLT waits).
    Tick,
    /// The operator states that the partner is down (COMMUNICATIONS-INTERRUPTED or
    /// RESOLUTION-INTERRUPTED only).
    OperatorPartnerDown,
    /// This server changed a binding; the partner must learn of it (lazily).
    BindingChanged(BindingRecord),
    /// The driver applied (and made durable) the bindings of an [`Action::ApplyBndUpd`]: each
    /// with the status [`receive_bndupd`] gave it. The engine answers the BNDREPLY.
    BndUpdApplied(Vec<(BindingRecord, FailoverStatus)>),
    /// The driver queued (as [`Event::BindingChanged`]) every binding an
    /// [`Action::ResendUnacked`] or [`Action::SendAllBindings`] asked for. UPDDONE follows once
    /// the partner has acknowledged them all.
    AllUpdatesQueued,
}

/// What the driver must do, in the order given. A [`Action::Persist`] must be durable before
/// any action after it is carried out: the state takes effect (is reported, announced to the
/// partner, used for clients) only once it would survive a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write the state file ([`Persisted::encode`]) and sync it, before anything after this.
    Persist(Persisted),
    /// The state changed (for logs and metrics; [`Failover::service`] already reflects it).
    StateChanged { from: State, to: State },
    /// Encode and send a message to the partner.
    Send(Msg),
    /// Close the connection (the engine already counts it as lost).
    Close(CloseReason),
    /// The partner sent bindings: apply each with [`receive_bndupd`], make the changes durable,
    /// then hand the outcome back as [`Event::BndUpdApplied`].
    ApplyBndUpd(Vec<BindingRecord>),
    /// Queue again every binding the partner may not have acknowledged (all changed since the
    /// last acknowledgement this server remembers; after a restart, that may be all), then
    /// [`Event::AllUpdatesQueued`].
    ResendUnacked,
    /// The partner is recovering: queue every binding, then [`Event::AllUpdatesQueued`].
    SendAllBindings,
    /// The partner refused some of this server's binding updates (to log: the partner's own
    /// update of the resource follows).
    BindingsRejected(Vec<BindingResult>),
}

/// Why the engine closed the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No message for [`UNREACHABLE_KEEPALIVES`] keepalive times.
    PartnerUnreachable,
    /// CONNECT or CONNECTREPLY did not come in time.
    HandshakeTimeout,
    /// The partner's clock is too far from ours.
    TimeSkew,
    /// The partners disagree on roles, MCLT or relationship name.
    ConfigurationConflict,
    /// The partner speaks another major protocol version.
    VersionMismatch,
    /// The partner refused our CONNECT with this status.
    Refused(FailoverStatus),
    /// The partner sent DISCONNECT with this status.
    PartnerDisconnected(FailoverStatus),
    /// A message that has no place at this point of the connection.
    Unexpected(&'static str),
}

/// Why [`Failover::new`] or [`Failover::handle`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailoverError {
    #[error("failover: {0} must be more than 0")]
    Zero(&'static str),
    #[error(
        "failover: partner-down refused in {0}: it is for COMMUNICATIONS-INTERRUPTED or RESOLUTION-INTERRUPTED, \
         when this server cannot reach its partner and the partner is known to be down"
    )]
    PartnerDownNotAllowed(State),
}
