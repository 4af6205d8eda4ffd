//! The relay's XDP fast path: what userspace puts in the maps and what the XDP program reads
//! to relay a client's message up as a Relay-Forward, and a Relay-Reply back down, on its own.
//!
//! Userspace owns every decision that is not per packet: it encodes each access interface's
//! relay header and options ([`RelayLink::head`], with the places XDP fills in per client),
//! and it picks the server of each bucket of clients ([`RelayGroup::buckets`], rewritten when
//! a server goes down or comes back). XDP hashes the client's DUID to its bucket with
//! [`bucket`], the same function userspace uses for the messages it relays itself, so a
//! client reaches the same server whichever path carries it.
//!
//! XDP counts what it sends to and gets from each server, and reports every Reply it carries
//! down through a ring buffer ([`RelayReport`]): from those userspace keeps the user entries
//! and the routes of delegated prefixes exactly as if it had relayed the Reply itself.

/// Buckets of clients per group (a power of two).
pub const RELAY_BUCKETS: usize = 1 << 14;
/// Most server groups XDP relays for.
pub const MAX_GROUPS: u32 = 16;
/// Most servers in one group XDP relays to.
pub const MAX_GROUP_SERVERS: u32 = 16;
/// A bucket whose clients no server takes (every server of the group is down).
pub const NO_SERVER: u8 = 0xff;
/// Room for the relay header, the options the relay inserts and the Relay Message option's
/// header: 34 + Interface-ID (4 + 32) + Remote-ID (8 + 64) + Client Link-Layer Address (4 + 8)
/// + 4, rounded up.
pub const RELAY_HEAD_MAX: usize = 160;
/// Longest Interface-ID XDP matches on a Relay-Reply.
pub const INTERFACE_ID_MAX: usize = 32;
/// Longest message a [`RelayReport`] carries (as long as the longest XDP relays).
pub const REPORT_MSG_MAX: usize = crate::renewal::REQUEST_MAX;
/// No such place in [`RelayLink::head`].
pub const NOWHERE: u16 = 0xffff;

/// How many access interfaces (and VLANs of theirs) the relay link map holds.
pub const RELAY_LINK_ENTRIES: u32 = 16384;
/// Words of the access interface bitmap: interfaces with an ifindex below 64 times this are
/// marked there; those above are looked up in the link map whatever their bit.
pub const ACCESS_BITMAP_WORDS: u32 = 1 << 14;

/// The word and bit of `ifindex` in the access interface bitmap, if it has one.
pub const fn access_bit(ifindex: u32) -> Option<(u32, u64)> {
    if ifindex < 64 * ACCESS_BITMAP_WORDS {
        Some((ifindex / 64, 1 << (ifindex % 64)))
    } else {
        None
    }
}

/// How many clients' MAC addresses XDP remembers to send Relay-Replies down to (least
/// recently used go).
pub const CLIENT_MAC_ENTRIES: u32 = 1 << 18;
/// Bytes of the report ring (a power of two; about 7 000 Replies).
pub const RELAY_REPORT_RING_BYTES: u32 = 4 << 20;
/// Unread bytes in the report ring from which XDP wakes dhcp6d; below it, reports wait for
/// dhcp6d's next look (every [`RELAY_REPORT_EVERY_MS`]): a wake-up per Reply would cost the
/// relay more than relaying it.
pub const RELAY_REPORT_WAKE_BYTES: u64 = (RELAY_REPORT_RING_BYTES / 16) as u64;
/// How often dhcp6d reads the report ring, in milliseconds: the longest a delegated prefix's
/// route waits after its Reply went.
pub const RELAY_REPORT_EVERY_MS: u64 = 100;

/// The VLAN IDs of a frame's tags: the outer tag (an 802.1ad S-tag, or the only tag) and the
/// inner one (the 802.1Q C-tag under an S-tag); 0 where there is no such tag. Priority bits are
/// not part of it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vlans {
    pub outer: u16,
    pub inner: u16,
}

impl Vlans {
    /// An untagged frame's.
    pub const NONE: Vlans = Vlans { outer: 0, inner: 0 };

    /// How many tags a frame with these VLANs carries.
    #[inline(always)]
    pub const fn tags(&self) -> usize {
        if self.outer == 0 {
            0
        } else if self.inner == 0 {
            1
        } else {
            2
        }
    }
}

/// The tags of a frame with these VLANs as the relay writes them after the MAC addresses,
/// outer first, and how many of the bytes are used (4 per tag): 802.1Q for a lone tag,
/// 802.1ad over 802.1Q for two. (Frames coming in are matched by VLAN ID whatever their TPIDs.)
#[inline(always)]
pub const fn vlan_tags(vlans: Vlans) -> ([u8; 8], usize) {
    use crate::wire::frame::{ETHERTYPE_QINQ, ETHERTYPE_VLAN};
    const fn tag(tpid: u16, id: u16) -> [u8; 4] {
        let (t, i) = (tpid.to_be_bytes(), id.to_be_bytes());
        [t[0], t[1], i[0], i[1]]
    }
    match vlans.tags() {
        0 => ([0; 8], 0),
        1 => {
            let a = tag(ETHERTYPE_VLAN, vlans.outer);
            ([a[0], a[1], a[2], a[3], 0, 0, 0, 0], 4)
        }
        _ => {
            let (a, b) = (tag(ETHERTYPE_QINQ, vlans.outer), tag(ETHERTYPE_VLAN, vlans.inner));
            ([a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]], 8)
        }
    }
}

/// The relay link map's key: an access interface, and the VLANs of the clients it relays
/// there (none: its untagged clients).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AccessKey {
    pub ifindex: u32,
    pub vlans: Vlans,
}

/// One access interface (and VLANs) XDP relays on: the relay link map's value.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayLink {
    /// The interface's MAC address, the Ethernet source of what goes down to clients.
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
    /// The interface's link-local address, the IPv6 source of what goes down to clients.
    pub link_local: [u8; 16],
    /// The group of servers it relays to (index into the group map).
    pub group: u32,
    /// Bytes of `head` in use.
    pub head_len: u16,
    /// Where in `head` XDP writes the client's MAC as 17 characters, colon-separated lowercase
    /// hex (a Remote-ID template's `{mac}`), or [`NOWHERE`].
    pub mac_hex_at: u16,
    /// Where in `head` XDP writes the client's MAC as 6 bytes (the Client Link-Layer Address
    /// option's address), or [`NOWHERE`].
    pub mac_at: u16,
    pub _pad2: u16,
    /// The Relay-Forward up to its Relay Message option's header: msg-type, hop-count 0,
    /// link-address, the peer-address (XDP writes the client's), the options, then option 9's
    /// code and length (XDP writes the length).
    pub head: [u8; RELAY_HEAD_MAX],
}

/// Where in [`RelayLink::head`] the peer-address goes.
pub const HEAD_PEER_AT: usize = 18;

/// The server of each bucket of a group's clients: the group map's value.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayGroup {
    /// Index of the bucket's server in the group, or [`NO_SERVER`].
    pub buckets: [u8; RELAY_BUCKETS],
}

/// One server of a group: the server map's value, at `group * MAX_GROUP_SERVERS + index`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayServer {
    pub address: [u8; 16],
    /// The relay's address toward it: the Relay-Forward's source, and the address its
    /// Relay-Replies must be sent to for XDP to take them.
    pub source: [u8; 16],
}

/// The key of the Interface-ID map (-> [`AccessKey`] of the access interface and VLANs it
/// names).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceIdKey {
    pub len: u32,
    /// The Interface-ID, zero past `len`.
    pub id: [u8; INTERFACE_ID_MAX],
}

impl InterfaceIdKey {
    pub fn new(id: &[u8]) -> Option<InterfaceIdKey> {
        if id.is_empty() || id.len() > INTERFACE_ID_MAX {
            return None;
        }
        let mut key = InterfaceIdKey { len: id.len() as u32, id: [0; INTERFACE_ID_MAX] };
        key.id[..id.len()].copy_from_slice(id);
        Some(key)
    }
}

/// The key of the client MAC map: a client's link-local address on an access interface (and
/// VLANs: the same link-local may be on two).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientMacKey {
    pub ifindex: u32,
    pub vlans: Vlans,
    pub peer: [u8; 16],
}

/// [`RelayReport::kind`]: a Reply XDP carried down.
pub const REPORT_REPLY: u32 = 0;
/// [`RelayReport::kind`]: a Release or Decline XDP carried up (userspace forgets what it gives
/// back when its Reply comes).
pub const REPORT_GIVING_BACK: u32 = 1;

/// A message XDP relayed that userspace learns from: a Reply carried down to a client, or a
/// Release or Decline carried up.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayReport {
    /// [`REPORT_REPLY`] or [`REPORT_GIVING_BACK`].
    pub kind: u32,
    /// The VLANs it went out or came in with.
    pub vlans: Vlans,
    /// The access interface it went out of, or came in on.
    pub ifindex: u32,
    /// Bytes of `msg` in use.
    pub len: u32,
    /// The client's address (the Relay-Reply's peer-address).
    pub peer: [u8; 16],
    /// The client's MAC (two bytes unused), as XDP learnt it from the client's frames.
    pub mac: [u8; 8],
    /// The message, as the client got it or sent it.
    pub msg: [u8; REPORT_MSG_MAX],
}

/// FNV-1a, 64 bits: a stable hash of the client's DUID (no keys, so that a client keeps its
/// bucket, and its server, across restarts).
#[inline(always)]
pub const fn fnv1a_step(h: u64, byte: u8) -> u64 {
    (h ^ byte as u64).wrapping_mul(0x0100_0000_01b3)
}

/// FNV-1a's starting value.
pub const FNV1A_START: u64 = 0xcbf2_9ce4_8422_2325;

/// The bucket of a client whose DUID hashed to `hash` (FNV-1a's low bits are its weakest:
/// fold the high half in).
#[inline(always)]
pub const fn bucket_of(hash: u64) -> usize {
    ((hash ^ (hash >> 32)) as usize) & (RELAY_BUCKETS - 1)
}

/// The bucket of the client with this DUID (empty if its message names none).
pub fn bucket(duid: &[u8]) -> usize {
    let mut h = FNV1A_START;
    for b in duid {
        h = fnv1a_step(h, *b);
    }
    bucket_of(h)
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `repr(C)` data of integers and byte arrays, with every padding byte an
    // explicit field, so that any bit pattern is a valid value.
    unsafe impl aya::Pod for super::RelayLink {}
    // SAFETY: as for the type above.
    unsafe impl aya::Pod for super::RelayGroup {}
    // SAFETY: as for the type above.
    unsafe impl aya::Pod for super::RelayServer {}
    // SAFETY: as for the type above.
    unsafe impl aya::Pod for super::InterfaceIdKey {}
    // SAFETY: as for the type above.
    unsafe impl aya::Pod for super::ClientMacKey {}
    // SAFETY: as for the type above.
    unsafe impl aya::Pod for super::AccessKey {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(core::mem::size_of::<RelayLink>(), 6 + 2 + 16 + 4 + 8 + RELAY_HEAD_MAX);
        assert_eq!(core::mem::size_of::<RelayServer>(), 32);
        assert_eq!(core::mem::size_of::<InterfaceIdKey>(), 4 + INTERFACE_ID_MAX);
        assert_eq!(core::mem::size_of::<ClientMacKey>(), 24);
        assert_eq!(core::mem::size_of::<AccessKey>(), 8);
        assert_eq!(core::mem::size_of::<RelayReport>(), 8 + 24 + 8 + REPORT_MSG_MAX);
    }

    #[test]
    fn vlan_tags_are_802_1q_alone_and_802_1ad_over_802_1q() {
        assert_eq!(vlan_tags(Vlans::NONE).1, 0);
        assert_eq!(vlan_tags(Vlans { outer: 100, inner: 0 }), ([0x81, 0, 0, 100, 0, 0, 0, 0], 4));
        assert_eq!(vlan_tags(Vlans { outer: 100, inner: 200 }), ([0x88, 0xa8, 0, 100, 0x81, 0, 0, 200], 8));
    }

    #[test]
    fn buckets_spread_duids_evenly() {
        let mut counts = [0u32; 16];
        for n in 0..64_000u32 {
            let mut duid = [0u8, 3, 0, 1, 0, 0, 0, 0];
            duid[4..].copy_from_slice(&n.to_be_bytes());
            counts[bucket(&duid) % 16] += 1;
        }
        assert!(counts.iter().all(|c| (3600..4400).contains(c)), "{counts:?}");
    }
}
