//! `dhcp6-load`: the project's own DHCPv6 load generator, for where perfdhcp is the ceiling.
//! It runs four-message exchanges (Solicit, Advertise, Request, Reply) for many distinct
//! clients at a fixed offered rate from one socket, and reports what completed.
//!
//! ```text
//! ip netns exec client dhcp6-load --interface eth0 --rate 50000 --seconds 5
//! ```

use std::{
    net::{SocketAddr, SocketAddrV6, UdpSocket},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use clap::Parser;
use dhcp6_user::{
    codec::{
        option::{DhcpOption, IaNa, Options},
        ClientMessage, Duid, Message, MessageType, Packet, TransactionId,
    },
    daemon::socket::if_index,
};

#[derive(Parser)]
#[command(name = "dhcp6-load", about = "DHCPv6 four-message exchange load generator")]
struct Args {
    /// The interface the server is on.
    #[arg(long, short)]
    interface: String,
    /// Solicits per second.
    #[arg(long, short)]
    rate: u32,
    #[arg(long, short, default_value_t = 5)]
    seconds: u32,
    /// The first client number (clients get distinct DUIDs from here on).
    #[arg(long, default_value_t = 0)]
    base: u32,
}

/// Most Solicits sent between two reads of the socket.
const SEND_BURST: usize = 64;

const SOLICITED: u8 = 1;
const REQUESTED: u8 = 2;
const DONE: u8 = 3;

fn duid(n: u32) -> [u8; 10] {
    let b = n.to_be_bytes();
    [0, 3, 0, 1, 0x02, 0xdd, b[0], b[1], b[2], b[3]]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let index = if_index(&args.interface).with_context(|| format!("no interface {}", args.interface))?;
    let socket = UdpSocket::bind("[::]:546").context("binding UDP port 546")?;
    socket2::SockRef::from(&socket).set_recv_buffer_size(8 << 20)?;
    socket.set_nonblocking(true)?;
    let server = SocketAddr::V6(SocketAddrV6::new("ff02::1:2".parse()?, 547, 0, index));
    // Exchange i uses transaction ids 2i (Solicit) and 2i + 1 (Request), 24 bits each.
    let total = args.rate.saturating_mul(args.seconds) as usize;
    anyhow::ensure!(total < 1 << 23, "at most 8 million exchanges per run");
    let mut state = vec![0u8; total];
    let mut buf = [0u8; 2048];
    let mut out = Vec::with_capacity(256);
    let (mut sent, mut completed, mut requested) = (0usize, 0usize, 0usize);
    let start = Instant::now();
    let run = Duration::from_secs(u64::from(args.seconds));
    let deadline = run + Duration::from_secs(1);
    loop {
        let elapsed = start.elapsed();
        if elapsed > deadline || completed == total {
            break;
        }
        let due = ((elapsed.min(run).as_secs_f64() * f64::from(args.rate)) as usize).min(total);
        // Answers are read before more is sent: a saturated generator that let its own socket
        // overflow would measure itself, not the server.
        let mut burst = 0;
        while sent < due && burst < SEND_BURST {
            burst += 1;
            let d = duid(args.base.wrapping_add(sent as u32));
            let msg = Message::Client(ClientMessage {
                msg_type: MessageType::Solicit,
                transaction_id: TransactionId::from_u32((sent * 2) as u32),
                options: Options(vec![
                    DhcpOption::ClientId(Duid::new(&d)?),
                    DhcpOption::IaNa(IaNa { iaid: 1, t1: 0, t2: 0, options: Options::new() }),
                    DhcpOption::ElapsedTime(0),
                ]),
            });
            out.clear();
            msg.encode(&mut out)?;
            match socket.send_to(&out, server) {
                Ok(_) => {
                    state[sent] = SOLICITED;
                    sent += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        let mut idle = true;
        loop {
            let n = match socket.recv_from(&mut buf) {
                Ok((n, _)) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            };
            idle = false;
            let Ok(packet) = Packet::new_checked(&buf[..n]) else { continue };
            let Some(xid) = packet.transaction_id() else { continue };
            let i = (xid / 2) as usize;
            if i >= total {
                continue;
            }
            match (packet.msg_type(), xid % 2, state[i]) {
                (MessageType::Advertise, 0, SOLICITED) => {
                    let Ok(adv) = Message::decode(&buf[..n]) else { continue };
                    let Some(server_id) = adv.options().server_id() else { continue };
                    let Some(ia) = adv.options().iter().find(|o| matches!(o, DhcpOption::IaNa(_))).cloned() else {
                        continue;
                    };
                    let d = duid(args.base.wrapping_add(i as u32));
                    let req = Message::Client(ClientMessage {
                        msg_type: MessageType::Request,
                        transaction_id: TransactionId::from_u32(xid + 1),
                        options: Options(vec![
                            DhcpOption::ClientId(Duid::new(&d)?),
                            DhcpOption::ServerId(server_id),
                            ia,
                            DhcpOption::ElapsedTime(0),
                        ]),
                    });
                    out.clear();
                    req.encode(&mut out)?;
                    if socket.send_to(&out, server).is_ok() {
                        state[i] = REQUESTED;
                        requested += 1;
                    }
                }
                (MessageType::Reply, 1, REQUESTED) => {
                    state[i] = DONE;
                    completed += 1;
                }
                _ => {}
            }
        }
        if idle && sent == due {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let seconds = f64::from(args.seconds);
    let lost = if sent > 0 { (sent - completed) as f64 * 100.0 / sent as f64 } else { 100.0 };
    println!(
        "offered {}/s sent {} ({:.1}/s) requested {} completed {} rate {:.1}/s lost {:.2}%",
        args.rate,
        sent,
        sent as f64 / seconds,
        requested,
        completed,
        completed as f64 / seconds,
        lost
    );
    Ok(())
}
