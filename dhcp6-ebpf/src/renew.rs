//! Renew and Rebind answered in XDP from the pinned lease map.
//!
//! The request is copied into a per-CPU scratch buffer (so that parsing reads a map value at
//! masked offsets, which the verifier follows, instead of packet pointers), checked against
//! what the userspace server would accept and answer the same way, and the Reply is written
//! over it: Ethernet and IPv6 addresses swapped, ports 547 -> 546, the client's transaction ID,
//! the Client ID echoed, then option bytes userspace encoded (Server ID, one IA per binding,
//! DNS servers and domain list when the ORO asks). The UDP checksum is the sum of the
//! pseudo-header, the header words written here and the pieces' sums userspace computed.
//! Anything the fast path does not take is passed untouched.

use aya_ebpf::{
    bindings::{bpf_fib_lookup, xdp_action},
    btf_maps::{HashMap, PerCpuArray},
    helpers::generated::{
        bpf_csum_diff, bpf_ktime_get_coarse_ns, bpf_xdp_adjust_tail, bpf_xdp_load_bytes, bpf_xdp_store_bytes,
    },
    macros::{btf_map, xdp},
    programs::XdpContext,
    EbpfContext,
};
use dhcp6_common::{
    counters::Verdict,
    jobs,
    trace::TRACE_FAST_PATH,
    renewal::{
        checksum, LeaseEntry, LeaseKey, LinkEntry, ENTRY_PD_EXCLUDE, ENTRY_RENEW_ONLY, IA_MAX, IA_TYPE_NA, IA_TYPE_PD, KEY_DUID_MAX,
        LEASE_MAP_ENTRIES,
        LINK_MAP_ENTRIES, MAX_IAS, OPTION_MAX, REQUEST_MAX, SCRATCH, SERVER_ID_MAX,
    },
    relay::{ClientMacKey, InterfaceIdKey},
    wire::{frame::*, option_code, CLIENT_PORT, SERVER_PORT},
    MessageType,
};

/// Lease entries are allocated as they are inserted: the map costs what it holds.
const NO_PREALLOC: usize = 1;

#[btf_map]
static LEASES: HashMap<LeaseKey, LeaseEntry, { LEASE_MAP_ENTRIES as usize }, NO_PREALLOC> = HashMap::new();

#[btf_map]
static LINKS: HashMap<u32, LinkEntry, { LINK_MAP_ENTRIES as usize }> = HashMap::new();

/// Per-CPU working space (the BPF stack is 512 bytes): the request, the lease map key, the
/// IPv6 headers.
#[repr(C, align(8))]
pub struct Scratch {
    pub req: [u8; SCRATCH],
    key: LeaseKey,
    pub ip_in: [u8; 40],
    pub ip_out: [u8; 40],
    /// What is written into the frame in one piece: the Reply's IPv6 and UDP headers and
    /// message header; the relay's IPv6 and UDP headers and relay head.
    pub out: [u8; 256],
    pub parsed: Parsed,
    /// The checksum sum of the message [`load_message`] loaded.
    pub payload_sum: u64,
    /// The checksum sums of its IPv6 source and destination addresses (folded).
    pub src_sum: u64,
    pub dst_sum: u64,
    /// The relay's header and options, being filled in (`crate::relay`).
    pub head: [u8; 256],
    pub fib: bpf_fib_lookup,
    /// The client MAC map's key and value, the Interface-ID map's key (in map memory: the BPF
    /// stack is small).
    pub mac_key: ClientMacKey,
    pub mac: [u8; 8],
    pub interface_id: InterfaceIdKey,
}

// Word copies and sums read these at 8-byte alignment.
const _: () = assert!(core::mem::offset_of!(Scratch, ip_in) % 8 == 0 && core::mem::offset_of!(Scratch, out) % 8 == 0);

#[btf_map]
pub static SCRATCH_SPACE: PerCpuArray<Scratch, 1> = PerCpuArray::new();

/// Most top-level options in a request the fast path answers.
const MAX_OPTIONS: usize = 12;
/// Mask that keeps a request offset inside the scratch buffer, with room for a 4-byte read.
pub const REQ_MASK: usize = REQUEST_MAX - 1;
/// Most codes looked at in an ORO.
const MAX_ORO_CODES: usize = 32;
const IAADDR_LEN: usize = 24;
const IAPREFIX_LEN: usize = 25;
/// The hop limit of Replies, the kernel's default for unicast.
const HOP_LIMIT: u8 = 64;

/// Where the headers of a classified frame are.
pub struct Frame {
    pub ip: usize,
    pub udp: usize,
    /// The VLAN IDs of its tags.
    pub vlans: dhcp6_common::relay::Vlans,
}

/// Where the options of the request are (offsets into the UDP payload; lengths 0: absent).
#[repr(C)]
pub struct Parsed {
    client_id_off: u32,
    client_id_len: u32,
    server_id_off: u32,
    server_id_len: u32,
    oro_off: u32,
    oro_len: u32,
    ia_count: u32,
    ia_off: [u32; MAX_IAS],
    ia_len: [u32; MAX_IAS],
    ia_type: [u32; MAX_IAS],
    want_dns: u32,
    want_domains: u32,
    want_pd_exclude: u32,
    /// Where a loop is, passed through map memory by [`launder`].
    cursor: u64,
    /// Where the relay path found the options it reads (offsets into the payload).
    pub found_a: u32,
    pub found_a_len: u32,
    pub found_b: u32,
    pub found_b_len: u32,
}

impl Parsed {
    /// Nothing found yet. (Field by field: assigning a whole struct is a memset call.)
    #[inline(always)]
    fn reset(&mut self) {
        for f in [&mut self.client_id_len, &mut self.server_id_len, &mut self.oro_len, &mut self.ia_count] {
            set(f, 0);
        }
    }
}

#[inline(always)]
pub fn byte(s: &Scratch, offset: usize) -> u8 {
    s.req[offset & REQ_MASK]
}

#[inline(always)]
pub fn be16(s: &Scratch, offset: usize) -> usize {
    (usize::from(byte(s, offset)) << 8) | usize::from(byte(s, offset + 1))
}

#[inline(always)]
pub fn be32(s: &Scratch, offset: usize) -> u32 {
    u32::from_be_bytes([byte(s, offset), byte(s, offset + 1), byte(s, offset + 2), byte(s, offset + 3)])
}

/// Sum of a piece placed at `offset` in the UDP payload.
#[inline(always)]
pub fn placed(sum: u32, offset: usize) -> u64 {
    u64::from(if offset & 1 == 1 { checksum::at_odd_offset(sum) } else { sum })
}

/// Folds a 64-bit sum of 16-bit words (added without carries, far from overflowing) to 16 bits.
#[inline(always)]
pub fn fold64(mut s: u64) -> u16 {
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The checksum sum (folded, as big-endian words) of the 16 bytes at `p`, 4-byte aligned:
/// four word loads. The ones' complement sum of little-endian words is the byte-swapped sum
/// of big-endian ones (RFC 1071).
#[inline(always)]
pub fn sum16_aligned(p: *const u8) -> u64 {
    let w = p as *const u32;
    // SAFETY: the callers pass 16 readable bytes at a 4-byte aligned address.
    let le = unsafe { u64::from(*w) + u64::from(*w.add(1)) + u64::from(*w.add(2)) + u64::from(*w.add(3)) };
    u64::from(fold64(le).swap_bytes())
}

/// Copies 16 bytes from `from` to `to`, both 8-byte aligned: two word copies.
#[inline(always)]
pub fn copy16_aligned(to: *mut u8, from: *const u8) {
    let (t, f) = (to as *mut u64, from as *const u64);
    // SAFETY: the callers pass 16 bytes at 8-byte aligned addresses, in bounds.
    unsafe {
        *t = *f;
        *t.add(1) = *f.add(1);
    }
}

/// The 8 bytes at `p` (any alignment) as one word load, in memory order. (LLVM splits an
/// unaligned read into byte loads; the kernel takes unaligned map value loads on the
/// architectures XDP runs on.)
#[inline(always)]
pub fn load8(p: *const u8) -> u64 {
    let out: u64;
    // SAFETY: one 8-byte load from `p`, which the callers point at 8 readable bytes.
    unsafe {
        core::arch::asm!(
            "{out} = *(u64 *)({p} + 0)",
            p = in(reg) p,
            out = lateout(reg) out,
            options(readonly, nostack, preserves_flags),
        )
    };
    out
}

/// Writes `v` as the 8 bytes at `p` (any alignment), one word store.
#[inline(always)]
pub fn store8(p: *mut u8, v: u64) {
    // SAFETY: one 8-byte store to `p`, which the callers point at 8 writable bytes of map memory.
    unsafe {
        core::arch::asm!(
            "*(u64 *)({p} + 0) = {v}",
            p = in(reg) p,
            v = in(reg) v,
            options(nostack, preserves_flags),
        )
    };
}

/// A mask of the first `n` bytes of a word loaded with [`load8`] or [`req8`] (all of them
/// from 8 on): what keeps a piece's last word from reaching past its end.
#[inline(always)]
pub fn first_bytes(n: usize) -> u64 {
    if n >= 8 {
        u64::MAX
    } else {
        (1u64 << (n * 8)) - 1
    }
}

/// The 8 bytes of the request at `offset` (masked into the scratch buffer), one word load.
#[inline(always)]
pub fn req8(s: &Scratch, offset: usize) -> u64 {
    // The mask is applied here, on the register the load uses, so that the verifier sees the
    // bound.
    let base = s.req.as_ptr();
    let out: u64;
    // SAFETY: `offset & REQ_MASK` + 8 <= REQUEST_MAX + 7 < SCRATCH: inside `req`.
    unsafe {
        core::arch::asm!(
            "{off} &= {mask}",
            "{p} += {off}",
            "{out} = *(u64 *)({p} + 0)",
            off = inout(reg) offset => _,
            p = inout(reg) base => _,
            out = lateout(reg) out,
            mask = const REQ_MASK,
            options(readonly, nostack, preserves_flags),
        )
    };
    out
}

#[inline(always)]
pub fn read_frame<const N: usize>(ctx: &XdpContext, offset: usize) -> Option<[u8; N]> {
    let start = ctx.data() + offset;
    if start + N > ctx.data_end() {
        return None;
    }
    let mut out = [0u8; N];
    let p = start as *const u8;
    let mut i = 0;
    while i < N {
        // In bounds by the check above.
        out[i] = unsafe { *p.add(i) };
        i += 1;
    }
    Some(out)
}

/// The sum of big-endian 16-bit words, without carries (fold it with [`fold64`]).
#[inline(always)]
pub fn sum_words(bytes: &[u8]) -> u64 {
    let mut s = 0u64;
    let mut i = 0;
    while i + 1 < bytes.len() {
        s += (u64::from(bytes[i]) << 8) | u64::from(bytes[i + 1]);
        i += 2;
    }
    s
}

/// `len` as a helper's size argument, between 1 and `max`, in a form the verifier follows.
/// Written as Rust, the zero check and the bound check are merged by LLVM into one compare on
/// another register, which leaves the verifier a size that may be zero; the bound is checked
/// here in BPF assembly, on the very register the helper gets.
#[inline(always)]
pub fn size(len: usize, max: usize) -> Result<u32, Verdict> {
    let mut out = len as u64;
    // SAFETY: two register-only instructions: out = 0 unless out <= max.
    unsafe {
        core::arch::asm!(
            "if {out} <= {max} goto +1",
            "{out} = 0",
            out = inout(reg) out,
            max = in(reg) max as u64,
            options(nomem, nostack),
        )
    };
    if out == 0 {
        return Err(Verdict::Unfit);
    }
    Ok(out as u32)
}

/// `v` as the verifier will see it: an unknown number. Passed through map memory (volatile,
/// so that LLVM keeps the round trip), a loop's offset forgets the range each path through the
/// loop's body gave it; the loop's own checks bound it again, the same for every path, so that
/// the verifier's states meet instead of multiplying with each iteration.
#[inline(always)]
pub fn launder(p: &mut Parsed, v: usize) -> usize {
    // SAFETY: a plain field of a live map value.
    unsafe {
        core::ptr::write_volatile(&mut p.cursor, v as u64);
        core::ptr::read_volatile(&p.cursor) as usize
    }
}

/// Most items looked at in a User Class or Vendor Class option.
const MAX_ITEMS: usize = 4;

/// Checks that `[at, end)` of the request is a list of 16-bit-length-prefixed items.
#[inline(always)]
fn opaque_list(s: &mut Scratch, mut at: usize, end: usize) -> Result<(), Verdict> {
    for _ in 0..MAX_ITEMS {
        if at >= end {
            break;
        }
        if at + 2 > end {
            return Err(Verdict::Unfit);
        }
        let next = at + 2 + be16(s, at);
        at = launder(&mut s.parsed, next);
    }
    if at != end {
        return Err(Verdict::Unfit);
    }
    Ok(())
}

/// Reads a parse result from map memory as the verifier must see it: unknown (volatile, so
/// that LLVM does not forward the value it stored from a register).
#[inline(always)]
pub fn get(field: &u32) -> u32 {
    // SAFETY: a plain field of a live map value.
    unsafe { core::ptr::read_volatile(field) }
}

/// Writes a parse result to map memory (volatile: see [`get`]).
#[inline(always)]
pub fn set(field: &mut u32, v: u32) {
    // SAFETY: a plain field of a live map value.
    unsafe { core::ptr::write_volatile(field, v) }
}

/// Zeroes `words` 8-byte words at `p`, one store each (a memset would loop over bytes).
#[inline(always)]
pub fn zero_words(p: *mut u64, words: usize) {
    for i in 0..words {
        // SAFETY: the callers pass an 8-aligned buffer of at least `words` words.
        // Volatile: LLVM would turn a plain zeroing loop into a call to memset, which the BPF
        // target compiles as a byte loop.
        unsafe { core::ptr::write_volatile(p.add(i), 0) };
    }
}

#[inline(always)]
pub fn store(ctx: &XdpContext, offset: usize, from: *const u8, len: u32) -> Result<(), Verdict> {
    // SAFETY: `from` points at `len` readable bytes (a stack buffer or a map value).
    let r = unsafe { bpf_xdp_store_bytes(ctx.as_ptr().cast(), offset as u32, from as *mut _, len) };
    if r < 0 {
        Err(Verdict::NoRoom)
    } else {
        Ok(())
    }
}

/// Writes a UDP header from port 547 to `dst_port`, of `len` bytes with checksum `csum`, into
/// `s.out` after the IPv6 header.
#[inline(always)]
pub fn put_udp_header(s: &mut Scratch, dst_port: u16, len: usize, csum: u16) {
    let at = IPV6_HEADER_LEN;
    s.out[at] = (SERVER_PORT >> 8) as u8;
    s.out[at + 1] = SERVER_PORT as u8;
    s.out[at + 2] = (dst_port >> 8) as u8;
    s.out[at + 3] = dst_port as u8;
    s.out[at + 4] = (len >> 8) as u8;
    s.out[at + 5] = len as u8;
    s.out[at + 6] = (csum >> 8) as u8;
    s.out[at + 7] = csum as u8;
}

/// Loads the UDP payload of the frame into `s.req` and `s.ip_in` with the IPv6 header, after
/// checking what the kernel would before a socket saw it: lengths that agree (Ethernet padding
/// may follow), a payload of 4 to [`REQUEST_MAX`] - 4 bytes, a checksum that holds. Returns
/// the payload's length and its checksum sum (placed at an even offset).
#[inline(always)]
pub fn load_message(ctx: &XdpContext, frame: &Frame, s: &mut Scratch, unfit: Verdict) -> Result<usize, Verdict> {
    let udp_hdr: [u8; 8] = read_frame(ctx, frame.udp).ok_or(Verdict::Truncated)?;
    let udp_len = (usize::from(udp_hdr[4]) << 8) | usize::from(udp_hdr[5]);
    // The IPv6 header, in five word loads from the frame.
    let ip = ctx.data() + frame.ip;
    if ip + IPV6_HEADER_LEN > ctx.data_end() {
        return Err(Verdict::Truncated);
    }
    let to = s.ip_in.as_mut_ptr() as *mut u64;
    for w in 0..IPV6_HEADER_LEN / 8 {
        // SAFETY: the 40 bytes are in the frame (checked above); `ip_in` is 8-byte aligned.
        unsafe { *to.add(w) = load8((ip + 8 * w) as *const u8) };
    }
    let ip_payload = (usize::from(s.ip_in[4]) << 8) | usize::from(s.ip_in[5]);
    if ip_payload != udp_len || frame.udp + udp_len > ctx.data_end() - ctx.data() {
        return Err(unfit);
    }
    let n = udp_len.wrapping_sub(UDP_HEADER_LEN);
    if !(4..=REQUEST_MAX - 4).contains(&n) {
        return Err(unfit);
    }
    let load_len = size(n, REQUEST_MAX - 4).map_err(|_| unfit)?;
    // SAFETY: `req` holds SCRATCH >= REQUEST_MAX bytes.
    let r = unsafe {
        bpf_xdp_load_bytes(
            ctx.as_ptr().cast(),
            (frame.udp + UDP_HEADER_LEN) as u32,
            s.req.as_mut_ptr().cast(),
            load_len,
        )
    };
    if r < 0 {
        return Err(Verdict::Truncated);
    }

    // The checksum must hold, as the kernel would check it before userspace saw the message.
    let payload_sum = sum_padded(s, 0, n).ok_or(unfit)?;
    s.src_sum = sum16_aligned(s.ip_in[8..].as_ptr());
    s.dst_sum = sum16_aligned(s.ip_in[24..].as_ptr());
    let verify = s.src_sum + s.dst_sum + udp_len as u64 + u64::from(IPPROTO_UDP) + sum_words(&udp_hdr) + payload_sum;
    if udp_hdr[6] == 0 && udp_hdr[7] == 0 || fold64(verify) != 0xffff {
        return Err(unfit);
    }
    s.payload_sum = payload_sum;
    Ok(n)
}

/// The checksum sum of `s.req[at..at + len]` (as if placed at an even offset); the up to three
/// bytes past it are zeroed to make whole words. None if the kernel refuses the sum.
#[inline(always)]
pub fn sum_padded(s: &mut Scratch, at: usize, len: usize) -> Option<u64> {
    let end = at + len;
    s.req[end & REQ_MASK] = 0;
    s.req[(end + 1) & REQ_MASK] = 0;
    s.req[(end + 2) & REQ_MASK] = 0;
    let padded = ((len + 3) & !3) & (REQUEST_MAX - 4);
    // SAFETY: `at` masked below REQUEST_MAX and `padded` < REQUEST_MAX: inside the SCRATCH
    // (2 * REQUEST_MAX) bytes of `req`.
    let raw = unsafe {
        bpf_csum_diff(core::ptr::null_mut(), 0, s.req.as_mut_ptr().add(at & REQ_MASK).cast(), padded as u32, 0)
    };
    if raw < 0 {
        return None;
    }
    // csum_diff sums little-endian words: swapped, it is the big-endian sum.
    Some(u64::from(checksum::fold(raw as u32).swap_bytes()))
}

/// The binding that answers IA `k` of the request, checked: on this interface, within its
/// deadline, and holding exactly what the IA names.
#[inline(always)]
fn binding(s: &mut Scratch, k: usize, ifindex: u32, now: u64, rebind: bool) -> Result<*mut LeaseEntry, Verdict> {
    let (ia_offset, ia_len, ia_type) =
        (get(&s.parsed.ia_off[k]) as usize, get(&s.parsed.ia_len[k]) as usize, get(&s.parsed.ia_type[k]) as u8);
    s.key.iaid = be32(s, ia_offset + 4);
    s.key.ia_type = ia_type;
    let entry = LEASES.get_ptr_mut(&s.key).ok_or(Verdict::NoLease)?;
    // SAFETY: a live map value; userspace replaces entries whole.
    let e = unsafe { &*entry };
    if e.ifindex != ifindex {
        return Err(Verdict::NoLease);
    }
    if now > e.deadline_ns {
        return Err(Verdict::PastDeadline);
    }
    if rebind && e.flags & ENTRY_RENEW_ONLY != 0 {
        return Err(Verdict::RenewOnly);
    }
    if usize::from(e.ia_len) > IA_MAX || e.ia_len == 0 {
        return Err(Verdict::Unfit);
    }
    // The IA's sub-options: none, or addresses (prefixes) that are the binding's.
    let end = ia_offset + 4 + ia_len;
    let mut sub = ia_offset + 16;
    for _ in 0..2 {
        if sub >= end {
            break;
        }
        if sub + 4 > end {
            return Err(Verdict::Unfit);
        }
        let code = be16(s, sub) as u16;
        let len = be16(s, sub + 2);
        if code == option_code::PD_EXCLUDE && ia_type == IA_TYPE_PD {
            // dhcpcd sends one, empty, beside its IAPREFIX: a hint no answer depends on (the
            // pool says what is excluded, RFC 6603 section 4.1).
            sub = launder(&mut s.parsed, sub + 4 + len);
            continue;
        }
        let at = match (code, ia_type) {
            (option_code::IAADDR, IA_TYPE_NA) if len == IAADDR_LEN && e.prefix_len == 128 => sub + 4,
            (option_code::IAPREFIX, IA_TYPE_PD) if len == IAPREFIX_LEN && byte(s, sub + 12) == e.prefix_len => sub + 13,
            _ => return Err(Verdict::Unfit),
        };
        let ours = e.resource.as_ptr();
        if req8(s, at) != load8(ours) || req8(s, at + 8) != load8(ours.wrapping_add(8)) {
            return Err(Verdict::Unfit);
        }
        sub = launder(&mut s.parsed, sub + 4 + len);
    }
    if sub != end {
        return Err(Verdict::Unfit);
    }
    Ok(entry)
}

/// The job: answers the Renew or Rebind, or hands it to the AF_XDP job with the reason why
/// not (counted if that does not take it either).
#[xdp]
pub fn dhcp6_renew(ctx: XdpContext) -> u32 {
    let Some((mut handover, frame)) = crate::job::taken() else {
        crate::count(Verdict::Dhcp6Passed as u32);
        return xdp_action::XDP_PASS;
    };
    crate::trace::report(&ctx, TRACE_FAST_PATH, TRACE_FAST_PATH, handover.traced != 0);
    match answer(&ctx, &frame, handover.msg_type as u8) {
        Ok(()) => {
            crate::count(Verdict::Replied as u32);
            crate::trace::report(&ctx, Verdict::Replied as u32, Verdict::Replied as u32, handover.traced != 0);
            xdp_action::XDP_TX
        }
        Err(verdict) => {
            handover.verdict = verdict as u32;
            crate::job::hand_over(&ctx, jobs::TO_XSK, handover)
        }
    }
}

/// Answers a Renew or Rebind in place, or says why not. (A BPF subprogram of its own, as the
/// relay's paths are: the stacks of the paths are not added up.)
#[inline(never)]
pub fn answer(ctx: &XdpContext, frame: &Frame, msg_type: u8) -> Result<(), Verdict> {
    let ifindex = ctx.ingress_ifindex() as u32;
    // SAFETY: the link map's entries are written whole by userspace; a read racing an update
    // sees an entry that userspace wrote at some point, which is all the fast path relies on.
    let link: &LinkEntry = unsafe { LINKS.get(ifindex) }.ok_or(Verdict::NoLease)?;
    let scratch = SCRATCH_SPACE.get_ptr_mut(0).ok_or(Verdict::Unfit)?;
    // SAFETY: a per-CPU slot, used by one program run at a time.
    let s: &mut Scratch = unsafe { &mut *scratch };

    let n = load_message(ctx, frame, s, Verdict::Unfit)?;

    // Top-level options: which the request has, and that the server would take it whole.
    // What the parse finds goes to the scratch map value rather than the stack: the verifier
    // does not track map memory, so the paths through the loop meet again as one state instead
    // of multiplying through the rest of the program.
    let p = &mut s.parsed;
    p.reset();
    let mut off = 4usize;
    for _ in 0..MAX_OPTIONS {
        if off >= n {
            break;
        }
        if off + 4 > n {
            // One to three zero bytes after the last option: dhcpcd 9's padding after an
            // empty Prefix Exclude hint, which the engine reads past too.
            if byte(s, off) != 0 || (off + 1 < n && byte(s, off + 1) != 0) || (off + 2 < n && byte(s, off + 2) != 0) {
                return Err(Verdict::Unfit);
            }
            off = n;
            break;
        }
        let code = be16(s, off) as u16;
        let len = be16(s, off + 2);
        if off + 4 + len > n {
            return Err(Verdict::Unfit);
        }
        let ia_type = u32::from(s.req[(off + 1) & REQ_MASK]);
        let p = &mut s.parsed;
        match code {
            // A DUID longer than the map's keys: never in the map.
            option_code::CLIENTID if len > KEY_DUID_MAX => return Err(Verdict::NoLease),
            option_code::CLIENTID if get(&p.client_id_len) == 0 && len > 0 => {
                set(&mut p.client_id_off, (off + 4) as u32);
                set(&mut p.client_id_len, len as u32);
            }
            option_code::SERVERID if get(&p.server_id_len) == 0 && len > 0 && len + 4 <= SERVER_ID_MAX => {
                set(&mut p.server_id_off, (off + 4) as u32);
                set(&mut p.server_id_len, len as u32);
            }
            option_code::IA_NA | option_code::IA_PD if (get(&p.ia_count) as usize) < MAX_IAS && len >= 12 => {
                let k = get(&p.ia_count) as usize & (MAX_IAS - 1);
                set(&mut p.ia_off[k], off as u32);
                set(&mut p.ia_len[k], len as u32);
                // The code's low byte is the IA type (IA_TYPE_NA, IA_TYPE_PD).
                set(&mut p.ia_type[k], ia_type);
                set(&mut p.ia_count, k as u32 + 1);
            }
            option_code::ORO if get(&p.oro_len) == 0 && len % 2 == 0 => {
                set(&mut p.oro_off, (off + 4) as u32);
                set(&mut p.oro_len, len as u32);
            }
            option_code::ELAPSED_TIME if len == 2 => {}
            // The server takes these without looking, but drops the request if their item
            // lists do not parse: check them as its codec does.
            option_code::USER_CLASS => opaque_list(s, off + 4, off + 4 + len)?,
            option_code::VENDOR_CLASS if len >= 4 => opaque_list(s, off + 8, off + 4 + len)?,
            option_code::RECONF_ACCEPT if len == 0 => {}
            _ => return Err(Verdict::Unfit),
        }
        off = launder(&mut s.parsed, off + 4 + len);
    }
    let p = &s.parsed;
    let client_id = (get(&p.client_id_off) as usize, get(&p.client_id_len) as usize);
    let server_id = (get(&p.server_id_off) as usize, get(&p.server_id_len) as usize);
    let oro = (get(&p.oro_off) as usize, get(&p.oro_len) as usize);
    let ia_count = get(&p.ia_count) as usize;
    if off != n || client_id.1 == 0 || ia_count == 0 || ia_count > MAX_IAS {
        return Err(Verdict::Unfit);
    }

    // RFC 9915 section 16: a Renew names this server, a Rebind names none.
    if msg_type == MessageType::Renew as u8 {
        if server_id.1 == 0 || usize::from(link.server_id_len) != server_id.1 + 4 {
            return Err(Verdict::Unfit);
        }
        // The option (code, length, DUID) against ours, in words read from the request (the
        // last one masked to the option's end).
        let (at, len) = (server_id.0 - 4, server_id.1 + 4);
        let ours = link.server_id.as_ptr();
        for w in 0..SERVER_ID_MAX / 8 {
            let i = 8 * w;
            if i >= len {
                break;
            }
            let keep = first_bytes(len - i);
            if req8(s, at + i) & keep != load8(ours.wrapping_add(i)) & keep {
                return Err(Verdict::Unfit);
            }
        }
    } else if server_id.1 != 0 {
        return Err(Verdict::Unfit);
    }

    // The binding of each IA, whose addresses must be exactly the one the map holds.
    // The map key's DUID, from the request in words, zero past its length (every byte of the
    // key is written: the IAID and type per binding below).
    let duid_len = client_id.1;
    s.key.duid_len = duid_len as u8;
    let key_duid = s.key.duid.as_mut_ptr();
    for w in 0..KEY_DUID_MAX / 8 {
        let i = 8 * w;
        let word = if i >= duid_len { 0 } else { req8(s, client_id.0 + i) & first_bytes(duid_len - i) };
        store8(key_duid.wrapping_add(i), word);
    }
    const TAIL: usize = KEY_DUID_MAX / 8 * 8;
    for i in TAIL..KEY_DUID_MAX {
        s.key.duid[i] = if i < duid_len { byte(s, client_id.0 + i) } else { 0 };
    }
    // Coarse (a cached clock, not a clocksource read): the deadlines are in seconds.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    // Each IA's binding; written out per IA, as the verifier does not follow map pointers
    // kept in a stack array indexed by a variable.
    let rebind = msg_type == MessageType::Rebind as u8;
    let e0 = binding(s, 0, ifindex, now, rebind)?;
    let e1 = if ia_count > 1 { binding(s, 1, ifindex, now, rebind)? } else { core::ptr::null_mut() };

    // Options the ORO asks for (found into map memory, as the parse above).
    set(&mut s.parsed.want_dns, 0);
    set(&mut s.parsed.want_domains, 0);
    set(&mut s.parsed.want_pd_exclude, 0);
    for i in 0..MAX_ORO_CODES {
        if 2 * i >= oro.1 {
            break;
        }
        match be16(s, oro.0 + 2 * i) as u16 {
            option_code::DNS_SERVERS => set(&mut s.parsed.want_dns, 1),
            option_code::DOMAIN_LIST => set(&mut s.parsed.want_domains, 1),
            option_code::PD_EXCLUDE => set(&mut s.parsed.want_pd_exclude, 1),
            _ => {}
        }
    }
    let (want_dns, want_domains) = (get(&s.parsed.want_dns) != 0, get(&s.parsed.want_domains) != 0);
    // A binding whose IA carries a Prefix Exclude is answered with it, as the server answers
    // a client that asks for it (RFC 6603); one that does not ask is left to userspace.
    if get(&s.parsed.want_pd_exclude) == 0 {
        for e in [e0, e1] {
            // SAFETY: found above, when not null.
            if !e.is_null() && unsafe { (*e).flags } & ENTRY_PD_EXCLUDE != 0 {
                return Err(Verdict::Unfit);
            }
        }
    }
    let dns_len = if want_dns { usize::from(link.dns_len).min(OPTION_MAX) } else { 0 };
    let domains_len = if want_domains { usize::from(link.domains_len).min(OPTION_MAX) } else { 0 };
    let server_id_len = usize::from(link.server_id_len).min(SERVER_ID_MAX);

    // Layout and checksum of the Reply.
    let mut sum = 0u64;
    // The message header: a Reply with the request's transaction ID.
    let header = [MessageType::Reply as u8, byte(s, 1), byte(s, 2), byte(s, 3)];
    sum += sum_words(&header);
    // Then the Client ID option, whose sum (option header included) the binding holds.
    // SAFETY: `ia_count` >= 1, so entry 0 was found above.
    sum += u64::from(unsafe { (*e0).client_id_sum });
    let mut at = 8 + duid_len;
    sum += placed(link.server_id_sum, at);
    let server_id_at = at;
    at += server_id_len;
    let ias_at = at;
    for e in [e0, e1] {
        if e.is_null() {
            continue;
        }
        // SAFETY: found above.
        let e = unsafe { &*e };
        sum += placed(e.ia_sum, at);
        at += usize::from(e.ia_len).min(IA_MAX);
    }
    let dns_at = at;
    if dns_len > 0 {
        sum += placed(link.dns_sum, at);
        at += dns_len;
    }
    let domains_at = at;
    if domains_len > 0 {
        sum += placed(link.domains_sum, at);
        at += domains_len;
    }
    let reply_len = at;
    let reply_udp_len = reply_len + UDP_HEADER_LEN;

    // Addresses: back to the client, from the address it wrote to unless that was multicast
    // (then from the interface's link-local address). The pseudo-header's sum is the
    // request's with the source's changed.
    let multicast = s.ip_in[24] == 0xff;
    sum += s.src_sum + if multicast { sum16_aligned(link.link_local.as_ptr()) } else { s.dst_sum };
    sum += 2 * reply_udp_len as u64 + u64::from(IPPROTO_UDP) + u64::from(SERVER_PORT) + u64::from(CLIENT_PORT);
    let mut csum = !fold64(sum);
    if csum == 0 {
        csum = 0xffff;
    }

    // From here the frame changes: resize it, then write the Reply over the request.
    let eth_src: [u8; 6] = read_frame(ctx, 6).ok_or(Verdict::Truncated)?;
    let old_len = ctx.data_end() - ctx.data();
    let new_len = frame.udp + reply_udp_len;
    let delta = new_len as i32 - old_len as i32;
    if delta != 0 {
        // SAFETY: the helper checks the new size against the frame's room.
        if unsafe { bpf_xdp_adjust_tail(ctx.as_ptr().cast(), delta) } < 0 {
            return Err(Verdict::NoRoom);
        }
    }
    // The Ethernet addresses written in place (a helper call costs more than these stores).
    let data = ctx.data();
    if data + 12 > ctx.data_end() {
        return Err(Verdict::NoRoom);
    }
    let frame_start = data as *mut u8;
    for i in 0..6 {
        // SAFETY: the 12 bytes were checked to be in the frame.
        unsafe {
            *frame_start.add(i) = eth_src[i];
            *frame_start.add(6 + i) = link.mac[i];
        }
    }
    // The IPv6 and UDP headers and the message header, built in words: one piece, one write.
    let out = s.out.as_mut_ptr();
    let len = [(reply_udp_len >> 8) as u8, reply_udp_len as u8];
    let source = if multicast { link.link_local.as_ptr() } else { s.ip_in[24..].as_ptr() };
    // SAFETY: `out` is 8-byte aligned (asserted above) and holds 256 bytes; the link-local
    // address sits at offset 8 of the 8-byte aligned map value.
    unsafe {
        *(out as *mut u64) = u64::from_le_bytes([0x60, 0, 0, 0, len[0], len[1], IPPROTO_UDP, HOP_LIMIT]);
        copy16_aligned(out.add(8), source);
        copy16_aligned(out.add(24), s.ip_in[8..].as_ptr());
        let [p0, p1] = SERVER_PORT.to_be_bytes();
        let [p2, p3] = CLIENT_PORT.to_be_bytes();
        let [c0, c1] = csum.to_be_bytes();
        *(out.add(IPV6_HEADER_LEN) as *mut u64) = u64::from_le_bytes([p0, p1, p2, p3, len[0], len[1], c0, c1]);
        *(out.add(IPV6_HEADER_LEN + UDP_HEADER_LEN) as *mut u32) = u32::from_le_bytes(header);
    }
    const HEADERS: usize = IPV6_HEADER_LEN + UDP_HEADER_LEN + 4;
    let payload = frame.udp + UDP_HEADER_LEN;
    if client_id.0 == 8 {
        // The Client ID is the request's first option, as clients send it: it is in place.
        store(ctx, frame.ip, s.out.as_ptr(), HEADERS as u32)?;
    } else {
        let [l0, l1] = (duid_len as u16).to_be_bytes();
        // SAFETY: within `out`, 4-byte aligned.
        unsafe { *(out.add(HEADERS) as *mut u32) = u32::from_le_bytes([0, option_code::CLIENTID as u8, l0, l1]) };
        store(ctx, frame.ip, s.out.as_ptr(), HEADERS as u32 + 4)?;
        store(ctx, payload + 8, s.key.duid.as_ptr(), size(duid_len, KEY_DUID_MAX)?)?;
    }
    store(ctx, payload + server_id_at, link.server_id.as_ptr(), size(server_id_len, SERVER_ID_MAX)?)?;
    let mut ia_at = ias_at;
    for e in [e0, e1] {
        if e.is_null() {
            continue;
        }
        // SAFETY: found above.
        let e = unsafe { &mut *e };
        let len = size(usize::from(e.ia_len), IA_MAX)?;
        store(ctx, payload + ia_at, e.ia.as_ptr(), len)?;
        ia_at += len as usize;
        // The stamp userspace reads as the binding's deadline nears, to persist the later
        // expiry and move the deadline (no report per renewal: see dhcp6_common::renewal).
        e.renewed_ns = now;
    }
    let both_len = usize::from(link.both_len);
    if dns_len > 0 && domains_len > 0 && both_len == dns_len + domains_len {
        // Both, as userspace laid them out one after the other: one write.
        store(ctx, payload + dns_at, link.dns.as_ptr(), size(both_len, OPTION_MAX)?)?;
    } else {
        if dns_len > 0 {
            store(ctx, payload + dns_at, link.dns.as_ptr(), size(dns_len, OPTION_MAX)?)?;
        }
        if domains_len > 0 {
            store(ctx, payload + domains_at, link.domains.as_ptr(), size(domains_len, OPTION_MAX)?)?;
        }
    }
    Ok(())
}
