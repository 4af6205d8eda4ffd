//! JSON rendering of decoded messages, for `dhcp6d decode --json` and for scripts: typed views
//! of a message that serde writes. Field names follow the option names of RFC 9915; byte
//! strings are colon-separated hex.

use std::borrow::Cow;

use serde::Serialize;

use dhcp6_codec::{
    option::{DhcpOption, Options},
    Duid, DuidKind, Message,
};

/// Colon-separated hex, as tshark and Kea print byte strings.
pub fn hex(bytes: &[u8]) -> String {
    dhcp6_codec::hex_string(bytes)
}

/// A message, nested relays and options included.
#[derive(Debug, Serialize)]
pub struct MessageJson<'a> {
    msg_type: u8,
    msg_type_name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hop_count: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_address: Option<String>,
    options: Vec<OptionJson<'a>>,
}

/// A datagram of a capture and what it decoded to, for `dhcp6d decode --json`.
#[derive(Debug, Serialize)]
pub struct FrameJson<'a> {
    /// Its number in the capture, from 1.
    pub frame: usize,
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// Its VLAN IDs, outer first.
    pub vlans: &'a [u16],
    pub source: String,
    pub destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageJson<'a>>,
    /// Why it did not decode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An option: its code and what it holds.
#[derive(Debug, Serialize)]
pub struct OptionJson<'a> {
    code: u16,
    #[serde(flatten)]
    body: Body<'a>,
}

/// What an option holds, by kind.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Body<'a> {
    Duid {
        duid: DuidJson,
    },
    Ia {
        iaid: u32,
        t1: u32,
        t2: u32,
        options: Vec<OptionJson<'a>>,
    },
    IaTa {
        iaid: u32,
        options: Vec<OptionJson<'a>>,
    },
    IaAddr {
        address: String,
        preferred_lifetime: u32,
        valid_lifetime: u32,
        options: Vec<OptionJson<'a>>,
    },
    IaPrefix {
        prefix: String,
        preferred_lifetime: u32,
        valid_lifetime: u32,
        options: Vec<OptionJson<'a>>,
    },
    Codes {
        codes: &'a [u16],
    },
    Value {
        value: u32,
    },
    Message {
        message: Box<MessageJson<'a>>,
    },
    Auth {
        protocol: u8,
        algorithm: u8,
        rdm: u8,
        replay_detection: u64,
        auth_info: String,
    },
    Address {
        address: String,
    },
    Status {
        status: u16,
        name: Option<&'static str>,
        message: Cow<'a, str>,
    },
    Empty {},
    Items {
        data: Vec<String>,
    },
    VendorClass {
        enterprise_number: u32,
        data: Vec<String>,
    },
    Vendor {
        enterprise_number: u32,
        data: String,
    },
    Data {
        data: String,
    },
    Addresses {
        addresses: Vec<String>,
    },
    Names {
        names: Vec<String>,
    },
    RemoteId {
        enterprise_number: u32,
        remote_id: String,
    },
    Fqdn {
        flags: u8,
        name: String,
    },
    /// RFC 6603: relative to the IAPREFIX holding it.
    PdExclude {
        prefix_len: u8,
        subnet_id: String,
    },
    LinkLayer {
        link_layer_type: u16,
        address: String,
    },
    LqQuery {
        query_type: u8,
        query_type_name: Option<&'static str>,
        link_address: String,
        options: Vec<OptionJson<'a>>,
    },
    Options {
        options: Vec<OptionJson<'a>>,
    },
    RelayData {
        peer_address: String,
        message: Box<MessageJson<'a>>,
    },
}

/// A DUID: its kind's fields and its bytes.
#[derive(Debug, Serialize)]
pub struct DuidJson {
    #[serde(flatten)]
    kind: DuidKindJson,
    bytes: String,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum DuidKindJson {
    Llt { r#type: &'static str, hw_type: u16, time: u32, link_layer_address: String },
    En { r#type: &'static str, enterprise_number: u32, identifier: String },
    Ll { r#type: &'static str, hw_type: u16, link_layer_address: String },
    Uuid { r#type: &'static str, uuid: String },
    Other { r#type: u16, data: String },
}

/// The message as JSON.
pub fn message<'a>(msg: &'a Message<'a>) -> MessageJson<'a> {
    let (transaction_id, relay) = match msg {
        Message::Client(c) => (Some(c.transaction_id.as_u32()), None),
        Message::Relay(r) => (None, Some(r)),
    };
    MessageJson {
        msg_type: msg.msg_type() as u8,
        msg_type_name: msg.msg_type().name(),
        transaction_id,
        hop_count: relay.map(|r| r.hop_count),
        link_address: relay.map(|r| r.link_address.to_string()),
        peer_address: relay.map(|r| r.peer_address.to_string()),
        options: options(msg.options()),
    }
}

fn options<'a>(options: &'a Options<'a>) -> Vec<OptionJson<'a>> {
    options.iter().map(option).collect()
}

fn duid(d: &Duid<'_>) -> DuidJson {
    let kind = match d.kind() {
        DuidKind::Llt { hw_type, time, link_layer_address } => {
            DuidKindJson::Llt { r#type: "llt", hw_type, time, link_layer_address: hex(link_layer_address) }
        }
        DuidKind::En { enterprise_number, identifier } => {
            DuidKindJson::En { r#type: "en", enterprise_number, identifier: hex(identifier) }
        }
        DuidKind::Ll { hw_type, link_layer_address } => {
            DuidKindJson::Ll { r#type: "ll", hw_type, link_layer_address: hex(link_layer_address) }
        }
        DuidKind::Uuid(uuid) => DuidKindJson::Uuid { r#type: "uuid", uuid: hex(uuid) },
        DuidKind::Other { duid_type, data } => DuidKindJson::Other { r#type: duid_type, data: hex(data) },
    };
    DuidJson { kind, bytes: hex(d.as_bytes()) }
}

fn strings<T: ToString>(items: impl IntoIterator<Item = T>) -> Vec<String> {
    items.into_iter().map(|i| i.to_string()).collect()
}

fn option<'a>(o: &'a DhcpOption<'a>) -> OptionJson<'a> {
    let body = match o {
        DhcpOption::ClientId(d) | DhcpOption::ServerId(d) | DhcpOption::RelayId(d) => Body::Duid { duid: duid(d) },
        DhcpOption::LqQuery(q) => Body::LqQuery {
            query_type: q.query_type.0,
            query_type_name: q.query_type.name(),
            link_address: q.link_address.to_string(),
            options: options(&q.options),
        },
        DhcpOption::ClientData(o) => Body::Options { options: options(o) },
        DhcpOption::CltTime(v) => Body::Value { value: *v },
        DhcpOption::LqRelayData(r) => {
            Body::RelayData { peer_address: r.peer_address.to_string(), message: Box::new(message(&r.message)) }
        }
        DhcpOption::LqClientLink(a) => Body::Addresses { addresses: strings(a) },
        DhcpOption::IaNa(ia) => Body::Ia { iaid: ia.iaid, t1: ia.t1, t2: ia.t2, options: options(&ia.options) },
        DhcpOption::IaPd(ia) => Body::Ia { iaid: ia.iaid, t1: ia.t1, t2: ia.t2, options: options(&ia.options) },
        DhcpOption::IaTa(ia) => Body::IaTa { iaid: ia.iaid, options: options(&ia.options) },
        DhcpOption::IaAddr(a) => Body::IaAddr {
            address: a.address.to_string(),
            preferred_lifetime: a.preferred_lifetime,
            valid_lifetime: a.valid_lifetime,
            options: options(&a.options),
        },
        DhcpOption::IaPrefix(p) => Body::IaPrefix {
            prefix: format!("{}/{}", p.prefix, p.prefix_len),
            preferred_lifetime: p.preferred_lifetime,
            valid_lifetime: p.valid_lifetime,
            options: options(&p.options),
        },
        DhcpOption::Oro(codes) => Body::Codes { codes },
        DhcpOption::Preference(v) | DhcpOption::ReconfMsg(v) => Body::Value { value: u32::from(*v) },
        DhcpOption::ElapsedTime(v) => Body::Value { value: u32::from(*v) },
        DhcpOption::RelayMsg(m) => Body::Message { message: Box::new(message(m)) },
        DhcpOption::Auth(a) => Body::Auth {
            protocol: a.protocol,
            algorithm: a.algorithm,
            rdm: a.rdm,
            replay_detection: a.replay_detection,
            auth_info: hex(a.auth_info),
        },
        DhcpOption::Unicast(a) => Body::Address { address: a.to_string() },
        DhcpOption::StatusCode(s) => {
            Body::Status { status: s.status.0, name: s.status.name(), message: s.message_lossy() }
        }
        DhcpOption::RapidCommit | DhcpOption::ReconfAccept => Body::Empty {},
        DhcpOption::UserClass(l) => Body::Items { data: l.items().map(hex).collect() },
        DhcpOption::VendorClass(v) => {
            Body::VendorClass { enterprise_number: v.enterprise_number, data: v.data.items().map(hex).collect() }
        }
        DhcpOption::VendorOpts(v) => Body::Vendor { enterprise_number: v.enterprise_number, data: hex(v.data) },
        DhcpOption::InterfaceId(d) | DhcpOption::SubscriberId(d) => Body::Data { data: hex(d) },
        DhcpOption::DnsServers(a) => Body::Addresses { addresses: strings(a) },
        DhcpOption::DomainList(n) => Body::Names { names: strings(n) },
        DhcpOption::InformationRefreshTime(v) | DhcpOption::SolMaxRt(v) | DhcpOption::InfMaxRt(v) => {
            Body::Value { value: *v }
        }
        DhcpOption::RemoteId(r) => {
            Body::RemoteId { enterprise_number: r.enterprise_number, remote_id: hex(r.remote_id) }
        }
        DhcpOption::ClientFqdn(f) => Body::Fqdn { flags: f.flags, name: f.name.to_string() },
        DhcpOption::PdExclude(x) => Body::PdExclude { prefix_len: x.prefix_len, subnet_id: hex(&x.subnet_id) },
        DhcpOption::ClientLinkLayerAddr(l) => {
            Body::LinkLayer { link_layer_type: l.link_layer_type, address: hex(l.address) }
        }
        DhcpOption::Unknown(raw) => Body::Data { data: hex(raw.data) },
    };
    OptionJson { code: o.code(), body }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcp6_codec::{
        option::{Status, StatusCode},
        ClientMessage, MessageType, RelayMessage, TransactionId,
    };
    use serde_json::json;

    #[test]
    fn a_relayed_reply_renders_its_relay_its_message_and_each_option() {
        let duid = Duid::new(&[0, 1, 0, 1, 0x29, 0xb9, 0x27, 0, 2, 0, 0, 0, 0, 1]).unwrap();
        let inner = Message::Client(ClientMessage {
            msg_type: MessageType::Reply,
            transaction_id: TransactionId::from_u32(0x1234),
            options: Options(vec![
                DhcpOption::ServerId(duid),
                DhcpOption::RapidCommit,
                DhcpOption::StatusCode(StatusCode { status: Status::SUCCESS, message: b"ok" }),
            ]),
        });
        let relayed = Message::Relay(RelayMessage {
            msg_type: MessageType::RelayRepl,
            hop_count: 1,
            link_address: "2001:db8::1".parse().unwrap(),
            peer_address: "fe80::1".parse().unwrap(),
            options: Options(vec![DhcpOption::InterfaceId(b"eth0"), DhcpOption::RelayMsg(Box::new(inner))]),
        });
        let v = serde_json::to_value(message(&relayed)).unwrap();
        assert_eq!(v["msg_type_name"], "RELAY-REPL");
        assert_eq!((v["hop_count"].clone(), v["transaction_id"].clone()), (json!(1), json!(null)));
        assert_eq!(v["options"][0], json!({ "code": 18, "data": "65:74:68:30" }));
        let m = &v["options"][1]["message"];
        assert_eq!(m["transaction_id"], 0x1234);
        assert_eq!(m["options"][0]["duid"]["type"], "llt");
        assert_eq!(m["options"][0]["duid"]["bytes"], "00:01:00:01:29:b9:27:00:02:00:00:00:00:01");
        assert_eq!(m["options"][1], json!({ "code": 14 }), "Rapid Commit holds nothing");
        assert_eq!(m["options"][2], json!({ "code": 13, "status": 0, "name": "Success", "message": "ok" }));
    }
}
