//! Builds the XDP program (`dhcp6-ebpf`) for `bpfel-unknown-none` with nightly and bpf-linker,
//! and leaves the object in OUT_DIR for `include_bytes_aligned!`. The object carries BTF so
//! that maps print with named fields in `bpftool map dump`.
//!
//! Set `DHCP6_EBPF_OBJECT` to a prebuilt object to skip the build.

use std::{env, fs, path::PathBuf, process::Command};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let root = manifest_dir.parent().expect("dhcp6-user sits inside the workspace").to_path_buf();
    let ebpf_dir = root.join("dhcp6-ebpf");
    let object = out_dir.join("dhcp6-ebpf");

    println!("cargo:rerun-if-env-changed=DHCP6_EBPF_OBJECT");
    for watched in ["dhcp6-ebpf/src", "dhcp6-ebpf/Cargo.toml", "dhcp6-ebpf/Cargo.lock", "dhcp6-common/src"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    if let Some(prebuilt) = env::var_os("DHCP6_EBPF_OBJECT") {
        fs::copy(&prebuilt, &object).unwrap_or_else(|e| panic!("DHCP6_EBPF_OBJECT={prebuilt:?}: {e}"));
        return;
    }

    // The target directory is the eBPF crate's own, shared by every profile of the host build,
    // so that core is built for BPF once.
    let target_dir = ebpf_dir.join("target");
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&ebpf_dir)
        .args(["+nightly", "build", "--release", "--locked", "--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", "-Cdebuginfo=2\x1f-Clink-arg=--btf");
    // Variables the outer (host, stable) build set would leak into the nested one.
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo +nightly for the XDP program: {e}; run `cargo xtask setup`"));
    if !status.success() {
        panic!("building the XDP program (dhcp6-ebpf) failed; `cargo xtask setup` installs nightly's rust-src and bpf-linker");
    }
    let built = target_dir.join("bpfel-unknown-none/release/dhcp6-ebpf");
    fs::copy(&built, &object).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
}
