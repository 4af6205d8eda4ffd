//! The daemon's side of the XDP relay: the maps written from the relay's configuration and
//! server state, the XDP relay's counters fed back into the server groups, and the Replies it
//! reported learnt from.
//!
//! XDP sends out one copy of a frame, so it relays only for groups that send each client to
//! one server ([`in_xdp`]). The access entries of groups that send to all their servers get no
//! link entry, and those groups' servers no server slot: XDP passes their clients' messages and
//! their servers' Relay-Replies up to userspace, as any DHCPv6 it does not handle, and the
//! XDP path of the other groups does not change.

use std::{
    collections::HashMap,
    net::{Ipv6Addr, SocketAddrV6, UdpSocket},
    os::fd::{AsFd, OwnedFd},
};

use aya::maps::MapError;
use dhcp6_common::relay::{
    AccessKey, ClientMacKey, InterfaceIdKey, RelayGroup, RelayReport, RelayServer, MAX_GROUPS, MAX_GROUP_SERVERS,
    REPORT_GIVING_BACK,
};
use tracing::{debug, info, warn};

use super::interface::{interface_addresses, link_local, mac_address};
use crate::{
    relay::{reload::RelayReloaded, xdp_head::relay_link, Relay, SendTo, ServerGroup},
    xdp::RelayMaps,
};

pub struct RelayXdp {
    maps: RelayMaps,
    /// Access interfaces (and VLANs) -> index in the relay's configuration.
    access: HashMap<AccessKey, usize>,
    /// Access interfaces whose link entry is written (or that XDP cannot relay on).
    linked: std::collections::HashSet<usize>,
    /// The Interface-ID written for each access entry (a reload may change the entry's).
    ids: HashMap<usize, InterfaceIdKey>,
    /// What each group's bucket map holds.
    buckets: Vec<Vec<u8>>,
    /// The server and the source written for each server slot.
    sources: HashMap<u32, (Ipv6Addr, Ipv6Addr)>,
    /// Counter totals already fed to the groups, per server slot.
    seen: HashMap<u32, (u64, u64)>,
}

/// The relay's own address toward `server`: the source the kernel would choose.
pub fn source_toward(server: Ipv6Addr) -> Option<Ipv6Addr> {
    let socket = UdpSocket::bind("[::]:0").ok()?;
    socket.connect(SocketAddrV6::new(server, dhcp6_codec::SERVER_PORT, 0, 0)).ok()?;
    match socket.local_addr().ok()? {
        std::net::SocketAddr::V6(a) => Some(*a.ip()),
        _ => None,
    }
}

/// The interfaces that hold `sources`, each once.
fn interfaces_holding(sources: impl IntoIterator<Item = Ipv6Addr>) -> Vec<String> {
    let addresses = interface_addresses();
    let mut out: Vec<String> = Vec::new();
    for source in sources {
        if let Some(a) = addresses.iter().find(|a| a.address == source) {
            if !out.contains(&a.name) {
                out.push(a.name.clone());
            }
        }
    }
    out
}

/// Whether XDP relays for `group`: only for a group that sends each client to one server.
fn in_xdp(group: &ServerGroup) -> bool {
    group.send_to == SendTo::One
}

/// The interfaces the relay's servers are reached through: XDP takes their Relay-Replies there.
pub fn upstream_interfaces(relay: &Relay) -> Vec<String> {
    let servers = relay.config().groups.iter().filter(|g| in_xdp(g)).flat_map(|g| g.servers.iter());
    interfaces_holding(servers.filter_map(|m| source_toward(m.address)))
}

fn slot(group: usize, server: usize) -> Option<u32> {
    let (g, s) = (u32::try_from(group).ok()?, u32::try_from(server).ok()?);
    (g < MAX_GROUPS && s < MAX_GROUP_SERVERS).then_some(g * MAX_GROUP_SERVERS + s)
}

fn map_error(what: &str, e: MapError) {
    warn!(error = %e, "writing the XDP relay's {what} failed");
}

impl RelayXdp {
    pub fn new(maps: RelayMaps, relay: &Relay) -> RelayXdp {
        let mut access = HashMap::new();
        let mut indexes: HashMap<&str, Option<u32>> = HashMap::new();
        let mut to_all = 0usize;
        for (n, iface) in relay.config().interfaces.iter().enumerate() {
            if !in_xdp(&relay.config().groups[iface.group]) {
                to_all += 1;
                continue;
            }
            let index = *indexes.entry(&iface.name).or_insert_with(|| super::socket::if_index(&iface.name));
            if let Some(ifindex) = index {
                access.insert(AccessKey { ifindex, vlans: iface.vlans }, n);
            }
        }
        if to_all > 0 {
            info!(entries = to_all, "relayed by userspace only: their groups send to all their servers");
        }
        RelayXdp {
            maps,
            access,
            linked: std::collections::HashSet::new(),
            ids: HashMap::new(),
            buckets: vec![Vec::new(); relay.config().groups.len()],
            sources: HashMap::new(),
            seen: HashMap::new(),
        }
    }

    /// The interfaces the servers are reached through, by the sources [`Self::sync`] last
    /// found (no route looked up again).
    pub fn upstream_interfaces(&self) -> Vec<String> {
        interfaces_holding(self.sources.values().map(|(_, source)| *source))
    }

    /// A duplicate of the report ring's descriptor, to wait on.
    pub fn ring_fd(&self) -> std::io::Result<OwnedFd> {
        self.maps.reports.as_fd().try_clone_to_owned()
    }

    /// Brings the maps in step with the relay: link entries of the access interfaces it
    /// `relays` on (a standby backup leaves its clients to the master) that have their
    /// addresses, each server's address and the relay's source toward it, the server of every
    /// bucket. Cheap when nothing changed; called every tick.
    pub fn sync(&mut self, relay: &Relay, now: u64, relays: impl Fn(usize) -> bool) {
        let config = relay.config();
        let mut addresses = HashMap::new();
        let mut newly = 0usize;
        for (key, n) in &self.access {
            if self.linked.contains(n) || !relays(*n) {
                continue;
            }
            let iface = &config.interfaces[*n];
            // Looked up once per interface (it may carry thousands of VLAN entries).
            let addresses =
                *addresses.entry(key.ifindex).or_insert_with(|| mac_address(&iface.name).zip(link_local(key.ifindex)));
            let Some((mac, ll)) = addresses else { continue };
            self.linked.insert(*n);
            let group = u32::try_from(iface.group).unwrap_or(u32::MAX);
            if group >= MAX_GROUPS {
                warn!(interface = %iface.label(), "relayed by userspace only: its group is past XDP's {MAX_GROUPS}");
                continue;
            }
            let entry = match relay_link(iface, group, mac, ll, relay.config().relay_id.as_deref()) {
                Ok(entry) => entry,
                Err(e) => {
                    warn!(interface = %iface.label(), reason = %e, "relayed by userspace only");
                    continue;
                }
            };
            let Some(id) = InterfaceIdKey::new(&iface.interface_id) else { continue };
            if let Err(e) = self.maps.interface_ids.insert(id, *key, 0) {
                map_error("Interface-ID map", e);
                continue;
            }
            self.ids.insert(*n, id);
            match self.maps.links.insert(*key, entry, 0) {
                Ok(()) => {
                    debug!(interface = %iface.label(), "XDP relays here");
                    newly += 1;
                }
                Err(e) => {
                    map_error("link map", e);
                    continue;
                }
            }
            // Marked once its entry is in: XDP looks for it from then on.
            if let Some((word, bit)) = dhcp6_common::relay::access_bit(key.ifindex) {
                let old = self.maps.access_bits.get(&word, 0).unwrap_or(0);
                if let Err(e) = self.maps.access_bits.set(word, old | bit, 0) {
                    map_error("access bitmap", e);
                }
            }
        }
        if newly > 0 {
            info!(entries = newly, "XDP relays on more access entries (interfaces, VLANs)");
        }
        for (g, group) in config.groups.iter().enumerate() {
            if !in_xdp(group) {
                continue;
            }
            for (s, member) in group.servers.iter().enumerate() {
                let Some(slot) = slot(g, s) else { continue };
                let Some(source) = source_toward(member.address) else { continue };
                if self.sources.get(&slot) == Some(&(member.address, source)) {
                    continue;
                }
                let entry = RelayServer { address: member.address.octets(), source: source.octets() };
                if let Err(e) = self.maps.servers.set(slot, entry, 0) {
                    map_error("server map", e);
                    continue;
                }
                if let Err(e) = self.maps.server_slots.insert(member.address.octets(), slot, 0) {
                    map_error("server slot map", e);
                    continue;
                }
                self.sources.insert(slot, (member.address, source));
            }
            if g >= MAX_GROUPS as usize {
                continue;
            }
            let mut buckets = relay.buckets(g, now);
            // Servers past XDP's room are reached by userspace only.
            for b in &mut buckets {
                if u32::from(*b) >= MAX_GROUP_SERVERS {
                    *b = dhcp6_common::relay::NO_SERVER;
                }
            }
            if self.buckets[g] == buckets {
                continue;
            }
            let mut value =
                RelayGroup { buckets: [dhcp6_common::relay::NO_SERVER; dhcp6_common::relay::RELAY_BUCKETS] };
            value.buckets.copy_from_slice(&buckets);
            match self.maps.groups.set(g as u32, value, 0) {
                Ok(()) => self.buckets[g] = buckets,
                Err(e) => map_error("group map", e),
            }
        }
    }

    /// Takes a reload of the relay's configuration (`done`, already taken by `relay`): the
    /// entries retired or changed leave the maps, and the next [`Self::sync`] writes the
    /// changed and added ones, every group's buckets and every server slot from the new
    /// configuration. Meanwhile XDP passes those entries' clients up, and userspace relays
    /// them by the new configuration.
    pub fn reload(&mut self, relay: &Relay, done: &RelayReloaded) {
        let out: Vec<usize> = done.changed.iter().chain(&done.retired).copied().collect();
        self.stop_relaying(&out);
        self.access.retain(|_, n| !done.retired.contains(n));
        let config = relay.config();
        for &n in &done.added {
            let iface = &config.interfaces[n];
            if !in_xdp(&config.groups[iface.group]) {
                continue;
            }
            if let Some(ifindex) = super::socket::if_index(&iface.name) {
                self.access.insert(AccessKey { ifindex, vlans: iface.vlans }, n);
            }
        }
        // Entries whose group now sends to all its servers leave XDP; those whose group now
        // sends to one enter it.
        for &n in &done.changed {
            let iface = &config.interfaces[n];
            let Some(ifindex) = super::socket::if_index(&iface.name) else { continue };
            let key = AccessKey { ifindex, vlans: iface.vlans };
            match in_xdp(&config.groups[iface.group]) {
                true => self.access.insert(key, n),
                false => self.access.remove(&key),
            };
        }
        // Server slots: an address no longer at its slot leaves the slot map.
        let members: HashMap<u32, Ipv6Addr> = config
            .groups
            .iter()
            .enumerate()
            .flat_map(|(g, group)| {
                group.servers.iter().enumerate().filter_map(move |(s, m)| Some((slot(g, s)?, m.address)))
            })
            .collect();
        for (slot, (server, _)) in &self.sources {
            if members.get(slot) != Some(server) && !members.values().any(|a| a == server) {
                let _ = self.maps.server_slots.remove(&server.octets());
            }
        }
        self.sources.clear();
        // Groups past the new count lead nowhere.
        for g in config.groups.len()..self.buckets.len() {
            let none = RelayGroup { buckets: [dhcp6_common::relay::NO_SERVER; dhcp6_common::relay::RELAY_BUCKETS] };
            if let Ok(g) = u32::try_from(g) {
                let _ = self.maps.groups.set(g, none, 0);
            }
        }
        self.buckets = vec![Vec::new(); config.groups.len()];
    }

    /// Stops XDP relaying on access entries `stopped`: their link entries and Interface-IDs
    /// leave the maps (their clients' messages go up the stack, where the relay leaves them
    /// to the standby master), and an interface's bit goes once none of its entries is left.
    pub fn stop_relaying(&mut self, stopped: &[usize]) {
        for (key, n) in &self.access {
            if !stopped.contains(n) || !self.linked.remove(n) {
                continue;
            }
            let _ = self.maps.links.remove(key);
            if let Some(id) = self.ids.remove(n) {
                let _ = self.maps.interface_ids.remove(&id);
            }
            let still = self.access.iter().any(|(k, m)| k.ifindex == key.ifindex && self.linked.contains(m));
            if let (false, Some((word, bit))) = (still, dhcp6_common::relay::access_bit(key.ifindex)) {
                let old = self.maps.access_bits.get(&word, 0).unwrap_or(0);
                if let Err(e) = self.maps.access_bits.set(word, old & !bit, 0) {
                    map_error("access bitmap", e);
                }
            }
        }
    }

    /// Writes the MACs of clients the relay holds entries for into XDP's client MAC map, so
    /// that XDP can carry their Replies down before it has seen a frame of theirs (a standby
    /// relay that just became master).
    pub fn fill_client_macs(&mut self, relay: &Relay, access: &[usize]) -> usize {
        let mut filled = 0;
        let by_index: HashMap<usize, AccessKey> = self.access.iter().map(|(k, n)| (*n, *k)).collect();
        for (n, peer, mac) in relay.client_macs_on(|a| access.contains(&a)) {
            let Some(key) = by_index.get(&n) else { continue };
            let mac_key = ClientMacKey { ifindex: key.ifindex, vlans: key.vlans, peer: peer.octets() };
            let value = [mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0];
            match self.maps.client_macs.insert(mac_key, value, 0) {
                Ok(()) => filled += 1,
                Err(e) => {
                    map_error("client MAC map", e);
                    break;
                }
            }
        }
        filled
    }

    /// Feeds what XDP sent to and took from each server since the last call into the relay.
    pub fn count(&mut self, relay: &mut Relay, now: u64) {
        let groups: Vec<usize> = relay.config().groups.iter().map(|g| g.servers.len()).collect();
        for (g, servers) in groups.into_iter().enumerate() {
            for s in 0..servers {
                let Some(slot) = slot(g, s) else { continue };
                let total = |map: &aya::maps::PerCpuArray<aya::maps::MapData, u64>| {
                    map.get(&slot, 0).map(|v| v.iter().sum::<u64>()).unwrap_or(0)
                };
                let (sent, answered) = (total(&self.maps.sent), total(&self.maps.answered));
                let seen = self.seen.entry(slot).or_insert((0, 0));
                let (ds, da) = (sent.saturating_sub(seen.0), answered.saturating_sub(seen.1));
                *seen = (sent, answered);
                if ds > 0 || da > 0 {
                    relay.xdp_counted(g, s, ds, da, now);
                }
            }
        }
    }

    /// Learns from every message XDP reported; returns how many.
    pub fn take_reports(&mut self, relay: &mut Relay, now: u64) -> usize {
        let mut n = 0;
        while let Some(item) = self.maps.reports.next() {
            n += 1;
            if item.len() < std::mem::size_of::<RelayReport>() {
                continue;
            }
            // SAFETY: XDP writes whole `RelayReport`s; the item holds at least one, and the
            // record's plain integers and bytes take any bit pattern.
            let report: RelayReport = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            let key = AccessKey { ifindex: report.ifindex, vlans: report.vlans };
            let Some(access) = self.access.get(&key).copied() else { continue };
            let len = (report.len as usize).min(report.msg.len());
            let msg = &report.msg[..len];
            match report.kind {
                REPORT_GIVING_BACK => relay.reported_giving_back(msg, now),
                _ => {
                    let mac =
                        [report.mac[0], report.mac[1], report.mac[2], report.mac[3], report.mac[4], report.mac[5]];
                    relay.reported_reply(access, Ipv6Addr::from(report.peer), mac, msg, now);
                }
            }
        }
        n
    }
}
