//! Peek a tokio stream: read until a decision, under a deadline and the size caps, then hand back
//! the decision and every byte read, to be forwarded as-is. A thin loop around [`crate::peek`],
//! which parses from the start each time: a gate calls it again only when the answer can have
//! changed, so that a stream arriving a byte at a time costs a few parses, not one per byte.

use std::vec;
use std::vec::Vec;

use ::bytes::{Bytes, BytesMut};
use ::tokio::io::{AsyncRead, AsyncReadExt};
use ::tokio::time::{Instant, timeout_at};

use crate::{Error, Limits, Needed, Status, Summary};

/// Bytes asked of the stream per read when the parser cannot say how many it needs.
const READ_CHUNK: usize = 4096;

/// A decision and the bytes it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peeked {
    /// What was peeked: protocol, name, port; where the connection goes is chosen from it.
    pub summary: Summary,
    /// Every byte read from the stream, in order: forward all of them. `Bytes`, as the rest
    /// after a PROXY header is in `proxy_proto::tokio`.
    pub bytes: Bytes,
}

/// Why no decision was made. Each case hands back the bytes read so far.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeekError {
    /// The deadline passed first.
    #[error("no routing decision before the deadline ({} bytes read)", bytes.len())]
    Timeout {
        /// The bytes read.
        bytes: Bytes,
    },
    /// The peer closed the stream first.
    #[error("stream closed before a routing decision ({} bytes read)", bytes.len())]
    Closed {
        /// The bytes read.
        bytes: Bytes,
    },
    /// The bytes are not a valid hello or request, or exceed the caps.
    #[error("{error}")]
    Invalid {
        /// What is wrong.
        error: Error,
        /// The bytes read.
        bytes: Bytes,
    },
    /// Reading failed.
    #[error("reading the stream: {error}")]
    Io {
        /// The I/O error.
        #[source]
        error: std::io::Error,
        /// The bytes read.
        bytes: Bytes,
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
    let mut bytes = BytesMut::new();
    let mut scratch = Vec::new();
    let mut gate = Gate::default();
    let mut new_from = 0;
    loop {
        if gate.due(&bytes, new_from, limits) {
            match decide(&bytes, &mut scratch, limits) {
                Ok(Status::Complete(summary)) => {
                    let bytes = bytes.freeze();
                    return Ok(Peeked { summary, bytes });
                }
                Ok(Status::Partial(needed)) => gate.wait(needed, bytes.len()),
                Err(error) => {
                    let bytes = bytes.freeze();
                    return Err(PeekError::Invalid { error, bytes });
                }
            }
        }
        let start = bytes.len();
        let want = gate.ready_at.saturating_sub(start).max(READ_CHUNK);
        // Read into spare capacity (at least `want`): nothing is zeroed first.
        bytes.reserve(want);
        let read = timeout_at(deadline, stream.read_buf(&mut bytes)).await;
        match read {
            Err(_elapsed) => {
                return Err(PeekError::Timeout {
                    bytes: bytes.freeze(),
                });
            }
            Ok(Err(error)) => {
                let bytes = bytes.freeze();
                return Err(PeekError::Io { error, bytes });
            }
            Ok(Ok(0)) => {
                return Err(PeekError::Closed {
                    bytes: bytes.freeze(),
                });
            }
            Ok(Ok(_)) => {}
        }
        new_from = start;
    }
}

/// One [`crate::peek`], with the scratch buffer allocated on first need.
fn decide(bytes: &[u8], scratch: &mut Vec<u8>, limits: &Limits) -> Result<Status<Summary>, Error> {
    loop {
        let no_scratch = scratch.is_empty();
        let outcome = crate::peek(bytes, scratch, limits).map(|s| s.map(|d| d.summary()));
        match outcome {
            Err(Error::ScratchTooSmall { .. }) if no_scratch => {
                *scratch = vec![0; limits.scratch_len()];
            }
            other => return other,
        }
    }
}

/// Decides when parsing again can change the answer.
///
/// After a Partial that says how many bytes are missing (TLS, h2), once they are all here. After
/// one that cannot say (HTTP/1), once an empty line may have ended the header block (only then can
/// it be complete), once the cap is reached, or once the bytes have doubled since the last parse
/// (so that a malformed request is still refused early, at a total cost linear in its length).
#[derive(Debug, Default)]
struct Gate {
    /// No parse before this many bytes.
    ready_at: usize,
    /// The last Partial could not say how many bytes it needs.
    by_lines: bool,
    /// Bytes at the last parse.
    parsed_len: usize,
    /// A byte other than CR and LF arrived: empty lines before it are skipped, not an end.
    content: bool,
}

impl Gate {
    fn wait(&mut self, needed: Needed, len: usize) {
        self.parsed_len = len;
        (self.ready_at, self.by_lines) = match needed {
            Needed::Exactly(n) | Needed::AtLeast(n) => (len + n.get(), false),
            Needed::Unknown => (len + 1, true),
        };
    }

    /// Whether to parse `bytes`, of which those from `new_from` arrived since the last call.
    fn due(&mut self, bytes: &[u8], new_from: usize, limits: &Limits) -> bool {
        let new = bytes.get(new_from..).unwrap_or_default();
        self.content |= new.iter().any(|b| !matches!(b, b'\r' | b'\n'));
        if bytes.len() < self.ready_at {
            return false;
        }
        if !self.by_lines {
            return true;
        }
        let tail = bytes.get(new_from.saturating_sub(2)..).unwrap_or_default();
        let empty_line = tail
            .windows(2)
            .enumerate()
            .any(|(i, w)| w == b"\n\n" || (w == b"\r\n" && i > 0 && tail[i - 1] == b'\n'));
        bytes.len() >= limits.max_header_len
            || bytes.len() >= 2 * self.parsed_len
            || (self.content && empty_line)
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
        assert_eq!(peeked.summary.protocol, Protocol::Tls);
        assert_eq!(peeked.summary.host.unwrap(), "rustls.example");
        assert_eq!(peeked.summary.consumed, framed.len());
        // Whatever was read is handed back in order; nothing was lost.
        assert_eq!(peeked.bytes[..], sent[..peeked.bytes.len()]);
        drop(writer.await.unwrap());
    }

    /// Feeds `input` one byte at a time through the gate as [`peek`] does: the answer, and how
    /// many parses it took.
    fn byte_by_byte(input: &[u8], limits: &Limits) -> (Result<Summary, Error>, usize) {
        let (mut gate, mut scratch, mut parses) = (Gate::default(), Vec::new(), 0);
        for len in 0..=input.len() {
            let bytes = &input[..len];
            if !gate.due(bytes, len.saturating_sub(1), limits) {
                continue;
            }
            parses += 1;
            match decide(bytes, &mut scratch, limits) {
                Ok(Status::Complete(summary)) => return (Ok(summary), parses),
                Ok(Status::Partial(needed)) => gate.wait(needed, len),
                Err(e) => return (Err(e), parses),
            }
        }
        panic!("no decision after {parses} parses");
    }

    #[test]
    fn a_byte_at_a_time_costs_a_few_parses_not_one_per_byte() {
        let mut request = b"GET / HTTP/1.1\r\nHost: gate.example\r\n".to_vec();
        for i in 0..200 {
            request.extend_from_slice(std::format!("X-Header-{i}: some value\r\n").as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        let (summary, parses) = byte_by_byte(&request, &Limits::default());
        assert_eq!(summary.unwrap().host.unwrap(), "gate.example");
        // 5.6 KB: the doublings, then the empty line; not one per byte or per line.
        assert!(parses <= 20, "{parses} parses for {} bytes", request.len());

        // A malformed request is still refused before its end, by a doubling.
        let mut bad = b"GET / HTTP/1.1\r\nHost: a\r\nX:\x01".to_vec();
        bad.extend(core::iter::repeat_n(b'a', 3000));
        let (summary, parses) = byte_by_byte(&bad, &Limits::default());
        assert!(
            matches!(summary, Err(Error::InvalidHeader { .. })),
            "{summary:?}"
        );
        assert!(parses <= 20, "{parses}");

        // TLS asks for exact counts: one parse per record header and per record.
        let (summary, parses) = byte_by_byte(HELLO, &Limits::default());
        assert_eq!(summary.unwrap().host.unwrap(), "rustls.example");
        assert!(parses <= 4, "{parses}");

        // Leading empty lines are skipped, not taken for the end of a block.
        let (summary, _) = byte_by_byte(
            b"\r\n\r\nGET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
            &Limits::default(),
        );
        assert_eq!(summary.unwrap().host.unwrap(), "a.example");
        // Something that is not HTTP after a few bytes is decided without a line end.
        let (summary, _) = byte_by_byte(b"GET\x00\x01\x02\x03\x04\x05", &Limits::default());
        assert_eq!(summary.unwrap().protocol, Protocol::Unknown);
    }

    #[::tokio::test(start_paused = true)]
    async fn deadline_hands_back_what_was_read() {
        let (mut client, mut server) = ::tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        match peek(&mut server, deadline, &Limits::default()).await {
            Err(PeekError::Timeout { bytes }) => assert_eq!(bytes, &b"GET / HTTP/1.1\r\nHo"[..]),
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
            Err(PeekError::Closed { bytes }) if bytes[..] == b"\x16\x03\x01\x02"[..]
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
        assert_eq!(peeked.summary.protocol, Protocol::Unknown);
        assert_eq!(peeked.bytes, &b"SSH-2.0-OpenSSH_9.2\r\n"[..]);
    }
}
