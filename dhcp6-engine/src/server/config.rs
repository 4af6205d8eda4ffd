//! The server engine's configuration: the links it serves, their pools and the attributes of
//! their leases. The daemon parses its file into these (with line and column in every error);
//! the engine only reads them.

use std::{collections::BTreeSet, net::Ipv6Addr};

use ipnet::Ipv6Net;
use serde::Deserialize;

/// What the server engine runs from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Seconds an address offered in an Advertise stays reserved for that client.
    pub offer_lifetime: u32,
    /// Seconds a declined address stays conflicting before it may be offered again.
    pub decline_probation: u32,
    /// With the XDP renewal answer: seconds past the valid lifetime that a bound lease is kept
    /// in the store, so that XDP may answer renewals for that long without a store write.
    /// `None`: each subnet's T2.
    pub renewal_horizon: Option<u32>,
    /// Most IAs of one Solicit or Request that are answered; the ones past it are left out of
    /// the answer (and counted), so that one message cannot reserve a pool.
    pub max_ias_per_message: u32,
    /// Most leases (offered, bound, expired or declined) one client may hold: an IA that would
    /// take it past this gets nothing (NoAddrsAvail or NoPrefixAvail), and is counted.
    pub max_leases_per_client: u32,
    pub subnets: Vec<Subnet>,
}

/// The default of [`ServerConfig::max_ias_per_message`]: more than any client asks for (an
/// address and a prefix or two), far fewer than a pool holds.
pub const DEFAULT_MAX_IAS_PER_MESSAGE: u32 = 4;

/// The default of [`ServerConfig::max_leases_per_client`]: two full messages' worth.
pub const DEFAULT_MAX_LEASES_PER_CLIENT: u32 = 8;

/// How a subnet picks an address for a client without a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Allocation {
    /// Reservation, the client's hint, its previous address, then the next free address by a
    /// cyclic ascending search.
    #[default]
    Iterative,
    /// The link prefix with the interface identifier of the client's link-local address, so
    /// that two servers give a client the same address.
    InterfaceIdentifier,
}

/// Lifetimes handed out, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub preferred: u32,
    pub valid: u32,
    pub t1: u32,
    pub t2: u32,
}

impl Lifetimes {
    /// These lifetimes with the valid lifetime at most `valid`, and the others kept below it
    /// (T1 and T2 at a half and four fifths of it, as RFC 9915 section 21.4 recommends).
    pub fn capped(self, valid: u32) -> Lifetimes {
        if valid >= self.valid {
            return self;
        }
        Lifetimes {
            preferred: self.preferred.min(valid),
            valid,
            t1: self.t1.min(valid / 2),
            t2: self.t2.min(valid / 5 * 4),
        }
    }
}

/// An inclusive range of addresses, as integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    pub low: u128,
    pub high: u128,
}

impl AddressRange {
    pub fn contains(&self, a: Ipv6Addr) -> bool {
        (self.low..=self.high).contains(&u128::from(a))
    }

    /// How many addresses the range holds.
    pub fn size(&self) -> u128 {
        self.high - self.low + 1
    }
}

/// A pool of prefixes to delegate: `ranges` (inside `prefix`) cut into `/delegated_length`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdPool {
    /// What `dhcp6d pool lock` and `show pools` call it; by default `PREFIX/LEN` of `prefix`.
    pub name: String,
    /// Gives nothing to new clients; leases it holds renew as usual.
    pub locked: bool,
    pub prefix: Ipv6Net,
    pub delegated_length: u8,
    pub ranges: Vec<Ipv6Net>,
    /// RFC 6603 Prefix Exclude: a prefix inside `prefix`, longer than `delegated_length`,
    /// whose bits past `delegated_length` name the prefix excluded from each delegated one (for
    /// the link between the delegating router and the client's CPE), sent to clients that ask
    /// for OPTION_PD_EXCLUDE. Kea's `excluded-prefix` and `excluded-prefix-len`.
    pub excluded_prefix: Option<Ipv6Net>,
}

impl PdPool {
    /// The Prefix Exclude option for `delegated`, a prefix of this pool: the excluded prefix's
    /// bits past the delegated length, in `delegated`. `None` without an excluded prefix, or
    /// for a prefix of another length.
    pub fn exclude_for(&self, delegated: &Ipv6Net) -> Option<dhcp6_codec::pd_exclude::PdExclude> {
        let excluded = self.excluded_prefix?;
        if delegated.prefix_len() != self.delegated_length || excluded.prefix_len() <= self.delegated_length {
            return None;
        }
        let host_bits = u128::from(excluded.network()) & !u128::from(delegated.netmask());
        let within = Ipv6Addr::from(u128::from(delegated.network()) | host_bits);
        dhcp6_codec::pd_exclude::PdExclude::new(
            (delegated.network(), delegated.prefix_len()),
            (within, excluded.prefix_len()),
        )
    }
}

/// A fixed address and/or prefix for one client DUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub duid: Vec<u8>,
    pub address: Option<Ipv6Addr>,
    pub prefix: Option<Ipv6Net>,
}

/// One link served: its prefix, pools and the attributes of its leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// Position in the file; stable for the life of the configuration.
    pub id: usize,
    /// Interface whose directly attached clients this subnet serves (relayed clients are
    /// matched by link-address instead).
    pub interface: Option<String>,
    /// The link's prefix: Confirm answers for all of it, even when the ranges cover less.
    pub prefix: Ipv6Net,
    pub allocation: Allocation,
    pub ranges: Vec<AddressRange>,
    /// The name of the subnet's address pool (its `ranges`), for `dhcp6d pool lock` and
    /// `show pools`; by default the subnet's prefix.
    pub name: String,
    /// The address pool gives nothing to new clients; leases it holds renew as usual.
    pub locked: bool,
    pub excluded: BTreeSet<Ipv6Addr>,
    pub pd_pools: Vec<PdPool>,
    pub lifetimes: Lifetimes,
    /// Seconds an expired lease stays with its client before it returns to the pool.
    pub grace_period: u32,
    pub dns_servers: Vec<Ipv6Addr>,
    /// The search list, already in wire form: parsed once here, not for every reply.
    pub domain_search: Vec<dhcp6_codec::DomainName<'static>>,
    /// Server preference (RFC 9915 section 21.8); 255 tells clients not to wait for others.
    pub preference: Option<u8>,
    pub rapid_commit: bool,
    /// Most clients with bindings on this subnet (`interface_client_limit`).
    pub client_limit: Option<u32>,
    /// Most addresses (or prefixes) in one IA (`max_leases_per_binding`).
    pub max_leases_per_binding: u32,
    pub reservations: Vec<Reservation>,
}
