//! Whole Ethernet frames sent as they are, through an AF_PACKET socket: frames no socket of
//! the stack would make (malformed, tagged, from any address) for tests of the XDP program.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use crate::Error;

/// Sends each of `frames` out of `interface`, unchanged. Call it inside the interface's
/// namespace ([`Netns::run`](crate::Netns::run)).
pub fn send_frames(interface: &str, frames: &[impl AsRef<[u8]>]) -> Result<(), Error> {
    let no_interface = || Error::NoInterface { interface: interface.to_string() };
    let name = CString::new(interface).map_err(|_| no_interface())?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(no_interface());
    }
    // Protocol 0: the socket sends, and receives nothing.
    // SAFETY: socket takes no pointers; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::PacketSocket(io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a socket just opened, owned by nothing else; OwnedFd closes it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data, for which all zeroes is a valid value.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_ifindex = ifindex as i32;
    to.sll_halen = 6;
    for frame in frames {
        let frame = frame.as_ref();
        // SAFETY: `frame` and `to` are valid for the lengths given, for the whole call.
        let sent = unsafe {
            libc::sendto(
                socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::addr_of!(to).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        let failure = match usize::try_from(sent) {
            Ok(n) if n == frame.len() => continue,
            Ok(n) => io::Error::new(io::ErrorKind::WriteZero, format!("{n} of {} bytes sent", frame.len())),
            Err(_) => io::Error::last_os_error(),
        };
        return Err(Error::Send { interface: interface.to_string(), source: failure });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{require_root, unique_name, Netns, Veth};

    /// An EtherType for local experiments (IEEE 802): nothing else on the link sends it.
    const EXPERIMENTAL: u16 = 0x88b5;

    /// A packet socket on `interface` in the calling thread's namespace that receives every
    /// frame, without blocking.
    fn listen(interface: &str) -> OwnedFd {
        let protocol = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: socket takes no pointers; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, protocol.into()) };
        assert!(fd >= 0, "packet socket: {}", io::Error::last_os_error());
        // SAFETY: `fd` is a socket just opened, owned by nothing else.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = CString::new(interface).expect("no NUL");
        // SAFETY: sockaddr_ll is plain data, for which all zeroes is a valid value.
        let mut at: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        at.sll_family = libc::AF_PACKET as u16;
        at.sll_protocol = protocol;
        // SAFETY: `name` is a NUL-terminated string that outlives the call.
        at.sll_ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        // SAFETY: `at` is valid for the length given, for the whole call.
        let rc = unsafe {
            libc::bind(
                socket.as_raw_fd(),
                std::ptr::addr_of!(at).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "bind: {}", io::Error::last_os_error());
        socket
    }

    /// The next frame of EtherType [`EXPERIMENTAL`] on `socket`, within five seconds.
    fn receive(socket: &OwnedFd) -> Option<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            // SAFETY: `buf` is valid for its length for the whole call.
            let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            match usize::try_from(n) {
                Ok(n) if n >= 14 && buf[12..14] == EXPERIMENTAL.to_be_bytes() => return Some(buf[..n].to_vec()),
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        None
    }

    #[test]
    fn frames_sent_arrive_unchanged_at_the_peer() {
        require_root().expect("these tests make network namespaces: run them as root");
        let left = Netns::unique("fl").expect("a namespace");
        let right = Netns::unique("fr").expect("a namespace");
        let veth = Veth::new(&left, &unique_name("va"), &right, &unique_name("vb")).expect("a veth pair");
        let listener = right.run(|| listen(veth.b())).expect("run");
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        frame.extend_from_slice(&EXPERIMENTAL.to_be_bytes());
        frame.extend_from_slice(b"a frame as it is, padded to the Ethernet minimum");
        left.run(|| send_frames(veth.a(), &[&frame])).expect("run").expect("sent");
        assert_eq!(receive(&listener).as_deref(), Some(&frame[..]));

        let missing = left.run(|| send_frames("nosuch0", &[&frame])).expect("run");
        assert!(matches!(missing, Err(Error::NoInterface { .. })), "{missing:?}");
    }
}
