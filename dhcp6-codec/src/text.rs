//! Human-readable rendering of messages: one line per message or option, options indented
//! under what holds them. This is what `dhcp6d decode` prints.

use std::fmt::{self, Display, Formatter, Write};

use crate::{
    duid::Hex,
    option::{DhcpOption, Options},
    Message,
};

impl Display for Message<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_message(f, self, 0)
    }
}

fn indent(f: &mut Formatter<'_>, depth: usize) -> fmt::Result {
    for _ in 0..depth {
        f.write_str("  ")?;
    }
    Ok(())
}

fn write_message(f: &mut Formatter<'_>, msg: &Message<'_>, depth: usize) -> fmt::Result {
    indent(f, depth)?;
    match msg {
        Message::Client(m) => writeln!(f, "{} xid=0x{:06x}", m.msg_type.name(), m.transaction_id.as_u32())?,
        Message::Relay(m) => {
            writeln!(f, "{} hop={} link={} peer={}", m.msg_type.name(), m.hop_count, m.link_address, m.peer_address)?
        }
    }
    write_options(f, msg.options(), depth + 1)
}

fn write_options(f: &mut Formatter<'_>, options: &Options<'_>, depth: usize) -> fmt::Result {
    for option in options.iter() {
        write_option(f, option, depth)?;
    }
    Ok(())
}

/// The list's items, comma-separated.
fn list<T: Display>(items: impl IntoIterator<Item = T>) -> String {
    let mut s = String::new();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        // Writing to a String cannot fail.
        let _ = write!(s, "{item}");
    }
    s
}

/// Bytes as text when they are printable ASCII, else as hex.
fn text_or_hex(bytes: &[u8]) -> String {
    if !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("\"{}\"", String::from_utf8_lossy(bytes))
    } else {
        crate::hex_string(bytes)
    }
}

fn write_option(f: &mut Formatter<'_>, option: &DhcpOption<'_>, depth: usize) -> fmt::Result {
    indent(f, depth)?;
    let nested = match option {
        DhcpOption::ClientId(d) => {
            writeln!(f, "client-id {d}")?;
            None
        }
        DhcpOption::ServerId(d) => {
            writeln!(f, "server-id {d}")?;
            None
        }
        DhcpOption::IaNa(ia) => {
            writeln!(f, "ia-na iaid={:08x} t1={} t2={}", ia.iaid, ia.t1, ia.t2)?;
            Some(&ia.options)
        }
        DhcpOption::IaPd(ia) => {
            writeln!(f, "ia-pd iaid={:08x} t1={} t2={}", ia.iaid, ia.t1, ia.t2)?;
            Some(&ia.options)
        }
        DhcpOption::IaTa(ia) => {
            writeln!(f, "ia-ta iaid={:08x}", ia.iaid)?;
            Some(&ia.options)
        }
        DhcpOption::IaAddr(a) => {
            writeln!(f, "iaaddr {} preferred={} valid={}", a.address, a.preferred_lifetime, a.valid_lifetime)?;
            Some(&a.options)
        }
        DhcpOption::IaPrefix(p) => {
            writeln!(
                f,
                "iaprefix {}/{} preferred={} valid={}",
                p.prefix, p.prefix_len, p.preferred_lifetime, p.valid_lifetime
            )?;
            Some(&p.options)
        }
        DhcpOption::Oro(codes) => {
            writeln!(f, "oro {}", list(codes))?;
            None
        }
        DhcpOption::PdExclude(x) => {
            // Relative to the IAPREFIX it is in (RFC 6603): the length and the subnet ID.
            writeln!(f, "pd-exclude /{} subnet-id={}", x.prefix_len, Hex(&x.subnet_id))?;
            None
        }
        DhcpOption::Preference(v) => {
            writeln!(f, "preference {v}")?;
            None
        }
        DhcpOption::ElapsedTime(v) => {
            writeln!(f, "elapsed-time {v}")?;
            None
        }
        DhcpOption::RelayMsg(m) => {
            writeln!(f, "relay-msg")?;
            return write_message(f, m, depth + 1);
        }
        DhcpOption::Auth(a) => {
            writeln!(
                f,
                "auth protocol={} algorithm={} rdm={} replay={} info={}",
                a.protocol,
                a.algorithm,
                a.rdm,
                a.replay_detection,
                Hex(a.auth_info)
            )?;
            None
        }
        DhcpOption::Unicast(a) => {
            writeln!(f, "server-unicast {a}")?;
            None
        }
        DhcpOption::StatusCode(s) => {
            let name = s.status.name().unwrap_or("unknown");
            writeln!(f, "status-code {} ({name}) \"{}\"", s.status.0, s.message_lossy())?;
            None
        }
        DhcpOption::RapidCommit => {
            writeln!(f, "rapid-commit")?;
            None
        }
        DhcpOption::UserClass(l) => {
            writeln!(f, "user-class {}", list(l.items().map(text_or_hex)))?;
            None
        }
        DhcpOption::VendorClass(v) => {
            writeln!(f, "vendor-class enterprise={} {}", v.enterprise_number, list(v.data.items().map(text_or_hex)))?;
            None
        }
        DhcpOption::VendorOpts(v) => {
            writeln!(f, "vendor-opts enterprise={} {}", v.enterprise_number, Hex(v.data))?;
            None
        }
        DhcpOption::InterfaceId(d) => {
            writeln!(f, "interface-id {}", text_or_hex(d))?;
            None
        }
        DhcpOption::ReconfMsg(t) => {
            writeln!(f, "reconfigure-msg {t}")?;
            None
        }
        DhcpOption::ReconfAccept => {
            writeln!(f, "reconfigure-accept")?;
            None
        }
        DhcpOption::DnsServers(a) => {
            writeln!(f, "dns-servers {}", list(a))?;
            None
        }
        DhcpOption::DomainList(n) => {
            writeln!(f, "domain-list {}", list(n))?;
            None
        }
        DhcpOption::InformationRefreshTime(v) => {
            writeln!(f, "information-refresh-time {v}")?;
            None
        }
        DhcpOption::RemoteId(r) => {
            writeln!(f, "remote-id enterprise={} {}", r.enterprise_number, text_or_hex(r.remote_id))?;
            None
        }
        DhcpOption::SubscriberId(d) => {
            writeln!(f, "subscriber-id {}", text_or_hex(d))?;
            None
        }
        DhcpOption::ClientFqdn(c) => {
            writeln!(f, "client-fqdn flags={:#04x} {}", c.flags, c.name)?;
            None
        }
        DhcpOption::LqQuery(q) => {
            let name = q.query_type.name().unwrap_or("unknown");
            writeln!(f, "lq-query type={} ({name}) link={}", q.query_type.0, q.link_address)?;
            Some(&q.options)
        }
        DhcpOption::ClientData(options) => {
            writeln!(f, "client-data")?;
            Some(options)
        }
        DhcpOption::CltTime(v) => {
            writeln!(f, "clt-time {v}")?;
            None
        }
        DhcpOption::LqRelayData(r) => {
            writeln!(f, "lq-relay-data peer={}", r.peer_address)?;
            return write_message(f, &r.message, depth + 1);
        }
        DhcpOption::LqClientLink(a) => {
            writeln!(f, "lq-client-link {}", list(a))?;
            None
        }
        DhcpOption::RelayId(d) => {
            writeln!(f, "relay-id {d}")?;
            None
        }
        DhcpOption::ClientLinkLayerAddr(l) => {
            writeln!(f, "client-link-layer-addr type={} {}", l.link_layer_type, Hex(l.address))?;
            None
        }
        DhcpOption::SolMaxRt(v) => {
            writeln!(f, "sol-max-rt {v}")?;
            None
        }
        DhcpOption::InfMaxRt(v) => {
            writeln!(f, "inf-max-rt {v}")?;
            None
        }
        DhcpOption::Unknown(raw) => {
            writeln!(f, "option-{} {}", raw.code, Hex(raw.data))?;
            None
        }
    };
    match nested {
        Some(options) => write_options(f, options, depth + 1),
        None => Ok(()),
    }
}
