//! Writing headers: a builder that knows its exact length before it writes a byte.
//!
//! ```text
//!   Builder (mod.rs) ──► v1_line() (v1.rs) ──┐
//!        │  SslBuilder (ssl.rs)               ├──► Sink (sink.rs): a slice, a BufMut, a CRC
//!        └──────────► v2_plan(), v2_write() ──┘
//!                          (v2.rs, from the layout the parser reads)
//! ```

use core::fmt;
use core::net::SocketAddr;

use crate::crc32c;
use crate::layout::CRC32C_LEN;
use crate::{Addresses, Command, TlvType, Transport, Version};

mod sink;
mod ssl;
mod v1;
mod v2;

use sink::SliceSink;
#[cfg(feature = "bytes")]
use sink::{BufSink, CrcSink};
pub use ssl::SslBuilder;

/// How many TLVs one builder holds (the SSL TLV counts as one, whatever its sub-TLVs).
pub const MAX_TLVS: usize = 16;
/// How many sub-TLVs one SSL TLV holds.
pub const MAX_SSL_SUB_TLVS: usize = 8;

/// Why a header cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmitError {
    /// The output has room for `got` bytes; the header needs `required`.
    BufferTooSmall {
        /// The header's length.
        required: usize,
        /// The room there was.
        got: usize,
    },
    /// v2 headers end at 16 + 65 535 bytes, and each TLV value at 65 535.
    TooLong,
    /// More than [`MAX_TLVS`] TLVs, or [`MAX_SSL_SUB_TLVS`] sub-TLVs.
    TooManyTlvs,
    /// Something the chosen version or a TLV cannot carry; the text says what.
    NotEncodable(&'static str),
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::BufferTooSmall { required, got } => {
                write!(f, "header needs {required} bytes, buffer has {got}")
            }
            EmitError::TooLong => f.write_str("header or TLV value longer than v2 allows"),
            EmitError::TooManyTlvs => write!(
                f,
                "more than {MAX_TLVS} TLVs or {MAX_SSL_SUB_TLVS} SSL sub-TLVs in one header"
            ),
            EmitError::NotEncodable(why) => write!(f, "cannot encode: {why}"),
        }
    }
}

impl core::error::Error for EmitError {}

/// One TLV to write: `head` (a few computed bytes) then `tail` (borrowed).
#[derive(Debug, Clone, Copy)]
struct Slot<'a> {
    kind: TlvType,
    head: [u8; 8],
    head_len: u8,
    tail: &'a [u8],
    /// Stands for the builder's SSL TLV, whose value is built from its sub-TLVs.
    ssl: bool,
}

impl Slot<'_> {
    const EMPTY: Self = Slot {
        kind: TlvType(0),
        head: [0; 8],
        head_len: 0,
        tail: &[],
        ssl: false,
    };
}

/// Builds a v1 or v2 header and writes it into a caller's buffer.
///
/// Nothing is written until [`Builder::write`] (or `put`, with the `bytes` feature); mistakes
/// made while building — a TLV v1 cannot carry, too many TLVs — surface there and from
/// [`Builder::len`], which gives the exact length up front.
///
/// ```
/// use proxy_proto::{Builder, SslBuilder, SslClient};
///
/// let ssl = SslBuilder::new(SslClient::SSL, 0).version("TLSv1.3").cipher("TLS_AES_128_GCM_SHA256");
/// let header = Builder::v2_proxy("192.0.2.1:56324".parse().unwrap(), "198.51.100.7:443".parse().unwrap())
///     .authority("www.example.com")
///     .ssl(ssl)
///     .crc32c();
/// let mut buf = [0u8; 256];
/// let n = header.write(&mut buf)?;
/// assert_eq!(n, header.len()?);
/// # Ok::<(), proxy_proto::EmitError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Builder<'a> {
    version: Version,
    command: Command,
    transport: Option<Transport>,
    addresses: Addresses<'a>,
    slots: [Slot<'a>; MAX_TLVS],
    count: usize,
    ssl: Option<SslBuilder<'a>>,
    crc32c: bool,
    error: Option<EmitError>,
}

impl<'a> Builder<'a> {
    fn new(version: Version, command: Command, addresses: Addresses<'a>) -> Self {
        Builder {
            version,
            command,
            transport: None,
            addresses,
            slots: [Slot::EMPTY; MAX_TLVS],
            count: 0,
            ssl: None,
            crc32c: false,
            error: None,
        }
    }

    /// A v1 line. IPv4 pairs give `TCP4`, IPv6 pairs `TCP6` (build mixed pairs with
    /// [`Addresses::from_pair`]: they become `TCP6` with the IPv4 side v4-mapped, as HAProxy
    /// writes them), [`Addresses::Unspec`] gives `PROXY UNKNOWN`. UNIX addresses, datagram
    /// transports and TLVs cannot be written in v1.
    pub fn v1(addresses: Addresses<'a>) -> Self {
        Self::new(Version::V1, Command::Proxy, addresses)
    }

    /// A v2 header. The transport defaults to stream (unspecified for [`Addresses::Unspec`]).
    pub fn v2(command: Command, addresses: Addresses<'a>) -> Self {
        Self::new(Version::V2, command, addresses)
    }

    /// A v2 PROXY header for a TCP connection from `src` to `dst`.
    pub fn v2_proxy(src: SocketAddr, dst: SocketAddr) -> Self {
        Self::v2(Command::Proxy, Addresses::from_pair(src, dst))
    }

    /// A v2 LOCAL header without addresses, as a health check sends.
    pub fn v2_local() -> Self {
        Self::v2(Command::Local, Addresses::Unspec)
    }

    /// The v2 transport byte: stream (TCP) or datagram (UDP).
    #[must_use]
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    fn fail(mut self, error: EmitError) -> Self {
        self.error.get_or_insert(error);
        self
    }

    fn push(mut self, slot: Slot<'a>) -> Self {
        match self.slots.get_mut(self.count) {
            Some(s) => {
                *s = slot;
                self.count += 1;
                self
            }
            None => self.fail(EmitError::TooManyTlvs),
        }
    }

    fn with_head(self, kind: TlvType, head: &[u8], tail: &'a [u8]) -> Self {
        let mut slot = Slot {
            kind,
            tail,
            head_len: head.len() as u8,
            ..Slot::EMPTY
        };
        slot.head[..head.len()].copy_from_slice(head);
        self.push(slot)
    }

    /// Any TLV, written as given (custom `0xE0..=0xEF` and experimental types included). Use
    /// [`Builder::crc32c`] for the checksum and [`Builder::ssl`] for SSL.
    #[must_use]
    pub fn tlv(self, kind: TlvType, value: &'a [u8]) -> Self {
        match kind {
            TlvType::CRC32C => self.fail(EmitError::NotEncodable("ask for CRC32C with crc32c()")),
            TlvType::SSL => self.fail(EmitError::NotEncodable("build the SSL TLV with ssl()")),
            // What the parser would refuse is refused here: UNIQUE_ID over 128 bytes, AUTHORITY
            // that is not UTF-8, NETNS that is not US-ASCII.
            _ => match crate::tlv::check_value(kind, value) {
                Ok(()) => self.with_head(kind, &[], value),
                Err(why) => self.fail(EmitError::NotEncodable(why)),
            },
        }
    }

    /// `ALPN`: the application protocol, e.g. `b"h2"`.
    #[must_use]
    pub fn alpn(self, protocol: &'a [u8]) -> Self {
        self.tlv(TlvType::ALPN, protocol)
    }

    /// `AUTHORITY`: the host name the client asked for (the SNI). HAProxy 2.6 refuses values
    /// over 255 bytes, which no DNS name exceeds.
    #[must_use]
    pub fn authority(self, host: &'a str) -> Self {
        self.tlv(TlvType::AUTHORITY, host.as_bytes())
    }

    /// `UNIQUE_ID`: at most 128 bytes.
    #[must_use]
    pub fn unique_id(self, id: &'a [u8]) -> Self {
        self.tlv(TlvType::UNIQUE_ID, id)
    }

    /// `NOOP`: padding, ignored by receivers.
    #[must_use]
    pub fn noop(self, padding: &'a [u8]) -> Self {
        self.tlv(TlvType::NOOP, padding)
    }

    /// `NETNS`: the network namespace's name, US-ASCII.
    #[must_use]
    pub fn netns(self, name: &'a str) -> Self {
        self.tlv(TlvType::NETNS, name.as_bytes())
    }

    /// AWS VPC endpoint id (type `0xEA`, sub-type `0x01`).
    #[must_use]
    pub fn aws_vpc_endpoint_id(self, id: &'a str) -> Self {
        self.with_head(TlvType::AWS, &[0x01], id.as_bytes())
    }

    /// Azure Private Link id (type `0xEE`, sub-type `0x01`, little-endian).
    #[must_use]
    pub fn azure_private_link_id(self, id: u32) -> Self {
        let le = id.to_le_bytes();
        self.with_head(TlvType::AZURE, &[0x01, le[0], le[1], le[2], le[3]], &[])
    }

    /// Google Cloud Private Service Connect connection id (type `0xE0`, big-endian).
    #[must_use]
    pub fn gcp_psc_connection_id(self, id: u64) -> Self {
        self.with_head(TlvType::GCP, &id.to_be_bytes(), &[])
    }

    /// The SSL TLV with its sub-TLVs; at most one per header.
    #[must_use]
    pub fn ssl(mut self, ssl: SslBuilder<'a>) -> Self {
        if let Err(e) = ssl.check() {
            return self.fail(e);
        }
        if self.ssl.replace(ssl).is_some() {
            return self.fail(EmitError::NotEncodable("more than one SSL TLV"));
        }
        self.push(Slot {
            kind: TlvType::SSL,
            ssl: true,
            ..Slot::EMPTY
        })
    }

    /// Adds a CRC32C TLV, written first (as HAProxy does) and computed over the finished header.
    #[must_use]
    pub fn crc32c(mut self) -> Self {
        self.crc32c = true;
        self
    }

    /// The exact number of bytes [`Builder::write`] will write.
    #[allow(clippy::len_without_is_empty)] // a header is never empty
    pub fn len(&self) -> Result<usize, EmitError> {
        match self.version {
            Version::V1 => Ok(self.v1_line()?.len()),
            Version::V2 => Ok(self.v2_plan()?.total()),
        }
    }

    /// Writes the header at the start of `out`; returns its length.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, EmitError> {
        fn room(out: &mut [u8], n: usize) -> Result<&mut [u8], EmitError> {
            let got = out.len();
            out.get_mut(..n)
                .ok_or(EmitError::BufferTooSmall { required: n, got })
        }
        match self.version {
            Version::V1 => {
                let line = self.v1_line()?;
                let n = line.len();
                line.write_to(&mut SliceSink::new(room(out, n)?));
                Ok(n)
            }
            Version::V2 => {
                let plan = self.v2_plan()?;
                let n = plan.total();
                let dst = room(out, n)?;
                self.v2_write(&mut SliceSink::new(dst), plan, 0);
                if let Some(at) = self.crc32c_at() {
                    let crc = crc32c::checksum(dst);
                    dst[at..at + CRC32C_LEN].copy_from_slice(&crc.to_be_bytes());
                }
                Ok(n)
            }
        }
    }

    /// Writes the header into a [`bytes::BufMut`]; returns its length. Nothing is written when
    /// it fails, including for lack of room.
    #[cfg(feature = "bytes")]
    pub fn put<B: bytes::BufMut>(&self, out: &mut B) -> Result<usize, EmitError> {
        let n = self.len()?;
        if out.remaining_mut() < n {
            return Err(EmitError::BufferTooSmall {
                required: n,
                got: out.remaining_mut(),
            });
        }
        match self.version {
            Version::V1 => self.v1_line()?.write_to(&mut BufSink(out)),
            Version::V2 => {
                let plan = self.v2_plan()?;
                let crc = match self.crc32c {
                    true => {
                        let mut sum = CrcSink(0);
                        self.v2_write(&mut sum, plan, 0);
                        sum.0
                    }
                    false => 0,
                };
                self.v2_write(&mut BufSink(out), plan, crc);
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Status, parse};
    use std::vec::Vec;

    pub(super) fn written(b: &Builder<'_>) -> Vec<u8> {
        let mut buf = [0u8; 1024];
        let n = b.write(&mut buf).unwrap();
        assert_eq!(Ok(n), b.len());
        buf[..n].to_vec()
    }

    pub(super) fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_tlv_parses_back() {
        let ssl = SslBuilder::new(0x07, 0)
            .version("TLSv1.3")
            .cn("client.example")
            .cipher("TLS_AES_128_GCM_SHA256")
            .sig_alg("RSA-SHA256")
            .key_alg("RSA2048")
            .group("X25519")
            .sig_scheme("rsa_pss_rsae_sha256")
            .client_cert(&[0x30, 0x82, 0x01, 0x00]);
        let b = Builder::v2_proxy(sa("[2001:db8::1]:56324"), sa("[2001:db8::2]:443"))
            .crc32c()
            .alpn(b"h2")
            .authority("www.example.com")
            .unique_id(b"id-1")
            .noop(&[0; 3])
            .netns("blue")
            .ssl(ssl)
            .aws_vpc_endpoint_id("vpce-1")
            .azure_private_link_id(7)
            .gcp_psc_connection_id(9)
            .tlv(TlvType(0xF1), b"exp");
        let bytes = written(&b);
        let Ok(Status::Complete(h)) = parse(&bytes) else {
            panic!()
        };
        assert_eq!(h.len(), bytes.len());
        assert_eq!(
            h.tlvs().next().unwrap().kind,
            TlvType::CRC32C,
            "CRC first, as HAProxy"
        );
        assert_eq!(
            h.crc32c(),
            Some(u32::from_be_bytes(bytes[55..59].try_into().unwrap()))
        );
        assert_eq!(
            (h.alpn(), h.authority(), h.unique_id()),
            (
                Some(&b"h2"[..]),
                Some("www.example.com"),
                Some(&b"id-1"[..])
            )
        );
        assert_eq!(
            (
                h.netns(),
                h.aws_vpc_endpoint_id(),
                h.azure_private_link_id(),
                h.gcp_psc_connection_id()
            ),
            (Some("blue"), Some("vpce-1"), Some(7), Some(9))
        );
        assert_eq!(h.tlv(TlvType::NOOP), Some(&[0u8; 3][..]));
        assert_eq!(h.tlv(TlvType(0xF1)), Some(&b"exp"[..]));
        let s = h.ssl().unwrap();
        assert_eq!(
            (s.client().0, s.verify(), s.version(), s.cn()),
            (7, 0, Some("TLSv1.3"), Some("client.example"))
        );
        assert_eq!(
            (s.cipher(), s.sig_alg(), s.key_alg()),
            (
                Some("TLS_AES_128_GCM_SHA256"),
                Some("RSA-SHA256"),
                Some("RSA2048")
            )
        );
        assert_eq!(
            (s.group(), s.sig_scheme(), s.client_cert()),
            (
                Some("X25519"),
                Some("rsa_pss_rsae_sha256"),
                Some(&[0x30, 0x82, 1, 0][..])
            )
        );
    }

    #[test]
    fn refusals() {
        let base = || Builder::v2_proxy(sa("192.0.2.1:1"), sa("192.0.2.2:2"));
        let mut small = [0u8; 27];
        assert_eq!(
            base().write(&mut small),
            Err(EmitError::BufferTooSmall {
                required: 28,
                got: 27
            })
        );
        assert_eq!(small, [0; 27], "nothing written on failure");
        let many = (0..=MAX_TLVS).fold(base(), |b, _| b.noop(&[]));
        assert_eq!(many.len(), Err(EmitError::TooManyTlvs));
        let subs = (0..=MAX_SSL_SUB_TLVS).fold(SslBuilder::new(1, 0), |s, _| s.version("x"));
        assert_eq!(base().ssl(subs).len(), Err(EmitError::TooManyTlvs));
        assert!(matches!(
            base()
                .ssl(SslBuilder::new(1, 0))
                .ssl(SslBuilder::new(1, 0))
                .len(),
            Err(EmitError::NotEncodable(_))
        ));
        assert!(matches!(
            base().unique_id(&[0; 129]).len(),
            Err(EmitError::NotEncodable(_))
        ));
        assert!(base().unique_id(&[0; 128]).len().is_ok());
        assert!(matches!(
            base().netns("é").len(),
            Err(EmitError::NotEncodable(_))
        ));
        assert!(matches!(
            base().tlv(TlvType::UNIQUE_ID, &[0; 129]).len(),
            Err(EmitError::NotEncodable(_))
        ));
        assert!(matches!(
            base().tlv(TlvType::AUTHORITY, &[0xC3, 0x28]).len(),
            Err(EmitError::NotEncodable(_))
        ));
        assert!(matches!(
            base().tlv(TlvType::NETNS, &[0xFF]).len(),
            Err(EmitError::NotEncodable(_))
        ));
        let bad_sub = SslBuilder::new(1, 0).sub(TlvType::SSL_CIPHER, &[0xFF]);
        assert!(matches!(
            base().ssl(bad_sub).len(),
            Err(EmitError::NotEncodable(_))
        ));
        let nul = Builder::v2(
            Command::Proxy,
            Addresses::Unix {
                src: b"/a\0b",
                dst: b"/c",
            },
        );
        assert!(matches!(nul.len(), Err(EmitError::NotEncodable(_))));
        assert!(matches!(
            base().tlv(TlvType::CRC32C, &[0; 4]).len(),
            Err(EmitError::NotEncodable(_))
        ));
        static BIG: [u8; 65_536] = [0; 65_536];
        assert_eq!(base().noop(&BIG).len(), Err(EmitError::TooLong));
        assert_eq!(
            base().noop(&BIG[..65_535]).len(),
            Err(EmitError::TooLong),
            "12 + 3 + 65535 > 65535"
        );
        assert_eq!(base().noop(&BIG[..65_535 - 15]).len(), Ok(16 + 65_535));
        assert!(matches!(
            Builder::v2(
                Command::Proxy,
                Addresses::Unix {
                    src: &[1; 109],
                    dst: b""
                }
            )
            .len(),
            Err(EmitError::NotEncodable(_))
        ));
        assert!(matches!(
            Builder::v2_local().transport(Transport::Stream).len(),
            Err(EmitError::NotEncodable(_))
        ));
        assert!(matches!(
            base().transport(Transport::Unspec).len(),
            Err(EmitError::NotEncodable(_))
        ));
    }

    #[cfg(feature = "bytes")]
    #[test]
    fn buf_mut_gets_the_same_bytes() {
        for b in [
            Builder::v1(Addresses::from_pair(sa("192.0.2.1:1"), sa("192.0.2.2:2"))),
            Builder::v2_proxy(sa("[::1]:1"), sa("[::2]:2"))
                .authority("a.example")
                .crc32c(),
            Builder::v2_local().crc32c(),
        ] {
            let mut out = Vec::new();
            assert_eq!(b.put(&mut out), b.len());
            assert_eq!(out, written(&b));
        }
        let mut tiny = bytes::BufMut::limit(bytes::BytesMut::new(), 10);
        assert!(matches!(
            Builder::v2_local().put(&mut tiny),
            Err(EmitError::BufferTooSmall {
                required: 16,
                got: 10
            })
        ));
    }
}
