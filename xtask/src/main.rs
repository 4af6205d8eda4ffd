//! Project tasks, run as `cargo xtask <task>`: set a fresh machine up, build, run, test, fuzz.

mod setup;
mod shell;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

use shell::{cargo, is_root, run};

#[derive(Parser)]
#[command(name = "xtask", about = "dhcp6 project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing: nightly's rust-src, LLVM and bpf-linker, cargo-fuzz, bpftool,
    /// iproute2 and the DHCPv6 peers the tests use; mount bpffs. Idempotent.
    Setup,
    /// Build the XDP program, then dhcp6d with it embedded (release).
    Build,
    /// Build, then run `dhcp6d ARGS` as root.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up what is missing, then run every test: unit, property, eBPF build, and the
    /// root-only integration tests with real peers in network namespaces; then a short fuzz run.
    Test {
        /// Seconds of fuzzing after the tests (0 skips it).
        #[arg(long, default_value_t = 20)]
        fuzz_seconds: u64,
    },
    /// Fuzz the DHCPv6 decoder, its corpus seeded from the real captures.
    Fuzz {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::setup(),
        Task::Build => build(),
        Task::Run { args } => {
            build()?;
            let dhcp6d = root().join("target/release/dhcp6d");
            if is_root() {
                run(std::process::Command::new(dhcp6d).args(args))
            } else {
                run(std::process::Command::new("sudo").arg(dhcp6d).args(args))
            }
        }
        Task::Test { fuzz_seconds } => {
            if !is_root() {
                bail!("the integration tests create network namespaces and load XDP programs: run `cargo xtask test` as root");
            }
            setup::setup()?;
            run(cargo().args(["test", "--workspace", "--locked"]))?;
            if fuzz_seconds > 0 {
                fuzz(fuzz_seconds)?;
            }
            Ok(())
        }
        Task::Fuzz { seconds } => {
            setup::setup()?;
            fuzz(seconds)
        }
    }
}

/// The workspace root (xtask sits one level below it).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is inside the workspace").to_path_buf()
}

fn build() -> Result<()> {
    setup::setup()?;
    // dhcp6-user's build script builds the XDP program first (nightly, bpf-linker) and embeds it.
    run(cargo().current_dir(root()).args(["build", "--release", "--locked", "-p", "dhcp6-user"]))
}

/// Seeds the corpus with every DHCPv6 payload of the captures, then runs libFuzzer.
fn fuzz(seconds: u64) -> Result<()> {
    let root = root();
    let corpus = root.join("fuzz/corpus/decode");
    let vectors = root.join("../shared/vectors");
    for entry in std::fs::read_dir(&vectors)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "pcap") {
            run(cargo()
                .current_dir(&root)
                .args(["run", "--quiet", "--locked", "-p", "dhcp6-user", "--bin", "dhcp6d", "--", "decode", "--extract"])
                .arg(&corpus)
                .arg(&path)
                .stdout(std::process::Stdio::null()))?;
        }
    }
    run(cargo()
        .current_dir(root.join("fuzz"))
        .args(["+nightly", "fuzz", "run", "decode"])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}")))
}
