//! An access switch for the relay's VLAN tests (the kernel here has no VLAN sub-interfaces):
//! each client port is untagged on the client's side and tagged with its VLANs on the trunk
//! toward the relay, as an OLT or DSLAM tags subscriber lines. Frames are carried by packet
//! sockets on a thread inside the switch's namespace.

use std::{
    os::fd::AsRawFd,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
};

use dhcp6_user::{
    codec::frame::EthernetFrame,
    daemon::packet_socket::{PacketSocket, FRAME_MAX},
    relay::Vlans,
};

use crate::{netns::Netns, retagged};

/// The switch; it stops when dropped.
pub struct AccessSwitch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AccessSwitch {
    /// Starts switching in `ns` between the client `ports` (interface, VLANs) and `trunk`.
    pub fn start(ns: &Netns, trunk: &str, ports: &[(String, Vlans)]) -> AccessSwitch {
        let stop = Arc::new(AtomicBool::new(false));
        let (trunk, ports) = (trunk.to_string(), ports.to_vec());
        let halt = stop.clone();
        let thread = ns.spawn_thread(move || {
            let open = |name: &str| {
                let ifindex = dhcp6_user::daemon::socket::if_index(name).unwrap_or_else(|| panic!("no {name}"));
                PacketSocket::open(ifindex, false).unwrap_or_else(|e| panic!("packet socket on {name}: {e}"))
            };
            let trunk = open(&trunk);
            let ports: Vec<(PacketSocket, Vlans)> = ports.iter().map(|(name, v)| (open(name), *v)).collect();
            let mut buf = vec![0u8; FRAME_MAX + 4];
            while !halt.load(Ordering::Relaxed) {
                let mut fds: Vec<libc::pollfd> = std::iter::once(trunk.as_raw_fd())
                    .chain(ports.iter().map(|(s, _)| s.as_raw_fd()))
                    .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
                    .collect();
                // SAFETY: `fds` holds fds.len() pollfds.
                unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
                while let Ok(r) = trunk.recv(&mut buf) {
                    let frame = &buf[..r.len];
                    let Ok(vlans) = EthernetFrame::new_checked(frame).map(|f| f.vlans()) else { continue };
                    if let Some((port, _)) = ports.iter().find(|(_, v)| vlans != Vlans::NONE && *v == vlans) {
                        if let Some(untagged) = retagged(frame, Vlans::NONE) {
                            let _ = port.send(&untagged);
                        }
                    }
                }
                for (port, vlans) in &ports {
                    while let Ok(r) = port.recv(&mut buf) {
                        if let Some(tagged) = retagged(&buf[..r.len], *vlans) {
                            let _ = trunk.send(&tagged);
                        }
                    }
                }
            }
        });
        AccessSwitch { stop, thread: Some(thread) }
    }
}

impl Drop for AccessSwitch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
