//! TLS on the backup link (rustls, with ring): both ends present a certificate, and each
//! accepts exactly one, the peer's, pinned in its configuration. No certificate authority is
//! involved: a certificate is taken when its bytes are the pinned certificate's, whatever its
//! names and dates, and the handshake's signature proves the peer holds its key.

use std::{fmt, path::Path, sync::Arc};

use anyhow::{Context, Result};
use dhcp6_engine::relay::standby::LinkTls;
use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider},
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    server::danger::{ClientCertVerified, ClientCertVerifier},
    DigitallySignedStruct, DistinguishedName, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The peer's certificate, pinned: the only one either end of the link takes.
struct Pinned {
    certificate: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for Pinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the backup link's pinned peer certificate")
    }
}

impl Pinned {
    fn check(&self, presented: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if presented.as_ref() == self.certificate.as_ref() {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn tls12(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(m, c, d, &self.provider.signature_verification_algorithms)
    }

    fn tls13(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(m, c, d, &self.provider.signature_verification_algorithms)
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity).map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(m, c, d)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

impl ClientCertVerifier for Pinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity).map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(m, c, d)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

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

fn certificate(path: &Path) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_file(path).with_context(|| format!("reading the certificate in {}", path.display()))
}

impl LinkTlsEnd {
    /// The TLS end of a service that `connects` (else listens), from its files.
    pub fn load(tls: &LinkTls, connects: bool) -> Result<LinkTlsEnd> {
        // ring rather than aws-lc-rs (whose build needs cmake and a C toolchain); rustls marks
        // ring's provider deprecated for lacking post-quantum key exchange, which this link
        // between two pinned peers does without.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let own = vec![certificate(&tls.certificate)?];
        let key = PrivateKeyDer::from_pem_file(&tls.key)
            .with_context(|| format!("reading the private key in {}", tls.key.display()))?;
        let pinned = Arc::new(Pinned { certificate: certificate(&tls.peer_certificate)?, provider: provider.clone() });
        Ok(if connects {
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13])
                .context("TLS 1.3 with ring")?
                .dangerous()
                .with_custom_certificate_verifier(pinned)
                .with_client_auth_cert(own, key)
                .context("the backup link's certificate and key")?;
            LinkTlsEnd::Connects(TlsConnector::from(Arc::new(config)))
        } else {
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13])
                .context("TLS 1.3 with ring")?
                .with_client_cert_verifier(pinned)
                .with_single_cert(own, key)
                .context("the backup link's certificate and key")?;
            LinkTlsEnd::Listens(TlsAcceptor::from(Arc::new(config)))
        })
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
