//! Peek a tokio stream: read until a decision, under a deadline and the size caps, then hand back
//! the decision and every byte read, to be forwarded as-is. A thin loop around [`crate::peek`].

use std::vec;
use std::vec::Vec;

use ::tokio::io::{AsyncRead, AsyncReadExt};
use ::tokio::time::{Instant, timeout_at};

use crate::{Error, Limits, Needed, Route, Status};

/// Bytes asked of the stream per read when the parser cannot say how many it needs.
const READ_CHUNK: usize = 4096;

/// A decision and the bytes it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peeked {
    /// Where the connection goes.
    pub route: Route,
    /// Every byte read from the stream, in order: forward all of them.
    pub bytes: Vec<u8>,
}

/// Why no decision was made. Each case hands back the bytes read so far.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeekError {
    /// The deadline passed first.
    #[error("no routing decision before the deadline ({} bytes read)", bytes.len())]
    Timeout {
        /// The bytes read.
        bytes: Vec<u8>,
    },
    /// The peer closed the stream first.
    #[error("stream closed before a routing decision ({} bytes read)", bytes.len())]
    Closed {
        /// The bytes read.
        bytes: Vec<u8>,
    },
    /// The bytes are not a valid hello or request, or exceed the caps.
    #[error("{error}")]
    Invalid {
        /// What is wrong.
        error: Error,
        /// The bytes read.
        bytes: Vec<u8>,
    },
    /// Reading failed.
    #[error("reading the stream: {error}")]
    Io {
        /// The I/O error.
        #[source]
        error: std::io::Error,
        /// The bytes read.
        bytes: Vec<u8>,
    },
}

impl PeekError {
    /// The bytes read before the failure.
    pub fn bytes(&self) -> &[u8] {
        match self {
            PeekError::Timeout { bytes }
            | PeekError::Closed { bytes }
            | PeekError::Invalid { bytes, .. }
            | PeekError::Io { bytes, .. } => bytes,
        }
    }
}

/// Reads `stream` until [`crate::peek`] decides, the deadline passes, or a cap is hit.
///
/// The scratch buffer for reassembly is only allocated when a hello or header block needs it.
pub async fn peek<S>(
    stream: &mut S,
    deadline: Instant,
    limits: &Limits,
) -> Result<Peeked, PeekError>
where
    S: AsyncRead + Unpin + ?Sized,
{
    let mut bytes = Vec::new();
    let mut scratch = Vec::new();
    loop {
        let no_scratch = scratch.is_empty();
        let want = match crate::peek(&bytes, &mut scratch, limits) {
            Ok(Status::Complete(detected)) => {
                let route = detected.route();
                return Ok(Peeked { route, bytes });
            }
            Ok(Status::Partial(Needed::Size(n))) => n.get().max(READ_CHUNK),
            Ok(Status::Partial(Needed::Unknown)) => READ_CHUNK,
            Err(Error::ScratchTooSmall { .. }) if no_scratch => {
                scratch = vec![0; limits.scratch_len()];
                continue;
            }
            Err(error) => return Err(PeekError::Invalid { error, bytes }),
        };
        let start = bytes.len();
        bytes.resize(start + want, 0);
        let read = timeout_at(deadline, stream.read(&mut bytes[start..])).await;
        match read {
            Err(_elapsed) => {
                bytes.truncate(start);
                return Err(PeekError::Timeout { bytes });
            }
            Ok(Err(error)) => {
                bytes.truncate(start);
                return Err(PeekError::Io { error, bytes });
            }
            Ok(Ok(0)) => {
                bytes.truncate(start);
                return Err(PeekError::Closed { bytes });
            }
            Ok(Ok(n)) => bytes.truncate(start + n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Protocol;
    use ::tokio::io::AsyncWriteExt;
    use core::time::Duration;

    const HELLO: &[u8] = include_bytes!("../testdata/rustls_tls13_alpn.bin");

    #[::tokio::test]
    async fn tls_hello_over_three_records_in_small_writes_then_bytes_handed_back() {
        let framed = crate::internal::reframe(HELLO, 100);
        let mut sent = framed.clone();
        sent.extend_from_slice(&[20, 3, 3, 0, 1, 1]); // change_cipher_spec after the hello
        let (mut client, mut server) = ::tokio::io::duplex(64);
        let writer = ::tokio::spawn({
            let sent = sent.clone();
            async move {
                for chunk in sent.chunks(7) {
                    client.write_all(chunk).await.unwrap();
                }
                client
            }
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let peeked = peek(&mut server, deadline, &Limits::default())
            .await
            .unwrap();
        assert_eq!(peeked.route.protocol, Protocol::Tls);
        assert_eq!(peeked.route.host.unwrap(), "rustls.example");
        assert_eq!(peeked.route.consumed, framed.len());
        // Whatever was read is handed back in order; nothing was lost.
        assert_eq!(peeked.bytes[..], sent[..peeked.bytes.len()]);
        drop(writer.await.unwrap());
    }

    #[::tokio::test(start_paused = true)]
    async fn deadline_hands_back_what_was_read() {
        let (mut client, mut server) = ::tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        match peek(&mut server, deadline, &Limits::default()).await {
            Err(PeekError::Timeout { bytes }) => assert_eq!(bytes, b"GET / HTTP/1.1\r\nHo"),
            other => panic!("{other:?}"),
        }
        drop(client);
    }

    #[::tokio::test]
    async fn eof_and_invalid_and_unknown() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut closed: &[u8] = b"\x16\x03\x01\x02";
        assert!(matches!(
            peek(&mut closed, deadline, &Limits::default()).await,
            Err(PeekError::Closed { bytes }) if bytes == b"\x16\x03\x01\x02"
        ));
        let mut dup: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
        let err = peek(&mut dup, deadline, &Limits::default())
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            PeekError::Invalid {
                error: Error::DuplicateHost,
                ..
            }
        ));
        assert_eq!(err.bytes().len(), 36);
        let mut ssh: &[u8] = b"SSH-2.0-OpenSSH_9.2\r\n";
        let peeked = peek(&mut ssh, deadline, &Limits::default()).await.unwrap();
        assert_eq!(peeked.route.protocol, Protocol::Unknown);
        assert_eq!(peeked.bytes, b"SSH-2.0-OpenSSH_9.2\r\n");
    }
}
