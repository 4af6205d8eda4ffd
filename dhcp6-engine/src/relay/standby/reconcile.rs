//! How two relays' user entries are reconciled, whether a change comes hot or in a batch:
//!
//! - **The newest lifetime wins.** An entry's lifetimes come from the server's last Reply,
//!   received at `expires - valid_lifetime`; of two copies, the one learnt later wins (the
//!   later expiry breaks a tie), whichever relay learnt it.
//! - **A removal is not undone.** A Release, Decline, zero lifetimes or expiry leaves a
//!   tombstone with its time; a copy learnt at or before that time is refused, one learnt
//!   after it (the client bound again) is taken. A tombstone is kept until every copy learnt
//!   before it has expired (`until`), then forgotten.
//! - **Ended entries are not taken**, whatever their age.
//!
//! Both relays apply the same rules to what they receive, so after both batches they hold the
//! same entries whichever side changed what while the link was down. Clocks must agree (NTP):
//! the times compared are each relay's own.

use std::collections::HashMap;

use crate::{
    relay::{UserChange, UserEntry},
    server::IaType,
};

/// An entry's identity, in its outside form: client DUID (hex), IAID, IA type, resource.
pub type EntryKey = (String, u32, IaType, String);

/// The key of a change.
pub fn key_of(change: &UserChange) -> EntryKey {
    let (d, i, t, r) = change.key();
    (d.to_string(), i, t, r.to_string())
}

/// When the relay received the Reply that gave this entry its lifetimes (Unix seconds).
pub fn learnt_at(e: &UserEntry) -> u64 {
    e.expires.saturating_sub(u64::from(e.valid_lifetime))
}

/// A removal remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tombstone {
    /// When it was removed.
    pub at: u64,
    /// When it may be forgotten.
    pub until: u64,
}

/// Whether `incoming` (a peer's copy) replaces what this relay holds: `held`, and the
/// tombstone of its key, if any.
pub fn put_wins(incoming: &UserEntry, held: Option<&UserEntry>, tombstone: Option<Tombstone>, now: u64) -> bool {
    if incoming.expires <= now {
        return false;
    }
    // A removal in the same second as the Reply came after it: the Reply was relayed first.
    if tombstone.is_some_and(|t| learnt_at(incoming) <= t.at) {
        return false;
    }
    held.is_none_or(|h| (learnt_at(incoming), incoming.expires) > (learnt_at(h), h.expires))
}

/// Whether a peer's removal at `at` removes `held`: only a copy learnt at or before it.
pub fn removal_wins(at: u64, held: &UserEntry) -> bool {
    learnt_at(held) <= at
}

/// Removals remembered, by key.
#[derive(Debug, Default)]
pub struct Tombstones {
    by_key: HashMap<EntryKey, Tombstone>,
}

impl Tombstones {
    /// Remembers a removal; of two for one key, the later.
    pub fn insert(&mut self, key: EntryKey, t: Tombstone) {
        let slot = self.by_key.entry(key).or_insert(t);
        if t.at >= slot.at {
            *slot = Tombstone { at: t.at, until: t.until.max(slot.until) };
        }
    }

    pub fn get(&self, key: &EntryKey) -> Option<Tombstone> {
        self.by_key.get(key).copied()
    }

    /// Forgets a key's tombstone (it was bound again).
    pub fn remove(&mut self, key: &EntryKey) {
        self.by_key.remove(key);
    }

    /// Forgets the tombstones past their `until`.
    pub fn purge(&mut self, now: u64) {
        self.by_key.retain(|_, t| t.until > now);
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Every tombstone as the removal a batch carries.
    pub fn removals(&self) -> impl Iterator<Item = UserChange> + '_ {
        self.by_key.iter().map(|((duid, iaid, ia_type, resource), t)| UserChange::Del {
            duid: duid.clone(),
            iaid: *iaid,
            ia_type: *ia_type,
            resource: resource.clone(),
            at: t.at,
            until: t.until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn entry(learnt: u64, valid: u32) -> UserEntry {
        UserEntry {
            duid: "00:03:00:01:02:00:00:00:00:01".into(),
            iaid: 1,
            ia_type: IaType::Pd,
            resource: "2001:db8:8000::/56".into(),
            preferred_lifetime: valid / 2,
            valid_lifetime: valid,
            expires: learnt + u64::from(valid),
            interface: "eth0".into(),
            vlan: None,
            inner_vlan: None,
            link_local: "fe80::1".parse().unwrap(),
            mac: None,
        }
    }

    #[test]
    fn a_copy_learnt_later_wins_and_an_earlier_one_does_not() {
        let held = entry(1000, 300);
        assert!(put_wins(&entry(1010, 300), Some(&held), None, 1020));
        assert!(!put_wins(&entry(990, 300), Some(&held), None, 1020));
        assert!(!put_wins(&held.clone(), Some(&held), None, 1020), "the same copy changes nothing");
        // Learnt in the same second with a longer lifetime: the later expiry wins.
        assert!(put_wins(&entry(1000, 600), Some(&held), None, 1020));
        // The newest Reply wins even when it shortened the lifetime.
        assert!(put_wins(&entry(1010, 100), Some(&held), None, 1020));
        assert!(put_wins(&entry(1000, 300), None, None, 1020), "a new entry is taken");
    }

    #[test]
    fn an_ended_copy_is_never_taken() {
        assert!(!put_wins(&entry(1000, 300), None, None, 1300));
        assert!(put_wins(&entry(1000, 300), None, None, 1299));
    }

    #[test]
    fn a_removal_is_not_undone_by_a_copy_learnt_before_it() {
        let removed = Tombstone { at: 1050, until: 1350 };
        assert!(!put_wins(&entry(1000, 300), None, Some(removed), 1100));
        assert!(!put_wins(&entry(1050, 300), None, Some(removed), 1100), "the same second: the removal came after");
        assert!(put_wins(&entry(1060, 300), None, Some(removed), 1100), "bound again after the release");
    }

    #[test]
    fn a_removal_removes_only_copies_learnt_before_it() {
        assert!(removal_wins(1050, &entry(1000, 300)));
        assert!(removal_wins(1050, &entry(1050, 300)));
        assert!(!removal_wins(1050, &entry(1060, 300)), "renewed after the peer removed it");
    }

    #[test]
    fn tombstones_keep_the_later_removal_and_are_forgotten_once_no_copy_can_live() {
        let key: EntryKey = ("00:01".into(), 1, IaType::Na, "2001:db8::1/128".into());
        let mut t = Tombstones::default();
        t.insert(key.clone(), Tombstone { at: 100, until: 400 });
        t.insert(key.clone(), Tombstone { at: 90, until: 500 });
        assert_eq!(t.get(&key), Some(Tombstone { at: 100, until: 400 }), "an older removal changes nothing");
        t.insert(key.clone(), Tombstone { at: 200, until: 300 });
        assert_eq!(t.get(&key), Some(Tombstone { at: 200, until: 400 }));
        t.purge(399);
        assert_eq!(t.len(), 1);
        assert_eq!(t.removals().count(), 1);
        t.purge(400);
        assert!(t.is_empty());
    }
}
