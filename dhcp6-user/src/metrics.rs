//! Prometheus metrics: what `dhcp6d show statistics`, `show pools`, `show relay servers`,
//! `show failover` and `show relay standby` read, encoded for a scrape.
//!
//! There is no second set of counters: a scrape asks the engine loop for a [`Snapshot`] of
//! the typed counters it keeps (the engine answers between two batches, as it answers the
//! control socket), and [`encode`] turns that snapshot, the commit thread's histograms and
//! the queue's depth into a fresh registry of `prometheus-client` metrics, encoded in the
//! format the scraper asked for. Names follow Prometheus' conventions: a `dhcp6d_` prefix,
//! `_total` on counters, the unit in the name; message types, drop reasons, verdicts, pools
//! and states are labels. States (failover, standby roles) are gauges with one series per
//! state, 1 for the current one.
//!
//! ```
//! use dhcp6_user::metrics::{encode, Format, QueueDepth, Snapshot};
//!
//! let text = encode(&Snapshot::default(), None, QueueDepth { depth: 3, capacity: 100 }, Format::Prometheus);
//! assert!(text.contains("dhcp6d_engine_queue_depth 3.0\n"));
//! assert!(text.contains("dhcp6d_messages_received_total{type=\"SOLICIT\"} 0\n"));
//! ```

use prometheus_client::{
    encoding::{prometheus_text, text},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};

use crate::{
    control::{RelayServers, StatisticsAnswer},
    counters::{Counter as Counted, Counts},
    daemon::committer::CommitHistograms,
    failover::State as FailoverState,
    relay::{standby::Role as StandbyRole, Liveness},
    server::PoolCounts,
};

/// What the engine loop hands a scrape: the counters and states `dhcp6d show` reads.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The server's counters, the driver's drops and the XDP program's verdicts (when XDP
    /// is attached), as `show statistics` has them.
    pub statistics: StatisticsAnswer,
    /// Leases the server holds (offers included).
    pub leases: usize,
    /// As `show pools` has them.
    pub pools: Vec<PoolCounts>,
    /// When dhcp6d relays.
    pub relay: Option<RelaySnapshot>,
    /// When dhcp6d is in a failover pair.
    pub failover: Option<FailoverSnapshot>,
    /// Each standby profile's name and role.
    pub standby: Vec<(String, StandbyRole)>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            statistics: StatisticsAnswer {
                server: Default::default(),
                xdp: None,
                xdp_tx_off: Vec::new(),
                storm: None,
                database: None,
            },
            leases: 0,
            pools: Vec::new(),
            relay: None,
            failover: None,
            standby: Vec::new(),
        }
    }
}

/// The relay's part of a [`Snapshot`].
#[derive(Debug, Clone)]
pub struct RelaySnapshot {
    /// As `show relay servers` has them.
    pub servers: RelayServers,
    /// User entries held.
    pub users: usize,
}

/// The failover relationship's part of a [`Snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverSnapshot {
    pub state: FailoverState,
    /// The partner's last announced state.
    pub partner_state: Option<FailoverState>,
    pub connected: bool,
}

/// Datagrams and requests waiting in the engine's queue, read at scrape time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    pub depth: usize,
    pub capacity: usize,
}

/// The exposition formats a scraper may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, which Prometheus asks for first.
    OpenMetrics,
    /// The Prometheus text format 0.0.4: what a client that asks for nothing in particular
    /// (curl, `promtool check metrics`) gets.
    Prometheus,
}

impl Format {
    /// The format an `Accept` header asks for.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => prometheus_text::CONTENT_TYPE,
        }
    }
}

type Labels = Vec<(&'static str, String)>;

/// Registers a counter family with one series per row.
fn counters(registry: &mut Registry, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, u64)>) {
    let family = Family::<Labels, Counter>::default();
    for (labels, n) in rows {
        family.get_or_create(&labels).inc_by(n);
    }
    registry.register(name, help, family);
}

/// Registers a gauge family with one series per row.
fn gauges(registry: &mut Registry, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, f64)>) {
    let family = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for (labels, v) in rows {
        family.get_or_create(&labels).set(v);
    }
    registry.register(name, help, family);
}

/// One series per key of `K`, its name the value of label `label`, zeros included (so that
/// `rate()` sees a series from the first scrape on).
fn by_key<'a, K: Counted>(label: &'static str, counts: &'a Counts<K>) -> impl Iterator<Item = (Labels, u64)> + 'a {
    counts.iter().map(move |(k, n)| (vec![(label, k.name().to_string())], n))
}

/// One series per state, 1 for the current one (none: every series 0): Prometheus' way of
/// showing an enum.
fn state_set<S: Copy + PartialEq>(
    label: &'static str,
    all: &[S],
    current: Option<S>,
    name: impl Fn(S) -> &'static str,
    also: &Labels,
) -> Vec<(Labels, f64)> {
    all.iter()
        .map(|s| {
            let mut labels = also.clone();
            labels.push((label, name(*s).to_string()));
            (labels, if current == Some(*s) { 1.0 } else { 0.0 })
        })
        .collect()
}

/// A pool's share of resources not assignable any more (in use, expired, conflicting or
/// excluded), from 0 to 1; 0 for an empty pool.
pub fn utilisation(pool: &PoolCounts) -> f64 {
    let total = pool.total.parse::<f64>().unwrap_or(0.0);
    let assignable = pool.assignable.parse::<f64>().unwrap_or(0.0);
    if total <= 0.0 {
        return 0.0;
    }
    ((total - assignable) / total).clamp(0.0, 1.0)
}

fn pool_labels(p: &PoolCounts) -> Labels {
    vec![("subnet", p.subnet.clone()), ("pool", p.pool.clone()), ("name", p.name.clone())]
}

fn server(registry: &mut Registry, snapshot: &Snapshot) {
    let s = &snapshot.statistics.server;
    counters(registry, "messages_received", "DHCPv6 messages received, by type", by_key("type", &s.received));
    counters(registry, "messages_sent", "DHCPv6 messages sent, by type", by_key("type", &s.sent));
    counters(registry, "dropped", "Datagrams dropped unanswered, by reason", by_key("reason", &s.dropped));
    counters(
        registry,
        "fast_path_renewals",
        "Renewals the XDP program answered that moved a lease's durable expiry",
        [(Vec::new(), s.fast_path_renewals)],
    );
    counters(
        registry,
        "leasequeries",
        "Leasequeries (RFC 5007, RFC 5460), by outcome",
        by_key("outcome", &s.leasequery),
    );
    counters(
        registry,
        "ias_over_limit",
        "IAs past max_ias_per_message or max_leases_per_client, given nothing",
        [(Vec::new(), s.ias_over_limit)],
    );
    counters(
        registry,
        "reconfigures_given_up",
        "Clients sent REC_MAX_RC Reconfigure messages without answering",
        [(Vec::new(), s.reconfigures_given_up)],
    );
    if let Some(xdp) = &snapshot.statistics.xdp {
        counters(registry, "xdp_verdicts", "Frames the XDP program decided on, by verdict", by_key("verdict", xdp));
    }
    if let Some(storm) = &snapshot.statistics.storm {
        counters(
            registry,
            "storm_cut",
            "Client messages storm protection cut in XDP, by what knew the client (mac, duid)",
            [
                (vec![("key", "mac".to_string())], storm.cut_by_mac),
                (vec![("key", "duid".to_string())], storm.cut_by_duid),
            ],
        );
        gauges(
            registry,
            "storm_clients",
            "Clients storm protection cut a message of in the last 2 seconds",
            [(Vec::new(), storm.clients as f64)],
        );
    }
    gauges(registry, "leases", "Leases the server holds (offers included)", [(Vec::new(), snapshot.leases as f64)]);
    let mut resources = Vec::new();
    for p in &snapshot.pools {
        let assignable = p.assignable.parse::<f64>().unwrap_or(0.0);
        let states = [
            ("in_use", p.in_use as f64),
            ("expired", p.expired as f64),
            ("conflicting", p.conflicting as f64),
            ("unassignable", p.unassignable as f64),
            ("assignable", assignable),
        ];
        for (state, n) in states {
            let mut labels = pool_labels(p);
            labels.push(("state", state.to_string()));
            resources.push((labels, n));
        }
    }
    gauges(registry, "pool_resources", "Addresses or prefixes of a pool, by state", resources);
    let sizes = snapshot.pools.iter().map(|p| (pool_labels(p), p.total.parse::<f64>().unwrap_or(0.0)));
    gauges(registry, "pool_size", "Addresses or prefixes a pool holds", sizes);
    gauges(
        registry,
        "pool_utilisation_ratio",
        "Share of a pool's addresses or prefixes not assignable (in use, expired, conflicting, excluded)",
        snapshot.pools.iter().map(|p| (pool_labels(p), utilisation(p))),
    );
    gauges(
        registry,
        "pool_locked",
        "1 while a pool is locked (it gives nothing to new clients; its leases renew)",
        snapshot.pools.iter().map(|p| (pool_labels(p), f64::from(u8::from(p.locked)))),
    );
}

fn relay(registry: &mut Registry, r: &RelaySnapshot) {
    let id = |s: &crate::relay::ServerStatus| vec![("group", s.group.clone()), ("server", s.server.to_string())];
    let servers = &r.servers.servers;
    gauges(
        registry,
        "relay_server_up",
        "Whether a relay server is taking clients (1) or taken for down (0)",
        servers.iter().map(|s| (id(s), if s.state == Liveness::Up { 1.0 } else { 0.0 })),
    );
    counters(registry, "relay_server_sent", "Messages relayed to a server", servers.iter().map(|s| (id(s), s.sent)));
    counters(
        registry,
        "relay_server_answered",
        "Relay-Replies a server sent back that were relayed",
        servers.iter().map(|s| (id(s), s.answered)),
    );
    counters(
        registry,
        "relay_server_timed_out",
        "Messages a server left unanswered past its group's answer timeout",
        servers.iter().map(|s| (id(s), s.timed_out)),
    );
    let stats = &r.servers.stats;
    counters(registry, "relay_forwarded", "Relay-Forwards sent up", [(Vec::new(), stats.forwarded)]);
    counters(registry, "relay_replies_relayed", "Relay-Replies relayed down", [(Vec::new(), stats.replies_relayed)]);
    counters(registry, "relay_dropped", "Messages not relayed, by reason", by_key("reason", &stats.dropped));
    gauges(registry, "relay_users", "Relay user entries held", [(Vec::new(), r.users as f64)]);
}

fn states(registry: &mut Registry, snapshot: &Snapshot) {
    if let Some(f) = &snapshot.failover {
        let all = &FailoverState::ALL;
        gauges(
            registry,
            "failover_state",
            "This server's failover state (RFC 8156): 1 for the current one",
            state_set("state", all, Some(f.state), FailoverState::name, &Vec::new()),
        );
        gauges(
            registry,
            "failover_partner_state",
            "The failover partner's last announced state: 1 for it, all 0 while unknown",
            state_set("state", all, f.partner_state, FailoverState::name, &Vec::new()),
        );
        gauges(
            registry,
            "failover_connected",
            "Whether the failover partner is connected",
            [(Vec::new(), if f.connected { 1.0 } else { 0.0 })],
        );
    }
    if !snapshot.standby.is_empty() {
        let rows = snapshot.standby.iter().flat_map(|(profile, role)| {
            let profile = vec![("profile", profile.clone())];
            state_set("role", &StandbyRole::ALL, Some(*role), StandbyRole::name, &profile)
        });
        gauges(registry, "relay_standby_role", "A standby profile's VRRP role: 1 for the current one", rows);
    }
}

/// The snapshot, the commit thread's histograms and the queue's depth, encoded in `format`.
pub fn encode(snapshot: &Snapshot, commits: Option<&CommitHistograms>, queue: QueueDepth, format: Format) -> String {
    let mut registry = Registry::with_prefix("dhcp6d");
    server(&mut registry, snapshot);
    if let Some(r) = &snapshot.relay {
        relay(&mut registry, r);
    }
    states(&mut registry, snapshot);
    let depth = [(Vec::new(), queue.depth as f64)];
    gauges(&mut registry, "engine_queue_depth", "Datagrams and requests waiting for the engine", depth);
    let capacity = [(Vec::new(), queue.capacity as f64)];
    gauges(&mut registry, "engine_queue_capacity", "Most the engine's queue holds", capacity);
    if let Some(c) = commits {
        registry.register(
            "commit_changes",
            "Lease changes one commit (one write and fdatasync) made durable",
            c.changes.clone(),
        );
        registry.register_with_unit(
            "commit_fdatasync",
            "Time one commit's write and fdatasync took",
            Unit::Seconds,
            c.seconds.clone(),
        );
    }
    let mut out = String::new();
    // Writing to a String cannot fail; the encoders fail only on their writer's errors.
    let _ = match format {
        Format::OpenMetrics => text::encode(&mut out, &registry),
        Format::Prometheus => prometheus_text::encode(&mut out, &registry),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        codec::MessageType,
        relay::{RelayDrop, RelayStats, ServerStatus},
        server::DropReason,
    };

    fn pool(total: &str, assignable: &str) -> PoolCounts {
        PoolCounts {
            subnet: "2001:db8:1::/64".into(),
            pool: "addresses".into(),
            name: "lan".into(),
            locked: true,
            total: total.into(),
            assignable: assignable.into(),
            in_use: 3,
            expired: 1,
            conflicting: 0,
            unassignable: 0,
        }
    }

    fn text(snapshot: &Snapshot) -> String {
        encode(snapshot, None, QueueDepth { depth: 0, capacity: 1 }, Format::Prometheus)
    }

    #[test]
    fn message_and_drop_counters_carry_their_type_and_reason() {
        let mut s = Snapshot::default();
        s.statistics.server.count_received(MessageType::Solicit);
        s.statistics.server.sent.add(MessageType::Advertise, 2);
        s.statistics.server.count_drop(DropReason::NoSubnet);
        let t = text(&s);
        assert!(t.contains("# TYPE dhcp6d_messages_received_total counter\n"), "{t}");
        assert!(t.contains("dhcp6d_messages_received_total{type=\"SOLICIT\"} 1\n"), "{t}");
        assert!(t.contains("dhcp6d_messages_sent_total{type=\"ADVERTISE\"} 2\n"), "{t}");
        assert!(t.contains("dhcp6d_dropped_total{reason=\"no_subnet\"} 1\n"), "{t}");
        assert!(t.contains("dhcp6d_dropped_total{reason=\"queue_full\"} 0\n"), "zeros are shown: {t}");
        assert!(t.contains("dhcp6d_leasequeries_total{outcome=\"not_allowed\"} 0\n"), "{t}");
        assert!(!t.contains("xdp_verdicts"), "no XDP, no verdicts: {t}");
        assert!(!t.contains("storm_"), "no XDP, no storm protection: {t}");
        assert!(!t.contains("dhcp6d_relay_") && !t.contains("dhcp6d_failover_"), "{t}");
    }

    #[test]
    fn storm_protection_counts_its_cuts_by_key_and_the_clients_limited() {
        let mut s = Snapshot::default();
        s.statistics.storm = Some(crate::control::StormCounts { cut_by_mac: 7, cut_by_duid: 2, clients: 1 });
        s.statistics.server.dropped.set(DropReason::Storm, 9);
        let t = text(&s);
        assert!(t.contains("dhcp6d_storm_cut_total{key=\"mac\"} 7\n"), "{t}");
        assert!(t.contains("dhcp6d_storm_cut_total{key=\"duid\"} 2\n"), "{t}");
        assert!(t.contains("dhcp6d_storm_clients 1.0\n"), "{t}");
        assert!(t.contains("dhcp6d_dropped_total{reason=\"storm\"} 9\n"), "{t}");
    }

    #[test]
    fn pool_utilisation_is_the_share_not_assignable() {
        assert_eq!(utilisation(&pool("256", "192")), 0.25);
        assert_eq!(utilisation(&pool("0", "0")), 0.0);
        assert_eq!(utilisation(&pool("4", "4")), 0.0);
        // A /64 of prefixes does not fit a u64; its share is still right.
        assert_eq!(utilisation(&pool("36893488147419103232", "18446744073709551616")), 0.5);
        let mut s = Snapshot::default();
        s.pools.push(pool("256", "192"));
        let t = text(&s);
        let labels = "subnet=\"2001:db8:1::/64\",pool=\"addresses\",name=\"lan\"";
        assert!(t.contains(&format!("dhcp6d_pool_utilisation_ratio{{{labels}}} 0.25\n")), "{t}");
        assert!(t.contains(&format!("dhcp6d_pool_locked{{{labels}}} 1.0\n")), "{t}");
        assert!(t.contains(&format!("dhcp6d_pool_size{{{labels}}} 256.0\n")), "{t}");
        assert!(t.contains(&format!("dhcp6d_pool_resources{{{labels},state=\"in_use\"}} 3.0\n")), "{t}");
        assert!(t.contains(&format!("dhcp6d_pool_resources{{{labels},state=\"assignable\"}} 192.0\n")), "{t}");
    }

    #[test]
    fn states_are_one_series_each_with_the_current_at_one() {
        let s = Snapshot {
            failover: Some(FailoverSnapshot {
                state: FailoverState::PartnerDown,
                partner_state: None,
                connected: false,
            }),
            standby: vec![("access".into(), StandbyRole::Backup)],
            ..Default::default()
        };
        let t = text(&s);
        let ones: Vec<&str> =
            t.lines().filter(|l| l.starts_with("dhcp6d_failover_state{") && l.ends_with(" 1.0")).collect();
        assert_eq!(ones, ["dhcp6d_failover_state{state=\"PARTNER-DOWN\"} 1.0"], "{t}");
        let series = t.lines().filter(|l| l.starts_with("dhcp6d_failover_state{")).count();
        assert_eq!(series, FailoverState::ALL.len(), "{t}");
        assert!(
            !t.lines().any(|l| l.starts_with("dhcp6d_failover_partner_state{") && l.ends_with(" 1.0")),
            "an unknown partner state is no state: {t}"
        );
        assert!(t.contains("dhcp6d_relay_standby_role{profile=\"access\",role=\"backup\"} 1.0\n"), "{t}");
        assert!(t.contains("dhcp6d_relay_standby_role{profile=\"access\",role=\"master\"} 0.0\n"), "{t}");
        assert_eq!(t.lines().filter(|l| l.starts_with("dhcp6d_relay_standby_role{")).count(), StandbyRole::ALL.len());
    }

    #[test]
    fn relay_servers_show_up_or_down_and_their_counts() {
        let mut stats = RelayStats { forwarded: 7, replies_relayed: 5, ..Default::default() };
        stats.dropped.add(RelayDrop::HopLimit, 1);
        let server = |address: &str, state| ServerStatus {
            group: "core".into(),
            server: address.parse().unwrap(),
            weight: 1,
            state,
            sent: 4,
            answered: 3,
            timed_out: 1,
        };
        let servers = vec![server("2001:db8:ff::1", Liveness::Up), server("2001:db8:ff::2", Liveness::Down)];
        let relay = Some(RelaySnapshot { servers: RelayServers { servers, stats }, users: 9 });
        let s = Snapshot { relay, ..Default::default() };
        let t = text(&s);
        assert!(t.contains("dhcp6d_relay_server_up{group=\"core\",server=\"2001:db8:ff::1\"} 1.0\n"), "{t}");
        assert!(t.contains("dhcp6d_relay_server_up{group=\"core\",server=\"2001:db8:ff::2\"} 0.0\n"), "{t}");
        assert!(t.contains("dhcp6d_relay_server_timed_out_total{group=\"core\",server=\"2001:db8:ff::2\"} 1\n"), "{t}");
        assert!(t.contains("dhcp6d_relay_forwarded_total 7\n"), "{t}");
        assert!(t.contains("dhcp6d_relay_dropped_total{reason=\"hop_limit\"} 1\n"), "{t}");
        assert!(t.contains("dhcp6d_relay_users 9.0\n"), "{t}");
    }

    /// Every metric the Grafana dashboard (`contrib/grafana/dhcp6d.json`) queries is one dhcp6d
    /// serves, in some mode.
    #[test]
    fn the_dashboard_queries_only_metrics_dhcp6d_serves() {
        let mut s = Snapshot::default();
        s.statistics.xdp = Some(Counts::default());
        s.pools.push(pool("256", "192"));
        let server = ServerStatus {
            group: "core".into(),
            server: "2001:db8:ff::1".parse().unwrap(),
            weight: 1,
            state: Liveness::Up,
            sent: 0,
            answered: 0,
            timed_out: 0,
        };
        let servers = RelayServers { servers: vec![server], stats: RelayStats::default() };
        s.relay = Some(RelaySnapshot { servers, users: 0 });
        s.failover = Some(FailoverSnapshot { state: FailoverState::Normal, partner_state: None, connected: true });
        s.standby = vec![("access".into(), StandbyRole::Master)];
        let commits = CommitHistograms::default();
        let served = encode(&s, Some(&commits), QueueDepth { depth: 0, capacity: 1 }, Format::Prometheus);
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../contrib/grafana/dhcp6d.json")).expect("the dashboard is JSON");
        let panels = dashboard["panels"].as_array().expect("panels");
        let exprs: Vec<&str> = panels
            .iter()
            .flat_map(|p| p["targets"].as_array().into_iter().flatten())
            .filter_map(|t| t["expr"].as_str())
            .collect();
        assert!(exprs.len() >= 10, "{exprs:?}");
        for expr in exprs {
            for name in
                expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("dhcp6d_"))
            {
                assert!(
                    served.contains(&format!("\n{name}{{")) || served.contains(&format!("\n{name} ")),
                    "the dashboard queries {name}, which dhcp6d does not serve:\n{served}"
                );
            }
        }
    }

    #[test]
    fn the_format_follows_the_accept_header() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Prometheus);
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        let commits = CommitHistograms::default();
        commits.seconds.observe(0.003);
        let queue = QueueDepth { depth: 0, capacity: 1 };
        let om = encode(&Snapshot::default(), Some(&commits), queue, Format::OpenMetrics);
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(om.contains("# UNIT dhcp6d_commit_fdatasync_seconds seconds\n"), "{om}");
        assert!(om.contains("dhcp6d_commit_fdatasync_seconds_count 1\n"), "{om}");
        let plain = encode(&Snapshot::default(), Some(&commits), queue, Format::Prometheus);
        assert!(!plain.contains("# EOF") && !plain.contains("# UNIT"), "{plain}");
        assert!(plain.contains("dhcp6d_commit_changes_count 0\n"), "{plain}");
    }
}
