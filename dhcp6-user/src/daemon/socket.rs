//! The UDP sockets the server listens on: one per served interface (bound to it, joined to
//! All_DHCP_Relay_Agents_and_Servers there), and one on no interface for unicast (relays).

use std::{
    io::{self, IoSlice, IoSliceMut},
    net::{Ipv6Addr, SocketAddr, SocketAddrV6},
    os::fd::{AsRawFd, RawFd},
};

use anyhow::{Context, Result};
use nix::sys::socket::{
    recvmmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn6,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{unix::AsyncFd, Interest};

use dhcp6_common::wire::{ALL_DHCP_RELAY_AGENTS_AND_SERVERS, SERVER_PORT};

/// IPV6_MULTICAST_ALL from linux/in6.h (not in libc): with it off, a socket receives only the
/// groups it joined, so the unicast socket does not get every interface's Solicits too.
const IPV6_MULTICAST_ALL: libc::c_int = 29;

/// What a listener's datagrams are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Clients of a served subnet on this interface.
    Serve,
    /// Clients (or downstream relays) to relay from access interface `n` of the relay config.
    RelayAccess(usize),
    /// Unicast: relays' Relay-Forwards to the server, servers' Relay-Replies to the relay.
    Unicast,
}

/// A socket, the interface it is bound to (`None` for the unicast one) and its role.
pub struct Listener {
    pub interface: Option<String>,
    pub index: u32,
    pub role: Role,
    /// Watched for reading only: replies go out on it from the sender thread, and a socket
    /// watched for writing too wakes the engine each time one of them leaves the host.
    pub socket: AsyncFd<std::net::UdpSocket>,
}

/// The interface index of `name`, if it exists.
pub fn if_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// The name of interface `index`, if it exists.
pub fn if_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf holds IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
    Some(unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

/// A socket set up as every listener's; `destinations` asks for each datagram's destination
/// address (IPV6_PKTINFO), which only the unicast listener uses (its answers leave from it):
/// on the others it would be a control message per datagram for nothing.
fn base_socket(destinations: bool) -> Result<Socket> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).context("creating a UDP socket")?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.set_multicast_loop_v6(false)?;
    // Which of our addresses a datagram came to, so that the answer leaves from it.
    if destinations {
        setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true)
            .map_err(io::Error::from)
            .context("setting IPV6_RECVPKTINFO")?;
    }
    // Room for the bursts that come while the engine works through a batch (its readers run
    // between batches). Past the system's rmem_max when allowed (CAP_NET_ADMIN), else up to it.
    let force: libc::c_int = RECV_BUFFER;
    // SAFETY: setsockopt with a pointer to a c_int of the size given.
    let forced = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            std::ptr::addr_of!(force).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        s.set_recv_buffer_size(RECV_BUFFER as usize)?;
    }
    // Each datagram carries the count of those the socket dropped for want of room.
    setsockopt(&s, sockopt::RxqOvfl, &1).map_err(io::Error::from).context("setting SO_RXQ_OVFL")?;
    let off: libc::c_int = 0;
    // SAFETY: setsockopt with a pointer to a c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IPV6,
            IPV6_MULTICAST_ALL,
            std::ptr::addr_of!(off).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("setting IPV6_MULTICAST_ALL off");
    }
    Ok(s)
}

fn bind(s: &Socket) -> Result<()> {
    let addr = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, SERVER_PORT, 0, 0));
    s.bind(&addr.into()).with_context(|| format!("binding UDP port {SERVER_PORT} (is another DHCPv6 server running?)"))
}

/// Opens the listeners: one per interface with its role, then the unicast one.
pub fn open(interfaces: &[(String, Role)]) -> Result<Vec<Listener>> {
    let mut out = Vec::new();
    for (name, role) in interfaces {
        let index = if_index(name).with_context(|| format!("no interface {name}"))?;
        let s = base_socket(false)?;
        s.bind_device(Some(name.as_bytes())).with_context(|| format!("binding to device {name}"))?;
        bind(&s)?;
        s.join_multicast_v6(&Ipv6Addr::from(ALL_DHCP_RELAY_AGENTS_AND_SERVERS), index)
            .with_context(|| format!("joining ff02::1:2 on {name}"))?;
        out.push(Listener { interface: Some(name.clone()), index, role: *role, socket: watched(s)? });
    }
    let s = base_socket(true)?;
    bind(&s)?;
    out.push(Listener { interface: None, index: 0, role: Role::Unicast, socket: watched(s)? });
    Ok(out)
}

/// `s` registered with the runtime for reading only.
fn watched(s: Socket) -> Result<AsyncFd<std::net::UdpSocket>> {
    // SAFETY: the AsyncFd owns the socket, whose descriptor stays open until it is dropped.
    unsafe { AsyncFd::register_with_interest(std::net::UdpSocket::from(s), Interest::READABLE) }
        .context("watching a UDP socket")
}

/// Bytes of receive buffer asked for each socket.
const RECV_BUFFER: libc::c_int = 16 << 20;

/// A datagram received, with the local address it was sent to.
pub struct Received {
    pub len: usize,
    pub from: SocketAddrV6,
    /// The address it was sent to: only on the unicast listener.
    pub to: Option<Ipv6Addr>,
    /// Datagrams the socket dropped (its buffer full) since it was opened, as of this one.
    pub overflowed: Option<u32>,
}

/// Most datagrams one `recvmmsg` takes.
pub const RECV_BATCH: usize = 16;
/// Room for one datagram: the largest UDP payload.
const DATAGRAM_MAX: usize = 65536;

/// Buffers for receiving up to [`RECV_BATCH`] datagrams in one system call.
pub struct Receiver {
    buffers: Vec<Vec<u8>>,
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver { buffers: vec![vec![0; DATAGRAM_MAX]; RECV_BATCH] }
    }
}

impl Receiver {
    /// Receives what `socket` (non-blocking) holds, up to [`RECV_BATCH`] datagrams,
    /// without waiting (`WouldBlock` when there is none), handing each with its payload to
    /// `each`.
    pub fn try_recv(&mut self, socket: &impl AsRawFd, mut each: impl FnMut(Received, &[u8])) -> io::Result<usize> {
        // Made per call (a few small allocations per batch): its raw pointers would keep the
        // reader's future from moving between threads.
        let mut headers =
            MultiHeaders::<SockaddrIn6>::preallocate(RECV_BATCH, Some(nix::cmsg_space!(libc::in6_pktinfo, u32)));
        let mut got = [(0, None, None, None); RECV_BATCH];
        let mut n = 0;
        {
            let mut slices: Vec<[IoSliceMut<'_>; 1]> = self.buffers.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            let results = recvmmsg(socket.as_raw_fd(), &mut headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None)
                .map_err(io::Error::from)?;
            for msg in results {
                let from = msg.address.map(SocketAddrV6::from);
                let (mut to, mut overflowed) = (None, None);
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        match c {
                            ControlMessageOwned::Ipv6PacketInfo(info) => {
                                to = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr))
                            }
                            ControlMessageOwned::RxqOvfl(dropped) => overflowed = Some(dropped),
                            _ => {}
                        }
                    }
                }
                got[n] = (msg.bytes, from, to, overflowed);
                n += 1;
            }
        }
        for (i, &(len, from, to, overflowed)) in got[..n].iter().enumerate() {
            // A datagram without a source cannot be answered: skipped.
            if let Some(from) = from {
                each(Received { len, from, to, overflowed }, &self.buffers[i][..len]);
            }
        }
        Ok(n)
    }
}

/// How full `socket`'s receive buffer is: the bytes it holds, and its size (SO_MEMINFO).
pub fn receive_fill(socket: &impl AsRawFd) -> io::Result<(u32, u32)> {
    let mut info = [0u32; 16];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info` and updates `len`.
    let rc = unsafe {
        libc::getsockopt(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_MEMINFO, info.as_mut_ptr().cast(), &mut len)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((info[libc::SK_MEMINFO_RMEM_ALLOC as usize], info[libc::SK_MEMINFO_RCVBUF as usize]))
}

/// Sends `payload` on socket `fd` to `destination` from the local address `source`, without
/// waiting (`WouldBlock` when the socket buffer is full).
pub fn send_from(fd: RawFd, payload: &[u8], destination: SocketAddrV6, source: Ipv6Addr) -> io::Result<usize> {
    let info = libc::in6_pktinfo { ipi6_addr: libc::in6_addr { s6_addr: source.octets() }, ipi6_ifindex: 0 };
    let to = SockaddrIn6::from(destination);
    sendmsg(fd, &[IoSlice::new(payload)], &[ControlMessage::Ipv6PacketInfo(&info)], MsgFlags::empty(), Some(&to))
        .map_err(io::Error::from)
}
