//! tshark as an oracle for the failover options: what we encode, an independent decoder reads
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

fn write_pcap(path: &Path, payload: &[u8]) {
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
    let frame = repr.to_vec(payload).unwrap();
    let mut writer = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    writer.write_packet(&PcapPacket::new(Duration::ZERO, frame.len() as u32, &frame)).unwrap();
}

/// Each field's values as tshark prints them, occurrences joined by commas.
fn tshark_fields(path: &Path, fields: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut command = Command::new("tshark");
    command.arg("-r").arg(path).args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=a"]);
    for (field, _) in fields {
        command.args(["-e", field]);
    }
    let out = command.output().unwrap_or_else(|e| {
        panic!("this test needs tshark (installed by `cargo xtask setup`, or apt-get install tshark): {e}")
    });
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().next().expect("tshark printed no packet");
    fields.iter().map(|(f, _)| f.to_string()).zip(line.split('|').map(str::to_string)).collect()
}

#[test]
fn tshark_reads_the_failover_options_we_encode() {
    let path = std::env::temp_dir().join(format!("dhcp6-failover-options-{}.pcap", std::process::id()));
    write_pcap(&path, &reply_payload());
    let theirs = tshark_fields(&path, EXPECTED);
    std::fs::remove_file(&path).ok();
    let expected: BTreeMap<String, String> = EXPECTED.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect();
    assert_eq!(theirs, expected);
}

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
    write_pcap(&path, &payload);
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
