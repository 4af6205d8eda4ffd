//! Relay engine tests: encapsulation, unwrapping, membership, failover, groups that send to
//! all their servers, user entries.

use super::*;
use dhcp6_codec::{
    option::{IaAddr, IaNa},
    ClientMessage, Duid, TransactionId,
};

pub(crate) fn config() -> RelayConfig {
    RelayConfig {
        interfaces: vec![AccessInterface {
            name: "eth0".into(),
            vlans: Vlans::NONE,
            link_address: "2001:db8:2::1".parse().unwrap(),
            group: 0,
            interface_id: b"eth0".to_vec(),
            remote_id: Some((2011, "{interface}:{mac}".into())),
            client_link_layer_address: true,
        }],
        groups: vec![ServerGroup {
            name: "core".into(),
            servers: vec![
                GroupMember::new("2001:db8:ff::1".parse().unwrap()),
                GroupMember::new("2001:db8:ff::2".parse().unwrap()),
            ],
            send_to: SendTo::One,
            dead_after: 3,
            answer_timeout: 2,
            retry_after: 30,
        }],
        route_protocol: 200,
        route_metric: 1024,
        route_hold: 60,
        hop_count_limit: DEFAULT_HOP_COUNT_LIMIT,
        standby: Default::default(),
        relay_id: None,
    }
}

const CLIENT_LL: &str = "fe80::ff:fe00:c1";

/// The one Relay-Forward of a message relayed to a group that sends to one server.
pub(crate) fn only(mut out: Vec<RelayOut>) -> RelayOut {
    assert_eq!(out.len(), 1, "{out:?}");
    out.remove(0)
}

pub(crate) fn client_msg(t: MessageType, n: u8, xid: u32, addr: Option<&str>) -> Vec<u8> {
    let duid: &'static [u8] = Box::leak(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, n].into_boxed_slice());
    let ia_opts = addr
        .map(|a| {
            vec![DhcpOption::IaAddr(IaAddr {
                address: a.parse().unwrap(),
                preferred_lifetime: 100,
                valid_lifetime: 200,
                options: Options::new(),
            })]
        })
        .unwrap_or_default();
    Message::Client(ClientMessage {
        msg_type: t,
        transaction_id: TransactionId::from_u32(xid),
        options: Options(vec![
            DhcpOption::ClientId(Duid::new(duid).unwrap()),
            DhcpOption::IaNa(IaNa { iaid: 1, t1: 0, t2: 0, options: Options(ia_opts) }),
        ]),
    })
    .to_vec()
    .unwrap()
}

fn from(addr: &str, port: u16) -> SocketAddrV6 {
    SocketAddrV6::new(addr.parse().unwrap(), port, 0, 3)
}

/// The server's Relay-Reply for a forwarded message, carrying `inner`.
fn relay_reply(forward: &[u8], inner: &[u8]) -> Vec<u8> {
    let Message::Relay(f) = Message::decode(forward).unwrap() else { panic!() };
    let id = f.options.iter().find_map(|o| match o {
        DhcpOption::InterfaceId(id) => Some(&*Box::leak(id.to_vec().into_boxed_slice())),
        _ => None,
    });
    relay_reply_with_interface_id(forward, inner, id)
}

#[test]
fn a_client_message_is_wrapped_with_interface_id_remote_id_and_link_layer_address() {
    let mut relay = Relay::new(config());
    let out =
        only(relay.from_client(0, &client_msg(MessageType::Solicit, 1, 7, None), from(CLIENT_LL, 546), None, 100));
    assert_eq!(out.destination.port(), 547);
    let Message::Relay(f) = Message::decode(&out.payload).unwrap() else { panic!("not a relay message") };
    assert_eq!((f.msg_type, f.hop_count), (MessageType::RelayForw, 0));
    assert_eq!(f.link_address.to_string(), "2001:db8:2::1");
    assert_eq!(f.peer_address.to_string(), CLIENT_LL);
    assert!(f.options.iter().any(|o| *o == DhcpOption::InterfaceId(b"eth0")));
    assert!(f.options.iter().any(|o| matches!(o, DhcpOption::RemoteId(r) if r.enterprise_number == 2011 && r.remote_id == b"eth0:02:00:00:00:00:c1")));
    assert!(f
        .options
        .iter()
        .any(|o| matches!(o, DhcpOption::ClientLinkLayerAddr(l) if l.address == [2, 0, 0, 0, 0, 0xc1])));
    assert_eq!(f.options.relay_message().unwrap().msg_type(), MessageType::Solicit);
}

#[test]
fn a_downstream_relay_forward_is_wrapped_once_more() {
    let mut relay = Relay::new(config());
    let first =
        only(relay.from_client(0, &client_msg(MessageType::Solicit, 1, 7, None), from(CLIENT_LL, 546), None, 100));
    let second = only(relay.from_client(0, &first.payload, from("2001:db8:2::9", 547), None, 100));
    let Message::Relay(f) = Message::decode(&second.payload).unwrap() else { panic!() };
    assert_eq!(f.hop_count, 1);
    assert!(
        !f.options.contains(dhcp6_codec::option_code::CLIENT_LINKLAYER_ADDR),
        "only the first relay knows the client's MAC"
    );
    assert_eq!(relay.from_client(0, &client_msg(MessageType::Reply, 1, 7, None), from(CLIENT_LL, 546), None, 100), []);
}

#[test]
fn replies_come_down_only_from_group_members_and_teach_user_entries() {
    let mut relay = Relay::new(config());
    let fwd =
        only(relay.from_client(0, &client_msg(MessageType::Request, 1, 9, None), from(CLIENT_LL, 546), None, 100));
    let reply = relay_reply(&fwd.payload, &client_msg(MessageType::Reply, 1, 9, Some("2001:db8:2::100")));
    assert_eq!(relay.from_server(&reply, from("2001:db8:ff::66", 547), 100), None);
    assert_eq!(relay.stats().dropped[RelayDrop::NotAGroupMember], 1);
    let server = *fwd.destination.ip();
    let down = relay.from_server(&reply, SocketAddrV6::new(server, 547, 0, 0), 100).unwrap();
    assert_eq!(down.destination, SocketAddrV6::new(CLIENT_LL.parse().unwrap(), 546, 0, 0));
    assert_eq!(down.interface, Some(0));
    assert_eq!(Message::decode(&down.payload).unwrap().msg_type(), MessageType::Reply);
    let users = relay.users();
    assert_eq!(users.len(), 1);
    assert_eq!(
        (users[0].resource.as_str(), users[0].expires, users[0].interface.as_str()),
        ("2001:db8:2::100/128", 300, "eth0")
    );
    assert_eq!(users[0].mac.as_deref(), Some("02:00:00:00:00:c1"));

    // A Release answered removes the entry.
    let rel = only(relay.from_client(
        0,
        &client_msg(MessageType::Release, 1, 10, Some("2001:db8:2::100")),
        from(CLIENT_LL, 546),
        None,
        110,
    ));
    let ack = relay_reply(&rel.payload, &client_msg(MessageType::Reply, 1, 10, None));
    relay.from_server(&ack, SocketAddrV6::new(*rel.destination.ip(), 547, 0, 0), 110).unwrap();
    assert!(relay.users().is_empty());
}

#[test]
fn a_silent_server_is_marked_down_and_its_clients_go_to_the_next() {
    let mut relay = Relay::new(config());
    let first =
        only(relay.from_client(0, &client_msg(MessageType::Solicit, 1, 1, None), from(CLIENT_LL, 546), None, 100));
    let server = *first.destination.ip();
    for xid in 2..4 {
        let again = only(relay.from_client(
            0,
            &client_msg(MessageType::Solicit, 1, xid, None),
            from(CLIENT_LL, 546),
            None,
            100,
        ));
        assert_eq!(*again.destination.ip(), server, "a client sticks to its server");
    }
    relay.tick(101);
    assert!(relay.servers(101).iter().all(|s| s.state == Liveness::Up), "not yet past the answer timeout");
    relay.tick(102);
    let states = relay.servers(102);
    let this = states.iter().find(|s| s.server == server).unwrap();
    assert_eq!((this.state, this.timed_out), (Liveness::Down, 3));
    let moved =
        only(relay.from_client(0, &client_msg(MessageType::Solicit, 1, 5, None), from(CLIENT_LL, 546), None, 103));
    assert_ne!(*moved.destination.ip(), server);
    // After retry_after it is tried again.
    let back =
        only(relay.from_client(0, &client_msg(MessageType::Solicit, 1, 6, None), from(CLIENT_LL, 546), None, 133));
    assert_eq!(*back.destination.ip(), server);
}

/// [`config`] with its group sending every message to both servers.
fn to_all() -> RelayConfig {
    let mut c = config();
    c.groups[0].send_to = SendTo::All;
    c
}

/// Each server's (state, sent, answered, timed out), in the group's order.
fn server_counts(relay: &Relay, now: u64) -> Vec<(Liveness, u64, u64, u64)> {
    relay.servers(now).iter().map(|s| (s.state, s.sent, s.answered, s.timed_out)).collect()
}

#[test]
fn a_group_sending_to_all_relays_each_message_to_every_server_alike() {
    let mut relay = Relay::new(to_all());
    let servers = ["2001:db8:ff::1", "2001:db8:ff::2"].map(|a| SocketAddrV6::new(a.parse().unwrap(), 547, 0, 0));
    for n in 1..=20 {
        let out = relay.from_client(0, &client_msg(MessageType::Solicit, n, 7, None), from(CLIENT_LL, 546), None, 100);
        let destinations: Vec<SocketAddrV6> = out.iter().map(|o| o.destination).collect();
        assert_eq!(destinations, servers, "client {n}: every server, in the group's order");
        assert!(out.iter().all(|o| o.payload == out[0].payload && o.interface.is_none()), "the same Relay-Forward");
        let Message::Relay(f) = Message::decode(&out[0].payload).unwrap() else { panic!("not a relay message") };
        assert_eq!((f.msg_type, f.hop_count), (MessageType::RelayForw, 0));
        assert!(f.options.iter().any(|o| *o == DhcpOption::InterfaceId(b"eth0")));
    }
    // A downstream relay's message goes to both as well, one hop more.
    let solicit = client_msg(MessageType::Solicit, 1, 8, None);
    let inner = relay.from_client(0, &solicit, from(CLIENT_LL, 546), None, 100).swap_remove(0);
    let nested = relay.from_client(0, &inner.payload, from("2001:db8:2::9", 547), None, 100);
    assert_eq!(nested.len(), 2);
    // Each server counts what it was sent; the relay counts each Relay-Forward.
    assert_eq!(server_counts(&relay, 100), vec![(Liveness::Up, 22, 0, 0); 2]);
    assert_eq!(relay.stats().forwarded, 44);
    assert_eq!(relay.from_client(0, &client_msg(MessageType::Reply, 1, 7, None), from(CLIENT_LL, 546), None, 100), []);
}

#[test]
fn in_a_group_sending_to_all_the_answer_of_either_server_reaches_the_client() {
    let mut relay = Relay::new(to_all());
    let out = relay.from_client(0, &client_msg(MessageType::Solicit, 1, 7, None), from(CLIENT_LL, 546), None, 100);
    let client = SocketAddrV6::new(CLIENT_LL.parse().unwrap(), 546, 0, 0);
    // Both servers advertise (a failover pair may): both Advertises go down.
    for (n, fwd) in out.iter().enumerate() {
        let advertise = relay_reply(&fwd.payload, &client_msg(MessageType::Advertise, 1, 7, Some("2001:db8:2::100")));
        let down = relay.from_server(&advertise, fwd.destination, 100).unwrap();
        assert_eq!((down.destination, down.interface), (client, Some(0)), "from server {n}");
        assert_eq!(Message::decode(&down.payload).unwrap().msg_type(), MessageType::Advertise);
    }
    // The client requests from the second; only it answers, and its Reply teaches the entry.
    let out = relay.from_client(0, &client_msg(MessageType::Request, 1, 9, None), from(CLIENT_LL, 546), None, 101);
    assert_eq!(out.len(), 2);
    let reply = relay_reply(&out[1].payload, &client_msg(MessageType::Reply, 1, 9, Some("2001:db8:2::100")));
    assert_eq!(relay.from_server(&reply, out[1].destination, 101).unwrap().destination, client);
    assert_eq!(relay.users().len(), 1);
    assert_eq!(relay.stats().replies_relayed, 3);
    assert_eq!(server_counts(&relay, 101), [(Liveness::Up, 2, 1, 0), (Liveness::Up, 2, 2, 0)]);

    // A Release goes to both, both answer: the entry goes, and the second answer changes nothing.
    let out = relay.from_client(
        0,
        &client_msg(MessageType::Release, 1, 10, Some("2001:db8:2::100")),
        from(CLIENT_LL, 546),
        None,
        110,
    );
    for fwd in &out {
        let ack = relay_reply(&fwd.payload, &client_msg(MessageType::Reply, 1, 10, None));
        assert!(relay.from_server(&ack, fwd.destination, 110).is_some());
        assert!(relay.users().is_empty());
    }
}

#[test]
fn a_group_sending_to_all_still_sends_to_a_server_marked_down() {
    let mut relay = Relay::new(to_all());
    let first = "2001:db8:ff::1".parse::<std::net::Ipv6Addr>().unwrap();
    // Only the second server answers: the first is marked down once dead_after (3) go unanswered.
    for xid in 1..=3 {
        let out =
            relay.from_client(0, &client_msg(MessageType::Solicit, 1, xid, None), from(CLIENT_LL, 546), None, 100);
        let answer = relay_reply(&out[1].payload, &client_msg(MessageType::Advertise, 1, xid, None));
        relay.from_server(&answer, out[1].destination, 100).unwrap();
    }
    relay.tick(102);
    assert_eq!(server_counts(&relay, 102), [(Liveness::Down, 3, 0, 3), (Liveness::Up, 3, 3, 0)]);
    // Down, it is sent to all the same (its partner cannot take its place), and shown so.
    let out = relay.from_client(0, &client_msg(MessageType::Solicit, 1, 4, None), from(CLIENT_LL, 546), None, 103);
    assert_eq!((out.len(), *out[0].destination.ip()), (2, first));
    assert_eq!(relay.stats().dropped[RelayDrop::NoServer], 0);
    // Its first answer brings it back up.
    let answer = relay_reply(&out[0].payload, &client_msg(MessageType::Advertise, 1, 4, None));
    relay.from_server(&answer, out[0].destination, 103).unwrap();
    assert_eq!(server_counts(&relay, 103)[0], (Liveness::Up, 4, 1, 3));
}

/// A Reply delegating 2001:db8:9000::/56 for `valid` seconds.
fn pd(valid: u32) -> Vec<u8> {
    let duid: &'static [u8] = &[0, 3, 0, 1, 2, 0, 0, 0, 0, 1];
    Message::Client(ClientMessage {
        msg_type: MessageType::Reply,
        transaction_id: TransactionId::from_u32(9),
        options: Options(vec![
            DhcpOption::ClientId(Duid::new(duid).unwrap()),
            DhcpOption::IaPd(dhcp6_codec::option::IaPd {
                iaid: 1,
                t1: 0,
                t2: 0,
                options: Options(vec![DhcpOption::IaPrefix(dhcp6_codec::option::IaPrefix {
                    preferred_lifetime: valid,
                    valid_lifetime: valid,
                    prefix_len: 56,
                    prefix: "2001:db8:9000::".parse().unwrap(),
                    options: Options::new(),
                })]),
            }),
        ]),
    })
    .to_vec()
    .unwrap()
}

#[test]
fn delegated_prefixes_get_routes_refreshed_by_every_reply_and_removed_at_the_end() {
    let mut relay = Relay::new(config());
    let route =
        PdRouteIntent { prefix: "2001:db8:9000::/56".parse().unwrap(), via: CLIENT_LL.parse().unwrap(), access: 0 };
    let fwd =
        only(relay.from_client(0, &client_msg(MessageType::Request, 1, 9, None), from(CLIENT_LL, 546), None, 100));
    let server = SocketAddrV6::new(*fwd.destination.ip(), 547, 0, 0);
    relay.from_server(&relay_reply(&fwd.payload, &pd(200)), server, 100).unwrap();
    assert_eq!(relay.take_route_changes(), vec![RouteChange::Replace(route)]);
    // A Renew's Reply refreshes it again.
    relay.from_server(&relay_reply(&fwd.payload, &pd(200)), server, 150).unwrap();
    assert_eq!(relay.take_route_changes(), vec![RouteChange::Replace(route)]);
    // Zero lifetimes remove it.
    relay.from_server(&relay_reply(&fwd.payload, &pd(0)), server, 160).unwrap();
    assert_eq!(relay.take_route_changes(), vec![RouteChange::Remove(route)]);
    // Expiry removes it too.
    relay.from_server(&relay_reply(&fwd.payload, &pd(20)), server, 170).unwrap();
    relay.take_route_changes();
    relay.tick(190);
    assert_eq!(relay.take_route_changes(), vec![RouteChange::Remove(route)]);
    // A route found at start is kept for the hold, then removed unless a Reply claims it.
    relay.adopt_route(route, 200);
    relay.tick(259);
    assert!(relay.take_route_changes().is_empty());
    relay.tick(260);
    assert_eq!(relay.take_route_changes(), vec![RouteChange::Remove(route)]);
}

#[test]
fn user_entries_kept_across_a_restart_come_back_with_their_routes() {
    let mut relay = Relay::new(config());
    let fwd =
        only(relay.from_client(0, &client_msg(MessageType::Request, 1, 9, None), from(CLIENT_LL, 546), None, 100));
    let server = SocketAddrV6::new(*fwd.destination.ip(), 547, 0, 0);
    relay.from_server(&relay_reply(&fwd.payload, &pd(200)), server, 100).unwrap();
    let na = client_msg(MessageType::Reply, 1, 9, Some("2001:db8:2::100"));
    relay.from_server(&relay_reply(&fwd.payload, &na), server, 100).unwrap();
    let changes = relay.take_user_changes();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes.iter().all(|c| matches!(c, UserChange::Put(_))));
    assert!(relay.take_user_changes().is_empty(), "said once");
    let saved = serde_json::to_vec(&relay.users()).unwrap();

    // A new relay adopts the route found in the kernel, then takes the entries back, with the
    // prefix's route, which it claims: the route is not removed when the hold ends.
    let mut next = Relay::new(config());
    let route =
        PdRouteIntent { prefix: "2001:db8:9000::/56".parse().unwrap(), via: CLIENT_LL.parse().unwrap(), access: 0 };
    next.adopt_route(route, 150);
    let entries: Vec<UserEntry> = serde_json::from_slice(&saved).unwrap();
    assert_eq!(next.restore_users(entries.clone(), 150), 2);
    assert_eq!(next.users(), relay.users());
    assert_eq!(next.take_route_changes(), vec![RouteChange::Replace(route)]);
    next.tick(150 + 60);
    assert!(next.take_route_changes().is_empty());
    // They still expire when their time comes, and the route goes with them.
    next.tick(300);
    assert_eq!(next.take_route_changes(), vec![RouteChange::Remove(route)]);
    assert!(next.users().is_empty());

    // Expired entries and entries of an interface no longer relayed are not taken.
    let mut late = Relay::new(config());
    assert_eq!(late.restore_users(entries.clone(), 300), 0);
    let mut moved = entries;
    moved.iter_mut().for_each(|e| e.interface = "eth9".into());
    assert_eq!(Relay::new(config()).restore_users(moved, 150), 0);
    // Unreadable types are refused when read, not guessed.
    let bad = String::from_utf8(saved).unwrap().replace("ia_pd", "ia_xx");
    assert!(serde_json::from_str::<Vec<UserEntry>>(&bad).is_err());
}

/// The server's Relay-Reply for a forwarded message, with `interface_id` in place of the one the
/// relay put in (`None`: no Interface-ID at all).
fn relay_reply_with_interface_id(forward: &[u8], inner: &[u8], interface_id: Option<&'static [u8]>) -> Vec<u8> {
    let Message::Relay(f) = Message::decode(forward).unwrap() else { panic!() };
    let inner = Message::decode(Box::leak(inner.to_vec().into_boxed_slice())).unwrap();
    let mut options = Options::new();
    if let Some(id) = interface_id {
        options.push(DhcpOption::InterfaceId(id));
    }
    options.push(DhcpOption::RelayMsg(Box::new(inner)));
    Message::Relay(RelayMessage {
        msg_type: MessageType::RelayRepl,
        hop_count: f.hop_count,
        link_address: f.link_address,
        peer_address: f.peer_address,
        options,
    })
    .to_vec()
    .unwrap()
}

#[test]
fn a_relay_reply_goes_out_of_the_interface_its_interface_id_names_and_no_other() {
    let mut relay = Relay::new(config());
    let fwd =
        only(relay.from_client(0, &client_msg(MessageType::Request, 1, 9, None), from(CLIENT_LL, 546), None, 100));
    let server = SocketAddrV6::new(*fwd.destination.ip(), 547, 0, 0);
    let inner = client_msg(MessageType::Reply, 1, 9, Some("2001:db8:2::100"));
    // An Interface-ID naming no access interface, and the link-address of one: dropped.
    let unknown = relay_reply_with_interface_id(&fwd.payload, &inner, Some(b"eth9"));
    assert_eq!(relay.from_server(&unknown, server, 100), None);
    assert_eq!(relay.stats().dropped[RelayDrop::UnknownInterface], 1);
    assert_eq!(relay.stats().replies_relayed, 0);
    // Garbage from the server is no answer either.
    assert_eq!(relay.from_server(b"\x0d\x00", server, 100), None);
    assert_eq!(relay.servers(100).iter().map(|s| s.answered).sum::<u64>(), 0, "nothing dropped counts as answered");
    // Without an Interface-ID, the link-address names the interface.
    let by_link = relay_reply_with_interface_id(&fwd.payload, &inner, None);
    assert_eq!(relay.from_server(&by_link, server, 100).unwrap().interface, Some(0));
    // With the right one.
    let named = relay_reply_with_interface_id(&fwd.payload, &inner, Some(b"eth0"));
    assert_eq!(relay.from_server(&named, server, 100).unwrap().interface, Some(0));
    assert_eq!(relay.servers(100).iter().map(|s| s.answered).sum::<u64>(), 2);
}

/// A Relay-Forward from a downstream relay, `hop_count` relays away, around a client's Solicit.
fn forward_at(hop_count: u8) -> Vec<u8> {
    let inner = client_msg(MessageType::Solicit, 1, 7, None);
    let inner = Message::decode(Box::leak(inner.into_boxed_slice())).unwrap();
    Message::Relay(RelayMessage {
        msg_type: MessageType::RelayForw,
        hop_count,
        link_address: "2001:db8:3::1".parse().unwrap(),
        peer_address: CLIENT_LL.parse().unwrap(),
        options: Options(vec![DhcpOption::RelayMsg(Box::new(inner))]),
    })
    .to_vec()
    .unwrap()
}

#[test]
fn relay_forwards_at_the_hop_count_limit_are_discarded_and_those_below_it_relayed() {
    let mut relay = Relay::new(config());
    let below = DEFAULT_HOP_COUNT_LIMIT - 1;
    let out = only(relay.from_client(0, &forward_at(below), from("2001:db8:2::9", 547), None, 100));
    let Message::Relay(f) = Message::decode(&out.payload).unwrap() else { panic!() };
    assert_eq!(f.hop_count, DEFAULT_HOP_COUNT_LIMIT, "RFC 9915 section 19.1.2: one more than received");
    assert_eq!(relay.from_client(0, &forward_at(DEFAULT_HOP_COUNT_LIMIT), from("2001:db8:2::9", 547), None, 100), []);
    assert_eq!(relay.stats().dropped[RelayDrop::HopLimit], 1);

    let mut far = config();
    far.hop_count_limit = 32;
    let mut relay = Relay::new(far);
    assert!(!relay.from_client(0, &forward_at(31), from("2001:db8:2::9", 547), None, 100).is_empty(), "31 < 32");
    assert_eq!(relay.from_client(0, &forward_at(32), from("2001:db8:2::9", 547), None, 100), []);
}

#[test]
fn revived_groups_take_every_server_for_up_again_and_keep_their_counters() {
    let mut relay = Relay::new(config());
    let first =
        only(relay.from_client(0, &client_msg(MessageType::Solicit, 1, 1, None), from(CLIENT_LL, 546), None, 100));
    let server = *first.destination.ip();
    for xid in 2..4 {
        relay.from_client(0, &client_msg(MessageType::Solicit, 1, xid, None), from(CLIENT_LL, 546), None, 100);
    }
    relay.tick(102);
    let down = |relay: &Relay| relay.servers(103).into_iter().find(|s| s.server == server).unwrap();
    assert_eq!(down(&relay).state, Liveness::Down);
    // A standby switchover: this relay relays for access entry 0 again.
    relay.revive_groups(&[0]);
    let revived = down(&relay);
    assert_eq!((revived.state, revived.sent, revived.timed_out), (Liveness::Up, 3, 3));
    let again =
        only(relay.from_client(0, &client_msg(MessageType::Solicit, 1, 9, None), from(CLIENT_LL, 546), None, 104));
    assert_eq!(*again.destination.ip(), server, "the client is back on its own server");
    // An access entry that does not exist changes nothing.
    relay.revive_groups(&[99]);
}
