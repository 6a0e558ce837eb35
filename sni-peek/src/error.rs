//! The one error type: small, `Copy`, with a stable machine-readable [`Error::kind`].

use core::fmt;

/// Why the first bytes of a connection cannot be routed.
///
/// "Need more bytes" is never an error: it is [`Status::Partial`](crate::Status::Partial).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The first bytes are neither a TLS handshake record nor an SSLv2 hello (from [`tls::parse`](crate::tls::parse)).
    NotTls,
    /// The first bytes cannot start an HTTP/1 request or the HTTP/2 preface.
    NotHttp,
    /// A TLS record longer than 2^14 bytes (RFC 8446 §5.1).
    RecordOverflow {
        /// The record length announced.
        len: usize,
    },
    /// A record after the first with a version outside 0x0300-0x0303.
    RecordVersion {
        /// The record version found.
        version: u16,
    },
    /// A zero-length handshake record (forbidden by RFC 8446 §5.1).
    EmptyRecord,
    /// A record other than handshake (alert, change_cipher_spec, data) before the ClientHello ended.
    InterleavedRecord {
        /// The record's content type.
        content_type: u8,
    },
    /// The first handshake message is not a ClientHello.
    NotClientHello {
        /// The handshake type found.
        handshake_type: u8,
    },
    /// The ClientHello announces more bytes than the configured cap.
    HelloTooLarge {
        /// The handshake length announced.
        len: usize,
        /// The cap ([`Limits::max_hello_len`](crate::Limits::max_hello_len)).
        limit: usize,
    },
    /// The ClientHello is spread over more records than the configured cap.
    TooManyRecords {
        /// The cap ([`Limits::max_records`](crate::Limits::max_records)).
        limit: usize,
    },
    /// Handshake bytes after the ClientHello in its last record: a client must wait for the server.
    DataAfterHello {
        /// How many bytes follow the hello in that record.
        count: usize,
    },
    /// The caller's scratch buffer cannot hold a hello that must be reassembled from records.
    ScratchTooSmall {
        /// Bytes needed.
        required: usize,
        /// Bytes given.
        got: usize,
    },
    /// A field runs past the end of the structure that contains it.
    Truncated {
        /// The structure that ended too early.
        layer: &'static str,
        /// Bytes the field needs.
        required: usize,
        /// Bytes left in the structure.
        got: usize,
    },
    /// Bytes left over after the last field of a structure.
    TrailingBytes {
        /// The structure with leftovers.
        layer: &'static str,
        /// How many bytes are left.
        count: usize,
    },
    /// An inner length that does not match the outer one it must fill.
    LengthMismatch {
        /// The structure whose lengths disagree.
        layer: &'static str,
        /// The inner length announced.
        declared: usize,
        /// The room the outer length leaves.
        actual: usize,
    },
    /// A list or name that the protocol requires to be non-empty is empty.
    Empty {
        /// Which field.
        field: &'static str,
    },
    /// A list of two-byte values with an odd length.
    OddLength {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// A legacy_session_id longer than 32 bytes.
    SessionIdTooLong {
        /// Its length.
        len: usize,
    },
    /// The same extension twice in one ClientHello (RFC 8446 §4.2).
    DuplicateExtension {
        /// The extension type.
        ext_type: u16,
    },
    /// Two `host_name` entries in one server_name extension (RFC 6066 §3).
    DuplicateHostName,
    /// An extension after `pre_shared_key`, which must be the last (RFC 8446 §4.2.11).
    PreSharedKeyNotLast,
    /// Compression methods without null, or a TLS 1.3-only hello with anything but exactly null
    /// (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2).
    InvalidCompression {
        /// What is wrong with them.
        reason: &'static str,
    },
    /// A server name or Host that is not a valid DNS name or IP literal.
    InvalidName {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The HTTP header block (or the h2 preface and first HEADERS) exceeds the configured cap.
    HeadersTooLarge {
        /// The cap ([`Limits::max_header_len`](crate::Limits::max_header_len)).
        limit: usize,
    },
    /// An HTTP/1 request line that is not `method SP target SP HTTP/1.x`.
    InvalidRequestLine {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An HTTP/1 header line with an invalid name or value.
    InvalidHeader {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Whitespace between a header name and its colon (RFC 9112 §5.1: must be rejected).
    WhitespaceBeforeColon,
    /// A header line folded onto the next (obs-fold, RFC 9112 §5.2).
    ObsFold,
    /// Request fields that frame the body in a way a reader could take another way (RFC 9112
    /// §6.3): Content-Length with Transfer-Encoding, two of either, a coding that is not a final
    /// `chunked`, a Content-Length that is not one decimal number.
    Framing {
        /// What is wrong with them.
        reason: &'static str,
    },
    /// A Transfer-Encoding with codings other than a final `chunked` (RFC 9112 §6.1: 501).
    UnsupportedCoding,
    /// A chunk line, the CRLF after chunk data, or a trailer field that breaks RFC 9112 §7.1.
    Chunk {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A response status line that is not `HTTP/1.x NNN reason`.
    InvalidStatusLine,
    /// More than one Host header (RFC 9112 §3.2: must be rejected).
    DuplicateHost,
    /// An HTTP/1.1 request without a Host header (RFC 9112 §3.2).
    MissingHost,
    /// A port that is not a decimal number up to 65535.
    InvalidPort,
    /// An HTTP/2 frame that breaks RFC 9113 before the first request's headers.
    H2Frame {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An HPACK header block that cannot be decoded (RFC 7541).
    Hpack {
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl Error {
    /// A short, stable name for the kind of error, for logs and metrics (`snake_case`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotTls => "not_tls",
            Error::NotHttp => "not_http",
            Error::RecordOverflow { .. } => "record_overflow",
            Error::RecordVersion { .. } => "record_version",
            Error::EmptyRecord => "empty_record",
            Error::InterleavedRecord { .. } => "interleaved_record",
            Error::NotClientHello { .. } => "not_client_hello",
            Error::HelloTooLarge { .. } => "hello_too_large",
            Error::TooManyRecords { .. } => "too_many_records",
            Error::DataAfterHello { .. } => "data_after_hello",
            Error::ScratchTooSmall { .. } => "scratch_too_small",
            Error::Truncated { .. } => "truncated",
            Error::TrailingBytes { .. } => "trailing_bytes",
            Error::LengthMismatch { .. } => "length_mismatch",
            Error::Empty { .. } => "empty",
            Error::OddLength { .. } => "odd_length",
            Error::SessionIdTooLong { .. } => "session_id_too_long",
            Error::DuplicateExtension { .. } => "duplicate_extension",
            Error::DuplicateHostName => "duplicate_host_name",
            Error::PreSharedKeyNotLast => "pre_shared_key_not_last",
            Error::InvalidCompression { .. } => "invalid_compression",
            Error::InvalidName { .. } => "invalid_name",
            Error::HeadersTooLarge { .. } => "headers_too_large",
            Error::InvalidRequestLine { .. } => "invalid_request_line",
            Error::InvalidHeader { .. } => "invalid_header",
            Error::WhitespaceBeforeColon => "whitespace_before_colon",
            Error::ObsFold => "obs_fold",
            Error::Framing { .. } => "framing",
            Error::UnsupportedCoding => "unsupported_coding",
            Error::Chunk { .. } => "chunk",
            Error::InvalidStatusLine => "invalid_status_line",
            Error::DuplicateHost => "duplicate_host",
            Error::MissingHost => "missing_host",
            Error::InvalidPort => "invalid_port",
            Error::H2Frame { .. } => "h2_frame",
            Error::Hpack { .. } => "hpack",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::NotTls => f.write_str("not a TLS ClientHello"),
            Error::NotHttp => f.write_str("not an HTTP request"),
            Error::RecordOverflow { len } => {
                write!(f, "TLS record of {len} bytes exceeds 16384")
            }
            Error::RecordVersion { version } => {
                write!(
                    f,
                    "TLS record version 0x{version:04x} outside 0x0300-0x0303"
                )
            }
            Error::EmptyRecord => f.write_str("zero-length TLS handshake record"),
            Error::InterleavedRecord { content_type } => write!(
                f,
                "TLS record of content type {content_type} before the ClientHello was complete"
            ),
            Error::NotClientHello { handshake_type } => write!(
                f,
                "first handshake message has type {handshake_type}, not ClientHello (1)"
            ),
            Error::HelloTooLarge { len, limit } => {
                write!(f, "ClientHello of {len} bytes exceeds the cap of {limit}")
            }
            Error::TooManyRecords { limit } => {
                write!(f, "ClientHello spread over more than {limit} records")
            }
            Error::DataAfterHello { count } => {
                write!(f, "{count} handshake bytes after the ClientHello")
            }
            Error::ScratchTooSmall { required, got } => write!(
                f,
                "scratch buffer of {got} bytes cannot hold a {required}-byte ClientHello"
            ),
            Error::Truncated {
                layer,
                required,
                got,
            } => write!(f, "{layer}: needs {required} bytes, {got} left"),
            Error::TrailingBytes { layer, count } => {
                write!(f, "{layer}: {count} bytes left over")
            }
            Error::LengthMismatch {
                layer,
                declared,
                actual,
            } => write!(
                f,
                "{layer}: length {declared} does not fill its {actual} bytes"
            ),
            Error::Empty { field } => write!(f, "{field} must not be empty"),
            Error::OddLength { field, len } => write!(f, "{field}: odd length {len}"),
            Error::SessionIdTooLong { len } => {
                write!(f, "legacy_session_id of {len} bytes exceeds 32")
            }
            Error::DuplicateExtension { ext_type } => {
                write!(f, "extension {ext_type} appears twice")
            }
            Error::DuplicateHostName => f.write_str("two host_name entries in server_name"),
            Error::PreSharedKeyNotLast => {
                f.write_str("extension after pre_shared_key, which must be the last")
            }
            Error::InvalidCompression { reason } => {
                write!(f, "legacy_compression_methods: {reason}")
            }
            Error::InvalidName { reason } => write!(f, "invalid host name: {reason}"),
            Error::HeadersTooLarge { limit } => {
                write!(f, "request headers exceed the cap of {limit} bytes")
            }
            Error::InvalidRequestLine { reason } => write!(f, "invalid request line: {reason}"),
            Error::InvalidHeader { reason } => write!(f, "invalid header: {reason}"),
            Error::WhitespaceBeforeColon => f.write_str("whitespace between header name and colon"),
            Error::ObsFold => f.write_str("folded header line (obs-fold)"),
            Error::Framing { reason } => write!(f, "ambiguous message framing: {reason}"),
            Error::UnsupportedCoding => {
                f.write_str("a transfer coding other than chunked is not supported")
            }
            Error::Chunk { reason } => write!(f, "invalid chunked body: {reason}"),
            Error::InvalidStatusLine => f.write_str("invalid response status line"),
            Error::DuplicateHost => f.write_str("more than one Host header"),
            Error::MissingHost => f.write_str("HTTP/1.1 request without Host"),
            Error::InvalidPort => f.write_str("invalid port"),
            Error::H2Frame { reason } => write!(f, "HTTP/2 frame: {reason}"),
            Error::Hpack { reason } => write!(f, "HPACK: {reason}"),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    #[test]
    fn display_and_kind_say_what_went_wrong() {
        let e = Error::Truncated {
            layer: "server_name",
            required: 9,
            got: 4,
        };
        assert_eq!(e.kind(), "truncated");
        assert_eq!(e.to_string(), "server_name: needs 9 bytes, 4 left");
        assert_eq!(
            Error::RecordOverflow { len: 16385 }.to_string(),
            "TLS record of 16385 bytes exceeds 16384"
        );
    }

    #[test]
    fn error_is_small_and_copy() {
        fn assert_copy<T: Copy>() {}
        assert_copy::<Error>();
        assert!(core::mem::size_of::<Error>() <= 40);
    }
}
