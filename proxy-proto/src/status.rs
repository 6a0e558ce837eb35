//! "Need more bytes" is an answer, not an error.

use core::num::NonZeroUsize;

/// The outcome of parsing the bytes received so far: done, or waiting for more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// Enough bytes were there.
    Complete(T),
    /// Every byte so far is a valid beginning; read more and parse the grown buffer again.
    Partial(Needed),
}

impl<T> Status<T> {
    /// The value, if complete.
    pub fn complete(self) -> Option<T> {
        match self {
            Status::Complete(t) => Some(t),
            Status::Partial(_) => None,
        }
    }

    /// True for [`Status::Complete`].
    pub fn is_complete(&self) -> bool {
        matches!(self, Status::Complete(_))
    }

    /// True for [`Status::Partial`].
    pub fn is_partial(&self) -> bool {
        matches!(self, Status::Partial(_))
    }

    /// How many more bytes are needed; `None` when complete.
    pub fn needed(&self) -> Option<Needed> {
        match self {
            Status::Complete(_) => None,
            Status::Partial(n) => Some(*n),
        }
    }

    /// Applies `f` to the complete value; a partial one passes through.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Status<U> {
        match self {
            Status::Complete(t) => Status::Complete(f(t)),
            Status::Partial(n) => Status::Partial(n),
        }
    }
}

/// How many more bytes a [`Status::Partial`] needs, as far as the format tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needed {
    /// Exactly this many more: a length field announced them.
    Exactly(NonZeroUsize),
    /// At least this many more: the shortest valid continuation is longer than what is here.
    AtLeast(NonZeroUsize),
    /// At least one more; nothing announces how many (a line ending, an HTTP/1 head).
    Unknown,
}

impl Needed {
    /// The fewest bytes worth waiting for before parsing again (1 when unknown).
    pub fn min(self) -> usize {
        match self {
            Needed::Exactly(n) | Needed::AtLeast(n) => n.get(),
            Needed::Unknown => 1,
        }
    }

    /// `Exactly(n)`, or `Unknown` for 0.
    pub(crate) fn exactly(n: usize) -> Needed {
        NonZeroUsize::new(n).map_or(Needed::Unknown, Needed::Exactly)
    }

    /// `AtLeast(n)`, or `Unknown` for 0.
    pub(crate) fn at_least(n: usize) -> Needed {
        NonZeroUsize::new(n).map_or(Needed::Unknown, Needed::AtLeast)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_helpers() {
        let done: Status<u8> = Status::Complete(7);
        assert!(done.is_complete() && !done.is_partial());
        assert_eq!(done.needed(), None);
        assert_eq!(done.complete(), Some(7));
        assert_eq!(done.map(u16::from), Status::Complete(7u16));

        let more: Status<u8> = Status::Partial(Needed::exactly(3));
        assert!(more.is_partial() && !more.is_complete());
        assert_eq!(more.needed(), Some(Needed::exactly(3)));
        assert_eq!(more.complete(), None);
        assert_eq!(more.map(u16::from), Status::Partial(Needed::exactly(3)));
    }

    #[test]
    fn needed_min_and_zero() {
        assert_eq!(Needed::exactly(3).min(), 3);
        assert_eq!(Needed::at_least(2).min(), 2);
        assert_eq!(Needed::Unknown.min(), 1);
        assert_eq!(Needed::exactly(0), Needed::Unknown);
        assert_eq!(Needed::at_least(0), Needed::Unknown);
        assert!(matches!(Needed::exactly(5), Needed::Exactly(n) if n.get() == 5));
        assert!(matches!(Needed::at_least(5), Needed::AtLeast(n) if n.get() == 5));
    }
}
