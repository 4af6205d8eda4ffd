//! Shedding: while dhcp6d says it is overloaded, Solicits to the server are dropped here
//! (counted), so that the exchanges under way reach it.

use aya_ebpf::{btf_maps::PerCpuArray, macros::btf_map};
use dhcp6_common::counters::{SHED_COUNT, SHED_SHARE, SHED_SHARE_ONE, SHED_SLOTS, SHED_UNTIL};

#[btf_map]
static SHED: PerCpuArray<u64, { SHED_SLOTS as usize }> = PerCpuArray::new();

/// Whether this Solicit is shed: dhcp6d asked for a share of them to be, until a time not yet
/// come, and this one falls in the share. A shed Solicit is counted.
#[inline(always)]
pub fn shed() -> bool {
    let shed = shedding();
    if shed {
        crate::bump(&SHED, SHED_COUNT);
    }
    shed
}

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
