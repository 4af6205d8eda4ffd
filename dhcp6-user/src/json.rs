//! JSON rendering of decoded messages, for `dhcp6d decode --json` and for scripts.
//! Field names follow the option names of RFC 9915; byte strings are colon-separated hex.

use serde_json::{json, Map, Value};

use dhcp6_codec::{
    option::{DhcpOption, Options},
    Duid, DuidKind, Hex, Message,
};

/// Colon-separated hex, as tshark and Kea print byte strings.
pub fn hex(bytes: &[u8]) -> String {
    Hex(bytes).to_string()
}

/// The message, nested relays and options included.
pub fn message(msg: &Message<'_>) -> Value {
    let mut m = Map::new();
    m.insert("msg_type".into(), json!(msg.msg_type() as u8));
    m.insert("msg_type_name".into(), json!(msg.msg_type().name()));
    match msg {
        Message::Client(c) => {
            m.insert("transaction_id".into(), json!(c.transaction_id.as_u32()));
        }
        Message::Relay(r) => {
            m.insert("hop_count".into(), json!(r.hop_count));
            m.insert("link_address".into(), json!(r.link_address.to_string()));
            m.insert("peer_address".into(), json!(r.peer_address.to_string()));
        }
    }
    m.insert("options".into(), options(msg.options()));
    Value::Object(m)
}

fn options(options: &Options<'_>) -> Value {
    Value::Array(options.iter().map(option).collect())
}

fn duid(d: &Duid<'_>) -> Value {
    let mut v = match d.kind() {
        DuidKind::Llt { hw_type, time, link_layer_address } => json!({
            "type": "llt", "hw_type": hw_type, "time": time, "link_layer_address": hex(link_layer_address)
        }),
        DuidKind::En { enterprise_number, identifier } => json!({
            "type": "en", "enterprise_number": enterprise_number, "identifier": hex(identifier)
        }),
        DuidKind::Ll { hw_type, link_layer_address } => json!({
            "type": "ll", "hw_type": hw_type, "link_layer_address": hex(link_layer_address)
        }),
        DuidKind::Uuid(uuid) => json!({ "type": "uuid", "uuid": hex(uuid) }),
        DuidKind::Other { duid_type, data } => json!({ "type": duid_type, "data": hex(data) }),
    };
    v["bytes"] = json!(hex(d.as_bytes()));
    v
}

fn option(o: &DhcpOption<'_>) -> Value {
    let body = match o {
        DhcpOption::ClientId(d) | DhcpOption::ServerId(d) => json!({ "duid": duid(d) }),
        DhcpOption::IaNa(ia) => json!({ "iaid": ia.iaid, "t1": ia.t1, "t2": ia.t2, "options": options(&ia.options) }),
        DhcpOption::IaPd(ia) => json!({ "iaid": ia.iaid, "t1": ia.t1, "t2": ia.t2, "options": options(&ia.options) }),
        DhcpOption::IaTa(ia) => json!({ "iaid": ia.iaid, "options": options(&ia.options) }),
        DhcpOption::IaAddr(a) => json!({
            "address": a.address.to_string(), "preferred_lifetime": a.preferred_lifetime,
            "valid_lifetime": a.valid_lifetime, "options": options(&a.options)
        }),
        DhcpOption::IaPrefix(p) => json!({
            "prefix": format!("{}/{}", p.prefix, p.prefix_len), "preferred_lifetime": p.preferred_lifetime,
            "valid_lifetime": p.valid_lifetime, "options": options(&p.options)
        }),
        DhcpOption::Oro(codes) => json!({ "codes": codes }),
        DhcpOption::Preference(v) | DhcpOption::ReconfMsg(v) => json!({ "value": v }),
        DhcpOption::ElapsedTime(v) => json!({ "value": v }),
        DhcpOption::RelayMsg(m) => json!({ "message": message(m) }),
        DhcpOption::Auth(a) => json!({
            "protocol": a.protocol, "algorithm": a.algorithm, "rdm": a.rdm,
            "replay_detection": a.replay_detection, "auth_info": hex(a.auth_info)
        }),
        DhcpOption::Unicast(a) => json!({ "address": a.to_string() }),
        DhcpOption::StatusCode(s) => json!({
            "status": s.status.0, "name": s.status.name(), "message": s.message_lossy()
        }),
        DhcpOption::RapidCommit | DhcpOption::ReconfAccept => json!({}),
        DhcpOption::UserClass(l) => json!({ "data": l.items().map(hex).collect::<Vec<_>>() }),
        DhcpOption::VendorClass(v) => json!({
            "enterprise_number": v.enterprise_number, "data": v.data.items().map(hex).collect::<Vec<_>>()
        }),
        DhcpOption::VendorOpts(v) => json!({ "enterprise_number": v.enterprise_number, "data": hex(v.data) }),
        DhcpOption::InterfaceId(d) | DhcpOption::SubscriberId(d) => json!({ "data": hex(d) }),
        DhcpOption::DnsServers(a) => json!({ "addresses": a.iter().map(|a| a.to_string()).collect::<Vec<_>>() }),
        DhcpOption::DomainList(n) => json!({ "names": n.iter().map(|n| n.to_string()).collect::<Vec<_>>() }),
        DhcpOption::InformationRefreshTime(v) | DhcpOption::SolMaxRt(v) | DhcpOption::InfMaxRt(v) => {
            json!({ "value": v })
        }
        DhcpOption::RemoteId(r) => json!({ "enterprise_number": r.enterprise_number, "remote_id": hex(r.remote_id) }),
        DhcpOption::ClientFqdn(f) => json!({ "flags": f.flags, "name": f.name.to_string() }),
        DhcpOption::ClientLinkLayerAddr(l) => {
            json!({ "link_layer_type": l.link_layer_type, "address": hex(l.address) })
        }
        DhcpOption::Unknown(raw) => json!({ "data": hex(raw.data) }),
    };
    let mut v = json!({ "code": o.code() });
    if let Value::Object(fields) = body {
        if let Value::Object(out) = &mut v {
            out.extend(fields);
        }
    }
    v
}
