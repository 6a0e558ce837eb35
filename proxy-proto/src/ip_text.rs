//! Address and port text for v1 lines: strict parsers, prefix checks for partial lines, and
//! RFC 5952 output. Hand-written because `core`'s `FromStr` accepts `+` on ports and is slower.

use core::net::{Ipv4Addr, Ipv6Addr};

/// The decimal number that starts `s`, of at most `max_digits` digits, and the bytes it took.
/// Strict: no leading zeros. Lenient: leading zeros read as decimal (nginx). No sign, ever.
pub(crate) fn decimal_prefix(s: &[u8], max_digits: usize, lenient: bool) -> Option<(u32, usize)> {
    let mut value = 0u32;
    let mut digits = 0;
    while let Some(&b) = s.get(digits) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if digits == max_digits {
            return None;
        }
        value = value * 10 + u32::from(d);
        digits += 1;
    }
    let leading_zero = digits > 1 && s.first() == Some(&b'0');
    (digits > 0 && (lenient || !leading_zero)).then_some((value, digits))
}

/// The dotted quad that starts `s`, and the bytes it took.
pub(crate) fn ipv4_prefix(s: &[u8], lenient: bool) -> Option<(Ipv4Addr, usize)> {
    let mut octets = [0u8; 4];
    let mut at = 0;
    for (i, octet) in octets.iter_mut().enumerate() {
        if i > 0 {
            if s.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
        let (value, len) = decimal_prefix(s.get(at..)?, 3, lenient)?;
        *octet = u8::try_from(value).ok()?;
        at += len;
    }
    Some((Ipv4Addr::from(octets), at))
}

/// Exactly a dotted quad.
pub(crate) fn parse_ipv4(s: &[u8], lenient: bool) -> Option<Ipv4Addr> {
    ipv4_prefix(s, lenient).and_then(|(ip, len)| (len == s.len()).then_some(ip))
}

/// Exactly a port, 0–65535.
pub(crate) fn parse_port(s: &[u8], lenient: bool) -> Option<u16> {
    let (value, len) = decimal_prefix(s, 5, lenient)?;
    (len == s.len()).then_some(u16::try_from(value).ok()?)
}

/// Hex digit values; 0xFF for anything else.
const HEX: [u8; 256] = {
    let mut t = [0xFF; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// IPv6 in any RFC 4291 §2.2 text form: full, `::`-compressed, with an IPv4 tail. No zone ids.
pub(crate) fn parse_ipv6(s: &[u8]) -> Option<Ipv6Addr> {
    // Longest form: 8 groups of 4 digits and 7 colons, or 6 groups plus a dotted quad (45).
    if s.len() < 2 || s.len() > 45 {
        return None;
    }
    let mut groups = [0u16; 8];
    let mut count = 0;
    // Where `::` stands: the index of the group that follows it.
    let mut gap = None;
    let mut i = 0;
    if s[0] == b':' {
        if s[1] != b':' {
            return None;
        }
        if s.len() == 2 {
            return Some(Ipv6Addr::UNSPECIFIED);
        }
        (gap, i) = (Some(0), 2);
    }
    loop {
        let start = i;
        let mut group = 0u32;
        while let Some(&b) = s.get(i) {
            let digit = HEX[usize::from(b)];
            if digit == 0xFF {
                break;
            }
            group = group << 4 | u32::from(digit);
            i += 1;
        }
        if s.get(i) == Some(&b'.') {
            // An embedded IPv4 address ends the text and fills two groups.
            if count > 6 {
                return None;
            }
            let [a, b, c, d] = parse_ipv4(&s[start..], false)?.octets();
            groups[count] = u16::from_be_bytes([a, b]);
            groups[count + 1] = u16::from_be_bytes([c, d]);
            count += 2;
            break;
        }
        if i == start || i - start > 4 || count == 8 {
            return None;
        }
        groups[count] = group as u16;
        count += 1;
        match s.get(i) {
            None => break,
            Some(b':') => i += 1,
            Some(_) => return None,
        }
        match s.get(i) {
            None => return None,
            Some(b':') if gap.is_none() => {
                (gap, i) = (Some(count), i + 1);
                if i == s.len() {
                    break;
                }
            }
            Some(b':') => return None,
            Some(_) => {}
        }
    }
    match gap {
        None if count == 8 => {}
        Some(at) if count < 8 => {
            // Move the groups after `::` to the end, zeros between (a loop: at most 8 moves,
            // cheaper than a memmove call for so little).
            let shift = 8 - count;
            for k in (at..count).rev() {
                groups[k + shift] = groups[k];
                groups[k] = 0;
            }
        }
        _ => return None,
    }
    Some(Ipv6Addr::from(groups))
}

/// Whether `partial` can still grow into a valid field: it is valid itself or one of a few
/// short completions makes it so. Used to refuse a cut v1 line as soon as it can never parse.
pub(crate) fn can_complete(partial: &[u8], parse: impl Fn(&[u8]) -> bool) -> bool {
    const ENDINGS: [&[u8]; 12] = [
        b"", b"0", b":", b"::", b":0", b"0::", b".0", b"0.0", b".0.0", b"0.0.0", b".0.0.0",
        b"0.0.0.0",
    ];
    let mut scratch = [0u8; 64];
    ENDINGS.iter().any(|ending| {
        let n = partial.len() + ending.len();
        n <= scratch.len() && {
            scratch[..partial.len()].copy_from_slice(partial);
            scratch[partial.len()..n].copy_from_slice(ending);
            parse(&scratch[..n])
        }
    })
}

/// A small stack buffer that address text is written into.
#[derive(Debug)]
pub(crate) struct Text {
    buf: [u8; 48],
    len: usize,
}

impl Text {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn push_decimal(&mut self, mut v: u32) {
        let mut digits = [0u8; 10];
        let mut n = 0;
        loop {
            digits[n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for &d in digits[..n].iter().rev() {
            self.push(d);
        }
    }

    fn push_hex(&mut self, v: u16) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut started = false;
        for shift in [12, 8, 4, 0] {
            let nibble = (v >> shift) & 0xF;
            if started || nibble != 0 || shift == 0 {
                self.push(HEX[usize::from(nibble)]);
                started = true;
            }
        }
    }

    fn push_ipv4(&mut self, ip: Ipv4Addr) {
        for (i, octet) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                self.push(b'.');
            }
            self.push_decimal(u32::from(octet));
        }
    }
}

/// Decimal text of a port.
pub(crate) fn port_text(port: u16) -> Text {
    let mut t = Text {
        buf: [0; 48],
        len: 0,
    };
    t.push_decimal(u32::from(port));
    t
}

/// Dotted-quad text.
pub(crate) fn ipv4_text(ip: Ipv4Addr) -> Text {
    let mut t = Text {
        buf: [0; 48],
        len: 0,
    };
    t.push_ipv4(ip);
    t
}

/// RFC 5952 canonical text: lowercase, no leading zeros, the longest run (≥ 2) of zero groups
/// — the first of equals — as `::`, and v4-mapped addresses as `::ffff:a.b.c.d`.
pub(crate) fn ipv6_text(ip: Ipv6Addr) -> Text {
    let mut t = Text {
        buf: [0; 48],
        len: 0,
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        t.buf[..7].copy_from_slice(b"::ffff:");
        t.len = 7;
        t.push_ipv4(v4);
        return t;
    }
    let groups = ip.segments();
    let (mut best_start, mut best_len) = (8, 0);
    let mut i = 0;
    while i < 8 {
        let start = i;
        while i < 8 && groups[i] == 0 {
            i += 1;
        }
        if i - start > best_len {
            (best_start, best_len) = (start, i - start);
        }
        i += 1;
    }
    if best_len < 2 {
        best_start = 8;
    }
    let mut i = 0;
    while i < 8 {
        if i == best_start {
            t.push(b':');
            t.push(b':');
            i += best_len;
            continue;
        }
        if i > 0 && i != best_start + best_len {
            t.push(b':');
        }
        t.push_hex(groups[i]);
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn ipv4_strict_and_lenient() {
        assert_eq!(
            parse_ipv4(b"192.0.2.1", false),
            Some(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert_eq!(parse_ipv4(b"0.0.0.0", false), Some(Ipv4Addr::UNSPECIFIED));
        assert_eq!(
            parse_ipv4(b"255.255.255.255", false),
            Some(Ipv4Addr::BROADCAST)
        );
        for bad in [
            &b"256.0.0.1"[..],
            b"1.2.3",
            b"1.2.3.4.5",
            b"1..2.3",
            b"01.2.3.4",
            b"1.2.3.04",
            b"+1.2.3.4",
            b"1.2.3.4 ",
            b"",
            b"1.2.3.0004",
            b"a.b.c.d",
            b"1.2.3.-4",
        ] {
            assert_eq!(
                parse_ipv4(bad, false),
                None,
                "{:?}",
                core::str::from_utf8(bad)
            );
        }
        assert_eq!(
            parse_ipv4(b"010.001.002.003", true),
            Some(Ipv4Addr::new(10, 1, 2, 3))
        );
        assert_eq!(parse_ipv4(b"0256.1.1.1", true), None);
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port(b"0", false), Some(0));
        assert_eq!(parse_port(b"65535", false), Some(65535));
        for bad in [
            &b"65536"[..],
            b"+80",
            b"-1",
            b"080",
            b"",
            b"8 0",
            b"123456",
            b"0x50",
        ] {
            assert_eq!(
                parse_port(bad, false),
                None,
                "{:?}",
                core::str::from_utf8(bad)
            );
        }
        assert_eq!(parse_port(b"00080", true), Some(80));
        assert_eq!(parse_port(b"+80", true), None);
    }

    #[test]
    fn ipv6_forms_of_rfc4291() {
        let cases: &[(&str, &str)] = &[
            ("2001:db8:0:0:8:800:200c:417a", "2001:db8::8:800:200c:417a"),
            ("2001:DB8::8:800:200C:417A", "2001:db8::8:800:200c:417a"),
            ("ff01::101", "ff01::101"),
            ("::1", "::1"),
            ("::", "::"),
            ("0:0:0:0:0:0:13.1.68.3", "::d01:4403"),
            ("::ffff:129.144.52.38", "::ffff:129.144.52.38"),
            ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
            ("::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"),
            ("0001:0002:0003:0004:0005:0006:0007:0008", "1:2:3:4:5:6:7:8"),
            ("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"),
        ];
        for (text, canonical) in cases {
            let ip = parse_ipv6(text.as_bytes()).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(ip, text.parse::<Ipv6Addr>().unwrap(), "{text}");
            assert_eq!(ip.to_string(), *canonical, "core's Display, for reference");
        }
        for bad in [
            "",
            ":",
            ":::",
            "1:::2",
            "1::2::3",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7",
            "12345::",
            "1:2:3:4:5:6:7:8::",
            "::1.2.3.04",
            "::1.2.3",
            "1.2.3.4",
            "fe80::1%eth0",
            "g::",
            ":1::",
            "1::2:",
            "1:2:3:4:5:6:7:1.2.3.4",
            "::ffff:1.2.3.4.5",
            " ::1",
        ] {
            assert_eq!(parse_ipv6(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn rfc5952_text_matches_core_display() {
        for text in [
            "2001:db8::1",
            "2001:db8:0:0:1:0:0:1",
            "2001:0:0:1:0:0:0:1",
            "::",
            "::1",
            "1::",
            "2001:db8:0:1:1:1:1:1",
            "fe80::1:0:0:0",
            "::ffff:192.0.2.1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "0:1:0:1:0:1:0:1",
        ] {
            let ip: Ipv6Addr = text.parse().unwrap();
            assert_eq!(
                ipv6_text(ip).as_bytes(),
                ip.to_string().as_bytes(),
                "{text}"
            );
        }
        assert_eq!(
            ipv6_text("2001:db8:0:0:1:0:0:1".parse().unwrap()).as_bytes(),
            b"2001:db8::1:0:0:1"
        );
        assert_eq!(
            ipv4_text(Ipv4Addr::new(10, 0, 255, 9)).as_bytes(),
            b"10.0.255.9"
        );
        assert_eq!(port_text(65535).as_bytes(), b"65535");
        assert_eq!(port_text(0).as_bytes(), b"0");
    }

    #[test]
    fn prefixes_that_can_still_complete() {
        let v6 = |s: &[u8]| parse_ipv6(s).is_some();
        for ok in [
            "",
            "2001",
            "2001:",
            "2001:db8::",
            "::ffff:1.2",
            "::ffff:1.2.",
            "1:2:3:4:5:6:7:",
            ":",
        ] {
            assert!(can_complete(ok.as_bytes(), v6), "{ok}");
        }
        for bad in [
            ":::",
            "12345",
            "1::2::",
            "::1.2.3.4.",
            "1:2:3:4:5:6:7:8:",
            "::01.",
        ] {
            assert!(!can_complete(bad.as_bytes(), v6), "{bad}");
        }
        let v4 = |s: &[u8]| parse_ipv4(s, false).is_some();
        for ok in ["", "1", "19", "192.", "192.0.2", "192.0.2.1"] {
            assert!(can_complete(ok.as_bytes(), v4), "{ok}");
        }
        for bad in ["256", "01", "1.2.3.4.", "1..", "1.2.3.4:"] {
            assert!(!can_complete(bad.as_bytes(), v4), "{bad}");
        }
        let port = |s: &[u8]| parse_port(s, false).is_some();
        assert!(can_complete(b"6553", port));
        assert!(!can_complete(b"65536", port));
        assert!(!can_complete(b"08", port));
        assert!(!can_complete(b"+", port));
    }
}
