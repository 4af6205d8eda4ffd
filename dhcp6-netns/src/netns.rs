//! A network namespace owned by a value: made fresh (loopback up, duplicate address detection
//! off), with commands, long-running programs and closures run inside it, and removed with
//! what is left in it when dropped.

use std::{
    fs::File,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::Duration,
};

use crate::{command, Error, Process};

/// Where `ip netns` keeps its namespaces, one file each.
const NETNS_DIR: &str = "/var/run/netns";

/// How long [`Netns::wait_link_local`] waits, in steps of [`LINK_LOCAL_STEP`].
const LINK_LOCAL_STEPS: u32 = 100;
const LINK_LOCAL_STEP: Duration = Duration::from_millis(50);

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this process and call: `prefix`, the process id, a counter. With a prefix
/// of up to four bytes it fits an interface name (15 bytes).
///
/// ```
/// let (a, b) = (dhcp6_netns::unique_name("va"), dhcp6_netns::unique_name("va"));
/// assert!(a.starts_with("va") && a != b && a.len() <= 15);
/// ```
pub fn unique_name(prefix: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id())
}

/// [`Error::NotRoot`] unless the effective user is root.
pub fn require_root() -> Result<(), Error> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    match unsafe { libc::geteuid() } {
        0 => Ok(()),
        _ => Err(Error::NotRoot),
    }
}

/// A network namespace made for this value and removed, with its interfaces, when it is
/// dropped. Programs started in it with [`Netns::spawn`] are stopped by their own
/// [`Process`] values; drop those first.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Makes the namespace `name`, removing first one of that name left by an interrupted run;
    /// loopback is up and IPv6 duplicate address detection off, so that addresses are usable at
    /// once.
    pub fn new(name: &str) -> Result<Netns, Error> {
        require_root()?;
        Netns::remove(name);
        command::exec(Command::new("ip").args(["netns", "add", name]))?;
        // From here on, a failing step removes the namespace as `ns` is dropped.
        let ns = Netns { name: name.to_string() };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"])?;
        Ok(ns)
    }

    /// [`Netns::new`] with a name of its own ([`unique_name`]), for tests that run side by side.
    pub fn unique(prefix: &str) -> Result<Netns, Error> {
        Netns::new(&unique_name(prefix))
    }

    /// Whether a namespace called `name` exists.
    pub fn exists(name: &str) -> bool {
        Path::new(NETNS_DIR).join(name).exists()
    }

    /// Removes the namespace called `name`, if there is one: what an interrupted run left, or
    /// one whose value was never made or was forgotten.
    pub fn remove(name: &str) {
        // An error means there was none (or it is gone already): nothing to report.
        let _ = Command::new("ip").args(["netns", "del", name]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }

    /// The namespace's name, as `ip netns` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `args` as a command run inside the namespace (`ip netns exec`, which execs it: the
    /// child's pid is the program's own), to be given more settings and run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    /// Runs `args` inside the namespace and returns its output; [`Error::Failed`], with its
    /// stderr, unless it exits 0.
    pub fn exec(&self, args: &[&str]) -> Result<Output, Error> {
        command::exec(&mut self.command(args))
    }

    /// Runs `args` inside the namespace and returns its output, whatever its exit status (for
    /// tools such as perfdhcp whose status reports losses).
    pub fn output(&self, args: &[&str]) -> Result<Output, Error> {
        command::output(&mut self.command(args))
    }

    /// Runs `args` inside the namespace, its output discarded, and returns how it exited.
    pub fn status(&self, args: &[&str]) -> Result<ExitStatus, Error> {
        Ok(self.output(args)?.status)
    }

    /// Starts `args` inside the namespace, stdout and stderr to the file `log`; it runs until its
    /// [`Process`] is dropped.
    pub fn spawn(&self, args: &[&str], log: &Path) -> Result<Process, Error> {
        Process::start(self.command(args), log)
    }

    /// Waits (up to five seconds) until `interface` has its IPv6 link-local address, which
    /// DHCPv6 clients and relays need to start. One with IPv6 disabled never gets one.
    pub fn wait_link_local(&self, interface: &str) -> Result<(), Error> {
        for _ in 0..LINK_LOCAL_STEPS {
            let out = self.exec(&["ip", "-6", "addr", "show", "dev", interface, "scope", "link"])?;
            if String::from_utf8_lossy(&out.stdout).contains("fe80::") {
                return Ok(());
            }
            std::thread::sleep(LINK_LOCAL_STEP);
        }
        Err(Error::NoLinkLocal { netns: self.name.clone(), interface: interface.to_string() })
    }

    /// Runs `f` on a thread that has entered the namespace, and returns its result; a panic in
    /// `f` goes on in the caller. Sockets that `f` opens and netlink requests it makes are the
    /// namespace's, whichever thread uses them later.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
        let file = self.open()?;
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name(format!("in {}", self.name))
                .spawn_scoped(scope, || enter(&file).map(|()| f()))
                .map_err(|source| self.thread_error(source))?;
            match thread.join() {
                Ok(result) => result.map_err(|source| self.enter_error(source)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Starts `f` on a thread that has entered the namespace, and returns once it is inside.
    pub fn spawn_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<JoinHandle<T>, Error> {
        let file = self.open()?;
        let (entered_tx, entered) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(format!("in {}", self.name))
            .spawn(move || {
                let result = enter(&file);
                let failed = result.is_err();
                let _ = entered_tx.send(result);
                if failed {
                    // The caller returns the error and drops this thread's handle: end without
                    // running `f` (resume_unwind, unlike panic, prints nothing).
                    std::panic::resume_unwind(Box::new("the thread did not enter the namespace"));
                }
                f()
            })
            .map_err(|source| self.thread_error(source))?;
        match entered.recv() {
            Ok(Ok(())) => Ok(thread),
            Ok(Err(source)) => Err(self.enter_error(source)),
            // The thread sends before anything else; it can only fail to if it died first.
            Err(_) => Err(self.enter_error(std::io::Error::other("the thread ended before entering"))),
        }
    }

    fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    fn open(&self) -> Result<File, Error> {
        File::open(self.path()).map_err(|source| self.enter_error(source))
    }

    fn enter_error(&self, source: std::io::Error) -> Error {
        Error::Enter { netns: self.name.clone(), source }
    }

    fn thread_error(&self, source: std::io::Error) -> Error {
        Error::Thread { netns: self.name.clone(), source }
    }
}

/// Moves the calling thread into the namespace of `file` (a namespace file under
/// [`NETNS_DIR`]). Only for threads made for it: the thread stays there.
fn enter(file: &File) -> std::io::Result<()> {
    // SAFETY: `file` is an open namespace file, valid for the call; setns moves only the
    // calling thread.
    match unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        Netns::remove(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index of `interface` in the calling thread's namespace, 0 for none.
    fn index_here(interface: &str) -> u32 {
        let name = std::ffi::CString::new(interface).expect("no NUL in an interface name");
        // SAFETY: `name` is a NUL-terminated string that outlives the call.
        unsafe { libc::if_nametoindex(name.as_ptr()) }
    }

    fn netns(prefix: &str) -> Netns {
        require_root().expect("these tests make network namespaces: run them as root");
        Netns::unique(prefix).expect("a namespace")
    }

    #[test]
    fn a_namespace_exists_while_held_and_is_gone_after_drop() {
        let ns = netns("nt");
        let name = ns.name().to_string();
        assert!(Netns::exists(&name));
        let lo = ns.exec(&["ip", "-o", "link", "show", "lo"]).expect("ip link");
        assert!(String::from_utf8_lossy(&lo.stdout).contains("UP"), "loopback is up");
        drop(ns);
        assert!(!Netns::exists(&name), "{name} is removed");
    }

    #[test]
    fn a_stale_namespace_of_the_same_name_is_replaced() {
        require_root().expect("these tests make network namespaces: run them as root");
        let name = unique_name("nt");
        let stale = Netns::new(&name).expect("a namespace");
        stale.exec(&["ip", "link", "add", "stale0", "type", "bridge"]).expect("a bridge");
        // As an interrupted run leaves it: no value removes it.
        std::mem::forget(stale);
        let fresh = Netns::new(&name).expect("made anew over the stale one");
        assert!(fresh.exec(&["ip", "link", "show", "stale0"]).is_err(), "the stale one's interfaces are gone");
    }

    #[test]
    fn a_failing_command_returns_its_command_line_and_stderr() {
        let ns = netns("nt");
        let err = ns.exec(&["ip", "link", "show", "nosuch0"]).expect_err("no such interface");
        let Error::Failed { command, status, stderr, .. } = &err else { panic!("not Failed: {err:?}") };
        assert_eq!(command, &format!("ip netns exec {} ip link show nosuch0", ns.name()));
        assert!(!status.success());
        assert!(stderr.contains("nosuch0"), "{stderr}");
        assert!(err.to_string().contains("nosuch0"), "the message says what the command said: {err}");
        assert!(!ns.status(&["false"]).expect("false runs").success());
        let start = ns.exec(&["/nonexistent/program"]).expect_err("nothing to run");
        assert!(matches!(start, Error::Failed { .. }), "ip netns exec reports it: {start:?}");
        let start = command::exec(&mut Command::new("/nonexistent/program")).expect_err("nothing to run");
        assert!(matches!(start, Error::Start { .. }), "{start:?}");
    }

    #[test]
    fn closures_and_threads_run_inside_the_namespace() {
        let ns = netns("nt");
        ns.exec(&["ip", "link", "add", "inside0", "type", "bridge"]).expect("a bridge");
        assert_eq!(index_here("inside0"), 0, "not on the host");
        assert_ne!(ns.run(|| index_here("inside0")).expect("run"), 0);
        let thread = ns.spawn_thread(|| index_here("inside0")).expect("a thread");
        assert_ne!(thread.join().expect("the thread"), 0);
    }

    #[test]
    fn a_panic_inside_goes_on_in_the_caller() {
        let ns = netns("nt");
        let caught = std::panic::catch_unwind(|| ns.run(|| panic!("inside")));
        let panic = caught.expect_err("the panic reaches the caller");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"inside"));
    }
}
