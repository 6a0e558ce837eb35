//! sni-peek against real clients: `openssl s_client`, `curl` (TLS, HTTP/1.1 and h2 prior
//! knowledge), `gnutls-cli` and Python's `ssl` connect to a loopback listener; what they send
//! must give the name, ALPN and port they were told to use.
//!
//! `SNI_PEEK_WRITE_TESTDATA=1` also saves the TLS hellos as `sni-peek/testdata/*.bin`.

mod peers;

use core::time::Duration;
use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use peers::program;
use sni_peek::{Detected, Limits, Status, peek};

/// What a client's first bytes said, owned so it can cross threads.
#[derive(Debug, PartialEq)]
enum Seen {
    Tls {
        name: Option<String>,
        alpn: Vec<String>,
    },
    Http {
        name: Option<String>,
        port: Option<u16>,
    },
    H2 {
        name: Option<String>,
        port: Option<u16>,
    },
}

/// Reads one connection until sni-peek decides; returns the decision and the bytes it took.
fn capture(listener: TcpListener) -> mpsc::Receiver<Result<(Seen, Vec<u8>), String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = (|| {
            let (mut stream, _) = listener.accept().map_err(|e| e.to_string())?;
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            let limits = Limits::default();
            let mut scratch = vec![0; limits.scratch_len()];
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match peek(&buf, &mut scratch, &limits).map_err(|e| format!("{e}: {buf:02x?}"))? {
                    Status::Complete(d) => {
                        let seen = match d {
                            Detected::Tls(h) => Seen::Tls {
                                name: h.server_name().map(|n| n.to_string()),
                                alpn: h
                                    .alpn()
                                    .map(|p| String::from_utf8_lossy(p).into_owned())
                                    .collect(),
                            },
                            Detected::Http(r) => Seen::Http {
                                name: r.host().map(|n| n.to_string()),
                                port: r.port(),
                            },
                            Detected::H2(r) => Seen::H2 {
                                name: r.host().map(|n| n.to_string()),
                                port: r.port(),
                            },
                            Detected::Unknown => return Err(format!("unknown: {buf:02x?}")),
                        };
                        let consumed = d.summary().consumed;
                        buf.truncate(consumed);
                        return Ok((seen, buf));
                    }
                    Status::Partial(_) => {}
                }
                match stream.read(&mut chunk) {
                    Ok(0) => return Err(format!("closed after {} bytes", buf.len())),
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) => return Err(format!("{e} after {} bytes", buf.len())),
                }
            }
        })();
        let _ = tx.send(result);
    });
    rx
}

/// Runs `program args…` (with `{port}` replaced) against a fresh listener; `None` when skipped.
fn run_client(name: &str, args: &[&str]) -> Option<(Seen, Vec<u8>)> {
    let path = program(name)?;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let rx = capture(listener);
    let args: Vec<String> = args.iter().map(|a| a.replace("{port}", &port)).collect();
    let mut child = Command::new(&path)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    let result = rx.recv_timeout(Duration::from_secs(15));
    let _ = child.kill();
    let _ = child.wait();
    match result {
        Ok(Ok(seen)) => Some(seen),
        Ok(Err(e)) => panic!("{name} {args:?}: {e}"),
        Err(_) => panic!("{name} {args:?}: no connection within 15 s"),
    }
}

fn tls(name: Option<&str>, alpn: &[&str]) -> Seen {
    Seen::Tls {
        name: name.map(String::from),
        alpn: alpn.iter().map(|p| p.to_string()).collect(),
    }
}

fn save(file: &str, bytes: &[u8]) {
    if std::env::var_os("SNI_PEEK_WRITE_TESTDATA").is_some() {
        let path = format!(
            "{}/sni-peek/testdata/{file}.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::write(path, bytes).unwrap();
    }
}

#[test]
fn openssl_s_client_hello() {
    let Some((seen, bytes)) = run_client(
        "openssl",
        &[
            "s_client",
            "-connect",
            "127.0.0.1:{port}",
            "-servername",
            "OpenSSL.Example",
            "-alpn",
            "h2,http/1.1",
        ],
    ) else {
        return;
    };
    assert_eq!(seen, tls(Some("openssl.example"), &["h2", "http/1.1"]));
    save("openssl_s_client", &bytes);
}

#[test]
fn openssl_s_client_tls12_hello() {
    let Some((seen, bytes)) = run_client(
        "openssl",
        &[
            "s_client",
            "-connect",
            "127.0.0.1:{port}",
            "-tls1_2",
            "-servername",
            "tls12.openssl.example.",
        ],
    ) else {
        return;
    };
    assert_eq!(seen, tls(Some("tls12.openssl.example"), &[]));
    save("openssl_tls12", &bytes);
}

#[test]
fn openssl_s_client_tls12_to_an_ip_sends_no_name() {
    let Some((seen, _)) = run_client(
        "openssl",
        &["s_client", "-connect", "127.0.0.1:{port}", "-tls1_2"],
    ) else {
        return;
    };
    assert_eq!(seen, tls(None, &[]));
}

#[test]
fn curl_https_hello() {
    let Some((seen, bytes)) = run_client(
        "curl",
        &[
            "-sk",
            "--max-time",
            "10",
            "--resolve",
            "curl.example:{port}:127.0.0.1",
            "https://curl.example:{port}/",
        ],
    ) else {
        return;
    };
    assert_eq!(seen, tls(Some("curl.example"), &["h2", "http/1.1"]));
    save("curl", &bytes);
}

#[test]
fn gnutls_cli_hello() {
    let Some((seen, bytes)) = run_client(
        "gnutls-cli",
        &[
            "--insecure",
            "--sni-hostname=gnutls.example",
            "--alpn=h2",
            "--alpn=http/1.1",
            "-p",
            "{port}",
            "127.0.0.1",
        ],
    ) else {
        return;
    };
    assert_eq!(seen, tls(Some("gnutls.example"), &["h2", "http/1.1"]));
    save("gnutls_cli", &bytes);
}

#[test]
fn python_ssl_hello() {
    let script = "import socket, ssl, sys\n\
ctx = ssl.create_default_context()\n\
ctx.check_hostname = False\n\
ctx.verify_mode = ssl.CERT_NONE\n\
ctx.set_alpn_protocols(['h2', 'http/1.1'])\n\
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)\n\
try:\n    ctx.wrap_socket(s, server_hostname='Python.Example.')\n\
except Exception:\n    pass\n";
    let Some((seen, _)) = run_client("python3", &["-c", script, "{port}"]) else {
        return;
    };
    assert_eq!(seen, tls(Some("python.example"), &["h2", "http/1.1"]));
}

#[test]
fn curl_http1_host() {
    let Some((seen, _)) = run_client(
        "curl",
        &[
            "-s",
            "--max-time",
            "10",
            "--resolve",
            "Curl.Example:{port}:127.0.0.1",
            "http://Curl.Example:{port}/path",
        ],
    ) else {
        return;
    };
    let Seen::Http { name, port } = seen else {
        panic!("not HTTP/1: {seen:?}");
    };
    assert_eq!(name.as_deref(), Some("curl.example"));
    assert!(port.is_some());
}

#[test]
fn curl_h2_prior_knowledge_authority() {
    let Some((seen, _)) = run_client(
        "curl",
        &[
            "-s",
            "--http2-prior-knowledge",
            "--max-time",
            "10",
            "--resolve",
            "h2.curl.example:{port}:127.0.0.1",
            "http://h2.curl.example:{port}/",
        ],
    ) else {
        return;
    };
    let Seen::H2 { name, port } = seen else {
        panic!("not h2: {seen:?}");
    };
    assert_eq!(name.as_deref(), Some("h2.curl.example"));
    assert!(port.is_some());
}
