//! The three-host lab of the relay tests: a DHCPv6 server, a relay, a client.

use std::time::Duration;

use dhcp6_codec::MessageType;

use crate::{
    netns::{Netns, Process, Veth},
    peers::{Dhclient, Scratch},
};

/// Server (2001:db8:ff::1) -- relay (2001:db8:ff::2 upstream, 2001:db8:2::1 on the access
/// link) -- client, with tcpdump capturing port 547 on the server's side.
pub struct RelayLab {
    pub server_ns: Netns,
    pub relay_ns: Netns,
    pub client_ns: Netns,
    pub up: Veth,
    pub access: Veth,
    pub capture: std::path::PathBuf,
    _tcpdump: Process,
}

impl RelayLab {
    pub fn new(scratch: &Scratch, server_name: &str) -> RelayLab {
        let server_ns = Netns::new(server_name);
        let relay_ns = Netns::new("d6r");
        let client_ns = Netns::new("d6c");
        let (up, capture, _tcpdump) = upstream(scratch, &relay_ns, &server_ns);
        let access = Veth::new(&client_ns, &relay_ns);
        relay_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:2::1/64", "dev", access.b(), "nodad"]);
        RelayLab { server_ns, relay_ns, client_ns, up, access, capture, _tcpdump }
    }

    /// Makes the lab's links behave as a real access router's wires ([`wire_like`]).
    pub fn wire_like(&self) {
        wire_like(
            &self.relay_ns,
            &[(&self.client_ns, self.access.a()), (&self.server_ns, self.up.b())],
            &["2001:db8:ff::1"],
        );
    }

    /// The relay's delegated-prefix routes (protocol 200), as `ip -6 route` prints them.
    pub fn routes(&self) -> String {
        String::from_utf8_lossy(&self.relay_ns.exec(&["ip", "-6", "route", "show", "proto", "200"]).stdout).into_owned()
    }

    /// The Relay-Forwards captured on the server's side so far.
    pub fn forwards(&self) -> Vec<Vec<u8>> {
        std::thread::sleep(Duration::from_millis(500));
        dhcp6_user::capture::read_pcap(&self.capture)
            .unwrap()
            .into_iter()
            .map(|d| d.payload)
            .filter(|p| p.first() == Some(&(MessageType::RelayForw as u8)))
            .collect()
    }

    /// The client releases what it has (dhclient -r, from its lease files).
    pub fn release(&self, scratch: &Scratch, client: Dhclient) {
        drop(client.process);
        let releaser = Dhclient {
            process: self.client_ns.spawn(&["sleep", "0"], &scratch.path("noop.log")),
            dir: client.dir.clone(),
        };
        releaser.run_once(&self.client_ns, self.access.a(), &["-r", "-N", "-P"]);
    }
}

/// The link between relay and server (2001:db8:ff::2 -- 2001:db8:ff::1), with tcpdump
/// capturing port 547 on the server's side: the link, the capture's path, tcpdump.
pub fn upstream(scratch: &Scratch, relay_ns: &Netns, server_ns: &Netns) -> (Veth, std::path::PathBuf, Process) {
    let up = Veth::new(relay_ns, server_ns);
    server_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::1/64", "dev", up.b(), "nodad"]);
    relay_ns.exec(&["ip", "-6", "addr", "add", "2001:db8:ff::2/64", "dev", up.a(), "nodad"]);
    let capture = scratch.path("upstream.pcap");
    let tcpdump = server_ns.spawn(
        &["tcpdump", "-U", "-i", up.b(), "-w", capture.to_str().unwrap(), "udp port 547"],
        &scratch.path("tcpdump.log"),
    );
    (up, capture, tcpdump)
}

/// Makes veth links behave as the wires of a real access router, for the XDP relay: the
/// hosts at the far `ends` (clients, servers) send frames with whole UDP checksums (veth would
/// leave them to an offload that never happens, and XDP, like a real NIC's receiver, checks
/// them) and take frames redirected by XDP (veth needs NAPI, given by GRO, on the receiving
/// peer); the relay forwards IPv6, as a router does (bpf_fib_lookup serves forwarding
/// interfaces only), with its neighbours toward the `servers` resolved.
pub fn wire_like(relay_ns: &Netns, ends: &[(&Netns, &str)], servers: &[&str]) {
    for (ns, end) in ends {
        ns.exec(&["ethtool", "-K", end, "tx", "off", "gro", "on"]);
    }
    relay_ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    // A datagram to each server (discard port) makes the kernel resolve its neighbour.
    relay_ns.run(|| {
        let s = std::net::UdpSocket::bind("[::]:0").unwrap();
        for server in servers {
            s.send_to(b"x", format!("[{server}]:9")).unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(500));
}
