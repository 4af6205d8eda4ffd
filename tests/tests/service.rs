//! dhcp6d as a systemd service and a Debian package: contrib/dhcp6d.service checked by
//! `systemd-analyze verify`; the sd_notify protocol (READY=1 once it serves, watchdog
//! keep-alives, STOPPING=1) and SIGHUP; dhcp6d serving a real dhclient with XDP attached under
//! exactly the unit's capabilities, and each of them shown to be needed; and the .deb of
//! `cargo xtask package` installed, its configuration checked, and purged without a trace.

use std::{
    fs,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use dhcp6_tests::{
    netns::{require_root, Netns, Veth},
    peers::{bpf_dir, dhcp6d_binary, wait_for, Dhclient, Dhcp6d, Scratch},
};

const SECS: Duration = Duration::from_secs(30);

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn unit_text() -> String {
    fs::read_to_string(repository().join("contrib/dhcp6d.service")).expect("reading contrib/dhcp6d.service")
}

/// The values of `key=` in the unit, space-separated words, over every line that sets it.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .flat_map(|v| v.split_whitespace().map(str::to_string))
        .collect()
}

/// `systemd-analyze verify` on `unit`: its exit status and what it said.
fn verify(unit: &Path) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
        .expect("running systemd-analyze (cargo xtask setup installs the systemd package)");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let scratch = Scratch::new("unit");
    let unit = unit_text();
    // verify needs ExecStart's binary to exist: this build's, in a copy of the unit.
    let binary = dhcp6d_binary();
    let copy = unit.replace("/usr/sbin/dhcp6d", binary.to_str().unwrap());
    assert_ne!(copy, unit, "the unit runs /usr/sbin/dhcp6d");
    let path = scratch.path("dhcp6d.service");
    fs::write(&path, copy).unwrap();
    let (ok, said) = verify(&path);
    assert!(ok, "systemd-analyze verify failed:\n{said}");
    // Unknown keys and bad values are only warnings: there must be none about the unit.
    assert!(!said.contains("dhcp6d.service"), "systemd-analyze verify warned:\n{said}");

    // What the daemon relies on.
    for line in ["Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "User=root"] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    assert!(unit_values(&unit, "WatchdogSec").len() == 1, "the unit sets no WatchdogSec");
    assert_eq!(unit_values(&unit, "CapabilityBoundingSet"), unit_values(&unit, "AmbientCapabilities"));
}

/// A server on the client's link, `interface`.
fn config(interface: &str) -> String {
    format!(
        r#"[server]
valid_lifetime = 300

[[subnet]]
interface = "{interface}"
prefix = "2001:db8:1::/64"
ranges = [{{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }}]
"#
    )
}

/// A server namespace and a client namespace joined by a veth whose client end computes its
/// UDP checksums (as a NIC does), so that XDP hands the client's messages to AF_XDP.
fn link(name: &str) -> (Netns, Netns, Veth, Scratch) {
    let server = Netns::new("d6sv");
    let client = Netns::new("d6cl");
    let veth = Veth::new(&server, &client);
    server.exec(&["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", veth.a(), "nodad"]);
    client.exec(&["ethtool", "-K", veth.b(), "tx", "off"]);
    (server, client, veth, Scratch::new(name))
}

/// Every datagram the notify socket holds now.
fn notifications(socket: &UnixDatagram) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    got
}

#[test]
fn dhcp6d_tells_systemd_it_is_ready_keeps_the_watchdog_and_survives_sighup() {
    let (server_ns, client_ns, veth, scratch) = link("notify");
    let path = scratch.path("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let notify = format!("NOTIFY_SOCKET={}", path.display());
    // Keep-alives every 250 ms.
    let wrapper = ["env", &notify, "WATCHDOG_USEC=500000"];
    let d =
        Dhcp6d::start_wrapped(&server_ns, &scratch, "srv", &config(veth.a()), &[], Some(bpf_dir("notify")), &wrapper);

    // READY=1 comes once it serves: XDP attached, and the first message it sent.
    let first = wait_for("READY=1", SECS, || notifications(&socket).into_iter().next());
    assert!(first.starts_with("READY=1\n"), "{first:?}");
    assert!(first.contains(&format!("STATUS=serving 0 leases on {} (XDP attached)", veth.a())), "{first:?}");
    assert!(d.process.log_text().contains("XDP attached"), "{}", d.process.log_text());

    // Keep-alives while the loop turns: several within a few seconds, nothing but them.
    let mut keep_alives = 0;
    wait_for("five WATCHDOG=1", SECS, || {
        for n in notifications(&socket) {
            assert_eq!(n, "WATCHDOG=1\n");
            keep_alives += 1;
        }
        (keep_alives >= 5).then_some(())
    });
    let mut said = Vec::new();

    // SIGHUP (systemctl reload) reloads, and does not stop it; it still serves a client.
    d.process.signal(libc::SIGHUP);
    wait_for("dhcp6d to reload on SIGHUP", SECS, || d.process.log_text().contains("reloaded").then_some(()));
    let client = Dhclient::start(&client_ns, &scratch, "dhclient", veth.b(), &[]);
    client.wait_event("BOUND6", "new_ip6_address", SECS);
    assert!(d.stat("received", "SOLICIT") >= 1);
    // The status follows the leases.
    let status = format!("STATUS=serving 1 leases on {} (XDP attached)\n", veth.a());
    wait_for("the status to count the lease", SECS, || {
        said.extend(notifications(&socket));
        said.contains(&status).then_some(())
    });

    // SIGTERM: STOPPING=1, and a clean exit.
    let stopped = d.stop_keeping_pins();
    wait_for("STOPPING=1", SECS, || {
        notifications(&socket).into_iter().any(|n| n.starts_with("STOPPING=1\n")).then_some(())
    });
    if let Some(dir) = stopped {
        let _ = fs::remove_dir_all(dir);
    }
}

#[test]
fn no_keep_alives_without_watchdog_usec_and_nothing_without_notify_socket() {
    let (server_ns, _client_ns, veth, scratch) = link("nowatchdog");
    // NOTIFY_SOCKET without WATCHDOG_USEC: READY=1, and not one keep-alive.
    let path = scratch.path("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let notify = format!("NOTIFY_SOCKET={}", path.display());
    let wrapper = ["env", "-u", "WATCHDOG_USEC", &notify];
    let d = Dhcp6d::start_wrapped(&server_ns, &scratch, "srv", &config(veth.a()), &["--no-xdp"], None, &wrapper);
    let first = wait_for("READY=1", SECS, || notifications(&socket).into_iter().next());
    assert!(first.starts_with("READY=1\n") && first.contains("(without XDP)"), "{first:?}");
    // Twenty ticks of the loop, and control requests that turn it.
    for _ in 0..20 {
        assert!(d.try_show("statistics").is_some());
        std::thread::sleep(Duration::from_millis(100));
    }
    let later = notifications(&socket);
    assert!(later.iter().all(|n| !n.contains("WATCHDOG")), "keep-alives without a watchdog: {later:?}");
    drop(d);

    // WATCHDOG_USEC without NOTIFY_SOCKET: dhcp6d runs as ever, and tries to tell no one.
    let d = Dhcp6d::start_wrapped(
        &server_ns,
        &scratch,
        "srv2",
        &config(veth.a()),
        &["--no-xdp"],
        None,
        &["env", "-u", "NOTIFY_SOCKET", "WATCHDOG_USEC=200000"],
    );
    for _ in 0..10 {
        assert!(d.try_show("statistics").is_some());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = d.process.log_text();
    assert!(!log.contains("could not notify"), "{log}");
}

/// The unit's capabilities, as setpriv names them (`net_admin`).
fn unit_capabilities() -> Vec<String> {
    let caps: Vec<String> = unit_values(&unit_text(), "CapabilityBoundingSet")
        .iter()
        .map(|c| c.strip_prefix("CAP_").unwrap_or(c).to_lowercase())
        .collect();
    assert!(!caps.is_empty(), "the unit sets no CapabilityBoundingSet");
    caps
}

/// setpriv keeping exactly `caps` (bounding, inheritable and ambient sets), as systemd does
/// with the unit's CapabilityBoundingSet and AmbientCapabilities for root.
fn setpriv(caps: &[String]) -> Vec<String> {
    let set: String =
        std::iter::once("-all".to_string()).chain(caps.iter().map(|c| format!("+{c}"))).collect::<Vec<_>>().join(",");
    ["setpriv", "--bounding-set", &set, "--inh-caps", &set, "--ambient-caps", &set, "--"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The capability bits of a set from /proc/PID/status (`CapEff`, `CapBnd`).
fn capability_mask(pid: u32, set: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status.lines().find_map(|l| l.strip_prefix(set)?.strip_prefix(":")).unwrap();
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

/// The bit of capability `name` (`net_admin`) in /proc's masks (linux/capability.h).
fn capability_bit(name: &str) -> u64 {
    let number = match name {
        "net_bind_service" => 10,
        "net_admin" => 12,
        "net_raw" => 13,
        "ipc_lock" => 14,
        "sys_admin" => 21,
        "sys_resource" => 24,
        "perfmon" => 38,
        "bpf" => 39,
        other => panic!("capability {other} unknown to this test"),
    };
    1 << number
}

#[test]
fn dhcp6d_serves_with_exactly_the_units_capabilities_and_needs_each() {
    let caps = unit_capabilities();
    let (server_ns, client_ns, veth, scratch) = link("caps");

    // Each capability left out: dhcp6d stops with an error naming what failed, or (AF_XDP)
    // serves through the UDP socket and says which capability it lacked. Never a panic.
    for left_out in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != left_out).cloned().collect();
        let name = format!("no-{left_out}");
        let state = scratch.path(&format!("{name}-state"));
        let control = scratch.path(&format!("{name}.sock"));
        let text = config(veth.a()).replacen(
            "[server]\n",
            &format!(
                "[server]\nstate_dir = {:?}\ncontrol_socket = {:?}\n",
                state.display().to_string(),
                control.display().to_string()
            ),
            1,
        );
        let file = scratch.path(&format!("{name}.toml"));
        fs::write(&file, text).unwrap();
        let pins = bpf_dir(&name);
        let mut args = setpriv(&fewer);
        args.extend([
            dhcp6d_binary().display().to_string(),
            "run".into(),
            "--config".into(),
            file.display().to_string(),
            "--bpf-dir".into(),
            pins.display().to_string(),
        ]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut process = server_ns.spawn(&refs, &scratch.path(&format!("{name}.log")));
        let deadline = Instant::now() + SECS;
        let said = loop {
            let log = process.log_text();
            if let Some(status) = process.try_wait() {
                assert!(!status.success(), "dhcp6d without {left_out} exited 0:\n{log}");
                break process.log_text();
            }
            if log.contains("no AF_XDP socket") {
                break log;
            }
            assert!(Instant::now() < deadline, "dhcp6d without {left_out} neither failed nor warned:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        };
        drop(process);
        let _ = fs::remove_dir_all(&pins);
        assert!(!said.contains("panicked"), "dhcp6d without {left_out} panicked:\n{said}");
        let expected = match left_out.as_str() {
            "net_admin" | "bpf" => "loading the XDP program",
            "perfmon" => "pointer arithmetic",
            "net_bind_service" => "binding UDP port 547",
            "net_raw" => "needs CAP_NET_RAW",
            "ipc_lock" => "needs CAP_IPC_LOCK",
            other => panic!("no expectation for dhcp6d without {other}"),
        };
        assert!(said.contains(expected), "dhcp6d without {left_out} did not say {expected:?}:\n{said}");
    }

    // With exactly the unit's set: XDP attached, AF_XDP sockets open, a real client served.
    let wrapper = setpriv(&caps);
    let refs: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let d = Dhcp6d::start_wrapped(&server_ns, &scratch, "srv", &config(veth.a()), &[], Some(bpf_dir("caps")), &refs);
    let want: u64 = caps.iter().map(|c| capability_bit(c)).fold(0, |a, b| a | b);
    assert_eq!(capability_mask(d.process.id(), "CapEff"), want, "dhcp6d's effective capabilities");
    assert_eq!(capability_mask(d.process.id(), "CapBnd"), want, "dhcp6d's bounding set");
    let client = Dhclient::start(&client_ns, &scratch, "dhclient", veth.b(), &[]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    assert_eq!(d.bound(), vec![(format!("{address}/128"), "ia_na".to_string())]);
    let log = d.process.log_text();
    assert!(log.contains("XDP attached"), "{log}");
    assert!(log.contains("AF_XDP sockets open"), "{log}");
    assert!(d.show("statistics")["xdp"]["to_af_xdp"].as_u64().unwrap_or(0) >= 1, "{}", d.show("statistics"));
}

/// `dpkg-query -W -f=FORMAT dhcp6d`, None when it is not installed.
fn installed(format: &str) -> Option<String> {
    let out = Command::new("dpkg-query").args(["-W", &format!("-f={format}"), "dhcp6d"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// Runs `cmd`, which must succeed; its stdout.
fn must_run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{cmd:?} failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Keeps services from starting while it lives (policy-rc.d exiting 101), as on a machine
/// that installs packages for tests; removed after if it made it.
struct NoServiceStarts {
    made: bool,
}

const POLICY: &str = "/usr/sbin/policy-rc.d";

impl NoServiceStarts {
    fn new() -> NoServiceStarts {
        let made = !Path::new(POLICY).exists();
        if made {
            fs::write(POLICY, "#!/bin/sh\nexit 101\n").unwrap();
            must_run(Command::new("chmod").args(["755", POLICY]));
        }
        NoServiceStarts { made }
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if self.made {
            let _ = fs::remove_file(POLICY);
        }
    }
}

/// Purges the package when the test ends, however it ends.
struct PurgedAfter;

impl Drop for PurgedAfter {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "dhcp6d"]).output();
    }
}

#[test]
fn the_debian_package_installs_checks_its_configuration_and_purges_cleanly() {
    require_root();
    assert!(installed("${Status}").is_none_or(|s| !s.contains("installed")), "dhcp6d is installed already");
    let scratch = Scratch::new("deb");
    // The binary the tests built, packaged as it is: no release build.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let printed = must_run(
        Command::new(cargo)
            .current_dir(repository())
            .args(["run", "--quiet", "-p", "xtask", "--", "package", "--binary"])
            .arg(dhcp6d_binary())
            .arg("--out")
            .arg(&scratch.dir),
    );
    let deb = PathBuf::from(printed.lines().last().unwrap().trim());
    assert!(deb.starts_with(&scratch.dir) && deb.extension().is_some_and(|e| e == "deb"), "{printed}");

    let _policy = NoServiceStarts::new();
    let _purge = PurgedAfter;
    must_run(Command::new("dpkg").arg("-i").arg(&deb));
    let files: Vec<PathBuf> =
        must_run(Command::new("dpkg").args(["-L", "dhcp6d"])).lines().map(PathBuf::from).collect();
    for f in [
        "/usr/sbin/dhcp6d",
        "/lib/systemd/system/dhcp6d.service",
        "/etc/dhcp6d/dhcp6d.toml",
        "/usr/share/doc/dhcp6d/README.md",
        "/usr/share/doc/dhcp6d/operations.md",
        "/usr/share/doc/dhcp6d/copyright",
    ] {
        assert!(files.contains(&PathBuf::from(f)), "the package lacks {f}: {files:?}");
        assert!(Path::new(f).exists(), "{f} was not installed");
    }
    let conffiles = installed("${Conffiles}").unwrap_or_default();
    assert!(conffiles.contains("/etc/dhcp6d/dhcp6d.toml"), "conffiles: {conffiles:?}");
    // Enabled (the boot starts it), not started.
    let wants = Path::new("/etc/systemd/system/multi-user.target.wants/dhcp6d.service");
    assert!(wants.exists(), "postinst did not enable the unit");

    // The shipped configuration passes the installed binary's check; the installed unit
    // passes systemd's.
    let checked = must_run(Command::new("/usr/sbin/dhcp6d").args(["check", "--config", "/etc/dhcp6d/dhcp6d.toml"]));
    assert!(checked.contains(": ok"), "{checked}");
    let (ok, said) = verify(Path::new("/lib/systemd/system/dhcp6d.service"));
    assert!(ok && !said.contains("dhcp6d.service"), "systemd-analyze verify on the installed unit:\n{said}");
    // `dhcp6d show` with neither --config nor --socket asks the socket the packaged
    // configuration names (no daemon runs here, so it says it found none there).
    let asked = Command::new("/usr/sbin/dhcp6d").args(["show", "statistics"]).output().unwrap();
    let said = String::from_utf8_lossy(&asked.stderr);
    assert!(!asked.status.success() && said.contains("/run/dhcp6d/dhcp6d.sock"), "{said}");

    must_run(Command::new("dpkg").args(["--purge", "dhcp6d"]));
    assert!(installed("${Status}").is_none_or(|s| !s.contains("installed")), "dhcp6d is still installed");
    // Every file of the package and every folder of its own is gone, and the enablement.
    let own_folders = ["/etc/dhcp6d", "/usr/share/doc/dhcp6d", "/var/lib/dhcp6d"];
    for f in files.iter().filter(|f| !f.is_dir() || own_folders.iter().any(|o| f.starts_with(o))) {
        assert!(!f.exists(), "{} is left after the purge", f.display());
    }
    for f in own_folders.iter().map(Path::new).chain([wants]) {
        assert!(!f.exists() && f.symlink_metadata().is_err(), "{} is left after the purge", f.display());
    }
}
