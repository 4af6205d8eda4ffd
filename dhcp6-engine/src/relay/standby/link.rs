//! The backup link's messages and their framing (see `docs/standby.md`): each message is a
//! 4-byte big-endian length, then that many bytes of JSON, one [`LinkMessage`]. Both relays
//! send a [`LinkMessage::Hello`] first, then a batch (every entry and every remembered
//! removal, in [`LinkMessage::Batch`] chunks, the last one marked), then hot changes as they
//! come; a [`LinkMessage::Ping`] goes when nothing else went for a second.

use serde::{Deserialize, Serialize};

use crate::relay::UserChange;

/// The version of the messages; a peer speaking another is refused.
pub const LINK_VERSION: u32 = 1;
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
}

impl LinkMessage {
    /// The message with its length in front, ready to write.
    pub fn to_frame(&self) -> Vec<u8> {
        let mut frame = vec![0; 4];
        // Writing a plain enum of strings and numbers into a Vec cannot fail.
        serde_json::to_writer(&mut frame, self).expect("serializing a link message");
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
        Ok(serde_json::from_slice(body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::IaType;

    #[test]
    fn a_message_reads_back_from_its_frame() {
        let messages = [
            LinkMessage::Hello { version: LINK_VERSION, node: "rly-a".into(), profiles: vec!["access".into()] },
            LinkMessage::Hot {
                sent_ms: 1_700_000_000_123,
                changes: vec![UserChange::Del {
                    duid: "00:01".into(),
                    iaid: 7,
                    ia_type: IaType::Pd,
                    resource: "2001:db8:8000::/56".into(),
                    at: 10,
                    until: 20,
                }],
            },
            LinkMessage::Batch { sent_ms: 1, changes: Vec::new(), last: true },
            LinkMessage::Ping,
        ];
        for m in messages {
            let frame = m.to_frame();
            let len = LinkMessage::body_len(frame[..4].try_into().unwrap()).unwrap();
            assert_eq!(len, frame.len() - 4);
            assert_eq!(LinkMessage::from_body(&frame[4..]).unwrap(), m);
        }
        assert_eq!(LinkMessage::Ping.to_frame(), b"\0\0\0\x06\"ping\"");
    }

    #[test]
    fn oversized_and_malformed_messages_are_refused() {
        assert!(matches!(LinkMessage::body_len([0x01, 0, 0, 1]), Err(LinkError::TooLong(_))));
        assert!(matches!(LinkMessage::from_body(b"{\"hot\":"), Err(LinkError::Malformed(_))));
        assert!(matches!(LinkMessage::from_body(b"\"pong\""), Err(LinkError::Malformed(_))));
    }
}
