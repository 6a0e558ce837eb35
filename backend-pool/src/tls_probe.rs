//! A TLS handshake probe (feature `tls-check`, HAProxy's `check-ssl`): rustls driven by hand over
//! a tokio `TcpStream` (`ClientConnection` with `read_tls`/`write_tls`), about forty lines that
//! need no further dependency.
//!
//! The certificate is not verified: the check asks whether the TLS service answers, not whether
//! it is trusted (a proxy in front of its own backends often sees self-signed or internal
//! certificates). The handshake's signatures are verified, with the provider's algorithms, so the
//! backend holds the private key of the certificate it shows and the handshake is a real one.

use core::net::SocketAddr;
use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::probe::address;
use crate::{Backend, PoolError, Probe, ProbeFuture};

/// Healthy when a TLS handshake (1.3 or 1.2) with the backend completes: connect, handshake,
/// send close_notify, close. Any certificate is accepted; the handshake's signatures must verify.
///
/// ```
/// use backend_pool::TlsHandshake;
///
/// let with_sni = TlsHandshake::new(Some("www.example.com"))?;
/// let by_address = TlsHandshake::new(None)?; // no SNI
/// # let _ = (with_sni, by_address);
/// # Ok::<(), backend_pool::PoolError>(())
/// ```
#[derive(Clone, Debug)]
pub struct TlsHandshake {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl TlsHandshake {
    /// A handshake that sends `server_name` as SNI (a DNS name; an IP address literal is used
    /// as the name but, as in any TLS client, not sent). `None`: the backend's address is the
    /// name, and no SNI is sent. Refused when the name is neither a DNS name nor an address.
    pub fn new(server_name: Option<&str>) -> Result<Self, PoolError> {
        let server_name = server_name
            .map(|name| ServerName::try_from(name.to_owned()))
            .transpose()
            .map_err(|_| PoolError::InvalidConfig("server_name is not a DNS name or address"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let any = AnyCertificate(provider.signature_verification_algorithms);
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|_| PoolError::InvalidConfig("no TLS version in the crypto provider"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(any))
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
            server_name,
        })
    }

    async fn handshake(&self, addr: SocketAddr) -> io::Result<()> {
        let name = self
            .server_name
            .clone()
            .unwrap_or_else(|| ServerName::from(addr.ip()));
        let mut tls =
            ClientConnection::new(Arc::clone(&self.config), name).map_err(io::Error::other)?;
        let mut tcp = TcpStream::connect(addr).await?;
        let (mut incoming, mut outgoing) = (vec![0u8; 16 * 1024], Vec::new());
        while tls.is_handshaking() {
            flush(&mut tls, &mut tcp, &mut outgoing).await?;
            let n = tcp.read(&mut incoming).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let mut rest = &incoming[..n];
            while !rest.is_empty() {
                tls.read_tls(&mut rest)?;
                tls.process_new_packets().map_err(io::Error::other)?;
            }
        }
        tls.send_close_notify();
        flush(&mut tls, &mut tcp, &mut outgoing).await
    }
}

/// Writes whatever rustls has queued.
async fn flush(
    tls: &mut ClientConnection,
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    buf.clear();
    while tls.wants_write() {
        tls.write_tls(buf)?;
    }
    tcp.write_all(buf).await
}

impl Probe for TlsHandshake {
    fn probe<'a>(&'a self, backend: &'a Backend) -> ProbeFuture<'a> {
        Box::pin(async move {
            match address(backend) {
                Some(addr) => self.handshake(addr).await.is_ok(),
                None => false,
            }
        })
    }

    fn judges(&self, backend: &Backend) -> bool {
        address(backend).is_some()
    }
}

/// Accepts any certificate; verifies the handshake's signatures with the provider's algorithms.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;
    use rustls::SupportedProtocolVersion;
    use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
    use rustls::sign::CertifiedKey;
    use rustls::version::{TLS12, TLS13};
    use std::sync::Mutex;
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    /// One certificate and key for every handshake; records the SNI each client sent.
    #[derive(Debug)]
    struct Fixed {
        key: Arc<CertifiedKey>,
        sni: Mutex<Vec<Option<String>>>,
    }

    impl ResolvesServerCert for Fixed {
        fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            let sni = hello.server_name().map(str::to_owned);
            self.sni.lock().unwrap().push(sni);
            Some(Arc::clone(&self.key))
        }
    }

    /// A self-signed certificate for `name`, and its key (or another key, whose signatures the
    /// certificate does not vouch for).
    fn certified(name: &str, matching_key: bool) -> Arc<CertifiedKey> {
        let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let key = if matching_key {
            made.key_pair
        } else {
            rcgen::KeyPair::generate().unwrap()
        };
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let signer = rustls::crypto::ring::sign::any_supported_type(&der).unwrap();
        Arc::new(CertifiedKey::new(vec![made.cert.der().clone()], signer))
    }

    /// A tokio-rustls server offering `versions`; every accepted connection is handshaken and
    /// read until the client closes.
    async fn tls_backend(
        versions: &[&'static SupportedProtocolVersion],
        key: Arc<CertifiedKey>,
    ) -> (Backend, Arc<Fixed>) {
        let fixed = Arc::new(Fixed {
            key,
            sni: Mutex::default(),
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(fixed.clone());
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tls.read_to_end(&mut Vec::new()).await;
                    }
                });
            }
        });
        (Backend::new(addr, 1), fixed)
    }

    async fn verdict(probe: &TlsHandshake, backend: &Backend) -> Option<bool> {
        tokio::time::timeout(Duration::from_secs(2), probe.probe(backend))
            .await
            .ok()
    }

    #[tokio::test]
    async fn completes_tls13_and_tls12_handshakes_with_a_self_signed_certificate() {
        let sni = TlsHandshake::new(Some("backend.test")).unwrap();
        let bare = TlsHandshake::new(None).unwrap();
        for version in [&TLS13, &TLS12] {
            let (backend, seen) = tls_backend(&[version], certified("other.test", true)).await;
            assert_eq!(verdict(&sni, &backend).await, Some(true), "{version:?}");
            assert_eq!(verdict(&bare, &backend).await, Some(true), "{version:?}");
            let seen = seen.sni.lock().unwrap().clone();
            assert_eq!(seen, [Some("backend.test".to_owned()), None]);
        }
    }

    #[tokio::test]
    async fn fails_on_a_forged_signature_plain_tcp_silence_and_refusal() {
        for version in [&TLS13, &TLS12] {
            let (forged, _) = tls_backend(&[version], certified("f.test", false)).await;
            let probe = TlsHandshake::new(Some("f.test")).unwrap();
            assert_eq!(verdict(&probe, &forged).await, Some(false), "{version:?}");
        }
        let probe = TlsHandshake::new(None).unwrap();
        // A plain TCP service that answers in clear text, then one that never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain = Backend::new(listener.local_addr().unwrap(), 1);
        let silent_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = Backend::new(silent_listener.local_addr().unwrap(), 1);
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let _held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = silent_listener.accept().await {
                held.push(tcp);
            }
        });
        assert_eq!(verdict(&probe, &plain).await, Some(false));
        assert_eq!(verdict(&probe, &silent).await, None, "the timeout decides");
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            Backend::new(l.local_addr().unwrap(), 1)
        };
        assert_eq!(verdict(&probe, &closed).await, Some(false));
    }

    #[test]
    fn bad_names_are_refused_and_named_backends_not_judged() {
        assert!(matches!(
            TlsHandshake::new(Some("not a name")),
            Err(PoolError::InvalidConfig(_))
        ));
        assert!(TlsHandshake::new(Some("2001:db8::1")).is_ok());
        let probe = TlsHandshake::new(None).unwrap();
        assert!(!probe.judges(&Backend::new("web-1", 1)));
    }
}
