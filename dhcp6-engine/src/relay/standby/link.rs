//! The backup link's messages and their framing (see `docs/standby.md`): each message is a
//! 4-byte big-endian length, then that many bytes, one [`LinkMessage`]: JSON for
//! [`LinkMessage::Hello`] and [`LinkMessage::Ping`], a binary form for the entries of
//! [`LinkMessage::Batch`] and [`LinkMessage::Hot`] (JSON cost more than the relaying they
//! back up: every entry's strings escaped, parsed and validated twice). Both relays
//! send a [`LinkMessage::Hello`] first, then a batch (every entry and every remembered
//! removal, in [`LinkMessage::Batch`] chunks, the last one marked), then hot changes as they
//! come; a [`LinkMessage::Ping`] goes when nothing else went for a second.

use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use crate::{
    relay::{UserChange, UserEntry},
    server::IaType,
};

/// The version of the messages; a peer speaking another is refused. Version 1 sent batches
/// and hot changes as JSON.
pub const LINK_VERSION: u32 = 2;
/// Largest message accepted: a batch chunk of [`BATCH_CHUNK`] entries is far below it.
pub const MAX_MESSAGE: usize = 16 << 20;
/// Entries per batch message.
pub const BATCH_CHUNK: usize = 2048;
/// Seconds without any message after which the link is taken for dead.
pub const LINK_DEAD_AFTER: u64 = 5;

/// One message of the backup link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkMessage {
    /// The first message either way: who speaks, and the profiles (backup IDs) it backs up.
    Hello { version: u32, node: String, profiles: Vec<String> },
    /// Part of a batch: entries and remembered removals. `last` ends the batch.
    Batch {
        /// Unix milliseconds when the sender sent it.
        sent_ms: u64,
        changes: Vec<UserChange>,
        last: bool,
    },
    /// Entries learnt, renewed or removed since the last message.
    Hot { sent_ms: u64, changes: Vec<UserChange> },
    /// Nothing to say: the link is alive.
    Ping,
}

/// Why bytes from the peer are no message.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("a message of {0} bytes, more than {MAX_MESSAGE}")]
    TooLong(usize),
    #[error("a message that does not parse: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("a binary message that does not parse: {0}")]
    Binary(&'static str),
}

/// The first byte of a binary message's body (JSON starts with `{` or `"`).
const BATCH_TAG: u8 = 0xb1;
const HOT_TAG: u8 = 0xb2;
/// A change's first byte.
const PUT: u8 = 1;
const DEL: u8 = 2;

impl LinkMessage {
    /// The message with its length in front, ready to write.
    pub fn to_frame(&self) -> Vec<u8> {
        let mut frame = vec![0; 4];
        match self {
            LinkMessage::Batch { sent_ms, changes, last } => {
                frame.push(BATCH_TAG);
                frame.extend_from_slice(&sent_ms.to_be_bytes());
                frame.push(u8::from(*last));
                put_changes(&mut frame, changes);
            }
            LinkMessage::Hot { sent_ms, changes } => {
                frame.push(HOT_TAG);
                frame.extend_from_slice(&sent_ms.to_be_bytes());
                put_changes(&mut frame, changes);
            }
            // Writing a plain enum of strings and numbers into a Vec cannot fail.
            json => serde_json::to_writer(&mut frame, json).expect("serializing a link message"),
        }
        let len = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        frame
    }

    /// The length a frame's 4-byte header announces.
    pub fn body_len(header: [u8; 4]) -> Result<usize, LinkError> {
        let len = u32::from_be_bytes(header) as usize;
        if len > MAX_MESSAGE {
            return Err(LinkError::TooLong(len));
        }
        Ok(len)
    }

    /// The message of a frame's body.
    pub fn from_body(body: &[u8]) -> Result<LinkMessage, LinkError> {
        let Some((&tag, rest)) = body.split_first() else { return Err(LinkError::Binary("an empty message")) };
        let mut r = Reader(rest);
        let message = match tag {
            BATCH_TAG => {
                let sent_ms = r.u64()?;
                let last = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(LinkError::Binary("a batch's last flag is neither 0 nor 1")),
                };
                LinkMessage::Batch { sent_ms, changes: r.changes()?, last }
            }
            HOT_TAG => LinkMessage::Hot { sent_ms: r.u64()?, changes: r.changes()? },
            _ => return Ok(serde_json::from_slice(body)?),
        };
        match r.0.is_empty() {
            true => Ok(message),
            false => Err(LinkError::Binary("bytes after the last change")),
        }
    }
}

/// Appends `changes`: their count (4 bytes), then each change. Integers are big-endian,
/// strings a 2-byte length and UTF-8, optional fields a 0/1 byte before the value.
fn put_changes(out: &mut Vec<u8>, changes: &[UserChange]) {
    out.extend_from_slice(&(changes.len() as u32).to_be_bytes());
    for change in changes {
        match change {
            UserChange::Put(e) => {
                out.push(PUT);
                put_key(out, &e.duid, e.iaid, e.ia_type, &e.resource);
                out.extend_from_slice(&e.preferred_lifetime.to_be_bytes());
                out.extend_from_slice(&e.valid_lifetime.to_be_bytes());
                out.extend_from_slice(&e.expires.to_be_bytes());
                put_str(out, &e.interface);
                for vlan in [e.vlan, e.inner_vlan] {
                    out.push(u8::from(vlan.is_some()));
                    out.extend_from_slice(&vlan.unwrap_or(0).to_be_bytes());
                }
                out.extend_from_slice(&e.link_local.octets());
                out.push(u8::from(e.mac.is_some()));
                put_str(out, e.mac.as_deref().unwrap_or(""));
            }
            UserChange::Del { duid, iaid, ia_type, resource, at, until } => {
                out.push(DEL);
                put_key(out, duid, *iaid, *ia_type, resource);
                out.extend_from_slice(&at.to_be_bytes());
                out.extend_from_slice(&until.to_be_bytes());
            }
        }
    }
}

fn put_key(out: &mut Vec<u8>, duid: &str, iaid: u32, ia_type: IaType, resource: &str) {
    put_str(out, duid);
    out.extend_from_slice(&iaid.to_be_bytes());
    out.push(match ia_type {
        IaType::Na => 0,
        IaType::Pd => 1,
    });
    put_str(out, resource);
}

/// A string of at most 65,535 bytes: the entries' strings (a DUID in hex, at most 389
/// characters; an address or prefix; an interface label; a MAC) are far shorter, and a
/// longer one is cut at a character boundary rather than written wrong.
fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut len = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(len) {
        len -= 1;
    }
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len]);
}

/// Reads a binary message's fields; every read checks that the bytes are there.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], LinkError> {
        if self.0.len() < n {
            return Err(LinkError::Binary("a message cut short"));
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LinkError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, LinkError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, LinkError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, LinkError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, LinkError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String, LinkError> {
        let len = usize::from(self.u16()?);
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| LinkError::Binary("a string that is not UTF-8"))?;
        Ok(text.to_string())
    }

    fn flag(&mut self) -> Result<bool, LinkError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(LinkError::Binary("a presence flag is neither 0 nor 1")),
        }
    }

    fn changes(&mut self) -> Result<Vec<UserChange>, LinkError> {
        let count = self.u32()? as usize;
        // Every change takes at least 20 bytes: a count beyond what is left is a lie, and no
        // room is reserved for it.
        let mut changes = Vec::with_capacity(count.min(self.0.len() / 20));
        for _ in 0..count {
            changes.push(self.change()?);
        }
        Ok(changes)
    }

    fn change(&mut self) -> Result<UserChange, LinkError> {
        let tag = self.u8()?;
        let duid = self.string()?;
        let iaid = self.u32()?;
        let ia_type = match self.u8()? {
            0 => IaType::Na,
            1 => IaType::Pd,
            _ => return Err(LinkError::Binary("an IA type that is neither IA_NA nor IA_PD")),
        };
        let resource = self.string()?;
        match tag {
            PUT => {
                let preferred_lifetime = self.u32()?;
                let valid_lifetime = self.u32()?;
                let expires = self.u64()?;
                let interface = self.string()?;
                let (has_vlan, vlan) = (self.flag()?, self.u16()?);
                let (has_inner, inner_vlan) = (self.flag()?, self.u16()?);
                let link_local = Ipv6Addr::from(self.array::<16>()?);
                let (has_mac, mac) = (self.flag()?, self.string()?);
                Ok(UserChange::Put(UserEntry {
                    duid,
                    iaid,
                    ia_type,
                    resource,
                    preferred_lifetime,
                    valid_lifetime,
                    expires,
                    interface,
                    vlan: has_vlan.then_some(vlan),
                    inner_vlan: has_inner.then_some(inner_vlan),
                    link_local,
                    mac: has_mac.then_some(mac),
                }))
            }
            DEL => Ok(UserChange::Del { duid, iaid, ia_type, resource, at: self.u64()?, until: self.u64()? }),
            _ => Err(LinkError::Binary("a change that is neither an entry nor a removal")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::IaType;

    fn entry(vlan: Option<u16>, mac: Option<&str>) -> UserChange {
        UserChange::Put(UserEntry {
            duid: "00:03:00:01:02:00:00:00:00:01".into(),
            iaid: 1,
            ia_type: IaType::Pd,
            resource: "2001:db8:9000::/60".into(),
            preferred_lifetime: 10,
            valid_lifetime: 20,
            expires: 1_796_000_020,
            interface: "access#0".into(),
            vlan,
            inner_vlan: vlan.map(|v| v + 1),
            link_local: "fe80::ff:fe00:1".parse().unwrap(),
            mac: mac.map(str::to_string),
        })
    }

    fn removal() -> UserChange {
        UserChange::Del {
            duid: "00:01".into(),
            iaid: 7,
            ia_type: IaType::Na,
            resource: "2001:db8::7".into(),
            at: 10,
            until: 20,
        }
    }

    fn messages() -> Vec<LinkMessage> {
        vec![
            LinkMessage::Hello { version: LINK_VERSION, node: "rly-a".into(), profiles: vec!["access".into()] },
            LinkMessage::Hot {
                sent_ms: 1_700_000_000_123,
                changes: vec![removal(), entry(Some(100), Some("02:00:00:00:00:01")), entry(None, None)],
            },
            LinkMessage::Batch { sent_ms: 1, changes: Vec::new(), last: true },
            LinkMessage::Batch { sent_ms: 2, changes: vec![entry(Some(4094), None), removal()], last: false },
            LinkMessage::Ping,
        ]
    }

    #[test]
    fn a_message_reads_back_from_its_frame() {
        for m in messages() {
            let frame = m.to_frame();
            let len = LinkMessage::body_len(frame[..4].try_into().unwrap()).unwrap();
            assert_eq!(len, frame.len() - 4);
            assert_eq!(LinkMessage::from_body(&frame[4..]).unwrap(), m);
        }
        assert_eq!(LinkMessage::Ping.to_frame(), b"\0\0\0\x06\"ping\"");
        assert_eq!(LinkMessage::Hot { sent_ms: 0, changes: vec![] }.to_frame()[4], HOT_TAG);
    }

    #[test]
    fn oversized_and_malformed_messages_are_refused() {
        assert!(matches!(LinkMessage::body_len([0x01, 0, 0, 1]), Err(LinkError::TooLong(_))));
        assert!(matches!(LinkMessage::from_body(b"{\"hot\":"), Err(LinkError::Malformed(_))));
        assert!(matches!(LinkMessage::from_body(b"\"pong\""), Err(LinkError::Malformed(_))));
        assert!(matches!(LinkMessage::from_body(b""), Err(LinkError::Binary(_))));
        // A count of changes far beyond the bytes that follow reserves nothing and fails.
        let lie = [&[HOT_TAG][..], &[0; 8], &[0xff; 4]].concat();
        assert!(matches!(LinkMessage::from_body(&lie), Err(LinkError::Binary(_))));
    }

    #[test]
    fn every_cut_or_changed_byte_of_a_binary_message_is_an_error_or_a_message_never_a_panic() {
        for m in messages() {
            let frame = m.to_frame();
            let body = &frame[4..];
            if matches!(m, LinkMessage::Hot { .. } | LinkMessage::Batch { .. }) {
                for cut in 0..body.len() {
                    assert!(LinkMessage::from_body(&body[..cut]).is_err(), "{m:?} cut at {cut}");
                }
                let mut longer = body.to_vec();
                longer.push(0);
                assert!(LinkMessage::from_body(&longer).is_err());
            }
            for at in 0..body.len() {
                for value in [0x00, 0x01, 0x02, 0x7f, 0xb1, 0xff] {
                    let mut changed = body.to_vec();
                    changed[at] = value;
                    let _ = LinkMessage::from_body(&changed);
                }
            }
        }
    }

    #[test]
    fn a_string_too_long_for_its_length_is_cut_at_a_character_boundary() {
        let mut out = Vec::new();
        put_str(&mut out, &"é".repeat(40_000));
        assert_eq!(u16::from_be_bytes([out[0], out[1]]), 65_534);
        assert!(std::str::from_utf8(&out[2..]).is_ok());
    }
}
