//! Lease persistence: the journal (the durable store the daemon runs with), and moving
//! leases in and out of it (CSV export, Kea memfile import).

pub mod journal;
pub mod kea;

pub use journal::Journal;

/// The journal's file name inside the state directory.
pub const JOURNAL_FILE: &str = "leases.journal";
