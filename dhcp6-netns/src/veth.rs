//! A veth pair: a wire between two namespaces, removed when dropped.

use std::process::{Command, Stdio};

use crate::{command, Error, Netns};

/// A veth pair with end [`a`](Veth::a) in one namespace and [`b`](Veth::b) in another, both up
/// with their IPv6 link-local addresses. Dropping it deletes both ends (deleting a namespace
/// does too, so the order of the drops does not matter).
#[derive(Debug)]
pub struct Veth {
    /// The namespace of `a`, where the pair is deleted from.
    netns: String,
    a: String,
    b: String,
}

impl Veth {
    /// Makes the pair `a` (in `left`) -- `b` (in `right`), brings both ends up and waits for their
    /// link-local addresses.
    pub fn new(left: &Netns, a: &str, right: &Netns, b: &str) -> Result<Veth, Error> {
        let (left_name, right_name) = (left.name(), right.name());
        command::exec(
            Command::new("ip")
                .args(["link", "add", a, "netns", left_name, "type", "veth", "peer", "name", b, "netns", right_name]),
        )?;
        // From here on, a failing step deletes the pair as `veth` is dropped.
        let veth = Veth { netns: left_name.to_string(), a: a.to_string(), b: b.to_string() };
        left.exec(&["ip", "link", "set", a, "up"])?;
        right.exec(&["ip", "link", "set", b, "up"])?;
        left.wait_link_local(a)?;
        right.wait_link_local(b)?;
        Ok(veth)
    }

    /// The end in the first namespace given to [`Veth::new`].
    pub fn a(&self) -> &str {
        &self.a
    }

    /// The end in the second namespace given to [`Veth::new`].
    pub fn b(&self) -> &str {
        &self.b
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // An error means the pair is gone already, with its namespace or deleted by hand.
        let _ = Command::new("ip")
            .args(["-n", &self.netns, "link", "del", &self.a])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{Ipv6Addr, SocketAddrV6, UdpSocket},
        time::Duration,
    };

    use super::*;
    use crate::{require_root, unique_name};

    fn pair() -> (Netns, Netns, Veth) {
        require_root().expect("these tests make network namespaces: run them as root");
        let left = Netns::unique("vl").expect("a namespace");
        let right = Netns::unique("vr").expect("a namespace");
        let veth = Veth::new(&left, &unique_name("va"), &right, &unique_name("vb")).expect("a veth pair");
        (left, right, veth)
    }

    /// The IPv6 link-local address of `interface` in `ns`.
    fn link_local(ns: &Netns, interface: &str) -> Ipv6Addr {
        let out = ns.exec(&["ip", "-6", "-o", "addr", "show", "dev", interface, "scope", "link"]).expect("ip addr");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let address = text.split_whitespace().skip_while(|w| *w != "inet6").nth(1).expect("an inet6 address");
        address.split('/').next().and_then(|a| a.parse().ok()).expect("an IPv6 address")
    }

    /// The index of `interface` in the calling thread's namespace.
    fn index_here(interface: &str) -> u32 {
        let name = std::ffi::CString::new(interface).expect("no NUL in an interface name");
        // SAFETY: `name` is a NUL-terminated string that outlives the call.
        unsafe { libc::if_nametoindex(name.as_ptr()) }
    }

    #[test]
    fn a_veth_pair_links_two_namespaces_until_dropped() {
        let (left, right, veth) = pair();
        let (a, b) = (veth.a().to_string(), veth.b().to_string());
        assert!(left.exec(&["ip", "link", "show", &a]).is_ok() && right.exec(&["ip", "link", "show", &b]).is_ok());
        assert!(left.exec(&["ip", "link", "show", &b]).is_err(), "each end in its own namespace");

        // A datagram from `a` to the link-local address of `b` arrives.
        let to = link_local(&right, &b);
        let receiver = right.run(|| UdpSocket::bind("[::]:0")).expect("run").expect("bind");
        receiver.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let port = receiver.local_addr().expect("address").port();
        left.run(|| {
            let sender = UdpSocket::bind("[::]:0").expect("bind");
            sender.send_to(b"over the wire", SocketAddrV6::new(to, port, 0, index_here(&a))).expect("send");
        })
        .expect("run");
        let mut buf = [0; 64];
        let (len, from) = receiver.recv_from(&mut buf).expect("the datagram arrives");
        assert_eq!(&buf[..len], b"over the wire");
        assert_eq!(from.ip(), std::net::IpAddr::V6(link_local(&left, &a)));

        drop(veth);
        assert!(left.exec(&["ip", "link", "show", &a]).is_err(), "{a} is deleted");
        assert!(right.exec(&["ip", "link", "show", &b]).is_err(), "{b} is deleted");
    }
}
