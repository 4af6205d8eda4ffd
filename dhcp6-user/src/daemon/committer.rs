//! Makes the engine's lease changes durable on a thread of its own, and only then lets out
//! what announces them.
//!
//! The engine hands each batch it handled (its lease changes, the replies and control answers
//! that announce them) to this thread and goes on with the next batch: it never waits for the
//! disk. The thread takes every batch that queued while it was busy and makes them durable
//! with one write and one fdatasync (group commit: the slower the disk, the more each
//! fdatasync covers), then hands their replies to the sender, in the order the engine made
//! them. A batch without lease changes waits for the batches before it all the same: a reply
//! may tell of a lease an earlier batch bound. The XDP lease map is written here too, in the
//! same order: a batch's entries that go, before its changes are written; those that come,
//! once they are durable (unless a later batch of the same commit touches them again). The
//! engine hears back about each batch (a refused one is undone). A store shared with other
//! servers may refuse single changes of a commit it otherwise accepts (another server holds
//! the address): the replies that announce them are not sent, their map entries not written,
//! and the engine hears which they were.
//!
//! Commits that write come at most every [`COMMIT_EVERY`]: an fdatasync costs about the same
//! for one change as for a thousand, so at moderate rates waiting out the rest of that time
//! lets one fdatasync cover what came meanwhile (a Reply waits at most that much longer), and
//! the server does not spend a core on a disk flush per message.

use std::{
    ops::Range,
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use tokio::sync::{mpsc as tokio_mpsc, oneshot};
use tracing::warn;

use dhcp6_common::renewal::{LeaseEntry, LeaseKey};

use super::{
    sender::Outgoing,
    throttle::{repeats, Throttle},
};
use crate::{
    control::Answer,
    lease_store::{LeaseStore, Refused},
    renewal::ia_type_byte,
    server::{Lease, LeaseChange},
};

/// What one batch does to the lease map.
#[derive(Default)]
pub struct MapOps {
    /// Entries that go before the batch is written to the store.
    pub removals: Vec<LeaseKey>,
    /// Entries that come once the batch is durable.
    pub entries: Vec<(LeaseKey, LeaseEntry)>,
}

/// Where the XDP lease map's entries are written (the map itself; a fake in tests).
pub trait MapWriter: Send {
    fn remove(&mut self, key: &LeaseKey);
    fn insert(&mut self, key: &LeaseKey, entry: &LeaseEntry);
}

/// Batches handed over and not yet heard back about, past which the engine stops taking
/// datagrams (they queue, then are shed, instead of piling up behind a stalled disk).
pub const MAX_IN_FLIGHT: usize = 256;
/// Most batches one commit covers.
const MAX_GROUP: usize = 256;
/// Least time between the starts of two commits that write.
pub const COMMIT_EVERY: Duration = Duration::from_millis(2);
/// A commit slower than this is said in the log (at most once a minute).
const SLOW_COMMIT: Duration = Duration::from_secs(1);

/// What one batch of the engine's work is waiting for: its lease changes to be durable.
#[derive(Default)]
pub struct Batch {
    pub changes: Vec<LeaseChange>,
    pub replies: Vec<Outgoing>,
    /// For each reply (same order), the changes of `changes` it announces: a reply whose
    /// change a shared store refuses is not sent. Empty: every reply announces every change.
    pub announces: Vec<Range<usize>>,
    /// Control socket answers, sent once the changes they made are durable.
    pub answers: Vec<(oneshot::Sender<Answer>, Answer)>,
    /// What the batch does to the XDP lease map.
    pub map: MapOps,
    /// Messages for the failover partner, sent once the changes are durable (the partner's
    /// bindings are acknowledged only once they would survive a crash).
    pub partner: Vec<(tokio_mpsc::UnboundedSender<Vec<u8>>, Vec<u8>)>,
}

/// What the commit thread measures of each commit that writes, for the metrics endpoint:
/// observed here once per fdatasync, read by a scrape, never touched by the engine.
#[derive(Clone, Debug)]
pub struct CommitHistograms {
    /// Lease changes one commit wrote (every batch it covered): how much one fdatasync covers.
    pub changes: Histogram,
    /// Seconds one commit's write and fdatasync took.
    pub seconds: Histogram,
}

impl Default for CommitHistograms {
    fn default() -> Self {
        CommitHistograms {
            // 1 to 32768 changes.
            changes: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            // 50 µs to about 1.6 s.
            seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
        }
    }
}

/// A change of a committed batch that a shared store refused: another server holds its
/// resource (the store's `holder`). `replies` replies that announced it were not sent.
#[derive(Debug)]
pub struct TakenElsewhere {
    pub change: LeaseChange,
    pub holder: Option<Lease>,
    pub replies: usize,
}

/// What the engine hears back.
pub enum Done {
    /// The batch's changes are durable and its replies handed to the sender, but for those
    /// the store refused one by one (always none with the journal).
    Committed(Vec<TakenElsewhere>),
    /// The store refused the batch: its replies were dropped; the engine undoes the changes.
    Refused(Vec<LeaseChange>),
    /// The store would like a snapshot of the live leases to compact itself.
    WantsSnapshot,
}

enum Job {
    Batch(Box<Batch>),
    /// Once a second: finishes a compaction whose snapshot is written, and asks the store
    /// whether it wants a new one for `live` leases.
    Tick {
        live: usize,
    },
    /// A snapshot the engine took after hearing of `refusals` refused batches.
    Compact {
        snapshot: Vec<Lease>,
        refusals: u64,
    },
}

/// The engine's handle on the commit thread.
pub struct Committer {
    jobs: Option<mpsc::Sender<Job>>,
    done: tokio_mpsc::UnboundedReceiver<Done>,
    in_flight: usize,
    refusals: u64,
    thread: Option<JoinHandle<()>>,
    histograms: CommitHistograms,
}

impl Committer {
    /// Starts the commit thread on `store` and the lease map `map` (with XDP); `deliver`
    /// hands durable replies to the sender.
    pub fn start(
        store: Box<dyn LeaseStore>,
        map: Option<Box<dyn MapWriter>>,
        deliver: impl FnMut(Vec<Outgoing>) + Send + 'static,
    ) -> std::io::Result<Committer> {
        let (jobs, queue) = mpsc::channel();
        let (tell, done) = tokio_mpsc::unbounded_channel();
        let histograms = CommitHistograms::default();
        let measured = histograms.clone();
        let thread = std::thread::Builder::new().name("dhcp6d-commit".into()).spawn(move || {
            let mut out = Out {
                tell,
                deliver,
                map,
                refusals: 0,
                slow: Throttle::new(Duration::from_secs(60)),
                refused: Throttle::default(),
                measured,
            };
            run(store, queue, &mut out)
        })?;
        Ok(Committer { jobs: Some(jobs), done, in_flight: 0, refusals: 0, thread: Some(thread), histograms })
    }

    /// What the commit thread measures, for the metrics endpoint.
    pub fn histograms(&self) -> &CommitHistograms {
        &self.histograms
    }

    /// Queues `job`; gives it back if the commit thread is gone.
    fn queue(&self, job: Job) -> Result<(), Job> {
        match &self.jobs {
            Some(jobs) => jobs.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }

    /// Hands a batch over. If the commit thread is gone, its replies are dropped and the
    /// batch is refused at once.
    pub fn submit(&mut self, batch: Batch) -> Option<Done> {
        let map_ops = !batch.map.removals.is_empty() || !batch.map.entries.is_empty();
        if batch.changes.is_empty()
            && batch.replies.is_empty()
            && batch.answers.is_empty()
            && batch.partner.is_empty()
            && !map_ops
        {
            return None;
        }
        match self.queue(Job::Batch(Box::new(batch))) {
            Ok(()) => {
                self.in_flight += 1;
                None
            }
            Err(job) => {
                warn!("the commit thread is gone: the batch is refused");
                let Job::Batch(batch) = job else { return None };
                Some(Done::Refused(batch.changes))
            }
        }
    }

    /// Batches handed over and not yet heard back about.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// What the commit thread says next.
    pub async fn next(&mut self) -> Option<Done> {
        let done = self.done.recv().await?;
        self.heard(&done);
        Some(done)
    }

    /// What the commit thread said already, without waiting.
    pub fn try_next(&mut self) -> Option<Done> {
        let done = self.done.try_recv().ok()?;
        self.heard(&done);
        Some(done)
    }

    fn heard(&mut self, done: &Done) {
        match done {
            Done::Committed(_) => self.in_flight -= 1,
            Done::Refused(_) => {
                self.in_flight -= 1;
                self.refusals += 1;
            }
            Done::WantsSnapshot => {}
        }
    }

    /// Once a second, with the engine's count of live leases.
    pub fn tick(&self, live: usize) {
        let _ = self.queue(Job::Tick { live });
    }

    /// A snapshot of the live leases, as the engine has them now, for compaction. Queued after
    /// every batch handed over before it, so the journal it replaces holds them; dropped if a
    /// batch was refused that the engine had not undone when it took the snapshot.
    pub fn compact(&self, snapshot: Vec<Lease>) {
        let _ = self.queue(Job::Compact { snapshot, refusals: self.refusals });
    }

    /// Lets every batch handed over finish (made durable, replies sent), then stops the
    /// thread; returns what it said meanwhile.
    pub fn finish(&mut self) -> Vec<Done> {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::iter::from_fn(|| self.try_next()).collect()
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Where the commit thread's work goes.
struct Out<D> {
    tell: tokio_mpsc::UnboundedSender<Done>,
    deliver: D,
    map: Option<Box<dyn MapWriter>>,
    /// Batches refused so far.
    refusals: u64,
    /// Slow commits, said once a minute.
    slow: Throttle,
    /// Refused commits, said once per window.
    refused: Throttle,
    /// Each commit that writes, measured.
    measured: CommitHistograms,
}

fn run<D: FnMut(Vec<Outgoing>)>(mut store: Box<dyn LeaseStore>, queue: mpsc::Receiver<Job>, out: &mut Out<D>) {
    let mut group: Vec<Batch> = Vec::new();
    // When the last commit that wrote began.
    let mut wrote: Option<Instant> = None;
    while let Ok(first) = queue.recv() {
        let mut next = Some(first);
        let mut paced = false;
        while let Some(job) = next.take() {
            match job {
                Job::Batch(b) => {
                    if !paced && b.changes.iter().any(is_durable) {
                        // The first batch to write since the last commit: what comes within
                        // COMMIT_EVERY of the last write joins it. What came before it has
                        // nothing to write and goes now.
                        paced = true;
                        if let Some(since) = wrote.map(|w| w.elapsed()).filter(|s| *s < COMMIT_EVERY) {
                            commit(&mut *store, &mut group, out);
                            std::thread::sleep(COMMIT_EVERY - since);
                        }
                    }
                    group.push(*b)
                }
                other => {
                    // Batches before it go first: a compaction's snapshot holds them.
                    let started = Instant::now();
                    if commit(&mut *store, &mut group, out) {
                        wrote = Some(started);
                    }
                    other_job(&mut *store, other, &out.tell, out.refusals);
                }
            }
            if group.len() < MAX_GROUP {
                next = queue.try_recv().ok();
            }
        }
        let started = Instant::now();
        if commit(&mut *store, &mut group, out) {
            wrote = Some(started);
        }
    }
}

fn is_durable(change: &LeaseChange) -> bool {
    match change {
        LeaseChange::Upsert(l) => l.state.is_durable(),
        LeaseChange::Remove(_) => true,
    }
}

/// One commit for every batch in `group`, then their replies and answers, in order; the lease
/// map's entries that go, before, and those that come, after. True if it had anything to
/// write.
fn commit<D: FnMut(Vec<Outgoing>)>(store: &mut dyn LeaseStore, group: &mut Vec<Batch>, out: &mut Out<D>) -> bool {
    if group.is_empty() {
        return false;
    }
    if let Some(map) = out.map.as_mut() {
        for key in group.iter().flat_map(|b| &b.map.removals) {
            map.remove(key);
        }
    }
    let writes = group.iter().any(|b| b.changes.iter().any(is_durable));
    let started = Instant::now();
    let result = {
        let batches: Vec<&[LeaseChange]> = group.iter().map(|b| b.changes.as_slice()).collect();
        store.commit_batches(&batches)
    };
    let took = started.elapsed();
    if writes && result.is_ok() {
        let changes: usize = group.iter().map(|b| b.changes.len()).sum();
        out.measured.changes.observe(changes as f64);
        out.measured.seconds.observe(took.as_secs_f64());
    }
    if took >= SLOW_COMMIT {
        if let Some(more) = out.slow.hit(Instant::now()) {
            warn!(
                ms = took.as_millis() as u64,
                batches = group.len(),
                "a lease store commit was slow ({more} more since the last said)"
            );
        }
    }
    if let Err(e) = &result {
        if let Some(more) = out.refused.hit(Instant::now()) {
            let also = repeats(more);
            warn!(error = %e, batches = group.len(), "the lease store refused a commit: its replies are not sent{also}");
        }
    }
    if let (Ok(refused), Some(map)) = (&result, out.map.as_mut()) {
        // An entry a later batch of this commit takes away or rewrites is not written, nor
        // one whose change the store refused.
        let mut later: std::collections::HashSet<LeaseKey> = refused_keys(group, refused);
        let mut entries = Vec::new();
        for b in group.iter().rev() {
            entries.extend(b.map.entries.iter().rev().filter(|(k, _)| !later.contains(k)));
            later.extend(b.map.removals.iter().copied().chain(b.map.entries.iter().map(|(k, _)| *k)));
        }
        for (key, entry) in entries.iter().rev() {
            map.insert(key, entry);
        }
    }
    let mut replies = Vec::new();
    let refused: &[Refused] = result.as_deref().unwrap_or_default();
    for (index, batch) in group.drain(..).enumerate() {
        let Batch { changes, replies: r, announces, answers, map: _, partner } = batch;
        let ok = result.is_ok();
        for (answer, value) in answers {
            let _ = answer.send(if ok { value } else { Answer::error("the lease store refused the change") });
        }
        if ok {
            for (link, message) in partner {
                let _ = link.send(message);
            }
            let taken: Vec<&Refused> = refused.iter().filter(|t| t.batch == index).collect();
            let mut told = vec![0; taken.len()];
            for (n, reply) in r.into_iter().enumerate() {
                // A reply tells of its own changes, or (not said) of every change of the batch.
                let tells = |change: usize| announces.get(n).is_none_or(|range| range.contains(&change));
                let mut sent = true;
                for (t, count) in taken.iter().zip(told.iter_mut()) {
                    if tells(t.change) {
                        *count += 1;
                        sent = false;
                    }
                }
                if sent {
                    replies.push(reply);
                }
            }
            let taken = taken
                .into_iter()
                .zip(told)
                .filter_map(|(t, replies)| {
                    let change = changes.get(t.change)?.clone();
                    Some(TakenElsewhere { change, holder: t.holder.clone(), replies })
                })
                .collect();
            let _ = out.tell.send(Done::Committed(taken));
        } else {
            out.refusals += 1;
            let _ = out.tell.send(Done::Refused(changes));
        }
    }
    if !replies.is_empty() {
        (out.deliver)(replies);
    }
    writes
}

/// The lease map keys of the upserts the store refused.
fn refused_keys(group: &[Batch], refused: &[Refused]) -> std::collections::HashSet<LeaseKey> {
    refused
        .iter()
        .filter_map(|t| match group.get(t.batch)?.changes.get(t.change)? {
            LeaseChange::Upsert(l) => LeaseKey::new(&l.duid, l.iaid, ia_type_byte(l.ia_type)),
            LeaseChange::Remove(_) => None,
        })
        .collect()
}

fn other_job(store: &mut dyn LeaseStore, job: Job, tell: &tokio_mpsc::UnboundedSender<Done>, refusals: u64) {
    match job {
        Job::Batch(_) => {}
        Job::Tick { live } => {
            // Nothing to write: finishes a compaction whose snapshot is written.
            if let Err(e) = store.commit(&[]) {
                warn!(error = %e, "finishing a journal compaction failed");
            }
            if store.wants_snapshot(live) {
                let _ = tell.send(Done::WantsSnapshot);
            }
        }
        Job::Compact { snapshot, refusals: seen } => {
            if seen != refusals {
                // The snapshot holds changes of a batch the store refused.
                return;
            }
            if let Err(e) = store.compact(snapshot) {
                warn!(error = %e, "starting a journal compaction failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{Ipv6Addr, SocketAddrV6},
        sync::{Arc, Mutex},
    };

    use ipnet::Ipv6Net;

    use super::*;
    use crate::{
        lease_store::StoreError,
        server::{IaType, LeaseState},
    };

    /// What the fake store and the fake sender saw, in order.
    #[derive(Default)]
    struct Log {
        events: Vec<String>,
        /// Commits from this one on fail.
        fail_from: Option<usize>,
        /// Each commit waits this long (a slow disk).
        delay: Duration,
        /// Commits begun, and ended.
        begun: usize,
        commits: usize,
    }

    struct FakeStore(Arc<Mutex<Log>>);

    impl LeaseStore for FakeStore {
        fn load(&mut self, _apply: &mut dyn FnMut(LeaseChange)) -> Result<(), StoreError> {
            Ok(())
        }

        fn commit_batches(&mut self, batches: &[&[LeaseChange]]) -> Result<Vec<Refused>, StoreError> {
            let delay = {
                let mut log = self.0.lock().unwrap();
                log.begun += 1;
                log.delay
            };
            std::thread::sleep(delay);
            let mut log = self.0.lock().unwrap();
            let n = log.commits;
            log.commits += 1;
            if log.fail_from.is_some_and(|f| n >= f) {
                log.events.push("refused".into());
                return Err(StoreError::Corrupt("disk on fire".into()));
            }
            let iaids: Vec<String> = batches
                .iter()
                .flat_map(|b| b.iter())
                .map(|c| match c {
                    LeaseChange::Upsert(l) => l.iaid.to_string(),
                    LeaseChange::Remove(_) => "-".into(),
                })
                .collect();
            log.events.push(format!("durable {}", iaids.join(",")));
            // Lease 13 is held by another server's client.
            let taken = |b: &[LeaseChange]| b.iter().position(|c| matches!(c, LeaseChange::Upsert(l) if l.iaid == 13));
            Ok(batches
                .iter()
                .enumerate()
                .filter_map(|(batch, b)| Some(Refused { batch, change: taken(b)?, holder: None }))
                .collect())
        }
    }

    /// The lease map, as the events "remove N" and "insert N" (N the key's IAID).
    struct FakeMap(Arc<Mutex<Log>>);

    impl MapWriter for FakeMap {
        fn remove(&mut self, key: &LeaseKey) {
            self.0.lock().unwrap().events.push(format!("remove {}", key.iaid));
        }
        fn insert(&mut self, key: &LeaseKey, _: &LeaseEntry) {
            self.0.lock().unwrap().events.push(format!("insert {}", key.iaid));
        }
    }

    fn key(n: u32) -> LeaseKey {
        LeaseKey::new(&[0, 3, 0, 1, 2, 0, 0, 0, 0, n as u8], n, dhcp6_common::renewal::IA_TYPE_NA).unwrap()
    }

    fn entry() -> LeaseEntry {
        LeaseEntry {
            deadline_ns: 0,
            renewed_ns: 0,
            ifindex: 0,
            client_id_sum: 0,
            ia_sum: 0,
            resource: [0; 16],
            prefix_len: 128,
            ia_len: 0,
            flags: 0,
            _pad: 0,
            ia: [0; dhcp6_common::renewal::IA_MAX],
        }
    }

    fn lease(n: u32) -> Lease {
        Lease {
            resource: Ipv6Net::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n as u16)),
            ia_type: IaType::Na,
            duid: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, n as u8],
            iaid: n,
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

    fn reply(n: u32) -> Outgoing {
        Outgoing {
            listener: 0,
            payload: vec![n as u8],
            destination: SocketAddrV6::new(Ipv6Addr::LOCALHOST, 546, 0, 0),
            source: None,
            peer: None,
        }
    }

    fn start(log: &Arc<Mutex<Log>>) -> Committer {
        let sent = log.clone();
        let map = FakeMap(log.clone());
        Committer::start(Box::new(FakeStore(log.clone())), Some(Box::new(map)), move |replies| {
            let ids: Vec<String> = replies.iter().map(|r| r.payload[0].to_string()).collect();
            sent.lock().unwrap().events.push(format!("sent {}", ids.join(",")));
        })
        .unwrap()
    }

    fn batch(n: u32, with_change: bool) -> Batch {
        Batch {
            changes: if with_change { vec![LeaseChange::Upsert(lease(n))] } else { vec![] },
            replies: vec![reply(n)],
            ..Batch::default()
        }
    }

    #[test]
    fn replies_leave_only_after_their_changes_are_durable_and_in_order() {
        let log = Arc::new(Mutex::new(Log { delay: Duration::from_millis(20), ..Log::default() }));
        let mut c = start(&log);
        for n in 1..=5 {
            assert!(c.submit(batch(n, n != 3)).is_none());
        }
        assert_eq!(c.in_flight(), 5);
        let done = c.finish();
        assert_eq!(done.iter().filter(|d| matches!(d, Done::Committed(_))).count(), 5);
        assert_eq!(c.in_flight(), 0);
        let events = log.lock().unwrap().events.clone();
        // Every reply is sent after the commit that holds its change, in the engine's order.
        let sent: Vec<u32> = events
            .iter()
            .filter_map(|e| e.strip_prefix("sent "))
            .flat_map(|s| s.split(',').map(|x| x.parse::<u32>().unwrap()).collect::<Vec<_>>())
            .collect();
        assert_eq!(sent, vec![1, 2, 3, 4, 5]);
        for n in [1, 2, 4, 5] {
            let durable = events
                .iter()
                .position(|e| e.strip_prefix("durable ").is_some_and(|d| d.split(',').any(|x| x == n.to_string())))
                .unwrap();
            let sent_at = events
                .iter()
                .position(|e| e.strip_prefix("sent ").is_some_and(|s| s.split(',').any(|x| x == n.to_string())))
                .unwrap();
            assert!(durable < sent_at, "{events:?}");
        }
        // Batch 3 had no change, but waited for batch 2's commit: its reply may tell of it.
        let three = events.iter().position(|e| e.starts_with("sent ") && e.contains('3')).unwrap();
        let two = events.iter().position(|e| e.starts_with("durable ") && e.contains('2')).unwrap();
        assert!(two < three, "{events:?}");
    }

    #[test]
    fn batches_queued_behind_a_slow_commit_share_the_next_one() {
        let log = Arc::new(Mutex::new(Log { delay: Duration::from_millis(100), ..Log::default() }));
        let mut c = start(&log);
        c.submit(batch(1, true));
        // While the first commit waits on the disk, the rest queue up.
        while log.lock().unwrap().begun == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        for n in 2..=6 {
            c.submit(batch(n, true));
        }
        c.finish();
        let events = log.lock().unwrap().events.clone();
        assert_eq!(events, vec!["durable 1", "sent 1", "durable 2,3,4,5,6", "sent 2,3,4,5,6"], "{events:?}");
    }

    /// Submits `batches` so that they share one commit: behind a first batch whose slow
    /// commit has begun.
    fn in_one_commit(log: &Arc<Mutex<Log>>, c: &mut Committer, batches: Vec<Batch>) {
        log.lock().unwrap().delay = Duration::from_millis(100);
        let begun = log.lock().unwrap().begun;
        c.submit(batch(99, true));
        while log.lock().unwrap().begun == begun {
            std::thread::sleep(Duration::from_millis(1));
        }
        for b in batches {
            c.submit(b);
        }
    }

    #[test]
    fn map_entries_go_before_the_write_and_come_after_it_unless_a_later_batch_takes_them() {
        let log = Arc::new(Mutex::new(Log::default()));
        let mut c = start(&log);
        let mut bound = batch(1, true);
        bound.map.entries.push((key(1), entry()));
        // Released in the next batch of the same commit: never written.
        let mut released = batch(2, true);
        released.map.removals.push(key(1));
        // Given to another client after an old entry goes: written once durable.
        let mut moved = batch(3, true);
        moved.map.removals.push(key(7));
        moved.map.entries.push((key(3), entry()));
        in_one_commit(&log, &mut c, vec![bound, released, moved]);
        c.finish();
        let events = log.lock().unwrap().events.clone();
        let tail: Vec<&str> = events.iter().map(String::as_str).skip_while(|e| *e != "sent 99").skip(1).collect();
        assert_eq!(tail, ["remove 1", "remove 7", "durable 1,2,3", "insert 3", "sent 1,2,3"], "{events:?}");
    }

    #[test]
    fn a_refused_commit_writes_no_map_entry() {
        let log = Arc::new(Mutex::new(Log { fail_from: Some(0), ..Log::default() }));
        let mut c = start(&log);
        let mut b = batch(1, true);
        b.map.removals.push(key(5));
        b.map.entries.push((key(1), entry()));
        c.submit(b);
        c.finish();
        let events = log.lock().unwrap().events.clone();
        assert_eq!(events, ["remove 5", "refused"], "{events:?}");
    }

    #[test]
    fn commits_that_write_come_at_most_every_commit_every() {
        let log = Arc::new(Mutex::new(Log::default()));
        let mut c = start(&log);
        let started = Instant::now();
        for n in 0..40 {
            c.submit(batch(n, true));
            std::thread::sleep(Duration::from_micros(500));
        }
        let done = c.finish();
        let elapsed = started.elapsed();
        assert_eq!(done.len(), 40);
        let commits = log.lock().unwrap().commits;
        let most = (elapsed.as_micros() / COMMIT_EVERY.as_micros()) as usize + 2;
        assert!(commits <= most, "{commits} commits in {elapsed:?}: more than one per {COMMIT_EVERY:?}");
        assert!(commits > 1, "the batches were not all held for one commit");
    }

    #[test]
    fn a_change_taken_elsewhere_holds_back_only_the_reply_that_announces_it() {
        let log = Arc::new(Mutex::new(Log::default()));
        let mut c = start(&log);
        // Three exchanges in one batch; the second one's lease is held by another server.
        let mut b = Batch {
            changes: vec![LeaseChange::Upsert(lease(1)), LeaseChange::Upsert(lease(13)), LeaseChange::Upsert(lease(3))],
            replies: vec![reply(1), reply(13), reply(3)],
            announces: vec![0..1, 1..2, 2..3],
            ..Batch::default()
        };
        b.map.entries = vec![(key(1), entry()), (key(13), entry()), (key(3), entry())];
        c.submit(b);
        let done = c.finish();
        let [Done::Committed(taken)] = done.as_slice() else { panic!("not committed") };
        assert_eq!(taken.len(), 1);
        assert!(matches!(&taken[0].change, LeaseChange::Upsert(l) if l.iaid == 13));
        assert_eq!(taken[0].replies, 1);
        let events = log.lock().unwrap().events.clone();
        assert_eq!(events, ["durable 1,13,3", "insert 1", "insert 3", "sent 1,3"], "{events:?}");
    }

    #[test]
    fn a_refused_commit_sends_nothing_and_says_so() {
        let log = Arc::new(Mutex::new(Log { fail_from: Some(1), ..Log::default() }));
        let mut c = start(&log);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        c.submit(batch(1, true));
        assert!(matches!(rt.block_on(c.next()), Some(Done::Committed(_))));
        let (answer, answered) = oneshot::channel();
        let mut b = batch(2, true);
        b.answers.push((answer, Answer::Cleared(crate::control::Cleared { cleared: 1 })));
        c.submit(b);
        let done = rt.block_on(c.next());
        let Some(Done::Refused(changes)) = done else { panic!("not refused") };
        assert!(matches!(changes.as_slice(), [LeaseChange::Upsert(l)] if l.iaid == 2));
        assert_eq!(c.in_flight(), 0);
        let answer = answered.blocking_recv().unwrap();
        assert!(matches!(answer, Answer::Error { .. }), "{answer:?}");
        c.finish();
        let events = log.lock().unwrap().events.clone();
        assert_eq!(events, ["durable 1", "sent 1", "refused"], "{events:?}");
    }

    #[test]
    fn a_snapshot_taken_before_a_refusal_was_undone_is_dropped() {
        struct Compacting(Arc<Mutex<Vec<usize>>>);
        impl LeaseStore for Compacting {
            fn load(&mut self, _apply: &mut dyn FnMut(LeaseChange)) -> Result<(), StoreError> {
                Ok(())
            }
            fn commit_batches(&mut self, batches: &[&[LeaseChange]]) -> Result<Vec<Refused>, StoreError> {
                // Lease 2 does not fit.
                if batches.iter().flat_map(|b| b.iter()).any(|c| matches!(c, LeaseChange::Upsert(l) if l.iaid == 2)) {
                    return Err(StoreError::Corrupt("full".into()));
                }
                Ok(Vec::new())
            }
            fn compact(&mut self, snapshot: Vec<Lease>) -> Result<(), StoreError> {
                self.0.lock().unwrap().push(snapshot.len());
                Ok(())
            }
        }
        let compactions = Arc::new(Mutex::new(Vec::new()));
        let mut c = Committer::start(Box::new(Compacting(compactions.clone())), None, |_| {}).unwrap();
        c.submit(batch(1, true));
        c.submit(batch(2, true));
        // Taken before the engine heard of the refusal: it holds lease 2.
        c.compact(vec![lease(1), lease(2)]);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut heard = Vec::new();
        while heard.len() < 2 {
            heard.push(rt.block_on(c.next()).unwrap());
        }
        assert!(matches!(heard[1], Done::Refused(_)));
        // Taken after: it is used.
        c.compact(vec![lease(1)]);
        c.finish();
        assert_eq!(*compactions.lock().unwrap(), vec![1]);
    }
}
