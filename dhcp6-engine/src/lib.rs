//! dhcp6's protocol engines, sans-IO: no sockets, no clocks, no files, no threads. A driver
//! (the `dhcp6d` daemon, or a test) hands each engine a datagram and the time, and carries out
//! what it decides: datagrams to send, lease changes to make durable first, routes to install.
//!
//! - [`server`]: the DHCPv6 server (RFC 9915 section 18.3): validation, allocation strategies,
//!   pools, the lease table, statistics.
//! - [`relay`]: the relay agent (RFC 9915 section 19): server groups, user entries, routes for
//!   delegated prefixes, and what the XDP relay head holds.
//! - [`store`]: the lease store interface every durable backend implements.
//! - [`renewal`]: what the XDP Renew/Rebind answer's maps hold, made from the server's bindings.
//! - [`failover`]: DHCPv6 failover (RFC 8156): the partner connection, the state machine, lazy
//!   binding updates under the MCLT, and who owns which share of a pool.

pub mod counters;
pub mod failover;
pub mod relay;
pub mod renewal;
pub mod server;
pub mod store;
