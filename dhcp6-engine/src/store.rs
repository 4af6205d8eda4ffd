//! The lease store: where leases outlive the process. The server hands every durable change
//! to a store and sends the Reply that announces it only once the store has it; at start the
//! server is rebuilt from what the store loads. The journal is one store; a shared database is
//! another; the daemon's committer drives whichever it is given, through this trait alone.

use crate::server::{Lease, LeaseChange};

/// Why the store did not load or accept changes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("lease store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("lease store: {0}")]
    Corrupt(String),
    /// A commit came before [`LeaseStore::load`]: the store may still hold a damaged tail
    /// that loading would have cut.
    #[error("lease store: committed to before it was loaded")]
    NotLoaded,
    /// A shared database could not be reached (or did not answer) within the time a commit
    /// may wait: nothing of the commit was accepted.
    #[error("lease database unavailable: {0}")]
    Unavailable(String),
}

/// A change a shared store refused on its own while it accepted the rest of the commit:
/// another server holds its address or prefix (or wrote the lease last, for a change only
/// its last writer may make). The store is the judge, not the engine's table, which may not
/// have heard of the other server's change yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Which batch of [`LeaseStore::commit_batches`]' `batches`, and which change of it.
    pub batch: usize,
    pub change: usize,
    /// The lease the store holds for that resource instead, if any: the engine's table learns
    /// it.
    pub holder: Option<Lease>,
}

/// Where leases are kept: loaded once at start, then committed to in batches, and maintained
/// (compacted) now and then.
pub trait LeaseStore: Send {
    /// Hands every change the store holds to `apply`, oldest first: replaying them rebuilds the
    /// leases the store holds. Called once, before the first commit.
    fn load(&mut self, apply: &mut dyn FnMut(LeaseChange)) -> Result<(), StoreError>;

    /// Makes the changes of every batch in `batches` durable, in order, all of them or none
    /// (group commit). Offers are not durable and are skipped. A store shared with other
    /// servers may refuse single changes (see [`Refused`]) and commit the rest; a store that is
    /// alone (the journal) never does and returns an empty list.
    fn commit_batches(&mut self, batches: &[&[LeaseChange]]) -> Result<Vec<Refused>, StoreError>;

    /// Makes the changes durable, all of them or none (but those refused one by one).
    fn commit(&mut self, changes: &[LeaseChange]) -> Result<Vec<Refused>, StoreError> {
        self.commit_batches(&[changes])
    }

    /// Whether the store would like a snapshot of the `live` leases to compact itself.
    fn wants_snapshot(&self, _live: usize) -> bool {
        false
    }

    /// Takes a snapshot of every live lease and compacts in the background.
    fn compact(&mut self, _snapshot: Vec<Lease>) -> Result<(), StoreError> {
        Ok(())
    }
}
