//! The probes that come with the crate (feature `tokio`): a TCP connect, and a TCP exchange that
//! sends a request and looks for a string in the answer (HAProxy's `tcp-check send` and
//! `tcp-check expect string`). `TlsHandshake` (feature `tls-check`) is in `tls_probe`.
//!
//! They judge backends identified by address only: a name would have to be resolved, which this
//! crate does not do, so the active checks leave those alone and passive health still applies.
//! Give such pools a custom [`Probe`] that resolves the name.

use core::net::SocketAddr;
use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Backend, BackendId, PoolError, Probe, ProbeFuture};

/// The address a probe connects to; `None` for a backend identified by name.
pub(crate) fn address(backend: &Backend) -> Option<SocketAddr> {
    match backend.id {
        BackendId::Addr(addr) => Some(addr),
        BackendId::Name(_) => None,
    }
}

/// Healthy when a TCP connection to the backend's address opens; closed at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConnect;

impl Probe for TcpConnect {
    fn probe<'a>(&'a self, backend: &'a Backend) -> ProbeFuture<'a> {
        Box::pin(exchange(backend, &[], &[]))
    }

    fn judges(&self, backend: &Backend) -> bool {
        address(backend).is_some()
    }
}

/// Healthy when the backend answers `send` with `expect`: connect, write `send`, read until
/// `expect` shows up anywhere in what arrived, close. The answer ending (EOF) first, or filling
/// [`READ_LIMIT`](Self::READ_LIMIT) bytes without it, fails at once; an answer that never comes
/// fails at the checker's timeout, which bounds the whole exchange.
///
/// ```
/// use backend_pool::TcpExchange;
///
/// let redis = TcpExchange::new("PING\r\n", "+PONG")?;
/// let smtp = TcpExchange::new("", "220 ")?; // the server speaks first
/// # let _ = (redis, smtp);
/// # Ok::<(), backend_pool::PoolError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpExchange {
    /// Written as soon as the connection opens; empty for a protocol where the server speaks
    /// first.
    pub send: Vec<u8>,
    /// Looked for anywhere within the answer's first [`READ_LIMIT`](Self::READ_LIMIT) bytes, as
    /// raw bytes. Empty: opening the connection and writing `send` is enough. Longer than
    /// `READ_LIMIT`: never found (refused by [`new`](Self::new)).
    pub expect: Vec<u8>,
}

impl TcpExchange {
    /// The most of an answer read while looking for `expect`: 16 KiB.
    pub const READ_LIMIT: usize = 16 * 1024;

    /// An exchange, refused when `expect` could never fit in the bytes read.
    pub fn new(send: impl Into<Vec<u8>>, expect: impl Into<Vec<u8>>) -> Result<Self, PoolError> {
        let (send, expect) = (send.into(), expect.into());
        if expect.len() > Self::READ_LIMIT {
            return Err(PoolError::InvalidConfig(
                "expect is longer than TcpExchange::READ_LIMIT (16 KiB)",
            ));
        }
        Ok(Self { send, expect })
    }
}

impl Probe for TcpExchange {
    fn probe<'a>(&'a self, backend: &'a Backend) -> ProbeFuture<'a> {
        Box::pin(exchange(backend, &self.send, &self.expect))
    }

    fn judges(&self, backend: &Backend) -> bool {
        address(backend).is_some()
    }
}

/// True when `send` went out and `expect` came back; false on any failure.
async fn exchange(backend: &Backend, send: &[u8], expect: &[u8]) -> bool {
    let Some(addr) = address(backend) else {
        return false;
    };
    talk(addr, send, expect).await.unwrap_or(false)
}

async fn talk(addr: SocketAddr, send: &[u8], expect: &[u8]) -> io::Result<bool> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(send).await?;
    if expect.is_empty() {
        return Ok(true);
    }
    let mut answer = vec![0u8; TcpExchange::READ_LIMIT];
    let mut filled = 0;
    while filled < answer.len() {
        let n = stream.read(&mut answer[filled..]).await?;
        if n == 0 {
            return Ok(false);
        }
        // Only where a match was not possible before: the new bytes and the tail ahead of them.
        let from = filled.saturating_sub(expect.len() - 1);
        filled += n;
        if answer[from..filled]
            .windows(expect.len())
            .any(|w| w == expect)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;
    use tokio::net::TcpListener;

    /// How a test backend behaves on each connection.
    #[derive(Clone)]
    struct Script {
        /// Read exactly this first (the request); anything else and it closes.
        request: Vec<u8>,
        /// Then write these, one segment each.
        answer: Vec<Vec<u8>>,
        /// Then close, or hold the connection open.
        close: bool,
    }

    fn script(request: &[u8], answer: &[&[u8]], close: bool) -> Script {
        Script {
            request: request.to_vec(),
            answer: answer.iter().map(|a| a.to_vec()).collect(),
            close,
        }
    }

    /// A local backend that plays `script` on every connection.
    async fn backend(script: Script) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let script = script.clone();
                tokio::spawn(async move {
                    let mut request = vec![0; script.request.len()];
                    if conn.read_exact(&mut request).await.is_err() || request != script.request {
                        return;
                    }
                    for segment in &script.answer {
                        conn.write_all(segment).await.unwrap();
                        conn.flush().await.unwrap();
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    if !script.close {
                        core::future::pending::<()>().await;
                    }
                });
            }
        });
        Backend::new(addr, 1)
    }

    /// The probe's verdict, or `None` when it was still waiting after 300 ms (the checker's
    /// timeout would fail it).
    async fn verdict(probe: &impl Probe, backend: &Backend) -> Option<bool> {
        tokio::time::timeout(Duration::from_millis(300), probe.probe(backend))
            .await
            .ok()
    }

    const PING: &[u8] = b"PING\r\n";

    #[tokio::test]
    async fn exchange_against_backends_that_answer_right_wrong_or_not_at_all() {
        let redis = TcpExchange::new(PING, "+PONG").unwrap();
        let right = backend(script(PING, &[b"+PONG\r\n"], false)).await;
        assert_eq!(verdict(&redis, &right).await, Some(true));
        // The string split across segments, after other bytes.
        let split = backend(script(PING, &[b"junk +PO", b"NG\r\n"], true)).await;
        assert_eq!(verdict(&redis, &split).await, Some(true));
        let wrong = backend(script(PING, &[b"-ERR unknown\r\n"], true)).await;
        assert_eq!(verdict(&redis, &wrong).await, Some(false), "EOF first");
        let silent = backend(script(PING, &[], false)).await;
        assert_eq!(verdict(&redis, &silent).await, None, "the timeout decides");
        let flood = Script {
            answer: vec![vec![b'x'; TcpExchange::READ_LIMIT + 10]],
            ..script(PING, &[], false)
        };
        let flood = backend(flood).await;
        assert_eq!(verdict(&redis, &flood).await, Some(false), "bounded read");
        // A request the backend does not take: it closes without answering.
        let other = backend(script(b"QUIT\r\n", &[b"+PONG\r\n"], true)).await;
        assert_eq!(verdict(&redis, &other).await, Some(false));
    }

    #[tokio::test]
    async fn server_speaks_first_empty_expect_and_refused_connections() {
        let banner = backend(script(b"", &[b"220 mail.test ESMTP\r\n"], false)).await;
        let smtp = TcpExchange::new("", "220 ").unwrap();
        assert_eq!(verdict(&smtp, &banner).await, Some(true));
        let connect_only = TcpExchange::new(PING, "").unwrap();
        assert_eq!(verdict(&connect_only, &banner).await, Some(true));
        let closed = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            Backend::new(listener.local_addr().unwrap(), 1)
        };
        assert_eq!(verdict(&smtp, &closed).await, Some(false));
        assert_eq!(verdict(&TcpConnect, &closed).await, Some(false));
        assert_eq!(verdict(&TcpConnect, &banner).await, Some(true));
    }

    #[test]
    fn an_expect_that_cannot_fit_is_refused_and_names_are_not_judged() {
        let long = vec![b'a'; TcpExchange::READ_LIMIT + 1];
        assert!(matches!(
            TcpExchange::new("", long),
            Err(PoolError::InvalidConfig(_))
        ));
        let named = Backend::new("web-1", 1);
        assert!(!TcpExchange::default().judges(&named));
        assert!(!TcpConnect.judges(&named));
        assert!(TcpConnect.judges(&Backend::new(SocketAddr::from(([127, 0, 0, 1], 80)), 1)));
    }
}
