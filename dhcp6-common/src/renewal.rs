//! The Renew/Rebind fast path: what userspace puts in the pinned maps and what the XDP program
//! reads from them to answer a renewal on the NIC.
//!
//! Userspace authorises each binding (one IA of one client) up to a deadline that it made
//! durable first: the store holds the lease until `deadline + valid`, so XDP may tell a client
//! `valid` seconds from any moment up to the deadline without telling it more than the store
//! holds. XDP stamps each renewal it answers into the binding's entry (`renewed_ns`);
//! userspace looks at the stamps of bindings whose deadline comes near, persists the later
//! expiry a stamp gives, and only then moves the deadline forward. (No report per renewal:
//! the answer stays a map lookup and a few writes, and userspace's work follows the number of
//! bindings, not the renewal rate.)
//!
//! Everything the Reply carries that XDP does not take from the request is encoded by
//! userspace with the same code that encodes the server's own replies, and kept here as
//! option bytes with their checksums: XDP copies, it does not encode.

/// Longest DUID (RFC 9915 section 11.1: 2 octets of type and at most 128 more).
pub const DUID_MAX: usize = 130;
/// Longest client DUID the lease map keys hold: every usual DUID (LLT 14, LL 10, UUID 18
/// bytes, EN with an identifier of up to 28). Clients with longer ones are served from
/// userspace; a short key keeps the map's hash, and the fast path, quick.
pub const KEY_DUID_MAX: usize = 34;
/// Room for one IA option with one address or prefix: IA_PD with an IAPREFIX is 4 + 12 + 29,
/// and a Prefix Exclude in the IAPREFIX (RFC 6603) 4 + 1 + up to 16 more.
pub const IA_MAX: usize = 72;
/// Room for the Server ID option: 4 + [`DUID_MAX`], rounded up.
pub const SERVER_ID_MAX: usize = 136;
/// Room for each of the DNS servers and domain search list options.
pub const OPTION_MAX: usize = 256;
/// Most IAs in a Renew or Rebind that XDP answers (an address and a prefix: what dhclient -N -P
/// and dhcpcd send); more go to userspace.
pub const MAX_IAS: usize = 2;
/// Longest Renew or Rebind (UDP payload) that XDP looks at.
pub const REQUEST_MAX: usize = 512;
/// Size of the XDP program's per-CPU scratch buffer, a power of two above [`REQUEST_MAX`].
pub const SCRATCH: usize = 1024;

/// How many bindings the lease map holds.
pub const LEASE_MAP_ENTRIES: u32 = 1 << 20;
/// How many interfaces the link map holds.
pub const LINK_MAP_ENTRIES: u32 = 64;

/// IA type of a binding: the option code's low byte.
/// A binding whose Renews (naming this server) XDP answers but not its Rebinds: a failover
/// pair's state leaves Rebinds to the partner (RFC 8156: a secondary in NORMAL).
pub const ENTRY_RENEW_ONLY: u8 = 1;
/// A binding whose IA option carries a Prefix Exclude (RFC 6603): XDP answers only the
/// renewals whose ORO asks for OPTION_PD_EXCLUDE, as the server would include it only then;
/// the others go to userspace.
pub const ENTRY_PD_EXCLUDE: u8 = 2;

pub const IA_TYPE_NA: u8 = 3;
pub const IA_TYPE_PD: u8 = 25;

/// One IA of one client: the lease map's key.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeaseKey {
    /// The IAID, in host order.
    pub iaid: u32,
    /// [`IA_TYPE_NA`] or [`IA_TYPE_PD`].
    pub ia_type: u8,
    /// How many bytes of `duid` are the client's DUID; the rest are zero.
    pub duid_len: u8,
    pub duid: [u8; KEY_DUID_MAX],
}

impl LeaseKey {
    /// The key for a client DUID (at most [`KEY_DUID_MAX`] bytes), IAID and IA type.
    pub fn new(duid: &[u8], iaid: u32, ia_type: u8) -> Option<LeaseKey> {
        if duid.is_empty() || duid.len() > KEY_DUID_MAX {
            return None;
        }
        let mut key = LeaseKey { iaid, ia_type, duid_len: duid.len() as u8, duid: [0; KEY_DUID_MAX] };
        key.duid[..duid.len()].copy_from_slice(duid);
        Some(key)
    }

    pub fn duid(&self) -> &[u8] {
        &self.duid[..usize::from(self.duid_len).min(KEY_DUID_MAX)]
    }
}

/// What XDP needs to answer a renewal of one binding: the lease map's value.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseEntry {
    /// CLOCK_MONOTONIC nanoseconds up to which a renewal may be answered: the durable expiry
    /// minus the valid lifetime the reply tells.
    pub deadline_ns: u64,
    /// CLOCK_MONOTONIC nanoseconds of the last renewal XDP answered; 0 if none.
    pub renewed_ns: u64,
    /// The interface the client's link is on.
    pub ifindex: u32,
    /// Ones' complement sum of the Client ID option (code, length, DUID) as the reply echoes it.
    pub client_id_sum: u32,
    /// Ones' complement sum of `ia[..ia_len]`.
    pub ia_sum: u32,
    /// The address, or the prefix, the IA holds.
    pub resource: [u8; 16],
    /// 128 for an address, the prefix length for a prefix.
    pub prefix_len: u8,
    /// Bytes of `ia` in use.
    pub ia_len: u8,
    /// [`ENTRY_RENEW_ONLY`], or 0.
    pub flags: u8,
    pub _pad: u8,
    /// The IA option of the Reply, exactly as the server encodes it.
    pub ia: [u8; IA_MAX],
}

/// What XDP needs of an interface it answers on: the link map's value, keyed by ifindex.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkEntry {
    /// The interface's MAC address, the Reply's Ethernet source.
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
    /// The interface's link-local address, the Reply's IPv6 source for multicast requests.
    pub link_local: [u8; 16],
    pub server_id_len: u16,
    pub dns_len: u16,
    pub domains_len: u16,
    /// When both options fit in `dns` one after the other (held there so, the domain list
    /// right after the DNS servers): their length, and a Reply asking for both writes them
    /// in one piece. 0: they do not (each is written from its own field). (Once padding:
    /// entries written before are 0, and still answered right.)
    pub both_len: u16,
    pub server_id_sum: u32,
    pub dns_sum: u32,
    pub domains_sum: u32,
    /// The Server ID option (code, length, DUID).
    pub server_id: [u8; SERVER_ID_MAX],
    /// The DNS Recursive Name Server option, sent when the client's ORO asks; `dns_len` 0: none
    /// (followed by the domain list when `both_len` says so).
    pub dns: [u8; OPTION_MAX],
    /// The Domain Search List option, sent when the client's ORO asks; `domains_len` 0: none.
    pub domains: [u8; OPTION_MAX],
}

/// Ones' complement arithmetic of the Internet checksum (RFC 1071), as XDP and userspace both
/// compute it: sums of big-endian 16-bit words, folded.
pub mod checksum {
    /// Adds two partial sums.
    #[inline(always)]
    pub const fn add(a: u32, b: u32) -> u32 {
        let (s, carry) = a.overflowing_add(b);
        s + carry as u32
    }

    /// Folds a partial sum to 16 bits.
    #[inline(always)]
    pub const fn fold(mut s: u32) -> u16 {
        s = (s & 0xffff) + (s >> 16);
        s = (s & 0xffff) + (s >> 16);
        s as u16
    }

    /// The sum of `bytes` placed at an odd offset: the same sum with its bytes swapped.
    #[inline(always)]
    pub const fn at_odd_offset(s: u32) -> u32 {
        fold(s).swap_bytes() as u32
    }

    /// The partial sum of `bytes` placed at an even offset.
    pub fn sum(bytes: &[u8]) -> u32 {
        let mut s = 0u32;
        let mut chunks = bytes.chunks_exact(2);
        for c in &mut chunks {
            s = add(s, u32::from(u16::from_be_bytes([c[0], c[1]])));
        }
        if let [last] = chunks.remainder() {
            s = add(s, u32::from(*last) << 8);
        }
        fold(s) as u32
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `repr(C)` data of integers and byte arrays, with every padding byte an
    // explicit field, so that any bit pattern is a valid value.
    unsafe impl aya::Pod for super::LeaseKey {}
    // SAFETY: as for the type above.
    unsafe impl aya::Pod for super::LeaseEntry {}
    // SAFETY: as for the type above.
    unsafe impl aya::Pod for super::LinkEntry {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(core::mem::size_of::<LeaseKey>(), 4 + 1 + 1 + KEY_DUID_MAX);
        assert_eq!(core::mem::size_of::<LeaseKey>() % 8, 0, "whole words: the key is hashed as it is");
        assert_eq!(core::mem::size_of::<LeaseEntry>(), 8 + 8 + 4 + 4 + 4 + 16 + 1 + 1 + 2 + IA_MAX);
        assert_eq!(core::mem::size_of::<LinkEntry>(), 6 + 2 + 16 + 8 + 12 + SERVER_ID_MAX + 2 * OPTION_MAX);
    }

    #[test]
    fn checksum_of_split_data_equals_checksum_of_whole() {
        let data: [u8; 11] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        let whole = checksum::sum(&data);
        // A piece at an odd offset contributes its sum byte-swapped.
        let split = checksum::add(checksum::sum(&data[..3]), checksum::at_odd_offset(checksum::sum(&data[3..])));
        assert_eq!(checksum::fold(whole), checksum::fold(split));
    }
}
