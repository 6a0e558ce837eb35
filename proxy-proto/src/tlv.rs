//! v2 TLVs: an open set of types, a borrowing iterator, and the checks every TLV passes at parse.

use core::fmt;

use crate::Error;
use crate::layout::{CRC32C_LEN, SSL_HEAD, TLV_HEAD, UNIQUE_ID_MAX, read_tlv_head};

/// A TLV type. Open: any byte is a type, unknown ones pass through; the registered ones have names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TlvType(pub u8);

/// The registered types, in one list: each becomes a `TlvType` constant and its name.
macro_rules! tlv_types {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        impl TlvType {
            $($(#[$doc])* pub const $name: Self = Self($value);)*

            /// The registered name, if it has one.
            pub fn name(self) -> Option<&'static str> {
                Some(match self {
                    $(Self::$name => stringify!($name),)*
                    _ => return None,
                })
            }
        }
    };
}

tlv_types! {
    /// `PP2_TYPE_ALPN`: the application protocol (RFC 7301).
    ALPN = 0x01,
    /// `PP2_TYPE_AUTHORITY`: the host name the client asked for (the SNI), UTF-8.
    AUTHORITY = 0x02,
    /// `PP2_TYPE_CRC32C`: the header's CRC-32C, big-endian.
    CRC32C = 0x03,
    /// `PP2_TYPE_NOOP`: padding, ignored.
    NOOP = 0x04,
    /// `PP2_TYPE_UNIQUE_ID`: an opaque connection id of at most 128 bytes.
    UNIQUE_ID = 0x05,
    /// `PP2_TYPE_SSL`: client flags, verify result and sub-TLVs.
    SSL = 0x20,
    /// `PP2_SUBTYPE_SSL_VERSION`: e.g. `TLSv1.3`.
    SSL_VERSION = 0x21,
    /// `PP2_SUBTYPE_SSL_CN`: the client certificate's Common Name.
    SSL_CN = 0x22,
    /// `PP2_SUBTYPE_SSL_CIPHER`: e.g. `TLS_AES_256_GCM_SHA384`.
    SSL_CIPHER = 0x23,
    /// `PP2_SUBTYPE_SSL_SIG_ALG`: the frontend certificate's signature algorithm.
    SSL_SIG_ALG = 0x24,
    /// `PP2_SUBTYPE_SSL_KEY_ALG`: the frontend certificate's key algorithm.
    SSL_KEY_ALG = 0x25,
    /// `PP2_SUBTYPE_SSL_GROUP`: the key exchange group, e.g. `X25519`.
    SSL_GROUP = 0x26,
    /// `PP2_SUBTYPE_SSL_SIG_SCHEME`: the handshake signature scheme.
    SSL_SIG_SCHEME = 0x27,
    /// `PP2_SUBTYPE_SSL_CLIENT_CERT`: the client certificate, DER.
    SSL_CLIENT_CERT = 0x28,
    /// `PP2_TYPE_NETNS`: the network namespace, US-ASCII.
    NETNS = 0x30,
    /// Google Cloud Private Service Connect (custom range): the connection id, u64 big-endian.
    GCP = 0xE0,
    /// AWS (custom range): sub-type `0x01` carries the VPC endpoint id.
    AWS = 0xEA,
    /// Azure (custom range): sub-type `0x01` carries the Private Link id, u32 little-endian.
    AZURE = 0xEE,
}

impl TlvType {
    /// In the range reserved for applications, `0xE0..=0xEF`.
    pub fn is_custom(self) -> bool {
        (0xE0..=0xEF).contains(&self.0)
    }

    /// In the range reserved for experiments, `0xF0..=0xF7`.
    pub fn is_experimental(self) -> bool {
        (0xF0..=0xF7).contains(&self.0)
    }
}

impl fmt::Debug for TlvType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}({:#04x})", self.0),
            None => write!(f, "{:#04x}", self.0),
        }
    }
}

/// One TLV: its type and its value, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The type.
    pub kind: TlvType,
    /// The value (without the 3-byte type and length).
    pub value: &'a [u8],
}

/// The TLVs of a header (or the sub-TLVs of an SSL TLV), in the order sent.
///
/// Only ever built over bytes whose structure was checked, so it yields no errors.
#[derive(Debug, Clone)]
pub struct Tlvs<'a> {
    rest: &'a [u8],
}

impl<'a> Tlvs<'a> {
    /// Over a region that [`check_structure`] accepted.
    pub(crate) fn new_checked(rest: &'a [u8]) -> Self {
        Tlvs { rest }
    }

    /// Checks a raw TLV region (as found after a v2 address block) and iterates it.
    pub fn parse(region: &'a [u8]) -> Result<Self, Error> {
        check_structure(region, TlvType(0))?;
        Ok(Tlvs { rest: region })
    }
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = Tlv<'a>;

    fn next(&mut self) -> Option<Tlv<'a>> {
        let [kind, hi, lo, rest @ ..] = self.rest else {
            return None;
        };
        let (kind, len) = read_tlv_head([*kind, *hi, *lo]);
        let (value, rest) = rest.split_at_checked(len)?;
        self.rest = rest;
        Some(Tlv {
            kind: TlvType(kind),
            value,
        })
    }
}

/// Walks a TLV region once, checking that every head and value lies inside it, and calls
/// `each(offset of the value, TLV)`. `within` names the enclosing TLV in errors about sub-TLVs.
fn walk<'a>(
    region: &'a [u8],
    within: TlvType,
    mut each: impl FnMut(usize, Tlv<'a>) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut at = 0;
    while at < region.len() {
        let Some(&[kind, hi, lo]) = region.get(at..at + TLV_HEAD) else {
            return Err(Error::Tlv {
                tlv: within,
                reason: "TLV header runs past the end",
            });
        };
        let (kind, len) = read_tlv_head([kind, hi, lo]);
        let kind = TlvType(kind);
        let value_at = at + TLV_HEAD;
        let end = value_at + len;
        let Some(value) = region.get(value_at..end) else {
            return Err(Error::Tlv {
                tlv: kind,
                reason: "value runs past the end",
            });
        };
        each(value_at, Tlv { kind, value })?;
        at = end;
    }
    Ok(())
}

fn check_structure(region: &[u8], within: TlvType) -> Result<(), Error> {
    walk(region, within, |_, _| Ok(()))
}

/// UTF-8, with the common all-ASCII case decided eight bytes at a time.
fn is_text(v: &[u8]) -> bool {
    let chunks = v.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(0u8, |acc, &b| acc | b);
    let high = chunks.fold(0u64, |acc, c| {
        acc | u64::from_ne_bytes(c.try_into().unwrap_or_default())
    });
    (high & 0x8080_8080_8080_8080 == 0 && tail < 0x80) || core::str::from_utf8(v).is_ok()
}

/// The checks of a v2 TLV region, done once at parse so that accessors never fail. Returns the
/// offset (within the region) of the one CRC32C value, if sent.
pub(crate) fn check_region(region: &[u8]) -> Result<Option<usize>, Error> {
    let mut crc_at = None;
    walk(region, TlvType(0), |value_at, tlv| {
        let fail = |reason| {
            Err(Error::Tlv {
                tlv: tlv.kind,
                reason,
            })
        };
        match tlv.kind {
            TlvType::CRC32C => {
                if tlv.value.len() != CRC32C_LEN {
                    return fail("CRC32C value is not 4 bytes");
                }
                // Two checksums would each be computed with only their own field zeroed, so
                // neither could cover the other; the specification means one. Refuse the rest.
                if crc_at.replace(value_at).is_some() {
                    return fail("sent twice");
                }
            }
            TlvType::SSL => check_ssl(tlv.value)?,
            kind => check_value(kind, tlv.value).or_else(fail)?,
        }
        Ok(())
    })?;
    Ok(crc_at)
}

fn check_ssl(value: &[u8]) -> Result<(), Error> {
    let Some(subs) = value.get(SSL_HEAD..) else {
        return Err(Error::Tlv {
            tlv: TlvType::SSL,
            reason: "shorter than its 5-byte head",
        });
    };
    walk(subs, TlvType::SSL, |_, sub| {
        check_ssl_sub(sub.kind, sub.value).map_err(|reason| Error::Tlv {
            tlv: sub.kind,
            reason,
        })
    })
}

/// The content rules of a top-level TLV (SSL and CRC32C apart), shared with the builder.
pub(crate) fn check_value(kind: TlvType, value: &[u8]) -> Result<(), &'static str> {
    match kind {
        TlvType::UNIQUE_ID if value.len() > UNIQUE_ID_MAX => Err("longer than 128 bytes"),
        TlvType::AUTHORITY if !is_text(value) => Err("not UTF-8"),
        TlvType::NETNS if !value.is_ascii() => Err("not US-ASCII"),
        _ => Ok(()),
    }
}

/// The content rules of an SSL sub-TLV: the named strings are UTF-8.
pub(crate) fn check_ssl_sub(kind: TlvType, value: &[u8]) -> Result<(), &'static str> {
    let text = is_text_sub(kind);
    match text && !is_text(value) {
        true => Err("not UTF-8"),
        false => Ok(()),
    }
}

pub(crate) fn be_u32(v: &[u8]) -> Option<u32> {
    v.try_into().ok().map(u32::from_be_bytes)
}

/// The `client` bit field of the SSL TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SslClient(pub u8);

impl SslClient {
    /// `PP2_CLIENT_SSL`: the client connected over SSL/TLS.
    pub const SSL: u8 = 0x01;
    /// `PP2_CLIENT_CERT_CONN`: it sent a certificate on this connection.
    pub const CERT_CONN: u8 = 0x02;
    /// `PP2_CLIENT_CERT_SESS`: it sent a certificate at least once in this TLS session.
    pub const CERT_SESS: u8 = 0x04;

    /// Connected over SSL/TLS.
    pub fn ssl(self) -> bool {
        self.0 & Self::SSL != 0
    }
    /// Sent a certificate on this connection.
    pub fn cert_conn(self) -> bool {
        self.0 & Self::CERT_CONN != 0
    }
    /// Sent a certificate in this TLS session.
    pub fn cert_sess(self) -> bool {
        self.0 & Self::CERT_SESS != 0
    }
}

/// The SSL TLV: how the client reached the proxy over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ssl<'a> {
    value: &'a [u8],
}

impl<'a> Ssl<'a> {
    /// Over a value that passed `check_ssl`.
    pub(crate) fn new_checked(value: &'a [u8]) -> Self {
        Ssl { value }
    }

    /// The `client` flags.
    pub fn client(&self) -> SslClient {
        SslClient(self.value.first().copied().unwrap_or(0))
    }

    /// The `verify` field: 0 when the client sent a certificate and it verified.
    pub fn verify(&self) -> u32 {
        self.value
            .get(1..SSL_HEAD)
            .and_then(be_u32)
            .unwrap_or(u32::MAX)
    }

    /// The sub-TLVs, in the order sent.
    pub fn sub_tlvs(&self) -> Tlvs<'a> {
        Tlvs::new_checked(self.value.get(SSL_HEAD..).unwrap_or_default())
    }

    fn text(&self, kind: TlvType) -> Option<&'a str> {
        self.sub_tlvs()
            .find(|t| t.kind == kind)
            .and_then(|t| core::str::from_utf8(t.value).ok())
    }

    /// `SSL_CLIENT_CERT`: the client certificate, DER.
    pub fn client_cert(&self) -> Option<&'a [u8]> {
        self.sub_tlvs()
            .find(|t| t.kind == TlvType::SSL_CLIENT_CERT)
            .map(|t| t.value)
    }
}

/// The SSL sub-TLVs that carry text, in one list: [`Ssl`]'s accessors, `SslBuilder`'s setters
/// and the UTF-8 check at parse all come from it. `$then` is a macro that takes the list.
macro_rules! ssl_text_subs {
    ($then:ident) => {
        $then! {
            /// `SSL_VERSION`, e.g. `TLSv1.3`.
            version = SSL_VERSION,
            /// `SSL_CN`: the client certificate's Common Name.
            cn = SSL_CN,
            /// `SSL_CIPHER`, e.g. `TLS_AES_256_GCM_SHA384`.
            cipher = SSL_CIPHER,
            /// `SSL_SIG_ALG`: the frontend certificate's signature algorithm.
            sig_alg = SSL_SIG_ALG,
            /// `SSL_KEY_ALG`: the frontend certificate's key algorithm.
            key_alg = SSL_KEY_ALG,
            /// `SSL_GROUP`: the key exchange group, e.g. `X25519`.
            group = SSL_GROUP,
            /// `SSL_SIG_SCHEME`: the handshake signature scheme.
            sig_scheme = SSL_SIG_SCHEME,
        }
    };
}
pub(crate) use ssl_text_subs;

macro_rules! ssl_text_accessors {
    ($($(#[$doc:meta])* $method:ident = $kind:ident,)*) => {
        impl<'a> Ssl<'a> {
            $($(#[$doc])* pub fn $method(&self) -> Option<&'a str> {
                self.text(TlvType::$kind)
            })*
        }

        /// A sub-TLV whose value must be UTF-8.
        fn is_text_sub(kind: TlvType) -> bool {
            matches!(kind, $(TlvType::$kind)|*)
        }
    };
}
ssl_text_subs!(ssl_text_accessors);

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn names_come_from_the_list() {
        assert_eq!(TlvType::ALPN.name(), Some("ALPN"));
        assert_eq!(TlvType::SSL_CLIENT_CERT.name(), Some("SSL_CLIENT_CERT"));
        assert_eq!(TlvType(0xEE), TlvType::AZURE);
        assert_eq!(TlvType(0xF1).name(), None);
        let named = (0..=u8::MAX).filter(|&b| TlvType(b).name().is_some());
        assert_eq!(named.count(), 18);
        assert_eq!(format!("{:?}", TlvType::NETNS), "NETNS(0x30)");
        assert_eq!(format!("{:?}", TlvType(0x99)), "0x99");
    }
}
