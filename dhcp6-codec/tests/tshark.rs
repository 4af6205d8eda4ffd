//! tshark as an oracle for the failover, Reconfigure (Authentication, Reconfigure Message,
//! Reconfigure Accept) and leasequery options: what we encode, an independent decoder reads
//! back as the values we meant.
//!
//! tshark (4.0) types every RFC 8156 option (114-134) and the leasequery ones (45, 46) but
//! knows neither the failover message types nor their 8-octet header, on TCP 647 or
//! elsewhere; it leaves LQ Base Time (100) untyped and does not look inside DNS Removal Info
//! (116), so the DNS options are sent bare here. The options travel in a DHCPv6 Reply over
//! UDP, whose 4-octet header tshark reads; the failover header is checked by the unit tests
//! against the RFC's layout instead. Also OPTION_PD_EXCLUDE (RFC 6603) in an IAPREFIX.

use std::{collections::BTreeMap, net::Ipv6Addr, path::Path, process::Command, time::Duration};

use dhcp6_codec::{
    failover::{BindingStatus, FailoverOption, FailoverOptions, ProtocolVersion, ReconfigureData, ServerState},
    frame::{UdpFrameRepr, Vlans},
    option::Auth,
    option::{DhcpOption, IaAddr, IaNa, IaPd, IaPrefix, Options, Status, StatusCode},
    DomainName, Duid,
};
use pcap_file::pcap::{PcapPacket, PcapWriter};

/// The fields compared, in tshark's names, with the values we encode below.
const EXPECTED: &[(&str, &str)] = &[
    ("dhcpv6.msgtype", "7"),
    ("dhcpv6.xid", "0x00beef"),
    ("dhcpv6.duid.bytes", "000300010200000000c1"),
    ("dhcpv6.iaid", "00000001,00000002"),
    ("dhcpv6.iaaddr.ip", "2001:db8:2::100"),
    ("dhcpv6.iaprefix.pref_addr", "2001:db8:9000::"),
    ("dhcpv6.iaprefix.pref_len", "60"),
    ("dhcpv6.clt_time", "5"),
    ("dhcpv6.failover.binding_status", "1"),
    ("dhcpv6.failover.connect.flags", "0x0001"),
    ("dhcpv6.failover.connect.flags.f", "1"),
    ("dhcpv6.failover.dns_hostname", "host.example.net"),
    ("dhcpv6.failover.dns_zonename", "example.net"),
    ("dhcpv6.failover.dns.flags", "0x0009"),
    ("dhcpv6.failover.expiration_time", "757382490"),
    ("dhcpv6.failover.max_unacked_bndupd", "10"),
    ("dhcpv6.failover.mclt", "3600"),
    ("dhcpv6.failover.partner_lifetime", "757382491"),
    ("dhcpv6.failover.partner_lifetime_sent", "757382492"),
    ("dhcpv6.failover.partner_down_time", "757382493"),
    ("dhcpv6.failover.partner_raw_clt_time", "757382395"),
    ("dhcpv6.failover.protocol.major_version", "1"),
    ("dhcpv6.failover.protocol.minor_version", "0"),
    ("dhcpv6.failover.keepalive_time", "30"),
    ("dhcpv6.failover.reconfigure_time", "757382000"),
    ("dhcpv6.failover.reconfigure_key", "000102030405060708090a0b0c0d0e0f"),
    ("dhcpv6.failover.relationship_name", "ha-pair-1"),
    ("dhcpv6.failover.server.flags", "0x05"),
    ("dhcpv6.failover.server_state", "2"),
    ("dhcpv6.failover.start_time_of_state", "757382400"),
    ("dhcpv6.failover.state_expiration_time", "757386000"),
    ("dhcpv6.status_code", "22"),
];

/// A Reply carrying a BNDUPD's Client Data and every other failover option once.
fn reply_payload() -> Vec<u8> {
    let duid = [0, 3, 0, 1, 2, 0, 0, 0, 0, 0xc1];
    let key: Vec<u8> = (0..16).collect();
    let host = DomainName::from_dotted("host.example.net").unwrap();
    let zone = DomainName::from_dotted("example.net").unwrap();
    let options = FailoverOptions(vec![
        FailoverOption::ClientData(FailoverOptions(vec![
            FailoverOption::Dhcp(DhcpOption::ClientId(Duid::new(&duid).unwrap())),
            FailoverOption::Dhcp(DhcpOption::IaNa(IaNa {
                iaid: 1,
                t1: 0,
                t2: 0,
                options: Options(vec![DhcpOption::IaAddr(IaAddr {
                    address: "2001:db8:2::100".parse().unwrap(),
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
                    prefix: "2001:db8:9000::".parse().unwrap(),
                    options: Options::new(),
                })]),
            })),
            FailoverOption::CltTime(5),
            FailoverOption::BindingStatus(BindingStatus::ACTIVE),
            FailoverOption::ExpirationTime(757_382_490),
            FailoverOption::PartnerLifetime(757_382_491),
            FailoverOption::PartnerRawCltTime(757_382_395),
            FailoverOption::ReconfigureData(ReconfigureData { time: 757_382_000, key: &key }),
            FailoverOption::DnsHostName(host),
            FailoverOption::DnsZoneName(zone),
            FailoverOption::DnsFlags(0x0009),
        ])),
        FailoverOption::ConnectFlags(0x0001),
        FailoverOption::MaxUnackedBndupd(10),
        FailoverOption::Mclt(3600),
        FailoverOption::PartnerLifetimeSent(757_382_492),
        FailoverOption::PartnerDownTime(757_382_493),
        FailoverOption::ProtocolVersion(ProtocolVersion { major: 1, minor: 0 }),
        FailoverOption::KeepaliveTime(30),
        FailoverOption::RelationshipName(b"ha-pair-1"),
        FailoverOption::ServerFlags(0x05),
        FailoverOption::ServerState(ServerState::NORMAL),
        FailoverOption::StartTimeOfState(757_382_400),
        FailoverOption::StateExpirationTime(757_386_000),
        FailoverOption::Dhcp(DhcpOption::StatusCode(StatusCode { status: Status::EXCESSIVE_TIME_SKEW, message: b"" })),
    ]);
    let mut payload = vec![7, 0x00, 0xbe, 0xef];
    for option in options.iter() {
        payload.extend(option.to_vec().unwrap());
    }
    payload
}

/// A capture at `path` of `payloads`, a frame each.
fn write_pcap(path: &Path, payloads: &[Vec<u8>]) {
    let mut writer = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for payload in payloads {
        let frame = frame(payload);
        writer.write_packet(&PcapPacket::new(Duration::ZERO, frame.len() as u32, &frame)).unwrap();
    }
}

/// `payload` in a UDP datagram from port 547 to 546.
fn frame(payload: &[u8]) -> Vec<u8> {
    let repr = UdpFrameRepr {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 0xc1],
        vlans: Vlans::default(),
        src_ip: "fe80::1".parse::<Ipv6Addr>().unwrap(),
        dst_ip: "fe80::c1".parse::<Ipv6Addr>().unwrap(),
        src_port: 547,
        dst_port: 546,
        hop_limit: 64,
    };
    repr.to_vec(payload).unwrap()
}

/// tshark's reading of the capture at `path`: a line per packet, each field's values (its
/// occurrences joined by commas) separated by `|`.
fn tshark(path: &Path, fields: &[&str]) -> Vec<String> {
    let mut command = Command::new("tshark");
    command.arg("-r").arg(path).args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=a"]);
    for field in fields {
        command.args(["-e", field]);
    }
    let out = command.output().unwrap_or_else(|e| {
        panic!("this test needs tshark (installed by `cargo xtask setup`, or apt-get install tshark): {e}")
    });
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

/// Each field's values as tshark prints them for the first packet, occurrences joined by
/// commas.
fn tshark_fields(path: &Path, expected: &[(&str, &str)]) -> BTreeMap<String, String> {
    let fields: Vec<&str> = expected.iter().map(|(f, _)| *f).collect();
    let lines = tshark(path, &fields);
    let line = lines.first().expect("tshark printed no packet");
    fields.iter().map(|f| f.to_string()).zip(line.split('|').map(str::to_string)).collect()
}

#[test]
fn tshark_reads_the_failover_options_we_encode() {
    let path = std::env::temp_dir().join(format!("dhcp6-failover-options-{}.pcap", std::process::id()));
    write_pcap(&path, &[reply_payload()]);
    let theirs = tshark_fields(&path, EXPECTED);
    std::fs::remove_file(&path).ok();
    let expected: BTreeMap<String, String> = EXPECTED.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect();
    assert_eq!(theirs, expected);
}

/// tshark's field names with the values expected.
type Fields<'a> = &'a [(&'a str, &'a str)];

/// A Reconfigure (RFC 9915 section 18.3.11) signed with the Reconfigure Key protocol, and a
/// Reply giving the key (section 20.4.1): Authentication, Reconfigure Message and Reconfigure
/// Accept, each as tshark reads them.
#[test]
fn tshark_reads_the_reconfigure_options_we_encode() {
    let duid = [0, 3, 0, 1, 2, 0, 0, 0, 0, 0xc1];
    let mut hmac = vec![2u8];
    hmac.extend(0xa0..0xb0u8);
    let mut key = vec![1u8];
    key.extend(0..16u8);
    let auth = |info| {
        DhcpOption::Auth(Auth {
            protocol: 3,
            algorithm: 1,
            rdm: 0,
            replay_detection: 0x0102_0304_0506_0708,
            auth_info: info,
        })
    };
    let message = |msg_type: u8, options: Vec<DhcpOption<'_>>| {
        let mut payload = vec![msg_type, 0, 0, 0];
        for option in options {
            payload.extend(option.to_vec().unwrap());
        }
        payload
    };
    let client = DhcpOption::ClientId(Duid::new(&duid).unwrap());
    let reconfigure = message(10, vec![client.clone(), DhcpOption::ReconfMsg(5), auth(&hmac)]);
    let reply = message(7, vec![client, DhcpOption::ReconfAccept, auth(&key)]);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let (hmac_hex, key_hex) = (hex(&hmac), hex(&key));
    let cases: [(&[u8], Fields); 2] = [
        (
            &reconfigure,
            &[
                ("dhcpv6.msgtype", "10"),
                ("dhcpv6.xid", "0x000000"),
                ("dhcpv6.option.type", "1,19,11"),
                ("dhcpv6.reconf_msg", "5"),
                ("dhcpv6.auth.protocol", "3"),
                ("dhcpv6.auth.algorithm", "1"),
                ("dhcpv6.auth.rdm", "0"),
                ("dhcpv6.auth.replay_detection", "0102030405060708"),
                ("dhcpv6.auth.info", &hmac_hex),
            ],
        ),
        (
            &reply,
            &[
                ("dhcpv6.msgtype", "7"),
                ("dhcpv6.option.type", "1,20,11"),
                ("dhcpv6.auth.protocol", "3"),
                ("dhcpv6.auth.info", &key_hex),
            ],
        ),
    ];
    for (n, (payload, expected)) in cases.into_iter().enumerate() {
        let path = std::env::temp_dir().join(format!("dhcp6-reconfigure-{}-{n}.pcap", std::process::id()));
        write_pcap(&path, &[payload.to_vec()]);
        let theirs = tshark_fields(&path, expected);
        std::fs::remove_file(&path).ok();
        let expected: BTreeMap<String, String> = expected.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect();
        assert_eq!(theirs, expected);
    }
}

/// The leasequery fields compared, per message, with what [`leasequery_payloads`] encodes.
const LEASEQUERY_FIELDS: &[&str] = &[
    "dhcpv6.msgtype",
    "dhcpv6.option.type",
    "dhcpv6.duid.bytes",
    "dhcpv6.lq_query",
    "dhcpv6.lq_query_link_address",
    "dhcpv6.iaaddr.ip",
    "dhcpv6.iaprefix.pref_addr",
    "dhcpv6.clt_time",
    "dhcpv6.lq_relay_data_peer_addr",
    "dhcpv6.linkaddr",
    "dhcpv6.peeraddr",
    "dhcpv6.lq_client_link",
    "dhcpv6.remoteid.enterprise",
];

/// A LEASEQUERY by relay ID, a LEASEQUERY-REPLY with a relayed client's data and links, a
/// LEASEQUERY-DATA and -DONE (RFC 5007, RFC 5460), and the Relay-Forward of the relay data
/// on its own: tshark 4.0 does not look inside OPTION_LQ_RELAY_DATA's message.
fn leasequery_payloads() -> Vec<Vec<u8>> {
    use dhcp6_codec::{
        option::{LqQuery, LqRelayData, QueryType, RemoteId},
        ClientMessage, Message, MessageType, RelayMessage, TransactionId,
    };
    let requestor = Duid::new(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 0xaa]).unwrap();
    let server = Duid::new(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 0x01]).unwrap();
    let client = Duid::new(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 0xc1]).unwrap();
    let relay = Duid::new(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 0xee]).unwrap();
    let message = |msg_type, options: Vec<DhcpOption<'static>>| {
        Message::Client(ClientMessage {
            msg_type,
            transaction_id: TransactionId::from_u32(0xbeef),
            options: Options(options),
        })
        .to_vec()
        .unwrap()
    };
    let forward = Message::Relay(RelayMessage {
        msg_type: MessageType::RelayForw,
        hop_count: 0,
        link_address: "2001:db8:1::1".parse().unwrap(),
        peer_address: "fe80::c1".parse().unwrap(),
        options: Options(vec![
            DhcpOption::InterfaceId(b"eth0"),
            DhcpOption::RemoteId(RemoteId { enterprise_number: 4874, remote_id: b"port-7" }),
            DhcpOption::RelayId(relay),
        ]),
    });
    let forward_alone = forward.to_vec().unwrap();
    let client_data = DhcpOption::ClientData(Options(vec![
        DhcpOption::ClientId(client),
        DhcpOption::IaAddr(IaAddr {
            address: "2001:db8:1::100".parse().unwrap(),
            preferred_lifetime: 60,
            valid_lifetime: 90,
            options: Options::new(),
        }),
        DhcpOption::IaPrefix(IaPrefix {
            preferred_lifetime: 60,
            valid_lifetime: 90,
            prefix_len: 56,
            prefix: "2001:db8:9000::".parse().unwrap(),
            options: Options::new(),
        }),
        DhcpOption::CltTime(5),
        DhcpOption::LqRelayData(LqRelayData {
            peer_address: "2001:db8:ff::2".parse().unwrap(),
            message: Box::new(forward),
        }),
    ]));
    vec![
        message(
            MessageType::Leasequery,
            vec![
                DhcpOption::ClientId(requestor),
                DhcpOption::LqQuery(LqQuery {
                    query_type: QueryType::BY_RELAY_ID,
                    link_address: "2001:db8:1::1".parse().unwrap(),
                    options: Options(vec![DhcpOption::RelayId(relay)]),
                }),
            ],
        ),
        message(
            MessageType::LeasequeryReply,
            vec![DhcpOption::ServerId(server), DhcpOption::ClientId(requestor), client_data.clone()],
        ),
        message(
            MessageType::LeasequeryData,
            vec![
                DhcpOption::ServerId(server),
                DhcpOption::LqClientLink(vec!["2001:db8:1::".parse().unwrap(), "2001:db8:2::".parse().unwrap()]),
            ],
        ),
        message(
            MessageType::LeasequeryDone,
            vec![DhcpOption::StatusCode(StatusCode { status: Status::QUERY_TERMINATED, message: b"" })],
        ),
        forward_alone,
    ]
}

#[test]
fn tshark_reads_the_leasequery_messages_we_encode() {
    let path = std::env::temp_dir().join(format!("dhcp6-leasequery-{}.pcap", std::process::id()));
    write_pcap(&path, &leasequery_payloads());
    let theirs = tshark(&path, LEASEQUERY_FIELDS);
    std::fs::remove_file(&path).ok();
    assert_eq!(theirs, EXPECTED_LEASEQUERY);
}

/// tshark's reading, a line per message, fields in [`LEASEQUERY_FIELDS`]' order.
const EXPECTED_LEASEQUERY: &[&str] = &[
    // LEASEQUERY: Client ID, LQ_QUERY (by relay ID, on 2001:db8:1::1) holding a Relay-ID.
    "14|1,44,53|000300010200000000aa,000300010200000000ee|3|2001:db8:1::1||||||||",
    // LEASEQUERY-REPLY: Server ID, Client ID, Client Data (Client ID, IAADDR, IAPREFIX,
    // CLT Time, LQ Relay Data from 2001:db8:ff::2).
    "15|2,1,45,1,5,26,46,47|00030001020000000001,000300010200000000aa,000300010200000000c1|||2001:db8:1::100|2001:db8:9000::|5|2001:db8:ff::2||||",
    // LEASEQUERY-DATA with LQ_CLIENT_LINK.
    "17|2,48|00030001020000000001|||||||||2001:db8:1::,2001:db8:2::|",
    // LEASEQUERY-DONE with QueryTerminated.
    "16|13|||||||||||",
    // The relay data's Relay-Forward: Interface-ID, Remote-ID (enterprise 4874), Relay-ID.
    "12|18,37,53|000300010200000000ee|||||||2001:db8:1::1|fe80::c1||4874",
];
/// A Reply delegating 2001:db8:8000:100::/56 but for 2001:db8:8000:101::/64 (the link to the
/// CPE): tshark reads the exclusion's length and subnet ID (the /64's bits 56 to 63, 0x01)
/// where we wrote them, and our decoder reads back the bytes it wrote.
#[test]
fn tshark_reads_the_pd_exclude_option_we_encode() {
    use dhcp6_codec::{pd_exclude::PdExclude, ClientMessage, Message, MessageType, TransactionId};
    let delegated = ("2001:db8:8000:100::".parse().unwrap(), 56);
    let exclude = PdExclude::new(delegated, ("2001:db8:8000:101::".parse().unwrap(), 64)).unwrap();
    let prefix = IaPrefix {
        preferred_lifetime: 60,
        valid_lifetime: 90,
        prefix_len: delegated.1,
        prefix: delegated.0,
        options: Options(vec![DhcpOption::PdExclude(exclude.clone())]),
    };
    let reply = Message::Client(ClientMessage {
        msg_type: MessageType::Reply,
        transaction_id: TransactionId::from_u32(0xbeef),
        options: Options(vec![DhcpOption::IaPd(IaPd {
            iaid: 2,
            t1: 30,
            t2: 48,
            options: Options(vec![DhcpOption::IaPrefix(prefix)]),
        })]),
    });
    let payload = reply.to_vec().unwrap();
    assert_eq!(&payload[payload.len() - 6..], &[0, 67, 0, 2, 64, 0x01], "the option ends the IAPREFIX");
    let decoded = Message::decode(&payload).unwrap();
    assert_eq!(decoded, reply, "decodes to what was encoded");
    assert_eq!(decoded.to_vec().unwrap(), payload, "and re-encodes to the same bytes");

    let path = std::env::temp_dir().join(format!("dhcp6-pd-exclude-{}.pcap", std::process::id()));
    write_pcap(&path, std::slice::from_ref(&payload));
    let fields = [
        ("dhcpv6.iaprefix.pref_addr", "2001:db8:8000:100::"),
        ("dhcpv6.iaprefix.pref_len", "56"),
        ("dhcpv6.pd_exclude.pref_len", "64"),
        ("dhcpv6.pd_exclude.subnet_id", "01"),
    ];
    let theirs = tshark_fields(&path, &fields);
    std::fs::remove_file(&path).ok();
    let expected: BTreeMap<String, String> = fields.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect();
    assert_eq!(theirs, expected);
    assert_eq!(exclude.excluded(delegated), Some(("2001:db8:8000:101::".parse().unwrap(), 64)));
    // dhcpcd's empty one (a hint, in its IA_PD) is kept as it came, not refused.
    let request = [3u8, 0, 0, 1, 0, 25, 0, 16, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 67, 0, 0];
    let m = Message::decode(&request).unwrap();
    let Some(DhcpOption::IaPd(ia)) = m.options().iter().next() else { panic!("{m:?}") };
    assert!(matches!(ia.options.0[..], [DhcpOption::Unknown(ref raw)] if raw.code == 67 && raw.data.is_empty()));
    assert_eq!(m.to_vec().unwrap(), request);
}
