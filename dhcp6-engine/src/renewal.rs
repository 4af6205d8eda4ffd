//! What userspace writes into the maps of the XDP Renew/Rebind answer, made from the server's
//! bindings. Pure: the daemon (and the tests) do the map I/O and read the clocks.
//!
//! Every byte XDP copies into a Reply is encoded here by the codec that encodes the server's
//! own replies ([`crate::server::FastBinding::ia_option`] comes from the engine itself), so the
//! fast path answers byte for byte as the server would.

use std::net::Ipv6Addr;

use dhcp6_codec::{option::DhcpOption, Duid};
use dhcp6_common::renewal::{
    checksum, LeaseEntry, LeaseKey, LinkEntry, ENTRY_PD_EXCLUDE, ENTRY_RENEW_ONLY, IA_MAX, IA_TYPE_NA, IA_TYPE_PD,
    OPTION_MAX, SERVER_ID_MAX,
};

use crate::server::{config::Subnet, FastBinding, IaType};

/// Converts Unix seconds to the CLOCK_MONOTONIC nanoseconds XDP reads (its coarse variant,
/// at most a tick behind), and back.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// CLOCK_MONOTONIC nanoseconds at `unix_ns`.
    mono_ns: u64,
    unix_ns: u64,
}

impl Clock {
    /// The clocks read at one instant: CLOCK_MONOTONIC and Unix time, both in nanoseconds.
    pub fn at(mono_ns: u64, unix_ns: u64) -> Clock {
        Clock { mono_ns, unix_ns }
    }

    /// CLOCK_MONOTONIC nanoseconds of Unix second `unix` (0 for times before boot).
    pub fn mono_ns(&self, unix: u64) -> u64 {
        let unix_ns = unix.saturating_mul(1_000_000_000);
        if unix_ns >= self.unix_ns {
            self.mono_ns.saturating_add(unix_ns - self.unix_ns)
        } else {
            self.mono_ns.saturating_sub(self.unix_ns - unix_ns)
        }
    }

    /// Unix seconds now.
    pub fn unix_now(&self) -> u64 {
        self.unix_ns / 1_000_000_000
    }

    /// Unix seconds of CLOCK_MONOTONIC nanoseconds `mono_ns`.
    pub fn unix(&self, mono_ns: u64) -> u64 {
        let unix_ns = if mono_ns >= self.mono_ns {
            self.unix_ns.saturating_add(mono_ns - self.mono_ns)
        } else {
            self.unix_ns.saturating_sub(self.mono_ns - mono_ns)
        };
        unix_ns / 1_000_000_000
    }
}

pub fn ia_type_byte(t: IaType) -> u8 {
    match t {
        IaType::Na => IA_TYPE_NA,
        IaType::Pd => IA_TYPE_PD,
    }
}

pub fn ia_type_of(byte: u8) -> Option<IaType> {
    match byte {
        IA_TYPE_NA => Some(IaType::Na),
        IA_TYPE_PD => Some(IaType::Pd),
        _ => None,
    }
}

/// The lease map key of a binding.
pub fn lease_key(b: &FastBinding) -> Option<LeaseKey> {
    LeaseKey::new(b.duid, b.iaid, ia_type_byte(b.ia_type))
}

/// The lease map value of a binding on interface `ifindex`: renewals may be answered until
/// the durable expiry less the valid lifetime. `None` if it does not fit the map.
pub fn lease_entry(b: &FastBinding, ifindex: u32, clock: &Clock) -> Option<LeaseEntry> {
    if b.ia_option.len() > IA_MAX {
        return None;
    }
    let mut ia = [0u8; IA_MAX];
    ia[..b.ia_option.len()].copy_from_slice(&b.ia_option);
    // The Client ID option: its 4-byte header, then the DUID (at an even offset).
    let duid_len = u16::try_from(b.duid.len()).ok()?.to_be_bytes();
    let client_id_sum = checksum::add(checksum::sum(&[0, 1, duid_len[0], duid_len[1]]), checksum::sum(b.duid));
    let resource = b.resource.network().octets();
    Some(LeaseEntry {
        // A second early: XDP reads the coarse clock, up to a tick behind this one.
        deadline_ns: clock.mono_ns(b.expires.saturating_sub(u64::from(b.valid))).saturating_sub(1_000_000_000),
        renewed_ns: 0,
        ifindex,
        client_id_sum: checksum::fold(client_id_sum) as u32,
        ia_sum: checksum::sum(&b.ia_option),
        resource,
        prefix_len: match b.ia_type {
            IaType::Na => 128,
            IaType::Pd => b.resource.prefix_len(),
        },
        ia_len: b.ia_option.len() as u8,
        flags: if b.renew_only { ENTRY_RENEW_ONLY } else { 0 } | if b.needs_pd_exclude { ENTRY_PD_EXCLUDE } else { 0 },
        _pad: 0,
        ia,
    })
}

/// Why an interface gets no fast path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkEntryError {
    #[error("the server DUID is not valid")]
    Duid,
    #[error("the {0} option is longer than the fast path holds")]
    TooLong(&'static str),
}

/// The link map value of an interface served from `subnet`.
pub fn link_entry(
    server_duid: &[u8],
    subnet: &Subnet,
    mac: [u8; 6],
    link_local: Ipv6Addr,
) -> Result<LinkEntry, LinkEntryError> {
    let duid = Duid::new(server_duid).map_err(|_| LinkEntryError::Duid)?;
    let server_id = DhcpOption::ServerId(duid).to_vec().map_err(|_| LinkEntryError::Duid)?;
    let dns = if subnet.dns_servers.is_empty() {
        Vec::new()
    } else {
        DhcpOption::DnsServers(subnet.dns_servers.clone()).to_vec().map_err(|_| LinkEntryError::TooLong("DNS"))?
    };
    let domains = if subnet.domain_search.is_empty() {
        Vec::new()
    } else {
        DhcpOption::DomainList(subnet.domain_search.clone())
            .to_vec()
            .map_err(|_| LinkEntryError::TooLong("domain search"))?
    };
    let mut entry = LinkEntry {
        mac,
        _pad: [0; 2],
        link_local: link_local.octets(),
        server_id_len: server_id.len() as u16,
        dns_len: dns.len() as u16,
        domains_len: domains.len() as u16,
        both_len: 0,
        server_id_sum: checksum::sum(&server_id),
        dns_sum: checksum::sum(&dns),
        domains_sum: checksum::sum(&domains),
        server_id: [0; SERVER_ID_MAX],
        dns: [0; OPTION_MAX],
        domains: [0; OPTION_MAX],
    };
    let fill = |to: &mut [u8], from: &[u8], what: &'static str| {
        to.get_mut(..from.len()).ok_or(LinkEntryError::TooLong(what))?.copy_from_slice(from);
        Ok(())
    };
    fill(&mut entry.server_id, &server_id, "Server ID")?;
    fill(&mut entry.dns, &dns, "DNS")?;
    fill(&mut entry.domains, &domains, "domain search")?;
    let both = dns.len() + domains.len();
    if !dns.is_empty() && !domains.is_empty() && both <= OPTION_MAX {
        entry.dns[dns.len()..both].copy_from_slice(&domains);
        entry.both_len = both as u16;
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_round_trips_unix_seconds() {
        let c = Clock::at(7_000_000_000_000, 1_800_000_000_000_000_000);
        let t = 1_900_000_000;
        assert_eq!(c.unix(c.mono_ns(t)), t);
        assert!(c.mono_ns(t + 10) - c.mono_ns(t) == 10_000_000_000);
        assert_eq!(c.mono_ns(0), 0, "before boot saturates");
    }
}
