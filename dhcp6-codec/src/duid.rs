//! DHCP Unique Identifiers (RFC 9915 section 11).
//!
//! A DUID is kept as the bytes it came in (it is the key of every binding), and read through
//! [`Duid::kind`] when its structure matters.

use core::fmt;

use crate::DecodeError;

/// DUID type codes (RFC 9915 section 11.1; RFC 6355 for DUID-UUID).
pub mod duid_type {
    pub const LLT: u16 = 1;
    pub const EN: u16 = 2;
    pub const LL: u16 = 3;
    pub const UUID: u16 = 4;
}

/// Longest DUID: 2 bytes of type and 128 of identifier (RFC 9915 section 11.1).
pub const MAX_DUID_LEN: usize = 130;

/// A validated DUID, borrowed from the message (or from the server's own identity).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Duid<'a>(&'a [u8]);

/// The structure of a DUID, by type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuidKind<'a> {
    /// DUID-LLT: hardware type, time (seconds since 2000-01-01 UTC, modulo 2^32), link-layer address.
    Llt { hw_type: u16, time: u32, link_layer_address: &'a [u8] },
    /// DUID-EN: IANA enterprise number and an identifier it assigns.
    En { enterprise_number: u32, identifier: &'a [u8] },
    /// DUID-LL: hardware type and link-layer address.
    Ll { hw_type: u16, link_layer_address: &'a [u8] },
    /// DUID-UUID (RFC 6355).
    Uuid(&'a [u8; 16]),
    /// A type this codec does not know: kept whole.
    Other { duid_type: u16, data: &'a [u8] },
}

impl<'a> Duid<'a> {
    /// Checks that `bytes` is a DUID of a sensible length for its type.
    pub fn new(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() < 2 {
            return Err(DecodeError::InvalidDuid("shorter than its 2-byte type"));
        }
        if bytes.len() > MAX_DUID_LEN {
            return Err(DecodeError::InvalidDuid("longer than 130 bytes"));
        }
        let min = match u16::from_be_bytes([bytes[0], bytes[1]]) {
            duid_type::LLT => 8,
            duid_type::EN => 6,
            duid_type::LL => 4,
            duid_type::UUID => 18,
            _ => 2,
        };
        if bytes.len() < min {
            return Err(DecodeError::InvalidDuid("too short for its type"));
        }
        if u16::from_be_bytes([bytes[0], bytes[1]]) == duid_type::UUID && bytes.len() != 18 {
            return Err(DecodeError::InvalidDuid("DUID-UUID is not 18 bytes"));
        }
        Ok(Duid(bytes))
    }

    /// The DUID as it stands on the wire, type included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    pub fn duid_type(&self) -> u16 {
        u16::from_be_bytes([self.0[0], self.0[1]])
    }

    /// The DUID's fields; lengths were checked by [`Duid::new`].
    pub fn kind(&self) -> DuidKind<'a> {
        let b = self.0;
        let be16 = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let be32 = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        match self.duid_type() {
            duid_type::LLT => DuidKind::Llt { hw_type: be16(2), time: be32(4), link_layer_address: &b[8..] },
            duid_type::EN => DuidKind::En { enterprise_number: be32(2), identifier: &b[6..] },
            duid_type::LL => DuidKind::Ll { hw_type: be16(2), link_layer_address: &b[4..] },
            duid_type::UUID => match <&[u8; 16]>::try_from(&b[2..]) {
                Ok(uuid) => DuidKind::Uuid(uuid),
                // Unreachable: `new` admits DUID-UUIDs of exactly 18 bytes only.
                Err(_) => DuidKind::Other { duid_type: duid_type::UUID, data: &b[2..] },
            },
            other => DuidKind::Other { duid_type: other, data: &b[2..] },
        }
    }
}

/// Colon-separated hex, the way tshark and Kea print byte strings.
pub struct Hex<'a>(pub &'a [u8]);

/// The bytes of hex text, colons between bytes allowed (`00:01:0a` or `00010a`); `None` if it
/// is not whole bytes of hex digits.
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(s.len() / 2);
    let mut high: Option<u8> = None;
    for c in s.bytes() {
        if c == b':' {
            continue;
        }
        let nibble = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        match high.take() {
            Some(h) => bytes.push(h << 4 | nibble),
            None => high = Some(nibble),
        }
    }
    match high {
        Some(_) => None,
        None => Some(bytes),
    }
}

/// `bytes` as colon-separated lowercase hex, as [`Hex`] prints them (without the formatter,
/// which costs more than the digits where many entries are written).
pub fn hex_string(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            text.push(':');
        }
        text.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        text.push(char::from(HEX_DIGITS[usize::from(b & 0xf)]));
    }
    text
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex_string(self.0))
    }
}

impl fmt::Display for Duid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            DuidKind::Llt { hw_type, time, link_layer_address } => {
                write!(f, "duid-llt hw={hw_type} time={time} ll={}", Hex(link_layer_address))
            }
            DuidKind::En { enterprise_number, identifier } => {
                write!(f, "duid-en enterprise={enterprise_number} id={}", Hex(identifier))
            }
            DuidKind::Ll { hw_type, link_layer_address } => {
                write!(f, "duid-ll hw={hw_type} ll={}", Hex(link_layer_address))
            }
            DuidKind::Uuid(uuid) => write!(f, "duid-uuid {}", Hex(uuid)),
            DuidKind::Other { duid_type, data } => {
                write!(f, "duid-type{duid_type} {}", Hex(data))
            }
        }
    }
}

impl fmt::Debug for Duid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Duid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_reads_and_writes_colon_separated_bytes() {
        assert_eq!(hex_string(&[0x00, 0x01, 0xab, 0xff]), "00:01:ab:ff");
        assert_eq!(hex_string(&[]), "");
        assert_eq!(Hex(&[0x0a, 0xb0]).to_string(), "0a:b0");
        assert_eq!(parse_hex("00:01:AB:ff"), Some(vec![0x00, 0x01, 0xab, 0xff]));
        assert_eq!(parse_hex("0001abff"), Some(vec![0x00, 0x01, 0xab, 0xff]));
        assert_eq!(parse_hex(""), Some(vec![]));
        for bad in ["0", "00:1", "0g", "+f", "00:é0", " 00"] {
            assert_eq!(parse_hex(bad), None, "{bad:?}");
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(parse_hex(&hex_string(&all)), Some(all));
    }

    #[test]
    fn llt_fields() {
        let b = [0, 1, 0, 1, 0x32, 0x96, 0x98, 0x99, 2, 0, 0, 0, 0, 0xc1];
        let d = Duid::new(&b).unwrap();
        assert_eq!(d.kind(), DuidKind::Llt { hw_type: 1, time: 0x32969899, link_layer_address: &b[8..] });
        assert_eq!(d.to_string(), "duid-llt hw=1 time=848730265 ll=02:00:00:00:00:c1");
    }

    #[test]
    fn rejects_short_and_long() {
        assert!(Duid::new(&[0]).is_err());
        assert!(Duid::new(&[0, 1, 0, 1, 0, 0, 0]).is_err());
        assert!(Duid::new(&[0, 4, 1]).is_err());
        assert!(Duid::new(&[0, 9, 1]).is_ok());
        assert!(Duid::new(&[0u8; 131]).is_err());
    }
}
