//! The codec against real captures: every message decodes and re-encodes to its exact bytes,
//! and what it decodes agrees with tshark, an independent decoder.

use std::{collections::BTreeMap, path::Path, process::Command};

use dhcp6_codec::{
    option::{DhcpOption, Options},
    DuidKind, Hex, Message,
};
use dhcp6_tests::vector_files;
use dhcp6_user::capture::read_pcap;
use serde_json::Value;

#[test]
fn every_vector_message_round_trips_exactly() {
    let mut messages = 0;
    for file in vector_files() {
        for d in read_pcap(&file).unwrap() {
            let msg =
                Message::decode(&d.payload).unwrap_or_else(|e| panic!("{} frame {}: {e}", file.display(), d.frame));
            let encoded = msg.to_vec().unwrap();
            assert_eq!(encoded, d.payload, "{} frame {} re-encodes differently", file.display(), d.frame);
            messages += 1;
        }
    }
    assert!(messages > 50, "only {messages} messages in the vectors");
}

/// The message types the vectors README lists for each capture, in order.
#[test]
fn message_type_sequences_match_the_vectors_readme() {
    let expected: &[(&str, &[u8])] = &[
        ("dhclient-ia-na.pcap", &[1, 2, 3, 7, 5, 7]),
        ("dhclient-ia-na-pd.pcap", &[1, 2, 3, 7, 8, 7]),
        ("dhclient-confirm.pcap", &[4, 7, 6, 7, 5, 7]),
        ("dhclient-info-request.pcap", &[11, 7]),
        ("dhclient-rebind.pcap", &[1, 2, 3, 7, 5, 6]),
        ("dhcpcd-ia-na-pd.pcap", &[1, 2, 3, 7, 5, 7]),
        ("perfdhcp-rapid-commit.pcap", &[1, 7]),
        ("relay-client-side.pcap", &[1, 2, 3, 7, 5, 7]),
    ];
    let dir = dhcp6_tests::vectors_dir();
    for (name, types) in expected {
        let got: Vec<u8> = read_pcap(&dir.join(name))
            .unwrap()
            .iter()
            .map(|d| Message::decode(&d.payload).unwrap().msg_type() as u8)
            .collect();
        assert_eq!(&got, types, "{name}");
    }
}

/// tshark field names compared, with how our decoder renders the same value.
const FIELDS: &[&str] = &[
    "dhcpv6.msgtype",
    "dhcpv6.xid",
    "dhcpv6.hopcount",
    "dhcpv6.linkaddr",
    "dhcpv6.peeraddr",
    "dhcpv6.option.type",
    "dhcpv6.option.length",
    "dhcpv6.duid.bytes",
    "dhcpv6.duid.type",
    "dhcpv6.duidllt.hwtype",
    "dhcpv6.duidllt.link_layer_addr",
    "dhcpv6.duidll.hwtype",
    "dhcpv6.duidll.link_layer_addr",
    "dhcpv6.iaid",
    "dhcpv6.iaid.t1",
    "dhcpv6.iaid.t2",
    "dhcpv6.iaaddr.ip",
    "dhcpv6.iaaddr.pref_lifetime",
    "dhcpv6.iaaddr.valid_lifetime",
    "dhcpv6.iaprefix.pref_addr",
    "dhcpv6.iaprefix.pref_len",
    "dhcpv6.iaprefix.pref_lifetime",
    "dhcpv6.iaprefix.valid_lifetime",
    "dhcpv6.interface_id",
    "dhcpv6.status_code",
    "dhcpv6.status_msg",
    "dhcpv6.elapsed_time",
    "dhcpv6.requested_option_code",
    "dhcpv6.dns_server",
    "dhcpv6.search_list_entry",
    "dhcpv6.vendorclass.enterprise",
];

type Fields = BTreeMap<String, Vec<String>>;

/// Per frame number, every value of each field in [`FIELDS`], in the order tshark shows them.
fn tshark_fields(file: &Path) -> BTreeMap<usize, Fields> {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(file)
        .args(["-T", "json", "--no-duplicate-keys"])
        .output()
        .expect("tshark is installed by `cargo xtask setup`");
    assert!(out.status.success(), "tshark failed on {}", file.display());
    let packets: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut result = BTreeMap::new();
    for p in packets.as_array().unwrap() {
        let layers = &p["_source"]["layers"];
        let frame: usize = layers["frame"]["frame.number"].as_str().unwrap().parse().unwrap();
        let mut fields = Fields::new();
        if let Some(dhcp) = layers.get("dhcpv6") {
            collect(dhcp, &mut fields);
            result.insert(frame, fields);
        }
    }
    result
}

fn collect(v: &Value, out: &mut Fields) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if FIELDS.contains(&k.as_str()) {
                    let leaves: Vec<&Value> = match v {
                        Value::Array(items) => items.iter().collect(),
                        other => vec![other],
                    };
                    for leaf in leaves {
                        if let Value::String(s) = leaf {
                            out.entry(k.clone()).or_default().push(s.clone());
                        }
                    }
                }
                collect(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
        _ => {}
    }
}

fn push(out: &mut Fields, key: &str, value: impl ToString) {
    out.entry(key.to_string()).or_default().push(value.to_string());
}

fn our_fields(msg: &Message<'_>, out: &mut Fields) {
    push(out, "dhcpv6.msgtype", msg.msg_type() as u8);
    match msg {
        Message::Client(c) => push(out, "dhcpv6.xid", format!("0x{:06x}", c.transaction_id.as_u32())),
        Message::Relay(r) => {
            push(out, "dhcpv6.hopcount", r.hop_count);
            push(out, "dhcpv6.linkaddr", r.link_address);
            push(out, "dhcpv6.peeraddr", r.peer_address);
        }
    }
    our_option_fields(msg.options(), out);
}

fn our_option_fields(options: &Options<'_>, out: &mut Fields) {
    for o in options.iter() {
        push(out, "dhcpv6.option.type", o.code());
        push(out, "dhcpv6.option.length", o.to_vec().unwrap().len() - 4);
        match o {
            DhcpOption::ClientId(d) | DhcpOption::ServerId(d) => {
                push(out, "dhcpv6.duid.bytes", Hex(d.as_bytes()));
                push(out, "dhcpv6.duid.type", d.duid_type());
                match d.kind() {
                    DuidKind::Llt { hw_type, link_layer_address, .. } => {
                        push(out, "dhcpv6.duidllt.hwtype", hw_type);
                        push(out, "dhcpv6.duidllt.link_layer_addr", Hex(link_layer_address));
                    }
                    DuidKind::Ll { hw_type, link_layer_address } => {
                        push(out, "dhcpv6.duidll.hwtype", hw_type);
                        push(out, "dhcpv6.duidll.link_layer_addr", Hex(link_layer_address));
                    }
                    _ => {}
                }
            }
            DhcpOption::IaNa(dhcp6_codec::option::IaNa { iaid, t1, t2, options })
            | DhcpOption::IaPd(dhcp6_codec::option::IaPd { iaid, t1, t2, options }) => {
                push(out, "dhcpv6.iaid", format!("{iaid:08x}"));
                push(out, "dhcpv6.iaid.t1", t1);
                push(out, "dhcpv6.iaid.t2", t2);
                our_option_fields(options, out);
            }
            DhcpOption::IaAddr(a) => {
                push(out, "dhcpv6.iaaddr.ip", a.address);
                push(out, "dhcpv6.iaaddr.pref_lifetime", a.preferred_lifetime);
                push(out, "dhcpv6.iaaddr.valid_lifetime", a.valid_lifetime);
                our_option_fields(&a.options, out);
            }
            DhcpOption::IaPrefix(p) => {
                push(out, "dhcpv6.iaprefix.pref_lifetime", p.preferred_lifetime);
                push(out, "dhcpv6.iaprefix.valid_lifetime", p.valid_lifetime);
                push(out, "dhcpv6.iaprefix.pref_len", p.prefix_len);
                push(out, "dhcpv6.iaprefix.pref_addr", p.prefix);
                our_option_fields(&p.options, out);
            }
            DhcpOption::InterfaceId(d) => push(out, "dhcpv6.interface_id", Hex(d)),
            DhcpOption::StatusCode(s) => {
                push(out, "dhcpv6.status_code", s.status.0);
                push(out, "dhcpv6.status_msg", s.message_lossy());
            }
            DhcpOption::ElapsedTime(t) => push(out, "dhcpv6.elapsed_time", t),
            DhcpOption::Oro(codes) => codes.iter().for_each(|c| push(out, "dhcpv6.requested_option_code", c)),
            DhcpOption::DnsServers(a) => a.iter().for_each(|a| push(out, "dhcpv6.dns_server", a)),
            DhcpOption::DomainList(n) => n.iter().for_each(|n| push(out, "dhcpv6.search_list_entry", n)),
            DhcpOption::VendorClass(v) => push(out, "dhcpv6.vendorclass.enterprise", v.enterprise_number),
            DhcpOption::RelayMsg(m) => our_fields(m, out),
            _ => {}
        }
    }
}

#[test]
fn decoded_fields_agree_with_tshark() {
    let mut compared = 0;
    for file in vector_files() {
        let theirs = tshark_fields(&file);
        for d in read_pcap(&file).unwrap() {
            let msg = Message::decode(&d.payload).unwrap();
            let mut ours = Fields::new();
            our_fields(&msg, &mut ours);
            let expected = theirs
                .get(&d.frame)
                .unwrap_or_else(|| panic!("tshark did not decode {} frame {}", file.display(), d.frame));
            assert_eq!(&ours, expected, "{} frame {}", file.display(), d.frame);
            compared += 1;
        }
        // Every frame tshark calls DHCPv6 was found and compared by us too.
        assert_eq!(read_pcap(&file).unwrap().len(), theirs.len(), "{}", file.display());
    }
    assert!(compared > 50);
}
