//! Options of failover messages: RFC 8156's own (codes 114-134, section 5), the leasequery
//! options it reuses (Client Data, CLT Time, LQ Base Time), and, through
//! [`FailoverOption::Dhcp`], every option the client codec knows.

use dhcp6_common::wire::option_code as code;

use crate::{
    domain::DomainName,
    message::Nesting,
    option::{be16, be32, begin_option, check_len, end_option, single_name, DhcpOption, MAX_OPTION_NESTING},
    packet::{OptionIter, RawOption},
    DecodeError, EncodeError,
};

/// The codes a failover option list types itself; any other goes to [`DhcpOption`].
pub const FAILOVER_OPTION_CODES: [u16; 24] = [
    code::CLIENT_DATA,
    code::CLT_TIME,
    code::LQ_BASE_TIME,
    code::F_BINDING_STATUS,
    code::F_CONNECT_FLAGS,
    code::F_DNS_REMOVAL_INFO,
    code::F_DNS_HOST_NAME,
    code::F_DNS_ZONE_NAME,
    code::F_DNS_FLAGS,
    code::F_EXPIRATION_TIME,
    code::F_MAX_UNACKED_BNDUPD,
    code::F_MCLT,
    code::F_PARTNER_LIFETIME,
    code::F_PARTNER_LIFETIME_SENT,
    code::F_PARTNER_DOWN_TIME,
    code::F_PARTNER_RAW_CLT_TIME,
    code::F_PROTOCOL_VERSION,
    code::F_KEEPALIVE_TIME,
    code::F_RECONFIGURE_DATA,
    code::F_RELATIONSHIP_NAME,
    code::F_SERVER_FLAGS,
    code::F_SERVER_STATE,
    code::F_START_TIME_OF_STATE,
    code::F_STATE_EXPIRATION_TIME,
];

/// The options of a failover message, or of a Client Data or DNS Removal Info option, in wire
/// order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailoverOptions<'a>(pub Vec<FailoverOption<'a>>);

impl<'a> FailoverOptions<'a> {
    pub fn new() -> Self {
        FailoverOptions(Vec::new())
    }

    pub fn iter(&self) -> std::slice::Iter<'_, FailoverOption<'a>> {
        self.0.iter()
    }

    pub fn push(&mut self, option: FailoverOption<'a>) {
        self.0.push(option);
    }

    pub(crate) fn decode(bytes: &'a [u8], nesting: Nesting) -> Result<Self, DecodeError> {
        if nesting.options > MAX_OPTION_NESTING {
            return Err(DecodeError::OptionNestingTooDeep { limit: MAX_OPTION_NESTING });
        }
        OptionIter::new(bytes)
            .map(|raw| FailoverOption::decode(raw?, nesting))
            .collect::<Result<Vec<_>, _>>()
            .map(FailoverOptions)
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>, nesting: Nesting) -> Result<(), EncodeError> {
        self.iter().try_for_each(|o| o.encode(out, nesting))
    }
}

impl<'a> FromIterator<FailoverOption<'a>> for FailoverOptions<'a> {
    fn from_iter<I: IntoIterator<Item = FailoverOption<'a>>>(iter: I) -> Self {
        FailoverOptions(iter.into_iter().collect())
    }
}

/// One option of a failover message. Times are in seconds; those the RFC calls times (not
/// durations) count from 2000-01-01 UTC, as [`super::failover_time_from_unix`] gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailoverOption<'a> {
    /// OPTION_CLIENT_DATA (45), RFC 5007 section 4.1.2.2: one client's bindings, as options
    /// (Client Identifier, IA_NA with IAADDR, IA_PD with IAPREFIX, CLT Time, Binding Status...).
    ClientData(FailoverOptions<'a>),
    /// OPTION_CLT_TIME (46), RFC 5007 section 4.1.2.3: seconds since the client last spoke to
    /// a server.
    CltTime(u32),
    /// OPTION_LQ_BASE_TIME (100), RFC 7653 section 6.1: the sender's current time.
    LqBaseTime(u32),
    /// OPTION_F_BINDING_STATUS (114): the state of the binding.
    BindingStatus(BindingStatus),
    /// OPTION_F_CONNECT_FLAGS (115): 16 flag bits of a CONNECT.
    ConnectFlags(u16),
    /// OPTION_F_DNS_REMOVAL_INFO (116): what is needed to remove a binding's DNS entries, as
    /// options (DNS Host Name, DNS Zone Name, DNS Flags).
    DnsRemovalInfo(FailoverOptions<'a>),
    /// OPTION_F_DNS_HOST_NAME (117): the name sent in the DNS update, in wire format.
    DnsHostName(DomainName<'a>),
    /// OPTION_F_DNS_ZONE_NAME (118): the zone updated, in wire format.
    DnsZoneName(DomainName<'a>),
    /// OPTION_F_DNS_FLAGS (119): 16 flag bits (U, S, R, F) on the DNS update's state.
    DnsFlags(u16),
    /// OPTION_F_EXPIRATION_TIME (120): when the binding expires, a time.
    ExpirationTime(u32),
    /// OPTION_F_MAX_UNACKED_BNDUPD (121): how many BNDUPDs the sender can take unacknowledged.
    MaxUnackedBndupd(u32),
    /// OPTION_F_MCLT (122): the Maximum Client Lead Time, a duration.
    Mclt(u32),
    /// OPTION_F_PARTNER_LIFETIME (123): the lifetime the partner may give, a time.
    PartnerLifetime(u32),
    /// OPTION_F_PARTNER_LIFETIME_SENT (124): the partner lifetime last sent, a time.
    PartnerLifetimeSent(u32),
    /// OPTION_F_PARTNER_DOWN_TIME (125): when the sender went to PARTNER-DOWN, a time.
    PartnerDownTime(u32),
    /// OPTION_F_PARTNER_RAW_CLT_TIME (126): the client's last transaction time on the
    /// partner's clock, a time.
    PartnerRawCltTime(u32),
    /// OPTION_F_PROTOCOL_VERSION (127): the failover protocol version spoken.
    ProtocolVersion(ProtocolVersion),
    /// OPTION_F_KEEPALIVE_TIME (128): seconds between the sender's CONTACT messages.
    KeepaliveTime(u32),
    /// OPTION_F_RECONFIGURE_DATA (129): a client's Reconfigure key and when it was sent.
    ReconfigureData(ReconfigureData<'a>),
    /// OPTION_F_RELATIONSHIP_NAME (130): the failover relationship, UTF-8 by the RFC but kept
    /// as bytes so a bad one still parses.
    RelationshipName(&'a [u8]),
    /// OPTION_F_SERVER_FLAGS (131): 8 flag bits (A, S, C) of a STATE message.
    ServerFlags(u8),
    /// OPTION_F_SERVER_STATE (132): the sender's failover state.
    ServerState(ServerState),
    /// OPTION_F_START_TIME_OF_STATE (133): when the sender entered its state, a time.
    StartTimeOfState(u32),
    /// OPTION_F_STATE_EXPIRATION_TIME (134): when the sender's state ends, a time.
    StateExpirationTime(u32),
    /// Any other option, typed as the client codec types it (Client and Server Identifier,
    /// IA_NA, IA_PD, Status Code...) or kept raw.
    Dhcp(DhcpOption<'a>),
}

/// The state of a binding (OPTION_F_BINDING_STATUS, RFC 8156 section 5). A value the RFC does
/// not define is kept as it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindingStatus(pub u8);

impl BindingStatus {
    pub const ACTIVE: BindingStatus = BindingStatus(1);
    pub const EXPIRED: BindingStatus = BindingStatus(2);
    pub const RELEASED: BindingStatus = BindingStatus(3);
    pub const PENDING_FREE: BindingStatus = BindingStatus(4);
    pub const FREE: BindingStatus = BindingStatus(5);
    pub const FREE_BACKUP: BindingStatus = BindingStatus(6);
    pub const ABANDONED: BindingStatus = BindingStatus(7);
    pub const RESET: BindingStatus = BindingStatus(8);

    /// The RFC's name for a defined status.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "ACTIVE",
            2 => "EXPIRED",
            3 => "RELEASED",
            4 => "PENDING-FREE",
            5 => "FREE",
            6 => "FREE-BACKUP",
            7 => "ABANDONED",
            8 => "RESET",
            _ => return None,
        })
    }
}

/// A server's failover state (OPTION_F_SERVER_STATE; RFC 8156 section 13 registers the ten
/// values). A value the RFC does not define is kept as it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerState(pub u8);

impl ServerState {
    pub const STARTUP: ServerState = ServerState(1);
    pub const NORMAL: ServerState = ServerState(2);
    pub const COMMUNICATIONS_INTERRUPTED: ServerState = ServerState(3);
    pub const PARTNER_DOWN: ServerState = ServerState(4);
    pub const POTENTIAL_CONFLICT: ServerState = ServerState(5);
    pub const RECOVER: ServerState = ServerState(6);
    pub const RECOVER_WAIT: ServerState = ServerState(7);
    pub const RECOVER_DONE: ServerState = ServerState(8);
    pub const RESOLUTION_INTERRUPTED: ServerState = ServerState(9);
    pub const CONFLICT_DONE: ServerState = ServerState(10);

    /// The RFC's name for a defined state.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "STARTUP",
            2 => "NORMAL",
            3 => "COMMUNICATIONS-INTERRUPTED",
            4 => "PARTNER-DOWN",
            5 => "POTENTIAL-CONFLICT",
            6 => "RECOVER",
            7 => "RECOVER-WAIT",
            8 => "RECOVER-DONE",
            9 => "RESOLUTION-INTERRUPTED",
            10 => "CONFLICT-DONE",
            _ => return None,
        })
    }
}

/// OPTION_F_PROTOCOL_VERSION's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtocolVersion {
    pub major: u16,
    pub minor: u16,
}

/// OPTION_F_RECONFIGURE_DATA's fields: when the key was last used in a Reconfigure, and the
/// key (16 octets in the RFC; another length is kept as it came).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconfigureData<'a> {
    pub time: u32,
    pub key: &'a [u8],
}

impl<'a> FailoverOption<'a> {
    /// The option code this option is sent with.
    pub fn code(&self) -> u16 {
        match self {
            FailoverOption::ClientData(_) => code::CLIENT_DATA,
            FailoverOption::CltTime(_) => code::CLT_TIME,
            FailoverOption::LqBaseTime(_) => code::LQ_BASE_TIME,
            FailoverOption::BindingStatus(_) => code::F_BINDING_STATUS,
            FailoverOption::ConnectFlags(_) => code::F_CONNECT_FLAGS,
            FailoverOption::DnsRemovalInfo(_) => code::F_DNS_REMOVAL_INFO,
            FailoverOption::DnsHostName(_) => code::F_DNS_HOST_NAME,
            FailoverOption::DnsZoneName(_) => code::F_DNS_ZONE_NAME,
            FailoverOption::DnsFlags(_) => code::F_DNS_FLAGS,
            FailoverOption::ExpirationTime(_) => code::F_EXPIRATION_TIME,
            FailoverOption::MaxUnackedBndupd(_) => code::F_MAX_UNACKED_BNDUPD,
            FailoverOption::Mclt(_) => code::F_MCLT,
            FailoverOption::PartnerLifetime(_) => code::F_PARTNER_LIFETIME,
            FailoverOption::PartnerLifetimeSent(_) => code::F_PARTNER_LIFETIME_SENT,
            FailoverOption::PartnerDownTime(_) => code::F_PARTNER_DOWN_TIME,
            FailoverOption::PartnerRawCltTime(_) => code::F_PARTNER_RAW_CLT_TIME,
            FailoverOption::ProtocolVersion(_) => code::F_PROTOCOL_VERSION,
            FailoverOption::KeepaliveTime(_) => code::F_KEEPALIVE_TIME,
            FailoverOption::ReconfigureData(_) => code::F_RECONFIGURE_DATA,
            FailoverOption::RelationshipName(_) => code::F_RELATIONSHIP_NAME,
            FailoverOption::ServerFlags(_) => code::F_SERVER_FLAGS,
            FailoverOption::ServerState(_) => code::F_SERVER_STATE,
            FailoverOption::StartTimeOfState(_) => code::F_START_TIME_OF_STATE,
            FailoverOption::StateExpirationTime(_) => code::F_STATE_EXPIRATION_TIME,
            FailoverOption::Dhcp(o) => o.code(),
        }
    }

    /// The option's wire form, header included.
    pub fn to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(64);
        self.encode(&mut out, Nesting::default())?;
        Ok(out)
    }

    /// How the option sent with `option` is made from its 32-bit value, if it is one of those.
    fn u32_variant(option: u16) -> Option<fn(u32) -> Self> {
        Some(match option {
            code::CLT_TIME => FailoverOption::CltTime,
            code::LQ_BASE_TIME => FailoverOption::LqBaseTime,
            code::F_EXPIRATION_TIME => FailoverOption::ExpirationTime,
            code::F_MAX_UNACKED_BNDUPD => FailoverOption::MaxUnackedBndupd,
            code::F_MCLT => FailoverOption::Mclt,
            code::F_PARTNER_LIFETIME => FailoverOption::PartnerLifetime,
            code::F_PARTNER_LIFETIME_SENT => FailoverOption::PartnerLifetimeSent,
            code::F_PARTNER_DOWN_TIME => FailoverOption::PartnerDownTime,
            code::F_PARTNER_RAW_CLT_TIME => FailoverOption::PartnerRawCltTime,
            code::F_KEEPALIVE_TIME => FailoverOption::KeepaliveTime,
            code::F_START_TIME_OF_STATE => FailoverOption::StartTimeOfState,
            code::F_STATE_EXPIRATION_TIME => FailoverOption::StateExpirationTime,
            _ => return None,
        })
    }

    /// Decodes one option; `nesting` is that of the option list holding it.
    pub(crate) fn decode(raw: RawOption<'a>, nesting: Nesting) -> Result<Self, DecodeError> {
        let d = raw.data;
        Ok(match raw.code {
            code::CLIENT_DATA => FailoverOption::ClientData(FailoverOptions::decode(d, nesting.deeper_option())?),
            code::F_DNS_REMOVAL_INFO => {
                FailoverOption::DnsRemovalInfo(FailoverOptions::decode(d, nesting.deeper_option())?)
            }
            code::F_BINDING_STATUS | code::F_SERVER_FLAGS | code::F_SERVER_STATE => {
                check_len(&raw, 1, true, "1")?;
                match raw.code {
                    code::F_BINDING_STATUS => FailoverOption::BindingStatus(BindingStatus(d[0])),
                    code::F_SERVER_FLAGS => FailoverOption::ServerFlags(d[0]),
                    _ => FailoverOption::ServerState(ServerState(d[0])),
                }
            }
            code::F_CONNECT_FLAGS | code::F_DNS_FLAGS => {
                check_len(&raw, 2, true, "2")?;
                if raw.code == code::F_CONNECT_FLAGS {
                    FailoverOption::ConnectFlags(be16(d, 0))
                } else {
                    FailoverOption::DnsFlags(be16(d, 0))
                }
            }
            code::F_DNS_HOST_NAME => FailoverOption::DnsHostName(single_name(d, raw.code)?),
            code::F_DNS_ZONE_NAME => FailoverOption::DnsZoneName(single_name(d, raw.code)?),
            code::F_PROTOCOL_VERSION => {
                check_len(&raw, 4, true, "4")?;
                FailoverOption::ProtocolVersion(ProtocolVersion { major: be16(d, 0), minor: be16(d, 2) })
            }
            code::F_RECONFIGURE_DATA => {
                check_len(&raw, 4, false, "at least 4")?;
                FailoverOption::ReconfigureData(ReconfigureData { time: be32(d, 0), key: &d[4..] })
            }
            code::F_RELATIONSHIP_NAME => FailoverOption::RelationshipName(d),
            other => match Self::u32_variant(other) {
                Some(make) => {
                    check_len(&raw, 4, true, "4")?;
                    make(be32(d, 0))
                }
                None => FailoverOption::Dhcp(DhcpOption::decode(raw, nesting)?),
            },
        })
    }

    /// Appends the option (header and data) to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>, nesting: Nesting) -> Result<(), EncodeError> {
        let start = match self {
            FailoverOption::Dhcp(o) => return o.encode(out, nesting),
            _ => begin_option(out, self.code()),
        };
        match self {
            FailoverOption::ClientData(options) | FailoverOption::DnsRemovalInfo(options) => {
                options.encode(out, nesting.deeper_option())?
            }
            FailoverOption::BindingStatus(BindingStatus(v))
            | FailoverOption::ServerFlags(v)
            | FailoverOption::ServerState(ServerState(v)) => out.push(*v),
            FailoverOption::ConnectFlags(v) | FailoverOption::DnsFlags(v) => out.extend_from_slice(&v.to_be_bytes()),
            FailoverOption::DnsHostName(name) | FailoverOption::DnsZoneName(name) => {
                out.extend_from_slice(name.as_bytes())
            }
            FailoverOption::ProtocolVersion(v) => {
                out.extend_from_slice(&v.major.to_be_bytes());
                out.extend_from_slice(&v.minor.to_be_bytes());
            }
            FailoverOption::ReconfigureData(r) => {
                out.extend_from_slice(&r.time.to_be_bytes());
                out.extend_from_slice(r.key);
            }
            FailoverOption::RelationshipName(name) => out.extend_from_slice(name),
            FailoverOption::CltTime(v)
            | FailoverOption::LqBaseTime(v)
            | FailoverOption::ExpirationTime(v)
            | FailoverOption::MaxUnackedBndupd(v)
            | FailoverOption::Mclt(v)
            | FailoverOption::PartnerLifetime(v)
            | FailoverOption::PartnerLifetimeSent(v)
            | FailoverOption::PartnerDownTime(v)
            | FailoverOption::PartnerRawCltTime(v)
            | FailoverOption::KeepaliveTime(v)
            | FailoverOption::StartTimeOfState(v)
            | FailoverOption::StateExpirationTime(v) => out.extend_from_slice(&v.to_be_bytes()),
            FailoverOption::Dhcp(_) => {}
        }
        end_option(out, start, self.code())
    }
}

#[cfg(test)]
mod tests {
    use core::net::Ipv6Addr;

    use super::*;
    use crate::{
        failover::{FailoverMessage, FailoverMessageType},
        option::{IaAddr, IaNa, IaPd, IaPrefix, Options, Status, StatusCode},
        Duid, TransactionId,
    };

    /// Decodes `wire` as one failover option, checks it is `expected`, and that it re-encodes.
    fn round_trip(wire: &[u8], expected: FailoverOption<'_>) {
        let raw = OptionIter::new(wire).next().unwrap().unwrap();
        let decoded = FailoverOption::decode(raw, Nesting::default()).unwrap();
        assert_eq!(decoded, expected);
        assert_eq!(decoded.code(), raw.code);
        assert_eq!(decoded.to_vec().unwrap(), wire);
    }

    fn decode_err(wire: &[u8]) -> DecodeError {
        let raw = OptionIter::new(wire).next().unwrap().unwrap();
        FailoverOption::decode(raw, Nesting::default()).unwrap_err()
    }

    #[test]
    fn every_32_bit_option() {
        type Make = fn(u32) -> FailoverOption<'static>;
        let cases: [(u16, Make); 12] = [
            (46, FailoverOption::CltTime),
            (100, FailoverOption::LqBaseTime),
            (120, FailoverOption::ExpirationTime),
            (121, FailoverOption::MaxUnackedBndupd),
            (122, FailoverOption::Mclt),
            (123, FailoverOption::PartnerLifetime),
            (124, FailoverOption::PartnerLifetimeSent),
            (125, FailoverOption::PartnerDownTime),
            (126, FailoverOption::PartnerRawCltTime),
            (128, FailoverOption::KeepaliveTime),
            (133, FailoverOption::StartTimeOfState),
            (134, FailoverOption::StateExpirationTime),
        ];
        for (c, make) in cases {
            let [hi, lo] = c.to_be_bytes();
            round_trip(&[hi, lo, 0, 4, 0xde, 0xad, 0xbe, 0xef], make(0xdead_beef));
            assert_eq!(
                decode_err(&[hi, lo, 0, 3, 1, 2, 3]),
                DecodeError::BadOptionLength { code: c, len: 3, expected: "4" }
            );
        }
    }

    #[test]
    fn one_octet_options() {
        round_trip(&[0, 114, 0, 1, 1], FailoverOption::BindingStatus(BindingStatus::ACTIVE));
        round_trip(&[0, 114, 0, 1, 200], FailoverOption::BindingStatus(BindingStatus(200)));
        round_trip(&[0, 131, 0, 1, 0x07], FailoverOption::ServerFlags(0x07));
        round_trip(&[0, 132, 0, 1, 4], FailoverOption::ServerState(ServerState::PARTNER_DOWN));
        assert_eq!(
            decode_err(&[0, 132, 0, 2, 1, 1]),
            DecodeError::BadOptionLength { code: 132, len: 2, expected: "1" }
        );
        assert_eq!(decode_err(&[0, 114, 0, 0]), DecodeError::BadOptionLength { code: 114, len: 0, expected: "1" });
    }

    #[test]
    fn status_and_state_names() {
        let names: Vec<_> = (1..=8).map(|v| BindingStatus(v).name().unwrap()).collect();
        assert_eq!(
            names,
            ["ACTIVE", "EXPIRED", "RELEASED", "PENDING-FREE", "FREE", "FREE-BACKUP", "ABANDONED", "RESET"]
        );
        assert_eq!(BindingStatus(0).name(), None);
        assert_eq!(BindingStatus(9).name(), None);
        let states: Vec<_> = (1..=10).map(|v| ServerState(v).name().unwrap()).collect();
        assert_eq!(
            states,
            [
                "STARTUP",
                "NORMAL",
                "COMMUNICATIONS-INTERRUPTED",
                "PARTNER-DOWN",
                "POTENTIAL-CONFLICT",
                "RECOVER",
                "RECOVER-WAIT",
                "RECOVER-DONE",
                "RESOLUTION-INTERRUPTED",
                "CONFLICT-DONE"
            ]
        );
        assert_eq!(ServerState(11).name(), None);
    }

    #[test]
    fn sixteen_bit_flags_and_protocol_version() {
        round_trip(&[0, 115, 0, 2, 0, 1], FailoverOption::ConnectFlags(1));
        round_trip(&[0, 119, 0, 2, 0, 0x0f], FailoverOption::DnsFlags(0x0f));
        round_trip(
            &[0, 127, 0, 4, 0, 1, 0, 0],
            FailoverOption::ProtocolVersion(ProtocolVersion { major: 1, minor: 0 }),
        );
        assert_eq!(decode_err(&[0, 115, 0, 1, 1]), DecodeError::BadOptionLength { code: 115, len: 1, expected: "2" });
        assert_eq!(
            decode_err(&[0, 127, 0, 2, 0, 1]),
            DecodeError::BadOptionLength { code: 127, len: 2, expected: "4" }
        );
    }

    #[test]
    fn names_and_bytes() {
        let host = [0, 117, 0, 6, 4, b'h', b'o', b's', b't', 0];
        round_trip(&host, FailoverOption::DnsHostName(DomainName::from_dotted("host").unwrap()));
        let zone = [0, 118, 0, 13, 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'n', b'e', b't', 0];
        round_trip(&zone, FailoverOption::DnsZoneName(DomainName::from_dotted("example.net.").unwrap()));
        assert!(matches!(decode_err(&[0, 117, 0, 3, 9, b'a', 0]), DecodeError::InvalidDomainName { code: 117, .. }));
        assert!(matches!(decode_err(&[0, 118, 0, 3, 0, 1, b'a']), DecodeError::InvalidDomainName { code: 118, .. }));
        round_trip(&[0, 130, 0, 3, b'h', b'a', b'1'], FailoverOption::RelationshipName(b"ha1"));
        round_trip(&[0, 130, 0, 0], FailoverOption::RelationshipName(b""));
        let mut reconf = vec![0, 129, 0, 20, 0, 0, 1, 0];
        reconf.extend(1..=16u8);
        let key: Vec<u8> = (1..=16).collect();
        round_trip(&reconf, FailoverOption::ReconfigureData(ReconfigureData { time: 256, key: &key }));
        assert_eq!(
            decode_err(&[0, 129, 0, 3, 0, 0, 1]),
            DecodeError::BadOptionLength { code: 129, len: 3, expected: "at least 4" }
        );
    }

    #[test]
    fn dns_removal_info_holds_the_dns_options() {
        let mut wire = vec![0, 116, 0, 20];
        wire.extend_from_slice(&[0, 117, 0, 3, 1, b'h', 0]);
        wire.extend_from_slice(&[0, 118, 0, 3, 1, b'z', 0]);
        wire.extend_from_slice(&[0, 119, 0, 2, 0, 3]);
        round_trip(
            &wire,
            FailoverOption::DnsRemovalInfo(FailoverOptions(vec![
                FailoverOption::DnsHostName(DomainName::from_dotted("h").unwrap()),
                FailoverOption::DnsZoneName(DomainName::from_dotted("z").unwrap()),
                FailoverOption::DnsFlags(3),
            ])),
        );
    }

    #[test]
    fn other_options_go_to_the_client_codec_or_stay_raw() {
        round_trip(
            &[0, 13, 0, 4, 0, 22, b'o', b'k'],
            FailoverOption::Dhcp(DhcpOption::StatusCode(StatusCode {
                status: Status::EXCESSIVE_TIME_SKEW,
                message: b"ok",
            })),
        );
        round_trip(
            &[0x12, 0x34, 0, 1, 9],
            FailoverOption::Dhcp(DhcpOption::Unknown(RawOption { code: 0x1234, data: &[9] })),
        );
        // A malformed option the client codec types is an error here too.
        assert_eq!(decode_err(&[0, 8, 0, 1, 0]), DecodeError::BadOptionLength { code: 8, len: 1, expected: "2" });
    }

    #[test]
    fn client_data_nesting_is_bounded() {
        let mut data: Vec<u8> = Vec::new();
        for _ in 0..20 {
            let mut o = vec![0, 45];
            o.extend_from_slice(&(data.len() as u16).to_be_bytes());
            o.extend_from_slice(&data);
            data = o;
        }
        assert_eq!(decode_err(&data), DecodeError::OptionNestingTooDeep { limit: MAX_OPTION_NESTING });
    }

    /// A BNDUPD for one client with an address and a prefix, laid out as RFC 8156 section 5
    /// shows it: the binding in a Client Data option, the failover data beside the IAs.
    #[test]
    fn bndupd_with_client_data_decodes_typed_and_re_encodes_exactly() {
        let addr: Ipv6Addr = "2001:db8:2::100".parse().unwrap();
        let prefix: Ipv6Addr = "2001:db8:9000::".parse().unwrap();
        let duid = [0, 3, 0, 1, 2, 0, 0, 0, 0, 0xc1];
        let msg = FailoverMessage {
            msg_type: FailoverMessageType::BndUpd,
            transaction_id: TransactionId::from_u32(0x00beef),
            sent_time: 757_382_400,
            options: FailoverOptions(vec![FailoverOption::ClientData(FailoverOptions(vec![
                FailoverOption::Dhcp(DhcpOption::ClientId(Duid::new(&duid).unwrap())),
                FailoverOption::Dhcp(DhcpOption::IaNa(IaNa {
                    iaid: 1,
                    t1: 0,
                    t2: 0,
                    options: Options(vec![DhcpOption::IaAddr(IaAddr {
                        address: addr,
                        preferred_lifetime: 60,
                        valid_lifetime: 90,
                        options: Options::new(),
                    })]),
                })),
                FailoverOption::Dhcp(DhcpOption::IaPd(IaPd {
                    iaid: 2,
                    t1: 0,
                    t2: 0,
                    options: Options(vec![DhcpOption::IaPrefix(IaPrefix {
                        preferred_lifetime: 60,
                        valid_lifetime: 90,
                        prefix_len: 60,
                        prefix,
                        options: Options::new(),
                    })]),
                })),
                FailoverOption::CltTime(5),
                FailoverOption::BindingStatus(BindingStatus::ACTIVE),
                FailoverOption::PartnerLifetime(757_382_490),
                FailoverOption::PartnerRawCltTime(757_382_395),
            ]))]),
        };
        let wire = msg.to_vec().unwrap();
        let mut expected = vec![24, 0x00, 0xbe, 0xef, 0x2d, 0x24, 0xbd, 0x00, 0, 45, 0, 132];
        expected.extend_from_slice(&[0, 1, 0, 10]);
        expected.extend_from_slice(&duid);
        expected.extend_from_slice(&[0, 3, 0, 40, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 24]);
        expected.extend_from_slice(&addr.octets());
        expected.extend_from_slice(&[0, 0, 0, 60, 0, 0, 0, 90]);
        expected.extend_from_slice(&[0, 25, 0, 41, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 26, 0, 25]);
        expected.extend_from_slice(&[0, 0, 0, 60, 0, 0, 0, 90, 60]);
        expected.extend_from_slice(&prefix.octets());
        expected.extend_from_slice(&[0, 46, 0, 4, 0, 0, 0, 5]);
        expected.extend_from_slice(&[0, 114, 0, 1, 1]);
        expected.extend_from_slice(&[0, 123, 0, 4, 0x2d, 0x24, 0xbd, 0x5a]);
        expected.extend_from_slice(&[0, 126, 0, 4, 0x2d, 0x24, 0xbc, 0xfb]);
        assert_eq!(wire, expected);
        assert_eq!(FailoverMessage::decode(&wire).unwrap(), msg);
    }
}
