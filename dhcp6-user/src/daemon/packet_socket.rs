//! A packet socket on one interface: whole Ethernet frames in and out, VLAN tags included.
//!
//! The relay takes VLAN-tagged clients' frames through it: a kernel without VLAN
//! sub-interfaces for them never hands their datagrams to a UDP socket. The kernel takes the
//! outer tag off a frame before packet sockets see it (it is told in the frame's auxiliary
//! data); [`PacketSocket::recv`] puts it back, so that frames read as they were on the wire.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

use dhcp6_common::wire::{
    frame::{ETHERTYPE_IPV6, ETHERTYPE_VLAN, ETH_HEADER_LEN, IPPROTO_UDP, IPV6_HEADER_LEN, VLAN_TAG_LEN},
    SERVER_PORT,
};

use crate::codec::frame::{
    ethernet::{self, push_outer_tag},
    ipv6, udp, VlanTag,
};

/// Ethernet frames of one interface.
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

/// The longest frame read (a jumbo frame's worth).
pub const FRAME_MAX: usize = 9216;

/// A frame that came in: as it was on the wire, and whether the kernel holds its checksum for
/// good (verified, or not yet computed because it was built on this machine).
pub struct Received {
    pub len: usize,
    pub checksum_trusted: bool,
}

const ETH_P_ALL: u16 = 0x0003;

/// The classic BPF filter of [`PacketSocket::open`]'s `tagged_dhcp_only`. The kernel has taken
/// the outer tag off (it says so in the auxiliary data the filter reads); an inner one, if any,
/// is still in the frame.
fn tagged_dhcp_filter() -> [libc::sock_filter; 17] {
    const ACCEPT: usize = 15;
    const DROP: usize = 16;
    let op = |code: u32, k: u32| libc::sock_filter { code: code as u16, jt: 0, jf: 0, k };
    // A compare at `at` that goes to `yes` or `no` (absolute indexes).
    let jeq = |at: usize, k: u32, yes: usize, no: usize| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt: (yes - at - 1) as u8,
        jf: (no - at - 1) as u8,
        k,
    };
    let (ldw, ldh, ldb) = (
        libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
        libc::BPF_LD | libc::BPF_H | libc::BPF_ABS,
        libc::BPF_LD | libc::BPF_B | libc::BPF_ABS,
    );
    let (ipv6, vlan, udp, port) =
        (u32::from(ETHERTYPE_IPV6), u32::from(ETHERTYPE_VLAN), u32::from(IPPROTO_UDP), u32::from(SERVER_PORT));
    // Where the EtherType, IPv6's next header and UDP's destination port are with `tags` tags
    // in the frame.
    let ethertype_at = |tags: usize| ethernet::field::ethertype(tags).start as u32;
    let next_header_at = |tags: usize| (ethernet::field::ethertype(tags).end + ipv6::field::NEXT_HEADER) as u32;
    let port_at = |tags: usize| {
        (ethernet::field::ethertype(tags).end + IPV6_HEADER_LEN + udp::field::DESTINATION_PORT.start) as u32
    };
    [
        op(ldw, (libc::SKF_AD_OFF + libc::SKF_AD_VLAN_TAG_PRESENT) as u32),
        jeq(1, 0, DROP, 2),
        // One tag (taken off): IPv6 at 14, its next header at 20, the UDP destination port at 56.
        op(ldh, ethertype_at(0)),
        jeq(3, ipv6, 4, 8),
        op(ldb, next_header_at(0)),
        jeq(5, udp, 6, DROP),
        op(ldh, port_at(0)),
        jeq(7, port, ACCEPT, DROP),
        // Two: the inner one still there, all 4 bytes further.
        jeq(8, vlan, 9, DROP),
        op(ldh, ethertype_at(1)),
        jeq(10, ipv6, 11, DROP),
        op(ldb, next_header_at(1)),
        jeq(12, udp, 13, DROP),
        op(ldh, port_at(1)),
        jeq(14, port, ACCEPT, DROP),
        op(libc::BPF_RET | libc::BPF_K, 0x0004_0000),
        op(libc::BPF_RET | libc::BPF_K, 0),
    ]
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl PacketSocket {
    /// Opens a non-blocking packet socket on interface `ifindex`; with `tagged_dhcp_only`, the
    /// kernel hands it only VLAN-tagged frames carrying UDP to port 547 (a socket filter: on
    /// a subscriber trunk every data frame is tagged too).
    pub fn open(ifindex: u32, tagged_dhcp_only: bool) -> io::Result<PacketSocket> {
        // SAFETY: plain system calls; the descriptor is owned from here on.
        let fd = unsafe {
            let raw = check(libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ALL.to_be()),
            ))?;
            OwnedFd::from_raw_fd(raw)
        };
        let socket = PacketSocket { fd, ifindex };
        socket.set_option(libc::SOL_PACKET, libc::PACKET_AUXDATA, 1)?;
        if tagged_dhcp_only {
            let mut program = tagged_dhcp_filter();
            let fprog = libc::sock_fprog { len: program.len() as u16, filter: program.as_mut_ptr() };
            // SAFETY: `fprog` points at `program`, which outlives the call (the kernel copies it).
            check(unsafe {
                libc::setsockopt(
                    socket.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_ATTACH_FILTER,
                    (&fprog as *const libc::sock_fprog).cast(),
                    std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
                )
            })?;
        }
        let mut address = Self::address(ifindex);
        address.sll_protocol = ETH_P_ALL.to_be();
        // SAFETY: a valid sockaddr_ll of its size.
        check(unsafe {
            libc::bind(
                socket.fd.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(socket)
    }

    fn set_option(&self, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
        // SAFETY: an int option of its size.
        check(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
        .map(|_| ())
    }

    fn address(ifindex: u32) -> libc::sockaddr_ll {
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_ifindex = ifindex as i32;
        address.sll_halen = 6;
        address
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Reads the next frame that came in (frames this machine sent are skipped) into `buf`,
    /// its outer VLAN tag put back where the kernel took it from. `WouldBlock` when none waits.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        const TAG: usize = VLAN_TAG_LEN;
        if buf.len() < TAG + 64 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a frame buffer of at least 68 bytes"));
        }
        loop {
            // Room at the front of `buf` for the outer tag: the frame is read 4 bytes in.
            let room = buf.len().saturating_sub(TAG);
            let mut iov = libc::iovec { iov_base: buf[TAG..].as_mut_ptr().cast(), iov_len: room };
            // SAFETY: all-zero is a valid sockaddr_ll and msghdr.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut control = [0u64; 16];
            // SAFETY: as for `from`.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control);
            // SAFETY: every pointer in `msg` points at live buffers of the sizes given.
            let n = check(unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_TRUNC) } as libc::c_int)?
                as usize;
            if from.sll_pkttype == libc::PACKET_OUTGOING || n > room || n < ETH_HEADER_LEN {
                continue;
            }
            let mut aux: Option<libc::tpacket_auxdata> = None;
            // SAFETY: walking the control messages the kernel wrote into `control`.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                        aux = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()));
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
            let status = aux.map_or(0, |a| a.tp_status);
            let checksum_trusted = status & (libc::TP_STATUS_CSUMNOTREADY | libc::TP_STATUS_CSUM_VALID) != 0;
            let tag = aux.filter(|a| a.tp_status & libc::TP_STATUS_VLAN_VALID != 0);
            let Some(tag) = tag else {
                buf.copy_within(TAG..TAG + n, 0);
                return Ok(Received { len: n, checksum_trusted });
            };
            let tpid =
                if tag.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 { tag.tp_vlan_tpid } else { ETHERTYPE_VLAN };
            // The MACs move 4 bytes forward, the tag goes after them (room for it was kept, and
            // the frame holds an Ethernet header: this does not fail).
            let Ok(len) = push_outer_tag(buf, n, VlanTag { tpid, tci: tag.tp_vlan_tci }) else { continue };
            return Ok(Received { len, checksum_trusted });
        }
    }

    /// Sends `frame` as it is out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let address = Self::address(self.ifindex);
        // SAFETY: `frame` and `address` are live for the call, of the sizes given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_loads_the_ethertype_next_header_and_port_where_they_are_with_and_without_an_inner_tag() {
        let loads: Vec<u32> = tagged_dhcp_filter().iter().skip(1).filter(|i| i.code & 0x07 == 0).map(|i| i.k).collect();
        assert_eq!(loads, [12, 20, 56, 16, 24, 60]);
    }
}
