//! The live trace's part in XDP (`dhcp6d trace`): while someone traces, the XDP program reports
//! each DHCPv6 frame of a traced client with what it did to it, so that the trace shows what
//! XDP answered, relayed, passed up or dropped, not only what reached dhcp6d. Nothing is
//! reported, and one array lookup per frame is all it costs, while nobody traces.

/// The trace's switch, in [`crate::maps::TRACE_CONFIG`] (one entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceConfig {
    /// Nonzero while anyone traces: XDP looks at the other fields only then.
    pub on: u32,
    /// Nonzero: every client is traced (a trace without a MAC to match: all clients, or a
    /// client known by a DUID that carries no link-layer address); XDP reports every DHCPv6
    /// frame and dhcp6d picks.
    pub all: u32,
}

/// A client's MAC as [`crate::maps::TRACE_MACS`] keys it (two bytes of padding, zero).
pub type TraceMac = [u8; 8];

/// MACs traced at once.
pub const TRACE_MACS: u32 = 64;

/// Bytes of a frame a report carries: a DHCPv6 exchange's frames fit; a longer one is cut
/// and shown as cut.
pub const TRACE_BYTES: usize = 1024;

/// The ring's size: a thousand reports wait for dhcp6d to read them.
pub const TRACE_RING_BYTES: u32 = 1 << 20;

/// What XDP did beyond the [`crate::counters::Verdict`]s, whose values the other reports
/// carry: a Solicit dropped while dhcp6d sheds load.
pub const TRACE_SHED: u32 = 100;
/// A Renew or Rebind the fast path takes up, reported as it came (its answer, or its
/// hand-over to dhcp6d, is reported next): the answer XDP writes over it in the frame.
pub const TRACE_FAST_PATH: u32 = 101;
/// A client's message cut by storm protection ([`crate::storm`]): the client is over its rate.
pub const TRACE_STORM: u32 = 102;

/// A frame XDP reports, as it was when XDP was done with it: a Reply XDP answered with, a
/// Relay-Forward it relayed up, a client's message it relayed down, or the frame it passed.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TraceReport {
    /// A [`crate::counters::Verdict`] as `u32`, or [`TRACE_SHED`].
    pub verdict: u32,
    /// Why the fast path did not take a frame it handed to dhcp6d's AF_XDP socket (a
    /// [`crate::counters::Verdict`]: a Renew without a lease in the map, say); the verdict
    /// again otherwise.
    pub why: u32,
    /// The interface the frame came in on.
    pub ifindex: u32,
    /// The frame's length, and how many of its bytes `frame` holds.
    pub len: u32,
    pub captured: u32,
    pub frame: [u8; TRACE_BYTES],
}

const _: () = assert!(core::mem::size_of::<TraceReport>() == 20 + TRACE_BYTES);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `repr(C)` data of integers, no padding: any bit pattern is a valid value.
    unsafe impl aya::Pod for super::TraceConfig {}
}
