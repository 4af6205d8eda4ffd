//! The requestor's side of leasequery, the I/O only: a LEASEQUERY sent over UDP (RFC 5007)
//! and its reply read, or sent over a TCP connection (RFC 5460, two-octet length framing) and
//! every message of the answer read until LEASEQUERY-DONE. What to ask and what the answers
//! mean are the callers' (`dhcp6d leasequery`, the relay's rebuild).

use std::{
    net::{SocketAddr, SocketAddrV6},
    time::Duration,
};

use dhcp6_codec::{
    failover::{encode_framed_bytes, FrameReader, MAX_FRAME_LEN},
    MessageType,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UdpSocket},
};

/// Why a query got no whole answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the server closed the connection before LEASEQUERY-DONE")]
    Closed,
    #[error("the answer's framing is broken: {0}")]
    Framing(dhcp6_codec::FramingError),
    #[error("the query does not fit a frame")]
    TooLong,
}

/// Sends `query` to `server` over UDP and waits up to `wait` for the reply with its
/// transaction id (other datagrams are skipped).
pub async fn udp(server: SocketAddrV6, query: &[u8], wait: Duration) -> Result<Vec<u8>, QueryError> {
    let local = SocketAddrV6::new(std::net::Ipv6Addr::UNSPECIFIED, 0, 0, server.scope_id());
    let socket = UdpSocket::bind(SocketAddr::V6(local)).await?;
    socket.send_to(query, SocketAddr::V6(server)).await?;
    let xid = query.get(1..4).map(<[u8]>::to_vec).unwrap_or_default();
    let answer = async {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, _) = socket.recv_from(&mut buf).await?;
            let reply = &buf[..n];
            if reply.first() == Some(&(MessageType::LeasequeryReply as u8)) && reply.get(1..4) == Some(&xid[..]) {
                return Ok::<_, QueryError>(reply.to_vec());
            }
        }
    };
    tokio::time::timeout(wait, answer).await.map_err(|_| QueryError::Timeout(wait))?
}

/// Sends `query` to `server` over TCP and returns every message of the answer, up to and
/// with LEASEQUERY-DONE (or what came before the server closed); `wait` bounds the
/// connection and each read.
pub async fn bulk(server: SocketAddrV6, query: &[u8], wait: Duration) -> Result<Vec<Vec<u8>>, QueryError> {
    let mut stream = tokio::time::timeout(wait, TcpStream::connect(SocketAddr::V6(server)))
        .await
        .map_err(|_| QueryError::Timeout(wait))??;
    let _ = stream.set_nodelay(true);
    let mut framed = Vec::new();
    encode_framed_bytes(query, &mut framed).map_err(|_| QueryError::TooLong)?;
    stream.write_all(&framed).await?;
    let mut reader = FrameReader::new(MAX_FRAME_LEN);
    let mut messages = Vec::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        while let Some(frame) = reader.next_frame() {
            let frame = frame.map_err(QueryError::Framing)?.to_vec();
            let done = frame.first() == Some(&(MessageType::LeasequeryDone as u8));
            messages.push(frame);
            if done {
                return Ok(messages);
            }
        }
        let n = tokio::time::timeout(wait, stream.read(&mut buf)).await.map_err(|_| QueryError::Timeout(wait))??;
        if n == 0 {
            // A server may close after a reply that ends the query (an error status) without
            // LEASEQUERY-DONE.
            return if messages.is_empty() { Err(QueryError::Closed) } else { Ok(messages) };
        }
        reader.push(&buf[..n]);
    }
}
