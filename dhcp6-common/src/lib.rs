//! Types shared by the XDP program (`dhcp6-ebpf`) and userspace (`dhcp6-user`).
//!
//! Everything whose layout both sides must agree on lives here exactly once: DHCPv6 wire
//! constants, the names of the BPF maps, and the indices of the counters the XDP program
//! keeps. The crate is `no_std` so the eBPF build can use it.
#![no_std]

pub mod counters;
pub use wire::MessageType;
pub mod wire;

/// Names of the maps in the XDP object, as userspace looks them up.
pub mod maps {
    /// Per-CPU array of `u64`, indexed by the DHCPv6 message type byte (0..=255).
    pub const MSG_TYPE_COUNTS: &str = "MSG_TYPE_COUNTS";
    /// Per-CPU array of `u64`, indexed by [`crate::counters::Verdict`].
    pub const VERDICT_COUNTS: &str = "VERDICT_COUNTS";
}

/// Name of the XDP program in the object file.
pub const XDP_PROGRAM: &str = "dhcp6_xdp";

/// Where dhcp6 pins its maps and links. The layout version is part of the path because aya
/// reuses a pinned map as found without checking its key and value sizes.
pub const PIN_DIR: &str = "/sys/fs/bpf/dhcp6/v1";
