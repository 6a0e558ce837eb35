//! The engine's active health checks, in-process on loopback: a plain TCP exchange (HAProxy's
//! `tcp-check send`/`expect string`) and a TLS handshake (`check-ssl`), judged by where the
//! proxy sends connections. Checks run every 100 ms, so each test takes a second or two.

use core::net::SocketAddr;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::sync::{Arc, Mutex};

use sixgate::proxy::{
    Check, Config, Error, Health, Listener, Mode, Observer, Record, Route, Server,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep, timeout};

/// The backend each connection went to, in the order they ended.
#[derive(Default)]
struct Served(Mutex<Vec<Option<SocketAddr>>>);

impl Observer for Served {
    fn connection(&self, r: &Record<'_>) {
        self.0.lock().unwrap().push(r.backend);
    }
}

const PING: &[u8] = b"PING\r\n";

/// A backend that answers the check's `PING` with `+PONG` while `good` holds, `-ERR` otherwise,
/// and anything else with `served`; then closes.
async fn redis_like(good: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("[::1]:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let good = Arc::clone(&good);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let Ok(n @ 1..) = s.read(&mut buf).await else {
                    return;
                };
                let answer: &[u8] = match (&buf[..n] == PING, good.load(Ordering::Relaxed)) {
                    (true, true) => b"+PONG\r\n",
                    (true, false) => b"-ERR not ready\r\n",
                    (false, _) => b"served\r\n",
                };
                let _ = s.write_all(answer).await;
            });
        }
    });
    address
}

/// A TLS backend with a self-signed certificate for `backend.test`; the SNI of each completed
/// handshake is kept.
async fn tls_backend() -> (SocketAddr, Arc<Mutex<Vec<Option<String>>>>) {
    let made = rcgen::generate_simple_self_signed(vec!["backend.test".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(made.key_pair.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("[::1]:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let names = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&names);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), Arc::clone(&seen));
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let name = tls.get_ref().1.server_name().map(str::to_owned);
                    seen.lock().unwrap().push(name);
                    let _ = tls.read_to_end(&mut Vec::new()).await;
                }
            });
        }
    });
    (address, names)
}

/// A plain TCP backend that reads until the client closes and never writes.
async fn plain_backend() -> SocketAddr {
    let listener = TcpListener::bind("[::1]:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.read_to_end(&mut Vec::new()).await;
            });
        }
    });
    address
}

/// Checks every 100 ms, 2 in a row to come back or go.
fn health(check: Check) -> Health {
    Health {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(100),
        rise: 2,
        fall: 2,
        check,
    }
}

fn exchange() -> Check {
    Check::Exchange {
        send: PING.into(),
        expect: b"+PONG"[..].into(),
    }
}

/// An HTTP listener on loopback with one route to `backends`, checked by `health`.
fn start(backends: &[SocketAddr], health: Health) -> Result<(Server, Arc<Served>), Error> {
    let mut route = Route::new(["health.test"], backends.iter().copied()).unwrap();
    route.health = Some(Box::new(health));
    let config = Config {
        listeners: vec![Listener::new("[::1]:0".parse().unwrap(), Mode::Http)],
        routes: vec![Arc::new(route)],
        ..Config::default()
    };
    let served = Arc::new(Served::default());
    let server = Server::start(config, Arc::clone(&served) as _)?;
    Ok((server, served))
}

/// One request through the proxy, and the backend it went to.
async fn request(server: &Server, served: &Served) -> Option<SocketAddr> {
    let before = served.0.lock().unwrap().len();
    let mut client = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: health.test\r\n\r\n")
        .await
        .unwrap();
    client.shutdown().await.unwrap();
    let _ = timeout(Duration::from_secs(2), client.read_to_end(&mut Vec::new())).await;
    drop(client);
    for _ in 0..200 {
        if let Some(&backend) = served.0.lock().unwrap().get(before) {
            return backend;
        }
        sleep(Duration::from_millis(10)).await;
    }
    panic!("no record of request {}", before + 1);
}

/// Requests until `n` in a row went to `backend`, within 3 s; then `n` more, which must too.
async fn only(backend: SocketAddr, n: usize, server: &Server, served: &Served) {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut in_a_row = 0;
    while in_a_row < n {
        assert!(Instant::now() < deadline, "{:?}", served.0.lock().unwrap());
        in_a_row = match request(server, served).await {
            Some(b) if b == backend => in_a_row + 1,
            _ => 0,
        };
    }
    for _ in 0..n {
        assert_eq!(request(server, served).await, Some(backend));
    }
}

#[tokio::test]
async fn a_backend_answering_the_exchange_wrong_is_never_picked_until_it_answers_right() {
    let (good, wrong) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicBool::new(false)),
    );
    let good_one = redis_like(good).await;
    let wrong_one = redis_like(Arc::clone(&wrong)).await;
    let (server, served) = start(&[good_one, wrong_one], health(exchange())).unwrap();
    // Both accept TCP: a connect check would keep both.
    only(good_one, 10, &server, &served).await;
    sleep(Duration::from_millis(300)).await;
    only(good_one, 10, &server, &served).await;

    wrong.store(true, Ordering::Relaxed);
    let fixed = Instant::now();
    let deadline = fixed + Duration::from_secs(3);
    while request(&server, &served).await != Some(wrong_one) {
        assert!(Instant::now() < deadline, "never back");
        sleep(Duration::from_millis(20)).await;
    }
    // rise 2: two good checks, 90 to 110 ms apart (10 % jitter).
    let back = fixed.elapsed();
    assert!(back >= Duration::from_millis(80), "{back:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_tls_check_takes_out_a_plain_backend_and_keeps_a_tls_one() {
    let plain = plain_backend().await;
    let (tls, names) = tls_backend().await;
    let check = Check::Tls {
        server_name: Some("backend.test".into()),
    };
    let (server, served) = start(&[plain, tls], health(check)).unwrap();
    only(tls, 10, &server, &served).await;
    let names = names.lock().unwrap().clone();
    assert!(!names.is_empty(), "the checks completed handshakes");
    assert!(
        names.iter().all(|n| n.as_deref() == Some("backend.test")),
        "{names:?}"
    );
    server.shutdown().await;

    // Without SNI too; and a connect check keeps both.
    let check = Check::Tls { server_name: None };
    let (server, served) = start(&[plain, tls], health(check)).unwrap();
    only(tls, 10, &server, &served).await;
    server.shutdown().await;
    let (server, served) = start(&[plain, tls], health(Check::Connect)).unwrap();
    sleep(Duration::from_millis(300)).await;
    let mut picked = Vec::new();
    for _ in 0..4 {
        picked.push(request(&server, &served).await);
    }
    assert!(picked.contains(&Some(plain)), "{picked:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn checks_that_could_never_pass_are_refused_at_start() {
    let backend = plain_backend().await;
    let long = Check::Exchange {
        send: PING.into(),
        expect: vec![b'x'; 16 * 1024 + 1].into(),
    };
    let e = start(&[backend], health(long)).err().unwrap();
    assert!(matches!(e, Error::Pool { .. }), "{e}");
    assert!(e.to_string().contains("16 KiB"), "{e}");
    let bad_name = Check::Tls {
        server_name: Some("not a name".into()),
    };
    let e = start(&[backend], health(bad_name)).err().unwrap();
    assert!(matches!(e, Error::Pool { .. }), "{e}");
    let most = Check::Exchange {
        send: Box::default(),
        expect: vec![b'x'; 16 * 1024].into(),
    };
    start(&[backend], health(most)).unwrap().0.shutdown().await;
}
