//! The framing of a TCP stream of DHCPv6 messages (RFC 5460 section 5.1, which RFC 8156
//! section 5.1 uses): each message is preceded by its length in two octets. Sans-IO: the
//! driver pushes what it read from the socket and pulls whole messages out.
//!
//! ```
//! use dhcp6_codec::failover::{encode_framed, FailoverMessage, FrameReader, MAX_FRAME_LEN};
//! let contact = FailoverMessage::decode(&[35, 0, 0, 1, 0, 0, 0, 9]).unwrap();
//! let mut stream = Vec::new();
//! encode_framed(&contact, &mut stream).unwrap();
//! encode_framed(&contact, &mut stream).unwrap();
//!
//! let mut reader = FrameReader::new(MAX_FRAME_LEN);
//! reader.push(&stream[..5]); // The first message, split by the network.
//! assert_eq!(reader.next_frame(), None);
//! reader.push(&stream[5..]);
//! assert_eq!(FailoverMessage::decode(reader.next_frame().unwrap().unwrap()), Ok(contact.clone()));
//! assert_eq!(FailoverMessage::decode(reader.next_frame().unwrap().unwrap()), Ok(contact));
//! assert_eq!(reader.next_frame(), None);
//! ```

use super::FailoverMessage;
use crate::{EncodeError, FramingError};

/// Octets of the length before each message.
const LENGTH_LEN: usize = 2;

/// The longest message the 16-bit length can announce.
pub const MAX_FRAME_LEN: usize = u16::MAX as usize;

/// Appends `msg` to `out` with the length before it, as it goes on the stream.
pub fn encode_framed(msg: &FailoverMessage<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    frame_with(out, |out| msg.encode(out))
}

/// Appends an encoded message (a bulk leasequery's, RFC 5460 section 5.1) to `out` with its
/// length before it.
pub fn encode_framed_bytes(message: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    frame_with(out, |out| {
        out.extend_from_slice(message);
        Ok(())
    })
}

/// Appends what `write` writes to `out`, preceded by its length; nothing if it fails or is
/// too long for the two octets.
fn frame_with(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0; LENGTH_LEN]);
    if let Err(e) = write(out) {
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - start - LENGTH_LEN;
    match u16::try_from(len) {
        Ok(len16) => {
            out[start..start + LENGTH_LEN].copy_from_slice(&len16.to_be_bytes());
            Ok(())
        }
        Err(_) => {
            out.truncate(start);
            Err(EncodeError::MessageTooLong { len })
        }
    }
}

/// Reassembles messages from the bytes of a stream, however the reads split them.
#[derive(Debug, Clone)]
pub struct FrameReader {
    buffer: Vec<u8>,
    /// Where the next frame's length starts in `buffer`; what is before it was handed out.
    consumed: usize,
    max_len: usize,
    failed: Option<FramingError>,
}

impl FrameReader {
    /// A reader that refuses frames longer than `max_len` (at most [`MAX_FRAME_LEN`] counts).
    pub fn new(max_len: usize) -> Self {
        FrameReader { buffer: Vec::new(), consumed: 0, max_len, failed: None }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        // Frames handed out are dropped here, not in `next_frame`, whose slice borrows them.
        self.buffer.drain(..self.consumed);
        self.consumed = 0;
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole message, `None` until one has arrived, or the error that lost the
    /// framing (returned again on every later call).
    pub fn next_frame(&mut self) -> Option<Result<&[u8], FramingError>> {
        if let Some(e) = self.failed {
            return Some(Err(e));
        }
        let rest = &self.buffer[self.consumed..];
        let (length, body) = rest.split_first_chunk::<LENGTH_LEN>()?;
        let len = usize::from(u16::from_be_bytes(*length));
        let error = match len {
            0 => Some(FramingError::Empty),
            len if len > self.max_len => Some(FramingError::TooLong { len, max: self.max_len }),
            _ => None,
        };
        if let Some(e) = error {
            self.failed = Some(e);
            self.buffer = Vec::new();
            self.consumed = 0;
            return Some(Err(e));
        }
        if body.len() < len {
            return None;
        }
        let start = self.consumed + LENGTH_LEN;
        self.consumed = start + len;
        Some(Ok(&self.buffer[start..start + len]))
    }

    /// Bytes received and not yet handed out as a frame.
    pub fn pending(&self) -> usize {
        self.buffer.len() - self.consumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_by_byte_and_all_at_once_give_the_same_frames() {
        let stream = [0, 3, 1, 2, 3, 0, 1, 9, 0, 2, 7, 7];
        let mut whole = FrameReader::new(MAX_FRAME_LEN);
        whole.push(&stream);
        let mut frames = Vec::new();
        while let Some(f) = whole.next_frame() {
            frames.push(f.unwrap().to_vec());
        }
        assert_eq!(frames, [vec![1, 2, 3], vec![9], vec![7, 7]]);

        let mut trickle = FrameReader::new(MAX_FRAME_LEN);
        let mut again = Vec::new();
        for b in stream {
            trickle.push(&[b]);
            while let Some(f) = trickle.next_frame() {
                again.push(f.unwrap().to_vec());
            }
        }
        assert_eq!(again, frames);
        assert_eq!(trickle.pending(), 0);
    }

    #[test]
    fn a_zero_length_frame_is_an_error_that_stays() {
        let mut r = FrameReader::new(MAX_FRAME_LEN);
        r.push(&[0, 1, 5, 0, 0, 0, 1, 6]);
        assert_eq!(r.next_frame(), Some(Ok(&[5u8][..])));
        assert_eq!(r.next_frame(), Some(Err(FramingError::Empty)));
        r.push(&[0, 1, 7]);
        assert_eq!(r.next_frame(), Some(Err(FramingError::Empty)));
    }

    #[test]
    fn a_frame_over_the_cap_is_refused_before_its_body_arrives() {
        let mut r = FrameReader::new(100);
        r.push(&[0, 101]);
        assert_eq!(r.next_frame(), Some(Err(FramingError::TooLong { len: 101, max: 100 })));
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn encode_framed_prefixes_the_length() {
        let msg = FailoverMessage::decode(&[33, 0, 0, 2, 0, 0, 0, 1]).unwrap();
        let mut out = vec![0xee];
        encode_framed(&msg, &mut out).unwrap();
        assert_eq!(out, [0xee, 0, 8, 33, 0, 0, 2, 0, 0, 0, 1]);
    }

    #[test]
    fn a_message_over_65535_bytes_is_not_framed() {
        use super::super::{FailoverOption, FailoverOptions};
        use crate::{option::DhcpOption, packet::RawOption};
        let data = vec![0u8; 40_000];
        let big = FailoverOption::Dhcp(DhcpOption::Unknown(RawOption { code: 999, data: &data }));
        let mut msg = FailoverMessage::decode(&[24, 0, 0, 3, 0, 0, 0, 0]).unwrap();
        msg.options = FailoverOptions(vec![big.clone(), big]);
        let mut out = vec![1];
        assert_eq!(encode_framed(&msg, &mut out), Err(EncodeError::MessageTooLong { len: 80_016 }));
        assert_eq!(out, [1]);
    }
}
