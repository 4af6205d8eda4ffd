//! The metrics endpoint with a real scraper: Debian's Prometheus scrapes dhcp6d every second
//! while dhclient binds, and its query API must show the client's exchange; `promtool check
//! metrics` must find nothing wrong in what the endpoint serves; bad requests get an error
//! status and leave the endpoint serving.

use std::{
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use dhcp6_tests::{
    http,
    netns::{Netns, Process, Veth},
    peers::{wait_for, Dhclient, Dhcp6d, Scratch},
};
use serde_json::Value;

const SECS: Duration = Duration::from_secs(30);
/// Where dhcp6d serves metrics inside the server's namespace.
const METRICS: &str = "[::1]:9547";
/// Where Prometheus answers inside the server's namespace.
const PROMETHEUS: &str = "127.0.0.1:9090";

fn config(interface: &str) -> String {
    format!(
        r#"[server]
preferred_lifetime = 60
valid_lifetime = 90

[[subnet]]
interface = "{interface}"
prefix = "2001:db8:1::/64"
ranges = [{{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }}]

[metrics]
listen = "{METRICS}"
"#
    )
}

/// A server namespace and a client namespace joined by a veth whose client side computes its
/// UDP checksums (as a NIC does), so that XDP hands the client's messages to dhcp6d.
fn lab(name: &str) -> (Netns, Netns, Veth, Scratch) {
    let server = Netns::new("d6ms");
    let client = Netns::new("d6mc");
    let veth = Veth::new(&server, &client);
    server.exec(&["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", veth.a(), "nodad"]);
    client.exec(&["ethtool", "-K", veth.b(), "tx", "off"]);
    (server, client, veth, Scratch::new(name))
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// `GET path` from inside `ns`.
fn get(ns: &Netns, to: &str, path: &str, headers: &[&str]) -> Result<http::Response, String> {
    let (to, path) = (addr(to), path.to_string());
    let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    ns.run(move || {
        let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        http::get(to, &path, &refs)
    })
}

/// Prometheus started in `ns`, scraping dhcp6d's endpoint every second, its data in `scratch`.
fn prometheus(ns: &Netns, scratch: &Scratch) -> Process {
    let config = scratch.path("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: dhcp6d\n    static_configs:\n      - targets: ['{METRICS}']\n"
        ),
    )
    .unwrap();
    let data = scratch.path("prometheus-data");
    let args = [
        "prometheus".to_string(),
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", data.display()),
        format!("--web.listen-address={PROMETHEUS}"),
    ];
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ns.spawn(&refs, &scratch.path("prometheus.log"))
}

/// The value of each series of `metric` Prometheus holds now, by the value of `label`.
fn query(ns: &Netns, metric: &str, label: &str) -> Vec<(String, f64)> {
    let path = format!("/api/v1/query?query={}", http::query_escape(metric));
    let Ok(r) = get(ns, PROMETHEUS, &path, &[]) else { return Vec::new() };
    let Ok(answer) = serde_json::from_str::<Value>(&r.body) else { return Vec::new() };
    let series = answer["data"]["result"].as_array().cloned().unwrap_or_default();
    series
        .iter()
        .filter_map(|s| {
            let key = s["metric"][label].as_str().unwrap_or_default().to_string();
            let value = s["value"][1].as_str()?.parse().ok()?;
            Some((key, value))
        })
        .collect()
}

/// Whether Prometheus has `metric`'s series with `label` = `value` at 1 or more.
fn counted(ns: &Netns, metric: &str, label: &str, value: &str) -> bool {
    query(ns, metric, label).iter().any(|(k, v)| k == value && *v >= 1.0)
}

#[test]
fn prometheus_scrapes_a_dhclient_exchange_and_promtool_finds_nothing_wrong() {
    let (server_ns, client_ns, veth, scratch) = lab("metrics");
    let server = Dhcp6d::start(&server_ns, &scratch, "srv", &config(veth.a()), &[]);
    let _prometheus = prometheus(&server_ns, &scratch);
    let client = Dhclient::start(&client_ns, &scratch, "dhclient", veth.b(), &[]);
    client.wait_event("BOUND6", "new_ip6_address", SECS);

    // What Prometheus scraped shows the client's four messages.
    wait_for("Prometheus to see the Solicit, Advertise, Request and Reply", SECS, || {
        let received = "dhcp6d_messages_received_total";
        let sent = "dhcp6d_messages_sent_total";
        (counted(&server_ns, received, "type", "SOLICIT")
            && counted(&server_ns, received, "type", "REQUEST")
            && counted(&server_ns, sent, "type", "ADVERTISE")
            && counted(&server_ns, sent, "type", "REPLY"))
        .then_some(())
    });
    wait_for("Prometheus to see the scrape target up", SECS, || {
        query(&server_ns, "up", "job").contains(&("dhcp6d".to_string(), 1.0)).then_some(())
    });
    // Every query of the Grafana dashboard is one Prometheus takes, and those of the server's
    // panels find data.
    let dashboard: Value = serde_json::from_str(include_str!("../../contrib/grafana/dhcp6d.json")).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(|e| e.replace("$__rate_interval", "1m").replace("$instance", ".*")))
        .collect();
    for expr in &exprs {
        let r = get(&server_ns, PROMETHEUS, &format!("/api/v1/query?query={}", http::query_escape(expr)), &[]).unwrap();
        let answer: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
    }
    for metric in ["dhcp6d_pool_utilisation_ratio", "dhcp6d_engine_queue_depth", "dhcp6d_xdp_verdicts_total"] {
        wait_for(&format!("Prometheus to hold {metric}"), SECS, || {
            (!query(&server_ns, metric, "instance").is_empty()).then_some(())
        });
    }
    // The same numbers as `show statistics`: one source.
    let solicits = server.stat("received", "SOLICIT");
    assert!(solicits >= 1);

    let r = get(&server_ns, METRICS, "/metrics", &[]).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("content-type").is_some_and(|t| t.starts_with("text/plain; version=0.0.4")), "{r:?}");
    let text = r.body;
    let line = format!("dhcp6d_messages_received_total{{type=\"SOLICIT\"}} {solicits}\n");
    assert!(text.contains(&line), "{line} in:\n{text}");
    for family in [
        "dhcp6d_xdp_verdicts_total{verdict=",
        "dhcp6d_pool_utilisation_ratio{subnet=\"2001:db8:1::/64\",pool=\"addresses\",name=\"2001:db8:1::/64\"}",
        "dhcp6d_pool_resources{subnet=\"2001:db8:1::/64\",pool=\"addresses\",name=\"2001:db8:1::/64\",state=\"in_use\"} 1.0\n",
        "dhcp6d_pool_locked{subnet=\"2001:db8:1::/64\",pool=\"addresses\",name=\"2001:db8:1::/64\"} 0.0\n",
        "dhcp6d_engine_queue_depth ",
        "dhcp6d_commit_fdatasync_seconds_bucket{le=",
        "dhcp6d_commit_changes_count ",
        "dhcp6d_leases 1.0\n",
    ] {
        assert!(text.contains(family), "{family} in:\n{text}");
    }
    let commits = text.lines().find_map(|l| l.strip_prefix("dhcp6d_commit_fdatasync_seconds_count "));
    assert!(commits.and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n >= 1), "the binding was committed:\n{text}");

    // promtool reads the classic text format and lints names, help and types.
    let checked = promtool_check(&text, &scratch.path("exposition.txt"));
    assert!(checked.0, "promtool check metrics failed:\n{}", checked.1);
    assert!(checked.1.trim().is_empty(), "promtool found problems:\n{}", checked.1);

    // OpenMetrics for whoever asks for it first (Prometheus does).
    let om = get(&server_ns, METRICS, "/metrics", &["Accept: application/openmetrics-text;version=1.0.0"]).unwrap();
    assert!(om.header("content-type").is_some_and(|t| t.starts_with("application/openmetrics-text")), "{om:?}");
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
}

/// Runs `promtool check metrics` on `text` (kept in `file`): whether it passed, and what it said.
fn promtool_check(text: &str, file: &Path) -> (bool, String) {
    std::fs::write(file, text).unwrap();
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::from(std::fs::File::open(file).unwrap()))
        .output()
        .expect("running promtool (cargo xtask setup installs the prometheus package)");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

#[test]
fn the_endpoint_refuses_bad_requests_and_keeps_serving() {
    let (server_ns, _client_ns, veth, scratch) = lab("metrics-bad");
    let server = Dhcp6d::start(&server_ns, &scratch, "srv", &config(veth.a()), &["--no-xdp"]);
    let to = addr(METRICS);
    let ask = |head: String| server_ns.run(move || http::request(to, &head));

    let post = ask("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0".into()).unwrap();
    assert_eq!(post.status, 405, "{post:?}");
    assert_eq!(post.header("allow"), Some("GET"), "{post:?}");
    let unknown = get(&server_ns, METRICS, "/metrics/../secrets", &[]).unwrap();
    assert_eq!(unknown.status, 404, "{unknown:?}");
    assert_eq!(get(&server_ns, METRICS, "/", &[]).unwrap().status, 404);
    let huge = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}", "a".repeat(64 * 1024));
    let refused = ask(huge).unwrap();
    assert_eq!(refused.status, 431, "{refused:?}");
    let garbage = ask("\u{1}\u{2}not http at all".into()).unwrap();
    assert_eq!(garbage.status, 400, "{garbage:?}");

    // Still serving, over HTTP and on the control socket.
    let r = get(&server_ns, METRICS, "/metrics", &[]).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("dhcp6d_messages_received_total{type=\"SOLICIT\"} 0\n"), "{}", r.body);
    assert!(server.try_show("statistics").is_some(), "the control socket still answers");
    assert!(server.process.log_text().lines().all(|l| !l.contains("panicked")), "{}", server.process.log_text());
}
