//! Idle TLS clients for benches/full-proxy-idle-memory.sh: many TLS connections held open, doing
//! nothing, so that a proxy's memory per idle connection can be read.
//!
//!     idle-tls-clients ADDR:PORT SNI N [--concurrency C] [--request]
//!
//! Opens N TCP connections to ADDR:PORT, C at a time (default 200), and completes a TLS handshake
//! on each with SNI as the server name (the certificate is not verified: the backend's is
//! self-signed). With `--request`, each connection then sends one `GET /` and reads the whole
//! response (it needs a Content-Length), so a proxy in between has carried bytes both ways and
//! is well past reading the ClientHello. Prints `held=K failed=F seconds=S` on stdout, then holds
//! all K connections idle until a line (or the end) arrives on stdin. Then it closes them all at
//! once, each with a TLS close_notify and a FIN, waits until the other end has closed each one
//! too (at most 5 s), prints `closed=K seconds=S` and exits. The status is 1 when a connection
//! failed; the first failure is printed on stderr.

use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Time for one connection to connect, shake hands and (with --request) get its response.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for the other end to answer a close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: idle-tls-clients ADDR:PORT SNI N [--concurrency C] [--request]");
        std::process::exit(2)
    };
    if args.len() < 4 {
        usage();
    }
    let addr: SocketAddr = args[1].parse().unwrap_or_else(|_| usage());
    let name = ServerName::try_from(args[2].clone()).unwrap_or_else(|_| usage());
    let count: usize = args[3].parse().unwrap_or_else(|_| usage());
    let (mut concurrency, mut request) = (200usize, false);
    let mut rest = args[4..].iter();
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--concurrency" => {
                concurrency = rest
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&c| c > 0)
                    .unwrap_or_else(|| usage())
            }
            "--request" => request = true,
            _ => usage(),
        }
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    // Open: at most `concurrency` connections in progress at any time.
    let start = Instant::now();
    let (streams, failed, first_error) = runtime.block_on(async {
        let mut pending = JoinSet::new();
        let (mut streams, mut failed, mut first_error) = (Vec::with_capacity(count), 0, None);
        let mut started = 0;
        while started < count || !pending.is_empty() {
            while started < count && pending.len() < concurrency {
                let (connector, name) = (connector.clone(), name.clone());
                pending.spawn(async move {
                    tokio::time::timeout(OPEN_TIMEOUT, open(addr, connector, name, request))
                        .await
                        .unwrap_or_else(|_| Err(format!("not open within {OPEN_TIMEOUT:?}")))
                });
                started += 1;
            }
            match pending
                .join_next()
                .await
                .expect("a connection is in progress")
            {
                Ok(Ok(stream)) => streams.push(stream),
                Ok(Err(e)) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        (streams, failed, first_error)
    });
    if let Some(e) = &first_error {
        eprintln!("idle-tls-clients: {failed} connections failed, the first: {e}");
    }
    println!(
        "held={} failed={failed} seconds={:.2}",
        streams.len(),
        start.elapsed().as_secs_f64()
    );

    // Idle: nothing runs while the main thread waits for stdin, outside the runtime.
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);

    let start = Instant::now();
    let held = streams.len();
    runtime.block_on(async {
        let mut closing = JoinSet::new();
        for stream in streams {
            closing.spawn(async move {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, close(stream)).await;
            });
        }
        while closing.join_next().await.is_some() {}
    });
    println!("closed={held} seconds={:.2}", start.elapsed().as_secs_f64());
    std::process::exit(if failed == 0 { 0 } else { 1 });
}

/// One connection: TCP, the TLS handshake, and with `request` one request and its response.
async fn open(
    addr: SocketAddr,
    connector: TlsConnector,
    name: ServerName<'static>,
    request: bool,
) -> Result<TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let host = match &name {
        ServerName::DnsName(n) => n.as_ref().to_owned(),
        other => format!("{other:?}"),
    };
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    if request {
        let get = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        tls.write_all(get.as_bytes())
            .await
            .map_err(|e| format!("request: {e}"))?;
        read_response(&mut tls)
            .await
            .map_err(|e| format!("response: {e}"))?;
    }
    Ok(tls)
}

/// Reads one HTTP/1 response whose body has a Content-Length (nginx's `return 200 "..."`).
async fn read_response(tls: &mut TlsStream<TcpStream>) -> std::io::Result<()> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > 16 * 1024 {
            return Err(bad("no end of the response head in 16 KiB"));
        }
        if tls.read_buf(&mut buf).await? == 0 {
            return Err(bad("closed before the end of the response head"));
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("head is not UTF-8"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(bad(head.lines().next().unwrap_or("empty status line")));
    }
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or_else(|| bad("no Content-Length"))?;
    while buf.len() < head_end + length {
        if tls.read_buf(&mut buf).await? == 0 {
            return Err(bad("closed inside the body"));
        }
    }
    Ok(())
}

/// close_notify and FIN, then reads until the other end has closed too (or failed).
async fn close(mut tls: TlsStream<TcpStream>) {
    if tls.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 1024];
    while let Ok(n) = tls.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

/// Takes any certificate (the backend's is self-signed) but checks the handshake signatures, so
/// the client does the work a real one does.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
