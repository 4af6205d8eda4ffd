//! A relay and the server engine, both sans-IO: a client bound through one relay, then a
//! relay that knows nothing asks the server by bulk leasequery and holds the same entries.

use std::net::SocketAddrV6;

use super::*;
use crate::relay::{tests::config, RouteChange, UserEntry};
use crate::server::{
    config::PdPool,
    leasequery::Access,
    tests::{config as server_config, SERVER_DUID},
    Inbound, Server,
};
use dhcp6_codec::option::{IaNa, IaPd};

const NOW: u64 = 1_000_000;
const RELAY_DUID: &[u8] = &[0, 3, 0, 1, 2, 0, 0, 0, 0, 0xee];
const RELAY_ADDR: &str = "2001:db8:ff::9";
const CLIENT_LL: &str = "fe80::ff:fe00:c1";

fn server() -> Server {
    let mut config = server_config();
    // The relayed subnet (2001:db8:2::/64, the relay's link) answers at once and delegates.
    config.subnets[1].rapid_commit = true;
    config.subnets[1].pd_pools = vec![PdPool {
        name: "relayed-pd".into(),
        locked: false,
        prefix: "2001:db8:9000::/40".parse().unwrap(),
        delegated_length: 56,
        ranges: vec!["2001:db8:9000::/48".parse().unwrap()],
        excluded_prefix: None,
    }];
    let mut s = Server::new(config, SERVER_DUID.to_vec(), vec![]);
    s.set_leasequery_access(Access { allow: vec!["2001:db8:ff::/48".parse().unwrap()] });
    s
}

fn relay_with_id() -> Relay {
    let mut c = config();
    c.relay_id = Some(RELAY_DUID.to_vec());
    Relay::new(c)
}

/// A Solicit with Rapid Commit for IA_NA 1 and IA_PD 2 of client `n`.
fn solicit(n: u8) -> Vec<u8> {
    let duid: &'static [u8] = Box::leak(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, n].into_boxed_slice());
    Message::Client(ClientMessage {
        msg_type: MessageType::Solicit,
        transaction_id: TransactionId::from_u32(0x10 + u32::from(n)),
        options: Options(vec![
            DhcpOption::ClientId(Duid::new(duid).unwrap()),
            DhcpOption::RapidCommit,
            DhcpOption::IaNa(IaNa { iaid: 1, t1: 0, t2: 0, options: Options::new() }),
            DhcpOption::IaPd(IaPd { iaid: 2, t1: 0, t2: 0, options: Options::new() }),
        ]),
    })
    .to_vec()
    .unwrap()
}

/// Client `n`'s Solicit relayed by `relay` to `server` and the Reply relayed back.
fn exchange(relay: &mut Relay, server: &mut Server, n: u8) {
    let client = SocketAddrV6::new(CLIENT_LL.parse().unwrap(), 546, 0, 3);
    let forward = relay.from_client(0, &solicit(n), client, None, NOW).remove(0);
    let source = SocketAddrV6::new(RELAY_ADDR.parse().unwrap(), 547, 0, 0);
    let outcome = server.handle(&Inbound { payload: &forward.payload, source, interface: None, now: NOW });
    let reply = outcome.reply.expect("the server answers");
    let from = SocketAddrV6::new(*forward.destination.ip(), 547, 0, 0);
    relay.from_server(&reply.payload, from, NOW).expect("relayed down");
}

/// Every message of every query's answer, learnt by `relay`.
fn rebuild(relay: &mut Relay, server: &mut Server, by: RebuildBy) -> Learnt {
    let mut total = Learnt::default();
    let queries = relay.rebuild_queries(by, RELAY_DUID, 7).unwrap();
    assert_eq!(queries.len(), 2, "one per server of the group");
    // One server engine stands for both servers of the group.
    let requestor: Ipv6Addr = RELAY_ADDR.parse().unwrap();
    let answer = server.bulk_leasequery(&queries[0].1, &requestor, NOW + 5).unwrap();
    for message in answer {
        let l = relay.learn_bulk(&message, NOW + 5);
        total.entries += l.entries;
        total.unplaced += l.unplaced;
        total.status = total.status.or(l.status);
        total.done |= l.done;
    }
    total
}

/// An entry as the two relays should agree on it: all but the IAID and times.
fn placed(e: &UserEntry) -> (String, IaType, String, Ipv6Addr, Option<String>) {
    (e.duid.clone(), e.ia_type, e.interface.clone(), e.link_local, e.mac.clone())
}

#[test]
fn a_relay_that_knows_nothing_gets_the_entries_and_routes_back_by_relay_id() {
    let (mut first, mut server) = (relay_with_id(), server());
    exchange(&mut first, &mut server, 7);
    exchange(&mut first, &mut server, 8);
    let had = first.users();
    assert_eq!(had.len(), 4, "an address and a prefix each: {had:?}");

    let mut fresh = relay_with_id();
    let learnt = rebuild(&mut fresh, &mut server, RebuildBy::RelayId);
    assert_eq!((learnt.entries, learnt.unplaced, learnt.status, learnt.done), (4, 0, None, true));
    let got = fresh.users();
    assert_eq!(got.iter().map(placed).collect::<Vec<_>>(), had.iter().map(placed).collect::<Vec<_>>());
    assert_eq!(
        got.iter().map(|e| &e.resource).collect::<Vec<_>>(),
        had.iter().map(|e| &e.resource).collect::<Vec<_>>()
    );
    assert!(got.iter().all(|e| e.iaid == 0 && e.expires == NOW + 5 + u64::from(e.valid_lifetime)));
    let routes = fresh.take_route_changes();
    let prefixes: Vec<_> = had.iter().filter(|e| e.ia_type == IaType::Pd).map(|e| e.resource.clone()).collect();
    assert_eq!(routes.len(), 2);
    for r in routes {
        let RouteChange::Replace(intent) = r else { panic!("{r:?}") };
        assert!(prefixes.contains(&intent.prefix.to_string()));
        assert_eq!((intent.via, intent.access), (CLIENT_LL.parse().unwrap(), 0));
    }
    // Journalled like any entry the relay learns.
    assert_eq!(fresh.take_user_changes().len(), 4);

    // The client's next Reply names its IAIDs: the rebuilt entries give way, none doubles.
    exchange(&mut fresh, &mut server, 7);
    let after = fresh.users();
    assert_eq!(after.len(), 4);
    let client7: Vec<u32> = after.iter().filter(|e| e.duid.ends_with("07")).map(|e| e.iaid).collect();
    assert_eq!(client7.len(), 2);
    assert!(client7.iter().all(|i| *i != 0), "{after:?}");
}

#[test]
fn by_link_address_finds_what_another_relay_carried_and_a_relay_id_is_needed_to_ask_by_it() {
    let (mut first, mut server) = (relay_with_id(), server());
    exchange(&mut first, &mut server, 7);
    // A replacement that sends no Relay-ID asks by its access entries' link-address.
    let mut fresh = Relay::new(config());
    assert_eq!(fresh.rebuild_queries(RebuildBy::RelayId, RELAY_DUID, 1), Err(RebuildError::NoRelayId));
    let learnt = rebuild(&mut fresh, &mut server, RebuildBy::LinkAddress);
    assert_eq!((learnt.entries, learnt.done), (2, true));
    assert_eq!(fresh.user_count(), 2);
}

#[test]
fn a_server_that_refuses_is_reported_and_nothing_is_taken() {
    let (mut first, mut server) = (relay_with_id(), server());
    exchange(&mut first, &mut server, 7);
    server.set_leasequery_access(Access::default());
    let mut fresh = relay_with_id();
    let learnt = rebuild(&mut fresh, &mut server, RebuildBy::RelayId);
    assert_eq!((learnt.entries, learnt.status, learnt.done), (0, Some(Status::NOT_ALLOWED), true));
    assert_eq!(fresh.user_count(), 0);
    // Bytes that are no answer are ignored.
    assert_eq!(fresh.learn_bulk(&[1, 2, 3], NOW), Learnt::default());
}
