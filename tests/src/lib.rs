//! Helpers shared by the integration tests: where the real captures are, and network
//! namespaces with veth links that clean up after themselves.

pub mod access_switch;
pub mod client;
pub mod http;
pub mod netns;
pub mod peers;
pub mod postgres;
pub mod relay_lab;

use std::path::PathBuf;

use dhcp6_user::{
    codec::frame::{EthernetFrame, EthernetRepr, Ipv6Packet},
    relay::Vlans,
};

/// The folder of real DHCPv6 captures (`../shared/vectors` beside the repository), or
/// `DHCP6_VECTORS` when set.
pub fn vectors_dir() -> PathBuf {
    match std::env::var_os("DHCP6_VECTORS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"),
    }
}

/// Every `.pcap` in [`vectors_dir`], sorted; panics when there are none, so that a missing
/// folder cannot pass for a test that checked nothing.
pub fn vector_files() -> Vec<PathBuf> {
    let dir = vectors_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no captures in {}", dir.display());
    files
}

/// Every frame of every capture in [`vector_files`], in file order, as it was captured.
pub fn vector_frames() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for file in vector_files() {
        let opened = std::fs::File::open(&file).unwrap_or_else(|e| panic!("opening {}: {e}", file.display()));
        let mut reader =
            pcap_file::pcap::PcapReader::new(opened).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        while let Some(p) = reader.next_packet() {
            frames.push(p.unwrap_or_else(|e| panic!("a packet of {}: {e}", file.display())).data.into_owned());
        }
    }
    frames
}

/// A dhcp6d server for the relayed link 2001:db8:2::/64 (addresses and /60 prefixes), used by
/// the tests that put relays in front of it.
pub const RELAYED_LINK_SERVER: &str = r#"[server]
preferred_lifetime = 60
valid_lifetime = 90

[[subnet]]
prefix = "2001:db8:2::/64"
ranges = [{ low = "2001:db8:2::100", high = "2001:db8:2::1ff" }]

[[subnet.pd_pool]]
prefix = "2001:db8:9000::/40"
delegated_length = 60
"#;

/// A dhcp6d relay on `access` for the link 2001:db8:2::/64 whose one group sends every
/// message to both servers of a pair, 2001:db8:f1::1 and 2001:db8:f2::1 (`send_to = "all"`).
pub fn relay_to_pair(access: &str) -> String {
    format!(
        r#"[server]

[relay]
[[relay.group]]
name = "pair"
send_to = "all"
servers = ["2001:db8:f1::1", "2001:db8:f2::1"]

[[relay.interface]]
name = "{access}"
group = "pair"
link_address = "2001:db8:2::1"
"#
    )
}

/// `frame` with the tags of `vlans` in place of its own (none: untagged), written as the relay
/// writes them: 802.1Q for a lone tag, 802.1ad over 802.1Q for two. None if it is not an
/// Ethernet frame.
pub fn retagged(frame: &[u8], vlans: Vlans) -> Option<Vec<u8>> {
    let frame = EthernetFrame::new_checked(frame).ok()?;
    let header = EthernetRepr { vlans, ..EthernetRepr::parse(&frame) };
    let mut out = vec![0; header.header_len() + frame.payload().len()];
    header.emit(&mut out).ok()?.payload_mut().copy_from_slice(frame.payload());
    Some(out)
}

/// The untagged test `frame` tagged with `vlans`.
pub fn tagged(frame: &[u8], vlans: Vlans) -> Vec<u8> {
    retagged(frame, vlans).expect("test frames are Ethernet frames")
}

/// `frame` with its IPv6 packet (and what it holds) changed in place by `change`.
pub fn with_ip(frame: &[u8], change: impl FnOnce(&mut Ipv6Packet<&mut [u8]>)) -> Vec<u8> {
    let mut out = frame.to_vec();
    let mut ethernet = EthernetFrame::new_checked(&mut out[..]).expect("test frames are Ethernet frames");
    change(&mut Ipv6Packet::new_unchecked(ethernet.payload_mut()));
    out
}
