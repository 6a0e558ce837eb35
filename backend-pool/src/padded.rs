//! A value alone on its cache line(s), so threads writing it do not slow down threads writing or
//! reading its neighbours (false sharing). 128 bytes: Intel fetches lines in adjacent pairs.

#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);
