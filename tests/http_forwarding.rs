//! Issue 12, end to end: a route's forwarding field (`X-Forwarded-For`, RFC 7239 `Forwarded`) in
//! every HTTP/1 request of a connection, and the request framing that keeps it safe. The engine
//! runs in-process (a `Server` on a runtime of the test's own); the backends are real nginx (its
//! access log shows each request as a server read it: `$http_x_forwarded_for`, `$http_forwarded`,
//! `$connection`, `$connection_requests`) and small in-test servers that keep every byte they
//! are sent, the exact oracle: a backend must receive what the client sent with our field lines
//! added before each head's empty line, and no byte of a refused request or of what follows it.
//!
//! The smuggling vectors and the reasons for them are in `../shared/notes/http-forwarding.md`
//! ("Cases to test"). A missing nginx or curl skips its tests (`SIXGATE_REQUIRE_PEERS=1` fails
//! them instead).

mod peers;
#[path = "support/tls_hello.rs"]
mod tls_hello;

use core::net::{IpAddr, SocketAddr};
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use peers::{Running, Scratch, free_port, program};
use proptest::collection::vec as vec_of;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use sixgate::proxy::{Config, ForwardedField, Forwarding, Listener, Mode, ProxyOut, Route, Server};
use tls_hello::client_hello;

// ---------------------------------------------------------------------------------------------
// The engine

/// A server on a runtime of its own, shut down when dropped.
struct Engine {
    server: Option<Server>,
    runtime: tokio::runtime::Runtime,
}

impl Engine {
    fn start(listeners: Vec<Listener>, routes: Vec<Route>) -> Engine {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut config = Config {
            listeners,
            routes: routes.into_iter().map(Arc::new).collect(),
            ..Config::default()
        };
        // A connection a failed test left open delays the shutdown by a second at most.
        config.limits.drain_timeout = Duration::from_secs(1);
        let server = runtime
            .block_on(async { Server::start(config, Arc::new(())) })
            .unwrap();
        Engine {
            server: Some(server),
            runtime,
        }
    }

    /// Every listening address, in the order of the listeners.
    fn addrs(&self) -> Vec<SocketAddr> {
        self.server.as_ref().unwrap().local_addrs()
    }

    fn addr(&self) -> SocketAddr {
        self.addrs()[0]
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown());
        }
    }
}

/// The name every route of these tests serves unless it says otherwise; the byte vectors below
/// carry it in their Host lines.
const HOST: &str = "fwd.test";

fn listener(mode: Mode) -> Listener {
    Listener::new("127.0.0.1:0".parse().unwrap(), mode)
}

/// A listener that takes a PROXY header from loopback clients (and only with one).
fn proxied_listener() -> Listener {
    let mut listener = listener(Mode::Http);
    listener.accept_proxy_from = vec!["127.0.0.1/32".parse().unwrap()];
    listener
}

fn route(host: &str, backend: SocketAddr, forwarding: Forwarding) -> Route {
    let mut route = Route::new([host], [backend]).unwrap();
    route.forwarded = Some(Box::new(forwarding));
    route
}

/// `X-Forwarded-For` alone: one line per head, so the exact bytes are known.
fn xff() -> Forwarding {
    Forwarding {
        proto: false,
        ..Forwarding::new(ForwardedField::XForwardedFor)
    }
}

fn forwarded(proto: bool) -> Forwarding {
    Forwarding {
        proto,
        ..Forwarding::new(ForwardedField::Forwarded)
    }
}

fn trusting(mut forwarding: Forwarding, sources: &[&str]) -> Forwarding {
    forwarding.trust_from = sources.iter().map(|s| s.parse().unwrap()).collect();
    forwarding
}

/// What an [`xff`] route adds to each head of a client on 127.0.0.1.
const XFF_LOCAL: &[u8] = b"X-Forwarded-For: 127.0.0.1\r\n";

/// `head` (ending in its empty line) as a backend must get it: `fields` inserted just before the
/// empty line.
fn with_fields(head: &[u8], fields: &[u8]) -> Vec<u8> {
    assert!(head.ends_with(b"\r\n\r\n"), "not a head: {}", show(head));
    let at = head.len() - 2;
    [&head[..at], fields, &head[at..]].concat()
}

/// Bytes for a failure message.
fn show(bytes: &[u8]) -> String {
    if bytes.len() > 600 {
        format!("{}… ({} bytes)", bytes[..600].escape_ascii(), bytes.len())
    } else {
        bytes.escape_ascii().to_string()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// In-test backends: every byte each connection received, and a script that answers

/// What one connection to a [`Backend`] received so far, and whether it has ended.
#[derive(Default)]
struct Received {
    bytes: Mutex<Vec<u8>>,
    ended: AtomicBool,
}

/// A backend's side of one connection, for its script: reads are kept in [`Received`];
/// `taken` is how far the script has consumed them.
struct Conn {
    stream: TcpStream,
    received: Arc<Received>,
    taken: usize,
}

impl Conn {
    fn bytes(&self) -> Vec<u8> {
        lock(&self.received.bytes).clone()
    }

    fn len(&self) -> usize {
        lock(&self.received.bytes).len()
    }

    /// One read more; false at the end of the stream, an error or the read timeout.
    fn more(&mut self) -> bool {
        let mut buf = [0u8; 16384];
        match self.stream.read(&mut buf) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                lock(&self.received.bytes).extend_from_slice(&buf[..n]);
                true
            }
        }
    }

    /// Reads until `pattern` follows what was taken; takes up to its end.
    fn take_until(&mut self, pattern: &[u8]) -> Option<Vec<u8>> {
        loop {
            let bytes = self.bytes();
            if let Some(at) = find(&bytes[self.taken..], pattern) {
                let end = self.taken + at + pattern.len();
                let taken = bytes[self.taken..end].to_vec();
                self.taken = end;
                return Some(taken);
            }
            if !self.more() {
                return None;
            }
        }
    }

    /// Reads until `n` bytes were received in all; takes them.
    fn take_to(&mut self, n: usize) -> bool {
        while self.len() < n {
            if !self.more() {
                return false;
            }
        }
        self.taken = self.taken.max(n);
        true
    }

    fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Reads to the end of the stream (or the read timeout).
    fn drain(&mut self) {
        while self.more() {}
    }

    /// Reads for `time` at most, to see whether anything more comes.
    fn drain_for(&mut self, time: Duration) {
        let _ = self.stream.set_read_timeout(Some(time));
        self.drain();
    }

    /// Skips a PROXY v1 line at the start, if there is one.
    fn skip_proxy_line(&mut self) {
        while self.len() < 6 && self.more() {}
        if self.bytes().starts_with(b"PROXY ") {
            let _ = self.take_until(b"\r\n");
        }
    }
}

type Script = dyn Fn(&mut Conn) + Send + Sync;

/// A backend on a free port of `[::1]` running `script` on every connection, each on a thread
/// of its own; stopped when dropped.
struct Backend {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<Arc<Received>>>>,
    /// Connections handed out by [`Backend::next_received`].
    handed: Mutex<usize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    fn start(script: impl Fn(&mut Conn) + Send + Sync + 'static) -> Backend {
        let script: Arc<Script> = Arc::new(script);
        let listener = TcpListener::bind("[::1]:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let conns = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (all, stopped) = (Arc::clone(&conns), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(3)))
                    .unwrap();
                let received = Arc::new(Received::default());
                lock(&all).push(Arc::clone(&received));
                let script = Arc::clone(&script);
                std::thread::spawn(move || {
                    let mut conn = Conn {
                        stream,
                        received: Arc::clone(&received),
                        taken: 0,
                    };
                    script(&mut conn);
                    received.ended.store(true, Ordering::SeqCst);
                });
            }
        });
        Backend {
            addr,
            conns,
            handed: Mutex::new(0),
            stop,
            thread: Some(thread),
        }
    }

    /// Connection `i` (in the order accepted) once it has ended; `None` when it did not come
    /// within 5 s.
    fn received(&self, i: usize) -> Option<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let conn = lock(&self.conns).get(i).cloned();
            if let Some(conn) = conn {
                while !conn.ended.load(Ordering::SeqCst) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                return Some(lock(&conn.bytes).clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The next connection not yet handed out, once it has ended (empty when none came).
    fn next_received(&self) -> Vec<u8> {
        let mut handed = lock(&self.handed);
        match self.received(*handed) {
            Some(bytes) => {
                *handed += 1;
                bytes
            }
            None => Vec::new(),
        }
    }

    /// Every connection's bytes so far, after waiting (5 s at most) for all to end.
    fn all_ended(&self) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let conns = lock(&self.conns).clone();
        for conn in &conns {
            while !conn.ended.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        conns.iter().map(|c| lock(&c.bytes).clone()).collect()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The answers of the in-test backends; each ends in a newline, so the next status line
/// starts a line ([`statuses`]).
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
const OK_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";

/// Reads to the end, answers nothing.
fn silent(conn: &mut Conn) {
    conn.drain();
}

/// Answers [`OK`] each time the bytes received reach the next of `ends` (where each request
/// ends in the stream the backend should get), then reads to the end. It answers requests
/// without parsing them, so it needs no framing of its own, and a proxy that waits for each
/// answer before it forwards the next request is served too.
fn answer_at(ends: Arc<Mutex<Vec<usize>>>) -> impl Fn(&mut Conn) + Send + Sync {
    move |conn| {
        let ends = lock(&ends).clone();
        for end in ends {
            if !conn.take_to(end) {
                return;
            }
            conn.send(OK);
        }
        conn.drain();
    }
}

/// A small server for GETs: skips a PROXY v1 line, answers each GET head with 200 "ok", and
/// ends the connection after one that asks for it (HTTP/1.0 without keep-alive, `Connection:
/// close`), reading on for 300 ms first so that bytes sent after it would be seen. Anything but
/// a GET head is read to the end unanswered.
fn gets(conn: &mut Conn) {
    conn.skip_proxy_line();
    loop {
        let Some(head) = conn.take_until(b"\r\n\r\n") else {
            return;
        };
        if !head.starts_with(b"GET ") {
            conn.drain();
            return;
        }
        if ends_connection(&head) {
            conn.send(OK_CLOSE);
            conn.drain_for(Duration::from_millis(300));
            return;
        }
        conn.send(OK);
    }
}

/// An HTTP/1.0 head without keep-alive, or one with `Connection: close`.
fn ends_connection(head: &[u8]) -> bool {
    let head = head.to_ascii_lowercase();
    let request_line = &head[..find(&head, b"\r\n").unwrap_or(head.len())];
    if request_line.ends_with(b"http/1.0") {
        find(&head, b"keep-alive").is_none()
    } else {
        find(&head, b"\r\nconnection: close\r\n").is_some()
    }
}

// ---------------------------------------------------------------------------------------------
// Clients

/// Connected to `to`, no Nagle delay, reads waiting 100 ms at a time.
fn connect(to: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
    setup(&s);
    s
}

/// Connected from `source` (any address of 127.0.0.0/8).
fn connect_from(source: IpAddr, to: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let s = TcpStream::from(socket);
    setup(&s);
    s
}

fn setup(s: &TcpStream) {
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
}

/// Everything the proxy sends until it closes (`true`; a reset counts), or until `within`
/// passed (`false`).
fn read_to_close(s: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let closed = read_while(s, &mut got, within, |_| true);
    (got, closed)
}

/// Reads into `got` while `more(got)` and the stream is open, for `within` at most; whether the
/// stream closed.
fn read_while(
    s: &mut TcpStream,
    got: &mut Vec<u8>,
    within: Duration,
    more: impl Fn(&[u8]) -> bool,
) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 16384];
    while more(got) {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() >= deadline {
                    return false;
                }
            }
            Err(_) => return true,
        }
    }
    false
}

/// Reads until `got` holds `n` response heads (2 s at most).
fn read_heads(s: &mut TcpStream, got: &mut Vec<u8>, n: usize) {
    read_while(s, got, Duration::from_secs(2), |got| {
        got.windows(4).filter(|w| w == b"\r\n\r\n").count() < n
    });
}

/// The status codes of the responses in `answer`, in order: each status line starts the answer
/// or follows a newline.
fn statuses(answer: &[u8]) -> Vec<u16> {
    (0..answer.len())
        .filter(|&i| (i == 0 || answer[i - 1] == b'\n') && answer[i..].starts_with(b"HTTP/1."))
        .filter_map(|i| {
            core::str::from_utf8(answer.get(i + 9..i + 12)?)
                .ok()?
                .parse()
                .ok()
        })
        .collect()
}

/// Writes `pieces` one write each, a millisecond apart (so the proxy reads them apart), then
/// half-closes; answers everything the proxy sent back until it closed.
fn send_in_pieces(to: SocketAddr, pieces: &[&[u8]]) -> Vec<u8> {
    let mut s = connect(to);
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        if s.write_all(piece).is_err() {
            break;
        }
    }
    let _ = s.shutdown(Shutdown::Write);
    read_to_close(&mut s, Duration::from_secs(3)).0
}

/// `bytes` cut at `cuts` (ascending), empty pieces left out.
fn cut<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut from = 0;
    for &at in cuts.iter().chain([&bytes.len()]) {
        if at > from {
            pieces.push(&bytes[from..at]);
            from = at;
        }
    }
    pieces
}

/// The field lines of the first head in `bytes`, as (name, value) with the value's whitespace
/// trimmed.
fn fields(bytes: &[u8]) -> Vec<(String, String)> {
    let head = &bytes[..find(bytes, b"\r\n\r\n").map_or(bytes.len(), |e| e + 2)];
    String::from_utf8_lossy(head)
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, value) = l.split_once(':').unwrap_or((l, ""));
            (name.to_owned(), value.trim().to_owned())
        })
        .collect()
}

/// Every value of the field `name` (any case), joined as one list: what a recipient reads
/// (RFC 9110 §5.3), whether the proxy appended a line or to a line.
fn list(fields: &[(String, String)], name: &str) -> String {
    let values: Vec<&str> = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    values.join(", ")
}

/// The fields other than `names`, in order.
fn others(fields: &[(String, String)], names: &[&str]) -> Vec<(String, String)> {
    fields
        .iter()
        .filter(|(n, _)| !names.iter().any(|m| n.eq_ignore_ascii_case(m)))
        .cloned()
        .collect()
}

/// The heads in a stream of body-less requests.
fn heads(bytes: &[u8]) -> Vec<&[u8]> {
    let mut heads = Vec::new();
    let mut rest = bytes;
    while let Some(end) = find(rest, b"\r\n\r\n") {
        heads.push(&rest[..end + 4]);
        rest = &rest[end + 4..];
    }
    heads
}

// ---------------------------------------------------------------------------------------------
// nginx

/// nginx with two servers on `[::1]`: `plain`, and `proxied` (which takes a PROXY header);
/// each answers `ok <uri>` and logs every request in one access log, tab-separated.
struct Nginx {
    _running: Running,
    dir: Scratch,
    plain: SocketAddr,
    proxied: SocketAddr,
}

/// One line of [`Nginx`]'s access log; a value nginx had not is "".
#[derive(Debug, Clone, PartialEq)]
struct LogLine {
    connection: u64,
    connection_requests: u64,
    request: String,
    status: u16,
    xff: String,
    forwarded: String,
    proto: String,
    proxy_protocol_addr: String,
}

impl Nginx {
    fn start(name: &str) -> Option<Nginx> {
        let nginx = program("nginx")?;
        let dir = Scratch::new(name);
        let (plain, proxied) = (free_port(), free_port());
        let log = dir.path("access.log");
        let log = log.display();
        // escape=none: Forwarded's quotes stay quotes.
        let http = format!(
            "  log_format fwd escape=none '$connection\\t$connection_requests\\t$request\\t$status\\t$http_x_forwarded_for\\t$http_forwarded\\t$http_x_forwarded_proto\\t$proxy_protocol_addr';\n\
               server {{ listen [::1]:{plain}; access_log {log} fwd; location / {{ return 200 \"ok $request_uri\\n\"; }} }}\n\
               server {{ listen [::1]:{proxied} proxy_protocol; access_log {log} fwd; location / {{ return 200 \"ok $request_uri\\n\"; }} }}"
        );
        let plain = SocketAddr::from((core::net::Ipv6Addr::LOCALHOST, plain));
        let proxied = SocketAddr::from((core::net::Ipv6Addr::LOCALHOST, proxied));
        let running = peers::start_nginx(&nginx, &dir, "", &http, None, plain);
        Some(Nginx {
            _running: running,
            dir,
            plain,
            proxied,
        })
    }

    /// The access log once it has `at_least` lines (5 s at most), read again 200 ms later so
    /// that lines which should not be there have time to show.
    fn log(&self, at_least: usize) -> Vec<LogLine> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.read_log().len() < at_least && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        self.read_log()
    }

    fn read_log(&self) -> Vec<LogLine> {
        let text = std::fs::read_to_string(self.dir.path("access.log")).unwrap_or_default();
        text.lines()
            .map(|line| {
                let f: Vec<&str> = line
                    .split('\t')
                    .map(|v| if v == "-" { "" } else { v })
                    .collect();
                assert_eq!(f.len(), 8, "a log line of eight fields: {line:?}");
                LogLine {
                    connection: f[0].parse().unwrap(),
                    connection_requests: f[1].parse().unwrap(),
                    request: f[2].to_owned(),
                    status: f[3].parse().unwrap(),
                    xff: f[4].to_owned(),
                    forwarded: f[5].to_owned(),
                    proto: f[6].to_owned(),
                    proxy_protocol_addr: f[7].to_owned(),
                }
            })
            .collect()
    }
}

/// curl's stdout and stderr, and whether it succeeded.
fn curl(curl: &std::path::Path, args: &[&str]) -> (String, String, bool) {
    let out = Command::new(curl).args(args).output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

// ---------------------------------------------------------------------------------------------
// Good requests, against nginx

#[test]
fn nginx_three_keep_alive_requests_from_curl_each_carry_the_field() {
    let (Some(curl_path), Some(nginx)) = (program("curl"), Nginx::start("fwd-keep-alive")) else {
        return;
    };
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(
            HOST,
            nginx.plain,
            Forwarding::new(ForwardedField::XForwardedFor),
        )],
    );
    let base = format!("http://{}", engine.addr());
    let urls = ["one", "two", "three"].map(|p| format!("{base}/{p}"));
    let mut args = vec!["-sv", "-H", "Host: fwd.test"];
    args.extend(urls.iter().map(String::as_str));
    let (out, err, ok) = curl(&curl_path, &args);
    assert!(ok, "{err}");
    assert_eq!(out, "ok /one\nok /two\nok /three\n", "{err}");
    assert!(
        err.contains("Re-using existing connection"),
        "curl used one connection: {err}"
    );

    let log = nginx.log(3);
    let requests: Vec<&str> = log.iter().map(|l| l.request.as_str()).collect();
    assert_eq!(
        requests,
        [
            "GET /one HTTP/1.1",
            "GET /two HTTP/1.1",
            "GET /three HTTP/1.1"
        ]
    );
    for (i, line) in log.iter().enumerate() {
        assert_eq!(
            (line.connection, line.connection_requests),
            (log[0].connection, i as u64 + 1),
            "one backend connection, request {}: {line:?}",
            i + 1
        );
        assert_eq!(
            (
                line.xff.as_str(),
                line.proto.as_str(),
                line.forwarded.as_str()
            ),
            ("127.0.0.1", "http", ""),
            "request {}: {line:?}",
            i + 1
        );
    }
}

#[test]
fn nginx_two_pipelined_requests_in_one_write_each_carry_the_field() {
    let Some(nginx) = Nginx::start("fwd-pipelined") else {
        return;
    };
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, nginx.plain, xff())],
    );
    let mut s = connect(engine.addr());
    s.write_all(b"GET /first HTTP/1.1\r\nHost: fwd.test\r\n\r\nGET /second HTTP/1.1\r\nHost: fwd.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (answer, closed) = read_to_close(&mut s, Duration::from_secs(3));
    assert!(closed, "{}", show(&answer));
    assert_eq!(statuses(&answer), [200, 200], "{}", show(&answer));
    assert!(find(&answer, b"ok /first\n").unwrap() < find(&answer, b"ok /second\n").unwrap());

    let log = nginx.log(2);
    let seen: Vec<_> = log
        .iter()
        .map(|l| (l.request.as_str(), l.connection_requests, l.xff.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET /first HTTP/1.1", 1, "127.0.0.1"),
            ("GET /second HTTP/1.1", 2, "127.0.0.1")
        ]
    );
}

/// A chunked body with an extension (quoted) and a trailer field: every part of the chunked
/// framing that can hide a request boundary.
const CHUNKED_WITH_EXTENSION_AND_TRAILER: &[u8] = b"2;a=\"b\"\r\nxx\r\n0\r\nX-T: 1\r\n\r\n";

#[test]
fn nginx_chunked_post_then_get_on_one_connection() {
    let Some(nginx) = Nginx::start("fwd-chunked") else {
        return;
    };
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, nginx.plain, xff())],
    );
    let mut s = connect(engine.addr());
    let sent = [
        b"POST /upload HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
        CHUNKED_WITH_EXTENSION_AND_TRAILER,
        b"GET /next HTTP/1.1\r\nHost: fwd.test\r\nConnection: close\r\n\r\n",
    ]
    .concat();
    s.write_all(&sent).unwrap();
    let (answer, closed) = read_to_close(&mut s, Duration::from_secs(3));
    assert!(closed, "{}", show(&answer));
    assert_eq!(statuses(&answer), [200, 200], "{}", show(&answer));

    let log = nginx.log(2);
    let seen: Vec<_> = log
        .iter()
        .map(|l| {
            (
                l.request.as_str(),
                l.status,
                l.connection_requests,
                l.xff.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("POST /upload HTTP/1.1", 200, 1, "127.0.0.1"),
            ("GET /next HTTP/1.1", 200, 2, "127.0.0.1")
        ]
    );
}

#[test]
fn nginx_expect_100_continue_from_curl() {
    let (Some(curl_path), Some(nginx)) = (program("curl"), Nginx::start("fwd-expect")) else {
        return;
    };
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, nginx.plain, xff())],
    );
    let body = nginx.dir.write("upload.txt", &"x".repeat(2048));
    let base = format!("http://{}", engine.addr());
    let started = Instant::now();
    // An upload that waits for the 100 (5 s at most), then a GET on the same connection: it
    // is parsed right only if the proxy counted the body.
    let (out, err, ok) = curl(
        &curl_path,
        &[
            "-sv",
            "--expect100-timeout",
            "5",
            "-H",
            "Host: fwd.test",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &format!("@{}", body.display()),
            &format!("{base}/upload"),
            "--next",
            "-H",
            "Host: fwd.test",
            &format!("{base}/after"),
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out, "ok /upload\nok /after\n", "{err}");
    assert!(err.contains("< HTTP/1.1 100 Continue"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the 100 came at once, not after curl's wait: {:?}",
        started.elapsed()
    );
    let log = nginx.log(2);
    let seen: Vec<_> = log
        .iter()
        .map(|l| {
            (
                l.request.as_str(),
                l.status,
                l.connection_requests,
                l.xff.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("POST /upload HTTP/1.1", 200, 1, "127.0.0.1"),
            ("GET /after HTTP/1.1", 200, 2, "127.0.0.1")
        ]
    );
}

#[test]
fn nginx_sees_forged_fields_replaced_and_a_trusted_list_appended_to() {
    let Some(nginx) = Nginx::start("fwd-trust") else {
        return;
    };
    let forwarding = trusting(
        Forwarding::new(ForwardedField::XForwardedFor),
        &["127.0.0.2/32"],
    );
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, nginx.plain, forwarding)],
    );
    // Untrusted (127.0.0.1): two forged lines, in two spellings, and a forged proto.
    let mut s = connect(engine.addr());
    s.write_all(b"GET /untrusted HTTP/1.1\r\nHost: fwd.test\r\nx-forwarded-for: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 7.7.7.7\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(
        statuses(&read_to_close(&mut s, Duration::from_secs(3)).0),
        [200]
    );
    // Trusted (127.0.0.2): its list is kept and the address it connected from appended.
    let mut s = connect_from("127.0.0.2".parse().unwrap(), engine.addr());
    s.write_all(b"GET /trusted HTTP/1.1\r\nHost: fwd.test\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(
        statuses(&read_to_close(&mut s, Duration::from_secs(3)).0),
        [200]
    );

    let log = nginx.log(2);
    let seen: Vec<_> = log
        .iter()
        .map(|l| (l.request.as_str(), l.xff.as_str(), l.proto.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET /untrusted HTTP/1.1", "127.0.0.1", "http"),
            ("GET /trusted HTTP/1.1", "6.6.6.6, 127.0.0.2", "http")
        ]
    );
}

#[test]
fn nginx_sees_an_ipv6_client_quoted_and_bracketed_in_forwarded() {
    let Some(nginx) = Nginx::start("fwd-ipv6") else {
        return;
    };
    let engine = Engine::start(
        vec![Listener::new("[::1]:0".parse().unwrap(), Mode::Http)],
        vec![route(HOST, nginx.plain, forwarded(true))],
    );
    let mut s = connect(engine.addr());
    s.write_all(b"GET /six HTTP/1.1\r\nHost: fwd.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(
        statuses(&read_to_close(&mut s, Duration::from_secs(3)).0),
        [200]
    );
    let log = nginx.log(1);
    let seen: Vec<_> = log
        .iter()
        .map(|l| (l.request.as_str(), l.forwarded.as_str(), l.xff.as_str()))
        .collect();
    assert_eq!(
        seen,
        [(
            "GET /six HTTP/1.1",
            "for=\"[::1]\";proto=http;host=fwd.test",
            ""
        )]
    );
}

#[test]
fn nginx_sees_the_client_of_a_proxy_header_in_the_field_and_in_the_header_sent_on() {
    let Some(nginx) = Nginx::start("fwd-proxy-in") else {
        return;
    };
    // The proxy before us (127.0.0.1) is trusted for its PROXY header and for forwarding
    // fields; the client it names is not, so the client's forged list goes.
    let plain = route(HOST, nginx.plain, trusting(xff(), &["127.0.0.1/32"]));
    let mut both = route("both.test", nginx.proxied, xff());
    both.proxy_protocol = ProxyOut::V1;
    let engine = Engine::start(vec![proxied_listener()], vec![plain, both]);
    let port = engine.addr().port();
    for (path, host) in [("/plain", HOST), ("/both", "both.test")] {
        let mut s = connect(engine.addr());
        let request = format!(
            "PROXY TCP4 203.0.113.7 127.0.0.1 40000 {port}\r\nGET {path} HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n"
        );
        s.write_all(request.as_bytes()).unwrap();
        let answer = read_to_close(&mut s, Duration::from_secs(3)).0;
        assert_eq!(statuses(&answer), [200], "{path}: {}", show(&answer));
    }
    let log = nginx.log(2);
    let seen: Vec<_> = log
        .iter()
        .map(|l| {
            (
                l.request.as_str(),
                l.xff.as_str(),
                l.proxy_protocol_addr.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("GET /plain HTTP/1.1", "203.0.113.7", ""),
            ("GET /both HTTP/1.1", "203.0.113.7", "203.0.113.7")
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Good requests, byte for byte

#[test]
fn every_request_of_a_keep_alive_connection_gets_the_field_last() {
    let ends = Arc::new(Mutex::new(Vec::new()));
    let backend = Backend::start(answer_at(Arc::clone(&ends)));
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, backend.addr, xff())],
    );
    let requests: [&[u8]; 3] = [
        b"GET /1 HTTP/1.1\r\nHost: fwd.test\r\nAccept: */*\r\n\r\n",
        b"POST /2 HTTP/1.1\r\nHost: fwd.test\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /3 HTTP/1.1\r\nHost: fwd.test\r\nUser-Agent: t\r\n\r\n",
    ];
    let bodies: [&[u8]; 3] = [b"", b"hello", b""];
    let mut expected = Vec::new();
    for (request, body) in requests.iter().zip(bodies) {
        expected.extend(with_fields(
            &request[..request.len() - body.len()],
            XFF_LOCAL,
        ));
        expected.extend_from_slice(body);
        lock(&ends).push(expected.len());
    }
    // One request at a time, each after the answer to the one before.
    let mut s = connect(engine.addr());
    let mut answer = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        s.write_all(request).unwrap();
        read_heads(&mut s, &mut answer, i + 1);
        assert_eq!(
            statuses(&answer).len(),
            i + 1,
            "no answer to request {}: the backend got {}",
            i + 1,
            show(&backend_so_far(&backend))
        );
    }
    s.shutdown(Shutdown::Write).unwrap();
    read_to_close(&mut s, Duration::from_secs(3));
    let received = backend.next_received();
    assert!(
        received == expected,
        "got      {}\nexpected {}",
        show(&received),
        show(&expected)
    );
}

/// What the backend's connections received so far, for a failure message.
fn backend_so_far(backend: &Backend) -> Vec<u8> {
    lock(&backend.conns)
        .iter()
        .flat_map(|c| lock(&c.bytes).clone())
        .collect()
}

#[test]
fn x_forwarded_proto_comes_with_x_forwarded_for_when_asked() {
    let backend = Backend::start(silent);
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(
            HOST,
            backend.addr,
            Forwarding::new(ForwardedField::XForwardedFor),
        )],
    );
    let first: &[u8] = b"GET /a HTTP/1.1\r\nHost: fwd.test\r\n\r\n";
    let second: &[u8] = b"GET /b HTTP/1.1\r\nHost: fwd.test\r\nAccept: */*\r\n\r\n";
    send_in_pieces(engine.addr(), &[&[first, second].concat()]);
    let received = backend.next_received();
    // The two lines end each head; their order between them is the proxy's choice.
    let xfp: &[u8] = b"X-Forwarded-Proto: http\r\n";
    let either = [[XFF_LOCAL, xfp].concat(), [xfp, XFF_LOCAL].concat()]
        .map(|lines| [with_fields(first, &lines), with_fields(second, &lines)].concat());
    assert!(
        either.contains(&received),
        "got      {}\nexpected {}",
        show(&received),
        show(&either[0])
    );
}

#[test]
fn forwarded_names_the_client_the_proto_and_the_host_as_sent() {
    let backend = Backend::start(silent);
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![
            route("rfc.test", backend.addr, forwarded(true)),
            route("noproto.test", backend.addr, forwarded(false)),
        ],
    );
    let cases: [(&[u8], &[u8]); 3] = [
        (
            b"GET / HTTP/1.1\r\nHost: rfc.test\r\n\r\n",
            b"Forwarded: for=127.0.0.1;proto=http;host=rfc.test\r\n",
        ),
        // A port makes the host a quoted string (':' is not a token character).
        (
            b"GET / HTTP/1.1\r\nHost: rfc.test:8080\r\n\r\n",
            b"Forwarded: for=127.0.0.1;proto=http;host=\"rfc.test:8080\"\r\n",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: noproto.test\r\n\r\n",
            b"Forwarded: for=127.0.0.1;host=noproto.test\r\n",
        ),
    ];
    for (head, field) in cases {
        send_in_pieces(engine.addr(), &[head]);
        let received = backend.next_received();
        let expected = with_fields(head, field);
        assert!(
            received == expected,
            "got      {}\nexpected {}",
            show(&received),
            show(&expected)
        );
    }
}

#[test]
fn ipv6_and_ipv4_mapped_clients_of_a_proxy_header_are_written_as_each_field_wants() {
    let backend = Backend::start(silent);
    let engine = Engine::start(
        vec![proxied_listener()],
        vec![
            route("xff.test", backend.addr, xff()),
            route("rfc.test", backend.addr, forwarded(false)),
        ],
    );
    let cases: [(&str, &str, &str); 5] = [
        (
            "PROXY TCP6 2001:db8::1 ::1 40000 80\r\n",
            "xff.test",
            "X-Forwarded-For: 2001:db8::1",
        ),
        (
            "PROXY TCP6 2001:db8::1 ::1 40000 80\r\n",
            "rfc.test",
            "Forwarded: for=\"[2001:db8::1]\";host=rfc.test",
        ),
        // An IPv4 client as a dual-stack socket sees it: written as IPv4.
        (
            "PROXY TCP6 ::ffff:203.0.113.8 ::1 40000 80\r\n",
            "xff.test",
            "X-Forwarded-For: 203.0.113.8",
        ),
        (
            "PROXY TCP6 ::ffff:203.0.113.8 ::1 40000 80\r\n",
            "rfc.test",
            "Forwarded: for=203.0.113.8;host=rfc.test",
        ),
        (
            "PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n",
            "xff.test",
            "X-Forwarded-For: 203.0.113.7",
        ),
    ];
    for (proxy, host, field) in cases {
        let head = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        send_in_pieces(
            engine.addr(),
            &[&[proxy.as_bytes(), head.as_bytes()].concat()],
        );
        let received = backend.next_received();
        let expected = with_fields(head.as_bytes(), format!("{field}\r\n").as_bytes());
        assert!(
            received == expected,
            "{proxy:?}\ngot      {}\nexpected {}",
            show(&received),
            show(&expected)
        );
    }
}

#[test]
fn untrusted_clients_forwarding_fields_are_removed_in_every_request() {
    let backend = Backend::start(silent);
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![
            route(
                HOST,
                backend.addr,
                Forwarding::new(ForwardedField::XForwardedFor),
            ),
            route("rfc.test", backend.addr, forwarded(true)),
        ],
    );
    // The forged fields in both requests of a connection, in several spellings.
    let xff_request: &[u8] = b"GET /a HTTP/1.1\r\nHost: fwd.test\r\nX-Forwarded-For: 6.6.6.6\r\nX-Other: 1\r\nx-forwarded-proto: https\r\nX-FORWARDED-FOR: 7.7.7.7\r\n\r\n";
    let rfc_request: &[u8] = b"GET /a HTTP/1.1\r\nHost: rfc.test\r\nForwarded: for=6.6.6.6;proto=https\r\nX-Other: 1\r\nforwarded: for=7.7.7.7\r\n\r\n";
    forged_fields_are_replaced(
        &engine,
        &backend,
        xff_request,
        &[
            ("X-Forwarded-For", "127.0.0.1"),
            ("X-Forwarded-Proto", "http"),
        ],
    );
    forged_fields_are_replaced(
        &engine,
        &backend,
        rfc_request,
        &[("Forwarded", "for=127.0.0.1;proto=http;host=rfc.test")],
    );
}

/// `request` twice on one connection: in each head the backend gets, the fields named in
/// `wanted` have just the values given, and the other lines are as sent.
fn forged_fields_are_replaced(
    engine: &Engine,
    backend: &Backend,
    request: &[u8],
    wanted: &[(&str, &str)],
) {
    let names: Vec<&str> = wanted.iter().map(|(name, _)| *name).collect();
    send_in_pieces(engine.addr(), &[&[request, request].concat()]);
    let received = backend.next_received();
    let got = heads(&received);
    assert_eq!(got.len(), 2, "two requests: {}", show(&received));
    for head in got {
        let fields = fields(head);
        for (name, value) in wanted {
            assert_eq!(list(&fields, name), *value, "{name} in {}", show(head));
        }
        assert_eq!(
            others(&fields, &names),
            others(&self::fields(request), &names),
            "the other lines as sent: {}",
            show(head)
        );
        assert!(head.starts_with(b"GET /a HTTP/1.1\r\n"));
    }
}

#[test]
fn trusted_clients_forwarding_fields_are_kept_and_ours_appended() {
    let backend = Backend::start(silent);
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![
            route(HOST, backend.addr, trusting(xff(), &["127.0.0.2/32"])),
            route(
                "rfc.test",
                backend.addr,
                trusting(forwarded(true), &["127.0.0.2/32"]),
            ),
        ],
    );
    let cases: [(&[u8], &str, &str); 2] = [
        (
            b"GET / HTTP/1.1\r\nHost: fwd.test\r\nX-Forwarded-For: 6.6.6.6\r\nX-Other: 1\r\n\r\n",
            "X-Forwarded-For",
            "6.6.6.6, 127.0.0.2",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: rfc.test\r\nForwarded: for=6.6.6.6\r\nX-Other: 1\r\n\r\n",
            "Forwarded",
            "for=6.6.6.6, for=127.0.0.2;proto=http;host=rfc.test",
        ),
    ];
    for (request, name, value) in cases {
        let mut s = connect_from("127.0.0.2".parse().unwrap(), engine.addr());
        s.write_all(request).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        read_to_close(&mut s, Duration::from_secs(3));
        let received = backend.next_received();
        let fields = fields(&received);
        assert_eq!(list(&fields, name), value, "{}", show(&received));
        assert_eq!(
            others(&fields, &[name]),
            others(&self::fields(request), &[name]),
            "the other lines as sent: {}",
            show(&received)
        );
    }
}

/// Legal framings that look odd: each must pass untouched, and the GET after it must be read
/// as the next request.
const LEGAL: [(&str, &[u8], &[u8]); 3] = [
    // chunk-size is 1*HEXDIG, unbounded: a parser that counts digits instead of checking
    // overflow refuses it.
    (
        "chunk size 0000000000000000002",
        b"POST /zeros HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"0000000000000000002\r\nxx\r\n0\r\n\r\n",
    ),
    // An extension with a quoted value and a trailer field.
    (
        "chunk extension and trailer",
        b"POST /ext HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: chunked\r\n\r\n",
        CHUNKED_WITH_EXTENSION_AND_TRAILER,
    ),
    // Coding names ignore case (RFC 9112 §7), and a chunk size may be upper-case hex.
    (
        "Transfer-Encoding: Chunked",
        b"POST /case HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: Chunked\r\n\r\n",
        b"A\r\n0123456789\r\n0\r\n\r\n",
    ),
];

/// The request after each case in [`LEGAL`] and others: it must arrive as a request of its own.
const GET_NEXT: &[u8] = b"GET /next HTTP/1.1\r\nHost: fwd.test\r\n\r\n";

#[test]
fn legal_but_unusual_framings_pass_untouched() {
    let ends = Arc::new(Mutex::new(Vec::new()));
    let backend = Backend::start(answer_at(Arc::clone(&ends)));
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, backend.addr, xff())],
    );
    let mut failed = Vec::new();
    for (name, head, body) in LEGAL {
        let first = [with_fields(head, XFF_LOCAL), body.to_vec()].concat();
        let expected = [first.clone(), with_fields(GET_NEXT, XFF_LOCAL)].concat();
        *lock(&ends) = vec![first.len(), expected.len()];
        let answer = send_in_pieces(engine.addr(), &[&[head, body, GET_NEXT].concat()]);
        let received = backend.next_received();
        if received != expected || statuses(&answer) != [200, 200] {
            failed.push(format!(
                "{name}: answers {:?}\n  got      {}\n  expected {}",
                statuses(&answer),
                show(&received),
                show(&expected)
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// A GET whose 30-byte body is a whole request: the body is data, never a request of its own,
/// and gets no field.
const REQUEST_SHAPED_BODY: &[u8] = b"GET /sub HTTP/1.1\r\nHost: a\r\n\r\n";

#[test]
fn a_body_shaped_like_a_request_is_forwarded_as_body() {
    assert_eq!(REQUEST_SHAPED_BODY.len(), 30);
    let ends = Arc::new(Mutex::new(Vec::new()));
    let backend = Backend::start(answer_at(Arc::clone(&ends)));
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, backend.addr, xff())],
    );
    let head: &[u8] = b"GET /outer HTTP/1.1\r\nHost: fwd.test\r\nContent-Length: 30\r\n\r\n";
    let first = [with_fields(head, XFF_LOCAL), REQUEST_SHAPED_BODY.to_vec()].concat();
    let expected = [first.clone(), with_fields(GET_NEXT, XFF_LOCAL)].concat();
    *lock(&ends) = vec![first.len(), expected.len()];
    let answer = send_in_pieces(
        engine.addr(),
        &[&[head, REQUEST_SHAPED_BODY, GET_NEXT].concat()],
    );
    let received = backend.next_received();
    assert!(
        received == expected,
        "got      {}\nexpected {}",
        show(&received),
        show(&expected)
    );
    assert_eq!(statuses(&answer), [200, 200], "{}", show(&answer));
}

/// A request that asks for a 100 before it sends its 2-byte body.
const EXPECT_HEAD: &[u8] =
    b"POST /upload HTTP/1.1\r\nHost: fwd.test\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n";
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[test]
fn expect_100_continue_sends_the_head_at_once_and_counts_the_body() {
    // The backend answers the head alone with a 100, then the body with a 200, then the GET.
    let backend = Backend::start(|conn: &mut Conn| {
        if conn.take_until(b"\r\n\r\n").is_none() {
            return;
        }
        conn.send(CONTINUE);
        let body_end = conn.taken + 2;
        if !conn.take_to(body_end) {
            return;
        }
        conn.send(OK);
        if conn.take_until(b"\r\n\r\n").is_some() {
            conn.send(OK);
        }
        conn.drain();
    });
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, backend.addr, xff())],
    );
    let mut s = connect(engine.addr());
    s.write_all(EXPECT_HEAD).unwrap();
    let mut answer = Vec::new();
    read_heads(&mut s, &mut answer, 1);
    assert_eq!(
        answer,
        CONTINUE,
        "the head went on before its body and the 100 came back; the backend got {}",
        show(&backend_so_far(&backend))
    );
    s.write_all(&[b"ok".as_slice(), GET_NEXT].concat()).unwrap();
    read_heads(&mut s, &mut answer, 3);
    s.shutdown(Shutdown::Write).unwrap();
    read_to_close(&mut s, Duration::from_secs(3));
    assert_eq!(statuses(&answer), [100, 200, 200], "{}", show(&answer));
    let received = backend.next_received();
    let expected = [
        with_fields(EXPECT_HEAD, XFF_LOCAL),
        b"ok".to_vec(),
        with_fields(GET_NEXT, XFF_LOCAL),
    ]
    .concat();
    assert!(
        received == expected,
        "got      {}\nexpected {}",
        show(&received),
        show(&expected)
    );
}

/// A WebSocket opening handshake (RFC 6455 §1.3).
const UPGRADE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: fwd.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
const SWITCHING: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
/// The server's first frame: text "hello", unmasked.
const SERVER_FRAME: &[u8] = b"\x81\x05hello";
/// A masked text frame "hi", sent right behind the handshake (held until the 101 arrives).
const CLIENT_FRAME: &[u8] = b"\x81\x82\x01\x02\x03\x04\x69\x6b";
/// After the switch, bytes that would be refused as HTTP (bare LFs, NUL, a bare CR) and that
/// look like a request: raw now, they pass as they are, with no field.
const RAW_AFTER_SWITCH: &[u8] = b"GET /raw HTTP/1.1\nHost: fwd.test\n\n\0\r";

#[test]
fn websocket_upgrade_relays_raw_bytes_both_ways_after_the_101() {
    // The backend answers the handshake with a 101 and its own frame, then echoes every byte.
    let backend = Backend::start(|conn: &mut Conn| {
        if conn.take_until(b"\r\n\r\n").is_none() {
            return;
        }
        conn.send(SWITCHING);
        conn.send(SERVER_FRAME);
        loop {
            let bytes = conn.bytes();
            if bytes.len() > conn.taken {
                let fresh = bytes[conn.taken..].to_vec();
                conn.taken = bytes.len();
                conn.send(&fresh);
            } else if !conn.more() {
                return;
            }
        }
    });
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, backend.addr, xff())],
    );
    let mut s = connect(engine.addr());
    s.write_all(&[UPGRADE, CLIENT_FRAME].concat()).unwrap();
    let mut answer = Vec::new();
    let want = SWITCHING.len() + SERVER_FRAME.len() + CLIENT_FRAME.len();
    read_while(&mut s, &mut answer, Duration::from_secs(2), |got| {
        got.len() < want
    });
    s.write_all(RAW_AFTER_SWITCH).unwrap();
    let want = want + RAW_AFTER_SWITCH.len();
    read_while(&mut s, &mut answer, Duration::from_secs(2), |got| {
        got.len() < want
    });
    s.shutdown(Shutdown::Write).unwrap();
    let (rest, closed) = read_to_close(&mut s, Duration::from_secs(3));
    answer.extend(rest);
    assert!(closed);
    assert_eq!(
        show(&answer),
        show(&[SWITCHING, SERVER_FRAME, CLIENT_FRAME, RAW_AFTER_SWITCH].concat()),
        "the 101, the server's frame, and the echo of every client byte"
    );
    let received = backend.next_received();
    let expected = [
        with_fields(UPGRADE, XFF_LOCAL),
        CLIENT_FRAME.to_vec(),
        RAW_AFTER_SWITCH.to_vec(),
    ]
    .concat();
    assert!(
        received == expected,
        "got      {}\nexpected {}",
        show(&received),
        show(&expected)
    );
}

const UPGRADE_REQUIRED: &[u8] = b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n";
/// Sent right behind a handshake the backend refuses: a proxy that went raw on the request
/// (not on the 101) would pass it unchecked and without our field (0ang3el/websocket-smuggle).
const GET_AFTER: &[u8] = b"GET /after HTTP/1.1\r\nHost: fwd.test\r\n\r\n";

#[test]
fn a_refused_upgrade_keeps_the_connection_parsed() {
    let backend = Backend::start(|conn: &mut Conn| {
        if conn.take_until(b"\r\n\r\n").is_none() {
            return;
        }
        conn.send(UPGRADE_REQUIRED);
        if conn.take_until(b"\r\n\r\n").is_some() {
            conn.send(OK);
        }
        conn.drain();
    });
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, backend.addr, xff())],
    );
    let answer = send_in_pieces(engine.addr(), &[&[UPGRADE, GET_AFTER].concat()]);
    assert_eq!(statuses(&answer), [426, 200], "{}", show(&answer));
    let received = backend.next_received();
    let expected = [
        with_fields(UPGRADE, XFF_LOCAL),
        with_fields(GET_AFTER, XFF_LOCAL),
    ]
    .concat();
    assert!(
        received == expected,
        "got      {}\nexpected {}",
        show(&received),
        show(&expected)
    );
}

#[test]
fn a_request_that_ends_the_connection_is_the_last_forwarded() {
    let backend = Backend::start(gets);
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, backend.addr, xff())],
    );
    let second_10: &[u8] = b"GET /two HTTP/1.0\r\nHost: fwd.test\r\n\r\n";
    let second_11: &[u8] = b"GET /two HTTP/1.1\r\nHost: fwd.test\r\n\r\n";
    // (first, second, whether the second is forwarded)
    let cases: [(&[u8], &[u8], bool); 3] = [
        // HTTP/1.0 persists only with keep-alive (RFC 9112 §9.3).
        (
            b"GET /one HTTP/1.0\r\nHost: fwd.test\r\n\r\n",
            second_10,
            false,
        ),
        (
            b"GET /one HTTP/1.1\r\nHost: fwd.test\r\nConnection: close\r\n\r\n",
            second_11,
            false,
        ),
        (
            b"GET /one HTTP/1.0\r\nHost: fwd.test\r\nConnection: keep-alive\r\n\r\n",
            second_10,
            true,
        ),
    ];
    for (first, second, both) in cases {
        let mut s = connect(engine.addr());
        s.write_all(&[first, second].concat()).unwrap();
        let (answer, closed) = read_to_close(&mut s, Duration::from_secs(3));
        assert!(closed, "{}", show(first));
        assert_eq!(statuses(&answer).first(), Some(&200), "{}", show(&answer));
        let received = backend.next_received();
        let mut expected = with_fields(first, XFF_LOCAL);
        if both {
            expected.extend(with_fields(second, XFF_LOCAL));
        }
        assert!(
            received == expected,
            "after {}\ngot      {}\nexpected {}",
            show(first),
            show(&received),
            show(&expected)
        );
    }
}

/// The preface, an empty SETTINGS frame, and a HEADERS frame (END_STREAM, END_HEADERS) with
/// `:method GET`, `:scheme http`, `:path /` and `:authority fwd.test` (a literal with
/// incremental indexing, name index 1).
const H2C_PRIOR_KNOWLEDGE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\
    \x00\x00\x00\x04\x00\x00\x00\x00\x00\
    \x00\x00\x0d\x01\x05\x00\x00\x00\x01\x82\x86\x84\x41\x08fwd.test";

#[test]
fn h2c_with_prior_knowledge_is_relayed_untouched() {
    let backend = Backend::start(silent);
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, backend.addr, xff())],
    );
    send_in_pieces(engine.addr(), &[H2C_PRIOR_KNOWLEDGE]);
    let received = backend.next_received();
    assert_eq!(show(&received), show(H2C_PRIOR_KNOWLEDGE));
}

#[test]
fn an_auto_listener_adds_the_field_to_http_and_relays_tls_untouched() {
    let backend = Backend::start(silent);
    let engine = Engine::start(
        vec![listener(Mode::Auto)],
        vec![route(HOST, backend.addr, xff())],
    );
    send_in_pieces(engine.addr(), &[GET_NEXT]);
    let received = backend.next_received();
    assert_eq!(show(&received), show(&with_fields(GET_NEXT, XFF_LOCAL)));
    let hello = client_hello(HOST);
    send_in_pieces(engine.addr(), &[&hello]);
    let received = backend.next_received();
    assert!(
        received == hello,
        "the ClientHello changed: {}",
        show(&received)
    );
}

// ---------------------------------------------------------------------------------------------
// Split anywhere

/// Two requests, the second chunked with an extension and a trailer: a split can fall in every
/// framing state, and in the first head, which the peek reads.
const SPLIT_GET: &[u8] = b"GET /first HTTP/1.1\r\nHost: fwd.test\r\nAccept: */*\r\n\r\n";
const SPLIT_POST_HEAD: &[u8] =
    b"POST /second HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: chunked\r\n\r\n";
const SPLIT_POST_BODY: &[u8] =
    b"5;name=\"v\"\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n";

#[test]
fn every_split_point_of_two_requests_gives_the_same_bytes() {
    let sent = [SPLIT_GET, SPLIT_POST_HEAD, SPLIT_POST_BODY].concat();
    let first = with_fields(SPLIT_GET, XFF_LOCAL);
    let expected = [
        first.clone(),
        with_fields(SPLIT_POST_HEAD, XFF_LOCAL),
        SPLIT_POST_BODY.to_vec(),
    ]
    .concat();
    let ends = Arc::new(Mutex::new(vec![first.len(), expected.len()]));
    let backend = Backend::start(answer_at(ends));
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, backend.addr, xff())],
    );
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut check = |what: String, pieces: &[&[u8]]| {
        let answer = send_in_pieces(engine.addr(), pieces);
        let received = backend.next_received();
        if received != expected || statuses(&answer) != [200, 200] {
            failed.push(format!(
                "{what}: answers {:?}, got {}",
                statuses(&answer),
                show(&received)
            ));
        }
    };
    for at in 1..sent.len() {
        check(format!("split at {at}"), &cut(&sent, &[at]));
    }
    let bytes: Vec<&[u8]> = sent.chunks(1).collect();
    check("one byte at a time".into(), &bytes);
    assert!(
        failed.is_empty(),
        "{} of {} failed (expected {}):\n{}",
        failed.len(),
        sent.len(),
        show(&expected),
        failed[..failed.len().min(10)].join("\n")
    );
    eprintln!("{} splits in {:?}", sent.len(), started.elapsed());
}

/// How a generated request frames its body.
#[derive(Debug, Clone)]
enum Framing {
    Bodiless,
    Length(Vec<u8>),
    Chunked {
        chunks: Vec<Vec<u8>>,
        upper_hex: bool,
        extension: bool,
        trailer: bool,
    },
}

/// A valid request for the proptest below.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    fields: Vec<(String, String)>,
    framing: Framing,
}

impl Request {
    fn head(&self) -> Vec<u8> {
        let method = match self.framing {
            Framing::Bodiless => "GET",
            _ => "POST",
        };
        let mut head = format!("{method} /{} HTTP/1.1\r\nHost: fwd.test\r\n", self.path);
        for (name, value) in &self.fields {
            head += &format!("X-P-{name}: {value}\r\n");
        }
        match &self.framing {
            Framing::Bodiless => {}
            Framing::Length(body) => head += &format!("Content-Length: {}\r\n", body.len()),
            Framing::Chunked { .. } => head += "Transfer-Encoding: chunked\r\n",
        }
        head += "\r\n";
        head.into_bytes()
    }

    fn body(&self) -> Vec<u8> {
        match &self.framing {
            Framing::Bodiless => Vec::new(),
            Framing::Length(body) => body.clone(),
            Framing::Chunked {
                chunks,
                upper_hex,
                extension,
                trailer,
            } => {
                let mut body = Vec::new();
                for chunk in chunks {
                    let size = match upper_hex {
                        true => format!("{:X}", chunk.len()),
                        false => format!("{:x}", chunk.len()),
                    };
                    body.extend(size.bytes());
                    if *extension {
                        body.extend(b";e=\"v\"");
                    }
                    body.extend(b"\r\n");
                    body.extend(chunk);
                    body.extend(b"\r\n");
                }
                body.extend(b"0\r\n");
                if *trailer {
                    body.extend(b"X-Trailer: t\r\n");
                }
                body.extend(b"\r\n");
                body
            }
        }
    }
}

fn request() -> impl Strategy<Value = Request> {
    let framing = prop_oneof![
        Just(Framing::Bodiless),
        vec_of(any::<u8>(), 0..300).prop_map(Framing::Length),
        (
            vec_of(vec_of(any::<u8>(), 1..80), 0..4),
            any::<bool>(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(chunks, upper_hex, extension, trailer)| Framing::Chunked {
                chunks,
                upper_hex,
                extension,
                trailer,
            }),
    ];
    (
        "[a-z0-9/._-]{0,20}",
        vec_of(("[A-Za-z0-9-]{1,12}", "([!-~]([ -~]{0,20}[!-~])?)?"), 0..3),
        framing,
    )
        .prop_map(|(path, fields, framing)| Request {
            path,
            fields,
            framing,
        })
}

#[test]
fn any_valid_request_sequence_split_anywhere_arrives_with_only_the_field_added() {
    let ends = Arc::new(Mutex::new(Vec::new()));
    let backend = Backend::start(answer_at(Arc::clone(&ends)));
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, backend.addr, xff())],
    );
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 32,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let input = (vec_of(request(), 1..5), vec_of(any::<Index>(), 0..4));
    let result = runner.run(&input, |(requests, cuts)| {
        let mut sent = Vec::new();
        let mut expected = Vec::new();
        let mut request_ends = Vec::new();
        for request in &requests {
            sent.extend(request.head());
            sent.extend(request.body());
            expected.extend(with_fields(&request.head(), XFF_LOCAL));
            expected.extend(request.body());
            request_ends.push(expected.len());
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(sent.len())).collect();
        cuts.sort_unstable();
        *lock(&ends) = request_ends;
        let answer = send_in_pieces(engine.addr(), &cut(&sent, &cuts));
        let received = backend.next_received();
        prop_assert!(
            received == expected,
            "cut at {cuts:?}\ngot      {}\nexpected {}",
            show(&received),
            show(&expected)
        );
        prop_assert_eq!(statuses(&answer), vec![200; requests.len()]);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Smuggling and malformed requests: 400 (431, 501), closed, nothing more forwarded

const BAD: &[u16] = &[400];
/// An unknown or misplaced transfer coding: RFC 9112 §6.1 allows 501.
const BAD_CODING: &[u16] = &[400, 501];
const TOO_LARGE: &[u16] = &[431];

/// CL.TE: a Content-Length reader forwards 13 bytes, a chunked reader takes `SMUGGLED` as the
/// start of the next request.
const CL_TE: &[u8] = b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED";
/// TE.CL: a chunked reader forwards the chunk, a Content-Length reader takes `8\r\n` and then
/// `SMUGGLED` as a request.
const TE_CL: &[u8] = b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n";
/// TE.TE: a coding that is not `chunked` but contains it.
const TE_XCHUNKED: &[u8] =
    b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n";
/// `chunked` not last: the body's length is not the chunks'.
const TE_CHUNKED_IDENTITY: &[u8] = b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n";
/// Any coding besides a lone `chunked` is refused: we relay bytes and cannot judge it.
const TE_GZIP_CHUNKED: &[u8] =
    b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
/// `chunked` takes no parameters.
const TE_CHUNKED_PARAMETER: &[u8] =
    b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: chunked;x=1\r\n\r\n0\r\n\r\n";
/// A list that does not end in `chunked` as written.
const TE_CHUNKED_COMMA: &[u8] =
    b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n";
/// Whitespace before the colon (RFC 9112 §5.1; Netty CVE-2019-16869).
const TE_SPACE_BEFORE_COLON: &[u8] =
    b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n";
/// An obs-folded Transfer-Encoding (Node CVE-2024-27982).
const TE_OBS_FOLD: &[u8] =
    b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n";
/// Any obs-fold: a recipient may unfold it into a different field list.
const OBS_FOLD: &[u8] = b"GET /bad HTTP/1.1\r\nHost: fwd.test\r\nX: 1\r\n 2\r\n\r\n";
/// Two Transfer-Encoding lines: `chunked` twice (Node CVE-2022-32215).
const TE_TWO_LINES: &[u8] = b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
/// Transfer-Encoding in HTTP/1.0: a 1.0 recipient reads no chunks (RFC 9112 §6.1).
const TE_IN_HTTP_10: &[u8] =
    b"POST /bad HTTP/1.0\r\nHost: fwd.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
/// CONNECT has no content (RFC 9110 §9.3.6): its body would go down the tunnel or be a request.
const CONNECT_WITH_LENGTH: &[u8] =
    b"CONNECT fwd.test:80 HTTP/1.1\r\nHost: fwd.test:80\r\nContent-Length: 5\r\n\r\nhello";
/// HTTP/1.1 without Host (RFC 9110 §7.2).
const NO_HOST: &[u8] = b"GET /bad HTTP/1.1\r\n\r\n";
/// Two Host lines: the router and the backend may each take another.
const TWO_HOSTS: &[u8] = b"GET /bad HTTP/1.1\r\nHost: fwd.test\r\nHost: other.test\r\n\r\n";
/// A signed length: `strtol` reads 5, a strict parser refuses.
const CL_PLUS: &[u8] = b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nContent-Length: +5\r\n\r\nhello";
/// A hex length: `strtol(v, 0, 0)` reads 5.
const CL_HEX: &[u8] = b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nContent-Length: 0x5\r\n\r\nhello";
/// A list of different lengths: one side takes 5, the other 6.
const CL_LIST: &[u8] =
    b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nContent-Length: 5, 6\r\n\r\nhello!";
/// An empty length (HAProxy CVE-2023-40225: read as 0).
const CL_EMPTY: &[u8] = b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nContent-Length: \r\n\r\nhello";
/// 20 nines: overflows 64 bits; a wrapping parser reads a small number.
const CL_OVERFLOW: &[u8] =
    b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nContent-Length: 99999999999999999999\r\n\r\nhello";
/// Leading zeros: legal in RFC 9110 §8.6, but a backend reading with `strtol(v, 0, 0)` takes
/// them as octal, so they are refused.
const CL_ZERO_PADDED: &[u8] =
    b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nContent-Length: 005\r\n\r\nhello";
/// `strtol(v, 0, 0)` reads 64, a decimal reader 100.
const CL_OCTAL: &[u8] =
    b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nContent-Length: 0100\r\n\r\nhello";
/// Rack, WSGI and PHP read `X_Forwarded_For` as `X-Forwarded-For` (Puma CVE-2024-45614): a
/// forged field beside ours.
const UNDERSCORE_XFF: &[u8] =
    b"GET /bad HTTP/1.1\r\nHost: fwd.test\r\nX_Forwarded_For: 6.6.6.6\r\n\r\n";
/// A version other than 1.0 and 1.1: backends read it as either, or refuse it.
const HTTP_1_2: &[u8] = b"GET /bad HTTP/1.2\r\nHost: fwd.test\r\n\r\n";
/// Two Content-Length lines, even equal ones: a recipient may take either.
const CL_TWO_LINES: &[u8] =
    b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
/// Lines ended by a bare LF: RFC 9112 §2.2 lets some recipients take them, we relay to others.
const BARE_LF_LINES: &[u8] = b"GET /bad HTTP/1.1\nHost: fwd.test\n\n";
/// A bare CR inside a value hides a second field from some parsers (llhttp CVE-2023-30589).
const BARE_CR: &[u8] =
    b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
/// NUL in a value: C parsers end the string there.
const NUL_IN_VALUE: &[u8] = b"GET /bad HTTP/1.1\r\nHost: fwd.test\r\nX: a\0b\r\n\r\n";
/// An empty field name (HAProxy CVE-2023-25725 cut the field list there).
const EMPTY_NAME: &[u8] = b"GET /bad HTTP/1.1\r\nHost: fwd.test\r\n: x\r\n\r\n";

/// The head of every bad-body vector: valid, so it may be forwarded before the body shows the
/// fault.
const CHUNKED_HEAD: &[u8] =
    b"POST /bad HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: chunked\r\n\r\n";
/// A bare LF ends an extension for one side only (Go CVE-2025-22871, "funky chunks").
const CHUNK_EXTENSION_BARE_LF: &[u8] = b"2;\nxx\r\n0\r\n\r\n";
/// A bare LF ends a size line for one side only (Netty CVE-2025-58056).
const CHUNK_SIZE_BARE_LF: &[u8] = b"2\nxx\r\n0\r\n\r\n";
/// A bare LF after the data instead of CRLF.
const CHUNK_DATA_BARE_LF: &[u8] = b"2\r\nxx\n0\r\n\r\n";
/// Two other bytes after the data instead of CRLF (h11 CVE-2025-43859).
const CHUNK_DATA_JUNK: &[u8] = b"2\r\nxxAB0\r\n\r\n";
/// 17 hex digits overflow 64 bits; a wrapping parser reads 1.
const CHUNK_SIZE_OVERFLOW: &[u8] = b"10000000000000001\r\nx\r\n0\r\n\r\n";
/// An empty size (httparse reads 0: the body ends there for one side).
const CHUNK_SIZE_EMPTY: &[u8] = b"\r\nxx\r\n0\r\n\r\n";
/// An empty size before an extension.
const CHUNK_SIZE_EMPTY_EXTENSION: &[u8] = b";e\r\nxx\r\n0\r\n\r\n";
/// A `0x` prefix: `strtol(v, 0, 16)` takes it, a strict parser reads 0 and then junk.
const CHUNK_SIZE_HEX_PREFIX: &[u8] = b"0x2\r\nxx\r\n0\r\n\r\n";
/// A bare LF ending a trailer field.
const TRAILER_BARE_LF: &[u8] = b"0\r\nX-T: 1\n\r\n";
/// A forwarding field in the trailer: a backend that merges trailers into the header section
/// (Apache `MergeTrailers on`) takes it as the client's address.
const TRAILER_XFF: &[u8] = b"0\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
/// A framing field in the trailer: a second Content-Length for such a backend.
const TRAILER_CONTENT_LENGTH: &[u8] = b"0\r\nContent-Length: 5\r\n\r\n";
/// Unbounded extensions (Go CVE-2023-39326, Node CVE-2024-22019): 64 KiB of one.
const LONG_EXTENSION_LEN: usize = 64 * 1024;
/// A head over the 16 KiB limit: one field of 17 KiB.
const LONG_FIELD_LEN: usize = 17 * 1024;

/// Sent right behind every vector: a request that must never reach a backend.
const SENTINEL: &[u8] = b"GET /smuggled HTTP/1.1\r\nHost: fwd.test\r\n\r\n";

/// A request to refuse.
struct Vector {
    name: &'static str,
    bytes: Vec<u8>,
    /// The status the client may get.
    statuses: &'static [u16],
    /// `None`: the head is bad, and no byte of the request may reach the backend. `Some(n)`:
    /// the head ([`CHUNKED_HEAD`]) is good and may be forwarded, with our field, and the first
    /// `n` bytes of the body with it (those before the first byte that shows the fault).
    body_prefix: Option<usize>,
}

fn vectors() -> Vec<Vector> {
    let head = |name, bytes: &[u8], statuses| Vector {
        name,
        bytes: bytes.to_vec(),
        statuses,
        body_prefix: None,
    };
    let body = |name, body: &[u8], prefix| Vector {
        name,
        bytes: [CHUNKED_HEAD, body].concat(),
        statuses: BAD,
        body_prefix: Some(prefix),
    };
    let long_extension = [
        b"1;".as_slice(),
        &vec![b'a'; LONG_EXTENSION_LEN],
        b"\r\nx\r\n0\r\n\r\n",
    ]
    .concat();
    let long_head = [
        b"GET /bad HTTP/1.1\r\nHost: fwd.test\r\nX-Long: ".as_slice(),
        &vec![b'a'; LONG_FIELD_LEN],
        b"\r\n\r\n",
    ]
    .concat();
    vec![
        head("CL.TE", CL_TE, BAD),
        head("TE.CL", TE_CL, BAD),
        head("TE xchunked", TE_XCHUNKED, BAD_CODING),
        head("TE chunked, identity", TE_CHUNKED_IDENTITY, BAD_CODING),
        head("TE gzip, chunked", TE_GZIP_CHUNKED, BAD_CODING),
        head("TE chunked;x=1", TE_CHUNKED_PARAMETER, BAD_CODING),
        head("TE chunked,", TE_CHUNKED_COMMA, BAD_CODING),
        head("TE space before colon", TE_SPACE_BEFORE_COLON, BAD),
        head("TE obs-fold", TE_OBS_FOLD, BAD),
        head("obs-fold", OBS_FOLD, BAD),
        head("two TE lines", TE_TWO_LINES, BAD),
        head("TE in HTTP/1.0", TE_IN_HTTP_10, BAD),
        head("CONNECT with Content-Length", CONNECT_WITH_LENGTH, BAD),
        head("no Host", NO_HOST, BAD),
        head("two Hosts", TWO_HOSTS, BAD),
        head("CL +5", CL_PLUS, BAD),
        head("CL 0x5", CL_HEX, BAD),
        head("CL 5, 6", CL_LIST, BAD),
        head("CL empty", CL_EMPTY, BAD),
        head("CL 20 nines", CL_OVERFLOW, BAD),
        head("two CL lines", CL_TWO_LINES, BAD),
        head("CL 005", CL_ZERO_PADDED, BAD),
        head("CL 0100", CL_OCTAL, BAD),
        head("X_Forwarded_For", UNDERSCORE_XFF, BAD),
        head("HTTP/1.2", HTTP_1_2, BAD),
        head("bare LF lines", BARE_LF_LINES, BAD),
        head("bare CR", BARE_CR, BAD),
        head("NUL in a value", NUL_IN_VALUE, BAD),
        head("empty name", EMPTY_NAME, BAD),
        head("17 KiB head", &long_head, TOO_LARGE),
        body("chunk 2;\\n", CHUNK_EXTENSION_BARE_LF, 2),
        body("chunk 2\\n", CHUNK_SIZE_BARE_LF, 1),
        body("chunk data then \\n", CHUNK_DATA_BARE_LF, 5),
        body("chunk data then AB", CHUNK_DATA_JUNK, 5),
        body("chunk size 10000000000000001", CHUNK_SIZE_OVERFLOW, 16),
        body("chunk size empty", CHUNK_SIZE_EMPTY, 0),
        body("chunk size empty, ;e", CHUNK_SIZE_EMPTY_EXTENSION, 0),
        body("chunk size 0x2", CHUNK_SIZE_HEX_PREFIX, 1),
        body("trailer bare LF", TRAILER_BARE_LF, 9),
        body("trailer X-Forwarded-For", TRAILER_XFF, 18),
        body("trailer Content-Length", TRAILER_CONTENT_LENGTH, 17),
        // Refused at the proxy's cap, before the extension's line ends.
        body("64 KiB extension", &long_extension, 2 + LONG_EXTENSION_LEN),
    ]
}

impl Vector {
    /// What of this vector a backend may get: nothing, or the head with our field and the body
    /// up to the fault.
    fn forwardable(&self) -> Vec<u8> {
        match self.body_prefix {
            None => Vec::new(),
            Some(n) => {
                let body = &self.bytes[CHUNKED_HEAD.len()..];
                [with_fields(CHUNKED_HEAD, XFF_LOCAL), body[..n].to_vec()].concat()
            }
        }
    }
}

/// How one vector went: the client's side.
struct Outcome {
    port: u16,
    answer: Vec<u8>,
    closed: bool,
}

/// Sends `before`, the vector and [`SENTINEL`] in one write on a connection of its own, every
/// vector at once; reads each answer until the proxy closes.
fn send_vectors(
    proxy: SocketAddr,
    vectors: &[Vector],
    before: impl Fn(usize) -> Vec<u8> + Sync,
) -> Vec<Outcome> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = vectors
            .iter()
            .enumerate()
            .map(|(i, vector)| {
                let before = &before;
                scope.spawn(move || {
                    let mut s = connect(proxy);
                    let port = s.local_addr().unwrap().port();
                    // The proxy may close before it has read everything: a failed write is
                    // not the test's failure, a missing answer is.
                    let _ =
                        s.write_all(&[before(i), vector.bytes.clone(), SENTINEL.to_vec()].concat());
                    let (answer, closed) = read_to_close(&mut s, Duration::from_secs(4));
                    Outcome {
                        port,
                        answer,
                        closed,
                    }
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

/// A backend's connections by the client port their PROXY v1 line names, the line removed.
fn by_client_port(conns: Vec<Vec<u8>>) -> HashMap<u16, Vec<u8>> {
    conns
        .into_iter()
        .map(|bytes| {
            let Some(end) = find(&bytes, b"\r\n").filter(|_| bytes.starts_with(b"PROXY ")) else {
                return (0, bytes);
            };
            let line = String::from_utf8_lossy(&bytes[..end]).into_owned();
            let port = line
                .split(' ')
                .nth(4)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            (port, bytes[end + 2..].to_vec())
        })
        .collect()
}

/// The good request in front of vector `i` (its path names the vector in nginx's log).
fn good(i: usize) -> Vec<u8> {
    format!("GET /ok-{i} HTTP/1.1\r\nHost: fwd.test\r\n\r\n").into_bytes()
}

/// A route that sends a PROXY v1 header, so a backend connection names its client's port.
fn vector_rig() -> (Backend, Engine) {
    let backend = Backend::start(gets);
    let mut route = route(HOST, backend.addr, xff());
    route.proxy_protocol = ProxyOut::V1;
    let engine = Engine::start(vec![listener(Mode::Http)], vec![route]);
    (backend, engine)
}

#[test]
fn smuggling_vectors_as_the_first_request_are_refused_and_reach_no_backend() {
    let (backend, engine) = vector_rig();
    let vectors = vectors();
    let outcomes = send_vectors(engine.addr(), &vectors, |_| Vec::new());
    let received = by_client_port(backend.all_ended());
    let mut failed = Vec::new();
    for (vector, outcome) in vectors.iter().zip(&outcomes) {
        let got = statuses(&outcome.answer);
        if got.len() != 1 || !vector.statuses.contains(&got[0]) || !outcome.closed {
            failed.push(format!(
                "{}: answers {got:?} (wanted one of {:?}), closed: {}: {}",
                vector.name,
                vector.statuses,
                outcome.closed,
                show(&outcome.answer)
            ));
        }
        let reached = received.get(&outcome.port).cloned().unwrap_or_default();
        if !vector.forwardable().starts_with(&reached) {
            failed.push(format!(
                "{}: the backend got {}",
                vector.name,
                show(&reached)
            ));
        }
    }
    if let Some(stray) = received.get(&0) {
        failed.push(format!(
            "a backend connection without its PROXY line: {}",
            show(stray)
        ));
    }
    assert!(
        failed.is_empty(),
        "{} failures:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn smuggling_vectors_after_a_good_request_forward_nothing_more() {
    let (backend, engine) = vector_rig();
    let vectors = vectors();
    let outcomes = send_vectors(engine.addr(), &vectors, good);
    let received = by_client_port(backend.all_ended());
    let mut failed = Vec::new();
    for (i, (vector, outcome)) in vectors.iter().zip(&outcomes).enumerate() {
        // The good request's answer first, then the refusal, then the end.
        let got = statuses(&outcome.answer);
        if got.len() != 2 || got[0] != 200 || !vector.statuses.contains(&got[1]) || !outcome.closed
        {
            failed.push(format!(
                "{}: answers {got:?} (wanted 200 then one of {:?}), closed: {}: {}",
                vector.name,
                vector.statuses,
                outcome.closed,
                show(&outcome.answer)
            ));
        }
        let first = with_fields(&good(i), XFF_LOCAL);
        let allowed = [first.clone(), vector.forwardable()].concat();
        let reached = received.get(&outcome.port).cloned().unwrap_or_default();
        if !reached.starts_with(&first) || !allowed.starts_with(&reached) {
            failed.push(format!(
                "{}: the backend got {}\n  allowed {}",
                vector.name,
                show(&reached),
                show(&allowed)
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} failures:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn nginx_logs_no_request_after_any_smuggling_vector() {
    let Some(nginx) = Nginx::start("fwd-smuggling") else {
        return;
    };
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, nginx.plain, xff())],
    );
    let vectors = vectors();
    let outcomes = send_vectors(engine.addr(), &vectors, good);
    let log = nginx.log(vectors.len());
    let mut failed = Vec::new();
    for (i, (vector, outcome)) in vectors.iter().zip(&outcomes).enumerate() {
        // nginx may answer a bad body it was sent the head of before our refusal: that answer
        // is the request's one, and no 400 of ours follows it.
        let got = statuses(&outcome.answer);
        let last_ok = got.last().is_some_and(|s| vector.statuses.contains(s))
            || vector.body_prefix.is_some() && got.len() == 2;
        if got.first() != Some(&200) || !last_ok || !outcome.closed {
            failed.push(format!(
                "{}: answers {got:?} (wanted 200 first, one of {:?} last), closed: {}",
                vector.name, vector.statuses, outcome.closed
            ));
        }
        let request = format!("GET /ok-{i} HTTP/1.1");
        let Some(good) = log.iter().find(|l| l.request == request) else {
            failed.push(format!("{}: no log line for {request}", vector.name));
            continue;
        };
        if (good.xff.as_str(), good.status) != ("127.0.0.1", 200) {
            failed.push(format!("{}: {good:?}", vector.name));
        }
        // On nginx's connection after the good request: nothing, or for a bad body the
        // request whose head it is.
        let after: Vec<&LogLine> = log
            .iter()
            .filter(|l| l.connection == good.connection && l.request != request)
            .collect();
        let allowed = usize::from(
            vector.body_prefix.is_some() && after.iter().all(|l| l.request == "POST /bad HTTP/1.1"),
        );
        if after.len() > allowed {
            failed.push(format!("{}: nginx also logged {after:?}", vector.name));
        }
    }
    let strays: Vec<&LogLine> = log
        .iter()
        .filter(|l| {
            (!l.request.starts_with("GET /ok-") && !l.request.starts_with("POST /bad "))
                || l.request.to_ascii_lowercase().contains("smuggled")
        })
        .collect();
    if !strays.is_empty() {
        failed.push(format!("requests nginx should never have seen: {strays:?}"));
    }
    assert!(
        failed.is_empty(),
        "{} failures:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn nginx_gets_good_good_bad_pipelined_answered_in_order_then_400() {
    let Some(nginx) = Nginx::start("fwd-good-good-bad") else {
        return;
    };
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, nginx.plain, xff())],
    );
    let mut s = connect(engine.addr());
    let sent = [
        b"GET /1 HTTP/1.1\r\nHost: fwd.test\r\n\r\n".as_slice(),
        b"GET /2 HTTP/1.1\r\nHost: fwd.test\r\n\r\n",
        CL_TE,
        SENTINEL,
    ]
    .concat();
    let _ = s.write_all(&sent);
    let (answer, closed) = read_to_close(&mut s, Duration::from_secs(4));
    assert!(closed, "{}", show(&answer));
    // Both answers, whole and in order, and only then the refusal.
    assert_eq!(statuses(&answer), [200, 200, 400], "{}", show(&answer));
    let (one, two) = (find(&answer, b"ok /1\n"), find(&answer, b"ok /2\n"));
    assert!(one.is_some() && one < two, "{}", show(&answer));
    let log = nginx.log(2);
    let seen: Vec<_> = log
        .iter()
        .map(|l| (l.request.as_str(), l.xff.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET /1 HTTP/1.1", "127.0.0.1"),
            ("GET /2 HTTP/1.1", "127.0.0.1")
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// How a connection ends

/// A 200 of `body` bytes that closes the connection.
fn send_big_answer(conn: &mut Conn, body: usize) {
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {body}\r\nConnection: close\r\n\r\n");
    conn.send(head.as_bytes());
    conn.send(&vec![b'x'; body]);
}

#[test]
fn a_long_answer_to_the_last_request_is_not_cut_by_what_the_client_sends_after_it() {
    const BODY: usize = 8 << 20;
    let backend = Backend::start(|conn: &mut Conn| {
        if conn.take_until(b"\r\n\r\n").is_none() {
            return;
        }
        send_big_answer(conn, BODY);
    });
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, backend.addr, xff())],
    );
    let mut s = connect(engine.addr());
    s.write_all(b"GET /big HTTP/1.1\r\nHost: fwd.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    // Read slowly at first, so that the answer is still on its way when more bytes come: left
    // unread by the proxy, they would turn its close into a reset that drops the answer's end.
    std::thread::sleep(Duration::from_millis(200));
    s.write_all(GET_NEXT).unwrap();
    let (answer, closed) = read_to_close(&mut s, Duration::from_secs(10));
    assert!(closed);
    let body_at = find(&answer, b"\r\n\r\n").map_or(0, |at| at + 4);
    assert_eq!(
        answer.len() - body_at,
        BODY,
        "the whole body, then a clean close"
    );
    assert!(find(&backend.next_received(), b"/next").is_none());
}

#[test]
fn a_refusal_is_not_written_into_an_answer_the_backend_cut_by_closing() {
    const CUT: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody-until-close.";
    let backend = Backend::start(|conn: &mut Conn| {
        if conn.take_until(b"\r\n\r\n").is_some() {
            conn.send(CUT);
        }
    });
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, backend.addr, xff())],
    );
    let mut s = connect(engine.addr());
    let two_hosts: &[u8] = b"GET /bad HTTP/1.1\r\nHost: fwd.test\r\nHost: other\r\n\r\n";
    s.write_all(&[GET_NEXT, two_hosts].concat()).unwrap();
    let (answer, closed) = read_to_close(&mut s, Duration::from_secs(5));
    assert!(closed);
    assert_eq!(show(&answer), show(CUT), "the backend's answer alone");
}

#[test]
fn a_backend_that_closes_on_a_held_request_ends_the_connection() {
    let backend = Backend::start(|conn: &mut Conn| {
        let _ = conn.take_until(b"\r\n\r\n");
    });
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, backend.addr, xff())],
    );
    let mut s = connect(engine.addr());
    s.write_all(&[UPGRADE, CLIENT_FRAME].concat()).unwrap();
    let started = Instant::now();
    let (answer, closed) = read_to_close(&mut s, Duration::from_secs(5));
    assert!(closed && answer.is_empty(), "{}", show(&answer));
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A refusal that is not answered (the backend closed with a request before the bad one
/// unanswered): the whole answers it did send must still arrive.
#[test]
fn an_unanswered_refusal_keeps_the_whole_answers_before_it() {
    const BODY: usize = 16 << 20;
    let backend = Backend::start(|conn: &mut Conn| {
        if conn.take_until(b"\r\n\r\n").is_none() {
            return;
        }
        // Read to the proxy's FIN (sent at the refusal), so our close is a clean FIN.
        conn.drain();
        send_big_answer(conn, BODY);
    });
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, backend.addr, xff())],
    );
    let mut s = connect(engine.addr());
    let a: &[u8] = b"GET /a HTTP/1.1\r\nHost: fwd.test\r\n\r\n";
    let b: &[u8] = b"GET /b HTTP/1.1\r\nHost: fwd.test\r\n\r\n";
    let bad: &[u8] = b"GET /bad HTTP/1.1\r\nHost: fwd.test\r\nHost: other\r\n\r\n";
    s.write_all(&[a, b, bad].concat()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let _ = s.write_all(&vec![b'j'; 64 * 1024]);
    std::thread::sleep(Duration::from_millis(300));
    let (answer, closed) = read_to_close(&mut s, Duration::from_secs(10));
    let body_at = find(&answer, b"\r\n\r\n").map_or(0, |at| at + 4);
    assert!(closed);
    assert_eq!(answer.len() - body_at, BODY, "the whole answer to /a");
}

/// A request whose body breaks after the backend already answered it: a second answer would
/// be taken for the client's next request, which never went on.
#[test]
fn a_body_broken_after_its_answer_gets_no_second_answer() {
    let backend = Backend::start(|conn: &mut Conn| {
        if conn.take_until(b"\r\n\r\n").is_none() {
            return;
        }
        conn.send(OK);
        conn.drain();
    });
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, backend.addr, xff())],
    );
    let mut s = connect(engine.addr());
    s.write_all(b"POST /up HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(&[&b"2\r\nxxZZ"[..], GET_NEXT].concat())
        .unwrap();
    let (answer, closed) = read_to_close(&mut s, Duration::from_secs(5));
    assert!(closed);
    assert_eq!(statuses(&answer), vec![200], "one answer to one request");
}

/// Responses the proxy cannot follow, with 64 or more requests outstanding: the client's next
/// request ends the connection, as it does with fewer outstanding.
#[test]
fn answers_that_cannot_be_followed_end_the_connection_however_many_are_outstanding() {
    for count in [10usize, 70] {
        let backend = Backend::start(|conn: &mut Conn| {
            let mut first = true;
            while conn.take_until(b"\r\n\r\n").is_some() {
                if first {
                    // parse_response refuses this name: the responses are lost from here on.
                    conn.send(
                        b"HTTP/1.1 200 OK\r\nX_Forwarded_For: 1\r\nContent-Length: 3\r\n\r\nok\n",
                    );
                    first = false;
                } else {
                    conn.send(OK);
                }
            }
        });
        let engine = Engine::start(
            vec![listener(Mode::Http)],
            vec![route(HOST, backend.addr, xff())],
        );
        let mut s = connect(engine.addr());
        let many: Vec<u8> = (0..count).flat_map(|_| GET_NEXT.to_vec()).collect();
        s.write_all(&many).unwrap();
        let mut got = Vec::new();
        read_heads(&mut s, &mut got, count);
        assert_eq!(statuses(&got).len(), count);
        s.write_all(GET_NEXT).unwrap();
        let started = Instant::now();
        let (_, closed) = read_to_close(&mut s, Duration::from_secs(4));
        assert!(closed, "{count} outstanding: the connection should end");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{count} outstanding"
        );
    }
}

/// The backend ends the connection with its answer to /a (Connection: close) while the client
/// pipelines more: the answer to /a still arrives whole.
#[test]
fn a_backend_closing_after_its_answer_while_the_client_pipelines_keeps_the_answer() {
    const BODY: usize = 16 << 20;
    let backend = Backend::start(|conn: &mut Conn| {
        if conn.take_until(b"\r\n\r\n").is_none() {
            return;
        }
        send_big_answer(conn, BODY);
        // a lingering close, as nginx does
        conn.drain_for(Duration::from_millis(300));
    });
    let engine = Engine::start(
        vec![listener(Mode::Http)],
        vec![route(HOST, backend.addr, xff())],
    );
    let mut s = connect(engine.addr());
    s.write_all(b"GET /a HTTP/1.1\r\nHost: fwd.test\r\n\r\n")
        .unwrap();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        let _ = s.write_all(GET_NEXT);
    }
    let (answer, closed) = read_to_close(&mut s, Duration::from_secs(10));
    let body_at = find(&answer, b"\r\n\r\n").map_or(0, |at| at + 4);
    assert!(closed);
    assert_eq!(answer.len() - body_at, BODY, "the whole answer to /a");
}
