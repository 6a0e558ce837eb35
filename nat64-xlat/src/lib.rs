//! # nat64-xlat
//!
//! Stateless IPv4/IPv6 translation (SIIT) as RFC 7915 defines it, for IPv6-only networks that still
//! have to reach, and be reached from, IPv4.
//!
//! ```text
//!   IPv4 side                       Translator                        IPv6 side
//!   192.0.2.33  ── IPv4 packet ──▶  translate_4to6  ── IPv6 packet(s) ──▶  2001:db8:1c0:2:21::
//!               ◀── ICMPv4 error ──  (TTL, DF/MTU, zero UDP checksum)
//!               ◀── IPv4 packet(s) ─  translate_6to4  ◀── IPv6 packet ───
//!                                    (hop limit, ext headers, MTU) ── ICMPv6 error / hairpin ──▶
//! ```
//!
//! What it does:
//! - addresses: RFC 6052 prefixes of every length ([`Pool6`]), the Well-Known Prefix's non-global
//!   rule with a configurable list, RFC 7757 explicit address mappings ([`Eam`], longest match,
//!   unequal suffixes, consulted first), RFC 6791 pools for untranslatable ICMP error sources, and
//!   RFC 7757 §4.2.2 hairpinning;
//! - headers: every field of RFC 7915 §4.1 and §5.1, IPv4 options skipped (unexpired source routes
//!   refused), IPv6 extension headers skipped (Routing with Segments Left refused with the pointer),
//!   fragments both ways, DF by the 1260-byte rule, fragmentation at `lowest_ipv6_mtu`;
//! - ICMP: echo both ways, every error mapping of §4.2 and §5.2 with both Parameter Problem pointer
//!   tables, MTU translation with RFC 1191 plateaus, the quoted packet translated (laxly: it is
//!   truncated by design), one level only, RFC 4884 lengths rescaled and padded, 576/1280 caps;
//! - checksums: RFC 1624 incremental updates, so cost does not grow with the payload and a wrong
//!   checksum stays equally wrong.
//!
//! Every entry point writes into a buffer you provide; for plain packets the `_in_place` variants
//! rewrite the headers where the packet lies and never touch the payload beyond its checksum.
//!
//! What the [`Translator`] does not do: any I/O, clocks, threads, allocation, or state beyond an
//! IPv4 identification counter. It does not reassemble fragments. The stateful NAT64 of RFC 6146,
//! with sessions and port translation, is [`stateful`] (feature `alloc`): still sans-IO, with its
//! memory taken once.
//!
//! ```
//! use nat64_xlat::{Config, Outcome, Pool6, Translator};
//!
//! let pool6 = Pool6::new("64:ff9b::/96".parse().unwrap()).unwrap();
//! let xlat = Translator::new(Config::new(Some(pool6)));
//!
//! // An IPv4 UDP datagram 8.8.8.8:53 -> 1.1.1.1:53 with an 4-byte payload.
//! let mut v4 = [0u8; 32];
//! v4[..20].copy_from_slice(&[
//!     0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0, 8, 8, 8, 8, 1, 1, 1, 1,
//! ]);
//! let c = nat64_xlat::checksum::finish(nat64_xlat::checksum::sum(&v4[..20]));
//! v4[10..12].copy_from_slice(&c.to_be_bytes());
//! v4[20..32].copy_from_slice(&[0, 53, 0, 53, 0, 12, 0x12, 0x34, 1, 2, 3, 4]);
//!
//! let mut out = [0u8; 4096];
//! let Outcome::Translated(e) = xlat.translate_4to6(&v4, &mut out) else { panic!() };
//! let v6 = e.packets(&out).next().unwrap();
//! assert_eq!(v6.len(), 40 + 12);
//! assert_eq!(v6[7], 63); // hop limit = TTL - 1
//! assert_eq!(&v6[8..24], &"64:ff9b::808:808".parse::<core::net::Ipv6Addr>().unwrap().octets());
//!
//! // And back.
//! let mut back = [0u8; 4096];
//! let Outcome::Translated(e) = xlat.translate_6to4(v6, &mut back) else { panic!() };
//! let again = e.packets(&back).next().unwrap();
//! assert_eq!(&again[12..20], &v4[12..20]);
//! assert_eq!(&again[20..], &v4[20..]); // UDP checksum restored by the incremental updates
//! ```
//!
//! MSRV: Rust 1.85.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]

#[cfg(any(test, feature = "std"))]
extern crate std;

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod checksum;
mod config;
mod eam;
mod emit;
mod fail;
pub mod icmp;
mod ids;
mod mapping;
mod outcome;
mod prefix;
mod rfc4884;
mod rfc6052;
mod sink;
#[cfg(feature = "alloc")]
pub mod stateful;
#[cfg(test)]
mod testpkt;
mod translator;
mod wire;
mod xlat46;
mod xlat64;

pub use config::{Config, UdpZeroChecksum};
pub use eam::{Eam, EamError, EamTable};
pub use outcome::{DropReason, Emitted, InPlace, Outcome, Packets};
pub use prefix::{Ipv4Prefix, Ipv6Prefix, PrefixError};
pub use rfc6052::{DEFAULT_NON_GLOBAL, LOCAL_USE_PREFIX, Pool6, Pool6Error, WELL_KNOWN_PREFIX};
pub use translator::Translator;

/// The README's example, compiled and run with the doctests so it cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
