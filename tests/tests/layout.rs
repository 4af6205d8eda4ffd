//! The architecture's rules that a compiler does not check: the protocol engines stay free of
//! I/O, so that they build and test on stable Rust with nothing else installed; xtask, which
//! installs the XDP toolchain, builds before it is there.

use std::process::Command;

/// Crates that do I/O or need the XDP toolchain: none may be among the engine's dependencies.
const IO_CRATES: &[&str] = &["aya", "aya-obj", "tokio", "rtnetlink", "netlink-sys", "nix", "libc", "socket2", "mio"];

/// Crates that need the XDP toolchain to build (dhcp6-user's build script builds the XDP
/// program) or belong to the daemon: none may be among xtask's dependencies.
const TOOLCHAIN_CRATES: &[&str] = &["dhcp6-user", "aya", "aya-obj", "tokio"];

/// The names of `package` and of every crate it depends on to build (not its tests).
fn dependencies(package: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-p", package, "-e", "normal,build", "--prefix", "none", "--format", "{p}"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("running cargo tree");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: Vec<String> = tree.lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect();
    assert!(names.iter().any(|n| n == package), "{tree}");
    names
}

#[test]
fn the_engine_crate_depends_on_no_io_crate() {
    let names = dependencies("dhcp6-engine");
    let io: Vec<&String> = names.iter().filter(|n| IO_CRATES.contains(&n.as_str())).collect();
    assert!(io.is_empty(), "dhcp6-engine pulls in I/O crates {io:?}: {names:?}");
}

#[test]
fn xtask_depends_on_nothing_that_needs_the_xdp_toolchain() {
    let names = dependencies("xtask");
    assert!(names.iter().any(|n| n == "dhcp6-netns"), "xtask makes its namespaces with dhcp6-netns: {names:?}");
    let toolchain: Vec<&String> = names.iter().filter(|n| TOOLCHAIN_CRATES.contains(&n.as_str())).collect();
    assert!(toolchain.is_empty(), "xtask pulls in {toolchain:?}: {names:?}");
}
