//! Project tasks, run as `cargo xtask <task>`: set a fresh machine up, build, run, test, fuzz.

mod bench;
mod lab;
mod netns;
mod package;
mod setup;
mod shell;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

use shell::{cargo, is_root, run, run_tests};

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
    /// Build, then run `dhcp6d ARGS` as root; with no ARGS, start the lab: dhcp6d serving real
    /// clients in network namespaces, until Ctrl-C.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up what is missing, then check formatting and lints, and run every test: unit,
    /// property, eBPF build, and the root-only integration tests with real peers in network
    /// namespaces; then a short fuzz run.
    Test {
        /// Seconds of fuzzing after the tests (0 skips it).
        #[arg(long, default_value_t = 20)]
        fuzz_seconds: u64,
    },
    /// Benchmarks: exchange rates of dhcp6d and of Kea (perfdhcp, dhcp6-load), a million
    /// leases, the XDP fast path per frame, renewal rates end to end, relayed exchange rates,
    /// the relay's hot standby.
    Bench {
        /// Only one part: exchanges, million, xdp, renewals, relay or standby.
        #[arg(long)]
        only: Option<String>,
    },
    /// The Debian package: dhcp6d, its systemd unit, the default configuration and the docs,
    /// written to target/debian/ (the path is printed).
    Package {
        /// Package this dhcp6d instead of building a release one (e.g. target/debug/dhcp6d,
        /// which the tests built).
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Where the .deb goes.
        #[arg(long)]
        out: Option<PathBuf>,
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
            if args.is_empty() {
                if !is_root() {
                    bail!("the lab creates network namespaces: run `cargo xtask run` as root");
                }
                return lab::run(&root(), &dhcp6d);
            }
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
            run(cargo().current_dir(root()).args(["fmt", "--all", "--check"]))?;
            run(cargo().current_dir(root()).args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ]))?;
            let tally = run_tests(cargo().current_dir(root()).args(["test", "--workspace", "--locked"]))?;
            if fuzz_seconds > 0 {
                fuzz(fuzz_seconds)?;
            }
            // The closing line CI reads: every test the run executed.
            println!("tests: {} passed, {} failed", tally.passed, tally.failed);
            Ok(())
        }
        Task::Bench { only } => {
            if !is_root() {
                bail!("the benchmarks run servers in network namespaces: run `cargo xtask bench` as root");
            }
            build()?;
            bench::run(&root().join("target/release/dhcp6d"), only.as_deref())
        }
        Task::Package { binary, out } => {
            let binary = match binary {
                Some(b) => b,
                None => {
                    build()?;
                    root().join("target/release/dhcp6d")
                }
            };
            let out = out.unwrap_or_else(|| root().join("target/debian"));
            std::fs::create_dir_all(&out)?;
            let deb = package::package(&root(), &binary, &out)?;
            println!("{}", deb.display());
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

/// Seeds the corpus with every DHCPv6 payload of the captures, then runs libFuzzer. Its output
/// goes to `target/fuzz-decode.log`, shown only when it finds something.
fn fuzz(seconds: u64) -> Result<()> {
    let root = root();
    let corpus = root.join("fuzz/corpus/decode");
    let vectors = root.join("../shared/vectors");
    for entry in std::fs::read_dir(&vectors)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "pcap") {
            run(cargo()
                .current_dir(&root)
                .args([
                    "run",
                    "--quiet",
                    "--locked",
                    "-p",
                    "dhcp6-user",
                    "--bin",
                    "dhcp6d",
                    "--",
                    "decode",
                    "--extract",
                ])
                .arg(&corpus)
                .arg(&path)
                .stdout(std::process::Stdio::null()))?;
        }
    }
    let log_path = root.join("target/fuzz-decode.log");
    let log = std::fs::File::create(&log_path)?;
    let result = run(cargo()
        .current_dir(root.join("fuzz"))
        .args(["+nightly", "fuzz", "run", "decode"])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .stdout(log.try_clone()?)
        .stderr(log));
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    match result {
        Ok(()) => {
            let done = text.lines().find(|l| l.starts_with("Done ")).unwrap_or("done");
            eprintln!("xtask: fuzz decode: {done}, no failure (log: {})", log_path.display());
            Ok(())
        }
        Err(e) => {
            eprintln!("{text}");
            Err(e.context(format!(
                "the decoder fuzz target failed; its input is under fuzz/artifacts/decode (log: {})",
                log_path.display()
            )))
        }
    }
}
