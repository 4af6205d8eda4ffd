//! DHCPv6 wire constants (RFC 9915) needed on both sides of the kernel boundary.

/// UDP port clients listen on (RFC 9915 section 7.2).
pub const CLIENT_PORT: u16 = 546;
/// UDP port servers and relay agents listen on (RFC 9915 section 7.2).
pub const SERVER_PORT: u16 = 547;
/// Maximum number of relay agents a message may cross (RFC 9915 section 7.6, HOP_COUNT_LIMIT).
pub const HOP_COUNT_LIMIT: u8 = 32;

/// Length of the fixed header of a client/server message: msg-type + transaction-id.
pub const CLIENT_HEADER_LEN: usize = 4;
/// Length of the fixed header of a relay message: msg-type, hop-count, link- and peer-address.
pub const RELAY_HEADER_LEN: usize = 34;
/// Length of an option's code + length fields.
pub const OPTION_HEADER_LEN: usize = 4;

/// ff02::1:2, All_DHCP_Relay_Agents_and_Servers (RFC 9915 section 7.1).
pub const ALL_DHCP_RELAY_AGENTS_AND_SERVERS: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0x02];

/// Ethernet and IPv6 framing constants the XDP parser needs.
pub mod frame {
    pub const ETH_HEADER_LEN: usize = 14;
    pub const VLAN_TAG_LEN: usize = 4;
    pub const ETHERTYPE_IPV6: u16 = 0x86dd;
    pub const ETHERTYPE_VLAN: u16 = 0x8100;
    pub const ETHERTYPE_QINQ: u16 = 0x88a8;
    pub const IPV6_HEADER_LEN: usize = 40;
    pub const IPPROTO_UDP: u8 = 17;
    pub const UDP_HEADER_LEN: usize = 8;
    /// How many VLAN tags (802.1ad outer + 802.1Q inner) the parsers look through.
    pub const MAX_VLAN_TAGS: usize = 2;
}

/// DHCPv6 message types (RFC 9915 section 7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum MessageType {
    Solicit = 1,
    Advertise = 2,
    Request = 3,
    Confirm = 4,
    Renew = 5,
    Rebind = 6,
    Reply = 7,
    Release = 8,
    Decline = 9,
    Reconfigure = 10,
    InformationRequest = 11,
    RelayForw = 12,
    RelayRepl = 13,
    /// Leasequery (RFC 5007 section 4.2).
    Leasequery = 14,
    LeasequeryReply = 15,
    /// Bulk Leasequery (RFC 5460 section 5.2), on TCP only.
    LeasequeryDone = 16,
    LeasequeryData = 17,
}

impl MessageType {
    /// Every message type, in numeric order.
    pub const ALL: [MessageType; 17] = [
        MessageType::Solicit,
        MessageType::Advertise,
        MessageType::Request,
        MessageType::Confirm,
        MessageType::Renew,
        MessageType::Rebind,
        MessageType::Reply,
        MessageType::Release,
        MessageType::Decline,
        MessageType::Reconfigure,
        MessageType::InformationRequest,
        MessageType::RelayForw,
        MessageType::RelayRepl,
        MessageType::Leasequery,
        MessageType::LeasequeryReply,
        MessageType::LeasequeryDone,
        MessageType::LeasequeryData,
    ];

    /// The message type for a wire value, if it is one RFC 9915 (1-13) or leasequery (14-17,
    /// RFC 5007 and RFC 5460) defines.
    pub const fn from_u8(v: u8) -> Option<MessageType> {
        if v >= 1 && v <= 17 {
            Some(Self::ALL[v as usize - 1])
        } else {
            None
        }
    }

    /// Relay-Forward and Relay-Reply carry the 34-byte relay header; the rest the 4-byte one.
    pub const fn is_relay(self) -> bool {
        matches!(self, MessageType::RelayForw | MessageType::RelayRepl)
    }

    /// The name RFC 9915 uses, e.g. `RELAY-FORW`.
    pub const fn name(self) -> &'static str {
        match self {
            MessageType::Solicit => "SOLICIT",
            MessageType::Advertise => "ADVERTISE",
            MessageType::Request => "REQUEST",
            MessageType::Confirm => "CONFIRM",
            MessageType::Renew => "RENEW",
            MessageType::Rebind => "REBIND",
            MessageType::Reply => "REPLY",
            MessageType::Release => "RELEASE",
            MessageType::Decline => "DECLINE",
            MessageType::Reconfigure => "RECONFIGURE",
            MessageType::InformationRequest => "INFORMATION-REQUEST",
            MessageType::RelayForw => "RELAY-FORW",
            MessageType::RelayRepl => "RELAY-REPL",
            MessageType::Leasequery => "LEASEQUERY",
            MessageType::LeasequeryReply => "LEASEQUERY-REPLY",
            MessageType::LeasequeryDone => "LEASEQUERY-DONE",
            MessageType::LeasequeryData => "LEASEQUERY-DATA",
        }
    }
}

/// Option codes the system knows (IANA "DHCPv6 Option Codes"; RFC 9915 section 21 and others).
pub mod option_code {
    pub const CLIENTID: u16 = 1;
    pub const SERVERID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IA_TA: u16 = 4;
    pub const IAADDR: u16 = 5;
    pub const ORO: u16 = 6;
    pub const PREFERENCE: u16 = 7;
    pub const ELAPSED_TIME: u16 = 8;
    pub const RELAY_MSG: u16 = 9;
    pub const AUTH: u16 = 11;
    pub const UNICAST: u16 = 12;
    pub const STATUS_CODE: u16 = 13;
    pub const RAPID_COMMIT: u16 = 14;
    pub const USER_CLASS: u16 = 15;
    pub const VENDOR_CLASS: u16 = 16;
    pub const VENDOR_OPTS: u16 = 17;
    pub const INTERFACE_ID: u16 = 18;
    pub const RECONF_MSG: u16 = 19;
    pub const RECONF_ACCEPT: u16 = 20;
    pub const DNS_SERVERS: u16 = 23;
    pub const DOMAIN_LIST: u16 = 24;
    pub const IA_PD: u16 = 25;
    pub const IAPREFIX: u16 = 26;
    pub const INFORMATION_REFRESH_TIME: u16 = 32;
    pub const REMOTE_ID: u16 = 37;
    pub const SUBSCRIBER_ID: u16 = 38;
    pub const CLIENT_FQDN: u16 = 39;
    /// Leasequery (RFC 5007 section 4.1.2); Client Data and CLT Time are reused by failover
    /// (RFC 8156).
    pub const LQ_QUERY: u16 = 44;
    pub const CLIENT_DATA: u16 = 45;
    /// OPTION_PD_EXCLUDE, RFC 6603.
    pub const PD_EXCLUDE: u16 = 67;
    pub const CLT_TIME: u16 = 46;
    pub const LQ_RELAY_DATA: u16 = 47;
    pub const LQ_CLIENT_LINK: u16 = 48;
    /// Relay Identifier (RFC 5460 section 5.4.1).
    pub const RELAY_ID: u16 = 53;
    pub const CLIENT_LINKLAYER_ADDR: u16 = 79;
    pub const SOL_MAX_RT: u16 = 82;
    pub const INF_MAX_RT: u16 = 83;
    /// Active Leasequery (RFC 7653 section 6.1), reused by failover (RFC 8156).
    pub const LQ_BASE_TIME: u16 = 100;
    /// Failover (RFC 8156 section 13).
    pub const F_BINDING_STATUS: u16 = 114;
    pub const F_CONNECT_FLAGS: u16 = 115;
    pub const F_DNS_REMOVAL_INFO: u16 = 116;
    pub const F_DNS_HOST_NAME: u16 = 117;
    pub const F_DNS_ZONE_NAME: u16 = 118;
    pub const F_DNS_FLAGS: u16 = 119;
    pub const F_EXPIRATION_TIME: u16 = 120;
    pub const F_MAX_UNACKED_BNDUPD: u16 = 121;
    pub const F_MCLT: u16 = 122;
    pub const F_PARTNER_LIFETIME: u16 = 123;
    pub const F_PARTNER_LIFETIME_SENT: u16 = 124;
    pub const F_PARTNER_DOWN_TIME: u16 = 125;
    pub const F_PARTNER_RAW_CLT_TIME: u16 = 126;
    pub const F_PROTOCOL_VERSION: u16 = 127;
    pub const F_KEEPALIVE_TIME: u16 = 128;
    pub const F_RECONFIGURE_DATA: u16 = 129;
    pub const F_RELATIONSHIP_NAME: u16 = 130;
    pub const F_SERVER_FLAGS: u16 = 131;
    pub const F_SERVER_STATE: u16 = 132;
    pub const F_START_TIME_OF_STATE: u16 = 133;
    pub const F_STATE_EXPIRATION_TIME: u16 = 134;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_round_trips_every_byte() {
        for v in 0..=255u8 {
            match MessageType::from_u8(v) {
                Some(t) => assert_eq!(t as u8, v),
                None => assert!(v == 0 || v > 17),
            }
        }
    }
}
