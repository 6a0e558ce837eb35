//! Backends and clients for the proxy's tests, shared through `#[path]` by the engine's in-process
//! tests (`proxy_behaviour.rs`) and the program's end-to-end ones (`full_proxy.rs`). Blocking
//! sockets on threads of their own, so they serve an engine on the test's runtime and the program
//! alike. They use the including crate's `peers` module.
#![allow(dead_code)] // each test binary uses a part

use core::net::SocketAddr;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::peers::{exchange, pattern};

/// An HTTP/1.0 request through the proxy; the whole answer (empty when the proxy closed the
/// connection instead).
pub(crate) fn http_get(proxy: SocketAddr, host: &str) -> String {
    let request = format!("GET / HTTP/1.0\r\nHost: {host}\r\n\r\n");
    String::from_utf8_lossy(&exchange(proxy, request.as_bytes())).into_owned()
}

/// One connection to a [`Named`] backend: which backend, and whether it was served (the client
/// sent bytes) or was a probe (it sent nothing and closed: a health check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Visit {
    pub(crate) backend: &'static str,
    pub(crate) served: bool,
}

/// The visits of a test's backends; each backend's in the order it accepted them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Visits(Arc<Mutex<Vec<Visit>>>);

impl Visits {
    fn push(&self, visit: Visit) {
        self.list().push(visit);
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Visit>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections `backend` served.
    pub(crate) fn served(&self, backend: &str) -> usize {
        let list = self.list();
        list.iter()
            .filter(|v| v.backend == backend && v.served)
            .count()
    }

    /// The probes `backend` took before it served its first connection; `None` while it has
    /// served none.
    pub(crate) fn probes_before_serving(&self, backend: &str) -> Option<usize> {
        let list = self.list();
        let mine: Vec<_> = list.iter().filter(|v| v.backend == backend).collect();
        mine.iter().position(|v| v.served)
    }
}

/// A backend that answers the first bytes of each connection (an HTTP request) with
/// `HTTP/1.0 200 OK` and its name, then closes; one connection at a time. Every connection is a
/// [`Visit`]. Dropping it stops it and closes its listener: connects are refused from then on.
#[derive(Debug)]
pub(crate) struct Named {
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Named {
    /// On a free port of `[::1]`.
    pub(crate) fn start(name: &'static str, visits: &Visits) -> Named {
        Self::start_on(TcpListener::bind("[::1]:0").unwrap(), name, visits)
    }

    /// On `listener`: one bound to the address a stopped backend had, to bring it back.
    pub(crate) fn start_on(listener: TcpListener, name: &'static str, visits: &Visits) -> Named {
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (stopped, visits) = (Arc::clone(&stop), visits.clone());
        // Non-blocking, so the thread sees `stop` within a few milliseconds.
        listener.set_nonblocking(true).unwrap();
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut head = [0u8; 1024];
                let served = matches!(s.read(&mut head), Ok(1..));
                visits.push(Visit {
                    backend: name,
                    served,
                });
                if served {
                    let _ = write!(s, "HTTP/1.0 200 OK\r\n\r\n{name}\n");
                }
            }
        });
        Named {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One mebibyte, each way.
const MIB: usize = 1 << 20;

/// A backend for one connection: reads until the client's FIN, answers a line with the digest of
/// what it got, then a mebibyte of its own, then closes.
pub(crate) fn digest_backend() -> SocketAddr {
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            s.write_all(format!("{:016x}\n", digest(&got)).as_bytes())
                .unwrap();
            s.write_all(&pattern(MIB, 7)).unwrap();
        }
    });
    addr
}

/// FNV-1a: enough to tell two byte streams apart here.
fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Through `proxy` to a [`digest_backend`] named `host`: a request with a mebibyte body, then a
/// half-close, after which the answer must still come back. Checks that the backend got exactly
/// what was sent and that its mebibyte arrived whole; answers the bytes sent and received.
pub(crate) fn megabyte_each_way(proxy: SocketAddr, host: &str) -> (u64, u64) {
    let mut sent =
        format!("POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: {MIB}\r\n\r\n").into_bytes();
    sent.extend_from_slice(&pattern(MIB, 3));
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&sent).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        format!("{:016x}", digest(&sent)),
        "the backend got exactly what was sent"
    );
    let mut back = Vec::new();
    reader.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), MIB);
    assert!(
        back == pattern(MIB, 7),
        "the backend's mebibyte changed on the way"
    );
    (sent.len() as u64, (line.len() + back.len()) as u64)
}
