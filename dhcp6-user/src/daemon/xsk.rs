//! AF_XDP sockets on the served interfaces: the messages of on-link clients come up from XDP
//! into a ring of dhcp6d's memory (the UMEM) instead of through the kernel's IP and UDP stack
//! and a socket buffer, and the replies go back down as whole frames through the socket's
//! transmit ring. One socket per receive queue of an interface (XDP redirects a frame to the
//! socket of the queue it came in on), in copy mode, which every driver with XDP has.
//!
//! Of the four rings of a socket, the receive ring and the fill ring (frames given back for
//! receiving) are the engine thread's, through its reader ([`XskRx`]); the transmit ring and
//! the completion ring (frames sent) are the sender thread's ([`XskTx`]). Each ring has one
//! producer and one consumer, so neither side locks; the UMEM's frames are split between the
//! two sides once, at the start.

use std::{
    io,
    net::{Ipv6Addr, SocketAddrV6},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
};

use crate::codec::frame::{EthernetFrame, UdpFrameRepr, Vlans};

/// Size of one UMEM frame (the smallest the kernel takes): a received frame gets 2048 less the
/// kernel's headroom (256), more than any message XDP hands over (512 at most).
pub const FRAME_SIZE: u32 = 2048;
/// Frames for receiving, over all the receive queues of an interface (64 MiB): the receive
/// ring holds this many messages waiting for the engine, about 100 ms at 300,000 a second, and
/// Solicits are shed from a quarter of it. (Half as many, as many as a 16 MiB socket buffer
/// holds, shed at 180,000 exchanges a second for the engine's scheduling delays: 0.7-2.5% lost
/// in three runs, against 0-0.2% with these.) Each queue gets a share, a power of two, at least
/// [`MIN_RX_FRAMES`].
pub const RX_FRAMES: u32 = 32768;
/// Fewest frames for receiving on one queue.
pub const MIN_RX_FRAMES: u32 = 2048;
/// Frames for sending, per socket: replies written but not yet sent by the kernel.
pub const TX_FRAMES: u32 = 2048;
/// Hop limit of the replies (the kernel's default for unicast).
const HOP_LIMIT: u8 = 64;

/// The client a message came from through an AF_XDP socket: where its reply goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The socket, as an index into the sockets the daemon opened.
    pub xsk: usize,
    /// The client's MAC.
    pub mac: [u8; 6],
}

/// A memory mapping, unmapped when dropped.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: plain memory; who reads and writes which part of it is the rings' business (each
// ring one thread's, each UMEM frame one side's).
unsafe impl Send for Mapping {}
// SAFETY: as for Send.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn anonymous(len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh private anonymous mapping.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: ptr.cast(), len })
    }

    fn ring(fd: RawFd, len: usize, offset: u64) -> io::Result<Mapping> {
        // SAFETY: maps the ring the kernel set up for this socket at `offset`.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: ptr.cast(), len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping this value made, not used past here.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// One of a socket's rings: a producer and a consumer index and `size` entries of `T`, shared
/// with the kernel. This side is either the producer or the consumer, never both; what moves
/// an index takes `&mut self`, so one thread at a time does.
struct Ring<T> {
    map: Mapping,
    producer: usize,
    consumer: usize,
    descs: usize,
    size: u32,
    _entries: std::marker::PhantomData<T>,
}

impl<T: Copy> Ring<T> {
    fn map(fd: RawFd, offsets: &libc::xdp_ring_offset, size: u32, page_offset: u64) -> io::Result<Ring<T>> {
        let len = offsets.desc as usize + size as usize * std::mem::size_of::<T>();
        let map = Mapping::ring(fd, len, page_offset)?;
        Ok(Ring {
            map,
            producer: offsets.producer as usize,
            consumer: offsets.consumer as usize,
            descs: offsets.desc as usize,
            size,
            _entries: std::marker::PhantomData,
        })
    }

    fn index(&self, at: usize) -> &AtomicU32 {
        // SAFETY: the kernel's ring header holds an aligned u32 index at this offset, read and
        // written by the kernel and this side only through atomics.
        unsafe { &*(self.map.ptr.add(at) as *const AtomicU32) }
    }

    fn entry(&self, n: u32) -> *mut T {
        // SAFETY: `n` masked into the ring's `size` entries.
        unsafe { (self.map.ptr.add(self.descs) as *mut T).add((n & (self.size - 1)) as usize) }
    }

    /// Consumer side: entries the producer has made ready, from the first not yet released.
    fn ready(&self) -> (u32, u32) {
        let consumer = self.index(self.consumer).load(Ordering::Relaxed);
        let producer = self.index(self.producer).load(Ordering::Acquire);
        (consumer, producer.wrapping_sub(consumer))
    }

    /// Consumer side: entry `n` (an absolute index, from [`Ring::ready`]).
    fn read(&self, n: u32) -> T {
        // SAFETY: an entry the producer made ready and this side has not released.
        unsafe { self.entry(n).read_volatile() }
    }

    fn release(&mut self, n: u32) {
        let consumer = self.index(self.consumer).load(Ordering::Relaxed);
        self.index(self.consumer).store(consumer.wrapping_add(n), Ordering::Release);
    }

    /// Producer side: the first free entry and how many are free.
    fn free(&self) -> (u32, u32) {
        let producer = self.index(self.producer).load(Ordering::Relaxed);
        let consumer = self.index(self.consumer).load(Ordering::Acquire);
        (producer, self.size - producer.wrapping_sub(consumer))
    }

    /// Producer side: fills entry `n` (an absolute index, free by [`Ring::free`]).
    fn write(&mut self, n: u32, value: T) {
        // SAFETY: a free entry, which the kernel does not read until it is submitted.
        unsafe { self.entry(n).write_volatile(value) }
    }

    fn submit(&mut self, n: u32) {
        let producer = self.index(self.producer).load(Ordering::Relaxed);
        self.index(self.producer).store(producer.wrapping_add(n), Ordering::Release);
    }

    /// Producer side: entries submitted and not yet taken by the kernel.
    fn outstanding(&self) -> u32 {
        let producer = self.index(self.producer).load(Ordering::Relaxed);
        producer.wrapping_sub(self.index(self.consumer).load(Ordering::Acquire))
    }
}

/// What both halves of a socket hold: the socket and its UMEM.
struct Socket {
    fd: OwnedFd,
    umem: Mapping,
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The socket's descriptor, to wait on for received frames.
pub struct Watch(Arc<Socket>);

impl AsRawFd for Watch {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// The receiving half of a socket.
pub struct XskRx {
    socket: Arc<Socket>,
    rx: Ring<libc::xdp_desc>,
    fill: Ring<u64>,
    pub ifindex: u32,
    pub queue: u32,
}

/// The client's datagram in a frame XDP handed over (its UDP checksum checked there), and the
/// frame's addresses and ports; None unless it is untagged (XDP hands over no other) UDP over
/// IPv6.
pub fn client_datagram(frame: &[u8]) -> Option<(UdpFrameRepr, &[u8])> {
    let frame = EthernetFrame::new_checked(frame).ok().filter(|f| f.tag_count() == 0)?;
    let (repr, udp) = UdpFrameRepr::parse(&frame).ok()?;
    Some((repr, udp.payload()))
}

/// Frames the kernel dropped before they reached the receive ring.
pub fn dropped(stats: &libc::xdp_statistics) -> u64 {
    stats.rx_dropped + stats.rx_ring_full + stats.rx_fill_ring_empty_descs
}

impl XskRx {
    /// What to wait on for frames.
    pub fn watch(&self) -> Watch {
        Watch(self.socket.clone())
    }

    /// Frames waiting in the receive ring, and its size.
    pub fn held(&self) -> (u32, u32) {
        (self.rx.ready().1, self.rx.size)
    }

    /// Hands up to `max` received frames to `each`, then gives their UMEM frames back for
    /// receiving. Returns how many there were.
    pub fn recv(&mut self, max: u32, mut each: impl FnMut(&[u8])) -> u32 {
        let (first, ready) = self.rx.ready();
        let n = ready.min(max);
        if n == 0 {
            return 0;
        }
        let (fill_at, fill_free) = self.fill.free();
        for i in 0..n {
            let desc = self.rx.read(first.wrapping_add(i));
            let (addr, len) = (desc.addr as usize, desc.len as usize);
            if addr + len <= self.socket.umem.len {
                // SAFETY: a frame of the UMEM the kernel filled and handed over; nothing
                // writes it until it is back in the fill ring.
                each(unsafe { std::slice::from_raw_parts(self.socket.umem.ptr.add(addr), len) });
            }
            // The fill ring has room for every frame of this side: the one just read goes back.
            debug_assert!(i < fill_free);
            self.fill.write(fill_at.wrapping_add(i), desc.addr & !u64::from(FRAME_SIZE - 1));
        }
        self.rx.release(n);
        self.fill.submit(n);
        n
    }

    /// The kernel's counts for the socket (frames dropped for want of room among them).
    pub fn statistics(&self) -> io::Result<libc::xdp_statistics> {
        // SAFETY: the struct XDP_STATISTICS fills.
        unsafe { get(self.socket.as_raw_fd(), libc::XDP_STATISTICS) }
    }
}

/// Reads socket option `name` of level SOL_XDP.
///
/// # Safety
/// `T` is the plain C struct the kernel writes for `name`, valid when all zero.
unsafe fn get<T>(fd: RawFd, name: libc::c_int) -> io::Result<T> {
    // SAFETY: all-zero bytes are a `T`, as the caller says.
    let mut value: T = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: a buffer of `len` bytes.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_XDP, name, (&mut value as *mut T).cast(), &mut len) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// The sending half of a socket.
pub struct XskTx {
    socket: Arc<Socket>,
    tx: Ring<libc::xdp_desc>,
    completion: Ring<u64>,
    /// UMEM frames of this side not in the transmit ring.
    free: Vec<u64>,
    /// The interface's MAC and link-local address: the replies' sources.
    mac: [u8; 6],
    link_local: Ipv6Addr,
    /// Frames written since the last [`XskTx::flush`].
    pending: bool,
}

impl XskTx {
    /// Writes the frame that carries `payload` from port 547 to `destination` (its address
    /// and port), from `source` or else the interface's link-local address, to the MAC `to`,
    /// into the transmit ring. False if every frame of this side is in flight.
    pub fn push(&mut self, to: [u8; 6], source: Option<Ipv6Addr>, destination: SocketAddrV6, payload: &[u8]) -> bool {
        if self.free.is_empty() {
            self.reclaim();
        }
        let (at, room) = self.tx.free();
        let Some(addr) = self.free.last().copied().filter(|_| room > 0) else { return false };
        // SAFETY: a frame of this side's, not in flight.
        let buf =
            unsafe { std::slice::from_raw_parts_mut(self.socket.umem.ptr.add(addr as usize), FRAME_SIZE as usize) };
        let reply = UdpFrameRepr {
            src_mac: self.mac,
            dst_mac: to,
            vlans: Vlans::NONE,
            src_ip: source.unwrap_or(self.link_local),
            dst_ip: *destination.ip(),
            src_port: dhcp6_common::wire::SERVER_PORT,
            dst_port: destination.port(),
            hop_limit: HOP_LIMIT,
        };
        let Ok(len) = reply.emit(buf, payload) else {
            return false;
        };
        self.free.pop();
        self.tx.write(at, libc::xdp_desc { addr, len: len as u32, options: 0 });
        self.tx.submit(1);
        self.pending = true;
        true
    }

    /// Has the kernel send what the transmit ring holds (in copy mode, a send call carries out
    /// a batch of them), then takes back the frames it is done with.
    pub fn flush(&mut self) -> io::Result<()> {
        if !std::mem::take(&mut self.pending) {
            return Ok(());
        }
        // A call sends a batch (32 by default); a few rounds take a full burst.
        for _ in 0..(TX_FRAMES / 16) {
            if self.tx.outstanding() == 0 {
                break;
            }
            // SAFETY: a send with no data: the kernel's cue to go through the transmit ring.
            let r = unsafe {
                libc::sendto(self.socket.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0)
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    // Budget spent, or the device busy: another round.
                    Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) => continue,
                    _ => return Err(e),
                }
            }
        }
        self.reclaim();
        Ok(())
    }

    /// Takes back the frames the kernel is done with.
    fn reclaim(&mut self) {
        let (first, ready) = self.completion.ready();
        for i in 0..ready {
            self.free.push(self.completion.read(first.wrapping_add(i)));
        }
        self.completion.release(ready);
    }
}

/// Sets socket option `name` of level SOL_XDP to `value`.
fn set<T>(fd: RawFd, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a plain value of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The receive queues of `interface` (at least one).
pub fn rx_queues(interface: &str) -> u32 {
    let dir = format!("/sys/class/net/{interface}/queues");
    let n = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count())
        .unwrap_or(1);
    (n as u32).max(1)
}

/// The frames for receiving each of `queues` queues gets.
pub fn rx_frames_per_queue(queues: u32) -> u32 {
    (RX_FRAMES / queues.max(1)).next_power_of_two().clamp(MIN_RX_FRAMES, RX_FRAMES)
}

/// Opens an AF_XDP socket on receive queue `queue` of interface `ifindex`, whose MAC and
/// link-local address are `mac` and `link_local`, with `rx_frames` frames for receiving (a
/// power of two). XDP must run on the interface already.
pub fn open(
    ifindex: u32,
    queue: u32,
    rx_frames: u32,
    mac: [u8; 6],
    link_local: Ipv6Addr,
) -> io::Result<(XskRx, XskTx)> {
    // SAFETY: plain socket creation.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(needs("creating an AF_XDP socket (needs CAP_NET_RAW)", io::Error::last_os_error()));
    }
    // SAFETY: a descriptor just opened and owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw = fd.as_raw_fd();
    let frames = rx_frames + TX_FRAMES;
    let umem = Mapping::anonymous(frames as usize * FRAME_SIZE as usize)?;
    let reg = libc::xdp_umem_reg {
        addr: umem.ptr as u64,
        len: umem.len as u64,
        chunk_size: FRAME_SIZE,
        headroom: 0,
        flags: 0,
        tx_metadata_len: 0,
    };
    set(raw, libc::XDP_UMEM_REG, &reg)
        .map_err(|e| needs("registering its frames, locked memory (needs CAP_IPC_LOCK or a higher LimitMEMLOCK)", e))?;
    set(raw, libc::XDP_UMEM_FILL_RING, &rx_frames)?;
    set(raw, libc::XDP_UMEM_COMPLETION_RING, &TX_FRAMES)?;
    set(raw, libc::XDP_RX_RING, &rx_frames)?;
    set(raw, libc::XDP_TX_RING, &TX_FRAMES)?;
    // SAFETY: the struct XDP_MMAP_OFFSETS fills.
    let offsets: libc::xdp_mmap_offsets = unsafe { get(raw, libc::XDP_MMAP_OFFSETS)? };
    let rx = Ring::<libc::xdp_desc>::map(raw, &offsets.rx, rx_frames, libc::XDP_PGOFF_RX_RING as u64)?;
    let tx = Ring::<libc::xdp_desc>::map(raw, &offsets.tx, TX_FRAMES, libc::XDP_PGOFF_TX_RING as u64)?;
    let mut fill = Ring::<u64>::map(raw, &offsets.fr, rx_frames, libc::XDP_UMEM_PGOFF_FILL_RING)?;
    let completion = Ring::<u64>::map(raw, &offsets.cr, TX_FRAMES, libc::XDP_UMEM_PGOFF_COMPLETION_RING)?;
    // The first frames receive, the rest send.
    let (at, _) = fill.free();
    for i in 0..rx_frames {
        fill.write(at.wrapping_add(i), u64::from(i) * u64::from(FRAME_SIZE));
    }
    fill.submit(rx_frames);
    let free = (rx_frames..frames).rev().map(|i| u64::from(i) * u64::from(FRAME_SIZE)).collect();
    // SAFETY: zeroed plain data.
    let mut address: libc::sockaddr_xdp = unsafe { std::mem::zeroed() };
    address.sxdp_family = libc::AF_XDP as u16;
    address.sxdp_ifindex = ifindex;
    address.sxdp_queue_id = queue;
    address.sxdp_flags = libc::XDP_COPY;
    // SAFETY: a sockaddr_xdp of the size given.
    let r = unsafe {
        libc::bind(
            raw,
            (&address as *const libc::sockaddr_xdp).cast(),
            std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let socket = Arc::new(Socket { fd, umem });
    Ok((
        XskRx { socket: socket.clone(), rx, fill, ifindex, queue },
        XskTx { socket, tx, completion, free, mac, link_local, pending: false },
    ))
}

/// `e` saying which step failed and what it takes, so that a missing capability is named in
/// the log.
fn needs(step: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{step}: {e}"))
}

/// The MAC and the link-local address of `interface` (`ifindex`), as replies from it carry
/// them: read where the fast path reads its links' ([`super::interface`]), except that a
/// link-local address still tentative is taken (dhcp6d may start while DAD runs, and the
/// sockets are opened once).
pub fn link_addresses(interface: &str, ifindex: u32) -> io::Result<([u8; 6], Ipv6Addr)> {
    let missing = |what: &str| io::Error::new(io::ErrorKind::NotFound, format!("{interface} has no {what}"));
    let mac = super::interface::mac_address(interface).ok_or_else(|| missing("MAC address"))?;
    let link_local = super::interface::interface_addresses()
        .into_iter()
        .find(|a| a.ifindex == ifindex && a.scope == super::interface::SCOPE_LINK)
        .map(|a| a.address)
        .ok_or_else(|| missing("link-local address"))?;
    Ok((mac, link_local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_frames_are_shared_out_among_queues() {
        assert_eq!(rx_frames_per_queue(1), RX_FRAMES);
        assert_eq!(rx_frames_per_queue(2), RX_FRAMES / 2);
        assert_eq!(rx_frames_per_queue(3), RX_FRAMES / 2, "a power of two, rounded up");
        assert_eq!(rx_frames_per_queue(64), MIN_RX_FRAMES);
        assert_eq!(rx_frames_per_queue(0), RX_FRAMES);
    }
}
