//! The AF_XDP hand-over: a client's message goes to dhcp6d's AF_XDP socket of its interface
//! and receive queue, past the kernel's stack.

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{HashMap, XskMap},
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use dhcp6_common::{
    counters::Verdict,
    relay::Vlans,
    xsk::{self, XSK_LINKS, XSK_QUEUES},
};

use crate::{count, job, read_u16, renew};

/// ifindex -> the first slot of the interface's AF_XDP sockets in [`XSKS`].
#[btf_map]
static XSK_SLOTS: HashMap<u32, u32, { XSK_LINKS as usize }> = HashMap::new();

#[btf_map]
static XSKS: XskMap<{ xsk::XSK_SLOTS as usize }> = XskMap::new();

/// The job: redirects the frame to dhcp6d's socket, or passes it with the verdict handed over.
#[xdp]
pub fn dhcp6_to_xsk(ctx: XdpContext) -> u32 {
    let Some((handover, frame)) = job::taken() else {
        count(Verdict::Dhcp6Passed as u32);
        return xdp_action::XDP_PASS;
    };
    let traced = handover.traced != 0;
    if to_af_xdp(&ctx, &frame) {
        count(Verdict::ToAfXdp as u32);
        crate::trace::report(&ctx, Verdict::ToAfXdp as u32, handover.verdict, traced);
        return xdp_action::XDP_REDIRECT;
    }
    count(handover.verdict);
    crate::trace::report(&ctx, handover.verdict, handover.verdict, traced);
    xdp_action::XDP_PASS
}

/// Hands a client's message to dhcp6d's AF_XDP socket of this interface and receive queue,
/// if it has one and the message is an on-link client's (untagged, from a link-local
/// address) that holds up as the kernel's stack would check it (lengths, UDP checksum; a
/// sender's checksum left to offload does not, and goes up the stack, which knows). Returns
/// whether it was redirected.
#[inline(always)]
fn to_af_xdp(ctx: &XdpContext, frame: &renew::Frame) -> bool {
    if frame.vlans != Vlans::NONE {
        return false;
    }
    // fe80::/10, the source address's first 10 bits.
    match read_u16(ctx, frame.ip + 8) {
        Some(first) if first & 0xffc0 == 0xfe80 => {}
        _ => return false,
    }
    let ifindex = ctx.ingress_ifindex() as u32;
    // SAFETY: a plain value read.
    let Some(first) = (unsafe { XSK_SLOTS.get(&ifindex) }).copied() else { return false };
    let queue = ctx.rx_queue_index();
    if queue >= XSK_QUEUES {
        return false;
    }
    let Some(s) = renew::SCRATCH_SPACE.get_ptr_mut(0) else { return false };
    // SAFETY: per-CPU scratch, this program instance's alone.
    let s = unsafe { &mut *s };
    if renew::load_message(ctx, frame, s, Verdict::Dhcp6Passed).is_err() {
        return false;
    }
    // No socket in the slot (dhcp6d gone): passed, as before it came.
    XSKS.redirect(first + queue, u64::from(xdp_action::XDP_PASS)).is_ok()
}
