//! The architecture's rules that a compiler does not check: the protocol engines stay free of
//! I/O, so that they build and test on stable Rust with nothing else installed.

use std::process::Command;

/// Crates that do I/O or need the XDP toolchain: none may be among the engine's dependencies.
const IO_CRATES: &[&str] = &["aya", "aya-obj", "tokio", "rtnetlink", "netlink-sys", "nix", "libc", "socket2", "mio"];

#[test]
fn the_engine_crate_depends_on_no_io_crate() {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-p", "dhcp6-engine", "-e", "normal,build", "--prefix", "none", "--format", "{p}"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("running cargo tree");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.contains(&"dhcp6-engine"), "{tree}");
    let io: Vec<&&str> = names.iter().filter(|n| IO_CRATES.contains(n)).collect();
    assert!(io.is_empty(), "dhcp6-engine pulls in I/O crates {io:?}:\n{tree}");
}
