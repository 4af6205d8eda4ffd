//! The relay's user entries across restarts: `state_dir/relay-users.json`, replaced whole at
//! most every [`SAVE_EVERY`] while entries change, and when dhcp6d stops. At start they are
//! taken back (the expired ones dropped), so the routes of delegated prefixes stay claimed
//! and `show relay users` is whole before any client renews. A crash loses at most the
//! changes of the last interval: entries restored with an earlier expiry, refreshed by the
//! client's next Renew long before it comes.

use std::{path::Path, time::Duration};

use anyhow::{Context, Result};
use tracing::warn;

use super::state_file;
use crate::relay::UserEntry;

pub const FILE: &str = "relay-users.json";
/// Least time between two saves while entries change.
pub const SAVE_EVERY: Duration = Duration::from_secs(5);

/// The entries an earlier run saved; none if there is no file. A file that cannot be read is
/// reported and left for the operator (moved aside), never fatal: the entries come back from
/// the next Replies anyway.
pub fn load(state_dir: &Path) -> Vec<UserEntry> {
    let path = state_dir.join(FILE);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "reading the relay's user entries failed");
            return Vec::new();
        }
    };
    match serde_json::from_slice(&text) {
        Ok(entries) => entries,
        Err(e) => {
            let aside = path.with_extension("json.unreadable");
            warn!(path = %path.display(), error = %e, moved_to = %aside.display(), "the relay's user entries are unreadable");
            let _ = std::fs::rename(&path, &aside);
            Vec::new()
        }
    }
}

pub fn save(state_dir: &Path, entries: &[UserEntry]) -> Result<()> {
    let bytes = serde_json::to_vec(entries).context("encoding the relay's user entries")?;
    state_file::replace(state_dir, FILE, &bytes)
}
