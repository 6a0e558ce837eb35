//! Every valid header, cut at every byte: each prefix is Partial, the whole is the same header.

mod common;

use proxy_proto::{Error, Needed, Parser, Status, parse, parse_v1, parse_v2};

#[test]
fn every_prefix_is_partial_and_the_whole_is_complete() {
    let roomy = Parser::new();
    for (name, bytes) in common::valid_headers() {
        let whole = roomy
            .parse(&bytes)
            .unwrap()
            .complete()
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!(whole.len(), bytes.len(), "{name}");
        for cut in 0..bytes.len() {
            match parse(&bytes[..cut]) {
                Ok(Status::Partial(needed)) => {
                    assert!(needed.min() >= 1, "{name} at {cut}");
                    assert!(
                        cut + needed.min() <= bytes.len(),
                        "{name} at {cut}: asks for too much: {needed:?}"
                    );
                    if let Needed::Exactly(n) = needed {
                        assert_eq!(cut + n.get(), bytes.len(), "{name} at {cut}");
                    }
                }
                other => panic!("{name} cut at {cut}: {other:?}"),
            }
        }
        // The application's bytes after it change nothing.
        let mut more = bytes.clone();
        more.extend_from_slice(b"\x16\x03\x01\x02\x00GET / HTTP/1.1\r\n");
        let with_more = parse(&more).unwrap().complete().unwrap();
        assert_eq!(with_more, whole, "{name}");
    }
}

#[test]
fn lenient_lines_split_anywhere() {
    let lenient = Parser::new().lenient_v1(true);
    for line in [
        &b"PROXY TCP6 2001:db8::1 127.0.0.1 56324 443\r\n"[..],
        b"PROXY TCP4 2001:db8::1 127.0.0.1 56324 443\r\n",
        b"PROXY TCP4 010.000.002.001 127.0.0.1 0080 443\r\n",
    ] {
        let whole = lenient.parse(line).unwrap().complete().unwrap();
        assert_eq!(whole.len(), line.len());
        for cut in 0..line.len() {
            assert!(
                matches!(lenient.parse(&line[..cut]), Ok(Status::Partial(_))),
                "{:?} at {cut}",
                core::str::from_utf8(line)
            );
        }
        assert!(parse(line).is_err(), "strict mode refuses it");
    }
}

#[test]
fn right_after_a_separator_is_still_partial() {
    let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    for (i, _) in line.iter().enumerate().filter(|(_, b)| **b == b' ') {
        assert!(
            matches!(parse_v1(&line[..=i]), Ok(Status::Partial(_))),
            "cut after byte {i}"
        );
    }
}

#[test]
fn the_version_entry_points_refuse_the_other_version() {
    let v1 = b"PROXY UNKNOWN\r\n";
    assert_eq!(parse_v2(v1), Err(Error::NotProxy));
    let v2 = &common::valid_headers()[6].1;
    assert_eq!(parse_v1(v2), Err(Error::NotProxy));
    for junk in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"\x16\x03\x01",
        b"SSH-2.0-",
        b"\0",
        b"\r\n\r\n\r",
    ] {
        assert_eq!(parse(junk), Err(Error::NotProxy), "{junk:?}");
    }
}
