//! Reloading the configuration file (SIGHUP, `dhcp6d reload`): the file the daemon was
//! started with is read and checked again, what only a restart can change is refused, and the
//! server engine takes the rest ([`crate::server::Server::reconfigure`]) while the XDP program
//! stays attached and its entries are rewritten.
//!
//! Taken live: `[server]`'s lease keys and every `[[subnet]]` key except `interface` (pools,
//! PD pools, lifetimes, options, reservations, limits, locks), subnets added or removed as long
//! as the set of served interfaces stays; the relay's server groups, its access entries'
//! settings, entries removed and VLAN entries added on an interface relayed on already, the
//! hop count limit, the route metric and hold ([`crate::relay::reload`]). Refused, naming what
//! needs a restart: the state directory, the control socket, `fast_path_bindings`, `af_xdp`,
//! the served interfaces, a relay added or removed, its route protocol, access entries on new
//! interfaces, `[relay.standby]` (and entries added or removed under it), and `[failover]`.

use std::path::PathBuf;

use tracing::{info, warn};

use super::{relaying::Relaying, serve::Serve};
use crate::{
    config::{Config, ConfigFileError},
    control::Reloaded,
};

/// Why a reload was refused; the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Invalid(#[from] ConfigFileError),
    #[error("{} changed: that needs a restart (the running configuration stays)", .0.join(", "))]
    NeedsRestart(Vec<&'static str>),
    #[error("relay: {0} (the running configuration stays)")]
    Relay(String),
}

/// The configuration file and what the daemon runs from now.
pub struct Reload {
    path: PathBuf,
    running: Config,
}

impl Reload {
    /// `running` was read from `path` at start.
    pub fn new(path: PathBuf, running: Config) -> Reload {
        Reload { path, running }
    }

    /// Reads the file again and has `serve` run from it; logs what changed, or why not.
    pub fn reload(&mut self, serve: &mut Serve, relaying: Option<&mut Relaying>) -> Result<Reloaded, ReloadError> {
        let result = self.try_reload(serve, relaying);
        match &result {
            Ok(r) if r.changes.is_empty() => info!(config = %r.config, "reloaded: nothing changed"),
            Ok(r) => {
                for change in &r.changes {
                    info!(config = %r.config, "reloaded: {change}");
                }
                if r.outside_pools > 0 {
                    info!(leases = r.outside_pools, "leases outside the new pools renew until they expire");
                }
                if r.orphaned > 0 {
                    warn!(leases = r.orphaned, "leases of removed subnets are kept until they expire, unanswered");
                }
                if let Some(s) = &r.reconfigure {
                    info!(
                        started = s.started,
                        without_key = s.without_key,
                        unreachable = s.unreachable,
                        "clients of subnets whose options changed are asked to renew (Reconfigure)"
                    );
                }
            }
            Err(e) => warn!(config = %self.path.display(), "reload refused: {e}"),
        }
        result
    }

    fn try_reload(&mut self, serve: &mut Serve, relaying: Option<&mut Relaying>) -> Result<Reloaded, ReloadError> {
        let new = Config::load(&self.path)?;
        let restart = needs_restart(&self.running, &new);
        if !restart.is_empty() {
            return Err(ReloadError::NeedsRestart(restart));
        }
        // The relay first: it may still refuse, and then nothing has changed.
        let mut changes = Vec::new();
        if let (Some(relaying), Some(relay)) = (relaying, &new.relay) {
            let done = relaying.reload(relay.clone()).map_err(ReloadError::Relay)?;
            if done.users_removed > 0 {
                warn!(
                    entries = done.users_removed,
                    "user entries of removed access entries dropped, with their routes"
                );
            }
            changes.extend(done.changes.into_iter().map(|c| format!("relay: {c}")));
        }
        let (done, reconfigure) = serve.reload(new.server.clone());
        if new.leasequery.access != self.running.leasequery.access {
            // Who may ask is read per query: it changes at once.
            serve.server.set_leasequery_access(new.leasequery.access.clone());
            changes.push("[leasequery] allow changed".into());
        }
        self.running = new;
        changes.extend(done.changes.iter().map(ToString::to_string));
        Ok(Reloaded {
            config: self.path.display().to_string(),
            changes,
            outside_pools: done.outside_pools,
            orphaned: done.orphaned,
            reconfigure,
        })
    }
}

/// What differs between `running` and `new` that a running daemon cannot take: its sockets,
/// XDP program and failover connection are built once at start, and the relay's role with
/// them.
pub fn needs_restart(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let (a, b) = (&running.daemon, &new.daemon);
    let mut differ = |key: &'static str, differs: bool| {
        if differs {
            out.push(key);
        }
    };
    differ("state_dir", a.state_dir != b.state_dir);
    differ("control_socket", a.control_socket != b.control_socket);
    differ("fast_path_bindings", a.fast_path_bindings != b.fast_path_bindings);
    differ("af_xdp", a.af_xdp != b.af_xdp);
    differ("[storm]", a.storm != b.storm);
    let served = |c: &Config| {
        let mut i: Vec<String> = c.server.subnets.iter().filter_map(|s| s.interface.clone()).collect();
        i.sort();
        i
    };
    differ("the served interfaces (a [[subnet]]'s interface)", served(running) != served(new));
    // A subnet may not move to another interface either: its sockets and XDP link entries
    // are the interface's.
    let moved = new
        .server
        .subnets
        .iter()
        .any(|n| running.server.subnets.iter().any(|o| o.prefix == n.prefix && o.interface != n.interface));
    differ("a subnet's interface", moved);
    // The relay takes the rest of its changes itself (see `Relaying::reload`).
    differ("[relay] (added or removed)", running.relay.is_some() != new.relay.is_some());
    differ("[failover]", running.failover != new.failover);
    let (l, n) = (&running.leasequery, &new.leasequery);
    differ("[leasequery] listen", l.listen != n.listen);
    differ("[relay] relay_id or rebuild", (l.relay_id_from_duid, l.rebuild) != (n.relay_id_from_duid, n.rebuild));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[server]
state_dir = "/var/lib/dhcp6d"

[[subnet]]
interface = "eth1"
prefix = "2001:db8:1::/64"
ranges = [{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }]
"#;

    fn restart(from: &str, to: &str) -> Vec<&'static str> {
        let changed = BASE.replace(from, to);
        assert_ne!(changed, BASE, "{from} is in the base");
        needs_restart(&Config::parse(BASE).unwrap(), &Config::parse(&changed).unwrap())
    }

    #[test]
    fn pools_options_and_relayed_subnets_change_live() {
        assert!(restart("1::1ff\" }]", "1::2ff\" }]\ndns_servers = [\"2001:db8::53\"]\nlocked = true").is_empty());
        let more =
            "1::1ff\" }]\n\n[[subnet]]\nprefix = \"2001:db8:2::/64\"\nranges = [{ prefix = \"2001:db8:2::/80\" }]";
        assert!(restart("1::1ff\" }]", more).is_empty(), "a relayed subnet needs no socket of its own");
    }

    #[test]
    fn leasequery_allow_changes_live_its_listener_needs_a_restart() {
        let with = format!("{BASE}\n[leasequery]\nallow = [\"2001:db8:ff::/64\"]\n");
        let other = with.replace("2001:db8:ff::/64", "2001:db8:fe::/64");
        let parse = |t: &str| Config::parse(t).unwrap();
        assert!(needs_restart(&parse(&with), &parse(&other)).is_empty());
        assert_eq!(needs_restart(&parse(BASE), &parse(&with)), ["[leasequery] listen"]);
    }

    #[test]
    fn sockets_state_and_interfaces_need_a_restart() {
        assert_eq!(restart("/var/lib/dhcp6d", "/srv/dhcp6d"), ["state_dir"]);
        assert_eq!(restart("[server]\n", "[server]\naf_xdp = false\n"), ["af_xdp"]);
        assert_eq!(
            restart("\"eth1\"", "\"eth2\""),
            ["the served interfaces (a [[subnet]]'s interface)", "a subnet's interface"]
        );
        let relay = "\n[relay]\n[[relay.group]]\nname = \"core\"\nservers = [\"2001:db8:ff::1\"]\n\n[[relay.interface]]\nname = \"eth0\"\ngroup = \"core\"\nlink_address = \"2001:db8:2::1\"\n";
        assert_eq!(restart("[server]\n", &format!("{relay}\n[server]\n")), ["[relay] (added or removed)"]);
    }
}
