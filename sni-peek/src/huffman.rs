//! HPACK Huffman decoding (RFC 7541 §5.2, Appendix B) into a caller's sink, without allocation.
//!
//! The RFC's code is canonical: codes of one length are consecutive and ordered by symbol, so the
//! code lengths alone define it. The tables below are built from those 257 lengths at compile time,
//! and decoding walks one bit at a time (names are short; a 4 KiB table would not pay for itself).

use crate::Error;

/// Code length in bits of each symbol 0..=255 and EOS (256), from RFC 7541 Appendix B.
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

const EOS: u16 = 256;
const MAX_LEN: usize = 30;

/// Decoding tables of a canonical code: per length, the first code, the symbol count, and where its
/// symbols start in `symbols` (sorted by length, then value).
struct Canonical {
    first: [u32; MAX_LEN + 1],
    count: [u32; MAX_LEN + 1],
    offset: [u16; MAX_LEN + 1],
    symbols: [u16; 257],
}

const TABLE: Canonical = build();

const fn build() -> Canonical {
    let mut t = Canonical {
        first: [0; MAX_LEN + 1],
        count: [0; MAX_LEN + 1],
        offset: [0; MAX_LEN + 1],
        symbols: [0; 257],
    };
    let mut s = 0;
    while s < 257 {
        t.count[LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let mut code = 0u32;
    let mut at = 0u16;
    let mut len = 1;
    while len <= MAX_LEN {
        t.first[len] = code;
        t.offset[len] = at;
        // Symbols of this length, in value order.
        let mut s = 0;
        while s < 257 {
            if LENGTHS[s] as usize == len {
                t.symbols[at as usize] = s as u16;
                at += 1;
            }
            s += 1;
        }
        code = (code + t.count[len]) << 1;
        len += 1;
    }
    t
}

/// Decodes `input` and hands each byte to `out`; stops at the first error `out` returns.
pub(crate) fn decode(
    input: &[u8],
    mut out: impl FnMut(u8) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut code = 0u32;
    let mut len = 0usize;
    for &byte in input {
        for shift in (0..8).rev() {
            code = code << 1 | u32::from(byte >> shift & 1);
            len += 1;
            let index = code.wrapping_sub(TABLE.first[len]);
            if index < TABLE.count[len] {
                let symbol = TABLE.symbols[usize::from(TABLE.offset[len]) + index as usize];
                if symbol == EOS {
                    return Err(Error::Hpack {
                        reason: "Huffman string contains EOS",
                    });
                }
                out(symbol as u8)?;
                code = 0;
                len = 0;
            } else if len == MAX_LEN {
                // Unreachable for a complete code, but keeps `len` in bounds whatever the input.
                return Err(Error::Hpack {
                    reason: "invalid Huffman code",
                });
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (the start of EOS), RFC 7541 §5.2.
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(Error::Hpack {
            reason: "invalid Huffman padding",
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::vec::Vec;

    /// The encoder, for tests only: the canonical code of each symbol, rebuilt from the tables.
    pub(crate) fn encode(text: &[u8]) -> Vec<u8> {
        let codes: Vec<(u32, u32)> = text
            .iter()
            .map(|&b| {
                let len = LENGTHS[usize::from(b)] as usize;
                let rank = TABLE.symbols[usize::from(TABLE.offset[len])..]
                    .iter()
                    .position(|&s| s == u16::from(b))
                    .unwrap();
                (TABLE.first[len] + rank as u32, len as u32)
            })
            .collect();
        pack(&codes)
    }

    fn decoded(input: &[u8]) -> Result<Vec<u8>, Error> {
        let mut v = Vec::new();
        decode(input, |b| {
            v.push(b);
            Ok(())
        })?;
        Ok(v)
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rfc7541_appendix_c4_examples() {
        assert_eq!(
            decoded(&hex("f1e3c2e5f23a6ba0ab90f4ff")).unwrap(),
            b"www.example.com"
        );
        assert_eq!(decoded(&hex("a8eb10649cbf")).unwrap(), b"no-cache");
        assert_eq!(decoded(&hex("25a849e95ba97d7f")).unwrap(), b"custom-key");
        assert_eq!(encode(b"www.example.com"), hex("f1e3c2e5f23a6ba0ab90f4ff"));
    }

    #[test]
    fn codes_match_rfc_spot_checks() {
        // (symbol, code, length) rows of Appendix B: short, long, and the longest codes.
        for (sym, code, len) in [
            (b'0' as usize, 0x0, 5),
            (b'a' as usize, 0x3, 5),
            (0, 0x1ff8, 13),
            (10, 0x3fff_fffc, 30),
            (254, 0x7ff_fff0, 27),
            (256, 0x3fff_ffff, 30),
        ] {
            assert_eq!(usize::from(LENGTHS[sym]), len);
            let rank = TABLE.symbols[usize::from(TABLE.offset[len])..]
                .iter()
                .position(|&s| usize::from(s) == sym)
                .unwrap();
            assert_eq!(TABLE.first[len] + rank as u32, code, "symbol {sym}");
        }
    }

    /// Packs (code, length) pairs MSB first and pads with ones, as an encoder would: built from
    /// codes typed in, so that the decoder is checked against the RFC, not against its own tables.
    fn pack(codes: &[(u32, u32)]) -> Vec<u8> {
        let (mut acc, mut bits, mut out) = (0u64, 0u32, Vec::new());
        for &(code, len) in codes {
            acc = acc << len | u64::from(code);
            bits += len;
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            out.push((acc << (8 - bits) | (0xff >> bits)) as u8);
        }
        out
    }

    #[test]
    fn decodes_codes_typed_in_from_appendix_b() {
        // (symbol, code, bits) rows of RFC 7541 Appendix B, across the code lengths.
        const ROWS: &[(u8, u32, u32)] = &[
            (0, 0x1ff8, 13),
            (1, 0x7f_ffd8, 23),
            (9, 0xff_ffea, 24),
            (b'\n', 0x3fff_fffc, 30),
            (b'\r', 0x3fff_fffd, 30),
            (22, 0x3fff_fffe, 30),
            (b' ', 0x14, 6),
            (b'!', 0x3f8, 10),
            (b'"', 0x3f9, 10),
            (b'$', 0x1ff9, 13),
            (b'%', 0x15, 6),
            (b'0', 0x0, 5),
            (b'1', 0x1, 5),
            (b'2', 0x2, 5),
            (b':', 0x5c, 7),
            (b'<', 0x7ffc, 15),
            (b'=', 0x20, 6),
            (b'a', 0x3, 5),
            (b'c', 0x4, 5),
            (b'e', 0x5, 5),
            (b'o', 0x7, 5),
            (b't', 0x9, 5),
        ];
        for &(sym, code, len) in ROWS {
            assert_eq!(decoded(&pack(&[(code, len)])).unwrap(), [sym], "{sym}");
        }
        // All of them in one string: each code must end exactly where the next begins.
        let codes: Vec<(u32, u32)> = ROWS.iter().map(|&(_, c, l)| (c, l)).collect();
        let syms: Vec<u8> = ROWS.iter().map(|&(s, _, _)| s).collect();
        assert_eq!(decoded(&pack(&codes)).unwrap(), syms);
        // EOS (30 ones) inside a string is an error, not a symbol.
        assert_eq!(
            decoded(&pack(&[(0x3, 5), (0x3fff_ffff, 30)])),
            Err(Error::Hpack {
                reason: "Huffman string contains EOS"
            })
        );
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decoded(&encode(&all)).unwrap(), all);
    }

    #[test]
    fn padding_must_be_short_and_all_ones() {
        // 'a' is 00011: pad with 000 instead of 111.
        assert_eq!(
            decoded(&[0b0001_1000]),
            Err(Error::Hpack {
                reason: "invalid Huffman padding"
            })
        );
        // A whole byte of ones is padding longer than 7 bits.
        let mut long = encode(b"a");
        long.push(0xff);
        assert_eq!(
            decoded(&long),
            Err(Error::Hpack {
                reason: "invalid Huffman padding"
            })
        );
    }

    #[test]
    fn eos_in_the_string_is_an_error() {
        assert_eq!(
            decoded(&[0xff, 0xff, 0xff, 0xff]),
            Err(Error::Hpack {
                reason: "Huffman string contains EOS"
            })
        );
    }
}
