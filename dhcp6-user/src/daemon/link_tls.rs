//! TLS on the backup link (rustls, with ring): both ends present a certificate, and each
//! accepts exactly one, the peer's, pinned in its configuration. No certificate authority is
//! involved: a certificate is taken when its bytes are the pinned certificate's, whatever its
//! names and dates, and the handshake's signature proves the peer holds its key.

use anyhow::{Context, Result};
use dhcp6_engine::relay::standby::LinkTls;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::tls::{PinnedTls, TlsFiles};

/// One end of a TLS backup link: connecting or listening, as the service says.
#[derive(Clone)]
pub enum LinkTlsEnd {
    Connects(TlsConnector),
    Listens(TlsAcceptor),
}

/// A backup link's stream: TLS over TCP, or TCP alone.
pub type LinkStream = Box<dyn LinkIo>;

/// What a backup link's stream does.
pub trait LinkIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> LinkIo for T {}

impl LinkTlsEnd {
    /// The TLS end of a service that `connects` (else listens), from its files.
    pub fn load(tls: &LinkTls, connects: bool) -> Result<LinkTlsEnd> {
        let files = TlsFiles {
            certificate: tls.certificate.clone(),
            key: tls.key.clone(),
            peer_certificate: tls.peer_certificate.clone(),
        };
        let pinned = PinnedTls::load(&files).context("the backup link's TLS")?;
        Ok(if connects { LinkTlsEnd::Connects(pinned.connector) } else { LinkTlsEnd::Listens(pinned.acceptor) })
    }

    /// The TLS handshake over `tcp` to or from `peer`.
    pub async fn handshake(&self, tcp: TcpStream, peer: std::net::Ipv6Addr) -> std::io::Result<LinkStream> {
        match self {
            LinkTlsEnd::Connects(c) => {
                let name = ServerName::IpAddress(std::net::IpAddr::V6(peer).into());
                Ok(Box::new(c.connect(name, tcp).await?))
            }
            LinkTlsEnd::Listens(a) => Ok(Box::new(a.accept(tcp).await?)),
        }
    }
}
