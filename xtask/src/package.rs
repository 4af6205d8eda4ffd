//! `cargo xtask package`: the Debian package of dhcp6d, built with `dpkg-deb` from a staged
//! tree (no cargo-deb to install: dpkg-deb comes with every Debian). It holds
//! /usr/sbin/dhcp6d, the systemd unit, the default configuration (a conffile), the docs, and
//! maintainer scripts that enable the unit on install (without starting it) and stop it on
//! removal, and do nothing of the kind where systemd is not running.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::shell::{output, run};

/// The package's name, its unit's and its configuration folder's.
const NAME: &str = "dhcp6d";

/// Where the package's files come from in the repository, and where they go.
const FILES: &[(&str, &str, u32)] = &[
    ("contrib/dhcp6d.service", "lib/systemd/system/dhcp6d.service", 0o644),
    ("contrib/dhcp6d.toml", "etc/dhcp6d/dhcp6d.toml", 0o644),
    ("README.md", "usr/share/doc/dhcp6d/README.md", 0o644),
    ("docs/operations.md", "usr/share/doc/dhcp6d/operations.md", 0o644),
    ("docs/architecture.md", "usr/share/doc/dhcp6d/architecture.md", 0o644),
    ("docs/xdp.md", "usr/share/doc/dhcp6d/xdp.md", 0o644),
    ("docs/failover.md", "usr/share/doc/dhcp6d/failover.md", 0o644),
    ("docs/standby.md", "usr/share/doc/dhcp6d/standby.md", 0o644),
];

/// Packs `binary` (a dhcp6d built with its XDP object embedded) with the repository's unit,
/// configuration and docs into `out_dir/dhcp6d_<version>_<arch>.deb`; returns its path.
pub fn package(root: &Path, binary: &Path, out_dir: &Path) -> Result<PathBuf> {
    if !binary.is_file() {
        bail!("{} is not a dhcp6d binary (build it first, or leave --binary out)", binary.display());
    }
    let version = env!("CARGO_PKG_VERSION");
    let arch = output(Command::new("dpkg").arg("--print-architecture"))
        .map(|a| a.trim().to_string())
        .context("dpkg --print-architecture failed: packaging needs Debian's dpkg")?;
    let deb = out_dir.join(format!("{NAME}_{version}_{arch}.deb"));
    let stage = out_dir.join(format!("{NAME}_{version}_{arch}"));
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("removing the old staging tree {}", stage.display()))?;
    }
    let sbin = stage.join("usr/sbin/dhcp6d");
    create_parent(&sbin)?;
    // Debug information and symbols stay in the build (release builds keep some); the package
    // ships the code alone, as Debian's packages do.
    run(Command::new("objcopy").arg("--strip-all").arg(binary).arg(&sbin))?;
    set_mode(&sbin, 0o755)?;
    for (from, to, mode) in FILES {
        let target = stage.join(to);
        create_parent(&target)?;
        fs::copy(root.join(from), &target).with_context(|| format!("copying {from}"))?;
        set_mode(&target, *mode)?;
    }
    let doc = stage.join("usr/share/doc/dhcp6d/copyright");
    write(&doc, &copyright(), 0o644)?;
    let debian = stage.join("DEBIAN");
    write(&debian.join("control"), &control(version, &arch, &depends(binary)?), 0o644)?;
    write(&debian.join("conffiles"), "/etc/dhcp6d/dhcp6d.toml\n", 0o644)?;
    write(&debian.join("postinst"), POSTINST, 0o755)?;
    write(&debian.join("prerm"), PRERM, 0o755)?;
    write(&debian.join("postrm"), POSTRM, 0o755)?;
    // gzip rather than dpkg's default xz: a package of a debug build (the tests') is made in
    // seconds, not a minute.
    run(Command::new("dpkg-deb").args(["--root-owner-group", "-Zgzip", "-z6", "--build"]).arg(&stage).arg(&deb))?;
    fs::remove_dir_all(&stage).with_context(|| format!("removing the staging tree {}", stage.display()))?;
    Ok(deb)
}

/// The packages of the shared libraries `binary` links (glibc's, libgcc's), found by dpkg.
fn depends(binary: &Path) -> Result<String> {
    let libs = output(Command::new("ldd").arg(binary)).context("ldd failed on the binary")?;
    let mut packages: Vec<String> = Vec::new();
    for path in libs.lines().filter_map(|l| l.split("=>").nth(1)).filter_map(|r| r.split_whitespace().next()) {
        let owner = output(Command::new("dpkg").args(["-S", path]))
            .or_else(|| {
                // usrmerge: dpkg knows /lib/... where ldd says /usr/lib/... or the reverse.
                let other = path.strip_prefix("/usr").map(str::to_string).unwrap_or(format!("/usr{path}"));
                output(Command::new("dpkg").args(["-S", &other]))
            })
            .with_context(|| format!("no Debian package holds {path}, which dhcp6d links"))?;
        let name = owner.split(':').next().unwrap_or_default().trim().to_string();
        if !name.is_empty() && !packages.contains(&name) {
            packages.push(name);
        }
    }
    packages.sort();
    Ok(packages.join(", "))
}

fn control(version: &str, arch: &str, depends: &str) -> String {
    format!(
        "Package: {NAME}\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: dhcp6 developers <dhcp6@localhost>\n\
         Section: net\n\
         Priority: optional\n\
         Depends: {depends}\n\
         Description: XDP-accelerated DHCPv6 server and relay agent\n \
         dhcp6d serves DHCPv6 clients (addresses, prefix delegation, relayed clients) and\n \
         relays for remote servers. An XDP program on the access interfaces answers renewals\n \
         and relays in the driver; everything else is handled in userspace.\n"
    )
}

fn copyright() -> String {
    format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: dhcp6\n\n\
         Files: *\n\
         License: {}\n",
        env!("CARGO_PKG_LICENSE")
    )
}

/// Enables the unit on install, as debhelper's scripts do (it starts at the next boot; start it
/// now with `systemctl start dhcp6d`), and reloads systemd where it runs.
const POSTINST: &str = r#"#!/bin/sh
set -e
if [ "$1" = configure ] || [ "$1" = abort-upgrade ]; then
    if command -v deb-systemd-helper >/dev/null 2>&1; then
        deb-systemd-helper unmask dhcp6d.service >/dev/null || true
        if deb-systemd-helper --quiet was-enabled dhcp6d.service; then
            deb-systemd-helper enable dhcp6d.service >/dev/null || true
        else
            deb-systemd-helper update-state dhcp6d.service >/dev/null || true
        fi
    fi
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
    fi
fi
"#;

/// Stops the service before its files go (through invoke-rc.d's policy, so policy-rc.d can
/// forbid it), only where systemd runs.
const PRERM: &str = r#"#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    deb-systemd-invoke stop dhcp6d.service >/dev/null || true
fi
"#;

/// On purge: the unit's enablement, the lease journal and server DUID, and the XDP pins (which
/// would keep the program attached with no dhcp6d to take it over).
const POSTRM: &str = r#"#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = remove ] && command -v deb-systemd-helper >/dev/null 2>&1; then
    deb-systemd-helper mask dhcp6d.service >/dev/null || true
fi
if [ "$1" = purge ]; then
    if command -v deb-systemd-helper >/dev/null 2>&1; then
        deb-systemd-helper purge dhcp6d.service >/dev/null || true
        deb-systemd-helper unmask dhcp6d.service >/dev/null || true
    fi
    rm -rf /var/lib/dhcp6d /sys/fs/bpf/dhcp6
fi
"#;

fn create_parent(path: &Path) -> Result<()> {
    let parent = path.parent().context("a staged file has a folder")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    create_parent(path)?;
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}
