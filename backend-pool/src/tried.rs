//! The set of backends a request has already been given, held inline so retrying never allocates.

/// Most candidates one request can be given.
pub(crate) const CAPACITY: usize = 32;

/// Indices already handed out to one request, in a fixed inline array.
#[derive(Clone, Debug)]
pub(crate) struct Tried {
    items: [u32; CAPACITY],
    len: usize,
}

impl Tried {
    pub(crate) const fn new() -> Self {
        Self {
            items: [0; CAPACITY],
            len: 0,
        }
    }

    #[inline]
    pub(crate) fn contains(&self, index: u32) -> bool {
        self.items[..self.len].contains(&index)
    }

    /// False when full; the caller bounds attempts to `CAPACITY`, so that never happens.
    pub(crate) fn insert(&mut self, index: u32) -> bool {
        if self.len == CAPACITY {
            return false;
        }
        self.items[self.len] = index;
        self.len += 1;
        true
    }

    pub(crate) const fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_capacity_then_refuses() {
        let mut t = Tried::new();
        for i in 0..CAPACITY as u32 {
            assert!(!t.contains(i * 7));
            assert!(t.insert(i * 7));
            assert!(t.contains(i * 7));
        }
        assert!(!t.insert(1));
        assert_eq!(t.len(), CAPACITY);
        assert!(!t.contains(1));
    }
}
