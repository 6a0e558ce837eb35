//! The proxy's request framer (X-Forwarded-For on every request): any byte stream, cut into any
//! pieces, with any answers to held upgrades, gives the same result as in one piece; it never
//! panics; and what it passes on is exactly a run of whole-headed requests of the input with
//! our field inserted — re-framing it passes it on unchanged, with no refusal, so no byte of a
//! refused request (or after it) went out, and no byte of an accepted one was lost.
#![no_main]

use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use sixgate::proxy::internal::{Flow, Refusal, Requests};
use sixgate::proxy::{ForwardedField, Forwarding};

/// What came out of one run: the bytes for the backend, how it ended.
fn run(input: &[u8], cuts: &[usize], answers: &[bool]) -> (Vec<u8>, Result<Flow, Refusal>) {
    let forwarding = Forwarding {
        proto: false,
        ..Forwarding::new(ForwardedField::XForwardedFor)
    };
    let mut requests = Requests::new("192.0.2.1".parse().unwrap(), &forwarding);
    let (mut sent, mut out) = (VecDeque::new(), Vec::new());
    let mut answers = answers.iter().cycle();
    let mut from = 0;
    let mut last = Ok(Flow::More);
    for to in cuts.iter().copied().chain([input.len()]) {
        let to = to.clamp(from, input.len());
        last = requests.feed(&input[from..to], &forwarding, &mut sent, &mut out);
        // A held request is answered before more bytes come, as the relay does.
        while last == Ok(Flow::Hold) {
            requests.answered(answers.next().copied().unwrap_or(false));
            last = requests.feed(&[], &forwarding, &mut sent, &mut out);
        }
        if !matches!(last, Ok(Flow::More)) {
            break;
        }
        from = to;
    }
    (out, last)
}

fuzz_target!(|data: (Vec<u8>, Vec<u16>, Vec<bool>)| {
    let (input, cuts, answers) = data;
    let mut cuts: Vec<usize> = cuts.into_iter().map(usize::from).collect();
    cuts.sort_unstable();
    let whole = run(&input, &[], &answers);
    let pieces = run(&input, &cuts, &answers);
    assert_eq!(whole, pieces, "pieces give another answer");
    // The field only ever goes into heads the framer accepted; an input that already names it
    // would have its own lines removed, so the comparison below is for the others.
    let lower = input.to_ascii_lowercase();
    if lower.windows(9).any(|w| w == b"forwarded") {
        return;
    }
    let (out, _) = whole;
    // Re-framed, our line is removed as an untrusted client's and written again in its place.
    let (again, flow) = run(&out, &[], &answers);
    assert!(flow.is_ok(), "what was passed on is refused: {flow:?}");
    assert_eq!(again, out, "re-framing changed what was passed on");
});
