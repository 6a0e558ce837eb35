//! Just enough HPACK (RFC 7541) to find the authority of a connection's first header block.
//!
//! The whole block is decoded, so that the authority routed on is the one the backend will see:
//! a second `:authority`, a pseudo-header after a regular field (RFC 9113 §8.3) and a `host` that
//! differs from `:authority` (§8.3.1) are errors, not a first match.
//!
//! No values are kept for the dynamic table: the first block starts with an empty one, so a
//! reference can only name a field inserted earlier in this same block. Only the kind of each
//! inserted field is remembered, which is all a reference needs: a second `:authority` or `host`
//! is an error whatever its value.

use crate::name::{self, HostName};
use crate::reader::Reader;
use crate::{Error, huffman};

/// Entries of the static table (RFC 7541 Appendix A) that name what a router needs.
mod static_index {
    pub(super) const AUTHORITY: usize = 1;
    /// `:method`, `:path`, `:scheme` and `:status` follow `:authority`.
    pub(super) const LAST_PSEUDO: usize = 14;
    pub(super) const HOST: usize = 38;
    /// The static table has 61 entries; index 62 is the newest dynamic one.
    pub(super) const LEN: usize = 61;
}

/// Dynamic entries a first block can reference: every entry costs at least 32 bytes (§4.1) and
/// the table is 4096 bytes until the server's SETTINGS, which a client peeked at has not seen.
const MAX_DYNAMIC: usize = 4096 / 32;

/// A header field as far as routing is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Authority,
    Host,
    /// `:method`, `:path`, `:scheme`, or any other name starting with `:`.
    OtherPseudo,
    Regular,
}

impl Field {
    fn is_pseudo(self) -> bool {
        matches!(self, Field::Authority | Field::OtherPseudo)
    }

    fn of_static(index: usize) -> Field {
        match index {
            static_index::AUTHORITY => Field::Authority,
            static_index::HOST => Field::Host,
            2..=static_index::LAST_PSEUDO => Field::OtherPseudo,
            _ => Field::Regular,
        }
    }
}

/// An authority as it sits in the header block (maybe Huffman-coded), already validated; the host
/// is decoded again when asked for, so that a request does not carry a 253-byte buffer around.
/// Empty bytes stand for an empty value: no name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EncodedAuthority<'a> {
    bytes: &'a [u8],
    huffman: bool,
    port: Option<u16>,
}

impl EncodedAuthority<'_> {
    const EMPTY: EncodedAuthority<'static> = EncodedAuthority {
        bytes: &[],
        huffman: false,
        port: None,
    };

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

    /// Validates a `:authority` or `host` value; empty is allowed and means no name.
    fn new(bytes: &[u8], huffman: bool) -> Result<EncodedAuthority<'_>, Error> {
        let mut value = HostName::builder();
        decode(bytes, huffman, |b| value.push(b))?;
        if value.as_bytes().is_empty() {
            return Ok(EncodedAuthority::EMPTY);
        }
        let (_, port) = name::check_authority(value.as_bytes())?;
        Ok(EncodedAuthority {
            bytes,
            huffman,
            port,
        })
    }

    /// Same host and port, once normalised (case, trailing dot, brackets).
    fn same_as(&self, other: &EncodedAuthority<'_>) -> bool {
        self.host() == other.host() && self.port == other.port
    }
}

/// The kinds of the fields inserted into the dynamic table so far, newest last (a ring).
struct Inserted {
    kinds: [Field; MAX_DYNAMIC],
    count: usize,
}

impl Inserted {
    fn push(&mut self, field: Field) {
        self.kinds[self.count % MAX_DYNAMIC] = field;
        self.count += 1;
    }

    /// The field an index names (§2.3.3): static first, then dynamic, newest first.
    fn lookup(&self, index: usize) -> Result<Field, Error> {
        const OUTSIDE: Error = Error::Hpack {
            reason: "index outside the tables",
        };
        match index {
            0 => Err(OUTSIDE),
            1..=static_index::LEN => Ok(Field::of_static(index)),
            _ => {
                let age = index - static_index::LEN - 1;
                if age >= self.count.min(MAX_DYNAMIC) {
                    return Err(OUTSIDE);
                }
                Ok(self.kinds[(self.count - 1 - age) % MAX_DYNAMIC])
            }
        }
    }
}

/// The authority of the first request: `:authority`, else `host` (RFC 9113 §8.3.1), after checking
/// the whole block.
pub(crate) fn find_authority(block: &[u8]) -> Result<Option<EncodedAuthority<'_>>, Error> {
    let mut r = Reader::new(block, "HPACK header block");
    let mut inserted = Inserted {
        kinds: [Field::Regular; MAX_DYNAMIC],
        count: 0,
    };
    let mut authority = None;
    let mut host = None;
    let mut fields = 0usize;
    let mut regular_seen = false;
    while !r.is_empty() {
        let first = r.u8()?;
        let (field, value, indexing) = match first {
            // Indexed field (§6.1): both name and value from the table.
            0x80.. => {
                let field = inserted.lookup(integer(&mut r, first, 7)?)?;
                // The static entries for :authority and host have empty values.
                (field, EncodedAuthority::EMPTY, false)
            }
            // Dynamic table size update (§6.3), allowed only before the first field (§4.2).
            0x20..=0x3f => {
                if fields > 0 {
                    return Err(Error::Hpack {
                        reason: "dynamic table size update after a field",
                    });
                }
                integer(&mut r, first, 5)?;
                continue;
            }
            // Literals: with incremental indexing (§6.2.1), without or never indexed (§6.2.2-3).
            _ => {
                let (prefix, indexing) = if first >= 0x40 { (6, true) } else { (4, false) };
                let name_index = integer(&mut r, first, prefix)?;
                let field = if name_index == 0 {
                    literal_name(&mut r)?
                } else {
                    inserted.lookup(name_index)?
                };
                let (bytes, huffman) = string(&mut r)?;
                let value = if matches!(field, Field::Authority | Field::Host) {
                    EncodedAuthority::new(bytes, huffman)?
                } else {
                    check_value(bytes, huffman)?;
                    EncodedAuthority::EMPTY
                };
                (field, value, indexing)
            }
        };
        fields += 1;
        if indexing {
            inserted.push(field);
        }
        if field.is_pseudo() && regular_seen {
            return Err(Error::Hpack {
                reason: "pseudo-header field after a regular field",
            });
        }
        regular_seen |= !field.is_pseudo();
        let slot = match field {
            Field::Authority => &mut authority,
            Field::Host => &mut host,
            Field::OtherPseudo | Field::Regular => continue,
        };
        if slot.replace(value).is_some() {
            return Err(Error::Hpack {
                reason: if field == Field::Authority {
                    "two :authority fields"
                } else {
                    "two host fields"
                },
            });
        }
    }
    match (authority, host) {
        (Some(a), Some(h)) if !a.same_as(&h) => Err(Error::Hpack {
            reason: "host differs from :authority",
        }),
        (Some(a), _) | (None, Some(a)) => Ok(Some(a).filter(|a| !a.bytes.is_empty())),
        (None, None) => Ok(None),
    }
}

/// Decodes a literal header name, checks its characters (RFC 9113 §8.2.1: no uppercase, no
/// controls, no colon but a leading one), and says what field it is.
fn literal_name(r: &mut Reader<'_>) -> Result<Field, Error> {
    const LONGEST: usize = b":authority".len();
    let mut buf = [0u8; LONGEST];
    let mut len = 0usize;
    let (bytes, huffman) = string(r)?;
    decode(bytes, huffman, |b| {
        let colon_ok = b == b':' && len == 0;
        if matches!(b, 0x00..=0x20 | b'A'..=b'Z' | 0x7f..) || (b == b':' && !colon_ok) {
            return Err(Error::Hpack {
                reason: "character not allowed in a field name",
            });
        }
        // Longer names are not wanted; keep counting so the comparison below fails.
        if let Some(slot) = buf.get_mut(len) {
            *slot = b;
        }
        len += 1;
        Ok(())
    })?;
    if len == 0 {
        return Err(Error::Hpack {
            reason: "empty field name",
        });
    }
    // A longer name keeps only its first bytes here: enough to tell a pseudo-header.
    Ok(match buf.get(..len).unwrap_or(&buf) {
        b":authority" if len == LONGEST => Field::Authority,
        b"host" => Field::Host,
        [b':', ..] => Field::OtherPseudo,
        _ => Field::Regular,
    })
}

/// A field value must not contain NUL, CR or LF (RFC 9113 §8.2.1).
fn check_value(bytes: &[u8], huffman: bool) -> Result<(), Error> {
    decode(bytes, huffman, |b| {
        if matches!(b, 0 | b'\r' | b'\n') {
            return Err(Error::Hpack {
                reason: "NUL, CR or LF in a field value",
            });
        }
        Ok(())
    })
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
        // A size update (31 + 1 = 32) first, as §4.2 requires.
        let mut block = std::vec![0x3f, 0x01];
        block.extend(literal(b":authority", b"b.example", false));
        let mut field = literal(b"x-long-header-name", b"v", true);
        field[0] = 0x40; // with incremental indexing: becomes dynamic index 62
        block.extend(field);
        block.push(0xbe); // indexed 62
        assert_eq!(found(&block), Some(("b.example".into(), None)));
    }

    fn hpack_error(block: &[u8]) -> &'static str {
        match find_authority(block) {
            Err(Error::Hpack { reason }) => reason,
            other => panic!("expected an HPACK error, got {other:?}"),
        }
    }

    #[test]
    fn size_update_only_before_the_first_field() {
        let mut block = std::vec![0x82, 0x3f, 0x01];
        block.extend(literal(b":authority", b"b.example", false));
        assert_eq!(
            hpack_error(&block),
            "dynamic table size update after a field"
        );
    }

    #[test]
    fn a_second_authority_is_an_error_not_a_first_match() {
        let mut block = literal(b":authority", b"a.example", false);
        block.extend(literal(b":authority", b"b.example", true));
        assert_eq!(hpack_error(&block), "two :authority fields");
        // The second one by reference to the first, inserted into the dynamic table.
        let mut block = literal(b":authority", b"a.example", false);
        block[0] = 0x40;
        block.push(0xbe);
        assert_eq!(hpack_error(&block), "two :authority fields");
        // Static name index 1 with a value, then a literal name.
        let mut block = std::vec![0x01, 0x01, b'a'];
        block.extend(literal(b":authority", b"a", false));
        assert_eq!(hpack_error(&block), "two :authority fields");
        let mut block = literal(b"host", b"a.example", false);
        block.extend(literal(b"host", b"a.example", false));
        assert_eq!(hpack_error(&block), "two host fields");
    }

    #[test]
    fn host_before_authority_is_a_pseudo_header_after_a_regular_field() {
        let mut block = literal(b"host", b"a.example", false);
        block.extend(literal(b":authority", b"a.example", false));
        assert_eq!(
            hpack_error(&block),
            "pseudo-header field after a regular field"
        );
        // Static :path after a regular field.
        let mut block = literal(b"user-agent", b"x", false);
        block.push(0x84);
        assert_eq!(
            hpack_error(&block),
            "pseudo-header field after a regular field"
        );
    }

    #[test]
    fn host_must_match_authority() {
        let mut block = literal(b":authority", b"a.example", false);
        block.extend(literal(b"host", b"evil.example", true));
        assert_eq!(hpack_error(&block), "host differs from :authority");
        let mut block = literal(b":authority", b"a.example", false);
        block.extend(literal(b"host", b"a.example:8443", false));
        assert_eq!(hpack_error(&block), "host differs from :authority");
        // An empty :authority (static index 1) with a host that says something.
        let mut block = std::vec![0x81];
        block.extend(literal(b"host", b"a.example", false));
        assert_eq!(hpack_error(&block), "host differs from :authority");
        // The same authority spelled differently is the same.
        let mut block = literal(b":authority", b"A.Example.:443", false);
        block.extend(literal(b"host", b"a.example:443", true));
        assert_eq!(found(&block), Some(("a.example".into(), Some(443))));
    }

    #[test]
    fn host_alone_is_used() {
        let mut block = std::vec![0x82, 0x86, 0x84];
        block.extend(literal(b"host", b"h.example", true));
        assert_eq!(found(&block), Some(("h.example".into(), None)));
    }

    #[test]
    fn field_names_and_values_are_checked() {
        assert_eq!(
            hpack_error(&literal(b"Host", b"evil.example", false)),
            "character not allowed in a field name"
        );
        assert_eq!(
            hpack_error(&literal(b"x:y", b"v", true)),
            "character not allowed in a field name"
        );
        assert_eq!(hpack_error(&literal(b"", b"v", false)), "empty field name");
        assert_eq!(
            hpack_error(&literal(b"x-a", b"1\r\nhost: evil", false)),
            "NUL, CR or LF in a field value"
        );
        // A long pseudo-header name is still a pseudo-header.
        let mut block = literal(b"x", b"1", false);
        block.extend(literal(b":authority-and-more", b"1", false));
        assert_eq!(
            hpack_error(&block),
            "pseudo-header field after a regular field"
        );
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
