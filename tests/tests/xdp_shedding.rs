//! Shedding in XDP, in program test runs: while dhcp6d asks for it, the captures' Solicits to
//! the server are dropped (and counted), tagged or not, and nothing else is; asked to stop, or
//! once the deadline it gave passes, they go through again.

use std::{fs::File, time::Duration};

use dhcp6_tests::{tagged, vector_files};
use dhcp6_user::{capture::dhcp6_datagram, xdp::XdpProgram};
use pcap_file::pcap::PcapReader;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// Every captured frame, with its message type and destination port.
fn frames() -> Vec<(u8, u16, Vec<u8>)> {
    let mut out = Vec::new();
    for file in vector_files() {
        let mut reader = PcapReader::new(File::open(&file).unwrap()).unwrap();
        while let Some(p) = reader.next_packet() {
            let frame = p.unwrap().data.into_owned();
            let d = dhcp6_datagram(&frame).expect("every vector frame is DHCPv6");
            out.push((d.payload[0], d.destination.port(), frame));
        }
    }
    out
}

#[test]
fn solicits_are_dropped_in_xdp_only_while_dhcp6d_asks() {
    let mut program = XdpProgram::load().expect("load the XDP program");
    let shed = program.take_shed().expect("the shedding map");
    let frames = frames();
    let is_solicit = |t: u8, port: u16| t == 1 && port == 547;
    let solicits = frames.iter().filter(|(t, p, _)| is_solicit(*t, *p)).count();
    assert!(solicits > 0, "the captures hold Solicits");
    assert!(frames.iter().any(|(t, _, _)| *t == 3), "and Requests");

    // Not asked: everything passes.
    for (_, _, frame) in &frames {
        assert_eq!(program.test_run(frame).unwrap(), XDP_PASS);
    }
    assert_eq!(shed.shed(), 0);

    shed.shed_for(Duration::from_secs(30)).unwrap();
    let mut dropped = 0;
    for (t, port, frame) in &frames {
        for tags in [&[][..], &[(0x8100, 100)][..]] {
            let action = program.test_run(&tagged(frame, tags)).unwrap();
            if is_solicit(*t, *port) {
                assert_eq!(action, XDP_DROP, "a Solicit while shedding (tags {tags:?})");
                dropped += 1;
            } else {
                assert_eq!(action, XDP_PASS, "type {t} to port {port} is not shed");
            }
        }
    }
    assert_eq!(shed.shed(), dropped, "each shed Solicit is counted");

    // Asked to stop: they pass again.
    shed.stop().unwrap();
    for (_, _, frame) in frames.iter().filter(|(t, p, _)| is_solicit(*t, *p)) {
        assert_eq!(program.test_run(frame).unwrap(), XDP_PASS, "after stop");
    }

    // A deadline that passes ends shedding by itself (a dhcp6d that stopped asking).
    shed.shed_for(Duration::from_millis(300)).unwrap();
    let (_, _, solicit) = frames.iter().find(|(t, p, _)| is_solicit(*t, *p)).unwrap();
    assert_eq!(program.test_run(solicit).unwrap(), XDP_DROP, "within the window");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(program.test_run(solicit).unwrap(), XDP_PASS, "once the window has passed");
    assert_eq!(shed.shed(), dropped + 1);
}
