//! Storm protection's driver piece: writes the `[storm]` limit into XDP at start, and reads
//! back what XDP cut, for `show statistics`, `show storms` and the metrics. XDP keeps the
//! buckets and applies the limit ([`dhcp6_common::storm`]); this only reads.

use dhcp6_common::storm::{StormConfig, StormKey, StormRecord, KEY_MAC, NS_PER_SECOND, STORM_ID_BYTES};

use crate::{
    config::StormSettings,
    control::{StormClient, StormCounts, StormsAnswer, STORM_NOW_SECONDS},
    json::hex,
    xdp::{monotonic_ns, StormMaps, XdpError},
};

/// The limit in force and XDP's maps.
pub struct StormGuard {
    maps: StormMaps,
    settings: Option<StormSettings>,
}

impl StormGuard {
    /// Has XDP apply `settings` (none: storm protection off).
    pub fn start(mut maps: StormMaps, settings: Option<StormSettings>) -> Result<StormGuard, XdpError> {
        maps.set(settings.map_or(StormConfig::OFF, |s| StormConfig::new(s.rate, s.burst)))?;
        Ok(StormGuard { maps, settings })
    }

    /// What XDP cut, and how many clients it is limiting now.
    pub fn counts(&self) -> StormCounts {
        let (cut_by_mac, cut_by_duid) = self.maps.cut();
        let clients = limited_now(self.maps.records(), monotonic_ns()).count() as u64;
        StormCounts { cut_by_mac, cut_by_duid, clients }
    }

    /// `show storms`.
    pub fn answer(&self) -> StormsAnswer {
        let now = monotonic_ns();
        let (cut_by_mac, cut_by_duid) = self.maps.cut();
        let clients = storm_clients(self.maps.records(), now, |ifindex| {
            nix::net::if_::if_indextoname(ifindex).ok().and_then(|n| n.into_string().ok())
        });
        StormsAnswer {
            rate: self.settings.map(|s| s.rate),
            burst: self.settings.map(|s| s.burst),
            counts: StormCounts { cut_by_mac, cut_by_duid, clients: clients.len() as u64 },
            clients,
        }
    }
}

/// The records of clients cut within the last [`STORM_NOW_SECONDS`] at `now`.
fn limited_now(records: Vec<(StormKey, StormRecord)>, now: u64) -> impl Iterator<Item = (StormKey, StormRecord)> {
    let since = now.saturating_sub(STORM_NOW_SECONDS * NS_PER_SECOND);
    records.into_iter().filter(move |(_, r)| r.last_cut >= since)
}

/// The clients being limited at `now`, most cut first, their interfaces named by `name`.
fn storm_clients(
    records: Vec<(StormKey, StormRecord)>,
    now: u64,
    name: impl Fn(u32) -> Option<String>,
) -> Vec<StormClient> {
    let mut clients: Vec<StormClient> = limited_now(records, now)
        .map(|(key, r)| {
            let shown = (r.id_len as usize).min(STORM_ID_BYTES);
            let mut id = hex(&r.id[..shown]);
            if r.id_len as usize > STORM_ID_BYTES {
                id.push_str("..");
            }
            let mac = key.kind == KEY_MAC;
            StormClient {
                key: if mac { "mac" } else { "duid" }.to_string(),
                interface: if mac { name(key.ifindex) } else { None },
                id,
                cut: r.cut,
                cutting_for: now.saturating_sub(r.first_cut) / NS_PER_SECOND,
            }
        })
        .collect();
    clients.sort_by(|a, b| b.cut.cmp(&a.cut).then_with(|| a.id.cmp(&b.id)));
    clients
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &[u8], len: u32, cut: u64, first: u64, last: u64) -> StormRecord {
        let mut r = StormRecord { cut, first_cut: first, last_cut: last, id_len: len, ..Default::default() };
        r.id[..id.len()].copy_from_slice(id);
        r
    }

    #[test]
    fn only_clients_cut_recently_are_listed_most_cut_first() {
        let s = NS_PER_SECOND;
        let now = 100 * s;
        let mac = StormKey::mac(3, [2, 0, 0, 0, 0, 1]);
        let duid = StormKey::duid(42);
        let quiet = StormKey::mac(3, [2, 0, 0, 0, 0, 2]);
        let long_duid: Vec<u8> = (0..24).collect();
        let records = vec![
            (mac, record(&[2, 0, 0, 0, 0, 1], 6, 10, 90 * s, now - s)),
            (duid, record(&long_duid, 30, 500, 95 * s, now)),
            (quiet, record(&[2, 0, 0, 0, 0, 2], 6, 9_999, 10 * s, now - 3 * s)),
        ];
        let clients = storm_clients(records, now, |i| Some(format!("if{i}")));
        assert_eq!(clients.len(), 2, "the one cut 3 s ago is no longer limited: {clients:?}");
        assert_eq!((clients[0].key.as_str(), clients[0].cut, clients[0].cutting_for), ("duid", 500, 5));
        assert_eq!(clients[0].interface, None);
        assert!(clients[0].id.ends_with(":17.."), "a DUID longer than the record is cut short: {}", clients[0].id);
        assert_eq!(clients[1].key, "mac");
        assert_eq!(clients[1].interface.as_deref(), Some("if3"));
        assert_eq!(clients[1].id, hex(&[2, 0, 0, 0, 0, 1]));
    }
}
