//! Fuzzes the failover decoder and the TCP framing: no input may panic, whatever decodes must
//! re-encode to the exact bytes it came from, and frames obey the reader's cap.
#![no_main]

use dhcp6_codec::failover::{FailoverMessage, FrameReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = FailoverMessage::decode(data) {
        assert_eq!(msg.to_vec().expect("a decoded message encodes"), data);
    }
    // The first byte picks where the stream is split and the cap, the rest is the stream.
    let Some((&knob, stream)) = data.split_first() else { return };
    let mut reader = FrameReader::new(usize::from(knob) * 4 + 1);
    let (head, tail) = stream.split_at(usize::from(knob).min(stream.len()));
    for piece in [head, tail] {
        reader.push(piece);
        while let Some(frame) = reader.next_frame() {
            let Ok(frame) = frame else { return };
            assert!(!frame.is_empty() && frame.len() <= usize::from(knob) * 4 + 1);
            if let Ok(msg) = FailoverMessage::decode(frame) {
                assert_eq!(msg.to_vec().expect("a decoded message encodes"), frame);
            }
        }
    }
});
