//! # sni-peek
//!
//! Decide where a connection goes from its first bytes, without terminating TLS: the server name
//! of a TLS ClientHello, the Host of an HTTP/1.x request, or the `:authority` of an HTTP/2
//! prior-knowledge request. The bytes can be split anywhere, by TCP or across TLS records.
//!
//! ```text
//!  socket ──bytes so far──▶ peek(input, scratch, limits)
//!                              │
//!            ┌─────────────────┼───────────────────┬───────────────────┐
//!      Partial(needed)   Complete(Tls)       Complete(Http/H2)   Complete(Unknown)     Err(Error)
//!      read more, call   sni, alpn, ech,     host, port,         not TLS, not HTTP:
//!      again             versions, consumed  consumed            the bytes prove it
//! ```
//!
//! What it deliberately does not do: no network I/O and no clock in the core (the optional `tokio`
//! feature adds a thin reader with a deadline), no allocation (a hello spread over several records
//! is joined in a scratch buffer the caller provides), no decryption of ECH, no IDNA. It never
//! consumes bytes: after the decision the caller forwards everything it read, untouched.
//!
//! ```
//! use sni_peek::{peek, Detected, Limits, Status};
//!
//! let limits = Limits::default();
//! let mut scratch = [0u8; 1024];
//! let request = b"GET / HTTP/1.1\r\nHost: Example.COM:8080\r\n\r\n";
//!
//! // A TCP segment that ends inside the Host line is not enough.
//! assert!(matches!(peek(&request[..20], &mut scratch, &limits), Ok(Status::Partial(_))));
//!
//! match peek(request, &mut scratch, &limits).unwrap() {
//!     Status::Complete(Detected::Http(req)) => {
//!         assert_eq!(req.host().unwrap(), "example.com");
//!         assert_eq!(req.port(), Some(8080));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```
//!
//! The separate entry points [`tls::parse`], [`http1::parse`] and [`h2::parse`] each read one
//! protocol. MSRV: Rust 1.85.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]

#[cfg(any(test, feature = "std"))]
extern crate std;

mod error;
pub mod h2;
mod hello;
mod hpack;
pub mod http1;
mod huffman;
mod name;
mod reader;
pub mod tls;

#[cfg(feature = "tokio")]
pub mod tokio;

#[cfg(any(test, feature = "internal"))]
#[doc(hidden)]
pub mod internal;

use core::num::NonZeroUsize;

pub use error::Error;
pub use h2::H2Request;
pub use hello::{AlpnProtocols, CipherSuite, CipherSuites, ClientHello, ProtocolVersion, Versions};
pub use http1::HttpRequest;
pub use name::{HostName, MAX_NAME_LEN};

/// The outcome of parsing the bytes received so far: done, or waiting for more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// Enough bytes were there.
    Complete(T),
    /// Every byte so far is a valid beginning; read more and parse the grown buffer again.
    Partial(Needed),
}

impl<T> Status<T> {
    /// The value, if complete.
    pub fn complete(self) -> Option<T> {
        match self {
            Status::Complete(t) => Some(t),
            Status::Partial(_) => None,
        }
    }

    /// True for [`Status::Complete`].
    pub fn is_complete(&self) -> bool {
        matches!(self, Status::Complete(_))
    }

    /// True for [`Status::Partial`].
    pub fn is_partial(&self) -> bool {
        matches!(self, Status::Partial(_))
    }

    /// How many more bytes are needed; `None` when complete.
    pub fn needed(&self) -> Option<Needed> {
        match self {
            Status::Complete(_) => None,
            Status::Partial(n) => Some(*n),
        }
    }

    /// Applies `f` to the complete value; a partial one passes through.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Status<U> {
        match self {
            Status::Complete(t) => Status::Complete(f(t)),
            Status::Partial(n) => Status::Partial(n),
        }
    }
}

/// How many more bytes a [`Status::Partial`] needs, as far as the format tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needed {
    /// Exactly this many more: a length field announced them.
    Exactly(NonZeroUsize),
    /// At least this many more: the shortest valid continuation is longer than what is here.
    AtLeast(NonZeroUsize),
    /// At least one more; nothing announces how many (a line ending, an HTTP/1 head).
    Unknown,
}

impl Needed {
    /// The fewest bytes worth waiting for before parsing again (1 when unknown).
    pub fn min(self) -> usize {
        match self {
            Needed::Exactly(n) | Needed::AtLeast(n) => n.get(),
            Needed::Unknown => 1,
        }
    }

    /// `Exactly(n)`, or `Unknown` for 0.
    pub(crate) fn exactly(n: usize) -> Needed {
        NonZeroUsize::new(n).map_or(Needed::Unknown, Needed::Exactly)
    }

    /// `AtLeast(n)`, or `Unknown` for 0.
    pub(crate) fn at_least(n: usize) -> Needed {
        NonZeroUsize::new(n).map_or(Needed::Unknown, Needed::AtLeast)
    }
}

/// Caps that bound the work and memory spent on one connection's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest ClientHello body accepted (the handshake length field). Default 16 KiB.
    pub max_hello_len: usize,
    /// Most TLS records a ClientHello may be spread over. Default 64: real clients use one.
    pub max_records: usize,
    /// Largest HTTP/1 header block, or HTTP/2 preface plus frames up to the first header block's
    /// end. Default 16 KiB.
    pub max_header_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_hello_len: 16 * 1024,
            max_records: 64,
            max_header_len: 16 * 1024,
        }
    }
}

impl Limits {
    /// The scratch size that is always enough under these limits.
    pub fn scratch_len(&self) -> usize {
        (tls::HANDSHAKE_HEADER_LEN + self.max_hello_len).max(self.max_header_len)
    }
}

/// What the first bytes of a connection turned out to be.
#[derive(Debug, Clone, Copy)]
pub enum Detected<'a> {
    /// A TLS (or SSLv2-compatible) ClientHello.
    Tls(ClientHello<'a>),
    /// An HTTP/1.x request.
    Http(HttpRequest<'a>),
    /// An HTTP/2 prior-knowledge connection.
    H2(H2Request<'a>),
    /// Neither TLS nor HTTP: the bytes already received prove it.
    Unknown,
}

/// The protocol family of a [`Summary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// TLS.
    Tls,
    /// HTTP/1.x.
    Http1,
    /// HTTP/2 with prior knowledge.
    H2,
    /// Neither.
    Unknown,
}

/// What was peeked, in short: the protocol, the name and port, whether ECH was offered, and how
/// many bytes it took. Owned, `Copy`, enough to pick a backend; the [`Detected`] it comes from
/// has the rest (ALPN, versions, cipher suites).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Which protocol.
    pub protocol: Protocol,
    /// The name to route on, if any.
    pub host: Option<HostName>,
    /// The port given with an HTTP host, if any.
    pub port: Option<u16>,
    /// TLS with an `encrypted_client_hello` extension: `host` is the outer name.
    pub ech: bool,
    /// Input bytes the decision was made from (all of them are still to be forwarded).
    pub consumed: usize,
}

impl Detected<'_> {
    /// The owned summary: what a proxy picks a backend from.
    pub fn summary(&self) -> Summary {
        let (protocol, host, port, ech, consumed) = match self {
            Detected::Tls(h) => (
                Protocol::Tls,
                h.server_name(),
                None,
                h.has_ech(),
                h.consumed(),
            ),
            Detected::Http(r) => (Protocol::Http1, r.host(), r.port(), false, r.consumed()),
            Detected::H2(r) => (Protocol::H2, r.host(), r.port(), false, r.consumed()),
            Detected::Unknown => (Protocol::Unknown, None, None, false, 0),
        };
        Summary {
            protocol,
            host,
            port,
            ech,
            consumed,
        }
    }
}

/// Reads whatever the first bytes are: TLS, HTTP/1.x, HTTP/2 prior knowledge, or none of them.
///
/// `scratch` joins a ClientHello spread over several records or an h2 header block spread over
/// CONTINUATION frames; [`Limits::scratch_len`] is always enough, and it is not touched otherwise.
pub fn peek<'a>(
    input: &'a [u8],
    scratch: &'a mut [u8],
    limits: &Limits,
) -> Result<Status<Detected<'a>>, Error> {
    if input.is_empty() {
        return Ok(Status::Partial(Needed::at_least(1)));
    }
    let head = input.get(..h2::PREFACE.len()).unwrap_or(input);
    let outcome = if tls::may_be_tls(input) {
        tls::parse(input, scratch, limits).map(|s| s.map(Detected::Tls))
    } else if head.len() >= 4 && h2::PREFACE.starts_with(head) {
        // From "PRI " on, only the h2 preface fits; "PRI" alone could still be an HTTP/1 method.
        h2::parse(input, scratch, limits).map(|s| s.map(Detected::H2))
    } else {
        http1::parse(input, limits).map(|s| s.map(Detected::Http))
    };
    match outcome {
        Err(Error::NotTls | Error::NotHttp) => Ok(Status::Complete(Detected::Unknown)),
        other => other,
    }
}

/// The README's example, compiled and run with the doctests so it cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internal::{HelloSpec, build_hello, reframe};
    use proptest::prelude::*;
    use std::string::String;
    use std::vec::Vec;

    fn host_name() -> impl Strategy<Value = String> {
        (
            // Labels neither start nor end with '-'.
            proptest::collection::vec("[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,19}[a-zA-Z0-9_])?", 1..5),
            any::<bool>(),
        )
            .prop_map(|(labels, dot)| labels.join(".") + if dot { "." } else { "" })
    }

    fn protocols() -> impl Strategy<Value = Vec<Vec<u8>>> {
        // Without GREASE values (RFC 8701: two equal bytes 0x?A), which are skipped, rightly.
        let protocol = proptest::collection::vec(0x21u8..0x7f, 1..12).prop_filter("GREASE", |p| {
            !(p.len() == 2 && p[0] == p[1] && p[0] & 0x0f == 0x0a)
        });
        proptest::collection::vec(protocol, 0..5)
    }

    proptest! {
        #[test]
        fn generated_hellos_give_back_name_and_alpn(
            name in proptest::option::of(host_name()),
            alpn in protocols(),
            grease in any::<bool>(),
            ech_len in prop_oneof![Just(0usize), 1usize..300],
            key_share_len in prop_oneof![Just(32usize), Just(1216usize), 0usize..100],
            padding in prop_oneof![Just(0usize), 1usize..2000],
            shuffle in any::<u64>(),
            payload in 1usize..700,
            cut in any::<prop::sample::Index>(),
        ) {
            let alpn_refs: Vec<&[u8]> = alpn.iter().map(Vec::as_slice).collect();
            let spec = HelloSpec {
                server_name: name.as_deref().map(str::as_bytes),
                alpn: &alpn_refs,
                grease,
                ech_len,
                key_share_len,
                padding,
                shuffle,
            };
            let input = reframe(&build_hello(&spec), payload);
            let limits = Limits { max_records: usize::MAX, ..Limits::default() };
            let mut scratch = std::vec![0u8; limits.scratch_len()];
            let Ok(Status::Complete(Detected::Tls(h))) = peek(&input, &mut scratch, &limits) else {
                panic!("not a complete hello");
            };
            let want = name.map(|n| n.trim_end_matches('.').to_ascii_lowercase());
            prop_assert_eq!(h.server_name().map(|n| String::from(n.as_str())), want);
            prop_assert_eq!(h.alpn().collect::<Vec<_>>(), alpn_refs);
            prop_assert_eq!(h.has_ech(), ech_len > 0);
            prop_assert_eq!(h.consumed(), input.len());
            let cut = cut.index(input.len());
            let mut scratch = std::vec![0u8; limits.scratch_len()];
            let partial = peek(&input[..cut], &mut scratch, &limits);
            prop_assert!(matches!(partial, Ok(Status::Partial(_))), "cut {}: {:?}", cut, partial);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            prefix in prop_oneof![
                Just(&b""[..]),
                Just(&b"\x16\x03\x01"[..]),
                Just(&b"\x16\x03\x01\x01\x00\x01\x00\x00\xfc\x03\x03"[..]),
                Just(&b"GET / HTTP/1.1\r\n"[..]),
                Just(&h2::PREFACE[..]),
            ],
            tail in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut input = prefix.to_vec();
            input.extend(tail);
            let mut scratch = [0u8; 512];
            let _ = peek(&input, &mut scratch, &Limits::default());
        }
    }

    #[test]
    fn peek_routes_each_protocol_and_unknown() {
        let mut scratch = [0u8; 64];
        let limits = Limits::default();
        let mut summary = |input: &[u8]| match peek(input, &mut scratch, &limits) {
            Ok(Status::Complete(d)) => d.summary(),
            other => panic!("{other:?}"),
        };
        let r = summary(b"GET / HTTP/1.1\r\nHost: a.example:81\r\n\r\n");
        assert_eq!(
            (r.protocol, r.host.unwrap().as_str(), r.port),
            (Protocol::Http1, "a.example", Some(81))
        );
        assert_eq!(summary(b"SSH-2.0-x\r\n").protocol, Protocol::Unknown);
        assert_eq!(summary(b"\x00\x00").protocol, Protocol::Unknown);
        assert_eq!(summary(&[0x16, 0x01]).protocol, Protocol::Unknown);
        let r = summary(&h2::tests::request(b"h2.example"));
        assert_eq!(
            (r.protocol, r.host.unwrap().as_str()),
            (Protocol::H2, "h2.example")
        );
        let tls = include_bytes!("../testdata/rustls_tls13_alpn.bin");
        let r = summary(tls);
        assert_eq!(
            (r.protocol, r.host.unwrap().as_str(), r.consumed),
            (Protocol::Tls, "rustls.example", tls.len())
        );
    }

    #[test]
    fn results_stay_small_to_move() {
        // Names are copied out on request: a parse result must not carry a 253-byte buffer.
        assert!(core::mem::size_of::<Result<Status<Detected<'_>>, Error>>() <= 128);
    }

    #[test]
    fn ambiguous_starts_wait() {
        let mut scratch = [0u8; 64];
        let limits = Limits::default();
        for input in [&b""[..], b"P", b"PRI", b"PRI * HTTP/2.0\r\n", b"\x16"] {
            assert!(
                matches!(peek(input, &mut scratch, &limits), Ok(Status::Partial(_))),
                "{input:?}"
            );
        }
        assert!(
            matches!(peek(b"PRI * HTTP/2.0\r\n", &mut scratch, &limits), Ok(Status::Partial(Needed::AtLeast(n))) if n.get() == 8)
        );
    }

    #[test]
    fn status_helpers() {
        let done: Status<u8> = Status::Complete(7);
        assert!(done.is_complete() && !done.is_partial());
        assert_eq!(done.needed(), None);
        assert_eq!(done.complete(), Some(7));
        assert_eq!(done.map(u16::from), Status::Complete(7u16));

        let more: Status<u8> = Status::Partial(Needed::exactly(3));
        assert!(more.is_partial() && !more.is_complete());
        assert_eq!(more.needed(), Some(Needed::exactly(3)));
        assert_eq!(more.complete(), None);
        assert_eq!(more.map(u16::from), Status::Partial(Needed::exactly(3)));
    }

    #[test]
    fn needed_min_and_zero() {
        assert_eq!(Needed::exactly(3).min(), 3);
        assert_eq!(Needed::at_least(2).min(), 2);
        assert_eq!(Needed::Unknown.min(), 1);
        assert_eq!(Needed::exactly(0), Needed::Unknown);
        assert_eq!(Needed::at_least(0), Needed::Unknown);
        assert!(matches!(Needed::exactly(5), Needed::Exactly(n) if n.get() == 5));
        assert!(matches!(Needed::at_least(5), Needed::AtLeast(n) if n.get() == 5));
    }
}
