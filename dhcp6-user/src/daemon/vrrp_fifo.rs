//! keepalived's notify FIFO, followed: each line is read as a [`VrrpNotice`] and handed to
//! the engine's queue. The FIFO is made (mode 0600) if keepalived has not made it yet, and
//! opened for reading and writing, so that opening does not wait for keepalived and its
//! restarts do not end the stream. keepalived removes a FIFO it made when it stops cleanly
//! and makes a new one when it starts again: the path is checked every second, and opened
//! again when it names another file.

use std::{
    os::unix::fs::{FileTypeExt, MetadataExt},
    path::{Path, PathBuf},
    time::Duration,
};

use dhcp6_engine::relay::standby::vrrp::{VrrpNotice, VrrpNoticeError};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::unix::pipe,
    sync::mpsc,
};
use tracing::{debug, info, warn};

use super::input::{Input, StandbyInput};

/// Starts following the FIFO at `path`.
pub fn spawn(path: PathBuf, tx: mpsc::Sender<Input>) {
    tokio::spawn(run(path, tx));
}

/// (device, inode) of the file at `path`, if it is a FIFO.
fn fifo_identity(path: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    meta.file_type().is_fifo().then(|| (meta.dev(), meta.ino()))
}

/// Makes the FIFO if nothing is at `path`; its identity.
fn ensure_fifo(path: &Path) -> std::io::Result<(u64, u64)> {
    if std::fs::symlink_metadata(path).is_err() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    fifo_identity(path).ok_or_else(|| std::io::Error::other(format!("{} is not a FIFO", path.display())))
}

async fn run(path: PathBuf, tx: mpsc::Sender<Input>) {
    loop {
        let identity = match ensure_fifo(&path) {
            Ok(id) => id,
            Err(e) => {
                warn!(fifo = %path.display(), error = %e, "keepalived's notify FIFO cannot be used; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let receiver = match pipe::OpenOptions::new().read_write(true).open_receiver(&path) {
            Ok(r) => r,
            Err(e) => {
                warn!(fifo = %path.display(), error = %e, "opening keepalived's notify FIFO failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        info!(fifo = %path.display(), "following keepalived's notify FIFO");
        let mut lines = BufReader::new(receiver).lines();
        let mut check = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                line = lines.next_line() => {
                    let Ok(Some(line)) = line else { break };
                    match VrrpNotice::parse(&line) {
                        Ok(notice) => {
                            debug!(line = %line, "keepalived notice");
                            if tx.send(Input::Standby(StandbyInput::Notice(notice))).await.is_err() {
                                return;
                            }
                        }
                        Err(VrrpNoticeError::OtherType(_)) => {}
                        Err(e) => warn!(line = %line, error = %e, "a line of keepalived's notify FIFO that is no notice"),
                    }
                }
                _ = check.tick() => {
                    if fifo_identity(&path) != Some(identity) {
                        info!(fifo = %path.display(), "keepalived's notify FIFO was replaced; opening the new one");
                        break;
                    }
                }
            }
        }
    }
}
