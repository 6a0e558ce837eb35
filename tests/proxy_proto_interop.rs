//! PROXY protocol against the real programs: HAProxy sends, we parse; we send, HAProxy and nginx
//! parse and tell us, through the addresses they report, what they understood.

mod peers;

use core::net::SocketAddr;
use core::time::Duration;
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;

use peers::{Running, Scratch, exchange, free_port, program, run};
use proxy_proto::{Addresses, Builder, Command, Parser, SslBuilder, Status, Version};

/// Accepts connections on loopback and hands back each one's PROXY header bytes (and whatever
/// came after them in the same read), parsed once to know where the header ends.
struct HeaderSink {
    addr: SocketAddr,
    rx: mpsc::Receiver<(Vec<u8>, Vec<u8>)>,
}

impl HeaderSink {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let parser = Parser::new().max_v2_len(65_551);
                    loop {
                        match parser.parse(&buf) {
                            Ok(Status::Complete(h)) => {
                                let (header, rest) = buf.split_at(h.len());
                                let _ = tx.send((header.to_vec(), rest.to_vec()));
                                return;
                            }
                            Ok(Status::Partial(_)) => {}
                            Err(_) => {
                                let _ = tx.send((buf, Vec::new()));
                                return;
                            }
                        }
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => {
                                let _ = tx.send((buf, Vec::new()));
                                return;
                            }
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        HeaderSink { addr, rx }
    }

    fn next(&self) -> (Vec<u8>, Vec<u8>) {
        self.rx
            .recv_timeout(Duration::from_secs(10))
            .expect("no connection reached the sink")
    }
}

/// Saves a captured header where `SIXGATE_CAPTURE_DIR` says (to refresh the fuzz seeds).
fn capture(name: &str, bytes: &[u8]) {
    if let Some(dir) = std::env::var_os("SIXGATE_CAPTURE_DIR") {
        std::fs::write(Path::new(&dir).join(name), bytes).unwrap();
    }
}

fn parse(bytes: &[u8]) -> proxy_proto::Header<'_> {
    match Parser::new().parse(bytes) {
        Ok(Status::Complete(h)) => h,
        other => panic!("{other:?} for {bytes:02x?}"),
    }
}

#[test]
fn haproxy_send_proxy_headers_parse() {
    let (Some(haproxy), Some(openssl)) = (program("haproxy"), program("openssl")) else {
        return;
    };
    let dir = Scratch::new("haproxy-send");
    // A CA, a client certificate it signed (for cert-cn), and the frontend's own certificate.
    let path = |f: &str| dir.path(f).to_str().unwrap().to_string();
    let (ca_cert, ca_key) = peers::self_signed(&openssl, &dir, "ca.test");
    let (ca_cert, ca_key) = (ca_cert.to_str().unwrap(), ca_key.to_str().unwrap());
    run(
        &openssl,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=client.example",
            "-keyout",
            &path("client.key"),
            "-out",
            &path("client.csr"),
        ],
    );
    run(
        &openssl,
        &[
            "x509",
            "-req",
            "-in",
            &path("client.csr"),
            "-CA",
            ca_cert,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &path("client.crt"),
        ],
    );
    let (cert, key) = peers::self_signed(&openssl, &dir, "www.example.com");
    let pem = [std::fs::read(cert).unwrap(), std::fs::read(key).unwrap()].concat();
    std::fs::write(dir.path("frontend.pem"), pem).unwrap();

    let sink = HeaderSink::start();
    let checks = HeaderSink::start();
    let (p1, p2, p3, p6, ready) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let config = format!(
        "global\n  maxconn 100\n\
         defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\
         frontend ready\n  bind 127.0.0.1:{ready}\n  tcp-request connection reject\n\
         frontend v1\n  bind 127.0.0.1:{p1}\n  default_backend to_sink_v1\n\
         frontend v6\n  bind [::1]:{p6}\n  default_backend to_sink_v1\n\
         frontend v2\n  bind 127.0.0.1:{p2}\n  default_backend to_sink_v2\n\
         frontend tls\n  bind 127.0.0.1:{p3} ssl crt {pem} alpn h2,http/1.1 verify optional ca-file {ca}\n\
           unique-id-format %{{+X}}o%ci:%cp_%fi:%fp_%Ts_%rt\n  default_backend to_sink_tls\n\
         backend to_sink_v1\n  server sink {sink} send-proxy\n\
         backend to_sink_v2\n  server sink {sink} send-proxy-v2\n\
         backend to_sink_tls\n  server sink {sink} send-proxy-v2 proxy-v2-options crc32c,unique-id,authority,ssl,cert-cn,ssl-cipher,cert-sig,cert-key\n\
         backend health\n  server sink {checks} check inter 300ms send-proxy-v2 check-send-proxy proxy-v2-options crc32c\n",
        pem = path("frontend.pem"),
        ca = ca_cert,
        sink = sink.addr,
        checks = checks.addr,
    );
    let cfg = dir.write("haproxy.cfg", &config);
    let _haproxy = Running::start(
        &haproxy,
        &["-db", "-f", cfg.to_str().unwrap()],
        dir.path("haproxy.log"),
        format!("127.0.0.1:{ready}").parse().unwrap(),
    );

    // v1 over IPv4: the client's own address and the frontend's.
    let client = std::net::TcpStream::connect(("127.0.0.1", p1)).unwrap();
    let local = client.local_addr().unwrap();
    let (header, _) = sink.next();
    capture("haproxy-v1-tcp4.bin", &header);
    let h = parse(&header);
    assert_eq!(h.version(), Version::V1);
    assert_eq!(
        (h.source(), h.destination()),
        (
            Some(local),
            Some(format!("127.0.0.1:{p1}").parse().unwrap())
        )
    );
    drop(client);

    // v1 over IPv6.
    let client = std::net::TcpStream::connect(("::1", p6)).unwrap();
    let local = client.local_addr().unwrap();
    let (header, _) = sink.next();
    capture("haproxy-v1-tcp6.bin", &header);
    assert!(
        header.starts_with(b"PROXY TCP6 ::1 ::1 "),
        "{:?}",
        String::from_utf8_lossy(&header)
    );
    assert_eq!(parse(&header).source(), Some(local));
    drop(client);

    // v2, plain.
    let client = std::net::TcpStream::connect(("127.0.0.1", p2)).unwrap();
    let local = client.local_addr().unwrap();
    let (header, _) = sink.next();
    capture("haproxy-v2-tcp4.bin", &header);
    let h = parse(&header);
    assert_eq!(
        (h.version(), h.command(), h.source()),
        (Version::V2, Command::Proxy, Some(local))
    );
    drop(client);

    // v2 from a TLS frontend, with every option, from a client with a certificate and ALPN.
    let mut s_client = std::process::Command::new(&openssl)
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{p3}"),
            "-servername",
            "www.example.com",
            "-alpn",
            "h2",
        ])
        .args(["-cert", &path("client.crt"), "-key", &path("client.key")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(s_client.stdin.as_mut().unwrap(), b"hello over tls\n").unwrap();
    let (header, rest) = sink.next();
    drop(s_client.stdin.take());
    let _ = s_client.kill();
    let _ = s_client.wait();
    capture("haproxy-v2-tls.bin", &header);
    let h = parse(&header);
    assert_eq!(h.command(), Command::Proxy);
    assert!(
        h.crc32c().is_some(),
        "crc32c option: present, and verified by the parse"
    );
    assert_eq!(
        h.tlvs().next().map(|t| t.kind),
        Some(proxy_proto::TlvType::CRC32C)
    );
    assert_eq!(h.authority(), Some("www.example.com"));
    assert_eq!(h.alpn(), Some(&b"h2"[..]));
    assert!(
        h.unique_id().is_some_and(|id| !id.is_empty()),
        "unique-id option"
    );
    let ssl = h.ssl().expect("ssl option");
    assert!(
        ssl.client().ssl() && ssl.client().cert_conn(),
        "client flags {:#x}",
        ssl.client().0
    );
    assert_eq!(ssl.verify(), 0, "the client certificate verified");
    assert_eq!(ssl.version(), Some("TLSv1.3"));
    assert_eq!(ssl.cn(), Some("client.example"));
    assert!(ssl.cipher().is_some_and(|c| c.starts_with("TLS_")));
    assert!(ssl.sig_alg().is_some() && ssl.key_alg().is_some());
    if !rest.is_empty() {
        assert!(
            b"hello over tls\n".starts_with(&rest[..]),
            "bytes after the header are the client's"
        );
    }

    // Health checks: a LOCAL header (with its CRC32C).
    let (header, _) = checks.next();
    capture("haproxy-v2-local-check.bin", &header);
    let h = parse(&header);
    assert_eq!((h.command(), h.source()), (Command::Local, None));
    assert!(h.crc32c().is_some());
}

/// An HAProxy `accept-proxy` frontend that answers with what it understood.
fn haproxy_echo(haproxy: &Path, dir: &Scratch) -> (Running, SocketAddr) {
    let port = free_port();
    let config = format!(
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\
         frontend echo\n  bind 127.0.0.1:{port} accept-proxy\n\
           http-request return status 200 content-type text/plain lf-string \"%[src] %[src_port] %[dst] %[dst_port] %[fc_pp_authority]\"\n"
    );
    let cfg = dir.write("echo.cfg", &config);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    (
        Running::start(
            haproxy,
            &["-db", "-f", cfg.to_str().unwrap()],
            dir.path("echo.log"),
            addr,
        ),
        addr,
    )
}

/// Our header and an HTTP request, in one write, as the crate's docs say to send them.
fn with_request(header: Builder<'_>) -> Vec<u8> {
    let mut out = vec![0; header.len().unwrap()];
    header.write(&mut out).unwrap();
    out.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    out
}

fn body(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(answer);
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
        .unwrap_or_else(|| format!("no HTTP answer: {text:?}"))
}

#[test]
fn haproxy_accept_proxy_takes_our_headers() {
    let Some(haproxy) = program("haproxy") else {
        return;
    };
    let dir = Scratch::new("haproxy-accept");
    let (_haproxy, addr) = haproxy_echo(&haproxy, &dir);
    let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
    let v4 = Addresses::from_pair(sa("192.0.2.1:56324"), sa("198.51.100.7:443"));
    let v6 = Addresses::from_pair(sa("[2001:db8::1]:56324"), sa("[2001:db8::80]:443"));
    let mixed = Addresses::from_pair(sa("192.0.2.1:56324"), sa("[2001:db8::80]:443"));

    assert_eq!(
        body(&exchange(addr, &with_request(Builder::v1(v4)))),
        "192.0.2.1 56324 198.51.100.7 443"
    );
    assert_eq!(
        body(&exchange(addr, &with_request(Builder::v1(v6)))),
        "2001:db8::1 56324 2001:db8::80 443"
    );
    assert_eq!(
        body(&exchange(addr, &with_request(Builder::v1(mixed)))),
        "::ffff:192.0.2.1 56324 2001:db8::80 443"
    );
    assert_eq!(
        body(&exchange(
            addr,
            &with_request(Builder::v2(Command::Proxy, v4))
        )),
        "192.0.2.1 56324 198.51.100.7 443"
    );
    let full = Builder::v2(Command::Proxy, v6)
        .crc32c()
        .authority("www.example.com")
        .alpn(b"h2")
        .unique_id(b"abc")
        .ssl(
            SslBuilder::new(1, 0)
                .version("TLSv1.3")
                .cipher("TLS_AES_128_GCM_SHA256"),
        )
        .azure_private_link_id(7)
        .noop(&[0; 8]);
    assert_eq!(
        body(&exchange(addr, &with_request(full))),
        "2001:db8::1 56324 2001:db8::80 443 www.example.com"
    );

    // HAProxy agrees with us on what is broken: a bad CRC and a TLV past the length.
    let mut bad_crc = with_request(Builder::v2(Command::Proxy, v4).crc32c());
    bad_crc[16 + 12 + 3] ^= 1;
    assert!(Parser::new().parse(&bad_crc).is_err());
    assert_eq!(exchange(addr, &bad_crc), b"", "HAProxy closes on a bad CRC");
}

#[test]
fn nginx_proxy_protocol_listeners_take_our_headers() {
    let Some(nginx) = program("nginx") else {
        return;
    };
    let module = Path::new("/usr/lib/nginx/modules/ngx_stream_module.so");
    if !module.exists() {
        return peers::skip(
            "nginx's stream module (Debian package libnginx-mod-stream) is not installed",
        );
    }
    let dir = Scratch::new("nginx-accept");
    let (http, stream) = (free_port(), free_port());
    let vars = "$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port";
    let _nginx = peers::start_nginx(
        &nginx,
        &dir,
        &format!("load_module {};", module.display()),
        &format!(
            "  server {{ listen 127.0.0.1:{http} proxy_protocol; location / {{ return 200 \"{vars}\"; }} }}"
        ),
        Some(&format!(
            "  server {{ listen 127.0.0.1:{stream} proxy_protocol; return \"{vars}\"; }}"
        )),
        format!("127.0.0.1:{http}").parse().unwrap(),
    );
    let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
    let v4 = Addresses::from_pair(sa("192.0.2.1:56324"), sa("198.51.100.7:443"));
    let v6 = Addresses::from_pair(sa("[2001:db8::1]:56324"), sa("[2001:db8::80]:443"));
    let http_addr: SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    let stream_addr: SocketAddr = format!("127.0.0.1:{stream}").parse().unwrap();
    for (addresses, want) in [
        (v4, "192.0.2.1 56324 198.51.100.7 443"),
        (v6, "2001:db8::1 56324 2001:db8::80 443"),
    ] {
        for builder in [
            Builder::v1(addresses),
            Builder::v2(Command::Proxy, addresses),
        ] {
            assert_eq!(
                body(&exchange(http_addr, &with_request(builder))),
                want,
                "http, {builder:?}"
            );
            let mut header = vec![0; builder.len().unwrap()];
            builder.write(&mut header).unwrap();
            let answer = exchange(stream_addr, &header);
            assert_eq!(
                String::from_utf8_lossy(&answer),
                want,
                "stream, {builder:?}"
            );
        }
    }
    // nginx 1.22 ignores TLVs (and their CRC) but reads the addresses of a header with them.
    let with_tlvs = Builder::v2(Command::Proxy, v4)
        .crc32c()
        .authority("www.example.com");
    assert_eq!(
        body(&exchange(http_addr, &with_request(with_tlvs))),
        "192.0.2.1 56324 198.51.100.7 443"
    );
}
