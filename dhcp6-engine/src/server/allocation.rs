//! Allocation strategies: how a new address or prefix is picked for an IA that holds none.
//!
//! The server keeps what every strategy shares: an IA's current leases come first, and a
//! subnet's client limit is checked before any strategy is asked. A strategy then picks one
//! resource among those that are free for the client. Two are built in, chosen per subnet by
//! `allocation` ([`Allocation`]); others (address ownership between failover partners, a
//! shared database's allocation) plug in with [`crate::server::Server::set_allocator`].

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::{
    config::{Allocation, Subnet},
    lease::IaType,
    pool::Pool,
};

/// What a strategy is asked for: one resource for one IA of one client.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub duid: &'a [u8],
    pub ia_type: IaType,
    /// What the client asked for (RFC 9915 section 18.3.1: hints in its IA).
    pub hints: &'a [Ipv6Net],
    /// The resource of this type the client held last, if the server remembers it.
    pub previous: Option<Ipv6Net>,
    /// The client's link-local address, when it came directly.
    pub link_local: Option<Ipv6Addr>,
}

/// A subnet's address pool and prefix pools, with their search cursors.
#[derive(Debug, Clone)]
pub struct Pools {
    pub addresses: Pool,
    pub prefixes: Vec<Pool>,
}

impl Pools {
    pub fn of(subnet: &Subnet) -> Pools {
        Pools { addresses: Pool::addresses(subnet), prefixes: subnet.pd_pools.iter().map(Pool::prefixes).collect() }
    }

    /// The subnet's pools cut in two, each pool by [`Pool::halves`]: what the primary and the
    /// secondary of a failover pair allocate from on their own.
    pub fn halves(&self) -> (Pools, Pools) {
        let (a_low, a_high) = self.addresses.halves();
        let (p_low, p_high): (Vec<Pool>, Vec<Pool>) = self.prefixes.iter().map(Pool::halves).unzip();
        (Pools { addresses: a_low, prefixes: p_low }, Pools { addresses: a_high, prefixes: p_high })
    }

    /// Continues each pool's search where `old`'s same pool left it.
    pub fn keep_cursors(&mut self, old: &Pools) {
        self.addresses.keep_cursor(&old.addresses);
        for p in &mut self.prefixes {
            for o in &old.prefixes {
                p.keep_cursor(o);
            }
        }
    }

    /// Whether `resource` may be given from these pools: in one of them that is not locked.
    pub fn offers(&self, ia_type: IaType, resource: &Ipv6Net) -> bool {
        match ia_type {
            IaType::Na => !self.addresses.is_locked() && self.addresses.contains(resource),
            IaType::Pd => self.prefixes.iter().any(|p| !p.is_locked() && p.contains(resource)),
        }
    }

    /// Whether `resource` is one of this subnet's resources of type `ia_type`.
    pub fn contains(&self, ia_type: IaType, resource: &Ipv6Net) -> bool {
        match ia_type {
            IaType::Na => self.addresses.contains(resource),
            IaType::Pd => self.prefixes.iter().any(|p| p.contains(resource)),
        }
    }
}

/// What a strategy sees of the subnet.
pub struct Resources<'a> {
    pub subnet: &'a Subnet,
    pub pools: &'a mut Pools,
    /// Whether a resource may go to this client: not leased (to anyone, in any state), not
    /// excluded, not reserved for another client.
    pub free: &'a dyn Fn(&Ipv6Net) -> bool,
    /// Whether a resource is taken for a search that skips reserved ones whoever holds them:
    /// leased, excluded or reserved.
    pub taken: &'a dyn Fn(&Ipv6Net) -> bool,
    /// How many resources a search may look at before it gives up (as many as could be taken,
    /// plus one: past that, one is free if any is).
    pub probes: u128,
}

/// A way to pick a new resource for an IA.
pub trait Allocator: Send + std::fmt::Debug {
    /// A free resource for `ask`, or `None` when the strategy has none to give (the client is
    /// told NoAddrsAvail or NoPrefixAvail).
    fn pick(&self, ask: &Ask<'_>, resources: &mut Resources<'_>) -> Option<Ipv6Net>;
}

/// The built-in strategy a subnet's configuration names.
pub fn built_in(allocation: Allocation) -> Box<dyn Allocator> {
    match allocation {
        Allocation::Iterative => Box::new(Iterative),
        Allocation::InterfaceIdentifier => Box::new(InterfaceIdentifier),
    }
}

/// A reservation for the client's DUID, then what the client asked for, then what it had
/// before, then the next free resource by a cyclic ascending search.
#[derive(Debug, Clone, Copy, Default)]
pub struct Iterative;

impl Allocator for Iterative {
    fn pick(&self, ask: &Ask<'_>, r: &mut Resources<'_>) -> Option<Ipv6Net> {
        // 1. A reservation for the client's DUID.
        let reserved =
            r.subnet.reservations.iter().filter(|res| res.duid == ask.duid).find_map(|res| match ask.ia_type {
                IaType::Na => res.address.map(Ipv6Net::from),
                IaType::Pd => res.prefix,
            });
        // 2. What the client asked for, 3. what it had before.
        let pools = &*r.pools;
        let in_pool = |c: &Ipv6Net| pools.offers(ask.ia_type, c);
        let candidates =
            reserved.into_iter().chain(ask.hints.iter().copied().filter(in_pool)).chain(ask.previous.filter(in_pool));
        for c in candidates {
            if (r.free)(&c) {
                return Some(c);
            }
        }
        // 4. The next free one, cycling upwards.
        let (probes, taken) = (r.probes, r.taken);
        match ask.ia_type {
            IaType::Na => r.pools.addresses.next_free(probes, taken),
            IaType::Pd => r.pools.prefixes.iter_mut().find_map(|p| p.next_free(probes, taken)),
        }
    }
}

/// For addresses: the link's prefix with the interface identifier of the client's link-local
/// address, so that two servers give a client the same address; nothing when that one is not
/// free, or the client did not come directly. Prefixes are picked as [`Iterative`] does.
#[derive(Debug, Clone, Copy, Default)]
pub struct InterfaceIdentifier;

impl Allocator for InterfaceIdentifier {
    fn pick(&self, ask: &Ask<'_>, r: &mut Resources<'_>) -> Option<Ipv6Net> {
        match ask.ia_type {
            IaType::Na => {
                ask.link_local.and_then(|ll| interface_identifier_address(r.subnet.prefix, ll)).filter(|c| (r.free)(c))
            }
            IaType::Pd => Iterative.pick(ask, r),
        }
    }
}

/// The address made of `prefix`'s first 64 bits and the interface identifier of a link-local
/// address, or `None` when `link_local` is not one.
fn interface_identifier_address(prefix: Ipv6Net, link_local: Ipv6Addr) -> Option<Ipv6Net> {
    if link_local.segments()[0] & 0xffc0 != 0xfe80 {
        return None;
    }
    let iid = u128::from(link_local) & u128::from(u64::MAX);
    let high = u128::from(prefix.network()) & !u128::from(u64::MAX);
    Some(Ipv6Net::from(Ipv6Addr::from(high | iid)))
}
