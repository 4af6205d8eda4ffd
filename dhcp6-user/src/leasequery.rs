//! `dhcp6d leasequery`: what an operator asks a server (RFC 5007 over UDP, RFC 5460 over TCP)
//! and how its answer is shown. The I/O is `daemon::leasequery_client`'s.

use std::net::Ipv6Addr;

use dhcp6_codec::{
    option::{DhcpOption, IaAddr, LqQuery, Options, QueryType, RemoteId},
    Duid, Message, TransactionId,
};

/// What is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// QUERY_BY_ADDRESS: the binding holding this address (or a prefix holding it).
    Address(Ipv6Addr),
    /// QUERY_BY_CLIENTID: this client's binding (DUID bytes).
    ClientId(Vec<u8>),
    /// QUERY_BY_RELAY_ID (bulk): the bindings a relay of this DUID relayed.
    RelayId(Vec<u8>),
    /// QUERY_BY_LINK_ADDRESS (bulk): the bindings on the link of this address.
    LinkAddress(Ipv6Addr),
    /// QUERY_BY_REMOTE_ID (bulk): the bindings relayed with this Remote-ID.
    RemoteId { enterprise: u32, id: Vec<u8> },
}

/// Why a query could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    #[error("{0} is not a DUID (hex, like 00:03:00:01:02:00:00:00:00:01)")]
    NotADuid(String),
}

impl Ask {
    /// Whether RFC 5460 allows it over TCP only (bulk query types).
    pub fn is_bulk(&self) -> bool {
        matches!(self, Ask::RelayId(_) | Ask::LinkAddress(_) | Ask::RemoteId { .. })
    }

    /// The LEASEQUERY, from `requestor` (a DUID), about `link` (unspecified: all links), with
    /// transaction id `xid`.
    pub fn query(&self, requestor: &[u8], link: Option<Ipv6Addr>, xid: u32) -> Result<Vec<u8>, AskError> {
        let requestor = duid(requestor)?;
        let link = link.unwrap_or(Ipv6Addr::UNSPECIFIED);
        let (query_type, link_address, options) = match self {
            Ask::Address(a) => (
                QueryType::BY_ADDRESS,
                link,
                vec![DhcpOption::IaAddr(IaAddr {
                    address: *a,
                    preferred_lifetime: 0,
                    valid_lifetime: 0,
                    options: Options::new(),
                })],
            ),
            Ask::ClientId(d) => (QueryType::BY_CLIENT_ID, link, vec![DhcpOption::ClientId(duid(d)?)]),
            Ask::RelayId(d) => (QueryType::BY_RELAY_ID, link, vec![DhcpOption::RelayId(duid(d)?)]),
            Ask::LinkAddress(a) => (QueryType::BY_LINK_ADDRESS, *a, vec![]),
            Ask::RemoteId { enterprise, id } => (
                QueryType::BY_REMOTE_ID,
                link,
                vec![DhcpOption::RemoteId(RemoteId { enterprise_number: *enterprise, remote_id: id })],
            ),
        };
        let query = LqQuery { query_type, link_address, options: Options(options) };
        // A query of a few dozen bytes always encodes.
        Ok(dhcp6_engine::server::leasequery::query_message(TransactionId::from_u32(xid), requestor, query)
            .unwrap_or_default())
    }
}

/// `bytes` as a DUID, or the error naming them.
fn duid(bytes: &[u8]) -> Result<Duid<'_>, AskError> {
    Duid::new(bytes).map_err(|_| AskError::NotADuid(dhcp6_codec::hex_string(bytes)))
}

/// The answer's messages as `dhcp6d decode` prints them (text), or as one JSON array.
pub fn render(messages: &[Vec<u8>], as_json: bool) -> String {
    if as_json {
        let all: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| match Message::decode(m) {
                Ok(msg) => serde_json::to_value(crate::json::message(&msg)).unwrap_or_default(),
                Err(e) => serde_json::json!({ "error": e.to_string(), "bytes": dhcp6_codec::hex_string(m) }),
            })
            .collect();
        return serde_json::to_string_pretty(&all).unwrap_or_default() + "\n";
    }
    let mut out = String::new();
    for m in messages {
        match Message::decode(m) {
            Ok(msg) => out.push_str(&msg.to_string()),
            Err(e) => out.push_str(&format!("undecodable ({} bytes): {e}\n", m.len())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcp6_codec::MessageType;

    const REQUESTOR: &[u8] = &[0, 3, 0, 1, 2, 0, 0, 0, 0, 0xaa];

    #[test]
    fn each_ask_makes_its_query_type_and_bulk_ones_say_so() {
        let cases = [
            (Ask::Address("2001:db8::5".parse().unwrap()), 1, false),
            (Ask::ClientId(vec![0, 3, 0, 1, 1, 2, 3, 4, 5, 6]), 2, false),
            (Ask::RelayId(vec![0, 3, 0, 1, 1, 2, 3, 4, 5, 6]), 3, true),
            (Ask::LinkAddress("2001:db8:2::1".parse().unwrap()), 4, true),
            (Ask::RemoteId { enterprise: 4874, id: b"port-7".to_vec() }, 5, true),
        ];
        for (ask, query_type, bulk) in cases {
            assert_eq!(ask.is_bulk(), bulk);
            let bytes = ask.query(REQUESTOR, None, 9).unwrap();
            let m = Message::decode(&bytes).unwrap();
            assert_eq!(m.msg_type(), MessageType::Leasequery);
            assert_eq!(m.options().client_id().unwrap().as_bytes(), REQUESTOR);
            let q = m.options().iter().find_map(|o| match o {
                DhcpOption::LqQuery(q) => Some(q.clone()),
                _ => None,
            });
            assert_eq!(q.unwrap().query_type, QueryType(query_type));
        }
        assert_eq!(Ask::ClientId(vec![0]).query(REQUESTOR, None, 1), Err(AskError::NotADuid("00".into())));
    }

    #[test]
    fn an_answer_renders_as_text_and_json() {
        let reply = [15, 0, 0, 9, 0, 46, 0, 4, 0, 0, 0, 5];
        assert_eq!(render(&[reply.to_vec()], false), "LEASEQUERY-REPLY xid=0x000009\n  clt-time 5\n");
        let json: serde_json::Value = serde_json::from_str(&render(&[reply.to_vec()], true)).unwrap();
        assert_eq!(json[0]["msg_type_name"], "LEASEQUERY-REPLY");
        assert_eq!(json[0]["options"][0]["value"], 5);
    }
}
