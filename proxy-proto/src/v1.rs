//! The v1 text line: `PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n`.

use core::net::{IpAddr, SocketAddrV4, SocketAddrV6};

use crate::addresses::ip_to_v6;
use crate::ip_text::{
    can_complete, decimal_prefix, ipv4_prefix, parse_ipv4, parse_ipv6, parse_port,
};
use crate::layout::v1::{PROXY, TCP4, TCP6, UNKNOWN};
use crate::{Addresses, Command, Error, Header, Needed, Status, Transport, V1_MAX_LEN, Version};

/// The shortest v1 line: `PROXY UNKNOWN\r\n`.
const MIN_LEN: usize = 15;

pub(crate) fn parse(buf: &[u8], lenient: bool) -> Result<Status<Header<'_>>, Error> {
    if !lenient {
        if let Some(header) = fast_path(buf) {
            return Ok(Status::Complete(header));
        }
    }
    let sig = buf.len().min(PROXY.len());
    if buf[..sig] != PROXY[..sig] {
        return Err(Error::NotProxy);
    }
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(eol) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        if buf.len() >= V1_MAX_LEN {
            return Err(Error::V1("no CRLF within the first 107 bytes"));
        }
        check_line(buf, false, lenient)?;
        // Unknown once the shortest line could fit: only the CRLF ends it.
        return Ok(Status::Partial(Needed::at_least(
            MIN_LEN.saturating_sub(buf.len()),
        )));
    };
    if window[eol] == b'\n' {
        return Err(Error::V1("line feed without a carriage return before it"));
    }
    if eol + 2 > V1_MAX_LEN {
        return Err(Error::V1("no CRLF within the first 107 bytes"));
    }
    let line = &buf[..eol];
    match buf.get(eol + 1) {
        Some(b'\n') => {
            let (transport, addresses) = check_line(line, true, lenient)?;
            Ok(Status::Complete(Header {
                version: Version::V1,
                command: Command::Proxy,
                transport,
                addresses,
                tlvs: &[],
                len: eol + 2,
            }))
        }
        Some(_) => Err(Error::V1("carriage return without a line feed after it")),
        None => {
            check_line(line, false, lenient)?;
            Ok(Status::Partial(Needed::exactly(1)))
        }
    }
}

/// The common case in one pass: a whole, strict `TCP4`/`TCP6` line. `None` sends the input
/// through the general path, which also finds partial lines and says precisely what is wrong.
fn fast_path(buf: &[u8]) -> Option<Header<'_>> {
    let mut line = Cursor {
        rest: buf.strip_prefix(b"PROXY TCP")?,
    };
    let v6 = match line.byte()? {
        b'4' => false,
        b'6' => true,
        _ => return None,
    };
    line.expect(b' ')?;
    let addresses = if v6 {
        let src = parse_ipv6(line.field()?)?;
        let dst = parse_ipv6(line.field()?)?;
        let (sport, dport) = (line.port(b' ')?, line.port(b'\r')?);
        Addresses::Ipv6 {
            src: SocketAddrV6::new(src, sport, 0, 0),
            dst: SocketAddrV6::new(dst, dport, 0, 0),
        }
    } else {
        let src = line.ipv4()?;
        let dst = line.ipv4()?;
        let (sport, dport) = (line.port(b' ')?, line.port(b'\r')?);
        Addresses::Ipv4 {
            src: SocketAddrV4::new(src, sport),
            dst: SocketAddrV4::new(dst, dport),
        }
    };
    line.expect(b'\n')?;
    let len = buf.len() - line.rest.len();
    (len <= V1_MAX_LEN).then_some(Header {
        version: Version::V1,
        command: Command::Proxy,
        transport: Transport::Stream,
        addresses,
        tlvs: &[],
        len,
    })
}

/// The unread rest of a line, for [`fast_path`].
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.byte()? == want).then_some(())
    }

    /// Up to the next space, which is consumed.
    fn field(&mut self) -> Option<&'a [u8]> {
        let window = &self.rest[..self.rest.len().min(46)];
        let end = window.iter().position(|&b| b == b' ')?;
        let (field, rest) = self.rest.split_at(end);
        self.rest = &rest[1..];
        Some(field)
    }

    /// A dotted quad without leading zeros, then a space (consumed).
    fn ipv4(&mut self) -> Option<core::net::Ipv4Addr> {
        let (ip, len) = ipv4_prefix(self.rest, false)?;
        self.rest = self.rest.get(len..)?;
        self.expect(b' ')?;
        Some(ip)
    }

    /// A port without sign or leading zero, then `end` (consumed).
    fn port(&mut self, end: u8) -> Option<u16> {
        let (value, len) = decimal_prefix(self.rest, 5, false)?;
        self.rest = self.rest.get(len..)?;
        self.expect(end)?;
        u16::try_from(value).ok()
    }
}

/// Checks a whole line (without CRLF), or, when `complete` is false, the beginning of one: then
/// the last field may be cut short, but must still be able to become valid.
fn check_line<'a>(
    line: &[u8],
    complete: bool,
    lenient: bool,
) -> Result<(Transport, Addresses<'a>), Error> {
    const PENDING: (Transport, Addresses<'static>) = (Transport::Unspec, Addresses::Unspec);
    let after_proxy = &line[line.len().min(PROXY.len())..];
    let Some((&sep, body)) = after_proxy.split_first() else {
        return if complete {
            Err(Error::V1("no protocol after PROXY"))
        } else {
            Ok(PENDING)
        };
    };
    if sep != b' ' {
        return Err(Error::V1("PROXY must be followed by one space"));
    }
    let (proto, fields) = match body.iter().position(|&b| b == b' ') {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    if fields.is_none() && !complete {
        return match [TCP4, TCP6, UNKNOWN].iter().any(|w| w.starts_with(proto)) {
            true => Ok(PENDING),
            false => Err(Error::V1("protocol must be TCP4, TCP6 or UNKNOWN")),
        };
    }
    let v6 = match proto {
        // The specification: whatever follows UNKNOWN up to the CRLF is to be ignored.
        UNKNOWN => return Ok(PENDING),
        TCP4 => false,
        TCP6 => true,
        _ => return Err(Error::V1("protocol must be TCP4, TCP6 or UNKNOWN")),
    };
    let Some(fields) = fields else {
        return Err(Error::V1("no addresses after the protocol"));
    };

    let mut parts: [&[u8]; 4] = [&[]; 4];
    let mut count = 0;
    for part in fields.split(|&b| b == b' ') {
        if count == 4 {
            return Err(Error::V1("extra field after the destination port"));
        }
        parts[count] = part;
        count += 1;
    }
    let ip = |s: &[u8]| -> Option<IpAddr> {
        match (v6, lenient) {
            (false, false) => parse_ipv4(s, false).map(IpAddr::V4),
            (true, false) => parse_ipv6(s).map(IpAddr::V6),
            (_, true) => parse_ipv4(s, true)
                .map(IpAddr::V4)
                .or_else(|| parse_ipv6(s).map(IpAddr::V6)),
        }
    };
    let port = |s: &[u8]| parse_port(s, lenient);
    if !complete {
        // Every field but the last is whole; the last is cut and only has to be a valid start.
        for (i, part) in parts[..count].iter().enumerate() {
            let is_ip = i < 2;
            let whole = i + 1 < count;
            let ok = match (whole, is_ip) {
                (true, true) => ip(part).is_some(),
                (true, false) => port(part).is_some(),
                (false, true) => can_complete(part, |s| ip(s).is_some()),
                (false, false) => can_complete(part, |s| port(s).is_some()),
            };
            if !ok {
                return Err(field_error(i, v6, part.is_empty()));
            }
        }
        return Ok(PENDING);
    }
    if count < 4 {
        return Err(Error::V1("fewer than four address and port fields"));
    }
    let bad = |i: usize| field_error(i, v6, parts[i].is_empty());
    let src = ip(parts[0]).ok_or_else(|| bad(0))?;
    let dst = ip(parts[1]).ok_or_else(|| bad(1))?;
    let sport = port(parts[2]).ok_or_else(|| bad(2))?;
    let dport = port(parts[3]).ok_or_else(|| bad(3))?;
    let addresses = match (v6, src, dst) {
        (false, IpAddr::V4(s), IpAddr::V4(d)) => Addresses::Ipv4 {
            src: SocketAddrV4::new(s, sport),
            dst: SocketAddrV4::new(d, dport),
        },
        // Only reachable in lenient mode: nginx 1.22 writes mixed-family lines; carry them as
        // IPv6 with the IPv4 side v4-mapped, the one form that holds both.
        (_, s, d) => Addresses::Ipv6 {
            src: SocketAddrV6::new(ip_to_v6(s), sport, 0, 0),
            dst: SocketAddrV6::new(ip_to_v6(d), dport, 0, 0),
        },
    };
    Ok((Transport::Stream, addresses))
}

fn field_error(index: usize, v6: bool, empty: bool) -> Error {
    Error::V1(match (index, v6, empty) {
        (_, _, true) => "fields must be separated by exactly one space",
        (0, false, _) => "source is not a dotted-quad IPv4 address",
        (1, false, _) => "destination is not a dotted-quad IPv4 address",
        (0, true, _) => "source is not an IPv6 address",
        (1, true, _) => "destination is not an IPv6 address",
        (2, ..) => "source port is not a number from 0 to 65535 without sign or leading zero",
        _ => "destination port is not a number from 0 to 65535 without sign or leading zero",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Parser, parse_v1};
    use core::net::SocketAddr;

    fn ok(line: &str) -> Header<'_> {
        match parse_v1(line.as_bytes()) {
            Ok(Status::Complete(h)) => h,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    fn err(line: &str) -> Error {
        match parse_v1(line.as_bytes()) {
            Err(e) => e,
            other => panic!("{line:?} should fail, got {other:?}"),
        }
    }

    fn sock(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_specification_examples() {
        let h = ok("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n");
        assert_eq!(
            (h.source(), h.destination()),
            (sock("192.168.0.1:56324"), sock("192.168.0.11:443"))
        );
        assert_eq!(h.len(), 47);
        assert_eq!(
            (h.version(), h.transport()),
            (Version::V1, Transport::Stream)
        );

        let worst4 = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
        assert_eq!(ok(worst4).len(), 56);
        let f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let worst6 = std::format!("PROXY TCP6 {f} {f} 65535 65535\r\n");
        assert_eq!(worst6.len(), 104);
        assert_eq!(
            ok(&worst6).source(),
            sock("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")
        );
        let unknown = ok("PROXY UNKNOWN\r\n");
        assert_eq!(
            (unknown.addresses(), unknown.transport(), unknown.len()),
            (Addresses::Unspec, Transport::Unspec, 15)
        );
        assert_eq!(unknown.source(), None);
        let long_unknown = std::format!("PROXY UNKNOWN {f} {f} 65535 65535\r\n");
        assert_eq!(long_unknown.len(), 107);
        assert_eq!(ok(&long_unknown).addresses(), Addresses::Unspec);
    }

    #[test]
    fn ipv6_text_forms() {
        assert_eq!(
            ok("PROXY TCP6 2001:db8::1 2001:db8::80 1 2\r\n").source(),
            sock("[2001:db8::1]:1")
        );
        let mapped = ok("PROXY TCP6 ::ffff:192.0.2.1 ::1 56324 443\r\n");
        assert_eq!(mapped.source(), sock("[::ffff:192.0.2.1]:56324"));
        assert_eq!(
            ok("PROXY TCP6 2001:DB8:0:0:0:0:0:1 :: 0 0\r\n").destination(),
            sock("[::]:0")
        );
    }

    #[test]
    fn crlf_rules() {
        assert_eq!(
            err("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
            Error::V1("line feed without a carriage return before it")
        );
        assert_eq!(
            err("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"),
            Error::V1("carriage return without a line feed after it")
        );
        assert_eq!(
            err("PROXY UNKNOWN\n"),
            Error::V1("line feed without a carriage return before it")
        );
        // No CRLF within 107 bytes: refused at 107 bytes, without waiting for more.
        let long = std::format!("PROXY UNKNOWN {}", "x".repeat(93));
        assert_eq!(long.len(), 107);
        assert_eq!(err(&long), Error::V1("no CRLF within the first 107 bytes"));
        assert_eq!(
            err(&std::format!("{long}\r\n")),
            Error::V1("no CRLF within the first 107 bytes")
        );
        // A CR as the 107th byte cannot be followed by an LF inside the limit.
        let cr_last = std::format!("PROXY UNKNOWN {}\r", "x".repeat(92));
        assert_eq!(cr_last.len(), 107);
        assert_eq!(
            err(&cr_last),
            Error::V1("no CRLF within the first 107 bytes")
        );
        let max = std::format!("PROXY UNKNOWN {}\r\n", "x".repeat(91));
        assert_eq!(ok(&max).len(), 107);
    }

    #[test]
    fn separators_and_words() {
        for bad in [
            "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
            "PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            "PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            "PROXY TCP4\r\n",
            "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
            "PROXY TCP 1.2.3.4 5.6.7.8 1 2\r\n",
            "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            "PROXY UNKNOWNX\r\n",
            "PROXY unknown\r\n",
            "PROXY\r\n",
            "PROXY \r\n",
        ] {
            assert!(matches!(err(bad), Error::V1(_)), "{bad:?}");
        }
        for not_proxy in [
            "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            "PROXZ",
            "GET / HTTP/1.1\r\n",
        ] {
            assert_eq!(err(not_proxy), Error::NotProxy, "{not_proxy:?}");
        }
    }

    #[test]
    fn ports_and_octets() {
        for bad in [
            "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999999999\r\n",
            "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n",
            "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        ] {
            assert!(matches!(err(bad), Error::V1(_)), "{bad:?}");
        }
        assert_eq!(
            ok("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n").destination(),
            sock("255.255.255.255:65535")
        );
    }

    #[test]
    fn families_must_match_unless_lenient() {
        let mixed = "PROXY TCP6 2001:db8::1 127.0.0.1 56324 443\r\n";
        let v6_under_tcp4 = "PROXY TCP4 2001:db8::1 127.0.0.1 56324 443\r\n";
        let v4_under_tcp6 = "PROXY TCP6 192.0.2.1 127.0.0.1 56324 443\r\n";
        let zeros = "PROXY TCP4 010.000.002.001 127.0.0.1 0080 443\r\n";
        for strict_bad in [mixed, v6_under_tcp4, v4_under_tcp6, zeros] {
            assert!(matches!(err(strict_bad), Error::V1(_)), "{strict_bad:?}");
        }
        let lenient = Parser::new().lenient_v1(true);
        let get = |line: &'static str| lenient.parse(line.as_bytes()).unwrap().complete().unwrap();
        assert_eq!(get(mixed).destination(), sock("[::ffff:127.0.0.1]:443"));
        assert_eq!(get(v6_under_tcp4).source(), sock("[2001:db8::1]:56324"));
        assert_eq!(
            get(v4_under_tcp6).source(),
            sock("[::ffff:192.0.2.1]:56324")
        );
        assert_eq!(get(zeros).source(), sock("10.0.2.1:80"));
        assert!(
            lenient
                .parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n")
                .is_err()
        );
    }

    #[test]
    fn invalid_as_soon_as_the_prefix_proves_it() {
        for prefix in [
            "PROXY TCP5",
            "PROXY TCP4 256",
            "PROXY TCP4 1.2.3.4  ",
            "PROXY TCP4 1.2.3.4 5.6.7.8 65536",
            "PROXY TCP4 1.2.3.4 5.6.7.8 0",
            "PROXY TCP4 1.2.3.4 5.6.7.8 01",
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ",
            "PROXY TCP6 1.2.3.4 ",
            "PROXY TCP6 2001:::",
            "PROXY X",
            "PROXYX",
        ] {
            match parse_v1(prefix.as_bytes()) {
                Err(Error::V1(_)) => {}
                // "PROXY TCP4 1.2.3.4 5.6.7.8 0" can still become "… 0 2": only the next byte decides.
                Ok(Status::Partial(_)) if prefix.ends_with(" 0") => {}
                other => panic!("{prefix:?}: {other:?}"),
            }
        }
        assert!(matches!(
            parse_v1(b"PROXY TCP4 1.2.3.4 5.6.7.8 0X"),
            Err(Error::V1(_))
        ));
        assert_eq!(
            parse_v1(b"PROXY UNKNOWN\r"),
            Ok(Status::Partial(Needed::exactly(1)))
        );
        assert_eq!(parse_v1(b"PROX"), Ok(Status::Partial(Needed::at_least(11))));
        assert_eq!(
            parse_v1(b"PROXY TCP4 192.0.2.1"),
            Ok(Status::Partial(Needed::Unknown))
        );
    }
}
