//! The durable lease store: a write-ahead journal of CRC-framed records, compacted into a
//! snapshot in the background.
//!
//! Why a journal of our own rather than an embedded database: lease changes are small,
//! append-only facts, so one `write` and one `fdatasync` per batch of changes is all the
//! durability needs (group commit), and start-up is one sequential read. The file layout:
//!
//! ```text
//! "DHCP6J01"                                   8-byte magic
//! [len: u32 LE][crc32: u32 LE][payload: len]   a record, repeated
//! payload = 1 (upsert) lease fields [extension]... | 2 (remove) resource
//! extension = [tag: u8][len: u16 LE][value: len]   fields added since, each optional
//! ```
//!
//! Extensions keep old journals readable and let fields be added without a new record type:
//! a record without them is a lease without those fields, and a tag a reader does not know is
//! skipped. Tag 1: the client's Reconfigure Key (16 octets). Tag 2: the relays of the client's
//! last message (RelayRecord: the peer address, 16 octets, then the Relay-Forward without the
//! client's message), for leasequery.
//!
//! A crash can leave a torn last record: recovery stops at the first record that is short,
//! fails its CRC or does not decode, cuts the file there, and says so in the log.

use std::os::unix::fs::OpenOptionsExt;
use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    io::{self, Read, Write},
    net::Ipv6Addr,
    path::{Path, PathBuf},
    sync::Arc,
    thread::JoinHandle,
};

use ipnet::Ipv6Net;
use tracing::{info, warn};

use crate::{
    lease_store::{LeaseStore, Refused, StoreError},
    server::{IaType, Lease, LeaseChange, LeaseState, ReconfigureKey, RelayRecord},
};

const MAGIC: &[u8; 8] = b"DHCP6J01";
const FRAME: usize = 8;
const UPSERT: u8 = 1;
const REMOVE: u8 = 2;
/// Extension tag: the client's Reconfigure Key.
const EXT_RECONFIGURE_KEY: u8 = 1;
/// The extension holding a lease's [`RelayRecord`].
const EXT_RELAY: u8 = 2;
/// A record larger than this is corruption, not a lease.
const MAX_RECORD: usize = 1024;
/// Compaction starts once the journal holds this many records more than twice the live leases.
const COMPACT_SLACK: u64 = 100_000;

/// What recovery found at the end of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub offset: u64,
    pub bytes: u64,
    pub reason: &'static str,
}

/// A compaction in progress: the snapshot file being written on another thread, and the
/// records committed since the snapshot was taken.
struct Compaction {
    writer: JoinHandle<io::Result<u64>>,
    tail: Vec<u8>,
    tail_records: u64,
}

/// The journal, open for appending.
pub struct Journal {
    path: PathBuf,
    file: File,
    records: u64,
    buffer: Vec<u8>,
    compaction: Option<Compaction>,
    /// A failed write could not be cut back: nothing more is appended after it.
    broken: bool,
    /// [`LeaseStore::load`] has read the journal and cut a damaged tail.
    loaded: bool,
}

fn put_resource(out: &mut Vec<u8>, r: &Ipv6Net) {
    out.extend_from_slice(&r.addr().octets());
    out.push(r.prefix_len());
}

/// Appends an extension: its tag, its length and the `parts` of its value, in order (each
/// value is far shorter than a u16's reach: records are at most [`MAX_RECORD`]).
fn put_extension(out: &mut Vec<u8>, tag: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.push(tag);
    out.extend_from_slice(&(len.min(usize::from(u16::MAX)) as u16).to_le_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
}

fn encode(change: &LeaseChange, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME]);
    match change {
        LeaseChange::Upsert(l) => {
            out.push(UPSERT);
            put_resource(out, &l.resource);
            out.push(match l.ia_type {
                IaType::Na => 0,
                IaType::Pd => 1,
            });
            out.push(match l.state {
                LeaseState::Offered => 0,
                LeaseState::Bound => 1,
                LeaseState::Expired => 2,
                LeaseState::Declined => 3,
            });
            out.extend_from_slice(&l.iaid.to_le_bytes());
            out.extend_from_slice(&(l.subnet as u32).to_le_bytes());
            out.extend_from_slice(&l.preferred_lifetime.to_le_bytes());
            out.extend_from_slice(&l.valid_lifetime.to_le_bytes());
            out.extend_from_slice(&l.expires.to_le_bytes());
            // DUIDs are at most 130 bytes; interface names at most 15.
            out.push(l.duid.len().min(255) as u8);
            out.extend_from_slice(&l.duid[..l.duid.len().min(255)]);
            let iface = l.interface.as_deref().unwrap_or("").as_bytes();
            out.push(iface.len().min(255) as u8);
            out.extend_from_slice(&iface[..iface.len().min(255)]);
            if let Some(key) = &l.reconfigure_key {
                put_extension(out, EXT_RECONFIGURE_KEY, &[&key.0]);
            }
            if let Some(relay) = &l.relay {
                // Bounded by MAX_RELAY_RECORD when kept; a record is never let past MAX_RECORD.
                let len = out.len() - start - FRAME + 3 + 16 + relay.message.len();
                if len <= MAX_RECORD {
                    put_extension(out, EXT_RELAY, &[&relay.peer.octets(), &relay.message]);
                }
            }
        }
        LeaseChange::Remove(r) => {
            out.push(REMOVE);
            put_resource(out, r);
        }
    }
    let payload_len = (out.len() - start - FRAME) as u32;
    let crc = crc32fast::hash(&out[start + FRAME..]);
    out[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Reads fields off a record payload.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
    }
    fn resource(&mut self) -> Option<Ipv6Net> {
        let addr: [u8; 16] = self.take(16)?.try_into().ok()?;
        Ipv6Net::new(Ipv6Addr::from(addr), self.u8()?).ok()
    }
}

fn decode(payload: &[u8]) -> Option<LeaseChange> {
    let mut r = Reader(payload);
    let change = match r.u8()? {
        UPSERT => {
            let resource = r.resource()?;
            let ia_type = match r.u8()? {
                0 => IaType::Na,
                1 => IaType::Pd,
                _ => return None,
            };
            let state = match r.u8()? {
                0 => LeaseState::Offered,
                1 => LeaseState::Bound,
                2 => LeaseState::Expired,
                3 => LeaseState::Declined,
                _ => return None,
            };
            let iaid = r.u32()?;
            let subnet = r.u32()? as usize;
            let preferred_lifetime = r.u32()?;
            let valid_lifetime = r.u32()?;
            let expires = r.u64()?;
            let n = usize::from(r.u8()?);
            let duid = r.take(n)?.to_vec();
            let n = usize::from(r.u8()?);
            let iface = std::str::from_utf8(r.take(n)?).ok()?;
            let interface = (!iface.is_empty()).then(|| iface.to_string());
            let (mut reconfigure_key, mut relay) = (None, None);
            while !r.0.is_empty() {
                let tag = r.u8()?;
                let n = usize::from(u16::from_le_bytes(r.take(2)?.try_into().ok()?));
                let value = r.take(n)?;
                match tag {
                    EXT_RECONFIGURE_KEY => reconfigure_key = Some(ReconfigureKey(value.try_into().ok()?)),
                    EXT_RELAY => {
                        let peer: [u8; 16] = value.get(..16)?.try_into().ok()?;
                        let message = value[16..].to_vec();
                        relay = Some(Arc::new(RelayRecord { peer: Ipv6Addr::from(peer), message }));
                    }
                    _ => {}
                }
            }
            LeaseChange::Upsert(Lease {
                resource,
                ia_type,
                duid,
                iaid,
                subnet,
                state,
                preferred_lifetime,
                valid_lifetime,
                expires,
                interface,
                reconfigure_key,
                relay,
            })
        }
        REMOVE => LeaseChange::Remove(r.resource()?),
        _ => return None,
    };
    r.0.is_empty().then_some(change)
}

/// Replays journal bytes, handing each change to `apply` in order; returns how many records
/// were read, and where a damaged tail starts, if one does.
pub fn replay(bytes: &[u8], apply: &mut dyn FnMut(LeaseChange)) -> (u64, Option<Cut>) {
    let mut records = 0;
    let cut = |offset: usize, reason| Some(Cut { offset: offset as u64, bytes: (bytes.len() - offset) as u64, reason });
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return (0, if bytes.is_empty() { None } else { cut(0, "no journal header") });
    }
    let mut at = MAGIC.len();
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < FRAME {
            return (records, cut(at, "record header cut short"));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_RECORD {
            return (records, cut(at, "record length out of bounds"));
        }
        let Some(payload) = rest.get(FRAME..FRAME + len) else {
            return (records, cut(at, "record cut short"));
        };
        if crc32fast::hash(payload) != crc {
            return (records, cut(at, "record fails its checksum"));
        }
        match decode(payload) {
            Some(change) => apply(change),
            None => return (records, cut(at, "record does not decode")),
        }
        records += 1;
        at += FRAME + len;
    }
    (records, None)
}

/// Applies changes to a map of leases by resource.
fn apply_to(leases: &mut HashMap<Ipv6Net, Lease>, change: LeaseChange) {
    match change {
        LeaseChange::Upsert(l) => {
            leases.insert(l.resource, l);
        }
        LeaseChange::Remove(r) => {
            leases.remove(&r);
        }
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Reads every lease in the journal at `path` without changing it (for export).
pub fn read_leases(path: &Path) -> Result<Vec<Lease>, StoreError> {
    let bytes = fs::read(path)?;
    let mut leases = HashMap::new();
    replay(&bytes, &mut |c| apply_to(&mut leases, c));
    Ok(leases.into_values().collect())
}

impl Journal {
    /// Opens (or creates) the journal at `path`. Nothing is read until [`LeaseStore::load`],
    /// which must come before the first commit.
    pub fn open(path: &Path) -> Result<Journal, StoreError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        // Created private; an existing file is made private once `load` has found it is a
        // journal (a file that is not one is left as it is, mode included).
        let file =
            OpenOptions::new().create(true).read(true).write(true).truncate(false).mode(super::PRIVATE).open(path)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            records: 0,
            buffer: Vec::new(),
            compaction: None,
            broken: false,
            loaded: false,
        })
    }

    /// Records written since the journal was last compacted.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn compact_path(&self) -> PathBuf {
        self.path.with_extension("compact")
    }

    /// Finishes a compaction whose snapshot is written: appends what was committed since,
    /// makes it durable, and puts the new file in place of the old.
    fn finish_compaction(&mut self) -> Result<(), StoreError> {
        if !self.compaction.as_ref().is_some_and(|c| c.writer.is_finished()) {
            return Ok(());
        }
        let Some(c) = self.compaction.take() else { return Ok(()) };
        let snapshot_records = match c.writer.join() {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                warn!(error = %e, "journal compaction failed; the journal is kept as it is");
                return Ok(());
            }
            Err(_) => {
                warn!("journal compaction thread panicked; the journal is kept as it is");
                return Ok(());
            }
        };
        let compact = self.compact_path();
        let mut file = OpenOptions::new().append(true).read(true).open(&compact)?;
        file.write_all(&c.tail)?;
        file.sync_all()?;
        fs::rename(&compact, &self.path)?;
        sync_dir(&self.path)?;
        self.file = file;
        self.records = snapshot_records + c.tail_records;
        info!(records = self.records, "journal compacted");
        Ok(())
    }
}

/// Writes a snapshot journal of `leases` to `path`, durably; returns how many records.
fn write_snapshot(path: &Path, leases: &[Lease]) -> io::Result<u64> {
    let mut out = Vec::with_capacity(MAGIC.len() + leases.len() * 80);
    out.extend_from_slice(MAGIC);
    for l in leases {
        encode(&LeaseChange::Upsert(l.clone()), &mut out);
    }
    let mut f = super::open_private(path, OpenOptions::new().create(true).write(true).truncate(true))?;
    f.write_all(&out)?;
    f.sync_all()?;
    Ok(leases.len() as u64)
}

impl LeaseStore for Journal {
    /// Hands every recorded change to `apply` in order, and cuts a damaged tail.
    fn load(&mut self, apply: &mut dyn FnMut(LeaseChange)) -> Result<(), StoreError> {
        use std::io::Seek;
        let mut bytes = Vec::new();
        self.file.seek(io::SeekFrom::Start(0))?;
        self.file.read_to_end(&mut bytes)?;
        let header = bytes.len().min(MAGIC.len());
        if bytes[..header] != MAGIC[..header] {
            // Not ours, or damaged at its very start: never overwrite it.
            return Err(StoreError::Corrupt(format!("{} is not a dhcp6 lease journal", self.path.display())));
        }
        super::make_private(&self.path)?;
        let (records, cut) = replay(&bytes, apply);
        drop(bytes);
        if let Some(cut) = &cut {
            warn!(journal = %self.path.display(), offset = cut.offset, bytes = cut.bytes, reason = cut.reason, "cut a damaged journal tail");
            self.file.set_len(cut.offset)?;
            self.file.sync_all()?;
        }
        self.records = records;
        if self.file.metadata()?.len() < MAGIC.len() as u64 {
            // New, or its creation was cut short inside the header.
            self.file.set_len(0)?;
            self.file.seek(io::SeekFrom::Start(0))?;
            self.file.write_all(MAGIC)?;
            self.file.sync_all()?;
            sync_dir(&self.path)?;
        }
        self.file.seek(io::SeekFrom::End(0))?;
        self.loaded = true;
        info!(journal = %self.path.display(), records, "journal recovered");
        Ok(())
    }

    fn commit_batches(&mut self, batches: &[&[LeaseChange]]) -> Result<Vec<Refused>, StoreError> {
        if !self.loaded {
            return Err(StoreError::NotLoaded);
        }
        if self.broken {
            return Err(StoreError::Corrupt(format!(
                "{}: an earlier write failed and could not be cut back; restart to recover",
                self.path.display()
            )));
        }
        self.buffer.clear();
        let mut n = 0;
        for change in batches.iter().flat_map(|b| b.iter()) {
            if let LeaseChange::Upsert(l) = change {
                if !l.state.is_durable() {
                    continue;
                }
            }
            encode(change, &mut self.buffer);
            n += 1;
        }
        if n > 0 {
            use std::io::Seek;
            // The length, not the position: after a compaction the file is in append mode.
            let end = self.file.metadata()?.len();
            // One fdatasync for the whole batch: group commit.
            if let Err(e) = self.file.write_all(&self.buffer).and_then(|()| self.file.sync_data()) {
                // A part of the write may have landed: cut it off, so that what is committed
                // next does not follow a torn record (recovery stops at the first one).
                let cut = self.file.set_len(end).and_then(|()| self.file.seek(io::SeekFrom::Start(end)));
                if let Err(cut) = cut {
                    warn!(journal = %self.path.display(), error = %cut, "a failed write could not be cut back: the journal takes no more changes");
                    self.broken = true;
                }
                return Err(e.into());
            }
            self.records += n;
            if let Some(c) = &mut self.compaction {
                c.tail.extend_from_slice(&self.buffer);
                c.tail_records += n;
            }
        }
        // Alone on its file: the journal refuses no single change.
        self.finish_compaction().map(|()| Vec::new())
    }

    fn wants_snapshot(&self, live: usize) -> bool {
        self.compaction.is_none() && self.records > 2 * live as u64 + COMPACT_SLACK
    }

    fn compact(&mut self, snapshot: Vec<Lease>) -> Result<(), StoreError> {
        let path = self.compact_path();
        let writer = std::thread::Builder::new()
            .name("journal-compaction".into())
            .spawn(move || write_snapshot(&path, &snapshot))?;
        self.compaction = Some(Compaction { writer, tail: Vec::new(), tail_records: 0 });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(n: u16) -> Lease {
        Lease {
            resource: Ipv6Net::from(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, n)),
            ia_type: IaType::Na,
            duid: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, n as u8],
            iaid: u32::from(n),
            subnet: 0,
            state: LeaseState::Bound,
            preferred_lifetime: 100,
            valid_lifetime: 200,
            expires: 1_000_000 + u64::from(n),
            interface: Some("eth1".into()),
            reconfigure_key: None,
            relay: None,
        }
    }

    /// The payload of an upsert of `lease(1)` as the first layout wrote it, field by field.
    fn first_layout_upsert() -> Vec<u8> {
        let mut p = vec![UPSERT];
        p.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1).octets());
        p.extend_from_slice(&[128, 0, 1]);
        p.extend_from_slice(&1u32.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        p.extend_from_slice(&100u32.to_le_bytes());
        p.extend_from_slice(&200u32.to_le_bytes());
        p.extend_from_slice(&1_000_001u64.to_le_bytes());
        p.extend_from_slice(&[10, 0, 3, 0, 1, 2, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[4]);
        p.extend_from_slice(b"eth1");
        p
    }

    #[test]
    fn a_first_layout_record_reads_as_a_lease_without_a_key_and_a_key_round_trips() {
        assert_eq!(decode(&first_layout_upsert()), Some(LeaseChange::Upsert(lease(1))));
        let keyed = Lease { reconfigure_key: Some(ReconfigureKey(*b"0123456789abcdef")), ..lease(1) };
        let mut framed = Vec::new();
        encode(&LeaseChange::Upsert(keyed.clone()), &mut framed);
        let payload = &framed[FRAME..];
        assert_eq!(
            &payload[..first_layout_upsert().len()],
            &first_layout_upsert()[..],
            "the first layout, then the key"
        );
        assert_eq!(decode(payload), Some(LeaseChange::Upsert(keyed.clone())));
        // An extension this reader does not know is skipped; a cut one is corruption.
        let mut unknown = payload.to_vec();
        unknown.extend_from_slice(&[200, 2, 0, 7, 7]);
        assert_eq!(decode(&unknown), Some(LeaseChange::Upsert(keyed)));
        assert_eq!(decode(&unknown[..unknown.len() - 1]), None);
        let mut short_key = first_layout_upsert();
        short_key.extend_from_slice(&[EXT_RECONFIGURE_KEY, 3, 0, 1, 2, 3]);
        assert_eq!(decode(&short_key), None);
    }

    /// Opens the journal and collects what it holds.
    fn open(path: &Path) -> (Journal, Vec<Lease>) {
        let mut leases = HashMap::new();
        let mut j = Journal::open(path).unwrap();
        j.load(&mut |c| apply_to(&mut leases, c)).unwrap();
        (j, leases.into_values().collect())
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dhcp6-journal-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir.join("leases.journal")
    }

    #[test]
    fn the_journal_and_its_compaction_are_readable_by_root_alone() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let path = temp("mode");
        let (mut j, _) = open(&path);
        assert_eq!(mode(&path), 0o600, "created private");
        j.commit(&[LeaseChange::Upsert(lease(1))]).unwrap();
        drop(j);
        // A journal an earlier version left readable by anyone is made private when opened.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let (mut j, leases) = open(&path);
        assert_eq!((mode(&path), leases), (0o600, vec![lease(1)]));
        let snapshot = path.with_extension("snapshot");
        write_snapshot(&snapshot, &[lease(2)]).unwrap();
        assert_eq!(mode(&snapshot), 0o600, "a compaction's snapshot is private from the start");
        j.commit(&[LeaseChange::Upsert(lease(3))]).unwrap();
    }

    #[test]
    fn a_commit_before_loading_is_refused_and_writes_nothing() {
        let path = temp("unloaded");
        let (mut j, _) = open(&path);
        j.commit(&[LeaseChange::Upsert(lease(1))]).unwrap();
        drop(j);
        let mut unloaded = Journal::open(&path).unwrap();
        assert!(matches!(unloaded.commit(&[LeaseChange::Upsert(lease(2))]), Err(StoreError::NotLoaded)));
        drop(unloaded);
        assert_eq!(open(&path).1, vec![lease(1)]);
    }

    #[test]
    fn a_record_of_the_format_before_relays_reads_as_a_direct_clients_lease() {
        // Written by the journal before leases kept their relays: no relay part after the
        // interface name.
        let mut old = vec![UPSERT];
        old.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7).octets());
        old.extend_from_slice(&[128, 0, 1]);
        for v in [7u32, 0, 100, 200] {
            old.extend_from_slice(&v.to_le_bytes());
        }
        old.extend_from_slice(&1_000_007u64.to_le_bytes());
        old.push(10);
        old.extend_from_slice(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 7]);
        old.push(4);
        old.extend_from_slice(b"eth1");
        assert_eq!(decode(&old), Some(LeaseChange::Upsert(lease(7))));
        // And the current encoder writes a lease without relays exactly so.
        let mut new = Vec::new();
        encode(&LeaseChange::Upsert(lease(7)), &mut new);
        assert_eq!(&new[FRAME..], &old[..]);
    }

    #[test]
    fn a_relayed_clients_relays_survive_reopening_and_a_cut_relay_part_is_a_torn_record() {
        let path = temp("relay");
        let relay = Arc::new(RelayRecord { peer: "2001:db8:ff::2".parse().unwrap(), message: vec![12, 0, 1, 2, 3] });
        // With a Reconfigure Key too: both extensions, in one record.
        let relayed =
            Lease { relay: Some(relay), reconfigure_key: Some(ReconfigureKey(*b"fedcba9876543210")), ..lease(4) };
        let (mut j, _) = open(&path);
        j.commit(&[LeaseChange::Upsert(relayed.clone())]).unwrap();
        drop(j);
        assert_eq!(open(&path).1, vec![relayed.clone()]);
        let mut record = Vec::new();
        encode(&LeaseChange::Upsert(relayed), &mut record);
        assert_eq!(decode(&record[FRAME..record.len() - 1]), None);
    }

    #[test]
    fn leases_survive_reopening() {
        let path = temp("reopen");
        let (mut j, leases) = open(&path);
        assert!(leases.is_empty());
        j.commit(&[LeaseChange::Upsert(lease(1)), LeaseChange::Upsert(lease(2))]).unwrap();
        j.commit(&[
            LeaseChange::Remove(lease(1).resource),
            LeaseChange::Upsert(Lease { state: LeaseState::Offered, ..lease(3) }),
        ])
        .unwrap();
        drop(j);
        let (_, leases) = open(&path);
        assert_eq!(leases, vec![lease(2)], "offers are never written; removals are");
    }

    #[test]
    fn every_torn_tail_is_cut_at_the_last_whole_record() {
        let path = temp("torn");
        let (mut j, _) = open(&path);
        j.commit(&[LeaseChange::Upsert(lease(1))]).unwrap();
        let whole = fs::metadata(&path).unwrap().len();
        j.commit(&[LeaseChange::Upsert(lease(2))]).unwrap();
        drop(j);
        let full = fs::read(&path).unwrap();
        for len in whole as usize + 1..full.len() {
            fs::write(&path, &full[..len]).unwrap();
            let (_, leases) = open(&path);
            assert_eq!(leases, vec![lease(1)], "cut at {len}");
            assert_eq!(fs::metadata(&path).unwrap().len(), whole, "the torn tail is removed");
        }
    }

    #[test]
    fn a_corrupted_record_is_detected_by_its_checksum() {
        let path = temp("corrupt");
        let (mut j, _) = open(&path);
        j.commit(&[LeaseChange::Upsert(lease(1))]).unwrap();
        let whole = fs::metadata(&path).unwrap().len() as usize;
        j.commit(&[LeaseChange::Upsert(lease(2))]).unwrap();
        drop(j);
        let mut bytes = fs::read(&path).unwrap();
        bytes[whole + FRAME + 20] ^= 0x40;
        let (_, cut) = replay(&bytes, &mut |_| {});
        assert_eq!(
            cut,
            Some(Cut {
                offset: whole as u64,
                bytes: (bytes.len() - whole) as u64,
                reason: "record fails its checksum"
            })
        );
    }

    #[test]
    fn background_compaction_keeps_what_is_committed_meanwhile() {
        let path = temp("compact");
        let (mut j, _) = open(&path);
        for _ in 0..3 {
            j.commit(&(1..50).map(|n| LeaseChange::Upsert(lease(n))).collect::<Vec<_>>()).unwrap();
        }
        assert_eq!(j.records(), 147);
        j.compact((1..50).map(lease).collect()).unwrap();
        // Committed while the snapshot is written: must survive the switch.
        j.commit(&[LeaseChange::Remove(lease(1).resource), LeaseChange::Upsert(lease(60))]).unwrap();
        while j.compaction.is_some() {
            std::thread::sleep(std::time::Duration::from_millis(5));
            j.commit(&[]).unwrap();
        }
        assert_eq!(j.records(), 49 + 2);
        drop(j);
        let (_, mut leases) = open(&path);
        leases.sort_by_key(|l| l.iaid);
        let expected: Vec<Lease> = (2..50).chain([60]).map(lease).collect();
        assert_eq!(leases, expected);
    }
}
