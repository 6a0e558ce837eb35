//! The self-contained demo: two small IPv6-only backends in this process, one plain HTTP (fed
//! PROXY v1) and one HTTPS with a certificate made at start (fed PROXY v2), and a configuration
//! that routes to them from loopback listeners.

use core::net::{Ipv6Addr, SocketAddr};
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::sync::Arc;

use proxy_proto::tokio::{ReadConfig, read_header};
use proxy_proto::{Policy, TrustPolicy};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::config::{self, Config};

/// Names the demo routes on.
pub const PLAIN_HOST: &str = "www.demo.test";
pub const SECURE_HOST: &str = "secure.demo.test";

/// The demo's backends, running, and the configuration that points at them.
pub struct Demo {
    pub config: Config,
    pub http_port: u16,
    pub tls_port: u16,
    pub plain: SocketAddr,
    pub secure: SocketAddr,
}

/// Starts the backends and writes the configuration. Prefers ports 8080 and 8443 for the proxy,
/// taking free ones when those are busy.
pub async fn start() -> std::io::Result<Demo> {
    let plain = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).await?;
    let secure = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).await?;
    let (plain_addr, secure_addr) = (plain.local_addr()?, secure.local_addr()?);
    let tls = tls_acceptor().map_err(std::io::Error::other)?;
    tokio::spawn(serve_backend(plain, "plain", None));
    tokio::spawn(serve_backend(secure, "secure", Some(tls)));
    let http_port = free_port(8080);
    let tls_port = free_port(8443);
    let text = format!(
        r#"
[[listen]]
addresses = ["127.0.0.1:{http_port}", "[::1]:{http_port}"]
mode = "http"
peek_timeout = "5s"

[[listen]]
addresses = ["127.0.0.1:{tls_port}", "[::1]:{tls_port}"]
mode = "tls"
peek_timeout = "5s"

[[route]]
hosts = ["{PLAIN_HOST}"]
proxy_protocol = "v1"
backends = [{{ address = "{plain_addr}" }}]
health = {{ interval = "2s", timeout = "1s" }}

[[route]]
hosts = ["{SECURE_HOST}"]
proxy_protocol = "v2"
backends = [{{ address = "{secure_addr}" }}]
health = {{ interval = "2s", timeout = "1s" }}
"#
    );
    let config = config::parse(&text)
        .map_err(|e| std::io::Error::other(format!("demo configuration: {e:?}")))?;
    Ok(Demo {
        config,
        http_port,
        tls_port,
        plain: plain_addr,
        secure: secure_addr,
    })
}

impl Demo {
    pub fn instructions(&self) -> String {
        let (h, t) = (self.http_port, self.tls_port);
        format!(
            "sixgate demo: the proxy listens on\n  \
             http  127.0.0.1:{h} and [::1]:{h}   routes by Host\n  \
             tls   127.0.0.1:{t} and [::1]:{t}   routes by SNI; TLS passes through, never decrypted\n\
             backends (IPv6 only): plain HTTP on {} (sent PROXY v1), HTTPS on {} (sent PROXY v2)\n\n\
             Try:\n  \
             curl -H 'Host: {PLAIN_HOST}' http://127.0.0.1:{h}/\n  \
             curl -k --resolve {SECURE_HOST}:{t}:127.0.0.1 https://{SECURE_HOST}:{t}/\n  \
             curl -s -H 'Host: {PLAIN_HOST}' http://127.0.0.1:{h}/proxy-header   # the PROXY header the backend got\n  \
             curl -i -H 'Host: unknown.test' http://127.0.0.1:{h}/                # no route: 421\n\n\
             Ctrl-C stops it.\n",
            self.plain, self.secure
        )
    }
}

fn free_port(preferred: u16) -> u16 {
    let ok = |p: u16| {
        std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            && std::net::TcpListener::bind(("::1", p)).is_ok()
    };
    if ok(preferred) {
        return preferred;
    }
    (0..20)
        .filter_map(|_| {
            std::net::TcpListener::bind(("127.0.0.1", 0))
                .ok()?
                .local_addr()
                .ok()
                .map(|a| a.port())
        })
        .find(|&p| ok(p))
        .unwrap_or(preferred)
}

fn tls_acceptor() -> Result<tokio_rustls::TlsAcceptor, Box<dyn core::error::Error + Send + Sync>> {
    let cert =
        rcgen::generate_simple_self_signed(vec![SECURE_HOST.to_string(), "localhost".to_string()])?;
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

/// A backend: takes the PROXY header (only the local proxy may send one), then answers every
/// request with what it learned about the client.
async fn serve_backend(
    listener: TcpListener,
    name: &'static str,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let loopback = [
        "127.0.0.0/8".parse().expect("a network"),
        "::1".parse().expect("an address"),
    ];
    let trust = Arc::new(
        loopback
            .into_iter()
            .fold(TrustPolicy::new(Policy::Reject), |t, net| {
                t.rule(net, Policy::Require)
            }),
    );
    loop {
        let Ok((mut stream, peer)) = listener.accept().await else {
            // Out of descriptors: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (trust, tls) = (Arc::clone(&trust), tls.clone());
        tokio::spawn(async move {
            let config = ReadConfig {
                timeout: Duration::from_secs(5),
                ..ReadConfig::default()
            };
            let Ok(accepted) = read_header(&mut stream, peer, &trust, &config).await else {
                return;
            };
            let header_text = accepted
                .header()
                .map_or_else(|| "none".to_string(), |h| describe(&h.header()));
            let client = accepted.client_address().unwrap_or(peer);
            let body = format!(
                "hello from the {name} demo backend\nclient (from the PROXY header): {client}\nPROXY header: {header_text}\n"
            );
            let io = Prefixed {
                prefix: accepted.rest().to_vec(),
                at: 0,
                inner: stream,
            };
            match tls {
                Some(acceptor) => {
                    if let Ok(tls_stream) = acceptor.accept(io).await {
                        answer(tls_stream, &body).await;
                    }
                }
                None => answer(io, &body).await,
            }
        });
    }
}

fn describe(h: &proxy_proto::Header<'_>) -> String {
    let mut s = format!("{:?} {:?} {:?}", h.version(), h.command(), h.addresses());
    if let Some(a) = h.authority() {
        s += &format!(" authority={a}");
    }
    s
}

/// Answers HTTP/1 requests on one connection (keep-alive) until the client goes.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, body: &str) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() > 64 * 1024 {
                return;
            }
        }
        let end = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(0, |p| p + 4);
        buf.drain(..end);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if io.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A stream that first yields bytes already read (those after the PROXY header).
struct Prefixed {
    prefix: Vec<u8>,
    at: usize,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
