//! The live trace (`dhcp6d trace`): each DHCPv6 message dhcp6d sees or sends, decoded (type,
//! transaction ID, client, IAs, status), with what happened to it, where: answered or relayed
//! in XDP, passed up and why, answered by the engine, shed, dropped and why. This module is
//! the pure part: the filter, the events and their decoding from a payload or from a frame
//! XDP reported ([`dhcp6_common::trace`]); the daemon's driver feeds it
//! (`daemon::live_trace`).

use std::fmt;

use dhcp6_codec::{
    frame::{EthernetFrame, UdpFrameRepr},
    hex_string,
    option::{DhcpOption, Options},
    parse_hex, DuidKind, Message, MessageType,
};
use dhcp6_common::{
    counters::Verdict,
    trace::{TRACE_FAST_PATH, TRACE_SHED, TRACE_STORM},
};
use serde::{Deserialize, Serialize};

/// Whom a trace follows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceFilter {
    /// Only messages on this interface (by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Only this client's messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<TracedClient>,
}

/// A client, by its DUID or its MAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TracedClient {
    /// The DUID, as colon-separated hex.
    Duid(String),
    Mac([u8; 6]),
}

/// Why a `--client` is neither a MAC nor a DUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceFilterError {
    #[error("{0:?} is neither a MAC (six bytes of hex) nor a DUID (hex, at least three bytes)")]
    Client(String),
}

impl TracedClient {
    /// Reads a MAC (exactly six bytes of hex, `02:00:00:00:00:01`) or a DUID (hex, colons
    /// optional, three bytes or more: a DUID's type and at least a byte of it).
    pub fn parse(text: &str) -> Result<TracedClient, TraceFilterError> {
        let bytes = parse_hex(text).ok_or_else(|| TraceFilterError::Client(text.to_string()))?;
        match bytes.len() {
            6 => Ok(TracedClient::Mac(bytes.try_into().unwrap_or_default())),
            n if n >= 3 => Ok(TracedClient::Duid(hex_string(&bytes))),
            _ => Err(TraceFilterError::Client(text.to_string())),
        }
    }
}

impl TraceFilter {
    /// The MAC XDP can match frames by: the client's MAC, or the Ethernet address inside a
    /// DUID-LL or DUID-LLT (what dhclient and most CPEs send). None: XDP reports every
    /// DHCPv6 frame while this trace runs, and the daemon picks (a DUID-EN or DUID-UUID
    /// carries no MAC; a trace of every client).
    pub fn xdp_mac(&self) -> Option<[u8; 6]> {
        match self.client.as_ref()? {
            TracedClient::Mac(mac) => Some(*mac),
            TracedClient::Duid(duid) => duid_mac(&parse_hex(duid)?),
        }
    }

    /// Whether `event` is one this trace shows.
    pub fn matches(&self, event: &TraceEvent) -> bool {
        if self.interface.as_ref().is_some_and(|i| event.interface.as_ref() != Some(i)) {
            return false;
        }
        match &self.client {
            None => true,
            Some(TracedClient::Duid(duid)) => event.client() == Some(duid.as_str()),
            Some(TracedClient::Mac(mac)) => {
                let text = hex_string(mac);
                event.mac.as_deref() == Some(text.as_str())
                    || event.client().and_then(parse_hex).and_then(|d| duid_mac(&d)) == Some(*mac)
            }
        }
    }
}

/// The Ethernet address a DUID-LL or DUID-LLT carries (hardware type 1).
fn duid_mac(duid: &[u8]) -> Option<[u8; 6]> {
    let duid = dhcp6_codec::Duid::new(duid).ok()?;
    match duid.kind() {
        DuidKind::Ll { hw_type: 1, link_layer_address } | DuidKind::Llt { hw_type: 1, link_layer_address, .. } => {
            link_layer_address.try_into().ok()
        }
        _ => None,
    }
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Came in: from a client, or a Relay-Reply from a server.
    In,
    /// Went out: an answer, or a relayed message.
    Out,
}

/// One line of the trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// Unix seconds, to the microsecond.
    pub time: f64,
    /// The interface it came in on or left by, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The client's MAC, when the frame showed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    pub direction: Direction,
    /// `xdp` or `dhcp6d`: who handled it.
    pub by: String,
    /// What happened to it.
    pub what: String,
    /// The message; None if it did not decode (`what` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageSummary>,
}

impl TraceEvent {
    /// The client's DUID, as hex, when the message names one.
    pub fn client(&self) -> Option<&str> {
        self.message.as_ref()?.client.as_deref()
    }
}

/// A message as the trace shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSummary {
    /// The client's message type, and the relay messages around it, outermost first
    /// (`RELAY-FORW > SOLICIT`).
    #[serde(rename = "type")]
    pub msg_type: String,
    /// Transaction ID, 6 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ias: Vec<IaSummary>,
    /// The message's own status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// An IA_NA or IA_PD of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IaSummary {
    /// `ia_na` or `ia_pd`.
    #[serde(rename = "type")]
    pub ia_type: String,
    pub iaid: u32,
    /// Addresses or prefixes, with their valid lifetimes (`2001:db8::1/3600`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// The summary of a DHCPv6 payload, or why it does not decode.
pub fn summarize(payload: &[u8]) -> Result<MessageSummary, String> {
    let message = Message::decode(payload).map_err(|e| format!("does not decode: {e}"))?;
    let mut types = Vec::new();
    let mut m = &message;
    loop {
        types.push(m.msg_type().name());
        match m {
            Message::Relay(r) => match r.options.relay_message() {
                Some(inner) => m = inner,
                None => break,
            },
            Message::Client(_) => break,
        }
    }
    let (xid, options) = match m {
        Message::Client(c) => (Some(format!("{:06x}", c.transaction_id.as_u32())), &c.options),
        Message::Relay(r) => (None, &r.options),
    };
    Ok(MessageSummary {
        msg_type: types.join(" > "),
        xid,
        client: options.client_id().map(|d| hex_string(d.as_bytes())),
        ias: ias(options),
        status: options.status().map(status_text),
    })
}

fn status_text(s: &dhcp6_codec::StatusCode<'_>) -> String {
    let name = s.status.name().map_or_else(|| format!("status {}", s.status.0), str::to_string);
    match s.message_lossy() {
        m if m.is_empty() => name,
        m => format!("{name} ({m})"),
    }
}

fn ias(options: &Options<'_>) -> Vec<IaSummary> {
    let mut out = Vec::new();
    for option in options.iter() {
        let (ia_type, iaid, inner) = match option {
            DhcpOption::IaNa(ia) => ("ia_na", ia.iaid, &ia.options),
            DhcpOption::IaPd(ia) => ("ia_pd", ia.iaid, &ia.options),
            _ => continue,
        };
        let mut resources = Vec::new();
        for o in inner.iter() {
            match o {
                DhcpOption::IaAddr(a) => resources.push(format!("{}/{}s", a.address, a.valid_lifetime)),
                DhcpOption::IaPrefix(p) => {
                    resources.push(format!("{}/{}/{}s", p.prefix, p.prefix_len, p.valid_lifetime))
                }
                _ => {}
            }
        }
        out.push(IaSummary { ia_type: ia_type.into(), iaid, resources, status: inner.status().map(status_text) });
    }
    out
}

/// What XDP did, as the trace says it.
pub fn xdp_outcome(verdict: u32, why: u32) -> (Direction, String) {
    let name = |v: u32| Verdict::ALL.get(v as usize).map_or("unknown", |v| v.name());
    if verdict == TRACE_SHED {
        return (Direction::In, "shed in XDP (dhcp6d is overloaded)".into());
    }
    if verdict == TRACE_FAST_PATH {
        return (Direction::In, "taken up by XDP's fast path".into());
    }
    if verdict == TRACE_STORM {
        return (Direction::In, "cut in XDP (the client is over its [storm] rate)".into());
    }
    let Some(&v) = Verdict::ALL.get(verdict as usize) else {
        return (Direction::In, format!("verdict {verdict} in XDP"));
    };
    match v {
        Verdict::Replied => (Direction::Out, "answered in XDP".into()),
        Verdict::RelayForwarded => (Direction::Out, "relayed up in XDP".into()),
        Verdict::RelayReplied => (Direction::Out, "relayed down to the client in XDP".into()),
        Verdict::NoRoom => (Direction::In, "dropped in XDP: the frame could not grow (no_room)".into()),
        Verdict::ToAfXdp if why == Verdict::Dhcp6Passed as u32 => {
            (Direction::In, "passed up to dhcp6d (AF_XDP)".into())
        }
        Verdict::ToAfXdp => {
            (Direction::In, format!("passed up to dhcp6d (AF_XDP): XDP did not answer it ({})", name(why)))
        }
        other => (Direction::In, format!("passed to the kernel's stack: {}", other.name())),
    }
}

/// The event for a frame XDP reported: `frame` (the first `frame.len()` bytes of a frame of
/// `len`), with what XDP did to it, on `interface`.
pub fn xdp_event(time: f64, interface: Option<String>, verdict: u32, why: u32, len: usize, frame: &[u8]) -> TraceEvent {
    let (direction, mut what) = xdp_outcome(verdict, why);
    let parsed = EthernetFrame::new_checked(frame).ok().and_then(|f| {
        let (d, udp) = UdpFrameRepr::parse(&f).ok()?;
        // An answer goes to the client's MAC; a client's message comes from it.
        let client_mac = if d.dst_port == dhcp6_codec::CLIENT_PORT { f.dst_mac() } else { f.src_mac() };
        Some((client_mac, udp.payload().to_vec()))
    });
    let (mac, message) = match parsed {
        Some((mac, payload)) => match summarize(&payload) {
            Ok(m) => (Some(hex_string(&mac)), Some(m)),
            Err(e) => {
                what = format!("{what}; {e}");
                (Some(hex_string(&mac)), None)
            }
        },
        None if frame.len() < len => {
            what = format!("{what}; cut at {} of {len} bytes", frame.len());
            (None, None)
        }
        None => {
            what = format!("{what}; not a UDP frame dhcp6d reads");
            (None, None)
        }
    };
    TraceEvent { time, interface, mac, direction, by: "xdp".into(), what, message }
}

/// The event for a message dhcp6d's userspace took in or sent.
pub fn daemon_event(
    time: f64,
    interface: Option<String>,
    mac: Option<[u8; 6]>,
    direction: Direction,
    what: String,
    payload: &[u8],
) -> TraceEvent {
    let (message, what) = match summarize(payload) {
        Ok(m) => (Some(m), what),
        Err(e) => (None, format!("{what}; {e}")),
    };
    TraceEvent { time, interface, mac: mac.map(|m| hex_string(&m)), direction, by: "dhcp6d".into(), what, message }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.time as u64;
        let micros = ((self.time - secs as f64) * 1e6) as u64;
        write!(f, "{:02}:{:02}:{:02}.{micros:06}", secs % 86_400 / 3600, secs % 3600 / 60, secs % 60)?;
        let arrow = match self.direction {
            Direction::In => "<-",
            Direction::Out => "->",
        };
        write!(f, " {:<6} {arrow} {:<10}", self.by, self.interface.as_deref().unwrap_or("-"))?;
        match &self.message {
            Some(m) => {
                write!(f, " {}", m.msg_type)?;
                if let Some(x) = &m.xid {
                    write!(f, " xid {x}")?;
                }
                if let Some(c) = &m.client {
                    write!(f, " client {c}")?;
                }
                for ia in &m.ias {
                    write!(f, " {} {}", ia.ia_type, ia.iaid)?;
                    if !ia.resources.is_empty() {
                        write!(f, " [{}]", ia.resources.join(" "))?;
                    }
                    if let Some(s) = &ia.status {
                        write!(f, " ({s})")?;
                    }
                }
                if let Some(s) = &m.status {
                    write!(f, " status {s}")?;
                }
            }
            None => write!(f, " (no message)")?,
        }
        if let Some(mac) = &self.mac {
            write!(f, " mac {mac}")?;
        }
        write!(f, ": {}", self.what)
    }
}

/// A message type's name, for what the daemon says it did with one.
pub fn type_name(payload: &[u8]) -> &'static str {
    payload.first().and_then(|&t| MessageType::from_u8(t)).map_or("message", MessageType::name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcp6_common::counters::Verdict;

    /// A Renew of dhclient with a DUID-LLT (hardware type 1, MAC 02:00:00:00:00:0a), IA_NA 1
    /// with one address, in an Ethernet frame from that MAC to the DHCPv6 multicast MAC.
    fn renew_frame() -> Vec<u8> {
        let duid = [0, 1, 0, 1, 0x2c, 0, 0, 1, 2, 0, 0, 0, 0, 0x0a];
        let mut dhcp = vec![5, 0x12, 0x34, 0x56];
        dhcp.extend_from_slice(&[0, 1, 0, duid.len() as u8]);
        dhcp.extend_from_slice(&duid);
        let mut ia = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        ia.extend_from_slice(&[0, 5, 0, 24]);
        ia.extend_from_slice(&"2001:db8:1::100".parse::<std::net::Ipv6Addr>().unwrap().octets());
        ia.extend_from_slice(&[0, 0, 0, 10, 0, 0, 0, 20]);
        dhcp.extend_from_slice(&[0, 3, 0, ia.len() as u8]);
        dhcp.extend_from_slice(&ia);
        let mut frame = vec![0x33, 0x33, 0, 1, 0, 2, 2, 0, 0, 0, 0, 0x0a, 0x86, 0xdd];
        let udp_len = 8 + dhcp.len();
        frame.extend_from_slice(&[0x60, 0, 0, 0, (udp_len >> 8) as u8, udp_len as u8, 17, 1]);
        frame.extend_from_slice(&"fe80::a".parse::<std::net::Ipv6Addr>().unwrap().octets());
        frame.extend_from_slice(&"ff02::1:2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        frame.extend_from_slice(&[0x02, 0x22, 0x02, 0x23, (udp_len >> 8) as u8, udp_len as u8, 0, 0]);
        frame.extend_from_slice(&dhcp);
        frame
    }

    #[test]
    fn a_client_is_a_mac_or_a_duid() {
        assert_eq!(TracedClient::parse("02:00:00:00:00:0A"), Ok(TracedClient::Mac([2, 0, 0, 0, 0, 0x0a])));
        assert_eq!(TracedClient::parse("000300010200"), Ok(TracedClient::Mac([0, 3, 0, 1, 2, 0])));
        assert_eq!(
            TracedClient::parse("0003000102000000000a"),
            Ok(TracedClient::Duid("00:03:00:01:02:00:00:00:00:0a".into()))
        );
        for bad in ["", "00:01", "zz:00:00", "0:0"] {
            assert!(TracedClient::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn xdp_matches_by_the_mac_a_duid_ll_or_llt_carries_and_else_reports_everything() {
        let by = |client: &str| TraceFilter { interface: None, client: Some(TracedClient::parse(client).unwrap()) };
        assert_eq!(by("00:01:00:01:2c:00:00:01:02:00:00:00:00:0a").xdp_mac(), Some([2, 0, 0, 0, 0, 0x0a]));
        assert_eq!(by("00:03:00:01:02:00:00:00:00:0b").xdp_mac(), Some([2, 0, 0, 0, 0, 0x0b]));
        assert_eq!(by("00:02:00:00:00:09:01:02").xdp_mac(), None, "a DUID-EN carries no MAC");
        assert_eq!(by("02:00:00:00:00:0c").xdp_mac(), Some([2, 0, 0, 0, 0, 0x0c]));
        assert_eq!(TraceFilter::default().xdp_mac(), None);
    }

    #[test]
    fn a_frame_xdp_reported_is_decoded_and_filtered_by_client_and_interface() {
        let frame = renew_frame();
        let e = xdp_event(1.5, Some("eth1".into()), TRACE_FAST_PATH, TRACE_FAST_PATH, frame.len(), &frame);
        let m = e.message.clone().unwrap();
        assert_eq!((m.msg_type.as_str(), m.xid.as_deref()), ("RENEW", Some("123456")));
        assert_eq!(m.ias[0].resources, ["2001:db8:1::100/20s"]);
        assert_eq!(e.mac.as_deref(), Some("02:00:00:00:00:0a"));
        assert_eq!(
            (e.direction, e.by.as_str(), e.what.as_str()),
            (Direction::In, "xdp", "taken up by XDP's fast path")
        );
        let of = |client: &str, interface: Option<&str>| TraceFilter {
            interface: interface.map(str::to_string),
            client: Some(TracedClient::parse(client).unwrap()),
        };
        assert!(of("02:00:00:00:00:0a", None).matches(&e));
        assert!(of("00:01:00:01:2c:00:00:01:02:00:00:00:00:0a", Some("eth1")).matches(&e));
        assert!(!of("02:00:00:00:00:0b", None).matches(&e));
        assert!(!of("02:00:00:00:00:0a", Some("eth2")).matches(&e));
        let line = e.to_string();
        assert!(line.starts_with("00:00:01.500000 xdp    <- eth1"), "{line}");
        assert!(
            line.contains(
                "RENEW xid 123456 client 00:01:00:01:2c:00:00:01:02:00:00:00:00:0a ia_na 1 [2001:db8:1::100/20s]"
            ),
            "{line}"
        );

        // Cut short, it is still a line: what happened, and that it was cut.
        let cut = xdp_event(0.0, None, Verdict::Replied as u32, Verdict::Replied as u32, frame.len(), &frame[..40]);
        assert!(cut.message.is_none() && cut.what.contains("cut at 40"), "{}", cut.what);
        let (_, why) = xdp_outcome(Verdict::ToAfXdp as u32, Verdict::NoLease as u32);
        assert!(why.contains("no_lease"), "{why}");
    }
}
