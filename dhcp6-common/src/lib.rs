//! Types shared by the XDP program (`dhcp6-ebpf`) and userspace (`dhcp6-user`).
//!
//! Everything whose layout both sides must agree on lives here exactly once: DHCPv6 wire
//! constants, the names of the BPF maps, and the indices of the counters the XDP program
//! keeps. The crate is `no_std` so the eBPF build can use it.
#![no_std]

pub mod counters;
pub mod jobs;
pub mod relay;
pub mod renewal;
pub mod storm;
pub mod trace;
pub use wire::MessageType;
pub mod wire;
pub mod xsk;

/// Names of the maps in the XDP object, as userspace looks them up.
pub mod maps {
    /// Per-CPU array of `u64`, indexed by the DHCPv6 message type byte (0..=255).
    pub const MSG_TYPE_COUNTS: &str = "MSG_TYPE_COUNTS";
    /// Per-CPU array of `u64`, indexed by [`crate::counters::Verdict`].
    pub const VERDICT_COUNTS: &str = "VERDICT_COUNTS";
    /// Hash map [`crate::renewal::LeaseKey`] -> [`crate::renewal::LeaseEntry`].
    pub const LEASES: &str = "LEASES";
    /// Hash map ifindex (`u32`) -> [`crate::renewal::LinkEntry`].
    pub const LINKS: &str = "LINKS";
    /// Per-CPU scratch space of the XDP program (one [`crate::renewal::SCRATCH`]-byte buffer).
    pub const SCRATCH: &str = "SCRATCH";
    /// Hash map [`crate::relay::AccessKey`] (ifindex and VLANs) -> [`crate::relay::RelayLink`]:
    /// the access interfaces (and VLANs) XDP relays on.
    pub const RELAY_LINKS: &str = "RELAY_LINKS";
    /// One bit per ifindex: the access interfaces of the relay (a lookup of
    /// [`RELAY_LINKS`] for every other frame would cost the server's fast path a hash).
    pub const RELAY_ACCESS_BITS: &str = "RELAY_ACCESS_BITS";
    /// Array of [`crate::relay::RelayGroup`], by group index.
    pub const RELAY_GROUPS: &str = "RELAY_GROUPS";
    /// Array of [`crate::relay::RelayServer`], at group * MAX_GROUP_SERVERS + server.
    pub const RELAY_SERVERS: &str = "RELAY_SERVERS";
    /// Hash map server address (`[u8; 16]`) -> its slot in [`RELAY_SERVERS`] (`u32`).
    pub const RELAY_SERVER_SLOTS: &str = "RELAY_SERVER_SLOTS";
    /// Hash map [`crate::relay::InterfaceIdKey`] -> ifindex (`u32`).
    pub const RELAY_INTERFACE_IDS: &str = "RELAY_INTERFACE_IDS";
    /// LRU hash map [`crate::relay::ClientMacKey`] -> MAC (`[u8; 8]`, two bytes unused).
    pub const RELAY_CLIENT_MACS: &str = "RELAY_CLIENT_MACS";
    /// Per-CPU arrays of `u64` by server slot: Relay-Forwards XDP sent, Relay-Replies it took.
    pub const RELAY_SENT: &str = "RELAY_SENT";
    pub const RELAY_ANSWERED: &str = "RELAY_ANSWERED";
    /// Ring buffer of [`crate::relay::RelayReport`].
    pub const RELAY_REPORTS: &str = "RELAY_REPORTS";
    /// Per-CPU array of `u64`, [`crate::counters::SHED_SLOTS`] entries: at
    /// [`crate::counters::SHED_UNTIL`], CLOCK_MONOTONIC nanoseconds until which XDP drops the
    /// Solicits sent to the server (dhcp6d overloaded; written alike on every CPU); at
    /// [`crate::counters::SHED_COUNT`], the Solicits so dropped; at
    /// [`crate::counters::SHED_SHARE`], the share of them dropped until then. Not pinned: a
    /// stale deadline lapses by itself.
    pub const SHED: &str = "SHED";
    /// Hash map ifindex (`u32`) -> the first slot (`u32`) of that interface's AF_XDP sockets
    /// in [`XSKS`], one per receive queue from there ([`crate::xsk`]). Not pinned: the
    /// sockets close with the dhcp6d that opened them.
    pub const XSK_SLOTS: &str = "XSK_SLOTS";
    /// The AF_XDP sockets (XSKMAP) the served interfaces' client messages are redirected to.
    pub const XSKS: &str = "XSKS";
    /// Program array (`u32` -> program) of the job programs, at their [`crate::jobs`] slots.
    pub const JOBS: &str = "JOBS";
    /// Per-CPU array of one [`crate::jobs::Handover`]: what the entry program found, for the
    /// job program it tail-calls.
    pub const HANDOVER: &str = "HANDOVER";
    /// Array of one [`crate::trace::TraceConfig`]: whether anyone traces, and whom. Not
    /// pinned, as the trace maps below: a trace ends with the dhcp6d that ran it.
    pub const TRACE_CONFIG: &str = "TRACE_CONFIG";
    /// Hash map [`crate::trace::TraceMac`] -> `u32` (unused): the MACs traced.
    pub const TRACE_MACS: &str = "TRACE_MACS";
    /// Ring buffer of [`crate::trace::TraceReport`].
    pub const TRACE_RING: &str = "TRACE_RING";
    /// Array of one [`crate::storm::StormConfig`]: the per-client limit (rate 0: off). Not
    /// pinned, as the storm maps below: dhcp6d writes the limit at each start, and a bucket
    /// that starts afresh only lets its client more.
    pub const STORM_CONFIG: &str = "STORM_CONFIG";
    /// LRU hash map [`crate::storm::StormKey`] -> [`crate::storm::StormBucket`].
    pub const STORM_BUCKETS: &str = "STORM_BUCKETS";
    /// LRU hash map [`crate::storm::StormKey`] -> [`crate::storm::StormRecord`]: the clients
    /// cut, for `dhcp6d show storms`.
    pub const STORMS: &str = "STORMS";
    /// Per-CPU array of `u64`, [`crate::storm::STORM_CUT_SLOTS`] entries: messages cut, by
    /// MAC and by DUID.
    pub const STORM_CUT: &str = "STORM_CUT";
    /// Every map dhcp6d pins, so that a restart finds them. (The relay's maps are rewritten
    /// whole at each start, and its counters read as deltas: they are not pinned, but the
    /// client MACs and the reports are, so that no Reply carried across a restart is lost.
    /// The job programs' array is pinned because the kernel empties a program array once no
    /// process or pin holds it, which would leave the XDP program a stopped dhcp6d left
    /// attached without its jobs; the hand-over with it, so that an entry program and the
    /// job programs a newer dhcp6d put in the array, for the moment before it swaps the entry
    /// program too, read and write the same one.)
    pub const PINNED: [&str; 8] =
        [MSG_TYPE_COUNTS, VERDICT_COUNTS, LEASES, LINKS, RELAY_CLIENT_MACS, RELAY_REPORTS, JOBS, HANDOVER];
    /// Maps this layout's earlier versions pinned that are no longer used (removed at load):
    /// the ring through which XDP once reported each renewal it answered.
    pub const RETIRED: [&str; 1] = ["RENEWALS"];
}

/// Name of the XDP entry program in the object file (the job programs are in [`jobs`]).
pub const XDP_PROGRAM: &str = "dhcp6_xdp";

/// Where dhcp6 pins its maps and links by default.
pub const PIN_DIR: &str = "/sys/fs/bpf/dhcp6";
/// The layout version, a folder under the pin directory: aya reuses a pinned map as found
/// without checking its key and value sizes, so a change of layout must change this.
pub const PIN_LAYOUT: &str = "v8";
