//! PROXY protocol v1 and v2 — parse and emit, every TLV, sans-IO, `no_std`, no allocation.
//!
//! A proxy that forwards a TCP connection hides the client's address from the server behind it. The
//! [PROXY protocol] fixes that: the proxy prepends one header to the stream — a text line (v1) or a
//! binary block with optional TLVs (v2) — and the server reads it before the application bytes.
//! HAProxy (`send-proxy`, `accept-proxy`), nginx (`proxy_protocol`), Apache, AWS/Azure/GCP load
//! balancers and many more speak it.
//!
//! ```text
//!   bytes received so far ──► parse() ──► Complete(Header)   header.len() bytes are the header;
//!                               │                             the rest belong to the application
//!                               ├──────► Partial(Needed)      read more, call again with all bytes
//!                               └──────► Err(Error)           not PROXY, or malformed: drop it
//!
//!   Builder::v1 / Builder::v2 ──► len() ──► write(&mut [u8]) / put(&mut impl BufMut)
//! ```
//!
//! What it does **not** do: no network I/O and no clock in the core (the `tokio` feature adds a thin
//! reader with a deadline), no allocation (except `TrustPolicy`'s rule list, with `alloc`), no
//! `unsafe`. Parsing borrows from your buffer; nothing is copied. Who may send a header is decided
//! by a `TrustPolicy` of [`Cidr`] networks, at the root so any runtime's glue can use it.
//!
//! # Parse
//! ```
//! use proxy_proto::{parse, Status};
//!
//! let bytes = b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\nGET / HTTP/1.1\r\n";
//! let Status::Complete(header) = parse(bytes)? else { panic!("need more bytes") };
//! assert_eq!(header.source().unwrap().to_string(), "192.0.2.1:56324");
//! // Everything after the header is the application's, untouched.
//! assert_eq!(&bytes[header.len()..], b"GET / HTTP/1.1\r\n");
//! # Ok::<(), proxy_proto::Error>(())
//! ```
//!
//! # Emit, then parse back
//! ```
//! use proxy_proto::{parse, Builder, Status};
//!
//! let src = "[2001:db8::1]:56324".parse().unwrap();
//! let dst = "[2001:db8::80]:443".parse().unwrap();
//! let builder = Builder::v2_proxy(src, dst).authority("www.example.com").alpn(b"h2").crc32c();
//! let mut buf = [0u8; 128];
//! let n = builder.write(&mut buf)?;
//! assert_eq!(n, builder.len()?);
//!
//! let Status::Complete(header) = parse(&buf[..n]).unwrap() else { unreachable!() };
//! assert_eq!(header.source(), Some(src));
//! assert_eq!(header.authority(), Some("www.example.com"));
//! assert!(header.crc32c().is_some()); // present, and verified by parse
//! # Ok::<(), proxy_proto::EmitError>(())
//! ```
//!
//! # Sending: one write
//! Send the header **and the first payload bytes in a single write**. nginx 1.22 and HAProxy 2.6
//! reject a header that arrives split across TCP segments, and nginx 1.22 also rejects any v2 header
//! longer than 107 bytes on its stream and `ssl` listeners — keep TLVs off for those receivers.
//!
//! # Strictness
//! Parsing is strict by default, as the specification reads: v1 needs single spaces, CRLF, no
//! leading zeros, no `+` on ports, matching families; v2 needs a known command and family, a length
//! that covers the address block, well-formed TLVs, and a matching CRC32C when one is sent.
//! [`Parser::lenient_v1`] accepts what nginx 1.22 sends (mixed families, leading zeros).
//!
//! Choices where the specification is silent:
//! - **Two CRC32C TLVs are an error.** Each would be computed with only its own field zeroed, so
//!   neither could vouch for the other; one checksum per header is what the format means.
//! - Other repeated TLVs are kept; the typed accessors return the first, [`Header::tlvs`] all.
//! - LOCAL headers are accepted with any family byte, with or without an address block: the
//!   block is read when whole (see [`Header::source`] for why it is still not the client), and
//!   what follows it is kept as TLVs when it is well-formed, skipped when it is not. A CRC32C
//!   that is there must still match.
//! - The builder refuses what the parser would: a UNIQUE_ID over 128 bytes, AUTHORITY or SSL
//!   strings that are not UTF-8, NETNS that is not US-ASCII, UNIX paths holding a NUL.
//! - With the UNSPEC family everything after the preamble is TLVs, as HAProxy's health checks
//!   send it (LOCAL, UNSPEC, CRC32C).
//! - Text TLVs (AUTHORITY, the SSL strings) must be UTF-8 and NETNS US-ASCII; UNIQUE_ID at most
//!   128 bytes. The cloud TLVs (AWS `0xEA`, Azure `0xEE`, GCP `0xE0`) live in the custom range
//!   that anyone may use, so an unexpected shape there is not an error — the accessor says `None`.
//!
//! Minimum supported Rust version: 1.85.
//!
//! [PROXY protocol]: https://www.haproxy.org/download/3.1/doc/proxy-protocol.txt
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]

#[cfg(any(test, feature = "std"))]
extern crate std;

#[cfg(feature = "alloc")]
extern crate alloc;

mod addresses;
mod crc32c;
mod emit;
mod error;
mod header;
mod ip_text;
mod layout;
mod parse;
mod status;
mod tlv;
mod trust;
mod v1;
mod v2;

#[cfg(feature = "tokio")]
pub mod tokio;

pub use addresses::Addresses;
pub use emit::{Builder, EmitError, MAX_SSL_SUB_TLVS, MAX_TLVS, SslBuilder};
pub use error::Error;
pub use header::{Command, Header, Transport, Version};
pub use parse::{Parser, parse, parse_v1, parse_v2};
pub use status::{Needed, Status};
pub use tlv::{Ssl, SslClient, Tlv, TlvType, Tlvs};
#[cfg(feature = "alloc")]
pub use trust::TrustPolicy;
pub use trust::{Cidr, CidrError, Policy};

/// The 12-byte signature that starts every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line the specification allows, CRLF included.
pub const V1_MAX_LEN: usize = 107;
/// The default cap on a v2 header (16-byte preamble included); the format allows 65 551.
pub const V2_DEFAULT_MAX_LEN: usize = 4096;

/// The README's example, compiled and run with the doctests so it cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Internals the fuzz targets need; not part of the public API.
#[cfg(feature = "internal")]
#[doc(hidden)]
pub mod internal {
    /// CRC-32C, hardware where `std` allows.
    pub fn crc32c(bytes: &[u8]) -> u32 {
        crate::crc32c::checksum(bytes)
    }
    /// CRC-32C, always the software tables.
    pub fn crc32c_software(bytes: &[u8]) -> u32 {
        crate::crc32c::checksum_software(bytes)
    }
}
