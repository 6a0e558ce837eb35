//! Relay buffers, lent per thread only while bytes are in flight: an idle connection holds none.
//! A thread keeps a few freed buffers for the next read instead of asking the allocator.

use core::cell::RefCell;
use core::ops::{Deref, DerefMut};

/// One buffer: enough for a TLS record, small enough to lend thousands.
pub(crate) const SIZE: usize = 16 * 1024;
/// Freed buffers a thread keeps: busy connections on one core rarely have more in flight.
const KEPT: usize = 64;

thread_local! {
    static FREE: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer on loan; it goes back to the current thread's free list when dropped.
pub(crate) struct Lent(Option<Box<[u8]>>);

/// A buffer of [`SIZE`] bytes (of whatever content: reads overwrite what they use).
pub(crate) fn lend() -> Lent {
    let kept = FREE.with(|free| free.borrow_mut().pop());
    Lent(Some(
        kept.unwrap_or_else(|| vec![0; SIZE].into_boxed_slice()),
    ))
}

impl Drop for Lent {
    fn drop(&mut self) {
        let Some(buffer) = self.0.take() else { return };
        // A thread being torn down has no list left: the buffer is simply freed.
        let _ = FREE.try_with(|free| {
            let mut free = free.borrow_mut();
            if free.len() < KEPT {
                free.push(buffer);
            }
        });
    }
}

impl Deref for Lent {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl DerefMut for Lent {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_lent_again() {
        let first = lend();
        let at = first.as_ptr();
        assert_eq!(first.len(), SIZE);
        drop(first);
        assert_eq!(lend().as_ptr(), at);
    }
}
