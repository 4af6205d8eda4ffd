//! `dhcp6d`: the dhcp6 daemon and its operator commands.

use std::{
    fmt::Write as _,
    io::{self, Write as _},
    path::{Path, PathBuf},
    process::ExitCode,
    thread,
    time::Duration,
};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use dhcp6_user::{
    capture,
    codec::Message,
    config::{Config, LeaseDatabase},
    control::{self, Request},
    daemon::{self, RunOptions},
    json,
    lease_store::LeaseStore,
    leasequery, server, show,
    store::{self, postgresql},
    trace::{TraceFilter, TracedClient},
    xdp::XdpProgram,
};

#[derive(Parser)]
#[command(name = "dhcp6d", version, about = "XDP-accelerated DHCPv6 server and relay agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve DHCPv6 on the interfaces and links of the configuration.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Serve everything from userspace: do not attach the XDP program, and detach one an
        /// earlier dhcp6d left pinned on these interfaces.
        #[arg(long)]
        no_xdp: bool,
        /// The bpffs folder where the XDP program's maps and links are pinned, so that
        /// renewals are answered while dhcp6d restarts.
        #[arg(long, default_value = dhcp6_common::PIN_DIR)]
        bpf_dir: PathBuf,
    },
    /// Check a configuration file and report the first error with its line and column.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Ask the running server.
    Show {
        #[command(subcommand)]
        what: Show,
        /// Print JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        /// The control socket (default: the one the configuration names, else that of
        /// /etc/dhcp6d/dhcp6d.toml if it exists, else /run/dhcp6d.sock).
        #[arg(long, global = true)]
        socket: Option<PathBuf>,
        /// Take the control socket from this configuration.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// The PostgreSQL lease database (`[lease_database] type = "postgresql"`): its schema.
    Db {
        #[command(subcommand)]
        what: DbCommand,
        /// The configuration naming the database.
        #[arg(long, short, global = true, default_value = "/etc/dhcp6d.toml")]
        config: PathBuf,
    },
    /// The lease store (the journal, or the database), offline: export it, or import another
    /// server's leases into it.
    Leases {
        #[command(subcommand)]
        what: LeasesCommand,
        /// The configuration naming the state directory.
        #[arg(long, short, global = true, default_value = "/etc/dhcp6d.toml")]
        config: PathBuf,
    },
    /// The relay's actions on the running server.
    Relay {
        #[command(subcommand)]
        what: RelayCommand,
        #[arg(long, global = true)]
        socket: Option<PathBuf>,
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// Operator actions on the running server.
    Clear {
        #[command(subcommand)]
        what: Clear,
        #[arg(long, global = true)]
        socket: Option<PathBuf>,
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// The failover relationship (RFC 8156).
    Failover {
        #[command(subcommand)]
        what: FailoverCommand,
        #[arg(long, global = true)]
        socket: Option<PathBuf>,
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// Follow the messages the running server sees and sends, decoded, with what happened to
    /// each (answered or relayed in XDP, passed up and why, answered, dropped and why), until
    /// interrupted.
    Trace {
        /// Only messages on this interface.
        #[arg(long)]
        interface: Option<String>,
        /// Only this client's messages: its DUID (hex) or its MAC (six bytes of hex).
        #[arg(long, value_name = "DUID|MAC")]
        client: Option<String>,
        /// A JSON document per line instead of text.
        #[arg(long)]
        json: bool,
        #[arg(long)]
        socket: Option<PathBuf>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Have the running server read its configuration file again (the one it was started
    /// with) and run from it, keeping every lease; a file that does not check, or a change
    /// that needs a restart, is refused and the running configuration stays.
    Reload {
        #[arg(long, global = true)]
        socket: Option<PathBuf>,
        /// Take the control socket from this configuration.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// Lock or unlock a pool on the running server (until the next reload, which takes the
    /// configuration's `locked`).
    Pool {
        #[command(subcommand)]
        what: PoolCommand,
        #[arg(long, global = true)]
        socket: Option<PathBuf>,
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// Send Reconfigure messages (RFC 9915 section 18.3.11) from the running server: to one
    /// client, or to every client with a lease in a pool, asking each to renew (or rebind, or
    /// send an Information-Request) now. Only clients that sent Reconfigure Accept hold the
    /// key a Reconfigure is signed with; the others are counted and left alone.
    Reconfigure {
        /// The client's DUID (hex, as `show bindings` prints it).
        #[arg(long, value_name = "DUID", conflicts_with = "pool", required_unless_present = "pool")]
        client: Option<String>,
        /// Every client with a lease in the pool of this name (`show pools` lists them).
        #[arg(long, value_name = "NAME")]
        pool: Option<String>,
        /// What the clients are asked to send.
        #[arg(long, default_value = "renew", value_parser = ["renew", "rebind", "information-request"])]
        message: String,
        #[arg(long)]
        socket: Option<PathBuf>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print every DHCPv6 message in a pcap capture, nested relays and options included.
    Decode {
        /// A pcap file (Ethernet link type).
        file: PathBuf,
        /// One JSON document: an array of frames with their decoded messages.
        #[arg(long)]
        json: bool,
        /// Also write each DHCPv6 payload to DIR/<capture>-frame-N.bin (a fuzzing corpus, say).
        #[arg(long, value_name = "DIR")]
        extract: Option<PathBuf>,
    },
    /// The XDP program on its own.
    Xdp {
        #[command(subcommand)]
        command: XdpCommand,
    },
    /// Ask a DHCPv6 server about its bindings (leasequery, RFC 5007; bulk leasequery over TCP,
    /// RFC 5460) and print the answer decoded. Any such server answers (dhcp6d with
    /// `[leasequery]`, Kea with its lease query hook).
    Leasequery {
        /// The server's address (link-local ones with %interface).
        #[arg(long)]
        server: String,
        /// The binding holding this address, or a delegated prefix holding it.
        #[arg(long, group = "ask")]
        address: Option<std::net::Ipv6Addr>,
        /// The binding of this client (its DUID in hex).
        #[arg(long, group = "ask", value_name = "DUID")]
        client_id: Option<String>,
        /// Bulk: the bindings a relay with this Relay-ID (a DUID in hex) relayed.
        #[arg(long, group = "ask", value_name = "DUID")]
        relay_id: Option<String>,
        /// Bulk: the bindings on the link of this address.
        #[arg(long, group = "ask", value_name = "ADDRESS")]
        link_address: Option<std::net::Ipv6Addr>,
        /// Bulk: the bindings relayed with this Remote-ID: ENTERPRISE:TEXT.
        #[arg(long, group = "ask", value_name = "ENTERPRISE:TEXT")]
        remote_id: Option<String>,
        /// Only bindings on the link of this address (the query's link-address).
        #[arg(long)]
        link: Option<std::net::Ipv6Addr>,
        /// Over TCP even for a query by address or client ID (bulk queries always are).
        #[arg(long)]
        tcp: bool,
        /// The requestor's DUID (hex); by default a DUID-UUID from /etc/machine-id.
        #[arg(long, value_name = "DUID")]
        duid: Option<String>,
        #[arg(long, default_value_t = 547)]
        port: u16,
        /// Seconds to wait for the answer (for each read, over TCP).
        #[arg(long, default_value_t = 5)]
        timeout: u64,
        /// One JSON array of the answer's messages.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum XdpCommand {
    /// Attach the classifier to an interface and print its counters every second.
    Watch {
        #[arg(long, short)]
        interface: String,
        #[arg(long, value_enum, default_value_t = Mode::Native)]
        mode: Mode,
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Attach the XDP program in driver mode with empty maps of its own, which passes the
    /// server's answers, and keep it attached until stopped. A veth delivers what its peer
    /// sends with XDP_TX only when it runs XDP itself: put this on the veth end (a bridge
    /// port) facing dhcp6d's interface, or dhcp6d answers renewals there from userspace.
    Pass {
        #[arg(long, short)]
        interface: String,
    },
    /// Time the Renew/Rebind fast path per frame, in program test runs (no interface needed).
    Bench {
        /// Runs per case; the kernel reports the mean.
        #[arg(long, default_value_t = 1_000_000)]
        repeat: u32,
        /// Time answered frames in plain test runs, one per frame, as when the kernel refuses
        /// live-frame test runs (some do, even to root) rather than in live-frame ones.
        #[arg(long)]
        plain: bool,
    },
}

#[derive(Subcommand, Clone, Copy)]
enum DbCommand {
    /// Create dhcp6d's schema in an empty database, or in one Kea's `kea-admin db-init` made
    /// (Kea's lease6 table is used as it is).
    Init,
    /// Run the migrations the database's schema lacks.
    Upgrade,
    /// Print the schema version the database holds and the one this dhcp6d needs.
    Version,
}

#[derive(Subcommand)]
enum LeasesCommand {
    /// Print every lease in the store.
    Export {
        /// As CSV (the only format so far; kept explicit for scripts).
        #[arg(long, required = true)]
        csv: bool,
    },
    /// Import a Kea memfile lease6 CSV, so clients keep their addresses when moving from Kea.
    /// dhcp6d must be stopped.
    Import {
        /// Kea's lease6 CSV (its memfile `name`).
        #[arg(long, value_name = "FILE")]
        kea: PathBuf,
        /// Kea's server DUID file (kea-dhcp6-serverid): dhcp6d takes the identity over, so that
        /// clients' Renews, which name it, are answered.
        #[arg(long, value_name = "FILE")]
        server_id: Option<PathBuf>,
    },
}

#[derive(Subcommand, Clone, Copy)]
enum Clear {
    /// Return declined (conflicting) addresses to the pool: ADDRESS, or all of them.
    Conflicting { address: Option<std::net::Ipv6Addr> },
}

#[derive(Subcommand)]
enum PoolCommand {
    /// NAME gives nothing to new clients; its leases renew. `show pools` lists the names.
    Lock { name: String },
    /// NAME gives addresses or prefixes again.
    Unlock { name: String },
}

#[derive(Subcommand, Clone, Copy)]
enum FailoverCommand {
    /// The partner is down (it is known to have stopped, not merely cut off): this server
    /// goes to PARTNER-DOWN and, once the MCLT has passed, serves the partner's share too.
    PartnerDown,
}

#[derive(Subcommand, Clone, Copy)]
enum RelayCommand {
    /// Hot standby's backup.
    Backup {
        #[command(subcommand)]
        when: BackupWhen,
    },
    /// Ask the servers for the bindings this relay relayed (bulk leasequery) and rebuild the
    /// user entries and delegated-prefix routes from their answers.
    Rebuild {
        /// How to ask: by the relay's Relay-ID or by each access entry's link-address
        /// (default: `[relay] rebuild`, else by Relay-ID when the relay sends one).
        #[arg(long, value_enum)]
        by: Option<RebuildByArg>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RebuildByArg {
    RelayId,
    LinkAddress,
}

#[derive(Subcommand, Clone, Copy)]
enum BackupWhen {
    /// A batch of every user entry to each connected standby peer, now.
    Now,
}

#[derive(Subcommand, Clone, Copy)]
enum Show {
    /// Leases: address or prefix, type, state, expiry, interface, IAID, client DUID.
    Bindings,
    /// Messages received and sent per type, drops per reason, XDP verdicts.
    Statistics,
    /// Addresses and prefixes per state in each pool.
    Pools,
    /// The relay agent.
    Relay {
        #[command(subcommand)]
        what: RelayShow,
    },
    /// The failover relationship: own and partner state, since when, MCLT, updates unacked,
    /// bindings sent and received, last contact.
    Failover,
    /// Clients storm protection is cutting now (`[storm]`): MAC or DUID, messages cut.
    Storms,
}

#[derive(Subcommand, Clone, Copy)]
enum RelayShow {
    /// Clients' bindings learned from relayed Replies: prefix, interface, link-local, MAC, DUID.
    Users,
    /// Each server of each group: up or down, messages sent, answered, timed out.
    Servers,
    /// Hot standby: role per profile, backup links, entries sent and received, last batch, lag.
    Standby,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// In the driver: the fast one, on NICs and veth.
    Native,
    /// In the kernel's generic path, for drivers without XDP support.
    Generic,
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: logs that go to files or journald stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&io::stderr());
    tracing_subscriber::fmt().with_writer(io::stderr).with_ansi(ansi).with_env_filter(filter).init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dhcp6d: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One thread: the engine is single-threaded by design (one owner of the lease state), and
/// keeping the socket readers on its thread saves a cross-thread wake-up per batch and keeps
/// them off the engine's core while it works (the commit and the sender have threads).
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run { config: config_path, no_xdp, bpf_dir } => {
            let config = Config::load(&config_path)?;
            runtime()?.block_on(daemon::run(RunOptions { config, config_path, xdp: !no_xdp, bpf_dir }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config } => {
            let c = Config::load(&config)?;
            let pools: usize = c.server.subnets.iter().map(|s| s.pd_pools.len()).sum();
            let relayed = c.relay.as_ref().map_or(String::new(), |r| {
                format!(", {} relay access entries in {} server groups", r.interfaces.len(), r.groups.len())
            });
            println!(
                "{}: ok ({} subnets, {} prefix-delegation pools{relayed})",
                config.display(),
                c.server.subnets.len(),
                pools
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Db { what, config } => {
            let config = Config::load(&config)?;
            let LeaseDatabase::Postgresql(pg) = &config.daemon.lease_database else {
                anyhow::bail!("the configuration keeps leases in the journal: [lease_database] names no database");
            };
            let mut client = postgresql::connect(pg, "dhcp6d db")
                .with_context(|| format!("connecting to {} on {}:{}", pg.database, pg.host, pg.port))?;
            match what {
                DbCommand::Init => {
                    let v = postgresql::schema::init(&mut client)?;
                    println!("dhcp6d's schema created in {} (version {v})", pg.database);
                }
                DbCommand::Upgrade => {
                    let (from, to) = postgresql::schema::upgrade(&mut client)?;
                    match from == to {
                        true => println!("the schema of {} is up to date (version {to})", pg.database),
                        false => println!("the schema of {} upgraded from version {from} to {to}", pg.database),
                    }
                }
                DbCommand::Version => {
                    let held = postgresql::schema::version(&mut client)?;
                    println!(
                        "database {}: schema version {}; this dhcp6d needs {}",
                        pg.database,
                        held.map_or_else(|| "none (run dhcp6d db init)".into(), |v| v.to_string()),
                        postgresql::schema::VERSION
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Leases { what, config } => {
            let config = Config::load(&config)?;
            match what {
                LeasesCommand::Export { .. } => {
                    let mut leases = match &config.daemon.lease_database {
                        LeaseDatabase::Journal => {
                            let journal = config.daemon.state_dir.join(store::JOURNAL_FILE);
                            store::journal::read_leases(&journal)
                                .with_context(|| format!("reading {}", journal.display()))?
                        }
                        LeaseDatabase::Postgresql(pg) => {
                            let mut client = postgresql::connect(pg, "dhcp6d leases export")?;
                            postgresql::read_all(&mut client)?.into_iter().map(|s| s.lease).collect()
                        }
                    };
                    print_all(&store::kea::to_csv(&mut leases))?;
                }
                LeasesCommand::Import { kea, server_id } => import_kea(&config, &kea, server_id.as_deref())?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Clear { what: Clear::Conflicting { address }, socket, config } => {
            let socket = control_socket(socket, config)?;
            let answer = runtime()?.block_on(control::ask(&socket, Request::ClearConflicting { address }))?;
            print_all(&show::render(Request::ClearConflicting { address }, &answer)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Reload { socket, config } => ask_and_print(control_socket(socket, config)?, Request::Reload),
        Command::Reconfigure { client, pool, message, socket, config } => {
            let message = message.parse().map_err(anyhow::Error::msg)?;
            ask_and_print(control_socket(socket, config)?, Request::Reconfigure { client, pool, message })
        }
        Command::Pool { what, socket, config } => {
            let request = match what {
                PoolCommand::Lock { name } => Request::PoolLock { name, locked: true },
                PoolCommand::Unlock { name } => Request::PoolLock { name, locked: false },
            };
            ask_and_print(control_socket(socket, config)?, request)
        }
        Command::Failover { what: FailoverCommand::PartnerDown, socket, config } => {
            let socket = control_socket(socket, config)?;
            let answer = runtime()?.block_on(control::ask(&socket, Request::FailoverPartnerDown))?;
            print_all(&show::render(Request::FailoverPartnerDown, &answer)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Relay { what: RelayCommand::Rebuild { by }, socket, config } => {
            let by = by.map(|b| match b {
                RebuildByArg::RelayId => dhcp6_user::relay::RebuildBy::RelayId,
                RebuildByArg::LinkAddress => dhcp6_user::relay::RebuildBy::LinkAddress,
            });
            ask_and_print(control_socket(socket, config)?, Request::RelayRebuild { by })
        }
        Command::Leasequery {
            server,
            address,
            client_id,
            relay_id,
            link_address,
            remote_id,
            link,
            tcp,
            duid,
            port,
            timeout,
            json,
        } => {
            let hex = |what: &str, text: &str| {
                dhcp6_user::codec::parse_hex(text).with_context(|| format!("{what} {text:?} is not hex"))
            };
            let ask = match (address, client_id, relay_id, link_address, remote_id) {
                (Some(a), ..) => leasequery::Ask::Address(a),
                (_, Some(d), ..) => leasequery::Ask::ClientId(hex("--client-id", &d)?),
                (_, _, Some(d), ..) => leasequery::Ask::RelayId(hex("--relay-id", &d)?),
                (_, _, _, Some(a), _) => leasequery::Ask::LinkAddress(a),
                (_, _, _, _, Some(r)) => {
                    let (enterprise, id) = r.split_once(':').context("--remote-id is ENTERPRISE:TEXT")?;
                    let enterprise = enterprise.parse().context("--remote-id's enterprise number")?;
                    leasequery::Ask::RemoteId { enterprise, id: id.as_bytes().to_vec() }
                }
                _ => {
                    anyhow::bail!("say what to ask: --address, --client-id, --relay-id, --link-address or --remote-id")
                }
            };
            let requestor = match duid {
                Some(d) => hex("--duid", &d)?,
                None => machine_duid(),
            };
            let server = server_address(&server, port)?;
            let xid = std::process::id() & 0xff_ffff;
            let query = ask.query(&requestor, link, xid)?;
            let wait = Duration::from_secs(timeout);
            let messages = runtime()?.block_on(async {
                if tcp || ask.is_bulk() {
                    daemon::leasequery_client::bulk(server, &query, wait).await
                } else {
                    daemon::leasequery_client::udp(server, &query, wait).await.map(|m| vec![m])
                }
            });
            let messages = messages.with_context(|| format!("asking {server}"))?;
            print_all(&leasequery::render(&messages, json))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Relay { what: RelayCommand::Backup { when: BackupWhen::Now }, socket, config } => {
            let socket = control_socket(socket, config)?;
            let answer = runtime()?.block_on(control::ask(&socket, Request::RelayBackupNow))?;
            print_all(&show::render(Request::RelayBackupNow, &answer)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { what, json, socket, config } => {
            let socket = control_socket(socket, config)?;
            let request = match what {
                Show::Bindings => Request::Bindings,
                Show::Statistics => Request::Statistics,
                Show::Pools => Request::Pools,
                Show::Relay { what: RelayShow::Users } => Request::RelayUsers,
                Show::Relay { what: RelayShow::Servers } => Request::RelayServers,
                Show::Failover => Request::Failover,
                Show::Storms => Request::Storms,
                Show::Relay { what: RelayShow::Standby } => Request::RelayStandby,
            };
            let answer = runtime()?.block_on(control::ask(&socket, request.clone()))?;
            let text =
                if json { serde_json::to_string_pretty(&answer)? + "\n" } else { show::render(request, &answer)? };
            print_all(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Decode { file, json, extract } => decode(&file, json, extract.as_deref()),
        Command::Trace { interface, client, json, socket, config } => {
            let client = client.map(|c| TracedClient::parse(&c)).transpose()?;
            let socket = control_socket(socket, config)?;
            let filter = TraceFilter { interface, client };
            runtime()?.block_on(control::trace(&socket, &filter, |event| {
                let line = match json {
                    true => serde_json::to_string(&event).unwrap_or_default(),
                    false => event.to_string(),
                };
                // A closed pipe (`| head`) ends the trace.
                writeln!(io::stdout(), "{line}").is_ok()
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Xdp { command: XdpCommand::Bench { repeat, plain } } => {
            let (timing, measured) =
                dhcp6_user::xdp_bench::measure(repeat, !plain).context("timing the XDP fast path (needs root)")?;
            print_all(&format!("{timing}\n"))?;
            for m in measured {
                // Passed frames are always timed in one plain test run with a repeat.
                let (verdict, mode) = if m.answered { ("XDP_TX", timing.name()) } else { ("XDP_PASS", "plain") };
                print_all(&format!(
                    "{:<38} {:>8} {:>6} ns/frame in the program, {:>6} ns/frame in the test run ({mode})\n",
                    m.what,
                    verdict,
                    m.in_program.as_nanos(),
                    m.per_packet.as_nanos()
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Xdp { command: XdpCommand::Pass { interface } } => {
            let mut program = XdpProgram::load_with(1).context("loading the XDP program (needs root)")?;
            program
                .attach(&interface, aya::programs::XdpMode::Driver)
                .with_context(|| format!("attaching XDP to {interface} in driver mode"))?;
            print_all(&format!("XDP attached to {interface}, passing; detached when stopped\n"))?;
            // The link lives as long as this process: SIGTERM ends both.
            loop {
                thread::sleep(Duration::from_secs(3600));
            }
        }
        Command::Xdp { command: XdpCommand::Watch { interface, mode, seconds } } => {
            let mode = match mode {
                Mode::Native => aya::programs::XdpMode::Driver,
                Mode::Generic => aya::programs::XdpMode::Skb,
            };
            let mut program = XdpProgram::load().context("loading the XDP program (needs root)")?;
            program.attach(&interface, mode).with_context(|| format!("attaching XDP to {interface}"))?;
            let mut elapsed = 0;
            loop {
                thread::sleep(Duration::from_secs(1));
                elapsed += 1;
                print_all(&format!("--- {interface} after {elapsed} s\n{}", program.counters()?))?;
                if seconds.is_some_and(|s| elapsed >= s) {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
}

/// Imports Kea's leases (and optionally its identity) into the lease store of a stopped
/// dhcp6d: its journal, or the database it shares with other servers (which refuses what
/// another client holds there).
fn import_kea(config: &Config, kea: &Path, server_id: Option<&Path>) -> Result<()> {
    if std::os::unix::net::UnixStream::connect(&config.daemon.control_socket).is_ok() {
        anyhow::bail!("dhcp6d is running (its control socket answers): stop it before importing");
    }
    let text = std::fs::read_to_string(kea).with_context(|| format!("reading {}", kea.display()))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let import = store::kea::parse_kea_leases(&text, now)?;
    // A resource we already lease to a different client stays ours: never two holders.
    let mut taken = std::collections::HashMap::new();
    let (mut store, what): (Box<dyn LeaseStore>, String) = match &config.daemon.lease_database {
        LeaseDatabase::Journal => {
            let journal = config.daemon.state_dir.join(store::JOURNAL_FILE);
            let opened = store::Journal::open(&journal).with_context(|| format!("opening {}", journal.display()))?;
            (Box::new(opened), journal.display().to_string())
        }
        LeaseDatabase::Postgresql(pg) => {
            // The rows are written as this server's: its identity, made now if it has none.
            let duid = daemon::identity::load_or_create(&config.daemon.state_dir, None)?;
            let opened = postgresql::Postgres::open(pg, &duid).with_context(|| format!("opening {}", pg.database))?;
            (Box::new(opened), format!("the lease database {}", pg.database))
        }
    };
    store
        .load(&mut |change| match change {
            server::LeaseChange::Upsert(l) => {
                taken.insert(l.resource, (l.duid, l.iaid));
            }
            server::LeaseChange::Remove(r) => {
                taken.remove(&r);
            }
        })
        .with_context(|| format!("loading {what}"))?;
    let (mut fresh, mut conflicts) = (Vec::new(), 0);
    for lease in import.leases {
        match taken.get(&lease.resource) {
            Some(holder) if *holder != (lease.duid.clone(), lease.iaid) => conflicts += 1,
            _ => fresh.push(server::LeaseChange::Upsert(lease)),
        }
    }
    let refused = store.commit(&fresh).context("writing the imported leases")?;
    // Held in the database by another client since it was read: kept, as above.
    let conflicts = conflicts + refused.len();
    println!(
        "imported {} leases from {} ({} ended, {} IA_TA skipped, {} already held by other clients and kept)",
        fresh.len() - refused.len(),
        kea.display(),
        import.ended,
        import.temporary,
        conflicts
    );
    if let Some(path) = server_id {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let duid = dhcp6_user::codec::parse_hex(text.trim()).filter(|d| dhcp6_user::codec::Duid::new(d).is_ok());
        let duid = duid.with_context(|| format!("{} does not hold a DUID", path.display()))?;
        daemon::identity::save(&config.daemon.state_dir, &duid)?;
        println!("server identity is now {} (from {})", json::hex(&duid), path.display());
    }
    Ok(())
}

/// Asks the running server; prints its answer. A refusal is an error: the exit status says it.
fn ask_and_print(socket: PathBuf, request: Request) -> Result<ExitCode> {
    let answer = runtime()?.block_on(control::ask(&socket, request.clone()))?;
    print_all(&show::render(request, &answer)?)?;
    Ok(ExitCode::SUCCESS)
}

/// The configuration the Debian package installs: its control socket is the default where it
/// exists, so that `dhcp6d show` finds the packaged daemon (whose unit lets it write only its
/// own runtime directory) without `--config`.
const PACKAGED_CONFIG: &str = "/etc/dhcp6d/dhcp6d.toml";

/// The control socket: given, or the configuration's, or the packaged configuration's, or the
/// default.
fn control_socket(socket: Option<PathBuf>, config: Option<PathBuf>) -> Result<PathBuf> {
    Ok(match (socket, config) {
        (Some(s), _) => s,
        (None, Some(c)) => Config::load(&c)?.daemon.control_socket,
        (None, None) => match Path::new(PACKAGED_CONFIG).exists() {
            true => {
                Config::load(Path::new(PACKAGED_CONFIG))
                    .with_context(|| format!("reading {PACKAGED_CONFIG} for its control socket (or pass --socket)"))?
                    .daemon
                    .control_socket
            }
            false => PathBuf::from("/run/dhcp6d.sock"),
        },
    })
}

/// Prints each DHCPv6 message of the capture. A message that does not decode is reported
/// with its error and the run ends with a failure status, after every frame is printed.
fn decode(file: &Path, as_json: bool, extract: Option<&Path>) -> Result<ExitCode> {
    let datagrams = capture::read_pcap(file).with_context(|| format!("reading {}", file.display()))?;
    if let Some(dir) = extract {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let stem = file.file_stem().map_or_else(|| "capture".into(), |s| s.to_string_lossy());
        for d in &datagrams {
            let path = dir.join(format!("{stem}-frame-{}.bin", d.frame));
            std::fs::write(&path, &d.payload).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let mut text = String::new();
    let mut failures = 0;
    let mut frames = Vec::new();
    for d in &datagrams {
        let decoded = Message::decode(&d.payload);
        if decoded.is_err() {
            failures += 1;
        }
        if as_json {
            let (message, error) = match &decoded {
                Ok(m) => (Some(json::message(m)), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let frame = json::FrameJson {
                frame: d.frame,
                time: d.timestamp.as_secs_f64(),
                vlans: &d.vlans,
                source: d.source.to_string(),
                destination: d.destination.to_string(),
                message,
                error,
            };
            frames.push(serde_json::to_value(frame)?);
        } else {
            let vlans = if d.vlans.is_empty() { String::new() } else { format!(" vlan {:?}", d.vlans) };
            writeln!(text, "#{} {:.6} {} -> {}{vlans}", d.frame, d.timestamp.as_secs_f64(), d.source, d.destination)?;
            match &decoded {
                Ok(m) => write!(text, "{m}")?,
                Err(e) => writeln!(text, "  undecodable ({} bytes): {e}", d.payload.len())?,
            }
        }
    }
    if as_json {
        text = serde_json::to_string_pretty(&frames)? + "\n";
    }
    print_all(&text)?;
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The requestor's DUID when none is given: DUID-UUID (RFC 6355) from /etc/machine-id, or
/// DUID-EN of enterprise 0 with this host's name.
fn machine_duid() -> Vec<u8> {
    let id = std::fs::read_to_string("/etc/machine-id").ok().and_then(|t| {
        let t = t.trim();
        (t.len() == 32).then(|| (0..16).map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()).collect())
    });
    match id.flatten() {
        Some(uuid) => [vec![0, 4], uuid].concat::<u8>(),
        None => [vec![0, 2, 0, 0, 0, 0], b"dhcp6d-leasequery".to_vec()].concat(),
    }
}

/// `ADDRESS` or `ADDRESS%INTERFACE` with the port.
fn server_address(text: &str, port: u16) -> Result<std::net::SocketAddrV6> {
    let (address, scope) = match text.split_once('%') {
        Some((a, i)) => (a, dhcp6_user::daemon::socket::if_index(i).with_context(|| format!("no interface {i}"))?),
        None => (text, 0),
    };
    let address = address.parse().with_context(|| format!("--server {text:?} is no IPv6 address"))?;
    Ok(std::net::SocketAddrV6::new(address, port, 0, scope))
}

/// Writes to stdout; a reader that went away (`dhcp6d decode x.pcap | head`) is not an error.
fn print_all(text: &str) -> Result<()> {
    match io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
