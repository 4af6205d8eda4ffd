//! The lease table: every lease the server holds, kept compact because a carrier server holds
//! millions. A lease is a 48-byte slot in a slab; DUIDs are interned once per client in one
//! byte arena; the indexes (by resource, by IA) are hash tables of slot numbers; deadlines are
//! per-second buckets of slot numbers, checked when they fire rather than kept exact.

use std::{collections::BTreeMap, hash::BuildHasher, net::Ipv6Addr};

use hashbrown::{DefaultHashBuilder, HashTable};
use ipnet::Ipv6Net;

use super::lease::{IaType, Lease, LeaseState, ReconfigureKey, RelayRecord};

const NONE: u32 = u32::MAX;
const FREE: u8 = u8::MAX;
const NO_INTERFACE: u16 = u16::MAX;

/// One lease. `expires` is u32 Unix seconds (good until 2106).
#[derive(Clone, Copy)]
struct Slot {
    addr: [u8; 16],
    prefix_len: u8,
    /// 0 IA_NA, 1 IA_PD, FREE for an empty slot.
    ia_type: u8,
    state: u8,
    interface: u16,
    subnet: u16,
    client: u32,
    iaid: u32,
    preferred: u32,
    valid: u32,
    /// Next slot of the same IA, or (in an empty slot) the next empty slot.
    next: u32,
    expires: u32,
}

/// A client's DUID in the arena and how many slots refer to it.
#[derive(Clone, Copy)]
struct Client {
    offset: u32,
    len: u8,
    leases: u32,
}

/// A lease read in place by [`LeaseTable::ia_leases`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseView<'a> {
    pub resource: Ipv6Net,
    pub state: LeaseState,
    pub subnet: usize,
    pub interface: Option<&'a str>,
    pub expires: u64,
}

/// The leases of one IA, following the slots' chain.
pub struct IaLeases<'a> {
    table: &'a LeaseTable,
    at: u32,
}

impl<'a> Iterator for IaLeases<'a> {
    type Item = LeaseView<'a>;

    fn next(&mut self) -> Option<LeaseView<'a>> {
        let slot = self.table.slots.get(self.at as usize)?;
        self.at = slot.next;
        Some(LeaseView {
            // prefix_len was valid when stored.
            resource: Ipv6Net::new(Ipv6Addr::from(slot.addr), slot.prefix_len).unwrap_or_default(),
            state: state_of(slot.state),
            subnet: usize::from(slot.subnet),
            interface: self.table.interfaces.get(usize::from(slot.interface)).map(String::as_str),
            expires: u64::from(slot.expires),
        })
    }
}

fn state_code(s: LeaseState) -> u8 {
    match s {
        LeaseState::Offered => 0,
        LeaseState::Bound => 1,
        LeaseState::Expired => 2,
        LeaseState::Declined => 3,
    }
}

fn state_of(c: u8) -> LeaseState {
    match c {
        0 => LeaseState::Offered,
        1 => LeaseState::Bound,
        2 => LeaseState::Expired,
        _ => LeaseState::Declined,
    }
}

fn type_code(t: IaType) -> u8 {
    match t {
        IaType::Na => 0,
        IaType::Pd => 1,
    }
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// A hash index of table positions that keeps each entry's hash (32 bits of it): growing it
/// does not read the slots or the DUIDs again (with a million leases, rehashing from them
/// stalled the engine for a third of a second, every read missing the cache), and a lookup
/// compares hashes before it looks at a slot. It is cut into [`SHARDS`] tables by the top bits
/// of the hash, each growing on its own: a table grows by rehashing all it holds in one go,
/// which for a whole index of two million stalled the engine for 30 to 70 ms (the socket
/// filled, and Solicits were shed); a shard's growth takes a 64th of that, and the shards
/// reach their sizes at different times.
struct Index(Vec<HashTable<(u32, u32)>>);

/// How many tables an [`Index`] is cut into.
const SHARDS: usize = 64;

impl Default for Index {
    fn default() -> Self {
        Index((0..SHARDS).map(|_| HashTable::new()).collect())
    }
}

impl Index {
    /// The 64-bit hash a shard uses: its control bytes come from the top bits, its buckets from
    /// the bottom ones, both mixed from all 32 (the top 6 bits are the same in a shard).
    fn spread(h: u32) -> u64 {
        u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn shard(&self, h: u32) -> &HashTable<(u32, u32)> {
        &self.0[(h >> 26) as usize % SHARDS]
    }

    fn shard_mut(&mut self, h: u32) -> &mut HashTable<(u32, u32)> {
        &mut self.0[(h >> 26) as usize % SHARDS]
    }

    fn find(&self, hash: u32, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.shard(hash).find(Self::spread(hash), |&(at, h)| h == hash && eq(at)).map(|e| e.0)
    }

    fn insert(&mut self, hash: u32, at: u32) {
        self.shard_mut(hash).insert_unique(Self::spread(hash), (at, hash), |&(_, h)| Self::spread(h));
    }

    fn remove(&mut self, hash: u32, at: u32) {
        if let Ok(e) = self.shard_mut(hash).find_entry(Self::spread(hash), |&(x, _)| x == at) {
            e.remove();
        }
    }

    fn shrink_to_fit(&mut self) {
        for shard in &mut self.0 {
            shard.shrink_to_fit(|&(_, h)| Self::spread(h));
        }
    }
}

/// The lease table. See the module documentation.
#[derive(Default)]
pub struct LeaseTable {
    slots: Vec<Slot>,
    free_slot: u32,
    live: usize,
    by_resource: Index,
    by_ia: Index,
    clients: Vec<Client>,
    free_clients: Vec<u32>,
    by_duid: Index,
    arena: Vec<u8>,
    arena_garbage: usize,
    interfaces: Vec<String>,
    /// The relays of each relayed client's last message, by client: kept beside the slots,
    /// which stay 48 bytes, since directly attached clients have none.
    relays: hashbrown::HashMap<u32, std::sync::Arc<RelayRecord>>,
    deadlines: BTreeMap<u32, Vec<u32>>,
    /// The Reconfigure Key of each client that has one, by client: few clients accept
    /// Reconfigure, and a key in every slot would make each lease a third larger.
    keys: hashbrown::HashMap<u32, ReconfigureKey>,
    /// Per subnet that limits its clients: live (not declined) leases per client.
    subnet_clients: Vec<Option<hashbrown::HashMap<u32, u32>>>,
    hasher: DefaultHashBuilder,
    /// The first slot [`Self::ia_leases`] last read: an IA's lease is read, then written
    /// (an offer bound, a binding renewed), and the write finds it here rather than through
    /// the resource index, which in a table of millions misses the cache twice.
    recent: std::cell::Cell<u32>,
}

impl LeaseTable {
    /// A table; `limited[i]` says whether subnet `i` counts its clients.
    pub fn new(limited: Vec<bool>) -> LeaseTable {
        LeaseTable {
            free_slot: NONE,
            recent: std::cell::Cell::new(NONE),
            subnet_clients: limited.into_iter().map(|l| l.then(hashbrown::HashMap::new)).collect(),
            ..LeaseTable::default()
        }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn resource_of(slot: &Slot) -> (u128, u8) {
        (u128::from_be_bytes(slot.addr), slot.prefix_len)
    }

    fn hash_resource(&self, key: (u128, u8)) -> u32 {
        self.hasher.hash_one(key) as u32
    }

    /// An IA's hash is of its DUID's bytes rather than of its interned client, so that looking
    /// an IA up does not look the client up first (in a table of millions, four reads that miss
    /// the cache).
    fn hash_ia(&self, duid: &[u8], iaid: u32, ia_type: u8) -> u32 {
        self.hasher.hash_one((duid, iaid, ia_type)) as u32
    }

    fn hash_duid(&self, duid: &[u8]) -> u32 {
        self.hasher.hash_one(duid) as u32
    }

    fn duid(&self, client: u32) -> &[u8] {
        let c = self.clients[client as usize];
        &self.arena[c.offset as usize..c.offset as usize + usize::from(c.len)]
    }

    fn find_client(&self, duid: &[u8]) -> Option<u32> {
        self.by_duid.find(self.hash_duid(duid), |c| self.duid(c) == duid)
    }

    fn intern_client(&mut self, duid: &[u8]) -> u32 {
        if let Some(c) = self.find_client(duid) {
            return c;
        }
        let offset = self.arena.len() as u32;
        self.arena.extend_from_slice(duid);
        // DUIDs are at most 130 bytes (checked by the codec and the journal).
        let client = Client { offset, len: duid.len().min(255) as u8, leases: 0 };
        let index = match self.free_clients.pop() {
            Some(i) => {
                self.clients[i as usize] = client;
                i
            }
            None => {
                self.clients.push(client);
                (self.clients.len() - 1) as u32
            }
        };
        let h = self.hash_duid(duid);
        self.by_duid.insert(h, index);
        index
    }

    fn release_client(&mut self, client: u32) {
        let c = &mut self.clients[client as usize];
        c.leases -= 1;
        if c.leases > 0 {
            return;
        }
        self.relays.remove(&client);
        let h = self.hash_duid(self.duid(client));
        self.by_duid.remove(h, client);
        self.keys.remove(&client);
        self.arena_garbage += usize::from(self.clients[client as usize].len);
        self.free_clients.push(client);
        if self.arena_garbage > (1 << 20) && self.arena_garbage * 2 > self.arena.len() {
            self.compact_arena();
        }
    }

    /// Rewrites the DUID arena without the DUIDs of departed clients.
    fn compact_arena(&mut self) {
        let free: std::collections::HashSet<u32> = self.free_clients.iter().copied().collect();
        let mut arena = Vec::with_capacity(self.arena.len() - self.arena_garbage);
        for (i, c) in self.clients.iter_mut().enumerate() {
            if free.contains(&(i as u32)) {
                continue;
            }
            let start = c.offset as usize;
            c.offset = arena.len() as u32;
            arena.extend_from_slice(&self.arena[start..start + usize::from(c.len)]);
        }
        self.arena = arena;
        self.arena_garbage = 0;
    }

    fn interface_code(&mut self, name: Option<&str>) -> u16 {
        let Some(name) = name else { return NO_INTERFACE };
        if let Some(i) = self.interfaces.iter().position(|n| n == name) {
            return i as u16;
        }
        if self.interfaces.len() >= usize::from(NO_INTERFACE) {
            return NO_INTERFACE;
        }
        self.interfaces.push(name.to_string());
        (self.interfaces.len() - 1) as u16
    }

    fn slot_of(&self, resource: &Ipv6Net) -> Option<u32> {
        let key = (u128::from(resource.addr()), resource.prefix_len());
        let recent = self.recent.get();
        if let Some(slot) = self.slots.get(recent as usize) {
            if slot.ia_type != FREE && Self::resource_of(slot) == key {
                return Some(recent);
            }
        }
        let h = self.hash_resource(key);
        self.by_resource.find(h, |s| Self::resource_of(&self.slots[s as usize]) == key)
    }

    pub fn contains(&self, resource: &Ipv6Net) -> bool {
        self.slot_of(resource).is_some()
    }

    fn lease_at(&self, s: u32) -> Lease {
        let slot = &self.slots[s as usize];
        Lease {
            // prefix_len was valid when stored.
            resource: Ipv6Net::new(Ipv6Addr::from(slot.addr), slot.prefix_len).unwrap_or_default(),
            ia_type: if slot.ia_type == 0 { IaType::Na } else { IaType::Pd },
            duid: self.duid(slot.client).to_vec(),
            iaid: slot.iaid,
            subnet: usize::from(slot.subnet),
            state: state_of(slot.state),
            preferred_lifetime: slot.preferred,
            valid_lifetime: slot.valid,
            expires: u64::from(slot.expires),
            interface: self.interfaces.get(usize::from(slot.interface)).cloned(),
            reconfigure_key: self.keys.get(&slot.client).copied(),
            relay: self.relays.get(&slot.client).cloned(),
        }
    }

    /// Keeps what `lease` says of the relays of its client's last message.
    fn note_relay(&mut self, client: u32, lease: &Lease) {
        match &lease.relay {
            Some(r) => {
                self.relays.insert(client, r.clone());
            }
            None if !self.relays.is_empty() => {
                self.relays.remove(&client);
            }
            None => {}
        }
    }

    /// Sets (or, with `None`, forgets) the Reconfigure Key of `client`.
    fn set_key(&mut self, client: u32, key: Option<ReconfigureKey>) {
        match key {
            Some(k) => {
                self.keys.insert(client, k);
            }
            None => {
                self.keys.remove(&client);
            }
        }
    }

    /// The Reconfigure Key of client `duid`, if it has one.
    pub fn reconfigure_key(&self, duid: &[u8]) -> Option<ReconfigureKey> {
        if self.keys.is_empty() {
            return None;
        }
        self.find_client(duid).and_then(|c| self.keys.get(&c).copied())
    }

    /// Whether any client has a Reconfigure Key.
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    pub fn get(&self, resource: &Ipv6Net) -> Option<Lease> {
        self.slot_of(resource).map(|s| self.lease_at(s))
    }

    fn counts_toward_limit(state: u8) -> bool {
        state != state_code(LeaseState::Declined)
    }

    fn count_client(&mut self, subnet: u16, client: u32, state: u8, delta: i64) {
        if !Self::counts_toward_limit(state) {
            return;
        }
        if let Some(Some(map)) = self.subnet_clients.get_mut(usize::from(subnet)) {
            let n = map.entry(client).or_insert(0);
            *n = (i64::from(*n) + delta).max(0) as u32;
            if *n == 0 {
                map.remove(&client);
            }
        }
    }

    /// Inserts or replaces the lease for `lease.resource`.
    pub fn put(&mut self, lease: &Lease) {
        if self.update_in_place(lease) {
            return;
        }
        self.remove(&lease.resource);
        let client = self.intern_client(&lease.duid);
        self.clients[client as usize].leases += 1;
        self.set_key(client, lease.reconfigure_key);
        self.note_relay(client, lease);
        let interface = self.interface_code(lease.interface.as_deref());
        let ia_type = type_code(lease.ia_type);
        let mut slot = Slot {
            addr: lease.resource.addr().octets(),
            prefix_len: lease.resource.prefix_len(),
            ia_type,
            state: state_code(lease.state),
            interface,
            subnet: u16::try_from(lease.subnet).unwrap_or(u16::MAX),
            client,
            iaid: lease.iaid,
            preferred: lease.preferred_lifetime,
            valid: lease.valid_lifetime,
            next: NONE,
            expires: clamp_u32(lease.expires),
        };
        // Link into the IA's list (declined leases belong to no IA).
        let in_ia = lease.state != LeaseState::Declined;
        let ia_hash = self.hash_ia(&lease.duid, lease.iaid, ia_type);
        let head = if in_ia {
            let slots = &self.slots;
            self.by_ia.find(ia_hash, |s| {
                let x = &slots[s as usize];
                (x.client, x.iaid, x.ia_type) == (client, lease.iaid, ia_type)
            })
        } else {
            None
        };
        // The new slot goes second in an existing IA list, so the head (the index's entry) stays.
        if let Some(h) = head {
            slot.next = self.slots[h as usize].next;
        }
        let index = match self.free_slot {
            NONE => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
            free => {
                self.free_slot = self.slots[free as usize].next;
                self.slots[free as usize] = slot;
                free
            }
        };
        if in_ia {
            match head {
                Some(h) => self.slots[h as usize].next = index,
                None => self.by_ia.insert(ia_hash, index),
            }
        }
        let key = Self::resource_of(&slot);
        let h = self.hash_resource(key);
        self.by_resource.insert(h, index);
        self.deadlines.entry(slot.expires).or_default().push(index);
        self.count_client(slot.subnet, client, slot.state, 1);
        self.live += 1;
    }

    /// Replaces the lease in its slot when only its state, times or interface change (an offer
    /// bound, a binding renewed): the same client's same IA, declined neither before nor
    /// after, in the same subnet. Its client, IA and resource entries stay as they are (a
    /// removal and an insertion would touch each index twice, and intern the DUID anew).
    fn update_in_place(&mut self, lease: &Lease) -> bool {
        let Some(s) = self.slot_of(&lease.resource) else { return false };
        let slot = self.slots[s as usize];
        let declined = state_code(LeaseState::Declined);
        let same = slot.ia_type == type_code(lease.ia_type)
            && slot.iaid == lease.iaid
            && slot.subnet == u16::try_from(lease.subnet).unwrap_or(u16::MAX)
            && slot.state != declined
            && lease.state != LeaseState::Declined
            && self.duid(slot.client) == lease.duid.as_slice();
        if !same {
            return false;
        }
        let interface = self.interface_code(lease.interface.as_deref());
        self.note_relay(slot.client, lease);
        let expires = clamp_u32(lease.expires);
        self.set_key(slot.client, lease.reconfigure_key);
        let e = &mut self.slots[s as usize];
        e.state = state_code(lease.state);
        e.interface = interface;
        e.preferred = lease.preferred_lifetime;
        e.valid = lease.valid_lifetime;
        if e.expires != expires {
            e.expires = expires;
            // The old deadline's entry goes stale; `due` skips it.
            self.deadlines.entry(expires).or_default().push(s);
        }
        true
    }

    /// Removes the lease for `resource`, returning it.
    pub fn remove(&mut self, resource: &Ipv6Net) -> Option<Lease> {
        let s = self.slot_of(resource)?;
        let lease = self.lease_at(s);
        let slot = self.slots[s as usize];
        let key = Self::resource_of(&slot);
        let h = self.hash_resource(key);
        self.by_resource.remove(h, s);
        if slot.state != state_code(LeaseState::Declined) {
            self.unlink_from_ia(s, &slot);
        }
        self.count_client(slot.subnet, slot.client, slot.state, -1);
        self.release_client(slot.client);
        let empty = &mut self.slots[s as usize];
        empty.ia_type = FREE;
        empty.next = self.free_slot;
        self.free_slot = s;
        self.live -= 1;
        Some(lease)
    }

    fn unlink_from_ia(&mut self, s: u32, slot: &Slot) {
        let ia_hash = self.hash_ia(self.duid(slot.client), slot.iaid, slot.ia_type);
        let head = {
            let slots = &self.slots;
            self.by_ia.find(ia_hash, |x| {
                let y = &slots[x as usize];
                (y.client, y.iaid, y.ia_type) == (slot.client, slot.iaid, slot.ia_type)
            })
        };
        let Some(head) = head else { return };
        if head == s {
            self.by_ia.remove(ia_hash, s);
            let next = slot.next;
            if next != NONE {
                self.by_ia.insert(ia_hash, next);
            }
        } else {
            let mut at = head;
            while self.slots[at as usize].next != NONE {
                if self.slots[at as usize].next == s {
                    self.slots[at as usize].next = slot.next;
                    break;
                }
                at = self.slots[at as usize].next;
            }
        }
    }

    /// The resources [`Self::ia_leases`] gives: what the tests compare with their model.
    #[cfg(test)]
    pub fn ia(&self, duid: &[u8], iaid: u32, ia_type: IaType) -> Vec<Ipv6Net> {
        self.ia_leases(duid, iaid, ia_type).map(|l| l.resource).collect()
    }

    /// The leases an IA holds (offered, bound or expired), in insertion order of the head,
    /// read in place: no [`Lease`] is built and no second lookup made per resource.
    pub fn ia_leases(&self, duid: &[u8], iaid: u32, ia_type: IaType) -> IaLeases<'_> {
        let t = type_code(ia_type);
        let head = self.by_ia.find(self.hash_ia(duid, iaid, t), |s| {
            let x = &self.slots[s as usize];
            x.iaid == iaid && x.ia_type == t && self.duid(x.client) == duid
        });
        if let Some(h) = head {
            self.recent.set(h);
        }
        IaLeases { table: self, at: head.unwrap_or(NONE) }
    }

    /// The IA (DUID, IAID, type) of every bound lease whose client was seen on an interface
    /// (came directly), an IA once per such lease it holds.
    pub fn bound_ias_on_interfaces(&self) -> impl Iterator<Item = (&[u8], u32, IaType)> + '_ {
        self.slots
            .iter()
            .filter(|s| s.ia_type != FREE && state_of(s.state) == LeaseState::Bound && s.interface != NO_INTERFACE)
            .map(|s| (self.duid(s.client), s.iaid, if s.ia_type == 0 { IaType::Na } else { IaType::Pd }))
    }

    /// Resources whose state may have ended by `now`; the caller checks each one's `expires`.
    pub fn due(&mut self, now: u64) -> Vec<Ipv6Net> {
        let now = clamp_u32(now);
        let mut out = Vec::new();
        while let Some(entry) = self.deadlines.first_entry() {
            if *entry.key() > now {
                break;
            }
            let (second, slots) = entry.remove_entry();
            for s in slots {
                let slot = &self.slots[s as usize];
                // Stale entries (the lease moved on, or the slot was freed) are skipped.
                if slot.ia_type != FREE && slot.expires == second {
                    out.push(Ipv6Net::new(Ipv6Addr::from(slot.addr), slot.prefix_len).unwrap_or_default());
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// How many clients hold leases in a subnet that limits them, and whether `duid` is one.
    pub fn subnet_clients(&self, subnet: usize, duid: &[u8]) -> Option<(usize, bool)> {
        let map = self.subnet_clients.get(subnet)?.as_ref()?;
        let me = self.find_client(duid).is_some_and(|c| map.contains_key(&c));
        Some((map.len(), me))
    }

    /// How many leases (in any state) client `duid` holds.
    pub fn client_leases(&self, duid: &[u8]) -> u32 {
        self.find_client(duid).map_or(0, |c| self.clients[c as usize].leases)
    }

    /// Every lease, built on demand.
    pub fn iter(&self) -> impl Iterator<Item = Lease> + '_ {
        (0..self.slots.len() as u32).filter(|s| self.slots[*s as usize].ia_type != FREE).map(|s| self.lease_at(s))
    }

    /// (resource, state, subnet) of every lease, without building leases.
    pub fn briefs(&self) -> impl Iterator<Item = (Ipv6Net, LeaseState, usize)> + '_ {
        self.slots.iter().filter(|s| s.ia_type != FREE).map(|s| {
            (
                Ipv6Net::new(Ipv6Addr::from(s.addr), s.prefix_len).unwrap_or_default(),
                state_of(s.state),
                usize::from(s.subnet),
            )
        })
    }

    /// Moves every lease, in place, to the subnet `renumber` gives for its old subnet,
    /// resource and type, and counts clients again for the subnets `limited` says limit them:
    /// a reload whose subnets moved, without building a single lease (a million take tens of
    /// milliseconds, not the seconds a new table takes).
    pub fn renumber_subnets(&mut self, limited: Vec<bool>, mut renumber: impl FnMut(usize, &Ipv6Net, IaType) -> usize) {
        self.subnet_clients = limited.into_iter().map(|l| l.then(hashbrown::HashMap::new)).collect();
        for i in 0..self.slots.len() {
            let slot = self.slots[i];
            if slot.ia_type == FREE {
                continue;
            }
            let resource = Ipv6Net::new(Ipv6Addr::from(slot.addr), slot.prefix_len).unwrap_or_default();
            let ia_type = if slot.ia_type == 0 { IaType::Na } else { IaType::Pd };
            let subnet = renumber(usize::from(slot.subnet), &resource, ia_type);
            let subnet = u16::try_from(subnet).unwrap_or(u16::MAX);
            self.slots[i].subnet = subnet;
            self.count_client(subnet, slot.client, slot.state, 1);
        }
    }

    /// Gives back memory held for growth (after loading, say).
    pub fn shrink_to_fit(&mut self) {
        self.slots.shrink_to_fit();
        self.clients.shrink_to_fit();
        self.arena.shrink_to_fit();
        self.by_resource.shrink_to_fit();
        self.by_ia.shrink_to_fit();
        self.by_duid.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn lease(addr: u16, client: u8, iaid: u32, state: LeaseState, expires: u64) -> Lease {
        Lease {
            resource: Ipv6Net::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, addr)),
            ia_type: IaType::Na,
            duid: vec![0, 3, 0, 1, client],
            iaid,
            subnet: 0,
            state,
            preferred_lifetime: 10,
            valid_lifetime: 20,
            expires,
            interface: Some("eth1".into()),
            reconfigure_key: None,
            relay: None,
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u16, u8, u32, bool, u64),
        Remove(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u16..24, 0u8..5, 0u32..3, any::<bool>(), 0u64..50).prop_map(|(a, c, i, d, e)| Op::Put(a, c, i, d, e)),
            (0u16..24).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// The table against a plain HashMap model: same leases, same IAs, same deadlines.
        #[test]
        fn behaves_like_a_map(ops in prop::collection::vec(op(), 0..200), now in 0u64..60) {
            let mut table = LeaseTable::new(vec![true]);
            let mut model: HashMap<Ipv6Net, Lease> = HashMap::new();
            for op in ops {
                match op {
                    Op::Put(a, c, i, declined, e) => {
                        let l = lease(a, c, i, if declined { LeaseState::Declined } else { LeaseState::Bound }, e);
                        table.put(&l);
                        model.insert(l.resource, l);
                    }
                    Op::Remove(a) => {
                        let r = Ipv6Net::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, a));
                        prop_assert_eq!(table.remove(&r), model.remove(&r));
                    }
                }
            }
            prop_assert_eq!(table.len(), model.len());
            for (r, l) in &model {
                prop_assert_eq!(table.get(r), Some(l.clone()));
            }
            for c in 0u8..5 {
                for i in 0u32..3 {
                    let mut got = table.ia(&[0, 3, 0, 1, c], i, IaType::Na);
                    got.sort();
                    let mut want: Vec<Ipv6Net> = model.values().filter(|l| l.duid == [0, 3, 0, 1, c] && l.iaid == i && l.state != LeaseState::Declined).map(|l| l.resource).collect();
                    want.sort();
                    prop_assert_eq!(got, want);
                }
            }
            let clients: std::collections::HashSet<&Vec<u8>> = model.values().filter(|l| l.state != LeaseState::Declined).map(|l| &l.duid).collect();
            prop_assert_eq!(table.subnet_clients(0, &[9]).map(|x| x.0), Some(clients.len()));
            let mut due = table.due(now);
            due.sort();
            let mut want: Vec<Ipv6Net> = model.values().filter(|l| l.expires <= now).map(|l| l.resource).collect();
            want.sort();
            prop_assert_eq!(due, want);
        }
    }

    #[test]
    fn a_reconfigure_key_is_the_clients_and_goes_with_its_last_lease() {
        let mut t = LeaseTable::new(vec![false]);
        let key = Some(ReconfigureKey([7; 16]));
        t.put(&Lease { reconfigure_key: key, ..lease(1, 7, 1, LeaseState::Bound, 100) });
        t.put(&lease(2, 8, 1, LeaseState::Bound, 100));
        t.put(&Lease { reconfigure_key: key, ..lease(3, 7, 2, LeaseState::Bound, 100) });
        assert_eq!(t.reconfigure_key(&[0, 3, 0, 1, 7]), key);
        assert_eq!(t.reconfigure_key(&[0, 3, 0, 1, 8]), None);
        assert_eq!(t.get(&lease(1, 7, 1, LeaseState::Bound, 0).resource).unwrap().reconfigure_key, key);
        // Renewed in place, still the client's; one lease gone, the other keeps it.
        t.put(&Lease { reconfigure_key: key, ..lease(1, 7, 1, LeaseState::Bound, 200) });
        t.remove(&lease(1, 7, 1, LeaseState::Bound, 0).resource);
        assert_eq!(t.reconfigure_key(&[0, 3, 0, 1, 7]), key);
        // The last lease gone: so is the key, and a new lease of the client has none.
        t.remove(&lease(3, 7, 2, LeaseState::Bound, 0).resource);
        t.put(&lease(4, 7, 1, LeaseState::Bound, 100));
        assert_eq!(t.reconfigure_key(&[0, 3, 0, 1, 7]), None);
        assert!(!t.has_keys());
    }

    #[test]
    fn a_lease_is_48_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 48);
    }

    #[test]
    fn an_index_is_spread_evenly_over_its_shards() {
        let mut t = LeaseTable::new(vec![false]);
        for i in 0..20_000u32 {
            let mut l = lease(0, 1, i, LeaseState::Bound, 100);
            l.resource = Ipv6Net::from(Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i)));
            t.put(&l);
        }
        let sizes: Vec<usize> = t.by_resource.0.iter().map(HashTable::len).collect();
        assert_eq!(sizes.len(), SHARDS);
        assert_eq!(sizes.iter().sum::<usize>(), 20_000);
        let mean = 20_000 / SHARDS;
        // Each grows on its own only if none holds much more than its share.
        assert!(sizes.iter().all(|&n| n > mean / 2 && n < mean * 3 / 2), "shard sizes {sizes:?}");
        for i in (0..20_000u32).step_by(997) {
            let r = Ipv6Net::from(Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i)));
            assert_eq!(t.get(&r).map(|l| l.iaid), Some(i));
        }
    }

    #[test]
    fn the_slot_last_read_is_found_only_while_it_holds_that_resource() {
        let mut t = LeaseTable::new(vec![false]);
        let first = lease(1, 7, 1, LeaseState::Offered, 100);
        t.put(&first);
        assert_eq!(t.ia_leases(&first.duid, 1, IaType::Na).count(), 1);
        // Bound: found through the slot just read.
        t.put(&lease(1, 7, 1, LeaseState::Bound, 200));
        assert_eq!(t.get(&first.resource).map(|l| l.state), Some(LeaseState::Bound));
        assert_eq!(t.ia_leases(&first.duid, 1, IaType::Na).count(), 1);
        // The slot freed, then reused for another resource: the first is gone.
        t.remove(&first.resource);
        let other = lease(2, 8, 1, LeaseState::Bound, 300);
        t.put(&other);
        assert_eq!(t.len(), 1);
        assert!(t.get(&first.resource).is_none());
        assert!(!t.contains(&first.resource));
        assert_eq!(t.get(&other.resource).map(|l| l.duid), Some(other.duid.clone()));
    }

    #[test]
    fn an_ias_leases_read_in_place_are_what_get_builds() {
        let mut t = LeaseTable::new(vec![false, false]);
        let first = lease(1, 7, 1, LeaseState::Bound, 100);
        let second = Lease { subnet: 1, interface: None, ..lease(2, 7, 1, LeaseState::Offered, 200) };
        t.put(&first);
        t.put(&second);
        t.put(&lease(3, 7, 2, LeaseState::Bound, 300));
        let views: Vec<LeaseView<'_>> = t.ia_leases(&first.duid, 1, IaType::Na).collect();
        assert_eq!(views.len(), 2);
        for v in views {
            let l = t.get(&v.resource).unwrap();
            assert_eq!(
                (v.state, v.subnet, v.interface, v.expires),
                (l.state, l.subnet, l.interface.as_deref(), l.expires)
            );
        }
        assert_eq!(t.ia_leases(&first.duid, 1, IaType::Pd).count(), 0);
        assert_eq!(t.ia_leases(&[0, 3, 0, 1, 9], 1, IaType::Na).count(), 0);
    }

    #[test]
    fn binding_an_offer_or_renewing_keeps_the_slot_and_the_client() {
        let mut t = LeaseTable::new(vec![false]);
        let offered = lease(1, 7, 1, LeaseState::Offered, 100);
        t.put(&offered);
        let slot = t.slot_of(&offered.resource).unwrap();
        let client = t.find_client(&offered.duid).unwrap();
        // Bound, then renewed: the same slot, the same interned client, no DUID garbage.
        t.put(&lease(1, 7, 1, LeaseState::Bound, 200));
        t.put(&lease(1, 7, 1, LeaseState::Bound, 300));
        assert_eq!(t.slot_of(&offered.resource), Some(slot));
        assert_eq!(t.find_client(&offered.duid), Some(client));
        assert_eq!(t.arena_garbage, 0);
        assert_eq!(t.len(), 1);
        assert_eq!(t.ia(&offered.duid, 1, IaType::Na), vec![offered.resource]);
        let got = t.get(&offered.resource).unwrap();
        assert_eq!((got.state, got.expires), (LeaseState::Bound, 300));
        // The earlier deadlines are stale: only the last one fires.
        assert!(t.due(299).is_empty());
        assert_eq!(t.due(300), vec![offered.resource]);
        // Another client, or a declined lease, is not an update in place.
        t.put(&lease(1, 8, 1, LeaseState::Bound, 400));
        assert_eq!(t.ia(&offered.duid, 1, IaType::Na), Vec::<Ipv6Net>::new());
        assert_eq!(t.get(&offered.resource).unwrap().duid, vec![0, 3, 0, 1, 8]);
        t.put(&lease(1, 8, 1, LeaseState::Declined, 500));
        assert_eq!(t.ia(&[0, 3, 0, 1, 8], 1, IaType::Na), Vec::<Ipv6Net>::new());
        assert_eq!(t.get(&offered.resource).unwrap().state, LeaseState::Declined);
    }
}
