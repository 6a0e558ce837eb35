//! A request head as the backend gets it: the client's lines as they came, less the forwarding
//! claims of an untrusted client, with our field last.
//!
//! X-Forwarded-For and Forwarded are both removed from an untrusted client, whichever the route
//! writes, so neither can be forged through us (and X-Forwarded-Proto when we write it). A trusted
//! client's list gets our entry appended to its last line, so a backend that reads one line —
//! nginx's `$http_forwarded` does — still sees the whole chain; with none, a line is added.
//! `Connection` options naming these fields are dropped: they would ask the backend to discard
//! what we wrote.

use core::fmt::Write as _;
use core::net::IpAddr;

use sni_peek::http1::HttpRequest;

use super::super::{ForwardedField, Forwarding};

/// Names that carry claims about earlier hops.
const XFF: &str = "x-forwarded-for";
const XFP: &str = "x-forwarded-proto";
const FORWARDED: &str = "forwarded";

/// Appends to `out` the head of `request` (parsed from the start of `input`) with the fields
/// `forwarding` asks for, for a client at `client`; with `drop_h2c`, without its offer to switch
/// to h2c (the `Upgrade` and `HTTP2-Settings` lines and their `Connection` options).
pub(crate) fn rewrite(
    input: &[u8],
    request: &HttpRequest<'_>,
    client: IpAddr,
    forwarding: &Forwarding,
    (trusted, drop_h2c): (bool, bool),
    out: &mut Vec<u8>,
) {
    let client = client.to_canonical();
    let ours = match forwarding.field {
        ForwardedField::XForwardedFor => XFF,
        ForwardedField::Forwarded => FORWARDED,
    };
    let end = request.fields_end();
    out.reserve(end + 128);
    // Most requests carry none of these fields: their head goes out as it came.
    if !request.has_forwarding_fields() && !request.connection_lists_fields() && !drop_h2c {
        out.extend_from_slice(&input[..end]);
        add_lines(request, client, forwarding, None, false, out);
        out.extend_from_slice(b"\r\n");
        return;
    }
    // Our field's last line, when the client's are kept: ours is appended to it.
    let last_ours = trusted
        .then(|| {
            request
                .fields()
                .filter(|f| f.name.eq_ignore_ascii_case(ours))
                .last()
        })
        .flatten()
        .map(|f| f.line.start);
    let mut proto_kept = false;
    let mut copied = 0;
    for field in request.fields() {
        let name = field.name;
        let forwarding_claim = [XFF, FORWARDED, XFP]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n));
        let is_proto = name.eq_ignore_ascii_case(XFP);
        let h2c_offer = drop_h2c && H2C_OFFER.iter().any(|n| name.eq_ignore_ascii_case(n));
        let dropped = forwarding_claim && !trusted || h2c_offer;
        let appended = last_ours == Some(field.line.start);
        let connection = name.eq_ignore_ascii_case("connection")
            && options(field.value).any(|o| is_claim(o) || drop_h2c && is_h2c_option(o));
        proto_kept |= trusted && is_proto;
        if !(dropped || appended || connection) {
            continue;
        }
        out.extend_from_slice(&input[copied..field.line.start]);
        copied = field.line.end;
        if appended {
            out.extend_from_slice(&input[field.line.start..field.line.end - 2]);
            // Trailing whitespace is part of the line, not of the value: drop it before ours.
            while out.last().is_some_and(|b| matches!(b, b' ' | b'\t')) {
                out.pop();
            }
            // An empty list, or one ending in a comma, takes ours without another comma.
            match out.last() {
                Some(b':') | Some(b',') => out.push(b' '),
                _ => out.extend_from_slice(b", "),
            }
            push_value(request, client, forwarding, out);
            out.extend_from_slice(b"\r\n");
        } else if connection {
            let line = &input[field.line.clone()];
            keep_other_options(
                line,
                field.value,
                |o| !(is_claim(o) || drop_h2c && is_h2c_option(o)),
                out,
            );
        }
    }
    out.extend_from_slice(&input[copied..end]);
    add_lines(request, client, forwarding, last_ours, proto_kept, out);
    out.extend_from_slice(b"\r\n");
}

/// Our lines at the end of the head: the field (unless appended to the client's) and the proto.
fn add_lines(
    request: &HttpRequest<'_>,
    client: IpAddr,
    forwarding: &Forwarding,
    appended_at: Option<usize>,
    proto_kept: bool,
    out: &mut Vec<u8>,
) {
    if appended_at.is_none() {
        out.extend_from_slice(match forwarding.field {
            ForwardedField::XForwardedFor => b"X-Forwarded-For: ",
            ForwardedField::Forwarded => b"Forwarded: ",
        });
        push_value(request, client, forwarding, out);
        out.extend_from_slice(b"\r\n");
    }
    if forwarding.proto && forwarding.field == ForwardedField::XForwardedFor && !proto_kept {
        out.extend_from_slice(b"X-Forwarded-Proto: http\r\n");
    }
}

/// The client's entry: `192.0.2.1`, or RFC 7239's `for="[2001:db8::1]";proto=http;host=a`.
fn push_value(
    request: &HttpRequest<'_>,
    client: IpAddr,
    forwarding: &Forwarding,
    out: &mut Vec<u8>,
) {
    let mut text = String::with_capacity(64);
    match (forwarding.field, client) {
        (ForwardedField::XForwardedFor, ip) => {
            let _ = write!(text, "{ip}");
        }
        (ForwardedField::Forwarded, IpAddr::V4(ip)) => {
            let _ = write!(text, "for={ip}");
        }
        (ForwardedField::Forwarded, IpAddr::V6(ip)) => {
            let _ = write!(text, "for=\"[{ip}]\"");
        }
    }
    if forwarding.field == ForwardedField::Forwarded {
        if forwarding.proto {
            text.push_str(";proto=http");
        }
        if let Some(host) = request
            .fields()
            .find(|f| f.name.eq_ignore_ascii_case("host"))
        {
            // A validated authority: `:` and `[ ]` are not token characters, so it is quoted
            // when it has them; it has no `"` or `\` to escape.
            let host = core::str::from_utf8(host.value).unwrap_or_default();
            if !host.is_empty() {
                if host.bytes().any(|b| matches!(b, b':' | b'[' | b']')) {
                    let _ = write!(text, ";host=\"{host}\"");
                } else {
                    let _ = write!(text, ";host={host}");
                }
            }
        }
    }
    out.extend_from_slice(text.as_bytes());
}

/// The fields of an offer to switch to h2c.
const H2C_OFFER: [&str; 2] = ["upgrade", "http2-settings"];

fn is_h2c_option(option: &[u8]) -> bool {
    H2C_OFFER
        .iter()
        .any(|n| option.eq_ignore_ascii_case(n.as_bytes()))
}

fn is_claim(option: &[u8]) -> bool {
    [XFF, FORWARDED, XFP]
        .iter()
        .any(|n| option.eq_ignore_ascii_case(n.as_bytes()))
}

fn options(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|o| !o.is_empty())
}

/// A `Connection` line with only the options `keep` keeps; no line at all when none is left.
fn keep_other_options(line: &[u8], value: &[u8], keep: impl Fn(&[u8]) -> bool, out: &mut Vec<u8>) {
    let mut kept = options(value).filter(|o| keep(o)).peekable();
    if kept.peek().is_none() {
        return;
    }
    let colon = line.iter().position(|&b| b == b':').unwrap_or(0);
    out.extend_from_slice(&line[..=colon]);
    out.push(b' ');
    for (i, option) in kept.enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(option);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxy_proto::Cidr;
    use sni_peek::{Limits, Status};

    fn rewritten(head: &str, client: &str, field: ForwardedField, trusted: bool) -> String {
        let forwarding = Forwarding {
            field,
            proto: true,
            trust_from: Vec::<Cidr>::new(),
        };
        let Ok(Status::Complete(request)) =
            sni_peek::http1::parse(head.as_bytes(), &Limits::default())
        else {
            panic!("not a request: {head:?}");
        };
        let mut out = Vec::new();
        let ip = client.parse().unwrap();
        let h2c = head.contains("h2c");
        rewrite(
            head.as_bytes(),
            &request,
            ip,
            &forwarding,
            (trusted, h2c),
            &mut out,
        );
        String::from_utf8(out).unwrap()
    }

    const XFF_FIELD: ForwardedField = ForwardedField::XForwardedFor;

    #[test]
    fn a_plain_request_gets_our_lines_last() {
        assert_eq!(
            rewritten(
                "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                "192.0.2.1",
                XFF_FIELD,
                false
            ),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n\r\n"
        );
        assert_eq!(
            rewritten(
                "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                "::ffff:192.0.2.1",
                XFF_FIELD,
                false
            ),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n\r\n"
        );
    }

    #[test]
    fn forwarded_quotes_ipv6_and_a_host_with_a_port() {
        assert_eq!(
            rewritten(
                "GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n",
                "2001:db8::1",
                ForwardedField::Forwarded,
                false
            ),
            "GET / HTTP/1.1\r\nHost: a.example:8080\r\nForwarded: for=\"[2001:db8::1]\";proto=http;host=\"a.example:8080\"\r\n\r\n"
        );
        assert_eq!(
            rewritten(
                "GET / HTTP/1.0\r\n\r\n",
                "192.0.2.1",
                ForwardedField::Forwarded,
                false
            ),
            "GET / HTTP/1.0\r\nForwarded: for=192.0.2.1;proto=http\r\n\r\n"
        );
    }

    #[test]
    fn an_untrusted_clients_claims_are_removed() {
        let head = "GET / HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\nHost: a\r\nforwarded: for=6.6.6.6\r\nX-Forwarded-Proto: https\r\nConnection: keep-alive, X-Forwarded-For\r\n\r\n";
        assert_eq!(
            rewritten(head, "192.0.2.1", XFF_FIELD, false),
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n\r\n"
        );
        let head =
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: forwarded\r\nForwarded: for=6.6.6.6\r\n\r\n";
        assert_eq!(
            rewritten(head, "192.0.2.1", ForwardedField::Forwarded, false),
            "GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=192.0.2.1;proto=http;host=a\r\n\r\n"
        );
    }

    #[test]
    fn an_offer_of_h2c_is_taken_out() {
        let head = "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings, keep-alive\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
        assert_eq!(
            rewritten(head, "192.0.2.1", XFF_FIELD, false),
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n\r\n"
        );
    }

    #[test]
    fn an_empty_or_comma_ended_trusted_list_takes_ours_alone() {
        let head = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For:\r\n\r\n";
        assert_eq!(
            rewritten(head, "10.0.0.1", XFF_FIELD, true),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n"
        );
        let head = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1,\r\n\r\n";
        assert!(
            rewritten(head, "10.0.0.1", XFF_FIELD, true)
                .contains("X-Forwarded-For: 1.1.1.1, 10.0.0.1\r\n")
        );
    }

    #[test]
    fn a_trusted_clients_list_is_appended_to() {
        let head = "GET / HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7 \r\nHost: a\r\nX-Forwarded-Proto: https\r\n\r\n";
        assert_eq!(
            rewritten(head, "10.0.0.1", XFF_FIELD, true),
            "GET / HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7, 10.0.0.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n\r\n"
        );
        let head = "GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=6.6.6.6\r\n\r\n";
        assert_eq!(
            rewritten(head, "10.0.0.1", ForwardedField::Forwarded, true),
            "GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=6.6.6.6, for=10.0.0.1;proto=http;host=a\r\n\r\n"
        );
    }
}
