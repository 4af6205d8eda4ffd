//! Leasequery (RFC 5007) and bulk leasequery (RFC 5460), the server's side: who may ask, which
//! bindings a query finds, and the answers, encoded. Sans-IO like the rest of the engine: the
//! daemon hands in a query from UDP ([`Server::leasequery_udp`]) or from a TCP connection
//! ([`Server::bulk_leasequery`]) and sends what comes out.
//!
//! A binding here is RFC 5007's: one client's bound leases (section 4.1.2.2), answered as an
//! OPTION_CLIENT_DATA holding its Client Identifier, an IAADDR or IAPREFIX per lease with the
//! lifetimes it has left, OPTION_CLT_TIME and, for a relayed client, OPTION_LQ_RELAY_DATA
//! (the Relay-Forward its last message came in, without the message).

use std::{collections::BTreeMap, net::Ipv6Addr};

use dhcp6_codec::{
    option::{DhcpOption, IaAddr, IaPrefix, LqQuery, LqRelayData, Options, QueryType, Status, StatusCode},
    ClientMessage, Duid, Message, MessageType, TransactionId,
};
use ipnet::Ipv6Net;

use super::{DropReason, IaType, Inbound, Lease, LeaseState, Outbound, Outcome, Server};

crate::counted_enum! {
    /// What became of a leasequery (UDP or bulk).
    pub enum LeasequeryOutcome {
        /// Answered with the bindings found (none, possibly).
        Answered => "answered",
        /// From an address outside `[leasequery] allow`: answered NotAllowed.
        NotAllowed => "not_allowed",
        /// No OPTION_LQ_QUERY, or not what its query type needs: MalformedQuery.
        Malformed => "malformed",
        /// A query type the server does not answer (there, or at all): UnknownQueryType.
        UnknownQueryType => "unknown_query_type",
        /// A link-address no subnet holds: NotConfigured.
        NotConfigured => "not_configured",
    }
}

/// Who may ask: requestors whose address is in one of these prefixes. Empty: nobody, so that
/// a server tells nobody of its clients until configured to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub allow: Vec<Ipv6Net>,
}

impl Access {
    pub fn allows(&self, requestor: &Ipv6Addr) -> bool {
        self.allow.iter().any(|p| p.contains(requestor))
    }
}

/// What a query found: the bindings to tell, or a status to answer with.
enum Found {
    Bindings(Vec<Vec<Lease>>),
    /// Bindings on several links of a query by client ID that named none (RFC 5007 section
    /// 4.3.3): the links, for the requestor to ask again.
    Links(Vec<Ipv6Addr>),
    Refused(Status, &'static str, LeasequeryOutcome),
}

impl Server {
    /// Lets requestors in `allow` ask leasequeries; nobody else.
    pub fn set_leasequery_access(&mut self, access: Access) {
        self.leasequery = access;
    }

    /// A LEASEQUERY over UDP: by address or by client ID only (RFC 5460 section 6: bulk query
    /// types go over TCP). Answered to the requestor's address and port.
    pub(super) fn leasequery_udp(&mut self, inbound: &Inbound<'_>, query: &ClientMessage<'_>) -> Outcome {
        let Some(answer) = self.answer_query(query, inbound.source.ip(), false, inbound.now) else {
            return self.drop(DropReason::Invalid);
        };
        // One datagram: the reply, with the first binding (a UDP query finds one client at most,
        // or answers with its links).
        let payload = answer.into_iter().next().unwrap_or_default();
        Outcome { reply: Some(Outbound { payload, destination: inbound.source }), changes: vec![], dropped: None }
    }

    /// A bulk LEASEQUERY read from a TCP connection (RFC 5460 section 6.2): the messages to
    /// send back, in order: LEASEQUERY-REPLY (with the first binding), a LEASEQUERY-DATA per
    /// further binding, and LEASEQUERY-DONE. None: not a query at all (the connection is
    /// closed).
    pub fn bulk_leasequery(&mut self, payload: &[u8], requestor: &Ipv6Addr, now: u64) -> Option<Vec<Vec<u8>>> {
        let Ok(Message::Client(query)) = Message::decode(payload) else {
            self.stats.count_drop(DropReason::Malformed);
            return None;
        };
        if query.msg_type != MessageType::Leasequery {
            self.stats.count_received(query.msg_type);
            self.stats.count_drop(DropReason::NotForServer);
            return None;
        }
        self.stats.count_received(MessageType::Leasequery);
        let answer = self.answer_query(&query, requestor, true, now);
        if answer.is_none() {
            self.stats.count_drop(DropReason::Invalid);
        }
        answer
    }

    /// The answer to `query` from `requestor`, encoded; None when it is not answered at all
    /// (no Client Identifier, another server's Server Identifier).
    fn answer_query(
        &mut self,
        query: &ClientMessage<'_>,
        requestor: &Ipv6Addr,
        bulk: bool,
        now: u64,
    ) -> Option<Vec<Vec<u8>>> {
        // RFC 5007 section 4.3.1: the requestor identifies itself; a Server ID must be ours.
        let requestor_id = query.options.client_id()?;
        if query.options.server_id().is_some_and(|d| d.as_bytes() != self.duid.as_slice()) {
            return None;
        }
        let found = if !self.leasequery.allows(requestor) {
            Found::Refused(
                Status::NOT_ALLOWED,
                "Leasequery not allowed from this address",
                LeasequeryOutcome::NotAllowed,
            )
        } else {
            match query.options.iter().find_map(|o| match o {
                DhcpOption::LqQuery(q) => Some(q),
                _ => None,
            }) {
                Some(q) => self.find(q, bulk),
                None => Found::Refused(Status::MALFORMED_QUERY, "No OPTION_LQ_QUERY", LeasequeryOutcome::Malformed),
            }
        };
        let server_id = Duid::new(&self.duid).ok()?;
        let header = |msg_type: MessageType, options: Options<'_>| {
            let head = [DhcpOption::ServerId(server_id), DhcpOption::ClientId(requestor_id)];
            let options = head.into_iter().chain(options.0).collect();
            Message::Client(ClientMessage { msg_type, transaction_id: query.transaction_id, options }).to_vec().ok()
        };
        let mut out = Vec::new();
        match found {
            Found::Refused(status, text, outcome) => {
                self.stats.leasequery.bump(outcome);
                let status = DhcpOption::StatusCode(StatusCode { status, message: text.as_bytes() });
                out.push(header(MessageType::LeasequeryReply, Options(vec![status]))?);
            }
            Found::Links(links) => {
                self.stats.leasequery.bump(LeasequeryOutcome::Answered);
                out.push(header(MessageType::LeasequeryReply, Options(vec![DhcpOption::LqClientLink(links)]))?);
            }
            Found::Bindings(clients) => {
                self.stats.leasequery.bump(LeasequeryOutcome::Answered);
                let mut clients = clients.iter();
                let first = clients.next().map(|c| self.client_data(c, now));
                out.push(header(MessageType::LeasequeryReply, first.into_iter().flatten().collect())?);
                for c in clients {
                    out.push(header(MessageType::LeasequeryData, self.client_data(c, now).into_iter().collect())?);
                }
            }
        }
        if bulk {
            out.push(header(MessageType::LeasequeryDone, Options::new())?);
        }
        Some(out)
    }

    /// The bindings `q` asks for. By address and client ID over both transports; by relay ID,
    /// link-address and remote ID in bulk only.
    fn find(&self, q: &LqQuery<'_>, bulk: bool) -> Found {
        let malformed = |what| Found::Refused(Status::MALFORMED_QUERY, what, LeasequeryOutcome::Malformed);
        // A link-address names a link: one subnet's prefix holds it (RFC 5007 section 4.3.2).
        let link = if q.link_address.is_unspecified() {
            None
        } else {
            match self.config.subnets.iter().position(|s| s.prefix.contains(&q.link_address)) {
                Some(s) => Some(s),
                None => {
                    return Found::Refused(
                        Status::NOT_CONFIGURED,
                        "No link of this server holds the link-address",
                        LeasequeryOutcome::NotConfigured,
                    )
                }
            }
        };
        let on_link = |l: &Lease| link.is_none_or(|s| l.subnet == s);
        let leases: Vec<Lease> = match q.query_type {
            QueryType::BY_ADDRESS => {
                let Some(address) = q.options.iter().find_map(|o| match o {
                    DhcpOption::IaAddr(a) => Some(a.address),
                    _ => None,
                }) else {
                    return malformed("QUERY_BY_ADDRESS without an IAADDR");
                };
                // The lease of the address, or of the delegated prefix holding it.
                let holder = (0..=128u8).rev().find_map(|len| {
                    let net = Ipv6Net::new(address, len).ok()?.trunc();
                    self.table.get(&net).filter(|l| len == 128 || l.ia_type == IaType::Pd)
                });
                let Some(lease) = holder.filter(|l| l.state == LeaseState::Bound && on_link(l)) else {
                    return Found::Bindings(vec![]);
                };
                // The whole binding: every bound lease of that client.
                self.bound().filter(|l| l.duid == lease.duid && on_link(l)).collect()
            }
            QueryType::BY_CLIENT_ID => {
                let Some(client) = q.options.client_id() else {
                    return malformed("QUERY_BY_CLIENTID without a Client Identifier");
                };
                let leases: Vec<Lease> = self.bound().filter(|l| l.duid == client.as_bytes() && on_link(l)).collect();
                let mut subnets: Vec<usize> = leases.iter().map(|l| l.subnet).collect();
                subnets.sort_unstable();
                subnets.dedup();
                if link.is_none() && subnets.len() > 1 {
                    let links = subnets.iter().filter_map(|s| self.config.subnets.get(*s)).map(|s| s.prefix.network());
                    return Found::Links(links.collect());
                }
                leases
            }
            QueryType::BY_RELAY_ID if bulk => {
                let Some(id) = q.options.relay_id() else {
                    return malformed("QUERY_BY_RELAY_ID without a Relay-ID");
                };
                self.bound().filter(|l| on_link(l) && l.relay.as_ref().is_some_and(|r| r.has_relay_id(&id))).collect()
            }
            QueryType::BY_LINK_ADDRESS if bulk => {
                if link.is_none() {
                    return malformed("QUERY_BY_LINK_ADDRESS without a link-address");
                }
                self.bound().filter(on_link).collect()
            }
            QueryType::BY_REMOTE_ID if bulk => {
                let Some(id) = q.options.iter().find_map(|o| match o {
                    DhcpOption::RemoteId(r) => Some(r),
                    _ => None,
                }) else {
                    return malformed("QUERY_BY_REMOTE_ID without a Remote-ID");
                };
                self.bound().filter(|l| on_link(l) && l.relay.as_ref().is_some_and(|r| r.has_remote_id(id))).collect()
            }
            _ => {
                return Found::Refused(
                    Status::UNKNOWN_QUERY_TYPE,
                    if bulk { "Unknown query type" } else { "Bulk query types only over TCP" },
                    LeasequeryOutcome::UnknownQueryType,
                )
            }
        };
        // One binding per client, in the order of their DUIDs.
        let mut by_client: BTreeMap<Vec<u8>, Vec<Lease>> = BTreeMap::new();
        for l in leases {
            by_client.entry(l.duid.clone()).or_default().push(l);
        }
        Found::Bindings(by_client.into_values().collect())
    }

    /// Every bound lease (a query tells of no offer, expired or declined one).
    fn bound(&self) -> impl Iterator<Item = Lease> + '_ {
        self.table.iter().filter(|l| l.state == LeaseState::Bound)
    }

    /// OPTION_CLIENT_DATA for one client's leases: lifetimes as they stand at `now`, the time
    /// since its last transaction, and the relays of its last message.
    fn client_data<'a>(&self, leases: &'a [Lease], now: u64) -> Option<DhcpOption<'a>> {
        let first = leases.first()?;
        let mut options = Options::new();
        options.push(DhcpOption::ClientId(Duid::new(&first.duid).ok()?));
        let mut last = 0;
        for l in leases {
            let since = self.last_transaction(l, now);
            last = last.max(since);
            let left =
                |lifetime: u32| u32::try_from((since + u64::from(lifetime)).saturating_sub(now)).unwrap_or(u32::MAX);
            let (preferred_lifetime, valid_lifetime) = (left(l.preferred_lifetime), left(l.valid_lifetime));
            options.push(match l.ia_type {
                IaType::Na => DhcpOption::IaAddr(IaAddr {
                    address: l.address(),
                    preferred_lifetime,
                    valid_lifetime,
                    options: Options::new(),
                }),
                IaType::Pd => DhcpOption::IaPrefix(IaPrefix {
                    preferred_lifetime,
                    valid_lifetime,
                    prefix_len: l.resource.prefix_len(),
                    prefix: l.address(),
                    options: Options::new(),
                }),
            });
        }
        options.push(DhcpOption::CltTime(u32::try_from(now.saturating_sub(last)).unwrap_or(u32::MAX)));
        if let Some(relay) = leases.iter().find_map(|l| l.relay.as_ref()) {
            let message = Message::decode(&relay.message).ok()?;
            options.push(DhcpOption::LqRelayData(LqRelayData { peer_address: relay.peer, message: Box::new(message) }));
        }
        Some(DhcpOption::ClientData(options))
    }
}

#[cfg(test)]
mod tests;

/// A transaction ID and options for a LEASEQUERY, as the requestor side builds it.
pub fn query_message(
    transaction_id: TransactionId,
    requestor: Duid<'_>,
    query: LqQuery<'_>,
) -> Result<Vec<u8>, dhcp6_codec::EncodeError> {
    let options = Options(vec![DhcpOption::ClientId(requestor), DhcpOption::LqQuery(query)]);
    Message::Client(ClientMessage { msg_type: MessageType::Leasequery, transaction_id, options }).to_vec()
}
