//! A value alone on its cache line(s), so threads writing it do not slow down threads reading its
//! neighbours (false sharing). 128 bytes: Intel fetches lines in adjacent pairs.

use core::ops::Deref;

#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> Deref for Padded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}
