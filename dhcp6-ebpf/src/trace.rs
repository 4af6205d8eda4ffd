//! The live trace ([`dhcp6_common::trace`]): whether a frame is traced, and its report with
//! what XDP did to it. While nobody traces, [`wanted`] is one array lookup.

use aya_ebpf::{
    btf_maps::{Array, HashMap, RingBuf},
    helpers::generated::bpf_xdp_load_bytes,
    macros::btf_map,
    programs::XdpContext,
    EbpfContext,
};
use dhcp6_common::trace::{self, TraceConfig, TraceMac, TraceReport, TRACE_BYTES, TRACE_RING_BYTES};

#[btf_map]
static TRACE_CONFIG: Array<TraceConfig, 1> = Array::new();

#[btf_map]
static TRACE_MACS: HashMap<TraceMac, u32, { trace::TRACE_MACS as usize }> = HashMap::new();

#[btf_map]
static TRACE_RING: RingBuf<TraceReport, { TRACE_RING_BYTES as usize }> = RingBuf::new();

/// Whether the frame is traced: someone traces every client, or the frame's destination or
/// source MAC is one traced (a client's message comes from its MAC, an answer goes to it).
#[inline(always)]
pub fn wanted(ctx: &XdpContext) -> bool {
    let Some(config) = TRACE_CONFIG.get_ptr(0) else { return false };
    // SAFETY: the map's one entry, written whole by userspace.
    let config = unsafe { *config };
    if config.on == 0 {
        return false;
    }
    if config.all != 0 {
        return true;
    }
    let Some(p) = crate::at(ctx, 0, 12) else { return false };
    let mut mac: TraceMac = [0; 8];
    for offset in [0, 6] {
        for (i, byte) in mac.iter_mut().take(6).enumerate() {
            // SAFETY: within the 12 bytes `at` checked.
            *byte = unsafe { *p.add(offset + i) };
        }
        // SAFETY: a lookup; the value is not read.
        if unsafe { TRACE_MACS.get(&mac) }.is_some() {
            return true;
        }
    }
    false
}

/// Reports the frame as it is now with `verdict` (and `why`, see [`TraceReport::why`]), if it
/// is `traced` (as the entry program found; a Relay-Reply's client shows only once unwrapped,
/// so the relay asks [`wanted`] again). A full ring loses the report, not the frame.
#[inline(always)]
pub fn report(ctx: &XdpContext, verdict: u32, why: u32, traced: bool) {
    if !traced {
        return;
    }
    let len = ctx.data_end() - ctx.data();
    let Ok(captured) = crate::renew::size(len.min(TRACE_BYTES), TRACE_BYTES) else { return };
    let Some(mut entry) = TRACE_RING.reserve(0) else { return };
    let record = entry.as_mut_ptr();
    // SAFETY: `record` is the reserved record; at most TRACE_BYTES bytes into its frame.
    let r = unsafe {
        (*record).verdict = verdict;
        (*record).why = why;
        (*record).ifindex = ctx.ingress_ifindex() as u32;
        (*record).len = len as u32;
        (*record).captured = captured;
        bpf_xdp_load_bytes(ctx.as_ptr().cast(), 0, (*record).frame.as_mut_ptr().cast(), captured)
    };
    if r < 0 {
        entry.discard(0);
        return;
    }
    entry.submit(0);
}
