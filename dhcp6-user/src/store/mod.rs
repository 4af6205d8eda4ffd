//! Lease persistence: the journal (the durable store the daemon runs with by default), a
//! PostgreSQL database several servers share, and moving leases in and out (CSV export, Kea
//! memfile import).

pub mod journal;
pub mod kea;
pub mod postgresql;

pub use journal::Journal;

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

/// The mode of files that name subscribers (DUIDs and their addresses): root (or dhcp6d's own
/// user) only.
pub const PRIVATE: u32 = 0o600;

/// Opens `path` with `options`, created with mode [`PRIVATE`] if it is new; an existing file
/// is made [`PRIVATE`] too (files written by an earlier version were readable by anyone).
pub fn open_private(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    let file = options.mode(PRIVATE).open(path)?;
    if file.metadata()?.permissions().mode() & 0o777 != PRIVATE {
        file.set_permissions(std::fs::Permissions::from_mode(PRIVATE))?;
    }
    Ok(file)
}

/// Makes `path` [`PRIVATE`] if it exists.
pub fn make_private(path: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o777 != PRIVATE => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE))
        }
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The journal's file name inside the state directory.
pub const JOURNAL_FILE: &str = "leases.journal";
