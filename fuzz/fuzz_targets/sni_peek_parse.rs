//! Arbitrary bytes through `sni_peek::peek`: never a panic, and what it reports is coherent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sni_peek::{Detected, Limits, Needed, Status, peek};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    // A scratch too small for some hellos must give an error, never a panic.
    for scratch_len in [limits.scratch_len(), 64] {
        let mut scratch = vec![0u8; scratch_len];
        match peek(data, &mut scratch, &limits) {
            Ok(Status::Complete(d)) => {
                let summary = d.summary();
                assert!(summary.consumed <= data.len());
                if let Some(host) = summary.host {
                    assert!(!host.as_str().is_empty());
                    assert!(!host.as_bytes().iter().any(u8::is_ascii_uppercase));
                }
                if let Detected::Tls(h) = d {
                    assert!(h.alpn().all(|p| !p.is_empty()));
                }
            }
            Ok(Status::Partial(Needed::Exactly(n) | Needed::AtLeast(n))) => assert!(n.get() <= 1 << 25),
            Ok(Status::Partial(Needed::Unknown)) | Err(_) => {}
        }
    }
});
