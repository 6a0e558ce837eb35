//! The same input cut short, and re-framed into smaller TLS records, must give the same answer:
//! every prefix before the decision point is Partial, and a hello's name and ALPN do not depend on
//! how its bytes were framed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sni_peek::internal::reframe;
use sni_peek::{Detected, Limits, Summary, Status, peek};

/// What must not change with framing: the summary without `consumed`, and the ALPN list.
fn answer(input: &[u8], limits: &Limits) -> Option<(Summary, Vec<Vec<u8>>)> {
    let mut scratch = vec![0u8; limits.scratch_len()];
    match peek(input, &mut scratch, limits) {
        Ok(Status::Complete(d)) => {
            let alpn = match d {
                Detected::Tls(h) => h.alpn().map(<[u8]>::to_vec).collect(),
                _ => Vec::new(),
            };
            Some((d.summary(), alpn))
        }
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, input)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_records: usize::MAX,
        ..Limits::default()
    };
    let Some((whole, alpn)) = answer(input, &limits) else {
        return;
    };
    if whole.protocol == sni_peek::Protocol::Unknown {
        return;
    }
    // A cut before the decision point is Partial.
    let cut = usize::from(knobs) * whole.consumed / 256;
    let mut scratch = vec![0u8; limits.scratch_len()];
    let prefix = peek(&input[..cut], &mut scratch, &limits);
    assert!(
        matches!(prefix, Ok(Status::Partial(_))),
        "cut {cut} of {}: {prefix:?}",
        whole.consumed
    );
    // Re-framed into records of 1..=16 bytes: the same name, ALPN and ECH flag.
    if whole.protocol == sni_peek::Protocol::Tls && input[0] == 22 {
        // Only the hello's own records: bytes after them are the stream's, not the hello's.
        let mut framed = reframe(&input[..whole.consumed], usize::from(knobs % 16) + 1);
        framed.extend_from_slice(&input[whole.consumed..]);
        let (again, alpn_again) = answer(&framed, &limits).expect("re-framed hello decides");
        assert_eq!(
            (again.host, again.ech, alpn_again),
            (whole.host, whole.ech, alpn)
        );
    }
});
