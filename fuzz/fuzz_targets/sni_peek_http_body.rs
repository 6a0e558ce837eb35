//! HTTP/1 framing (issue 12): a body followed in one call, in two calls split anywhere, and a
//! byte at a time must end at the same byte or fail alike; request and response heads never
//! panic, a cut before their end is Partial, and the field lines they list lie inside the head.
//!
//! Input: a kind byte (the body's framing), two bytes of split point, a trailer cap, then the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sni_peek::http1::{self, Body, BodyReader, Progress};
use sni_peek::{Error, Limits, Status};

fn body_of(kind: u8) -> Body {
    match kind % 4 {
        0 => Body::Empty,
        // Lengths around the input's size, and one no input reaches.
        1 if kind >> 2 == 63 => Body::Length(u64::MAX),
        1 => Body::Length(u64::from(kind >> 2) * 67),
        2 => Body::Chunked,
        _ => Body::UntilClose,
    }
}

/// The input fed in the given pieces, stopping at the body's end as a caller would.
fn follow<'a>(
    body: Body,
    max_trailers: usize,
    pieces: impl Iterator<Item = &'a [u8]>,
) -> Result<Progress, Error> {
    let mut reader = BodyReader::new(body, max_trailers);
    let mut consumed = 0;
    for piece in pieces {
        let p = reader.advance(piece)?;
        assert!(p.consumed <= piece.len());
        // Until the end every byte given belongs to the body.
        assert!(
            p.done || p.consumed == piece.len(),
            "{p:?} of {}",
            piece.len()
        );
        consumed += p.consumed;
        if p.done {
            assert!(reader.is_done());
            // Done is final: later bytes are the next message's.
            assert_eq!(
                reader.advance(b"0\r\n\r\n"),
                Ok(Progress {
                    consumed: 0,
                    done: true
                })
            );
            return Ok(Progress {
                consumed,
                done: true,
            });
        }
    }
    Ok(Progress {
        consumed,
        done: reader.is_done(),
    })
}

fn bodies(body: Body, max_trailers: usize, cut: usize, input: &[u8]) {
    let whole = follow(body, max_trailers, [input].into_iter());
    if let Ok(p) = whole {
        assert!(p.consumed <= input.len());
    }
    let (a, b) = input.split_at(cut);
    let split = follow(body, max_trailers, [a, b].into_iter());
    assert_eq!(whole, split, "{body:?} cut at {cut}");
    // Every byte a cut: the state carried between calls is all there is.
    let bytes = follow(body, max_trailers, input.chunks(1));
    assert_eq!(whole, bytes, "{body:?} a byte at a time");
}

fn request(input: &[u8], cut: usize, limits: &Limits) {
    let Ok(Status::Complete(r)) = http1::parse(input, limits) else {
        return;
    };
    let end = r.consumed();
    assert!(end <= input.len());
    assert_eq!(&input[r.fields_end()..end], b"\r\n");
    let mut at = 0;
    for field in r.fields() {
        let line = &input[field.line.clone()];
        assert!(at <= field.line.start && field.line.end <= r.fields_end());
        assert!(line.starts_with(field.name.as_bytes()) && line.ends_with(b"\r\n"));
        assert!(!field.name.is_empty());
        at = field.line.end;
    }
    assert_eq!(http1::parse(&input[..end], limits), Ok(Status::Complete(r)));
    if cut < end {
        assert!(matches!(
            http1::parse(&input[..cut], limits),
            Ok(Status::Partial(_))
        ));
    }
    // The body that follows, as a proxy would read it next.
    let body = r.body();
    assert_ne!(body, Body::UntilClose);
    if let Ok(p) = follow(body, 16 * 1024, [&input[end..]].into_iter()) {
        assert!(p.consumed <= input.len() - end);
    }
}

fn response(input: &[u8], cut: usize, limits: &Limits) {
    let Ok(Status::Complete(r)) = http1::parse_response(input, limits) else {
        return;
    };
    let end = r.consumed();
    assert!(end <= input.len());
    assert!((100..=999).contains(&r.status()));
    assert_eq!(
        http1::parse_response(&input[..end], limits),
        Ok(Status::Complete(r))
    );
    if cut < end {
        assert!(matches!(
            http1::parse_response(&input[..cut], limits),
            Ok(Status::Partial(_))
        ));
    }
    for method in ["GET", "HEAD", "CONNECT"] {
        let _ = r.body(method);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[kind, hi, lo, cap], input)) = data.split_first_chunk::<4>() else {
        return;
    };
    let cut = usize::from(u16::from_be_bytes([hi, lo])) % (input.len() + 1);
    let max_trailers = if cap == u8::MAX {
        16 * 1024
    } else {
        usize::from(cap)
    };
    bodies(body_of(kind), max_trailers, cut, input);
    // Heads small enough to meet the size cap too.
    let limits = Limits::default();
    let small = Limits {
        max_header_len: 64,
        ..Limits::default()
    };
    for limits in [&limits, &small] {
        request(input, cut, limits);
        response(input, cut, limits);
    }
});
