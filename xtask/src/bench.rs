//! `cargo xtask bench`: perfdhcp -6 against dhcp6d (durable journal on), then against Kea
//! (when installed; memfile with persist) with an equivalent configuration, in the same
//! namespaces with the same perfdhcp commands. It offers rising four-message exchange rates,
//! finds the highest rate each server sustains, then offers four times that to show how each
//! behaves under overload. Then one million leases: start-up time (until the control socket
//! reports every lease, with XDP attached and without), memory per lease, and the XDP
//! program's load and verification time.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result};

use crate::netns::{veth, xdp_run_stats, Host};

mod failover;
mod postgresql;
mod standby;

const DIR: &str = "/run/dhcp6-bench";
/// Offered rates, exchanges per second, for perfdhcp and for dhcp6-load.
const RATES: &[u32] = &[2000, 4000, 8000, 16000, 32000];
const OWN_RATES: &[u32] = &[5000, 10000, 20000, 40000, 80000, 160000, 320000];
/// Seconds each rate is offered.
const SECONDS: u32 = 5;
/// A rate is sustained when at most this share of exchanges is lost.
const MAX_DROP_RATIO: f64 = 0.01;

/// What perfdhcp measured at one offered rate, and the server's CPU time per exchange.
#[derive(Debug, Clone, Copy)]
struct Run {
    offered: u32,
    achieved: f64,
    drop_ratio: f64,
    cpu_us_per_exchange: f64,
}

/// dhcp6d serving the bench's client link on `interface`, its state and control socket named
/// `name` under [`DIR`].
fn dhcp6d_config(name: &str, interface: &str) -> String {
    format!(
        r#"[server]
state_dir = "{DIR}/{name}-state"
control_socket = "{DIR}/{name}.sock"
preferred_lifetime = 3000
valid_lifetime = 4000
t1 = 1000
t2 = 2000
dns_servers = ["2001:db8::53"]

[[subnet]]
interface = "{interface}"
prefix = "2001:db8:1::/64"
ranges = [{{ low = "2001:db8:1::1:0", high = "2001:db8:1::ffff:ffff" }}]
"#
    )
}

/// Kea serving the bench's client link on `interface`, its files in `dir`; `more` is
/// inserted as it is (hooks, multi-threading), followed by the loggers (`extra_loggers`).
fn kea_config(dir: &Path, interface: &str, more: &str, extra_loggers: &str) -> String {
    let dir = dir.display();
    format!(
        r#"{{ "Dhcp6": {{
  "interfaces-config": {{ "interfaces": [ "{interface}" ] }},
  "data-directory": "{dir}",
  "lease-database": {{ "type": "memfile", "persist": true, "name": "{dir}/kea-leases6.csv", "lfc-interval": 0 }},
  "preferred-lifetime": 3000, "valid-lifetime": 4000, "renew-timer": 1000, "rebind-timer": 2000,
  "option-data": [ {{ "name": "dns-servers", "data": "2001:db8::53" }} ],
  "subnet6": [ {{ "id": 1, "subnet": "2001:db8:1::/64", "interface": "{interface}",
                  "pools": [ {{ "pool": "2001:db8:1::1:0 - 2001:db8:1::ffff:ffff" }} ] }} ],
  {more}
  "loggers": [ {{ "name": "kea-dhcp6", "output_options": [ {{ "output": "{dir}/kea.log" }} ], "severity": "WARN" }}{extra_loggers} ]
}} }}"#
    )
}

/// Parses perfdhcp's "Rate: N 4-way exchanges/second" and the drops ratio of REQUEST-REPLY.
fn parse_perfdhcp(offered: u32, text: &str) -> Option<Run> {
    let achieved = text.lines().find_map(|l| l.strip_prefix("Rate: "))?.split_whitespace().next()?.parse().ok()?;
    let sa = text.split("***Statistics for: ").find(|s| s.starts_with("SOLICIT-ADVERTISE"))?;
    let rr = text.split("***Statistics for: ").find(|s| s.starts_with("REQUEST-REPLY"))?;
    let number = |section: &str, key: &str| -> Option<f64> {
        section.lines().find_map(|l| l.strip_prefix(key))?.trim().parse().ok()
    };
    // Exchanges lost anywhere: Solicits sent that did not end in a Reply.
    let sent = number(sa, "sent packets:")?;
    let done = number(rr, "received packets:")?;
    let drop_ratio = if sent > 0.0 { (sent - done).max(0.0) / sent } else { 1.0 };
    Some(Run { offered, achieved, drop_ratio, cpu_us_per_exchange: 0.0 })
}

/// What drives the load.
#[derive(Clone, Copy)]
enum Generator<'a> {
    /// ISC perfdhcp, the reference tool.
    Perfdhcp,
    /// `dhcp6-load`, the project's own, for rates past perfdhcp's ceiling.
    Own(&'a Path),
}

/// Parses dhcp6-load's "... rate N/s lost L%".
fn parse_own(offered: u32, text: &str) -> Option<Run> {
    let after = |key: &str| -> Option<f64> { text.split(key).nth(1)?.split(['/', '%', ' ']).next()?.parse().ok() };
    Some(Run { offered, achieved: after(" rate ")?, drop_ratio: after(" lost ")? / 100.0, cpu_us_per_exchange: 0.0 })
}

/// One run at `rate`, with the CPU time the server (first process of `server`) used.
fn load(generator: Generator<'_>, server: &Host, client: &Host, interface: &str, rate: u32) -> Result<Run> {
    let rate_s = rate.to_string();
    let period = SECONDS.to_string();
    let cpu_before = server.work_seconds();
    let (text, parsed) = match generator {
        Generator::Perfdhcp => {
            let text = client.printed(&[
                "perfdhcp",
                "-6",
                "-l",
                interface,
                "-r",
                &rate_s,
                "-p",
                &period,
                "-R",
                "4000000000",
            ])?;
            let parsed = parse_perfdhcp(rate, &text);
            (text, parsed)
        }
        Generator::Own(bin) => {
            // Each run starts at new client numbers, so that every exchange allocates.
            let base = NEXT_CLIENT.fetch_add(rate * SECONDS, std::sync::atomic::Ordering::Relaxed).to_string();
            let bin = bin.to_str().context("build path is not UTF-8")?;
            let text = client.printed(&[bin, "-i", interface, "-r", &rate_s, "-s", &period, "--base", &base])?;
            let parsed = parse_own(rate, &text);
            (text, parsed)
        }
    };
    let cpu = server.work_seconds().zip(cpu_before).map(|(after, before)| after - before);
    let mut run = parsed.with_context(|| format!("the load generator printed no result at {rate}/s:\n{text}"))?;
    let exchanges = run.achieved * f64::from(SECONDS);
    run.cpu_us_per_exchange = cpu.filter(|_| exchanges > 0.0).map_or(f64::NAN, |c| c * 1e6 / exchanges);
    Ok(run)
}

/// Client numbers handed to dhcp6-load runs so far.
static NEXT_CLIENT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn report(name: &str, run: &Run) {
    println!(
        "  {name:<7} offered {:>6}/s  achieved {:>9.1}/s  lost {:>6.2}%  CPU {:>6.1} us/exchange",
        run.offered,
        run.achieved,
        run.drop_ratio * 100.0,
        run.cpu_us_per_exchange
    );
}

/// Offers each rate of [`RATES`] until one is no longer sustained, narrows the limit down by
/// bisection, then offers four times the best sustained rate.
fn sweep(
    generator: Generator<'_>,
    rates: &[u32],
    name: &str,
    server: &Host,
    client: &Host,
    interface: &str,
) -> Result<(Vec<Run>, Option<Run>)> {
    search(generator, rates, name, (server, client, interface), 4, true)
}

/// [`sweep`] with `halvings` halvings between the last step sustained and the first that was
/// not, and the 4x overload run if `overload`.
fn search(
    generator: Generator<'_>,
    rates: &[u32],
    name: &str,
    (server, client, interface): (&Host, &Host, &str),
    halvings: u32,
    overload: bool,
) -> Result<(Vec<Run>, Option<Run>)> {
    let mut runs = Vec::new();
    let mut failed = None;
    for &rate in rates {
        let run = load(generator, server, client, interface, rate)?;
        report(name, &run);
        if run.achieved == 0.0 {
            anyhow::bail!("{name} answered nothing: see its log in {DIR}");
        }
        runs.push(run);
        if run.drop_ratio > MAX_DROP_RATIO {
            failed = Some(rate);
            break;
        }
    }
    if let (Some(mut high), Some(mut low)) = (failed, peak(&runs).map(|r| r.offered)) {
        // Four halvings make a sixteenth of the step that failed (5,000/s between 80,000 and
        // 160,000).
        for _ in 0..halvings {
            let mid = (low + high) / 2;
            let run = load(generator, server, client, interface, mid)?;
            report(name, &run);
            runs.push(run);
            if run.drop_ratio > MAX_DROP_RATIO {
                high = mid
            } else {
                low = mid
            }
        }
    }
    let overload = match peak(&runs).filter(|_| overload) {
        Some(b) => {
            let run = load(generator, server, client, interface, (b.achieved * 4.0) as u32)?;
            print!("  overload (4x):");
            report("", &run);
            Some(run)
        }
        None => None,
    };
    Ok((runs, overload))
}

/// Server CPU per exchange at the highest sustained rate (at low rates, wake-ups dominate).
fn cpu_per_exchange(runs: &[Run]) -> f64 {
    peak(runs).map_or(f64::NAN, |r| r.cpu_us_per_exchange)
}

/// The highest achieved rate among the sustained runs.
fn peak(runs: &[Run]) -> Option<Run> {
    runs.iter().filter(|r| r.drop_ratio <= MAX_DROP_RATIO).copied().max_by(|a, b| a.achieved.total_cmp(&b.achieved))
}

/// Leases in the start-up benchmark.
const MILLION: u32 = 1_000_000;
/// What the issue asks of a start with a million leases, XDP attached.
const START_TARGET: Duration = Duration::from_secs(1);
const BYTES_PER_LEASE_TARGET: f64 = 100.0;

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// Leases in use, summed over the pools, as the control socket at `socket` answers `pools`;
/// `None` while nothing answers there.
fn leases_in_use(socket: &Path) -> Option<u64> {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
    stream.write_all(b"\"pools\"\n").ok()?;
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line).ok()?;
    let pools: serde_json::Value = serde_json::from_str(&line).ok()?;
    Some(pools.as_array()?.iter().filter_map(|p| p["in_use"].as_u64()).sum())
}

/// One start of dhcp6d, measured.
struct Start {
    /// From spawning it until its control socket reported every lease.
    took: Duration,
    /// Resident memory then.
    rss: u64,
    /// CPU time (user and system, all threads) dhcp6d had used by then: on a machine shared
    /// with other work, what the start itself cost.
    cpu: f64,
    /// Loading and verifying the XDP program, and making its maps, as dhcp6d logged them.
    verify_ms: Option<f64>,
    maps_ms: Option<f64>,
    verified_instructions: Option<u64>,
}

/// A field `name=value` of the first line of `log` that contains `message` (tracing's format).
fn log_field(log: &str, message: &str, name: &str) -> Option<f64> {
    let line = log.lines().find(|l| l.contains(message))?;
    let value = line.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('='))?;
    value.trim_start_matches("Some(").trim_end_matches(')').trim_matches('"').parse().ok()
}

/// Starts dhcp6d on `config` in `ns` (XDP attached with its pins under `pins`, or `--no-xdp`),
/// waits until its control socket reports `leases` leases in use, measures, and stops it.
fn start_and_measure(
    ns: &mut Host,
    dhcp6d: &Path,
    config: &Path,
    socket: &Path,
    pins: Option<&Path>,
    leases: u64,
    log: &Path,
) -> Result<Start> {
    let _ = std::fs::remove_file(socket);
    let bin = dhcp6d.to_str().context("build path is not UTF-8")?;
    let mut args = vec![bin, "run", "--config", config.to_str().context("path")?];
    match pins {
        Some(dir) => args.extend(["--bpf-dir", dir.to_str().context("path")?]),
        None => args.push("--no-xdp"),
    }
    let started = std::time::Instant::now();
    ns.start(&args, log)?;
    let pid = ns.pid(0).context("dhcp6d has no process")?;
    loop {
        if leases_in_use(socket).is_some_and(|n| n >= leases) {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) || rss(pid).is_none() {
            ns.stop();
            let text = std::fs::read_to_string(log).unwrap_or_default();
            anyhow::bail!("dhcp6d did not report {leases} leases on {}:\n{text}", config.display());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = started.elapsed();
    let memory = rss(pid).unwrap_or(0);
    let cpu = ns.cpu_seconds(0).unwrap_or(f64::NAN);
    ns.stop();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let loaded = "XDP program loaded and verified";
    Ok(Start {
        took,
        rss: memory,
        cpu,
        verify_ms: log_field(&text, loaded, "ms"),
        maps_ms: log_field(&text, loaded, "maps_ms"),
        verified_instructions: log_field(&text, loaded, "verified_instructions").map(|n| n as u64),
    })
}

/// What dhcp6d logged it spent its start-up on, from `log`.
fn phases(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut out = Vec::new();
    for (name, message, field) in [
        ("journal+restore", "leases loaded", "ms"),
        ("XDP verify", "XDP program loaded and verified", "ms"),
        ("XDP maps", "XDP program loaded and verified", "maps_ms"),
        ("reconcile", "renewals answered by XDP while stopped recorded", "ms"),
        ("lease map", "fast-path bindings written", "ms"),
    ] {
        if let Some(ms) = log_field(&text, message, field) {
            out.push(format!("{name} {ms:.0} ms"));
        }
    }
    out.join(", ")
}

/// One million leases: imported from a Kea lease file, then dhcp6d's start-up time (until its
/// control socket reports every lease) and resident memory per lease against an empty start,
/// without XDP and with it (on a veth in a namespace, the served subnet on it), and the XDP
/// program's load and verification on its own.
pub fn million_leases(dhcp6d: &Path) -> Result<()> {
    let dir = PathBuf::from(DIR).join("million");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let mut csv = String::from("address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source\n");
    for i in 0..MILLION {
        let b = i.to_be_bytes();
        csv.push_str(&format!(
            "2001:db8:1::{:x}:{:x},00:03:00:01:02:cc:{:02x}:{:02x}:{:02x}:{:02x},4000,{},1,3000,0,1,128,0,0,,,0,,,\n",
            1 + (i >> 16),
            i & 0xffff,
            b[0],
            b[1],
            b[2],
            b[3],
            now + 100_000
        ));
    }
    let kea = dir.join("kea-leases6.csv");
    std::fs::write(&kea, csv)?;
    let write_config = |name: &str| -> Result<(PathBuf, PathBuf)> {
        let socket = dir.join(format!("{name}.sock"));
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nstate_dir = {:?}\ncontrol_socket = {:?}\n\n[[subnet]]\ninterface = \"mil-srv\"\nprefix = \"2001:db8:1::/64\"\nranges = [{{ low = \"2001:db8:1::1:0\", high = \"2001:db8:1::ffff:ffff\" }}]\n",
                dir.join(format!("{name}-state")).display().to_string(),
                socket.display().to_string()
            ),
        )?;
        Ok((config, socket))
    };
    let (empty_config, empty_socket) = write_config("empty")?;
    let (full_config, full_socket) = write_config("full")?;
    crate::shell::run(
        std::process::Command::new(dhcp6d)
            .args(["leases", "import", "--config"])
            .arg(&full_config)
            .arg("--kea")
            .arg(&kea),
    )?;
    let million = u64::from(MILLION);
    let mut verdict = Vec::new();
    for xdp in [false, true] {
        // The served subnet's link: dhcp6d binds to it, and XDP goes on it.
        let mut server = Host::new("mil-srv")?;
        let client = Host::new("mil-cli")?;
        veth(&mut server, "mil-srv", &client, "mil-cli")?;
        server.exec(&["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "mil-srv", "nodad"])?;
        // Fresh pins for each start (removing the last ones detaches XDP); the restart below
        // takes over those the full start left.
        let fresh_pins = || -> Result<Option<PathBuf>> {
            if xdp {
                Ok(Some(crate::setup::netns_pin_dir("million")?))
            } else {
                Ok(None)
            }
        };
        let mode = if xdp { "XDP attached" } else { "--no-xdp" };
        let log = |name: &str| dir.join(format!("{name}-{}.log", if xdp { "xdp" } else { "no-xdp" }));
        let pins = fresh_pins()?;
        let empty =
            start_and_measure(&mut server, dhcp6d, &empty_config, &empty_socket, pins.as_deref(), 0, &log("empty"))?;
        let pins = fresh_pins()?;
        let full =
            start_and_measure(&mut server, dhcp6d, &full_config, &full_socket, pins.as_deref(), million, &log("full"))?;
        let per_lease = full.rss.saturating_sub(empty.rss) as f64 / f64::from(MILLION);
        println!(
            "one million leases, {mode}: start-up {:.2} s to every lease reported ({:.2} s of CPU; {:.2} s empty), resident {:.1} MiB ({:.1} MiB empty): {per_lease:.0} bytes per lease",
            full.took.as_secs_f64(),
            full.cpu,
            empty.took.as_secs_f64(),
            full.rss as f64 / 1048576.0,
            empty.rss as f64 / 1048576.0
        );
        println!("  dhcp6d's log: {}", phases(&log("full")));
        if let (Some(ms), Some(maps)) = (empty.verify_ms, empty.maps_ms) {
            println!(
                "  XDP program with no leases: loaded and verified in {ms:.0} ms ({} instructions verified), its maps made in {maps:.0} ms",
                empty.verified_instructions.map_or("?".to_string(), |n| n.to_string())
            );
        }
        if xdp {
            // A restart: the pinned maps and links the last dhcp6d left are taken over.
            let again = start_and_measure(
                &mut server,
                dhcp6d,
                &full_config,
                &full_socket,
                pins.as_deref(),
                million,
                &log("restart"),
            )?;
            println!(
                "  restarted over the pins it left: {:.2} s to every lease reported ({:.2} s of CPU; {})",
                again.took.as_secs_f64(),
                again.cpu,
                phases(&log("restart"))
            );
            verdict.push((full.took, per_lease));
        }
        // The namespace goes first (its dhcp6d holds the pinned maps), then the pins.
        drop(server);
        drop(client);
        if let Some(pins) = pins {
            let _ = std::fs::remove_dir_all(pins);
        }
    }
    if let Some((took, per_lease)) = verdict.first() {
        println!(
            "  targets, XDP attached: start-up under {:.0} s ({}), under {BYTES_PER_LEASE_TARGET:.0} bytes per lease ({})",
            START_TARGET.as_secs_f64(),
            if *took < START_TARGET { "met" } else { "missed" },
            if *per_lease < BYTES_PER_LEASE_TARGET { "met" } else { "missed" }
        );
    }
    Ok(())
}

/// What one server did under one generator: sustained peak, overload run, CPU per exchange.
struct Outcome {
    peak: Option<Run>,
    overload: Option<Run>,
    cpu: f64,
}

/// A fresh server namespace and client namespace joined by a veth, the server at 2001:db8:1::1.
fn bench_link() -> Result<(Host, Host)> {
    let mut server = Host::new("bench-srv")?;
    let client = Host::new("bench-cli")?;
    veth(&mut server, "bench-srv", &client, "bench-cli")?;
    server.exec(&["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "bench-srv", "nodad"])?;
    // The clients' frames carry their UDP checksums, as from a NIC (a veth's own are left to
    // offload): so they reach dhcp6d as they would on a real access link, through XDP to its
    // AF_XDP socket. Kea runs on the same link.
    client.exec(&["ethtool", "-K", "bench-cli", "tx", "off"])?;
    Ok((server, client))
}

/// Where the scraped sweep's dhcp6d serves metrics, in the bench's server namespace.
const METRICS_LISTEN: &str = "[::1]:9547";

/// A Prometheus configuration scraping [`METRICS_LISTEN`] every second.
fn prometheus_config() -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: dhcp6d\n    static_configs:\n      - targets: ['{METRICS_LISTEN}']\n"
    )
}

/// Starts Prometheus in `server`, scraping dhcp6d's metrics every second, its data under [`DIR`].
/// It runs at nice 19: on an access router it runs on another host, and on the bench's two
/// cores its own storage work would otherwise take CPU from the generator and dhcp6d, which is
/// not what scraping costs dhcp6d. That it scraped every second is checked afterwards
/// ([`scrapes`]).
fn start_prometheus(server: &mut Host) -> Result<()> {
    let dir = PathBuf::from(DIR);
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, prometheus_config())?;
    let data = dir.join("prometheus-data");
    let _ = std::fs::remove_dir_all(&data);
    let args = [
        "nice".to_string(),
        "-n".to_string(),
        "19".to_string(),
        "prometheus".to_string(),
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", data.display()),
        "--web.listen-address=127.0.0.1:9090".to_string(),
    ];
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    server.start(&refs, &dir.join("prometheus.log"))
}

/// How many scrapes of dhcp6d Prometheus made in the last `seconds`, and how many failed
/// (Prometheus' own `up` series).
fn scrapes(server: &Host, seconds: u64) -> Result<(u64, u64)> {
    let count = |query: String| -> Result<u64> {
        let out = server.printed(&["promtool", "query", "instant", "http://127.0.0.1:9090", &query])?;
        // "{...} => 123 @[...]"; an empty answer is none.
        Ok(out.split("=> ").nth(1).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok()).unwrap_or(0))
    };
    let made = count(format!("count_over_time(up{{job=\"dhcp6d\"}}[{seconds}s])"))?;
    let up = count(format!("sum_over_time(up{{job=\"dhcp6d\"}}[{seconds}s])"))?;
    Ok((made, made.saturating_sub(up)))
}

/// dhcp6d in fresh namespaces under `generator`, with the metrics endpoint on and Prometheus
/// scraping it every second if `scraped`; the peak searched down to `halvings` halvings (see
/// [`search`]), with the overload run only where that is not fine.
fn dhcp6d_search(
    generator: Generator<'_>,
    rates: &[u32],
    dhcp6d: &Path,
    scraped: bool,
    halvings: u32,
) -> Result<Outcome> {
    let dir = PathBuf::from(DIR);
    let (mut server, client) = bench_link()?;
    let _ = std::fs::remove_dir_all(dir.join("dhcp6d-state"));
    let config = dir.join("dhcp6d.toml");
    let mut text = dhcp6d_config("dhcp6d", "bench-srv");
    if scraped {
        text.push_str(&format!("\n[metrics]\nlisten = \"{METRICS_LISTEN}\"\n"));
    }
    std::fs::write(&config, text)?;
    let bin = dhcp6d.to_str().context("build path is not UTF-8")?;
    let pins = crate::setup::netns_pin_dir("bench")?;
    let args = [bin, "run", "--config", config.to_str().context("path")?, "--bpf-dir", pins.to_str().context("path")?];
    server.start(&args, &dir.join("dhcp6d.log"))?;
    if scraped {
        start_prometheus(&mut server)?;
    }
    std::thread::sleep(Duration::from_secs(2));
    let name = if scraped { "scraped" } else { "dhcp6d" };
    let began = std::time::Instant::now();
    let prometheus_cpu = || server.cpu_seconds(1);
    let cpu_before = prometheus_cpu();
    let (runs, overload) = search(generator, rates, name, (&server, &client, "bench-cli"), halvings, halvings <= 4)?;
    if scraped {
        let seconds = began.elapsed().as_secs();
        let (made, failed) = scrapes(&server, seconds)?;
        let cpu = prometheus_cpu().zip(cpu_before).map_or(f64::NAN, |(a, b)| a - b);
        println!("  Prometheus scraped dhcp6d {made} times in the {seconds} s of load ({failed} failed), using {cpu:.1} s of CPU");
        anyhow::ensure!(
            made + 2 >= seconds && failed == 0,
            "Prometheus did not scrape dhcp6d every second: see {DIR}/prometheus.log"
        );
    }
    Ok(Outcome { peak: peak(&runs), overload, cpu: cpu_per_exchange(&runs) })
}

/// dhcp6d in fresh namespaces under `generator` (see [`dhcp6d_search`]).
fn dhcp6d_sweep(generator: Generator<'_>, rates: &[u32], dhcp6d: &Path, scraped: bool) -> Result<Outcome> {
    dhcp6d_search(generator, rates, dhcp6d, scraped, 4)
}

/// Halvings of the scrape comparison's searches: 40,000/s between 40,000 and 80,000 in steps
/// of 312/s, finer than the 2% asked.
const SCRAPE_HALVINGS: u32 = 7;

/// The sustained rate with and without Prometheus scraping every second, alternated twice in
/// the same run (so that a drift of the machine falls on both), each peak searched to well
/// under 2%; the best of each compared.
fn scrape_comparison(own: &Path, dhcp6d: &Path) -> Result<()> {
    let mut best = [None::<Run>; 2];
    for round in 1..=2 {
        for (n, scraped) in [false, true].into_iter().enumerate() {
            let outcome = dhcp6d_search(Generator::Own(own), OWN_RATES, dhcp6d, scraped, SCRAPE_HALVINGS)?;
            let Some(p) = outcome.peak else { continue };
            println!(
                "  round {round}, {}: {:.1} exchanges/s sustained, {:.1} us of dhcp6d CPU per exchange",
                if scraped { "scraped every second" } else { "not scraped" },
                p.achieved,
                outcome.cpu
            );
            if best[n].is_none_or(|b| p.achieved > b.achieved) {
                best[n] = Some(p);
            }
        }
    }
    let [Some(u), Some(s)] = best else { anyhow::bail!("no sustained rate found") };
    let ratio = s.achieved / u.achieved;
    println!(
        "  scraped every second: {:.1} exchanges/s sustained (best of two), {:.1}% of {:.1}/s unscraped ({}; target within 2%)",
        s.achieved,
        ratio * 100.0,
        u.achieved,
        if ratio >= 0.98 { "met" } else { "missed" }
    );
    Ok(())
}

/// dhcp6d, then Kea, each in fresh namespaces, under `generator`.
fn compare(generator: Generator<'_>, rates: &[u32], dhcp6d: &Path) -> Result<(Outcome, Option<Outcome>)> {
    let ours = dhcp6d_sweep(generator, rates, dhcp6d, false)?;

    if crate::shell::output(std::process::Command::new("sh").args(["-c", "command -v kea-dhcp6"])).is_none() {
        println!("  kea-dhcp6 is not installed: no comparison");
        return Ok((ours, None));
    }
    let (mut server, client) = bench_link()?;
    spawn_kea(&mut server)?;
    let (runs, overload) = sweep(generator, rates, "kea", &server, &client, "bench-cli")?;
    Ok((ours, Some(Outcome { peak: peak(&runs), overload, cpu: cpu_per_exchange(&runs) })))
}

/// Starts Kea (memfile, fresh) on bench-srv in `server`, and gives it time to come up.
fn spawn_kea(server: &mut Host) -> Result<()> {
    start_kea(server, Path::new(DIR), &kea_config(Path::new(DIR), "bench-srv", "", ""))?;
    std::thread::sleep(Duration::from_secs(3));
    Ok(())
}

/// Starts Kea on `config` in `server`, its lease file, pid and lock files in `dir` (fresh).
fn start_kea(server: &mut Host, dir: &Path, config: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let _ = std::fs::remove_file(dir.join("kea-leases6.csv"));
    let kea_conf = dir.join("kea-dhcp6.json");
    std::fs::write(&kea_conf, config)?;
    let cmd = [
        "env".to_string(),
        format!("KEA_PIDFILE_DIR={}", dir.display()),
        format!("KEA_LOCKFILE_DIR={}", dir.display()),
        "kea-dhcp6".into(),
        "-c".into(),
        kea_conf.display().to_string(),
    ];
    let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
    server.start(&refs, &dir.join("kea-stdout.log"))
}

fn summary(ours: &Outcome, kea: Option<&Outcome>) {
    let Some(p) = ours.peak else { return };
    println!("  dhcp6d: {:.1} exchanges/s sustained, {:.1} us of server CPU per exchange there", p.achieved, ours.cpu);
    if let Some(o) = ours.overload {
        println!(
            "  dhcp6d at 4x its sustained rate: {:.1}/s ({:.0}% of it)",
            o.achieved,
            o.achieved / p.achieved * 100.0
        );
    }
    if let Some(Outcome { peak: Some(k), overload, cpu }) = kea {
        println!("  kea:    {:.1} exchanges/s sustained, {cpu:.1} us of server CPU per exchange there", k.achieved);
        if let Some(o) = overload {
            println!(
                "  kea at 4x its sustained rate:    {:.1}/s ({:.0}% of it)",
                o.achieved,
                o.achieved / k.achieved * 100.0
            );
        }
        println!(
            "  dhcp6d / kea: {:.2}x the sustained rate, {:.2}x less server CPU per exchange",
            p.achieved / k.achieved,
            cpu / ours.cpu
        );
    }
}

/// A part of the benchmark, by the name `--only` takes.
type Part<'a> = (&'static str, Box<dyn FnOnce() -> Result<()> + 'a>);

pub fn run(dhcp6d: &Path, only: Option<&str>) -> Result<()> {
    let dir = PathBuf::from(DIR);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let parts: [Part<'_>; 8] = [
        (
            "exchanges",
            Box::new(|| {
                println!(
                    "four-message exchanges, {SECONDS} s per rate, sustained = at most {}% lost",
                    MAX_DROP_RATIO * 100.0
                );
                println!("with perfdhcp -6:");
                let (ours, kea) = compare(Generator::Perfdhcp, RATES, dhcp6d)?;
                summary(&ours, kea.as_ref());
                let own = dhcp6d.with_file_name("dhcp6-load");
                println!("with dhcp6-load (the project's own generator; perfdhcp tops out first):");
                let (ours, kea) = compare(Generator::Own(&own), OWN_RATES, dhcp6d)?;
                summary(&ours, kea.as_ref());
                println!("with dhcp6-load, Prometheus scraping dhcp6d's metrics every second or not, twice each:");
                scrape_comparison(&own, dhcp6d)
            }),
        ),
        ("million", Box::new(|| million_leases(dhcp6d))),
        ("xdp", Box::new(|| xdp_fast_path(dhcp6d))),
        ("renewals", Box::new(|| renewals(dhcp6d))),
        ("relay", Box::new(|| relayed(dhcp6d))),
        ("standby", Box::new(|| standby::run(dhcp6d))),
        ("failover", Box::new(|| failover::failover(dhcp6d))),
        ("postgresql", Box::new(|| postgresql::postgresql(dhcp6d))),
    ];
    if let Some(o) = only {
        let names: Vec<&str> = parts.iter().map(|(name, _)| *name).collect();
        anyhow::ensure!(names.contains(&o), "--only takes {}, not {o}", names.join(", "));
    }
    let chosen = parts.into_iter().filter(|(name, _)| only.is_none_or(|o| o == *name)).collect();
    let failed = run_parts(chosen);
    if failed.is_empty() {
        return Ok(());
    }
    println!("bench: failed parts: {}", failed.join(", "));
    anyhow::bail!("{} benchmark part(s) failed: {}", failed.len(), failed.join(", "))
}

/// Runs each part in order, a blank line after each; a part that fails is reported and the
/// next one runs. Returns the names of those that failed.
fn run_parts(parts: Vec<Part<'_>>) -> Vec<&'static str> {
    let mut failed = Vec::new();
    for (name, part) in parts {
        if let Err(e) = part() {
            println!("bench: {name} failed: {e:#}");
            failed.push(name);
        }
        println!();
    }
    failed
}

/// The XDP fast path's time per frame, from program test runs (`dhcp6d xdp bench`).
pub fn xdp_fast_path(dhcp6d: &Path) -> Result<()> {
    println!("XDP fast path, per frame (program test runs; target: at most 200 ns per Renew answered):");
    crate::shell::run(std::process::Command::new(dhcp6d).args(["xdp", "bench", "--repeat", "1000000"]))
}

/// Renews per second offered from a packet socket, past what a UDP socket sends.
const PACKET_RENEW_RATES: &[u32] = &[200_000, 400_000, 800_000];

/// perfdhcp's renew rates (`-f`, at most its exchange rate `-r`, which is set the same).
const PERFDHCP_RENEW_RATES: &[u32] = &[4000, 8000, 16000];

/// Renews sent and Replies received, from perfdhcp's RENEW-REPLY statistics.
fn parse_perfdhcp_renews(text: &str) -> Option<(f64, f64)> {
    let rr = text.split("***Statistics for: ").find(|s| s.starts_with("RENEW-REPLY"))?;
    let number = |key: &str| -> Option<f64> { rr.lines().find_map(|l| l.strip_prefix(key))?.trim().parse().ok() };
    Some((number("sent packets:")?, number("received packets:")?))
}

/// Renews per second offered to each server, after binding the clients that send them.
const RENEW_RATES: &[u32] = &[25_000, 35_000, 50_000, 70_000, 100_000, 200_000];

/// One server under Renews: how to start it, and its name in the report.
enum RenewServer {
    Dhcp6d { xdp: bool },
    Kea,
}

/// Steady-state renewals, end to end, with dhcp6-load: dhcp6d with the XDP fast path, dhcp6d
/// from userspace (`--no-xdp`) and Kea, each in fresh namespaces, at the same offered rates.
/// The client side sends whole checksums (offload off) and runs an XDP program of its own,
/// which passes everything: a veth takes frames its peer sends with XDP_TX only then.
pub fn renewals(dhcp6d: &Path) -> Result<()> {
    let own = dhcp6d.with_file_name("dhcp6-load");
    let kea = crate::shell::output(std::process::Command::new("sh").args(["-c", "command -v kea-dhcp6"])).is_some();
    println!(
        "renewals per second, end to end: perfdhcp -f (renewing alongside its exchanges, at most at their rate), \
         then dhcp6-load (bind 6000 clients, then their Renews round robin for {SECONDS} s) past perfdhcp's ceiling:"
    );
    // The kernel counts time in BPF programs while this is 1 (the XDP lines say ns per frame).
    let stats = "/proc/sys/kernel/bpf_stats_enabled";
    let stats_were = std::fs::read_to_string(stats).unwrap_or_default();
    let _ = std::fs::write(stats, "1");
    let mut best = Vec::new();
    for (name, server) in [
        ("dhcp6d (XDP)", RenewServer::Dhcp6d { xdp: true }),
        ("dhcp6d --no-xdp", RenewServer::Dhcp6d { xdp: false }),
        ("kea", RenewServer::Kea),
    ] {
        if matches!(server, RenewServer::Kea) && !kea {
            println!("  kea-dhcp6 is not installed: no comparison");
            continue;
        }
        let sustained = renew_sweep(name, &server, dhcp6d, &own)?;
        best.push((name, sustained));
    }
    if !stats_were.trim().is_empty() {
        let _ = std::fs::write(stats, stats_were.trim());
    }
    let rate = |n: &str| best.iter().find(|(name, _)| *name == n).and_then(|(_, r)| *r);
    if let Some(xdp) = rate("dhcp6d (XDP)") {
        for other in ["dhcp6d --no-xdp", "kea"] {
            if let Some(r) = rate(other) {
                println!("  dhcp6d (XDP) / {other}: {:.1}x the sustained renewal rate", xdp / r);
            }
        }
    }
    Ok(())
}

/// The highest achieved renewal rate with at most [`MAX_DROP_RATIO`] lost, over the rates.
fn renew_sweep(name: &str, kind: &RenewServer, dhcp6d: &Path, own: &Path) -> Result<Option<f64>> {
    let dir = PathBuf::from(DIR);
    let (mut server, mut client) = bench_link()?;
    client.exec(&["ethtool", "-K", "bench-cli", "tx", "off"])?;
    let bin = dhcp6d.to_str().context("build path is not UTF-8")?;
    client
        .start(&[bin, "xdp", "watch", "--interface", "bench-cli", "--seconds", "3600"], &dir.join("client-xdp.log"))?;
    match kind {
        RenewServer::Dhcp6d { xdp } => {
            let _ = std::fs::remove_dir_all(dir.join("dhcp6d-state"));
            let config = dir.join("dhcp6d.toml");
            std::fs::write(&config, dhcp6d_config("dhcp6d", "bench-srv"))?;
            let pins = crate::setup::netns_pin_dir("bench")?;
            let mut args = vec![bin, "run", "--config", config.to_str().context("path")?];
            let pins_arg = pins.to_str().context("path")?;
            if *xdp {
                args.extend_from_slice(&["--bpf-dir", pins_arg]);
            } else {
                args.push("--no-xdp");
            }
            server.start(&args, &dir.join("dhcp6d.log"))?;
            std::thread::sleep(Duration::from_secs(2));
        }
        RenewServer::Kea => {
            spawn_kea(&mut server)?;
        }
    }
    // perfdhcp first: it renews at most at its exchange rate, alongside the exchanges.
    for &rate in PERFDHCP_RENEW_RATES {
        let r = rate.to_string();
        let text = client.printed(&[
            "perfdhcp",
            "-6",
            "-l",
            "bench-cli",
            "-r",
            &r,
            "-f",
            &r,
            "-p",
            &SECONDS.to_string(),
            "-R",
            "4000000000",
        ])?;
        match parse_perfdhcp_renews(&text) {
            Some((sent, received)) => println!(
                "  {name:<16} perfdhcp -r {rate} -f {rate}: Renews sent {:>8.1}/s answered {:>8.1}/s lost {:>6.2}%",
                sent / f64::from(SECONDS),
                received / f64::from(SECONDS),
                if sent > 0.0 { (sent - received).max(0.0) * 100.0 / sent } else { 100.0 }
            ),
            None => println!("  {name:<16} perfdhcp -r {rate} -f {rate}: no RENEW-REPLY statistics"),
        }
    }
    if matches!(kind, RenewServer::Dhcp6d { xdp: true }) {
        // Where the Renews went: answered in XDP, or passed up, and why.
        let socket = dir.join("dhcp6d.sock");
        let out = std::process::Command::new(dhcp6d)
            .args(["show", "statistics", "--json", "--socket"])
            .arg(&socket)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let xdp = text.split("\"xdp\":").nth(1).and_then(|t| t.split('}').next()).unwrap_or("none");
        println!("  {name:<16} XDP verdicts after perfdhcp: {}", xdp.split_whitespace().collect::<String>());
    }
    let own = own.to_str().context("build path is not UTF-8")?;
    let mut sustained: Option<f64> = None;
    for (packet, rates) in [(false, RENEW_RATES), (true, PACKET_RENEW_RATES)] {
        for &rate in rates {
            let base = NEXT_CLIENT.fetch_add(6000, std::sync::atomic::Ordering::Relaxed).to_string();
            let rate_s = rate.to_string();
            let secs = SECONDS.to_string();
            let mut args = vec![
                own,
                "-i",
                "bench-cli",
                "-r",
                "2000",
                "-s",
                "3",
                "--base",
                &base,
                "--renew-rate",
                &rate_s,
                "--renew-seconds",
                &secs,
            ];
            if packet {
                args.push("--packet");
            }
            let before = xdp_run_stats(&server, "bench-srv");
            let text = client.printed(&args)?;
            let in_xdp = xdp_run_stats(&server, "bench-srv")
                .zip(before)
                .filter(|((_, n1), (_, n0))| n1 > n0)
                .map(|((t1, n1), (t0, n0))| ((t1 - t0) as f64 / (n1 - n0) as f64, n1 - n0));
            let how = if packet { "packet socket" } else { "UDP socket" };
            let line = text.lines().find(|l| l.starts_with("renews")).unwrap_or_default();
            let Some(run) = parse_own(rate, line) else {
                println!("  {name:<16} {how}, offered {rate:>7}/s: no result:\n{text}");
                continue;
            };
            println!(
                "  {name:<16} {how:<13} offered {rate:>7}/s answered {:>9.1}/s lost {:>6.2}%{}",
                run.achieved,
                run.drop_ratio * 100.0,
                in_xdp.map_or(String::new(), |(ns, frames)| format!("  XDP: {ns:.0} ns/frame over {frames} frames"))
            );
            if run.drop_ratio <= MAX_DROP_RATIO {
                sustained = Some(sustained.map_or(run.achieved, |s: f64| s.max(run.achieved)));
            }
        }
    }
    match sustained {
        Some(r) => println!("  {name:<16} sustains {r:.1} renewals/s"),
        None => println!("  {name:<16} sustains none of the offered rates with at most 1% lost"),
    }
    Ok(sustained)
}

/// The server behind the relays: it serves the relayed link 2001:db8:1::/64 (chosen by the
/// relay's link-address), with durable leases as in the exchange benchmark.
fn relayed_server_config() -> String {
    format!(
        r#"[server]
state_dir = "{DIR}/relayed-state"
control_socket = "{DIR}/relayed.sock"
preferred_lifetime = 3000
valid_lifetime = 4000

[[subnet]]
prefix = "2001:db8:1::/64"
ranges = [{{ low = "2001:db8:1::1:0", high = "2001:db8:1::ffff:ffff" }}]
"#
    )
}

/// The relay's configuration, with `standby` (a `[relay.standby]` section, or nothing) after it.
fn relay_config(standby: &str) -> String {
    format!(
        r#"[server]
state_dir = "{DIR}/relay-state"
control_socket = "{DIR}/relay.sock"

[relay]
[[relay.group]]
name = "core"
servers = ["2001:db8:ff::1"]

[[relay.interface]]
name = "bench-acc"
group = "core"
link_address = "2001:db8:1::1"
{standby}"#
    )
}

/// Which relay agent sits between the generator and the server.
enum Relay {
    /// dhcp6d, relaying in XDP (`xdp`) or from userspace; with `standby`, master of a hot
    /// standby pair, backing every entry up to a second dhcp6d.
    Dhcp6d {
        xdp: bool,
        standby: bool,
    },
    Dhcrelay,
}

/// Client namespace -- relay namespace -- server namespace: bench-cli/bench-acc is the access
/// link, bench-up/bench-srv the upstream one (relay 2001:db8:ff::2, server 2001:db8:ff::1).
/// The relay is the first process spawned in the relay namespace, so its CPU is measured.
fn relayed_sweep(name: &str, relay: &Relay, dhcp6d: &Path, own: &Path) -> Result<Outcome> {
    let dir = PathBuf::from(DIR);
    let mut server = Host::new("bench-srv")?;
    let mut middle = Host::new("bench-rly")?;
    let mut client = Host::new("bench-cli")?;
    veth(&mut middle, "bench-up", &server, "bench-srv")?;
    veth(&mut client, "bench-cli", &middle, "bench-acc")?;
    server.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::1/64", "dev", "bench-srv", "nodad"])?;
    middle.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::2/64", "dev", "bench-up", "nodad"])?;
    middle.exec(&["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "bench-acc", "nodad"])?;
    let bin = dhcp6d.to_str().context("build path is not UTF-8")?;
    // The links as a real router's wires, as the relay tests make them: whole UDP checksums
    // from the senders, NAPI (GRO) on the ends XDP redirects into, IPv6 forwarding on the
    // relay, its neighbour toward the server known.
    client.exec(&["ethtool", "-K", "bench-cli", "tx", "off", "gro", "on"])?;
    server.exec(&["ethtool", "-K", "bench-srv", "tx", "off", "gro", "on"])?;
    middle.exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])?;
    let server_mac = server.printed(&["cat", "/sys/class/net/bench-srv/address"])?;
    middle.exec(&["ip", "-6", "neigh", "replace", "2001:db8:ff::1", "lladdr", server_mac.trim(), "dev", "bench-up"])?;
    let mut _backup = None;
    match relay {
        Relay::Dhcp6d { xdp, standby } => {
            let config = dir.join("relay.toml");
            let mut section = String::new();
            if *standby {
                _backup = Some(standby::backup_peer(&mut middle, dhcp6d)?);
                section = standby::standby_config("relay", "bench-acc", "2001:db8:ee::2", "2001:db8:ee::1");
            }
            std::fs::write(&config, relay_config(&section))?;
            let _ = std::fs::remove_dir_all(dir.join("relay-state"));
            let pins = crate::setup::netns_pin_dir("bench-relay")?;
            let mut args = vec![bin, "run", "--config", config.to_str().context("path")?];
            if *xdp {
                args.extend(["--bpf-dir", pins.to_str().context("path")?]);
                middle.xdp_counted = Some("bench-acc".into());
            } else {
                args.push("--no-xdp");
            }
            middle.start(&args, &dir.join("relay.log"))?;
        }
        Relay::Dhcrelay => {
            let args = ["dhcrelay", "-6", "-d", "-q", "-I", "-l", "bench-acc", "-u", "2001:db8:ff::1%bench-up"];
            middle.start(&args, &dir.join("dhcrelay.log"))?;
        }
    }
    let config = dir.join("relayed.toml");
    std::fs::write(&config, relayed_server_config())?;
    let _ = std::fs::remove_dir_all(dir.join("relayed-state"));
    server.start(&[bin, "run", "--config", config.to_str().context("path")?, "--no-xdp"], &dir.join("relayed.log"))?;
    std::thread::sleep(Duration::from_secs(2));
    let before = middle.xdp_counted.as_ref().and_then(|i| xdp_run_stats(&middle, i));
    let (runs, overload) = sweep(Generator::Own(own), OWN_RATES, name, &middle, &client, "bench-cli")?;
    let after = middle.xdp_counted.as_ref().and_then(|i| xdp_run_stats(&middle, i));
    if let (Some((t0, n0)), Some((t1, n1))) = (before, after) {
        // Every frame the program saw on the relay's two interfaces, relayed or not.
        println!(
            "  XDP program: {:.0} ns per frame over {} frames",
            (t1 - t0) as f64 / (n1 - n0).max(1) as f64,
            n1 - n0
        );
    }
    Ok(Outcome { peak: peak(&runs), overload, cpu: cpu_per_exchange(&runs) })
}

/// Relayed four-message exchanges per second through dhcp6d's relay and through ISC
/// dhcrelay -6, with dhcp6-load as the clients and dhcp6d as the server, and the relay's own
/// CPU time per exchange (each exchange is four relayed messages: two up, two down).
pub fn relayed(dhcp6d: &Path) -> Result<()> {
    let own = dhcp6d.with_file_name("dhcp6-load");
    println!(
        "relayed exchanges per second (dhcp6-load -> relay -> dhcp6d server; 4 relayed messages each), \
         {SECONDS} s per rate; CPU is the relay's:"
    );
    // The kernel counts the XDP program's time while this is 1: it is the XDP relay's CPU.
    let stats = "/proc/sys/kernel/bpf_stats_enabled";
    let stats_were = std::fs::read_to_string(stats).unwrap_or_default();
    let _ = std::fs::write(stats, "1");
    let xdp = relayed_sweep("dhcp6d relay (XDP)", &Relay::Dhcp6d { xdp: true, standby: false }, dhcp6d, &own);
    // The same relay as master of a hot standby pair, backing every entry up as it goes.
    let hot = relayed_sweep("XDP relay, hot backup", &Relay::Dhcp6d { xdp: true, standby: true }, dhcp6d, &own);
    let _ = std::fs::write(stats, stats_were.trim());
    let xdp = xdp?;
    match hot {
        Ok(hot) => standby::compare_rates(&xdp, &hot),
        Err(e) => println!("  the sweep with hot backup failed: {e:#}"),
    }
    let ours = relayed_sweep("dhcp6d relay --no-xdp", &Relay::Dhcp6d { xdp: false, standby: false }, dhcp6d, &own)?;
    let dhcrelay =
        if crate::shell::output(std::process::Command::new("sh").args(["-c", "command -v dhcrelay"])).is_some() {
            Some(relayed_sweep("dhcrelay", &Relay::Dhcrelay, dhcp6d, &own)?)
        } else {
            println!("  dhcrelay is not installed: no comparison");
            None
        };
    let line = |name: &str, o: &Outcome| {
        if let Some(p) = o.peak {
            println!(
                "  {name}: {:.1} exchanges/s sustained ({:.1} relayed messages/s), {:.1} us of relay CPU per exchange",
                p.achieved,
                p.achieved * 4.0,
                o.cpu
            );
        }
    };
    line("dhcp6d relay (XDP)     ", &xdp);
    line("dhcp6d relay --no-xdp  ", &ours);
    let compare = |name: &str, a: &Outcome, b: &Outcome| {
        if let (Some(pa), Some(pb)) = (a.peak, b.peak) {
            println!(
                "  {name}: {:.2}x the sustained rate, {:.2}x less relay CPU per exchange",
                pa.achieved / pb.achieved,
                b.cpu / a.cpu
            );
        }
    };
    compare("XDP / --no-xdp", &xdp, &ours);
    if let Some(d) = &dhcrelay {
        line("dhcrelay               ", d);
        compare("XDP / dhcrelay", &xdp, d);
        compare("--no-xdp / dhcrelay", &ours, d);
    }
    println!(
        "  (XDP's CPU is dhcp6d's process time plus the XDP program's run time on the access and \
         upstream interfaces; the veth transmit of redirected frames is not in either)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_part_is_reported_and_the_later_ones_still_run() {
        let ran = std::cell::RefCell::new(Vec::new());
        let part = |name: &'static str, ok: bool| -> Part<'_> {
            let ran = &ran;
            let body = move || {
                ran.borrow_mut().push(name);
                if ok {
                    Ok(())
                } else {
                    anyhow::bail!("{name} refused")
                }
            };
            (name, Box::new(body))
        };
        let failed =
            run_parts(vec![part("exchanges", true), part("xdp", false), part("renewals", true), part("relay", false)]);
        assert_eq!(failed, ["xdp", "relay"]);
        assert_eq!(*ran.borrow(), ["exchanges", "xdp", "renewals", "relay"]);
    }
}
