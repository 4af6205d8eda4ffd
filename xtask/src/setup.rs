//! `cargo xtask setup`: takes a fresh Debian machine to one that builds and tests dhcp6.
//! Every step checks first and installs only what is missing, so it is cheap to run often.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::shell::{cargo, is_root, output, run};

/// Debian packages the build and the tests use, besides LLVM (whose version follows nightly).
const PACKAGES: &[&str] = &[
    "bpftool",
    "iproute2",
    "procps",
    "ethtool",
    "libzstd-dev",
    "zlib1g-dev",
    "kea-dhcp6-server",
    "kea-admin",
    "isc-dhcp-client",
    "dhcpcd-base",
    "isc-dhcp-relay",
    "tshark",
    "tcpdump",
    // VRRP for the relay's hot standby tests (Debian's starts no service: see policy-rc.d).
    "keepalived",
    // An upstream router learning the standby relays' delegated-prefix routes (BGP).
    "frr",
    // Certificates for the standby test of the backup link's TLS.
    "openssl",
    // systemd-analyze, which checks contrib/dhcp6d.service (PID 1 need not be systemd).
    "systemd",
    // objcopy, which `cargo xtask package` strips the packaged binary's debug information with.
    "binutils",
    // A real scraper for the metrics test and bench (prometheus, promtool; no service started).
    "prometheus",
    // The shared lease database's tests and bench: each starts its own server (initdb in a
    // temporary folder, as nobody); Debian's cluster is never started (policy-rc.d).
    "postgresql-15",
];

/// The bpf-linker release known to build against Debian's LLVM packages here.
const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn setup() -> Result<()> {
    let llvm = nightly_llvm_major()?;
    rust_src()?;
    debian_packages(llvm)?;
    bpf_linker(llvm)?;
    stable_components()?;
    cargo_fuzz()?;
    bpffs()?;
    Ok(())
}

/// The LLVM major version of the nightly toolchain, from `rustc +nightly -vV`.
fn nightly_llvm_major() -> Result<u32> {
    let mut rustc = Command::new("rustc");
    rustc.env_remove("RUSTUP_TOOLCHAIN").args(["+nightly", "-vV"]);
    let info = match output(&mut rustc) {
        Some(info) => info,
        None => {
            // Machines of this kind come with nightly; install it only where it is missing.
            run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
            output(&mut rustc).context("rustc +nightly -vV fails even after installing nightly")?
        }
    };
    parse_llvm_major(&info).context("`rustc +nightly -vV` printed no LLVM version")
}

fn parse_llvm_major(rustc_vv: &str) -> Option<u32> {
    let version = rustc_vv.lines().find_map(|l| l.strip_prefix("LLVM version: "))?;
    version.split('.').next()?.trim().parse().ok()
}

fn rust_src() -> Result<()> {
    let installed = output(Command::new("rustup").args(["component", "list", "--toolchain", "nightly", "--installed"]))
        .unwrap_or_default();
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

fn package_installed(name: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", name]))
        .is_some_and(|s| s.contains("install ok installed"))
}

fn debian_packages(llvm: u32) -> Result<()> {
    // bpf-linker links the LLVM of nightly's rustc; Polly comes with LLVM's static libraries.
    let llvm_packages = [format!("llvm-{llvm}-dev"), format!("libpolly-{llvm}-dev")];
    let wanted: Vec<&str> = PACKAGES.iter().copied().chain(llvm_packages.iter().map(String::as_str)).collect();
    let missing: Vec<&str> = wanted.into_iter().filter(|p| !package_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!("Debian packages missing: {}; run `cargo xtask setup` as root", missing.join(" "));
    }
    // Debian starts a package's service on install; the tests start their own instances in
    // namespaces, so services are kept from starting while we install.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let created_policy = !policy.exists();
    if created_policy {
        fs::write(policy, "#!/bin/sh\nexit 101\n").context("writing /usr/sbin/policy-rc.d")?;
        run(Command::new("chmod").args(["755", "/usr/sbin/policy-rc.d"]))?;
    }
    let result = run(Command::new("apt-get").arg("update")).and_then(|()| {
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing))
    });
    if created_policy {
        fs::remove_file(policy).context("removing /usr/sbin/policy-rc.d")?;
    }
    result
}

/// The LLVM major version the installed bpf-linker is linked against, if it is installed.
fn bpf_linker_llvm_major() -> Option<u32> {
    let path = output(Command::new("sh").args(["-c", "command -v bpf-linker"]))?;
    let libs = output(Command::new("ldd").arg(path.trim()))?;
    let lib = libs.lines().find_map(|l| l.trim().strip_prefix("libLLVM"))?;
    // "libLLVM.so.22.1 => ..." or "libLLVM-22.so => ...".
    lib.trim_start_matches(['.', '-', 's', 'o']).split(['.', '-', ' ']).next()?.parse().ok()
}

fn bpf_linker(llvm: u32) -> Result<()> {
    if bpf_linker_llvm_major() == Some(llvm) {
        return Ok(());
    }
    let prefix = format!("/usr/lib/llvm-{llvm}");
    run(cargo()
        .env("LLVM_PREFIX", &prefix)
        .args([
            "install",
            "--force",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
        ])
        .arg(format!("llvm-{llvm}")))
    .with_context(|| format!("building bpf-linker {BPF_LINKER_VERSION} against LLVM {llvm} ({prefix})"))?;
    match bpf_linker_llvm_major() {
        Some(major) if major == llvm => Ok(()),
        Some(major) => bail!(
            "bpf-linker is linked against LLVM {major} but nightly rustc uses LLVM {llvm}: \
             the object files would not link; reinstall bpf-linker with --features llvm-{llvm}"
        ),
        None => bail!("bpf-linker was installed but is not on PATH or not linked against libLLVM"),
    }
}

/// rustfmt and clippy for the checks `cargo xtask test` runs.
fn stable_components() -> Result<()> {
    let installed = output(Command::new("rustup").args(["component", "list", "--installed"])).unwrap_or_default();
    for component in ["rustfmt", "clippy"] {
        if !installed.lines().any(|l| l.starts_with(component)) {
            run(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    Ok(())
}

fn cargo_fuzz() -> Result<()> {
    if output(cargo().args(["fuzz", "--version"])).is_some() {
        return Ok(());
    }
    run(cargo().args(["install", "--locked", "cargo-fuzz"]))
}

fn bpffs() -> Result<()> {
    let mounts = fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    if mounts.lines().any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf")) {
        return Ok(());
    }
    if !is_root() {
        bail!("bpffs is not mounted on /sys/fs/bpf; run `cargo xtask setup` as root");
    }
    run(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))
}

/// Where the lab and the benchmarks pin dhcp6d's XDP maps and links: a bpffs of its own
/// outside /sys, because `ip netns exec` mounts a fresh /sys, without /sys/fs/bpf, for the
/// command it runs.
pub const NETNS_BPFFS: &str = "/run/dhcp6-bpf";

/// A fresh pin folder `name` on [`NETNS_BPFFS`], mounting the bpffs first if need be.
pub fn netns_pin_dir(name: &str) -> Result<PathBuf> {
    Ok(fresh_pin_dir(Path::new(NETNS_BPFFS), name)?.0)
}

/// A fresh pin folder `name` on the bpffs at `bpffs`, mounting it first if need be; and
/// whether it was mounted so.
pub fn fresh_pin_dir(bpffs: &Path, name: &str) -> Result<(PathBuf, bool)> {
    let mounted = mount_bpffs(bpffs)?;
    let dir = bpffs.join(name);
    // Pins an earlier run left: removing them detaches what they held.
    let _ = fs::remove_dir_all(&dir);
    Ok((dir, mounted))
}

/// Mounts a bpffs on `dir` (made if missing) unless something is mounted there already;
/// returns whether it mounted one.
fn mount_bpffs(dir: &Path) -> Result<bool> {
    if is_mount_point(dir)? {
        return Ok(false);
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    run(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(dir))?;
    Ok(true)
}

/// Whether something is mounted on `dir`.
pub fn is_mount_point(dir: &Path) -> Result<bool> {
    let mounts = fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    Ok(mounts.lines().any(|l| l.split_whitespace().nth(1).map(Path::new) == Some(dir)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_llvm_major_from_rustc() {
        let vv = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\nhost: x86_64-unknown-linux-gnu\nLLVM version: 22.1.4\n";
        assert_eq!(parse_llvm_major(vv), Some(22));
        assert_eq!(parse_llvm_major("rustc 1.0"), None);
    }
}
