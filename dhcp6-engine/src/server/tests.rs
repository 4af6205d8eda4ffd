//! Engine tests: each rule of RFC 9915 and of the allocation policy, with messages built by the codec and
//! time passed in.

use super::*;
use crate::server::config::{AddressRange, Allocation, PdPool, Reservation};
use dhcp6_codec::TransactionId;

/// Two subnets: `eth1`'s with four addresses (one excluded), a prefix pool, a reservation, DNS
/// and a domain, preference 255 and Rapid Commit; and a relayed one.
pub(crate) fn config() -> ServerConfig {
    let lifetimes = Lifetimes { preferred: 100, valid: 200, t1: 50, t2: 80 };
    let net = |s: &str| s.parse::<Ipv6Net>().unwrap();
    let addr = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    let range = |low: &str, high: &str| AddressRange { low: u128::from(addr(low)), high: u128::from(addr(high)) };
    let eth1 = Subnet {
        id: 0,
        interface: Some("eth1".into()),
        prefix: net("2001:db8:1::/64"),
        allocation: Allocation::Iterative,
        ranges: vec![range("2001:db8:1::100", "2001:db8:1::103")],
        name: "eth1".into(),
        locked: false,
        // The Subnet-Router anycast address is always excluded.
        excluded: [addr("2001:db8:1::101"), addr("2001:db8:1::")].into_iter().collect(),
        pd_pools: vec![PdPool {
            name: "pd".into(),
            locked: false,
            prefix: net("2001:db8:8000::/40"),
            delegated_length: 56,
            ranges: vec![net("2001:db8:8000::/54")],
            excluded_prefix: None,
        }],
        lifetimes,
        grace_period: 50,
        dns_servers: vec![addr("2001:db8::53")],
        domain_search: vec![dhcp6_codec::DomainName::from_dotted("example.net").unwrap()],
        preference: Some(255),
        rapid_commit: true,
        client_limit: None,
        max_leases_per_binding: 1,
        reservations: vec![Reservation {
            duid: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 0x99],
            address: Some(addr("2001:db8:1::99")),
            prefix: Some(net("2001:db8:80ff:ff00::/56")),
        }],
    };
    let relayed = Subnet {
        id: 1,
        interface: None,
        prefix: net("2001:db8:2::/64"),
        allocation: Allocation::Iterative,
        ranges: vec![range("2001:db8:2:0:8000::", "2001:db8:2:0:ffff:ffff:ffff:ffff")],
        name: "relayed".into(),
        locked: false,
        excluded: [addr("2001:db8:2::")].into_iter().collect(),
        pd_pools: Vec::new(),
        lifetimes,
        grace_period: 3600,
        dns_servers: Vec::new(),
        domain_search: Vec::new(),
        preference: None,
        rapid_commit: false,
        client_limit: None,
        max_leases_per_binding: 1,
        reservations: Vec::new(),
    };
    ServerConfig {
        offer_lifetime: 30,
        decline_probation: 1000,
        renewal_horizon: None,
        max_ias_per_message: config::DEFAULT_MAX_IAS_PER_MESSAGE,
        max_leases_per_client: config::DEFAULT_MAX_LEASES_PER_CLIENT,
        subnets: vec![eth1, relayed],
    }
}

pub(crate) const SERVER_DUID: &[u8] = &[0, 1, 0, 1, 0x29, 0xb9, 0x27, 0, 2, 0, 0, 0, 0, 1];
pub(super) const NOW: u64 = 1_000_000;

pub(super) fn server() -> Server {
    Server::new(config(), SERVER_DUID.to_vec(), vec![])
}

pub(super) fn client_duid(n: u8) -> Vec<u8> {
    vec![0, 3, 0, 1, 2, 0, 0, 0, 0, n]
}

pub(super) fn ll(n: u8) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, u16::from(n))
}

/// A client message with `n`'s DUID, an ORO for DNS and domains, and `extra` options.
pub(super) fn msg(t: MessageType, n: u8, extra: Vec<DhcpOption<'static>>) -> Vec<u8> {
    let duid: &'static [u8] = Box::leak(client_duid(n).into_boxed_slice());
    let mut options = Options(vec![DhcpOption::ClientId(Duid::new(duid).unwrap()), DhcpOption::Oro(vec![23, 24])]);
    options.0.extend(extra);
    Message::Client(ClientMessage { msg_type: t, transaction_id: TransactionId::from_u32(0x1234), options })
        .to_vec()
        .unwrap()
}

pub(super) fn server_id() -> DhcpOption<'static> {
    DhcpOption::ServerId(Duid::new(SERVER_DUID).unwrap())
}

pub(super) fn ia_na(iaid: u32, addrs: &[&str]) -> DhcpOption<'static> {
    DhcpOption::IaNa(IaNa {
        iaid,
        t1: 0,
        t2: 0,
        options: addrs
            .iter()
            .map(|a| {
                DhcpOption::IaAddr(IaAddr {
                    address: a.parse().unwrap(),
                    preferred_lifetime: 0,
                    valid_lifetime: 0,
                    options: Options::new(),
                })
            })
            .collect(),
    })
}

pub(super) fn ia_pd(iaid: u32, prefixes: &[&str]) -> DhcpOption<'static> {
    DhcpOption::IaPd(IaPd {
        iaid,
        t1: 0,
        t2: 0,
        options: prefixes
            .iter()
            .map(|p| {
                let n: Ipv6Net = p.parse().unwrap();
                DhcpOption::IaPrefix(IaPrefix {
                    preferred_lifetime: 0,
                    valid_lifetime: 0,
                    prefix_len: n.prefix_len(),
                    prefix: n.network(),
                    options: Options::new(),
                })
            })
            .collect(),
    })
}

pub(super) fn send(s: &mut Server, payload: &[u8], n: u8, now: u64) -> Outcome {
    let source = SocketAddrV6::new(ll(n), 546, 0, 7);
    s.handle(&Inbound { payload, source, interface: Some("eth1"), now })
}

pub(super) fn reply(o: &Outcome) -> Message<'_> {
    Message::decode(&o.reply.as_ref().expect("a reply").payload).unwrap()
}

/// Addresses or prefixes in the reply's IAs, with valid lifetimes.
pub(super) fn granted(m: &Message<'_>) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for o in m.options().iter() {
        let inner = match o {
            DhcpOption::IaNa(ia) => &ia.options,
            DhcpOption::IaPd(ia) => &ia.options,
            _ => continue,
        };
        for i in inner.iter() {
            match i {
                DhcpOption::IaAddr(a) => out.push((a.address.to_string(), a.valid_lifetime)),
                DhcpOption::IaPrefix(p) => out.push((format!("{}/{}", p.prefix, p.prefix_len), p.valid_lifetime)),
                _ => {}
            }
        }
    }
    out
}

pub(super) fn ia_status(m: &Message<'_>) -> Vec<u16> {
    m.options()
        .iter()
        .filter_map(|o| match o {
            DhcpOption::IaNa(ia) => ia.options.status().map(|s| s.status.0),
            DhcpOption::IaPd(ia) => ia.options.status().map(|s| s.status.0),
            _ => None,
        })
        .collect()
}

/// Solicit then Request for client `n`; returns the granted resources.
pub(super) fn bind(s: &mut Server, n: u8, ias: Vec<DhcpOption<'static>>) -> Vec<(String, u32)> {
    let adv = send(s, &msg(MessageType::Solicit, n, ias.clone()), n, NOW);
    assert_eq!(reply(&adv).msg_type(), MessageType::Advertise);
    let mut req = ias;
    req.push(server_id());
    let out = send(s, &msg(MessageType::Request, n, req), n, NOW);
    assert_eq!(reply(&out).msg_type(), MessageType::Reply);
    assert!(!out.changes.is_empty());
    granted(&reply(&out))
}

#[test]
fn solicit_gets_advertise_with_preference_and_options_request_binds() {
    let mut s = server();
    let adv = send(&mut s, &msg(MessageType::Solicit, 1, vec![ia_na(1, &[])]), 1, NOW);
    assert!(adv.changes.is_empty(), "an Advertise reserves without the store");
    let m = reply(&adv);
    assert_eq!(m.msg_type(), MessageType::Advertise);
    assert!(m.options().iter().any(|o| *o == DhcpOption::Preference(255)));
    assert!(m.options().iter().any(|o| matches!(o, DhcpOption::DnsServers(d) if d[0].to_string() == "2001:db8::53")));
    assert!(m.options().iter().any(|o| matches!(o, DhcpOption::DomainList(d) if d[0].to_string() == "example.net.")));
    assert_eq!(m.options().server_id().unwrap().as_bytes(), SERVER_DUID);
    assert_eq!(granted(&m), vec![("2001:db8:1::100".into(), 200)]);
    let dest = adv.reply.unwrap().destination;
    assert_eq!((dest.port(), dest.scope_id()), (546, 7));

    let out = send(&mut s, &msg(MessageType::Request, 1, vec![ia_na(1, &[]), server_id()]), 1, NOW);
    assert_eq!(granted(&reply(&out)), vec![("2001:db8:1::100".into(), 200)]);
    match &out.changes[..] {
        [LeaseChange::Upsert(l)] => assert_eq!((l.state, l.expires), (LeaseState::Bound, NOW + 200)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rapid_commit_gives_a_reply_when_the_subnet_allows_it() {
    let mut s = server();
    let out = send(&mut s, &msg(MessageType::Solicit, 1, vec![ia_na(1, &[]), DhcpOption::RapidCommit]), 1, NOW);
    let m = reply(&out);
    assert_eq!(m.msg_type(), MessageType::Reply);
    assert!(m.options().contains(option_code::RAPID_COMMIT));
    assert_eq!(out.changes.len(), 1);

    let mut off = config();
    off.subnets[0].rapid_commit = false;
    let mut s = Server::new(off, SERVER_DUID.to_vec(), vec![]);
    let out = send(&mut s, &msg(MessageType::Solicit, 1, vec![ia_na(1, &[]), DhcpOption::RapidCommit]), 1, NOW);
    assert_eq!(reply(&out).msg_type(), MessageType::Advertise);
}

#[test]
fn validation_drops_what_rfc_9915_says_to_drop() {
    let mut s = server();
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (msg(MessageType::Solicit, 1, vec![ia_na(1, &[]), server_id()]), DropReason::UnexpectedServerId),
        (msg(MessageType::Rebind, 1, vec![ia_na(1, &[]), server_id()]), DropReason::UnexpectedServerId),
        (msg(MessageType::Request, 1, vec![ia_na(1, &[])]), DropReason::MissingServerId),
        (msg(MessageType::Renew, 1, vec![ia_na(1, &[])]), DropReason::MissingServerId),
        (msg(MessageType::Advertise, 1, vec![]), DropReason::NotForServer),
        (msg(MessageType::InformationRequest, 1, vec![ia_na(1, &[])]), DropReason::Invalid),
        (msg(MessageType::Confirm, 1, vec![ia_na(1, &[])]), DropReason::Invalid),
        (vec![1, 2, 3], DropReason::Malformed),
    ];
    for (payload, reason) in cases {
        let before = s.statistics().dropped(reason);
        assert!(send(&mut s, &payload, 1, NOW).reply.is_none(), "{reason:?}");
        assert_eq!(s.statistics().dropped(reason), before + 1, "{reason:?}");
    }
    let other = s.handle(&Inbound {
        payload: &msg(MessageType::Solicit, 1, vec![]),
        source: SocketAddrV6::new(ll(1), 546, 0, 7),
        interface: Some("eth9"),
        now: NOW,
    });
    assert!(other.reply.is_none());
    assert_eq!(s.statistics().dropped(DropReason::NoSubnet), 1);
}

#[test]
fn a_request_for_another_server_releases_our_offer_at_once() {
    let mut s = server();
    let adv = send(&mut s, &msg(MessageType::Solicit, 1, vec![ia_na(1, &[])]), 1, NOW);
    assert_eq!(granted(&reply(&adv))[0].0, "2001:db8:1::100");
    let other = DhcpOption::ServerId(Duid::new(&[0, 3, 0, 1, 9, 9, 9, 9, 9, 9]).unwrap());
    let out = send(&mut s, &msg(MessageType::Request, 1, vec![ia_na(1, &["2001:db8:1::100"]), other]), 1, NOW);
    assert!(out.reply.is_none());
    assert_eq!(s.statistics().dropped(DropReason::OtherServer), 1);
    // Client 2 asks for that very address and gets it: the offer was released.
    let adv = send(&mut s, &msg(MessageType::Solicit, 2, vec![ia_na(1, &["2001:db8:1::100"])]), 2, NOW);
    assert_eq!(granted(&reply(&adv))[0].0, "2001:db8:1::100");
}

#[test]
fn allocation_order_is_reservation_hint_previous_then_next_free() {
    let mut s = server();
    // 1. Reservation beats the hint.
    assert_eq!(bind(&mut s, 0x99, vec![ia_na(1, &["2001:db8:1::102"])]), vec![("2001:db8:1::99".into(), 200)]);
    // 2. The hint, when in a range and free.
    assert_eq!(bind(&mut s, 1, vec![ia_na(1, &["2001:db8:1::102"])]), vec![("2001:db8:1::102".into(), 200)]);
    // A hint outside the ranges, or excluded, is ignored: next free, skipping ::101 (excluded).
    assert_eq!(bind(&mut s, 2, vec![ia_na(1, &["2001:db8:1::101"])]), vec![("2001:db8:1::100".into(), 200)]);
    assert_eq!(bind(&mut s, 3, vec![ia_na(1, &["2001:db8:1::5"])]), vec![("2001:db8:1::103".into(), 200)]);
    // Full: NoAddrsAvail.
    let adv = send(&mut s, &msg(MessageType::Solicit, 4, vec![ia_na(1, &[])]), 4, NOW);
    assert_eq!(ia_status(&reply(&adv)), vec![Status::NO_ADDRS_AVAIL.0]);
    // 3. After a release, the client gets its previous address back before anything else.
    let rel = send(&mut s, &msg(MessageType::Release, 3, vec![ia_na(1, &["2001:db8:1::103"]), server_id()]), 3, NOW);
    assert!(reply(&rel).options().status().is_some_and(|st| st.status == Status::SUCCESS));
    assert_eq!(rel.changes, vec![LeaseChange::Remove("2001:db8:1::103/128".parse().unwrap())]);
    assert_eq!(bind(&mut s, 3, vec![ia_na(1, &[])]), vec![("2001:db8:1::103".into(), 200)]);
}

#[test]
fn renew_and_rebind_extend_unknown_is_nobinding_offlink_gets_zero_lifetimes() {
    let mut s = server();
    bind(&mut s, 1, vec![ia_na(1, &[])]);
    let later = NOW + 100;
    let out = send(&mut s, &msg(MessageType::Renew, 1, vec![ia_na(1, &["2001:db8:1::100"]), server_id()]), 1, later);
    assert_eq!(granted(&reply(&out)), vec![("2001:db8:1::100".into(), 200)]);
    assert!(matches!(&out.changes[..], [LeaseChange::Upsert(l)] if l.expires == later + 200));
    let out = send(&mut s, &msg(MessageType::Rebind, 1, vec![ia_na(1, &["2001:db8:1::100"])]), 1, later);
    assert_eq!(granted(&reply(&out)), vec![("2001:db8:1::100".into(), 200)]);
    let out = send(&mut s, &msg(MessageType::Renew, 2, vec![ia_na(7, &["2001:db8:1::103"]), server_id()]), 2, later);
    assert_eq!(ia_status(&reply(&out)), vec![Status::NO_BINDING.0]);
    let out = send(&mut s, &msg(MessageType::Rebind, 2, vec![ia_na(7, &["2001:db8:5::1"])]), 2, later);
    assert_eq!(granted(&reply(&out)), vec![("2001:db8:5::1".into(), 0)]);
}

#[test]
fn declined_addresses_are_conflicting_until_probation_ends() {
    let mut s = server();
    bind(&mut s, 1, vec![ia_na(1, &[])]);
    let out = send(&mut s, &msg(MessageType::Decline, 1, vec![ia_na(1, &["2001:db8:1::100"]), server_id()]), 1, NOW);
    assert!(reply(&out).options().status().is_some_and(|st| st.status == Status::SUCCESS));
    assert!(matches!(&out.changes[..], [LeaseChange::Upsert(l)] if l.state == LeaseState::Declined));
    let counts = &s.pool_counts()[0];
    assert_eq!((counts.conflicting, counts.unassignable), (1, 1));
    // Not offered again, to anyone, even when asked for by name.
    let adv = send(&mut s, &msg(MessageType::Solicit, 1, vec![ia_na(1, &["2001:db8:1::100"])]), 1, NOW);
    assert_eq!(granted(&reply(&adv))[0].0, "2001:db8:1::102");
    // After probation it is assignable again.
    let changes = s.expire(NOW + 1000);
    assert!(changes.contains(&LeaseChange::Remove("2001:db8:1::100/128".parse().unwrap())));
    assert_eq!(s.pool_counts()[0].conflicting, 0);
}

#[test]
fn expiry_keeps_a_lease_for_the_grace_period_then_frees_it() {
    let mut s = server();
    bind(&mut s, 1, vec![ia_na(1, &[])]);
    let changes = s.expire(NOW + 200);
    assert!(
        matches!(&changes[..], [LeaseChange::Upsert(l)] if l.state == LeaseState::Expired && l.expires == NOW + 250)
    );
    // In grace, the client gets the same address back.
    let out = send(&mut s, &msg(MessageType::Rebind, 1, vec![ia_na(1, &["2001:db8:1::100"])]), 1, NOW + 210);
    assert_eq!(granted(&reply(&out)), vec![("2001:db8:1::100".into(), 200)]);
    assert!(s.expire(NOW + 409).is_empty());
    // Bound until +410, then expired for the 50 s of grace, then back in the pool.
    let changes = s.expire(NOW + 410);
    assert!(matches!(&changes[..], [LeaseChange::Upsert(l)] if l.state == LeaseState::Expired));
    let changes = s.expire(NOW + 410 + 50);
    assert_eq!(changes, vec![LeaseChange::Remove("2001:db8:1::100/128".parse().unwrap())]);
    assert!(s.leases().is_empty());
}

#[test]
fn confirm_answers_for_the_whole_link_prefix() {
    let mut s = server();
    let ok = send(&mut s, &msg(MessageType::Confirm, 1, vec![ia_na(1, &["2001:db8:1::8000:1"])]), 1, NOW);
    assert_eq!(reply(&ok).options().status().unwrap().status, Status::SUCCESS);
    let bad = send(&mut s, &msg(MessageType::Confirm, 1, vec![ia_na(1, &["2001:db8:1::1", "2001:db8:9::1"])]), 1, NOW);
    assert_eq!(reply(&bad).options().status().unwrap().status, Status::NOT_ON_LINK);
}

#[test]
fn information_request_gets_options_only() {
    let mut s = server();
    let out = send(&mut s, &msg(MessageType::InformationRequest, 1, vec![]), 1, NOW);
    let m = reply(&out);
    assert_eq!(m.msg_type(), MessageType::Reply);
    assert!(m.options().contains(option_code::DNS_SERVERS) && m.options().contains(option_code::DOMAIN_LIST));
    assert!(granted(&m).is_empty() && out.changes.is_empty());
}

#[test]
fn prefixes_are_delegated_with_reservation_and_exhaustion() {
    let mut s = server();
    assert_eq!(
        bind(&mut s, 1, vec![ia_na(1, &[]), ia_pd(1, &[])]),
        vec![("2001:db8:1::100".into(), 200), ("2001:db8:8000::/56".into(), 200)]
    );
    assert_eq!(bind(&mut s, 0x99, vec![ia_pd(2, &[])]), vec![("2001:db8:80ff:ff00::/56".into(), 200)]);
    // The /54 range holds four /56s.
    for n in 2..5 {
        assert_eq!(bind(&mut s, n, vec![ia_pd(1, &[])]).len(), 1);
    }
    let adv = send(&mut s, &msg(MessageType::Solicit, 9, vec![ia_pd(1, &[])]), 9, NOW);
    assert_eq!(ia_status(&reply(&adv)), vec![Status::NO_PREFIX_AVAIL.0]);
}

#[test]
fn pool_counts_tally_each_pool_of_each_subnet_apart() {
    let mut s = server();
    bind(&mut s, 1, vec![ia_na(1, &[]), ia_pd(1, &[])]);
    bind(&mut s, 2, vec![ia_pd(1, &[])]);
    // An offer is in use too.
    send(&mut s, &msg(MessageType::Solicit, 3, vec![ia_na(1, &[])]), 3, NOW);
    let counts = s.pool_counts();
    let row = |pool: &str| counts.iter().find(|p| p.subnet == "2001:db8:1::/64" && p.pool == pool).unwrap();
    let addresses = row("addresses");
    assert_eq!((addresses.in_use, addresses.expired, addresses.conflicting), (2, 0, 0));
    // One address of the range is excluded.
    assert_eq!((addresses.total.as_str(), addresses.unassignable, addresses.assignable.as_str()), ("4", 1, "1"));
    let prefixes = row("2001:db8:8000::/40 as /56");
    assert_eq!((prefixes.in_use, prefixes.total.as_str(), prefixes.assignable.as_str()), (2, "4", "2"));
    let other = counts.iter().find(|p| p.subnet == "2001:db8:2::/64").unwrap();
    assert_eq!(other.in_use, 0);
    // Past the valid lifetime: expired, no longer in use.
    s.expire(NOW + 200);
    let counts = s.pool_counts();
    assert_eq!((counts[0].in_use, counts[0].expired), (0, 1), "{:?}", counts[0]);
}

#[test]
fn relayed_messages_use_the_innermost_link_and_come_back_through_every_relay() {
    let mut s = server();
    let inner =
        Message::decode(Box::leak(msg(MessageType::Solicit, 5, vec![ia_na(1, &[])]).into_boxed_slice())).unwrap();
    let first = Message::Relay(RelayMessage {
        msg_type: MessageType::RelayForw,
        hop_count: 0,
        link_address: "2001:db8:2::1".parse().unwrap(),
        peer_address: ll(5),
        options: Options(vec![DhcpOption::InterfaceId(b"eth0.100"), DhcpOption::RelayMsg(Box::new(inner))]),
    });
    let second = Message::Relay(RelayMessage {
        msg_type: MessageType::RelayForw,
        hop_count: 1,
        link_address: "2001:db8:1::1".parse().unwrap(),
        peer_address: "2001:db8:ff::2".parse().unwrap(),
        options: Options(vec![DhcpOption::InterfaceId(b"up0"), DhcpOption::RelayMsg(Box::new(first))]),
    });
    let payload = second.to_vec().unwrap();
    let source = SocketAddrV6::new("2001:db8:ff::2".parse().unwrap(), 547, 0, 0);
    let out = s.handle(&Inbound { payload: &payload, source, interface: Some("eth1"), now: NOW });
    let sent = out.reply.as_ref().unwrap();
    assert_eq!(sent.destination, source);
    let m = Message::decode(&sent.payload).unwrap();
    let Message::Relay(outer) = &m else { panic!("not a relay reply") };
    assert_eq!((outer.msg_type, outer.hop_count), (MessageType::RelayRepl, 1));
    assert!(outer.options.iter().any(|o| *o == DhcpOption::InterfaceId(b"up0")));
    let Some(Message::Relay(mid)) = outer.options.relay_message() else { panic!("no inner relay") };
    assert!(mid.options.iter().any(|o| *o == DhcpOption::InterfaceId(b"eth0.100")));
    assert_eq!(mid.peer_address, ll(5));
    let client = m.innermost();
    assert_eq!(client.msg_type(), MessageType::Advertise);
    // The innermost link-address (2001:db8:2::1) picks the second subnet's /65 range.
    let got = granted(client);
    assert!(got[0].0.starts_with("2001:db8:2:0:8"), "{got:?}");
}

#[test]
fn interface_identifier_allocation_uses_the_link_local_iid() {
    let mut config = config();
    config.subnets[0].allocation = Allocation::InterfaceIdentifier;
    let mut s = Server::new(config, SERVER_DUID.to_vec(), vec![]);
    assert_eq!(bind(&mut s, 0x42, vec![ia_na(1, &[])]), vec![("2001:db8:1::ff:fe00:42".into(), 200)]);
}

#[test]
fn client_limit_and_leases_are_restored_from_the_store() {
    let mut limited = config();
    limited.subnets[0].client_limit = Some(1);
    let mut s = Server::new(limited, SERVER_DUID.to_vec(), vec![]);
    bind(&mut s, 1, vec![ia_na(1, &[])]);
    let adv = send(&mut s, &msg(MessageType::Solicit, 2, vec![ia_na(1, &[])]), 2, NOW);
    assert_eq!(ia_status(&reply(&adv)), vec![Status::NO_ADDRS_AVAIL.0]);

    let leases: Vec<Lease> = s.leases();
    let mut restarted = Server::new(config(), SERVER_DUID.to_vec(), leases);
    let out = send(
        &mut restarted,
        &msg(MessageType::Renew, 1, vec![ia_na(1, &["2001:db8:1::100"]), server_id()]),
        1,
        NOW + 5,
    );
    assert_eq!(granted(&reply(&out)), vec![("2001:db8:1::100".into(), 200)]);
}

#[test]
fn a_refused_store_leaves_no_lease_behind() {
    let mut s = server();
    let out = send(&mut s, &msg(MessageType::Solicit, 1, vec![ia_na(1, &[]), DhcpOption::RapidCommit]), 1, NOW);
    s.store_failed(&out.changes);
    assert!(s.leases().is_empty());
    assert_eq!(s.statistics().dropped(DropReason::StoreFailed), 1);
}

#[test]
fn a_change_taken_elsewhere_is_undone_and_the_holder_learnt() {
    let mut s = server();
    let out = send(&mut s, &msg(MessageType::Solicit, 1, vec![ia_na(1, &[]), DhcpOption::RapidCommit]), 1, NOW);
    let LeaseChange::Upsert(ours) = out.changes[0].clone() else { panic!("no upsert") };
    let holder = Lease { duid: client_duid(9), iaid: 7, ..ours.clone() };
    s.taken_elsewhere(&out.changes[0], Some(holder.clone()), 1);
    assert_eq!(s.lease_of(&ours.resource), Some(holder.clone()));
    assert_eq!(s.statistics().dropped(DropReason::LeaseTakenElsewhere), 1);
    // The client asks again: it gets another address, never the one held elsewhere.
    let again = send(&mut s, &msg(MessageType::Solicit, 1, vec![ia_na(1, &[]), DhcpOption::RapidCommit]), 1, NOW);
    let LeaseChange::Upsert(other) = &again.changes[0] else { panic!("no upsert") };
    assert_ne!(other.resource, ours.resource);
    // The other server's lease goes: the address is free here again.
    s.learn(LeaseChange::Remove(holder.resource));
    assert_eq!(s.lease_of(&holder.resource), None);
}

#[test]
fn leases_past_max_per_binding_end_with_zero_lifetimes_on_renew() {
    let mut s = server();
    bind(&mut s, 1, vec![ia_na(1, &[])]);
    // A second address in the same IA, as an import or a merge would leave.
    let extra = Lease {
        resource: "2001:db8:1::102/128".parse().unwrap(),
        ia_type: IaType::Na,
        duid: client_duid(1),
        iaid: 1,
        subnet: 0,
        state: LeaseState::Bound,
        preferred_lifetime: 100,
        valid_lifetime: 200,
        expires: NOW + 200,
        interface: None,
        reconfigure_key: None,
        relay: None,
    };
    s.put(extra);
    let out = send(
        &mut s,
        &msg(MessageType::Renew, 1, vec![ia_na(1, &["2001:db8:1::100", "2001:db8:1::102"]), server_id()]),
        1,
        NOW + 10,
    );
    let mut got = granted(&reply(&out));
    got.sort();
    assert_eq!(got, vec![("2001:db8:1::100".into(), 200), ("2001:db8:1::102".into(), 0)]);
    assert!(out.changes.contains(&LeaseChange::Remove("2001:db8:1::102/128".parse().unwrap())));
}

#[test]
fn an_operator_clears_conflicting_addresses() {
    let mut s = server();
    bind(&mut s, 1, vec![ia_na(1, &[])]);
    send(&mut s, &msg(MessageType::Decline, 1, vec![ia_na(1, &["2001:db8:1::100"]), server_id()]), 1, NOW);
    assert!(s.clear_conflicting(Some("2001:db8:1::1".parse().unwrap())).is_empty());
    assert_eq!(s.clear_conflicting(None), vec![LeaseChange::Remove("2001:db8:1::100/128".parse().unwrap())]);
    assert_eq!(s.pool_counts()[0].conflicting, 0);
    let adv = send(&mut s, &msg(MessageType::Solicit, 2, vec![ia_na(1, &["2001:db8:1::100"])]), 2, NOW);
    assert_eq!(granted(&reply(&adv))[0].0, "2001:db8:1::100");
}

/// A strategy that gives the highest address of the range, whatever was asked.
#[derive(Debug)]
struct Highest;

impl allocation::Allocator for Highest {
    fn pick(&self, _ask: &allocation::Ask<'_>, r: &mut allocation::Resources<'_>) -> Option<Ipv6Net> {
        let high = r.subnet.ranges.first()?.high;
        Some(Ipv6Net::from(Ipv6Addr::from(high))).filter(|c| (r.free)(c))
    }
}

#[test]
fn a_strategy_plugged_in_picks_new_resources_and_current_leases_stay() {
    let mut s = server();
    assert!(s.set_allocator(0, Box::new(Highest)));
    assert!(!s.set_allocator(9, Box::new(Highest)), "no such subnet");
    assert_eq!(bind(&mut s, 1, vec![ia_na(1, &[])]), vec![("2001:db8:1::103".into(), 200)]);
    // The one address it gives is taken: the next client gets none.
    let adv = send(&mut s, &msg(MessageType::Solicit, 2, vec![ia_na(1, &[])]), 2, NOW);
    assert_eq!(ia_status(&reply(&adv)), vec![Status::NO_ADDRS_AVAIL.0]);
    // The first client renews what it holds.
    assert_eq!(bind(&mut s, 1, vec![ia_na(1, &[])]), vec![("2001:db8:1::103".into(), 200)]);
}

#[test]
fn a_solicit_with_more_ias_than_the_limit_is_answered_for_the_first_ones_only() {
    let mut s = server();
    let limit = config::DEFAULT_MAX_IAS_PER_MESSAGE;
    let ias: Vec<_> = (0..limit + 3).map(|iaid| ia_na(iaid, &[])).collect();
    let adv = send(&mut s, &msg(MessageType::Solicit, 1, ias), 1, NOW);
    let answered: Vec<u32> = reply(&adv)
        .options()
        .iter()
        .filter_map(|o| match o {
            DhcpOption::IaNa(ia) => Some(ia.iaid),
            _ => None,
        })
        .collect();
    assert_eq!(answered, (0..limit).collect::<Vec<_>>());
    assert_eq!(s.statistics().ias_over_limit, 3);
    // Only the answered IAs hold offers: the range's other addresses are still free.
    let offered = s.leases().iter().filter(|l| l.state == LeaseState::Offered).count();
    assert!(offered <= limit as usize, "{offered} offers");
}

#[test]
fn a_client_holding_its_share_of_leases_gets_no_more_for_new_ias() {
    let mut config = config();
    config.max_leases_per_client = 2;
    let mut s = Server::new(config, SERVER_DUID.to_vec(), vec![]);
    // Two Solicits of two IAs each, all from one client: the first two IAs are offered, the
    // next ones get nothing, whatever their IAIDs.
    let first = send(&mut s, &msg(MessageType::Solicit, 1, vec![ia_na(1, &[]), ia_pd(2, &[])]), 1, NOW);
    assert_eq!(ia_status(&reply(&first)), Vec::<u16>::new(), "both offered");
    let second = send(&mut s, &msg(MessageType::Solicit, 1, vec![ia_na(3, &[]), ia_pd(4, &[])]), 1, NOW);
    assert_eq!(ia_status(&reply(&second)), vec![Status::NO_ADDRS_AVAIL.0, Status::NO_PREFIX_AVAIL.0]);
    assert_eq!(s.statistics().ias_over_limit, 2);
    // The IAs it holds are still its own: a Request for them is granted.
    assert_eq!(bind(&mut s, 1, vec![ia_na(1, &[])]).len(), 1);
    // Another client is not held back.
    assert_eq!(bind(&mut s, 2, vec![ia_na(1, &[])]).len(), 1);
}

/// A strategy that picks what another client holds.
#[derive(Debug)]
struct Taken(Ipv6Net);

impl allocation::Allocator for Taken {
    fn pick(&self, _ask: &allocation::Ask<'_>, _r: &mut allocation::Resources<'_>) -> Option<Ipv6Net> {
        Some(self.0)
    }
}

#[test]
fn a_strategy_cannot_hand_out_another_clients_lease_or_anything_off_the_subnet() {
    let mut s = server();
    let held = bind(&mut s, 1, vec![ia_na(1, &[])]);
    let held: Ipv6Net = format!("{}/128", held[0].0).parse().unwrap();
    for wrong in [held, "2001:db8:9::1/128".parse().unwrap()] {
        assert!(s.set_allocator(0, Box::new(Taken(wrong))));
        let adv = send(&mut s, &msg(MessageType::Solicit, 2, vec![ia_na(1, &[])]), 2, NOW);
        assert_eq!(ia_status(&reply(&adv)), vec![Status::NO_ADDRS_AVAIL.0], "{wrong}");
    }
    assert_eq!(s.leases().iter().filter(|l| l.resource == held).count(), 1, "still the first client's alone");
}

#[test]
fn a_failover_server_allocates_from_its_own_half_until_its_state_allows_the_partners() {
    // eth1's pool is ::100-::103 (::101 excluded): the primary owns ::100-::101, the
    // secondary ::102-::103.
    let working = Duties { partner_share: false, ..Duties::ALL };
    let mut secondary = server();
    secondary.pair_up(Half::Upper, working);
    assert_eq!(bind(&mut secondary, 1, vec![ia_na(1, &[])]), vec![("2001:db8:1::102".to_string(), 200)]);
    // A hint in the partner's half is not taken.
    assert_eq!(
        bind(&mut secondary, 2, vec![ia_na(1, &["2001:db8:1::100"])]),
        vec![("2001:db8:1::103".to_string(), 200)]
    );
    let out = send(&mut secondary, &msg(MessageType::Solicit, 3, vec![ia_na(1, &[])]), 3, NOW);
    assert_eq!(ia_status(&reply(&out)), vec![Status::NO_ADDRS_AVAIL.0], "its own half is used up");

    let mut primary = server();
    primary.pair_up(Half::Lower, working);
    assert_eq!(bind(&mut primary, 1, vec![ia_na(1, &[])]), vec![("2001:db8:1::100".to_string(), 200)]);
    let out = send(&mut primary, &msg(MessageType::Solicit, 2, vec![ia_na(1, &[])]), 2, NOW);
    assert_eq!(ia_status(&reply(&out)), vec![Status::NO_ADDRS_AVAIL.0]);
    // Its partner down past the MCLT: the partner's half too.
    primary.set_duties(Duties::ALL);
    assert_eq!(bind(&mut primary, 2, vec![ia_na(1, &[])]), vec![("2001:db8:1::102".to_string(), 200)]);
    // Prefixes are split the same way: the primary's first prefix is the pool's first.
    let got = bind(&mut primary, 3, vec![ia_pd(1, &[])]);
    assert_eq!(got[0].0, "2001:db8:8000::/56");
    let mut secondary = server();
    secondary.pair_up(Half::Upper, working);
    let got = bind(&mut secondary, 3, vec![ia_pd(1, &[])]);
    assert_eq!(got[0].0, "2001:db8:8000:200::/56", "the upper half of the /54's four /56s");
}

#[test]
fn a_failover_server_answers_only_what_its_duties_allow_and_counts_the_rest() {
    let mut s = server();
    s.pair_up(Half::Upper, Duties::ALL);
    bind(&mut s, 1, vec![ia_na(1, &[])]);
    // A secondary in NORMAL: its own clients' Renews, nothing new, no Rebind.
    s.set_duties(Duties { new_clients: false, own_clients: true, rebind: false, partner_share: false });
    let renew = send(&mut s, &msg(MessageType::Renew, 1, vec![ia_na(1, &[]), server_id()]), 1, NOW + 10);
    assert_eq!(reply(&renew).msg_type(), MessageType::Reply);
    let rebind = send(&mut s, &msg(MessageType::Rebind, 1, vec![ia_na(1, &[])]), 1, NOW + 20);
    assert!(rebind.reply.is_none());
    let solicit = send(&mut s, &msg(MessageType::Solicit, 2, vec![ia_na(1, &[])]), 2, NOW);
    assert!(solicit.reply.is_none());
    let info = send(&mut s, &msg(MessageType::InformationRequest, 2, vec![]), 2, NOW);
    assert!(info.reply.is_none());
    assert_eq!(s.statistics().dropped(DropReason::PartnersTurn), 3);
    // Nothing at all (STARTUP).
    s.set_duties(Duties::NONE);
    let renew = send(&mut s, &msg(MessageType::Renew, 1, vec![ia_na(1, &[]), server_id()]), 1, NOW + 30);
    assert!(renew.reply.is_none());
    // A server on its own answers everything, whatever it was told.
    let mut alone = server();
    alone.set_duties(Duties::NONE);
    assert_eq!(alone.duties(), Duties::ALL);
}

#[test]
fn the_client_last_transaction_of_a_lease_leaves_the_fast_path_horizon_out() {
    let mut s = server();
    s.enable_fast_path();
    bind(&mut s, 1, vec![ia_na(1, &[])]);
    let lease = s.leases().into_iter().find(|l| l.state == LeaseState::Bound).unwrap();
    // Bound at NOW: valid 200 plus the horizon (T2, 80) later it expires.
    assert_eq!(lease.expires, NOW + 200 + 80);
    assert_eq!(s.last_transaction(&lease, NOW + 5), NOW);
    // Never later than now.
    assert_eq!(s.last_transaction(&Lease { expires: NOW + 10_000, ..lease }, NOW + 5), NOW + 5);
}

/// The IAPREFIXes of a reply, each with the Prefix Exclude it carries.
fn excludes(m: &Message<'_>) -> Vec<(Ipv6Net, Option<dhcp6_codec::pd_exclude::PdExclude>)> {
    let mut out = Vec::new();
    for o in m.options().iter() {
        let DhcpOption::IaPd(ia) = o else { continue };
        for i in ia.options.iter() {
            if let DhcpOption::IaPrefix(p) = i {
                let x = p.options.iter().find_map(|o| match o {
                    DhcpOption::PdExclude(x) => Some(x.clone()),
                    _ => None,
                });
                out.push((Ipv6Net::new(p.prefix, p.prefix_len).unwrap(), x));
            }
        }
    }
    out
}

#[test]
fn a_pd_pools_excluded_prefix_goes_to_the_clients_that_ask_for_it_and_into_the_fast_path() {
    let mut config = config();
    config.subnets[0].pd_pools[0].excluded_prefix = Some("2001:db8:8000:1::/64".parse().unwrap());
    let mut s = Server::new(config, SERVER_DUID.to_vec(), Vec::new());
    let asks = || vec![ia_pd(1, &[]), DhcpOption::Oro(vec![option_code::PD_EXCLUDE])];

    // Asked for (RFC 6603 section 4.1): in each IAPREFIX, the /64 with the configured subnet
    // ID (01) out of the delegated /56.
    let adv = send(&mut s, &msg(MessageType::Solicit, 1, asks()), 1, NOW);
    let [(prefix, Some(x))] = &excludes(&reply(&adv))[..] else { panic!("{:?}", excludes(&reply(&adv))) };
    assert_eq!(prefix.prefix_len(), 56);
    let excluded = x.excluded((prefix.network(), 56)).unwrap();
    assert_eq!(excluded, (Ipv6Addr::from(u128::from(prefix.network()) | 1 << 64), 64));

    // Not asked for: not sent.
    let plain = send(&mut s, &msg(MessageType::Solicit, 2, vec![ia_pd(1, &[])]), 2, NOW);
    assert!(matches!(&excludes(&reply(&plain))[..], [(_, None)]), "{:?}", excludes(&reply(&plain)));

    // Bound: the fast path's IA option carries it, and says that it does, so that XDP answers
    // only the clients that ask (as the engine would).
    bind(&mut s, 1, asks());
    let duid = client_duid(1);
    let b = s.fast_binding(&duid, 1, IaType::Pd).expect("a fast-path binding");
    assert!(b.needs_pd_exclude);
    let fast_ia = b.ia_option.clone();
    assert_eq!(&fast_ia[fast_ia.len() - 6..], &[0, 67, 0, 2, 64, 0x01]);
    let renew = send(&mut s, &msg(MessageType::Renew, 1, [asks(), vec![server_id()]].concat()), 1, NOW + 10);
    let m = reply(&renew);
    let ia = m.options().iter().find(|o| o.code() == option_code::IA_PD).unwrap().to_vec().unwrap();
    assert_eq!(ia, fast_ia, "the engine's Renew answer is the fast path's IA, byte for byte");
}
