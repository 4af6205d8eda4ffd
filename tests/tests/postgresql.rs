//! dhcp6d with its leases in a real PostgreSQL (postgresql-15, started by the tests as
//! `nobody`): real clients served and every lease there after a restart; two servers on one
//! database under load, checked with queries on the table; the database killed mid-load and
//! dhcp6d killed mid-load, every Reply seen checked against the table; Kea leases imported and
//! exported.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use dhcp6_tests::{
    client::{client_duid, Granted, TestClient},
    netns::{Netns, Veth},
    peers::{dhcp6_load_binary, dhcp6d_binary, wait_for, Dhclient, Dhcp6d, Scratch},
    postgres::Postgres,
};

const SECS: Duration = Duration::from_secs(30);

/// A server on `interface` with a large pool (the same in every server of a test), its
/// leases in `pg`.
fn config(interface: &str, pg: &Postgres) -> String {
    format!(
        r#"[server]
preferred_lifetime = 600
valid_lifetime = 900
rapid_commit = true

[[subnet]]
interface = "{interface}"
prefix = "2001:db8:1::/64"
ranges = [{{ low = "2001:db8:1::1:0", high = "2001:db8:1::ffff:ffff" }}]

[[subnet.pd_pool]]
prefix = "2001:db8:8000::/40"
delegated_length = 56
{}"#,
        pg.lease_database()
    )
}

/// `dhcp6d ARGS --config` a file naming `pg` (the database commands need no running server).
fn dhcp6d_offline(scratch: &Scratch, pg: &Postgres, args: &[&str]) -> std::process::Output {
    let path = scratch.path("offline.toml");
    let state = scratch.path("offline-state");
    let socket = scratch.path("offline.sock");
    let server = format!("[server]\nstate_dir = {state:?}\ncontrol_socket = {socket:?}\n");
    std::fs::write(&path, config("lo", pg).replacen("[server]\n", &server, 1)).unwrap();
    std::process::Command::new(dhcp6d_binary()).args(args).arg("--config").arg(&path).output().unwrap()
}

/// `dhcp6d db init`, which must succeed.
fn db_init(scratch: &Scratch, pg: &Postgres) {
    let out = dhcp6d_offline(scratch, pg, &["db", "init"]);
    assert!(out.status.success(), "db init: {}", String::from_utf8_lossy(&out.stderr));
}

/// Bound rows of the table: address (or prefix) -> (DUID hex, expiry).
fn table(pg: &Postgres) -> HashMap<String, (String, u64)> {
    let mut client = pg.client();
    client
        .query("SELECT address, prefix_len, duid, extract(epoch FROM expire)::int8 FROM lease6 WHERE state = 0", &[])
        .unwrap()
        .iter()
        .map(|r| {
            let (address, len, duid, expire): (String, i16, Vec<u8>, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
            let key = if len == 128 { address } else { format!("{address}/{len}") };
            (key, (dhcp6_user::json::hex(&duid), expire as u64))
        })
        .collect()
}

/// Every grant a client was told of is in the table, for that client, expiring no earlier.
fn check_grants_against_table(pg: &Postgres, grants: &[Granted], when: &str) {
    let rows = table(pg);
    for g in grants {
        let (duid, expires) =
            rows.get(&g.address.to_string()).unwrap_or_else(|| panic!("{when}: {g:?} was told, the table lacks it"));
        assert_eq!(duid, &dhcp6_user::json::hex(&g.duid), "{when}: {} is another client's in the table", g.address);
        assert!(
            *expires >= g.expires,
            "{when}: {} expires {expires} in the table, the client was told {}",
            g.address,
            g.expires
        );
    }
}

/// Runs rapid-commit Solicits for new clients from `first` on `interface` until `stop`;
/// every grant told, with when it came.
fn record_grants(interface: &str, first: u32, stop: &AtomicBool) -> Vec<(Instant, Granted)> {
    let mut client = TestClient::new(interface);
    let mut told = Vec::new();
    let mut n = first;
    while !stop.load(Ordering::Relaxed) {
        if let Some((g, _)) = client.rapid_solicit(&client_duid(n)) {
            told.push((Instant::now(), g));
        }
        n += 1;
    }
    told
}

/// A server namespace and a client namespace joined by a veth.
struct Link {
    server: Netns,
    client: Netns,
    veth: Veth,
}

fn link() -> Link {
    let server = Netns::new("d6s");
    let client = Netns::new("d6c");
    let veth = Veth::new(&server, &client);
    server.exec(&["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", veth.a(), "nodad"]);
    Link { server, client, veth }
}

/// A server's link shared by two client namespaces, through a bridge (`br0`) in the server's:
/// the load generator and the recording client each bind port 546 in their own.
struct SharedLink {
    server: Netns,
    load: Netns,
    load_veth: Veth,
    record: Netns,
    record_veth: Veth,
}

fn shared_link() -> SharedLink {
    let server = Netns::new("d6s");
    let (load, record) = (Netns::new("d6l"), Netns::new("d6r"));
    let (load_veth, record_veth) = (Veth::new(&server, &load), Veth::new(&server, &record));
    server.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
    for port in [load_veth.a(), record_veth.a()] {
        server.exec(&["ip", "link", "set", port, "master", "br0"]);
    }
    server.exec(&["ip", "link", "set", "br0", "up"]);
    server.exec(&["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "br0", "nodad"]);
    SharedLink { server, load, load_veth, record, record_veth }
}

#[test]
fn dhclient_and_perfdhcp_are_served_and_every_lease_is_there_after_a_restart() {
    let scratch = Scratch::new("pg-serve");
    let pg = Postgres::start(&scratch);
    db_init(&scratch, &pg);
    // A second init is refused: the schema is there.
    let again = dhcp6d_offline(&scratch, &pg, &["db", "init"]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("db upgrade"));
    let upgrade = dhcp6d_offline(&scratch, &pg, &["db", "upgrade"]);
    assert!(String::from_utf8_lossy(&upgrade.stdout).contains("up to date"), "{upgrade:?}");

    let l = link();
    let config = config(l.veth.a(), &pg);
    let server = Dhcp6d::start(&l.server, &scratch, "srv", &config, &["--no-xdp"]);
    let dhclient = Dhclient::start(&l.client, &scratch, "dhclient", l.veth.b(), &["-N", "-P"]);
    let address = dhclient.wait_event("BOUND6", "new_ip6_address", SECS);
    let prefix = dhclient.wait_event("BOUND6", "new_ip6_prefix", SECS);
    let rows = table(&pg);
    assert!(rows.contains_key(&address), "{address} not in the table: {rows:?}");
    assert!(rows.contains_key(&prefix), "{prefix} not in the table: {rows:?}");
    assert_eq!(rows[&address].0, rows[&prefix].0, "one client holds both");
    drop(dhclient);

    let out = l.client.exec_status(&[
        "timeout",
        "60",
        "perfdhcp",
        "-6",
        "-l",
        l.veth.b(),
        "-r",
        "100",
        "-n",
        "300",
        "-R",
        "300",
        "-p",
        "20",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let replies: u64 = text
        .split("***Statistics for: REQUEST-REPLY")
        .nth(1)
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("received packets:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no REQUEST-REPLY in:\n{text}"));
    assert!(replies >= 250, "perfdhcp got {replies} Replies\n{text}");
    let rows = table(&pg);
    assert!(rows.len() as u64 >= replies + 2, "{} rows for {replies} Replies and dhclient's two", rows.len());
    let stats = server.show("statistics");
    assert!(stats["database"]["commits"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["database"]["connected"], true);

    // A restart: every lease of the table is there again.
    drop(server);
    let server = Dhcp6d::start(&l.server, &scratch, "srv", &config, &["--no-xdp"]);
    let bound: HashMap<String, String> = server
        .show("bindings")
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["state"] == "bound")
        .map(|b| {
            let r = b["resource"].as_str().unwrap();
            (r.trim_end_matches("/128").to_string(), b["duid"].as_str().unwrap().to_string())
        })
        .collect();
    for (resource, (duid, _)) in &rows {
        assert_eq!(bound.get(resource), Some(duid), "{resource} lost across the restart");
    }

    // Export reads the table.
    let export = dhcp6d_offline(&scratch, &pg, &["leases", "export", "--csv"]);
    let csv = String::from_utf8_lossy(&export.stdout);
    // Every row of the table as it is now (Replies to perfdhcp's last Requests may have been
    // committed after the count above).
    let now: i64 = pg.client().query_one("SELECT count(*) FROM lease6", &[]).unwrap().get(0);
    assert_eq!(csv.lines().count() as i64, now + 1, "{csv}");
    assert!(csv.contains(&format!("{address}/128,ia_na,bound,{}", rows[&address].0)), "{csv}");
}

#[test]
fn two_servers_on_one_database_under_load_never_give_one_address_to_two_clients() {
    let scratch = Scratch::new("pg-two");
    let pg = Postgres::start(&scratch);
    db_init(&scratch, &pg);
    let (a, b) = (shared_link(), shared_link());
    // The same pool on both: they search it from the same place, and race for each address.
    let server_a = Dhcp6d::start(&a.server, &scratch, "a", &config("br0", &pg), &["--no-xdp"]);
    let server_b = Dhcp6d::start(&b.server, &scratch, "b", &config("br0", &pg), &["--no-xdp"]);
    let stop = AtomicBool::new(false);
    let load = dhcp6_load_binary();
    let load = load.to_str().unwrap();
    let run_load = |link: &SharedLink, base: &str| {
        let args = [load, "--interface", link.load_veth.b(), "--rate", "500", "--seconds", "5", "--base", base];
        let out = link.load.exec_status(&args);
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let (grants, loads) = std::thread::scope(|s| {
        let recorders = [
            s.spawn(|| a.record.run(|| record_grants(a.record_veth.b(), 5_000_000, &stop))),
            s.spawn(|| b.record.run(|| record_grants(b.record_veth.b(), 6_000_000, &stop))),
        ];
        let loads = [s.spawn(|| run_load(&a, "0")), s.spawn(|| run_load(&b, "1000000"))];
        let loads: Vec<String> = loads.into_iter().map(|l| l.join().unwrap()).collect();
        // The recording clients go on a moment past the load (on a busy machine, few of their
        // exchanges finish within its 300 ms under it).
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        let grants: Vec<Granted> = recorders.into_iter().flat_map(|r| r.join().unwrap()).map(|(_, g)| g).collect();
        (grants, loads)
    });
    eprintln!("dhcp6-load: {loads:?}");
    assert!(grants.len() >= 10, "the recording clients were told of {} leases only", grants.len());
    check_grants_against_table(&pg, &grants, "two servers");
    let mut client = pg.client();
    // One client, one address: no IA holds two rows.
    let twice = client
        .query("SELECT duid, iaid FROM lease6 WHERE lease_type = 0 GROUP BY duid, iaid HAVING count(*) > 1", &[])
        .unwrap();
    assert!(twice.is_empty(), "{} IAs hold two addresses", twice.len());
    let rows: i64 = client.query_one("SELECT count(*) FROM lease6 WHERE state = 0", &[]).unwrap().get(0);
    let taken: u64 = [&server_a, &server_b].iter().map(|s| s.stat("dropped", "lease_taken_elsewhere")).sum();
    eprintln!("{rows} rows; {taken} exchanges dropped: their address was taken by the other server");
    assert!(rows > 500, "only {rows} leases bound under load");
    // Each server's table learnt the other's leases: both hold every row.
    for (name, server) in [("a", &server_a), ("b", &server_b)] {
        wait_for(&format!("server {name} to hold every lease of the table"), SECS, || {
            let held = server.show("bindings").as_array().unwrap().iter().filter(|b| b["state"] == "bound").count();
            (held as i64 == rows).then_some(())
        });
    }
}

#[test]
fn the_database_killed_mid_load_loses_no_lease_a_client_was_told_of_and_service_resumes() {
    let scratch = Scratch::new("pg-kill-db");
    let mut pg = Postgres::start(&scratch);
    db_init(&scratch, &pg);
    let l = link();
    let server = Dhcp6d::start(&l.server, &scratch, "srv", &config(l.veth.a(), &pg), &["--no-xdp"]);
    let stop = AtomicBool::new(false);
    let (told, restarted, resumed) = std::thread::scope(|s| {
        let recorder = s.spawn(|| l.client.run(|| record_grants(l.veth.b(), 0, &stop)));
        std::thread::sleep(Duration::from_millis(1500));
        pg.kill();
        // Down longer than commit_wait_ms (3 s): exchanges are dropped and counted meanwhile.
        std::thread::sleep(Duration::from_millis(4500));
        pg.run();
        let restarted = Instant::now();
        // Served again, by the same dhcp6d (not asserted here: the recorder must be stopped
        // whatever happens, or the scope would wait for it).
        let reconnected = || server.try_show("statistics")?["database"]["reconnects"].as_u64().filter(|n| *n >= 1);
        let resumed = (0..300).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            reconnected().is_some()
        });
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        (recorder.join().unwrap(), restarted, resumed)
    });
    assert!(resumed, "dhcp6d did not reconnect within 30 s:\n{}", server.process.log_text());
    let after = told.iter().filter(|(t, _)| *t > restarted).count();
    assert!(after > 0, "no client was served after the database came back");
    let grants: Vec<Granted> = told.into_iter().map(|(_, g)| g).collect();
    check_grants_against_table(&pg, &grants, "database killed");
    let stats = server.show("statistics");
    let failed = stats["database"]["commits_failed"].as_u64().unwrap();
    let dropped = stats["dropped"]["store_failed"].as_u64().unwrap();
    eprintln!(
        "{} grants, {after} after the restart; {failed} commits failed, {dropped} exchanges dropped",
        grants.len()
    );
    assert!(failed > 0 && dropped > 0, "the outage was not seen: {stats}");
    let log = server.process.log_text();
    assert!(
        log.contains("lease database is unreachable") && log.contains("reconnected to the lease database"),
        "{log}"
    );
}

#[test]
fn dhcp6d_killed_mid_load_loses_no_lease_a_client_was_told_of() {
    let scratch = Scratch::new("pg-kill-d6");
    let pg = Postgres::start(&scratch);
    db_init(&scratch, &pg);
    let l = link();
    let config = config(l.veth.a(), &pg);
    let mut grants: Vec<Granted> = Vec::new();
    let mut next = 0;
    for round in 0..4 {
        let server = Dhcp6d::start(&l.server, &scratch, "srv", &config, &["--no-xdp"]);
        let stop = AtomicBool::new(false);
        let told = std::thread::scope(|s| {
            let recorder = s.spawn(|| l.client.run(|| record_grants(l.veth.b(), next, &stop)));
            std::thread::sleep(Duration::from_millis(300 + 200 * round));
            server.process.signal(libc::SIGKILL);
            stop.store(true, Ordering::Relaxed);
            recorder.join().unwrap()
        });
        next += 100_000;
        grants.extend(told.into_iter().map(|(_, g)| g));
        drop(server);
        check_grants_against_table(&pg, &grants, &format!("round {round}"));
    }
    assert!(grants.len() >= 20, "only {} clients were served across the kills", grants.len());
}

#[test]
fn kea_leases_imported_into_the_database_are_exported_again() {
    let scratch = Scratch::new("pg-import");
    let pg = Postgres::start(&scratch);
    db_init(&scratch, &pg);
    let far = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    let kea = scratch.path("kea-leases6.csv");
    std::fs::write(
        &kea,
        format!(
            "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source
2001:db8:1::1:100,00:01:00:01:32:96:98:78:02:00:00:00:00:c0,3600,{far},1,1800,0,192,128,0,0,,,0,,,
2001:db8:8000::,00:01:00:01:32:96:98:78:02:00:00:00:00:c0,3600,{far},1,1800,2,192,56,0,0,,,0,,,
2001:db8:1::1:101,00:01:00:01:32:96:98:78:02:00:00:00:00:c1,3600,{far},1,1800,0,193,128,0,0,,,0,,,
"
        ),
    )
    .unwrap();
    let out = dhcp6d_offline(&scratch, &pg, &["leases", "import", "--kea", kea.to_str().unwrap()]);
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
    let rows = table(&pg);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows["2001:db8:8000::/56"].0, "00:01:00:01:32:96:98:78:02:00:00:00:00:c0");
    assert_eq!(rows["2001:db8:1::1:101"].1, far);
    let export = dhcp6d_offline(&scratch, &pg, &["leases", "export", "--csv"]);
    let csv = String::from_utf8_lossy(&export.stdout);
    assert!(
        csv.contains("2001:db8:8000::/56,ia_pd,bound,00:01:00:01:32:96:98:78:02:00:00:00:00:c0,192,1800,3600"),
        "{csv}"
    );
    // Kea's own dump function reads the rows (when Kea's schema is there): here, a query in
    // Kea's layout does.
    let mut client = pg.client();
    let kea_view: i64 = client
        .query_one(
            "SELECT count(*) FROM lease6 l JOIN lease6_types t ON l.lease_type = t.lease_type JOIN lease_state s ON l.state = s.state",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(kea_view, 3);
}

#[test]
fn an_address_another_server_holds_is_refused_by_the_database_and_learnt() {
    let scratch = Scratch::new("pg-refused");
    let pg = Postgres::start(&scratch);
    db_init(&scratch, &pg);
    let l = link();
    // Four addresses.
    let config = config(l.veth.a(), &pg).replace("high = \"2001:db8:1::ffff:ffff\"", "high = \"2001:db8:1::1:3\"");
    let server = Dhcp6d::start(&l.server, &scratch, "srv", &config, &["--no-xdp"]);
    // Another server's leases of three of them, which this one has not heard of: written with
    // the notifying trigger off, as if its notification were still on the way.
    let foreign = "00:03:00:01:02:02:ee:ee:ee:ee:01";
    pg.client()
        .batch_execute(
            "ALTER TABLE lease6 DISABLE TRIGGER dhcp6d_lease6_notify;
             INSERT INTO lease6 (address, duid, valid_lifetime, expire, subnet_id, pref_lifetime, lease_type, iaid, prefix_len, state)
                 SELECT '2001:db8:1::1:' || n, '\\x000300010202eeeeeeee01'::bytea, 900, now() + interval '1 hour', 0, 600, 0, n, 128, 0
                 FROM generate_series(0, 2) AS n;
             ALTER TABLE lease6 ENABLE TRIGGER dhcp6d_lease6_notify;",
        )
        .unwrap();
    let grants: Vec<Granted> = l.client.run(|| {
        let mut client = TestClient::new(l.veth.b());
        (0..8).filter_map(|n| client.rapid_solicit(&client_duid(n)).map(|(g, _)| g)).collect()
    });
    // The server offered each foreign address once, was refused, and learnt its holder.
    let addresses: Vec<String> = grants.iter().map(|g| g.address.to_string()).collect();
    assert_eq!(addresses, ["2001:db8:1::1:3"], "{grants:?}");
    check_grants_against_table(&pg, &grants, "refused");
    assert_eq!(server.stat("dropped", "lease_taken_elsewhere"), 3);
    assert_eq!(server.show("statistics")["database"]["changes_refused"], 3);
    let held: Vec<(String, String)> = server
        .show("bindings")
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["resource"].as_str().unwrap().to_string(), b["duid"].as_str().unwrap().to_string()))
        .collect();
    for n in 0..3 {
        let resource = format!("2001:db8:1::1:{n}/128");
        assert!(held.contains(&(resource.clone(), foreign.to_string())), "{resource} not learnt: {held:?}");
    }
}
