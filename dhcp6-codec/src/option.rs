//! DHCPv6 options: typed where dhcp6 uses them, raw bytes otherwise, so that an option this
//! codec does not know goes back on the wire exactly as it came.

use core::net::Ipv6Addr;

use dhcp6_common::wire::{option_code as code, OPTION_HEADER_LEN};

use crate::{
    domain::DomainName,
    duid::Duid,
    message::{Message, Nesting},
    packet::{addr_at, OptionIter, RawOption},
    DecodeError, EncodeError,
};

/// The deepest options may encapsulate options within one message: IA_NA > IAADDR >
/// Status Code is 3; the margin admits vendor layouts without letting input recurse freely.
pub const MAX_OPTION_NESTING: usize = 8;

/// A list of options, in wire order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options<'a>(pub Vec<DhcpOption<'a>>);

impl<'a> Options<'a> {
    pub fn new() -> Self {
        Options(Vec::new())
    }

    pub fn iter(&self) -> std::slice::Iter<'_, DhcpOption<'a>> {
        self.0.iter()
    }

    pub fn push(&mut self, option: DhcpOption<'a>) {
        self.0.push(option);
    }

    /// The Client Identifier (option 1), if present.
    pub fn client_id(&self) -> Option<Duid<'a>> {
        self.iter().find_map(|o| match o {
            DhcpOption::ClientId(d) => Some(*d),
            _ => None,
        })
    }

    /// The Server Identifier (option 2), if present.
    pub fn server_id(&self) -> Option<Duid<'a>> {
        self.iter().find_map(|o| match o {
            DhcpOption::ServerId(d) => Some(*d),
            _ => None,
        })
    }

    /// The encapsulated message of a relay message (option 9), if present.
    pub fn relay_message(&self) -> Option<&Message<'a>> {
        self.iter().find_map(|o| match o {
            DhcpOption::RelayMsg(m) => Some(&**m),
            _ => None,
        })
    }

    /// The Relay Identifier (option 53, RFC 5460), if present.
    pub fn relay_id(&self) -> Option<Duid<'a>> {
        self.iter().find_map(|o| match o {
            DhcpOption::RelayId(d) => Some(*d),
            _ => None,
        })
    }

    /// The first Status Code option at this level, if any.
    pub fn status(&self) -> Option<&StatusCode<'a>> {
        self.iter().find_map(|o| match o {
            DhcpOption::StatusCode(s) => Some(s),
            _ => None,
        })
    }

    /// True when an option with this code is present at this level.
    pub fn contains(&self, option_code: u16) -> bool {
        self.iter().any(|o| o.code() == option_code)
    }

    pub(crate) fn decode(bytes: &'a [u8], nesting: Nesting) -> Result<Self, DecodeError> {
        if nesting.options > MAX_OPTION_NESTING {
            return Err(DecodeError::OptionNestingTooDeep { limit: MAX_OPTION_NESTING });
        }
        OptionIter::new(bytes).map(|raw| DhcpOption::decode(raw?, nesting)).collect::<Result<Vec<_>, _>>().map(Options)
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>, nesting: Nesting) -> Result<(), EncodeError> {
        self.iter().try_for_each(|o| o.encode(out, nesting))
    }
}

impl<'a> FromIterator<DhcpOption<'a>> for Options<'a> {
    fn from_iter<I: IntoIterator<Item = DhcpOption<'a>>>(iter: I) -> Self {
        Options(iter.into_iter().collect())
    }
}

/// One DHCPv6 option. Wire formats are in RFC 9915 section 21 unless noted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpOption<'a> {
    /// OPTION_CLIENTID (1), section 21.2.
    ClientId(Duid<'a>),
    /// OPTION_SERVERID (2), section 21.3.
    ServerId(Duid<'a>),
    /// OPTION_IA_NA (3), section 21.4.
    IaNa(IaNa<'a>),
    /// OPTION_IA_TA (4), section 21.5; deprecated but still sent by old clients.
    IaTa(IaTa<'a>),
    /// OPTION_IAADDR (5), section 21.6.
    IaAddr(IaAddr<'a>),
    /// OPTION_ORO (6), section 21.7: the option codes the client asks for.
    Oro(Vec<u16>),
    /// OPTION_PREFERENCE (7), section 21.8.
    Preference(u8),
    /// OPTION_ELAPSED_TIME (8), section 21.9, in hundredths of a second.
    ElapsedTime(u16),
    /// OPTION_RELAY_MSG (9), section 21.10.
    RelayMsg(Box<Message<'a>>),
    /// OPTION_AUTH (11), section 21.11.
    Auth(Auth<'a>),
    /// OPTION_UNICAST (12), section 21.12; deprecated, still parsed.
    Unicast(Ipv6Addr),
    /// OPTION_STATUS_CODE (13), section 21.13.
    StatusCode(StatusCode<'a>),
    /// OPTION_RAPID_COMMIT (14), section 21.14.
    RapidCommit,
    /// OPTION_USER_CLASS (15), section 21.15.
    UserClass(OpaqueList<'a>),
    /// OPTION_VENDOR_CLASS (16), section 21.16.
    VendorClass(VendorClass<'a>),
    /// OPTION_VENDOR_OPTS (17), section 21.17.
    VendorOpts(VendorOpts<'a>),
    /// OPTION_INTERFACE_ID (18), section 21.18.
    InterfaceId(&'a [u8]),
    /// OPTION_RECONF_MSG (19), section 21.19: the message type the client is to send.
    ReconfMsg(u8),
    /// OPTION_RECONF_ACCEPT (20), section 21.20.
    ReconfAccept,
    /// OPTION_DNS_SERVERS (23), RFC 3646 section 3.
    DnsServers(Vec<Ipv6Addr>),
    /// OPTION_DOMAIN_LIST (24), RFC 3646 section 4.
    DomainList(Vec<DomainName<'a>>),
    /// OPTION_IA_PD (25), section 21.21.
    IaPd(IaPd<'a>),
    /// OPTION_IAPREFIX (26), section 21.22.
    IaPrefix(IaPrefix<'a>),
    /// OPTION_INFORMATION_REFRESH_TIME (32), section 21.23, seconds.
    InformationRefreshTime(u32),
    /// OPTION_REMOTE_ID (37), RFC 4649.
    RemoteId(RemoteId<'a>),
    /// OPTION_SUBSCRIBER_ID (38), RFC 4580.
    SubscriberId(&'a [u8]),
    /// OPTION_CLIENT_FQDN (39), RFC 4704.
    ClientFqdn(ClientFqdn<'a>),
    /// OPTION_LQ_QUERY (44), RFC 5007 section 4.1.2.1: what a Leasequery asks.
    LqQuery(LqQuery<'a>),
    /// OPTION_CLIENT_DATA (45), RFC 5007 section 4.1.2.2: one client's bindings, as options.
    ClientData(Options<'a>),
    /// OPTION_CLT_TIME (46), RFC 5007 section 4.1.2.3: seconds since the client last spoke to
    /// the server.
    CltTime(u32),
    /// OPTION_LQ_RELAY_DATA (47), RFC 5007 section 4.1.2.4: the relay that last relayed for
    /// the client, and its Relay-Forward without the client's message.
    LqRelayData(LqRelayData<'a>),
    /// OPTION_LQ_CLIENT_LINK (48), RFC 5007 section 4.1.2.5: the links a client has bindings
    /// on, when the query named none.
    LqClientLink(Vec<Ipv6Addr>),
    /// OPTION_RELAY_ID (53), RFC 5460 section 5.4.1: a relay agent's DUID.
    RelayId(Duid<'a>),
    /// OPTION_PD_EXCLUDE (67), RFC 6603, inside an IAPREFIX: the prefix excluded from it.
    PdExclude(crate::pd_exclude::PdExclude),
    /// OPTION_CLIENT_LINKLAYER_ADDR (79), RFC 6939.
    ClientLinkLayerAddr(LinkLayerAddr<'a>),
    /// OPTION_SOL_MAX_RT (82), section 21.24, seconds.
    SolMaxRt(u32),
    /// OPTION_INF_MAX_RT (83), section 21.25, seconds.
    InfMaxRt(u32),
    /// Any other option, kept as it came.
    Unknown(RawOption<'a>),
}

/// Identity Association for Non-temporary Addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaNa<'a> {
    pub iaid: u32,
    pub t1: u32,
    pub t2: u32,
    pub options: Options<'a>,
}

/// Identity Association for Prefix Delegation: the same layout as [`IaNa`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaPd<'a> {
    pub iaid: u32,
    pub t1: u32,
    pub t2: u32,
    pub options: Options<'a>,
}

/// Identity Association for Temporary Addresses (deprecated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaTa<'a> {
    pub iaid: u32,
    pub options: Options<'a>,
}

/// An address of an IA_NA or IA_TA with its lifetimes, in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaAddr<'a> {
    pub address: Ipv6Addr,
    pub preferred_lifetime: u32,
    pub valid_lifetime: u32,
    pub options: Options<'a>,
}

/// A delegated prefix of an IA_PD with its lifetimes, in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaPrefix<'a> {
    pub preferred_lifetime: u32,
    pub valid_lifetime: u32,
    pub prefix_len: u8,
    pub prefix: Ipv6Addr,
    pub options: Options<'a>,
}

/// Status codes (RFC 9915 section 21.13 and the IANA registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u16);

impl Status {
    pub const SUCCESS: Status = Status(0);
    pub const UNSPEC_FAIL: Status = Status(1);
    pub const NO_ADDRS_AVAIL: Status = Status(2);
    pub const NO_BINDING: Status = Status(3);
    pub const NOT_ON_LINK: Status = Status(4);
    pub const USE_MULTICAST: Status = Status(5);
    pub const NO_PREFIX_AVAIL: Status = Status(6);
    /// Leasequery (RFC 5007 section 4.1.2.5).
    pub const UNKNOWN_QUERY_TYPE: Status = Status(7);
    pub const MALFORMED_QUERY: Status = Status(8);
    pub const NOT_CONFIGURED: Status = Status(9);
    pub const NOT_ALLOWED: Status = Status(10);
    /// Bulk Leasequery (RFC 5460 section 5.3).
    pub const QUERY_TERMINATED: Status = Status(11);
    /// Active Leasequery (RFC 7653 section 6.2).
    pub const DATA_MISSING: Status = Status(12);
    pub const CATCH_UP_COMPLETE: Status = Status(13);
    pub const NOT_SUPPORTED: Status = Status(14);
    pub const TLS_CONNECTION_REFUSED: Status = Status(15);
    /// Failover (RFC 8156 section 13).
    pub const ADDRESS_IN_USE: Status = Status(16);
    pub const CONFIGURATION_CONFLICT: Status = Status(17);
    pub const MISSING_BINDING_INFORMATION: Status = Status(18);
    pub const OUTDATED_BINDING_INFORMATION: Status = Status(19);
    pub const SERVER_SHUTTING_DOWN: Status = Status(20);
    pub const DNS_UPDATE_NOT_SUPPORTED: Status = Status(21);
    pub const EXCESSIVE_TIME_SKEW: Status = Status(22);

    /// The registry's name for known codes.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "Success",
            1 => "UnspecFail",
            2 => "NoAddrsAvail",
            3 => "NoBinding",
            4 => "NotOnLink",
            5 => "UseMulticast",
            6 => "NoPrefixAvail",
            7 => "UnknownQueryType",
            8 => "MalformedQuery",
            9 => "NotConfigured",
            10 => "NotAllowed",
            11 => "QueryTerminated",
            12 => "DataMissing",
            13 => "CatchUpComplete",
            14 => "NotSupported",
            15 => "TLSConnectionRefused",
            16 => "AddressInUse",
            17 => "ConfigurationConflict",
            18 => "MissingBindingInformation",
            19 => "OutdatedBindingInformation",
            20 => "ServerShuttingDown",
            21 => "DNSUpdateNotSupported",
            22 => "ExcessiveTimeSkew",
            _ => return None,
        })
    }
}

/// A status code and its message, UTF-8 by the RFC but kept as bytes so a bad one still parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCode<'a> {
    pub status: Status,
    pub message: &'a [u8],
}

impl StatusCode<'_> {
    /// The message as text, with invalid UTF-8 replaced.
    pub fn message_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.message)
    }
}

/// The Authentication option's fields (RFC 9915 section 21.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth<'a> {
    pub protocol: u8,
    pub algorithm: u8,
    pub rdm: u8,
    pub replay_detection: u64,
    pub auth_info: &'a [u8],
}

/// A validated run of items each prefixed by a 16-bit length (User Class and Vendor Class data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpaqueList<'a>(&'a [u8]);

impl<'a> OpaqueList<'a> {
    fn new(bytes: &'a [u8], option: u16) -> Result<Self, DecodeError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let len = rest
                .get(..2)
                .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
                .ok_or(DecodeError::BadListItem { code: option })?;
            rest = rest.get(2 + len..).ok_or(DecodeError::BadListItem { code: option })?;
        }
        Ok(OpaqueList(bytes))
    }

    /// Builds the wire form of a list; fails when an item is over 65535 bytes.
    pub fn encode_items<'i>(items: impl IntoIterator<Item = &'i [u8]>, option: u16) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        for item in items {
            let len = u16::try_from(item.len()).map_err(|_| EncodeError::ListItemTooLong { code: option })?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(item);
        }
        Ok(out)
    }

    /// Wraps bytes produced by [`OpaqueList::encode_items`] (or checked some other way).
    pub fn from_wire(bytes: &'a [u8], option: u16) -> Result<Self, DecodeError> {
        Self::new(bytes, option)
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The items, without their length prefixes.
    pub fn items(&self) -> impl Iterator<Item = &'a [u8]> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<2>()?;
            let (item, tail) = tail.split_at(usize::from(u16::from_be_bytes(*len)));
            rest = tail;
            Some(item)
        })
    }
}

/// Vendor Class: an enterprise number and opaque class data items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorClass<'a> {
    pub enterprise_number: u32,
    pub data: OpaqueList<'a>,
}

/// Vendor-specific Information: an enterprise number and the vendor's option data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorOpts<'a> {
    pub enterprise_number: u32,
    pub data: &'a [u8],
}

impl<'a> VendorOpts<'a> {
    /// The sub-options, which RFC 9915 lays out like options; a vendor may not, hence lazily.
    pub fn sub_options(&self) -> OptionIter<'a> {
        OptionIter::new(self.data)
    }
}

/// Relay Agent Remote-ID (RFC 4649 section 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteId<'a> {
    pub enterprise_number: u32,
    pub remote_id: &'a [u8],
}

/// Client FQDN (RFC 4704 section 4): flags (S, O, N bits) and a possibly partial name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFqdn<'a> {
    pub flags: u8,
    pub name: DomainName<'a>,
}

/// OPTION_LQ_QUERY's fields (RFC 5007 section 4.1.2.1; query types 3-5 from RFC 5460
/// section 5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LqQuery<'a> {
    pub query_type: QueryType,
    /// The link the query is about; unspecified for all links.
    pub link_address: Ipv6Addr,
    /// The query's options: the IAADDR or Client Identifier asked about, the Relay-ID, the
    /// Remote-ID, an ORO.
    pub options: Options<'a>,
}

/// A leasequery's query type. A value no RFC defines is kept as it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueryType(pub u8);

impl QueryType {
    /// RFC 5007 section 4.1.2.1.
    pub const BY_ADDRESS: QueryType = QueryType(1);
    pub const BY_CLIENT_ID: QueryType = QueryType(2);
    /// RFC 5460 section 5.3: bulk leasequery only.
    pub const BY_RELAY_ID: QueryType = QueryType(3);
    pub const BY_LINK_ADDRESS: QueryType = QueryType(4);
    pub const BY_REMOTE_ID: QueryType = QueryType(5);

    /// The RFC's name for a defined type.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "QUERY_BY_ADDRESS",
            2 => "QUERY_BY_CLIENTID",
            3 => "QUERY_BY_RELAY_ID",
            4 => "QUERY_BY_LINK_ADDRESS",
            5 => "QUERY_BY_REMOTE_ID",
            _ => return None,
        })
    }
}

/// OPTION_LQ_RELAY_DATA's fields (RFC 5007 section 4.1.2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LqRelayData<'a> {
    /// The relay agent the server received the client's last relayed message from.
    pub peer_address: Ipv6Addr,
    /// That message, a Relay-Forward (nested, for several relays) without the innermost
    /// Relay Message option.
    pub message: Box<Message<'a>>,
}

/// Client Link-Layer Address (RFC 6939 section 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkLayerAddr<'a> {
    pub link_layer_type: u16,
    pub address: &'a [u8],
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Checks an option's length: `exact` for fixed-size options, otherwise a minimum.
pub(crate) fn check_len(
    raw: &RawOption<'_>,
    min: usize,
    exact: bool,
    expected: &'static str,
) -> Result<(), DecodeError> {
    let len = raw.data.len();
    if len < min || (exact && len != min) {
        return Err(DecodeError::BadOptionLength { code: raw.code, len, expected });
    }
    Ok(())
}

/// The one domain name `bytes` hold, nothing after it (option `option`'s data).
pub(crate) fn single_name(bytes: &[u8], option: u16) -> Result<DomainName<'_>, DecodeError> {
    let (name, rest) =
        DomainName::split_first(bytes).map_err(|reason| DecodeError::InvalidDomainName { code: option, reason })?;
    if !rest.is_empty() {
        return Err(DecodeError::InvalidDomainName { code: option, reason: "bytes after the name" });
    }
    Ok(name)
}

/// Writes an option header with a length to be filled in by [`end_option`]; returns where
/// the option starts.
pub(crate) fn begin_option(out: &mut Vec<u8>, option: u16) -> usize {
    let start = out.len();
    out.extend_from_slice(&option.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    start
}

/// Fills in the length of the option begun at `start`, now that its data is written.
pub(crate) fn end_option(out: &mut [u8], start: usize, option: u16) -> Result<(), EncodeError> {
    let len = out.len() - start - OPTION_HEADER_LEN;
    let len16 = u16::try_from(len).map_err(|_| EncodeError::OptionTooLong { code: option, len })?;
    out[start + 2..start + 4].copy_from_slice(&len16.to_be_bytes());
    Ok(())
}

/// Checks that a list option's length is a whole number of `unit`-byte items.
fn check_multiple(raw: &RawOption<'_>, unit: usize, expected: &'static str) -> Result<(), DecodeError> {
    if !raw.data.len().is_multiple_of(unit) {
        return Err(DecodeError::BadOptionLength { code: raw.code, len: raw.data.len(), expected });
    }
    Ok(())
}

impl<'a> DhcpOption<'a> {
    /// The option code this option is sent with.
    pub fn code(&self) -> u16 {
        match self {
            DhcpOption::ClientId(_) => code::CLIENTID,
            DhcpOption::ServerId(_) => code::SERVERID,
            DhcpOption::IaNa(_) => code::IA_NA,
            DhcpOption::IaTa(_) => code::IA_TA,
            DhcpOption::IaAddr(_) => code::IAADDR,
            DhcpOption::Oro(_) => code::ORO,
            DhcpOption::Preference(_) => code::PREFERENCE,
            DhcpOption::ElapsedTime(_) => code::ELAPSED_TIME,
            DhcpOption::RelayMsg(_) => code::RELAY_MSG,
            DhcpOption::Auth(_) => code::AUTH,
            DhcpOption::Unicast(_) => code::UNICAST,
            DhcpOption::StatusCode(_) => code::STATUS_CODE,
            DhcpOption::RapidCommit => code::RAPID_COMMIT,
            DhcpOption::UserClass(_) => code::USER_CLASS,
            DhcpOption::VendorClass(_) => code::VENDOR_CLASS,
            DhcpOption::VendorOpts(_) => code::VENDOR_OPTS,
            DhcpOption::InterfaceId(_) => code::INTERFACE_ID,
            DhcpOption::ReconfMsg(_) => code::RECONF_MSG,
            DhcpOption::ReconfAccept => code::RECONF_ACCEPT,
            DhcpOption::DnsServers(_) => code::DNS_SERVERS,
            DhcpOption::DomainList(_) => code::DOMAIN_LIST,
            DhcpOption::IaPd(_) => code::IA_PD,
            DhcpOption::IaPrefix(_) => code::IAPREFIX,
            DhcpOption::InformationRefreshTime(_) => code::INFORMATION_REFRESH_TIME,
            DhcpOption::RemoteId(_) => code::REMOTE_ID,
            DhcpOption::SubscriberId(_) => code::SUBSCRIBER_ID,
            DhcpOption::ClientFqdn(_) => code::CLIENT_FQDN,
            DhcpOption::LqQuery(_) => code::LQ_QUERY,
            DhcpOption::ClientData(_) => code::CLIENT_DATA,
            DhcpOption::CltTime(_) => code::CLT_TIME,
            DhcpOption::LqRelayData(_) => code::LQ_RELAY_DATA,
            DhcpOption::LqClientLink(_) => code::LQ_CLIENT_LINK,
            DhcpOption::RelayId(_) => code::RELAY_ID,
            DhcpOption::PdExclude(_) => code::PD_EXCLUDE,
            DhcpOption::ClientLinkLayerAddr(_) => code::CLIENT_LINKLAYER_ADDR,
            DhcpOption::SolMaxRt(_) => code::SOL_MAX_RT,
            DhcpOption::InfMaxRt(_) => code::INF_MAX_RT,
            DhcpOption::Unknown(raw) => raw.code,
        }
    }

    /// The option's wire form, header included.
    pub fn to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        // Room for an IA with its address or prefix, so that it is not grown step by step.
        let mut out = Vec::with_capacity(64);
        self.encode(&mut out, Nesting::default())?;
        Ok(out)
    }

    /// Decodes one option; `nesting` is that of the option list holding it.
    pub(crate) fn decode(raw: RawOption<'a>, nesting: Nesting) -> Result<Self, DecodeError> {
        let d = raw.data;
        let inner = nesting.deeper_option();
        Ok(match raw.code {
            code::CLIENTID => DhcpOption::ClientId(Duid::new(d)?),
            code::SERVERID => DhcpOption::ServerId(Duid::new(d)?),
            code::IA_NA | code::IA_PD => {
                check_len(&raw, 12, false, "at least 12")?;
                let (iaid, t1, t2) = (be32(d, 0), be32(d, 4), be32(d, 8));
                let options = Options::decode(&d[12..], inner)?;
                if raw.code == code::IA_NA {
                    DhcpOption::IaNa(IaNa { iaid, t1, t2, options })
                } else {
                    DhcpOption::IaPd(IaPd { iaid, t1, t2, options })
                }
            }
            code::IA_TA => {
                check_len(&raw, 4, false, "at least 4")?;
                DhcpOption::IaTa(IaTa { iaid: be32(d, 0), options: Options::decode(&d[4..], inner)? })
            }
            code::IAADDR => {
                check_len(&raw, 24, false, "at least 24")?;
                DhcpOption::IaAddr(IaAddr {
                    address: addr_at(d, 0),
                    preferred_lifetime: be32(d, 16),
                    valid_lifetime: be32(d, 20),
                    options: Options::decode(&d[24..], inner)?,
                })
            }
            code::ORO => {
                check_multiple(&raw, 2, "a multiple of 2")?;
                DhcpOption::Oro(d.chunks_exact(2).map(|c| be16(c, 0)).collect())
            }
            code::PREFERENCE => {
                check_len(&raw, 1, true, "1")?;
                DhcpOption::Preference(d[0])
            }
            code::ELAPSED_TIME => {
                check_len(&raw, 2, true, "2")?;
                DhcpOption::ElapsedTime(be16(d, 0))
            }
            code::RELAY_MSG => DhcpOption::RelayMsg(Box::new(Message::decode_nested(d, nesting)?)),
            code::AUTH => {
                check_len(&raw, 11, false, "at least 11")?;
                DhcpOption::Auth(Auth {
                    protocol: d[0],
                    algorithm: d[1],
                    rdm: d[2],
                    replay_detection: u64::from_be_bytes([d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10]]),
                    auth_info: &d[11..],
                })
            }
            code::UNICAST => {
                check_len(&raw, 16, true, "16")?;
                DhcpOption::Unicast(addr_at(d, 0))
            }
            code::STATUS_CODE => {
                check_len(&raw, 2, false, "at least 2")?;
                DhcpOption::StatusCode(StatusCode { status: Status(be16(d, 0)), message: &d[2..] })
            }
            code::RAPID_COMMIT => {
                check_len(&raw, 0, true, "0")?;
                DhcpOption::RapidCommit
            }
            code::USER_CLASS => DhcpOption::UserClass(OpaqueList::new(d, raw.code)?),
            code::VENDOR_CLASS => {
                check_len(&raw, 4, false, "at least 4")?;
                DhcpOption::VendorClass(VendorClass {
                    enterprise_number: be32(d, 0),
                    data: OpaqueList::new(&d[4..], raw.code)?,
                })
            }
            code::VENDOR_OPTS => {
                check_len(&raw, 4, false, "at least 4")?;
                DhcpOption::VendorOpts(VendorOpts { enterprise_number: be32(d, 0), data: &d[4..] })
            }
            code::INTERFACE_ID => DhcpOption::InterfaceId(d),
            code::RECONF_MSG => {
                check_len(&raw, 1, true, "1")?;
                DhcpOption::ReconfMsg(d[0])
            }
            code::RECONF_ACCEPT => {
                check_len(&raw, 0, true, "0")?;
                DhcpOption::ReconfAccept
            }
            code::DNS_SERVERS => {
                check_multiple(&raw, 16, "a multiple of 16")?;
                DhcpOption::DnsServers(d.chunks_exact(16).map(|c| addr_at(c, 0)).collect())
            }
            code::DOMAIN_LIST => {
                let mut names = Vec::new();
                let mut rest = d;
                while !rest.is_empty() {
                    let (name, tail) = DomainName::split_first(rest)
                        .map_err(|reason| DecodeError::InvalidDomainName { code: raw.code, reason })?;
                    names.push(name);
                    rest = tail;
                }
                DhcpOption::DomainList(names)
            }
            code::IAPREFIX => {
                check_len(&raw, 25, false, "at least 25")?;
                DhcpOption::IaPrefix(IaPrefix {
                    preferred_lifetime: be32(d, 0),
                    valid_lifetime: be32(d, 4),
                    prefix_len: d[8],
                    prefix: addr_at(d, 9),
                    options: Options::decode(&d[25..], inner)?,
                })
            }
            code::INFORMATION_REFRESH_TIME | code::SOL_MAX_RT | code::INF_MAX_RT => {
                check_len(&raw, 4, true, "4")?;
                let v = be32(d, 0);
                match raw.code {
                    code::INFORMATION_REFRESH_TIME => DhcpOption::InformationRefreshTime(v),
                    code::SOL_MAX_RT => DhcpOption::SolMaxRt(v),
                    _ => DhcpOption::InfMaxRt(v),
                }
            }
            code::REMOTE_ID => {
                check_len(&raw, 4, false, "at least 4")?;
                DhcpOption::RemoteId(RemoteId { enterprise_number: be32(d, 0), remote_id: &d[4..] })
            }
            code::SUBSCRIBER_ID => DhcpOption::SubscriberId(d),
            code::CLIENT_FQDN => {
                check_len(&raw, 1, false, "at least 1")?;
                DhcpOption::ClientFqdn(ClientFqdn { flags: d[0], name: single_name(&d[1..], raw.code)? })
            }
            code::LQ_QUERY => {
                check_len(&raw, 17, false, "at least 17")?;
                DhcpOption::LqQuery(LqQuery {
                    query_type: QueryType(d[0]),
                    link_address: addr_at(d, 1),
                    options: Options::decode(&d[17..], inner)?,
                })
            }
            code::CLIENT_DATA => DhcpOption::ClientData(Options::decode(d, inner)?),
            code::CLT_TIME => {
                check_len(&raw, 4, true, "4")?;
                DhcpOption::CltTime(be32(d, 0))
            }
            code::LQ_RELAY_DATA => {
                check_len(&raw, 16, false, "at least 16")?;
                DhcpOption::LqRelayData(LqRelayData {
                    peer_address: addr_at(d, 0),
                    message: Box::new(Message::decode_nested(&d[16..], nesting)?),
                })
            }
            code::LQ_CLIENT_LINK => {
                check_multiple(&raw, 16, "a multiple of 16")?;
                DhcpOption::LqClientLink(d.chunks_exact(16).map(|c| addr_at(c, 0)).collect())
            }
            code::RELAY_ID => DhcpOption::RelayId(Duid::new(d)?),
            // A prefix length and a subnet ID of one to 16 octets. Anything else is kept as it
            // came: dhcpcd puts an empty one in the IA_PD of its Requests and Renews, as a
            // hint, which a server ignores rather than refuse the message for.
            code::PD_EXCLUDE if (2..=17).contains(&d.len()) => {
                DhcpOption::PdExclude(crate::pd_exclude::PdExclude { prefix_len: d[0], subnet_id: d[1..].to_vec() })
            }
            code::CLIENT_LINKLAYER_ADDR => {
                check_len(&raw, 2, false, "at least 2")?;
                DhcpOption::ClientLinkLayerAddr(LinkLayerAddr { link_layer_type: be16(d, 0), address: &d[2..] })
            }
            _ => DhcpOption::Unknown(raw),
        })
    }

    /// Appends the option (header and data) to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>, nesting: Nesting) -> Result<(), EncodeError> {
        let start = begin_option(out, self.code());
        let inner = nesting.deeper_option();
        match self {
            DhcpOption::ClientId(duid) | DhcpOption::ServerId(duid) | DhcpOption::RelayId(duid) => {
                out.extend_from_slice(duid.as_bytes())
            }
            DhcpOption::LqQuery(q) => {
                out.push(q.query_type.0);
                out.extend_from_slice(&q.link_address.octets());
                q.options.encode(out, inner)?;
            }
            DhcpOption::ClientData(options) => options.encode(out, inner)?,
            DhcpOption::CltTime(v) => out.extend_from_slice(&v.to_be_bytes()),
            DhcpOption::LqRelayData(r) => {
                out.extend_from_slice(&r.peer_address.octets());
                r.message.encode_nested(out, nesting)?;
            }
            DhcpOption::LqClientLink(addrs) => addrs.iter().for_each(|a| out.extend_from_slice(&a.octets())),
            DhcpOption::IaNa(IaNa { iaid, t1, t2, options }) | DhcpOption::IaPd(IaPd { iaid, t1, t2, options }) => {
                for v in [iaid, t1, t2] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                options.encode(out, inner)?;
            }
            DhcpOption::IaTa(ia) => {
                out.extend_from_slice(&ia.iaid.to_be_bytes());
                ia.options.encode(out, inner)?;
            }
            DhcpOption::IaAddr(a) => {
                out.extend_from_slice(&a.address.octets());
                out.extend_from_slice(&a.preferred_lifetime.to_be_bytes());
                out.extend_from_slice(&a.valid_lifetime.to_be_bytes());
                a.options.encode(out, inner)?;
            }
            DhcpOption::Oro(codes) => codes.iter().for_each(|c| out.extend_from_slice(&c.to_be_bytes())),
            DhcpOption::Preference(v) | DhcpOption::ReconfMsg(v) => out.push(*v),
            DhcpOption::ElapsedTime(v) => out.extend_from_slice(&v.to_be_bytes()),
            DhcpOption::RelayMsg(m) => m.encode_nested(out, nesting)?,
            DhcpOption::Auth(a) => {
                out.extend_from_slice(&[a.protocol, a.algorithm, a.rdm]);
                out.extend_from_slice(&a.replay_detection.to_be_bytes());
                out.extend_from_slice(a.auth_info);
            }
            DhcpOption::Unicast(addr) => out.extend_from_slice(&addr.octets()),
            DhcpOption::StatusCode(s) => {
                out.extend_from_slice(&s.status.0.to_be_bytes());
                out.extend_from_slice(s.message);
            }
            DhcpOption::RapidCommit | DhcpOption::ReconfAccept => {}
            DhcpOption::UserClass(list) => out.extend_from_slice(list.as_bytes()),
            DhcpOption::VendorClass(v) => {
                out.extend_from_slice(&v.enterprise_number.to_be_bytes());
                out.extend_from_slice(v.data.as_bytes());
            }
            DhcpOption::VendorOpts(v) => {
                out.extend_from_slice(&v.enterprise_number.to_be_bytes());
                out.extend_from_slice(v.data);
            }
            DhcpOption::InterfaceId(d) | DhcpOption::SubscriberId(d) => out.extend_from_slice(d),
            DhcpOption::DnsServers(addrs) => addrs.iter().for_each(|a| out.extend_from_slice(&a.octets())),
            DhcpOption::DomainList(names) => names.iter().for_each(|n| out.extend_from_slice(n.as_bytes())),
            DhcpOption::IaPrefix(p) => {
                out.extend_from_slice(&p.preferred_lifetime.to_be_bytes());
                out.extend_from_slice(&p.valid_lifetime.to_be_bytes());
                out.push(p.prefix_len);
                out.extend_from_slice(&p.prefix.octets());
                p.options.encode(out, inner)?;
            }
            DhcpOption::InformationRefreshTime(v) | DhcpOption::SolMaxRt(v) | DhcpOption::InfMaxRt(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            DhcpOption::RemoteId(r) => {
                out.extend_from_slice(&r.enterprise_number.to_be_bytes());
                out.extend_from_slice(r.remote_id);
            }
            DhcpOption::ClientFqdn(f) => {
                out.push(f.flags);
                out.extend_from_slice(f.name.as_bytes());
            }
            DhcpOption::PdExclude(x) => {
                out.push(x.prefix_len);
                out.extend_from_slice(&x.subnet_id);
            }
            DhcpOption::ClientLinkLayerAddr(l) => {
                out.extend_from_slice(&l.link_layer_type.to_be_bytes());
                out.extend_from_slice(l.address);
            }
            DhcpOption::Unknown(raw) => out.extend_from_slice(raw.data),
        }
        end_option(out, start, self.code())
    }
}
