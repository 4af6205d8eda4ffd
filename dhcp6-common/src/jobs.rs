//! The XDP jobs: one entry program (`dhcp6_xdp`) classifies every frame, counts it and sheds
//! Solicits, then hands each DHCPv6 job to a program of its own through a tail call, with what
//! it found in the per-CPU [`Handover`]. Each program is verified on its own, so the verifier
//! no longer walks every job with every state the paths before it left.

use crate::relay::Vlans;

/// Answer a Renew or Rebind from the lease map (`dhcp6_renew`).
pub const RENEW: u32 = 0;
/// Relay a client's message up as a Relay-Forward (`dhcp6_relay_forward`).
pub const RELAY_FORWARD: u32 = 1;
/// Take a Relay-Reply from a server of ours down to its client (`dhcp6_relay_reply`).
pub const RELAY_REPLY: u32 = 2;
/// Hand a client's message to dhcp6d's AF_XDP socket (`dhcp6_to_xsk`).
pub const TO_XSK: u32 = 3;
/// Cut a Relay-Forward by its client's DUID if the client storms, else hand it on to
/// [`TO_XSK`] (`dhcp6_storm_relayed`, only while storm protection is on).
pub const STORM_RELAYED: u32 = 4;
/// Slots of the program array.
pub const SLOTS: u32 = 5;

/// Each job's slot and program name in the object.
pub const PROGRAMS: [(u32, &str); SLOTS as usize] = [
    (RENEW, "dhcp6_renew"),
    (RELAY_FORWARD, "dhcp6_relay_forward"),
    (RELAY_REPLY, "dhcp6_relay_reply"),
    (TO_XSK, "dhcp6_to_xsk"),
    (STORM_RELAYED, "dhcp6_storm_relayed"),
];

/// What the entry program found in a frame, for the job it hands the frame to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handover {
    /// The frame's VLAN IDs (0: no tag).
    pub vlans: Vlans,
    /// How many VLAN tags precede the IPv6 header (0 to 2).
    pub tags: u32,
    /// The DHCPv6 message type byte.
    pub msg_type: u32,
    /// The verdict counted if the job does not take the frame (the AF_XDP hand-over's).
    pub verdict: u32,
    /// Nonzero: the frame is traced ([`crate::trace`]); the job reports what it does with it
    /// even once the frame no longer shows the client's MAC (a Relay-Forward).
    pub traced: u32,
}

const _: () = assert!(core::mem::size_of::<Handover>() == 20);
