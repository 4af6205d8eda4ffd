//! The lease journal under fire: dhcp6d killed with SIGKILL at random moments while a client
//! records every Reply; a torn journal tail; leases imported from a real Kea.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use dhcp6_tests::{
    client::{client_duid, Granted, Record, TestClient},
    netns::{Netns, Veth},
    peers::{wait_for, Dhclient, Dhcp6d, Scratch},
};
use rand::{Rng, SeedableRng};

const SECS: Duration = Duration::from_secs(30);

fn config(interface: &str) -> String {
    format!(
        r#"[server]
preferred_lifetime = 600
valid_lifetime = 900
rapid_commit = true

[[subnet]]
interface = "{interface}"
prefix = "2001:db8:1::/64"
ranges = [{{ low = "2001:db8:1::1:0", high = "2001:db8:1::ffff:ffff" }}]
"#
    )
}

/// Bindings of `show bindings` by address: (duid hex, expires).
fn bindings(server: &Dhcp6d) -> HashMap<String, (String, u64)> {
    server
        .show("bindings")
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["state"] == "bound")
        .map(|b| {
            let addr = b["resource"].as_str().unwrap().trim_end_matches("/128").to_string();
            (addr, (b["duid"].as_str().unwrap().to_string(), b["expires"].as_u64().unwrap()))
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    dhcp6_user::json::hex(b)
}

#[test]
fn every_lease_a_client_was_told_of_survives_sigkill() {
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let server_ns = Netns::new("d6s");
    let client_ns = Netns::new("d6c");
    let veth = Veth::new(&server_ns, &client_ns);
    let scratch = Scratch::new("crash");
    let config = config(veth.a());
    let mut record = Record::new();
    let mut next_client = 0u32;
    let mut server_duid = Vec::new();
    for round in 0..12 {
        let server = Dhcp6d::start(&server_ns, &scratch, "srv", &config, &["--no-xdp"]);
        // What the restarted server holds must cover everything told before the kill.
        let held = bindings(&server);
        for g in record.values() {
            let (duid, expires) =
                held.get(&g.address.to_string()).unwrap_or_else(|| panic!("round {round}: lost {g:?} (seed {seed})"));
            assert_eq!(duid, &hex(&g.duid), "round {round}: {} changed hands", g.address);
            assert!(
                *expires >= g.expires,
                "round {round}: {} expires {expires}, the client was told {}",
                g.address,
                g.expires
            );
        }
        let mut holders: HashMap<&String, usize> = HashMap::new();
        for (duid, _) in held.values() {
            *holders.entry(duid).or_default() += 1;
        }
        assert!(holders.values().all(|n| *n == 1), "a client holds two addresses in one IA");

        let stop = AtomicBool::new(false);
        let run_for = Duration::from_millis(rng.random_range(100..800));
        let renew_some = round % 2 == 1;
        let first_client = next_client;
        let (new_grants, duid, n) = std::thread::scope(|s| {
            let worker = s.spawn(|| {
                client_ns.run(|| {
                    let mut client = TestClient::new(veth.b());
                    let mut told: Vec<Granted> = Vec::new();
                    let mut server_duid = server_duid.clone();
                    let mut n = first_client;
                    let earlier: Vec<Granted> = record.values().cloned().collect();
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        if renew_some && i % 3 == 0 && !earlier.is_empty() && !server_duid.is_empty() {
                            if let Some(g) = client.renew(&earlier[i % earlier.len()], &server_duid) {
                                told.push(g);
                            }
                        } else if let Some((g, sid)) = client.rapid_solicit(&client_duid(n)) {
                            server_duid = sid;
                            told.push(g);
                            n += 1;
                        }
                        i += 1;
                    }
                    (told, server_duid, n)
                })
            });
            std::thread::sleep(run_for);
            server.process.signal(libc::SIGKILL);
            stop.store(true, Ordering::Relaxed);
            worker.join().unwrap()
        });
        next_client = n;
        server_duid = duid;
        for g in new_grants {
            record.insert(g.duid.clone(), g);
        }
        drop(server);
    }
    assert!(record.len() >= 50, "only {} clients were served across the kills", record.len());
}

#[test]
fn a_torn_journal_tail_is_cut_and_said_in_the_log() {
    let server_ns = Netns::new("d6s");
    let client_ns = Netns::new("d6c");
    let veth = Veth::new(&server_ns, &client_ns);
    let scratch = Scratch::new("torn");
    let config = config(veth.a());
    let server = Dhcp6d::start(&server_ns, &scratch, "srv", &config, &["--no-xdp"]);
    let granted: Vec<Granted> = client_ns.run(|| {
        let mut client = TestClient::new(veth.b());
        (0..5).filter_map(|n| client.rapid_solicit(&client_duid(n)).map(|(g, _)| g)).collect()
    });
    assert_eq!(granted.len(), 5);
    drop(server);
    // A crash in the middle of an append: half a record at the end.
    let journal = scratch.path("srv-state").join("leases.journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    let whole = bytes.len();
    bytes.extend_from_slice(&[60, 0, 0, 0, 1, 2, 3, 4, 1, 0x20, 0x01]);
    std::fs::write(&journal, &bytes).unwrap();
    let server = Dhcp6d::start(&server_ns, &scratch, "srv", &config, &["--no-xdp"]);
    let log = server.process.log_text();
    assert!(
        log.contains("cut a damaged journal tail")
            && log.contains(&format!("offset={whole}"))
            && log.contains("bytes=11"),
        "{log}"
    );
    let held = bindings(&server);
    for g in &granted {
        assert_eq!(held[&g.address.to_string()].0, hex(&g.duid));
    }
    assert_eq!(std::fs::metadata(&journal).unwrap().len() as usize, whole);
}

#[test]
fn leases_imported_from_kea_are_renewed_by_the_same_clients() {
    let server_ns = Netns::new("d6s");
    let client_ns = Netns::new("d6c");
    let veth = Veth::new(&server_ns, &client_ns);
    server_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", veth.a(), "nodad"]);
    let scratch = Scratch::new("kea");
    let kea_dir = scratch.path("kea");
    std::fs::create_dir_all(&kea_dir).unwrap();
    let lease_file = kea_dir.join("kea-leases6.csv");
    let kea_conf = kea_dir.join("kea-dhcp6.json");
    std::fs::write(
        &kea_conf,
        format!(
            r#"{{ "Dhcp6": {{
  "interfaces-config": {{ "interfaces": [ "{iface}" ] }},
  "data-directory": "{dir}",
  "lease-database": {{ "type": "memfile", "persist": true, "name": "{leases}", "lfc-interval": 0 }},
  "preferred-lifetime": 20, "valid-lifetime": 30, "renew-timer": 3, "rebind-timer": 20,
  "subnet6": [ {{ "id": 1, "subnet": "2001:db8:1::/64", "interface": "{iface}",
                  "pools": [ {{ "pool": "2001:db8:1::100 - 2001:db8:1::1ff" }} ],
                  "pd-pools": [ {{ "prefix": "2001:db8:8000::", "prefix-len": 40, "delegated-len": 56 }} ] }} ]
}} }}"#,
            iface = veth.a(),
            dir = kea_dir.display(),
            leases = lease_file.display()
        ),
    )
    .unwrap();
    let kea_env = [format!("KEA_PIDFILE_DIR={}", kea_dir.display()), format!("KEA_LOCKFILE_DIR={}", kea_dir.display())];
    let kea = server_ns.spawn(
        &["env", &kea_env[0], &kea_env[1], "kea-dhcp6", "-c", kea_conf.to_str().unwrap()],
        &scratch.path("kea.log"),
    );
    let client = Dhclient::start(&client_ns, &scratch, "dhclient", veth.b(), &["-N", "-P"]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    let prefix = client.wait_event("BOUND6", "new_ip6_prefix", SECS);
    drop(kea);

    // Move to dhcp6d: import Kea's own lease file and its server identity, then serve.
    let config = format!(
        "[server]\npreferred_lifetime = 20\nvalid_lifetime = 30\nt1 = 3\nt2 = 20\n\n[[subnet]]\ninterface = \"{}\"\nprefix = \"2001:db8:1::/64\"\nranges = [{{ low = \"2001:db8:1::100\", high = \"2001:db8:1::1ff\" }}]\n\n[[subnet.pd_pool]]\nprefix = \"2001:db8:8000::/40\"\ndelegated_length = 56\n",
        veth.a()
    );
    let state = scratch.path("srv-state");
    let config_path = scratch.path("import.toml");
    std::fs::write(
        &config_path,
        format!(
            "[server]\nstate_dir = {:?}\ncontrol_socket = {:?}\n",
            state.display().to_string(),
            scratch.path("srv.sock").display().to_string()
        ) + &config["[server]\n".len()..],
    )
    .unwrap();
    let out = std::process::Command::new(dhcp6_tests::peers::dhcp6d_binary())
        .args([
            "leases",
            "import",
            "--config",
            config_path.to_str().unwrap(),
            "--kea",
            lease_file.to_str().unwrap(),
            "--server-id",
            kea_dir.join("kea-dhcp6-serverid").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 2 leases"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let server = Dhcp6d::start(&server_ns, &scratch, "srv", &config, &[]);
    let renews = server.stat("received", "RENEW");
    let start = Instant::now();
    // dhclient renews at T1 (3 s), naming Kea's DUID, which dhcp6d now answers to.
    let renewed = wait_for("a Renew answered by dhcp6d", SECS, || {
        client
            .events()
            .into_iter()
            .rev()
            .find(|(r, v)| r == "RENEW6" && v.contains_key("new_ip6_address"))
            .filter(|_| server.stat("received", "RENEW") > renews)
            .map(|(_, v)| v)
    });
    assert_eq!(renewed["new_ip6_address"], address);
    assert!(start.elapsed() < SECS);
    let mut bound = server.bound();
    bound.sort();
    assert_eq!(bound, vec![(format!("{address}/128"), "ia_na".to_string()), (prefix, "ia_pd".to_string())]);
    assert_eq!(server.stat("sent", "REPLY"), server.stat("received", "RENEW") + server.stat("received", "REBIND"));
}

/// A small tmpfs mounted on `dir` (made if missing), unmounted when dropped.
struct Mount(std::path::PathBuf);

impl Mount {
    fn small_tmpfs(dir: &std::path::Path, size: &str) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(mounted.success(), "mounting a small tmpfs on {}", dir.display());
        Mount(dir.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Waits until the file system of `dir` has `bytes` free: a file removed while a process
/// started meanwhile by another test still holds it (inherited between fork and exec) frees its
/// room only once that process execs.
fn wait_for_room(dir: &std::path::Path, bytes: u64) {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    let free = || {
        // SAFETY: statvfs is plain data, all zeroes valid; `path` is NUL-terminated.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `st` outlives the call.
        let r = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
        assert_eq!(r, 0, "statvfs {}", dir.display());
        st.f_bavail as u64 * st.f_frsize as u64
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while free() < bytes {
        assert!(
            std::time::Instant::now() < deadline,
            "{} has {} bytes free after the filler went",
            dir.display(),
            free()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn lease(n: u32) -> dhcp6_user::server::Lease {
    use dhcp6_user::server::{IaType, Lease, LeaseState};
    Lease {
        resource: ipnet::Ipv6Net::from(std::net::Ipv6Addr::from(
            0x2001_0db8_0001_0000_0000_0000_0001_0000u128 + u128::from(n),
        )),
        ia_type: IaType::Na,
        duid: client_duid(n),
        iaid: n,
        subnet: 0,
        state: LeaseState::Bound,
        preferred_lifetime: 600,
        valid_lifetime: 900,
        expires: 2_000_000_000,
        interface: Some("eth0".into()),
        reconfigure_key: None,
        relay: None,
    }
}

#[test]
fn a_journal_write_the_disk_refuses_is_cut_back_and_later_commits_survive() {
    use dhcp6_user::{lease_store::LeaseStore, server::LeaseChange, store::Journal};
    let scratch = Scratch::new("journal-full");
    let dir = scratch.path("fs");
    let _mount = Mount::small_tmpfs(&dir, "256k");
    let path = dir.join("leases.journal");
    let mut journal = Journal::open(&path).unwrap();
    journal.load(&mut |_| {}).unwrap();
    // Fill the file system but for a few records' room.
    let filler = dir.join("filler");
    std::fs::write(&filler, vec![0u8; 240 * 1024]).unwrap();
    let mut committed = 0u32;
    let refused = loop {
        // Batches of 40 records (about 3 KiB): one of them only partly fits.
        let before = std::fs::metadata(&path).unwrap().len();
        let batch: Vec<LeaseChange> = (committed..committed + 40).map(|n| LeaseChange::Upsert(lease(n))).collect();
        match journal.commit(&batch) {
            Ok(_) => committed += 40,
            Err(e) => break (e, before),
        }
        assert!(committed < 10_000, "the file system never filled up");
    };
    eprintln!("refused after {committed} records: {}", refused.0);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        refused.1,
        "the part of the refused write that landed is cut off"
    );
    // Room again: what is committed next follows the last whole record.
    std::fs::remove_file(&filler).unwrap();
    wait_for_room(&dir, 64 * 1024);
    let batch: Vec<LeaseChange> = (100_000..100_010).map(|n| LeaseChange::Upsert(lease(n))).collect();
    journal.commit(&batch).unwrap();
    drop(journal);
    let mut leases = Vec::new();
    let mut reopened = Journal::open(&path).unwrap();
    reopened
        .load(&mut |c| {
            if let LeaseChange::Upsert(l) = c {
                leases.push(l.iaid)
            }
        })
        .unwrap();
    let expected: Vec<u32> = (0..committed).chain(100_000..100_010).collect();
    assert_eq!(leases, expected, "every committed lease, and only those, after the refused write");
}

/// Fills the file system holding `dir` with a file there; returns the file.
fn fill_up(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    path
}

#[test]
fn a_full_disk_sends_no_reply_and_loses_no_lease_a_client_was_told_of() {
    let server_ns = Netns::new("d6s");
    let client_ns = Netns::new("d6c");
    let veth = Veth::new(&server_ns, &client_ns);
    let scratch = Scratch::new("disk-full");
    // The server's state directory on a small file system of its own.
    let state = scratch.path("srv-state");
    let _mount = Mount::small_tmpfs(&state, "512k");
    let config = config(veth.a());
    let server = Dhcp6d::start(&server_ns, &scratch, "srv", &config, &["--no-xdp"]);

    let solicit = |from: u32, to: u32| -> Vec<Granted> {
        client_ns.run(|| {
            let mut client = TestClient::new(veth.b());
            (from..to).filter_map(|n| client.rapid_solicit(&client_duid(n)).map(|(g, _)| g)).collect()
        })
    };
    let mut before = solicit(0, 20);
    assert_eq!(before.len(), 20, "every client is served while there is room");
    // One record of another length, so that records do not happen to fill the journal's last
    // page exactly: the write the disk refuses is then cut short, not refused whole.
    let odd: Vec<u8> = [0, 2, 0, 0, 0, 9].iter().copied().chain(std::iter::repeat_n(7, 11)).collect();
    let odd = client_ns.run(|| TestClient::new(veth.b()).rapid_solicit(&odd)).expect("served").0;
    before.push(odd);

    // The disk fills up. What still fits in the journal's last page is made durable (and
    // told); past it, commits fail, and those clients are told nothing.
    let filler = fill_up(&state);
    let (squeezed, unanswered) = client_ns.run(|| {
        let mut client = TestClient::new(veth.b());
        let (mut told, mut unanswered) = (Vec::new(), 0);
        for n in 100..300 {
            match client.rapid_solicit(&client_duid(n)) {
                Some((g, _)) => told.push(g),
                None => unanswered += 1,
            }
            if unanswered == 3 {
                break;
            }
        }
        (told, unanswered)
    });
    assert_eq!(unanswered, 3, "every commit went through on a full disk");
    assert!(server.stat("dropped", "store_failed") >= 1, "the refused commits are counted");
    // Three refusals within a second are one warning, not three: a full disk under load would
    // otherwise log hundreds of identical lines a second.
    let log = server.process.log_text();
    let said = log.lines().filter(|l| l.contains("the lease store refused a commit")).count();
    assert_eq!(said, 1, "a refusal repeated within the window is said once:\n{log}");

    // Room again: service goes on, on a journal that does not hold the refused writes.
    std::fs::remove_file(&filler).unwrap();
    let after = solicit(200, 205);
    assert_eq!(after.len(), 5, "service resumes once there is room");
    // A Reply is counted sent when it leaves: the refused ones never did.
    let replied = before.len() + squeezed.len() + after.len();
    assert_eq!(server.stat("sent", "REPLY"), replied as u64, "sent counts only the Replies that left");
    server.process.signal(libc::SIGKILL);
    drop(server);

    let server = Dhcp6d::start(&server_ns, &scratch, "srv", &config, &["--no-xdp"]);
    let held = bindings(&server);
    let told: Vec<&Granted> = before.iter().chain(&squeezed).chain(&after).collect();
    for g in &told {
        let (duid, expires) = held.get(&g.address.to_string()).unwrap_or_else(|| panic!("lost {g:?}"));
        assert_eq!(duid, &hex(&g.duid));
        assert!(*expires >= g.expires);
    }
    assert_eq!(held.len(), told.len(), "only what clients were told of is held: {held:?}");
}
