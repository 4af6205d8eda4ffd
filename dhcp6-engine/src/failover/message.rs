//! The failover messages (RFC 8156 section 5), as the engine sees them: one enum variant per
//! message type, with the fields its options carry, not bytes. The codec translates each to
//! and from the wire; every field names the option it comes from so that the translation is
//! one to one.
//!
//! Times here are Unix seconds on the sender's clock. On the wire they are seconds since
//! 2000-01-01 UTC (RFC 8156 section 5.2), modulo 2^32; [`super::wire`] converts.
//!
//! Wire values (message types, states, binding statuses, status codes) are defined once, in
//! the codec; the enums here map onto them.

/// OPTION_F_PROTOCOL_VERSION: partners must agree on `major`; `minor` only adds.
pub use dhcp6_codec::failover::ProtocolVersion;
use dhcp6_codec::{
    failover::{BindingStatus as WireBindingStatus, FailoverMessageType},
    Status,
};
use ipnet::Ipv6Net;

use super::state::State;
use crate::server::IaType;

/// The failover protocol version this engine speaks (OPTION_F_PROTOCOL_VERSION, RFC 8156
/// section 5.4).
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion { major: 1, minor: 0 };

/// A status code a failover message carries (OPTION_STATUS_CODE; the failover codes 16 to 22
/// are RFC 8156 section 13's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailoverStatus {
    Success,
    UnspecFail,
    /// The resource is bound to another client on the receiving server.
    AddressInUse,
    /// The partners' configurations disagree (roles, MCLT, relationship name, pools).
    ConfigurationConflict,
    /// A binding update lacked information the receiver needs.
    MissingBindingInformation,
    /// The receiver holds newer information for this binding.
    OutdatedBindingInformation,
    /// The sender is shutting down (in DISCONNECT).
    ServerShuttingDown,
    DnsUpdateNotSupported,
    /// The partners' clocks are too far apart (in CONNECTREPLY or DISCONNECT).
    ExcessiveTimeSkew,
    /// Any other code, kept so that a partner's message survives the round trip.
    Other(Status),
}

impl FailoverStatus {
    const NAMED: [FailoverStatus; 9] = [
        FailoverStatus::Success,
        FailoverStatus::UnspecFail,
        FailoverStatus::AddressInUse,
        FailoverStatus::ConfigurationConflict,
        FailoverStatus::MissingBindingInformation,
        FailoverStatus::OutdatedBindingInformation,
        FailoverStatus::ServerShuttingDown,
        FailoverStatus::DnsUpdateNotSupported,
        FailoverStatus::ExcessiveTimeSkew,
    ];

    /// The code in OPTION_STATUS_CODE.
    pub fn code(self) -> Status {
        match self {
            FailoverStatus::Success => Status::SUCCESS,
            FailoverStatus::UnspecFail => Status::UNSPEC_FAIL,
            FailoverStatus::AddressInUse => Status::ADDRESS_IN_USE,
            FailoverStatus::ConfigurationConflict => Status::CONFIGURATION_CONFLICT,
            FailoverStatus::MissingBindingInformation => Status::MISSING_BINDING_INFORMATION,
            FailoverStatus::OutdatedBindingInformation => Status::OUTDATED_BINDING_INFORMATION,
            FailoverStatus::ServerShuttingDown => Status::SERVER_SHUTTING_DOWN,
            FailoverStatus::DnsUpdateNotSupported => Status::DNS_UPDATE_NOT_SUPPORTED,
            FailoverStatus::ExcessiveTimeSkew => Status::EXCESSIVE_TIME_SKEW,
            FailoverStatus::Other(c) => c,
        }
    }

    /// The status with wire value `code`.
    pub fn from_code(code: Status) -> FailoverStatus {
        FailoverStatus::NAMED.into_iter().find(|s| s.code() == code).unwrap_or(FailoverStatus::Other(code))
    }
}

/// OPTION_F_BINDING_STATUS (RFC 8156 section 5): where a resource stands. The wire values
/// are the codec's, in [`BindingStatus::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindingStatus {
    /// Bound to the client.
    Active,
    /// The client's valid lifetime ran out.
    Expired,
    /// The client released it.
    Released,
    /// Waiting to become free (for example until DNS entries are removed).
    PendingFree,
    /// Free, and the primary's to allocate (proportional allocation).
    Free,
    /// Free, and the secondary's to allocate (proportional allocation).
    FreeBackup,
    /// Declined or otherwise unusable for a while.
    Abandoned,
    /// An operator made it available again.
    Reset,
}

impl BindingStatus {
    /// Every status.
    pub const ALL: [BindingStatus; 8] = [
        BindingStatus::Active,
        BindingStatus::Expired,
        BindingStatus::Released,
        BindingStatus::PendingFree,
        BindingStatus::Free,
        BindingStatus::FreeBackup,
        BindingStatus::Abandoned,
        BindingStatus::Reset,
    ];

    /// The value in OPTION_F_BINDING_STATUS.
    pub fn code(self) -> WireBindingStatus {
        match self {
            BindingStatus::Active => WireBindingStatus::ACTIVE,
            BindingStatus::Expired => WireBindingStatus::EXPIRED,
            BindingStatus::Released => WireBindingStatus::RELEASED,
            BindingStatus::PendingFree => WireBindingStatus::PENDING_FREE,
            BindingStatus::Free => WireBindingStatus::FREE,
            BindingStatus::FreeBackup => WireBindingStatus::FREE_BACKUP,
            BindingStatus::Abandoned => WireBindingStatus::ABANDONED,
            BindingStatus::Reset => WireBindingStatus::RESET,
        }
    }

    /// The status with wire value `code`, if the RFC defines it.
    pub fn from_code(code: WireBindingStatus) -> Option<BindingStatus> {
        BindingStatus::ALL.into_iter().find(|s| s.code() == code)
    }
}

/// One resource of one client's IA, as a binding update carries it (RFC 8156 section 7.1:
/// OPTION_CLIENTID, an OPTION_IA_NA or OPTION_IA_PD holding one OPTION_IAADDR or
/// OPTION_IAPREFIX, and the failover options inside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRecord {
    /// OPTION_CLIENTID: the client's DUID. Empty for a resource with no client (FREE,
    /// FREE-BACKUP).
    pub duid: Vec<u8>,
    /// Which IA option carries the resource.
    pub ia_type: IaType,
    /// The IA's IAID.
    pub iaid: u32,
    /// OPTION_IAADDR's address (as a /128) or OPTION_IAPREFIX's prefix.
    pub resource: Ipv6Net,
    /// OPTION_F_BINDING_STATUS.
    pub status: BindingStatus,
    /// The IA's T1 and T2 as told to the client.
    pub t1: u32,
    pub t2: u32,
    /// The lifetimes the client was told, in OPTION_IAADDR / OPTION_IAPREFIX.
    pub preferred_lifetime: u32,
    pub valid_lifetime: u32,
    /// OPTION_CLT_TIME: when the client last talked to the sender about this binding
    /// (absolute here; the wire carries it relative to the message's sent-time).
    pub client_last_transaction: u64,
    /// OPTION_F_START_TIME_OF_STATE: when the resource entered `status`.
    pub start_time_of_state: u64,
    /// OPTION_F_STATE_EXPIRATION_TIME: when `status` ends (an EXPIRED or ABANDONED resource
    /// becomes free), if it does.
    pub state_expiration_time: Option<u64>,
    /// OPTION_F_PARTNER_LIFETIME: how far the sender may later extend the client's lifetime
    /// without telling the receiver first, once the receiver acknowledges (the potential
    /// expiration, section 4.4).
    pub partner_lifetime: Option<u64>,
    /// OPTION_F_PARTNER_RAW_CLT_TIME: the CLT the sender last received from its partner for
    /// this binding, echoed so that the partner can tell whose information is newer.
    pub partner_raw_clt: Option<u64>,
    /// OPTION_F_EXPIRATION_TIME: when the client's valid lifetime ends, as the sender told it.
    pub expiration_time: u64,
}

impl BindingRecord {
    /// What identifies the binding: the client's IA and the resource.
    pub fn key(&self) -> BindingKey {
        BindingKey { duid: self.duid.clone(), ia_type: self.ia_type, iaid: self.iaid, resource: self.resource }
    }
}

/// The client's IA and the resource a BNDREPLY entry answers for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BindingKey {
    pub duid: Vec<u8>,
    pub ia_type: IaType,
    pub iaid: u32,
    pub resource: Ipv6Net,
}

/// What the receiver of a binding update made of one binding (one entry of a BNDREPLY,
/// RFC 8156 section 7.4: the binding's identity and OPTION_STATUS_CODE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingResult {
    pub key: BindingKey,
    pub status: FailoverStatus,
}

/// OPTION_F_SERVER_FLAGS of a STATE message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerFlags {
    /// The sender is in STARTUP; the state it sends is the one it held before (section 8.3),
    /// and its partner does not react to it yet.
    pub startup: bool,
}

impl ServerFlags {
    /// The bits of OPTION_F_SERVER_FLAGS.
    pub fn bits(self) -> u8 {
        u8::from(self.startup)
    }

    pub fn from_bits(bits: u8) -> ServerFlags {
        ServerFlags { startup: bits & 1 != 0 }
    }
}

/// One failover message (RFC 8156 section 5.3), with the header's transaction id left to the
/// driver and the codec (a reply echoes its request's; see [`Msg::is_reply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// CONNECT, from the primary when the TCP connection is up (section 6.1.1).
    Connect {
        /// The header's sent-time.
        sent_time: u64,
        /// OPTION_F_PROTOCOL_VERSION.
        version: ProtocolVersion,
        /// OPTION_F_RELATIONSHIP_NAME, when the relationship is named.
        relationship: Option<String>,
        /// OPTION_F_MCLT: the sender's maximum client lead time, seconds.
        mclt: u32,
        /// OPTION_F_MAX_UNACKED_BNDUPD: how many unacknowledged BNDUPDs the sender accepts.
        max_unacked_bndupd: u32,
        /// OPTION_F_KEEPALIVE_TIME: the sender sends something at least this often, seconds.
        keepalive: u32,
    },
    /// CONNECTREPLY: the secondary's answer (section 6.1.3); anything but Success closes.
    ConnectReply {
        sent_time: u64,
        /// OPTION_STATUS_CODE.
        status: FailoverStatus,
        version: ProtocolVersion,
        relationship: Option<String>,
        mclt: u32,
        max_unacked_bndupd: u32,
        keepalive: u32,
    },
    /// DISCONNECT: the sender closes the connection, saying why.
    Disconnect { sent_time: u64, status: FailoverStatus },
    /// STATE: the sender's failover state, sent after connecting and on every change
    /// (section 6.3).
    State {
        sent_time: u64,
        /// OPTION_F_SERVER_STATE.
        state: State,
        /// OPTION_F_START_TIME_OF_STATE.
        start_time_of_state: u64,
        /// OPTION_F_SERVER_FLAGS.
        flags: ServerFlags,
        /// OPTION_F_PARTNER_DOWN_TIME: with PARTNER-DOWN, since when the sender holds its
        /// partner down.
        partner_down_time: Option<u64>,
    },
    /// CONTACT: a keepalive, sent when nothing else was sent for the keepalive time.
    Contact { sent_time: u64 },
    /// BNDUPD: bindings the sender changed (section 7.1).
    BndUpd { sent_time: u64, bindings: Vec<BindingRecord> },
    /// BNDREPLY: what the receiver of a BNDUPD did with each of its bindings (section 7.4).
    BndReply { sent_time: u64, results: Vec<BindingResult> },
    /// POOLREQ: the secondary asks for FREE-BACKUP prefixes (proportional allocation,
    /// section 4.2.2).
    PoolReq { sent_time: u64 },
    /// POOLRESP: the primary's answer to a POOLREQ, once it has sent the FREE-BACKUP prefixes
    /// as BNDUPDs (it carries no count: the codec, like Wireshark, knows no option for one).
    PoolResp { sent_time: u64 },
    /// UPDREQ: send me the bindings I have not acknowledged (section 7.7).
    UpdReq { sent_time: u64 },
    /// UPDREQALL: send me every binding (section 7.7).
    UpdReqAll { sent_time: u64 },
    /// UPDDONE: every binding asked for by UPDREQ or UPDREQALL was sent and acknowledged.
    UpdDone { sent_time: u64 },
}

impl Msg {
    /// The header's sent-time.
    pub fn sent_time(&self) -> u64 {
        match self {
            Msg::Connect { sent_time, .. }
            | Msg::ConnectReply { sent_time, .. }
            | Msg::Disconnect { sent_time, .. }
            | Msg::State { sent_time, .. }
            | Msg::Contact { sent_time }
            | Msg::BndUpd { sent_time, .. }
            | Msg::BndReply { sent_time, .. }
            | Msg::PoolReq { sent_time }
            | Msg::PoolResp { sent_time }
            | Msg::UpdReq { sent_time }
            | Msg::UpdReqAll { sent_time }
            | Msg::UpdDone { sent_time } => *sent_time,
        }
    }

    /// Whether the message answers one of the partner's, and so echoes its transaction id
    /// (CONNECTREPLY, BNDREPLY, POOLRESP, UPDDONE).
    pub fn is_reply(&self) -> bool {
        matches!(self, Msg::ConnectReply { .. } | Msg::BndReply { .. } | Msg::PoolResp { .. } | Msg::UpdDone { .. })
    }

    /// The RFC's name of the message type.
    pub fn name(&self) -> &'static str {
        self.msg_type().name()
    }

    /// The message type (RFC 8156 section 5.3).
    pub fn msg_type(&self) -> FailoverMessageType {
        match self {
            Msg::BndUpd { .. } => FailoverMessageType::BndUpd,
            Msg::BndReply { .. } => FailoverMessageType::BndReply,
            Msg::PoolReq { .. } => FailoverMessageType::PoolReq,
            Msg::PoolResp { .. } => FailoverMessageType::PoolResp,
            Msg::UpdReq { .. } => FailoverMessageType::UpdReq,
            Msg::UpdReqAll { .. } => FailoverMessageType::UpdReqAll,
            Msg::UpdDone { .. } => FailoverMessageType::UpdDone,
            Msg::Connect { .. } => FailoverMessageType::Connect,
            Msg::ConnectReply { .. } => FailoverMessageType::ConnectReply,
            Msg::Disconnect { .. } => FailoverMessageType::Disconnect,
            Msg::State { .. } => FailoverMessageType::State,
            Msg::Contact { .. } => FailoverMessageType::Contact,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_round_trip_with_rfc_values() {
        for code in 0..40u16 {
            assert_eq!(FailoverStatus::from_code(Status(code)).code(), Status(code));
        }
        let named: Vec<u16> = FailoverStatus::NAMED.iter().map(|s| s.code().0).collect();
        assert_eq!(named, [0, 1, 16, 17, 18, 19, 20, 21, 22]);
        assert_eq!(FailoverStatus::from_code(Status(2)), FailoverStatus::Other(Status::NO_ADDRS_AVAIL));
    }

    #[test]
    fn binding_status_round_trips_and_rejects_unknown() {
        let names: Vec<&str> = BindingStatus::ALL.iter().filter_map(|s| s.code().name()).collect();
        assert_eq!(
            names,
            ["ACTIVE", "EXPIRED", "RELEASED", "PENDING-FREE", "FREE", "FREE-BACKUP", "ABANDONED", "RESET"]
        );
        for code in 1..=8u8 {
            let wire = WireBindingStatus(code);
            assert_eq!(BindingStatus::from_code(wire).map(BindingStatus::code), Some(wire));
        }
        assert_eq!(BindingStatus::from_code(WireBindingStatus(0)), None);
        assert_eq!(BindingStatus::from_code(WireBindingStatus(9)), None);
    }

    #[test]
    fn message_types_are_the_codecs() {
        assert_eq!(Msg::BndUpd { sent_time: 0, bindings: vec![] }.msg_type() as u8, 24);
        assert_eq!(Msg::Contact { sent_time: 0 }.msg_type(), FailoverMessageType::Contact);
        assert!(Msg::UpdDone { sent_time: 0 }.is_reply());
        assert!(!Msg::UpdReq { sent_time: 0 }.is_reply());
    }
}
