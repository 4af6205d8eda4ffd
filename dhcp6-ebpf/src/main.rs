//! The dhcp6 XDP program.
//!
//! It classifies: Ethernet (up to two VLAN tags), IPv6, UDP to port 546 or 547, and counts
//! each DHCPv6 message by type and each frame by verdict in per-CPU maps. A Renew or Rebind
//! to port 547 whose bindings the pinned lease map holds is answered here ([`renew`]);
//! on an access interface of the relay, a client's message goes up as a Relay-Forward, and a
//! Relay-Reply from a server of ours comes back down to its client ([`relay`]); while dhcp6d
//! says it is overloaded, Solicits to the server are dropped here (counted), so that the
//! exchanges under way reach it; everything else is passed on untouched.
#![no_std]
#![no_main]
// BPF assembly, for the bounds the verifier must see (`renew::size`).
#![feature(asm_experimental_arch)]

mod renew;
mod relay;

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{HashMap, PerCpuArray, XskMap},
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use dhcp6_common::{
    counters::{Verdict, MSG_TYPE_SLOTS, SHED_COUNT, SHED_SHARE, SHED_SHARE_ONE, SHED_SLOTS, SHED_UNTIL},
    relay::{AccessKey, Vlans},
    wire::{frame::*, CLIENT_PORT, SERVER_PORT},
    xsk::{self, XSK_LINKS, XSK_QUEUES},
    MessageType,
};

#[btf_map]
static MSG_TYPE_COUNTS: PerCpuArray<u64, { MSG_TYPE_SLOTS as usize }> = PerCpuArray::new();

#[btf_map]
static VERDICT_COUNTS: PerCpuArray<u64, { Verdict::COUNT as usize }> = PerCpuArray::new();

#[btf_map]
static SHED: PerCpuArray<u64, { SHED_SLOTS as usize }> = PerCpuArray::new();

/// ifindex -> the first slot of the interface's AF_XDP sockets in [`XSKS`].
#[btf_map]
static XSK_SLOTS: HashMap<u32, u32, { XSK_LINKS as usize }> = HashMap::new();

#[btf_map]
static XSKS: XskMap<{ xsk::XSK_SLOTS as usize }> = XskMap::new();

#[xdp]
pub fn dhcp6_xdp(ctx: XdpContext) -> u32 {
    match classify(&ctx) {
        Ok((msg_type, frame)) => {
            bump(&MSG_TYPE_COUNTS, u32::from(msg_type));
            if frame.dst_port == SERVER_PORT {
                // A Relay-Reply is known by its source, a server of ours, whichever interface
                // it comes in on; a client's message by the access interface it comes in on.
                let relayed = if msg_type == MessageType::RelayRepl as u8 {
                    Some((relay::unwrap(&ctx, &frame.at), Verdict::RelayReplied))
                } else if let Some(link) = Some(ctx.ingress_ifindex() as u32)
                    .filter(|i| relay::may_be_access(*i))
                    .and_then(|ifindex| relay::link(&AccessKey { ifindex, vlans: frame.at.vlans }))
                {
                    if relay::takes_up(msg_type) {
                        Some((relay::forward(&ctx, &frame.at, link, msg_type), Verdict::RelayForwarded))
                    } else {
                        bump(&VERDICT_COUNTS, Verdict::RelayUnfit as u32);
                        return xdp_action::XDP_PASS;
                    }
                } else {
                    None
                };
                match relayed {
                    Some((Ok(action), done)) => {
                        bump(&VERDICT_COUNTS, done as u32);
                        return action;
                    }
                    // Changed past giving back: dropped.
                    Some((Err(Verdict::NoRoom), _)) => {
                        bump(&VERDICT_COUNTS, Verdict::NoRoom as u32);
                        return xdp_action::XDP_DROP;
                    }
                    Some((Err(verdict), _)) => {
                        bump(&VERDICT_COUNTS, verdict as u32);
                        return xdp_action::XDP_PASS;
                    }
                    None => {}
                }
            }
            if msg_type == MessageType::Solicit as u8 && frame.dst_port == SERVER_PORT && shedding() {
                bump(&SHED, SHED_COUNT);
                return xdp_action::XDP_DROP;
            }
            if frame.dst_port != SERVER_PORT {
                bump(&VERDICT_COUNTS, Verdict::Dhcp6Passed as u32);
                return xdp_action::XDP_PASS;
            }
            let renewal = msg_type == MessageType::Renew as u8 || msg_type == MessageType::Rebind as u8;
            let verdict = if renewal {
                match renew::answer(&ctx, &frame.at, msg_type) {
                    Ok(()) => {
                        bump(&VERDICT_COUNTS, Verdict::Replied as u32);
                        return xdp_action::XDP_TX;
                    }
                    Err(verdict) => verdict,
                }
            } else {
                Verdict::Dhcp6Passed
            };
            if to_af_xdp(&ctx, &frame) {
                bump(&VERDICT_COUNTS, Verdict::ToAfXdp as u32);
                return xdp_action::XDP_REDIRECT;
            }
            bump(&VERDICT_COUNTS, verdict as u32);
            xdp_action::XDP_PASS
        }
        Err(verdict) => {
            bump(&VERDICT_COUNTS, verdict as u32);
            xdp_action::XDP_PASS
        }
    }
}

/// A DHCPv6 frame: where its headers are and which port it is for.
struct Classified {
    at: renew::Frame,
    dst_port: u16,
}

/// Hands a client's message to dhcp6d's AF_XDP socket of this interface and receive queue,
/// if it has one and the message is an on-link client's (untagged, from a link-local
/// address) that holds up as the kernel's stack would check it (lengths, UDP checksum; a
/// sender's checksum left to offload does not, and goes up the stack, which knows). Returns
/// whether it was redirected.
#[inline(always)]
fn to_af_xdp(ctx: &XdpContext, frame: &Classified) -> bool {
    if frame.at.vlans != Vlans::NONE {
        return false;
    }
    // fe80::/10, the source address's first 10 bits.
    match read_u16(ctx, frame.at.ip + 8) {
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
    if renew::load_message(ctx, &frame.at, s, Verdict::Dhcp6Passed).is_err() {
        return false;
    }
    // No socket in the slot (dhcp6d gone): passed, as before it came.
    XSKS.redirect(first + queue, u64::from(xdp_action::XDP_PASS)).is_ok()
}

/// Whether this Solicit is shed: dhcp6d asked for a share of them to be, until a time not yet
/// come, and this one falls in the share.
#[inline(always)]
fn shedding() -> bool {
    let until = match SHED.get_ptr(SHED_UNTIL) {
        // SAFETY: a per-CPU slot, written whole by userspace.
        Some(until) => unsafe { *until },
        None => return false,
    };
    // SAFETY: a helper without arguments.
    if until == 0 || unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() } >= until {
        return false;
    }
    // SAFETY: as above.
    let share = SHED.get_ptr(SHED_SHARE).map_or(SHED_SHARE_ONE, |s| unsafe { *s });
    // SAFETY: a helper without arguments.
    share >= SHED_SHARE_ONE || u64::from(unsafe { aya_ebpf::helpers::bpf_get_prandom_u32() }) % SHED_SHARE_ONE < share
}

#[inline(always)]
fn bump<const N: usize>(map: &PerCpuArray<u64, N>, index: u32) {
    if let Some(slot) = map.get_ptr_mut(index) {
        // Per-CPU slot: no other program instance writes it concurrently.
        unsafe { *slot += 1 };
    }
}

/// A pointer to `len` bytes at `offset` into the frame, if the frame holds them.
#[inline(always)]
fn at(ctx: &XdpContext, offset: usize, len: usize) -> Option<*const u8> {
    let start = ctx.data() + offset;
    if start + len > ctx.data_end() {
        return None;
    }
    Some(start as *const u8)
}

#[inline(always)]
fn read_u16(ctx: &XdpContext, offset: usize) -> Option<u16> {
    let p = at(ctx, offset, 2)?;
    // In bounds by `at`; frames carry no alignment guarantee, hence the byte reads.
    Some(unsafe { u16::from_be_bytes([*p, *p.add(1)]) })
}

#[inline(always)]
fn read_u8(ctx: &XdpContext, offset: usize) -> Option<u8> {
    let p = at(ctx, offset, 1)?;
    Some(unsafe { *p })
}

/// The DHCPv6 message type of the frame, or the verdict that says why it is not one.
#[inline(always)]
fn classify(ctx: &XdpContext) -> Result<(u8, Classified), Verdict> {
    let mut offset = ETH_HEADER_LEN - 2;
    let mut ethertype = read_u16(ctx, offset).ok_or(Verdict::NotIpv6)?;
    let mut ids = [0u16; MAX_VLAN_TAGS];
    for id in &mut ids {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        *id = read_u16(ctx, offset + 2).ok_or(Verdict::NotIpv6)? & 0x0fff;
        offset += VLAN_TAG_LEN;
        ethertype = read_u16(ctx, offset).ok_or(Verdict::NotIpv6)?;
    }
    if ethertype != ETHERTYPE_IPV6 {
        return Err(Verdict::NotIpv6);
    }
    let ip = offset + 2;
    if at(ctx, ip, IPV6_HEADER_LEN).is_none() {
        return Err(Verdict::Truncated);
    }
    if read_u8(ctx, ip + 6).ok_or(Verdict::Truncated)? != IPPROTO_UDP {
        return Err(Verdict::NotUdp);
    }
    let udp = ip + IPV6_HEADER_LEN;
    let dst_port = read_u16(ctx, udp + 2).ok_or(Verdict::Truncated)?;
    if dst_port != SERVER_PORT && dst_port != CLIENT_PORT {
        return Err(Verdict::OtherPort);
    }
    let msg_type = read_u8(ctx, udp + UDP_HEADER_LEN).ok_or(Verdict::Truncated)?;
    let vlans = Vlans { outer: ids[0], inner: ids[1] };
    Ok((msg_type, Classified { at: renew::Frame { ip, udp, vlans }, dst_port }))
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
