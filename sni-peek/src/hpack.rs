//! Just enough HPACK (RFC 7541) to find `:authority` or `host` in a connection's first header block.
//!
//! No dynamic table is kept: the first block starts with an empty one, so a reference to a dynamic
//! entry can only name a field inserted earlier in this same block. Had that field been `:authority`
//! or `host`, decoding would already have stopped there; the reference is bounds-checked and skipped.

use crate::name::{self, HostName};
use crate::reader::Reader;
use crate::{Error, huffman};

/// Entries of the static table (RFC 7541 Appendix A) that name what a router needs.
mod static_index {
    pub(super) const AUTHORITY: usize = 1;
    pub(super) const HOST: usize = 38;
    /// The static table has 61 entries; index 62 is the newest dynamic one.
    pub(super) const LEN: usize = 61;
}

/// An authority as it sits in the header block (maybe Huffman-coded), already validated; the host
/// is decoded again when asked for, so that a request does not carry a 253-byte buffer around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EncodedAuthority<'a> {
    bytes: &'a [u8],
    huffman: bool,
    port: Option<u16>,
}

impl EncodedAuthority<'_> {
    pub(crate) fn host(&self) -> Option<HostName> {
        let mut value = HostName::builder();
        decode(self.bytes, self.huffman, |b| value.push(b)).ok()?;
        name::split_authority(value.as_bytes())
            .ok()
            .map(|(host, _)| host)
    }

    pub(crate) fn port(&self) -> Option<u16> {
        self.port
    }
}

/// The authority of the first request: from `:authority`, else `host` (RFC 9113 §8.3.1).
pub(crate) fn find_authority(block: &[u8]) -> Result<Option<EncodedAuthority<'_>>, Error> {
    let mut r = Reader::new(block, "HPACK header block");
    let mut inserted = 0usize;
    while !r.is_empty() {
        let first = r.u8()?;
        let (name_index, indexing) = match first {
            // Indexed field (§6.1): both name and value from the table.
            0x80.. => {
                let index = integer(&mut r, first, 7)?;
                check_index(index, inserted)?;
                if matches!(index, static_index::AUTHORITY | static_index::HOST) {
                    // The static entries have empty values: an authority that says nothing.
                    return Ok(None);
                }
                continue;
            }
            // Literal with incremental indexing (§6.2.1).
            0x40..=0x7f => (integer(&mut r, first, 6)?, true),
            // Dynamic table size update (§6.3).
            0x20..=0x3f => {
                integer(&mut r, first, 5)?;
                continue;
            }
            // Literal without indexing / never indexed (§6.2.2, §6.2.3).
            _ => (integer(&mut r, first, 4)?, false),
        };
        let wanted = if name_index == 0 {
            literal_name(&mut r)?
        } else {
            check_index(name_index, inserted)?;
            matches!(name_index, static_index::AUTHORITY | static_index::HOST)
        };
        let (bytes, huffman) = string(&mut r)?;
        if wanted {
            let mut value = HostName::builder();
            decode(bytes, huffman, |b| value.push(b))?;
            if value.as_bytes().is_empty() {
                return Ok(None);
            }
            let (_, port) = name::check_authority(value.as_bytes())?;
            return Ok(Some(EncodedAuthority {
                bytes,
                huffman,
                port,
            }));
        }
        if huffman {
            // Skipped, but still checked: a broken Huffman string is a broken block.
            decode(bytes, true, |_| Ok(()))?;
        }
        if indexing {
            inserted += 1;
        }
    }
    Ok(None)
}

fn check_index(index: usize, inserted: usize) -> Result<(), Error> {
    if index == 0 || index > static_index::LEN + inserted {
        return Err(Error::Hpack {
            reason: "index outside the tables",
        });
    }
    Ok(())
}

/// Decodes a literal header name and says whether it is `:authority` or `host`.
fn literal_name(r: &mut Reader<'_>) -> Result<bool, Error> {
    const LONGEST: usize = b":authority".len();
    let mut buf = [0u8; LONGEST];
    let mut len = 0usize;
    let (bytes, huffman) = string(r)?;
    decode(bytes, huffman, |b| {
        // Longer names are not wanted; keep counting so the comparison below fails.
        if let Some(slot) = buf.get_mut(len) {
            *slot = b;
        }
        len += 1;
        Ok(())
    })?;
    let name = buf.get(..len).unwrap_or_default();
    Ok(name == b":authority" || name == b"host")
}

/// A string literal (§5.2): H flag, 7-bit-prefix length, then raw or Huffman-coded bytes.
fn string<'a>(r: &mut Reader<'a>) -> Result<(&'a [u8], bool), Error> {
    let first = r.u8()?;
    let len = integer(r, first, 7)?;
    let bytes = r.take(len).map_err(|_| Error::Hpack {
        reason: "string overruns the header block",
    })?;
    Ok((bytes, first & 0x80 != 0))
}

fn decode(
    bytes: &[u8],
    huffman: bool,
    mut out: impl FnMut(u8) -> Result<(), Error>,
) -> Result<(), Error> {
    if huffman {
        huffman::decode(bytes, out)
    } else {
        bytes.iter().try_for_each(|&b| out(b))
    }
}

/// An integer with an N-bit prefix (§5.1), refusing values that do not fit 32 bits.
fn integer(r: &mut Reader<'_>, first: u8, prefix_bits: u8) -> Result<usize, Error> {
    const TOO_LARGE: Error = Error::Hpack {
        reason: "integer too large",
    };
    let max_prefix = (1u64 << prefix_bits) - 1;
    let mut value = u64::from(first) & max_prefix;
    if value < max_prefix {
        return Ok(value as usize);
    }
    for shift in (0..=28).step_by(7) {
        let b = r.u8().map_err(|_| Error::Hpack {
            reason: "integer overruns the header block",
        })?;
        value += u64::from(b & 0x7f) << shift;
        if value > u64::from(u32::MAX) {
            return Err(TOO_LARGE);
        }
        if b & 0x80 == 0 {
            return Ok(value as usize);
        }
    }
    Err(TOO_LARGE)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::huffman::tests::encode;
    use std::vec::Vec;

    /// A literal field with a literal name, as an encoder without indexing would send it.
    pub(crate) fn literal(name: &[u8], value: &[u8], huffman: bool) -> Vec<u8> {
        let mut v = std::vec![0x00];
        for s in [name, value] {
            if huffman {
                let h = encode(s);
                v.push(0x80 | h.len() as u8);
                v.extend_from_slice(&h);
            } else {
                v.push(s.len() as u8);
                v.extend_from_slice(s);
            }
        }
        v
    }

    fn found(block: &[u8]) -> Option<(std::string::String, Option<u16>)> {
        find_authority(block)
            .unwrap()
            .map(|a| (a.host().unwrap().as_str().into(), a.port()))
    }

    #[test]
    fn rfc7541_c4_1_huffman_request() {
        // :method GET, :scheme http, :path /, :authority www.example.com (indexed name 1, Huffman).
        let block = [
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
            0x90, 0xf4, 0xff,
        ];
        assert_eq!(found(&block), Some(("www.example.com".into(), None)));
    }

    #[test]
    fn rfc7541_c3_1_plain_request() {
        let mut block = std::vec![0x82, 0x86, 0x84, 0x41, 0x0f];
        block.extend_from_slice(b"www.example.com");
        assert_eq!(found(&block), Some(("www.example.com".into(), None)));
    }

    #[test]
    fn literal_names_plain_and_huffman_with_port() {
        assert_eq!(
            found(&literal(b":authority", b"A.example:8443", false)),
            Some(("a.example".into(), Some(8443)))
        );
        assert_eq!(
            found(&literal(b"host", b"[2001:db8::1]", true)),
            Some(("2001:db8::1".into(), None))
        );
    }

    #[test]
    fn other_fields_and_dynamic_references_are_skipped() {
        let mut block = literal(b"x-long-header-name", b"v", true);
        block[0] = 0x40; // with incremental indexing: becomes dynamic index 62
        block.push(0xbe); // indexed 62
        block.push(0x3f); // size update 31 + ...
        block.push(0x01); // ... = 32
        block.extend(literal(b":authority", b"b.example", false));
        assert_eq!(found(&block), Some(("b.example".into(), None)));
    }

    #[test]
    fn no_authority_is_none() {
        assert_eq!(found(&[0x82, 0x86, 0x84]), None);
        assert_eq!(found(&[]), None);
    }

    #[test]
    fn errors() {
        let e = |b: &[u8]| find_authority(b).unwrap_err();
        assert_eq!(
            e(&[0x80]),
            Error::Hpack {
                reason: "index outside the tables"
            }
        );
        assert_eq!(
            e(&[0xbe]),
            Error::Hpack {
                reason: "index outside the tables"
            }
        );
        assert_eq!(
            e(&[0x41, 0x05, b'a']),
            Error::Hpack {
                reason: "string overruns the header block"
            }
        );
        assert_eq!(
            e(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Error::Hpack {
                reason: "integer too large"
            }
        );
        assert_eq!(
            e(&[0xff, 0x80]),
            Error::Hpack {
                reason: "integer overruns the header block"
            }
        );
        assert_eq!(
            e(&literal(b":authority", b"a b", false)),
            Error::InvalidName {
                reason: "character not allowed in a host name"
            }
        );
        let mut v = std::vec![0x00, 0x0a];
        v.extend_from_slice(b":authority");
        v.push(0x7f);
        v.push(0x80 | 45);
        v.push(0x01); // 127 + 45 + 128 = 300 bytes
        v.extend(core::iter::repeat_n(b'a', 300));
        assert_eq!(
            e(&v),
            Error::InvalidName {
                reason: "longer than 253 bytes"
            }
        );
    }
}
