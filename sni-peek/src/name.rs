//! Host names as routed on: checked in place while parsing, copied out lowercased on request.
//!
//! Parse results keep the validated slice (small, cheap to return); [`HostName`] is the lowercased
//! copy, stored inline because there is no allocator and no lowercase slice to borrow (nor, for a
//! Huffman-coded h2 `:authority`, any decoded slice at all).

use core::fmt;
use core::net::IpAddr;

use crate::Error;

/// The longest DNS name in text form, without the trailing dot (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 253;

/// A host name: ASCII letters, digits, `-`, `_` and dots, lowercased, one trailing dot removed.
/// No label starts or ends with `-` (RFC 952, RFC 1123 §2.1; `xn--` labels are unaffected), since
/// no such name can be registered and backends differ on whether they accept one.
///
/// From an HTTP Host or `:authority` it may also be an IP literal (`192.0.2.1`, or `2001:db8::1`
/// without its brackets); a TLS server name never is (RFC 6066 §3 forbids literals there, so one is
/// reported as no name). `xn--` labels are kept as sent: no IDNA processing.
#[derive(Clone, Copy)]
pub struct HostName {
    len: u8,
    buf: [u8; MAX_NAME_LEN],
}

impl HostName {
    /// Checks and normalises a name given as text — a configured route, say — with the rules
    /// the peeker applies to the names it extracts, so the two compare equal exactly when they
    /// should: one trailing dot removed, ASCII lowercased, then 1 to 253 bytes of letters,
    /// digits, `-` and `_` in labels of 1 to 63 bytes that neither start nor end with `-`.
    ///
    /// `xn--` labels are kept as given (no IDNA: pass an IDN in its `xn--` form); a non-ASCII
    /// byte is an error. An IPv4 literal is valid name text and is kept as such (an HTTP Host
    /// of `192.0.2.1` gives the same name); an IPv6 literal, bracketed or not, is refused. The
    /// error is [`Error::InvalidName`], saying which rule was broken.
    ///
    /// ```
    /// use sni_peek::HostName;
    ///
    /// let name = HostName::new("WWW.Example.COM.")?;
    /// assert_eq!(name, "www.example.com");
    /// assert!(HostName::new("-bad.example").is_err());
    /// assert!("xn--bcher-kva.example".parse::<HostName>().is_ok());
    /// # Ok::<(), sni_peek::Error>(())
    /// ```
    pub fn new(name: &str) -> Result<HostName, Error> {
        let raw = name.as_bytes();
        let raw = raw.strip_suffix(b".").unwrap_or(raw);
        check_text(raw)?;
        Ok(HostName::from_checked(raw))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored, so this cannot fail; an empty fallback keeps it panic-free.
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The name as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// The address, when the name is an IP literal (only from HTTP).
    pub fn ip(&self) -> Option<IpAddr> {
        self.as_str().parse().ok()
    }

    /// [`check_dns`] then [`Self::from_checked`], for the tests.
    #[cfg(test)]
    pub(crate) fn dns(raw: &[u8]) -> Result<Option<HostName>, Error> {
        Ok(check_dns(raw)?.map(HostName::from_checked))
    }

    /// Copies a name that [`check_dns`] or [`check_authority`] accepted, lowercased.
    #[inline]
    pub(crate) fn from_checked(raw: &[u8]) -> HostName {
        let mut name = HostName {
            len: 0,
            buf: [0; MAX_NAME_LEN],
        };
        let n = raw.len().min(MAX_NAME_LEN);
        let slot = &mut name.buf[..n];
        slot.copy_from_slice(&raw[..n]);
        slot.make_ascii_lowercase();
        name.len = n as u8;
        name
    }

    /// Builds a name from decoded bytes that are appended piecewise (HPACK Huffman output).
    pub(crate) fn builder() -> NameBuilder {
        NameBuilder {
            len: 0,
            buf: [0; MAX_NAME_LEN + 8],
        }
    }
}

/// Collects the bytes of an authority before it is split and validated; longer input is an error.
#[derive(Debug)]
pub(crate) struct NameBuilder {
    len: usize,
    // A 253-byte name and ":65535" fit; anything longer cannot be a valid authority.
    buf: [u8; MAX_NAME_LEN + 8],
}

impl NameBuilder {
    pub(crate) fn push(&mut self, b: u8) -> Result<(), Error> {
        let slot = self.buf.get_mut(self.len).ok_or(Error::InvalidName {
            reason: "longer than 253 bytes",
        })?;
        *slot = b;
        self.len += 1;
        Ok(())
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Validates a TLS server name without copying it: the name without one trailing dot, or `None`
/// for an IP literal.
pub(crate) fn check_dns(raw: &[u8]) -> Result<Option<&[u8]>, Error> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    if is_ip_literal(raw) {
        return Ok(None);
    }
    check_text(raw)?;
    Ok(Some(raw))
}

/// Byte classes of host name text.
const INVALID: u8 = 0;
const LABEL: u8 = 1;
const DOT: u8 = 2;
const NON_ASCII: u8 = 3;
const HYPHEN: u8 = 4;

/// The class of every byte, so that checking a name is one lookup per byte.
const CLASS: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => LABEL,
            b'-' => HYPHEN,
            b'.' => DOT,
            0x80.. => NON_ASCII,
            _ => INVALID,
        };
        b += 1;
    }
    t
};

/// The DNS text rules: 1 to 253 bytes of letters, digits, `-` and `_`, in labels of 1 to 63 that
/// neither start nor end with `-`.
fn check_text(raw: &[u8]) -> Result<(), Error> {
    const EDGE_HYPHEN: Error = Error::InvalidName {
        reason: "label starts or ends with '-'",
    };
    if raw.is_empty() {
        return Err(Error::InvalidName { reason: "empty" });
    }
    if raw.len() > MAX_NAME_LEN {
        return Err(Error::InvalidName {
            reason: "longer than 253 bytes",
        });
    }
    let mut label = 0usize;
    let mut last = 0u8;
    for &b in raw {
        match CLASS[usize::from(b)] {
            LABEL | HYPHEN => {
                if label == 0 && b == b'-' {
                    return Err(EDGE_HYPHEN);
                }
                label += 1;
                if label > 63 {
                    return Err(Error::InvalidName {
                        reason: "label longer than 63 bytes",
                    });
                }
            }
            DOT if last == b'-' => return Err(EDGE_HYPHEN),
            DOT if label > 0 => label = 0,
            DOT => {
                return Err(Error::InvalidName {
                    reason: "empty label",
                });
            }
            NON_ASCII => {
                return Err(Error::InvalidName {
                    reason: "non-ASCII byte (IDNs must be sent as xn-- labels)",
                });
            }
            _ => {
                return Err(Error::InvalidName {
                    reason: "character not allowed in a host name",
                });
            }
        }
        last = b;
    }
    if last == b'-' {
        return Err(EDGE_HYPHEN);
    }
    if label == 0 {
        // Only reachable for a name that ended in two dots: one was stripped already.
        return Err(Error::InvalidName {
            reason: "empty label",
        });
    }
    Ok(())
}

fn is_ip_literal(raw: &[u8]) -> bool {
    // Cheap pre-check: only hex digits, dots and colons can spell an IP literal.
    let looks_numeric = raw
        .iter()
        .all(|b| b.is_ascii_hexdigit() || *b == b'.' || *b == b':');
    looks_numeric
        && core::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .is_some()
}

/// Splits an authority (`host`, `host:port`, `[v6]`, `[v6]:port`), validates both parts, and
/// copies the host lowercased.
pub(crate) fn split_authority(raw: &[u8]) -> Result<(HostName, Option<u16>), Error> {
    let (host, port) = check_authority(raw)?;
    Ok((HostName::from_checked(host), port))
}

/// Splits and validates an authority without copying: the host (no brackets, no trailing dot)
/// and the port.
pub(crate) fn check_authority(raw: &[u8]) -> Result<(&[u8], Option<u16>), Error> {
    let (host, port) = if let Some(rest) = raw.strip_prefix(b"[") {
        let close = rest
            .iter()
            .position(|&b| b == b']')
            .ok_or(Error::InvalidName {
                reason: "unclosed '[' in IPv6 literal",
            })?;
        let port = match &rest[close + 1..] {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => {
                return Err(Error::InvalidName {
                    reason: "bytes after ']' that are not a port",
                });
            }
        };
        let host = &rest[..close];
        if !host.contains(&b':') {
            return Err(Error::InvalidName {
                reason: "brackets around a non-IPv6 host",
            });
        }
        if !core::str::from_utf8(host).is_ok_and(|h| h.parse::<core::net::Ipv6Addr>().is_ok()) {
            return Err(Error::InvalidName {
                reason: "not an IPv6 literal",
            });
        }
        (host, port)
    } else {
        let (host, port) = match raw.iter().position(|&b| b == b':') {
            None => (raw, None),
            Some(i) if raw[i + 1..].contains(&b':') => {
                return Err(Error::InvalidName {
                    reason: "IPv6 literal without brackets",
                });
            }
            Some(i) => (&raw[..i], Some(&raw[i + 1..])),
        };
        let host = host.strip_suffix(b".").unwrap_or(host);
        check_text(host)?;
        (host, port)
    };
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p)?),
    };
    Ok((host, port))
}

fn parse_port(raw: &[u8]) -> Result<u16, Error> {
    if raw.is_empty() || raw.len() > 5 {
        return Err(Error::InvalidPort);
    }
    let mut n: u32 = 0;
    for &b in raw {
        if !b.is_ascii_digit() {
            return Err(Error::InvalidPort);
        }
        n = n * 10 + u32::from(b - b'0');
    }
    u16::try_from(n).map_err(|_| Error::InvalidPort)
}

impl core::str::FromStr for HostName {
    type Err = Error;

    /// [`HostName::new`].
    fn from_str(s: &str) -> Result<Self, Error> {
        HostName::new(s)
    }
}

impl PartialEq for HostName {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for HostName {}

impl core::hash::Hash for HostName {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialEq<str> for HostName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for HostName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn dns(s: &str) -> Result<Option<HostName>, Error> {
        HostName::dns(s.as_bytes())
    }

    fn reason(r: Result<Option<HostName>, Error>) -> &'static str {
        match r {
            Err(Error::InvalidName { reason }) => reason,
            other => panic!("expected InvalidName, got {other:?}"),
        }
    }

    #[test]
    fn uppercase_is_lowercased_and_one_trailing_dot_stripped() {
        assert_eq!(dns("WWW.Example.COM.").unwrap().unwrap(), "www.example.com");
        assert_eq!(reason(dns("example.com..")), "empty label");
    }

    #[test]
    fn underscore_and_punycode_are_kept() {
        assert_eq!(dns("_acme.example").unwrap().unwrap(), "_acme.example");
        assert_eq!(
            dns("xn--bcher-kva.example").unwrap().unwrap(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn ip_literals_are_no_name() {
        assert_eq!(dns("192.0.2.1").unwrap(), None);
        assert_eq!(dns("2001:db8::1").unwrap(), None);
        assert_eq!(dns("192.0.2.1.").unwrap(), None);
        // Digits alone that are not an address are a (strange but valid) name.
        assert_eq!(dns("1234").unwrap().unwrap(), "1234");
    }

    #[test]
    fn invalid_names_each_say_why() {
        assert_eq!(reason(dns("")), "empty");
        assert_eq!(reason(dns(".")), "empty");
        assert_eq!(reason(dns("a..b")), "empty label");
        assert_eq!(reason(dns(".a")), "empty label");
        assert_eq!(reason(dns("a b")), "character not allowed in a host name");
        assert_eq!(reason(dns("a/b")), "character not allowed in a host name");
        assert_eq!(reason(dns("a\0b")), "character not allowed in a host name");
        assert_eq!(
            reason(dns("bücher.example")),
            "non-ASCII byte (IDNs must be sent as xn-- labels)"
        );
        for edge in ["-a.com", "a-.com", "a.-b.com", "a.b-", "-", "a.-"] {
            assert_eq!(reason(dns(edge)), "label starts or ends with '-'", "{edge}");
        }
        assert!(dns("a-b.c--d.xn--e").unwrap().is_some());
        let long_label = "a".repeat(64);
        assert_eq!(reason(dns(&long_label)), "label longer than 63 bytes");
        assert!(dns(&"a".repeat(63)).unwrap().is_some());
    }

    #[test]
    fn name_length_limit_is_253_without_the_dot() {
        let label = "a".repeat(63);
        let ok = [label.as_str(); 4].join(".")[..253].to_string();
        assert_eq!(dns(&ok).unwrap().unwrap().as_str().len(), 253);
        assert_eq!(
            dns(&(ok.clone() + ".")).unwrap().unwrap().as_str().len(),
            253
        );
        assert_eq!(reason(dns(&(ok + "a"))), "longer than 253 bytes");
    }

    #[test]
    fn new_uses_the_peekers_rules() {
        let new = |s: &str| HostName::new(s).map(Some);
        assert_eq!(new("WWW.Example.COM.").unwrap().unwrap(), "www.example.com");
        assert_eq!(new("_acme.example").unwrap().unwrap(), "_acme.example");
        assert_eq!(
            new("xn--bcher-kva.example").unwrap().unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(new("192.0.2.1").unwrap().unwrap(), "192.0.2.1");
        assert_eq!(
            reason(new("2001:db8::1")),
            "character not allowed in a host name"
        );
        assert_eq!(
            reason(new("[2001:db8::1]")),
            "character not allowed in a host name"
        );
        assert_eq!(
            reason(new("example.com:443")),
            "character not allowed in a host name"
        );
        // Every name the TLS path extracts, and every rejection, is the same through `new`.
        let label = "a".repeat(63);
        let long = [label.as_str(); 4].join(".")[..253].to_string();
        let cases = [
            "",
            ".",
            "a..b",
            ".a",
            "example.com..",
            "a b",
            "*.a",
            "bücher.example",
            "-a.com",
            "a-.com",
            "a.-b.com",
            "a-b.c--d.xn--e",
            &label,
            &(label.clone() + "a"),
            &long,
            &(long.clone() + "."),
            &(long.clone() + "a"),
            "Mixed.Case.",
        ];
        for case in cases {
            assert_eq!(new(case), dns(case), "{case:?}");
        }
        assert_eq!("A.b".parse::<HostName>(), HostName::new("a.b"));
    }

    #[test]
    fn authority_splits_port_and_brackets() {
        let (h, p) = split_authority(b"A.com:8080").unwrap();
        assert_eq!((h.as_str(), p), ("a.com", Some(8080)));
        let (h, p) = split_authority(b"[::1]:8080").unwrap();
        assert_eq!((h.as_str(), p), ("::1", Some(8080)));
        assert_eq!(h.ip(), Some("::1".parse().unwrap()));
        let (h, p) = split_authority(b"[2001:DB8::1]").unwrap();
        assert_eq!((h.as_str(), p), ("2001:db8::1", None));
        let (h, p) = split_authority(b"192.0.2.7").unwrap();
        assert_eq!((h.as_str(), p), ("192.0.2.7", None));
    }

    #[test]
    fn authority_errors() {
        let e = |s: &[u8]| split_authority(s).unwrap_err();
        assert_eq!(
            e(b"::1"),
            Error::InvalidName {
                reason: "IPv6 literal without brackets"
            }
        );
        assert_eq!(
            e(b"[::1"),
            Error::InvalidName {
                reason: "unclosed '[' in IPv6 literal"
            }
        );
        assert_eq!(
            e(b"[a.com]"),
            Error::InvalidName {
                reason: "brackets around a non-IPv6 host"
            }
        );
        assert_eq!(
            e(b"[::g]"),
            Error::InvalidName {
                reason: "not an IPv6 literal"
            }
        );
        assert_eq!(
            e(b"-a.com:443"),
            Error::InvalidName {
                reason: "label starts or ends with '-'"
            }
        );
        assert_eq!(e(b"a.com:"), Error::InvalidPort);
        assert_eq!(e(b"a.com:65536"), Error::InvalidPort);
        assert_eq!(e(b"a.com:8o"), Error::InvalidPort);
        assert_eq!(
            e(b"[::1]x"),
            Error::InvalidName {
                reason: "bytes after ']' that are not a port"
            }
        );
    }
}
