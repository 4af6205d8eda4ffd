//! Commands run to completion with their output captured, a failure typed with what the
//! command said.

use std::process::{Command, Output};

use crate::Error;

/// The command line of `cmd`, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(|s| s.to_string_lossy()).collect::<Vec<_>>().join(" ")
}

/// Runs `cmd` to completion and returns its output, whatever its exit status.
pub(crate) fn output(cmd: &mut Command) -> Result<Output, Error> {
    cmd.output().map_err(|source| Error::Start { command: describe(cmd), source })
}

/// Runs `cmd` to completion; [`Error::Failed`], with its stderr, unless it exits 0. For
/// commands on the host (`ip link add`, `mount`); [`Netns::exec`](crate::Netns::exec) runs one
/// inside a namespace.
pub fn exec(cmd: &mut Command) -> Result<Output, Error> {
    let out = output(cmd)?;
    if !out.status.success() {
        return Err(Error::Failed {
            command: describe(cmd),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        });
    }
    Ok(out)
}
