//! Reloads and pool locks: what the diff says, and that leases outlive a reload.

use super::*;
use crate::server::{
    config::{AddressRange, PdPool},
    tests::{bind, config, granted, ia_na, ia_pd, ia_status, msg, reply, send, server, server_id, NOW},
    IaType, LeaseChange, LeaseState,
};
use dhcp6_codec::{option::Status, MessageType};

fn range(low: &str, high: &str) -> AddressRange {
    let a = |s: &str| u128::from(s.parse::<std::net::Ipv6Addr>().unwrap());
    AddressRange { low: a(low), high: a(high) }
}

fn net(s: &str) -> Ipv6Net {
    s.parse().unwrap()
}

/// Client `n` renews IA_NA 1 naming `address`; the granted resources with valid lifetimes.
fn renew(s: &mut Server, n: u8, address: &str, now: u64) -> Vec<(String, u32)> {
    let out = send(s, &msg(MessageType::Renew, n, vec![ia_na(1, &[address]), server_id()]), n, now);
    assert!(!out.changes.is_empty(), "a renewal extends the lease");
    granted(&reply(&out))
}

#[test]
fn the_diff_names_what_changed() {
    let old = config();
    let mut new = config();
    new.offer_lifetime += 1;
    new.subnets[0].ranges = vec![range("2001:db8:1::200", "2001:db8:1::203")];
    new.subnets[0].dns_servers.clear();
    new.subnets[0].locked = true;
    new.subnets[0].pd_pools[0].ranges = vec![net("2001:db8:8000::/55")];
    new.subnets[0].pd_pools.push(PdPool {
        name: "more".into(),
        locked: false,
        prefix: net("2001:db8:9000::/40"),
        delegated_length: 60,
        ranges: vec![net("2001:db8:9000::/40")],
        excluded_prefix: None,
    });
    new.subnets.remove(1);
    let mut added = config().subnets.remove(1);
    added.prefix = net("2001:db8:3::/64");
    new.subnets.push(added);
    let said: Vec<String> = diff(&old, &new).iter().map(ToString::to_string).collect();
    assert_eq!(
        said,
        [
            "server settings changed: offer_lifetime",
            "subnet 2001:db8:1::/64 changed: ranges, dns_servers",
            "pool \"eth1\" locked",
            "subnet 2001:db8:1::/64: pd pool 2001:db8:8000::/40 as /56 changed: ranges",
            "subnet 2001:db8:1::/64: pd pool 2001:db8:9000::/40 as /60 added",
            "subnet 2001:db8:3::/64 added",
            "subnet 2001:db8:2::/64 removed",
        ]
    );
    assert!(diff(&old, &config()).is_empty(), "the same configuration changes nothing");
}

#[test]
fn a_lease_outside_the_new_pools_renews_and_is_never_allocated_again() {
    let mut s = server();
    assert_eq!(bind(&mut s, 1, vec![ia_na(1, &[])]), vec![("2001:db8:1::100".into(), 200)]);
    let mut new = config();
    new.subnets[0].ranges = vec![range("2001:db8:1::102", "2001:db8:1::103")];
    let done = s.reload(new);
    assert_eq!((done.outside_pools, done.orphaned), (1, 0));
    // The client keeps its address, with the subnet's lifetimes.
    assert_eq!(renew(&mut s, 1, "2001:db8:1::100", NOW + 100), vec![("2001:db8:1::100".into(), 200)]);
    // Another client asking for it gets one of the new pool instead.
    assert_eq!(bind(&mut s, 2, vec![ia_na(1, &["2001:db8:1::100"])]), vec![("2001:db8:1::102".into(), 200)]);
    // Once the lease is gone, it is still not given out: it is in no pool.
    let out = send(&mut s, &msg(MessageType::Release, 1, vec![ia_na(1, &["2001:db8:1::100"]), server_id()]), 1, NOW);
    assert!(matches!(&out.changes[..], [LeaseChange::Remove(r)] if *r == net("2001:db8:1::100/128")));
    assert_eq!(bind(&mut s, 3, vec![ia_na(1, &["2001:db8:1::100"])]), vec![("2001:db8:1::103".into(), 200)]);
    let full = send(&mut s, &msg(MessageType::Solicit, 4, vec![ia_na(1, &["2001:db8:1::100"])]), 4, NOW);
    assert_eq!(ia_status(&reply(&full)), vec![Status::NO_ADDRS_AVAIL.0], "the pool is full; ::100 is not in it");
}

#[test]
fn changed_lifetimes_reach_the_next_renewal() {
    let mut s = server();
    bind(&mut s, 1, vec![ia_na(1, &[])]);
    let mut new = config();
    new.subnets[0].lifetimes.valid = 300;
    s.reload(new);
    assert_eq!(renew(&mut s, 1, "2001:db8:1::100", NOW + 10), vec![("2001:db8:1::100".into(), 300)]);
    let duid = crate::server::tests::client_duid(1);
    let binding = s.fast_binding(&duid, 1, IaType::Na).expect("a fast binding");
    assert_eq!(binding.valid, 300, "XDP's entry, rewritten from this, tells the new lifetime");
}

#[test]
fn subnets_that_move_keep_their_leases_and_a_removed_one_keeps_them_until_they_expire() {
    let mut s = server();
    bind(&mut s, 1, vec![ia_na(1, &[])]);
    let relayed_lease = crate::server::Lease {
        resource: net("2001:db8:2:0:8000::1/128"),
        ia_type: IaType::Na,
        duid: vec![0, 3, 0, 1, 9],
        iaid: 1,
        subnet: 1,
        state: LeaseState::Bound,
        preferred_lifetime: 100,
        valid_lifetime: 200,
        expires: NOW + 200,
        interface: None,
        reconfigure_key: None,
        relay: None,
    };
    s.restore(LeaseChange::Upsert(relayed_lease));
    // The relayed subnet first, then eth1's: positions swap.
    let mut swapped = config();
    swapped.subnets.reverse();
    let done = s.reload(swapped);
    assert_eq!(done.orphaned, 0);
    assert_eq!(s.lease_of(&net("2001:db8:1::100/128")).map(|l| l.subnet), Some(1));
    assert_eq!(s.lease_of(&net("2001:db8:2:0:8000::1/128")).map(|l| l.subnet), Some(0));
    assert_eq!(renew(&mut s, 1, "2001:db8:1::100", NOW + 10), vec![("2001:db8:1::100".into(), 200)]);
    // The relayed subnet goes: its lease stays until it expires, then goes too.
    let mut only_eth1 = config();
    only_eth1.subnets.truncate(1);
    let done = s.reload(only_eth1);
    assert_eq!(done.orphaned, 1);
    assert_eq!(s.lease_count(), 2);
    assert_eq!(renew(&mut s, 1, "2001:db8:1::100", NOW + 20), vec![("2001:db8:1::100".into(), 200)]);
    let ended = s.expire(NOW + 200);
    assert!(ended.iter().any(|c| matches!(c, LeaseChange::Remove(r) if *r == net("2001:db8:2:0:8000::1/128"))));
}

#[test]
fn a_client_limit_counts_the_clients_already_there_after_subnets_move() {
    let mut s = server();
    bind(&mut s, 1, vec![ia_na(1, &[])]);
    let mut limited = config();
    limited.subnets[0].client_limit = Some(1);
    limited.subnets.reverse();
    s.reload(limited);
    let out = send(&mut s, &msg(MessageType::Solicit, 2, vec![ia_na(1, &[])]), 2, NOW);
    assert_eq!(ia_status(&reply(&out)), vec![Status::NO_ADDRS_AVAIL.0], "client 1 fills the limit of one");
    assert_eq!(renew(&mut s, 1, "2001:db8:1::100", NOW + 10), vec![("2001:db8:1::100".into(), 200)]);
}

#[test]
fn a_locked_pool_allocates_nothing_and_its_leases_renew() {
    let mut s = server();
    bind(&mut s, 1, vec![ia_na(1, &[]), ia_pd(2, &[])]);
    assert_eq!(s.set_locked("eth1", true), Ok(true));
    assert_eq!(s.set_locked("pd", true), Ok(true));
    assert_eq!(s.set_locked("pd", true), Ok(false), "already locked");
    assert_eq!(s.set_locked("nowhere", true), Err(UnknownPool("nowhere".into())));
    let counts = s.pool_counts();
    assert!(counts.iter().filter(|c| c.subnet == "2001:db8:1::/64").all(|c| c.locked));
    // A new client, even one naming a free address of the pool, gets nothing.
    let out = send(&mut s, &msg(MessageType::Solicit, 2, vec![ia_na(1, &["2001:db8:1::102"]), ia_pd(2, &[])]), 2, NOW);
    assert_eq!(ia_status(&reply(&out)), vec![Status::NO_ADDRS_AVAIL.0, Status::NO_PREFIX_AVAIL.0]);
    assert_eq!(granted(&reply(&out)), vec![]);
    // The client of the pool renews.
    assert_eq!(renew(&mut s, 1, "2001:db8:1::100", NOW + 10), vec![("2001:db8:1::100".into(), 200)]);
    // Unlocked, it gives again.
    assert_eq!(s.set_locked("eth1", false), Ok(true));
    assert_eq!(bind(&mut s, 2, vec![ia_na(1, &[])]), vec![("2001:db8:1::102".into(), 200)]);
    // A reload puts back what the configuration says: the lock set at run time goes.
    s.reload(config());
    assert!(s.pool_counts().iter().all(|c| !c.locked));
    // ... and the configuration's own lock holds.
    let mut locked = config();
    locked.subnets[0].locked = true;
    s.reload(locked);
    let out = send(&mut s, &msg(MessageType::Solicit, 3, vec![ia_na(1, &[])]), 3, NOW);
    assert_eq!(ia_status(&reply(&out)), vec![Status::NO_ADDRS_AVAIL.0]);
}

#[test]
fn a_locked_address_pool_gives_no_interface_identifier_address_nor_a_reservation() {
    let mut c = config();
    c.subnets[0].allocation = crate::server::config::Allocation::InterfaceIdentifier;
    c.subnets[0].locked = true;
    let mut s = Server::new(c, crate::server::tests::SERVER_DUID.to_vec(), vec![]);
    let out = send(&mut s, &msg(MessageType::Solicit, 2, vec![ia_na(1, &[])]), 2, NOW);
    assert_eq!(ia_status(&reply(&out)), vec![Status::NO_ADDRS_AVAIL.0], "the address is outside the ranges");
    s.set_locked("eth1", false).unwrap();
    assert_eq!(bind(&mut s, 2, vec![ia_na(1, &[])]), vec![("2001:db8:1::ff:fe00:2".into(), 200)]);

    // Client 0x99 has a reservation in the test configuration, outside the ranges.
    let mut s = server();
    s.set_locked("eth1", true).unwrap();
    let out = send(&mut s, &msg(MessageType::Solicit, 0x99, vec![ia_na(1, &[])]), 0x99, NOW);
    assert_eq!(ia_status(&reply(&out)), vec![Status::NO_ADDRS_AVAIL.0], "nor a reservation");
    s.set_locked("eth1", false).unwrap();
    assert_eq!(bind(&mut s, 0x99, vec![ia_na(1, &[])]), vec![("2001:db8:1::99".into(), 200)]);
}

#[test]
fn a_failover_pair_locks_both_halves() {
    let mut s = server();
    s.pair_up(crate::server::Half::Lower, crate::server::Duties::ALL);
    s.set_locked("eth1", true).unwrap();
    let out = send(&mut s, &msg(MessageType::Solicit, 2, vec![ia_na(1, &[])]), 2, NOW);
    assert_eq!(ia_status(&reply(&out)), vec![Status::NO_ADDRS_AVAIL.0]);
}
