//! Domain names in RFC 1035 wire format, uncompressed, as DHCPv6 carries them
//! (RFC 9915 section 10; Domain Search List, RFC 3646; Client FQDN, RFC 4704).

use std::borrow::Cow;
use std::fmt;

/// Longest label and longest name, in bytes (RFC 1035 section 2.3.4).
const MAX_LABEL: usize = 63;
const MAX_NAME: usize = 255;

/// A domain name in wire format: labels, each prefixed by its length, ending with the empty
/// root label when the name is fully qualified. A name without the root label is partial
/// (RFC 4704 section 4.2 allows that in Client FQDN).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DomainName<'a>(Cow<'a, [u8]>);

impl<'a> DomainName<'a> {
    /// Splits the first name off `bytes`: returns it and what follows. A name ends at its root
    /// label, or at the end of the buffer (a partial name).
    pub fn split_first(bytes: &'a [u8]) -> Result<(Self, &'a [u8]), &'static str> {
        let mut at = 0;
        while let Some(&len) = bytes.get(at) {
            let len = usize::from(len);
            if len > MAX_LABEL {
                return Err("label longer than 63 bytes (compression is not allowed)");
            }
            at += 1 + len;
            if at > bytes.len() {
                return Err("label runs past the end of the option");
            }
            if len == 0 {
                break;
            }
        }
        if at > MAX_NAME {
            return Err("name longer than 255 bytes");
        }
        let (name, rest) = bytes.split_at(at);
        Ok((DomainName(Cow::Borrowed(name)), rest))
    }

    /// A name from its dotted text form; a trailing dot, or none, both give a fully qualified
    /// name. Returns `None` for an empty label or one over 63 bytes.
    pub fn from_dotted(text: &str) -> Option<DomainName<'static>> {
        let mut wire = Vec::with_capacity(text.len() + 2);
        let relative = text.strip_suffix('.').unwrap_or(text);
        if !relative.is_empty() {
            for label in relative.split('.') {
                if label.is_empty() || label.len() > MAX_LABEL {
                    return None;
                }
                // Fits: checked against MAX_LABEL just above.
                wire.push(label.len() as u8);
                wire.extend_from_slice(label.as_bytes());
            }
        }
        wire.push(0);
        (wire.len() <= MAX_NAME).then_some(DomainName(Cow::Owned(wire)))
    }

    /// The name as it stands on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// True when the name ends with the root label.
    pub fn is_fully_qualified(&self) -> bool {
        self.0.last() == Some(&0)
    }

    /// The labels, root label excluded.
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest: &[u8] = &self.0;
        std::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            if len == 0 {
                return None;
            }
            let (label, tail) = tail.split_at(usize::from(len));
            rest = tail;
            Some(label)
        })
    }
}

/// Dotted form, with a trailing dot when fully qualified (`example.net.`), as tshark prints it.
impl fmt::Display for DomainName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for label in self.labels() {
            if !first {
                f.write_str(".")?;
            }
            first = false;
            f.write_str(&String::from_utf8_lossy(label))?;
        }
        if self.is_fully_qualified() {
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DomainName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DomainName({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_names_and_keeps_partial() {
        let wire = b"\x07example\x03net\x00\x03foo";
        let (a, rest) = DomainName::split_first(wire).unwrap();
        assert_eq!(a.to_string(), "example.net.");
        let (b, rest) = DomainName::split_first(rest).unwrap();
        assert!(rest.is_empty());
        assert!(!b.is_fully_qualified());
        assert_eq!(b.to_string(), "foo");
    }

    #[test]
    fn rejects_overrun_and_compression() {
        assert!(DomainName::split_first(b"\x07exam").is_err());
        assert!(DomainName::split_first(b"\xc0\x0c").is_err());
    }

    #[test]
    fn from_dotted_round_trips() {
        let n = DomainName::from_dotted("example.net").unwrap();
        assert_eq!(n.as_bytes(), b"\x07example\x03net\x00");
        assert_eq!(DomainName::from_dotted("example.net.").unwrap(), n);
        assert!(DomainName::from_dotted("a..b").is_none());
        assert_eq!(DomainName::from_dotted(".").unwrap().as_bytes(), b"\x00");
    }
}
