//! What the engine does with connections — balancing, health, backups, timeouts, the relay, auto
//! mode — driven in-process: a `sixgate::proxy::Server` on loopback with an observer that keeps
//! every record, judged by the records' outcomes and by what clients and backends saw. The
//! program's wiring (file, signals, metrics) is `full_proxy.rs`'s.

mod peers;
#[path = "support/proxy_rig.rs"]
mod proxy_rig;

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use peers::free_port;
use proxy_rig::{Named, Visits, digest_backend, http_get, megabyte_each_way};
use sixgate::proxy::{
    Balance, Config, Health, Listener, Mode, Observer, Outcome, ProxyOut, Record, RelayMethod,
    Route, Server,
};

/// A record, owned.
#[derive(Debug, Clone)]
struct Seen {
    outcome: Outcome,
    client: SocketAddr,
    name: Option<String>,
    backend: Option<SocketAddr>,
    retries: u32,
    up: u64,
    down: u64,
    detail: String,
}

/// Every record, in the order connections ended.
#[derive(Default)]
struct Records(Mutex<Vec<Seen>>);

impl Observer for Records {
    fn connection(&self, r: &Record<'_>) {
        let seen = Seen {
            outcome: r.outcome,
            client: r.client,
            name: r.name.map(str::to_owned),
            backend: r.backend,
            retries: r.retries,
            up: r.up,
            down: r.down,
            detail: r.detail.map(ToString::to_string).unwrap_or_default(),
        };
        self.list().push(seen);
    }
}

impl Records {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first `n` records, once there are `n` (within 5 s).
    fn first(&self, n: usize) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.list().len() < n {
            assert!(
                Instant::now() < deadline,
                "not {n} records: {:?}",
                self.list()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        self.list()[..n].to_vec()
    }
}

/// A server as a program embeds it, with its records; shut down when stopped or dropped.
struct Engine {
    server: Option<Server>,
    records: Arc<Records>,
    runtime: tokio::runtime::Runtime,
}

impl Engine {
    /// On a runtime of the test's own, two threads, as a server embeds the engine.
    fn start(config: Config) -> Engine {
        Self::launch(|records| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let server = runtime.block_on(async { Server::start(config, records) });
            (server.unwrap(), runtime)
        })
    }

    /// On `threads` worker threads of the engine's own.
    fn on_workers(config: Config, threads: usize) -> Engine {
        Self::launch(|records| {
            let server = Server::start_workers(config, records, threads).unwrap();
            // The runtime only runs the shutdown.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            (server, runtime)
        })
    }

    fn launch(
        start: impl FnOnce(Arc<dyn Observer>) -> (Server, tokio::runtime::Runtime),
    ) -> Engine {
        let records = Arc::new(Records::default());
        let (server, runtime) = start(Arc::clone(&records) as _);
        Engine {
            server: Some(server),
            records,
            runtime,
        }
    }

    /// The first listening address.
    fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().local_addrs()[0]
    }

    /// Shuts down; answers how many connections were still open at the drain timeout.
    fn stop(mut self) -> u64 {
        let server = self.server.take().unwrap();
        self.runtime.block_on(server.shutdown())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown());
        }
    }
}

/// One listener and one route; a connection left open delays a shutdown by one second at most.
fn config(listener: Listener, route: Route) -> Config {
    let mut config = Config {
        listeners: vec![listener],
        routes: vec![Arc::new(route)],
        ..Config::default()
    };
    config.limits.drain_timeout = Duration::from_secs(1);
    config
}

fn listener(mode: Mode) -> Listener {
    Listener::new("127.0.0.1:0".parse().unwrap(), mode)
}

/// Checks every `interval`, two in a row to go or come back.
fn health(interval: Duration) -> Option<Box<Health>> {
    Some(Box::new(Health {
        interval,
        timeout: interval,
        rise: 2,
        fall: 2,
        check: Default::default(),
    }))
}

/// The answer's last line: the name of the backend that served it.
fn served_by(answer: &str) -> &str {
    answer.lines().last().unwrap_or_default()
}

/// Requests until `backend` answers, within `within`; how many it took.
fn until_served_by(proxy: SocketAddr, backend: &str, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let mut requests = 1;
    while served_by(&http_get(proxy, "b.test")) != backend {
        assert!(Instant::now() < deadline, "{backend} never answered");
        std::thread::sleep(Duration::from_millis(20));
        requests += 1;
    }
    requests
}

/// `n` requests, after `before` connections that have all ended, each served by the backend
/// `name` at `addr` and recorded as `Ok` there; their records.
fn only_from(engine: &Engine, n: usize, name: &str, addr: SocketAddr, before: usize) -> Vec<Seen> {
    // The earlier records are in, so these follow them in order.
    engine.records.first(before);
    for i in 0..n {
        let answer = http_get(engine.addr(), "b.test");
        assert_eq!(served_by(&answer), name, "request {i}");
    }
    let records = engine.records.first(before + n).split_off(before);
    let ok = |r: &Seen| r.outcome == Outcome::Ok && r.backend == Some(addr);
    assert!(records.iter().all(ok), "{records:?}");
    records
}

#[test]
fn weights_1_2_3_over_600_connections_on_three_workers() {
    let visits = Visits::default();
    let backends = ["a", "b", "c"].map(|name| Named::start(name, &visits));
    let mut route = Route::new(["*"], backends.iter().map(|b| b.addr)).unwrap();
    for (spec, weight) in route.backends.iter_mut().zip([1, 2, 3]) {
        spec.weight = weight;
    }
    // More workers than this machine has cores: three sockets, one pool.
    let engine = Engine::on_workers(config(listener(Mode::Http), route), 3);
    let order: Vec<String> = (0..600)
        .map(|_| served_by(&http_get(engine.addr(), "w.test")).to_owned())
        .collect();
    // Each record names the backend that answered.
    let name: HashMap<_, _> = backends
        .iter()
        .zip(["a", "b", "c"])
        .map(|(b, n)| (b.addr, n))
        .collect();
    let records = engine.records.first(600);
    let mut recorded: Vec<&str> = records
        .iter()
        .map(|r| {
            assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
            name[&r.backend.unwrap()]
        })
        .collect();
    let mut answered: Vec<&str> = order.iter().map(String::as_str).collect();
    recorded.sort_unstable();
    answered.sort_unstable();
    assert_eq!(recorded, answered);
    // Smooth weighted round-robin is exact over whole cycles (6 picks), and smooth within one.
    let count = |n: &str| answered.iter().filter(|x| **x == n).count();
    assert_eq!((count("a"), count("b"), count("c")), (100, 200, 300));
    for window in order.windows(6) {
        for (name, w) in [("a", 1), ("b", 2), ("c", 3)] {
            let n = window.iter().filter(|x| *x == name).count();
            assert!(n <= w + 1, "{name} {n} times in 6: {window:?}");
        }
    }
    assert_eq!(engine.stop(), 0);
}

#[test]
fn a_killed_backend_costs_no_client_connection_and_comes_back_after_rise() {
    let visits = Visits::default();
    let keep = Named::start("keep", &visits);
    let flaky = Named::start("flaky", &visits);
    let flaky_addr = flaky.addr;
    let mut route = Route::new(["*"], [keep.addr, flaky_addr]).unwrap();
    route.connect_timeout = Duration::from_secs(1);
    route.health = health(Duration::from_millis(200));
    let engine = Engine::start(config(listener(Mode::Http), route));
    let proxy = engine.addr();
    for _ in 0..10 {
        assert!(http_get(proxy, "b.test").ends_with('\n'));
    }
    assert!(visits.served("flaky") > 0);
    drop(flaky); // its listener is closed: connects to it are refused from now on
    let down = only_from(&engine, 40, "keep", keep.addr, 10);
    // The first pick of the dead backend, before any check could take it out (two failed checks
    // 200 ms apart), failed to connect and went on to the other one, unseen by the client.
    assert!(down.iter().any(|r| r.retries == 1), "{down:?}");

    // Long enough for `fall` (2) failed checks: down by the active checks, not only ejected by
    // the failed connect (which one good check would end).
    std::thread::sleep(Duration::from_millis(700));
    // It comes back on the same address; after `rise` (2) good checks it is picked again.
    let _back = Named::start_on(TcpListener::bind(flaky_addr).unwrap(), "back", &visits);
    until_served_by(proxy, "back", Duration::from_secs(10));
    let probes = visits.probes_before_serving("back").unwrap();
    assert!(probes >= 2, "picked again after {probes} probe(s)");
    let records = engine.records.list().clone();
    assert!(
        records.iter().all(|r| r.outcome == Outcome::Ok),
        "{records:?}"
    );
    assert_eq!(engine.stop(), 0);
}

#[test]
fn a_slow_client_is_closed_at_peek_timeout() {
    let visits = Visits::default();
    let backend = Named::start("b", &visits);
    let mut tls = listener(Mode::Tls);
    tls.peek_timeout = Duration::from_millis(500);
    let engine = Engine::start(config(tls, Route::new(["*"], [backend.addr]).unwrap()));
    // The start of a record, and then nothing.
    let mut s = TcpStream::connect(engine.addr()).unwrap();
    let started = Instant::now();
    s.write_all(&[0x16, 0x03, 0x01]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap(), 0, "closed without an answer");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(2),
        "closed after {took:?}"
    );
    // A client that keeps sending, one byte of its hello every 50 ms, gets no more time: the
    // timeout counts from the accept, not from the last byte.
    let hello = include_bytes!("../sni-peek/testdata/curl.bin");
    let mut s = TcpStream::connect(engine.addr()).unwrap();
    let started = Instant::now();
    let mut dribble = s.try_clone().unwrap();
    let dribbler = std::thread::spawn(move || {
        for byte in hello {
            std::thread::sleep(Duration::from_millis(50));
            if dribble.write_all(&[*byte]).is_err() {
                break;
            }
        }
    });
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = s.read(&mut buf).unwrap_or(0); // a reset if a byte arrives after the close
    let took = started.elapsed();
    assert_eq!(n, 0, "closed without an answer");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(2),
        "closed after {took:?}"
    );
    drop(s);
    let _ = dribbler.join();
    for r in engine.records.first(2) {
        assert_eq!(r.outcome, Outcome::PeekFailed, "{r:?}");
        assert_eq!((r.backend, r.up, r.down), (None, 0, 0), "{r:?}");
    }
    assert_eq!(visits.served("b"), 0, "the backend saw nothing");
    assert_eq!(engine.stop(), 0);
}

/// The relays to test on this kernel: all three, unless it refuses io_uring, which is a skip
/// (a failure under `SIXGATE_REQUIRE_PEERS=1`).
fn relays() -> Vec<RelayMethod> {
    let mut relays = vec![RelayMethod::Splice, RelayMethod::Copy];
    match RelayMethod::Uring.available() {
        Ok(()) => relays.push(RelayMethod::Uring),
        Err(e) => peers::skip(&format!(
            "relay \"uring\": the kernel refused io_uring ({e})"
        )),
    }
    relays
}

/// The uring cases run one at a time, so that what the ring sent while one ran is its own.
static RING: Mutex<()> = Mutex::new(());

/// One relay's case; for uring, what the ring sent while it ran.
struct Through {
    relay: RelayMethod,
    before: u64,
    _alone: Option<MutexGuard<'static, ()>>,
}

fn through(relay: RelayMethod) -> Through {
    let alone =
        (relay == RelayMethod::Uring).then(|| RING.lock().unwrap_or_else(PoisonError::into_inner));
    Through {
        relay,
        before: ring_sent(),
        _alone: alone,
    }
}

impl Through {
    /// For uring: the ring itself sent at least `bytes`, so a silent fallback to splice fails
    /// the case instead of passing it.
    fn ring_sent_at_least(&self, bytes: u64) {
        if self.relay == RelayMethod::Uring {
            let sent = ring_sent() - self.before;
            assert!(
                sent >= bytes,
                "uring: the ring sent {sent} bytes, not {bytes} or more"
            );
        }
    }
}

#[cfg(target_os = "linux")]
fn ring_sent() -> u64 {
    sixgate::proxy::ring_sent()
}

#[cfg(not(target_os = "linux"))]
fn ring_sent() -> u64 {
    0
}

#[test]
fn a_megabyte_each_way_with_half_close_arrives_intact() {
    for relay in relays() {
        let through = through(relay);
        let backend = digest_backend();
        let route = Route::new(["echo.test"], [backend]).unwrap();
        let mut config = config(listener(Mode::Http), route);
        config.limits.relay = relay;
        let engine = Engine::start(config);
        let (up, down) = megabyte_each_way(engine.addr(), "echo.test");
        let seen = engine.records.first(1).remove(0);
        assert_eq!(
            (seen.outcome, seen.backend, seen.up, seen.down),
            (Outcome::Ok, Some(backend), up, down),
            "{relay:?}: {seen:?}"
        );
        assert_eq!(engine.stop(), 0);
        // The first bytes each way, before reads fill the buffer.
        through.ring_sent_at_least(2);
    }
}

/// An HTTP/1.0 request through `proxy` from `source` (any address of 127.0.0.0/8); the backend
/// that answered.
fn served_from(source: Ipv4Addr, proxy: SocketAddr) -> String {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((source, 0)).into()).unwrap();
    socket.connect(&proxy.into()).unwrap();
    let mut s = TcpStream::from(socket);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: c.test\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    served_by(&answer).to_owned()
}

#[test]
fn consistent_hashing_keeps_each_client_on_its_backend() {
    let visits = Visits::default();
    let backends = ["one", "two", "three"].map(|name| Named::start(name, &visits));
    let mut route = Route::new(["*"], backends.iter().map(|b| b.addr)).unwrap();
    route.balance = Balance::Consistent;
    let engine = Engine::start(config(listener(Mode::Http), route));
    // Thirty clients, three connections each: each keeps its backend, and they do not all
    // share one (a hash of nothing would send everyone to the same backend).
    let mut picked = HashMap::new();
    for host in 2..32 {
        let client = Ipv4Addr::new(127, 0, 0, host);
        let first = served_from(client, engine.addr());
        for _ in 0..2 {
            assert_eq!(served_from(client, engine.addr()), first, "{client} moved");
        }
        picked.insert(client, first);
    }
    let used: std::collections::HashSet<_> = picked.values().collect();
    assert!(used.len() > 1, "every client on {used:?}");
    for r in engine.records.first(90) {
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        let IpAddr::V4(client) = r.client.ip() else {
            panic!("{r:?}")
        };
        let backend = backends.iter().position(|b| Some(b.addr) == r.backend);
        let name = ["one", "two", "three"][backend.unwrap()];
        assert_eq!(picked[&client], name, "{r:?}");
    }
    assert_eq!(engine.stop(), 0);
}

#[test]
fn backups_serve_only_while_no_primary_is_up() {
    let visits = Visits::default();
    let primary = Named::start("primary", &visits);
    let primary_addr = primary.addr;
    let backup = Named::start("backup", &visits);
    let mut route = Route::new(["*"], [primary_addr, backup.addr]).unwrap();
    route.backends[1].backup = true;
    route.health = health(Duration::from_millis(100));
    let engine = Engine::start(config(listener(Mode::Http), route));
    let proxy = engine.addr();
    only_from(&engine, 10, "primary", primary_addr, 0);
    assert_eq!(
        visits.served("backup"),
        0,
        "a backup while the primary is up"
    );
    // The primary goes away: the very next request is served by the backup (its refused
    // connect is retried there, as nginx retries its backups), and every one after it.
    drop(primary);
    let failover = until_served_by(proxy, "backup", Duration::from_secs(3));
    assert_eq!(failover, 1, "requests before the backup served one");
    only_from(&engine, 10, "backup", backup.addr, 10 + failover);
    // Away long enough for `fall` (2) failed checks 100 ms apart, not only ejected by failed
    // connects (which one good check would end); then it comes back, and after `rise` (2) good
    // checks traffic fails back to it.
    std::thread::sleep(Duration::from_millis(400));
    let again = Named::start_on(TcpListener::bind(primary_addr).unwrap(), "again", &visits);
    let failback = until_served_by(proxy, "again", Duration::from_secs(10));
    let probes = visits.probes_before_serving("again").unwrap();
    assert!(probes >= 2, "failed back after {probes} probe(s)");
    only_from(&engine, 10, "again", again.addr, 20 + failover + failback);
    assert_eq!(engine.stop(), 0);
}

/// A backend for PROXY-protocol connections that answers what the header said: with `tls`, after
/// a TLS handshake behind the header (as nginx's `listen ... ssl proxy_protocol`).
fn proxied_backend(tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let (said, rest) = loop {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed before a whole PROXY header");
            got.extend_from_slice(&buf[..n]);
            if let proxy_proto::Status::Complete(h) = proxy_proto::parse(&got).unwrap() {
                let said = format!(
                    "{:?} from {} to port {} for {:?}",
                    h.version(),
                    h.source().unwrap().ip(),
                    h.destination().unwrap().port(),
                    h.authority(),
                );
                break (said, got[h.len()..].to_vec());
            }
        };
        let Some(tls) = tls else {
            assert!(rest.starts_with(b"GET / HTTP/1.0\r\n"), "{rest:?}");
            let _ = write!(s, "HTTP/1.0 200 OK\r\n\r\n{said}\n");
            return;
        };
        // The bytes after the header start the handshake.
        let mut server = rustls::ServerConnection::new(tls).unwrap();
        server.read_tls(&mut &rest[..]).unwrap();
        server.process_new_packets().unwrap();
        let mut stream = rustls::StreamOwned::new(server, s);
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "closed before a whole request");
            request.extend_from_slice(&buf[..n]);
        }
        let sni = stream.conn.server_name().map(str::to_owned);
        let _ = write!(stream, "HTTP/1.0 200 OK\r\n\r\n{said} with SNI {sni:?}\n");
        stream.conn.send_close_notify();
        let _ = stream.flush();
    });
    addr
}

#[test]
fn auto_mode_takes_tls_and_http_on_one_listener() {
    let made = rcgen::generate_simple_self_signed(vec!["b.test".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(made.key_pair.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_tls = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .unwrap();
    let (a, b) = (
        proxied_backend(None),
        proxied_backend(Some(Arc::new(server_tls))),
    );
    let port = free_port();
    let mut auto = listener(Mode::Auto);
    auto.addresses = vec![
        SocketAddr::from(([127, 0, 0, 1], port)),
        SocketAddr::from((core::net::Ipv6Addr::LOCALHOST, port)),
    ];
    let mut route_a = Route::new(["a.test"], [a]).unwrap();
    route_a.proxy_protocol = ProxyOut::V1;
    let mut route_b = Route::new(["b.test"], [b]).unwrap();
    route_b.proxy_protocol = ProxyOut::V2;
    let mut config = config(auto, route_a);
    config.routes.push(Arc::new(route_b));
    let engine = Engine::start(config);

    // An IPv6 client over HTTP, an IPv4 one over TLS, on the same port.
    let answer = http_get(
        SocketAddr::from((core::net::Ipv6Addr::LOCALHOST, port)),
        "a.test",
    );
    assert_eq!(
        served_by(&answer),
        format!("V1 from ::1 to port {port} for None")
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client =
        rustls::ClientConnection::new(Arc::new(client_tls), "b.test".try_into().unwrap()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(client, tcp);
    tls.write_all(b"GET / HTTP/1.0\r\nHost: b.test\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).unwrap();
    assert_eq!(
        served_by(&answer),
        format!("V2 from 127.0.0.1 to port {port} for Some(\"b.test\") with SNI Some(\"b.test\")")
    );
    drop(tls);
    let mut records = engine.records.first(2);
    records.sort_by_key(|r| r.name.clone());
    let seen: Vec<_> = records
        .iter()
        .map(|r| (r.outcome, r.name.as_deref(), r.client.ip(), r.backend))
        .collect();
    assert_eq!(
        seen,
        [
            (Outcome::Ok, Some("a.test"), "::1".parse().unwrap(), Some(a)),
            (
                Outcome::Ok,
                Some("b.test"),
                "127.0.0.1".parse().unwrap(),
                Some(b)
            ),
        ]
    );
    assert_eq!(engine.stop(), 0);
}

#[test]
fn unreachable_backends_get_a_503_or_an_internal_error_alert() {
    let closed = TcpListener::bind("[::1]:0").unwrap().local_addr().unwrap(); // nobody listens now
    let engine = Engine::start(config(
        listener(Mode::Auto),
        Route::new(["*"], [closed]).unwrap(),
    ));
    let answer = http_get(engine.addr(), "x.test");
    assert_eq!(
        answer,
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 25\r\n\
         Connection: close\r\n\r\nno backend is reachable.\n"
    );
    // TLS: a fatal internal_error alert (RFC 8446 §6: level 2, description 80).
    let hello = include_bytes!("../sni-peek/testdata/curl.bin");
    let alert = peers::exchange(engine.addr(), hello);
    assert_eq!(alert, [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 80]);
    for r in engine.records.first(2) {
        assert_eq!(
            (r.outcome, r.backend),
            (Outcome::BackendUnreachable, None),
            "{r:?}"
        );
        assert!(r.detail.contains(&closed.to_string()), "{r:?}");
    }
    assert_eq!(engine.stop(), 0);
}

/// A backend for one connection that echoes what it reads, `answers` times, then only reads.
fn echo_backend(answers: usize) -> SocketAddr {
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut answered = 0;
        while let Ok(n @ 1..) = s.read(&mut buf) {
            if answered < answers && s.write_all(&buf[..n]).is_ok() {
                answered += 1;
            }
        }
    });
    addr
}

/// A request through a proxy with a 300 ms idle timeout to `backend`, then `pings` more bytes
/// 150 ms apart: how long after the last byte sent the proxy closed, what came back, and the
/// connection's record.
fn idle_close(backend: SocketAddr, pings: usize, relay: RelayMethod) -> (Duration, Vec<u8>, Seen) {
    let mut config = config(listener(Mode::Http), Route::new(["*"], [backend]).unwrap());
    config.limits.idle_timeout = Duration::from_millis(300);
    config.limits.relay = relay;
    let engine = Engine::start(config);
    let mut s = TcpStream::connect(engine.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: i.test\r\n\r\n")
        .unwrap();
    for i in 0..pings {
        std::thread::sleep(Duration::from_millis(150));
        let sent = s.write_all(b"ping");
        assert!(sent.is_ok(), "closed before ping {i}: {sent:?}");
    }
    let last = Instant::now();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let closed = last.elapsed();
    drop(s);
    let seen = engine.records.first(1).remove(0);
    assert_eq!(engine.stop(), 0);
    (closed, got, seen)
}

#[test]
fn idle_connections_are_closed_and_a_silent_backend_is_told_apart() {
    for relay in relays() {
        let through = through(relay);
        let in_time = |closed: Duration| {
            assert!(
                closed >= Duration::from_millis(250) && closed < Duration::from_secs(2),
                "{relay:?}: idle close after {closed:?}"
            );
        };
        // The backend never answers: closed at the idle timeout, and the record says whose
        // silence.
        let (closed, got, seen) = idle_close(echo_backend(0), 0, relay);
        in_time(closed);
        assert!(got.is_empty(), "{relay:?}: {got:?}");
        assert_eq!(seen.outcome, Outcome::BackendSilent, "{relay:?}: {seen:?}");
        assert_eq!(seen.detail, "idle timeout: the backend sent nothing");
        // Bytes moving every 150 ms keep a connection open past the 300 ms; once they stop, it
        // is closed, and a backend that answered is no silent one.
        let (closed, got, seen) = idle_close(echo_backend(usize::MAX), 4, relay);
        in_time(closed);
        assert_eq!(seen.outcome, Outcome::IdleTimeout, "{relay:?}: {seen:?}");
        assert_eq!(seen.detail, "idle timeout");
        assert_eq!(
            (seen.up, seen.down),
            (got.len() as u64, got.len() as u64),
            "{relay:?}: {seen:?}"
        );
        // The echoes at least (the request went with the peeked bytes).
        through.ring_sent_at_least(got.len() as u64);
    }
}

/// A connection through `relay`, on the caller's two-thread runtime, to a backend that echoes
/// everything: routed, its request echoed back, and waiting 5 s at most for each read.
fn echoed(relay: RelayMethod) -> (Engine, TcpStream) {
    let backend = echo_backend(usize::MAX);
    let mut config = config(listener(Mode::Http), Route::new(["*"], [backend]).unwrap());
    config.limits.relay = relay;
    let engine = Engine::start(config);
    let mut s = TcpStream::connect(engine.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: echo.test\r\n\r\n";
    s.write_all(request).unwrap();
    let mut echo = [0u8; 37];
    s.read_exact(&mut echo[..request.len()]).unwrap();
    (engine, s)
}

#[test]
fn messages_in_pieces_back_and_forth_are_never_left_waiting() {
    // Each message goes in two writes, the second right behind the first, and waits for its
    // echo: a piece that lands just after a read must still wake the relay. On the caller's
    // two-thread runtime, where readiness can be set on one thread while the relay reads on the
    // other.
    for relay in relays() {
        let (engine, mut s) = echoed(relay);
        s.set_nodelay(true).unwrap();
        let mut echo = vec![0u8; 1024];
        for i in 0..2000usize {
            let message = peers::pattern(1 + i % 700, i as u64);
            let (first, rest) = message.split_at((1 + i % 3).min(message.len()));
            s.write_all(first).unwrap();
            s.write_all(rest).unwrap();
            let echo = &mut echo[..message.len()];
            let read = s.read_exact(echo);
            assert!(read.is_ok(), "{relay:?}: message {i} not echoed: {read:?}");
            assert!(echo == &message[..], "{relay:?}: message {i} changed");
        }
        drop(s);
        let seen = engine.records.first(1).remove(0);
        assert_eq!(seen.outcome, Outcome::Ok, "{relay:?}: {seen:?}");
        assert_eq!(engine.stop(), 0);
    }
}

#[test]
fn bytes_after_urgent_data_are_relayed_without_more_to_come() {
    // A read stops short at TCP's urgent mark with bytes still queued behind it: a relay that
    // took every short read for an empty socket would leave "def" until the client sent more.
    // The urgent byte itself is out of band and not relayed (no proxy relays it).
    for relay in relays() {
        let (engine, mut s) = echoed(relay);
        // Queued together before the proxy reads them.
        let mut plain = &s;
        let urgent = socket2::SockRef::from(&s);
        let sent = (
            plain.write_all(b"abc"),
            urgent.send_out_of_band(b"X"),
            plain.write_all(b"def"),
        );
        assert!(
            sent.0.is_ok() && sent.1.is_ok() && sent.2.is_ok(),
            "{sent:?}"
        );
        let mut got = [0u8; 6];
        let read = s.read_exact(&mut got);
        assert!(read.is_ok(), "{relay:?}: {read:?}, got {got:?}");
        assert_eq!(&got, b"abcdef", "{relay:?}");
        drop(s);
        assert_eq!(engine.stop(), 0);
    }
}

/// What a backend got from one connection: its bytes' count and digest.
type Got = (usize, u64);

/// A backend for one connection that reads nothing until `go` says so, then reads to the
/// client's FIN, answers "done" and closes; it tells what it got.
fn reluctant_backend() -> (
    SocketAddr,
    std::sync::mpsc::Sender<()>,
    std::sync::mpsc::Receiver<Got>,
) {
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (go, wait) = std::sync::mpsc::channel();
    let (tell, told) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        // A small window of its own: what waits for it is the relay's to hold, or the client's.
        let _ = socket2::SockRef::from(&s).set_recv_buffer_size(64 * 1024);
        let _ = wait.recv();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(b"done").unwrap();
        let _ = tell.send((got.len(), fnv(&got)));
    });
    (addr, go, told)
}

/// Bytes in the send and receive queues of the established TCP sockets with a port of `ports`
/// on either end, from `/proc/net/tcp{,6}`.
fn queued_between(ports: &[u16]) -> usize {
    let port = |address: &str| {
        let hex = address.rsplit(':').next().unwrap_or_default();
        u16::from_str_radix(hex, 16).unwrap_or_default()
    };
    let mut queued = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_, local, remote, state, queues, ..] = fields[..] else {
                continue;
            };
            if state != "01" || !(ports.contains(&port(local)) || ports.contains(&port(remote))) {
                continue;
            }
            let (tx, rx) = queues.split_once(':').unwrap();
            queued +=
                usize::from_str_radix(tx, 16).unwrap() + usize::from_str_radix(rx, 16).unwrap();
        }
    }
    queued
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The client half-closes after `sent`: the backend got every byte, once, in order, its
/// answer ("done") ends with `answered`, and the record says so.
fn all_arrived(
    mut s: TcpStream,
    answered: &[u8],
    sent: &[u8],
    told: &std::sync::mpsc::Receiver<Got>,
    engine: Engine,
    relay: RelayMethod,
) {
    s.shutdown(std::net::Shutdown::Write).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    assert_eq!(answer, answered, "{relay:?}");
    let got = told.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(got, (sent.len(), fnv(sent)), "{relay:?}");
    let seen = engine.records.first(1).remove(0);
    assert_eq!(
        (seen.outcome, seen.up, seen.down),
        (Outcome::Ok, sent.len() as u64, 4),
        "{relay:?}: {seen:?}"
    );
    assert_eq!(engine.stop(), 0);
}

#[test]
fn a_backend_that_stops_reading_holds_the_client_back_and_nothing_is_lost() {
    // A relay that read on regardless would take all the client offers, up to the cap.
    const CAP: usize = 256 << 20;
    // Its buffers: two of 16 KiB per direction, or a pipe of 64 KiB and one.
    const HELD: usize = 128 << 10;
    for relay in relays() {
        let through = through(relay);
        let (backend, go, told) = reluctant_backend();
        let mut config = config(listener(Mode::Http), Route::new(["*"], [backend]).unwrap());
        config.limits.relay = relay;
        let engine = Engine::on_workers(config, 1);
        let mut s = TcpStream::connect(engine.addr()).unwrap();
        let _ = socket2::SockRef::from(&s).set_send_buffer_size(64 * 1024);
        let mut sent = b"POST / HTTP/1.1\r\nHost: slow.test\r\n\r\n".to_vec();
        s.write_all(&sent).unwrap();
        s.set_nonblocking(true).unwrap();
        let chunk = peers::pattern(64 * 1024, 5);
        let mut stalled = Instant::now();
        while stalled.elapsed() < Duration::from_millis(500) && sent.len() < CAP {
            match s.write(&chunk) {
                Ok(n) => {
                    sent.extend_from_slice(&chunk[..n]);
                    stalled = Instant::now();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("{relay:?}: {e}"),
            }
        }
        assert!(
            sent.len() < CAP,
            "{relay:?}: the client was never held back"
        );
        // Every byte the client got rid of waits in a socket queue of the two connections (the
        // kernel sizes those), but for what the relay itself holds.
        let queued = queued_between(&[engine.addr().port(), backend.port()]);
        let held = sent.len().saturating_sub(queued);
        assert!(
            held <= HELD,
            "{relay:?}: the relay holds {held} bytes ({} sent, {queued} in sockets)",
            sent.len()
        );
        // Then it reads: every byte arrives, once, in order.
        go.send(()).unwrap();
        s.set_nonblocking(false).unwrap();
        all_arrived(s, b"done", &sent, &told, engine, relay);
        through.ring_sent_at_least(4);
    }
}

/// A backend for one connection with a small window that reads nothing for 200 ms (the
/// relay's writes meet a full queue), then 4 KiB at a time, a little slowly: it answers "done"
/// once it has `expected` bytes, as a server answers a request, then reads to the client's FIN
/// and closes; it tells what it got.
fn slow_backend(expected: usize) -> (SocketAddr, std::sync::mpsc::Receiver<Got>) {
    use socket2::{Domain, Socket, Type};
    // Set before the handshake, so the window it advertises is small too.
    let listener = Socket::new(Domain::IPV6, Type::STREAM, None).unwrap();
    listener.set_recv_buffer_size(4096).unwrap();
    let any: SocketAddr = "[::1]:0".parse().unwrap();
    listener.bind(&any.into()).unwrap();
    listener.listen(1).unwrap();
    let listener = TcpListener::from(listener);
    let addr = listener.local_addr().unwrap();
    let (tell, told) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
        std::thread::sleep(Duration::from_millis(200));
        while let Ok(n @ 1..) = s.read(&mut buf) {
            let answers = got.len() < expected && got.len() + n >= expected;
            got.extend_from_slice(&buf[..n]);
            if answers {
                s.write_all(b"done").unwrap();
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let _ = tell.send((got.len(), fnv(&got)));
    });
    (addr, told)
}

#[test]
fn small_writes_to_a_slow_backend_arrive_intact() {
    // Writes far smaller than the relay's 16 KiB buffer, to a backend whose window is small: the
    // relay's sends come short. How many of them the uring relay reads short (through its ring)
    // and how many pile up into full reads (spliced) depends on how busy the machine is.
    const CHUNK: usize = 1000;
    const CHUNKS: usize = 500;
    for relay in relays() {
        let through = through(relay);
        let mut sent = b"POST / HTTP/1.1\r\nHost: slow.test\r\n\r\n".to_vec();
        let body = peers::pattern(CHUNK * CHUNKS, 9);
        let (backend, told) = slow_backend(sent.len() + body.len());
        let mut config = config(listener(Mode::Http), Route::new(["*"], [backend]).unwrap());
        config.limits.relay = relay;
        let engine = Engine::on_workers(config, 1);
        let mut s = TcpStream::connect(engine.addr()).unwrap();
        let _ = socket2::SockRef::from(&s).set_send_buffer_size(4096);
        s.write_all(&sent).unwrap();
        for chunk in body.chunks(CHUNK) {
            s.write_all(chunk).unwrap();
            std::thread::sleep(Duration::from_micros(100));
        }
        sent.extend_from_slice(&body);
        // The client waits for the answer before it sends anything more: the last of its bytes
        // must reach the backend without more to come (a relay that held back the rest of a
        // short write until the next bytes came would stall here until the idle timeout).
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut answer = [0u8; 4];
        s.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"done", "{relay:?}");
        all_arrived(s, b"", &sent, &told, engine, relay);
        // The ring relayed: 4 bytes at least (the answer, if nothing else); how much of the
        // body went through it is up to the scheduler.
        through.ring_sent_at_least(4);
    }
}

/// A client through `proxy` and the backend behind it, each with the other's first bytes read:
/// the request went up and "partial" came down.
fn connected_pair(proxy: SocketAddr, listener: &TcpListener) -> (TcpStream, TcpStream) {
    let mut client = TcpStream::connect(proxy).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: rst.test\r\n\r\n";
    client.write_all(request).unwrap();
    let (mut backend, _) = listener.accept().unwrap();
    backend
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = vec![0u8; request.len()];
    backend.read_exact(&mut got).unwrap();
    backend.write_all(b"partial").unwrap();
    let mut got = [0u8; 7];
    client.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"partial");
    (client, backend)
}

/// Resets `s`: a close with a zero linger sends RST.
fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

/// How the other side saw its connection end: within `within`, by a FIN or a reset (and no
/// byte more).
fn ends_soon(mut s: TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("not closed: {other:?}"),
    }
    let took = started.elapsed();
    assert!(took < within, "closed after {took:?}");
    took
}

#[test]
fn a_reset_on_either_side_closes_the_other_and_is_recorded() {
    for relay in relays() {
        let through = through(relay);
        for client_resets in [true, false] {
            let backends = TcpListener::bind("[::1]:0").unwrap();
            let route = Route::new(["*"], [backends.local_addr().unwrap()]).unwrap();
            let mut config = config(listener(Mode::Http), route);
            config.limits.relay = relay;
            let engine = Engine::on_workers(config, 1);
            let (client, backend) = connected_pair(engine.addr(), &backends);
            let other = if client_resets {
                reset(client);
                backend
            } else {
                reset(backend);
                client
            };
            ends_soon(other, Duration::from_secs(2));
            let seen = engine.records.first(1).remove(0);
            let case = (relay, client_resets);
            assert_eq!(seen.outcome, Outcome::RelayError, "{case:?}: {seen:?}");
            assert!(seen.detail.contains("reset"), "{case:?}: {seen:?}");
            assert_eq!((seen.up, seen.down), (34, 7), "{case:?}: {seen:?}");
            assert_eq!(engine.stop(), 0);
        }
        through.ring_sent_at_least(2 * 7);
    }
}

#[test]
fn a_shutdown_drains_open_connections_then_cuts_the_rest() {
    for relay in relays() {
        let through = through(relay);
        let backends = [echo_backend(usize::MAX), echo_backend(usize::MAX)];
        let mut config = config(listener(Mode::Http), Route::new(["*"], backends).unwrap());
        config.limits.relay = relay;
        config.limits.drain_timeout = Duration::from_secs(1);
        let engine = Engine::on_workers(config, 1);
        let ping = move |s: &mut TcpStream, bytes: &[u8]| {
            s.write_all(bytes).unwrap();
            let mut back = vec![0u8; bytes.len()];
            s.read_exact(&mut back).unwrap();
            assert_eq!(back, bytes, "{relay:?}");
        };
        let open = |host: &str| {
            let mut s = TcpStream::connect(engine.addr()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            ping(
                &mut s,
                format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
            );
            s
        };
        let (mut finishing, mut lingering) = (open("a.test"), open("b.test"));
        // While the engine drains, one connection goes on and then closes; the other stays.
        let finisher = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            ping(&mut finishing, b"one more while draining");
            finishing.shutdown(std::net::Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            finishing.read_to_end(&mut rest).unwrap();
            rest
        });
        let started = Instant::now();
        let records = Arc::clone(&engine.records);
        assert_eq!(
            engine.stop(),
            1,
            "{relay:?}: one still open at the deadline"
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900),
            "{relay:?}: drained for {took:?}"
        );
        assert_eq!(finisher.join().unwrap(), b"", "{relay:?}");
        // The lingering one was closed when the engine stopped.
        let mut buf = [0u8; 8];
        assert!(
            matches!(lingering.read(&mut buf), Ok(0) | Err(_)),
            "{relay:?}"
        );
        let mut outcomes: Vec<_> = records.first(2).iter().map(|r| r.outcome).collect();
        outcomes.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(outcomes, [Outcome::Ok, Outcome::Shutdown], "{relay:?}");
        through.ring_sent_at_least(2 * 23);
    }
}
