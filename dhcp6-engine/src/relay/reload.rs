//! A reload of the relay's configuration: server groups and access entries change while the
//! relay runs, and no user entry of an access entry that stays is lost.
//!
//! Access entries are known to the rest of the daemon by their index (sockets, packet-socket
//! ports, XDP's map of access keys, the user entries), so a reload keeps every index: an entry
//! that stays (same interface and VLANs) keeps its place and takes its new settings, a new one
//! is appended, and one that goes is retired in place. A retired entry relays nothing; its
//! user entries and their routes are removed, since no Renew can reach the relay through it.
//! Server groups are matched by name: a group that stays keeps what it knows of each server
//! that stays (down or up, counters).

use std::collections::HashMap;

use super::{label, AccessInterface, GroupState, Relay, RelayConfig, ServerGroup};

/// What a reload changed, for the log and `dhcp6d reload`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayReloaded {
    /// One line per change, e.g. `group core: servers 2001:db8::1 -> 2001:db8::2`.
    pub changes: Vec<String>,
    /// Indexes of the access entries added (appended to the configuration).
    pub added: Vec<usize>,
    /// Indexes of the access entries retired by this reload.
    pub retired: Vec<usize>,
    /// Indexes of the access entries that stay with changed settings.
    pub changed: Vec<usize>,
    /// User entries removed with the access entries retired.
    pub users_removed: usize,
}

/// Why the relay did not take a new configuration (it runs on with the old one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayReloadError {
    #[error("{0} changed: that needs a restart")]
    NeedsRestart(&'static str),
    #[error("access entries added or removed ({0}) while hot standby is configured: that needs a restart")]
    EntriesUnderStandby(String),
    #[error("more than {max} access entries, counting the {retired} retired since start: that needs a restart")]
    TooManyEntries { max: usize, retired: usize },
}

/// A group's settings in one line, for the log.
fn describe(group: &ServerGroup) -> String {
    let servers: Vec<String> = group
        .servers
        .iter()
        .map(|m| match m.weight {
            1 => m.address.to_string(),
            w => format!("{} (weight {w})", m.address),
        })
        .collect();
    format!(
        "servers {}, send_to {}, dead_after {}, answer_timeout {} s, retry_after {} s",
        servers.join(" "),
        match group.send_to {
            super::SendTo::One => "one",
            super::SendTo::All => "all",
        },
        group.dead_after,
        group.answer_timeout,
        group.retry_after
    )
}

impl Relay {
    /// Whether access entry `access` was retired by a reload.
    pub fn is_retired(&self, access: usize) -> bool {
        self.retired.get(access).copied().unwrap_or(false)
    }

    /// The access entries of `new` that a reload to it would add.
    pub fn entries_added<'a>(&self, new: &'a RelayConfig) -> Vec<&'a AccessInterface> {
        new.interfaces.iter().filter(|i| !self.by_label.contains_key(&i.label())).collect()
    }

    /// Takes `new` as the relay's configuration (see the module's rules). `max_entries` is how
    /// many access entries the relay can hold, retired ones included.
    pub fn reload(
        &mut self,
        new: RelayConfig,
        max_entries: usize,
        now: u64,
    ) -> Result<RelayReloaded, RelayReloadError> {
        let old = &self.config;
        if new.route_protocol != old.route_protocol {
            return Err(RelayReloadError::NeedsRestart("route_protocol"));
        }
        if new.standby != old.standby {
            return Err(RelayReloadError::NeedsRestart("[relay.standby]"));
        }
        if new.groups.is_empty() {
            return Err(RelayReloadError::NeedsRestart("[relay] without any server group"));
        }
        let mut done = RelayReloaded::default();

        // Groups, by name: the new list as it is; each state from the old group of that name.
        let mut groups = Vec::with_capacity(new.groups.len());
        for group in &new.groups {
            let Some(o) = old.groups.iter().position(|g| g.name == group.name) else {
                done.changes.push(format!("group {} added: {}", group.name, describe(group)));
                groups.push(GroupState::new(group.servers.len()));
                continue;
            };
            let mut state = GroupState::new(group.servers.len());
            for (s, member) in group.servers.iter().enumerate() {
                if let Some(p) = old.groups[o].servers.iter().position(|m| m.address == member.address) {
                    state.servers[s] = self.groups[o].servers[p].clone();
                }
            }
            groups.push(state);
            if old.groups[o] != *group {
                done.changes.push(format!("group {}: {}", group.name, describe(group)));
            }
        }
        for group in &old.groups {
            if !new.groups.iter().any(|g| g.name == group.name) {
                done.changes.push(format!("group {} removed", group.name));
            }
        }

        // Access entries, by label: every old index kept, the new ones appended.
        let new_by_label: HashMap<String, &AccessInterface> = new.interfaces.iter().map(|i| (i.label(), i)).collect();
        let mut interfaces = Vec::with_capacity(old.interfaces.len());
        let mut retired = self.retired.clone();
        retired.resize(old.interfaces.len(), false);
        for (n, entry) in old.interfaces.iter().enumerate() {
            let label = entry.label();
            match (retired[n], new_by_label.get(&label)) {
                (false, Some(taken)) => {
                    if **taken != *entry || new.groups[taken.group].name != old.groups[entry.group].name {
                        done.changes.push(format!("access entry {label} changed"));
                        done.changed.push(n);
                    }
                    interfaces.push((*taken).clone());
                }
                (was_retired, _) => {
                    // Kept in place, relaying nothing; its group index must stay valid.
                    let mut kept = entry.clone();
                    kept.group = 0;
                    interfaces.push(kept);
                    if !was_retired {
                        done.changes.push(format!("access entry {label} removed"));
                        done.retired.push(n);
                    }
                    retired[n] = true;
                }
            }
        }
        for entry in &new.interfaces {
            let label = entry.label();
            // An entry live before this reload has its label in `by_label` and was kept above.
            if self.by_label.contains_key(&label) {
                continue;
            }
            done.changes.push(format!("access entry {label} added"));
            done.added.push(interfaces.len());
            interfaces.push(entry.clone());
            retired.push(false);
        }
        if interfaces.len() > max_entries {
            let retired = retired.iter().filter(|r| **r).count();
            return Err(RelayReloadError::TooManyEntries { max: max_entries, retired });
        }
        let standby = !new.standby.profiles.is_empty();
        if standby && !(done.added.is_empty() && done.retired.is_empty()) {
            let names: Vec<String> = done
                .added
                .iter()
                .chain(&done.retired)
                .map(|&n| label(&interfaces[n].name, interfaces[n].vlans))
                .collect();
            return Err(RelayReloadError::EntriesUnderStandby(names.join(", ")));
        }
        if new.hop_count_limit != old.hop_count_limit {
            done.changes.push(format!("hop_count_limit {}", new.hop_count_limit));
        }
        if new.route_metric != old.route_metric {
            done.changes.push(format!("route_metric {} (routes installed from now on)", new.route_metric));
        }
        if new.route_hold != old.route_hold {
            done.changes.push(format!("route_hold {} s", new.route_hold));
        }

        // Taken: from here nothing can fail.
        let config = RelayConfig { interfaces, groups: new.groups, ..new };
        let live = |n: &usize| !retired[*n];
        self.by_interface_id = config
            .interfaces
            .iter()
            .enumerate()
            .filter(|(n, _)| live(n))
            .map(|(n, i)| (i.interface_id.clone(), n))
            .collect();
        self.by_label =
            config.interfaces.iter().enumerate().filter(|(n, _)| live(n)).map(|(n, i)| (i.label(), n)).collect();
        self.config = config;
        self.groups = groups;
        self.retired = retired;
        let before = self.users.len();
        let gone = done.retired.clone();
        self.forget(now, |_, u| gone.contains(&usize::from(u.access)));
        done.users_removed = before - self.users.len();
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv6Addr, SocketAddrV6};

    use dhcp6_codec::{MessageType, SERVER_PORT};

    use super::*;
    use crate::relay::{tests::client_msg, GroupMember, IaType, UserEntry, Vlans};

    /// The test relay: untagged eth0 and VLAN 100 on eth1, one group.
    fn config() -> RelayConfig {
        let mut c = crate::relay::tests::config();
        let vlan = AccessInterface {
            name: "eth1".into(),
            vlans: Vlans { outer: 100, inner: 0 },
            interface_id: b"eth1.100".to_vec(),
            link_address: "2001:db8:3::1".parse().unwrap(),
            ..c.interfaces[0].clone()
        };
        c.interfaces.push(vlan);
        c
    }

    /// Where a client's Solicit on access entry `access` is relayed to, if it is.
    fn server(relay: &mut Relay, access: usize) -> Option<Ipv6Addr> {
        let source = SocketAddrV6::new("fe80::1".parse().unwrap(), 546, 0, 0);
        let out = relay.from_client(access, &client_msg(MessageType::Solicit, 7, 1, None), source, None, 0);
        out.first().map(|o| {
            assert_eq!(o.destination.port(), SERVER_PORT);
            *o.destination.ip()
        })
    }

    fn prefix_user(interface: String, n: u8) -> UserEntry {
        UserEntry {
            duid: format!("000300010200000000{n:02x}"),
            iaid: 1,
            ia_type: IaType::Pd,
            resource: format!("2001:db8:{n:x}00::/56"),
            preferred_lifetime: 100,
            valid_lifetime: 200,
            expires: 1_000,
            interface,
            vlan: None,
            inner_vlan: None,
            link_local: "fe80::1".parse().unwrap(),
            mac: None,
        }
    }

    #[test]
    fn a_group_takes_new_servers_and_keeps_what_it_knew_of_the_others() {
        let mut relay = Relay::new(config());
        let before = server(&mut relay, 0).unwrap();
        let mut new = config();
        let replacement: Ipv6Addr = "2001:db8:ff::99".parse().unwrap();
        new.groups[0].servers = vec![GroupMember::new(replacement)];
        let done = relay.reload(new, 64, 0).unwrap();
        assert_ne!(before, replacement);
        assert_eq!(server(&mut relay, 0), Some(replacement));
        assert_eq!(done.changes.len(), 1, "{:?}", done.changes);
        assert!(done.changes[0].starts_with("group core: servers 2001:db8:ff::99"), "{:?}", done.changes);
        assert!(!relay.is_member(&before));
    }

    /// The file of [`an_entry_that_stays_keeps_its_index_and_its_users_and_a_removed_one_is_retired`]'s
    /// reload: eth0 gone, eth1.100's link address changed, eth1.4000 added.
    fn changed() -> RelayConfig {
        let mut new = config();
        new.interfaces.remove(0);
        new.interfaces[0].link_address = "2001:db8:77::1".parse().unwrap();
        let added = AccessInterface {
            vlans: Vlans { outer: 4000, inner: 0 },
            interface_id: b"eth1.4000".to_vec(),
            ..new.interfaces[0].clone()
        };
        new.interfaces.push(added);
        new
    }

    #[test]
    fn an_entry_that_stays_keeps_its_index_and_its_users_and_a_removed_one_is_retired() {
        let mut relay = Relay::new(config());
        for (access, n) in [(0, 1), (1, 2)] {
            let label = relay.config().interfaces[access].label();
            assert!(relay.put_user(&prefix_user(label, n), 0));
        }
        relay.take_route_changes();
        let done = relay.reload(changed(), 64, 10).unwrap();
        assert_eq!(
            (done.retired.as_slice(), done.changed.as_slice(), done.added.as_slice()),
            (&[0][..], &[1][..], &[2][..])
        );
        assert_eq!(done.users_removed, 1);
        assert!(relay.is_retired(0) && !relay.is_retired(1) && !relay.is_retired(2));
        assert_eq!(relay.config().interfaces[1].link_address, "2001:db8:77::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(relay.config().interfaces[2].label(), "eth1.4000");
        let users = relay.users();
        assert_eq!(users.len(), 1, "the entry that stays keeps its user");
        assert_eq!(users[0].interface, "eth1.100");
        let routes = relay.take_route_changes();
        assert!(matches!(routes.as_slice(), [crate::relay::RouteChange::Remove(r)] if r.access == 0), "{routes:?}");
        assert_eq!(server(&mut relay, 0), None, "a retired entry relays nothing");
        assert!(server(&mut relay, 2).is_some(), "the added entry relays");
        // The same file again changes nothing; the first file again brings eth0 back, appended.
        let same = relay.reload(changed(), 64, 20).unwrap();
        assert!(same.changes.is_empty(), "{:?}", same.changes);
        let back = relay.reload(config(), 64, 30).unwrap();
        assert_eq!((back.added.as_slice(), back.retired.as_slice()), (&[3][..], &[2][..]));
        assert_eq!(relay.config().interfaces[3].label(), "eth0");
    }

    #[test]
    fn what_needs_a_restart_is_refused_and_the_relay_runs_on() {
        let mut relay = Relay::new(config());
        let mut new = config();
        new.route_protocol += 1;
        new.groups[0].servers.clear();
        assert_eq!(relay.reload(new, 64, 0), Err(RelayReloadError::NeedsRestart("route_protocol")));
        assert_eq!(*relay.config(), config());
        let mut more = config();
        more.interfaces.push(AccessInterface { vlans: Vlans { outer: 5, inner: 0 }, ..more.interfaces[0].clone() });
        let max = config().interfaces.len();
        assert!(matches!(relay.reload(more, max, 0), Err(RelayReloadError::TooManyEntries { .. })));
        assert_eq!(*relay.config(), config());
    }
}
