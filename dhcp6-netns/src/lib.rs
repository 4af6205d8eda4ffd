//! Network namespaces for dhcp6's integration tests, `cargo xtask run` (the lab) and
//! `cargo xtask bench`: hosts on one machine, joined by veth links, with programs and threads
//! running inside them. Everything is removed when its value is dropped: a [`Process`] is
//! stopped, a [`Veth`] pair deleted, a [`Netns`] removed with what is left in it; so a test
//! or a run that fails half-way leaves nothing behind.
//!
//! Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and the `ip` and `sysctl` commands. Errors are
//! typed ([`Error`]); the tests turn them into panics and xtask into `anyhow` errors.
//!
//! ```no_run
//! use std::path::Path;
//!
//! use dhcp6_netns::{Netns, Veth};
//!
//! let server = Netns::unique("srv")?;
//! let client = Netns::unique("cli")?;
//! let link = Veth::new(&server, "srv0", &client, "cli0")?;
//! server.exec(&["ip", "-6", "addr", "add", "2001:db8::1/64", "dev", link.a(), "nodad"])?;
//! let _dhcp6d = server.spawn(&["dhcp6d", "run", "--config", "dhcp6d.toml"], Path::new("dhcp6d.log"))?;
//! // A socket made here is the client's, whichever thread uses it later.
//! let socket = client.run(|| std::net::UdpSocket::bind("[::]:546"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod command;
mod error;
mod frames;
mod netns;
mod process;
mod veth;

pub use command::exec;
pub use error::Error;
pub use frames::send_frames;
pub use netns::{require_root, unique_name, Netns};
pub use process::Process;
pub use veth::Veth;
