//! Helpers shared by the integration tests: where the real captures are, and network
//! namespaces with veth links that clean up after themselves.

pub mod access_switch;
pub mod client;
pub mod netns;
pub mod peers;
pub mod relay_lab;

use std::path::PathBuf;

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

/// The frame with VLAN tags (TPID, VID) inserted after the MAC addresses, outer first.
pub fn tagged(frame: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut out = frame[..12].to_vec();
    for (tpid, vid) in tags {
        out.extend_from_slice(&tpid.to_be_bytes());
        out.extend_from_slice(&vid.to_be_bytes());
    }
    out.extend_from_slice(&frame[12..]);
    out
}
