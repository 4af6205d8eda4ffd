//! Types shared by the XDP program (`dhcp6-ebpf`) and userspace (`dhcp6-user`).
//!
//! Everything whose layout both sides must agree on lives here exactly once: DHCPv6 wire
//! constants, the names of the BPF maps, and the indices of the counters the XDP program
//! keeps. The crate is `no_std` so the eBPF build can use it.
#![no_std]

pub mod counters;
pub mod fast_path;
pub use wire::MessageType;
pub mod wire;

/// Names of the maps in the XDP object, as userspace looks them up.
pub mod maps {
    /// Per-CPU array of `u64`, indexed by the DHCPv6 message type byte (0..=255).
    pub const MSG_TYPE_COUNTS: &str = "MSG_TYPE_COUNTS";
    /// Per-CPU array of `u64`, indexed by [`crate::counters::Verdict`].
    pub const VERDICT_COUNTS: &str = "VERDICT_COUNTS";
    /// Hash map [`crate::fast_path::LeaseKey`] -> [`crate::fast_path::LeaseEntry`].
    pub const LEASES: &str = "LEASES";
    /// Hash map ifindex (`u32`) -> [`crate::fast_path::LinkEntry`].
    pub const LINKS: &str = "LINKS";
    /// Ring buffer of [`crate::fast_path::Renewal`].
    pub const RENEWALS: &str = "RENEWALS";
    /// Per-CPU scratch space of the XDP program (one [`crate::fast_path::SCRATCH`]-byte buffer).
    pub const SCRATCH: &str = "SCRATCH";
    /// Every map dhcp6d pins, so that a restart finds them.
    pub const PINNED: [&str; 5] = [MSG_TYPE_COUNTS, VERDICT_COUNTS, LEASES, LINKS, RENEWALS];
}

/// Name of the XDP program in the object file.
pub const XDP_PROGRAM: &str = "dhcp6_xdp";

/// Where dhcp6 pins its maps and links by default.
pub const PIN_DIR: &str = "/sys/fs/bpf/dhcp6";
/// The layout version, a folder under the pin directory: aya reuses a pinned map as found
/// without checking its key and value sizes, so a change of layout must change this.
pub const PIN_LAYOUT: &str = "v1";
