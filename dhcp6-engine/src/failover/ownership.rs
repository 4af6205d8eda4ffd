//! Which partner's share a resource is in (independent allocation, RFC 8156 section 4.2.1):
//! the primary owns the lower half of every address range and of every prefix range, the
//! secondary the upper half. Both servers compute it from the same configuration, so they
//! never disagree and nothing about it goes on the wire.
//!
//! Prefixes follow the same split. RFC 8156 section 4.2.2 gives prefixes proportional
//! allocation instead (the primary owns every free prefix and hands some to the secondary as
//! FREE-BACKUP through POOLREQ/POOLRESP); this engine does not implement that, see
//! docs/failover.md.
//!
//! The server's allocation uses it through [`ShareAllocator`], which wraps the subnet's
//! strategy: plug it in with `Server::set_allocator(subnet, Box::new(ShareAllocator::new(..)))`
//! and, after every [`super::Failover::handle`], store `failover.service(now).allocate_from`
//! in its [`ShareGate`].

use std::sync::{
    atomic::{AtomicU8, Ordering},
    Arc, Mutex,
};

use ipnet::Ipv6Net;

use super::state::{AllocateFrom, Role};
use crate::server::{
    allocation::{Allocator, Ask, Pools, Resources},
    config::{AddressRange, PdPool, Subnet},
    IaType,
};

/// The owner of `resource` among `subnet`'s pools, or `None` when it is in none (a reservation
/// outside the ranges: either server may give it to its client).
pub fn owner(subnet: &Subnet, ia_type: IaType, resource: &Ipv6Net) -> Option<Role> {
    let v = u128::from(resource.network());
    match ia_type {
        IaType::Na => subnet.ranges.iter().find(|r| (r.low..=r.high).contains(&v)).map(|r| {
            let (primary, _) = split_addresses(r);
            if v <= primary.high {
                Role::Primary
            } else {
                Role::Secondary
            }
        }),
        IaType::Pd => subnet.pd_pools.iter().filter(|p| p.delegated_length == resource.prefix_len()).find_map(|p| {
            p.ranges.iter().find(|range| range.contains(resource)).map(|range| match split_prefixes(range, p) {
                (_, Some(upper)) if upper.contains(resource) => Role::Secondary,
                _ => Role::Primary,
            })
        }),
    }
}

/// Whether a server of `role` may give a new client `resource`, owned by `owner`, while its
/// state allows `from`.
pub fn may_allocate(role: Role, from: AllocateFrom, owner: Option<Role>) -> bool {
    match from {
        AllocateFrom::Nothing => false,
        AllocateFrom::OwnShare => owner.is_none_or(|o| o == role),
        AllocateFrom::PartnersShareToo => true,
    }
}

/// The lower (primary's) and upper (secondary's) halves of an address range; the primary
/// takes the middle one of an odd count, so a single address is the primary's.
fn split_addresses(r: &AddressRange) -> (AddressRange, Option<AddressRange>) {
    let mid = r.low + (r.high - r.low) / 2;
    let upper = (mid < r.high).then_some(AddressRange { low: mid + 1, high: r.high });
    (AddressRange { low: r.low, high: mid }, upper)
}

/// The halves of a prefix range: its two children, or all of it (the primary's) when it holds
/// a single delegated prefix.
fn split_prefixes(range: &Ipv6Net, pool: &PdPool) -> (Ipv6Net, Option<Ipv6Net>) {
    if range.prefix_len() >= pool.delegated_length {
        return (*range, None);
    }
    match range.subnets(range.prefix_len() + 1) {
        Ok(mut halves) => match (halves.next(), halves.next()) {
            (Some(low), Some(high)) => (low, Some(high)),
            _ => (*range, None),
        },
        Err(_) => (*range, None),
    }
}

/// The half of a split that is `role`'s.
fn half<T>(role: Role, (lower, upper): (T, Option<T>)) -> Option<T> {
    match role {
        Role::Primary => Some(lower),
        Role::Secondary => upper,
    }
}

/// `subnet` with only `role`'s share of its address and prefix ranges.
pub fn share_of(subnet: &Subnet, role: Role) -> Subnet {
    Subnet {
        ranges: subnet.ranges.iter().filter_map(|r| half(role, split_addresses(r))).collect(),
        pd_pools: subnet
            .pd_pools
            .iter()
            .map(|p| PdPool {
                ranges: p.ranges.iter().filter_map(|r| half(role, split_prefixes(r, p))).collect(),
                ..p.clone()
            })
            .collect(),
        ..subnet.clone()
    }
}

/// The state's [`AllocateFrom`], shared between the driver (which sets it from
/// [`super::Failover::service`]) and the [`ShareAllocator`]s of every subnet.
#[derive(Debug, Clone, Default)]
pub struct ShareGate(Arc<AtomicU8>);

impl ShareGate {
    pub fn set(&self, from: AllocateFrom) {
        let v = match from {
            AllocateFrom::Nothing => 0,
            AllocateFrom::OwnShare => 1,
            AllocateFrom::PartnersShareToo => 2,
        };
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> AllocateFrom {
        match self.0.load(Ordering::Relaxed) {
            0 => AllocateFrom::Nothing,
            1 => AllocateFrom::OwnShare,
            _ => AllocateFrom::PartnersShareToo,
        }
    }
}

/// A subnet's allocation strategy held to what the failover state allows: nothing, this
/// server's share (searched on its own, so the cyclic search never walks the partner's half),
/// or the whole subnet.
#[derive(Debug)]
pub struct ShareAllocator {
    inner: Box<dyn Allocator>,
    role: Role,
    gate: ShareGate,
    /// The subnet cut to this server's share, and its pools with their own search cursors
    /// (behind a lock because `Allocator::pick` takes `&self`).
    own: Subnet,
    own_pools: Mutex<Pools>,
}

impl ShareAllocator {
    pub fn new(inner: Box<dyn Allocator>, subnet: &Subnet, role: Role, gate: ShareGate) -> ShareAllocator {
        let own = share_of(subnet, role);
        let own_pools = Mutex::new(Pools::of(&own));
        ShareAllocator { inner, role, gate, own, own_pools }
    }
}

impl Allocator for ShareAllocator {
    fn pick(&self, ask: &Ask<'_>, r: &mut Resources<'_>) -> Option<Ipv6Net> {
        match self.gate.get() {
            AllocateFrom::Nothing => None,
            AllocateFrom::PartnersShareToo => self.inner.pick(ask, r),
            AllocateFrom::OwnShare => {
                let subnet = r.subnet;
                let allowed =
                    |c: &Ipv6Net| may_allocate(self.role, AllocateFrom::OwnShare, owner(subnet, ask.ia_type, c));
                let free = |c: &Ipv6Net| allowed(c) && (r.free)(c);
                let taken = |c: &Ipv6Net| !allowed(c) || (r.taken)(c);
                // A poisoned lock only means another pick panicked mid-search: the cursors
                // are still valid positions.
                let mut pools = self.own_pools.lock().unwrap_or_else(|e| e.into_inner());
                let mut own =
                    Resources { subnet: &self.own, pools: &mut pools, free: &free, taken: &taken, probes: r.probes };
                self.inner.pick(ask, &mut own)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::allocation::Iterative;
    use crate::server::config::{Allocation, Lifetimes};
    use std::net::Ipv6Addr;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    fn addr(s: &str) -> u128 {
        u128::from(s.parse::<Ipv6Addr>().unwrap())
    }

    fn subnet() -> Subnet {
        Subnet {
            id: 0,
            interface: Some("eth1".into()),
            prefix: net("2001:db8:1::/64"),
            allocation: Allocation::Iterative,
            ranges: vec![AddressRange { low: addr("2001:db8:1::100"), high: addr("2001:db8:1::103") }],
            excluded: Default::default(),
            pd_pools: vec![PdPool {
                prefix: net("2001:db8:8000::/40"),
                delegated_length: 56,
                ranges: vec![net("2001:db8:8000::/54")],
            }],
            lifetimes: Lifetimes { preferred: 100, valid: 200, t1: 50, t2: 80 },
            grace_period: 0,
            dns_servers: vec![],
            domain_search: vec![],
            preference: None,
            rapid_commit: false,
            client_limit: None,
            max_leases_per_binding: 1,
            reservations: vec![],
        }
    }

    #[test]
    fn the_primary_owns_the_lower_half_of_each_range() {
        let s = subnet();
        let na = |a: &str| owner(&s, IaType::Na, &net(a));
        assert_eq!(na("2001:db8:1::100/128"), Some(Role::Primary));
        assert_eq!(na("2001:db8:1::101/128"), Some(Role::Primary));
        assert_eq!(na("2001:db8:1::102/128"), Some(Role::Secondary));
        assert_eq!(na("2001:db8:1::103/128"), Some(Role::Secondary));
        assert_eq!(na("2001:db8:1::99/128"), None);
        let pd = |p: &str| owner(&s, IaType::Pd, &net(p));
        assert_eq!(pd("2001:db8:8000::/56"), Some(Role::Primary));
        assert_eq!(pd("2001:db8:8000:100::/56"), Some(Role::Primary));
        assert_eq!(pd("2001:db8:8000:200::/56"), Some(Role::Secondary));
        assert_eq!(pd("2001:db8:8000:300::/56"), Some(Role::Secondary));
    }

    #[test]
    fn a_single_resource_range_is_the_primarys() {
        let mut s = subnet();
        s.ranges = vec![AddressRange { low: 7, high: 7 }];
        assert_eq!(owner(&s, IaType::Na, &Ipv6Net::from(Ipv6Addr::from(7u128))), Some(Role::Primary));
        assert!(share_of(&s, Role::Secondary).ranges.is_empty());
    }

    #[test]
    fn may_allocate_follows_the_state() {
        use AllocateFrom::*;
        assert!(!may_allocate(Role::Primary, Nothing, Some(Role::Primary)));
        assert!(may_allocate(Role::Primary, OwnShare, Some(Role::Primary)));
        assert!(!may_allocate(Role::Primary, OwnShare, Some(Role::Secondary)));
        assert!(may_allocate(Role::Secondary, OwnShare, None), "a reservation outside the pools");
        assert!(may_allocate(Role::Secondary, PartnersShareToo, Some(Role::Primary)));
    }

    #[test]
    fn the_share_allocator_picks_from_its_share_then_both_then_nothing() {
        let s = subnet();
        let gate = ShareGate::default();
        gate.set(AllocateFrom::OwnShare);
        let alloc = ShareAllocator::new(Box::new(Iterative), &s, Role::Secondary, gate.clone());
        let mut pools = Pools::of(&s);
        let (free, taken) = (|_: &Ipv6Net| true, |_: &Ipv6Net| false);
        let primarys = [net("2001:db8:1::100/128")];
        let ask = Ask { duid: b"c", ia_type: IaType::Na, hints: &primarys, previous: None, link_local: None };
        let mut r = Resources { subnet: &s, pools: &mut pools, free: &free, taken: &taken, probes: 10 };
        // The hint is the primary's: the secondary takes the first of its own half.
        assert_eq!(alloc.pick(&ask, &mut r), Some(net("2001:db8:1::102/128")));
        let pd = Ask { ia_type: IaType::Pd, hints: &[], ..ask };
        assert_eq!(alloc.pick(&pd, &mut r), Some(net("2001:db8:8000:200::/56")));
        gate.set(AllocateFrom::PartnersShareToo);
        assert_eq!(alloc.pick(&ask, &mut r), Some(net("2001:db8:1::100/128")));
        gate.set(AllocateFrom::Nothing);
        assert_eq!(alloc.pick(&ask, &mut r), None);
    }
}
