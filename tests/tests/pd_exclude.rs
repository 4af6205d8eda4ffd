//! Prefix Exclude (RFC 6603) with a real client: dhcpcd, asking for OPTION_PD_EXCLUDE
//! (`option dhcp6_pd_exclude`: dhcpcd 9 does not ask by default), gets a prefix with the /64
//! excluded from it, and tshark decodes the option in the Advertise and the Reply.
//!
//! dhcpcd 9.4.1's Request then ends with two zero bytes past its options (room it counted for
//! its empty Prefix Exclude hint), which the server takes (`Message::decode_padded`); its
//! Renews end with 28 bytes that are no options at all (what was in its buffer), which the
//! server refuses, so the Renews with the option answered in XDP are tested in program test
//! runs instead (`tests/xdp_fast_path.rs`).

use std::{process::Command, time::Duration};

use dhcp6_tests::{
    netns::{Netns, Veth},
    peers::{wait_for, Dhcp6d, Scratch},
};

const SECS: Duration = Duration::from_secs(60);

fn config(interface: &str) -> String {
    format!(
        r#"[server]
renewal_horizon = 30
preferred_lifetime = 10
valid_lifetime = 20
t1 = 3
t2 = 6

[[subnet]]
interface = "{interface}"
prefix = "2001:db8:1::/64"
ranges = [{{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }}]

[[subnet.pd_pool]]
prefix = "2001:db8:8000::/40"
delegated_length = 56
excluded_prefix = "2001:db8:8000:1::/64"
"#
    )
}

/// Per frame of the capture: message type, transaction ID, and the Prefix Exclude's length
/// and subnet ID (empty when absent), as tshark decodes them.
fn decoded(capture: &std::path::Path) -> Vec<(String, String, String, String)> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(capture)
        .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=f"])
        .args(["-e", "dhcpv6.msgtype", "-e", "dhcpv6.xid", "-e", "dhcpv6.pd_exclude.pref_len"])
        .args(["-e", "dhcpv6.pd_exclude.subnet_id"])
        .output()
        .expect("tshark is installed by `cargo xtask setup`");
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f.len() == 4).then(|| (f[0].to_string(), f[1].to_string(), f[2].to_string(), f[3].to_string()))
        })
        .collect()
}

#[test]
fn dhcpcd_gets_its_prefix_with_the_excluded_one() {
    let server_ns = Netns::new("d6xs");
    let client_ns = Netns::new("d6xc");
    let veth = Veth::new(&server_ns, &client_ns);
    let scratch = Scratch::new("pdexclude");
    // Whole checksums, as from a NIC; an XDP program on the client's end, so that the Replies
    // XDP sends back (XDP_TX) reach it, as on a real link.
    client_ns.exec(&["ethtool", "-K", veth.b(), "tx", "off"]);
    let binary = dhcp6_tests::peers::dhcp6d_binary();
    let _pass =
        client_ns.spawn(&[binary.to_str().unwrap(), "xdp", "pass", "--interface", veth.b()], &scratch.path("pass.log"));
    wait_for("XDP on the client's end", SECS, || {
        let out = client_ns.exec(&["ip", "-d", "link", "show", veth.b()]);
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp").then_some(())
    });
    let capture = scratch.path("client.pcap");
    let mut tcpdump = client_ns.spawn(
        &[
            "tcpdump",
            "-U",
            "--immediate-mode",
            "-i",
            veth.b(),
            "-w",
            capture.to_str().unwrap(),
            "udp port 546 or udp port 547",
        ],
        &scratch.path("tcpdump.log"),
    );
    let server = Dhcp6d::start(&server_ns, &scratch, "srv", &config(veth.a()), &[]);

    let conf = scratch.path("dhcpcd.conf");
    std::fs::write(
        &conf,
        format!("noipv6rs\nipv6only\nnohook resolv.conf\noption dhcp6_pd_exclude\ninterface {}\n  ia_pd 2\n", veth.b()),
    )
    .unwrap();
    let dhcpcd = client_ns.spawn(
        &["dhcpcd", "-f", conf.to_str().unwrap(), "-c", "/bin/true", "-B", "-6", "-t", "20", veth.b()],
        &scratch.path("dhcpcd.log"),
    );
    wait_for("a prefix bound", SECS, || server.bound().iter().any(|(_, t)| t == "ia_pd").then_some(()));
    wait_for("the Reply in the capture", SECS, || decoded(&capture).iter().any(|f| f.0 == "7").then_some(()));
    drop(dhcpcd);
    tcpdump.signal(libc::SIGINT);
    let _ = tcpdump.wait();
    let _ = std::fs::remove_file(format!("/var/lib/dhcpcd/{}.lease6", veth.b()));

    let frames = decoded(&capture);
    let xid_of = |t: &str| -> Vec<String> { frames.iter().filter(|f| f.0 == t).map(|f| f.1.clone()).collect() };
    let (solicits, requests) = (xid_of("1"), xid_of("3"));
    assert!(!solicits.is_empty() && !requests.is_empty(), "a Solicit and a Request in the capture: {frames:?}");
    // The Advertise and the Reply to the Request each carry the /64 (subnet ID 01) excluded
    // from the delegated /56.
    for (answer, to, asked) in [("2", "Solicit", &solicits), ("7", "Request", &requests)] {
        let got: Vec<(&str, &str)> = frames
            .iter()
            .filter(|f| f.0 == answer && asked.contains(&f.1))
            .map(|f| (f.2.as_str(), f.3.as_str()))
            .collect();
        assert!(
            !got.is_empty() && got.iter().all(|x| *x == ("64", "01")),
            "answers to the {to}: {got:?} in {frames:?}"
        );
    }
    let prefix = server.bound().into_iter().find(|(_, t)| t == "ia_pd").map(|(p, _)| p).unwrap();
    assert!(prefix.ends_with("/56"), "{prefix}");
}
