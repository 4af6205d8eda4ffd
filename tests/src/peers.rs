//! Real DHCPv6 peers and dhcp6d itself, started inside network namespaces and stopped on drop.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::netns::{must, Netns, Process};

/// A scratch folder for one test, removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(crate::netns::unique_name(&format!("dhcp6-{name}-")));
        fs::create_dir_all(&dir).unwrap();
        Scratch { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept for inspection in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The dhcp6d binary of this build. It belongs to another package, which `cargo test -p
/// dhcp6-tests` would not rebuild, so the first call builds it, and the load generator beside
/// it (a no-op when they are fresh).
pub fn dhcp6d_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test binary path");
            let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build.current_dir(env!("CARGO_MANIFEST_DIR")).args([
                "build",
                "--quiet",
                "-p",
                "dhcp6-user",
                "--bin",
                "dhcp6d",
                "--bin",
                "dhcp6-load",
            ]);
            if profile_dir.file_name().is_some_and(|p| p == "release") {
                build.arg("--release");
            }
            let status = build.status().expect("running cargo to build dhcp6d");
            assert!(status.success(), "building dhcp6d failed");
            let bin = profile_dir.join("dhcp6d");
            assert!(bin.exists(), "{} is missing after building it", bin.display());
            bin
        })
        .clone()
}

/// The project's load generator (`dhcp6-load`), built with dhcp6d.
pub fn dhcp6_load_binary() -> PathBuf {
    dhcp6d_binary().with_file_name("dhcp6-load")
}

/// Polls `f` every 100 ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// dhcp6d running in a namespace with its own state folder and control socket.
pub struct Dhcp6d {
    pub process: Process,
    pub socket: PathBuf,
    pub config: PathBuf,
    /// Where its XDP maps and links are pinned (its own, so that tests running side by side do
    /// not share maps); removed on drop, which detaches its XDP program.
    pub bpf_dir: Option<PathBuf>,
}

impl Drop for Dhcp6d {
    fn drop(&mut self) {
        if let Some(dir) = &self.bpf_dir {
            self.process.signal(libc::SIGCONT);
            self.process.signal(libc::SIGKILL);
            let _ = self.process.wait();
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// Where tests pin: a bpffs of their own outside /sys, because `ip netns exec` mounts a fresh
/// /sys for the command it runs, without /sys/fs/bpf.
const TEST_BPFFS: &str = "/run/dhcp6-tests-bpf";

/// A bpffs folder of its own for a test's dhcp6d `name`.
pub fn bpf_dir(name: &str) -> PathBuf {
    static MOUNT: std::sync::Once = std::sync::Once::new();
    MOUNT.call_once(|| {
        let mounted = fs::read_to_string("/proc/mounts")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(TEST_BPFFS));
        if !mounted {
            fs::create_dir_all(TEST_BPFFS).unwrap();
            must(dhcp6_netns::exec(Command::new("mount").args(["-t", "bpf", "bpf", TEST_BPFFS])));
        }
    });
    PathBuf::from(TEST_BPFFS).join(crate::netns::unique_name(name))
}

impl Dhcp6d {
    /// Writes `config` (with `state_dir` and `control_socket` added under `[server]`) and starts
    /// `dhcp6d run` with `extra` arguments; returns once it answers on its control socket.
    pub fn start(ns: &Netns, scratch: &Scratch, name: &str, config: &str, extra: &[&str]) -> Dhcp6d {
        let dir = (!extra.contains(&"--no-xdp")).then(|| bpf_dir(name));
        Self::start_pinned(ns, scratch, name, config, extra, dir)
    }

    /// [`Self::start`] with XDP pinned under `bpf_dir` (`None`: as `extra` says).
    pub fn start_pinned(
        ns: &Netns,
        scratch: &Scratch,
        name: &str,
        config: &str,
        extra: &[&str],
        bpf_dir: Option<PathBuf>,
    ) -> Dhcp6d {
        Self::start_wrapped(ns, scratch, name, config, extra, bpf_dir, &[])
    }

    /// [`Self::start_pinned`] with dhcp6d run by the command `wrapper` (`setpriv ...`,
    /// `env VAR=...`), which must exec it: its process is dhcp6d's.
    pub fn start_wrapped(
        ns: &Netns,
        scratch: &Scratch,
        name: &str,
        config: &str,
        extra: &[&str],
        bpf_dir: Option<PathBuf>,
        wrapper: &[&str],
    ) -> Dhcp6d {
        let socket = scratch.path(&format!("{name}.sock"));
        let state = scratch.path(&format!("{name}-state"));
        let header = format!(
            "[server]\nstate_dir = {:?}\ncontrol_socket = {:?}\n",
            state.display().to_string(),
            socket.display().to_string()
        );
        let config_text = config.replacen("[server]\n", &header, 1);
        assert!(config_text.contains("control_socket"), "the test config needs a [server] table");
        let config_path = scratch.path(&format!("{name}.toml"));
        fs::write(&config_path, config_text).unwrap();
        let bin = dhcp6d_binary();
        let mut args = wrapper.to_vec();
        args.extend_from_slice(&[bin.to_str().unwrap(), "run", "--config", config_path.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let dir_text = bpf_dir.as_ref().map(|d| d.display().to_string());
        if let Some(d) = &dir_text {
            args.extend_from_slice(&["--bpf-dir", d]);
        }
        let process = ns.spawn(&args, &scratch.path(&format!("{name}.log")));
        let d = Dhcp6d { process, socket, config: config_path, bpf_dir };
        wait_for("dhcp6d to answer on its control socket", Duration::from_secs(20), || d.try_show("statistics"));
        d
    }

    /// Stops dhcp6d (SIGTERM) and waits for it to exit, leaving its XDP program and maps
    /// pinned, as a restart does.
    pub fn stop_keeping_pins(mut self) -> Option<PathBuf> {
        let dir = self.bpf_dir.take();
        self.process.signal(libc::SIGTERM);
        let _ = self.process.wait();
        dir
    }

    /// Runs `dhcp6d ARGS --socket SOCKET` (an operator command on this dhcp6d) to completion.
    pub fn command(&self, args: &[&str]) -> std::process::Output {
        Command::new(dhcp6d_binary()).args(args).arg("--socket").arg(&self.socket).output().unwrap()
    }

    /// Writes `config` over its configuration file, with the state directory and control
    /// socket it was started with, for a reload to read.
    pub fn rewrite_config(&self, config: &str) {
        let now = fs::read_to_string(&self.config).unwrap();
        let kept: String = now
            .lines()
            .filter(|l| l.starts_with("state_dir = ") || l.starts_with("control_socket = "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(config.contains("[server]\n"), "the test config needs a [server] table");
        fs::write(&self.config, config.replacen("[server]\n", &format!("[server]\n{kept}"), 1)).unwrap();
    }

    /// `dhcp6d show WHAT --json`: the answer, or what the CLI said on stderr.
    fn show_result(&self, what: &str) -> Result<Value, String> {
        let out = Command::new(dhcp6d_binary())
            .arg("show")
            .args(what.split_whitespace())
            .args(["--json", "--socket"])
            .arg(&self.socket)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    }

    /// Like [`Self::show`], `None` where it fails.
    pub fn try_show(&self, what: &str) -> Option<Value> {
        self.show_result(what).ok()
    }

    /// `dhcp6d show WHAT --json`, through the real CLI.
    pub fn show(&self, what: &str) -> Value {
        self.show_result(what)
            .unwrap_or_else(|e| panic!("dhcp6d show {what} failed: {e}\nlog:\n{}", self.process.log_text()))
    }

    /// Bound leases as (resource, type) pairs.
    pub fn bound(&self) -> Vec<(String, String)> {
        let b = self.show("bindings");
        b.as_array()
            .unwrap()
            .iter()
            .filter(|l| l["state"] == "bound")
            .map(|l| (l["resource"].as_str().unwrap().to_string(), l["type"].as_str().unwrap().to_string()))
            .collect()
    }

    /// A counter of `show statistics`: section ("received", "sent", "dropped") and name.
    pub fn stat(&self, section: &str, name: &str) -> u64 {
        self.show("statistics")[section][name].as_u64().unwrap_or(0)
    }
}

/// ISC dhclient -6 in a namespace. Its script records each event's variables instead of
/// configuring anything (the real script would rewrite the host's resolv.conf).
pub struct Dhclient {
    pub process: Process,
    pub dir: PathBuf,
}

const HOOK: &str = "#!/bin/sh\nn=$(ls \"$(dirname \"$0\")\"/events 2>/dev/null | wc -l)\nmkdir -p \"$(dirname \"$0\")/events\"\nenv | grep -E '^(reason|new_|old_|cur_)' | sort > \"$(dirname \"$0\")/events/$(printf %04d $n)-$reason\"\nexit 0\n";

impl Dhclient {
    fn prepare(scratch: &Scratch, name: &str) -> PathBuf {
        let dir = scratch.path(name);
        fs::create_dir_all(&dir).unwrap();
        let hook = dir.join("hook.sh");
        fs::write(&hook, HOOK).unwrap();
        Command::new("chmod").arg("755").arg(&hook).status().unwrap();
        dir
    }

    fn args(dir: &Path, interface: &str, flags: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec!["dhclient".into(), "-6".into(), "-v".into()];
        a.extend(flags.iter().map(|s| s.to_string()));
        for (flag, file) in [("-pf", "dhclient.pid"), ("-lf", "dhclient.leases"), ("-sf", "hook.sh")] {
            a.push(flag.into());
            a.push(dir.join(file).display().to_string());
        }
        a.push(interface.into());
        a
    }

    /// Starts `dhclient -6 -d FLAGS` (e.g. `-N -P`) on `interface`.
    pub fn start(ns: &Netns, scratch: &Scratch, name: &str, interface: &str, flags: &[&str]) -> Dhclient {
        let dir = Self::prepare(scratch, name);
        let mut f = vec!["-d"];
        f.extend_from_slice(flags);
        let args = Self::args(&dir, interface, &f);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = ns.spawn(&refs, &dir.join("dhclient.log"));
        Dhclient { process, dir }
    }

    /// Runs a one-shot dhclient (e.g. `-r` to release) with the same files, to completion.
    pub fn run_once(&self, ns: &Netns, interface: &str, flags: &[&str]) {
        let args = Self::args(&self.dir, interface, flags);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ns.exec_status(&refs);
        assert!(out.status.success(), "dhclient {flags:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Every event recorded so far, in order: (reason, variables).
    pub fn events(&self) -> Vec<(String, BTreeMap<String, String>)> {
        recorded_events(&self.dir)
    }

    /// Waits for an event with `reason` that sets `key`, and returns its value.
    pub fn wait_event(&self, reason: &str, key: &str, timeout: Duration) -> String {
        wait_for(&format!("dhclient event {reason} with {key}"), timeout, || {
            self.events().into_iter().find(|(r, v)| r == reason && v.contains_key(key)).map(|(_, v)| v[key].clone())
        })
    }

    /// Like [`Self::wait_event`], but every value of `key` across events with `reason`.
    pub fn values(&self, reason: &str, key: &str) -> Vec<String> {
        self.events().into_iter().filter(|(r, _)| r == reason).filter_map(|(_, v)| v.get(key).cloned()).collect()
    }
}

/// Every event the [`HOOK`] script recorded in `dir`, in order: (reason, variables).
fn recorded_events(dir: &Path) -> Vec<(String, BTreeMap<String, String>)> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir.join("events"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .map(|p| {
            let vars: BTreeMap<String, String> = fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect();
            (vars.get("reason").cloned().unwrap_or_default(), vars)
        })
        .collect()
}

/// dhcpcd -6 in a namespace, in the foreground, with IA_NA 1, asking for DNS servers and
/// accepting Reconfigure (it then sends Reconfigure Accept and keeps the key it is given).
/// Its script records each event's variables, as [`Dhclient`]'s does; nothing is configured
/// on the host.
pub struct Dhcpcd {
    pub process: Process,
    pub dir: PathBuf,
    interface: String,
}

impl Dhcpcd {
    pub fn start(ns: &Netns, scratch: &Scratch, name: &str, interface: &str) -> Dhcpcd {
        let dir = Dhclient::prepare(scratch, name);
        let conf = dir.join("dhcpcd.conf");
        fs::write(
            &conf,
            format!(
                "noipv6rs\nipv6only\nnohook resolv.conf\noption dhcp6_name_servers, dhcp6_reconfigure_accept\ninterface {interface}\n  ia_na 1\n"
            ),
        )
        .unwrap();
        let hook = dir.join("hook.sh");
        let args = ["dhcpcd", "-f", conf.to_str().unwrap(), "-c", hook.to_str().unwrap(), "-B", "-d", "-6", interface];
        let process = ns.spawn(&args, &dir.join("dhcpcd.log"));
        Dhcpcd { process, dir, interface: interface.to_string() }
    }

    /// Every event recorded so far, in order: (reason, variables).
    pub fn events(&self) -> Vec<(String, BTreeMap<String, String>)> {
        recorded_events(&self.dir)
    }

    /// Waits for an event that sets `key` to `value` (any reason), and returns its reason.
    pub fn wait_value(&self, key: &str, value: &str, timeout: Duration) -> String {
        wait_for(&format!("dhcpcd event with {key}={value}"), timeout, || {
            self.events().into_iter().find(|(_, v)| v.get(key).map(String::as_str) == Some(value)).map(|(r, _)| r)
        })
    }

    /// dhcpcd's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("dhcpcd.log")).unwrap_or_default()
    }
}

impl Drop for Dhcpcd {
    fn drop(&mut self) {
        // dhcpcd keeps its leases under /var/lib/dhcpcd, by interface name.
        let _ = fs::remove_file(format!("/var/lib/dhcpcd/{}.lease6", self.interface));
    }
}
