//! Whether the Replies XDP sends back with XDP_TX reach the link, per served interface.
//!
//! The driver may take an XDP_TX frame and never deliver it: a veth hands it to its peer
//! only when the peer runs an XDP program in driver mode (a peer with GRO but no program
//! counts the frames as sent, and loses them; one with neither counts each as an error). The
//! XDP program cannot tell, so its Replied count and the renewal stamps would say answered
//! what no client got. Two looks, at start and on every tick: a veth's peer, read through
//! rtnetlink (in its own namespace too), must run XDP in driver mode; and the interface's
//! XDP_TX error counters (ethtool statistics) must not grow. An interface that fails either
//! is answered from userspace from then on ([`super::renewal_upkeep`] removes its link entry).

use std::{
    collections::HashMap,
    fmt, io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use rtnetlink::{
    packet_core::{DefaultNla, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST},
    packet_route::{
        link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage, LinkXdp, XdpAttached},
        RouteNetlinkMessage,
    },
    sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr},
};

/// IFLA_TARGET_NETNSID (linux/if_link.h): ask about a link in the namespace with this id.
const IFLA_TARGET_NETNSID: u16 = 46;

/// Why an interface's XDP_TX frames are taken not to reach the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undelivered {
    /// A veth whose peer runs no XDP program in driver mode: the peer drops what XDP sends.
    PeerWithoutXdp { peer: u32 },
    /// The driver counted XDP_TX errors since the interface was first looked at.
    TxErrors { errors: u64 },
}

impl fmt::Display for Undelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Undelivered::PeerWithoutXdp { peer } => {
                write!(f, "its veth peer (ifindex {peer}) runs no XDP program in driver mode")
            }
            Undelivered::TxErrors { errors } => write!(f, "the driver counted {errors} XDP_TX errors"),
        }
    }
}

/// What is known of a veth's peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// Not a veth (or its peer could not be read): only the counters tell.
    Unknown,
    /// A veth whose peer runs XDP in driver mode.
    WithXdp,
    /// A veth whose peer does not.
    WithoutXdp(u32),
}

/// The looks at each served interface, and the verdicts so far.
#[derive(Default)]
pub struct XdpTxCheck {
    /// Per interface: its XDP_TX errors at the first look (None: it has no such counter).
    first_errors: HashMap<String, Option<u64>>,
}

impl XdpTxCheck {
    /// Looks at one interface: why its XDP_TX frames do not reach the link, if they do not.
    pub fn check(&mut self, name: &str, ifindex: u32) -> Option<Undelivered> {
        if let Peer::WithoutXdp(peer) = peer(ifindex) {
            return Some(Undelivered::PeerWithoutXdp { peer });
        }
        let now = ethtool_stats(name).ok().and_then(|(names, values)| tx_errors(&names, &values));
        let first = self.first_errors.entry(name.to_string()).or_insert(now);
        // A first look that read nothing, or counters that went back (the interface made
        // anew): counted from now.
        if first.is_none() || now.zip(*first).is_some_and(|(n, f)| n < f) {
            *first = now;
        }
        grown(*first, now).map(|errors| Undelivered::TxErrors { errors })
    }
}

/// How many XDP_TX errors were counted since `first`, if any were.
fn grown(first: Option<u64>, now: Option<u64>) -> Option<u64> {
    let errors = now?.checked_sub(first?)?;
    (errors > 0).then_some(errors)
}

/// The sum of the driver's XDP_TX error counters among its ethtool statistics (veth's
/// `rx_queue_N_xdp_tx_errors`, mlx5's `rx_xdp_tx_err`, ...); None if it has none.
fn tx_errors(names: &[String], values: &[u64]) -> Option<u64> {
    let mut counters = names.iter().zip(values).filter(|(n, _)| n.contains("xdp_tx_err")).peekable();
    counters.peek()?;
    Some(counters.map(|(_, v)| *v).sum())
}

/// ethtool statistics names as the kernel lays them out: `ETH_GSTRING_LEN` bytes each,
/// NUL-padded.
fn stat_names(raw: &[u8]) -> Vec<String> {
    raw.chunks(ETH_GSTRING_LEN)
        .map(|c| String::from_utf8_lossy(c.split(|b| *b == 0).next().unwrap_or_default()).into_owned())
        .collect()
}

/// Whether the veth `ifindex`'s peer runs XDP in driver mode.
fn peer(ifindex: u32) -> Peer {
    let Ok(socket) = route_socket() else { return Peer::Unknown };
    let Ok(Some(link)) = get_link(&socket, ifindex, None) else { return Peer::Unknown };
    let is_veth = link.attributes.iter().any(|a| {
        matches!(a, LinkAttribute::LinkInfo(infos) if infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth))))
    });
    let peer_index = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Link(index) => Some(*index),
        _ => None,
    });
    let netnsid = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkNetNsId(id) => Some(*id),
        _ => None,
    });
    let (true, Some(peer_index)) = (is_veth, peer_index) else { return Peer::Unknown };
    match get_link(&socket, peer_index, netnsid) {
        Ok(Some(peer)) if runs_xdp_in_driver(&peer) => Peer::WithXdp,
        Ok(Some(_)) => Peer::WithoutXdp(peer_index),
        _ => Peer::Unknown,
    }
}

fn runs_xdp_in_driver(link: &LinkMessage) -> bool {
    link.attributes.iter().any(|a| {
        matches!(a, LinkAttribute::Xdp(xdp) if xdp.iter().any(|x| matches!(x,
            LinkXdp::Attached(XdpAttached::Driver) | LinkXdp::DrvProgId(1..))))
    })
}

fn route_socket() -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    Ok(socket)
}

/// RTM_GETLINK for one link, in the namespace with id `netnsid` when given.
fn get_link(socket: &Socket, index: u32, netnsid: Option<i32>) -> io::Result<Option<LinkMessage>> {
    let mut link = LinkMessage::default();
    link.header.index = index;
    if let Some(id) = netnsid {
        link.attributes.push(LinkAttribute::Other(DefaultNla::new(IFLA_TARGET_NETNSID, id.to_ne_bytes().to_vec())));
    }
    let mut request = NetlinkMessage::from(RouteNetlinkMessage::GetLink(link));
    request.header.flags = NLM_F_REQUEST;
    request.finalize();
    let mut buf = vec![0; request.buffer_len()];
    request.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let (reply, _) = socket.recv_from_full()?;
    let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply).map_err(io::Error::other)?;
    Ok(match reply.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => Some(link),
        _ => None,
    })
}

// linux/ethtool.h
const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;
/// Size of `struct ethtool_drvinfo`, and where its `n_stats` is.
const DRVINFO_LEN: usize = 196;
const DRVINFO_N_STATS: usize = 180;
/// The kernel writes as many statistics as the interface has when it answers, whatever the
/// request said: the buffers leave room for them to double between two calls (queues added
/// meanwhile), and for this many more.
const SLACK: usize = 1024;

/// The interface's ethtool statistics (`ethtool -S`): names and values.
fn ethtool_stats(name: &str) -> io::Result<(Vec<String>, Vec<u64>)> {
    // SAFETY: socket(2) with constant arguments; the descriptor it returns is owned here.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut drvinfo = [0u8; DRVINFO_LEN];
    drvinfo[..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
    ethtool(&fd, name, &mut drvinfo)?;
    let n = u32_at(&drvinfo, DRVINFO_N_STATS) as usize;

    let room = 2 * n + SLACK;
    let mut strings = vec![0u8; 12 + room * ETH_GSTRING_LEN];
    strings[..4].copy_from_slice(&ETHTOOL_GSTRINGS.to_ne_bytes());
    strings[4..8].copy_from_slice(&ETH_SS_STATS.to_ne_bytes());
    strings[8..12].copy_from_slice(&(n as u32).to_ne_bytes());
    ethtool(&fd, name, &mut strings)?;
    let names_n = (u32_at(&strings, 8) as usize).min(room);

    let mut stats = vec![0u8; 8 + room * 8];
    stats[..4].copy_from_slice(&ETHTOOL_GSTATS.to_ne_bytes());
    stats[4..8].copy_from_slice(&(n as u32).to_ne_bytes());
    ethtool(&fd, name, &mut stats)?;
    let values_n = (u32_at(&stats, 4) as usize).min(room);
    if names_n != values_n {
        return Err(io::Error::other("the statistics changed between two reads"));
    }
    let names = stat_names(&strings[12..12 + names_n * ETH_GSTRING_LEN]);
    let values = stats[8..8 + values_n * 8]
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
        .collect();
    Ok((names, values))
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap_or_default())
}

/// One SIOCETHTOOL request on `name`, `data` holding the command and room for the answer.
fn ethtool(fd: &OwnedFd, name: &str, data: &mut [u8]) -> io::Result<()> {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= ifr.ifr_name.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = data.as_mut_ptr().cast();
    // SAFETY: `ifr` names the interface and points at `data`, which outlives the call and is
    // as large as the command's answer can be (the callers size it with room to spare).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A veth's statistics names: queue 0's as `ethtool -S` printed them on kernel 6.18, and a
    /// second queue's, as a veth with two names them.
    const VETH: [&str; 15] = [
        "peer_ifindex",
        "rx_queue_0_xdp_packets",
        "rx_queue_0_xdp_bytes",
        "rx_queue_0_drops",
        "rx_queue_0_xdp_redirect",
        "rx_queue_0_xdp_drops",
        "rx_queue_0_xdp_tx",
        "rx_queue_0_xdp_tx_errors",
        "tx_queue_0_xdp_xmit",
        "tx_queue_0_xdp_xmit_errors",
        "rx_queue_1_xdp_packets",
        "rx_queue_1_xdp_tx",
        "rx_queue_1_xdp_tx_errors",
        "tx_queue_1_xdp_xmit",
        "tx_queue_1_xdp_xmit_errors",
    ];

    fn raw(names: &[&str]) -> Vec<u8> {
        let mut raw = vec![0u8; names.len() * ETH_GSTRING_LEN];
        for (chunk, n) in raw.chunks_mut(ETH_GSTRING_LEN).zip(names) {
            chunk[..n.len()].copy_from_slice(n.as_bytes());
        }
        raw
    }

    #[test]
    fn xdp_tx_errors_are_summed_over_queues_and_nothing_else() {
        let names = stat_names(&raw(&VETH));
        assert_eq!(names[7], "rx_queue_0_xdp_tx_errors");
        let mut values = vec![1000u64; VETH.len()];
        values[7] = 13;
        values[12] = 2;
        assert_eq!(tx_errors(&names, &values), Some(15), "xdp_xmit_errors (frames redirected in) are not ours");
    }

    #[test]
    fn other_drivers_count_under_their_own_names() {
        let names = stat_names(&raw(&["rx_xdp_tx_xmit", "rx_xdp_tx_err", "rx_xdp_drop"]));
        assert_eq!(tx_errors(&names, &[5, 3, 9]), Some(3));
        let names = stat_names(&raw(&["rx_packets", "tx_packets"]));
        assert_eq!(tx_errors(&names, &[5, 3]), None, "no counter: nothing known");
    }

    #[test]
    fn only_errors_counted_since_the_first_look_count() {
        assert_eq!(grown(Some(13), Some(13)), None);
        assert_eq!(grown(Some(13), Some(14)), Some(1));
        assert_eq!(grown(None, Some(4)), None, "no counter at the first look");
        assert_eq!(grown(Some(4), None), None, "unreadable now");
        assert_eq!(grown(Some(9), Some(2)), None, "reset (the interface made anew)");
    }
}
