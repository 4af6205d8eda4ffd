//! Shedding in XDP, in program test runs: while dhcp6d asks for it, the captures' Solicits to
//! the server are dropped (and counted), tagged or not, and nothing else is; asked to stop, or
//! once the deadline it gave passes, they go through again. Asked to shed a share of them,
//! XDP drops about that share.

use std::time::Duration;

use dhcp6_tests::{tagged, vector_frames};
use dhcp6_user::{capture::dhcp6_datagram, relay::Vlans, xdp::XdpProgram};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// Every captured frame, with its message type and destination port.
fn frames() -> Vec<(u8, u16, Vec<u8>)> {
    vector_frames()
        .into_iter()
        .map(|frame| {
            let d = dhcp6_datagram(&frame).expect("every vector frame is DHCPv6");
            (d.payload[0], d.destination.port(), frame)
        })
        .collect()
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
        for tags in [Vlans::NONE, Vlans { outer: 100, inner: 0 }] {
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

#[test]
fn xdp_drops_about_the_share_of_solicits_asked() {
    let mut program = XdpProgram::load().expect("load the XDP program");
    let shed = program.take_shed().expect("the shedding map");
    let frames = frames();
    let (_, _, solicit) = frames.iter().find(|(t, p, _)| *t == 1 && *p == 547).expect("a Solicit");
    let (_, _, request) = frames.iter().find(|(t, _, _)| *t == 3).expect("a Request");
    let one = dhcp6_common::counters::SHED_SHARE_ONE;
    let runs = 2000;
    let dropped = |share: u64| {
        shed.shed_share_for(share, Duration::from_secs(30)).unwrap();
        assert_eq!(program.test_run(request).unwrap(), XDP_PASS, "a Request is never shed");
        (0..runs).filter(|_| program.test_run(solicit).unwrap() == XDP_DROP).count()
    };
    assert_eq!(dropped(0), 0, "a share of none drops none");
    assert_eq!(dropped(one), runs, "a whole share drops all");
    // Binomial: 2000 draws at a quarter give 500, with a standard deviation of 19.
    let quarter = dropped(one / 4);
    assert!((380..=620).contains(&quarter), "about a quarter dropped: {quarter} of {runs}");
    let most = dropped(one * 3 / 4);
    assert!((1380..=1620).contains(&most), "about three quarters dropped: {most} of {runs}");
    assert_eq!(shed.shed(), (runs + quarter + most) as u64, "each counted");
    shed.stop().unwrap();
    assert_eq!(program.test_run(solicit).unwrap(), XDP_PASS, "after stop");
}
