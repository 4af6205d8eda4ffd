//! `dhcp6-load`: the project's own DHCPv6 load generator, for where perfdhcp is the ceiling.
//! It runs four-message exchanges (Solicit, Advertise, Request, Reply) for many distinct
//! clients at a fixed offered rate from one socket, and reports what completed. With
//! `--renew-rate`, the clients it bound then renew, round robin, at that rate: what a steady
//! state of an access router looks like, and what the XDP fast path answers. With `--probe N`,
//! N new clients keep soliciting until one of them is served, as clients do while their server
//! is being taken over: the time until the first Reply is the takeover's. With `--storm`, one
//! client (one DUID, from the interface's one MAC) sends its Solicit at the rate, ignoring the
//! answers, as a broken CPE does: what storm protection (`[storm]`) is for.
//!
//! ```text
//! ip netns exec client dhcp6-load --interface eth0 --rate 50000 --seconds 5
//! ip netns exec client dhcp6-load --interface eth0 --rate 2000 --seconds 5 --renew-rate 100000
//! ip netns exec client dhcp6-load --interface eth0 --rate 1 --seconds 180 --probe 16
//! ip netns exec client dhcp6-load --interface eth0 --rate 50000 --seconds 10 --storm
//! ```

use std::{
    io::{IoSlice, IoSliceMut},
    net::{SocketAddr, SocketAddrV6, UdpSocket},
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use clap::Parser;
use dhcp6_user::{
    codec::{
        frame::UdpFrameRepr,
        option::{DhcpOption, Options},
        ClientMessage, Duid, Message, MessageType, Packet, TransactionId,
    },
    daemon::{
        interface::{link_local, mac_address},
        socket::if_index,
    },
};
use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrIn6};

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
    /// Instead of the load: this many new clients each send a Solicit every 200 ms (its
    /// Elapsed Time counting from the first, as a client retrying does), and Request what is
    /// advertised, until one gets a Reply, at most `--seconds`; prints how long that took.
    #[arg(long)]
    probe: Option<u32>,
    /// Instead of the load: client `--base` alone sends its Solicit `--rate` times a second for
    /// `--seconds`, reading and ignoring what comes back; prints how many went.
    #[arg(long, conflicts_with_all = ["probe", "renew_rate"])]
    storm: bool,
}

/// Transaction ids of Renews have the top bit set; those of exchanges do not.
const RENEW_XID: u32 = 0x80_0000;

/// Most Solicits sent between two reads of the socket.
const SEND_BURST: usize = 64;
/// Most datagrams per `sendmmsg` or `recvmmsg`.
const MMSG: usize = 64;

const SOLICITED: u8 = 1;
const REQUESTED: u8 = 2;
const DONE: u8 = 3;

/// DHCPv6 option codes the generator writes or looks for.
const OPTION_CLIENTID: u16 = 1;
const OPTION_SERVERID: u16 = 2;
const OPTION_IA_NA: u16 = 3;
const OPTION_ELAPSED_TIME: u16 = 8;

fn duid(n: u32) -> [u8; 10] {
    let b = n.to_be_bytes();
    [0, 3, 0, 1, 0x02, 0xdd, b[0], b[1], b[2], b[3]]
}

/// Appends a message header: type and 24-bit transaction id.
fn put_header(out: &mut Vec<u8>, msg_type: MessageType, xid: u32) {
    out.push(msg_type as u8);
    out.extend_from_slice(&xid.to_be_bytes()[1..]);
}

fn put_option(out: &mut Vec<u8>, code: u16, data: &[u8]) {
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// Client `n`'s Solicit for one IA_NA (IAID 1), `elapsed` hundredths of a second into its
/// exchange, written straight to the wire format: the generator must cost far less than the
/// server it measures.
fn put_solicit(out: &mut Vec<u8>, xid: u32, n: u32, elapsed: u16) {
    put_header(out, MessageType::Solicit, xid);
    put_option(out, OPTION_CLIENTID, &duid(n));
    put_option(out, OPTION_IA_NA, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    put_option(out, OPTION_ELAPSED_TIME, &elapsed.to_be_bytes());
}

/// Client `n`'s Request for what `advertise` offered: its Server ID and IA_NA as they came.
/// False (nothing written) if the Advertise lacks either.
fn put_request(out: &mut Vec<u8>, xid: u32, n: u32, advertise: &Packet<&[u8]>) -> bool {
    let (mut server_id, mut ia) = (None, None);
    for option in advertise.options() {
        let Ok(o) = option else { return false };
        match o.code {
            OPTION_SERVERID => server_id = Some(o.data),
            OPTION_IA_NA if ia.is_none() => ia = Some(o.data),
            _ => {}
        }
    }
    let (Some(server_id), Some(ia)) = (server_id, ia) else { return false };
    put_header(out, MessageType::Request, xid);
    put_option(out, OPTION_CLIENTID, &duid(n));
    put_option(out, OPTION_SERVERID, server_id);
    put_option(out, OPTION_IA_NA, ia);
    put_option(out, OPTION_ELAPSED_TIME, &[0, 0]);
    true
}

/// Datagrams to send, one after another in one buffer.
#[derive(Default)]
struct Outbox {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Outbox {
    /// Writes one datagram with `write`; kept if it says so.
    fn push(&mut self, write: impl FnOnce(&mut Vec<u8>) -> bool) -> bool {
        let start = self.bytes.len();
        if write(&mut self.bytes) {
            self.ends.push(self.bytes.len());
            true
        } else {
            self.bytes.truncate(start);
            false
        }
    }

    /// Sends them all to `to`, in `sendmmsg` batches; returns how many went (the first ones:
    /// a full socket buffer stops it), and empties the outbox.
    fn flush(
        &mut self,
        socket: &UdpSocket,
        headers: &mut MultiHeaders<SockaddrIn6>,
        to: SocketAddrV6,
    ) -> Result<usize> {
        let mut starts = Vec::with_capacity(self.ends.len());
        let mut at = 0;
        for &end in &self.ends {
            starts.push(at);
            at = end;
        }
        let mut sent = 0;
        while sent < self.ends.len() {
            let chunk = (self.ends.len() - sent).min(MMSG);
            let slices: Vec<[IoSlice<'_>; 1]> =
                (sent..sent + chunk).map(|i| [IoSlice::new(&self.bytes[starts[i]..self.ends[i]])]).collect();
            let addresses = vec![Some(SockaddrIn6::from(to)); chunk];
            match sendmmsg(socket.as_raw_fd(), headers, &slices, &addresses, [], MsgFlags::empty()) {
                Ok(r) => {
                    let n = r.count();
                    sent += n;
                    if n < chunk {
                        break;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(e) => return Err(e.into()),
            }
        }
        self.bytes.clear();
        self.ends.clear();
        Ok(sent)
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let index = if_index(&args.interface).with_context(|| format!("no interface {}", args.interface))?;
    let socket = UdpSocket::bind("[::]:546").context("binding UDP port 546")?;
    socket2::SockRef::from(&socket).set_recv_buffer_size(8 << 20)?;
    socket.set_nonblocking(true)?;
    let server_v6 = SocketAddrV6::new("ff02::1:2".parse()?, 547, 0, index);
    let server = SocketAddr::V6(server_v6);
    if let Some(clients) = args.probe {
        return probe(&socket, server_v6, clients, args.base, args.seconds, &mut Batches::new());
    }
    if args.storm {
        return storm(&socket, server_v6, args.base, args.rate, args.seconds, &mut Batches::new());
    }
    // Exchange i uses transaction ids 2i (Solicit) and 2i + 1 (Request), 24 bits each.
    let total = args.rate.saturating_mul(args.seconds) as usize;
    anyhow::ensure!(total < 1 << 23, "at most 8 million exchanges per run");
    let mut state = vec![0u8; total];
    // Each bound client's Renew, ready to send but for its transaction id.
    let mut renews: Vec<Vec<u8>> = Vec::new();
    let mut receiver = Batches::new();
    let mut send_headers = MultiHeaders::<SockaddrIn6>::preallocate(MMSG, None);
    let mut solicits = Outbox::default();
    let mut requests = Outbox::default();
    let mut requested_ids = Vec::new();
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
        let burst = (due - sent).min(SEND_BURST);
        for k in sent..sent + burst {
            solicits.push(|out| {
                put_solicit(out, (k * 2) as u32, args.base.wrapping_add(k as u32), 0);
                true
            });
        }
        let went = solicits.flush(&socket, &mut send_headers, server_v6)?;
        state[sent..sent + went].fill(SOLICITED);
        sent += went;
        let idle = !receiver.drain(&socket, |datagram, packet| {
            let Some(xid) = packet.transaction_id() else { return Ok(()) };
            let i = (xid / 2) as usize;
            if i >= total {
                return Ok(());
            }
            match (packet.msg_type(), xid % 2, state[i]) {
                (MessageType::Advertise, 0, SOLICITED) => {
                    let n = args.base.wrapping_add(i as u32);
                    if requests.push(|out| put_request(out, xid + 1, n, &packet)) {
                        requested_ids.push(i);
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
        let went = requests.flush(&socket, &mut send_headers, server_v6)?;
        for &i in &requested_ids[..went] {
            state[i] = REQUESTED;
        }
        requested += went;
        requested_ids.clear();
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
        renew(&socket, server, &renews, frames.as_ref(), rate, args.renew_seconds, &mut receiver)?;
    }
    Ok(())
}

/// `--storm`: client `n` sends its Solicit `rate` times a second for `seconds`, each with a
/// transaction id of its own, and nothing else.
fn storm(
    socket: &UdpSocket,
    server: SocketAddrV6,
    n: u32,
    rate: u32,
    seconds: u32,
    receiver: &mut Batches,
) -> Result<()> {
    let total = rate.saturating_mul(seconds) as usize;
    let mut headers = MultiHeaders::<SockaddrIn6>::preallocate(MMSG, None);
    let mut outbox = Outbox::default();
    let run = Duration::from_secs(u64::from(seconds));
    let start = Instant::now();
    let mut sent = 0usize;
    while sent < total && start.elapsed() < run {
        let due = ((start.elapsed().as_secs_f64() * f64::from(rate)) as usize).min(total);
        for k in sent..due.min(sent + SEND_BURST) {
            outbox.push(|out| {
                put_solicit(out, (k as u32) & 0x7f_ffff, n, 0);
                true
            });
        }
        sent += outbox.flush(socket, &mut headers, server)?;
        let idle = !receiver.drain(socket, |_, _| Ok(()))?;
        if idle && sent >= due {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!("storm offered {rate}/s sent {sent} ({:.1}/s)", sent as f64 / elapsed);
    Ok(())
}

/// `--probe`: `clients` new clients solicit every 200 ms until one gets a Reply.
fn probe(
    socket: &UdpSocket,
    server: SocketAddrV6,
    clients: u32,
    base: u32,
    seconds: u32,
    receiver: &mut Batches,
) -> Result<()> {
    let start = Instant::now();
    let give_up = Duration::from_secs(u64::from(seconds));
    let mut headers = MultiHeaders::<SockaddrIn6>::preallocate(MMSG, None);
    let mut next = start;
    let mut replied = None;
    while replied.is_none() {
        anyhow::ensure!(start.elapsed() < give_up, "probe: no Reply within {seconds} s");
        let mut out = Outbox::default();
        if Instant::now() >= next {
            let elapsed = u16::try_from(start.elapsed().as_millis() / 10).unwrap_or(u16::MAX);
            for k in 0..clients {
                out.push(|o| {
                    put_solicit(o, k * 2, base.wrapping_add(k), elapsed);
                    true
                });
            }
            next += Duration::from_millis(200);
        }
        let idle = !receiver.drain(socket, |_, packet| {
            let Some(xid) = packet.transaction_id() else { return Ok(()) };
            let k = xid / 2;
            if k >= clients {
                return Ok(());
            }
            match (packet.msg_type(), xid % 2) {
                (MessageType::Advertise, 0) => {
                    out.push(|o| put_request(o, xid + 1, base.wrapping_add(k), &packet));
                }
                (MessageType::Reply, 1) => replied = Some(start.elapsed()),
                _ => {}
            }
            Ok(())
        })?;
        out.flush(socket, &mut headers, server)?;
        if idle {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    println!("probe: first Reply after {:.3} s", replied.unwrap_or_default().as_secs_f64());
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
        let client = UdpFrameRepr::from_client(mac, link_local);
        let frames = renews.iter().map(|payload| client.to_vec(payload)).collect::<Result<_, _>>()?;
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
                // SAFETY: all-zero is a valid mmsghdr.
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
    receiver: &mut Batches,
) -> Result<()> {
    anyhow::ensure!(!renews.is_empty(), "no client was bound, so none renews");
    let total = rate.saturating_mul(seconds) as usize;
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
        let idle = !receiver.drain(socket, |_, packet| {
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

/// Buffers to read up to [`MMSG`] datagrams per `recvmmsg`.
struct Batches {
    buffers: Vec<Vec<u8>>,
}

impl Batches {
    fn new() -> Batches {
        Batches { buffers: vec![vec![0; 2048]; MMSG] }
    }

    /// Reads every datagram waiting on the (non-blocking) socket and hands each that parses
    /// as DHCPv6 to `each`, with its bytes; says whether any came.
    fn drain(&mut self, socket: &UdpSocket, mut each: impl FnMut(&[u8], Packet<&[u8]>) -> Result<()>) -> Result<bool> {
        let mut any = false;
        let mut headers = MultiHeaders::<SockaddrIn6>::preallocate(MMSG, None);
        loop {
            let mut lens = [0usize; MMSG];
            let got = {
                let mut slices: Vec<[IoSliceMut<'_>; 1]> =
                    self.buffers.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
                match recvmmsg(socket.as_raw_fd(), &mut headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None) {
                    Ok(results) => {
                        let mut n = 0;
                        for r in results {
                            lens[n] = r.bytes;
                            n += 1;
                        }
                        n
                    }
                    Err(nix::errno::Errno::EAGAIN) => return Ok(any),
                    Err(e) => return Err(e.into()),
                }
            };
            any |= got > 0;
            for (buffer, &len) in self.buffers.iter().zip(&lens[..got]) {
                let datagram = &buffer[..len];
                if let Ok(packet) = Packet::new_checked(datagram) {
                    each(datagram, packet)?;
                }
            }
            if got < MMSG {
                return Ok(any);
            }
        }
    }
}
