//! `cargo xtask bench --only postgresql`: leases in PostgreSQL. One PostgreSQL server (Debian's
//! postgresql-15, run as `nobody` from a folder under the bench's, fsync on) serves, side by
//! side in one run: Kea 2.2 with its PostgreSQL lease backend (its own database, made by
//! `kea-admin db-init`), dhcp6d with its PostgreSQL store, and then two dhcp6d on one database,
//! each on its own link under the same offered rate. dhcp6-load drives each, with the same
//! rates. The database's CPU time is measured at each server's sustained rate, to tell when
//! the database is the ceiling.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context, Result};

use super::{dhcp6d_config, kea_config, load, peak, report, start_kea, sweep, Generator, Run, DIR, SECONDS};
use crate::netns::{veth, Host};

/// Debian's PostgreSQL 15 programs.
const BIN: &str = "/usr/lib/postgresql/15/bin";
const PORT: u16 = 55432;
const ROLE: &str = "dhcp6d";
/// Offered rates (four-message exchanges per second).
const RATES: &[u32] = &[125, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000];
/// What the issue asks: dhcp6d at least this many times Kea's sustained rate.
const TARGET: f64 = 5.0;

/// The PostgreSQL server, killed (with its backends) when dropped.
struct Database {
    dir: PathBuf,
    child: Child,
}

impl Database {
    fn socket(&self) -> String {
        self.dir.join("socket").display().to_string()
    }

    /// CPU seconds its processes (the postmaster and its children: backends, WAL writer,
    /// checkpointer; each in a process group of its own) used so far.
    fn cpu_seconds(&self) -> f64 {
        let postmaster = self.child.id() as i64;
        let per_second = 100.0;
        let mut ticks = 0.0;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let Some((_, rest)) = stat.rsplit_once(')') else { continue };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // ppid is field 4; utime and stime are 14 and 15 (counted from 1 before the name).
            let pid = entry.file_name().to_str().and_then(|p| p.parse::<i64>().ok());
            if pid != Some(postmaster) && fields.get(1).and_then(|g| g.parse::<i64>().ok()) != Some(postmaster) {
                continue;
            }
            let t = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            ticks += t(11) + t(12);
        }
        ticks / per_second
    }

    /// A SQL statement through psql on `database`.
    fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let out = Command::new(Path::new(BIN).join("psql"))
            .args(["-h", &self.socket(), "-p", &PORT.to_string(), "-U", ROLE, "-d", database, "-tAc", sql])
            .output()?;
        if !out.status.success() {
            bail!("psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // A fast shutdown: the postmaster stops its backends and waits for them.
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn as_nobody(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]).arg(Path::new(BIN).join(program));
    c
}

/// initdb in a fresh folder, then the server, until it takes connections.
fn start_database() -> Result<Database> {
    let dir = PathBuf::from(DIR).join("postgres");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("socket"))?;
    crate::shell::run(Command::new("chmod").args(["755", DIR]))?;
    crate::shell::run(Command::new("chown").args(["-R", "nobody:nogroup"]).arg(&dir))?;
    let data = dir.join("data").display().to_string();
    let out = as_nobody("initdb").args(["-D", &data, "-U", ROLE, "--auth=trust", "-E", "UTF8"]).output()?;
    if !out.status.success() {
        bail!("initdb: {} (cargo xtask setup installs postgresql-15)", String::from_utf8_lossy(&out.stderr));
    }
    let log = std::fs::File::create(dir.join("postgres.log"))?;
    let child = as_nobody("postgres")
        .args(["-D", &data, "-p", &PORT.to_string(), "-k", &dir.join("socket").display().to_string()])
        .args(["-c", "listen_addresses=", "-c", "max_connections=100", "-c", "shared_buffers=256MB"])
        .args(["-c", "unix_socket_permissions=0777"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting postgres")?;
    let db = Database { dir, child };
    for _ in 0..100 {
        if db.psql("postgres", "SELECT 1").is_ok() {
            return Ok(db);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("PostgreSQL did not start: see {DIR}/postgres/postgres.log")
}

/// A fresh database `name`.
fn fresh_database(db: &Database, name: &str) -> Result<()> {
    db.psql("postgres", &format!("DROP DATABASE IF EXISTS {name}"))?;
    db.psql("postgres", &format!("CREATE DATABASE {name}"))?;
    Ok(())
}

/// dhcp6d `name` on `interface` with its leases in database `database`.
fn dhcp6d_pg_config(name: &str, interface: &str, db: &Database, database: &str) -> String {
    format!(
        "{}\n[lease_database]\ntype = \"postgresql\"\nhost = {:?}\nport = {PORT}\ndatabase = \"{database}\"\nuser = \"{ROLE}\"\npool_size = 2\n",
        dhcp6d_config(name, interface),
        db.socket()
    )
}

/// A server host `srv` and a client host `cli` joined by a veth, as the other benches' link.
fn link(srv: &str, cli: &str) -> Result<(Host, Host)> {
    let mut server = Host::new(srv)?;
    let client = Host::new(cli)?;
    veth(&mut server, srv, &client, cli)?;
    server.exec(&["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", srv, "nodad"])?;
    client.exec(&["ethtool", "-K", cli, "tx", "off"])?;
    Ok((server, client))
}

/// Starts dhcp6d `name` in `server` with `config`.
fn start_dhcp6d(server: &mut Host, dhcp6d: &Path, name: &str, config: &str) -> Result<()> {
    let dir = PathBuf::from(DIR);
    let _ = std::fs::remove_dir_all(dir.join(format!("{name}-state")));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config)?;
    let init = Command::new(dhcp6d).args(["db", "init", "--config"]).arg(&path).output()?;
    let said = String::from_utf8_lossy(&init.stderr);
    if !init.status.success() && !said.contains("holds dhcp6d's schema already") {
        bail!("dhcp6d db init: {said}");
    }
    let bin = dhcp6d.to_str().context("build path is not UTF-8")?;
    let pins = crate::setup::netns_pin_dir(name)?;
    let args = [bin, "run", "--config", path.to_str().context("path")?, "--bpf-dir", pins.to_str().context("path")?];
    server.start(&args, &dir.join(format!("{name}.log")))?;
    std::thread::sleep(Duration::from_secs(2));
    Ok(())
}

/// The database's CPU at one run at `rate` (server `server`, client `client`): cores busy,
/// and microseconds per exchange.
fn database_cpu(db: &Database, own: &Path, hosts: (&Host, &Host, &str), rate: u32) -> Result<(Run, f64, f64)> {
    let (server, client, interface) = hosts;
    let before = db.cpu_seconds();
    let run = load(Generator::Own(own), server, client, interface, rate)?;
    let used = db.cpu_seconds() - before;
    let exchanges = run.achieved * f64::from(SECONDS);
    Ok((run, used / f64::from(SECONDS), if exchanges > 0.0 { used * 1e6 / exchanges } else { f64::NAN }))
}

/// Sweeps one server, then measures the database at its sustained rate.
fn measured_sweep(name: &str, db: &Database, own: &Path, hosts: (&Host, &Host, &str)) -> Result<Option<(Run, f64)>> {
    let (server, client, interface) = hosts;
    let (runs, _) = sweep(Generator::Own(own), RATES, name, server, client, interface)?;
    let Some(best) = peak(&runs) else { return Ok(None) };
    let (run, cores, us) = database_cpu(db, own, hosts, best.offered)?;
    println!(
        "  {name}: at {}/s offered ({:.1}/s achieved), PostgreSQL used {cores:.2} cores, {us:.1} us of database CPU per exchange",
        best.offered, run.achieved
    );
    Ok(Some((best, cores)))
}

pub fn postgresql(dhcp6d: &Path) -> Result<()> {
    let own = dhcp6d.with_file_name("dhcp6-load");
    let db = start_database()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "leases in PostgreSQL 15 (one server, fsync on, {cores} cores shared with the servers and the load), four-message exchanges with dhcp6-load, {SECONDS} s per rate:"
    );

    // Kea 2.2 with its PostgreSQL lease backend, its schema made by kea-admin.
    fresh_database(&db, "kea")?;
    let admin = Command::new("kea-admin")
        .args([
            "db-init",
            "pgsql",
            "-u",
            ROLE,
            "-p",
            "unused",
            "-n",
            "kea",
            "-h",
            &db.socket(),
            "-P",
            &PORT.to_string(),
        ])
        .output()?;
    let kea = if admin.status.success() {
        let (mut server, client) = link("bench-srv", "bench-cli")?;
        let lease_db = format!(
            r#""lease-database": {{ "type": "postgresql", "name": "kea", "host": "{}", "port": {PORT}, "user": "{ROLE}", "password": "unused" }},"#,
            db.socket()
        );
        let config = kea_config(Path::new(DIR), "bench-srv", &lease_db, "");
        // The memfile line of the shared configuration is replaced by the database's.
        let config = config.lines().filter(|l| !l.contains("\"memfile\"")).collect::<Vec<_>>().join("\n");
        start_kea(&mut server, Path::new(DIR), &config)?;
        std::thread::sleep(Duration::from_secs(3));
        let kea = measured_sweep("kea-pg", &db, &own, (&server, &client, "bench-cli"))?;
        let rows = db.psql("kea", "SELECT count(*) FROM lease6").unwrap_or_default();
        println!("  kea-pg: {rows} rows in its lease6 table");
        kea
    } else {
        println!("  kea-admin db-init failed, no Kea run: {}", String::from_utf8_lossy(&admin.stderr));
        None
    };

    // dhcp6d with its PostgreSQL store.
    fresh_database(&db, "dhcp6d")?;
    let one = {
        let (mut server, client) = link("bench-srv", "bench-cli")?;
        start_dhcp6d(&mut server, dhcp6d, "pg1", &dhcp6d_pg_config("pg1", "bench-srv", &db, "dhcp6d"))?;
        measured_sweep("dhcp6d-pg", &db, &own, (&server, &client, "bench-cli"))?
    };

    // Two dhcp6d on one database, each on its own link, the same rate offered to both.
    fresh_database(&db, "dhcp6d")?;
    let (mut server_a, client_a) = link("bench-srv-a", "bench-cli-a")?;
    let (mut server_b, client_b) = link("bench-srv-b", "bench-cli-b")?;
    start_dhcp6d(&mut server_a, dhcp6d, "pga", &dhcp6d_pg_config("pga", "bench-srv-a", &db, "dhcp6d"))?;
    start_dhcp6d(&mut server_b, dhcp6d, "pgb", &dhcp6d_pg_config("pgb", "bench-srv-b", &db, "dhcp6d"))?;
    let mut best_pair: Option<(f64, u32, f64)> = None;
    for &rate in RATES {
        let before = db.cpu_seconds();
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| load(Generator::Own(&own), &server_a, &client_a, "bench-cli-a", rate));
            let b = s.spawn(|| load(Generator::Own(&own), &server_b, &client_b, "bench-cli-b", rate));
            (a.join(), b.join())
        });
        let (Ok(a), Ok(b)) = (a, b) else { bail!("a load thread panicked") };
        let (a, b) = (a?, b?);
        let db_cores = (db.cpu_seconds() - before) / f64::from(SECONDS);
        report("pair-a", &a);
        report("pair-b", &b);
        let total = a.achieved + b.achieved;
        println!("  pair    offered {:>6}/s each, {total:.1}/s together, PostgreSQL {db_cores:.2} cores", rate);
        if a.drop_ratio > super::MAX_DROP_RATIO || b.drop_ratio > super::MAX_DROP_RATIO {
            break;
        }
        best_pair = Some((total, rate, db_cores));
    }
    let duplicates = db.psql(
        "dhcp6d",
        "SELECT count(*) FROM (SELECT duid, iaid FROM lease6 GROUP BY duid, iaid HAVING count(*) > 1) d",
    )?;
    let rows = db.psql("dhcp6d", "SELECT count(*) FROM lease6")?;
    println!("  pair: {rows} rows in lease6, {duplicates} IAs holding two addresses (must be 0)");

    println!("summary (the machine's cores are shared by the database, the servers and the load generators):");
    if let Some((k, kcores)) = kea {
        println!(
            "  kea 2.2 + PostgreSQL:    {:.1} exchanges/s sustained (database {kcores:.2} cores there)",
            k.achieved
        );
        if let Some((d, _)) = one {
            let ratio = d.achieved / k.achieved;
            println!(
                "  dhcp6d / kea: {ratio:.2}x the sustained rate (target {TARGET}x: {})",
                if ratio >= TARGET { "met" } else { "missed" }
            );
        }
    }
    if let Some((d, dcores)) = one {
        println!(
            "  dhcp6d + PostgreSQL:     {:.1} exchanges/s sustained (database {dcores:.2} cores there)",
            d.achieved
        );
        if dcores >= 0.8 {
            println!("  the database is the ceiling of one dhcp6d: it used {dcores:.2} of {cores} cores");
        }
        match best_pair {
            Some((total, rate, pcores)) => println!(
                "  two dhcp6d, one database: {total:.1} exchanges/s together ({rate}/s each; {}; database {pcores:.2} cores)",
                if total > d.achieved { "more than one" } else { "no more than one: the database is the ceiling" }
            ),
            None => println!("  two dhcp6d, one database: no rate sustained"),
        }
    }
    Ok(())
}
