//! The proxy engine driven in-process, as a Rust server embeds it: a `Server` on loopback, echo
//! and silent backends as tasks, and an observer that keeps every record.

use core::net::SocketAddr;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::sync::{Arc, Mutex};

use sixgate::proxy::{
    Config, Error, Listener, Mode, Observer, Outcome, ProxyOut, Record, Route, Server,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[path = "support/tls_hello.rs"]
mod tls_hello;
use tls_hello::client_hello;

/// What the observer keeps of a record.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    outcome: Outcome,
    name: Option<String>,
    route: Option<String>,
    backend: Option<SocketAddr>,
    up: u64,
    down: u64,
}

#[derive(Default)]
struct Records(Mutex<Vec<Seen>>);

impl Observer for Records {
    fn connection(&self, r: &Record<'_>) {
        self.0.lock().unwrap().push(Seen {
            outcome: r.outcome,
            name: r.name.map(str::to_owned),
            route: r.route.map(|r| r.name.clone()),
            backend: r.backend,
            up: r.up,
            down: r.down,
        });
    }
}

impl Records {
    /// Waits for the `n`th record (1-based) and answers it.
    async fn nth(&self, n: usize) -> Seen {
        for _ in 0..200 {
            if let Some(seen) = self.0.lock().unwrap().get(n - 1) {
                return seen.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no record {n}: {:?}", self.0.lock().unwrap());
    }
}

/// A backend that answers each read with `tag` and the bytes read, until the client closes.
async fn echo(tag: &'static str) -> SocketAddr {
    backend(Some(tag)).await
}

/// A backend that reads everything and never writes.
async fn silent() -> SocketAddr {
    backend(None).await
}

async fn backend(tag: Option<&'static str>) -> SocketAddr {
    let listener = TcpListener::bind("[::1]:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    let Some(tag) = tag else { continue };
                    let answer = [tag.as_bytes(), &buf[..n]].concat();
                    if s.write_all(&answer).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    address
}

/// A server on the caller's runtime, and the records it leaves.
fn start(listeners: Vec<Listener>, routes: Vec<Arc<Route>>) -> (Server, Arc<Records>) {
    let records = Arc::new(Records::default());
    let config = Config {
        listeners,
        routes,
        ..Config::default()
    };
    let server = Server::start(config, Arc::clone(&records) as _).unwrap();
    (server, records)
}

fn route(name: &str, hosts: &[&str], backend: SocketAddr) -> Arc<Route> {
    let mut route = Route::new(hosts.iter().copied(), [backend]).unwrap();
    route.name = name.into();
    Arc::new(route)
}

fn loopback(mode: Mode, name: &str) -> Listener {
    Listener::new("127.0.0.1:0".parse().unwrap(), mode).named(name)
}

fn request(host: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

/// Sends `bytes`, reads until `want` bytes arrived or the peer closed.
async fn exchange(stream: &mut TcpStream, bytes: &[u8], want: usize) -> Vec<u8> {
    stream.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while got.len() < want {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("an answer within 5 s");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_name_to_one_backend_with_its_record() {
    let backend = echo("A:").await;
    let (server, records) = start(
        vec![loopback(Mode::Http, "http")],
        vec![route("www", &["www.example.com"], backend)],
    );
    let proxy = server.local_addrs()[0];
    let mut client = TcpStream::connect(proxy).await.unwrap();
    let sent = request("WWW.Example.com");
    let got = exchange(&mut client, &sent, sent.len() + 2).await;
    assert_eq!(got, [b"A:".as_slice(), &sent].concat());
    drop(client);
    let seen = records.nth(1).await;
    assert_eq!(
        seen,
        Seen {
            outcome: Outcome::Ok,
            name: Some("www.example.com".into()),
            route: Some("www".into()),
            backend: Some(backend),
            up: sent.len() as u64,
            down: got.len() as u64,
        }
    );
    assert_eq!(server.accepted(), 1);
    assert_eq!(server.shutdown().await, 0);
}

#[tokio::test]
async fn routes_change_one_by_one_while_a_connection_runs() {
    let (a, b) = (echo("A:").await, echo("B:").await);
    let (server, _) = start(
        vec![loopback(Mode::Http, "http")],
        vec![route("one", &["one.example"], a)],
    );
    let proxy = server.local_addrs()[0];
    let mut open = TcpStream::connect(proxy).await.unwrap();
    assert!(
        exchange(&mut open, &request("one.example"), 2)
            .await
            .starts_with(b"A:")
    );

    server.add_route(route("two", &["two.example"], b)).unwrap();
    let mut two = TcpStream::connect(proxy).await.unwrap();
    assert!(
        exchange(&mut two, &request("two.example"), 2)
            .await
            .starts_with(b"B:")
    );
    // A name twice on one listener is refused, and the table stays as it was.
    let again = server.add_route(route("three", &["two.example"], a));
    assert!(matches!(again, Err(Error::RoutedTwice { .. })), "{again:?}");
    assert_eq!(server.routes().len(), 2);

    // One route now sends to both backends; weight 0 takes one out of new connections.
    let mut both = Route::clone(&server.routes()[0]);
    both.backends.push(b.into());
    server
        .set_routes([Arc::new(both), server.routes()[1].clone()])
        .unwrap();
    server.reweight("one", a, 0).unwrap();
    for _ in 0..4 {
        let mut c = TcpStream::connect(proxy).await.unwrap();
        assert!(
            exchange(&mut c, &request("one.example"), 2)
                .await
                .starts_with(b"B:")
        );
    }
    assert!(matches!(
        server.reweight("one", "[::1]:1".parse().unwrap(), 1),
        Err(Error::NoSuchBackend { .. })
    ));

    let removed = server.remove_route("one").unwrap();
    assert_eq!(removed.name, "one");
    assert!(matches!(
        server.remove_route("one"),
        Err(Error::NoSuchRoute(_))
    ));
    let mut gone = TcpStream::connect(proxy).await.unwrap();
    let refused = exchange(&mut gone, &request("one.example"), 1 << 20).await;
    assert!(refused.starts_with(b"HTTP/1.1 421 "), "{refused:?}");

    // The first connection was routed before all of this and runs on, to its old backend.
    let still = exchange(&mut open, b"ping", 6).await;
    assert_eq!(still, b"A:ping");
    drop((open, two, gone));
    server.shutdown().await;
}

#[tokio::test]
async fn a_name_bound_to_the_http_listener_is_unrouted_on_the_tls_one() {
    let web = echo("web:").await;
    let mut http_only = Route::clone(&route("www", &["www.demo.test"], web));
    http_only.listeners = vec!["http".into()];
    let (server, records) = start(
        vec![loopback(Mode::Tls, "https"), loopback(Mode::Http, "http")],
        vec![Arc::new(http_only)],
    );
    let [tls, http] = server.local_addrs()[..] else {
        panic!("two listeners")
    };
    let mut c = TcpStream::connect(tls).await.unwrap();
    let alert = exchange(&mut c, &client_hello("www.demo.test"), 1 << 20).await;
    assert_eq!(
        alert,
        [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112],
        "unrecognized_name"
    );
    let seen = records.nth(1).await;
    assert_eq!((seen.outcome, seen.route), (Outcome::NoRoute, None));
    let mut c = TcpStream::connect(http).await.unwrap();
    assert!(
        exchange(&mut c, &request("www.demo.test"), 4)
            .await
            .starts_with(b"web:")
    );
    drop(c);
    server.shutdown().await;
}

#[tokio::test]
async fn a_backend_that_never_answers_is_not_ok() {
    let quiet = silent().await;
    let (server, records) = start(
        vec![loopback(Mode::Tls, "https")],
        vec![route("quiet", &["quiet.example"], quiet)],
    );
    let mut c = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    let hello = client_hello("quiet.example");
    c.write_all(&hello).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(c);
    let seen = records.nth(1).await;
    assert_eq!(seen.outcome, Outcome::BackendSilent, "{seen:?}");
    assert_eq!((seen.up, seen.down), (hello.len() as u64, 0));
    server.shutdown().await;
}

#[tokio::test]
async fn the_proxy_header_carries_the_client_and_the_peeked_bytes_follow_it() {
    let backend = TcpListener::bind("[::1]:0").await.unwrap();
    let mut r = Route::clone(&route("v1", &["v1.example"], backend.local_addr().unwrap()));
    r.proxy_protocol = ProxyOut::V1;
    let config = Config {
        listeners: vec![loopback(Mode::Http, "http")],
        routes: vec![Arc::new(r)],
        ..Config::default()
    };
    let server = Server::start(config, Arc::new(())).unwrap();
    let proxy = server.local_addrs()[0];
    let mut c = TcpStream::connect(proxy).await.unwrap();
    let sent = request("v1.example");
    c.write_all(&sent).await.unwrap();
    let (mut at_backend, _) = backend.accept().await.unwrap();
    let mut got = vec![0u8; 4096];
    let mut len = 0;
    while !got[..len].ends_with(b"\r\n\r\n") || len <= sent.len() {
        len += at_backend.read(&mut got[len..]).await.unwrap();
    }
    let client = c.local_addr().unwrap();
    let header = format!(
        "PROXY TCP4 {} {} {} {}\r\n",
        client.ip(),
        proxy.ip(),
        client.port(),
        proxy.port()
    );
    assert_eq!(&got[..len], [header.as_bytes(), &sent].concat());
    drop((c, at_backend));
    server.shutdown().await;
}

#[tokio::test]
async fn a_reload_moves_listeners_and_a_refused_one_changes_nothing() {
    let backend = echo("A:").await;
    let records = Arc::new(Records::default());
    let config = Config {
        listeners: vec![loopback(Mode::Http, "http")],
        routes: vec![route("www", &["www.example"], backend)],
        ..Config::default()
    };
    let server = Server::start(config.clone(), Arc::clone(&records) as _).unwrap();
    let first = server.local_addrs()[0];

    // A route bound to a listener nobody has: refused, the old listener still accepts.
    let mut bad = config.clone();
    Arc::make_mut(&mut bad.routes[0]).listeners = vec!["htps".into()];
    assert!(matches!(
        server.reload(bad),
        Err(Error::UnknownListener { .. })
    ));
    let mut c = TcpStream::connect(first).await.unwrap();
    assert!(
        exchange(&mut c, &request("www.example"), 2)
            .await
            .starts_with(b"A:")
    );
    drop(c);

    // Another address: bound, and the old one stops accepting.
    let mut moved = config.clone();
    moved.listeners[0].addresses = vec!["[::1]:0".parse().unwrap()];
    server.reload(moved).unwrap();
    let now = server.local_addrs()[0];
    assert!(now.is_ipv6(), "{now}");
    let mut c = TcpStream::connect(now).await.unwrap();
    assert!(
        exchange(&mut c, &request("www.example"), 2)
            .await
            .starts_with(b"A:")
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        TcpStream::connect(first).await.is_err(),
        "{first} still accepts"
    );
    drop(c);
    server.shutdown().await;
}

/// Counts the route tables the engine freed.
#[derive(Default)]
struct TablesFreed(AtomicU64);

impl Observer for TablesFreed {
    fn connection(&self, _: &Record<'_>) {}

    fn table_freed(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_replaced_table_is_said_freed_once_no_connection_is_routed_by_it() {
    let backend = echo("A:").await;
    let freed = Arc::new(TablesFreed::default());
    // Peeked for as long as the test could take, however slow the machine.
    let mut listener = loopback(Mode::Http, "http");
    listener.peek_timeout = Duration::from_secs(60);
    let config = Config {
        listeners: vec![listener],
        routes: vec![route("www", &["www.example"], backend)],
        ..Config::default()
    };
    let server = Server::start(config.clone(), Arc::clone(&freed) as _).unwrap();
    // A client that has sent nothing yet is being peeked: it holds the table it was accepted by
    // (counted active once it has taken it).
    let mut quiet = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    while server.active() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.reload(config).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        freed.0.load(Ordering::SeqCst),
        0,
        "freed while still routing"
    );
    // Its name comes: it is routed (by the old table), and lets go of it.
    let answer = exchange(&mut quiet, &request("www.example"), 2).await;
    assert!(answer.starts_with(b"A:"), "{answer:?}");
    for _ in 0..100 {
        if freed.0.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        freed.0.load(Ordering::SeqCst),
        1,
        "not said freed within 2 s"
    );
    drop(quiet);
    server.shutdown().await;
}

#[test]
fn the_engine_runs_on_its_own_workers_without_a_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let backend = runtime.block_on(echo("W:"));
    let config = Config {
        listeners: vec![loopback(Mode::Http, "http")],
        routes: vec![route("www", &["www.example"], backend)],
        ..Config::default()
    };
    // Started outside any runtime: the engine brings its own threads.
    let server = Server::start_workers(config, Arc::new(()), 2).unwrap();
    let proxy = server.local_addrs()[0];
    runtime.block_on(async {
        for _ in 0..4 {
            let mut c = TcpStream::connect(proxy).await.unwrap();
            assert!(
                exchange(&mut c, &request("www.example"), 2)
                    .await
                    .starts_with(b"W:")
            );
        }
        assert_eq!(server.shutdown().await, 0);
    });
}

#[tokio::test]
async fn every_byte_after_a_long_proxy_header_arrives() {
    use sixgate::proxy_proto::Builder;
    let backend = TcpListener::bind("[::1]:0").await.unwrap();
    let mut trusting = loopback(Mode::Http, "http");
    trusting.accept_proxy_from = vec!["127.0.0.1".parse().unwrap()];
    let (server, records) = start(
        vec![trusting],
        vec![route(
            "www",
            &["www.example"],
            backend.local_addr().unwrap(),
        )],
    );
    let proxy = server.local_addrs()[0];
    // A v2 header padded near the default cap (4 KiB), the request and a 10 KB body, in one
    // write: whatever the header reader read past the header, the peek did not, or the relay
    // read later, every byte arrives once and in order.
    let padding = vec![0u8; 4000];
    let header = Builder::v2_proxy("192.0.2.1:5000".parse().unwrap(), proxy).noop(&padding);
    let mut sent = vec![0; header.len().unwrap()];
    header.write(&mut sent).unwrap();
    let header_len = sent.len();
    let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: www.example\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    sent.extend_from_slice(head.as_bytes());
    sent.extend_from_slice(&body);
    let mut c = TcpStream::connect(proxy).await.unwrap();
    c.write_all(&sent).await.unwrap();
    let accepted = tokio::time::timeout(Duration::from_secs(5), backend.accept()).await;
    let Ok(Ok((mut at_backend, _))) = accepted else {
        panic!(
            "no connection to the backend: {:?}",
            records.0.lock().unwrap()
        );
    };
    let mut got = Vec::new();
    let want = sent.len() - header_len;
    let mut buf = [0u8; 4096];
    while got.len() < want {
        match tokio::time::timeout(Duration::from_secs(5), at_backend.read(&mut buf)).await {
            Ok(Ok(n @ 1..)) => got.extend_from_slice(&buf[..n]),
            other => panic!("{} of {want} bytes, then {other:?}", got.len()),
        }
    }
    assert!(got == sent[header_len..], "the bytes differ");
    drop((c, at_backend));
    let seen = records.nth(1).await;
    assert_eq!(seen.up, want as u64, "{seen:?}");
    server.shutdown().await;
}
