//! The tests' namespaces and veth links: `dhcp6-netns` with set-up that panics, saying what
//! failed, instead of returning errors (a test cannot go on without its hosts). Needs root.

use std::{path::Path, process::Output, thread::JoinHandle};

pub use dhcp6_netns::{unique_name, Process};

/// The value of a set-up step, or a panic with what failed.
pub fn must<T>(step: Result<T, dhcp6_netns::Error>) -> T {
    step.unwrap_or_else(|e| panic!("{e}"))
}

/// Panics unless the tests run as root, saying why.
pub fn require_root() {
    if let Err(e) = dhcp6_netns::require_root() {
        panic!("{e}: run `cargo xtask test` as root");
    }
}

/// A network namespace of its own ([`dhcp6_netns::Netns`]), removed when dropped.
pub struct Netns(dhcp6_netns::Netns);

impl Netns {
    /// A new namespace named `prefix` and a unique suffix.
    pub fn new(prefix: &str) -> Netns {
        require_root();
        Netns(must(dhcp6_netns::Netns::unique(prefix)))
    }

    /// The namespace's name, as `ip netns` shows it.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Runs `args` inside the namespace; panics, with its stderr, unless it succeeds.
    pub fn exec(&self, args: &[&str]) -> Output {
        must(self.0.exec(args))
    }

    /// Runs `args` inside the namespace and returns its output whatever its exit status
    /// (for tools such as perfdhcp whose status reports drops).
    pub fn exec_status(&self, args: &[&str]) -> Output {
        must(self.0.output(args))
    }

    /// Starts `args` inside the namespace with output to `log`; stopped when dropped.
    pub fn spawn(&self, args: &[&str], log: &Path) -> Process {
        must(self.0.spawn(args, log))
    }

    /// Runs `f` on a thread that has entered this namespace, and returns its result. Sockets
    /// and netlink requests made by `f` are in the namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        must(self.0.run(f))
    }

    /// Starts `f` on a thread that has entered this namespace, and returns at once.
    pub fn spawn_thread<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        must(self.0.spawn_thread(f))
    }
}

/// A veth pair with one end in each namespace, both up; deleted when dropped.
pub struct Veth(dhcp6_netns::Veth);

impl Veth {
    /// A pair `a` (in `ns_a`) -- `b` (in `ns_b`) with unique names.
    pub fn new(ns_a: &Netns, ns_b: &Netns) -> Veth {
        Veth::named(ns_a, ns_b, &unique_name("va"), &unique_name("vb"))
    }

    /// A veth pair with the names given (to make one anew after deleting it, say).
    pub fn named(ns_a: &Netns, ns_b: &Netns, a: &str, b: &str) -> Veth {
        Veth(must(dhcp6_netns::Veth::new(&ns_a.0, a, &ns_b.0, b)))
    }

    /// The end in the first namespace.
    pub fn a(&self) -> &str {
        self.0.a()
    }

    /// The end in the second namespace.
    pub fn b(&self) -> &str {
        self.0.b()
    }
}

/// Sends whole Ethernet frames out of `interface`; call it from a thread inside the
/// interface's namespace ([`Netns::run`]).
pub fn send_frames(interface: &str, frames: &[Vec<u8>]) {
    must(dhcp6_netns::send_frames(interface, frames))
}
