//! The ClientHello body (RFC 8446 §4.1.2) and the extensions a router needs (§4.2, RFC 6066 §3,
//! RFC 7301, the ECH draft), fully validated.

use core::fmt;

use crate::Error;
use crate::name::{self, HostName};
use crate::reader::Reader;

/// A TLS protocol version code point (open: unknown values pass through).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion(pub u16);

impl ProtocolVersion {
    /// SSL 2.0, as announced by an SSLv2-compatible hello.
    pub const SSLV2: Self = Self(0x0002);
    /// SSL 3.0.
    pub const SSLV3: Self = Self(0x0300);
    /// TLS 1.0.
    pub const TLSV1_0: Self = Self(0x0301);
    /// TLS 1.1.
    pub const TLSV1_1: Self = Self(0x0302);
    /// TLS 1.2.
    pub const TLSV1_2: Self = Self(0x0303);
    /// TLS 1.3.
    pub const TLSV1_3: Self = Self(0x0304);
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::SSLV2 => f.write_str("SSLv2"),
            Self::SSLV3 => f.write_str("SSLv3"),
            Self::TLSV1_0 => f.write_str("TLSv1.0"),
            Self::TLSV1_1 => f.write_str("TLSv1.1"),
            Self::TLSV1_2 => f.write_str("TLSv1.2"),
            Self::TLSV1_3 => f.write_str("TLSv1.3"),
            Self(v) => write!(f, "0x{v:04x}"),
        }
    }
}

/// A TLS cipher suite code point (open: unknown values pass through).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CipherSuite(pub u16);

impl CipherSuite {
    /// TLS 1.3 `TLS_AES_128_GCM_SHA256` (RFC 8446 §B.4).
    pub const TLS13_AES_128_GCM_SHA256: Self = Self(0x1301);
    /// TLS 1.3 `TLS_AES_256_GCM_SHA384`.
    pub const TLS13_AES_256_GCM_SHA384: Self = Self(0x1302);
    /// TLS 1.3 `TLS_CHACHA20_POLY1305_SHA256`.
    pub const TLS13_CHACHA20_POLY1305_SHA256: Self = Self(0x1303);
    /// `TLS_EMPTY_RENEGOTIATION_INFO_SCSV` (RFC 5746 §3.3): a signal, not a cipher.
    pub const EMPTY_RENEGOTIATION_INFO_SCSV: Self = Self(0x00ff);
    /// `TLS_FALLBACK_SCSV` (RFC 7507): a signal, not a cipher.
    pub const FALLBACK_SCSV: Self = Self(0x5600);
}

/// Extension code points this parser looks inside.
mod ext {
    pub(super) const SERVER_NAME: u16 = 0;
    pub(super) const ALPN: u16 = 16;
    pub(super) const PRE_SHARED_KEY: u16 = 41;
    pub(super) const SUPPORTED_VERSIONS: u16 = 43;
    pub(super) const ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;
}

/// `server_name` NameType for a DNS host name (RFC 6066 §3).
const HOST_NAME: u8 = 0;

/// RFC 8701 GREASE: `0x?a?a` with both bytes equal. Ignored wherever it appears.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// What a ClientHello says about where the connection should go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// Validated, without its trailing dot; lowercased only when asked for (a copy).
    server_name: Option<&'a [u8]>,
    alpn: &'a [u8],
    ech: bool,
    legacy_version: ProtocolVersion,
    record_version: ProtocolVersion,
    supported_versions: &'a [u8],
    cipher_suites: &'a [u8],
    consumed: usize,
    records: usize,
    sslv2: bool,
}

impl<'a> ClientHello<'a> {
    /// The `host_name` from `server_name`: lowercased, one trailing dot removed.
    ///
    /// `None` when there is no `server_name` extension, when it holds only unknown name types, or
    /// when the name is an IP literal (not allowed there by RFC 6066 §3). With [`Self::has_ech`],
    /// this is the outer (public) name, not the one the client really wants.
    #[inline]
    pub fn server_name(&self) -> Option<HostName> {
        self.server_name.map(HostName::from_checked)
    }

    /// The `host_name` as sent, validated, without its trailing dot and not lowercased: for a
    /// case-insensitive lookup without the copy [`Self::server_name`] makes.
    pub fn server_name_as_sent(&self) -> Option<&'a str> {
        // Validated as ASCII, so this cannot fail.
        self.server_name.and_then(|n| core::str::from_utf8(n).ok())
    }

    /// Every ALPN protocol offered, in the client's order (GREASE values skipped).
    pub fn alpn(&self) -> AlpnProtocols<'a> {
        AlpnProtocols { rest: self.alpn }
    }

    /// Whether an `encrypted_client_hello` extension is present: the real name is then encrypted
    /// and [`Self::server_name`] is the outer one (or GREASE, which looks the same from outside).
    pub fn has_ech(&self) -> bool {
        self.ech
    }

    /// `legacy_version` from the hello (0x0303 for TLS 1.2 and 1.3 clients).
    pub fn legacy_version(&self) -> ProtocolVersion {
        self.legacy_version
    }

    /// The version in the first record header (0x0301 or 0x0303 from most clients).
    pub fn record_version(&self) -> ProtocolVersion {
        self.record_version
    }

    /// The `supported_versions` list (GREASE skipped); empty for clients that predate TLS 1.3.
    pub fn supported_versions(&self) -> Versions<'a> {
        Versions {
            rest: self.supported_versions,
        }
    }

    /// The highest version offered: from `supported_versions`, else `legacy_version`.
    pub fn max_version(&self) -> ProtocolVersion {
        self.supported_versions()
            .max()
            .unwrap_or(self.legacy_version)
    }

    /// The offered cipher suites, in the client's order (GREASE skipped).
    pub fn cipher_suites(&self) -> CipherSuites<'a> {
        CipherSuites {
            rest: self.cipher_suites,
        }
    }

    /// Input bytes taken by the records that carry the hello; what follows (change_cipher_spec,
    /// 0-RTT data) belongs to the stream and must be forwarded too.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// How many TLS records the hello was spread over (1 for all known clients).
    pub fn record_count(&self) -> usize {
        self.records
    }

    /// An SSLv2-compatible hello: TLS, but it cannot carry a name, ALPN or extensions.
    pub fn is_sslv2(&self) -> bool {
        self.sslv2
    }

    pub(crate) fn sslv2(version: ProtocolVersion, consumed: usize) -> Self {
        ClientHello {
            server_name: None,
            alpn: &[],
            ech: false,
            legacy_version: version,
            record_version: ProtocolVersion::SSLV2,
            supported_versions: &[],
            cipher_suites: &[],
            consumed,
            records: 1,
            sslv2: true,
        }
    }

    pub(crate) fn framed(
        mut self,
        record_version: ProtocolVersion,
        consumed: usize,
        records: usize,
    ) -> Self {
        self.record_version = record_version;
        self.consumed = consumed;
        self.records = records;
        self
    }
}

/// Iterator over ALPN protocol names, borrowing from the hello.
#[derive(Debug, Clone)]
pub struct AlpnProtocols<'a> {
    /// The protocol_name_list, already validated.
    rest: &'a [u8],
}

impl<'a> Iterator for AlpnProtocols<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let (&len, tail) = self.rest.split_first()?;
            let (name, tail) = tail.split_at_checked(usize::from(len))?;
            self.rest = tail;
            if !matches!(*name, [a, b] if is_grease(u16::from_be_bytes([a, b]))) {
                return Some(name);
            }
        }
    }
}

/// The next two-byte code point of a validated list, GREASE skipped.
fn next_code_point(rest: &mut &[u8]) -> Option<u16> {
    loop {
        let ([a, b], tail) = rest.split_first_chunk::<2>()?;
        *rest = tail;
        let v = u16::from_be_bytes([*a, *b]);
        if !is_grease(v) {
            return Some(v);
        }
    }
}

/// Iterator over the `supported_versions` list, GREASE skipped.
#[derive(Debug, Clone)]
pub struct Versions<'a> {
    rest: &'a [u8],
}

impl Iterator for Versions<'_> {
    type Item = ProtocolVersion;

    fn next(&mut self) -> Option<ProtocolVersion> {
        next_code_point(&mut self.rest).map(ProtocolVersion)
    }
}

/// Iterator over the offered cipher suites, GREASE skipped.
#[derive(Debug, Clone)]
pub struct CipherSuites<'a> {
    rest: &'a [u8],
}

impl Iterator for CipherSuites<'_> {
    type Item = CipherSuite;

    fn next(&mut self) -> Option<CipherSuite> {
        next_code_point(&mut self.rest).map(CipherSuite)
    }
}

/// Remembers which extension types were seen, to refuse duplicates without allocating.
///
/// A 1024-bit filter answers "certainly new" for almost every type; only a filter hit pays for an
/// exact rescan of the extensions before it.
struct SeenExtensions<'a> {
    filter: [u64; 16],
    all: &'a [u8],
}

impl<'a> SeenExtensions<'a> {
    #[inline(always)]
    fn check(&mut self, ext_type: u16, before: usize) -> Result<(), Error> {
        let bit = usize::from(ext_type) & 1023;
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if self.filter[word] & mask != 0 && self.seen_before(ext_type, before) {
            return Err(Error::DuplicateExtension { ext_type });
        }
        self.filter[word] |= mask;
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn seen_before(&self, ext_type: u16, before: usize) -> bool {
        let mut r = Reader::new(self.all.get(..before).unwrap_or_default(), "extensions");
        while let (Ok(t), Ok(_)) = (r.u16(), r.sub_u16("extension")) {
            if t == ext_type {
                return true;
            }
        }
        false
    }
}

/// Parses and validates a ClientHello body (after the 4-byte handshake header).
pub(crate) fn parse(body: &[u8]) -> Result<ClientHello<'_>, Error> {
    let mut r = Reader::new(body, "ClientHello");
    let legacy_version = ProtocolVersion(r.u16()?);
    r.take(32)?; // random
    let session_id_len = usize::from(r.u8()?);
    if session_id_len > 32 {
        return Err(Error::SessionIdTooLong {
            len: session_id_len,
        });
    }
    r.take(session_id_len)?;
    let cipher_suites = r.sub_u16("cipher_suites")?.rest();
    if cipher_suites.is_empty() {
        return Err(Error::Empty {
            field: "cipher_suites",
        });
    }
    if cipher_suites.len() % 2 != 0 {
        return Err(Error::OddLength {
            field: "cipher_suites",
            len: cipher_suites.len(),
        });
    }
    let compression = r.sub_u8("legacy_compression_methods")?.rest();
    if compression.is_empty() {
        return Err(Error::Empty {
            field: "legacy_compression_methods",
        });
    }
    if !compression.contains(&0) {
        return Err(Error::InvalidCompression {
            reason: "no null method",
        });
    }
    let mut hello = ClientHello {
        server_name: None,
        alpn: &[],
        ech: false,
        legacy_version,
        record_version: legacy_version,
        supported_versions: &[],
        cipher_suites,
        consumed: 0,
        records: 0,
        sslv2: false,
    };
    // SSL 3.0 and early TLS clients may end the hello here, without an extensions block.
    if r.is_empty() {
        return Ok(hello);
    }
    let exts = r.sub_u16("extensions")?;
    r.finish()?;

    let all = exts.clone().rest();
    let mut seen = SeenExtensions {
        filter: [0; 16],
        all,
    };
    let mut exts = exts;
    let mut psk_seen = false;
    while !exts.is_empty() {
        let offset = all.len() - exts.len();
        let ext_type = exts.u16()?;
        let data = exts.sub_u16("extensions")?;
        if psk_seen {
            return Err(Error::PreSharedKeyNotLast);
        }
        psk_seen = ext_type == ext::PRE_SHARED_KEY;
        if is_grease(ext_type) {
            continue;
        }
        seen.check(ext_type, offset)?;
        match ext_type {
            ext::SERVER_NAME => hello.server_name = server_name(data)?,
            ext::ALPN => hello.alpn = alpn(data)?,
            ext::SUPPORTED_VERSIONS => hello.supported_versions = supported_versions(data)?,
            ext::ENCRYPTED_CLIENT_HELLO => hello.ech = true,
            _ => {}
        }
    }
    // RFC 8446 §4.1.2: a TLS 1.3 hello carries exactly the null method. Only a hello that offers
    // nothing older is surely TLS 1.3; one that also offers 1.2 follows the older rule above.
    let tls13_only = !hello.supported_versions.is_empty()
        && hello
            .supported_versions()
            .all(|v| v >= ProtocolVersion::TLSV1_3);
    if tls13_only && compression != [0] {
        return Err(Error::InvalidCompression {
            reason: "a TLS 1.3-only hello must offer exactly null",
        });
    }
    Ok(hello)
}

/// `server_name` (RFC 6066 §3): one `host_name` at most; other name types are skipped.
fn server_name<'a>(mut data: Reader<'a>) -> Result<Option<&'a [u8]>, Error> {
    if data.is_empty() {
        return Err(Error::Empty {
            field: "server_name extension",
        });
    }
    let mut list = list_filling(&mut data, "server_name_list")?;
    let mut found: Option<Option<&'a [u8]>> = None;
    while !list.is_empty() {
        let name_type = list.u8()?;
        let name = list.sub_u16("server_name_list")?.rest();
        if name_type != HOST_NAME {
            continue;
        }
        if found.is_some() {
            return Err(Error::DuplicateHostName);
        }
        if name.is_empty() {
            return Err(Error::Empty { field: "host_name" });
        }
        found = Some(name::check_dns(name)?);
    }
    Ok(found.flatten())
}

/// `application_layer_protocol_negotiation` (RFC 7301 §3.1): non-empty list of non-empty names.
fn alpn<'a>(mut data: Reader<'a>) -> Result<&'a [u8], Error> {
    let list = list_filling(&mut data, "protocol_name_list")?;
    let raw = list.clone().rest();
    let mut names = list;
    while !names.is_empty() {
        if names.sub_u8("protocol_name_list")?.is_empty() {
            return Err(Error::Empty {
                field: "ALPN protocol name",
            });
        }
    }
    Ok(raw)
}

/// `supported_versions` in a ClientHello (RFC 8446 §4.2.1): 1 to 127 two-byte versions.
fn supported_versions<'a>(mut data: Reader<'a>) -> Result<&'a [u8], Error> {
    let declared = usize::from(data.u8()?);
    if declared != data.len() {
        return Err(Error::LengthMismatch {
            layer: "supported_versions",
            declared,
            actual: data.len(),
        });
    }
    let list = data.rest();
    if list.is_empty() {
        return Err(Error::Empty {
            field: "supported_versions",
        });
    }
    if list.len() % 2 != 0 {
        return Err(Error::OddLength {
            field: "supported_versions",
            len: list.len(),
        });
    }
    Ok(list)
}

/// A two-byte-length list that must exactly fill its extension and must not be empty.
fn list_filling<'a>(data: &mut Reader<'a>, layer: &'static str) -> Result<Reader<'a>, Error> {
    let declared = usize::from(data.u16()?);
    if declared != data.len() {
        return Err(Error::LengthMismatch {
            layer,
            declared,
            actual: data.len(),
        });
    }
    if declared == 0 {
        return Err(Error::Empty { field: layer });
    }
    data.sub(declared, layer)
}
