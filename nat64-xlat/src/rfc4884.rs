//! RFC 4884 multi-part ICMP messages: where the quoted datagram ends and the extension begins, and
//! how the translated quote is laid out again (padding, 128-byte minimum, size cap).

/// The quoted datagram and the extension of an ICMP error body (bytes after the 8-byte header).
/// `words` is the length attribute, `unit` its unit (4 for ICMPv4, 8 for ICMPv6). A length of zero,
/// or one that runs past the body, means there is no extension.
pub(crate) fn split(body: &[u8], words: u8, unit: usize) -> (&[u8], &[u8]) {
    let q = usize::from(words) * unit;
    if words == 0 || q > body.len() {
        (body, &[])
    } else {
        body.split_at(q)
    }
}

/// Where the translated quote and extension go in the new message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Bytes of the translated quote kept.
    pub(crate) keep: usize,
    /// Bytes the quote field occupies (`keep` plus zero padding).
    pub(crate) area: usize,
    /// Whether the extension is kept; if so the length attribute is `area / unit`.
    pub(crate) ext: bool,
}

/// Lays out a translated quote of `quote` bytes and an extension of `ext` bytes (0: none) in a body
/// of at most `max` bytes.
///
/// With an extension the quote field is a multiple of `unit` and at least 128 bytes (RFC 4884
/// §4.1/§4.2): a short quote is zero-padded to 128; a longer one is cut down to the unit (a quote
/// may always be truncated, and the headers that identify the flow are well inside 128 bytes).
/// When the extension does not fit next to a 128-byte quote it is dropped and the length
/// attribute becomes zero.
pub(crate) fn layout(quote: usize, ext: usize, max: usize, unit: usize) -> Layout {
    let plain = Layout {
        keep: quote.min(max),
        area: quote.min(max),
        ext: false,
    };
    if ext == 0 || max < 128 + ext {
        return plain;
    }
    let mut area = if quote < 128 {
        128
    } else {
        quote / unit * unit
    };
    if area + ext > max {
        area = (max - ext) / unit * unit;
    }
    if area < 128 {
        return plain;
    }
    Layout {
        keep: quote.min(area),
        area,
        ext: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_by_length_attribute() {
        let body = [0u8; 200];
        assert_eq!(split(&body, 0, 4).0.len(), 200);
        let (q, e) = split(&body, 32, 4);
        assert_eq!((q.len(), e.len()), (128, 72));
        let (q, e) = split(&body, 16, 8);
        assert_eq!((q.len(), e.len()), (128, 72));
        // A length past the end: no extension.
        assert_eq!(split(&body, 40, 8).1.len(), 0);
    }

    #[test]
    fn short_quote_padded_to_128() {
        assert_eq!(
            layout(108, 40, 548, 4),
            Layout {
                keep: 108,
                area: 128,
                ext: true
            }
        );
    }

    #[test]
    fn long_quote_cut_to_the_unit() {
        assert_eq!(
            layout(148, 40, 1232, 8),
            Layout {
                keep: 144,
                area: 144,
                ext: true
            }
        );
        assert_eq!(
            layout(150, 40, 548, 4),
            Layout {
                keep: 148,
                area: 148,
                ext: true
            }
        );
    }

    #[test]
    fn quote_trimmed_to_keep_extension() {
        assert_eq!(
            layout(1000, 640, 1232, 8),
            Layout {
                keep: 592,
                area: 592,
                ext: true
            }
        );
    }

    #[test]
    fn extension_too_big_is_dropped() {
        assert_eq!(
            layout(300, 421, 548, 4),
            Layout {
                keep: 300,
                area: 300,
                ext: false
            }
        );
        assert_eq!(
            layout(1300, 1105, 1232, 8),
            Layout {
                keep: 1232,
                area: 1232,
                ext: false
            }
        );
    }

    #[test]
    fn no_extension_only_caps() {
        assert_eq!(
            layout(700, 0, 548, 4),
            Layout {
                keep: 548,
                area: 548,
                ext: false
            }
        );
        assert_eq!(
            layout(30, 0, 548, 4),
            Layout {
                keep: 30,
                area: 30,
                ext: false
            }
        );
    }
}
