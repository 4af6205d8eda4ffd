//! Two relays with their standby engines, wired back to back through the backup link's
//! frames, in virtual time (quinn-proto's `Pair`): roles, hot backup, batches, switchovers and
//! reconciliation, with no socket and no sleeping.

use std::net::Ipv6Addr;

use dhcp6_codec::{
    option::{DhcpOption, IaPd, IaPrefix, Options},
    ClientMessage, Duid, Message, MessageType, TransactionId,
};

use super::*;
use crate::{
    relay::{AccessInterface, RouteChange, UserEntry, Vlans},
    server::IaType,
};

/// Access entry 0 (`eth0`) is in profile "access", following instance RELAY6; access entry
/// 1 (`eth1`) is in no profile.
fn config(source: &str, peer: &str) -> RelayConfig {
    let mut c = crate::relay::tests::config();
    let mut second = c.interfaces[0].clone();
    second.name = "eth1".into();
    second.interface_id = b"eth1".to_vec();
    c.interfaces.push(AccessInterface { vlans: Vlans::NONE, ..second });
    c.standby = StandbyConfig {
        notify_fifo: None,
        services: vec![BackupService {
            name: "peer".into(),
            peer: peer.parse().unwrap(),
            source: source.parse().unwrap(),
            port: 7547,
            tls: None,
            daily_batch: None,
        }],
        profiles: vec![StandbyProfile {
            name: "access".into(),
            vrrp: "RELAY6".into(),
            vrrp_subject: VrrpSubject::Instance,
            service: 0,
            access: vec![0],
            degrade_metric: 100,
            virtual_address: Some("fe80::1".parse().unwrap()),
        }],
    };
    c
}

/// One relay: its engine and its standby.
struct Node {
    relay: Relay,
    standby: Standby,
    /// Frames on their way to the other node.
    outbox: Vec<Vec<u8>>,
}

impl Node {
    fn new(source: &str, peer: &str) -> Node {
        let c = config(source, peer);
        Node { standby: Standby::new(&c, 0), relay: Relay::new(c), outbox: Vec::new() }
    }

    fn send(&mut self, messages: impl IntoIterator<Item = LinkMessage>) {
        self.outbox.extend(messages.into_iter().map(|m| m.to_frame()));
    }

    /// What a tick of the daemon does: the relay's changes backed up.
    fn tick(&mut self, now: u64) {
        self.relay.tick(now);
        let changes = self.relay.take_user_changes();
        let out = self.standby.local_changes(&changes, now * 1000);
        self.send(out.into_iter().map(|(_, m)| m));
        let out = self.standby.tick(&self.relay, now * 1000, |_| self.outbox.is_empty());
        self.send(out.into_iter().map(|(_, m)| m));
    }

    fn notice(&mut self, line: &str, now: u64) -> Vec<Switch> {
        self.standby.notice(&VrrpNotice::parse(line).unwrap(), now)
    }

    fn resources(&self) -> Vec<(String, u64)> {
        self.relay.users().into_iter().map(|e| (e.resource, e.expires)).collect()
    }

    fn routes(&mut self) -> Vec<RouteChange> {
        self.relay.take_route_changes()
    }
}

/// Two relays and the link between them.
struct Pair {
    a: Node,
    b: Node,
    connected: bool,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            a: Node::new("2001:db8:ff::a", "2001:db8:ff::b"),
            b: Node::new("2001:db8:ff::b", "2001:db8:ff::a"),
            connected: false,
        }
    }

    fn connect(&mut self, now: u64) {
        self.connected = true;
        let a = self.a.standby.link_up(0, "a", &self.a.relay, now * 1000);
        self.a.send(a);
        let b = self.b.standby.link_up(0, "b", &self.b.relay, now * 1000);
        self.b.send(b);
    }

    fn disconnect(&mut self, now: u64) {
        self.connected = false;
        self.a.outbox.clear();
        self.b.outbox.clear();
        self.a.standby.link_down(0, now);
        self.b.standby.link_down(0, now);
    }

    /// Delivers every frame in flight, both ways, until none is left.
    fn drive(&mut self, now: u64) {
        while self.connected && !(self.a.outbox.is_empty() && self.b.outbox.is_empty()) {
            for a_sends in [true, false] {
                let (sender, receiver) = if a_sends { (&mut self.a, &mut self.b) } else { (&mut self.b, &mut self.a) };
                for frame in std::mem::take(&mut sender.outbox) {
                    let len = LinkMessage::body_len(frame[..4].try_into().unwrap()).unwrap();
                    let message = LinkMessage::from_body(&frame[4..4 + len]).unwrap();
                    receiver.standby.receive(0, message, &mut receiver.relay, now * 1000);
                }
            }
        }
    }
}

fn duid(n: u8) -> Vec<u8> {
    vec![0, 3, 0, 1, 2, 0, 0, 0, 0, n]
}

/// Client `n`'s Reply with prefix 2001:db8:80nn::/56 for `valid` seconds (0: released).
fn reply(n: u8, valid: u32) -> Vec<u8> {
    let duid: &'static [u8] = Box::leak(duid(n).into_boxed_slice());
    let prefix = IaPrefix {
        preferred_lifetime: valid / 2,
        valid_lifetime: valid,
        prefix_len: 56,
        prefix: format!("2001:db8:80{n:02x}::").parse().unwrap(),
        options: Options::new(),
    };
    Message::Client(ClientMessage {
        msg_type: MessageType::Reply,
        transaction_id: TransactionId::from_u32(u32::from(n)),
        options: Options(vec![
            DhcpOption::ClientId(Duid::new(duid).unwrap()),
            DhcpOption::IaPd(IaPd { iaid: 1, t1: 0, t2: 0, options: Options(vec![DhcpOption::IaPrefix(prefix)]) }),
        ]),
    })
    .to_vec()
    .unwrap()
}

fn client_ll(n: u8) -> Ipv6Addr {
    format!("fe80::ff:fe00:{n:x}").parse().unwrap()
}

/// Node `node` relays client `n`'s Reply on access entry `access`.
fn learn(node: &mut Node, access: usize, n: u8, valid: u32, now: u64) {
    node.relay.reported_reply(access, client_ll(n), [2, 0, 0, 0, 0, n], &reply(n, valid), now);
}

fn prefix(n: u8) -> String {
    format!("2001:db8:80{n:02x}::/56")
}

#[test]
fn roles_follow_the_instance_and_only_a_change_of_relaying_switches() {
    let mut a = Node::new("2001:db8:ff::a", "2001:db8:ff::b");
    assert!(!a.standby.relays(0), "nothing heard from keepalived: not relaying");
    assert!(a.standby.relays(1), "an access entry in no profile always relays");
    assert_eq!(a.standby.metric_offset(0), 100);
    assert_eq!(a.notice("INSTANCE \"RELAY6\" BACKUP 100", 1), vec![]);
    assert_eq!(a.notice("INSTANCE \"OTHER\" MASTER 100", 2), vec![]);
    assert_eq!(a.notice("GROUP \"RELAY6\" MASTER 0", 2), vec![], "a group of the same name is another subject");
    assert_eq!(a.notice("INSTANCE \"RELAY6\" MASTER 200", 3), vec![Switch { profile: 0, relaying: true }]);
    assert!(a.standby.relays(0));
    assert_eq!(a.standby.metric_offset(0), 0);
    assert_eq!(a.notice("INSTANCE \"RELAY6\" MASTER_PRIORITY 150", 4), vec![]);
    assert_eq!(a.notice("INSTANCE \"RELAY6\" MASTER 150", 4), vec![], "already master");
    assert_eq!(a.notice("INSTANCE \"RELAY6\" FAULT 0", 5), vec![Switch { profile: 0, relaying: false }]);
    assert_eq!(a.notice("INSTANCE \"RELAY6\" BACKUP 100", 6), vec![], "fault to backup: still not relaying");
    let status = a.standby.status(&a.relay);
    assert_eq!(
        (status.profiles[0].role, status.profiles[0].since, status.profiles[0].priority),
        (Role::Backup, 6, 100)
    );
    assert_eq!(a.notice("INSTANCE \"RELAY6\" STOP 0", 7), vec![]);
}

#[test]
fn the_virtual_address_present_at_start_makes_master_but_never_overrules_keepalived() {
    let mut a = Node::new("2001:db8:ff::a", "2001:db8:ff::b");
    assert_eq!(a.standby.address_seen(0, false, 1), None);
    assert_eq!(a.standby.address_seen(0, true, 2), Some(Switch { profile: 0, relaying: true }));
    assert!(a.standby.relays(0));
    let mut b = Node::new("2001:db8:ff::b", "2001:db8:ff::a");
    b.notice("INSTANCE \"RELAY6\" BACKUP 100", 1);
    assert_eq!(b.standby.address_seen(0, true, 2), None, "keepalived said backup");
    assert_eq!(b.standby.status(&b.relay).profiles[0].virtual_address_present, Some(true));
}

#[test]
fn the_master_backs_up_each_learnt_renewed_and_removed_entry_and_the_backup_holds_its_route() {
    let mut p = Pair::new();
    p.a.notice("INSTANCE \"RELAY6\" MASTER 200", 0);
    p.b.notice("INSTANCE \"RELAY6\" BACKUP 100", 0);
    p.connect(0);
    p.drive(0);
    learn(&mut p.a, 0, 1, 300, 10);
    learn(&mut p.a, 0, 2, 300, 10);
    learn(&mut p.a, 1, 3, 300, 10);
    p.a.tick(10);
    p.drive(10);
    assert_eq!(p.b.resources(), vec![(prefix(1), 310), (prefix(2), 310)], "eth1 is in no profile: not backed up");
    let routes = p.b.routes();
    assert_eq!(routes.len(), 2);
    assert!(routes
        .iter()
        .all(|r| matches!(r, RouteChange::Replace(i) if i.access == 0 && p.b.standby.metric_offset(i.access) == 100)));
    // Renewed: the new lifetime reaches the backup.
    learn(&mut p.a, 0, 1, 300, 100);
    p.a.tick(100);
    p.drive(100);
    assert_eq!(p.b.resources()[0], (prefix(1), 400));
    // Released (zero lifetimes): gone from the backup with its route.
    learn(&mut p.a, 0, 2, 0, 110);
    p.a.tick(110);
    p.drive(110);
    assert_eq!(p.b.resources(), vec![(prefix(1), 400)]);
    assert!(p.b.routes().iter().any(|r| matches!(r, RouteChange::Remove(i) if i.prefix.to_string() == prefix(2))));
    let s = p.b.standby.status(&p.b.relay).services[0].clone();
    assert_eq!(
        (s.connected, s.peer_node.as_deref(), s.applied, s.lag_ms, s.profile_mismatch),
        (true, Some("a"), 4, Some(0), false)
    );
    assert_eq!(p.a.standby.status(&p.a.relay).services[0].sent, 4);
}

#[test]
fn on_switchover_the_new_master_relays_and_puts_its_routes_back_at_the_normal_metric() {
    let mut p = Pair::new();
    p.a.notice("INSTANCE \"RELAY6\" MASTER 200", 0);
    p.b.notice("INSTANCE \"RELAY6\" BACKUP 100", 0);
    p.connect(0);
    learn(&mut p.a, 0, 1, 300, 10);
    p.a.tick(10);
    p.drive(10);
    p.b.routes();
    // The master dies: the link drops, keepalived moves mastership.
    p.disconnect(11);
    assert_eq!(p.b.notice("INSTANCE \"RELAY6\" MASTER 100", 12), vec![Switch { profile: 0, relaying: true }]);
    assert!(p.b.standby.relays(0));
    assert_eq!(p.b.standby.metric_offset(0), 0);
    let picked = |a: usize| a == 0;
    p.b.relay.refresh_routes(picked);
    assert!(
        matches!(p.b.routes()[..], [RouteChange::Replace(i)] if i.prefix.to_string() == prefix(1) && i.via == client_ll(1))
    );
    assert_eq!(
        p.b.relay.client_macs_on(picked),
        vec![(0, client_ll(1), [2, 0, 0, 0, 0, 1])],
        "for the XDP relay's MAC map"
    );
    // No entry lost: the new master renews what the old one learnt.
    learn(&mut p.b, 0, 1, 300, 150);
    assert_eq!(p.b.resources(), vec![(prefix(1), 450)]);
}

#[test]
fn after_the_link_drops_the_batches_reconcile_both_sides_changes() {
    let mut p = Pair::new();
    p.a.notice("INSTANCE \"RELAY6\" MASTER 200", 0);
    p.b.notice("INSTANCE \"RELAY6\" BACKUP 100", 0);
    p.connect(0);
    for n in 1..=4 {
        learn(&mut p.a, 0, n, 1000, 10);
    }
    p.a.tick(10);
    p.drive(10);
    assert_eq!(p.b.relay.user_count(), 4);
    p.disconnect(20);
    // Meanwhile, with both masters for a while (split brain) or one after the other:
    learn(&mut p.a, 0, 1, 1000, 30); // a renews 1 (earlier than b's renewal below)
    learn(&mut p.b, 0, 1, 1000, 40); // b renews 1 later: b's wins on both
    learn(&mut p.b, 0, 2, 1000, 30); // b renews 2 ...
    learn(&mut p.a, 0, 2, 0, 50); // ... then a sees 2 released: the release stands
    learn(&mut p.a, 0, 3, 0, 30); // a sees 3 released ...
    learn(&mut p.b, 0, 3, 1000, 60); // ... then 3 binds again through b: the new binding stands
    learn(&mut p.b, 0, 5, 1000, 60); // a new client through b
    p.a.tick(70);
    p.b.tick(70);
    p.connect(80);
    p.drive(80);
    let expect = vec![(prefix(1), 1040), (prefix(3), 1060), (prefix(4), 1010), (prefix(5), 1060)];
    assert_eq!(p.a.resources(), expect);
    assert_eq!(p.b.resources(), expect);
    // The release is remembered on both, so neither side's next batch undoes it.
    assert!(p.a.standby.status(&p.a.relay).tombstones >= 1);
    let batch = p.a.standby.backup_now(&p.a.relay, 90_000);
    p.a.send(batch.into_iter().map(|(_, m)| m));
    p.drive(90);
    assert_eq!(p.b.resources(), expect);
}

#[test]
fn an_older_copy_after_a_renewal_changes_nothing_and_is_counted_stale() {
    let mut p = Pair::new();
    p.connect(0);
    learn(&mut p.b, 0, 1, 300, 50);
    learn(&mut p.a, 0, 1, 300, 10);
    p.a.tick(10);
    p.drive(10);
    assert_eq!(p.b.resources(), vec![(prefix(1), 350)]);
    assert_eq!(p.b.standby.status(&p.b.relay).services[0].stale, 1);
}

#[test]
fn entries_travel_named_by_profile_and_those_of_other_profiles_are_refused_and_counted() {
    let mut p = Pair::new();
    p.connect(0);
    p.drive(0);
    let entry = UserEntry {
        duid: "00:01".into(),
        iaid: 1,
        ia_type: IaType::Na,
        resource: "2001:db8:2::9/128".into(),
        preferred_lifetime: 100,
        valid_lifetime: 200,
        expires: 300,
        interface: "other#0".into(),
        vlan: None,
        inner_vlan: None,
        link_local: client_ll(9),
        mac: None,
    };
    let named = |interface: &str| UserChange::Put(UserEntry { interface: interface.into(), ..entry.clone() });
    let hot = LinkMessage::Hot { sent_ms: 0, changes: vec![named("other#0"), named("access#1"), named("eth0")] };
    assert!(p.b.standby.receive(0, hot, &mut p.b.relay, 0).is_empty());
    assert_eq!(p.b.standby.status(&p.b.relay).services[0].unknown, 3);
    let hot = LinkMessage::Hot { sent_ms: 0, changes: vec![named("access#0")] };
    assert_eq!(p.b.standby.receive(0, hot, &mut p.b.relay, 0).len(), 1);
    assert_eq!(p.b.relay.users()[0].interface, "eth0", "named as this relay names it");
}

#[test]
fn a_peer_naming_other_profiles_is_flagged() {
    let mut a = Node::new("2001:db8:ff::a", "2001:db8:ff::b");
    let hello = LinkMessage::Hello { version: LINK_VERSION, node: "b".into(), profiles: vec!["other".into()] };
    a.standby.link_up(0, "a", &a.relay, 0);
    a.standby.receive(0, hello, &mut a.relay, 0);
    assert!(a.standby.status(&a.relay).services[0].profile_mismatch);
    let hello = LinkMessage::Hello { version: LINK_VERSION, node: "b".into(), profiles: vec!["access".into()] };
    a.standby.receive(0, hello, &mut a.relay, 0);
    assert!(!a.standby.status(&a.relay).services[0].profile_mismatch);
}

#[test]
fn lost_hot_changes_are_made_up_by_a_batch_and_nothing_is_sent_while_down() {
    let mut p = Pair::new();
    learn(&mut p.a, 0, 1, 300, 10);
    p.a.tick(10);
    assert!(p.a.outbox.is_empty(), "down: nothing sent (the batch on connect carries it)");
    p.connect(11);
    p.drive(11);
    assert_eq!(p.b.relay.user_count(), 1);
    learn(&mut p.a, 0, 2, 300, 12);
    p.a.relay.take_user_changes(); // as if the hot message could not be queued
    p.a.standby.lost_messages(0);
    p.a.tick(12);
    p.drive(12);
    assert_eq!(p.b.relay.user_count(), 2);
    assert!(!p.a.standby.status(&p.a.relay).services[0].resync_pending);
    assert_eq!(p.b.standby.status(&p.b.relay).services[0].last_batch_received, Some(12));
}

#[test]
fn after_lost_messages_no_hot_change_is_queued_and_the_batch_waits_for_the_link_to_drain() {
    let mut p = Pair::new();
    p.connect(10);
    p.drive(10);
    learn(&mut p.a, 0, 1, 300, 11);
    p.a.standby.lost_messages(0);
    // A slow peer: what was queued before is still in flight.
    p.a.outbox.push(LinkMessage::Ping.to_frame());
    p.a.tick(11);
    assert_eq!(p.a.outbox.len(), 1, "no hot change, no batch while the link is behind");
    learn(&mut p.a, 0, 2, 300, 12);
    p.a.tick(12);
    assert_eq!(p.a.outbox.len(), 1);
    p.drive(12);
    p.a.tick(13);
    p.drive(13);
    assert_eq!(p.b.relay.user_count(), 2, "one batch carried both");
    assert_eq!(p.b.standby.status(&p.b.relay).services[0].last_batch_received, Some(13));
    learn(&mut p.a, 0, 3, 300, 14);
    p.a.tick(14);
    p.drive(14);
    assert_eq!(p.b.relay.user_count(), 3, "hot changes again once the batch went");
}

#[test]
fn a_big_batch_goes_in_chunks_and_ends_once() {
    let mut a = Node::new("2001:db8:ff::a", "2001:db8:ff::b");
    for n in 0..=255u8 {
        for iaid in 0..12u32 {
            let entry = UserEntry {
                duid: format!("00:03:00:01:00:00:00:{n:02x}"),
                iaid,
                ia_type: IaType::Na,
                resource: format!("2001:db8:2::{n:x}:{iaid:x}/128"),
                preferred_lifetime: 100,
                valid_lifetime: 200,
                expires: 300,
                interface: "eth0".into(),
                vlan: None,
                inner_vlan: None,
                link_local: client_ll(n),
                mac: None,
            };
            assert!(a.relay.put_user(&entry, 0));
        }
    }
    let batch = a.standby.batch(0, &a.relay, 0);
    let lasts: Vec<bool> = batch.iter().map(|m| matches!(m, LinkMessage::Batch { last: true, .. })).collect();
    assert_eq!(lasts, vec![false, true], "3072 entries: two chunks");
    let empty = Node::new("2001:db8:ff::a", "2001:db8:ff::b").standby.batch(0, &a.relay, 0);
    assert_eq!(empty.len(), 2, "the same relay's entries");
    let mut none = Node::new("2001:db8:ff::a", "2001:db8:ff::b");
    let batch = none.standby.batch(0, &none.relay, 0);
    assert!(matches!(&batch[..], [LinkMessage::Batch { last: true, changes, .. }] if changes.is_empty()));
    assert!(BackupService {
        name: String::new(),
        peer: "2001:db8::b".parse().unwrap(),
        source: "2001:db8::a".parse().unwrap(),
        port: 1,
        tls: None,
        daily_batch: None,
    }
    .connects());
}

#[test]
fn the_daily_batch_goes_at_its_time_once_and_a_time_missed_while_down_goes_on_connect() {
    let mut p = Pair::new();
    let mut c = config("2001:db8:ff::a", "2001:db8:ff::b");
    c.standby.services[0].daily_batch = daily::DailyTime::new(0, 10);
    p.a.standby = Standby::new(&c, 0);
    learn(&mut p.a, 0, 1, 1_000_000, 10);
    p.a.tick(10);
    p.connect(10);
    p.drive(10);
    let sent = |p: &Pair| p.a.standby.status(&p.a.relay).services[0].last_batch_sent;
    assert_eq!(sent(&p), Some(10), "the batch on connect");
    p.a.tick(599);
    assert!(p.a.outbox.is_empty(), "00:09:59: not yet");
    p.a.tick(600);
    assert!(matches!(&p.a.outbox[..], [_]), "00:10: the daily batch");
    p.drive(600);
    assert_eq!(p.b.standby.status(&p.b.relay).services[0].last_batch_received, Some(600));
    p.a.tick(601);
    p.a.tick(86_399);
    assert!(p.a.outbox.is_empty(), "once a day");
    p.disconnect(86_400);
    p.a.tick(86_400 + 600);
    assert!(p.a.outbox.is_empty(), "nothing while down");
    p.connect(86_400 + 700);
    assert_eq!(sent(&p), Some(86_400 + 700), "the missed day's batch is the one on connect");
    p.drive(86_400 + 700);
    p.a.tick(86_400 + 701);
    assert!(p.a.outbox.is_empty(), "and no second one");
    p.a.tick(2 * 86_400 + 600);
    assert!(matches!(&p.a.outbox[..], [_]), "the next day's");
    assert!(p.b.outbox.is_empty() && p.b.standby.config().services[0].daily_batch.is_none());
}
