//! Network namespaces and veth links for tests: real hosts on one machine, removed on drop.
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).

use std::{
    fs::File,
    os::fd::AsRawFd,
    process::{Command, Output},
    sync::atomic::{AtomicUsize, Ordering},
};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this process and call, short enough for an interface name (15 bytes).
pub fn unique_name(prefix: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id() % 100_000)
}

/// Runs a command and panics with its output when it fails: test set-up must not fail silently.
pub fn must(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Panics unless the tests run as root, saying why.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "network namespace tests need root: run `cargo xtask test` as root");
}

/// A network namespace, deleted with everything in it when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace with loopback up and IPv6 duplicate address detection off, so that
    /// addresses are usable at once.
    pub fn new(prefix: &str) -> Netns {
        require_root();
        let ns = Netns { name: unique_name(prefix) };
        must(Command::new("ip").args(["netns", "add", &ns.name]));
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]);
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
        ns
    }

    /// Runs `args` inside the namespace; panics if it fails.
    pub fn exec(&self, args: &[&str]) -> Output {
        must(Command::new("ip").args(["netns", "exec", &self.name]).args(args))
    }

    /// Runs `args` inside the namespace and returns its output whatever its exit status
    /// (for tools such as perfdhcp whose status reports drops).
    pub fn exec_status(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
    }

    /// Waits until `interface` has its IPv6 link-local address (clients need it to start).
    /// An interface with IPv6 disabled never gets one: do not call this for it.
    pub fn wait_link_local(&self, interface: &str) {
        for _ in 0..100 {
            let out = self.exec(&["ip", "-6", "addr", "show", "dev", interface, "scope", "link"]);
            if String::from_utf8_lossy(&out.stdout).contains("fe80::") {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("{interface} in {} got no link-local address", self.name);
    }

    /// Runs `f` on a thread that has entered this namespace, and returns its result. Sockets
    /// and netlink requests made by `f` are in the namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: a valid namespace fd; setns affects only this thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns into {}: {}", self.name, std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("thread inside the namespace panicked")
        })
    }
}

impl Netns {
    /// Starts `f` on a thread that has entered this namespace, and returns at once.
    pub fn spawn(&self, f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
        let path = format!("/var/run/netns/{}", self.name);
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        std::thread::spawn(move || {
            // SAFETY: a valid namespace fd; setns affects only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A veth pair with one end in each namespace, both up.
pub struct Veth {
    pub a: String,
    pub b: String,
}

impl Veth {
    pub fn new(ns_a: &Netns, ns_b: &Netns) -> Veth {
        Veth::named(ns_a, ns_b, unique_name("va"), unique_name("vb"))
    }

    /// A veth pair with the names given (to make one anew after deleting it, say).
    pub fn named(ns_a: &Netns, ns_b: &Netns, a: String, b: String) -> Veth {
        must(
            Command::new("ip").args([
                "link", "add", &a, "netns", &ns_a.name, "type", "veth", "peer", "name", &b, "netns", &ns_b.name,
            ]),
        );
        ns_a.exec(&["ip", "link", "set", &a, "up"]);
        ns_b.exec(&["ip", "link", "set", &b, "up"]);
        ns_a.wait_link_local(&a);
        ns_b.wait_link_local(&b);
        Veth { a, b }
    }
}

/// Sends whole Ethernet frames out of `interface` through an AF_PACKET socket; call it from a
/// thread inside the interface's namespace ([`Netns::run`]).
pub fn send_frames(interface: &str, frames: &[Vec<u8>]) {
    let name = std::ffi::CString::new(interface).expect("interface names have no NUL");
    // SAFETY: plain libc calls with valid arguments; the socket is closed below.
    unsafe {
        let ifindex = libc::if_nametoindex(name.as_ptr());
        assert!(ifindex > 0, "no interface {interface}");
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        for frame in frames {
            let sent = libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::addr_of!(addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(sent, frame.len() as isize, "sendto: {}", std::io::Error::last_os_error());
        }
        libc::close(fd);
    }
}
