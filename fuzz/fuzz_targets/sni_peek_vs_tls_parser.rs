//! Differential against tls-parser on single-record ClientHellos: whenever both accept, the server
//! name and ALPN protocols agree (after our documented normalisation: lowercase, no trailing dot,
//! IP literals are no name, GREASE ALPN values skipped).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sni_peek::{Limits, Status};
use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_extensions, parse_tls_plaintext,
};

fn is_grease(p: &[u8]) -> bool {
    matches!(*p, [a, b] if a == b && a & 0x0f == 0x0a)
}

fuzz_target!(|data: &[u8]| {
    let Ok(Status::Complete(ours)) = sni_peek::tls::parse(data, &mut [], &Limits::default()) else {
        return;
    };
    if ours.is_sslv2() || ours.record_count() != 1 {
        return;
    }
    let Ok((_, plain)) = parse_tls_plaintext(data) else {
        return;
    };
    let Some(TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello))) = plain.msg.first()
    else {
        return;
    };
    let Ok((rest, exts)) = parse_tls_extensions(hello.ext.unwrap_or_default()) else {
        return;
    };
    if !rest.is_empty() {
        return;
    }
    let mut names = Vec::new();
    let mut alpn: Vec<&[u8]> = Vec::new();
    for ext in &exts {
        match ext {
            TlsExtension::SNI(list) => {
                names.extend(list.iter().filter(|(t, _)| t.0 == 0).map(|(_, n)| *n))
            }
            TlsExtension::ALPN(list) => alpn.extend(list.iter().filter(|p| !is_grease(p))),
            _ => {}
        }
    }
    let our_alpn: Vec<&[u8]> = ours.alpn().collect();
    assert_eq!(our_alpn, alpn);
    match (ours.server_name(), names.as_slice()) {
        (None, []) => {}
        (Some(ours), [theirs]) => {
            let theirs = theirs.strip_suffix(b".").unwrap_or(theirs);
            assert_eq!(ours.as_bytes(), theirs.to_ascii_lowercase());
        }
        (None, [theirs]) => {
            // Only an IP literal may be dropped.
            let text = std::str::from_utf8(theirs).expect("dropped name is text");
            let text = text.strip_suffix('.').unwrap_or(text);
            assert!(text.parse::<std::net::IpAddr>().is_ok(), "{text:?} dropped");
        }
        (ours, theirs) => panic!("ours {ours:?}, tls-parser {theirs:?}"),
    }
});
