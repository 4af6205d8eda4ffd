//! The dhcp6 XDP programs.
//!
//! One entry program sees every frame ([`classify`]): it classifies it (Ethernet, up to two
//! VLAN tags, IPv6, UDP to port 546 or 547), counts each DHCPv6 message by type and each frame
//! by verdict in per-CPU maps, drops Solicits while dhcp6d says it is overloaded ([`shed`]),
//! cuts the messages of clients over their rate ([`storm`]), and hands each job to a program of its own through a tail call ([`job`]): a Renew or Rebind
//! whose binding the pinned lease map holds is answered ([`renew`]); on an access interface of
//! the relay, a client's message goes up as a Relay-Forward, and a Relay-Reply from a server of
//! ours comes back down to its client ([`relay`]); an on-link client's message goes to dhcp6d's
//! AF_XDP socket ([`xsk`]). Everything else is passed on untouched.
//!
//! The kernel verifies each program on its own. As one program, the verifier walked every job
//! once per state the paths before it left (three VLAN offsets, two ports, the relay's and the
//! renewal's failures falling through to the AF_XDP hand-over): over 800,000 instructions,
//! seconds at every start.
#![no_std]
#![no_main]
// BPF assembly, for the bounds the verifier must see (`renew::size`).
#![feature(asm_experimental_arch)]

mod classify;
mod job;
mod relay;
mod renew;
mod shed;
mod storm;
mod trace;
mod xsk;

use aya_ebpf::{btf_maps::PerCpuArray, macros::btf_map, programs::XdpContext};
use dhcp6_common::counters::{Verdict, MSG_TYPE_SLOTS};

#[btf_map]
static MSG_TYPE_COUNTS: PerCpuArray<u64, { MSG_TYPE_SLOTS as usize }> = PerCpuArray::new();

#[btf_map]
static VERDICT_COUNTS: PerCpuArray<u64, { Verdict::COUNT as usize }> = PerCpuArray::new();

/// Counts a frame's verdict (by its index, as the hand-over carries it).
#[inline(always)]
fn count(verdict: u32) {
    bump(&VERDICT_COUNTS, verdict);
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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
