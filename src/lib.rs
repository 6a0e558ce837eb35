//! # sixgate
//!
//! The edge of an IPv6-only hosting network, as a family of small crates. This facade re-exports each
//! of them behind a default-on feature of the same name, so one dependency brings what you need:
//!
//! | feature        | crate                      | what it does                                             |
//! |----------------|----------------------------|----------------------------------------------------------|
//! | `proxy-proto`  | [`proxy_proto`]            | PROXY protocol v1/v2: parse and emit, every TLV, sans-IO |
//! | `sni-peek`     | [`sni_peek`]               | TLS SNI/ALPN/ECH, HTTP/1 Host, h2 `:authority`, split anywhere |
//! | `backend-pool` | [`backend_pool`]           | weighted picks (smooth WRR, least-conn, Maglev), health  |
//! | `nat64-xlat`   | [`nat64_xlat`]             | IPv4/IPv6 translation: stateless (RFC 7915, 6052, 7757, 6791) and stateful NAT64 (RFC 6146, 7422) |
//! | `tokio`        | (adds to the above)        | read a PROXY header or peek a name off a stream; active health checks |
//! | `proxy`        | [`proxy`]                  | the proxy engine: SNI/Host routing, PROXY out, relay, live route changes |
//! | `gateway`      | `gateway` (Linux)          | the NAT64 engine: `nat64-xlat` on a multi-queue TUN device |
//!
//! The protocol crates are `#![no_std]` and allocation-free; depend on them directly with
//! `default-features = false` on targets without `std`.
// The gateway's device and ring code needs system calls; it allows unsafe in those two modules
// only, each block with its reason.
#![deny(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "proxy-proto")]
#[doc(inline)]
pub use proxy_proto;

#[cfg(feature = "sni-peek")]
#[doc(inline)]
pub use sni_peek;

#[cfg(feature = "backend-pool")]
#[doc(inline)]
pub use backend_pool;

#[cfg(feature = "nat64-xlat")]
#[doc(inline)]
pub use nat64_xlat;

#[cfg(feature = "proxy")]
pub mod proxy;

#[cfg(all(feature = "gateway", target_os = "linux"))]
pub mod gateway;

/// The README's Rust examples, compiled (and run, where they can) with the doctests so they cannot drift.
#[cfg(all(doctest, feature = "proxy"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
