//! Fuzzes the DHCPv6 decoder: no input may panic, and whatever decodes must re-encode to the
//! exact bytes it came from. Seeded from the real captures by `cargo xtask fuzz`.
#![no_main]

use dhcp6_codec::{Message, Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = Packet::new_checked(data) {
        for option in packet.options() {
            if option.is_err() {
                break;
            }
        }
    }
    if let Ok(msg) = Message::decode(data) {
        let _ = msg.to_string();
        assert_eq!(msg.to_vec().expect("a decoded message encodes"), data);
    }
});
