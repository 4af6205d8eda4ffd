//! Relay dual-device hot standby with real keepalived: two dhcp6d relays on one access bridge,
//! each with keepalived (VRRPv3, advert_int 0.5) for the access interface, one server upstream
//! (dhcp6d, or Kea), dhclient clients (IA_NA + IA_PD, short T1). The master relays and backs
//! its entries up; the backup holds them with PD routes at the degraded metric; when the
//! master dies (kill -9), loses its access link or hands mastership over, the backup takes
//! over with no entry lost. The backup link reconciles changes made on both sides while it was
//! down, refuses connections from other addresses, and sends a batch on demand; a returning
//! master receives the batch before keepalived's preemption delay gives it mastership back.

use std::{
    fs,
    io::Read,
    net::{SocketAddr, TcpStream},
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use dhcp6_tests::{
    netns::{Netns, Process, Veth},
    peers::{dhcp6d_binary, wait_for, Dhclient, Dhcp6d, Scratch},
};
use serde_json::Value;

const SECS: Duration = Duration::from_secs(30);

/// Lifetimes short enough that clients renew every few seconds (T1 4 s), valid long enough
/// that a relay's copies outlive a test's steps while another relays (a loaded machine took
/// past 20 s between cutting the backup link and restoring it).
const LIFETIMES: (u32, u32, u32, u32) = (10, 60, 4, 6);

/// The dhcp6d server upstream.
fn server_config() -> String {
    let (preferred, valid, t1, t2) = LIFETIMES;
    format!(
        r#"[server]
preferred_lifetime = {preferred}
valid_lifetime = {valid}
t1 = {t1}
t2 = {t2}

[[subnet]]
prefix = "2001:db8:2::/64"
ranges = [{{ low = "2001:db8:2::100", high = "2001:db8:2::1ff" }}]

[[subnet.pd_pool]]
prefix = "2001:db8:9000::/40"
delegated_length = 60
"#
    )
}

/// Kea instead, with the same lifetimes and pools, listening at 2001:db8:ff::1 on `interface`.
fn kea_config(dir: &std::path::Path, interface: &str) -> String {
    let (preferred, valid, t1, t2) = LIFETIMES;
    format!(
        r#"{{ "Dhcp6": {{
  "interfaces-config": {{ "interfaces": [ "{interface}/2001:db8:ff::1" ] }},
  "data-directory": "{dir}",
  "lease-database": {{ "type": "memfile", "persist": false }},
  "preferred-lifetime": {preferred}, "valid-lifetime": {valid}, "renew-timer": {t1}, "rebind-timer": {t2},
  "subnet6": [ {{ "id": 1, "subnet": "2001:db8:2::/64",
                  "pools": [ {{ "pool": "2001:db8:2::100-2001:db8:2::1ff" }} ],
                  "pd-pools": [ {{ "prefix": "2001:db8:9000::", "prefix-len": 40, "delegated-len": 60 }} ] }} ]
}} }}"#,
        dir = dir.display()
    )
}

/// The relays' first virtual address: link-local, as VRRPv3 for IPv6 wants it.
const VIP: &str = "fe80::61";

fn relay_config(access: &str, source: &str, peer: &str, fifo: &str) -> String {
    format!(
        r#"[server]

[relay]
[[relay.group]]
name = "core"
servers = ["2001:db8:ff::1"]

[[relay.interface]]
name = "{access}"
group = "core"
link_address = "2001:db8:2::1"

[relay.standby]
notify_fifo = "{fifo}"

[[relay.standby.service]]
name = "peer"
peer = "{peer}"
source = "{source}"
port = 7547

[[relay.standby.profile]]
name = "access"
vrrp_instance = "RELAY6"
service = "peer"
interfaces = ["{access}"]
degrade_metric = 100
virtual_address = "{VIP}"
"#
    )
}

/// keepalived for the access interface, in the foreground, with its own pid files, writing
/// its notices to `fifo`; `preempt_delay` seconds before it takes mastership back.
fn keepalived(
    ns: &Netns,
    scratch: &Scratch,
    name: &str,
    interface: &str,
    priority: u8,
    preempt_delay: u32,
    fifo: &str,
) -> Process {
    let conf = format!(
        r#"global_defs {{
    vrrp_version 3
    vrrp_notify_fifo {fifo}
}}
vrrp_instance RELAY6 {{
    state BACKUP
    interface {interface}
    virtual_router_id 61
    priority {priority}
    advert_int 0.5
    preempt_delay {preempt_delay}
    virtual_ipaddress {{
        {VIP}/64
    }}
}}
"#
    );
    let path = scratch.path(&format!("{name}.conf"));
    fs::write(&path, conf).unwrap();
    let pid = scratch.path(&format!("{name}.pid"));
    let vrrp_pid = scratch.path(&format!("{name}-vrrp.pid"));
    ns.spawn(
        &[
            "keepalived",
            "-n",
            "-l",
            "-D",
            "-P",
            "-f",
            path.to_str().unwrap(),
            "-p",
            pid.to_str().unwrap(),
            "-r",
            vrrp_pid.to_str().unwrap(),
        ],
        &scratch.path(&format!("{name}.log")),
    )
}

/// A relay's standby profile, as `show relay standby` says.
fn profile(relay: &Dhcp6d) -> Value {
    relay.show("relay standby")["profiles"][0].clone()
}

/// A relay's backup link, as `show relay standby` says.
fn link(relay: &Dhcp6d) -> Value {
    relay.show("relay standby")["services"][0].clone()
}

fn resources(users: &Value) -> Vec<String> {
    let mut r: Vec<String> =
        users.as_array().unwrap().iter().map(|u| u["resource"].as_str().unwrap().to_string()).collect();
    r.sort();
    r
}

/// (resource, expiry) of every entry, sorted.
fn expiries(users: &Value) -> Vec<(String, u64)> {
    let mut r: Vec<(String, u64)> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["resource"].as_str().unwrap().to_string(), u["expires"].as_u64().unwrap()))
        .collect();
    r.sort();
    r
}

fn routes(ns: &Netns) -> String {
    String::from_utf8_lossy(&ns.exec(&["ip", "-6", "route", "show", "proto", "200"]).stdout).into_owned()
}

/// The upstream server: dhcp6d or Kea.
enum Upstream {
    Dhcp6d(Dhcp6d),
    /// Kea, stopped when dropped.
    Kea {
        _process: Process,
    },
}

/// What a lab is built with.
#[derive(Clone, Copy, Default)]
struct Options {
    /// Kea upstream instead of dhcp6d.
    kea: bool,
    /// The relays relay in XDP.
    xdp: bool,
    /// keepalived's preemption delay on relay a, the preferred master.
    preempt_delay: u32,
    /// An upstream router (2001:db8:ff::99, AS 65000) running FRR learns the relays'
    /// delegated-prefix routes by BGP: each relay's FRR (AS 65001) redistributes its kernel
    /// routes, their metric becoming the MED, so that the master's route wins.
    frr: bool,
    /// TLS on the backup link, each relay pinning the other's certificate.
    tls: bool,
}

/// A self-signed certificate and its key (PEM, EC P-256) in the scratch folder: their paths.
fn certificate(scratch: &Scratch, name: &str) -> (String, String) {
    let (cert, key) = (scratch.path(&format!("{name}.crt")), scratch.path(&format!("{name}.key")));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"])
        .args(["-subj", &format!("/CN={name}"), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    (cert.display().to_string(), key.display().to_string())
}

/// The `tls` key of a backup service: this relay's certificate and key, the peer's certificate.
fn tls_key(own: &(String, String), peer: &(String, String)) -> String {
    format!("tls = {{ certificate = {:?}, key = {:?}, peer_certificate = {:?} }}\n", own.0, own.1, peer.0)
}

/// The address the router's FRR peers with the relays at.
const ROUTER: &str = "2001:db8:ff::99";

/// FRR's zebra and bgpd in `ns` as BGP speaker `asn` (router ID `id`) with `bgp` (the rest of
/// its `router bgp` section), files in scratch folder `name`. They run as FRR's own user,
/// which must be able to write the folder.
fn frr(ns: &Netns, scratch: &Scratch, name: &str, asn: u32, id: &str, bgp: &str) -> Vec<Process> {
    let dir = scratch.path(name);
    fs::create_dir_all(&dir).unwrap();
    Command::new("chmod").arg("777").arg(&dir).status().unwrap();
    fs::write(dir.join("zebra.conf"), format!("hostname {name}\n")).unwrap();
    let config = format!("router bgp {asn}\n bgp router-id {id}\n no bgp ebgp-requires-policy\n{bgp}");
    fs::write(dir.join("bgpd.conf"), config).unwrap();
    let d = dir.display().to_string();
    ["zebra", "bgpd"]
        .iter()
        .map(|daemon| {
            let process = ns.spawn(
                &[
                    &format!("/usr/lib/frr/{daemon}"),
                    "-F",
                    "datacenter",
                    "-f",
                    &format!("{d}/{daemon}.conf"),
                    "-z",
                    &format!("{d}/zserv.api"),
                    "-i",
                    &format!("{d}/{daemon}.pid"),
                    "--vty_socket",
                    &d,
                    "-P",
                    "0",
                ],
                &dir.join(format!("{daemon}.log")),
            );
            // bgpd connects to zebra's socket: zebra first.
            wait_for(&format!("{name}'s {daemon}"), SECS, || dir.join(format!("{daemon}.vty")).exists().then_some(()));
            process
        })
        .collect()
}

/// FRR for the lab: the router peering with both relays, each relay redistributing its
/// kernel routes (dhcp6d's delegated-prefix routes among them) to it.
fn frr_lab(router_ns: &Netns, a_ns: &Netns, b_ns: &Netns, scratch: &Scratch) -> Vec<Process> {
    let neighbor = |peer: &str, asn: u32| {
        format!(
            " neighbor {peer} remote-as {asn}\n neighbor {peer} timers 1 3\n neighbor {peer} timers connect 1\n neighbor {peer} advertisement-interval 0\n"
        )
    };
    let router = format!(
        "{}{} address-family ipv6 unicast\n  neighbor 2001:db8:ff::a activate\n  neighbor 2001:db8:ff::b activate\n exit-address-family\n",
        neighbor("2001:db8:ff::a", 65001),
        neighbor("2001:db8:ff::b", 65001)
    );
    let relay = format!(
        "{} address-family ipv6 unicast\n  redistribute kernel\n  neighbor {ROUTER} activate\n exit-address-family\n",
        neighbor(ROUTER, 65000)
    );
    let mut processes = frr(router_ns, scratch, "frr-up", 65000, "10.0.0.99", &router);
    processes.extend(frr(a_ns, scratch, "frr-a", 65001, "10.0.0.10", &relay));
    processes.extend(frr(b_ns, scratch, "frr-b", 65001, "10.0.0.11", &relay));
    processes
}

/// Relay `a` (2001:db8:ff::a upstream, 2001:db8:2::a on the access link, priority 200) and
/// relay `b` (::b, priority 100) on an access bridge with three client namespaces, and the
/// server (2001:db8:ff::1) on the upstream bridge. Fields drop in order: processes first.
struct Lab {
    relay_a: Option<Dhcp6d>,
    relay_b: Dhcp6d,
    keepalived_a: Option<Process>,
    _keepalived_b: Process,
    upstream: Upstream,
    /// FRR's daemons, when the lab has the upstream router.
    _frr: Vec<Process>,
    a_config: String,
    options: Options,
    a_fifo: String,
    _links: Vec<Veth>,
    /// Each client's end of its access link.
    clients: Vec<String>,
    a_access: String,
    /// The relays' upstream interfaces.
    ups: [String; 2],
    _switch: Netns,
    router_ns: Netns,
    server_ns: Netns,
    a_ns: Netns,
    b_ns: Netns,
    client_ns: Vec<Netns>,
    scratch: Scratch,
}

impl Lab {
    /// Builds the lab and waits until a is master, b backup, and the backup link is up.
    fn new(name: &str, options: Options) -> Lab {
        let scratch = Scratch::new(name);
        let switch = Netns::new("d6sw");
        let server_ns = Netns::new("d6s");
        let a_ns = Netns::new("d6ra");
        let b_ns = Netns::new("d6rb");
        let client_ns: Vec<Netns> = (0..3).map(|_| Netns::new("d6c")).collect();
        let router_ns = Netns::new("d6up");
        for bridge in ["br-up", "br-access"] {
            switch.exec(&["ip", "link", "add", bridge, "type", "bridge"]);
            switch.exec(&["ip", "link", "set", "dev", bridge, "up"]);
        }
        let plug = |ns: &Netns, bridge: &str| {
            let v = Veth::new(ns, &switch);
            switch.exec(&["ip", "link", "set", v.b(), "master", bridge]);
            v
        };
        let s_up = plug(&server_ns, "br-up");
        let a_up = plug(&a_ns, "br-up");
        let b_up = plug(&b_ns, "br-up");
        let a_access = plug(&a_ns, "br-access");
        let b_access = plug(&b_ns, "br-access");
        let client_links: Vec<Veth> = client_ns.iter().map(|ns| plug(ns, "br-access")).collect();
        let r_up = plug(&router_ns, "br-up");
        router_ns.exec(&["ip", "-6", "addr", "add", &format!("{ROUTER}/64"), "dev", r_up.a(), "nodad"]);
        server_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::1/64", "dev", s_up.a(), "nodad"]);
        a_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::a/64", "dev", a_up.a(), "nodad"]);
        b_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::b/64", "dev", b_up.a(), "nodad"]);
        a_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:2::a/64", "dev", a_access.a(), "nodad"]);
        b_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:2::b/64", "dev", b_access.a(), "nodad"]);
        if options.xdp {
            // The links as a router's wires (see relay_lab::wire_like): whole checksums from
            // the clients and the server, NAPI on the bridge ports XDP redirects into.
            let mut ends: Vec<(&Netns, &str)> = client_ns.iter().zip(&client_links).map(|(n, l)| (n, l.a())).collect();
            ends.push((&server_ns, s_up.a()));
            for port in [&a_up, &b_up, &a_access, &b_access] {
                ends.push((&switch, port.b()));
            }
            dhcp6_tests::relay_lab::wire_like(&a_ns, &ends, &["2001:db8:ff::1"]);
            dhcp6_tests::relay_lab::wire_like(&b_ns, &[], &["2001:db8:ff::1"]);
        }

        let upstream = if options.kea {
            let dir = scratch.path("kea");
            fs::create_dir_all(&dir).unwrap();
            let path = dir.join("kea-dhcp6.json");
            fs::write(&path, kea_config(&dir, s_up.a())).unwrap();
            let env = [format!("KEA_PIDFILE_DIR={}", dir.display()), format!("KEA_LOCKFILE_DIR={}", dir.display())];
            Upstream::Kea {
                _process: server_ns
                    .spawn(&["env", &env[0], &env[1], "kea-dhcp6", "-c", path.to_str().unwrap()], &dir.join("kea.log")),
            }
        } else {
            Upstream::Dhcp6d(Dhcp6d::start(&server_ns, &scratch, "srv", &server_config(), &["--no-xdp"]))
        };
        let fifo = |name: &str| scratch.path(&format!("{name}.fifo")).display().to_string();
        let (a_fifo, b_fifo) = (fifo("ka"), fifo("kb"));
        let mut a_config = relay_config(a_access.a(), "2001:db8:ff::a", "2001:db8:ff::b", &a_fifo);
        let mut b_config = relay_config(b_access.a(), "2001:db8:ff::b", "2001:db8:ff::a", &b_fifo);
        if options.tls {
            let (a_cert, b_cert) = (certificate(&scratch, "rly-a"), certificate(&scratch, "rly-b"));
            let port = "port = 7547\n";
            a_config = a_config.replacen(port, &format!("{port}{}", tls_key(&a_cert, &b_cert)), 1);
            b_config = b_config.replacen(port, &format!("{port}{}", tls_key(&b_cert, &a_cert)), 1);
        }
        let mode: &[&str] = if options.xdp { &[] } else { &["--no-xdp"] };
        let relay_a = Dhcp6d::start(&a_ns, &scratch, "ra", &a_config, mode);
        let relay_b = Dhcp6d::start(&b_ns, &scratch, "rb", &b_config, mode);
        let keepalived_a = keepalived(&a_ns, &scratch, "ka", a_access.a(), 200, options.preempt_delay, &a_fifo);
        let keepalived_b = keepalived(&b_ns, &scratch, "kb", b_access.a(), 100, 0, &b_fifo);
        let clients = client_links.iter().map(|l| l.a().to_string()).collect();
        let a_access_name = a_access.a().to_string();
        let frr = if options.frr { frr_lab(&router_ns, &a_ns, &b_ns, &scratch) } else { Vec::new() };
        let ups = [a_up.a().to_string(), b_up.a().to_string()];
        let mut links = vec![s_up, a_up, b_up, a_access, b_access, r_up];
        links.extend(client_links);
        let lab = Lab {
            relay_a: Some(relay_a),
            relay_b,
            keepalived_a: Some(keepalived_a),
            _keepalived_b: keepalived_b,
            upstream,
            _frr: frr,
            a_config,
            options,
            a_fifo,
            _links: links,
            clients,
            a_access: a_access_name,
            ups,
            _switch: switch,
            router_ns,
            server_ns,
            a_ns,
            b_ns,
            client_ns,
            scratch,
        };
        // Roles settle: a master (the higher priority), b backup; the backup link is up.
        wait_for("relay a to be master", SECS, || (profile(lab.a())["role"] == "master").then_some(()));
        wait_for("relay b to be backup", SECS, || (profile(&lab.relay_b)["role"] == "backup").then_some(()));
        lab.wait_linked();
        lab
    }

    fn a(&self) -> &Dhcp6d {
        self.relay_a.as_ref().expect("relay a runs")
    }

    fn b(&self) -> &Dhcp6d {
        &self.relay_b
    }

    /// Waits until both ends say the backup link is up.
    fn wait_linked(&self) {
        for (name, relay) in [("a", self.a()), ("b", self.b())] {
            wait_for(&format!("relay {name}'s backup link"), SECS, || {
                link(relay)["connected"].as_bool().filter(|c| *c)
            });
        }
    }

    /// dhclient -6 -N -P on client `n`.
    fn client(&self, n: usize) -> Dhclient {
        Dhclient::start(&self.client_ns[n], &self.scratch, &format!("c{n}"), &self.clients[n], &["-N", "-P"])
    }

    /// Client `n` releases what it has (dhclient -r, from its lease files).
    fn release(&self, n: usize, client: Dhclient) {
        drop(client.process);
        let releaser = Dhclient {
            process: self.client_ns[n].spawn(&["sleep", "0"], &self.scratch.path("noop.log")),
            dir: client.dir.clone(),
        };
        releaser.run_once(&self.client_ns[n], &self.clients[n], &["-r", "-N", "-P"]);
    }

    /// Relay-Forwards the upstream server received (dhcp6d's count; Kea's from its log).
    fn server_forwards(&self) -> u64 {
        match &self.upstream {
            Upstream::Dhcp6d(d) => d.stat("received", "RELAY-FORW"),
            Upstream::Kea { .. } => 0,
        }
    }

    /// What both relays and keepalived logged, for failure messages.
    fn logs(&self) -> String {
        let keepalived = |k: &str| fs::read_to_string(self.scratch.path(&format!("{k}.log"))).unwrap_or_default();
        format!(
            "relay a:\n{}\nrelay b:\n{}\nkeepalived a:\n{}\nkeepalived b:\n{}",
            self.relay_a.as_ref().map(|r| r.process.log_text()).unwrap_or_default(),
            self.relay_b.process.log_text(),
            keepalived("ka"),
            keepalived("kb")
        )
    }

    /// The relay (0: a, 1: b) the upstream router routes `prefix` through, by the next hop of
    /// its route (the relay's global or link-local address on the upstream link).
    fn routed_through(&self, prefix: &str) -> Option<usize> {
        let out = self.router_ns.exec(&["ip", "-6", "route", "show", prefix]);
        let route = String::from_utf8_lossy(&out.stdout).into_owned();
        let via = route.split_whitespace().skip_while(|w| *w != "via").nth(1)?.to_string();
        [(&self.a_ns, "2001:db8:ff::a"), (&self.b_ns, "2001:db8:ff::b")].iter().zip(&self.ups).position(
            |((ns, global), up)| {
                let out = ns.exec(&["ip", "-6", "addr", "show", "dev", up]);
                via == *global || String::from_utf8_lossy(&out.stdout).contains(&format!("inet6 {via}/"))
            },
        )
    }

    /// kill -9 of relay a's dhcp6d and keepalived.
    fn kill_a(&mut self) {
        if let Some(a) = self.relay_a.as_mut() {
            a.process.signal(libc::SIGKILL);
            let _ = a.process.wait();
        }
        if let Some(k) = self.keepalived_a.as_mut() {
            k.signal(libc::SIGKILL);
            let _ = k.wait();
        }
    }

    /// Relay a's keepalived again, then its dhcp6d (on the state it left).
    fn restart_a(&mut self) {
        let k =
            keepalived(&self.a_ns, &self.scratch, "ka", &self.a_access, 200, self.options.preempt_delay, &self.a_fifo);
        self.keepalived_a = Some(k);
        let mode: &[&str] = if self.options.xdp { &[] } else { &["--no-xdp"] };
        self.relay_a = Some(Dhcp6d::start(&self.a_ns, &self.scratch, "ra", &self.a_config, mode));
    }

    /// Client `n` bound through the master: its delegated prefix, once the master lists the
    /// client's two entries and the backup's copy matches within `copy_within`.
    fn bind(&self, n: usize, master: &Dhcp6d, backup: &Dhcp6d, copy_within: Duration) -> (Dhclient, String) {
        let client = self.client(n);
        let prefix = client.wait_event("BOUND6", "new_ip6_prefix", SECS);
        let on_master = wait_for("the master's entries", SECS, || {
            master.try_show("relay users").filter(|u| resources(u).contains(&prefix))
        });
        wait_for("the backup's copy", copy_within, || {
            backup.try_show("relay users").filter(|u| resources(u) == resources(&on_master))
        });
        (client, prefix)
    }
}

#[test]
fn the_backup_relay_holds_the_masters_entries_and_takes_over_when_it_dies() {
    let mut lab = Lab::new("d6standby", Options::default());
    // The kernel confirms it: the virtual address is on the master's access interface.
    wait_for("the virtual address on the master", SECS, || {
        (profile(lab.a())["virtual_address_present"] == true).then_some(())
    });

    // A client binds through the master; the backup lists its entries within a second.
    let (client1, prefix) = lab.bind(0, lab.a(), lab.b(), Duration::from_millis(1500));
    // The backup routes the prefix at the degraded metric, the master at the normal one.
    let degraded =
        wait_for("the backup's degraded route", SECS, || Some(routes(&lab.b_ns)).filter(|r| r.contains(&prefix)));
    assert!(degraded.contains("metric 1124"), "{degraded}");
    assert!(routes(&lab.a_ns).contains("metric 1024"), "{}", routes(&lab.a_ns));
    // The backup left the client's messages to the master.
    assert!(lab.b().show("relay servers")["stats"]["dropped"]["standby"].as_u64() >= Some(1));
    assert_eq!(lab.b().show("relay servers")["stats"]["forwarded"], 0);

    // The master dies: its dhcp6d and keepalived are killed.
    lab.kill_a();
    let renewals_before = client1.values("RENEW6", "new_ip6_prefix").len();
    wait_for("relay b to become master", SECS, || (profile(lab.b())["role"] == "master").then_some(()));
    // keepalived's address on b's interface reaches dhcp6d as an rtnetlink event.
    wait_for("the virtual address on the new master", SECS, || {
        (profile(lab.b())["virtual_address_present"] == true).then_some(())
    });
    let normal = wait_for("the new master's normal route", SECS, || {
        Some(routes(&lab.b_ns)).filter(|r| r.contains(&prefix) && r.contains("metric 1024"))
    });
    assert!(!normal.contains("metric 1124"), "the degraded route is gone: {normal}");
    // The client's next Renew, and a new client's Solicit, are relayed by the new master.
    wait_for("a renewal through the new master", SECS, || {
        (client1.values("RENEW6", "new_ip6_prefix").len() > renewals_before).then_some(())
    });
    let client2 = lab.client(1);
    let prefix2 = client2.wait_event("BOUND6", "new_ip6_prefix", SECS);
    let users = wait_for("four entries on the new master", SECS, || {
        lab.b().try_show("relay users").filter(|u| u.as_array().map_or(0, Vec::len) == 4)
    });
    let all = resources(&users);
    assert!(all.contains(&prefix) && all.contains(&prefix2), "no entry lost: {users}");
    assert!(lab.b().show("relay servers")["stats"]["forwarded"].as_u64() >= Some(2), "{}", lab.logs());
    assert!(lab.server_forwards() >= 4);
}

/// Both relays' routes toward 2001:db8:ff::/64's other relay go nowhere: the backup link is
/// cut (both ends time out), while the relays still reach the server and the clients.
fn cut_backup_link(lab: &Lab, cut: bool) {
    let verb = if cut { "add" } else { "del" };
    lab.a_ns.exec(&["ip", "-6", "route", verb, "blackhole", "2001:db8:ff::b/128"]);
    lab.b_ns.exec(&["ip", "-6", "route", verb, "blackhole", "2001:db8:ff::a/128"]);
}

#[test]
fn the_backup_link_comes_back_and_its_batches_reconcile_changes_made_on_both_sides() {
    let mut lab = Lab::new("d6sblink", Options::default());
    let (client1, prefix1) = lab.bind(0, lab.a(), lab.b(), Duration::from_millis(1500));

    // The link is cut: both ends find it silent and drop it.
    cut_backup_link(&lab, true);
    for (name, relay) in [("a", lab.a()), ("b", lab.b())] {
        wait_for(&format!("relay {name} to drop the link"), SECS, || (link(relay)["connected"] == false).then_some(()));
    }
    // Meanwhile, on a (master): a new client binds; b does not hear of it.
    let client2 = lab.client(1);
    let prefix2 = client2.wait_event("BOUND6", "new_ip6_prefix", SECS);
    wait_for("a's entry for client 2", SECS, || {
        lab.a().try_show("relay users").filter(|u| resources(u).contains(&prefix2))
    });
    // Mastership moves to b (a's keepalived stops); b relays client 1's and client 2's
    // Renews, learning later lifetimes than a holds, then client 1 releases through b, and a
    // third client binds through b alone.
    drop(lab.keepalived_a.take());
    wait_for("relay b to become master", SECS, || (profile(lab.b())["role"] == "master").then_some(()));
    wait_for("relay a to stop relaying", SECS, || (profile(lab.a())["relaying"] == false).then_some(()));
    wait_for("client 2's entries renewed on b", SECS, || {
        lab.b().try_show("relay users").filter(|u| resources(u).contains(&prefix2))
    });
    let renewed = client1.values("RENEW6", "new_ip6_prefix").len();
    wait_for("client 1 to renew through b", SECS, || {
        (client1.values("RENEW6", "new_ip6_prefix").len() > renewed).then_some(())
    });
    lab.release(0, client1);
    wait_for("b to forget client 1", SECS, || {
        lab.b().try_show("relay users").filter(|u| !resources(u).contains(&prefix1))
    });
    let client3 = lab.client(2);
    let prefix3 = client3.wait_event("BOUND6", "new_ip6_prefix", SECS);
    let before_a = lab.a().show("relay users");
    assert!(resources(&before_a).contains(&prefix1), "a still holds client 1 from before: {before_a}");
    assert!(!resources(&before_a).contains(&prefix3), "a has not heard of client 3: {before_a}");
    let stale_before = link(lab.b())["stale"].as_u64().unwrap();

    // The link comes back: each end's batch reconciles. Both hold clients 2 and 3 with b's
    // newer lifetimes; client 1's release is not undone by a's older copy.
    cut_backup_link(&lab, false);
    lab.wait_linked();
    let (on_a, on_b) = wait_for("both relays to hold the same entries", SECS, || {
        let (a, b) = (lab.a().try_show("relay users")?, lab.b().try_show("relay users")?);
        (expiries(&a) == expiries(&b)).then_some((a, b))
    });
    let held = resources(&on_b);
    assert!(held.contains(&prefix2) && held.contains(&prefix3), "{on_b}");
    assert!(!resources(&on_a).contains(&prefix1), "the release is not undone: {on_a}");
    assert!(link(lab.b())["stale"].as_u64().unwrap() > stale_before, "b refused a's older copies: {}", link(lab.b()));
    assert!(link(lab.a())["last_batch_received"].is_u64() && link(lab.b())["last_batch_received"].is_u64());
}

#[test]
fn a_forged_backup_connection_is_refused_and_counted_and_backup_now_and_the_daily_time_send_a_batch() {
    let mut lab = Lab::new("d6sforge", Options::default());
    let (_client, _) = lab.bind(0, lab.a(), lab.b(), Duration::from_millis(1500));

    // b listens (the higher address); the server's host connects to it: closed at once,
    // counted, and the peer's connection is kept.
    let closed = lab.server_ns.run(|| {
        let to: SocketAddr = "[2001:db8:ff::b]:7547".parse().unwrap();
        let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(3)).expect("b listens");
        stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 64];
        matches!(stream.read(&mut buf), Ok(0) | Err(_))
    });
    assert!(closed, "the forged connection is closed without a word");
    wait_for("the refusal to be counted", SECS, || (link(lab.b())["refused_connections"] == 1).then_some(()));
    assert_eq!(link(lab.b())["connected"], true, "the peer's link is kept");

    // `dhcp6d relay backup now` on the master: a batch of its two entries reaches b.
    let received = link(lab.b())["received"].as_u64().unwrap();
    let batches = link(lab.a())["last_batch_sent"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let out = Command::new(dhcp6d_binary())
        .args(["relay", "backup", "now", "--socket"])
        .arg(&lab.a().socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 connected peer"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    wait_for("the batch to reach b", Duration::from_secs(2), || {
        (link(lab.b())["received"].as_u64().unwrap() >= received + 2).then_some(())
    });
    assert!(link(lab.a())["last_batch_sent"].as_u64().unwrap() > batches);

    // The daily batch: relay a's dhcp6d restarted with `daily_batch` a few seconds ahead (UTC,
    // to the second) sends its batch on connect, then another when the time comes.
    let unix = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let daily = unix(SystemTime::now()) + 10;
    let hms = format!("{:02}:{:02}:{:02}", daily % 86_400 / 3600, daily % 3600 / 60, daily % 60);
    lab.a_config = lab.a_config.replacen("port = 7547\n", &format!("port = 7547\ndaily_batch = \"{hms}\"\n"), 1);
    if let Some(a) = lab.relay_a.take() {
        a.stop_keeping_pins();
    }
    lab.relay_a = Some(Dhcp6d::start(&lab.a_ns, &lab.scratch, "ra", &lab.a_config, &["--no-xdp"]));
    lab.wait_linked();
    let on_connect = wait_for("the batch on connect", SECS, || link(lab.a())["last_batch_sent"].as_u64());
    assert!(on_connect < daily, "the restart took past the daily time: nothing left to test");
    let text = Command::new(dhcp6d_binary())
        .args(["show", "relay", "standby", "--socket"])
        .arg(&lab.a().socket)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("daily at {hms} UTC")), "{text}");
    // Nothing else sends a batch now: one sent at or after the time is the daily one.
    wait_for("the daily batch", SECS, || link(lab.a())["last_batch_sent"].as_u64().filter(|&t| t >= daily));
    wait_for("b to receive it whole", SECS, || link(lab.b())["last_batch_received"].as_u64().filter(|&t| t >= daily));
}

#[test]
fn the_old_master_returns_takes_the_batch_and_takes_mastership_back_after_its_preemption_delay() {
    let mut lab = Lab::new("d6spreempt", Options { preempt_delay: 4, ..Options::default() });
    let (_client1, prefix1) = lab.bind(0, lab.a(), lab.b(), Duration::from_millis(1500));
    lab.kill_a();
    wait_for("relay b to become master", SECS, || (profile(lab.b())["role"] == "master").then_some(()));
    let (_client2, prefix2) = {
        let client = lab.client(1);
        let prefix = client.wait_event("BOUND6", "new_ip6_prefix", SECS);
        (client, prefix)
    };

    // a returns: it takes b's batch while keepalived holds it back, then becomes master.
    lab.restart_a();
    wait_for("relay a to be master again", SECS, || (profile(lab.a())["role"] == "master").then_some(()));
    let became_master = profile(lab.a())["since"].as_u64().unwrap();
    let batch = link(lab.a())["last_batch_received"].as_u64();
    assert!(
        batch.is_some_and(|t| t <= became_master),
        "the batch came before mastership: {batch:?} {became_master}\n{}",
        lab.logs()
    );
    wait_for("relay b to be backup again", SECS, || (profile(lab.b())["role"] == "backup").then_some(()));
    let on_a = lab.a().show("relay users");
    assert!(resources(&on_a).contains(&prefix1) && resources(&on_a).contains(&prefix2), "{on_a}");
    wait_for("b's routes degraded again", SECS, || {
        Some(routes(&lab.b_ns))
            .filter(|r| r.contains(&prefix2) && r.contains("metric 1124") && !r.contains("metric 1024"))
    });

    // A new client binds through a; both hold every entry.
    let forwarded = lab.b().show("relay servers")["stats"]["forwarded"].as_u64().unwrap();
    let (_client3, prefix3) = lab.bind(2, lab.a(), lab.b(), Duration::from_millis(1500));
    let on_b = lab.b().show("relay users");
    for p in [&prefix1, &prefix2, &prefix3] {
        assert!(resources(&on_b).contains(p), "{p} on b: {on_b}");
    }
    assert_eq!(lab.b().show("relay servers")["stats"]["forwarded"].as_u64().unwrap(), forwarded, "b relays no more");
}

/// The master's access link goes down (keepalived: FAULT), with Kea upstream: the backup takes
/// over and relays, its new entries reach the old master over the backup link; when the
/// link comes back, the old master takes over again.
#[test]
fn the_backup_takes_over_when_the_masters_access_link_goes_down_with_kea_upstream() {
    let lab = Lab::new("d6sfault", Options { kea: true, ..Options::default() });
    let (client1, prefix1) = lab.bind(0, lab.a(), lab.b(), Duration::from_millis(1500));

    lab.a_ns.exec(&["ip", "link", "set", "dev", &lab.a_access, "down"]);
    wait_for("relay a to be in fault", SECS, || (profile(lab.a())["role"] == "fault").then_some(()));
    wait_for("relay b to become master", SECS, || (profile(lab.b())["role"] == "master").then_some(()));
    let renewed = client1.values("RENEW6", "new_ip6_prefix").len();
    wait_for("client 1 to renew through b", SECS, || {
        (client1.values("RENEW6", "new_ip6_prefix").len() > renewed).then_some(())
    });
    // A new client binds through b; a (its access link down, its backup link up) holds it.
    let (_client2, prefix2) = lab.bind(1, lab.b(), lab.a(), Duration::from_millis(1500));
    assert!(lab.b().show("relay servers")["stats"]["forwarded"].as_u64() >= Some(3), "{}", lab.logs());
    wait_for("b's normal routes", SECS, || {
        Some(routes(&lab.b_ns)).filter(|r| r.contains(&prefix1) && r.contains(&prefix2) && !r.contains("metric 1124"))
    });

    // The link comes back: a preempts (no delay here) and relays again.
    lab.a_ns.exec(&["ip", "link", "set", "dev", &lab.a_access, "up"]);
    lab.a_ns.exec(&["ip", "-6", "addr", "replace", "2001:db8:2::a/64", "dev", &lab.a_access, "nodad"]);
    wait_for("relay a to be master again", SECS, || (profile(lab.a())["role"] == "master").then_some(()));
    wait_for("relay b to be backup again", SECS, || (profile(lab.b())["role"] == "backup").then_some(()));
    let renewed = client1.values("RENEW6", "new_ip6_prefix").len();
    let forwarded = lab.a().show("relay servers")["stats"]["forwarded"].as_u64().unwrap();
    wait_for("client 1 to renew through a", SECS, || {
        (client1.values("RENEW6", "new_ip6_prefix").len() > renewed).then_some(())
    });
    // The Renew waited for may have been relayed just before `forwarded` was read: the next one
    // (T1 is short) shows a relaying.
    wait_for("relay a to relay again", SECS, || {
        (lab.a().show("relay servers")["stats"]["forwarded"].as_u64().unwrap() > forwarded).then_some(())
    });
    wait_for("a's normal routes for both clients", SECS, || {
        Some(routes(&lab.a_ns)).filter(|r| r.contains(&prefix1) && r.contains(&prefix2) && !r.contains("metric 1124"))
    });
}

/// A relay's XDP verdict count.
fn xdp_count(relay: &Dhcp6d, verdict: &str) -> u64 {
    relay.show("statistics")["xdp"][verdict].as_u64().unwrap_or(0)
}

/// Both relays relay in XDP: the backup's XDP leaves the clients' messages to the master;
/// after a switchover (the master's keepalived stops), the new master relays them in XDP, both
/// ways, and the old master's XDP no longer does.
#[test]
fn with_xdp_only_the_master_relays_in_xdp_and_the_new_master_does_after_a_switchover() {
    let mut lab = Lab::new("d6sxdp", Options { xdp: true, ..Options::default() });
    let (client1, prefix1) = lab.bind(0, lab.a(), lab.b(), Duration::from_millis(1500));
    assert!(xdp_count(lab.a(), "relay_forwarded") >= 2, "a relays in XDP: {}", lab.a().show("statistics")["xdp"]);
    assert!(xdp_count(lab.a(), "relay_replied") >= 2, "{}", lab.a().show("statistics")["xdp"]);
    assert_eq!(xdp_count(lab.b(), "relay_forwarded"), 0, "{}", lab.b().show("statistics")["xdp"]);
    assert!(lab.b().show("relay servers")["stats"]["dropped"]["standby"].as_u64() >= Some(2));

    // a's keepalived stops: b becomes master, a stops relaying, in XDP too.
    drop(lab.keepalived_a.take());
    wait_for("relay b to become master", SECS, || (profile(lab.b())["role"] == "master").then_some(()));
    wait_for("relay a to stop relaying", SECS, || (profile(lab.a())["relaying"] == false).then_some(()));
    let a_forwarded = xdp_count(lab.a(), "relay_forwarded");
    let renewed = client1.values("RENEW6", "new_ip6_prefix").len();
    wait_for("client 1 to renew through b", SECS, || {
        (client1.values("RENEW6", "new_ip6_prefix").len() > renewed).then_some(())
    });
    // Its Renew went up in b's XDP and the Reply came down in it: b had the client's MAC from
    // its entries before it saw a frame of the client's in XDP.
    assert!(xdp_count(lab.b(), "relay_forwarded") >= 1, "{}\n{}", lab.b().show("statistics")["xdp"], lab.logs());
    assert!(xdp_count(lab.b(), "relay_replied") >= 1, "{}", lab.b().show("statistics")["xdp"]);
    assert_eq!(xdp_count(lab.a(), "relay_forwarded"), a_forwarded, "the old master's XDP relays no more");
    let (_client2, prefix2) = lab.bind(1, lab.b(), lab.a(), Duration::from_millis(1500));
    let on_b = resources(&lab.b().show("relay users"));
    assert!(on_b.contains(&prefix1) && on_b.contains(&prefix2), "{on_b:?}");
}

/// An upstream router runs FRR and learns the relays' delegated-prefix routes by BGP (each
/// relay redistributing its kernel routes, the metric as MED): it reaches a client's prefix
/// through the master, and through the new master once the old one's access link is down.
#[test]
fn the_upstream_router_reaches_a_delegated_prefix_through_the_master_and_then_the_new_master() {
    let lab = Lab::new("d6sfrr", Options { frr: true, ..Options::default() });
    let (_client1, prefix1) = lab.bind(0, lab.a(), lab.b(), Duration::from_millis(1500));
    wait_for("the router to route the prefix through a", SECS, || {
        (lab.routed_through(&prefix1) == Some(0)).then_some(())
    });

    lab.a_ns.exec(&["ip", "link", "set", "dev", &lab.a_access, "down"]);
    wait_for("relay b to become master", SECS, || (profile(lab.b())["role"] == "master").then_some(()));
    wait_for("the router to route the prefix through b", SECS, || {
        (lab.routed_through(&prefix1) == Some(1)).then_some(())
    });
    let (_client2, prefix2) = lab.bind(1, lab.b(), lab.a(), Duration::from_millis(1500));
    wait_for("the router to route the new client's prefix through b", SECS, || {
        (lab.routed_through(&prefix2) == Some(1)).then_some(())
    });
}

/// TLS on the backup link: the relays back up over it, each taking only the other's pinned
/// certificate; a connection from the peer's address with another certificate is refused and
/// counted, and the link comes back.
#[test]
fn over_tls_the_backup_link_carries_the_entries_and_refuses_another_certificate() {
    let lab = Lab::new("d6stls", Options { tls: true, ..Options::default() });
    assert!(lab.b().process.log_text().contains("tls=true"), "{}", lab.logs());
    let (_client, prefix) = lab.bind(0, lab.a(), lab.b(), Duration::from_millis(1500));
    assert!(resources(&lab.b().show("relay users")).contains(&prefix));

    // From a's host (the peer's address), a TLS client with a certificate of its own.
    let forger = certificate(&lab.scratch, "forger");
    let out = lab.a_ns.exec_status(&[
        "timeout",
        "5",
        "openssl",
        "s_client",
        "-connect",
        "[2001:db8:ff::b]:7547",
        "-cert",
        &forger.0,
        "-key",
        &forger.1,
    ]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    wait_for("the forged handshake to be refused and counted", SECS, || {
        (link(lab.b())["refused_connections"].as_u64() >= Some(1)).then_some(())
    });
    assert!(lab.b().process.log_text().contains("TLS handshake failed"), "{said}\n{}", lab.logs());
    lab.wait_linked();
    let (_client2, prefix2) = lab.bind(1, lab.a(), lab.b(), Duration::from_millis(1500));
    assert!(resources(&lab.b().show("relay users")).contains(&prefix2));
}
