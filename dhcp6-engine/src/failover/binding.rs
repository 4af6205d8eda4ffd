//! Binding-level rules: the lazy update bookkeeping (RFC 8156 section 4.3), the MCLT cap on
//! what a client is told (section 4.4), and what to make of a partner's binding update
//! (section 7.3).
//!
//! A server answers a client first and tells its partner afterwards (lazily). What keeps
//! that safe is the MCLT: a client is never told a lifetime that ends more than the MCLT past
//! what the partner is known to know of the binding. The partner learns of a binding through
//! a BNDUPD carrying a *partner lifetime* (how far the sender may extend it later); once the
//! partner acknowledges it, renewals up to that time plus the MCLT need no new update first.

use std::collections::{HashMap, VecDeque};

use ipnet::Ipv6Net;

use super::message::{BindingRecord, BindingResult, BindingStatus, FailoverStatus};
use crate::server::{Lease, LeaseChange, LeaseState};

/// The partner lifetime to send for a binding whose client was just told `valid` seconds at
/// `now`: its expiration plus half the valid lifetime. RFC 8156 section 4.4 recommends a
/// partner lifetime past the client's expiration so that the renewal at T1 (half the valid
/// lifetime) can be answered with the full lifetime before the partner hears of it.
pub fn partner_lifetime_to_send(now: u64, valid: u32) -> u64 {
    now + u64::from(valid) + u64::from(valid / 2)
}

/// What this server knows its partner knows about one resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PartnerView {
    /// The latest time the partner is known to know the binding lasts until: the partner
    /// lifetime it acknowledged, or the expiration it told us itself.
    acked_partner_expiry: Option<u64>,
    /// The partner lifetime of an update sent and not yet acknowledged.
    unacked: Option<u64>,
}

/// The lazy update bookkeeping of one relationship: per resource what the partner has
/// acknowledged, the updates waiting to be sent, and the window of BNDUPDs sent and not yet
/// answered (the partner's OPTION_F_MAX_UNACKED_BNDUPD). Each BNDUPD carries one binding.
#[derive(Debug, Clone)]
pub struct LazyUpdates {
    mclt: u32,
    window: u32,
    views: HashMap<Ipv6Net, PartnerView>,
    /// Resources whose update waits for room in the window, oldest first; one per resource.
    queue: VecDeque<Ipv6Net>,
    /// The waiting update of each resource in `queue` (a newer update of the same resource
    /// replaces the waiting one, in its place). Kept apart from the order so that queueing
    /// costs the same however many wait: with the partner away, or slower than the clients,
    /// hundreds of thousands may, and a scan of them per lease change stalled the server.
    waiting: HashMap<Ipv6Net, BindingRecord>,
    /// Updates sent and not yet answered.
    in_flight: HashMap<Ipv6Net, BindingRecord>,
}

impl LazyUpdates {
    /// Bookkeeping for a relationship with MCLT `mclt` whose partner accepts `window`
    /// unacknowledged BNDUPDs.
    pub fn new(mclt: u32, window: u32) -> LazyUpdates {
        LazyUpdates {
            mclt,
            window,
            views: HashMap::new(),
            queue: VecDeque::new(),
            waiting: HashMap::new(),
            in_flight: HashMap::new(),
        }
    }

    /// The partner announced how many unacknowledged BNDUPDs it accepts.
    pub fn set_window(&mut self, window: u32) {
        self.window = window;
    }

    /// The longest valid lifetime, at most `desired_valid`, that a client may be told at
    /// `now` for `resource`: the binding must end no later than the MCLT past the partner's
    /// acknowledged expiry (or past `now`, when the partner knows nothing of it). This holds in
    /// every state; in PARTNER-DOWN nothing new gets acknowledged, so lifetimes shrink to the
    /// MCLT, which is what lets the partner come back safely.
    pub fn lifetime_cap(&self, resource: &Ipv6Net, desired_valid: u32, now: u64) -> u32 {
        let known = self.acked_partner_expiry(resource).unwrap_or(now).max(now);
        let limit = known + u64::from(self.mclt) - now;
        u32::try_from(limit).unwrap_or(u32::MAX).min(desired_valid)
    }

    /// The latest time the partner is known to know `resource`'s binding lasts until.
    pub fn acked_partner_expiry(&self, resource: &Ipv6Net) -> Option<u64> {
        self.views.get(resource).and_then(|v| v.acked_partner_expiry)
    }

    /// Queues an update of a binding this server changed. Its `partner_lifetime` should come
    /// from [`partner_lifetime_to_send`].
    pub fn enqueue(&mut self, record: BindingRecord) {
        let resource = record.resource;
        if self.waiting.insert(resource, record).is_none() {
            self.queue.push_back(resource);
        }
    }

    /// The updates that fit in the window now, each to be sent as one BNDUPD; they count as
    /// unacknowledged until [`LazyUpdates::on_bndreply`].
    pub fn take_sendable(&mut self) -> Vec<BindingRecord> {
        let mut out = Vec::new();
        while self.in_flight.len() < self.window as usize {
            // Skip a resource already in flight: its newer update waits for the answer.
            let Some(at) = self.queue.iter().position(|r| !self.in_flight.contains_key(r)) else { break };
            let Some(resource) = self.queue.remove(at) else { break };
            let Some(record) = self.waiting.remove(&resource) else { continue };
            self.views.entry(record.resource).or_default().unacked = record.partner_lifetime;
            self.in_flight.insert(record.resource, record.clone());
            out.push(record);
        }
        out
    }

    /// The partner answered BNDUPDs. Accepted ones move their partner lifetime to the
    /// acknowledged expiry; the rejected ones are returned, for the driver to log (the
    /// partner's own BNDUPD for that resource will follow and settle it).
    pub fn on_bndreply(&mut self, results: &[BindingResult]) -> Vec<BindingResult> {
        let mut rejected = Vec::new();
        for result in results {
            let resource = result.key.resource;
            if self.in_flight.remove(&resource).is_none() {
                continue;
            }
            let view = self.views.entry(resource).or_default();
            let sent = view.unacked.take();
            if result.status == FailoverStatus::Success {
                view.acked_partner_expiry = view.acked_partner_expiry.max(sent);
            } else {
                rejected.push(result.clone());
            }
        }
        rejected
    }

    /// The partner told us of a binding and we took it: the partner knows it lasts until its
    /// expiration (and it may extend it up to its partner lifetime plus the MCLT).
    pub fn accepted_from_partner(&mut self, record: &BindingRecord) {
        let view = self.views.entry(record.resource).or_default();
        view.acked_partner_expiry = Some(record.expiration_time);
    }

    /// The connection is gone: updates in flight will be sent again on the next one.
    pub fn connection_lost(&mut self) {
        let mut back: Vec<BindingRecord> = self.in_flight.drain().map(|(_, r)| r).collect();
        back.sort_by_key(|r| (r.resource.network(), r.resource.prefix_len()));
        for record in back.into_iter().rev() {
            if let Some(view) = self.views.get_mut(&record.resource) {
                view.unacked = None;
            }
            if !self.waiting.contains_key(&record.resource) {
                self.queue.push_front(record.resource);
                self.waiting.insert(record.resource, record);
            }
        }
    }

    /// How many BNDUPDs are sent and unanswered.
    pub fn unacked(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether every update was sent and answered.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.in_flight.is_empty()
    }
}

/// What this server holds for the resource of a received binding update: its lease and the
/// client's last transaction time (when the store keeps none, `lease.expires -
/// lease.valid_lifetime` is the time the lease was last extended, a close stand-in).
#[derive(Debug, Clone, Copy)]
pub struct LocalBinding<'a> {
    pub lease: &'a Lease,
    pub clt: u64,
}

/// What to do with one binding of a partner's BNDUPD (RFC 8156 section 7.3), given what this
/// server holds for the resource. `Ok` is the lease change to make durable before answering
/// Success in the BNDREPLY (the driver sets the lease's `subnet`); `Err` is the status to
/// answer instead, leaving the lease as it is.
///
/// - A binding of an unknown resource, or of the same client, is taken unless ours is newer
///   by client last transaction time (then OutdatedBindingInformation).
/// - A resource bound here to another client, still valid: AddressInUse for an ACTIVE update,
///   OutdatedBindingInformation for any other (ours is the later binding).
/// - An ACTIVE update without a client: MissingBindingInformation.
pub fn receive_bndupd(
    record: &BindingRecord,
    local: Option<LocalBinding<'_>>,
    subnet: usize,
    now: u64,
) -> Result<LeaseChange, FailoverStatus> {
    if record.status == BindingStatus::Active && record.duid.is_empty() {
        return Err(FailoverStatus::MissingBindingInformation);
    }
    let mut interface = None;
    // The failover messages carry no Reconfigure Key here: the client's stays as it was.
    let mut reconfigure_key = None;
    if let Some(local) = local {
        let l = local.lease;
        let same_client = l.duid == record.duid && l.iaid == record.iaid && l.ia_type == record.ia_type;
        if same_client {
            if record.client_last_transaction < local.clt {
                return Err(FailoverStatus::OutdatedBindingInformation);
            }
            interface = l.interface.clone();
            reconfigure_key = l.reconfigure_key;
        } else if l.state == LeaseState::Bound && l.expires > now {
            return Err(match record.status {
                BindingStatus::Active => FailoverStatus::AddressInUse,
                _ => FailoverStatus::OutdatedBindingInformation,
            });
        }
    }
    let lease = |state: LeaseState, expires: u64| Lease {
        resource: record.resource,
        ia_type: record.ia_type,
        duid: record.duid.clone(),
        iaid: record.iaid,
        subnet,
        state,
        preferred_lifetime: record.preferred_lifetime,
        valid_lifetime: record.valid_lifetime,
        expires,
        interface: interface.clone(),
        reconfigure_key,
        relay: None,
    };
    let until = record.state_expiration_time.filter(|t| *t > now);
    Ok(match (record.status, until) {
        (BindingStatus::Active, _) => LeaseChange::Upsert(lease(LeaseState::Bound, record.expiration_time)),
        (BindingStatus::Expired | BindingStatus::PendingFree, Some(t)) => {
            LeaseChange::Upsert(lease(LeaseState::Expired, t))
        }
        (BindingStatus::Abandoned, Some(t)) => LeaseChange::Upsert(lease(LeaseState::Declined, t)),
        _ => LeaseChange::Remove(record.resource),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failover::message::BindingKey;
    use crate::server::IaType;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    fn record(resource: &str, duid: &[u8], clt: u64, expiration: u64) -> BindingRecord {
        BindingRecord {
            duid: duid.to_vec(),
            ia_type: IaType::Na,
            iaid: 1,
            resource: net(resource),
            status: BindingStatus::Active,
            t1: 50,
            t2: 80,
            preferred_lifetime: 100,
            valid_lifetime: 200,
            client_last_transaction: clt,
            start_time_of_state: clt,
            state_expiration_time: None,
            partner_lifetime: Some(partner_lifetime_to_send(clt, 200)),
            partner_raw_clt: None,
            expiration_time: expiration,
        }
    }

    fn lease(resource: &str, duid: &[u8], expires: u64) -> Lease {
        Lease {
            resource: net(resource),
            ia_type: IaType::Na,
            duid: duid.to_vec(),
            iaid: 1,
            subnet: 0,
            state: LeaseState::Bound,
            preferred_lifetime: 100,
            valid_lifetime: 200,
            expires,
            interface: Some("eth1".into()),
            reconfigure_key: None,
            relay: None,
        }
    }

    fn success(r: &BindingRecord) -> BindingResult {
        BindingResult { key: r.key(), status: FailoverStatus::Success }
    }

    #[test]
    fn a_new_binding_gets_at_most_the_mclt() {
        let lazy = LazyUpdates::new(3600, 10);
        assert_eq!(lazy.lifetime_cap(&net("2001:db8::1/128"), 86_400, 1000), 3600);
        assert_eq!(lazy.lifetime_cap(&net("2001:db8::1/128"), 600, 1000), 600);
    }

    #[test]
    fn an_acked_partner_lifetime_raises_the_cap_to_it_plus_the_mclt() {
        let mut lazy = LazyUpdates::new(3600, 10);
        let r = record("2001:db8::1/128", b"c1", 1000, 1000 + 3600);
        lazy.enqueue(r.clone());
        assert_eq!(lazy.take_sendable().len(), 1);
        // Not acked yet: still the MCLT from now.
        assert_eq!(lazy.lifetime_cap(&r.resource, 86_400, 1000), 3600);
        assert!(lazy.on_bndreply(&[success(&r)]).is_empty());
        let p = partner_lifetime_to_send(1000, 200);
        assert_eq!(lazy.acked_partner_expiry(&r.resource), Some(p));
        assert_eq!(lazy.lifetime_cap(&r.resource, 86_400, 1000), (p + 3600 - 1000) as u32);
        // Past the acked expiry the cap is the MCLT again.
        assert_eq!(lazy.lifetime_cap(&r.resource, 86_400, p + 10), 3600);
    }

    #[test]
    fn the_mclt_invariant_holds_for_every_cap() {
        let mut lazy = LazyUpdates::new(100, 10);
        let r = record("2001:db8::1/128", b"c1", 1000, 1200);
        lazy.enqueue(r.clone());
        lazy.take_sendable();
        lazy.on_bndreply(&[success(&r)]);
        for now in [0u64, 999, 1000, 1300, 5000] {
            for desired in [0u32, 50, 1000, u32::MAX] {
                let cap = lazy.lifetime_cap(&r.resource, desired, now);
                let known = lazy.acked_partner_expiry(&r.resource).unwrap().max(now);
                assert!(now + u64::from(cap) <= known + 100 && cap <= desired);
            }
        }
    }

    #[test]
    fn a_rejected_update_does_not_raise_the_cap() {
        let mut lazy = LazyUpdates::new(3600, 10);
        let r = record("2001:db8::1/128", b"c1", 1000, 4600);
        lazy.enqueue(r.clone());
        lazy.take_sendable();
        let no = BindingResult { key: r.key(), status: FailoverStatus::AddressInUse };
        assert_eq!(lazy.on_bndreply(std::slice::from_ref(&no)), vec![no]);
        assert_eq!(lazy.acked_partner_expiry(&r.resource), None);
        assert!(lazy.is_idle());
    }

    #[test]
    fn the_window_holds_back_updates_past_max_unacked() {
        let mut lazy = LazyUpdates::new(3600, 2);
        let rs: Vec<BindingRecord> = (1..=3).map(|i| record(&format!("2001:db8::{i}/128"), b"c", 1000, 4600)).collect();
        for r in &rs {
            lazy.enqueue(r.clone());
        }
        assert_eq!(lazy.take_sendable(), rs[..2].to_vec());
        assert!(lazy.take_sendable().is_empty());
        assert_eq!(lazy.unacked(), 2);
        lazy.on_bndreply(&[success(&rs[0])]);
        assert_eq!(lazy.take_sendable(), vec![rs[2].clone()]);
        lazy.on_bndreply(&[success(&rs[1]), success(&rs[2])]);
        assert!(lazy.is_idle());
    }

    #[test]
    fn a_newer_update_replaces_a_waiting_one_and_waits_for_one_in_flight() {
        let mut lazy = LazyUpdates::new(3600, 5);
        let old = record("2001:db8::1/128", b"c", 1000, 4600);
        let newer = record("2001:db8::1/128", b"c", 1100, 4700);
        lazy.enqueue(old.clone());
        lazy.enqueue(newer.clone());
        assert_eq!(lazy.take_sendable(), vec![newer.clone()]);
        let newest = record("2001:db8::1/128", b"c", 1200, 4800);
        lazy.enqueue(newest.clone());
        assert!(lazy.take_sendable().is_empty(), "one update per resource in flight");
        lazy.on_bndreply(&[success(&newer)]);
        assert_eq!(lazy.take_sendable(), vec![newest]);
    }

    #[test]
    fn updates_in_flight_are_sent_again_after_the_connection_is_lost() {
        let mut lazy = LazyUpdates::new(3600, 5);
        let r = record("2001:db8::1/128", b"c", 1000, 4600);
        lazy.enqueue(r.clone());
        lazy.take_sendable();
        lazy.connection_lost();
        assert_eq!(lazy.unacked(), 0);
        assert_eq!(lazy.take_sendable(), vec![r]);
    }

    #[test]
    fn a_partners_binding_caps_renewals_at_its_expiration_plus_mclt() {
        let mut lazy = LazyUpdates::new(3600, 5);
        let r = record("2001:db8::1/128", b"c", 1000, 9000);
        lazy.accepted_from_partner(&r);
        assert_eq!(lazy.lifetime_cap(&r.resource, u32::MAX, 2000), 9000 + 3600 - 2000);
    }

    #[test]
    fn bndupd_for_an_unknown_resource_is_taken() {
        let r = record("2001:db8::1/128", b"c", 1000, 4600);
        let change = receive_bndupd(&r, None, 3, 1000).unwrap();
        let LeaseChange::Upsert(l) = change else { panic!("expected an upsert") };
        assert_eq!((l.state, l.expires, l.subnet, l.duid), (LeaseState::Bound, 4600, 3, b"c".to_vec()));
    }

    #[test]
    fn bndupd_with_newer_clt_for_the_same_client_wins() {
        let mine = lease("2001:db8::1/128", b"c", 3000);
        let r = record("2001:db8::1/128", b"c", 1500, 5100);
        let got = receive_bndupd(&r, Some(LocalBinding { lease: &mine, clt: 1000 }), 0, 1500).unwrap();
        let LeaseChange::Upsert(l) = got else { panic!("expected an upsert") };
        assert_eq!((l.expires, l.interface.as_deref()), (5100, Some("eth1")));
    }

    #[test]
    fn bndupd_with_older_clt_is_outdated() {
        let mine = lease("2001:db8::1/128", b"c", 3000);
        let r = record("2001:db8::1/128", b"c", 900, 4500);
        let got = receive_bndupd(&r, Some(LocalBinding { lease: &mine, clt: 1000 }), 0, 1500);
        assert_eq!(got, Err(FailoverStatus::OutdatedBindingInformation));
    }

    #[test]
    fn bndupd_for_a_resource_bound_to_another_client_is_address_in_use() {
        let mine = lease("2001:db8::1/128", b"other", 3000);
        let r = record("2001:db8::1/128", b"c", 2000, 5600);
        let local = Some(LocalBinding { lease: &mine, clt: 1000 });
        assert_eq!(receive_bndupd(&r, local, 0, 1500), Err(FailoverStatus::AddressInUse));
        let released = BindingRecord { status: BindingStatus::Released, ..r.clone() };
        assert_eq!(receive_bndupd(&released, local, 0, 1500), Err(FailoverStatus::OutdatedBindingInformation));
        // Once our binding is over, the partner's is taken.
        assert!(receive_bndupd(&r, local, 0, 3001).is_ok());
    }

    #[test]
    fn bndupd_without_client_for_an_active_binding_misses_information() {
        let r = record("2001:db8::1/128", b"", 1000, 4600);
        assert_eq!(receive_bndupd(&r, None, 0, 1000), Err(FailoverStatus::MissingBindingInformation));
    }

    #[test]
    fn bndupd_statuses_map_to_lease_changes() {
        let base = record("2001:db8::1/128", b"c", 1000, 4600);
        let with = |status, until| BindingRecord { status, state_expiration_time: until, ..base.clone() };
        let state_of = |r: &BindingRecord| match receive_bndupd(r, None, 0, 1000).unwrap() {
            LeaseChange::Upsert(l) => Some((l.state, l.expires)),
            LeaseChange::Remove(_) => None,
        };
        assert_eq!(state_of(&with(BindingStatus::Expired, Some(2000))), Some((LeaseState::Expired, 2000)));
        assert_eq!(state_of(&with(BindingStatus::Expired, Some(900))), None);
        assert_eq!(state_of(&with(BindingStatus::Abandoned, Some(2000))), Some((LeaseState::Declined, 2000)));
        assert_eq!(state_of(&with(BindingStatus::Released, None)), None);
        assert_eq!(state_of(&with(BindingStatus::Free, None)), None);
        let key: BindingKey = base.key();
        assert_eq!(key.resource, base.resource);
    }
}
