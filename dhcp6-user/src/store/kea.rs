//! Moving leases in and out: Kea's memfile lease6 CSV in, our CSV out.
//!
//! Kea's memfile appends a line each time a lease changes, so the last line for an address is
//! its state; a released lease is written with a valid lifetime of 0.

use std::{collections::HashMap, net::Ipv6Addr};

use ipnet::Ipv6Net;

use crate::{
    codec::parse_hex,
    json::hex,
    server::{IaType, Lease, LeaseState},
};

/// A line of a Kea lease file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Kea lease file line {line}: {reason}")]
pub struct KeaError {
    pub line: usize,
    pub reason: String,
}

/// What an import found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeaImport {
    /// Leases still valid at `now`, by resource.
    pub leases: Vec<Lease>,
    /// Lines for leases that had ended (released, expired or reclaimed) by `now`.
    pub ended: usize,
    /// IA_TA leases, which dhcp6d does not serve.
    pub temporary: usize,
}

/// Reads a Kea 2.x lease6 CSV (header line first) as of `now` (Unix seconds).
pub fn parse_kea_leases(text: &str, now: u64) -> Result<KeaImport, KeaError> {
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().ok_or(KeaError { line: 1, reason: "empty file".into() })?;
    let columns: Vec<&str> = header.split(',').collect();
    let col = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .ok_or(KeaError { line: 1, reason: format!("no {name} column: not a Kea lease6 file") })
    };
    let (address, duid, valid, expire, preferred, lease_type, iaid, prefix_len, state) = (
        col("address")?,
        col("duid")?,
        col("valid_lifetime")?,
        col("expire")?,
        col("pref_lifetime")?,
        col("lease_type")?,
        col("iaid")?,
        col("prefix_len")?,
        col("state")?,
    );
    let mut last: HashMap<Ipv6Net, Option<Lease>> = HashMap::new();
    let mut import = KeaImport::default();
    for (i, line) in lines {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let err = |reason: &str| KeaError { line: n, reason: reason.to_string() };
        let field = |c: usize| fields.get(c).copied().ok_or_else(|| err("too few fields"));
        let number = |c: usize| -> Result<u64, KeaError> {
            field(c)?.parse().map_err(|_| err("a number field is not a number"))
        };
        let ia_type = match number(lease_type)? {
            0 => IaType::Na,
            2 => IaType::Pd,
            1 => {
                import.temporary += 1;
                continue;
            }
            _ => return Err(err("unknown lease_type")),
        };
        let addr: Ipv6Addr = field(address)?.parse().map_err(|_| err("address is not IPv6"))?;
        let len = u8::try_from(number(prefix_len)?).map_err(|_| err("prefix_len over 128"))?;
        let resource = Ipv6Net::new(addr, if ia_type == IaType::Na { 128 } else { len })
            .map_err(|_| err("prefix_len over 128"))?;
        let valid_lifetime = u32::try_from(number(valid)?).map_err(|_| err("valid_lifetime too large"))?;
        let expires = number(expire)?;
        let kea_state = number(state)?;
        let lease = if valid_lifetime == 0 || kea_state == 2 || expires <= now {
            None
        } else {
            Some(Lease {
                resource,
                ia_type,
                duid: parse_hex(field(duid)?).filter(|d| d.len() >= 2).ok_or_else(|| err("duid is not hex"))?,
                iaid: u32::try_from(number(iaid)?).map_err(|_| err("iaid too large"))?,
                subnet: 0,
                state: if kea_state == 1 { LeaseState::Declined } else { LeaseState::Bound },
                preferred_lifetime: u32::try_from(number(preferred)?).map_err(|_| err("pref_lifetime too large"))?,
                valid_lifetime,
                expires,
                interface: None,
                reconfigure_key: None,
                relay: None,
            })
        };
        last.insert(resource, lease);
    }
    for lease in last.into_values() {
        match lease {
            Some(l) => import.leases.push(l),
            None => import.ended += 1,
        }
    }
    import.leases.sort_by_key(|l| (l.resource.addr(), l.resource.prefix_len()));
    Ok(import)
}

/// The header of [`to_csv`]'s output.
pub const CSV_HEADER: &str = "resource,type,state,duid,iaid,preferred_lifetime,valid_lifetime,expires,interface";

/// Leases as CSV, one line each after a header, sorted by resource.
pub fn to_csv(leases: &mut [Lease]) -> String {
    leases.sort_by_key(|l| (l.resource.addr(), l.resource.prefix_len()));
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for l in leases.iter() {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            l.resource,
            l.ia_type.name(),
            l.state.name(),
            hex(&l.duid),
            l.iaid,
            l.preferred_lifetime,
            l.valid_lifetime,
            l.expires,
            l.interface.as_deref().unwrap_or("")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEA: &str = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source
2001:db8:1::100,00:01:00:01:32:96:98:78:02:00:00:00:00:c0,12,2000,1,8,0,192,128,0,0,,02:00:00:00:00:c0,0,,1,2
2001:db8:8000::,00:01:00:01:32:96:98:78:02:00:00:00:00:c0,12,2000,1,8,2,192,56,0,0,,,0,,,
2001:db8:1::101,00:01:00:01:32:96:98:78:02:00:00:00:00:c1,12,2000,1,8,0,193,128,0,0,,,0,,,
2001:db8:1::101,00:01:00:01:32:96:98:78:02:00:00:00:00:c1,0,1990,1,8,0,193,128,0,0,,,0,,,
2001:db8:1::102,00:01:00:01:32:96:98:78:02:00:00:00:00:c2,12,1000,1,8,0,194,128,0,0,,,0,,,
2001:db8:1::103,00:01:00:01:32:96:98:78:02:00:00:00:00:c3,12,2000,1,8,0,195,128,0,0,,,1,,,
";

    #[test]
    fn the_last_line_of_each_address_wins_and_ended_leases_are_left_out() {
        let import = parse_kea_leases(KEA, 1500).unwrap();
        let got: Vec<(String, LeaseState, u32)> =
            import.leases.iter().map(|l| (l.resource.to_string(), l.state, l.iaid)).collect();
        assert_eq!(
            got,
            vec![
                ("2001:db8:1::100/128".into(), LeaseState::Bound, 192),
                ("2001:db8:1::103/128".into(), LeaseState::Declined, 195),
                ("2001:db8:8000::/56".into(), LeaseState::Bound, 192),
            ]
        );
        assert_eq!(import.ended, 2, "::101 was released, ::102 expired");
        assert_eq!(import.leases[0].expires, 2000);
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let bad = KEA.replace("2001:db8:1::102,", "2001:zz8:1::102,");
        assert_eq!(parse_kea_leases(&bad, 0).unwrap_err().line, 6);
        assert!(parse_kea_leases("a,b\n", 0).unwrap_err().reason.contains("not a Kea lease6 file"));
    }

    #[test]
    fn csv_export_has_one_line_per_lease() {
        let mut leases = parse_kea_leases(KEA, 1500).unwrap().leases;
        let csv = to_csv(&mut leases);
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.contains("2001:db8:8000::/56,ia_pd,bound,00:01:00:01:32:96:98:78:02:00:00:00:00:c0,192,8,12,2000,"));
    }
}
