//! Per-client storm protection ([`dhcp6_common::storm`]): each client's messages to port 547
//! take a token from the client's bucket, and those that find it empty are cut here (dropped,
//! counted, the client recorded for `dhcp6d show storms`), before they cost the stack, the
//! relay or the server anything.
//!
//! The entry program cuts by source MAC ([`cut_by_mac`]): on-link clients of the server and
//! clients on the relay's access links. A Relay-Forward comes from a relay's MAC, the same for
//! all its clients: the job [`dhcp6_storm_relayed`] cuts it by its client's DUID, then hands it
//! on to the AF_XDP hand-over, where it would have gone.

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, LruHashMap, PerCpuArray},
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use dhcp6_common::{
    counters::Verdict,
    jobs,
    relay::{fnv1a_step, FNV1A_START},
    storm::{
        StormConfig, StormKey, StormRecord, StormSet, CUT_BY_DUID, CUT_BY_MAC, STORM_CUT_SLOTS, STORM_ID_BYTES,
        STORM_RECORDS, STORM_SETS,
    },
    trace::TRACE_STORM,
    wire::option_code,
};

use crate::renew::{byte, load_message, read_frame, Scratch, SCRATCH_SPACE};

#[btf_map]
static STORM_CONFIG: Array<StormConfig, 1> = Array::new();

#[btf_map]
static STORM_BUCKETS: Array<StormSet, { STORM_SETS as usize }> = Array::new();

#[btf_map]
static STORMS: LruHashMap<StormKey, StormRecord, { STORM_RECORDS as usize }> = LruHashMap::new();

#[btf_map]
static STORM_CUT: PerCpuArray<u64, { STORM_CUT_SLOTS as usize }> = PerCpuArray::new();

/// Relay-Forward header: type, hop count, link and peer addresses.
const RELAY_HEADER_LEN: usize = 34;
/// Longest DUID (RFC 9915 section 11.1).
const DUID_MAX: usize = dhcp6_common::renewal::DUID_MAX;
/// Most options looked through for the Relay Message, and in it for the Client ID.
const MAX_OPTIONS: usize = 16;

/// The limit, while storm protection is on.
#[inline(always)]
pub fn limit() -> Option<StormConfig> {
    let config = STORM_CONFIG.get_ptr(0)?;
    // SAFETY: the map's one entry, written whole by userspace.
    let config = unsafe { *config };
    config.is_on().then_some(config)
}

/// Whether this client's message, known by its source MAC on this interface, is cut: its
/// bucket is empty. A cut message is counted and its client recorded.
#[inline(always)]
pub fn cut_by_mac(ctx: &XdpContext, config: &StormConfig) -> bool {
    let Some(mac) = read_frame::<6>(ctx, 6) else { return false };
    let key = StormKey::mac(ctx.ingress_ifindex() as u32, mac);
    if passes(&key, config) {
        return false;
    }
    let mut id = [0u8; STORM_ID_BYTES];
    id[..6].copy_from_slice(&mac);
    record(&key, &id, 6, CUT_BY_MAC);
    true
}

/// CLOCK_MONOTONIC at the last tick (1 to 4 ms ago), nanoseconds: a bucket needs no finer
/// clock (it fills by the time between ticks at once), and the coarse one costs less to
/// read. The bucket reads it only when it runs dry (`StormBucket::take`).
#[inline(always)]
fn now() -> u64 {
    // SAFETY: a helper without arguments (Linux 5.11).
    unsafe { aya_ebpf::helpers::generated::bpf_ktime_get_coarse_ns() }
}

/// Takes a token from `key`'s bucket (a new client's is full); whether there was one.
#[inline(always)]
fn passes(key: &StormKey, config: &StormConfig) -> bool {
    let Some(set) = STORM_BUCKETS.get_ptr_mut(key.set()) else { return true };
    // SAFETY: the array's element; another CPU may count in the same set at once (see
    // `StormSet::take`).
    unsafe { (*set).take(key, now, config) }
}

/// Counts a cut message in `slot` and records its client (`id`, `len` bytes long).
#[inline(always)]
fn record(key: &StormKey, id: &[u8; STORM_ID_BYTES], len: u32, slot: u32) {
    crate::bump(&STORM_CUT, slot);
    let now = now();
    if let Some(r) = STORMS.get_ptr_mut(key) {
        // SAFETY: the map's value; concurrent CPUs may lose a count between them.
        unsafe {
            (*r).cut += 1;
            (*r).last_cut = now;
        }
        return;
    }
    let r = StormRecord { cut: 1, first_cut: now, last_cut: now, id: *id, id_len: len, _pad: 0 };
    let _ = STORMS.insert(key, &r, 0);
}

/// The job for a Relay-Forward to the server while storm protection is on: cut by its
/// client's DUID (the Client ID in its Relay Message), else handed to the AF_XDP hand-over.
/// A Relay-Forward XDP cannot read (too long for its scratch, options it does not find) is
/// not limited.
#[xdp]
pub fn dhcp6_storm_relayed(ctx: XdpContext) -> u32 {
    let Some((handover, frame)) = crate::job::taken() else {
        crate::count(Verdict::Dhcp6Passed as u32);
        return xdp_action::XDP_PASS;
    };
    if let Some(config) = limit() {
        if let Some(s) = SCRATCH_SPACE.get_ptr_mut(0) {
            // SAFETY: per-CPU scratch, this program run's alone.
            let s = unsafe { &mut *s };
            if cut_by_duid(&ctx, &frame, s, &config) {
                crate::trace::report(&ctx, TRACE_STORM, TRACE_STORM, handover.traced != 0);
                return xdp_action::XDP_DROP;
            }
        }
    }
    crate::job::hand_over(&ctx, jobs::TO_XSK, handover)
}

/// Whether a Relay-Forward is cut by its client's DUID.
#[inline(never)]
fn cut_by_duid(ctx: &XdpContext, frame: &crate::renew::Frame, s: &mut Scratch, config: &StormConfig) -> bool {
    let Ok(n) = load_message(ctx, frame, s, Verdict::Dhcp6Passed) else { return false };
    // The Relay Message option among the relay's, then the Client ID among the message's.
    let Some((msg_at, msg_len)) = find(s, RELAY_HEADER_LEN, n, option_code::RELAY_MSG) else { return false };
    let Some((duid_at, duid_len)) = find(s, msg_at + 4, msg_at + msg_len, option_code::CLIENTID) else {
        return false;
    };
    if duid_len == 0 || duid_len > DUID_MAX {
        return false;
    }
    let mut hash = FNV1A_START;
    let mut id = [0u8; STORM_ID_BYTES];
    for i in 0..DUID_MAX {
        if i >= duid_len {
            break;
        }
        let b = byte(s, duid_at + i);
        hash = fnv1a_step(hash, b);
        if i < STORM_ID_BYTES {
            id[i] = b;
        }
    }
    let key = StormKey::duid(hash);
    if passes(&key, config) {
        return false;
    }
    record(&key, &id, duid_len as u32, CUT_BY_DUID);
    true
}

/// The first option `code` in the options `s.req[start..end]`: where its content starts and
/// its length. `None` if absent or the options do not parse as far as it.
#[inline(always)]
fn find(s: &mut Scratch, start: usize, end: usize, code: u16) -> Option<(usize, usize)> {
    let mut off = start;
    for _ in 0..MAX_OPTIONS {
        if off + 4 > end {
            return None;
        }
        let c = crate::renew::be16(s, off) as u16;
        let len = crate::renew::be16(s, off + 2);
        if off + 4 + len > end {
            return None;
        }
        if c == code {
            return Some((off + 4, len));
        }
        off = crate::renew::launder(&mut s.parsed, off + 4 + len);
    }
    None
}
