//! A lease as a row of Kea's `lease6` table, and the statements that read and write rows.
//! The one place that knows the columns: a field added to [`Lease`] gets its column here.
//!
//! | column | dhcp6d's meaning |
//! |---|---|
//! | `address` | the address, or the delegated prefix's first address (RFC 5952 text, as Kea writes it) |
//! | `prefix_len` | 128 for an address, the delegated prefix's length |
//! | `lease_type` | 0 IA_NA, 2 IA_PD (Kea's IA_TA rows, 1, are left alone) |
//! | `duid`, `iaid` | the client's DUID and the IA's IAID (the IAID's 32 bits, as Kea's signed `INT`) |
//! | `subnet_id` | the subnet's position in dhcp6d's configuration; found again from the address at load |
//! | `state` | 0 bound, 1 declined, 2 expired (kept for the grace period) |
//! | `pref_lifetime`, `valid_lifetime` | as told to the client |
//! | `expire` | when the state ends; with XDP, a bound lease's valid lifetime plus the renewal horizon |
//! | `dhcp6d_interface` | the interface an on-link client came in on |
//! | `dhcp6d_server` | the DUID of the server that wrote the row last (NULL: Kea) |
//! | `dhcp6d_reconfigure_key` | the client's Reconfigure Key (16 octets), when it has one |
//! | `dhcp6d_relay` | the relays of the client's last message, for leasequery: the peer address (16 octets), then the Relay-Forward without the client's message |

use std::{net::Ipv6Addr, sync::Arc};

use ipnet::Ipv6Net;
use postgres::Row;

use crate::server::{IaType, Lease, LeaseState, ReconfigureKey, RelayRecord};

/// The columns [`from_row`] reads, in its order.
pub const SELECT: &str = "SELECT address, prefix_len, lease_type, duid, iaid, subnet_id, state, pref_lifetime, \
     valid_lifetime, extract(epoch FROM expire)::int8, dhcp6d_interface, dhcp6d_server, dhcp6d_reconfigure_key, \
     dhcp6d_relay FROM lease6";

/// Writes the rows of a [`Rows`]; `$12` is this server's DUID (`$13`, `$14`: the keys and
/// relays, after it). A row whose address another
/// client holds unexpired is not written and not returned (the database, not the engine's
/// table, decides who holds it). The same client's Bound lease may be rewritten by any
/// server; other states only by the server that wrote it last. Rows are taken in address order,
/// so that two servers' commits lock common rows in the same order (no deadlock). A bound
/// lease rewritten bound for the same client never gets an earlier expiry than the row has:
/// another server's XDP may answer renewals up to it.
pub const UPSERT: &str = "INSERT INTO lease6 AS l (address, prefix_len, lease_type, duid, iaid, subnet_id, state, \
         pref_lifetime, valid_lifetime, expire, dhcp6d_interface, dhcp6d_server, dhcp6d_reconfigure_key, \
         dhcp6d_relay, fqdn_fwd, fqdn_rev, hostname) \
     SELECT u.address, u.prefix_len, u.lease_type, u.duid, u.iaid, u.subnet_id, u.state, u.pref, u.valid, \
         to_timestamp(u.expire), u.interface, $12, u.key, u.relay, false, false, '' \
     FROM unnest($1::varchar[], $2::int2[], $3::int2[], $4::bytea[], $5::int4[], $6::int8[], $7::int8[], \
         $8::int8[], $9::int8[], $10::int8[], $11::text[], $13::bytea[], $14::bytea[]) \
         AS u(address, prefix_len, lease_type, duid, iaid, subnet_id, state, pref, valid, expire, interface, key, relay) \
     ORDER BY u.address \
     ON CONFLICT (address) DO UPDATE SET prefix_len = EXCLUDED.prefix_len, lease_type = EXCLUDED.lease_type, \
         duid = EXCLUDED.duid, iaid = EXCLUDED.iaid, subnet_id = EXCLUDED.subnet_id, state = EXCLUDED.state, \
         pref_lifetime = EXCLUDED.pref_lifetime, valid_lifetime = EXCLUDED.valid_lifetime, \
         expire = CASE WHEN l.state = 0 AND EXCLUDED.state = 0 AND l.duid = EXCLUDED.duid \
             AND l.iaid = EXCLUDED.iaid THEN greatest(l.expire, EXCLUDED.expire) ELSE EXCLUDED.expire END, \
         dhcp6d_interface = EXCLUDED.dhcp6d_interface, dhcp6d_server = EXCLUDED.dhcp6d_server, \
         dhcp6d_reconfigure_key = EXCLUDED.dhcp6d_reconfigure_key, dhcp6d_relay = EXCLUDED.dhcp6d_relay \
     WHERE l.expire < now() \
         OR (l.duid = EXCLUDED.duid AND l.iaid = EXCLUDED.iaid AND l.lease_type = EXCLUDED.lease_type \
             AND (EXCLUDED.state = 0 OR l.dhcp6d_server = EXCLUDED.dhcp6d_server)) \
     RETURNING l.address";

/// Deletes the rows at `$1`'s addresses that this server (`$2`) wrote last, or whose time is
/// up; returns the addresses deleted. A row another server has written since stays.
pub const DELETE: &str = "DELETE FROM lease6 AS l USING unnest($1::varchar[]) AS u(address) \
     WHERE l.address = u.address AND (l.dhcp6d_server = $2 OR l.expire < now()) RETURNING l.address";

/// The key of a resource's row.
pub fn address(resource: &Ipv6Net) -> String {
    resource.network().to_string()
}

/// Kea's `state` of a durable lease state (an offer is never written).
fn state_code(state: LeaseState) -> i64 {
    match state {
        LeaseState::Bound | LeaseState::Offered => 0,
        LeaseState::Declined => 1,
        LeaseState::Expired => 2,
    }
}

/// Leases as columns, the arrays [`UPSERT`] takes.
#[derive(Default)]
pub struct Rows {
    pub address: Vec<String>,
    prefix_len: Vec<i16>,
    lease_type: Vec<i16>,
    duid: Vec<Vec<u8>>,
    iaid: Vec<i32>,
    subnet_id: Vec<i64>,
    state: Vec<i64>,
    pref: Vec<i64>,
    valid: Vec<i64>,
    expire: Vec<i64>,
    interface: Vec<Option<String>>,
    key: Vec<Option<Vec<u8>>>,
    relay: Vec<Option<Vec<u8>>>,
}

impl Rows {
    pub fn push(&mut self, l: &Lease) {
        self.address.push(address(&l.resource));
        self.prefix_len.push(i16::from(l.resource.prefix_len()));
        self.lease_type.push(match l.ia_type {
            IaType::Na => 0,
            IaType::Pd => 2,
        });
        self.duid.push(l.duid.clone());
        // Kea's column is a signed INT: the IAID's bits, as Kea stores them.
        self.iaid.push(l.iaid as i32);
        self.subnet_id.push(l.subnet as i64);
        self.state.push(state_code(l.state));
        self.pref.push(i64::from(l.preferred_lifetime));
        self.valid.push(i64::from(l.valid_lifetime));
        self.expire.push(i64::try_from(l.expires).unwrap_or(i64::MAX));
        self.interface.push(l.interface.clone());
        self.key.push(l.reconfigure_key.map(|k| k.0.to_vec()));
        self.relay.push(l.relay.as_ref().map(|r| [&r.peer.octets()[..], &r.message].concat()));
    }

    pub fn is_empty(&self) -> bool {
        self.address.is_empty()
    }

    /// The parameters of [`UPSERT`], with this server's DUID.
    pub fn params<'a>(&'a self, server: &'a Vec<u8>) -> [&'a (dyn postgres::types::ToSql + Sync); 14] {
        [
            &self.address,
            &self.prefix_len,
            &self.lease_type,
            &self.duid,
            &self.iaid,
            &self.subnet_id,
            &self.state,
            &self.pref,
            &self.valid,
            &self.expire,
            &self.interface,
            server,
            &self.key,
            &self.relay,
        ]
    }
}

/// Why a row is not a lease dhcp6d serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("address {0:?} is not an IPv6 address")]
    Address(String),
    #[error("address {0}: prefix_len {1} is not from 0 to 128")]
    PrefixLen(String, i16),
    #[error("address {0}: unknown state {1}")]
    State(String, i64),
    #[error("address {0}: no DUID")]
    Duid(String),
    #[error("address {0}: {1}")]
    Column(String, String),
}

/// A row of the table: the lease, and who wrote it last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub lease: Lease,
    /// The DUID of the server that wrote the row last; `None`: Kea.
    pub writer: Option<Vec<u8>>,
}

/// A row as dhcp6d's lease and the DUID of the server that wrote it last; `Ok(None)` for
/// rows dhcp6d does not serve (IA_TA).
pub fn from_row(row: &Row) -> Result<Option<Stored>, RowError> {
    let address: String = row.try_get(0).map_err(|e| RowError::Column(String::new(), e.to_string()))?;
    let col = |e: postgres::Error| RowError::Column(address.clone(), e.to_string());
    let prefix_len: Option<i16> = row.try_get(1).map_err(col)?;
    let lease_type: Option<i16> = row.try_get(2).map_err(col)?;
    let ia_type = match lease_type {
        Some(0) | None => IaType::Na,
        Some(2) => IaType::Pd,
        Some(_) => return Ok(None),
    };
    let addr: Ipv6Addr = address.parse().map_err(|_| RowError::Address(address.clone()))?;
    let len = match ia_type {
        IaType::Na => 128,
        IaType::Pd => prefix_len.unwrap_or(128),
    };
    let resource = u8::try_from(len)
        .ok()
        .and_then(|l| Ipv6Net::new(addr, l).ok())
        .ok_or_else(|| RowError::PrefixLen(address.clone(), len))?;
    let duid: Option<Vec<u8>> = row.try_get(3).map_err(col)?;
    let duid = duid.filter(|d| !d.is_empty()).ok_or_else(|| RowError::Duid(address.clone()))?;
    let iaid: Option<i32> = row.try_get(4).map_err(col)?;
    let subnet: Option<i64> = row.try_get(5).map_err(col)?;
    let state: Option<i64> = row.try_get(6).map_err(col)?;
    let state = match state.unwrap_or(0) {
        0 => LeaseState::Bound,
        1 => LeaseState::Declined,
        2 => LeaseState::Expired,
        other => return Err(RowError::State(address.clone(), other)),
    };
    let pref: Option<i64> = row.try_get(7).map_err(col)?;
    let valid: Option<i64> = row.try_get(8).map_err(col)?;
    let expire: Option<i64> = row.try_get(9).map_err(col)?;
    let interface: Option<String> = row.try_get(10).map_err(col)?;
    let writer: Option<Vec<u8>> = row.try_get(11).map_err(col)?;
    let key: Option<Vec<u8>> = row.try_get(12).map_err(col)?;
    // A key of another length, or a relay record shorter than its peer address, is no key
    // or record (written by something else): the lease stands without it.
    let reconfigure_key = key.and_then(|k| <[u8; 16]>::try_from(k.as_slice()).ok()).map(ReconfigureKey);
    let relay: Option<Vec<u8>> = row.try_get(13).map_err(col)?;
    let relay = relay.filter(|r| r.len() >= 16).map(|r| {
        let peer: [u8; 16] = r[..16].try_into().unwrap_or([0; 16]);
        Arc::new(RelayRecord { peer: Ipv6Addr::from(peer), message: r[16..].to_vec() })
    });
    let lifetime = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    let lease = Lease {
        resource,
        ia_type,
        duid,
        iaid: iaid.unwrap_or(0) as u32,
        subnet: subnet.and_then(|s| usize::try_from(s).ok()).unwrap_or(0),
        state,
        preferred_lifetime: lifetime(pref),
        valid_lifetime: lifetime(valid),
        expires: expire.and_then(|e| u64::try_from(e).ok()).unwrap_or(0),
        interface: interface.filter(|i| !i.is_empty()),
        reconfigure_key,
        relay,
    };
    Ok(Some(Stored { lease, writer }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_iaid_past_i32_keeps_its_bits_and_states_map_to_keas() {
        let lease = Lease {
            resource: "2001:db8:8000::/56".parse().unwrap(),
            ia_type: IaType::Pd,
            duid: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1],
            iaid: 0xdead_beef,
            subnet: 3,
            state: LeaseState::Declined,
            preferred_lifetime: 100,
            valid_lifetime: 200,
            expires: 1_700_000_000,
            interface: None,
            reconfigure_key: Some(ReconfigureKey([7; 16])),
            relay: Some(Arc::new(RelayRecord { peer: "2001:db8:ff::2".parse().unwrap(), message: vec![12, 0] })),
        };
        let mut rows = Rows::default();
        rows.push(&lease);
        assert_eq!(rows.address, ["2001:db8:8000::"]);
        assert_eq!(rows.prefix_len, [56]);
        assert_eq!(rows.lease_type, [2]);
        assert_eq!(rows.iaid[0] as u32, 0xdead_beef);
        assert_eq!(rows.state, [1]);
        assert_eq!(rows.key, [Some(vec![7; 16])]);
        let relay = rows.relay[0].as_ref().unwrap();
        assert_eq!(
            (&relay[..16], &relay[16..]),
            (&"2001:db8:ff::2".parse::<Ipv6Addr>().unwrap().octets()[..], &[12, 0][..])
        );
        assert_eq!(address(&"2001:db8:1::100/128".parse().unwrap()), "2001:db8:1::100");
    }
}
