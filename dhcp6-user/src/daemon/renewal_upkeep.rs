//! Upkeep of the XDP Renew/Rebind answer's maps: keeping them in step with the engine.
//!
//! Order is what keeps the durability invariant: an entry leaves the lease map before the
//! store records that its lease ended (Release, Decline, expiry, operator action), and an
//! entry enters it, or its deadline moves forward, only after the store made the lease's
//! expiry durable. XDP stamps the entry of each binding whose renewal it answers; as a
//! binding's deadline comes near, its stamp is read, the later expiry it gives made durable,
//! and only then the deadline moved. Each binding is looked at a few times per deadline
//! (halving the time left), however often its client renews.
//!
//! Commits run behind the engine, on the commit thread (see [`super::committer`]), and so do
//! the lease map's writes: for each batch the engine works out what the map loses and gains
//! ([`MapOps`], from the leases as the batch leaves them), and the commit thread removes
//! entries before it writes the batch to the store and adds them once that is durable, batch
//! after batch in the engine's order. The engine's own thread no longer waits on the map's
//! system calls (a tenth of its time at full load).

use std::collections::{BTreeMap, HashMap};

use aya::maps::{HashMap as BpfHashMap, MapData};
use dhcp6_common::renewal::{LeaseEntry, LeaseKey};
use ipnet::Ipv6Net;
use tracing::{info, warn};

use super::{
    committer::{MapOps, MapWriter},
    interface::{link_local, mac_address},
    xdp_tx_check::XdpTxCheck,
};
use crate::{
    control::XdpTxOff,
    renewal::{ia_type_of, lease_entry, lease_key, link_entry, Clock},
    server::{FastBinding, LeaseChange, LeaseState, Server},
    xdp::{clock_now, FastPathMaps},
};

/// Most lease map entries whose stamps are read per call of [`RenewalUpkeep::take_renewals`]:
/// bindings written in one burst (at a start) have their looks spread over several ticks.
pub const STAMP_READS: usize = 50_000;
/// Seconds before its deadline from which a binding is no longer looked at: a renewal XDP
/// answers after the last look goes unrecorded (the client was told no more than the store
/// holds), and the client's next renewal, past the deadline, is answered from userspace.
const LAST_LOOK: u64 = 2;

/// Least time between two warnings that bindings could not be written (a full map fails
/// every write: one line per binding would cost more than the writes).
const WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// A binding with an entry in the lease map.
#[derive(Clone, Copy)]
struct Written {
    key: LeaseKey,
    /// Unix seconds up to which XDP may answer its renewals.
    deadline: u64,
}

pub struct RenewalUpkeep {
    leases: BpfHashMap<MapData, LeaseKey, LeaseEntry>,
    links: BpfHashMap<MapData, u32, dhcp6_common::renewal::LinkEntry>,
    /// The lease map's writer, until the commit thread takes it.
    writer: Option<LeaseMapWriter>,
    /// Served interfaces: name -> ifindex.
    interfaces: HashMap<String, u32>,
    /// Interfaces whose link entry is written.
    linked: Vec<String>,
    /// Whether XDP's answers reach each interface's link.
    tx_check: XdpTxCheck,
    /// Interfaces whose XDP_TX frames do not reach the link: they stay without a link entry.
    tx_off: Vec<XdpTxOff>,
    /// Each resource with an entry in the lease map (or one on its way there). Made as large
    /// as the map at the start:
    /// growing it past half a million entries stalled the engine for a tenth of a second
    /// (every entry rehashed, and the new table's pages faulted in at once), while its pages
    /// are only touched as entries come.
    written: hashbrown::HashMap<Ipv6Net, Written>,
    /// Entries the lease map holds at most: past that many in `written`, a new binding is not
    /// planned at all (the map would refuse it, after the table above had grown for it).
    capacity: usize,
    /// New bindings left to userspace because the map was full, since the last warning, and
    /// when that was.
    left_out: u64,
    warned_full: Option<std::time::Instant>,
    /// When to read a binding's renewal stamp. A look planned for a deadline since moved is
    /// skipped.
    looks: Looks,
}

/// Looks at bindings' renewal stamps: per Unix second, the (deadline it was planned for,
/// resource) of each look due then. A look is planned per binding written, so this holds
/// about one per binding: as a heap of a million it missed the cache on every push, where
/// appending to the second being filled touches what was just touched.
#[derive(Default)]
struct Looks(BTreeMap<u64, Vec<(u64, Ipv6Net)>>);

impl Looks {
    fn plan(&mut self, at: u64, deadline: u64, resource: Ipv6Net) {
        self.0.entry(at).or_default().push((deadline, resource));
    }

    /// A look due by `now`, if there is one.
    fn take_due(&mut self, now: u64) -> Option<(u64, Ipv6Net)> {
        loop {
            let mut first = self.0.first_entry()?;
            if *first.key() > now {
                return None;
            }
            match first.get_mut().pop() {
                Some(look) => {
                    if first.get().is_empty() {
                        first.remove();
                    }
                    return Some(look);
                }
                None => {
                    first.remove();
                }
            }
        }
    }
}

impl RenewalUpkeep {
    pub fn new(maps: FastPathMaps, interfaces: HashMap<String, u32>) -> RenewalUpkeep {
        let FastPathMaps { leases, links, lease_writer, lease_capacity } = maps;
        RenewalUpkeep {
            leases,
            links,
            writer: Some(LeaseMapWriter::new(lease_writer)),
            interfaces,
            linked: Vec::new(),
            tx_check: XdpTxCheck::default(),
            tx_off: Vec::new(),
            written: hashbrown::HashMap::with_capacity(lease_capacity as usize),
            capacity: lease_capacity as usize,
            left_out: 0,
            warned_full: None,
            looks: Looks::default(),
        }
    }

    /// The lease map's writer, for the commit thread (once).
    pub fn take_writer(&mut self) -> Option<LeaseMapWriter> {
        self.writer.take()
    }

    /// Interfaces where XDP no longer answers renewals, and why.
    pub fn xdp_tx_off(&self) -> &[XdpTxOff] {
        &self.tx_off
    }

    /// Writes the link entry of each served interface that has its addresses; those without
    /// (a link-local address still tentative) are tried again on the next call. First, each
    /// interface's XDP_TX is checked: one whose answers do not reach the link loses its entry
    /// for good (XDP passes its renewals up, and userspace answers them).
    pub fn ensure_links(&mut self, server: &Server) {
        for (name, ifindex) in &self.interfaces {
            if self.tx_off.iter().any(|o| &o.interface == name) {
                continue;
            }
            if let Some(why) = self.tx_check.check(name, *ifindex) {
                // Absent already if it was never written (an earlier dhcp6d's is removed too).
                let _ = self.links.remove(ifindex);
                self.linked.retain(|l| l != name);
                warn!(interface = %name, "renewals on {name} are answered from userspace: XDP_TX frames do not reach the peer ({why})");
                self.tx_off.push(XdpTxOff { interface: name.clone(), reason: why.to_string() });
                continue;
            }
            if self.linked.contains(name) {
                continue;
            }
            let Some(subnet) = server.config().subnets.iter().find(|s| s.interface.as_deref() == Some(name)) else {
                continue;
            };
            let (Some(mac), Some(link_local)) = (mac_address(name), link_local(*ifindex)) else { continue };
            match link_entry(server.duid(), subnet, mac, link_local) {
                Ok(entry) => {
                    if let Err(e) = self.links.insert(*ifindex, entry, 0) {
                        warn!(interface = %name, error = %e, "writing the fast path's link entry failed");
                        continue;
                    }
                    info!(interface = %name, %link_local, "XDP answers renewals here");
                    self.linked.push(name.clone());
                }
                Err(e) => {
                    // An entry written before a reload would answer with the old options.
                    let _ = self.links.remove(ifindex);
                    warn!(interface = %name, error = %e, "no XDP fast path on this interface");
                    self.linked.push(name.clone());
                }
            }
        }
    }

    /// Writes every link entry again, from the server's configuration as it is now (a reload
    /// may have changed the options they hold).
    pub fn relink(&mut self, server: &Server) {
        self.linked.clear();
        self.ensure_links(server);
    }

    /// What `changes`, handed to the store in one batch, do to the lease map: entries of
    /// leases that end, change hands or no longer fit go (before the batch is written), and
    /// the bindings they leave bound, as the engine now has them, come in (once it is
    /// durable). Every batch handed to the store goes through here.
    pub fn ops(&mut self, server: &Server, changes: &[LeaseChange]) -> MapOps {
        let mut ops = MapOps::default();
        for change in changes {
            let resource = change.resource();
            let ends = !matches!(change, LeaseChange::Upsert(l) if l.state == LeaseState::Bound);
            let key = self.written.get(resource).map(|w| w.key);
            let moved = match (change, &key) {
                (LeaseChange::Upsert(l), Some(k)) => {
                    k.duid() != l.duid.as_slice() || k.iaid != l.iaid || ia_type_of(k.ia_type) != Some(l.ia_type)
                }
                _ => false,
            };
            if let (true, Some(key)) = (ends || moved, key) {
                self.written.remove(resource);
                ops.removals.push(key);
            }
        }
        let clock = clock_now();
        for change in changes {
            let LeaseChange::Upsert(l) = change else { continue };
            if l.state != LeaseState::Bound {
                continue;
            }
            let entry = server.fast_binding(&l.duid, l.iaid, l.ia_type).and_then(|b| self.entry(&b, &clock));
            match entry {
                Some(e) => ops.entries.push(e),
                None => {
                    if let Some(w) = self.written.remove(&l.resource) {
                        ops.removals.push(w.key);
                    }
                }
            }
        }
        ops
    }

    /// The store refused `changes` (the engine forgets their leases): their entries go.
    pub fn refused(&mut self, changes: &[LeaseChange]) -> MapOps {
        let mut ops = MapOps::default();
        for change in changes {
            if let Some(w) = self.written.remove(change.resource()) {
                ops.removals.push(w.key);
            }
        }
        ops
    }

    /// One binding's entry, recorded as written (its look planned); None if it does not fit.
    fn entry(&mut self, b: &FastBinding, clock: &Clock) -> Option<(LeaseKey, LeaseEntry)> {
        let ifindex = self.interfaces.get(b.interface).copied()?;
        if self.written.len() >= self.capacity && !self.written.contains_key(&b.resource) {
            self.map_full();
            return None;
        }
        let (key, value) = (lease_key(b)?, lease_entry(b, ifindex, clock)?);
        let deadline = b.expires.saturating_sub(u64::from(b.valid));
        self.written.insert(b.resource, Written { key, deadline });
        self.plan_look(b.resource, deadline, clock.unix_now());
        Some((key, value))
    }

    /// A new binding did not fit the full map: said once a minute at most.
    fn map_full(&mut self) {
        self.left_out += 1;
        if self.warned_full.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            warn!(
                entries = self.capacity,
                left_out = self.left_out,
                "the fast path's lease map is full: new bindings' renewals are answered from userspace (see [server] fast_path_bindings)"
            );
            self.left_out = 0;
            self.warned_full = Some(std::time::Instant::now());
        }
    }

    /// Plans the next look at a binding's stamp: halfway to its deadline, or none this close
    /// to it.
    fn plan_look(&mut self, resource: Ipv6Net, deadline: u64, now: u64) {
        let left = deadline.saturating_sub(now);
        if left > LAST_LOOK {
            self.looks.plan(now + left / 2, deadline, resource);
        }
    }

    /// Reads the renewal stamps of up to `limit` bindings whose look is due: each renewal XDP
    /// answered since the binding was written moves its lease's durable expiry. Returns the
    /// changes to commit (then [`Self::ops`] rewrites the entries with the moved deadlines,
    /// which plans their next looks).
    pub fn take_renewals(&mut self, server: &mut Server, limit: usize) -> Vec<LeaseChange> {
        let clock = clock_now();
        let now = clock.unix_now();
        let mut changes = Vec::new();
        for _ in 0..limit {
            let Some((planned, resource)) = self.looks.take_due(now) else { break };
            let Some(w) = self.written.get(&resource).copied() else { continue };
            if w.deadline != planned {
                continue;
            }
            let stamp = self.leases.get(&w.key, 0).map_or(0, |e| e.renewed_ns);
            let change = match ia_type_of(w.key.ia_type) {
                Some(ia_type) if stamp != 0 => server.renewed(w.key.duid(), w.key.iaid, ia_type, clock.unix(stamp)),
                _ => None,
            };
            changes.extend(change);
            // Looked at again halfway to the deadline; once the commit moves the deadline,
            // the rewrite plans the binding's next look and this one is skipped.
            self.plan_look(resource, w.deadline, now);
        }
        changes
    }

    /// At start: the map as a previous dhcp6d left it, against the store. Renewals the map
    /// recorded that the ring lost move their leases' expiries (returned, to commit first);
    /// entries the engine does not back go; then every binding the fast path fits is written
    /// (after the caller's commit, by [`Self::rewrite_all`]).
    pub fn reconcile(&mut self, server: &mut Server) -> Vec<LeaseChange> {
        let clock = clock_now();
        let mut changes = Vec::new();
        let mut stale = Vec::new();
        for item in self.leases.iter() {
            let Ok((key, entry)) = item else { continue };
            let Some(ia_type) = ia_type_of(key.ia_type) else {
                stale.push(key);
                continue;
            };
            if entry.renewed_ns != 0 {
                changes.extend(server.renewed(key.duid(), key.iaid, ia_type, clock.unix(entry.renewed_ns)));
            }
            let backed = server
                .fast_binding(key.duid(), key.iaid, ia_type)
                .is_some_and(|b| self.interfaces.get(b.interface) == Some(&entry.ifindex));
            if !backed {
                stale.push(key);
            }
        }
        for key in &stale {
            let _ = self.leases.remove(key);
        }
        if !stale.is_empty() {
            info!(removed = stale.len(), "fast-path bindings the store does not back were removed");
        }
        changes
    }

    /// Writes every binding the fast path fits, as the engine has them (at start, before the
    /// commit thread takes the writer), in batches; those the map refuses are not recorded as
    /// written.
    pub fn rewrite_all(&mut self, server: &Server) {
        let started = std::time::Instant::now();
        let clock = clock_now();
        let bindings = server.fast_bindings();
        let mut resources = Vec::with_capacity(bindings.len());
        let mut keys = Vec::with_capacity(bindings.len());
        let mut values = Vec::with_capacity(bindings.len());
        for b in &bindings {
            if let Some((key, value)) = self.entry(b, &clock) {
                resources.push(b.resource);
                keys.push(key);
                values.push(value);
            }
        }
        let refused = match self.writer.as_mut() {
            Some(w) => w.insert_all(&keys, &values),
            None => (0..keys.len()).collect(),
        };
        for i in &refused {
            self.written.remove(&resources[*i]);
        }
        let written = keys.len() - refused.len();
        info!(bindings = written, ms = started.elapsed().as_millis() as u64, "fast-path bindings written");
    }
}

/// The lease map as the commit thread writes it.
pub struct LeaseMapWriter {
    map: BpfHashMap<MapData, LeaseKey, LeaseEntry>,
    /// Entries refused since the last warning, and when that was.
    refused: u64,
    warned: Option<std::time::Instant>,
}

impl LeaseMapWriter {
    pub fn new(map: BpfHashMap<MapData, LeaseKey, LeaseEntry>) -> LeaseMapWriter {
        LeaseMapWriter { map, refused: 0, warned: None }
    }

    /// Writes one entry; false if the map refused it (full, most likely), which is said once a
    /// minute at most: a full map refuses every write, and a line per binding would cost more
    /// than the writes.
    fn try_insert(&mut self, key: &LeaseKey, entry: &LeaseEntry) -> bool {
        let Err(e) = self.map.insert(key, entry, 0) else { return true };
        // Its renewals are answered from userspace.
        self.refused += 1;
        if self.warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            warn!(
                error = %e,
                refused = self.refused,
                "fast-path bindings could not be written (is the lease map full?): their renewals are answered from userspace"
            );
            self.refused = 0;
            self.warned = Some(std::time::Instant::now());
        }
        false
    }
}

impl LeaseMapWriter {
    /// Writes `keys[i]` -> `values[i]`, in batches; an entry the map refuses is written on its
    /// own (and said as [`Self::try_insert`] says it), and the batches go on after it. Returns
    /// the positions of the entries refused.
    fn insert_all(&mut self, keys: &[LeaseKey], values: &[LeaseEntry]) -> Vec<usize> {
        let mut refused = Vec::new();
        let mut at = 0;
        // Off once a batch wrote nothing where a single write did: a kernel without the batch
        // command for this map.
        let mut batching = true;
        while at < keys.len() {
            if batching {
                let (written, error) = crate::xdp::insert_batch(&self.map, &keys[at..], &values[at..]);
                at += written;
                if error.is_none() || at >= keys.len() {
                    break;
                }
                let ok = self.try_insert(&keys[at], &values[at]);
                batching = written > 0 || !ok;
                if !ok {
                    refused.push(at);
                }
            } else if !self.try_insert(&keys[at], &values[at]) {
                refused.push(at);
            }
            at += 1;
        }
        refused
    }
}

impl MapWriter for LeaseMapWriter {
    fn remove(&mut self, key: &LeaseKey) {
        // Absent already (never written, or refused): nothing to do.
        let _ = self.map.remove(key);
    }

    fn insert(&mut self, key: &LeaseKey, entry: &LeaseEntry) {
        self.try_insert(key, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv6Net {
        s.parse().expect("a prefix")
    }

    #[test]
    fn looks_come_due_by_second_and_not_before() {
        let mut looks = Looks::default();
        looks.plan(20, 40, net("2001:db8::2/128"));
        looks.plan(10, 30, net("2001:db8::1/128"));
        looks.plan(20, 41, net("2001:db8::3/128"));
        assert_eq!(looks.take_due(9), None);
        assert_eq!(looks.take_due(10), Some((30, net("2001:db8::1/128"))));
        assert_eq!(looks.take_due(19), None);
        let mut due: Vec<_> = std::iter::from_fn(|| looks.take_due(25)).collect();
        due.sort();
        assert_eq!(due, vec![(40, net("2001:db8::2/128")), (41, net("2001:db8::3/128"))]);
        assert_eq!(looks.take_due(u64::MAX), None);
        assert!(looks.0.is_empty(), "emptied seconds are dropped");
    }
}
