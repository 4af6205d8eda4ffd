//! What can fail when making namespaces and links, running commands and threads inside them,
//! and sending frames: one enum, each variant naming the step.

use std::{io, path::PathBuf, process::ExitStatus};

/// Why a namespace, a link, a command, a thread or a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The effective user is not root: namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN.
    #[error("network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN)")]
    NotRoot,
    /// A command could not be started (not installed, say).
    #[error("cannot start `{command}`: {source}")]
    Start {
        /// The command line.
        command: String,
        /// Why it could not start.
        source: io::Error,
    },
    /// A command ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {}", said(stderr, stdout))]
    Failed {
        /// The command line.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// What it wrote to stderr.
        stderr: String,
        /// What it wrote to stdout.
        stdout: String,
    },
    /// Waiting for a process started with [`Netns::spawn`](crate::Netns::spawn) failed.
    #[error("waiting for `{command}`: {source}")]
    Wait {
        /// The command line.
        command: String,
        /// Why waiting failed.
        source: io::Error,
    },
    /// The log file of a process could not be created.
    #[error("creating the log {}: {source}", path.display())]
    Log {
        /// The log's path.
        path: PathBuf,
        /// Why it could not be created.
        source: io::Error,
    },
    /// An interface got no IPv6 link-local address in time (is IPv6 disabled on it?).
    #[error("{interface} in namespace {netns} got no link-local address")]
    NoLinkLocal {
        /// The namespace.
        netns: String,
        /// The interface.
        interface: String,
    },
    /// A thread could not be started.
    #[error("starting a thread for namespace {netns}: {source}")]
    Thread {
        /// The namespace the thread was to enter.
        netns: String,
        /// Why the thread could not start.
        source: io::Error,
    },
    /// A thread could not enter the namespace (open its file, or `setns`).
    #[error("entering namespace {netns}: {source}")]
    Enter {
        /// The namespace.
        netns: String,
        /// Why it could not be entered.
        source: io::Error,
    },
    /// No interface of this name in the calling thread's namespace.
    #[error("no interface {interface}")]
    NoInterface {
        /// The interface.
        interface: String,
    },
    /// A packet socket could not be opened.
    #[error("opening a packet socket: {0}")]
    PacketSocket(io::Error),
    /// A frame could not be sent.
    #[error("sending a frame on {interface}: {source}")]
    Send {
        /// The interface.
        interface: String,
        /// Why the frame was not sent.
        source: io::Error,
    },
}

/// What a failed command said: its stderr, or its stdout when stderr is empty (some tools
/// report there).
fn said<'a>(stderr: &'a str, stdout: &'a str) -> &'a str {
    match stderr.trim() {
        "" => stdout.trim(),
        said => said,
    }
}
