//! A long-running program started inside a namespace ([`Netns::spawn`](crate::Netns::spawn)),
//! stopped when its value is dropped.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use crate::{command::describe, Error};

/// How long a process has to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A program running in a namespace, its output going to a log file. Dropping it stops it:
/// SIGTERM first, so that a daemon can clean up (dhcp6d removes its control socket), then
/// SIGKILL after three seconds.
#[derive(Debug)]
pub struct Process {
    child: Child,
    command: String,
    log: PathBuf,
    /// How it exited, once waited for: from then on its pid may be another process's.
    exited: Option<ExitStatus>,
}

impl Process {
    /// Starts `cmd` with stdin closed, stdout and stderr to the file `log`.
    pub(crate) fn start(mut cmd: Command, log: &Path) -> Result<Process, Error> {
        let log_error = |source| Error::Log { path: log.to_path_buf(), source };
        let out = File::create(log).map_err(log_error)?;
        let err = out.try_clone().map_err(log_error)?;
        let command = describe(&cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| Error::Start { command: command.clone(), source })?;
        Ok(Process { child, command, log: log.to_path_buf(), exited: None })
    }

    /// The process id (the program's own: `ip netns exec` execs it).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The file its stdout and stderr go to.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// What it has written so far (empty when the log cannot be read).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (`libc::SIGSTOP`, `SIGCONT`, ...). Nothing once it was waited for.
    pub fn signal(&self, signal: i32) {
        if self.exited.is_some() {
            return;
        }
        // A child not yet waited for keeps its pid (a zombie at worst), so the signal reaches
        // this process and no other; for our own child, kill cannot fail.
        // SAFETY: kill takes no pointers.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Waits for it to exit, and returns how it did.
    pub fn wait(&mut self) -> Result<ExitStatus, Error> {
        let status = self.child.wait().map_err(|source| Error::Wait { command: self.command.clone(), source })?;
        self.exited = Some(status);
        Ok(status)
    }

    /// How it exited, if it has, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        match self.has_exited() {
            true => self.exited,
            false => None,
        }
    }

    /// Whether it has exited, without waiting.
    fn has_exited(&mut self) -> bool {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exited = Some(status);
                true
            }
            // An error here means it cannot be waited for: there is nothing left to stop.
            Ok(None) => false,
            Err(_) => true,
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exited.is_some() {
            return;
        }
        // A stopped process acts on SIGTERM only once continued.
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if self.has_exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use crate::{require_root, Netns};

    fn netns() -> Netns {
        require_root().expect("these tests make network namespaces: run them as root");
        Netns::unique("pt").expect("a namespace")
    }

    fn log(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(crate::unique_name(name))
    }

    /// Whether `pid` exists (a zombie counts).
    fn alive(pid: u32) -> bool {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn a_process_started_inside_runs_in_the_namespace_and_is_stopped_on_drop() {
        let ns = netns();
        let log = log("sleep");
        let sleep = ns.spawn(&["sleep", "1000"], &log).expect("sleep starts");
        let pid = sleep.id();
        let inode = |path: &str| std::fs::metadata(path).expect(path).ino();
        // `ip netns exec` may not have entered the namespace yet: wait until it has exec'd.
        for _ in 0..100 {
            if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(inode(&format!("/proc/{pid}/ns/net")), inode(&format!("/var/run/netns/{}", ns.name())));
        drop(sleep);
        assert!(!alive(pid), "sleep is stopped and reaped");
        let _ = std::fs::remove_file(log);
    }

    #[test]
    fn a_process_that_ignores_sigterm_is_killed_on_drop() {
        let ns = netns();
        let log = log("stubborn");
        // An ignored signal stays ignored across exec.
        let stubborn = ns.spawn(&["sh", "-c", "trap '' TERM; echo ready; exec sleep 1000"], &log).expect("starts");
        while !stubborn.log_text().contains("ready") {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let pid = stubborn.id();
        drop(stubborn);
        assert!(!alive(pid), "killed and reaped after the grace period");
        let _ = std::fs::remove_file(log);
    }

    #[test]
    fn its_output_goes_to_its_log() {
        let ns = netns();
        let log = log("echo");
        let mut echo = ns.spawn(&["sh", "-c", "echo out; echo err >&2; exit 3"], &log).expect("starts");
        let status = echo.wait().expect("exits");
        assert_eq!(status.code(), Some(3));
        assert_eq!(echo.log(), log);
        assert_eq!(echo.log_text(), "out\nerr\n");
        let _ = std::fs::remove_file(log);
    }
}
