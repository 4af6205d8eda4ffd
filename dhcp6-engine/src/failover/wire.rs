//! The failover messages on the wire: [`encode`] turns a [`Msg`] into the bytes of an RFC 8156
//! message (unframed; [`to_message`] gives the codec's message, which
//! [`dhcp6_codec::failover::encode_framed`] writes with the stream's length prefix), and
//! [`decode`] turns the bytes of one frame back into a [`Msg`]. Nothing but translation between the
//! engine's types and the codec's [`FailoverMessage`]; the numbers live in the codec.
//!
//! Times. [`Msg`] holds Unix seconds. The header's sent-time and the options RFC 8156 calls
//! times (OPTION_F_START_TIME_OF_STATE, OPTION_F_STATE_EXPIRATION_TIME,
//! OPTION_F_PARTNER_LIFETIME, OPTION_F_PARTNER_RAW_CLT_TIME, OPTION_F_EXPIRATION_TIME,
//! OPTION_F_PARTNER_DOWN_TIME) are seconds since 2000-01-01 UTC; OPTION_CLT_TIME is relative,
//! the seconds between the client's last transaction and the message's sent-time (RFC 5007
//! section 4.1.2.3, as RFC 8156 section 5 uses it). A time the wire cannot carry (before 2000
//! or from 2136 on, a CLT after the sent-time) is refused rather than wrapped, so that
//! `decode(encode(m)) == m` for every message `encode` accepts.
//!
//! A binding travels in one OPTION_CLIENT_DATA: OPTION_CLIENTID (left out for a resource with
//! no client), an OPTION_IA_NA holding one OPTION_IAADDR or an OPTION_IA_PD holding one
//! OPTION_IAPREFIX, and beside the IA the failover options of the binding. A BNDREPLY answers
//! each with an OPTION_CLIENT_DATA holding the same identity (lifetimes zero) and an
//! OPTION_STATUS_CODE. An absent OPTION_STATUS_CODE means Success, as in DHCPv6.
//!
//! ```
//! use dhcp6_engine::failover::{wire, Msg};
//!
//! let contact = Msg::Contact { sent_time: 1_704_067_200 };
//! let bytes = wire::encode(&contact, 7).unwrap();
//! assert_eq!(bytes, [35, 0, 0, 7, 0x2d, 0x24, 0xbd, 0x00]);
//! assert_eq!(wire::decode(&bytes), Ok((contact, 7)));
//! ```

use dhcp6_codec::{
    failover::{
        failover_time_from_unix, unix_from_failover_time, FailoverMessage, FailoverMessageType, FailoverOption,
        FailoverOptions, EPOCH_2000_UNIX,
    },
    option::{IaAddr, IaNa, IaPd, IaPrefix},
    DecodeError, DhcpOption, Duid, EncodeError, Options, StatusCode, TransactionId,
};
use ipnet::Ipv6Net;

use super::{
    message::{
        BindingKey, BindingRecord, BindingResult, BindingStatus, FailoverStatus, Msg, ProtocolVersion, ServerFlags,
    },
    state::State,
};
use crate::server::IaType;

/// A closure taking the value out of a one-field [`FailoverOption`] variant.
macro_rules! pick {
    ($variant:ident) => {
        |o: &FailoverOption<'_>| match o {
            FailoverOption::$variant(v) => Some(*v),
            _ => None,
        }
    };
}

/// Why a [`Msg`] could not be encoded, or bytes are not a [`Msg`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("failover message: {0}")]
    Decode(#[from] DecodeError),
    #[error("failover message: {0}")]
    Encode(#[from] EncodeError),
    #[error("{message} without {option}")]
    MissingOption { message: &'static str, option: &'static str },
    #[error("{option} {value} is not a value RFC 8156 defines")]
    UnknownValue { option: &'static str, value: u8 },
    #[error("OPTION_F_RELATIONSHIP_NAME is not UTF-8")]
    RelationshipNotUtf8,
    #[error("{what} {unix} (Unix seconds) is outside failover times (2000 to 2136)")]
    TimeOutOfRange { what: &'static str, unix: u64 },
    #[error("client last transaction time {clt} is not within 2^32 s before the sent-time {sent_time}")]
    CltOutOfRange { clt: u64, sent_time: u64 },
    #[error("transaction id {0:#x} is longer than 24 bits")]
    TransactionIdTooLarge(u32),
    #[error("client DUID: {0}")]
    ClientId(DecodeError),
    #[error("IA_NA resource {0} is not one address (/128)")]
    NotAnAddress(Ipv6Net),
    #[error("IAPREFIX length {0} is more than 128")]
    PrefixLength(u8),
    #[error("OPTION_CLIENT_DATA holds {0}, not one binding")]
    NotOneBinding(&'static str),
}

/// The bytes of `msg` (without the stream's length prefix), with the header's
/// `transaction_id` (24 bits: a reply echoes its request's).
pub fn encode(msg: &Msg, transaction_id: u32) -> Result<Vec<u8>, WireError> {
    Ok(to_message(msg, transaction_id)?.to_vec()?)
}

/// `msg` as the codec's message, borrowing from it: what [`encode`] encodes, and what the
/// driver hands [`dhcp6_codec::failover::encode_framed`] to write it to the stream.
pub fn to_message(msg: &Msg, transaction_id: u32) -> Result<FailoverMessage<'_>, WireError> {
    if transaction_id > 0x00ff_ffff {
        return Err(WireError::TransactionIdTooLarge(transaction_id));
    }
    let sent_time = msg.sent_time();
    let mut options = FailoverOptions::new();
    match msg {
        Msg::Connect { version, relationship, mclt, max_unacked_bndupd, keepalive, .. } => {
            push_settings(&mut options, *version, relationship, *mclt, *max_unacked_bndupd, *keepalive)
        }
        Msg::ConnectReply { status, version, relationship, mclt, max_unacked_bndupd, keepalive, .. } => {
            options.push(status_option(*status));
            push_settings(&mut options, *version, relationship, *mclt, *max_unacked_bndupd, *keepalive);
        }
        Msg::Disconnect { status, .. } => options.push(status_option(*status)),
        Msg::State { state, start_time_of_state, flags, partner_down_time, .. } => {
            options.push(FailoverOption::ServerState(state.code()));
            options.push(FailoverOption::ServerFlags(flags.bits()));
            options.push(FailoverOption::StartTimeOfState(time("start time of state", *start_time_of_state)?));
            if let Some(t) = partner_down_time {
                options.push(FailoverOption::PartnerDownTime(time("partner-down time", *t)?));
            }
        }
        Msg::BndUpd { bindings, .. } => {
            for b in bindings {
                options.push(FailoverOption::ClientData(binding_options(b, sent_time)?));
            }
        }
        Msg::BndReply { results, .. } => {
            for r in results {
                let k = &r.key;
                let mut data = identity(&k.duid, k.ia_type, k.iaid, k.resource, Lifetimes::default())?;
                data.push(status_option(r.status));
                options.push(FailoverOption::ClientData(data));
            }
        }
        Msg::Contact { .. }
        | Msg::PoolReq { .. }
        | Msg::PoolResp { .. }
        | Msg::UpdReq { .. }
        | Msg::UpdReqAll { .. }
        | Msg::UpdDone { .. } => {}
    }
    Ok(FailoverMessage {
        msg_type: msg.msg_type(),
        transaction_id: TransactionId::from_u32(transaction_id),
        sent_time: time("sent-time", sent_time)?,
        options,
    })
}

/// The message in `bytes` (one frame, without its length prefix) and its transaction id.
/// Options the engine has no use for (DNS, reconfigure data, unknown ones) are skipped;
/// where an option comes twice, the first counts.
pub fn decode(bytes: &[u8]) -> Result<(Msg, u32), WireError> {
    let m = FailoverMessage::decode(bytes)?;
    let name = m.msg_type.name();
    let o = &m.options;
    let sent_time = unix_from_failover_time(m.sent_time);
    let msg = match m.msg_type {
        FailoverMessageType::Connect => {
            let s = Settings::read(o, name)?;
            Msg::Connect {
                sent_time,
                version: s.version,
                relationship: s.relationship,
                mclt: s.mclt,
                max_unacked_bndupd: s.max_unacked_bndupd,
                keepalive: s.keepalive,
            }
        }
        FailoverMessageType::ConnectReply => {
            let s = Settings::read(o, name)?;
            Msg::ConnectReply {
                sent_time,
                status: status(o),
                version: s.version,
                relationship: s.relationship,
                mclt: s.mclt,
                max_unacked_bndupd: s.max_unacked_bndupd,
                keepalive: s.keepalive,
            }
        }
        FailoverMessageType::Disconnect => Msg::Disconnect { sent_time, status: status(o) },
        FailoverMessageType::State => {
            let code = required(o, name, "OPTION_F_SERVER_STATE", pick!(ServerState))?;
            let state = State::from_code(code)
                .ok_or(WireError::UnknownValue { option: "OPTION_F_SERVER_STATE", value: code.0 })?;
            Msg::State {
                sent_time,
                state,
                start_time_of_state: unix_from_failover_time(required(
                    o,
                    name,
                    "OPTION_F_START_TIME_OF_STATE",
                    pick!(StartTimeOfState),
                )?),
                flags: ServerFlags::from_bits(find(o, pick!(ServerFlags)).unwrap_or(0)),
                partner_down_time: find(o, pick!(PartnerDownTime)).map(unix_from_failover_time),
            }
        }
        FailoverMessageType::Contact => Msg::Contact { sent_time },
        FailoverMessageType::BndUpd => Msg::BndUpd {
            sent_time,
            bindings: client_data(o).map(|d| read_binding(d, sent_time)).collect::<Result<_, _>>()?,
        },
        FailoverMessageType::BndReply => Msg::BndReply {
            sent_time,
            results: client_data(o)
                .map(|d| {
                    let id = Identity::read(d, name)?;
                    Ok(BindingResult { key: id.key, status: status(d) })
                })
                .collect::<Result<_, WireError>>()?,
        },
        FailoverMessageType::PoolReq => Msg::PoolReq { sent_time },
        FailoverMessageType::PoolResp => Msg::PoolResp { sent_time },
        FailoverMessageType::UpdReq => Msg::UpdReq { sent_time },
        FailoverMessageType::UpdReqAll => Msg::UpdReqAll { sent_time },
        FailoverMessageType::UpdDone => Msg::UpdDone { sent_time },
    };
    Ok((msg, m.transaction_id.as_u32()))
}

fn find<'o, 'a: 'o, T>(
    options: &'o FailoverOptions<'a>,
    pick: impl Fn(&'o FailoverOption<'a>) -> Option<T>,
) -> Option<T> {
    options.iter().find_map(pick)
}

fn required<'o, 'a: 'o, T>(
    options: &'o FailoverOptions<'a>,
    message: &'static str,
    option: &'static str,
    pick: impl Fn(&'o FailoverOption<'a>) -> Option<T>,
) -> Result<T, WireError> {
    find(options, pick).ok_or(WireError::MissingOption { message, option })
}

/// `unix` as a failover time, if it is one.
fn time(what: &'static str, unix: u64) -> Result<u32, WireError> {
    if (EPOCH_2000_UNIX..EPOCH_2000_UNIX + (1 << 32)).contains(&unix) {
        Ok(failover_time_from_unix(unix))
    } else {
        Err(WireError::TimeOutOfRange { what, unix })
    }
}

fn status_option(status: FailoverStatus) -> FailoverOption<'static> {
    let status = status.code();
    // The registry's name as the message, for whoever reads a capture.
    let message = status.name().unwrap_or("").as_bytes();
    FailoverOption::Dhcp(DhcpOption::StatusCode(StatusCode { status, message }))
}

/// OPTION_STATUS_CODE among `options`; Success when there is none.
fn status(options: &FailoverOptions<'_>) -> FailoverStatus {
    find(options, |o| match o {
        FailoverOption::Dhcp(DhcpOption::StatusCode(s)) => Some(FailoverStatus::from_code(s.status)),
        _ => None,
    })
    .unwrap_or(FailoverStatus::Success)
}

/// The settings CONNECT and CONNECTREPLY announce (RFC 8156 sections 6.1.1 and 6.1.3).
struct Settings {
    version: ProtocolVersion,
    relationship: Option<String>,
    mclt: u32,
    max_unacked_bndupd: u32,
    keepalive: u32,
}

impl Settings {
    fn read(o: &FailoverOptions<'_>, name: &'static str) -> Result<Settings, WireError> {
        let relationship = find(o, pick!(RelationshipName))
            .map(|n| String::from_utf8(n.to_vec()).map_err(|_| WireError::RelationshipNotUtf8))
            .transpose()?;
        Ok(Settings {
            version: required(o, name, "OPTION_F_PROTOCOL_VERSION", pick!(ProtocolVersion))?,
            relationship,
            mclt: required(o, name, "OPTION_F_MCLT", pick!(Mclt))?,
            max_unacked_bndupd: required(o, name, "OPTION_F_MAX_UNACKED_BNDUPD", pick!(MaxUnackedBndupd))?,
            keepalive: required(o, name, "OPTION_F_KEEPALIVE_TIME", pick!(KeepaliveTime))?,
        })
    }
}

fn push_settings<'a>(
    options: &mut FailoverOptions<'a>,
    version: ProtocolVersion,
    relationship: &'a Option<String>,
    mclt: u32,
    max_unacked_bndupd: u32,
    keepalive: u32,
) {
    options.push(FailoverOption::ProtocolVersion(version));
    if let Some(name) = relationship {
        options.push(FailoverOption::RelationshipName(name.as_bytes()));
    }
    options.push(FailoverOption::Mclt(mclt));
    options.push(FailoverOption::MaxUnackedBndupd(max_unacked_bndupd));
    options.push(FailoverOption::KeepaliveTime(keepalive));
}

/// The times an IA and its resource carry: the client's in a BNDUPD, zero in a BNDREPLY.
#[derive(Debug, Clone, Copy, Default)]
struct Lifetimes {
    t1: u32,
    t2: u32,
    preferred: u32,
    valid: u32,
}

/// OPTION_CLIENTID and the IA holding the resource: what identifies a binding.
fn identity(
    duid: &[u8],
    ia_type: IaType,
    iaid: u32,
    resource: Ipv6Net,
    lt: Lifetimes,
) -> Result<FailoverOptions<'_>, WireError> {
    let mut options = FailoverOptions::new();
    if !duid.is_empty() {
        let duid = Duid::new(duid).map_err(WireError::ClientId)?;
        options.push(FailoverOption::Dhcp(DhcpOption::ClientId(duid)));
    }
    let ia = match ia_type {
        IaType::Na => {
            if resource.prefix_len() != 128 {
                return Err(WireError::NotAnAddress(resource));
            }
            let addr = IaAddr {
                address: resource.addr(),
                preferred_lifetime: lt.preferred,
                valid_lifetime: lt.valid,
                options: Options::new(),
            };
            DhcpOption::IaNa(IaNa { iaid, t1: lt.t1, t2: lt.t2, options: Options(vec![DhcpOption::IaAddr(addr)]) })
        }
        IaType::Pd => {
            let prefix = IaPrefix {
                preferred_lifetime: lt.preferred,
                valid_lifetime: lt.valid,
                prefix_len: resource.prefix_len(),
                prefix: resource.addr(),
                options: Options::new(),
            };
            DhcpOption::IaPd(IaPd { iaid, t1: lt.t1, t2: lt.t2, options: Options(vec![DhcpOption::IaPrefix(prefix)]) })
        }
    };
    options.push(FailoverOption::Dhcp(ia));
    Ok(options)
}

/// What [`identity`] wrote, read back.
struct Identity {
    key: BindingKey,
    lt: Lifetimes,
}

impl Identity {
    fn read(data: &FailoverOptions<'_>, message: &'static str) -> Result<Identity, WireError> {
        let duid = find(data, |o| match o {
            FailoverOption::Dhcp(DhcpOption::ClientId(d)) => Some(d.as_bytes().to_vec()),
            _ => None,
        })
        .unwrap_or_default();
        let mut ias = data.iter().filter_map(|o| match o {
            FailoverOption::Dhcp(DhcpOption::IaNa(ia)) => Some((IaType::Na, ia.iaid, ia.t1, ia.t2, &ia.options)),
            FailoverOption::Dhcp(DhcpOption::IaPd(ia)) => Some((IaType::Pd, ia.iaid, ia.t1, ia.t2, &ia.options)),
            _ => None,
        });
        let (ia_type, iaid, t1, t2, inner) =
            ias.next().ok_or(WireError::MissingOption { message, option: "OPTION_IA_NA or OPTION_IA_PD" })?;
        if ias.next().is_some() {
            return Err(WireError::NotOneBinding("more than one IA"));
        }
        let mut resources = inner.iter().filter_map(|o| match (ia_type, o) {
            (IaType::Na, DhcpOption::IaAddr(a)) => {
                Some(Ok((Ipv6Net::from(a.address), a.preferred_lifetime, a.valid_lifetime)))
            }
            (IaType::Pd, DhcpOption::IaPrefix(p)) => Some(
                Ipv6Net::new(p.prefix, p.prefix_len)
                    .map(|net| (net, p.preferred_lifetime, p.valid_lifetime))
                    .map_err(|_| WireError::PrefixLength(p.prefix_len)),
            ),
            _ => None,
        });
        let (resource, preferred, valid) = resources
            .next()
            .ok_or(WireError::MissingOption { message, option: "OPTION_IAADDR or OPTION_IAPREFIX" })??;
        if resources.next().is_some() {
            return Err(WireError::NotOneBinding("more than one address or prefix"));
        }
        Ok(Identity { key: BindingKey { duid, ia_type, iaid, resource }, lt: Lifetimes { t1, t2, preferred, valid } })
    }
}

fn client_data<'o, 'a>(options: &'o FailoverOptions<'a>) -> impl Iterator<Item = &'o FailoverOptions<'a>> {
    options.iter().filter_map(|o| match o {
        FailoverOption::ClientData(d) => Some(d),
        _ => None,
    })
}

/// One binding of a BNDUPD sent at `sent_time` (RFC 8156 section 7.1).
fn binding_options(b: &BindingRecord, sent_time: u64) -> Result<FailoverOptions<'_>, WireError> {
    let lt = Lifetimes { t1: b.t1, t2: b.t2, preferred: b.preferred_lifetime, valid: b.valid_lifetime };
    let mut o = identity(&b.duid, b.ia_type, b.iaid, b.resource, lt)?;
    let clt = sent_time
        .checked_sub(b.client_last_transaction)
        .and_then(|ago| u32::try_from(ago).ok())
        .ok_or(WireError::CltOutOfRange { clt: b.client_last_transaction, sent_time })?;
    o.push(FailoverOption::CltTime(clt));
    o.push(FailoverOption::BindingStatus(b.status.code()));
    o.push(FailoverOption::StartTimeOfState(time("start time of state", b.start_time_of_state)?));
    if let Some(t) = b.state_expiration_time {
        o.push(FailoverOption::StateExpirationTime(time("state expiration time", t)?));
    }
    if let Some(t) = b.partner_lifetime {
        o.push(FailoverOption::PartnerLifetime(time("partner lifetime", t)?));
    }
    if let Some(t) = b.partner_raw_clt {
        o.push(FailoverOption::PartnerRawCltTime(time("partner raw CLT", t)?));
    }
    o.push(FailoverOption::ExpirationTime(time("expiration time", b.expiration_time)?));
    Ok(o)
}

fn read_binding(d: &FailoverOptions<'_>, sent_time: u64) -> Result<BindingRecord, WireError> {
    const NAME: &str = "BNDUPD";
    let id = Identity::read(d, NAME)?;
    let clt = required(d, NAME, "OPTION_CLT_TIME", pick!(CltTime))?;
    let code = required(d, NAME, "OPTION_F_BINDING_STATUS", pick!(BindingStatus))?;
    let status = BindingStatus::from_code(code)
        .ok_or(WireError::UnknownValue { option: "OPTION_F_BINDING_STATUS", value: code.0 })?;
    let client_last_transaction =
        sent_time.checked_sub(u64::from(clt)).ok_or(WireError::CltOutOfRange { clt: u64::from(clt), sent_time })?;
    let start = required(d, NAME, "OPTION_F_START_TIME_OF_STATE", pick!(StartTimeOfState))?;
    let expiration = required(d, NAME, "OPTION_F_EXPIRATION_TIME", pick!(ExpirationTime))?;
    Ok(BindingRecord {
        duid: id.key.duid,
        ia_type: id.key.ia_type,
        iaid: id.key.iaid,
        resource: id.key.resource,
        status,
        t1: id.lt.t1,
        t2: id.lt.t2,
        preferred_lifetime: id.lt.preferred,
        valid_lifetime: id.lt.valid,
        client_last_transaction,
        start_time_of_state: unix_from_failover_time(start),
        state_expiration_time: find(d, pick!(StateExpirationTime)).map(unix_from_failover_time),
        partner_lifetime: find(d, pick!(PartnerLifetime)).map(unix_from_failover_time),
        partner_raw_clt: find(d, pick!(PartnerRawCltTime)).map(unix_from_failover_time),
        expiration_time: unix_from_failover_time(expiration),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::failover::message::PROTOCOL_VERSION;

    /// 2024-01-01T00:00:00Z.
    const T: u64 = 1_704_067_200;

    fn round_trip(msg: Msg) {
        for tid in [0, 0x12_3456, 0xff_ffff] {
            let bytes = encode(&msg, tid).unwrap();
            assert_eq!(bytes[0], msg.msg_type() as u8);
            assert_eq!(decode(&bytes), Ok((msg.clone(), tid)), "{}", msg.name());
        }
    }

    fn address(duid: &[u8]) -> BindingRecord {
        BindingRecord {
            duid: duid.to_vec(),
            ia_type: IaType::Na,
            iaid: 7,
            resource: "2001:db8::10/128".parse().unwrap(),
            status: BindingStatus::Active,
            t1: 900,
            t2: 1440,
            preferred_lifetime: 1800,
            valid_lifetime: 3600,
            client_last_transaction: T - 5,
            start_time_of_state: T - 5,
            state_expiration_time: None,
            partner_lifetime: Some(T + 7200),
            partner_raw_clt: Some(T - 300),
            expiration_time: T + 3595,
        }
    }

    fn prefix() -> BindingRecord {
        BindingRecord {
            ia_type: IaType::Pd,
            iaid: 9,
            resource: "2001:db8:9000::/56".parse().unwrap(),
            status: BindingStatus::Expired,
            state_expiration_time: Some(T + 3600),
            partner_lifetime: None,
            partner_raw_clt: None,
            ..address(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 0xc1])
        }
    }

    const DUID: &[u8] = &[0, 3, 0, 1, 2, 0, 0, 0, 0, 0xc1];

    #[test]
    fn connect_and_connectreply_round_trip() {
        let connect = |relationship: Option<&str>| Msg::Connect {
            sent_time: T,
            version: PROTOCOL_VERSION,
            relationship: relationship.map(String::from),
            mclt: 3600,
            max_unacked_bndupd: 100,
            keepalive: 10,
        };
        round_trip(connect(None));
        round_trip(connect(Some("ha-pair-1")));
        round_trip(connect(Some("")));
        for status in
            [FailoverStatus::Success, FailoverStatus::ExcessiveTimeSkew, FailoverStatus::Other(dhcp6_codec::Status(99))]
        {
            round_trip(Msg::ConnectReply {
                sent_time: T,
                status,
                version: ProtocolVersion { major: 1, minor: 2 },
                relationship: Some("ha".into()),
                mclt: 1800,
                max_unacked_bndupd: 1,
                keepalive: 60,
            });
        }
    }

    #[test]
    fn state_round_trips_in_every_state() {
        for state in State::ALL {
            for (startup, partner_down_time) in [(false, None), (true, Some(T - 60))] {
                round_trip(Msg::State {
                    sent_time: T,
                    state,
                    start_time_of_state: T - 100,
                    flags: ServerFlags { startup },
                    partner_down_time,
                });
            }
        }
    }

    #[test]
    fn messages_without_options_round_trip() {
        round_trip(Msg::Disconnect { sent_time: T, status: FailoverStatus::ServerShuttingDown });
        round_trip(Msg::Contact { sent_time: T });
        round_trip(Msg::PoolReq { sent_time: T });
        round_trip(Msg::PoolResp { sent_time: T });
        round_trip(Msg::UpdReq { sent_time: T });
        round_trip(Msg::UpdReqAll { sent_time: T });
        round_trip(Msg::UpdDone { sent_time: EPOCH_2000_UNIX });
    }

    #[test]
    fn bndupd_round_trips_addresses_prefixes_and_clientless_resources() {
        round_trip(Msg::BndUpd { sent_time: T, bindings: vec![address(DUID)] });
        round_trip(Msg::BndUpd { sent_time: T, bindings: vec![address(DUID), prefix()] });
        let free = BindingRecord { status: BindingStatus::FreeBackup, ..address(&[]) };
        round_trip(Msg::BndUpd { sent_time: T, bindings: vec![free] });
        round_trip(Msg::BndUpd { sent_time: T, bindings: vec![] });
        for status in BindingStatus::ALL {
            round_trip(Msg::BndUpd { sent_time: T, bindings: vec![BindingRecord { status, ..prefix() }] });
        }
    }

    #[test]
    fn bndupd_lays_a_binding_out_in_client_data() {
        let bytes = encode(&Msg::BndUpd { sent_time: T, bindings: vec![address(DUID)] }, 1).unwrap();
        let m = FailoverMessage::decode(&bytes).unwrap();
        let [FailoverOption::ClientData(data)] = &m.options.0[..] else { panic!("one Client Data: {m:?}") };
        let codes: Vec<u16> = data.iter().map(FailoverOption::code).collect();
        // Client Id, IA_NA, CLT, binding status, start time of state, partner lifetime,
        // partner raw CLT, expiration time.
        assert_eq!(codes, [1, 3, 46, 114, 133, 123, 126, 120]);
        // CLT is relative to the sent-time; the others are times since 2000.
        assert!(data.iter().any(|o| *o == FailoverOption::CltTime(5)));
        assert!(data.iter().any(|o| *o == FailoverOption::ExpirationTime(failover_time_from_unix(T + 3595))));
    }

    #[test]
    fn bndreply_round_trips_each_result() {
        let results = vec![
            BindingResult { key: address(DUID).key(), status: FailoverStatus::Success },
            BindingResult { key: prefix().key(), status: FailoverStatus::OutdatedBindingInformation },
            BindingResult { key: address(&[]).key(), status: FailoverStatus::AddressInUse },
        ];
        round_trip(Msg::BndReply { sent_time: T, results });
    }

    #[test]
    fn what_the_wire_cannot_carry_is_refused() {
        let before_2000 = Msg::Contact { sent_time: EPOCH_2000_UNIX - 1 };
        assert_eq!(
            encode(&before_2000, 1),
            Err(WireError::TimeOutOfRange { what: "sent-time", unix: EPOCH_2000_UNIX - 1 })
        );
        let after_2136 = Msg::Contact { sent_time: EPOCH_2000_UNIX + (1 << 32) };
        assert!(matches!(encode(&after_2136, 1), Err(WireError::TimeOutOfRange { .. })));
        assert_eq!(encode(&Msg::Contact { sent_time: T }, 1 << 24), Err(WireError::TransactionIdTooLarge(1 << 24)));
        let future_clt = BindingRecord { client_last_transaction: T + 1, ..address(DUID) };
        assert_eq!(
            encode(&Msg::BndUpd { sent_time: T, bindings: vec![future_clt] }, 1),
            Err(WireError::CltOutOfRange { clt: T + 1, sent_time: T })
        );
        let wide = BindingRecord { resource: "2001:db8::/64".parse().unwrap(), ..address(DUID) };
        assert!(matches!(
            encode(&Msg::BndUpd { sent_time: T, bindings: vec![wide] }, 1),
            Err(WireError::NotAnAddress(_))
        ));
        let short_duid = address(&[0]);
        assert!(matches!(
            encode(&Msg::BndUpd { sent_time: T, bindings: vec![short_duid] }, 1),
            Err(WireError::ClientId(_))
        ));
    }

    /// Re-encodes `bytes` without the options of `drop`, wherever they are.
    fn without(bytes: &[u8], drop: u16) -> Vec<u8> {
        fn strip<'a>(options: &FailoverOptions<'a>, drop: u16) -> FailoverOptions<'a> {
            options
                .iter()
                .filter(|o| o.code() != drop)
                .map(|o| match o {
                    FailoverOption::ClientData(d) => FailoverOption::ClientData(strip(d, drop)),
                    other => other.clone(),
                })
                .collect()
        }
        let m = FailoverMessage::decode(bytes).unwrap();
        FailoverMessage { options: strip(&m.options, drop), ..m }.to_vec().unwrap()
    }

    #[test]
    fn a_missing_required_option_is_named() {
        let connect = encode(
            &Msg::Connect {
                sent_time: T,
                version: PROTOCOL_VERSION,
                relationship: None,
                mclt: 3600,
                max_unacked_bndupd: 100,
                keepalive: 10,
            },
            1,
        )
        .unwrap();
        assert_eq!(
            decode(&without(&connect, 122)),
            Err(WireError::MissingOption { message: "CONNECT", option: "OPTION_F_MCLT" })
        );
        let bndupd = encode(&Msg::BndUpd { sent_time: T, bindings: vec![address(DUID)] }, 1).unwrap();
        assert_eq!(
            decode(&without(&bndupd, 46)),
            Err(WireError::MissingOption { message: "BNDUPD", option: "OPTION_CLT_TIME" })
        );
        assert_eq!(
            decode(&without(&bndupd, 3)),
            Err(WireError::MissingOption { message: "BNDUPD", option: "OPTION_IA_NA or OPTION_IA_PD" })
        );
        // Without OPTION_CLIENTID the binding is a resource with no client.
        let (Msg::BndUpd { bindings, .. }, _) = decode(&without(&bndupd, 1)).unwrap() else { panic!() };
        assert!(bindings[0].duid.is_empty());
    }

    #[test]
    fn unknown_values_and_wrong_types_are_errors() {
        let state = encode(
            &Msg::State {
                sent_time: T,
                state: State::Normal,
                start_time_of_state: T,
                flags: ServerFlags::default(),
                partner_down_time: None,
            },
            1,
        )
        .unwrap();
        let mut bad = state.clone();
        let at = bad.windows(4).position(|w| w == [0, 132, 0, 1]).unwrap() + 4;
        bad[at] = 11;
        assert_eq!(decode(&bad), Err(WireError::UnknownValue { option: "OPTION_F_SERVER_STATE", value: 11 }));
        let mut client_type = state;
        client_type[0] = 1;
        assert_eq!(decode(&client_type), Err(WireError::Decode(DecodeError::UnknownMessageType(1))));
        assert!(matches!(decode(&[]), Err(WireError::Decode(_))));
    }

    fn any_time() -> impl Strategy<Value = u64> {
        EPOCH_2000_UNIX..EPOCH_2000_UNIX + u64::from(u32::MAX)
    }

    fn any_binding() -> impl Strategy<Value = BindingRecord> {
        (
            (
                prop::sample::select(vec![Vec::new(), DUID.to_vec()]),
                any::<bool>(),
                any::<u32>(),
                any::<u128>(),
                0..=128u8,
            ),
            (prop::sample::select(BindingStatus::ALL.to_vec()), any::<[u32; 4]>(), 0..=u64::from(u32::MAX)),
            (
                any_time(),
                prop::option::of(any_time()),
                prop::option::of(any_time()),
                prop::option::of(any_time()),
                any_time(),
            ),
        )
            .prop_map(|((duid, na, iaid, bits, len), (status, [t1, t2, pref, valid], clt_ago), times)| {
                let (start, state_exp, partner_lifetime, partner_raw_clt, exp) = times;
                let (ia_type, len) = if na { (IaType::Na, 128) } else { (IaType::Pd, len) };
                BindingRecord {
                    duid,
                    ia_type,
                    iaid,
                    resource: Ipv6Net::new(bits.into(), len).unwrap(),
                    status,
                    t1,
                    t2,
                    preferred_lifetime: pref,
                    valid_lifetime: valid,
                    // The sent-time below is the end of failover time, so any CLT up to
                    // 2^32 - 1 s before it is after 2000.
                    client_last_transaction: EPOCH_2000_UNIX + u64::from(u32::MAX) - clt_ago,
                    start_time_of_state: start,
                    state_expiration_time: state_exp,
                    partner_lifetime,
                    partner_raw_clt,
                    expiration_time: exp,
                }
            })
    }

    proptest! {
        #[test]
        fn any_bndupd_round_trips(bindings in prop::collection::vec(any_binding(), 0..4), tid in 0..=0xff_ffffu32) {
            let msg = Msg::BndUpd { sent_time: EPOCH_2000_UNIX + u64::from(u32::MAX), bindings };
            let bytes = encode(&msg, tid).unwrap();
            prop_assert_eq!(decode(&bytes), Ok((msg, tid)));
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn damaged_messages_are_an_error_not_a_panic(
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let msg = Msg::BndUpd { sent_time: T, bindings: vec![address(DUID), prefix()] };
            let mut bytes = encode(&msg, 1).unwrap();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = decode(&bytes);
            let _ = decode(&bytes[..cut.index(bytes.len())]);
        }
    }
}
