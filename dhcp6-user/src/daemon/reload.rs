//! Reloading the configuration file (SIGHUP, `dhcp6d reload`): the file the daemon was
//! started with is read and checked again, what only a restart can change is refused, and the
//! server engine takes the rest ([`crate::server::Server::reconfigure`]) while the XDP program
//! stays attached and its entries are rewritten.
//!
//! Taken live: `[server]`'s lease keys and every `[[subnet]]` key except `interface` (pools,
//! PD pools, lifetimes, options, reservations, limits, locks), subnets added or removed as long
//! as the set of served interfaces stays. Refused, naming what needs a restart: the state
//! directory, the control socket, `fast_path_bindings`, `af_xdp`, the served interfaces,
//! `[relay]` and `[failover]`.

use std::path::PathBuf;

use tracing::{info, warn};

use super::serve::Serve;
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
    pub fn reload(&mut self, serve: &mut Serve) -> Result<Reloaded, ReloadError> {
        let result = self.try_reload(serve);
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
            }
            Err(e) => warn!(config = %self.path.display(), "reload refused: {e}"),
        }
        result
    }

    fn try_reload(&mut self, serve: &mut Serve) -> Result<Reloaded, ReloadError> {
        let new = Config::load(&self.path)?;
        let restart = needs_restart(&self.running, &new);
        if !restart.is_empty() {
            return Err(ReloadError::NeedsRestart(restart));
        }
        let done = serve.reconfigure(new.server.clone());
        self.running = new;
        Ok(Reloaded {
            config: self.path.display().to_string(),
            changes: done.changes.iter().map(ToString::to_string).collect(),
            outside_pools: done.outside_pools,
            orphaned: done.orphaned,
        })
    }
}

/// What differs between `running` and `new` that a running daemon cannot take: its sockets,
/// XDP maps, relay and failover connection are built once at start.
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
    differ("[relay]", running.relay != new.relay);
    differ("[failover]", running.failover != new.failover);
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
    fn sockets_state_and_interfaces_need_a_restart() {
        assert_eq!(restart("/var/lib/dhcp6d", "/srv/dhcp6d"), ["state_dir"]);
        assert_eq!(restart("[server]\n", "[server]\naf_xdp = false\n"), ["af_xdp"]);
        assert_eq!(
            restart("\"eth1\"", "\"eth2\""),
            ["the served interfaces (a [[subnet]]'s interface)", "a subnet's interface"]
        );
        let relay = "\n[relay]\n[[relay.group]]\nname = \"core\"\nservers = [\"2001:db8:ff::1\"]\n\n[[relay.interface]]\nname = \"eth0\"\ngroup = \"core\"\nlink_address = \"2001:db8:2::1\"\n";
        assert_eq!(restart("[server]\n", &format!("{relay}\n[server]\n")), ["[relay]"]);
    }
}
