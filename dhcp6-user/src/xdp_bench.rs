//! How long the XDP program takes per frame, from program test runs (BPF_PROG_TEST_RUN) and
//! the kernel's run-time statistics: a Renew answered by the fast path (IA_NA, and IA_NA + IA_PD), and
//! frames it passes; and a Solicit and a Renew again with storm protection on, each taking a
//! token from its client's bucket, for what the bucket costs a frame. `dhcp6d xdp bench`
//! prints it; `cargo xtask bench` runs that.
//!
//! Answered frames are timed in live-frame test runs where the kernel allows them, else in
//! plain test runs ([`Timing`]).

use std::{net::Ipv6Addr, time::Duration};

use dhcp6_codec::{
    frame::UdpFrameRepr,
    option::{DhcpOption, IaAddr, IaNa, IaPd, IaPrefix},
    ClientMessage, Duid, Message, MessageType, Options, TransactionId,
};
use ipnet::Ipv6Net;

use dhcp6_common::{
    counters::Verdict,
    storm::{StormConfig, STORM_MAX},
};

use crate::{
    config::Config,
    renewal::{lease_entry, lease_key, link_entry},
    server::{IaType, Lease, LeaseState, Server},
    xdp::{clock_now, XdpError, XdpProgram},
};

/// Test runs come in on loopback, the one interface every namespace has.
const LO: u32 = 1;
const XDP_TX: u32 = 3;
/// Runs per live-frame test run: one batch of fresh pages.
const LIVE_BATCH: u32 = 64;
/// Most live-frame test runs per answered case (each sets up a page pool: about a
/// millisecond); plain timing makes as many runs, one per test run.
const LIVE_CALLS: u32 = 500;

const CONFIG: &str = r#"
[server]
state_dir = "/nonexistent"
dns_servers = ["2001:db8::53"]
domain_search = ["example.net"]

[[subnet]]
interface = "lo"
prefix = "2001:db8:1::/64"
ranges = [{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }]

[[subnet.pd_pool]]
prefix = "2001:db8:8000::/40"
delegated_length = 56
"#;

const SERVER_DUID: [u8; 10] = [0, 3, 0, 1, 2, 0, 0, 0, 0, 0x53];
const CLIENT_DUID: [u8; 10] = [0, 3, 0, 1, 2, 0, 0, 0, 0, 0xc0];
const ADDRESS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
const PREFIX: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x8000, 0, 0, 0, 0, 0);

/// How the frames the program answers are timed. A plain test run with a repeat would run the
/// program on the Reply it wrote from the second run on, so each run needs a fresh copy of
/// the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timing {
    /// Live-frame test runs (BPF_F_TEST_XDP_LIVE_FRAMES, Linux 5.18): a batch of fresh pages
    /// per test run, as from a NIC's ring, each Reply transmitted.
    Live,
    /// Plain test runs of one run each, on a fresh copy of the request; each time includes
    /// the test run's own timer reads. `why` says why not live frames.
    Plain { why: String },
}

impl Timing {
    /// The timing that an attempt at a live-frame test run leaves: live if it ran, plain if
    /// the kernel refused live frames (EPERM, which some hosts answer even to root; EINVAL,
    /// from kernels that know no live frames). Other errors are the caller's.
    pub fn after_live_attempt<T>(attempt: Result<T, XdpError>) -> Result<Timing, XdpError> {
        match attempt {
            Ok(_) => Ok(Timing::Live),
            Err(XdpError::Program(aya::programs::ProgramError::SyscallError(e)))
                if matches!(e.io_error.raw_os_error(), Some(libc::EPERM | libc::EINVAL)) =>
            {
                Ok(Timing::Plain { why: format!("the kernel refused live frames: {}", e.io_error) })
            }
            Err(e) => Err(e),
        }
    }

    /// A short name for the report: `live` or `plain`.
    pub fn name(&self) -> &'static str {
        match self {
            Timing::Live => "live",
            Timing::Plain { .. } => "plain",
        }
    }
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Timing::Live => write!(f, "answered frames timed in live-frame test runs, {LIVE_BATCH} fresh frames each"),
            Timing::Plain { why } => {
                write!(f, "answered frames timed in plain test runs, one fresh frame each ({why})")
            }
        }
    }
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct Measured {
    pub what: &'static str,
    /// Whether the program answered (XDP_TX) rather than passed.
    pub answered: bool,
    /// Per frame, as the test run timed it (for answers: as [`Timing`] says; live frames with
    /// their reset and transmission).
    pub per_packet: Duration,
    /// Per frame in the program alone, from the kernel's run-time statistics.
    pub in_program: Duration,
}

/// A client message from `CLIENT_DUID`, in an Ethernet frame to ff02::1:2 with its checksum.
fn frame(msg_type: MessageType, duid: &[u8], with_pd: bool) -> Vec<u8> {
    let mut options = Options::new();
    options.push(DhcpOption::ClientId(Duid::new(duid).expect("a valid DUID")));
    if msg_type == MessageType::Renew {
        options.push(DhcpOption::ServerId(Duid::new(&SERVER_DUID).expect("a valid DUID")));
    }
    let addr = IaAddr { address: ADDRESS, preferred_lifetime: 0, valid_lifetime: 0, options: Options::new() };
    let mut ia = Options::new();
    ia.push(DhcpOption::IaAddr(addr));
    options.push(DhcpOption::IaNa(IaNa { iaid: 1, t1: 0, t2: 0, options: ia }));
    if with_pd {
        let p = IaPrefix {
            preferred_lifetime: 0,
            valid_lifetime: 0,
            prefix_len: 56,
            prefix: PREFIX,
            options: Options::new(),
        };
        let mut ia = Options::new();
        ia.push(DhcpOption::IaPrefix(p));
        options.push(DhcpOption::IaPd(IaPd { iaid: 2, t1: 0, t2: 0, options: ia }));
    }
    options.push(DhcpOption::Oro(vec![23, 24]));
    options.push(DhcpOption::ElapsedTime(0));
    let msg = Message::Client(ClientMessage { msg_type, transaction_id: TransactionId::from_u32(0x1234), options });
    let payload = msg.to_vec().expect("the message encodes");
    let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xc0);
    // A message of a few dozen bytes always fits a frame.
    UdpFrameRepr::from_client([2, 0, 0, 0, 0, 0xc0], src).to_vec(&payload).expect("the frame is written")
}

fn lease(resource: Ipv6Net, ia_type: IaType, iaid: u32, expires: u64) -> Lease {
    Lease {
        resource,
        ia_type,
        duid: CLIENT_DUID.to_vec(),
        iaid,
        subnet: 0,
        state: LeaseState::Bound,
        preferred_lifetime: 3600,
        valid_lifetime: 7200,
        expires,
        interface: Some("lo".into()),
        reconfigure_key: None,
        relay: None,
    }
}

/// Runs each case `repeat` times (answered ones at most [`LIVE_CALLS`] x [`LIVE_BATCH`]).
/// Answered frames are timed in live-frame test runs unless `live` is false or the kernel
/// refuses them; the [`Timing`] returned says which. Needs root (BPF).
pub fn measure(repeat: u32, live: bool) -> anyhow::Result<(Timing, Vec<Measured>)> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let config = Config::parse(CONFIG)?;
    let leases = vec![
        lease(Ipv6Net::from(ADDRESS), IaType::Na, 1, now + 20_000),
        lease(Ipv6Net::new(PREFIX, 56)?, IaType::Pd, 2, now + 20_000),
    ];
    let mut server = Server::new(config.server, SERVER_DUID.to_vec(), leases);
    server.enable_fast_path();
    let mut program = XdpProgram::load_with(1024)?;
    let mut maps = program.take_fast_path()?;
    let subnet = &server.config().subnets[0];
    let link_local = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x53);
    maps.links.insert(LO, link_entry(server.duid(), subnet, [2, 0, 0, 0, 0, 0x53], link_local)?, 0)?;
    let clock = clock_now();
    for b in server.fast_bindings() {
        let (Some(key), Some(value)) = (lease_key(&b), lease_entry(&b, LO, &clock)) else { continue };
        maps.leases.insert(key, value, 0)?;
    }
    // Storm protection on, with a bucket no run empties: every frame takes a token and passes.
    let mut storm = program.take_storm(StormConfig::OFF)?;
    let bucket = StormConfig::new(STORM_MAX, STORM_MAX);
    let other_client = [0, 3, 0, 1, 2, 0, 0, 0, 0, 0xc1];
    let cases: [(&'static str, Vec<u8>, StormConfig); 7] = [
        ("Renew IA_NA, answered", frame(MessageType::Renew, &CLIENT_DUID, false), StormConfig::OFF),
        ("Renew IA_NA + IA_PD, answered", frame(MessageType::Renew, &CLIENT_DUID, true), StormConfig::OFF),
        ("Rebind IA_NA, answered", frame(MessageType::Rebind, &CLIENT_DUID, false), StormConfig::OFF),
        ("Renew of an unknown client, passed", frame(MessageType::Renew, &other_client, false), StormConfig::OFF),
        ("Solicit, passed", frame(MessageType::Solicit, &CLIENT_DUID, false), StormConfig::OFF),
        ("Solicit, passed, storm bucket on", frame(MessageType::Solicit, &CLIENT_DUID, false), bucket),
        ("Renew IA_NA, answered, storm bucket on", frame(MessageType::Renew, &CLIENT_DUID, false), bucket),
    ];
    let timing = if live {
        Timing::after_live_attempt(program.test_run_live(&cases[0].1, LO, 1))?
    } else {
        Timing::Plain { why: "asked for".into() }
    };
    let _stats = crate::xdp::enable_run_stats()?;
    let mut out = Vec::new();
    for (what, f, limit) in cases {
        storm.set(limit)?;
        // One plain run says what the program does with the frame. A frame it passes is timed
        // on repeat. A frame it answers is rewritten in place, so a plain repeat would time
        // the Reply from the second run on: each run is on a fresh copy of the request instead
        // (as `timing` says), and the count of Replies checks that every run answered.
        let answered = program.test_run_on(&f, LO, 1)?.action == XDP_TX;
        let (time0, runs0) = program.run_stats()?;
        let per_packet = if answered {
            let runs = (repeat / LIVE_BATCH).clamp(1, LIVE_CALLS) * LIVE_BATCH;
            let replied0 = program.counters()?.verdict(Verdict::Replied);
            let mut total = Duration::ZERO;
            match timing {
                Timing::Live => {
                    for _ in 0..runs / LIVE_BATCH {
                        total += program.test_run_live(&f, LO, LIVE_BATCH)? * LIVE_BATCH;
                    }
                }
                Timing::Plain { .. } => {
                    for _ in 0..runs {
                        total += program.test_run_on(&f, LO, 1)?.duration;
                    }
                }
            }
            let replied = program.counters()?.verdict(Verdict::Replied) - replied0;
            anyhow::ensure!(replied == u64::from(runs), "{what}: {replied} of {runs} {} runs answered", timing.name());
            total / runs
        } else {
            program.test_run_on(&f, LO, repeat)?.duration
        };
        let (time1, runs1) = program.run_stats()?;
        let in_program = (time1 - time0) / (runs1 - runs0).max(1) as u32;
        out.push(Measured { what, answered, per_packet, in_program });
    }
    anyhow::ensure!(storm.cut() == (0, 0), "storm protection cut frames it should have passed: {:?}", storm.cut());
    Ok((timing, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(errno: i32) -> Result<Duration, XdpError> {
        let io_error = std::io::Error::from_raw_os_error(errno);
        let e = aya::sys::SyscallError { call: "bpf_prog_test_run", io_error };
        Err(XdpError::Program(aya::programs::ProgramError::SyscallError(e)))
    }

    #[test]
    fn refused_live_frames_fall_back_to_plain_runs_and_say_why() {
        let timing = Timing::after_live_attempt(refused(libc::EPERM)).expect("a fallback");
        assert_eq!(timing.name(), "plain");
        let said = timing.to_string();
        assert!(said.contains("plain test runs") && said.contains("Operation not permitted"), "{said}");
        assert_eq!(Timing::after_live_attempt(refused(libc::EINVAL)).expect("a fallback").name(), "plain");
    }

    #[test]
    fn live_frames_are_used_when_they_run_and_other_errors_stay_errors() {
        assert_eq!(Timing::after_live_attempt(Ok(Duration::ZERO)).expect("live"), Timing::Live);
        assert!(Timing::after_live_attempt(refused(libc::ENOMEM)).is_err());
    }
}
