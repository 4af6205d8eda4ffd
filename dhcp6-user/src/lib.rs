//! dhcp6 userspace: the `dhcp6d` daemon that drives the engines (sockets, XDP, the journal, the
//! control socket), as a library the tests drive directly.
//!
//! - [`config`]: the configuration file, parsed into the engines' configuration types.
//! - [`daemon`]: the driver: readers, the engine thread, the committer, the sender, XDP upkeep.
//! - [`store`]: lease stores (the journal) and moving leases in and out (Kea memfile, CSV).
//! - [`xdp`]: loading and attaching the XDP program, reading its counters and maps.
//! - [`metrics`]: the counters `dhcp6d show` reads, encoded for Prometheus.
//! - [`capture`]: DHCPv6 datagrams out of pcap files; [`json`]: messages rendered as JSON.
//!
//! The wire codec is its own crate, `dhcp6-codec` (DHCPv6 messages, and the Ethernet, IPv6 and
//! UDP frames around them), re-exported here as [`codec`]; the protocol engines are
//! `dhcp6-engine`, whose modules are re-exported as [`server`], [`relay`], [`renewal`] and
//! [`lease_store`].

pub mod capture;
pub mod config;
pub mod control;
pub mod daemon;
pub mod json;
pub mod leasequery;
pub mod metrics;
pub mod netlink;
pub mod show;
pub mod store;
pub mod tls;
pub mod trace;
pub mod xdp;
pub mod xdp_bench;

pub use dhcp6_codec as codec;
pub use dhcp6_engine::{counters, failover, relay, renewal, server, store as lease_store};
