//! The hand-over from the entry program to the job programs: the program array they are
//! tail-called through, and the per-CPU [`Handover`] with what the entry program found (a
//! tail call keeps the CPU: the job reads what the entry program wrote for this frame).

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{PerCpuArray, ProgramArray},
    macros::btf_map,
    programs::XdpContext,
};
use dhcp6_common::{
    jobs::{Handover, SLOTS},
    wire::frame::{ETH_HEADER_LEN, IPV6_HEADER_LEN, MAX_VLAN_TAGS, VLAN_TAG_LEN},
};

use crate::renew::Frame;

#[btf_map]
static JOBS: ProgramArray<{ SLOTS as usize }> = ProgramArray::new();

#[btf_map]
static HANDOVER: PerCpuArray<Handover, 1> = PerCpuArray::new();

/// Hands the frame to job `job` with `handover`. Returns only if the job could not be called
/// (no program in its slot, which dhcp6d fills before it attaches XDP): the frame is passed
/// then, its verdict counted.
#[inline(always)]
pub fn hand_over(ctx: &XdpContext, job: u32, handover: Handover) -> u32 {
    if let Some(h) = HANDOVER.get_ptr_mut(0) {
        // SAFETY: the per-CPU slot of this program run.
        unsafe { *h = handover };
        // SAFETY: on success the job program runs instead of the rest of this one.
        unsafe { JOBS.tail_call(ctx, job) };
    }
    crate::count(handover.verdict);
    crate::trace::report(ctx, handover.verdict, handover.verdict, handover.traced != 0);
    xdp_action::XDP_PASS
}

/// What the entry program handed over for this frame, and where the frame's headers are.
#[inline(always)]
pub fn taken() -> Option<(Handover, Frame)> {
    let h = HANDOVER.get_ptr(0)?;
    // SAFETY: the per-CPU slot the entry program wrote for this frame.
    let h = unsafe { *h };
    // Bounded here for the verifier: the offsets index the frame.
    let tags = (h.tags as usize).min(MAX_VLAN_TAGS);
    let ip = ETH_HEADER_LEN + VLAN_TAG_LEN * tags;
    // Opaque to the compiler: knowing that `udp` follows `ip`, it would drop a bounds check of
    // one that the verifier, which does not know, needs.
    let udp = core::hint::black_box(ip + IPV6_HEADER_LEN);
    Some((h, Frame { ip, udp, vlans: h.vlans }))
}
