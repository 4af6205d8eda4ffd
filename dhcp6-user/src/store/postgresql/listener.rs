//! Keeps a server's lease table in step with what the other servers write to the shared
//! database.
//!
//! Why LISTEN/NOTIFY rather than polling a change sequence: a notification is delivered
//! when the transaction that made it commits, in commit order, and never for one that rolled
//! back, so nothing is read early or missed while the connection holds; a sequence polled
//! from several writers can be read past a number whose transaction commits later. What
//! LISTEN cannot give, the changes made while this connection was down, a full read of the
//! table gives each time it (re)connects.
//!
//! The trigger notifies `address/prefix_len` of each row changed, with the writer's
//! connection name; the listener skips this server's own, reads the others' rows again, a
//! batch at a time, and hands the engine the leases other servers wrote (and the rows gone).
//! Its own changes are skipped because its table has them already, perhaps newer than the row
//! it would read.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use ipnet::Ipv6Net;
use postgres::Client;
use tracing::{info, warn};

use super::{connect, lease6, schema::CHANNEL, DatabaseHealth, PostgresSettings};
use crate::server::LeaseChange;

/// How long the listener waits for more notifications before it reads what it has.
const GATHER: Duration = Duration::from_millis(5);

/// Starts the listener thread. `learn` takes each batch of other servers' changes (an empty
/// one now and then); it returns false once the daemon stops, which ends the thread.
/// `application` is the name this server's commits connect with.
pub fn spawn(
    settings: PostgresSettings,
    server: Vec<u8>,
    application: String,
    health: Arc<DatabaseHealth>,
    mut learn: impl FnMut(Vec<LeaseChange>) -> bool + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("dhcp6d-db-listen".into()).spawn(move || {
        let mut said_down = false;
        loop {
            let ended = match connect(&settings, &format!("{application} listener")) {
                Ok(mut client) => {
                    if said_down {
                        info!("the lease database listener reconnected: the table is read again");
                        said_down = false;
                    }
                    let ended = listen(&mut client, &server, &application, &health, &mut learn);
                    health.listening(false);
                    match ended {
                        Ok(()) => return,
                        Err(e) => Some(e.to_string()),
                    }
                }
                Err(e) => Some(e.to_string()),
            };
            if let Some(e) = ended {
                if !said_down {
                    warn!(error = %e, "the lease database listener lost its connection: other servers' changes are learnt once it is back");
                    said_down = true;
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    })
}

/// Listens until the connection fails (`Err`) or the daemon stops (`Ok`).
fn listen(
    client: &mut Client,
    server: &[u8],
    application: &str,
    health: &DatabaseHealth,
    learn: &mut impl FnMut(Vec<LeaseChange>) -> bool,
) -> Result<(), postgres::Error> {
    client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    health.listening(true);
    // What changed while nobody listened: every row another server wrote.
    let mut rows = client.query(lease6::SELECT, &[])?;
    let mut changes = Vec::new();
    for row in rows.drain(..) {
        if let Ok(Some(stored)) = lease6::from_row(&row) {
            if stored.writer.as_deref() != Some(server) {
                changes.push(LeaseChange::Upsert(stored.lease));
            }
        }
    }
    if !changes.is_empty() {
        health.learnt(changes.len());
        if !learn(changes) {
            return Ok(());
        }
    }
    loop {
        let mut resources: HashSet<Ipv6Net> = HashSet::new();
        {
            use postgres::fallible_iterator::FallibleIterator;
            let mut notifications = client.notifications();
            let mut add = |n: postgres::Notification| {
                let (resource, writer) = n.payload().split_once(' ').unwrap_or((n.payload(), ""));
                if writer != application {
                    if let Ok(resource) = resource.parse::<Ipv6Net>() {
                        resources.insert(resource);
                    }
                }
            };
            // Wait for the first; then take what follows within GATHER of each other.
            let first = notifications.timeout_iter(Duration::from_secs(1)).next()?;
            if let Some(n) = first {
                add(n);
                let started = Instant::now();
                while let Some(n) = notifications.timeout_iter(GATHER).next()? {
                    add(n);
                    if started.elapsed() > GATHER * 10 {
                        break;
                    }
                }
            }
        }
        if resources.is_empty() {
            // A second without a change: is the daemon still there, is the connection?
            if !learn(Vec::new()) {
                return Ok(());
            }
            client.simple_query("")?;
            continue;
        }
        let addresses: Vec<String> = resources.iter().map(lease6::address).collect();
        let rows = client.query(&format!("{} WHERE address = ANY($1)", lease6::SELECT), &[&addresses])?;
        let mut changes = Vec::new();
        let mut present = HashSet::new();
        for row in &rows {
            if let Ok(Some(stored)) = lease6::from_row(row) {
                present.insert(lease6::address(&stored.lease.resource));
                if stored.writer.as_deref() != Some(server) {
                    changes.push(LeaseChange::Upsert(stored.lease));
                }
            }
        }
        changes
            .extend(resources.into_iter().filter(|r| !present.contains(&lease6::address(r))).map(LeaseChange::Remove));
        if !changes.is_empty() {
            health.learnt(changes.len());
        }
        if !learn(changes) {
            return Ok(());
        }
    }
}
