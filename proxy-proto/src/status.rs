//! "Need more bytes" is an answer, not an error.

/// The outcome of parsing the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// A whole header was found.
    Complete(T),
    /// Every byte so far is a valid beginning; read more and parse the grown buffer again.
    Partial(Needed),
}

impl<T> Status<T> {
    /// The value if complete.
    pub fn complete(self) -> Option<T> {
        match self {
            Status::Complete(t) => Some(t),
            Status::Partial(_) => None,
        }
    }
}

/// How many more bytes a [`Status::Partial`] needs, as far as the format tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needed {
    /// Exactly this many more: the v2 length field has been read.
    Exactly(usize),
    /// At least this many more: the shortest possible header is longer than what we have.
    AtLeast(usize),
    /// At least one more; v1 ends at a CRLF whose position nothing announces.
    Unknown,
}

impl Needed {
    /// The fewest bytes worth waiting for before parsing again (1 when unknown).
    pub fn min(self) -> usize {
        match self {
            Needed::Exactly(n) | Needed::AtLeast(n) => n,
            Needed::Unknown => 1,
        }
    }
}
