//! Leasequery in the engine: access control, each query type, the bulk sequence, and the
//! relays' data kept with leases.

use super::*;
use crate::server::tests::{bind, client_duid, ia_na, ia_pd, msg, server, server_id, NOW, SERVER_DUID};
use crate::server::LeaseChange;
use dhcp6_codec::option::RemoteId;
use std::net::SocketAddrV6;

const REQUESTOR: &[u8] = &[0, 3, 0, 1, 2, 0, 0, 0, 0, 0xaa];
const RELAY_DUID: &[u8] = &[0, 3, 0, 1, 2, 0, 0, 0, 0, 0xee];

fn requestor_addr() -> Ipv6Addr {
    "2001:db8:ff::9".parse().unwrap()
}

fn allowed_server() -> Server {
    let mut s = server();
    s.set_leasequery_access(Access { allow: vec!["2001:db8:ff::/48".parse().unwrap()] });
    s
}

fn query(query_type: QueryType, link: &str, options: Vec<DhcpOption<'_>>) -> Vec<u8> {
    let q = LqQuery { query_type, link_address: link.parse().unwrap(), options: Options(options) };
    query_message(TransactionId::from_u32(0x77), Duid::new(REQUESTOR).unwrap(), q).unwrap()
}

fn udp(s: &mut Server, payload: &[u8], from: Ipv6Addr) -> Outcome {
    let source = SocketAddrV6::new(from, 40_000, 0, 0);
    s.handle(&Inbound { payload, source, interface: None, now: NOW + 10 })
}

fn status(m: &Message<'_>) -> Option<Status> {
    m.options().status().map(|s| s.status)
}

/// What a Client Data option told: (client DUID, addresses and prefixes with valid
/// lifetimes, CLT time, relay data peer).
type Told = (Vec<u8>, Vec<(String, u32)>, u32, Option<Ipv6Addr>);

fn client_data(m: &Message<'_>) -> Option<Told> {
    let data = m.options().iter().find_map(|o| match o {
        DhcpOption::ClientData(d) => Some(d),
        _ => None,
    })?;
    let mut out = (data.client_id()?.as_bytes().to_vec(), vec![], 0, None);
    for o in data.iter() {
        match o {
            DhcpOption::IaAddr(a) => out.1.push((a.address.to_string(), a.valid_lifetime)),
            DhcpOption::IaPrefix(p) => out.1.push((format!("{}/{}", p.prefix, p.prefix_len), p.valid_lifetime)),
            DhcpOption::CltTime(t) => out.2 = *t,
            DhcpOption::LqRelayData(r) => out.3 = Some(r.peer_address),
            _ => {}
        }
    }
    Some(out)
}

/// Binds client `n` through a relay with Interface-ID, Remote-ID and Relay-ID on the relayed
/// subnet (2001:db8:2::/64).
fn bind_relayed(s: &mut Server, n: u8) {
    for (t, extra) in [(MessageType::Solicit, vec![]), (MessageType::Request, vec![server_id()])] {
        let mut ias = vec![ia_na(1, &[])];
        ias.extend(extra);
        let inner = Message::decode(Box::leak(msg(t, n, ias).into_boxed_slice())).unwrap();
        let forward = Message::Relay(dhcp6_codec::RelayMessage {
            msg_type: MessageType::RelayForw,
            hop_count: 0,
            link_address: "2001:db8:2::1".parse().unwrap(),
            peer_address: "fe80::c1".parse().unwrap(),
            options: Options(vec![
                DhcpOption::InterfaceId(b"eth0"),
                DhcpOption::RemoteId(RemoteId { enterprise_number: 4874, remote_id: b"port-7" }),
                DhcpOption::RelayId(Duid::new(RELAY_DUID).unwrap()),
                DhcpOption::RelayMsg(Box::new(inner)),
            ]),
        });
        let payload = forward.to_vec().unwrap();
        let source = SocketAddrV6::new("2001:db8:ff::2".parse().unwrap(), 547, 0, 0);
        let out = s.handle(&Inbound { payload: &payload, source, interface: None, now: NOW });
        assert!(out.reply.is_some());
    }
}

#[test]
fn a_requestor_outside_the_allowed_prefixes_gets_not_allowed_and_is_counted() {
    let mut s = allowed_server();
    bind(&mut s, 1, vec![ia_na(1, &[])]);
    let q = query(
        QueryType::BY_CLIENT_ID,
        "::",
        vec![DhcpOption::ClientId(Duid::new(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 1]).unwrap())],
    );
    let out = udp(&mut s, &q, "2001:db8:1::5".parse().unwrap());
    let m = Message::decode(&out.reply.as_ref().unwrap().payload).unwrap();
    assert_eq!((m.msg_type(), status(&m)), (MessageType::LeasequeryReply, Some(Status::NOT_ALLOWED)));
    assert!(client_data(&m).is_none());
    assert_eq!(s.statistics().leasequery[LeasequeryOutcome::NotAllowed], 1);
    // With no prefixes configured, nobody may ask.
    let mut closed = server();
    let out = udp(&mut closed, &q, requestor_addr());
    assert_eq!(status(&Message::decode(&out.reply.unwrap().payload).unwrap()), Some(Status::NOT_ALLOWED));
}

#[test]
fn by_address_and_by_client_id_find_the_whole_binding_with_lifetimes_left() {
    let mut s = allowed_server();
    let got = bind(&mut s, 1, vec![ia_na(1, &[]), ia_pd(2, &[])]);
    let address = got[0].0.clone();
    let by_address = query(
        QueryType::BY_ADDRESS,
        "::",
        vec![DhcpOption::IaAddr(IaAddr {
            address: address.parse().unwrap(),
            preferred_lifetime: 0,
            valid_lifetime: 0,
            options: Options::new(),
        })],
    );
    let out = udp(&mut s, &by_address, requestor_addr());
    let sent = out.reply.as_ref().unwrap();
    assert_eq!(sent.destination, SocketAddrV6::new(requestor_addr(), 40_000, 0, 0));
    let m = Message::decode(&sent.payload).unwrap();
    let Message::Client(c) = &m else { panic!("not a client message") };
    assert_eq!((c.msg_type, c.transaction_id.as_u32()), (MessageType::LeasequeryReply, 0x77));
    assert_eq!(c.options.server_id().unwrap().as_bytes(), SERVER_DUID);
    assert_eq!(c.options.client_id().unwrap().as_bytes(), REQUESTOR);
    let (duid, resources, clt, relay) = client_data(&m).unwrap();
    assert_eq!(duid, client_duid(1));
    // Bound at NOW for 200 s, asked 10 s later.
    assert_eq!(resources, vec![(address.clone(), 190), (got[1].0.clone(), 190)]);
    assert_eq!((clt, relay), (10, None));

    // The address inside the delegated prefix finds the same binding.
    let in_prefix: Ipv6Addr = got[1].0.split('/').next().unwrap().parse().unwrap();
    let q = query(
        QueryType::BY_ADDRESS,
        "::",
        vec![DhcpOption::IaAddr(IaAddr {
            address: in_prefix,
            preferred_lifetime: 0,
            valid_lifetime: 0,
            options: Options::new(),
        })],
    );
    let m2 = udp(&mut s, &q, requestor_addr()).reply.unwrap().payload;
    assert_eq!(client_data(&Message::decode(&m2).unwrap()).unwrap().0, client_duid(1));

    let by_id = query(QueryType::BY_CLIENT_ID, "::", vec![DhcpOption::ClientId(Duid::new(&client_duid(1)).unwrap())]);
    let m = udp(&mut s, &by_id, requestor_addr()).reply.unwrap().payload;
    assert_eq!(client_data(&Message::decode(&m).unwrap()).unwrap().1.len(), 2);

    // Unknown: a reply without client data. A link no subnet holds: NotConfigured.
    let unknown = query(QueryType::BY_CLIENT_ID, "::", vec![DhcpOption::ClientId(Duid::new(&client_duid(9)).unwrap())]);
    let m = udp(&mut s, &unknown, requestor_addr()).reply.unwrap().payload;
    let m = Message::decode(&m).unwrap();
    assert_eq!((status(&m), client_data(&m)), (None, None));
    let off = query(
        QueryType::BY_CLIENT_ID,
        "2001:db8:77::1",
        vec![DhcpOption::ClientId(Duid::new(&client_duid(1)).unwrap())],
    );
    let m = udp(&mut s, &off, requestor_addr()).reply.unwrap().payload;
    assert_eq!(status(&Message::decode(&m).unwrap()), Some(Status::NOT_CONFIGURED));
    assert_eq!(s.statistics().leasequery[LeasequeryOutcome::Answered], 4);
}

#[test]
fn malformed_unknown_and_bulk_only_queries_get_their_status_over_udp() {
    let mut s = allowed_server();
    let cases = [
        (query(QueryType::BY_ADDRESS, "::", vec![]), Status::MALFORMED_QUERY),
        (
            query(QueryType::BY_RELAY_ID, "::", vec![DhcpOption::RelayId(Duid::new(RELAY_DUID).unwrap())]),
            Status::UNKNOWN_QUERY_TYPE,
        ),
        (query(QueryType(99), "::", vec![]), Status::UNKNOWN_QUERY_TYPE),
    ];
    for (q, expected) in cases {
        let m = udp(&mut s, &q, requestor_addr()).reply.unwrap().payload;
        assert_eq!(status(&Message::decode(&m).unwrap()), Some(expected));
    }
    // No Client ID, or another server's ID: not answered.
    let other = Message::Client(ClientMessage {
        msg_type: MessageType::Leasequery,
        transaction_id: TransactionId::from_u32(1),
        options: Options(vec![
            DhcpOption::ClientId(Duid::new(REQUESTOR).unwrap()),
            DhcpOption::ServerId(Duid::new(REQUESTOR).unwrap()),
        ]),
    });
    assert!(udp(&mut s, &other.to_vec().unwrap(), requestor_addr()).reply.is_none());
}

#[test]
fn bulk_by_relay_id_link_and_remote_id_answer_reply_data_done_with_the_relay_data() {
    let mut s = allowed_server();
    bind_relayed(&mut s, 3);
    bind_relayed(&mut s, 4);
    bind(&mut s, 1, vec![ia_na(1, &[])]);
    let relay_id = DhcpOption::RelayId(Duid::new(RELAY_DUID).unwrap());
    let queries = [
        query(QueryType::BY_RELAY_ID, "::", vec![relay_id.clone()]),
        query(QueryType::BY_LINK_ADDRESS, "2001:db8:2::1", vec![]),
        query(
            QueryType::BY_REMOTE_ID,
            "::",
            vec![DhcpOption::RemoteId(RemoteId { enterprise_number: 4874, remote_id: b"port-7" })],
        ),
    ];
    for q in queries {
        let answer = s.bulk_leasequery(&q, &requestor_addr(), NOW).unwrap();
        let msgs: Vec<Message<'_>> = answer.iter().map(|m| Message::decode(m).unwrap()).collect();
        let types: Vec<MessageType> = msgs.iter().map(Message::msg_type).collect();
        assert_eq!(types, [MessageType::LeasequeryReply, MessageType::LeasequeryData, MessageType::LeasequeryDone]);
        let clients: Vec<Vec<u8>> = msgs[..2].iter().map(|m| client_data(m).unwrap().0).collect();
        assert_eq!(clients, [client_duid(3), client_duid(4)]);
        let (_, _, _, peer) = client_data(&msgs[0]).unwrap();
        assert_eq!(peer, Some("2001:db8:ff::2".parse().unwrap()));
        // The relay data is the Relay-Forward without the client's message.
        let data = msgs[0].options().iter().find_map(|o| match o {
            DhcpOption::ClientData(d) => d.iter().find_map(|o| match o {
                DhcpOption::LqRelayData(r) => Some(r.clone()),
                _ => None,
            }),
            _ => None,
        });
        let data = data.unwrap();
        assert!(data.message.options().relay_id().is_some());
        assert!(data.message.options().relay_message().is_none());
    }
    // Nothing found: the reply and DONE. Another relay's ID finds nothing.
    let other = query(QueryType::BY_RELAY_ID, "::", vec![DhcpOption::RelayId(Duid::new(REQUESTOR).unwrap())]);
    let answer = s.bulk_leasequery(&other, &requestor_addr(), NOW).unwrap();
    assert_eq!(answer.len(), 2);
    // Not a LEASEQUERY: the connection is closed.
    assert!(s.bulk_leasequery(&msg(MessageType::Solicit, 1, vec![]), &requestor_addr(), NOW).is_none());
    assert!(s.bulk_leasequery(&[1, 2], &requestor_addr(), NOW).is_none());
}

#[test]
fn the_relay_data_follows_the_client_and_survives_a_restore() {
    let mut s = allowed_server();
    bind_relayed(&mut s, 3);
    let lease = s.leases().into_iter().find(|l| l.duid == client_duid(3)).unwrap();
    let relay = lease.relay.clone().unwrap();
    assert_eq!(relay.peer, "2001:db8:ff::2".parse::<Ipv6Addr>().unwrap());
    assert!(relay.has_relay_id(&Duid::new(RELAY_DUID).unwrap()));
    assert_eq!(relay.innermost(|r| r.peer_address), Some("fe80::c1".parse().unwrap()));
    // What the store hands back at start is kept as it was.
    let restored = Server::new(crate::server::tests::config(), SERVER_DUID.to_vec(), vec![lease.clone()]);
    assert_eq!(restored.lease_of(&lease.resource).unwrap().relay, Some(relay));
    // The same client's lease written without relays (it came directly) clears them.
    let direct = Lease { relay: None, ..lease.clone() };
    s.restore(LeaseChange::Upsert(direct));
    assert_eq!(s.lease_of(&lease.resource).unwrap().relay, None);
}
