//! The relay in XDP: a client's message on an access interface goes up as a Relay-Forward,
//! a Relay-Reply from a group's server comes back down unwrapped, neither through the stack.
//!
//! Up: the message is checked as the kernel would (lengths, checksum), its Client ID hashed to
//! the client's bucket, whose server userspace chose; the route toward that server is looked
//! up (`bpf_fib_lookup`; no route or no neighbour yet: passed, for userspace to send it and the
//! kernel to resolve the neighbour); the frame grows at its head by the relay header and
//! options userspace encoded for the interface, with the client's address and MAC written in,
//! and is redirected out of the route's interface. The UDP checksum is the new headers' sum
//! plus the message's, taken from the check.
//!
//! Down: a Relay-Reply from a server of ours, to our address toward it, naming an access
//! interface (and VLANs) by its Interface-ID and carrying a message for a client, loses its
//! relay header at the head and what follows the message at the tail, and goes to the client's
//! MAC (learnt on the way up), tagged with those VLANs, out of that interface. A Reply is
//! first reported to userspace, which keeps the user entries and the routes of delegated
//! prefixes; if the report cannot be made the Relay-Reply goes to userspace instead, so that
//! no binding goes unseen.

use aya_ebpf::{
    bindings::{bpf_fib_lookup, xdp_action},
    btf_maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    helpers::generated::{
        bpf_csum_diff, bpf_fib_lookup as fib_lookup, bpf_redirect, bpf_xdp_adjust_head, bpf_xdp_adjust_tail,
        bpf_xdp_get_buff_len, bpf_xdp_load_bytes,
    },
    macros::{btf_map, xdp},
    programs::XdpContext,
    EbpfContext,
};
use dhcp6_common::{
    counters::Verdict,
    renewal::checksum,
    relay::{
        access_bit, bucket_of, fnv1a_step, vlan_tags, AccessKey, ClientMacKey, InterfaceIdKey, RelayGroup, RelayLink,
        RelayReport, RelayServer, Vlans, ACCESS_BITMAP_WORDS, CLIENT_MAC_ENTRIES, FNV1A_START, HEAD_PEER_AT,
        INTERFACE_ID_MAX, MAX_GROUPS, MAX_GROUP_SERVERS, NOWHERE, NO_SERVER, RELAY_HEAD_MAX, RELAY_LINK_ENTRIES,
        RELAY_REPORT_RING_BYTES, RELAY_REPORT_WAKE_BYTES, REPORT_GIVING_BACK, REPORT_MSG_MAX, REPORT_REPLY,
    },
    wire::{frame::*, option_code, ALL_DHCP_RELAY_AGENTS_AND_SERVERS, CLIENT_PORT, SERVER_PORT},
    MessageType,
};

use crate::renew::{
    be16, byte, fold64, launder, load_message, placed, put_udp_header, read_frame, size, store, sum_padded, sum_words,
    zero_words, Frame, Scratch, SCRATCH_SPACE,
};

const SERVER_SLOTS: u32 = MAX_GROUPS * MAX_GROUP_SERVERS;

#[btf_map]
static RELAY_LINKS: HashMap<AccessKey, RelayLink, { RELAY_LINK_ENTRIES as usize }> = HashMap::new();

#[btf_map]
static RELAY_ACCESS_BITS: Array<u64, { ACCESS_BITMAP_WORDS as usize }> = Array::new();

#[btf_map]
static RELAY_GROUPS: Array<RelayGroup, { MAX_GROUPS as usize }> = Array::new();

#[btf_map]
static RELAY_SERVERS: Array<RelayServer, { SERVER_SLOTS as usize }> = Array::new();

#[btf_map]
static RELAY_SERVER_SLOTS: HashMap<[u8; 16], u32, { SERVER_SLOTS as usize }> = HashMap::new();

#[btf_map]
static RELAY_INTERFACE_IDS: HashMap<InterfaceIdKey, AccessKey, { RELAY_LINK_ENTRIES as usize }> = HashMap::new();

#[btf_map]
static RELAY_CLIENT_MACS: LruHashMap<ClientMacKey, [u8; 8], { CLIENT_MAC_ENTRIES as usize }> = LruHashMap::new();

#[btf_map]
static RELAY_SENT: PerCpuArray<u64, { SERVER_SLOTS as usize }> = PerCpuArray::new();

#[btf_map]
static RELAY_ANSWERED: PerCpuArray<u64, { SERVER_SLOTS as usize }> = PerCpuArray::new();

#[btf_map]
static RELAY_REPORTS: RingBuf<RelayReport, { RELAY_REPORT_RING_BYTES as usize }> = RingBuf::new();

/// Most options looked through for the Client ID, or for a Relay-Reply's Interface-ID and
/// Relay Message.
const MAX_OPTIONS: usize = 16;
/// Longest DUID (RFC 9915 section 11.1).
const DUID_MAX: usize = dhcp6_common::renewal::DUID_MAX;
/// The hop limit of what the relay sends, the kernel's default for unicast.
const HOP_LIMIT: u8 = 64;
const AF_INET6: u8 = 10;
const FIB_SUCCESS: i64 = 0;

/// Whether `ifindex` may be an access interface of the relay (its bit is set, or it is past
/// the bitmap): an array read, where a look in the link map would hash.
#[inline(always)]
pub fn may_be_access(ifindex: u32) -> bool {
    match access_bit(ifindex) {
        Some((word, bit)) => RELAY_ACCESS_BITS.get(word).is_some_and(|w| w & bit != 0),
        None => true,
    }
}

/// How the relay relays on an access interface for clients of these VLANs, if it does.
#[inline(always)]
pub fn link(key: &AccessKey) -> Option<&'static RelayLink> {
    // SAFETY: entries are written whole by userspace (see `renew::answer` on the link map).
    unsafe { RELAY_LINKS.get(key) }
}

/// Whether XDP relays this message type up: every client-to-server type (a Release or
/// Decline is reported to userspace on its way, see [`forward`]). Relay-Forwards from
/// downstream relays go to userspace; server-to-client types are not relayed up at all.
#[inline(always)]
pub fn takes_up(msg_type: u8) -> bool {
    const TAKEN: [MessageType; 8] = [
        MessageType::Solicit,
        MessageType::Request,
        MessageType::Confirm,
        MessageType::Renew,
        MessageType::Rebind,
        MessageType::Release,
        MessageType::Decline,
        MessageType::InformationRequest,
    ];
    let mut i = 0;
    while i < TAKEN.len() {
        if TAKEN[i] as u8 == msg_type {
            return true;
        }
        i += 1;
    }
    false
}

#[inline(always)]
fn scratch() -> Result<&'static mut Scratch, Verdict> {
    let p = SCRATCH_SPACE.get_ptr_mut(0).ok_or(Verdict::RelayUnfit)?;
    // SAFETY: a per-CPU slot, used by one program run at a time.
    Ok(unsafe { &mut *p })
}

#[inline(always)]
fn bump(map: &PerCpuArray<u64, { SERVER_SLOTS as usize }>, slot: u32) {
    if let Some(p) = map.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot.
        unsafe { *p += 1 };
    }
}

/// Finds up to two options of the message in `s.req[start..n]` (`found_a`, `found_b`: offset
/// of the content and length; length 0 and offset 0 if absent). Stops once both are found;
/// fails if the options do not parse up to there.
#[inline(always)]
fn find_options(s: &mut Scratch, start: usize, n: usize, a: u16, b: u16) -> Result<(), Verdict> {
    let p = &mut s.parsed;
    for f in [&mut p.found_a, &mut p.found_a_len, &mut p.found_b, &mut p.found_b_len] {
        crate::renew::set(f, 0);
    }
    let mut off = start;
    for _ in 0..MAX_OPTIONS {
        if off >= n {
            return Ok(());
        }
        if off + 4 > n {
            return Err(Verdict::RelayUnfit);
        }
        let code = be16(s, off) as u16;
        let len = be16(s, off + 2);
        if off + 4 + len > n {
            return Err(Verdict::RelayUnfit);
        }
        let p = &mut s.parsed;
        if code == a && crate::renew::get(&p.found_a) == 0 {
            crate::renew::set(&mut p.found_a, (off + 4) as u32);
            crate::renew::set(&mut p.found_a_len, len as u32);
        } else if code == b && crate::renew::get(&p.found_b) == 0 {
            crate::renew::set(&mut p.found_b, (off + 4) as u32);
            crate::renew::set(&mut p.found_b_len, len as u32);
        }
        if crate::renew::get(&p.found_a) != 0 && (b == 0 || crate::renew::get(&p.found_b) != 0) {
            return Ok(());
        }
        off = launder(&mut s.parsed, off + 4 + len);
    }
    if off >= n {
        Ok(())
    } else {
        Err(Verdict::RelayUnfit)
    }
}

/// Lowercase hex digit of a nibble.
#[inline(always)]
fn hex_digit(nibble: u8) -> u8 {
    if nibble < 10 {
        b'0' + nibble
    } else {
        b'a' + nibble - 10
    }
}

/// Fills `s.ip_out` with the IPv6 header of a UDP datagram of `udp_len` bytes from port 547 to
/// `dst_port`, and returns its UDP checksum given the payload's sum.
#[inline(always)]
fn ip_header(s: &mut Scratch, src: &[u8; 16], dst: &[u8; 16], udp_len: usize, dst_port: u16, payload_sum: u64) -> u16 {
    s.ip_out[0] = 0x60;
    s.ip_out[1] = 0;
    s.ip_out[2] = 0;
    s.ip_out[3] = 0;
    s.ip_out[4] = (udp_len >> 8) as u8;
    s.ip_out[5] = udp_len as u8;
    s.ip_out[6] = IPPROTO_UDP;
    s.ip_out[7] = HOP_LIMIT;
    for i in 0..16 {
        s.ip_out[8 + i] = src[i];
        s.ip_out[24 + i] = dst[i];
    }
    let sum = sum_words(&s.ip_out[8..40])
        + 2 * udp_len as u64
        + u64::from(IPPROTO_UDP)
        + u64::from(SERVER_PORT)
        + u64::from(dst_port)
        + payload_sum;
    let csum = !fold64(sum);
    if csum == 0 {
        0xffff
    } else {
        csum
    }
}

/// Writes the Ethernet header (`to` <- `from`, tagged with `vlans`), `s.ip_out`, the UDP
/// header (547 -> `dst_port`) and, when `head_len` is not 0, the relay's `s.head`, at the start
/// of the frame: the Ethernet header stored in place, the rest as one piece (each helper call
/// costs more than the stores it saves).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn write_headers(
    ctx: &XdpContext,
    s: &mut Scratch,
    to: &[u8; 6],
    from: &[u8; 6],
    dst_port: u16,
    udp_len: usize,
    csum: u16,
    head_len: usize,
    vlans: Vlans,
) -> Result<(), Verdict> {
    const L2_MAX: usize = ETH_HEADER_LEN + 2 * VLAN_TAG_LEN;
    let data = ctx.data();
    let tags = vlans.tags();
    let l2 = ETH_HEADER_LEN + VLAN_TAG_LEN * tags;
    if data + L2_MAX > ctx.data_end() {
        return Err(Verdict::NoRoom);
    }
    let eth = data as *mut u8;
    // SAFETY: L2_MAX bytes were checked to be in the frame.
    unsafe {
        for i in 0..6 {
            *eth.add(i) = to[i];
            *eth.add(6 + i) = from[i];
        }
        // The tags (as userspace writes them), then the EtherType after them.
        let (tag_bytes, tags_len) = vlan_tags(vlans);
        for i in 0..2 * VLAN_TAG_LEN {
            if i < tags_len {
                *eth.add(12 + i) = tag_bytes[i];
            }
        }
        let ethertype_at = if tags == 0 {
            12
        } else if tags == 1 {
            16
        } else {
            20
        };
        *eth.add(ethertype_at) = (ETHERTYPE_IPV6 >> 8) as u8;
        *eth.add(ethertype_at + 1) = ETHERTYPE_IPV6 as u8;
    }
    for i in 0..IPV6_HEADER_LEN {
        s.out[i] = s.ip_out[i];
    }
    put_udp_header(s, dst_port, udp_len, csum);
    const HEADERS: usize = IPV6_HEADER_LEN + UDP_HEADER_LEN;
    if head_len == 0 {
        return store(ctx, l2, s.out.as_ptr(), HEADERS as u32);
    }
    for i in 0..RELAY_HEAD_MAX {
        s.out[HEADERS + i] = s.head[i];
    }
    store(ctx, ETH_HEADER_LEN, s.out.as_ptr(), size(HEADERS + head_len, HEADERS + RELAY_HEAD_MAX)?)
}

/// Reports the message at `at` (`len` bytes) of the frame to userspace, with the client's
/// interface, VLANs, address and MAC (`s.mac_key`, `s.mac`): if the ring has no room, the
/// caller passes the frame to userspace instead (`RelayNoPeer`).
#[inline(always)]
fn report(ctx: &XdpContext, s: &Scratch, kind: u32, at: usize, len: usize) -> Result<(), Verdict> {
    let mut entry = RELAY_REPORTS.reserve(0).ok_or(Verdict::RelayNoPeer)?;
    let record = entry.as_mut_ptr();
    let len = match size(len, REPORT_MSG_MAX) {
        Ok(len) => len,
        Err(_) => {
            entry.discard(0);
            return Err(Verdict::RelayUnfit);
        }
    };
    // SAFETY: `record` is the reserved record; at most REPORT_MSG_MAX bytes into its
    // REPORT_MSG_MAX-byte message.
    let r = unsafe {
        (*record).kind = kind;
        (*record).vlans = s.mac_key.vlans;
        (*record).ifindex = s.mac_key.ifindex;
        (*record).len = len;
        (*record).peer = s.mac_key.peer;
        (*record).mac = s.mac;
        bpf_xdp_load_bytes(ctx.as_ptr().cast(), at as u32, (*record).msg.as_mut_ptr().cast(), len)
    };
    if r < 0 {
        entry.discard(0);
        return Err(Verdict::RelayUnfit);
    }
    // dhcp6d reads the ring every RELAY_REPORT_EVERY_MS; it is woken only once a good part of
    // the ring waits.
    const BPF_RB_AVAIL_DATA: u64 = 0;
    const BPF_RB_NO_WAKEUP: u64 = 1;
    const BPF_RB_FORCE_WAKEUP: u64 = 2;
    let ring = core::ptr::from_ref(&RELAY_REPORTS).cast_mut().cast();
    // SAFETY: `ring` is the ring buffer map (as aya's RingBuf passes it); the query only reads
    // its positions.
    let waiting = unsafe { aya_ebpf::helpers::bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) };
    entry.submit(if waiting >= RELAY_REPORT_WAKE_BYTES { BPF_RB_FORCE_WAKEUP } else { BPF_RB_NO_WAKEUP });
    Ok(())
}

/// The job up: relays a client's message on an access interface as a Relay-Forward.
#[xdp]
pub fn dhcp6_relay_forward(ctx: XdpContext) -> u32 {
    let Some((handover, frame)) = crate::job::taken() else {
        return relayed(&ctx, Err(Verdict::RelayUnfit), Verdict::RelayUnfit, false);
    };
    let traced = handover.traced != 0;
    let key = AccessKey { ifindex: ctx.ingress_ifindex() as u32, vlans: handover.vlans };
    // The entry program found the link; one removed since is no longer relayed on.
    let Some(link) = link(&key) else { return relayed(&ctx, Err(Verdict::RelayUnfit), Verdict::RelayUnfit, traced) };
    relayed(&ctx, forward(&ctx, &frame, link, handover.msg_type as u8), Verdict::RelayForwarded, traced)
}

/// The job down: takes a Relay-Reply from a server of ours down to its client.
#[xdp]
pub fn dhcp6_relay_reply(ctx: XdpContext) -> u32 {
    let Some((handover, frame)) = crate::job::taken() else {
        return relayed(&ctx, Err(Verdict::RelayUnfit), Verdict::RelayUnfit, false);
    };
    let result = unwrap(&ctx, &frame);
    // The client's MAC shows once the reply is unwrapped: whether it is traced is asked again.
    let traced = handover.traced != 0 || crate::trace::wanted(&ctx);
    relayed(&ctx, result, Verdict::RelayReplied, traced)
}

/// Counts what relaying did (and reports it, if the frame is traced) and returns the XDP
/// action: `done` and the redirect; a frame changed past giving back, dropped; anything else
/// passed, with its verdict.
#[inline(always)]
fn relayed(ctx: &XdpContext, result: Result<u32, Verdict>, done: Verdict, traced: bool) -> u32 {
    let (verdict, action) = match result {
        Ok(action) => (done, action),
        Err(Verdict::NoRoom) => (Verdict::NoRoom, xdp_action::XDP_DROP),
        Err(verdict) => (verdict, xdp_action::XDP_PASS),
    };
    crate::count(verdict as u32);
    crate::trace::report(ctx, verdict as u32, verdict as u32, traced);
    action
}

/// Relays a client's message up as a Relay-Forward; returns the XDP action (a redirect).
/// (A function of its own, a BPF subprogram: its stack is not added to the other paths'.)
#[inline(never)]
pub fn forward(ctx: &XdpContext, frame: &Frame, link: &RelayLink, msg_type: u8) -> Result<u32, Verdict> {
    // The client's VLAN tags, if any, go: the Interface-ID names them upstream.
    let tags_len = frame.ip - ETH_HEADER_LEN;
    let s = scratch()?;
    let n = load_message(ctx, frame, s, Verdict::RelayUnfit)?;
    // Clients send to All_DHCP_Relay_Agents_and_Servers; a unicast is routed, not relayed.
    for i in 0..16 {
        if s.ip_in[24 + i] != ALL_DHCP_RELAY_AGENTS_AND_SERVERS[i] {
            return Err(Verdict::RelayUnfit);
        }
    }

    // The client's bucket, by its DUID (none: the empty DUID's), and the bucket's server.
    find_options(s, 4, n, option_code::CLIENTID, 0)?;
    let (duid_at, duid_len) =
        (crate::renew::get(&s.parsed.found_a) as usize, crate::renew::get(&s.parsed.found_a_len) as usize);
    if duid_at != 0 && (duid_len == 0 || duid_len > DUID_MAX) {
        return Err(Verdict::RelayUnfit);
    }
    let mut hash = FNV1A_START;
    for i in 0..DUID_MAX {
        if i >= duid_len {
            break;
        }
        hash = fnv1a_step(hash, byte(s, duid_at + i));
    }
    let group = RELAY_GROUPS.get(link.group).ok_or(Verdict::RelayUnfit)?;
    let index = group.buckets[bucket_of(hash)];
    if index == NO_SERVER || u32::from(index) >= MAX_GROUP_SERVERS {
        return Err(Verdict::RelayNoRoute);
    }
    let slot = link.group * MAX_GROUP_SERVERS + u32::from(index);
    let server = RELAY_SERVERS.get(slot).ok_or(Verdict::RelayUnfit)?;

    let head_len = usize::from(link.head_len);
    if !(HEAD_PEER_AT + 16 + 4..=RELAY_HEAD_MAX).contains(&head_len) {
        return Err(Verdict::RelayUnfit);
    }
    let udp_len = UDP_HEADER_LEN + head_len + n;

    // The route toward the server: out of which interface, to which next hop's MAC.
    zero_words((&mut s.fib as *mut bpf_fib_lookup).cast(), core::mem::size_of::<bpf_fib_lookup>() / 8);
    s.fib.family = AF_INET6;
    s.fib.l4_protocol = IPPROTO_UDP;
    s.fib.sport = SERVER_PORT.to_be();
    s.fib.dport = SERVER_PORT.to_be();
    s.fib.__bindgen_anon_1.tot_len = (IPV6_HEADER_LEN + udp_len) as u16;
    s.fib.ifindex = ctx.ingress_ifindex() as u32;
    // SAFETY: plain arrays of the same size in the lookup's unions.
    unsafe {
        s.fib.__bindgen_anon_3.ipv6_src = core::mem::transmute::<[u8; 16], [u32; 4]>(server.source);
        s.fib.__bindgen_anon_4.ipv6_dst = core::mem::transmute::<[u8; 16], [u32; 4]>(server.address);
    }
    // SAFETY: the parameters live in the per-CPU scratch value, sized as the helper reads them.
    let r = unsafe { fib_lookup(ctx.as_ptr().cast(), &mut s.fib, core::mem::size_of::<bpf_fib_lookup>() as i32, 0) };
    if r != FIB_SUCCESS {
        return Err(Verdict::RelayNoRoute);
    }

    // The relay header and options, with this client's address and MAC written in.
    let client_mac: [u8; 6] = read_frame(ctx, 6).ok_or(Verdict::Truncated)?;
    let from = link.head.as_ptr() as *const u64;
    let to = s.head.as_mut_ptr() as *mut u64;
    for i in 0..RELAY_HEAD_MAX / 8 {
        // SAFETY: RELAY_HEAD_MAX bytes in both; map values are 8-byte aligned, as is `head`.
        unsafe { *to.add(i) = *from.add(i) };
    }
    for i in 0..16 {
        s.head[HEAD_PEER_AT + i] = s.ip_in[8 + i];
    }
    // Offsets checked in BPF assembly (`size`), so the verifier sees each write in bounds.
    let head = s.head.as_mut_ptr();
    if link.mac_hex_at != NOWHERE {
        // As userspace writes MACs: lowercase hex, colon-separated.
        let at = size(usize::from(link.mac_hex_at), RELAY_HEAD_MAX - 17)? as usize;
        for i in 0..6 {
            // SAFETY: at + 17 <= RELAY_HEAD_MAX < 256.
            unsafe {
                *head.add(at + 3 * i) = hex_digit(client_mac[i] >> 4);
                *head.add(at + 3 * i + 1) = hex_digit(client_mac[i] & 0xf);
                if i < 5 {
                    *head.add(at + 3 * i + 2) = b':';
                }
            }
        }
    }
    if link.mac_at != NOWHERE {
        let at = size(usize::from(link.mac_at), RELAY_HEAD_MAX - 6)? as usize;
        for i in 0..6 {
            // SAFETY: at + 6 <= RELAY_HEAD_MAX.
            unsafe { *head.add(at + i) = client_mac[i] };
        }
    }
    // The Relay Message option's length; past `head_len`, the head userspace wrote is zeros,
    // which pad it to whole words for the sum.
    let len_at = size(head_len - 2, RELAY_HEAD_MAX - 2)? as usize;
    // SAFETY: len_at + 2 <= RELAY_HEAD_MAX.
    unsafe {
        *head.add(len_at) = (n >> 8) as u8;
        *head.add(len_at + 1) = n as u8;
    }
    let padded = size((head_len + 3) & !3, RELAY_HEAD_MAX)?;
    // SAFETY: at most RELAY_HEAD_MAX bytes of the 256-byte `head`.
    let raw = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, s.head.as_mut_ptr().cast(), padded, 0) };
    if raw < 0 {
        return Err(Verdict::RelayUnfit);
    }
    let head_sum = u64::from(checksum::fold(raw as u32).swap_bytes());

    // The new IPv6 header and the checksum over all of it.
    let payload_sum = head_sum + placed(s.payload_sum as u32, head_len);
    let csum = ip_header(s, &server.source, &server.address, udp_len, SERVER_PORT, payload_sum);

    // The client's address and MAC, for the report and the client MAC map.
    s.mac_key.ifindex = ctx.ingress_ifindex() as u32;
    s.mac_key.vlans = frame.vlans;
    for i in 0..16 {
        s.mac_key.peer[i] = s.ip_in[8 + i];
    }
    for i in 0..6 {
        s.mac[i] = client_mac[i];
    }
    s.mac[6] = 0;
    s.mac[7] = 0;
    // A Release or Decline is told to userspace before it goes: it forgets what they give
    // back when their Reply comes.
    if msg_type == MessageType::Release as u8 || msg_type == MessageType::Decline as u8 {
        report(ctx, s, REPORT_GIVING_BACK, frame.udp + UDP_HEADER_LEN, n)?;
    }

    // From here the frame changes: Ethernet padding off the tail, room at the head.
    // The helper's length, a plain number (arithmetic on the packet's end pointer is refused).
    // SAFETY: a plain helper call.
    let old_len = unsafe { bpf_xdp_get_buff_len(ctx.as_ptr().cast()) } as usize;
    let trailer = old_len as i32 - (frame.udp + UDP_HEADER_LEN + n) as i32;
    // SAFETY: the helpers check the new sizes against the frame.
    if trailer > 0 && unsafe { bpf_xdp_adjust_tail(ctx.as_ptr().cast(), -trailer) } < 0 {
        return Err(Verdict::RelayUnfit);
    }
    if unsafe { bpf_xdp_adjust_head(ctx.as_ptr().cast(), tags_len as i32 - head_len as i32) } < 0 {
        return Err(Verdict::RelayUnfit);
    }
    // The frame has been moved: a failed write past this point cannot give it back to the
    // stack as it came, so it is dropped (the caller drops on `NoRoom`).
    let (to, from) = (s.fib.dmac, s.fib.smac);
    write_headers(ctx, s, &to, &from, SERVER_PORT, udp_len, csum, head_len, Vlans::NONE)?;

    // The client's MAC, for its answers to go down by.
    // Written only when new or changed: an update of the LRU map costs more than a lookup.
    // SAFETY: a map value of plain bytes.
    let known = unsafe { RELAY_CLIENT_MACS.get(&s.mac_key) }.copied();
    if known != Some(s.mac) {
        let _ = RELAY_CLIENT_MACS.insert(&s.mac_key, &s.mac, 0);
    }
    bump(&RELAY_SENT, slot);
    // SAFETY: a plain helper call.
    Ok(unsafe { bpf_redirect(s.fib.ifindex, 0) } as u32)
}

/// Unwraps a Relay-Reply from a server of ours and sends its message down to the client;
/// returns the XDP action (a redirect). (A BPF subprogram, as [`forward`].)
#[inline(never)]
pub fn unwrap(ctx: &XdpContext, frame: &Frame) -> Result<u32, Verdict> {
    let source: [u8; 16] = read_frame(ctx, frame.ip + 8).ok_or(Verdict::Truncated)?;
    // SAFETY: written whole by userspace.
    // From no server of ours: nothing of the relay's (userspace drops and counts it if it
    // relays at all).
    let slot = *unsafe { RELAY_SERVER_SLOTS.get(source) }.ok_or(Verdict::Dhcp6Passed)?;
    let server = RELAY_SERVERS.get(slot).ok_or(Verdict::RelayUnfit)?;
    if frame.ip != ETH_HEADER_LEN {
        return Err(Verdict::RelayUnfit);
    }
    let s = scratch()?;
    let n = load_message(ctx, frame, s, Verdict::RelayUnfit)?;
    for i in 0..16 {
        if s.ip_in[24 + i] != server.source[i] {
            return Err(Verdict::RelayUnfit);
        }
    }
    if n < HEAD_PEER_AT + 16 {
        return Err(Verdict::RelayUnfit);
    }
    find_options(s, HEAD_PEER_AT + 16, n, option_code::RELAY_MSG, option_code::INTERFACE_ID)?;
    let p = &s.parsed;
    let (inner_at, inner_len) =
        (crate::renew::get(&p.found_a) as usize, crate::renew::get(&p.found_a_len) as usize);
    let (id_at, id_len) = (crate::renew::get(&p.found_b) as usize, crate::renew::get(&p.found_b_len) as usize);
    if inner_at == 0 || id_at == 0 || inner_len < 4 || id_len == 0 || id_len > INTERFACE_ID_MAX {
        return Err(Verdict::RelayUnfit);
    }
    let inner_type = byte(s, inner_at);
    let reply = inner_type == MessageType::Reply as u8;
    if !reply && inner_type != MessageType::Advertise as u8 && inner_type != MessageType::Reconfigure as u8 {
        return Err(Verdict::RelayUnfit);
    }

    // The access interface the Interface-ID names, and the client's MAC there.
    s.interface_id.len = id_len as u32;
    for i in 0..INTERFACE_ID_MAX {
        s.interface_id.id[i] = if i < id_len { byte(s, id_at + i) } else { 0 };
    }
    // SAFETY: written whole by userspace.
    let access = *unsafe { RELAY_INTERFACE_IDS.get(&s.interface_id) }.ok_or(Verdict::RelayUnfit)?;
    let link = link(&access).ok_or(Verdict::RelayUnfit)?;
    let (ifindex, vlans) = (access.ifindex, access.vlans);
    s.mac_key.ifindex = ifindex;
    s.mac_key.vlans = vlans;
    for i in 0..16 {
        s.mac_key.peer[i] = byte(s, HEAD_PEER_AT + i);
    }
    // SAFETY: a map value of plain bytes.
    s.mac = *unsafe { RELAY_CLIENT_MACS.get(&s.mac_key) }.ok_or(Verdict::RelayNoPeer)?;

    // A Reply is told to userspace before it goes: the user entries and routes follow it.
    if reply {
        report(ctx, s, REPORT_REPLY, frame.udp + UDP_HEADER_LEN + inner_at, inner_len)?;
    }

    let inner_sum = sum_padded(s, inner_at, inner_len).ok_or(Verdict::RelayUnfit)?;
    let udp_len = UDP_HEADER_LEN + inner_len;
    let peer = s.mac_key.peer;
    let csum = ip_header(s, &link.link_local, &peer, udp_len, CLIENT_PORT, inner_sum);

    // The message's headers take the place of the relay header's end; what follows it goes.
    // The helper's length, a plain number (arithmetic on the packet's end pointer is refused).
    // SAFETY: a plain helper call.
    let old_len = unsafe { bpf_xdp_get_buff_len(ctx.as_ptr().cast()) } as usize;
    let l2 = ETH_HEADER_LEN + VLAN_TAG_LEN * vlans.tags();
    let new_start = frame.udp + UDP_HEADER_LEN + inner_at - (l2 + IPV6_HEADER_LEN + UDP_HEADER_LEN);
    let new_len = l2 + IPV6_HEADER_LEN + UDP_HEADER_LEN + inner_len;
    let tail = new_len as i32 - (old_len - new_start) as i32;
    // SAFETY: the helpers check the new sizes against the frame.
    if tail != 0 && unsafe { bpf_xdp_adjust_tail(ctx.as_ptr().cast(), tail) } < 0 {
        return Err(Verdict::RelayUnfit);
    }
    if unsafe { bpf_xdp_adjust_head(ctx.as_ptr().cast(), new_start as i32) } < 0 {
        // The tail is cut, the Relay-Reply no longer whole: dropped (see `NoRoom`).
        return Err(Verdict::NoRoom);
    }
    let to = [s.mac[0], s.mac[1], s.mac[2], s.mac[3], s.mac[4], s.mac[5]];
    write_headers(ctx, s, &to, &link.mac, CLIENT_PORT, udp_len, csum, 0, vlans)?;
    bump(&RELAY_ANSWERED, slot);
    // SAFETY: a plain helper call.
    Ok(unsafe { bpf_redirect(ifindex, 0) } as u32)
}
