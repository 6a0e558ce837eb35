//! Criterion benches comparing the sixgate crates with their peers; the benches live in `benches/`.
//! Run them with `cargo bench -p sixgate-benches`.
