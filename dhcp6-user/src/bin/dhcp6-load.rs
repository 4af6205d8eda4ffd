//! `dhcp6-load`: the project's own DHCPv6 load generator, for where perfdhcp is the ceiling.
//! It runs four-message exchanges (Solicit, Advertise, Request, Reply) for many distinct
//! clients at a fixed offered rate from one socket, and reports what completed. With
//! `--renew-rate`, the clients it bound then renew, round robin, at that rate: what a steady
//! state of an access router looks like, and what the XDP fast path answers.
//!
//! ```text
//! ip netns exec client dhcp6-load --interface eth0 --rate 50000 --seconds 5
//! ip netns exec client dhcp6-load --interface eth0 --rate 2000 --seconds 5 --renew-rate 100000
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
    daemon::{
        fast_path::{link_local, mac_address},
        socket::if_index,
    },
    fast_path::client_frame,
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
    /// After binding, Renews per second from the bound clients, round robin.
    #[arg(long)]
    renew_rate: Option<u32>,
    /// How long the Renews go on.
    #[arg(long, default_value_t = 5)]
    renew_seconds: u32,
    /// Send the Renews as whole frames from a packet socket, in batches (sendmmsg), rather
    /// than from the UDP socket: past what a UDP socket sends. Replies are still read from the
    /// UDP socket.
    #[arg(long)]
    packet: bool,
}

/// Transaction ids of Renews have the top bit set; those of exchanges do not.
const RENEW_XID: u32 = 0x80_0000;

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
    // Each bound client's Renew, ready to send but for its transaction id.
    let mut renews: Vec<Vec<u8>> = Vec::new();
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
        let idle = !drain(&socket, &mut buf, |datagram, packet| {
            let Some(xid) = packet.transaction_id() else { return Ok(()) };
            let i = (xid / 2) as usize;
            if i >= total {
                return Ok(());
            }
            match (packet.msg_type(), xid % 2, state[i]) {
                (MessageType::Advertise, 0, SOLICITED) => {
                    let Ok(adv) = Message::decode(datagram) else { return Ok(()) };
                    let Some(server_id) = adv.options().server_id() else { return Ok(()) };
                    let Some(ia) = adv.options().iter().find(|o| matches!(o, DhcpOption::IaNa(_))).cloned() else {
                        return Ok(());
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
                    if args.renew_rate.is_some() {
                        if let Some(renew) = renew_of(datagram, &duid(args.base.wrapping_add(i as u32))) {
                            renews.push(renew);
                        }
                    }
                }
                _ => {}
            }
            Ok(())
        })?;
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
    if let Some(rate) = args.renew_rate {
        let frames = if args.packet { Some(PacketSender::new(&args.interface, index, &renews)?) } else { None };
        renew(&socket, server, &renews, frames.as_ref(), rate, args.renew_seconds)?;
    }
    Ok(())
}

/// Whole Ethernet frames of the Renews (to ff02::1:2 from the interface's MAC and link-local
/// address, UDP checksum computed), sent from a packet socket in batches.
struct PacketSender {
    fd: std::os::fd::OwnedFd,
    frames: Vec<Vec<u8>>,
}

impl PacketSender {
    fn new(interface: &str, index: u32, renews: &[Vec<u8>]) -> Result<PacketSender> {
        use std::os::fd::FromRawFd;
        let mac = mac_address(interface).with_context(|| format!("no MAC address for {interface}"))?;
        let link_local = link_local(index).context("no link-local address (still tentative?)")?;
        let dst = "ff02::1:2".parse::<std::net::Ipv6Addr>()?;
        let frames = renews.iter().map(|payload| client_frame(mac, link_local, dst, payload)).collect();
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        anyhow::ensure!(raw >= 0, "packet socket: {}", std::io::Error::last_os_error());
        // SAFETY: `raw` is a new descriptor nobody else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        // SAFETY: a zeroed sockaddr_ll with family and ifindex set is a valid address to bind.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = index as i32;
        use std::os::fd::AsRawFd;
        // SAFETY: the address is a valid sockaddr_ll of the given size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        anyhow::ensure!(r == 0, "binding the packet socket: {}", std::io::Error::last_os_error());
        Ok(PacketSender { fd, frames })
    }

    /// Sends up to `count` frames, starting at the `first`-th (round robin); returns how many.
    fn send(&self, first: usize, count: usize) -> Result<usize> {
        use std::os::fd::AsRawFd;
        let mut iovs: Vec<libc::iovec> = (0..count)
            .map(|k| {
                let f = &self.frames[(first + k) % self.frames.len()];
                libc::iovec { iov_base: f.as_ptr() as *mut _, iov_len: f.len() }
            })
            .collect();
        // SAFETY: zeroed mmsghdr, then each pointing at one iovec that lives until the call ends.
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        // SAFETY: `msgs` holds `count` valid headers whose buffers outlive the call.
        let n = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), count as u32, libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            // A full device queue (ENOBUFS) is back-pressure, like a full socket buffer.
            if e.kind() == std::io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS) {
                return Ok(0);
            }
            return Err(e.into());
        }
        Ok(n as usize)
    }
}

/// The Renew a client sends for what `reply` gave it.
fn renew_of(reply: &[u8], duid: &[u8]) -> Option<Vec<u8>> {
    let reply = Message::decode(reply).ok()?;
    let server_id = reply.options().server_id()?;
    let ia = reply.options().iter().find(|o| matches!(o, DhcpOption::IaNa(_))).cloned()?;
    let msg = Message::Client(ClientMessage {
        msg_type: MessageType::Renew,
        transaction_id: TransactionId::from_u32(RENEW_XID),
        options: Options(vec![
            DhcpOption::ClientId(Duid::new(duid).ok()?),
            DhcpOption::ServerId(server_id),
            ia,
            DhcpOption::Oro(vec![23, 24]),
            DhcpOption::ElapsedTime(0),
        ]),
    });
    msg.to_vec().ok()
}

/// Sends the `renews` round robin at `rate` for `seconds`, counting the Replies.
fn renew(
    socket: &UdpSocket,
    server: SocketAddr,
    renews: &[Vec<u8>],
    frames: Option<&PacketSender>,
    rate: u32,
    seconds: u32,
) -> Result<()> {
    anyhow::ensure!(!renews.is_empty(), "no client was bound, so none renews");
    let total = rate.saturating_mul(seconds) as usize;
    let mut buf = [0u8; 2048];
    let mut msg = Vec::with_capacity(256);
    let (mut sent, mut answered) = (0usize, 0usize);
    let start = Instant::now();
    let run = Duration::from_secs(u64::from(seconds));
    let deadline = run + Duration::from_secs(1);
    while start.elapsed() < deadline {
        let due = ((start.elapsed().min(run).as_secs_f64() * f64::from(rate)) as usize).min(total);
        if let Some(f) = frames {
            if sent < due {
                sent += f.send(sent, (due - sent).min(SEND_BURST))?;
            }
        }
        let mut burst = 0;
        while frames.is_none() && sent < due && burst < SEND_BURST {
            burst += 1;
            msg.clear();
            msg.extend_from_slice(&renews[sent % renews.len()]);
            let xid = RENEW_XID | (sent as u32 & (RENEW_XID - 1));
            msg[1..4].copy_from_slice(&xid.to_be_bytes()[1..]);
            match socket.send_to(&msg, server) {
                Ok(_) => sent += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        let idle = !drain(socket, &mut buf, |_, packet| {
            if packet.msg_type() == MessageType::Reply && packet.transaction_id().is_some_and(|x| x & RENEW_XID != 0) {
                answered += 1;
            }
            Ok(())
        })?;
        if idle && sent == due {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let lost = if sent > 0 { (sent.saturating_sub(answered)) as f64 * 100.0 / sent as f64 } else { 100.0 };
    println!(
        "renews offered {rate}/s from {} clients sent {sent} answered {answered} rate {:.1}/s lost {lost:.2}%",
        renews.len(),
        answered as f64 / f64::from(seconds),
    );
    Ok(())
}

/// Reads every datagram waiting on the (non-blocking) socket and hands each that parses as
/// DHCPv6 to `each`, with its bytes; says whether any came.
fn drain(socket: &UdpSocket, buf: &mut [u8], mut each: impl FnMut(&[u8], Packet<&[u8]>) -> Result<()>) -> Result<bool> {
    let mut any = false;
    loop {
        let n = match socket.recv_from(buf) {
            Ok((n, _)) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(any),
            Err(e) => return Err(e.into()),
        };
        any = true;
        let datagram = &buf[..n];
        if let Ok(packet) = Packet::new_checked(datagram) {
            each(datagram, packet)?;
        }
    }
}
