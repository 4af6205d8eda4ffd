//! A running server taking a new configuration (`dhcp6d reload`, SIGHUP) and an operator's
//! pool lock, without losing a lease.
//!
//! [`diff`] says what changed between two configurations, for the log. [`Server::reload`]
//! takes the new one: subnets are matched by prefix and PD pools by prefix and delegated
//! length; every lease stays. A lease outside the new pools renews until it expires, as Kea
//! does, and is never given out again (the allocator picks only from the configured pools); a
//! lease of a subnet that is gone is kept until it expires, but no client is answered for it
//! (no subnet serves its link any more). [`Server::set_locked`] locks or unlocks a pool.

use std::fmt;

use ipnet::Ipv6Net;

use super::{
    allocation::{self, Allocator, Pools},
    config::{PdPool, ServerConfig, Subnet},
    split, subnet_holding, IaType, Server,
};

/// The subnet index of a lease no subnet of the configuration holds any more (its subnet was
/// removed by a reload). No client's message maps to it, so the lease is only kept until it
/// expires.
pub const NO_SUBNET: usize = u16::MAX as usize;

/// One difference between two configurations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Server-wide keys (`offer_lifetime`, `decline_probation`, ...), by name.
    Settings(Vec<&'static str>),
    SubnetAdded(Ipv6Net),
    SubnetRemoved(Ipv6Net),
    /// A subnet's keys, by name (`ranges`, `lifetimes`, `dns_servers`, ...).
    SubnetChanged {
        subnet: Ipv6Net,
        keys: Vec<&'static str>,
    },
    PdPoolAdded {
        subnet: Ipv6Net,
        pool: Ipv6Net,
        delegated_length: u8,
    },
    PdPoolRemoved {
        subnet: Ipv6Net,
        pool: Ipv6Net,
        delegated_length: u8,
    },
    /// A PD pool's ranges or name.
    PdPoolChanged {
        subnet: Ipv6Net,
        pool: Ipv6Net,
        delegated_length: u8,
        keys: Vec<&'static str>,
    },
    /// A pool (by name) locked or unlocked.
    Lock {
        pool: String,
        locked: bool,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Settings(keys) => write!(f, "server settings changed: {}", keys.join(", ")),
            Change::SubnetAdded(s) => write!(f, "subnet {s} added"),
            Change::SubnetRemoved(s) => write!(f, "subnet {s} removed"),
            Change::SubnetChanged { subnet, keys } => write!(f, "subnet {subnet} changed: {}", keys.join(", ")),
            Change::PdPoolAdded { subnet, pool, delegated_length } => {
                write!(f, "subnet {subnet}: pd pool {pool} as /{delegated_length} added")
            }
            Change::PdPoolRemoved { subnet, pool, delegated_length } => {
                write!(f, "subnet {subnet}: pd pool {pool} as /{delegated_length} removed")
            }
            Change::PdPoolChanged { subnet, pool, delegated_length, keys } => {
                write!(f, "subnet {subnet}: pd pool {pool} as /{delegated_length} changed: {}", keys.join(", "))
            }
            Change::Lock { pool, locked: true } => write!(f, "pool {pool:?} locked"),
            Change::Lock { pool, locked: false } => write!(f, "pool {pool:?} unlocked"),
        }
    }
}

/// What changed from `old` to `new`, in the order of `new`'s subnets (removed ones last).
pub fn diff(old: &ServerConfig, new: &ServerConfig) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut settings = Vec::new();
    let mut differ = |key: &'static str, a: bool| {
        if a {
            settings.push(key);
        }
    };
    differ("offer_lifetime", old.offer_lifetime != new.offer_lifetime);
    differ("decline_probation", old.decline_probation != new.decline_probation);
    differ("renewal_horizon", old.renewal_horizon != new.renewal_horizon);
    differ("max_ias_per_message", old.max_ias_per_message != new.max_ias_per_message);
    differ("max_leases_per_client", old.max_leases_per_client != new.max_leases_per_client);
    if !settings.is_empty() {
        changes.push(Change::Settings(settings));
    }
    for n in &new.subnets {
        match old.subnets.iter().find(|o| o.prefix == n.prefix) {
            None => changes.push(Change::SubnetAdded(n.prefix)),
            Some(o) => subnet_diff(o, n, &mut changes),
        }
    }
    for o in &old.subnets {
        if !new.subnets.iter().any(|n| n.prefix == o.prefix) {
            changes.push(Change::SubnetRemoved(o.prefix));
        }
    }
    changes
}

/// What changed in one subnet (the same prefix in both).
fn subnet_diff(o: &Subnet, n: &Subnet, changes: &mut Vec<Change>) {
    let mut keys = Vec::new();
    let mut differ = |key: &'static str, a: bool| {
        if a {
            keys.push(key);
        }
    };
    differ("interface", o.interface != n.interface);
    differ("name", o.name != n.name);
    differ("allocation", o.allocation != n.allocation);
    differ("ranges", o.ranges != n.ranges);
    differ("excluded", o.excluded != n.excluded);
    differ("lifetimes", o.lifetimes != n.lifetimes);
    differ("grace_period", o.grace_period != n.grace_period);
    differ("dns_servers", o.dns_servers != n.dns_servers);
    differ("domain_search", o.domain_search != n.domain_search);
    differ("preference", o.preference != n.preference);
    differ("rapid_commit", o.rapid_commit != n.rapid_commit);
    differ("interface_client_limit", o.client_limit != n.client_limit);
    differ("max_leases_per_binding", o.max_leases_per_binding != n.max_leases_per_binding);
    differ("reservations", o.reservations != n.reservations);
    if !keys.is_empty() {
        changes.push(Change::SubnetChanged { subnet: n.prefix, keys });
    }
    if o.locked != n.locked {
        changes.push(Change::Lock { pool: n.name.clone(), locked: n.locked });
    }
    let same = |a: &PdPool, b: &PdPool| a.prefix == b.prefix && a.delegated_length == b.delegated_length;
    let (subnet, pools) = (n.prefix, |p: &PdPool| (p.prefix, p.delegated_length));
    for np in &n.pd_pools {
        let (pool, delegated_length) = pools(np);
        let Some(op) = o.pd_pools.iter().find(|op| same(op, np)) else {
            changes.push(Change::PdPoolAdded { subnet, pool, delegated_length });
            continue;
        };
        let mut keys = Vec::new();
        if op.ranges != np.ranges {
            keys.push("ranges");
        }
        if op.name != np.name {
            keys.push("name");
        }
        if !keys.is_empty() {
            changes.push(Change::PdPoolChanged { subnet, pool, delegated_length, keys });
        }
        if op.locked != np.locked {
            changes.push(Change::Lock { pool: np.name.clone(), locked: np.locked });
        }
    }
    for op in &o.pd_pools {
        if !n.pd_pools.iter().any(|np| same(op, np)) {
            let (pool, delegated_length) = pools(op);
            changes.push(Change::PdPoolRemoved { subnet, pool, delegated_length });
        }
    }
}

/// What [`Server::reload`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    pub changes: Vec<Change>,
    /// Bound leases no longer in a pool of their subnet: they renew until they expire, and
    /// are not given out again.
    pub outside_pools: usize,
    /// Leases of subnets that are gone: kept until they expire, answered no more.
    pub orphaned: usize,
    /// Subnets (their new indexes) whose clients' Replies change: DNS servers, domain
    /// search list or lifetimes. Their clients with a Reconfigure Key are asked to renew.
    pub options_changed: Vec<usize>,
}

/// No pool has the name a lock named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no pool is named {0:?} (`dhcp6d show pools` lists their names)")]
pub struct UnknownPool(pub String);

impl Server {
    /// Runs from `config` from now on, keeping every lease. The caller checked `config` as it
    /// checks a configuration at start; changes the engine cannot take live (none today) are
    /// the caller's to refuse. A strategy plugged in with [`Server::set_allocator`] is kept for
    /// a subnet whose prefix and `allocation` stay; others get their built-in one.
    ///
    /// What XDP's fast path holds is not the engine's: the caller rewrites its entries, since
    /// lifetimes and options the Replies carry may have changed.
    pub fn reload(&mut self, config: ServerConfig) -> Reloaded {
        let changes = diff(&self.config, &config);
        let old = std::mem::replace(&mut self.config, config);
        // Each old subnet's position in the new configuration.
        let moved: Vec<Option<usize>> =
            old.subnets.iter().map(|o| self.config.subnets.iter().position(|n| n.prefix == o.prefix)).collect();
        let mut allocators: Vec<Option<Box<dyn Allocator>>> = self.config.subnets.iter().map(|_| None).collect();
        for ((old_subnet, allocator), new) in old.subnets.iter().zip(self.allocators.drain(..)).zip(&moved) {
            if let Some(n) = *new {
                if self.config.subnets[n].allocation == old_subnet.allocation {
                    allocators[n] = Some(allocator);
                }
            }
        }
        self.allocators = allocators
            .into_iter()
            .zip(&self.config.subnets)
            .map(|(a, s)| a.unwrap_or_else(|| allocation::built_in(s.allocation)))
            .collect();
        self.rebuild_pools(&moved);
        let limited = |c: &ServerConfig| c.subnets.iter().map(|s| s.client_limit.is_some()).collect::<Vec<_>>();
        // Every subnet where it was, and no new one: each lease's subnet index still holds.
        let unmoved = moved.iter().enumerate().all(|(i, m)| *m == Some(i));
        let same_table =
            unmoved && old.subnets.len() == self.config.subnets.len() && limited(&old) == limited(&self.config);
        let options_changed = self
            .config
            .subnets
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                old.subnets.iter().any(|o| {
                    o.prefix == n.prefix
                        && (o.dns_servers != n.dns_servers
                            || o.domain_search != n.domain_search
                            || o.lifetimes != n.lifetimes)
                })
            })
            .map(|(i, _)| i)
            .collect();
        let mut done = Reloaded { changes, options_changed, ..Default::default() };
        if !same_table {
            // Subnet positions moved (or a client limit came or went): each lease goes to its
            // subnet's new position, or to the new subnet holding it, or to none.
            let Server { table, config, subnets, .. } = self;
            table.renumber_subnets(limited(config), |old, resource, ia_type| match moved.get(old).copied().flatten() {
                Some(n) => n,
                None => subnet_holding(config, subnets, resource, ia_type).unwrap_or(NO_SUBNET),
            });
        }
        for (resource, state, subnet) in self.table.briefs() {
            if subnet == NO_SUBNET {
                done.orphaned += 1;
                continue;
            }
            let (Some(pools), Some(conf)) = (self.subnets.get(subnet), self.config.subnets.get(subnet)) else {
                continue;
            };
            if state != super::LeaseState::Bound {
                continue;
            }
            // Without building the lease: an address or a prefix, it is in one pool or none.
            let pooled = pools.contains(IaType::Na, &resource) || pools.contains(IaType::Pd, &resource);
            let reserved = conf
                .reservations
                .iter()
                .any(|r| r.address.map(Ipv6Net::from) == Some(resource) || r.prefix == Some(resource));
            if !pooled && !reserved {
                done.outside_pools += 1;
            }
        }
        done
    }

    /// Locks (or unlocks) the pool named `name`: a locked pool gives nothing to new clients,
    /// and the leases it holds renew as usual. Returns whether that changed anything. The
    /// configuration's value comes back at the next reload.
    pub fn set_locked(&mut self, name: &str, locked: bool) -> Result<bool, UnknownPool> {
        let mut found = None;
        for s in &mut self.config.subnets {
            if s.name == name {
                found = Some(std::mem::replace(&mut s.locked, locked));
            }
            for p in s.pd_pools.iter_mut().filter(|p| p.name == name) {
                found = Some(std::mem::replace(&mut p.locked, locked));
            }
        }
        let was = found.ok_or_else(|| UnknownPool(name.to_string()))?;
        let same: Vec<Option<usize>> = (0..self.config.subnets.len()).map(Some).collect();
        self.rebuild_pools(&same);
        Ok(was != locked)
    }

    /// Builds each subnet's pools (and a failover pair's halves of them) from the
    /// configuration, each search going on where the same pool's was; `moved[i]` is where
    /// the subnet that was at `i` now is.
    fn rebuild_pools(&mut self, moved: &[Option<usize>]) {
        let mut subnets: Vec<Pools> = self.config.subnets.iter().map(Pools::of).collect();
        let carry = |new: &mut [Pools], old: &[Pools]| {
            for (o, n) in old.iter().zip(moved) {
                if let Some(n) = n.and_then(|n| new.get_mut(n)) {
                    n.keep_cursors(o);
                }
            }
        };
        carry(&mut subnets, &self.subnets);
        if let Some(p) = self.pair.as_mut() {
            let (mut own, mut partner) = split(&subnets, p.half);
            carry(&mut own, &p.own);
            carry(&mut partner, &p.partner);
            (p.own, p.partner) = (own, partner);
        }
        self.subnets = subnets;
    }
}

#[cfg(test)]
mod tests;
