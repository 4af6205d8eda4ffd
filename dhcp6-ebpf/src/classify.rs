//! The entry program: classifies each frame, counts it, cuts storming clients' messages,
//! sheds Solicits, and hands the DHCPv6
//! jobs to their programs ([`crate::job`]).

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use dhcp6_common::{
    counters::Verdict,
    jobs::{self, Handover},
    relay::{AccessKey, Vlans},
    trace::{TRACE_SHED, TRACE_STORM},
    wire::{frame::*, CLIENT_PORT, SERVER_PORT},
    MessageType,
};

use crate::{count, job::hand_over, read_u16, read_u8, relay, shed, storm, trace};

#[xdp]
pub fn dhcp6_xdp(ctx: XdpContext) -> u32 {
    let mut frame = match classify(&ctx) {
        Ok(frame) => frame,
        Err(verdict) => {
            count(verdict as u32);
            return xdp_action::XDP_PASS;
        }
    };
    let msg_type = frame.handover.msg_type as u8;
    crate::bump(&crate::MSG_TYPE_COUNTS, u32::from(msg_type));
    let traced = trace::wanted(&ctx);
    frame.handover.traced = u32::from(traced);
    if frame.dst_port != SERVER_PORT {
        passed(&ctx, Verdict::Dhcp6Passed, traced);
        return xdp_action::XDP_PASS;
    }
    // A Relay-Reply is known by its source, a server of ours, whichever interface it comes in
    // on; a client's message by the access interface it comes in on.
    if msg_type == MessageType::RelayRepl as u8 {
        return hand_over(&ctx, jobs::RELAY_REPLY, frame.handover);
    }
    // Clients' messages take a token from their client's bucket first, whichever job would
    // take them.
    let limit = storm::limit();
    if let Some(limit) = &limit {
        if relay::takes_up(msg_type) && storm::cut_by_mac(&ctx, limit) {
            trace::report(&ctx, TRACE_STORM, TRACE_STORM, traced);
            return xdp_action::XDP_DROP;
        }
    }
    let ifindex = ctx.ingress_ifindex() as u32;
    if relay::may_be_access(ifindex) && relay::link(&AccessKey { ifindex, vlans: frame.handover.vlans }).is_some() {
        if !relay::takes_up(msg_type) {
            passed(&ctx, Verdict::RelayUnfit, traced);
            return xdp_action::XDP_PASS;
        }
        return hand_over(&ctx, jobs::RELAY_FORWARD, frame.handover);
    }
    // A Relay-Forward's client is known only inside it: its job looks, then hands it on.
    if limit.is_some() && msg_type == MessageType::RelayForw as u8 {
        return hand_over(&ctx, jobs::STORM_RELAYED, frame.handover);
    }
    if msg_type == MessageType::Solicit as u8 && shed::shed() {
        trace::report(&ctx, TRACE_SHED, TRACE_SHED, traced);
        return xdp_action::XDP_DROP;
    }
    if msg_type == MessageType::Renew as u8 || msg_type == MessageType::Rebind as u8 {
        return hand_over(&ctx, jobs::RENEW, frame.handover);
    }
    hand_over(&ctx, jobs::TO_XSK, frame.handover)
}

/// Counts a DHCPv6 frame passed with `verdict`, and reports it if it is traced.
#[inline(always)]
fn passed(ctx: &XdpContext, verdict: Verdict, traced: bool) {
    count(verdict as u32);
    trace::report(ctx, verdict as u32, verdict as u32, traced);
}

/// A DHCPv6 frame: what the jobs are handed, and which port it is for.
struct Classified {
    handover: Handover,
    dst_port: u16,
}

/// The DHCPv6 message type and headers of the frame, or the verdict that says why it is not
/// one.
#[inline(always)]
fn classify(ctx: &XdpContext) -> Result<Classified, Verdict> {
    let mut offset = ETH_HEADER_LEN - 2;
    let mut ethertype = read_u16(ctx, offset).ok_or(Verdict::NotIpv6)?;
    let mut ids = [0u16; MAX_VLAN_TAGS];
    let mut tags = 0;
    for id in &mut ids {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        *id = read_u16(ctx, offset + 2).ok_or(Verdict::NotIpv6)? & 0x0fff;
        offset += VLAN_TAG_LEN;
        tags += 1;
        ethertype = read_u16(ctx, offset).ok_or(Verdict::NotIpv6)?;
    }
    if ethertype != ETHERTYPE_IPV6 {
        return Err(Verdict::NotIpv6);
    }
    let ip = offset + 2;
    if crate::at(ctx, ip, IPV6_HEADER_LEN).is_none() {
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
    let handover = Handover {
        vlans: Vlans { outer: ids[0], inner: ids[1] },
        tags,
        msg_type: u32::from(msg_type),
        // What the AF_XDP hand-over counts if it does not take the frame.
        verdict: Verdict::Dhcp6Passed as u32,
        traced: 0,
    };
    Ok(Classified { handover, dst_port })
}
