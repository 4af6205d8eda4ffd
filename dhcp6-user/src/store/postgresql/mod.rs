//! PostgreSQL as a lease store shared by several dhcp6d (`[lease_database] type =
//! "postgresql"`), in Kea's `lease6` layout ([`lease6`], [`schema`]).
//!
//! The database, not a server's table, decides who holds an address: each commit writes all
//! its batches' changes in one transaction, with statements that refuse a change whose
//! address or prefix another client holds unexpired ([`lease6::UPSERT`]). The refused changes
//! go back to the committer, which sends none of the Replies that announce them. Each server
//! keeps its lease table as a cache for reading; the [`listener`] keeps it in step with what
//! the other servers write (LISTEN/NOTIFY from a trigger).
//!
//! A commit that cannot reach the database retries for [`PostgresSettings::commit_wait`],
//! then fails (its exchanges are dropped and counted); while the database stays down, each
//! commit fails at once after at most one connection attempt, so that nothing piles up.

pub mod lease6;
pub mod listener;
pub mod schema;

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use ipnet::Ipv6Net;
use postgres::{error::SqlState, fallible_iterator::FallibleIterator, Client, NoTls};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::{
    lease_store::{LeaseStore, Refused, StoreError},
    server::{Lease, LeaseChange},
};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// While the database is down, connection attempts come at most this often; commits between
/// them fail at once.
const RETRY_EVERY: Duration = Duration::from_millis(250);
/// Commits that lose a deadlock or a serialization conflict to another server are run again
/// this many times.
const CONFLICT_RETRIES: usize = 5;

/// How the connection to the database is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain TCP (or a Unix socket).
    Disable,
    /// TLS, the server's certificate checked against `tls_ca` and its name against `host`.
    VerifyFull,
}

/// `[lease_database]` with `type = "postgresql"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSettings {
    /// A host name, an address, or (starting with `/`) the folder of the server's Unix socket.
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    /// A file holding the password (its first line); none: no password (trust, peer).
    pub password_file: Option<PathBuf>,
    pub tls: TlsMode,
    /// The CA certificates (PEM) the server's certificate is checked against.
    pub tls_ca: Option<PathBuf>,
    /// Connections each dhcp6d keeps open for commits: a commit whose connection broke goes
    /// on at once on the next one.
    pub pool_size: usize,
    /// How long a commit waits for an unreachable database before its exchanges are dropped.
    pub commit_wait: Duration,
}

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("connecting to the lease database: {0}")]
    Connect(#[source] postgres::Error),
    #[error("lease database: {0}")]
    Query(#[source] postgres::Error),
    #[error("lease database schema: {0}")]
    Schema(String),
    #[error("lease database schema: migration {0} failed: {1}")]
    Migration(i32, #[source] postgres::Error),
    #[error("reading the lease database password from {0}: {1}")]
    Password(String, #[source] std::io::Error),
    #[error("lease database TLS: {0}")]
    Tls(String),
    #[error("lease database row: {0}")]
    Row(#[from] lease6::RowError),
}

/// The database as `show statistics` tells it: shared by the commit thread, the listener and
/// the control socket's answer.
#[derive(Debug, Default)]
pub struct DatabaseHealth {
    connected: AtomicBool,
    /// Unix seconds since when the commits cannot reach it (0: they can).
    down_since: AtomicU64,
    reconnects: AtomicU64,
    commits: AtomicU64,
    commits_failed: AtomicU64,
    changes_refused: AtomicU64,
    /// Changes of other servers the table learnt.
    learnt: AtomicU64,
    listener_connected: AtomicBool,
}

/// [`DatabaseHealth`] as the control socket answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseStatus {
    pub connected: bool,
    pub down_since: Option<u64>,
    pub reconnects: u64,
    pub commits: u64,
    pub commits_failed: u64,
    pub changes_refused: u64,
    pub changes_learnt: u64,
    pub listening: bool,
}

impl DatabaseHealth {
    pub fn status(&self) -> DatabaseStatus {
        let down = self.down_since.load(Ordering::Relaxed);
        DatabaseStatus {
            connected: self.connected.load(Ordering::Relaxed),
            down_since: (down != 0).then_some(down),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            commits_failed: self.commits_failed.load(Ordering::Relaxed),
            changes_refused: self.changes_refused.load(Ordering::Relaxed),
            changes_learnt: self.learnt.load(Ordering::Relaxed),
            listening: self.listener_connected.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn learnt(&self, n: usize) {
        self.learnt.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn listening(&self, on: bool) {
        self.listener_connected.store(on, Ordering::Relaxed);
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Opens one connection, as `application` (shown in `pg_stat_activity`).
pub fn connect(settings: &PostgresSettings, application: &str) -> Result<Client, DatabaseError> {
    let mut config = postgres::Config::new();
    if settings.host.starts_with('/') {
        config.host_path(&settings.host);
    } else {
        config.host(&settings.host);
    }
    config
        .port(settings.port)
        .dbname(&settings.database)
        .user(&settings.user)
        .application_name(application)
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        // A database that stops answering (a cut network) fails the statement instead of
        // holding the commit thread.
        .tcp_user_timeout(settings.commit_wait.max(Duration::from_secs(1)))
        .options(&format!("-c statement_timeout={}", settings.commit_wait.as_millis().max(1000)));
    if let Some(path) = &settings.password_file {
        let text = std::fs::read_to_string(path).map_err(|e| DatabaseError::Password(path.display().to_string(), e))?;
        config.password(text.lines().next().unwrap_or_default());
    }
    match settings.tls {
        TlsMode::Disable => config.ssl_mode(postgres::config::SslMode::Disable).connect(NoTls),
        TlsMode::VerifyFull => config.ssl_mode(postgres::config::SslMode::Require).connect(tls_connector(settings)?),
    }
    .map_err(DatabaseError::Connect)
}

fn tls_connector(settings: &PostgresSettings) -> Result<tokio_postgres_rustls::MakeRustlsConnect, DatabaseError> {
    let ca = settings.tls_ca.as_ref().ok_or_else(|| DatabaseError::Tls("tls = \"verify-full\" needs tls_ca".into()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in crate::tls::certificates(ca).map_err(|e| DatabaseError::Tls(e.to_string()))? {
        roots.add(cert).map_err(|e| DatabaseError::Tls(e.to_string()))?;
    }
    // The ring provider's default, as the failover link's TLS (`crate::tls`).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DatabaseError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Every lease the table holds, each with the DUID of the server that wrote it last.
pub fn read_all(client: &mut Client) -> Result<Vec<lease6::Stored>, DatabaseError> {
    let mut leases = Vec::new();
    let mut rows = client
        .query_raw(lease6::SELECT, std::iter::empty::<&dyn postgres::types::ToSql>())
        .map_err(DatabaseError::Query)?;
    while let Some(row) = rows.next().map_err(DatabaseError::Query)? {
        match lease6::from_row(&row) {
            Ok(Some(lease)) => leases.push(lease),
            Ok(None) => {}
            Err(e) => warn!(error = %e, "a lease6 row dhcp6d cannot read is left out"),
        }
    }
    Ok(leases)
}

/// The leases the table holds at `addresses` now, by address.
fn rows_at(
    client: &mut impl postgres::GenericClient,
    addresses: &[String],
) -> Result<HashMap<String, Lease>, postgres::Error> {
    let rows = client.query(&format!("{} WHERE address = ANY($1)", lease6::SELECT), &[&addresses])?;
    Ok(rows
        .iter()
        .filter_map(|r| lease6::from_row(r).ok().flatten())
        .map(|s| (lease6::address(&s.lease.resource), s.lease))
        .collect())
}

/// One statement's worth of a commit's changes: at most one change per resource, so that
/// no statement touches a row twice.
#[derive(Default)]
struct Round {
    upserts: lease6::Rows,
    /// (batch, change) of each upsert, in the order of `upserts`.
    upsert_at: Vec<(usize, usize)>,
    removals: Vec<String>,
    remove_at: Vec<(usize, usize)>,
    resources: HashSet<Ipv6Net>,
}

/// A commit's changes cut into rounds, in order: a resource changed twice goes in a later
/// round.
fn rounds(batches: &[&[LeaseChange]]) -> Vec<Round> {
    let mut rounds: Vec<Round> = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        for (c, change) in batch.iter().enumerate() {
            if matches!(change, LeaseChange::Upsert(l) if !l.state.is_durable()) {
                continue;
            }
            let resource = *change.resource();
            // After the last round that touched it.
            let last = rounds.iter().rposition(|r| r.resources.contains(&resource));
            let at = last.map_or(0, |i| i + 1);
            if at == rounds.len() {
                rounds.push(Round::default());
            }
            let round = &mut rounds[at];
            round.resources.insert(resource);
            match change {
                LeaseChange::Upsert(l) => {
                    round.upserts.push(l);
                    round.upsert_at.push((b, c));
                }
                LeaseChange::Remove(r) => {
                    round.removals.push(lease6::address(r));
                    round.remove_at.push((b, c));
                }
            }
        }
    }
    rounds
}

/// Why one attempt at a commit failed.
enum Failure {
    /// The database could not be reached, or went away: try again on another connection.
    Unreachable(String),
    /// Lost a deadlock or serialization conflict to another server: run it again.
    Conflict,
    /// The database refused the statements themselves: running them again will not help.
    Refused(String),
}

fn failure(e: postgres::Error) -> Failure {
    match e.code() {
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE => {
            Failure::Conflict
        }
        // Shutting down, starting up, or out of connections: it will come back.
        Some(c)
            if c.code().starts_with("08")
                || c.code().starts_with("57P")
                || *c == SqlState::TOO_MANY_CONNECTIONS
                || *c == SqlState::QUERY_CANCELED =>
        {
            Failure::Unreachable(e.to_string())
        }
        Some(_) => Failure::Refused(e.to_string()),
        None => Failure::Unreachable(e.to_string()),
    }
}

/// The PostgreSQL lease store: a pool of connections used by the commit thread.
pub struct Postgres {
    settings: PostgresSettings,
    /// The `dhcp6d_server` of the rows this server writes: its DUID.
    server: Vec<u8>,
    application: String,
    pool: Vec<Option<Client>>,
    next: usize,
    health: Arc<DatabaseHealth>,
    /// When the last connection attempt was made while the database was down.
    last_attempt: Option<Instant>,
    /// A connection broke since the last commit that got through.
    broken: bool,
    loaded: bool,
}

impl Postgres {
    /// Connects and checks the schema. `server` is this server's DUID.
    pub fn open(settings: &PostgresSettings, server: &[u8]) -> Result<Postgres, DatabaseError> {
        // Unique among every server on the database (process ids are not, across hosts): the
        // listener tells its own server's notifications by it.
        let application = format!("dhcp6d {} {:08x}", std::process::id(), rand::random::<u32>());
        let mut first = connect(settings, &application)?;
        schema::check(&mut first)?;
        let mut pool: Vec<Option<Client>> = (0..settings.pool_size.max(1)).map(|_| None).collect();
        pool[0] = Some(first);
        let health = Arc::new(DatabaseHealth::default());
        health.connected.store(true, Ordering::Relaxed);
        Ok(Postgres {
            settings: settings.clone(),
            server: server.to_vec(),
            application,
            pool,
            next: 0,
            health,
            last_attempt: None,
            broken: false,
            loaded: false,
        })
    }

    /// What `show statistics` tells of the database.
    pub fn health(&self) -> Arc<DatabaseHealth> {
        self.health.clone()
    }

    /// The name the commits connect with, which the trigger's notifications carry.
    pub fn application(&self) -> &str {
        &self.application
    }

    /// A connection from the pool, opened again if it broke.
    fn connection(&mut self) -> Result<&mut Client, Failure> {
        let n = self.pool.len();
        let open = (0..n).map(|i| (self.next + i) % n).find(|i| self.pool[*i].as_ref().is_some_and(|c| !c.is_closed()));
        let slot = match open {
            Some(i) => i,
            None => {
                let slot = self.next % n;
                let client =
                    connect(&self.settings, &self.application).map_err(|e| Failure::Unreachable(e.to_string()))?;
                self.pool[slot] = Some(client);
                slot
            }
        };
        self.next = slot;
        self.pool[slot].as_mut().ok_or_else(|| Failure::Unreachable("no connection".into()))
    }

    /// The connection in use failed: it is dropped, and the next commit takes another.
    fn drop_connection(&mut self) {
        if let Some(slot) = self.pool.get_mut(self.next) {
            *slot = None;
        }
        self.next += 1;
        self.broken = true;
    }

    fn attempt(&mut self, rounds: &[Round]) -> Result<Vec<Refused>, Failure> {
        let server = self.server.clone();
        let client = self.connection()?;
        let mut tx = client.transaction().map_err(failure)?;
        let mut refused: Vec<(usize, usize, String)> = Vec::new();
        for round in rounds {
            if !round.upserts.is_empty() {
                let written = tx.query(lease6::UPSERT, &round.upserts.params(&server)).map_err(failure)?;
                let written: HashSet<String> = written.iter().map(|r| r.get(0)).collect();
                for (address, (b, c)) in round.upserts.address.iter().zip(&round.upsert_at) {
                    if !written.contains(address) {
                        refused.push((*b, *c, address.clone()));
                    }
                }
            }
            if !round.removals.is_empty() {
                let gone = tx.query(lease6::DELETE, &[&round.removals, &server]).map_err(failure)?;
                let gone: HashSet<String> = gone.iter().map(|r| r.get(0)).collect();
                let kept: Vec<(String, (usize, usize))> = round
                    .removals
                    .iter()
                    .zip(&round.remove_at)
                    .filter(|(a, _)| !gone.contains(*a))
                    .map(|(a, at)| (a.clone(), *at))
                    .collect();
                if !kept.is_empty() {
                    // A row that is not there is removed already; one another server wrote is
                    // that server's now.
                    let addresses: Vec<String> = kept.iter().map(|(a, _)| a.clone()).collect();
                    let held = rows_at(&mut tx, &addresses).map_err(failure)?;
                    for (address, (b, c)) in kept {
                        if held.contains_key(&address) {
                            refused.push((b, c, address));
                        }
                    }
                }
            }
        }
        let holders = match refused.is_empty() {
            true => HashMap::new(),
            false => {
                let addresses: Vec<String> = refused.iter().map(|(_, _, a)| a.clone()).collect();
                rows_at(&mut tx, &addresses).map_err(failure)?
            }
        };
        tx.commit().map_err(failure)?;
        Ok(refused
            .into_iter()
            .map(|(batch, change, address)| Refused { batch, change, holder: holders.get(&address).cloned() })
            .collect())
    }

    /// A commit got through: after a broken connection (a database restarted, a backend
    /// terminated), that is a reconnection, said in the log and counted.
    fn up(&mut self) {
        self.health.connected.store(true, Ordering::Relaxed);
        let since = self.health.down_since.swap(0, Ordering::Relaxed);
        if std::mem::take(&mut self.broken) {
            self.health.reconnects.fetch_add(1, Ordering::Relaxed);
            let down_s = if since == 0 { 0 } else { unix_now().saturating_sub(since) };
            info!(down_s, "reconnected to the lease database");
        }
        self.last_attempt = None;
    }

    fn down(&mut self, why: &str) {
        self.health.connected.store(false, Ordering::Relaxed);
        if self.health.down_since.compare_exchange(0, unix_now(), Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            warn!(error = %why, "the lease database is unreachable: exchanges that need a commit are dropped until it is back");
        }
    }
}

impl LeaseStore for Postgres {
    fn load(&mut self, apply: &mut dyn FnMut(LeaseChange)) -> Result<(), StoreError> {
        let client = self.connection().map_err(|_| StoreError::Unavailable("no connection".into()))?;
        let leases = read_all(client).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        for stored in leases {
            apply(LeaseChange::Upsert(stored.lease));
        }
        self.loaded = true;
        Ok(())
    }

    fn commit_batches(&mut self, batches: &[&[LeaseChange]]) -> Result<Vec<Refused>, StoreError> {
        if !self.loaded {
            return Err(StoreError::NotLoaded);
        }
        let rounds = rounds(batches);
        if rounds.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let was_down = self.health.down_since.load(Ordering::Relaxed) != 0;
        let mut conflicts = 0;
        loop {
            if was_down && self.last_attempt.is_some_and(|t| t.elapsed() < RETRY_EVERY) {
                self.health.commits_failed.fetch_add(1, Ordering::Relaxed);
                return Err(StoreError::Unavailable("the lease database is down".into()));
            }
            if was_down {
                self.last_attempt = Some(Instant::now());
            }
            match self.attempt(&rounds) {
                Ok(refused) => {
                    self.up();
                    self.health.commits.fetch_add(1, Ordering::Relaxed);
                    self.health.changes_refused.fetch_add(refused.len() as u64, Ordering::Relaxed);
                    return Ok(refused);
                }
                Err(Failure::Conflict) if conflicts < CONFLICT_RETRIES => conflicts += 1,
                Err(Failure::Conflict) => {
                    self.health.commits_failed.fetch_add(1, Ordering::Relaxed);
                    return Err(StoreError::Unavailable("lost a lock conflict to other servers too often".into()));
                }
                Err(Failure::Refused(why)) => {
                    self.health.commits_failed.fetch_add(1, Ordering::Relaxed);
                    return Err(StoreError::Corrupt(why));
                }
                Err(Failure::Unreachable(why)) => {
                    self.drop_connection();
                    // A broken connection with a healthy database: the next one goes on at once.
                    if !was_down && started.elapsed() < self.settings.commit_wait {
                        std::thread::sleep(Duration::from_millis(50).min(self.settings.commit_wait));
                        if started.elapsed() < self.settings.commit_wait {
                            continue;
                        }
                    }
                    self.down(&why);
                    self.last_attempt = Some(Instant::now());
                    self.health.commits_failed.fetch_add(1, Ordering::Relaxed);
                    return Err(StoreError::Unavailable(why));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{IaType, LeaseState};

    fn lease(n: u16) -> Lease {
        Lease {
            resource: Ipv6Net::from(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)),
            ia_type: IaType::Na,
            duid: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, n as u8],
            iaid: u32::from(n),
            subnet: 0,
            state: LeaseState::Bound,
            preferred_lifetime: 100,
            valid_lifetime: 200,
            expires: 1_000_000,
            interface: None,
            reconfigure_key: None,
            relay: None,
        }
    }

    #[test]
    fn a_resource_changed_twice_in_one_commit_goes_in_a_later_round() {
        let first = [LeaseChange::Upsert(lease(1)), LeaseChange::Upsert(lease(2))];
        let offered = Lease { state: LeaseState::Offered, ..lease(3) };
        let second =
            [LeaseChange::Remove(lease(1).resource), LeaseChange::Upsert(offered), LeaseChange::Upsert(lease(4))];
        let third = [LeaseChange::Upsert(lease(1))];
        let rounds = rounds(&[&first, &second, &third]);
        assert_eq!(rounds.len(), 3);
        assert_eq!(rounds[0].upserts.address, ["2001:db8::1", "2001:db8::2", "2001:db8::4"]);
        assert_eq!(rounds[0].upsert_at, [(0, 0), (0, 1), (1, 2)]);
        assert_eq!(rounds[1].removals, ["2001:db8::1"]);
        assert_eq!(rounds[1].remove_at, [(1, 0)]);
        assert_eq!(rounds[2].upsert_at, [(2, 0)]);
    }
}
