//! Split-point consistency: if the bytes hold a complete header, every shorter prefix is
//! Partial (never an error, never another header), and what Partial asks for is honest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_proto::{Needed, Parser, Status};

fuzz_target!(|data: &[u8]| {
    for parser in [Parser::new(), Parser::new().lenient_v1(true)] {
        match parser.parse(data) {
            Ok(Status::Complete(h)) => {
                for cut in 0..h.len() {
                    match parser.parse(&data[..cut]) {
                        Ok(Status::Partial(needed)) => {
                            assert!(cut + needed.min() <= h.len(), "asked for more than the header");
                            if let Needed::Exactly(n) = needed {
                                assert_eq!(cut + n.get(), h.len());
                            }
                        }
                        other => panic!("prefix of {cut} bytes of a valid header gave {other:?}"),
                    }
                }
            }
            // An error found in a prefix must stand for the whole input.
            Err(_) => {
                for cut in [data.len() / 2, data.len().saturating_sub(1)] {
                    if let Ok(Status::Complete(h)) = parser.parse(&data[..cut]) {
                        panic!("prefix parsed as {h:?} but the whole did not");
                    }
                }
            }
            Ok(Status::Partial(_)) => {}
        }
    }
});
