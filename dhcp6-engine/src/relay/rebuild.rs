//! A relay that lost its user entries (a restart without its snapshot, a new relay replacing
//! a failed one) gets them back from its servers by bulk leasequery (RFC 5460): it asks each
//! server of its groups for the bindings it relayed, by its Relay-ID or by the link-address of
//! each access entry, and takes each binding of the answers as if it had relayed the Reply
//! that made it: a user entry per address and prefix, a route per delegated prefix.
//!
//! Leasequery does not carry IAIDs (RFC 5007 section 4.1.2.2 lists the addresses and
//! prefixes alone), so an entry rebuilt this way has IAID 0 until the client's next Reply
//! replaces it with the real one.

use std::net::Ipv6Addr;

use dhcp6_codec::{
    option::{DhcpOption, LqQuery, Options, QueryType, Status},
    ClientMessage, Duid, Message, MessageType, TransactionId,
};
use ipnet::Ipv6Net;

use super::{eui64_mac, Relay, User, UserChange};
use crate::server::IaType;

/// What a relay asks its servers by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RebuildBy {
    /// QUERY_BY_RELAY_ID with the relay's Relay-ID: what went through this relay.
    RelayId,
    /// QUERY_BY_LINK_ADDRESS, once per access entry's link-address: what is on its links,
    /// whichever relay carried it (a relay replacing one that sent no Relay-ID).
    LinkAddress,
}

/// Why no query could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebuildError {
    #[error("a rebuild by relay ID needs a relay_id (the relay sends none)")]
    NoRelayId,
    #[error("the requestor's DUID is not a DUID")]
    BadDuid,
}

/// One message of a server's bulk answer, as the relay took it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learnt {
    /// User entries taken (addresses and prefixes).
    pub entries: usize,
    /// Bindings whose relay data names no access entry of this relay (or has none).
    pub unplaced: usize,
    /// The server's status, when it sent one other than Success (NotAllowed, ...).
    pub status: Option<Status>,
    /// LEASEQUERY-DONE: the answer is complete.
    pub done: bool,
}

impl Relay {
    /// The bulk queries a rebuild sends: (server, LEASEQUERY) for each server of each group,
    /// identified by `requestor` (the relay's DUID); transaction ids from `xid`.
    pub fn rebuild_queries(
        &self,
        by: RebuildBy,
        requestor: &[u8],
        xid: u32,
    ) -> Result<Vec<(Ipv6Addr, Vec<u8>)>, RebuildError> {
        let requestor = Duid::new(requestor).map_err(|_| RebuildError::BadDuid)?;
        let relay_id = match (by, &self.config.relay_id) {
            (RebuildBy::RelayId, None) => return Err(RebuildError::NoRelayId),
            (RebuildBy::RelayId, Some(id)) => Some(Duid::new(id).map_err(|_| RebuildError::NoRelayId)?),
            (RebuildBy::LinkAddress, _) => None,
        };
        let mut out = Vec::new();
        for (g, group) in self.config.groups.iter().enumerate() {
            // The links this group's clients are on (the relay's own, or each access entry's).
            let mut links: Vec<Ipv6Addr> = match relay_id {
                Some(_) => vec![Ipv6Addr::UNSPECIFIED],
                None => self.config.interfaces.iter().filter(|i| i.group == g).map(|i| i.link_address).collect(),
            };
            links.sort_unstable();
            links.dedup();
            for server in &group.servers {
                for link in &links {
                    let (query_type, options) = match relay_id {
                        Some(id) => (QueryType::BY_RELAY_ID, vec![DhcpOption::RelayId(id)]),
                        None => (QueryType::BY_LINK_ADDRESS, vec![]),
                    };
                    let query = LqQuery { query_type, link_address: *link, options: Options(options) };
                    let options = Options(vec![DhcpOption::ClientId(requestor), DhcpOption::LqQuery(query)]);
                    let transaction_id = TransactionId::from_u32(xid.wrapping_add(out.len() as u32));
                    let msg =
                        Message::Client(ClientMessage { msg_type: MessageType::Leasequery, transaction_id, options });
                    // Options of a few dozen bytes always encode.
                    if let Ok(bytes) = msg.to_vec() {
                        out.push((server.address, bytes));
                    }
                }
            }
        }
        Ok(out)
    }

    /// One message of a server's answer to a rebuild's query: each binding it holds becomes
    /// user entries (and routes), as a Reply relayed to that client would have made them.
    pub fn learn_bulk(&mut self, message: &[u8], now: u64) -> Learnt {
        let mut learnt = Learnt::default();
        let Ok(Message::Client(m)) = Message::decode(message) else { return learnt };
        match m.msg_type {
            MessageType::LeasequeryDone => learnt.done = true,
            MessageType::LeasequeryReply | MessageType::LeasequeryData => {}
            _ => return learnt,
        }
        learnt.status = m.options.status().map(|s| s.status).filter(|s| *s != Status::SUCCESS);
        for o in m.options.iter() {
            if let DhcpOption::ClientData(data) = o {
                match self.take_binding(data, now) {
                    Some(n) => learnt.entries += n,
                    None => learnt.unplaced += 1,
                }
            }
        }
        learnt
    }

    /// A binding's entries; None if its relay data names no access entry here.
    fn take_binding(&mut self, data: &Options<'_>, now: u64) -> Option<usize> {
        let duid: Box<[u8]> = data.client_id()?.as_bytes().into();
        let relay = data.iter().find_map(|o| match o {
            DhcpOption::LqRelayData(r) => Some(&*r.message),
            _ => None,
        })?;
        // The relay that put the client's message in: this relay, when it is the first hop.
        let ours = relay.innermost_relay()?;
        let access = match ours.options.iter().find_map(|o| match o {
            DhcpOption::InterfaceId(id) => Some(*id),
            _ => None,
        }) {
            Some(id) => self.by_interface_id.get(id).copied()?,
            None => self.config.interfaces.iter().position(|i| i.link_address == ours.link_address)?,
        };
        let access16 = u16::try_from(access).ok()?;
        let peer = ours.peer_address;
        let mac = ours
            .options
            .iter()
            .find_map(|o| match o {
                DhcpOption::ClientLinkLayerAddr(l) if l.link_layer_type == 1 => <[u8; 6]>::try_from(l.address).ok(),
                _ => None,
            })
            .or_else(|| eui64_mac(peer));
        let mut taken = 0;
        for o in data.iter() {
            let (ia_type, resource, preferred, valid) = match o {
                DhcpOption::IaAddr(a) => (IaType::Na, Ipv6Net::from(a.address), a.preferred_lifetime, a.valid_lifetime),
                DhcpOption::IaPrefix(p) => match Ipv6Net::new(p.prefix, p.prefix_len) {
                    Ok(n) => (IaType::Pd, n.trunc(), p.preferred_lifetime, p.valid_lifetime),
                    Err(_) => continue,
                },
                _ => continue,
            };
            if valid == 0 {
                continue;
            }
            if ia_type == IaType::Pd {
                self.adopted.remove(&resource);
                self.routes.push(super::RouteChange::Replace(super::PdRouteIntent {
                    prefix: resource,
                    via: peer,
                    access,
                }));
            }
            let key = (duid.clone(), 0, ia_type, resource);
            let user =
                User { preferred, valid, expires: now + u64::from(valid), access: access16, link_local: peer, mac };
            self.user_changes.push(UserChange::Put(self.user_entry(&key, &user)));
            self.users.insert(key, user);
            taken += 1;
        }
        Some(taken)
    }
}

#[cfg(test)]
mod tests;
