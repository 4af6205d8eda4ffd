//! Leasequery (RFC 5007) and bulk leasequery (RFC 5460) with real peers: dhclient bound
//! through the dhcp6d relay to a dhcp6d server; `dhcp6d leasequery` asks the server over UDP
//! and TCP (what it sends and gets, tshark reads as we do); a requestor outside the allowed
//! prefixes is refused; and a relay that lost its user entries gets them and the PD route back
//! from the server before the client renews, then relays the Renew.
//!
//! Kea 2.2 on this machine ships no `libdhcp_lease_query.so` hook, so only our server answers.

use std::{process::Command, time::Duration};

use dhcp6_codec::{option::DhcpOption, Message};
use dhcp6_tests::{
    peers::{dhcp6d_binary, wait_for, Dhclient, Dhcp6d, Scratch},
    relay_lab::RelayLab,
    RELAYED_LINK_SERVER,
};
use serde_json::Value;

const SECS: Duration = Duration::from_secs(30);

/// The relayed link's server, answering leasequeries from the relays' link (2001:db8:ff::/64).
fn server_config() -> String {
    format!("{RELAYED_LINK_SERVER}\n[leasequery]\nallow = [\"2001:db8:ff::/64\"]\n")
}

/// The relay of the lab, sending its DUID as Relay-ID, rebuilding by it when it starts with no
/// user entries.
fn relay_config(access: &str) -> String {
    format!(
        r#"[server]

[relay]
route_hold = 2
relay_id = "duid"
rebuild = "relay-id"
[[relay.group]]
name = "core"
servers = ["2001:db8:ff::1"]

[[relay.interface]]
name = "{access}"
group = "core"
link_address = "2001:db8:2::1"
remote_id = {{ enterprise = 2011, template = "port-{{interface}}" }}
"#
    )
}

/// `dhcp6d leasequery ARGS --json` run in the relay's namespace: the answer's messages.
fn leasequery(lab: &RelayLab, args: &[&str]) -> Vec<Value> {
    let bin = dhcp6d_binary();
    let mut all = vec![bin.to_str().unwrap(), "leasequery", "--server", "2001:db8:ff::1", "--json"];
    all.extend_from_slice(args);
    let out = lab.relay_ns.exec_status(&all);
    assert!(out.status.success(), "dhcp6d leasequery {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

/// The options of a message (JSON), by code.
fn options(m: &Value, code: u64) -> Vec<Value> {
    m["options"].as_array().unwrap().iter().filter(|o| o["code"] == code).cloned().collect()
}

/// (addresses and prefixes, whether relay data is there) of a message's Client Data.
fn client_data(m: &Value) -> (Vec<String>, bool) {
    let data = options(m, 45);
    let Some(data) = data.first() else { return (vec![], false) };
    let mut resources: Vec<String> =
        options(data, 5).iter().map(|a| a["address"].as_str().unwrap().to_string()).collect();
    resources.extend(options(data, 26).iter().map(|p| p["prefix"].as_str().unwrap().to_string()));
    resources.sort();
    (resources, !options(data, 47).is_empty())
}

fn types(answer: &[Value]) -> Vec<String> {
    answer.iter().map(|m| m["msg_type_name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn dhcp6d_leasequery_asks_by_address_client_relay_link_and_remote_id_and_strangers_are_refused() {
    let scratch = Scratch::new("d6lq");
    let lab = RelayLab::new(&scratch, "d6lqs");
    let tcp_capture = scratch.path("tcp.pcap");
    let _tcpdump = lab.server_ns.spawn(
        &["tcpdump", "-U", "-i", lab.up.b(), "-w", tcp_capture.to_str().unwrap(), "tcp port 547"],
        &scratch.path("tcpdump-tcp.log"),
    );
    let server = Dhcp6d::start(&lab.server_ns, &scratch, "srv", &server_config(), &["--no-xdp"]);
    let relay = Dhcp6d::start(&lab.relay_ns, &scratch, "relay", &relay_config(lab.access.b()), &["--no-xdp"]);
    let client = Dhclient::start(&lab.client_ns, &scratch, "dhclient", lab.access.a(), &["-N", "-P"]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    let prefix = client.wait_event("BOUND6", "new_ip6_prefix", SECS);
    wait_for("two user entries", SECS, || {
        relay.try_show("relay users").filter(|u| u.as_array().map_or(0, Vec::len) == 2)
    });
    let mut expected = vec![address.clone(), prefix.clone()];
    expected.sort();

    // The relay's Relay-ID and Remote-ID, as they went on the wire.
    let forward = lab.forwards().remove(0);
    let Message::Relay(f) = Message::decode(&forward).unwrap() else { panic!("not a Relay-Forward") };
    let relay_id = dhcp6_codec::hex_string(f.options.relay_id().expect("the relay sends its Relay-ID").as_bytes());
    let remote = format!("2011:port-{}", lab.access.b());
    let duid = server.show("bindings")[0]["duid"].as_str().unwrap().to_string();

    // UDP: by address (the prefix's too) and by client ID, each the whole binding.
    for args in [vec!["--address", address.as_str()], vec!["--client-id", duid.as_str()]] {
        let answer = leasequery(&lab, &args);
        assert_eq!(types(&answer), ["LEASEQUERY-REPLY"], "{args:?}");
        assert_eq!(client_data(&answer[0]), (expected.clone(), true), "{answer:?}");
    }
    let in_prefix = prefix.split('/').next().unwrap().to_string();
    assert_eq!(client_data(&leasequery(&lab, &["--address", &in_prefix])[0]).0, expected);

    // TCP: the bulk queries, each REPLY (the binding) then DONE.
    let bulk = [
        vec!["--relay-id", relay_id.as_str()],
        vec!["--link-address", "2001:db8:2::1"],
        vec!["--remote-id", remote.as_str()],
        vec!["--client-id", duid.as_str(), "--tcp"],
    ];
    for args in &bulk {
        let answer = leasequery(&lab, args);
        assert_eq!(types(&answer), ["LEASEQUERY-REPLY", "LEASEQUERY-DONE"], "{args:?}");
        assert_eq!(client_data(&answer[0]), (expected.clone(), true), "{args:?}");
    }
    // Another relay's ID finds nothing.
    let nobody = leasequery(&lab, &["--relay-id", "00:03:00:01:02:00:00:00:00:77"]);
    assert_eq!(
        (types(&nobody), client_data(&nobody[0]).0.len()),
        (vec!["LEASEQUERY-REPLY".into(), "LEASEQUERY-DONE".into()], 0)
    );

    // From outside the allowed prefixes (the server's own loopback): NotAllowed, counted.
    let out = lab.server_ns.exec_status(&[
        dhcp6d_binary().to_str().unwrap(),
        "leasequery",
        "--server",
        "::1",
        "--address",
        &address,
        "--json",
    ]);
    let refused: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(options(&refused[0], 13)[0]["name"], "NotAllowed", "{refused}");
    assert_eq!(server.show("statistics")["leasequery"]["not_allowed"], 1);
    // Three over UDP, five bulk, and the relay's rebuild at its start.
    assert_eq!(server.show("statistics")["leasequery"]["answered"], 9);

    // tshark reads the queries and answers on the wire as we do: UDP, and TCP's framing.
    std::thread::sleep(Duration::from_millis(500));
    let fields = |file: &std::path::Path, field: &str| {
        let out = Command::new("tshark")
            .args(["-r", file.to_str().unwrap(), "-T", "fields", "-E", "occurrence=a", "-e", field])
            .output()
            .expect("tshark");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let udp: Vec<String> = fields(&lab.capture, "dhcpv6.msgtype");
    assert_eq!(udp.iter().filter(|t| *t == "14").count(), 3, "{udp:?}");
    assert_eq!(udp.iter().filter(|t| *t == "15").count(), 3, "{udp:?}");
    let queried: Vec<String> = fields(&lab.capture, "dhcpv6.iaaddr.ip");
    assert!(queried.contains(&address), "{queried:?}");
    let tcp = fields(&tcp_capture, "dhcpv6.bulk_leasequery.msgtype");
    let count = |t: &str| tcp.iter().filter(|x| *x == t).count();
    // The five bulk queries above, and the relay's own at its start (by Relay-ID, it had no
    // entries).
    assert_eq!((count("14"), count("15"), count("16")), (6, 6, 6), "{tcp:?}");
    let query_types = fields(&tcp_capture, "dhcpv6.lq_query");
    for t in ["2", "3", "4", "5"] {
        assert!(query_types.iter().any(|q| q == t), "query type {t} in {query_types:?}");
    }
}

#[test]
fn a_relay_that_lost_its_entries_gets_them_and_the_route_back_before_the_client_renews() {
    relay_rebuilds_before_the_renew(false);
}

#[test]
fn an_xdp_relay_that_lost_its_entries_gets_them_back_and_relays_the_renew_in_xdp() {
    relay_rebuilds_before_the_renew(true);
}

/// dhclient bound through the relay (from userspace, or in XDP); the relay killed, its state
/// and the PD route removed, restarted: entries and route are back before the client's Renew,
/// which is then relayed and answered.
fn relay_rebuilds_before_the_renew(xdp: bool) {
    let scratch = Scratch::new(if xdp { "d6lqrx" } else { "d6lqr" });
    let lab = RelayLab::new(&scratch, "d6lqrs");
    let relay_args: &[&str] = if xdp {
        lab.wire_like();
        &[]
    } else {
        &["--no-xdp"]
    };
    let server = Dhcp6d::start(&lab.server_ns, &scratch, "srv", &server_config(), &["--no-xdp"]);
    let relay = Dhcp6d::start(&lab.relay_ns, &scratch, "relay", &relay_config(lab.access.b()), relay_args);
    let client = Dhclient::start(&lab.client_ns, &scratch, "dhclient", lab.access.a(), &["-N", "-P"]);
    let address = client.wait_event("BOUND6", "new_ip6_address", SECS);
    let prefix = client.wait_event("BOUND6", "new_ip6_prefix", SECS);
    let users = wait_for("two user entries", SECS, || {
        relay.try_show("relay users").filter(|u| u.as_array().map_or(0, Vec::len) == 2)
    });
    let link_local = users[0]["link_local"].as_str().unwrap().to_string();
    let route = format!("{prefix} via {link_local} dev {} metric 1024", lab.access.b());
    wait_for("the PD route", SECS, || Some(lab.routes()).filter(|r| r.contains(&route)));

    // The relay dies and its state goes with it; so does the route (another box, say). With
    // XDP its program stays pinned, and the next dhcp6d takes it over.
    let mut relay = relay;
    relay.process.signal(libc::SIGKILL);
    let _ = relay.process.wait();
    let pins = relay.bpf_dir.take();
    drop(relay);
    for file in ["relay-users.json", "relay-users.journal"] {
        let _ = std::fs::remove_file(scratch.path(&format!("relay-state/{file}")));
    }
    lab.relay_ns.exec(&["ip", "-6", "route", "del", &prefix, "proto", "200"]);
    assert!(!lab.routes().contains(&prefix));
    let renewals_before = client.values("RENEW6", "new_ip6_address").len();

    let relay = Dhcp6d::start_pinned(&lab.relay_ns, &scratch, "relay", &relay_config(lab.access.b()), relay_args, pins);
    let rebuilt = wait_for("the entries rebuilt", SECS, || {
        relay.try_show("relay users").filter(|u| u.as_array().map_or(0, Vec::len) == 2)
    });
    wait_for("the PD route back", SECS, || Some(lab.routes()).filter(|r| r.contains(&route)));
    // Back before the client's next Renew: no Renew has happened since the relay died.
    assert_eq!(client.values("RENEW6", "new_ip6_address").len(), renewals_before, "rebuilt only after a Renew");
    let mut resources: Vec<String> =
        rebuilt.as_array().unwrap().iter().map(|u| u["resource"].as_str().unwrap().to_string()).collect();
    resources.sort();
    let mut expected = vec![format!("{address}/128"), prefix.clone()];
    expected.sort();
    assert_eq!(resources, expected);
    for u in rebuilt.as_array().unwrap() {
        assert_eq!(
            (u["interface"].as_str(), u["link_local"].as_str()),
            (Some(lab.access.b()), Some(link_local.as_str()))
        );
    }
    let log = relay.process.log_text();
    assert!(log.contains("no user entries kept: asking the servers by bulk leasequery"), "{log}");
    assert!(log.contains("user entries rebuilt from the server's bindings"), "{log}");
    assert!(server.show("statistics")["leasequery"]["answered"].as_u64() >= Some(1));

    let xdp_count = |verdict: &str| relay.show("statistics")["xdp"][verdict].as_u64().unwrap_or(0);
    let (up_before, down_before) = (xdp_count("relay_forwarded"), xdp_count("relay_replied"));

    // The client's Renew is relayed and answered; its entries now carry the real IAIDs.
    let renewed = wait_for("the client's Renew answered", Duration::from_secs(90), || {
        let n = client.values("RENEW6", "new_ip6_address").len();
        (n > renewals_before).then_some(n)
    });
    assert!(renewed > renewals_before);
    let after = wait_for("entries with IAIDs", SECS, || {
        relay.try_show("relay users").filter(|u| {
            let all = u.as_array().map_or(vec![], Clone::clone);
            all.len() == 2 && all.iter().all(|e| e["iaid"].as_u64() != Some(0))
        })
    });
    assert_eq!(after.as_array().unwrap().len(), 2);
    assert!(server.stat("received", "RENEW") >= 1);
    assert!(lab.routes().contains(&route));
    if xdp {
        // The Renew went up and its Reply down in XDP.
        let (up, down) = (xdp_count("relay_forwarded"), xdp_count("relay_replied"));
        assert!(up > up_before && down > down_before, "{up_before}->{up} {down_before}->{down}");
    }
}

/// `dhcp6d relay rebuild` on a running relay by link-address: a relay that sends no Relay-ID
/// (another vendor's, replaced) still finds what is on its links.
#[test]
fn relay_rebuild_by_link_address_on_demand() {
    let scratch = Scratch::new("d6lql");
    let lab = RelayLab::new(&scratch, "d6lqls");
    let _server = Dhcp6d::start(&lab.server_ns, &scratch, "srv", &server_config(), &["--no-xdp"]);
    let plain = relay_config(lab.access.b()).replace("relay_id = \"duid\"\nrebuild = \"relay-id\"\n", "");
    let relay = Dhcp6d::start(&lab.relay_ns, &scratch, "relay", &plain, &["--no-xdp"]);
    let client = Dhclient::start(&lab.client_ns, &scratch, "dhclient", lab.access.a(), &["-N", "-P"]);
    client.wait_event("BOUND6", "new_ip6_prefix", SECS);
    wait_for("two user entries", SECS, || {
        relay.try_show("relay users").filter(|u| u.as_array().map_or(0, Vec::len) == 2)
    });
    let mut relay = relay;
    relay.process.signal(libc::SIGKILL);
    let _ = relay.process.wait();
    for file in ["relay-users.json", "relay-users.journal"] {
        let _ = std::fs::remove_file(scratch.path(&format!("relay-state/{file}")));
    }
    let relay = Dhcp6d::start(&lab.relay_ns, &scratch, "relay", &plain, &["--no-xdp"]);
    assert_eq!(relay.show("relay users").as_array().unwrap().len(), 0, "no rebuild configured");
    let refused = relay.command(&["relay", "rebuild", "--by", "relay-id"]);
    assert!(!refused.status.success(), "by relay ID without one");
    let out = relay.command(&["relay", "rebuild", "--by", "link-address"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 bulk leasequery"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    wait_for("the entries rebuilt", SECS, || {
        relay.try_show("relay users").filter(|u| u.as_array().map_or(0, Vec::len) == 2)
    });
    let f = lab.forwards();
    let Message::Relay(first) = Message::decode(&f[0]).unwrap() else { panic!() };
    assert!(!first.options.iter().any(|o| matches!(o, DhcpOption::RelayId(_))), "no relay_id: no Relay-ID sent");
}
