//! Arbitrary bytes into the IPv4 → IPv6 translator: never a panic, a short buffer reported as such,
//! and whatever it claims to have emitted is well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "nat64_xlat_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::check(data, common::Direction::FourToSix);
});
