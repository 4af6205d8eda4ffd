//! dhcp6 userspace: everything `dhcp6d` does, as a library the tests drive directly.
//!
//! - [`capture`]: DHCPv6 datagrams out of pcap files.
//! - [`json`]: messages rendered as JSON.
//! - [`xdp`]: loading and attaching the XDP program, reading its counters and maps.
//! - [`fast_path`]: what the XDP Renew/Rebind fast path's maps hold, made from the engine.
//!
//! The wire codec is its own crate, `dhcp6-codec`, re-exported here as [`codec`].

pub mod capture;
pub mod config;
pub mod control;
pub mod daemon;
pub mod fast_path;
pub mod frame;
pub mod json;
pub mod netlink;
pub mod relay;
pub mod server;
pub mod show;
pub mod store;
pub mod xdp;

pub use dhcp6_codec as codec;
