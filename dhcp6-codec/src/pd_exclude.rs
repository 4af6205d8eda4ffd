//! OPTION_PD_EXCLUDE (67, RFC 6603): the one prefix out of a delegated prefix that the
//! delegating router keeps for its link to the requesting router (a CPE), sent inside the
//! IAPREFIX option it excludes from.
//!
//! The option carries the excluded prefix relative to the delegated one (RFC 6603 section
//! 4.2): its length, then the bits of the excluded prefix past the delegated prefix's length
//! (the "IPv6 subnet ID"), shifted left to an octet boundary and padded with zeros. Its value
//! means nothing without the delegated prefix: [`PdExclude::new`] encodes one for a delegated
//! prefix, [`PdExclude::excluded`] reads it back against one.
//!
//! ```
//! use dhcp6_codec::pd_exclude::PdExclude;
//!
//! // 2001:db8:8000:100::/64 excluded out of the delegated 2001:db8:8000:100::/56: subnet
//! // ID 0 (8 bits, one octet).
//! let delegated = ("2001:db8:8000:100::".parse().unwrap(), 56);
//! let x = PdExclude::new(delegated, ("2001:db8:8000:100::".parse().unwrap(), 64)).unwrap();
//! assert_eq!((x.prefix_len, x.subnet_id.as_slice()), (64, &[0u8][..]));
//! assert_eq!(x.excluded(delegated), Some(("2001:db8:8000:100::".parse().unwrap(), 64)));
//! ```

use core::net::Ipv6Addr;

/// OPTION_PD_EXCLUDE's content (RFC 6603 section 4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdExclude {
    /// The excluded prefix's length, past the delegated prefix's.
    pub prefix_len: u8,
    /// The excluded prefix's bits from the delegated prefix's length on, left-aligned:
    /// `1 + (prefix_len - delegated_len - 1) / 8` octets.
    pub subnet_id: Vec<u8>,
}

/// Bit `i` (0: the most significant) of an address.
fn bit(address: u128, i: u32) -> u8 {
    ((address >> (127 - i)) & 1) as u8
}

impl PdExclude {
    /// The option excluding `excluded` (address, length) from `delegated` (address, length):
    /// `None` unless the excluded prefix lies inside the delegated one and is longer.
    pub fn new(delegated: (Ipv6Addr, u8), excluded: (Ipv6Addr, u8)) -> Option<PdExclude> {
        let (d, d_len) = (u128::from(delegated.0), u32::from(delegated.1));
        let (x, x_len) = (u128::from(excluded.0), u32::from(excluded.1));
        if d_len >= x_len || x_len > 128 {
            return None;
        }
        let mask = |len: u32| if len == 0 { 0 } else { u128::MAX << (128 - len) };
        if x & mask(d_len) != d & mask(d_len) {
            return None;
        }
        let bits = x_len - d_len;
        let mut subnet_id = vec![0u8; (1 + (bits - 1) / 8) as usize];
        for i in 0..bits {
            subnet_id[(i / 8) as usize] |= bit(x, d_len + i) << (7 - i % 8);
        }
        Some(PdExclude { prefix_len: excluded.1, subnet_id })
    }

    /// The excluded prefix (address, length) this option names out of `delegated`: `None` if
    /// it cannot be one of it (its length not past the delegated one's, or its subnet ID not
    /// of the length RFC 6603 gives).
    pub fn excluded(&self, delegated: (Ipv6Addr, u8)) -> Option<(Ipv6Addr, u8)> {
        let (d_len, x_len) = (u32::from(delegated.1), u32::from(self.prefix_len));
        if d_len >= x_len || x_len > 128 {
            return None;
        }
        let bits = x_len - d_len;
        if self.subnet_id.len() != (1 + (bits - 1) / 8) as usize {
            return None;
        }
        let mask = if d_len == 0 { 0 } else { u128::MAX << (128 - d_len) };
        let mut x = u128::from(delegated.0) & mask;
        for i in 0..bits {
            let b = (self.subnet_id[(i / 8) as usize] >> (7 - i % 8)) & 1;
            x |= u128::from(b) << (127 - (d_len + i));
        }
        Some((Ipv6Addr::from(x), self.prefix_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn the_subnet_id_is_the_bits_past_the_delegated_length_left_aligned() {
        // RFC 6603's example shape: a /56 delegated, a /64 out of it (its 8 bits 0x01).
        let x = PdExclude::new((a("2001:db8:1:200::"), 56), (a("2001:db8:1:201::"), 64)).unwrap();
        assert_eq!((x.prefix_len, x.subnet_id.clone()), (64, vec![0x01]));
        // /60 out of /57: three bits (101) shifted to the top of one octet.
        let x = PdExclude::new((a("2001:db8::"), 57), (a("2001:db8:0:50::"), 60)).unwrap();
        assert_eq!(x.subnet_id, vec![0b1010_0000]);
        assert_eq!(x.excluded((a("2001:db8::"), 57)), Some((a("2001:db8:0:50::"), 60)));
        // 9 bits take two octets.
        let x = PdExclude::new((a("2001:db8::"), 48), (a("2001:db8:0:ff80::"), 57)).unwrap();
        assert_eq!(x.subnet_id, vec![0xff, 0x80]);
        // A /128 out of a /64: eight octets.
        let x = PdExclude::new((a("2001:db8::"), 64), (a("2001:db8::1"), 128)).unwrap();
        assert_eq!(x.subnet_id, vec![0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn an_excluded_prefix_outside_or_not_longer_is_refused() {
        assert_eq!(PdExclude::new((a("2001:db8:1::"), 56), (a("2001:db8:2::"), 64)), None, "outside");
        assert_eq!(PdExclude::new((a("2001:db8:1::"), 56), (a("2001:db8:1::"), 56)), None, "as long");
        let x = PdExclude { prefix_len: 64, subnet_id: vec![1, 2] };
        assert_eq!(x.excluded((a("2001:db8:1::"), 56)), None, "a subnet ID of the wrong length");
        assert_eq!(x.excluded((a("2001:db8:1::"), 64)), None, "not past the delegated length");
    }

    #[test]
    fn every_excluded_prefix_round_trips() {
        let delegated = a("2001:db8:8000:a00::");
        for d_len in [40u8, 48, 56, 57, 63] {
            for x_len in d_len + 1..=128 {
                let x = u128::from(delegated) | (0x5a5a_5a5a_5a5a_5a5a_5a5a_5a5a_5a5a_5a5au128 >> d_len);
                let mask = u128::MAX << (128 - u32::from(x_len));
                let excluded = (Ipv6Addr::from(x & mask), x_len);
                let d = (Ipv6Addr::from(u128::from(delegated) & (u128::MAX << (128 - u32::from(d_len)))), d_len);
                let option = PdExclude::new(d, excluded).unwrap();
                assert_eq!(option.excluded(d), Some(excluded), "/{d_len} /{x_len}");
            }
        }
    }
}
