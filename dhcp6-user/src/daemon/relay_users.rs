//! The relay's user entries across restarts: a snapshot, `state_dir/relay-users.json`, and a
//! journal of the changes since, `state_dir/relay-users.journal` (one JSON [`UserChange`] per
//! line, appended and synced once a tick). When the journal outgrows the entries it is folded
//! into a new snapshot (replaced whole) and emptied, and so when dhcp6d stops: the cost of
//! keeping the entries follows the changes, not the number of entries. At start the snapshot
//! and the journal are read back (a torn last line ignored) and the expired entries dropped,
//! so the routes of delegated prefixes stay claimed and `show relay users` is whole before
//! any client renews. A crash loses at most the changes of the last tick.

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use tracing::warn;

use super::state_file;
use crate::{
    relay::{UserChange, UserEntry},
    server::IaType,
};

pub const FILE: &str = "relay-users.json";
pub const JOURNAL: &str = "relay-users.journal";
/// Journal lines below which it is never folded into a snapshot.
const MIN_FOLD: u64 = 100_000;

/// The journal, open for appending.
pub struct UserJournal {
    dir: PathBuf,
    file: File,
    /// Lines in the journal.
    lines: u64,
}

type Key = (String, u32, IaType, String);

fn key_of(change: &UserChange) -> Key {
    let (d, i, t, r) = change.key();
    (d.to_string(), i, t, r.to_string())
}

fn entry_key(e: &UserEntry) -> Key {
    (e.duid.clone(), e.iaid, e.ia_type, e.resource.clone())
}

/// The snapshot's entries; none if there is no file. A snapshot that cannot be read is
/// reported and moved aside, never fatal: the entries come back from the next Replies anyway.
fn load_snapshot(path: &Path) -> Vec<UserEntry> {
    let text = match std::fs::read(path) {
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
            let _ = std::fs::rename(path, &aside);
            Vec::new()
        }
    }
}

impl UserJournal {
    /// Opens the journal of `state_dir` and returns it with the entries the snapshot and the
    /// journal hold. A line that does not parse ends the replay (a write a crash cut short;
    /// if more lines follow it, that is reported).
    pub fn open(state_dir: &Path) -> Result<(UserJournal, Vec<UserEntry>)> {
        std::fs::create_dir_all(state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
        let mut entries: HashMap<Key, UserEntry> = HashMap::new();
        crate::store::make_private(&state_dir.join(FILE))
            .with_context(|| format!("making {} readable by root alone", state_dir.join(FILE).display()))?;
        for e in load_snapshot(&state_dir.join(FILE)) {
            entries.insert(entry_key(&e), e);
        }
        let path = state_dir.join(JOURNAL);
        let mut lines = 0u64;
        let mut good_bytes = 0u64;
        if let Ok(f) = File::open(&path) {
            let mut reader = BufReader::new(f);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(n) => {
                        let change =
                            line.ends_with('\n').then(|| serde_json::from_str::<UserChange>(&line).ok()).flatten();
                        let Some(change) = change else {
                            let rest = reader.fill_buf().map(|b| !b.is_empty()).unwrap_or(false);
                            if rest {
                                warn!(path = %path.display(), line = lines + 1, "the relay's user journal has a bad line; the rest is ignored");
                            }
                            break;
                        };
                        match change {
                            UserChange::Put(e) => {
                                entries.insert(entry_key(&e), e);
                            }
                            del => {
                                entries.remove(&key_of(&del));
                            }
                        }
                        lines += 1;
                        good_bytes += n as u64;
                    }
                    Err(e) => {
                        warn!(path = %path.display(), error = %e, "reading the relay's user journal failed");
                        break;
                    }
                }
            }
        }
        let file = crate::store::open_private(&path, OpenOptions::new().create(true).append(true))
            .with_context(|| format!("opening {}", path.display()))?;
        // Cut a torn tail, so that the next line starts clean.
        file.set_len(good_bytes).with_context(|| format!("trimming {}", path.display()))?;
        Ok((UserJournal { dir: state_dir.to_path_buf(), file, lines }, entries.into_values().collect()))
    }

    /// Appends `changes` and syncs them.
    pub fn append(&mut self, changes: &[UserChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(changes.len() * 256);
        for c in changes {
            serde_json::to_writer(&mut bytes, c).context("encoding a user entry change")?;
            bytes.push(b'\n');
        }
        self.file.write_all(&bytes).context("appending to the relay's user journal")?;
        self.file.sync_data().context("syncing the relay's user journal")?;
        self.lines += changes.len() as u64;
        Ok(())
    }

    /// Whether the journal has outgrown `live` entries enough to be folded into a snapshot.
    pub fn wants_snapshot(&self, live: usize) -> bool {
        self.lines > MIN_FOLD.max(2 * live as u64)
    }

    /// Writes `entries` (all of them, the journal's changes included) as the snapshot, then
    /// empties the journal. A crash between the two replays the journal over a snapshot that
    /// already holds its changes, which changes nothing.
    pub fn snapshot(&mut self, entries: &[UserEntry]) -> Result<()> {
        let bytes = serde_json::to_vec(entries).context("encoding the relay's user entries")?;
        state_file::replace(&self.dir, FILE, &bytes)?;
        self.file.set_len(0).context("emptying the relay's user journal")?;
        self.file.sync_all().context("syncing the relay's user journal")?;
        self.lines = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u32, expires: u64) -> UserEntry {
        UserEntry {
            duid: format!("00:03:00:01:00:00:00:{n:02x}"),
            iaid: n,
            ia_type: IaType::Na,
            resource: format!("2001:db8:2::{n:x}/128"),
            preferred_lifetime: 100,
            valid_lifetime: 200,
            expires,
            interface: "eth0".into(),
            vlan: None,
            inner_vlan: None,
            link_local: "fe80::1".parse().unwrap(),
            mac: None,
        }
    }

    fn sorted(mut v: Vec<UserEntry>) -> Vec<UserEntry> {
        v.sort_by_key(|e| e.iaid);
        v
    }

    #[test]
    fn the_user_entries_are_readable_by_root_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("dhcp6-user-journal-mode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mode = |name: &str| std::fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        let (mut j, _) = UserJournal::open(&dir).unwrap();
        j.append(&[UserChange::Put(entry(1, 10))]).unwrap();
        j.snapshot(&[entry(1, 10)]).unwrap();
        assert_eq!((mode(JOURNAL), mode(FILE)), (0o600, 0o600));
        drop(j);
        // Files an earlier version left readable by anyone are made private when opened.
        for name in [JOURNAL, FILE] {
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let (_j, back) = UserJournal::open(&dir).unwrap();
        assert_eq!((mode(JOURNAL), mode(FILE), back.len()), (0o600, 0o600, 1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn changes_journalled_come_back_over_the_snapshot_and_a_torn_line_is_cut() {
        let dir = std::env::temp_dir().join(format!("dhcp6-user-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut j, none) = UserJournal::open(&dir).unwrap();
        assert!(none.is_empty());
        j.append(&[UserChange::Put(entry(1, 10)), UserChange::Put(entry(2, 10))]).unwrap();
        j.snapshot(&[entry(1, 10), entry(2, 10)]).unwrap();
        assert_eq!(std::fs::metadata(dir.join(JOURNAL)).unwrap().len(), 0, "folded");
        // After the snapshot: 1 refreshed, 2 removed, 3 added.
        j.append(&[
            UserChange::Put(entry(1, 20)),
            UserChange::Del {
                duid: entry(2, 10).duid,
                iaid: 2,
                ia_type: IaType::Na,
                resource: entry(2, 10).resource,
                at: 15,
                until: 215,
            },
            UserChange::Put(entry(3, 20)),
        ])
        .unwrap();
        drop(j);
        // A crash cut the next line short.
        let mut f = OpenOptions::new().append(true).open(dir.join(JOURNAL)).unwrap();
        f.write_all(b"{\"put\":{\"duid\":\"00").unwrap();
        drop(f);
        let (mut j, back) = UserJournal::open(&dir).unwrap();
        assert_eq!(sorted(back), vec![entry(1, 20), entry(3, 20)]);
        // The torn tail is gone: what is appended next reads back.
        j.append(&[UserChange::Put(entry(4, 30))]).unwrap();
        drop(j);
        let (_, back) = UserJournal::open(&dir).unwrap();
        assert_eq!(sorted(back), vec![entry(1, 20), entry(3, 20), entry(4, 30)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_journal_is_folded_only_once_it_outgrows_the_entries() {
        let dir = std::env::temp_dir().join(format!("dhcp6-user-fold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut j, _) = UserJournal::open(&dir).unwrap();
        j.lines = MIN_FOLD;
        assert!(!j.wants_snapshot(10));
        j.lines = MIN_FOLD + 1;
        assert!(j.wants_snapshot(10));
        assert!(!j.wants_snapshot(MIN_FOLD as usize), "twice the live entries");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
