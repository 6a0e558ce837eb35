//! The full proxy (`examples/full-proxy`) as an operator runs it: real clients (curl, openssl
//! s_client), real backends (nginx, HAProxy) and small in-test servers, all on loopback. What
//! needs the program is here: its file (`--check`, the file's settings reaching the engine), its
//! other commands, signals, metrics, the demo and interop; the engine's own behaviour is tested
//! in-process in `proxy_behaviour.rs`.

mod peers;
#[path = "support/proxy_rig.rs"]
mod proxy_rig;
#[path = "support/example_binary.rs"]
mod support;

use core::net::SocketAddr;
use core::time::Duration;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use peers::{Running, Scratch, free_port, program, run};
use proxy_rig::{Named, Visits, digest_backend, http_get, megabyte_each_way};
use support::example_binary;

/// The proxy, as an operator runs it.
fn proxy_binary() -> PathBuf {
    example_binary(env!("CARGO_MANIFEST_DIR"), "full-proxy")
}

/// A running proxy with its own config file; killed when dropped.
struct Proxy {
    child: Option<Child>,
    dir: Scratch,
}

impl Proxy {
    fn start(name: &str, config: &str, ready: SocketAddr) -> Proxy {
        let mut proxy = Proxy::spawn(name, config);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&ready, Duration::from_millis(100)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the proxy never listened:\n{}",
                proxy.log()
            );
            if let Some(status) = proxy.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the proxy exited with {status}:\n{}", proxy.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        proxy
    }

    /// Started, not waited for.
    fn spawn(name: &str, config: &str) -> Proxy {
        let dir = Scratch::new(name);
        let path = dir.write("sixgate.toml", config);
        let log = std::fs::File::create(dir.path("proxy.log")).unwrap();
        let child = Command::new(proxy_binary())
            .args(["--config", path.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Proxy {
            child: Some(child),
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("proxy.log")).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill")
            .args(["-s", name, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn rewrite(&self, config: &str) {
        self.dir.write("sixgate.toml", config);
    }

    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().unwrap();
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn addr(s: String) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn check_accepts_good_files_and_lists_every_error_of_bad_ones() {
    let good = Command::new(proxy_binary())
        .args([
            "--config",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/full-proxy/sixgate.toml"
            ),
            "--check",
        ])
        .output()
        .unwrap();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let dir = Scratch::new("check");
    let bad = dir.write(
        "bad.toml",
        "[[listen]]\naddresses = [\"127.0.0.1:99999\"]\nmode = \"tls\"\n\n[[route]]\nhosts = [\"a.test\", \"bad name\"]\nbackends = [{ address = \"::1\" }]\n\n[[route]]\nhosts = [\"a.test\"]\nbackends = [{ address = \"not-an-ip\" }]\n",
    );
    let out = Command::new(proxy_binary())
        .args(["--config", bad.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    for line in ["line 2:", "line 6:", "line 10:", "line 11:"] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

/// The abuse desk's question, answered from the file alone: no privileges, nothing started.
#[test]
fn nat64_lookup_names_the_customer_behind_an_address_and_port() {
    let dir = Scratch::new("nat64-lookup");
    let stateful = "[nat64]\ntun = \"nat64\"\nmode = \"stateful\"\npool6 = \"64:ff9b::/96\"\n\
                    pool4 = [\"203.0.113.16/29\"]\ncustomers = [\"2001:db8:6::/56\"]\n";
    let file = dir.write("stateful.toml", stateful);
    let lookup = |file: &std::path::Path, at: &str| {
        let out = Command::new(proxy_binary())
            .args(["--config", file.to_str().unwrap(), "--nat64-lookup", at])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = lookup(&file, "203.0.113.16:3040");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "203.0.113.16:3040 -> 2001:db8:6:1::/64 (block 1, ports 3040-5055)\n"
    );
    let (code, stdout, _) = lookup(&file, "203.0.113.16:80");
    assert_eq!(code, Some(1));
    assert!(stdout.contains("no block"), "{stdout}");
    // A file without a stateful gateway, or a bad one: an error, not an answer.
    let stateless = dir.write(
        "stateless.toml",
        "[nat64]\ntun = \"nat64\"\npool6 = \"64:ff9b::/96\"\n",
    );
    let (code, _, stderr) = lookup(&stateless, "203.0.113.16:3040");
    assert_eq!(code, Some(2));
    assert!(stderr.contains("mode = \"stateful\""), "{stderr}");
    // --check refuses a layout the customers do not fit, saying how many do.
    let crowded = dir.write("crowded.toml", &stateful.replace("/56", "/55"));
    let (code, _, stderr) = lookup(&crowded, "203.0.113.16:3040");
    assert_eq!(code, Some(2));
    let out = Command::new(proxy_binary())
        .args(["--config", crowded.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(
            "line 6: the customers hold 512 sub-prefixes but the pool has blocks for only 256"
        ),
        "{text}"
    );
    assert_eq!(text, stderr, "the lookup reports the same errors");
}

/// Each worker has its own socket on the port (SO_REUSEPORT), yet a port another process holds
/// is still an error at start, whether that process is a plain listener or a running proxy.
#[test]
fn a_port_already_in_use_is_an_error_not_a_shared_port() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap();
    let port = free_port();
    let config = |port: u16| {
        format!(
            "[[listen]]\naddresses = [\"127.0.0.1:{port}\"]\nmode = \"http\"\n\n[[route]]\nhosts = [\"*\"]\nbackends = [{{ address = \"[::1]:9\" }}]\n"
        )
    };
    let refused = |name: &str, port: u16| {
        let mut second = Proxy::spawn(name, &config(port));
        assert_eq!(
            second.wait_exit(Duration::from_secs(10)),
            Some(1),
            "still running, or not refused:\n{}",
            second.log()
        );
        let log = second.log();
        assert!(
            log.contains(&format!("cannot listen on 127.0.0.1:{port}")),
            "{log}"
        );
    };
    refused("port-held-by-a-listener", taken.port());
    let first = Proxy::start(
        "port-owner",
        &config(port),
        addr(format!("127.0.0.1:{port}")),
    );
    refused("port-held-by-a-proxy", port);
    drop(first);
}

/// The file's weights and thread count reach the engine: three workers, one pool, and the
/// weights exact over two whole cycles. (`proxy_behaviour.rs` holds the engine to its balancing;
/// this is the program's wiring.)
#[test]
fn the_file_s_weights_and_threads_reach_the_engine() {
    let visits = Visits::default();
    let backends = ["a", "b", "c"].map(|name| Named::start(name, &visits));
    let port = free_port();
    let config = format!(
        "[[listen]]\naddresses = [\"127.0.0.1:{port}\"]\nmode = \"http\"\n\n[[route]]\nhosts = [\"*\"]\n\
         backends = [{{ address = \"{}\", weight = 1 }}, {{ address = \"{}\", weight = 2 }}, {{ address = \"{}\", weight = 3 }}]\n\n\
         [limits]\nthreads = 3\n",
        backends[0].addr, backends[1].addr, backends[2].addr
    );
    let proxy_addr = addr(format!("127.0.0.1:{port}"));
    let proxy = Proxy::start("weights", &config, proxy_addr);
    for _ in 0..12 {
        assert!(http_get(proxy_addr, "w.test").ends_with('\n'));
    }
    let served = ["a", "b", "c"].map(|name| visits.served(name));
    assert_eq!(served, [2, 4, 6], "{}", proxy.log());
}

/// The program's relay, as configured by default: a mebibyte each way, with a half-close.
/// (`proxy_behaviour.rs` runs both relay methods in the engine.)
#[test]
fn the_program_relays_a_megabyte_each_way_with_half_close() {
    let backend = digest_backend();
    let port = free_port();
    let config = format!(
        "[[listen]]\naddresses = [\"127.0.0.1:{port}\"]\nmode = \"http\"\n\n[[route]]\nhosts = [\"echo.test\"]\nbackends = [{{ address = \"{backend}\" }}]\n"
    );
    let proxy_addr = addr(format!("127.0.0.1:{port}"));
    let _proxy = Proxy::start("bulk", &config, proxy_addr);
    megabyte_each_way(proxy_addr, "echo.test");
}

/// nginx backends: `a` (http, PROXY v1), `b` (https, PROXY v2), `c` (http, no PROXY), each
/// answering with its name and the client address it was given.
fn nginx_backends(dir: &Scratch, openssl: &std::path::Path) -> Option<(Running, [u16; 3])> {
    let nginx = program("nginx")?;
    let (cert, key) = peers::self_signed(openssl, dir, "b.test");
    let ports = [free_port(), free_port(), free_port()];
    let (a, b, c) = (ports[0], ports[1], ports[2]);
    let (cert, key) = (cert.display(), key.display());
    let servers = format!(
        "  server {{ listen [::1]:{a} proxy_protocol; location / {{ return 200 \"a $proxy_protocol_addr $proxy_protocol_server_port\\n\"; }} }}\n\
           server {{ listen [::1]:{b} ssl proxy_protocol; ssl_certificate {cert}; ssl_certificate_key {key}; location / {{ return 200 \"b $proxy_protocol_addr $ssl_server_name\\n\"; }} }}\n\
           server {{ listen [::1]:{c}; location / {{ return 200 \"c $remote_addr\\n\"; }} }}"
    );
    let running = peers::start_nginx(&nginx, dir, "", &servers, None, addr(format!("[::1]:{c}")));
    Some((running, ports))
}

#[test]
fn routes_by_host_and_sni_to_nginx_with_proxy_protocol() {
    let (Some(openssl), Some(curl)) = (program("openssl"), program("curl")) else {
        return;
    };
    let dir = Scratch::new("routing");
    let Some((_nginx, [a, b, c])) = nginx_backends(&dir, &openssl) else {
        return;
    };
    let (http, tls) = (free_port(), free_port());
    let config = format!(
        "[[listen]]\naddresses = [\"127.0.0.1:{http}\"]\nmode = \"http\"\n\n[[listen]]\naddresses = [\"127.0.0.1:{tls}\"]\nmode = \"tls\"\n\n\
         [[route]]\nhosts = [\"a.test\"]\nproxy_protocol = \"v1\"\nbackends = [{{ address = \"[::1]:{a}\" }}]\n\n\
         [[route]]\nhosts = [\"b.test\", \"*.b.test\"]\nproxy_protocol = \"v2\"\nbackends = [{{ address = \"[::1]:{b}\" }}]\n\n\
         [[route]]\nhosts = [\"c.test\"]\nbackends = [{{ address = \"[::1]:{c}\" }}]\n"
    );
    let proxy = Proxy::start("routing", &config, addr(format!("127.0.0.1:{http}")));
    let curl_out = |args: &[&str]| String::from_utf8_lossy(&run(&curl, args)).to_string();
    assert_eq!(
        // From 127.0.0.2, so a source/destination mix-up cannot pass: the backend must see
        // the client's address and the port it connected to.
        curl_out(&[
            "-s",
            "--interface",
            "127.0.0.2",
            "-H",
            "Host: a.test",
            &format!("http://127.0.0.1:{http}/")
        ]),
        format!("a 127.0.0.2 {http}\n"),
        "{}",
        proxy.log()
    );
    assert_eq!(
        curl_out(&[
            "-s",
            "-H",
            "Host: c.test",
            &format!("http://127.0.0.1:{http}/")
        ]),
        "c ::1\n"
    );
    let resolve = format!("b.test:{tls}:127.0.0.1");
    assert_eq!(
        curl_out(&[
            "-sk",
            "--resolve",
            &resolve,
            &format!("https://b.test:{tls}/")
        ]),
        "b 127.0.0.1 b.test\n",
        "{}",
        proxy.log()
    );
    let resolve = format!("x.b.test:{tls}:127.0.0.1");
    assert_eq!(
        curl_out(&[
            "-sk",
            "--resolve",
            &resolve,
            &format!("https://x.b.test:{tls}/")
        ]),
        "b 127.0.0.1 x.b.test\n"
    );
    // openssl s_client, TLS 1.2 only, through the same route.
    let mut s_client = Command::new(&openssl)
        .args([
            "s_client",
            "-quiet",
            "-tls1_2",
            "-connect",
            &format!("127.0.0.1:{tls}"),
            "-servername",
            "b.test",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    s_client
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"GET / HTTP/1.0\r\nHost: b.test\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s_client
        .stdout
        .as_mut()
        .unwrap()
        .read_to_string(&mut answer)
        .unwrap();
    let _ = s_client.wait();
    assert!(answer.ends_with("b 127.0.0.1 b.test\n"), "{answer:?}");
    // No route: HTTP gets a 421, TLS an unrecognized_name alert.
    let no_route = Command::new(&curl)
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Host: nobody.test",
            &format!("http://127.0.0.1:{http}/"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&no_route.stdout), "421");
    let resolve = format!("nobody.test:{tls}:127.0.0.1");
    let alert = Command::new(&curl)
        .args([
            "-sk",
            "--resolve",
            &resolve,
            &format!("https://nobody.test:{tls}/"),
        ])
        .output()
        .unwrap();
    assert!(!alert.status.success());
    // The exact answer: a fatal unrecognized_name alert (RFC 8446 §6: level 2, description 112).
    let hello = include_bytes!("../sni-peek/testdata/curl.bin"); // SNI curl.example: no route
    let mut raw = TcpStream::connect(addr(format!("127.0.0.1:{tls}"))).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(hello).unwrap();
    let mut reply = Vec::new();
    let _ = raw.read_to_end(&mut reply);
    assert_eq!(reply, [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112]);
    assert!(
        proxy.log().contains("outcome=\"no_route\""),
        "{}",
        proxy.log()
    );
}

#[test]
fn haproxy_in_front_and_behind() {
    let (Some(haproxy), Some(openssl)) = (program("haproxy"), program("openssl")) else {
        return;
    };
    let dir = Scratch::new("haproxy-chain");
    let Some((_nginx, [a, _, _])) = nginx_backends(&dir, &openssl) else {
        return;
    };
    // Behind us: HAProxy accept-proxy tells what client address we sent (v2).
    let behind = free_port();
    let front = free_port();
    let ours = free_port();
    let config = format!(
        "defaults\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\
         frontend behind\n  mode http\n  bind [::1]:{behind} accept-proxy\n  http-request return status 200 content-type text/plain lf-string \"haproxy %[src] %[fc_pp_authority]\\n\"\n\
         frontend front\n  mode tcp\n  bind [::1]:{front}\n  default_backend to_us\n\
         backend to_us\n  mode tcp\n  server us 127.0.0.1:{ours} send-proxy-v2\n"
    );
    let cfg = dir.write("haproxy.cfg", &config);
    let _haproxy = Running::start(
        &haproxy,
        &["-db", "-f", cfg.to_str().unwrap()],
        dir.path("haproxy.log"),
        addr(format!("[::1]:{front}")),
    );
    let proxy_config = format!(
        "[[listen]]\naddresses = [\"127.0.0.1:{ours}\", \"[::1]:{ours}\"]\nmode = \"http\"\naccept_proxy_from = [\"127.0.0.1\"]\n\n\
         [[route]]\nhosts = [\"behind.test\"]\nproxy_protocol = \"v2\"\nbackends = [{{ address = \"[::1]:{behind}\" }}]\n\n\
         [[route]]\nhosts = [\"a.test\"]\nproxy_protocol = \"v1\"\nbackends = [{{ address = \"[::1]:{a}\" }}]\n"
    );
    let proxy = Proxy::start(
        "haproxy-chain",
        &proxy_config,
        addr(format!("[::1]:{ours}")),
    );
    // Client → HAProxy (over IPv6) → us (PROXY v2 in, from a trusted source) → nginx (PROXY v1):
    // nginx sees the client's IPv6 address, not HAProxy's IPv4 one.
    let body = http_get(addr(format!("[::1]:{front}")), "a.test");
    assert!(
        body.ends_with(&format!("a ::1 {front}\n")),
        "{body:?}\n{}",
        proxy.log()
    );
    // Us → HAProxy accept-proxy with v2 and the AUTHORITY TLV.
    let body = http_get(addr(format!("[::1]:{front}")), "behind.test");
    assert!(
        body.ends_with("haproxy ::1 behind.test\n"),
        "{body:?}\n{}",
        proxy.log()
    );
    // A PROXY header from an untrusted source is refused: nothing comes back.
    let mut s = TcpStream::connect(addr(format!("[::1]:{ours}"))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"PROXY TCP4 198.51.100.1 127.0.0.1 1 2\r\nGET / HTTP/1.0\r\nHost: a.test\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    // And a trusted source without one is refused too.
    assert_eq!(http_get(addr(format!("127.0.0.1:{ours}")), "a.test"), "");
    assert!(
        proxy.log().contains("proxy_header_refused"),
        "{}",
        proxy.log()
    );
}

#[test]
fn reload_on_sighup_keeps_open_connections_and_refuses_bad_files() {
    let visits = Visits::default();
    let (one, two) = (Named::start("one", &visits), Named::start("two", &visits));
    let port = free_port();
    let config = |backend: SocketAddr| {
        format!(
            "[[listen]]\naddresses = [\"127.0.0.1:{port}\"]\nmode = \"http\"\n\n[[route]]\nhosts = [\"*\"]\nbackends = [{{ address = \"{backend}\" }}]\n"
        )
    };
    let proxy_addr = addr(format!("127.0.0.1:{port}"));
    let proxy = Proxy::start("reload", &config(one.addr), proxy_addr);
    assert!(http_get(proxy_addr, "r.test").ends_with("one\n"));
    // A connection held open across the reload.
    let echo = TcpListener::bind("[::1]:0").unwrap();
    let held_config = |backend: SocketAddr, echo: SocketAddr| {
        format!(
            "{}\n[[route]]\nhosts = [\"held.test\"]\nbackends = [{{ address = \"{echo}\" }}]\n",
            config(backend)
        )
    };
    proxy.rewrite(&held_config(one.addr, echo.local_addr().unwrap()));
    proxy.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    let mut held = TcpStream::connect(proxy_addr).unwrap();
    held.write_all(b"GET / HTTP/1.1\r\nHost: held.test\r\n\r\n")
        .unwrap();
    let (mut server_side, _) = echo.accept().unwrap();
    proxy.rewrite(&held_config(two.addr, echo.local_addr().unwrap()));
    proxy.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        http_get(proxy_addr, "r.test").ends_with("two\n"),
        "{}",
        proxy.log()
    );
    server_side.write_all(b"still here\n").unwrap();
    let mut buf = [0u8; 11];
    held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    held.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still here\n");
    // A bad file is refused whole; the running configuration stays.
    proxy.rewrite("[[listen]]\naddresses = [\"nonsense\"]\n");
    proxy.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(http_get(proxy_addr, "r.test").ends_with("two\n"));
    assert!(proxy.log().contains("reload refused"), "{}", proxy.log());
}

#[test]
fn sigterm_drains_open_connections_then_exits_0() {
    let echo = TcpListener::bind("[::1]:0").unwrap();
    let port = free_port();
    let config = format!(
        "[[listen]]\naddresses = [\"127.0.0.1:{port}\"]\nmode = \"http\"\n\n[[route]]\nhosts = [\"*\"]\nbackends = [{{ address = \"{}\" }}]\n\n[limits]\ndrain_timeout = \"10s\"\n",
        echo.local_addr().unwrap()
    );
    let proxy_addr = addr(format!("127.0.0.1:{port}"));
    let mut proxy = Proxy::start("drain", &config, proxy_addr);
    let mut held = TcpStream::connect(proxy_addr).unwrap();
    held.write_all(b"GET / HTTP/1.1\r\nHost: d.test\r\n\r\n")
        .unwrap();
    let (mut server_side, _) = echo.accept().unwrap();
    proxy.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        TcpStream::connect_timeout(&proxy_addr, Duration::from_secs(1)).is_err(),
        "still accepting after SIGTERM"
    );
    assert_eq!(
        proxy.wait_exit(Duration::from_millis(200)),
        None,
        "exited with a connection open"
    );
    server_side.write_all(b"bye\n").unwrap();
    let mut buf = [0u8; 4];
    held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    held.read_exact(&mut buf).unwrap();
    drop(server_side);
    drop(held);
    assert_eq!(
        proxy.wait_exit(Duration::from_secs(5)),
        Some(0),
        "{}",
        proxy.log()
    );
}

#[test]
fn max_connections_is_enforced_at_accept_and_counted_in_metrics() {
    let echo = TcpListener::bind("[::1]:0").unwrap();
    let (port, metrics) = (free_port(), free_port());
    let config = format!(
        "[[listen]]\naddresses = [\"127.0.0.1:{port}\"]\nmode = \"http\"\n\n[[route]]\nhosts = [\"*\"]\nbackends = [{{ address = \"{}\" }}]\n\n\
         [limits]\nmax_connections = 1\n\n[metrics]\naddress = \"127.0.0.1:{metrics}\"\n",
        echo.local_addr().unwrap()
    );
    let proxy_addr = addr(format!("127.0.0.1:{port}"));
    let proxy = Proxy::start("limits", &config, proxy_addr);
    // The readiness probe above used the one slot for a moment; let it go.
    std::thread::sleep(Duration::from_millis(200));
    let mut held = TcpStream::connect(proxy_addr).unwrap();
    held.write_all(b"GET / HTTP/1.1\r\nHost: l.test\r\n\r\n")
        .unwrap();
    let (_server_side, _) = echo.accept().unwrap();
    // A second connection is closed at once, before anything is read from it.
    let mut second = TcpStream::connect(proxy_addr).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1];
    assert!(matches!(second.read(&mut buf), Ok(0) | Err(_)));
    assert!(started.elapsed() < Duration::from_secs(2));
    let text = http_get(addr(format!("127.0.0.1:{metrics}")), "metrics");
    assert!(
        text.contains("sixgate_connections_active 1"),
        "{text}\n{}",
        proxy.log()
    );
    assert!(
        text.contains("sixgate_connections_total{outcome=\"over_limit\"} 1"),
        "{text}"
    );
}

#[test]
fn the_demo_runs_with_no_arguments_and_its_commands_work() {
    let Some(curl) = program("curl") else { return };
    let mut demo = Command::new(proxy_binary())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(demo.stdout.take().unwrap());
    let mut text = String::new();
    while !text.contains("Ctrl-C") {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        text += &line;
    }
    let commands: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("curl "))
        .map(String::from)
        .collect();
    assert_eq!(commands.len(), 5, "{text}");
    let shell = |command: &str| {
        let command = command.split('#').next().unwrap_or_default();
        let args: Vec<String> = command
            .split_whitespace()
            .skip(1)
            .map(|a| a.trim_matches('\'').to_string())
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // "-H Host: x" was split on its space: put it back together.
        let mut joined = Vec::new();
        let mut i = 0;
        while i < args.len() {
            if args[i] == "-H" {
                joined.push("-H".to_string());
                joined.push(format!("{} {}", args[i + 1], args[i + 2]));
                i += 3;
            } else {
                joined.push(args[i].to_string());
                i += 1;
            }
        }
        let out = Command::new(&curl).args(&joined).output().unwrap();
        // What curl says of a failure goes to stderr: keep it, after the answer.
        [out.stdout, out.stderr]
            .map(|o| String::from_utf8_lossy(&o).into_owned())
            .concat()
    };
    assert!(shell(&commands[0]).contains("hello from the plain demo backend"));
    assert!(shell(&commands[1]).contains("hello from the secure demo backend"));
    let header = shell(&commands[2]);
    assert!(header.contains("version: 1 "), "{header}");
    assert!(header.contains("source: 127.0.0.1:"), "{header}");
    assert!(shell(&commands[3]).contains("421 Misdirected Request"));
    let refused = shell(&commands[4]);
    assert!(refused.contains("unrecognized name"), "{refused}");
    // A raw client: two requests on one connection, the second with `Connection: close`. Both
    // are answered (keep-alive), /proxy-header with this client's own address, and then the
    // backend closes: EOF within a second.
    let port: u16 = commands[0]
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {}", commands[0]));
    let mut raw = TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let me = raw.local_addr().unwrap();
    let started = Instant::now();
    raw.write_all(
        b"GET / HTTP/1.1\r\nHost: www.demo.test\r\n\r\n\
          GET /proxy-header HTTP/1.1\r\nHost: www.demo.test\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = Vec::new();
    let read = raw.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        read.is_ok() && started.elapsed() < Duration::from_secs(1),
        "no EOF within a second after `Connection: close`: {read:?}\n{answer}"
    );
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
    assert!(
        answer.contains("hello from the plain demo backend"),
        "{answer}"
    );
    assert!(answer.contains(&format!("source: {me} ")), "{answer}");
    assert!(
        answer.contains(&format!("destination: 127.0.0.1:{port} ")),
        "{answer}"
    );
    let _ = demo.kill();
    let _ = demo.wait();
}
