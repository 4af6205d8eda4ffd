//! Text tables for `dhcp6d show`, from the control socket's typed answers.

use std::fmt::Write;

use dhcp6_engine::counters::{Counter, Counts};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::control::{
    Binding, Cleared, FailoverAnswer, PoolLocked, RelayServers, RelayUser, Reloaded, Request, StatisticsAnswer,
    StormsAnswer,
};
use crate::relay::standby::StandbyStatus;
use crate::server::{PoolCounts, ReconfigureStarted};

/// `-` for what is absent.
fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// One counter table: a row per key counted (zeros left out), and the total.
fn counts<K: Counter>(out: &mut String, title: &str, counts: &Counts<K>) {
    let _ = writeln!(out, "{title}:");
    for (k, n) in counts.iter().filter(|(_, n)| *n > 0) {
        let _ = writeln!(out, "    {:<24} {n}", k.name());
    }
    let _ = writeln!(out, "    {:<24} {}", "total", counts.total());
}

/// Unix seconds now, to print how long ago things were.
fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `show relay standby`: a row per profile, then a block per backup link.
fn standby(out: &mut String, s: &StandbyStatus, now: u64) {
    let ago = |t: Option<u64>| t.map_or_else(|| "never".to_string(), |t| format!("{}s ago", now.saturating_sub(t)));
    let _ = writeln!(
        out,
        "{:<14} {:<14} {:<7} {:>4} {:<9} {:>8} {:>7} {:<10} Interfaces",
        "Profile", "VRRP", "Role", "Prio", "Relaying", "Entries", "Degrade", "Since"
    );
    for p in &s.profiles {
        let _ = writeln!(
            out,
            "{:<14} {:<14} {:<7} {:>4} {:<9} {:>8} {:>7} {:<10} {}",
            p.name,
            p.vrrp,
            p.role.name(),
            p.priority,
            if p.relaying { "yes" } else { "no" },
            p.entries,
            p.degrade_metric,
            ago(Some(p.since)),
            p.interfaces.join(",")
        );
        if let Some(v) = p.virtual_address {
            let seen = match p.virtual_address_present {
                Some(true) => "on the interface",
                Some(false) => "not on the interface",
                None => "not looked for",
            };
            let _ = writeln!(out, "    virtual address {v}: {seen}");
        }
    }
    for l in &s.services {
        let peer = l.peer.map_or_else(|| "-".into(), |p| p.to_string());
        let state = if l.connected { "up" } else { "down" };
        let _ = writeln!(out, "Backup link {} to {peer} port {}: {state} since {}", l.name, l.port, ago(Some(l.since)));
        let _ = writeln!(out, "    peer {}", or_dash(l.peer_node.as_deref()));
        let _ = writeln!(
            out,
            "    entries sent {}, received {} (taken {}, older than held {}, not ours {})",
            l.sent, l.received, l.applied, l.stale, l.unknown
        );
        let daily = l.daily_batch.as_ref().map_or_else(String::new, |d| format!(", daily at {d} UTC"));
        let _ = writeln!(
            out,
            "    last batch sent {}, received {}{daily}",
            ago(l.last_batch_sent),
            ago(l.last_batch_received)
        );
        let _ = writeln!(
            out,
            "    lag {}, connections refused {}",
            l.lag_ms.map_or_else(|| "-".into(), |ms| format!("{ms} ms")),
            l.refused_connections
        );
        if l.profile_mismatch {
            let _ = writeln!(out, "    the peer backs up other profiles (backup IDs must be the same on both)");
        }
        if l.resync_pending {
            let _ = writeln!(out, "    hot changes were lost: a batch follows");
        }
    }
    let _ = writeln!(out, "Removals remembered: {}", s.tombstones);
}

fn typed<T: DeserializeOwned>(answer: &Value) -> Result<T, serde_json::Error> {
    T::deserialize(answer)
}

/// The answer to `request` as an operator reads it; an error if dhcp6d answered something
/// this `show` does not read (a different version).
pub fn render(request: Request, answer: &Value) -> Result<String, serde_json::Error> {
    let mut out = String::new();
    // Writing to a String cannot fail.
    match request {
        Request::Bindings => {
            let _ = writeln!(
                out,
                "{:<28} {:<6} {:<9} {:>8} {:<10} {:<9} Client DUID",
                "Prefix", "Type", "State", "Expires", "Interface", "IAID"
            );
            for b in typed::<Vec<Binding>>(answer)? {
                let _ = writeln!(
                    out,
                    "{:<28} {:<6} {:<9} {:>8} {:<10} {:08x}  {}",
                    b.resource.to_string(),
                    b.ia_type.name(),
                    b.state.name(),
                    b.expires_in,
                    or_dash(b.interface),
                    b.iaid,
                    b.duid
                );
            }
        }
        Request::Statistics => {
            let s: StatisticsAnswer = typed(answer)?;
            counts(&mut out, "Messages received", &s.server.received);
            counts(&mut out, "Messages sent", &s.server.sent);
            counts(&mut out, "Packets dropped", &s.server.dropped);
            counts(&mut out, "Leasequeries", &s.server.leasequery);
            let _ = writeln!(out, "Renewals answered in XDP and recorded: {}", s.server.fast_path_renewals);
            let _ = writeln!(
                out,
                "IAs past max_ias_per_message or max_leases_per_client, given nothing: {}",
                s.server.ias_over_limit
            );
            if let Some(xdp) = &s.xdp {
                counts(&mut out, "XDP verdicts", xdp);
            }
            for off in &s.xdp_tx_off {
                let _ = writeln!(out, "Renewals on {} answered from userspace: {}", off.interface, off.reason);
            }
            if let Some(storm) = &s.storm {
                let _ = writeln!(
                    out,
                    "Storm protection: cut {} by MAC, {} by DUID; {} clients limited now",
                    storm.cut_by_mac, storm.cut_by_duid, storm.clients
                );
            }
            if let Some(d) = &s.database {
                let state = match d.down_since {
                    Some(since) => format!("unreachable for {}s", now().saturating_sub(since)),
                    None if d.connected => "connected".into(),
                    None => "not connected yet".into(),
                };
                let _ = writeln!(out, "Lease database (PostgreSQL): {state}");
                let _ = writeln!(out, "    {:<24} {}", "reconnects", d.reconnects);
                let _ = writeln!(out, "    {:<24} {}", "commits", d.commits);
                let _ = writeln!(out, "    {:<24} {}", "commits_failed", d.commits_failed);
                let _ = writeln!(out, "    {:<24} {}", "taken_elsewhere", d.changes_refused);
                let _ = writeln!(out, "    {:<24} {}", "learnt_from_others", d.changes_learnt);
                let _ = writeln!(out, "    {:<24} {}", "listening", if d.listening { "yes" } else { "no" });
            }
        }
        Request::Storms => {
            let s: StormsAnswer = typed(answer)?;
            match (s.rate, s.burst) {
                (Some(rate), Some(burst)) => {
                    let _ = writeln!(out, "Storm protection: {rate} messages/s per client, bursts of {burst}");
                }
                _ => {
                    let _ = writeln!(out, "Storm protection is off (no [storm], or no XDP)");
                }
            }
            let _ = writeln!(
                out,
                "Cut: {} by MAC, {} by DUID; clients limited now: {}",
                s.counts.cut_by_mac, s.counts.cut_by_duid, s.counts.clients
            );
            if !s.clients.is_empty() {
                let _ = writeln!(out, "{:<5} {:<12} {:>10} {:>8} Client", "Key", "Interface", "Cut", "For (s)");
            }
            for c in &s.clients {
                let _ = writeln!(
                    out,
                    "{:<5} {:<12} {:>10} {:>8} {}",
                    c.key,
                    or_dash(c.interface.as_deref()),
                    c.cut,
                    c.cutting_for,
                    c.id
                );
            }
        }
        Request::RelayUsers => {
            let _ = writeln!(
                out,
                "{:<28} {:<6} {:>8} {:<10} {:<26} {:<18} {:<9} Client DUID",
                "Prefix", "Type", "Expires", "Interface", "Link-local", "MAC", "IAID"
            );
            for u in typed::<Vec<RelayUser>>(answer)? {
                let e = u.entry;
                let _ = writeln!(
                    out,
                    "{:<28} {:<6} {:>8} {:<10} {:<26} {:<18} {:08x}  {}",
                    e.resource,
                    e.ia_type.name(),
                    u.expires_in,
                    e.interface,
                    e.link_local.to_string(),
                    or_dash(e.mac),
                    e.iaid,
                    e.duid
                );
            }
        }
        Request::RelayServers => {
            let Some(r) = typed::<Option<RelayServers>>(answer)? else {
                let _ = writeln!(out, "dhcp6d does not relay");
                return Ok(out);
            };
            let _ = writeln!(
                out,
                "{:<12} {:<40} {:>6} {:<6} {:>10} {:>10} {:>10}",
                "Group", "Server", "Weight", "State", "sent", "answered", "timed-out"
            );
            for s in &r.servers {
                let state = match s.state {
                    crate::relay::Liveness::Up => "up",
                    crate::relay::Liveness::Down => "down",
                };
                let _ = writeln!(
                    out,
                    "{:<12} {:<40} {:>6} {:<6} {:>10} {:>10} {:>10}",
                    s.group,
                    s.server.to_string(),
                    s.weight,
                    state,
                    s.sent,
                    s.answered,
                    s.timed_out
                );
            }
            let _ = writeln!(out, "Relayed up {}, down {}", r.stats.forwarded, r.stats.replies_relayed);
            counts(&mut out, "Dropped", &r.stats.dropped);
        }
        Request::Failover | Request::FailoverPartnerDown => {
            let Some(f) = typed::<Option<FailoverAnswer>>(answer)? else {
                let _ = writeln!(out, "dhcp6d is in no failover pair");
                return Ok(out);
            };
            let _ = writeln!(out, "Role: {}   State: {} since {}", f.role, f.state, f.since);
            let partner_state = f.partner_state.as_deref().unwrap_or("unknown");
            let link = if f.connected { "connected" } else { "not connected" };
            let _ = writeln!(out, "Partner: {} ({link}), state {partner_state}", f.partner);
            let contact = f.seconds_since_contact.map_or("never".to_string(), |s| format!("{s} s ago"));
            let _ = writeln!(out, "Last contact: {contact}   MCLT: {} s", f.mclt);
            let _ = writeln!(
                out,
                "Bindings sent {}, received {}, refused {}; updates unacknowledged {}",
                f.bindings_sent, f.bindings_received, f.bindings_rejected, f.unacked_updates
            );
            let _ = writeln!(
                out,
                "Connections refused (not the partner): {}; TLS handshakes failed: {}; malformed messages: {}",
                f.refused_connections, f.tls_failed, f.malformed_messages
            );
        }
        Request::RelayStandby => {
            let Some(s) = typed::<Option<StandbyStatus>>(answer)? else {
                let _ = writeln!(out, "dhcp6d has no [relay.standby] profiles");
                return Ok(out);
            };
            standby(&mut out, &s, now());
        }
        Request::RelayBackupNow => {
            let peers = answer.get("peers").and_then(Value::as_u64).unwrap_or(0);
            let _ = writeln!(out, "batch backup sent to {peers} connected peer(s)");
        }
        Request::RelayRebuild { .. } => {
            let queries = answer.get("queries").and_then(Value::as_u64).unwrap_or(0);
            let _ = writeln!(
                out,
                "{queries} bulk leasequery(ies) sent; `dhcp6d show relay users` shows the entries as answers come"
            );
        }
        Request::ClearConflicting { .. } => {
            let c: Cleared = typed(answer)?;
            let _ = writeln!(out, "cleared {} conflicting address(es)", c.cleared);
        }
        Request::Pools => {
            let _ = writeln!(
                out,
                "{:<22} {:<28} {:<20} {:<6} {:>10} {:>8} {:>8} {:>11} {:>12} assignable",
                "Subnet", "Pool", "Name", "Lock", "total", "in-use", "expired", "conflicting", "unassignable"
            );
            for p in typed::<Vec<PoolCounts>>(answer)? {
                let lock = if p.locked { "locked" } else { "-" };
                let _ = writeln!(
                    out,
                    "{:<22} {:<28} {:<20} {:<6} {:>10} {:>8} {:>8} {:>11} {:>12} {}",
                    p.subnet,
                    p.pool,
                    p.name,
                    lock,
                    p.total,
                    p.in_use,
                    p.expired,
                    p.conflicting,
                    p.unassignable,
                    p.assignable
                );
            }
        }
        Request::Reload => {
            let r: Reloaded = typed(answer)?;
            let _ = writeln!(out, "reloaded {}", r.config);
            if r.changes.is_empty() {
                let _ = writeln!(out, "    nothing changed");
            }
            for change in &r.changes {
                let _ = writeln!(out, "    {change}");
            }
            if r.outside_pools > 0 {
                let _ = writeln!(out, "{} lease(s) outside the new pools renew until they expire", r.outside_pools);
            }
            if r.orphaned > 0 {
                let _ = writeln!(out, "{} lease(s) of removed subnets are kept until they expire", r.orphaned);
            }
            if let Some(started) = r.reconfigure.as_ref().filter(|s| **s != ReconfigureStarted::default()) {
                write_reconfigure(&mut out, started, "renew");
            }
        }
        Request::PoolLock { .. } => {
            let p: PoolLocked = typed(answer)?;
            let state = if p.locked { "locked" } else { "unlocked" };
            let already = if p.changed { "" } else { " (it was already)" };
            let _ = writeln!(out, "pool {:?} {state}{already}", p.pool);
        }
        Request::Reconfigure { message, .. } => {
            let r: ReconfigureStarted = typed(answer)?;
            write_reconfigure(&mut out, &r, message.name());
        }
    }
    Ok(out)
}

/// What a Reconfigure request did: clients asked to send `message`, and those left alone.
fn write_reconfigure(out: &mut String, r: &ReconfigureStarted, message: &str) {
    let _ = writeln!(out, "{} client(s) sent a Reconfigure ({message})", r.started);
    if r.already > 0 {
        let _ = writeln!(out, "{} client(s) being reconfigured already", r.already);
    }
    if r.without_key > 0 {
        let _ = writeln!(
            out,
            "{} client(s) without a Reconfigure Key (no Reconfigure Accept): not sent one",
            r.without_key
        );
    }
    if r.unreachable > 0 {
        let _ = writeln!(out, "{} client(s) not heard from since the start, with no address to send to", r.unreachable);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::{Liveness, RelayDrop, RelayStats, ServerStatus};

    #[test]
    fn relay_servers_print_their_drops_as_a_table() {
        let mut stats = RelayStats { forwarded: 7, replies_relayed: 5, ..Default::default() };
        stats.dropped.add(RelayDrop::NotAGroupMember, 2);
        stats.dropped.add(RelayDrop::HopLimit, 1);
        let answer = RelayServers {
            servers: vec![ServerStatus {
                group: "core".into(),
                server: "2001:db8:ff::1".parse().unwrap(),
                weight: 1,
                state: Liveness::Up,
                sent: 7,
                answered: 5,
                timed_out: 0,
            }],
            stats,
        };
        let text = render(Request::RelayServers, &serde_json::to_value(Some(answer)).unwrap()).unwrap();
        assert!(text.contains("Relayed up 7, down 5"), "{text}");
        assert!(text.contains("    not_a_group_member       2\n"), "{text}");
        assert!(text.contains("    hop_limit                1\n"), "{text}");
        assert!(text.contains("    total                    3\n"), "{text}");
        assert!(!text.contains('{'), "no JSON left in the table: {text}");
    }

    #[test]
    fn statistics_show_counted_rows_and_totals() {
        let mut s = StatisticsAnswer {
            server: Default::default(),
            xdp: None,
            xdp_tx_off: Vec::new(),
            storm: None,
            database: None,
        };
        s.server.count_received(crate::codec::MessageType::Solicit);
        s.server.count_drop(crate::server::DropReason::NoSubnet);
        let text = render(Request::Statistics, &serde_json::to_value(&s).unwrap()).unwrap();
        assert!(text.contains("    SOLICIT                  1\n"), "{text}");
        assert!(text.contains("    no_subnet                1\n"), "{text}");
        assert!(!text.contains("XDP verdicts"), "{text}");
        assert!(!text.contains("from userspace"), "{text}");
    }

    #[test]
    fn statistics_name_interfaces_answered_from_userspace() {
        let off = crate::control::XdpTxOff {
            interface: "lab-srv".into(),
            reason: "the driver counted 13 XDP_TX errors".into(),
        };
        let s = StatisticsAnswer {
            server: Default::default(),
            xdp: None,
            xdp_tx_off: vec![off],
            storm: None,
            database: None,
        };
        let text = render(Request::Statistics, &serde_json::to_value(&s).unwrap()).unwrap();
        assert!(
            text.contains("Renewals on lab-srv answered from userspace: the driver counted 13 XDP_TX errors\n"),
            "{text}"
        );
    }
}
