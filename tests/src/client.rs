//! A DHCPv6 test client of our own, for what real clients do not offer: many clients at
//! once, and a record of every Reply it was given, to check the server against.

use std::{
    collections::HashMap,
    net::{Ipv6Addr, SocketAddrV6, UdpSocket},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use dhcp6_codec::{
    option::{DhcpOption, IaNa, Options},
    ClientMessage, Duid, Message, MessageType, TransactionId,
};

/// What a client was told: its address and when the server said it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub duid: Vec<u8>,
    pub address: Ipv6Addr,
    /// Unix seconds: the send time of the request plus the valid lifetime.
    pub expires: u64,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// DUID-LL of client `n`.
pub fn client_duid(n: u32) -> Vec<u8> {
    let b = n.to_be_bytes();
    vec![0, 3, 0, 1, 0x02, 0xcc, b[0], b[1], b[2], b[3]]
}

/// A client socket on port 546 of `interface` (call inside the client's namespace).
pub struct TestClient {
    socket: UdpSocket,
    server: SocketAddrV6,
    xid: u32,
}

impl TestClient {
    pub fn new(interface: &str) -> TestClient {
        let index = dhcp6_user::daemon::socket::if_index(interface).expect("client interface");
        let socket = UdpSocket::bind("[::]:546").expect("binding port 546");
        socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        TestClient { socket, server: SocketAddrV6::new("ff02::1:2".parse().unwrap(), 547, 0, index), xid: 0 }
    }

    /// Sends `options` as `msg_type` and waits for the matching reply.
    fn exchange(&mut self, msg_type: MessageType, options: Vec<DhcpOption<'_>>) -> Option<Vec<u8>> {
        self.xid = (self.xid + 1) & 0xff_ffff;
        let msg = Message::Client(ClientMessage {
            msg_type,
            transaction_id: TransactionId::from_u32(self.xid),
            options: Options(options),
        });
        self.socket.send_to(&msg.to_vec().ok()?, self.server).ok()?;
        let mut buf = [0u8; 2048];
        loop {
            let (n, _) = self.socket.recv_from(&mut buf).ok()?;
            if Message::decode(&buf[..n]).ok().and_then(|m| match m {
                Message::Client(c) => Some(c.transaction_id.as_u32()),
                Message::Relay(_) => None,
            }) == Some(self.xid)
            {
                return Some(buf[..n].to_vec());
            }
        }
    }

    /// Two-message exchange (Rapid Commit) for client `duid`; what was granted, and the server
    /// DUID, when a Reply with an address came.
    pub fn rapid_solicit(&mut self, duid: &[u8]) -> Option<(Granted, Vec<u8>)> {
        let sent = unix_now();
        let options = vec![
            DhcpOption::ClientId(Duid::new(duid).ok()?),
            DhcpOption::IaNa(IaNa { iaid: 1, t1: 0, t2: 0, options: Options::new() }),
            DhcpOption::RapidCommit,
        ];
        let reply = self.exchange(MessageType::Solicit, options)?;
        granted(&reply, duid, sent)
    }

    /// The status code in the IA_NA of the answer to a Rapid Commit Solicit for `duid`
    /// (NoAddrsAvail is 2), 0 (Success) when it has none; `None` when nothing answered.
    pub fn ia_na_status(&mut self, duid: &[u8]) -> Option<u16> {
        let options = vec![
            DhcpOption::ClientId(Duid::new(duid).ok()?),
            DhcpOption::IaNa(IaNa { iaid: 1, t1: 0, t2: 0, options: Options::new() }),
            DhcpOption::RapidCommit,
        ];
        let reply = self.exchange(MessageType::Solicit, options)?;
        let msg = Message::decode(&reply).ok()?;
        msg.options().iter().find_map(|o| match o {
            DhcpOption::IaNa(ia) => Some(ia.options.status().map_or(0, |s| s.status.0)),
            _ => None,
        })
    }

    /// Renews `g` with the server that granted it.
    pub fn renew(&mut self, g: &Granted, server_duid: &[u8]) -> Option<Granted> {
        let sent = unix_now();
        let options = vec![
            DhcpOption::ClientId(Duid::new(&g.duid).ok()?),
            DhcpOption::ServerId(Duid::new(server_duid).ok()?),
            DhcpOption::IaNa(IaNa {
                iaid: 1,
                t1: 0,
                t2: 0,
                options: Options(vec![DhcpOption::IaAddr(dhcp6_codec::option::IaAddr {
                    address: g.address,
                    preferred_lifetime: 0,
                    valid_lifetime: 0,
                    options: Options::new(),
                })]),
            }),
        ];
        let reply = self.exchange(MessageType::Renew, options)?;
        granted(&reply, &g.duid, sent).map(|(g, _)| g)
    }
}

/// The address in a Reply and its expiry, with the server's DUID.
fn granted(reply: &[u8], duid: &[u8], sent: u64) -> Option<(Granted, Vec<u8>)> {
    let msg = Message::decode(reply).ok()?;
    if msg.msg_type() != MessageType::Reply {
        return None;
    }
    let server = msg.options().server_id()?.as_bytes().to_vec();
    msg.options().iter().find_map(|o| match o {
        DhcpOption::IaNa(ia) => ia.options.iter().find_map(|a| match a {
            DhcpOption::IaAddr(a) if a.valid_lifetime > 0 => Some((
                Granted { duid: duid.to_vec(), address: a.address, expires: sent + u64::from(a.valid_lifetime) },
                server.clone(),
            )),
            _ => None,
        }),
        _ => None,
    })
}

/// The latest grant per client.
pub type Record = HashMap<Vec<u8>, Granted>;
