//! Helpers for the fuzz targets and tests; not public API.

use std::vec;
use std::vec::Vec;

use crate::tls::RECORD_HEADER_LEN;

/// Re-frames the leading TLS handshake records of `input` into records of at most `payload`
/// bytes each (same content type and record version); the bytes after them are appended as-is.
///
/// Stops re-framing at the first record that is not a complete handshake record.
pub fn reframe(input: &[u8], payload: usize) -> Vec<u8> {
    let payload = payload.max(1);
    let mut handshake = Vec::new();
    let mut version = [3, 1];
    let mut rest = input;
    while let Some(([22, v0, v1, l0, l1], after)) = rest.split_first_chunk::<RECORD_HEADER_LEN>() {
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let Some((body, next)) = after.split_at_checked(len) else {
            break;
        };
        if handshake.is_empty() {
            version = [*v0, *v1];
        }
        handshake.extend_from_slice(body);
        rest = next;
    }
    let mut out = Vec::with_capacity(input.len() + handshake.len() / payload * RECORD_HEADER_LEN);
    for chunk in handshake.chunks(payload) {
        out.push(22);
        out.extend_from_slice(&version);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(rest);
    out
}

/// What [`build_hello`] puts into a synthetic ClientHello.
#[derive(Debug, Clone, Default)]
pub struct HelloSpec<'a> {
    /// The `host_name`, as sent (no server_name extension when `None`).
    pub server_name: Option<&'a [u8]>,
    /// ALPN protocols (no extension when empty).
    pub alpn: &'a [&'a [u8]],
    /// GREASE cipher suite, extensions (one empty, one with a byte) and version, as Chrome sends.
    pub grease: bool,
    /// An outer `encrypted_client_hello` extension with this many payload bytes (none when 0).
    pub ech_len: usize,
    /// Key share bytes (X25519 is 32, X25519MLKEM768 is 1216; none when 0).
    pub key_share_len: usize,
    /// A padding extension of this many bytes (none when 0).
    pub padding: usize,
    /// Seeds the extension order; 0 keeps the order above.
    pub shuffle: u64,
}

/// Builds a ClientHello in one handshake message, framed as one record when it fits 2^14 bytes and
/// as several full records otherwise.
pub fn build_hello(spec: &HelloSpec<'_>) -> Vec<u8> {
    let mut exts: Vec<(u16, Vec<u8>)> = Vec::new();
    if spec.grease {
        exts.push((0x0a0a, Vec::new()));
    }
    if let Some(name) = spec.server_name {
        let mut entry = vec![0];
        entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
        entry.extend_from_slice(name);
        exts.push((0, with_len16(&entry)));
    }
    exts.push((10, with_len16(&[0x00, 0x1d, 0x00, 0x17]))); // supported_groups
    exts.push((13, with_len16(&[0x04, 0x03, 0x08, 0x04]))); // signature_algorithms
    if !spec.alpn.is_empty() {
        let mut list = Vec::new();
        for p in spec.alpn {
            list.push(p.len() as u8);
            list.extend_from_slice(p);
        }
        exts.push((16, with_len16(&list)));
    }
    let mut versions = Vec::new();
    if spec.grease {
        versions.extend([0x3a, 0x3a]);
    }
    versions.extend([0x03, 0x04, 0x03, 0x03]);
    exts.push((43, with_len8(&versions)));
    if spec.key_share_len > 0 {
        let mut share = vec![0x11, 0xec];
        share.extend_from_slice(&(spec.key_share_len as u16).to_be_bytes());
        share.extend((0..spec.key_share_len).map(|i| i as u8));
        exts.push((51, with_len16(&share)));
    }
    if spec.ech_len > 0 {
        // An outer ECHClientHello: type, HPKE KDF and AEAD, config_id, a 32-byte enc, the payload.
        let mut ech = vec![0, 0x00, 0x01, 0x00, 0x01, 0x42];
        ech.extend(with_len16(&[0x99; 32]));
        ech.extend(with_len16(
            &(0..spec.ech_len).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
        ));
        exts.push((0xfe0d, ech));
    }
    if spec.grease {
        exts.push((0x1a1a, vec![0]));
    }
    if spec.padding > 0 {
        exts.push((21, vec![0; spec.padding]));
    }
    // Fisher-Yates with a xorshift stream: a reproducible order per seed.
    let mut x = spec.shuffle;
    if x != 0 {
        for i in (1..exts.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            exts.swap(i, (x % (i as u64 + 1)) as usize);
        }
    }

    let mut suites = Vec::new();
    if spec.grease {
        suites.extend([0x2a, 0x2a]);
    }
    suites.extend([0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f]);
    let exts: Vec<(u16, &[u8])> = exts.iter().map(|(t, d)| (*t, &d[..])).collect();
    frame_hello(&hello_body(&suites, &exts))
}

/// A ClientHello body: TLS 1.2 legacy_version, fixed random, a 32-byte session id, the given
/// cipher suites, null compression, and the given extensions in order.
pub fn hello_body(cipher_suites: &[u8], exts: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend((0..32).map(|i| i as u8)); // random
    body.push(32);
    body.extend([0x5a; 32]); // legacy_session_id
    body.extend(with_len16(cipher_suites));
    body.extend([1, 0]); // compression: null
    let mut ext_block = Vec::new();
    for (t, data) in exts {
        ext_block.extend_from_slice(&t.to_be_bytes());
        ext_block.extend(with_len16(data));
    }
    body.extend(with_len16(&ext_block));
    body
}

/// Wraps a ClientHello body in its handshake header and in records of at most 2^14 bytes.
pub fn frame_hello(body: &[u8]) -> Vec<u8> {
    let mut message = vec![1];
    message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    message.extend_from_slice(body);
    let mut out = Vec::new();
    for chunk in message.chunks(crate::tls::MAX_RECORD_LEN) {
        out.extend([22, 3, 1]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// `data` behind its two-byte length.
pub fn with_len16(data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

/// `data` behind its one-byte length.
pub fn with_len8(data: &[u8]) -> Vec<u8> {
    let mut v = vec![data.len() as u8];
    v.extend_from_slice(data);
    v
}
