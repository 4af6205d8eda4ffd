//! Running commands: each one echoed, and a failure reported with the command that failed.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// `cargo`, from PATH (the rustup proxy, so that `+nightly` works).
pub fn cargo() -> Command {
    let mut cmd = Command::new("cargo");
    // `cargo xtask` runs under the stable toolchain; its choice must not leak into `+nightly`.
    cmd.env_remove("RUSTUP_TOOLCHAIN").env_remove("RUSTC").env_remove("CARGO");
    cmd
}

/// Runs `cmd` with inherited output; an error unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {}", describe(cmd));
    let status = cmd.status().with_context(|| format!("cannot start {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

/// Counts of a `cargo test` run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
}

impl Tally {
    /// Adds a libtest summary line, `test result: ok. 8 passed; 0 failed; ...`.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(['.', ';']) {
            let mut words = part.split_whitespace();
            if let (Some(n), Some(what)) = (words.next().and_then(|n| n.parse::<u64>().ok()), words.next()) {
                match what {
                    "passed" => self.passed += n,
                    "failed" => self.failed += n,
                    _ => {}
                }
            }
        }
    }
}

/// Runs `cargo test ...`, passing its output through, and adds up its summary lines.
pub fn run_tests(cmd: &mut Command) -> Result<Tally> {
    use std::io::{BufRead, BufReader};
    eprintln!("xtask: {}", describe(cmd));
    let mut child =
        cmd.stdout(std::process::Stdio::piped()).spawn().with_context(|| format!("cannot start {}", describe(cmd)))?;
    let mut tally = Tally::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            tally.add_line(&line);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        println!("tests: {} passed, {} failed", tally.passed, tally.failed.max(1));
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(tally)
}

/// Runs `cmd` quietly and returns its stdout; `None` when it cannot start or fails.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0")
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_libtest_summaries() {
        let mut t = Tally::default();
        t.add_line("test result: ok. 8 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s");
        t.add_line("test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out");
        t.add_line("running 3 tests");
        assert_eq!(t, Tally { passed: 11, failed: 2 });
    }
}
