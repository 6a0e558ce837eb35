//! The self-contained demo: two small IPv6-only backends in this process, one plain HTTP (fed
//! PROXY v1) and one HTTPS with a certificate made at start (fed PROXY v2), and a configuration
//! that routes to them from loopback listeners.

use core::net::{Ipv6Addr, SocketAddr};
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::sync::Arc;

use proxy_proto::tokio::read_header;
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
name = "http"
addresses = ["127.0.0.1:{http_port}", "[::1]:{http_port}"]
mode = "http"
peek_timeout = "5s"

[[listen]]
name = "https"
addresses = ["127.0.0.1:{tls_port}", "[::1]:{tls_port}"]
mode = "tls"
peek_timeout = "5s"

[[route]]
hosts = ["{PLAIN_HOST}"]
listeners = ["http"]
proxy_protocol = "v1"
backends = [{{ address = "{plain_addr}" }}]
health = {{ interval = "2s", timeout = "1s" }}

[[route]]
hosts = ["{SECURE_HOST}"]
listeners = ["https"]
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
    /// What the demo prints at start: its addresses, and five commands to try (the README shows
    /// the same five).
    pub fn instructions(&self) -> String {
        let (h, t) = (self.http_port, self.tls_port);
        let commands = [
            (
                format!("curl -H 'Host: {PLAIN_HOST}' http://127.0.0.1:{h}/"),
                "plain HTTP, routed by Host",
            ),
            (
                format!("curl -k --resolve {SECURE_HOST}:{t}:127.0.0.1 https://{SECURE_HOST}:{t}/"),
                "TLS, routed by SNI",
            ),
            (
                format!("curl -s -H 'Host: {PLAIN_HOST}' http://127.0.0.1:{h}/proxy-header"),
                "the PROXY header the backend got",
            ),
            (
                format!("curl -i -H 'Host: unknown.test' http://127.0.0.1:{h}/"),
                "no route: 421",
            ),
            (
                format!("curl -k --resolve {PLAIN_HOST}:{t}:127.0.0.1 https://{PLAIN_HOST}:{t}/"),
                "its route serves the http listener only: TLS alert unrecognized_name",
            ),
        ];
        let width = commands.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
        let mut text = format!(
            "sixgate demo: the proxy listens on\n  \
             http  127.0.0.1:{h} and [::1]:{h}   routes by Host\n  \
             tls   127.0.0.1:{t} and [::1]:{t}   routes by SNI; TLS passes through, never decrypted\n\
             backends (IPv6 only): plain HTTP on {} (sent PROXY v1), HTTPS on {} (sent PROXY v2)\n\n\
             Try:\n",
            self.plain, self.secure
        );
        for (command, note) in &commands {
            text += &format!("  {command:<width$}  # {note}\n");
        }
        text += "\nCtrl-C stops it.\n";
        text
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
/// request with what it learned about the client: `/proxy-header` with the header itself, any
/// other path with a greeting.
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
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            let parser = proxy_proto::Parser::new();
            let Ok(accepted) = read_header(&mut stream, peer, &trust, deadline, &parser).await
            else {
                return;
            };
            let header = accepted.header().map(|h| h.header());
            let header_text = header.as_ref().map_or_else(|| "none".to_string(), describe);
            let client = accepted.client_address().unwrap_or(peer);
            let answers = Answers {
                hello: format!(
                    "hello from the {name} demo backend\nclient (from the PROXY header): {client}\nPROXY header: {header_text}\n"
                ),
                proxy_header: proxy_header_text(name, header.as_ref()),
            };
            let io = Prefixed {
                prefix: accepted.rest().to_vec(),
                at: 0,
                inner: stream,
            };
            match tls {
                Some(acceptor) => {
                    if let Ok(tls_stream) = acceptor.accept(io).await {
                        answer(tls_stream, &answers).await;
                    }
                }
                None => answer(io, &answers).await,
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

/// The answer to `/proxy-header`: the header's fields, one a line.
fn proxy_header_text(name: &str, header: Option<&proxy_proto::Header<'_>>) -> String {
    let mut s = format!("the PROXY header the {name} demo backend received:\n");
    let Some(h) = header else {
        s += "none\n";
        return s;
    };
    let version = match h.version() {
        proxy_proto::Version::V1 => "1 (a text line)",
        proxy_proto::Version::V2 => "2 (binary, with TLVs)",
    };
    let command = match h.command() {
        proxy_proto::Command::Proxy => "PROXY (relayed for a client)",
        proxy_proto::Command::Local => "LOCAL (made by the proxy itself)",
    };
    s += &format!("version: {version}\ncommand: {command}\n");
    let addresses = h.addresses();
    match (addresses.source(), addresses.destination()) {
        (Some(source), Some(destination)) => {
            s += &format!(
                "source: {source} (the client, as the proxy saw it)\n\
                 destination: {destination} (the proxy's address the client connected to)\n"
            );
        }
        _ => s += &format!("addresses: {addresses:?}\n"),
    }
    for tlv in h.tlvs() {
        s += &format!(
            "TLV {:?}: {}\n",
            tlv.kind,
            String::from_utf8_lossy(tlv.value).escape_debug()
        );
    }
    s
}

/// What a backend answers on one connection.
struct Answers {
    hello: String,
    proxy_header: String,
}

/// The little of an HTTP/1 request head the demo backends act on.
#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    head_only: bool,
    path: &'a str,
    /// The connection ends after the response: `Connection: close`, HTTP/1.0 without
    /// `Connection: keep-alive`, or a body this backend cannot frame (`Transfer-Encoding`).
    close: bool,
    /// `Connection: keep-alive` from an HTTP/1.0 client, which must be told it was honoured.
    keep_alive_10: bool,
    /// Body bytes after the head (`Content-Length`), read and dropped.
    body: usize,
}

/// Parses a request head (up to and including its blank line); `None` if it is not HTTP/1.
fn parse_request(head: &[u8]) -> Option<Request<'_>> {
    let head = core::str::from_utf8(head).ok()?;
    // RFC 9112 §2.2: empty lines before the request line are ignored.
    let mut lines = head.trim_start_matches("\r\n").split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, target, version) = (
        request_line.next()?,
        request_line.next()?,
        request_line.next()?,
    );
    if request_line.next().is_some() {
        return None;
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return None,
    };
    let (mut close, mut keep_alive, mut body) = (false, false, 0);
    for line in lines.take_while(|l| !l.is_empty()) {
        let (field, value) = line.split_once(':')?;
        let value = value.trim();
        if field.eq_ignore_ascii_case("connection") {
            for option in value.split(',').map(str::trim) {
                close |= option.eq_ignore_ascii_case("close");
                keep_alive |= option.eq_ignore_ascii_case("keep-alive");
            }
        } else if field.eq_ignore_ascii_case("content-length") {
            body = value.parse().ok()?;
        } else if field.eq_ignore_ascii_case("transfer-encoding") {
            close = true;
        }
    }
    let close = close || (!http11 && !keep_alive);
    Some(Request {
        head_only: method == "HEAD",
        path: target.split('?').next().unwrap_or(target),
        close,
        keep_alive_10: !http11 && !close,
        body,
    })
}

/// Answers HTTP/1 requests on one connection: keep-alive, until the client goes or asks for the
/// connection to end (then the backend closes after the response, so clients that wait for the
/// server's end, such as `openssl s_client -quiet`, return).
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, answers: &Answers) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            if buf.len() > 64 * 1024 {
                return;
            }
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let (response, close, mut skip) = match parse_request(&buf[..end]) {
            Some(request) => (response(&request, answers), request.close, request.body),
            None => (
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string(),
                true,
                0,
            ),
        };
        buf.drain(..end);
        // The request's body: read and dropped.
        while skip > 0 {
            if buf.is_empty() {
                match io.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let n = skip.min(buf.len());
            buf.drain(..n);
            skip -= n;
        }
        if io.write_all(response.as_bytes()).await.is_err() {
            return;
        }
        if close {
            // Our end first, then a short wait for the client's, so that a request it already
            // sent cannot turn the close into a reset that loses the response.
            let _ = io.shutdown().await;
            let linger = async { while matches!(io.read(&mut chunk).await, Ok(n) if n > 0) {} };
            let _ = tokio::time::timeout(Duration::from_secs(1), linger).await;
            return;
        }
    }
}

/// The response to a request the backend understood.
fn response(request: &Request<'_>, answers: &Answers) -> String {
    let body = if request.path == "/proxy-header" {
        &answers.proxy_header
    } else {
        &answers.hello
    };
    let connection = if request.close {
        "Connection: close\r\n"
    } else if request.keep_alive_10 {
        "Connection: keep-alive\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{connection}\r\n{}",
        body.len(),
        if request.head_only { "" } else { body }
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_close_and_http_1_0_end_the_connection_keep_alive_does_not() {
        let close = |head: &str| parse_request(head.as_bytes()).map(|r| r.close);
        assert_eq!(close("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Some(false));
        assert_eq!(
            close("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
            Some(true)
        );
        assert_eq!(
            close("GET / HTTP/1.1\r\nconnection: Upgrade, CLOSE\r\n\r\n"),
            Some(true)
        );
        assert_eq!(close("GET / HTTP/1.0\r\n\r\n"), Some(true));
        assert_eq!(
            close("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
            Some(false)
        );
        assert_eq!(
            close("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(true)
        );
        assert_eq!(close("GET /\r\n\r\n"), None);
        assert_eq!(close("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), None);
    }

    #[test]
    fn the_path_decides_the_answer_and_a_body_is_counted() {
        let r = parse_request(b"\r\nPOST /proxy-header?x=1 HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
        let r = r.expect("a request");
        assert_eq!((r.path, r.body, r.head_only), ("/proxy-header", 5, false));
        let answers = Answers {
            hello: "hello\n".to_string(),
            proxy_header: "header\n".to_string(),
        };
        assert!(response(&r, &answers).ends_with("\r\n\r\nheader\n"));
        let head = parse_request(b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let head = response(&head.expect("a request"), &answers);
        assert!(
            head.ends_with("Content-Length: 6\r\nConnection: keep-alive\r\n\r\n"),
            "{head}"
        );
    }

    #[test]
    fn proxy_header_answer_names_version_and_addresses() {
        let bytes = b"PROXY TCP4 192.0.2.7 127.0.0.1 50000 8080\r\n";
        let proxy_proto::Status::Complete(h) = proxy_proto::parse(bytes).expect("a header") else {
            panic!("partial");
        };
        let text = proxy_header_text("plain", Some(&h));
        assert!(text.contains("version: 1 "), "{text}");
        assert!(text.contains("source: 192.0.2.7:50000 "), "{text}");
        assert!(text.contains("destination: 127.0.0.1:8080 "), "{text}");
    }
}
