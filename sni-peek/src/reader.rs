//! A bounds-checked cursor over length-prefixed data.
//!
//! Every read is checked once here, so the parsers above never index untrusted input. Running short
//! inside a `Reader` is always an error: whether more bytes may still arrive is decided only at the
//! outermost length (the record and handshake headers), before a `Reader` is made.

use crate::Error;

/// A cursor over a byte slice whose length is already known to be complete.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    /// Names the structure being read, for errors.
    layer: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], layer: &'static str) -> Self {
        Reader { buf, layer }
    }

    /// The next `n` bytes, or `Truncated` when the structure ends first.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        match self.buf.split_at_checked(n) {
            Some((head, tail)) => {
                self.buf = tail;
                Ok(head)
            }
            None => Err(Error::Truncated {
                layer: self.layer,
                required: n,
                got: self.buf.len(),
            }),
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A child reader over the next `n` bytes; running short inside it is an error in `layer`.
    pub(crate) fn sub(&mut self, n: usize, layer: &'static str) -> Result<Reader<'a>, Error> {
        Ok(Reader::new(self.take(n)?, layer))
    }

    /// A child reader over a body prefixed by a one-byte length.
    pub(crate) fn sub_u8(&mut self, layer: &'static str) -> Result<Reader<'a>, Error> {
        let n = self.u8()?;
        self.sub(usize::from(n), layer)
    }

    /// A child reader over a body prefixed by a two-byte length.
    pub(crate) fn sub_u16(&mut self, layer: &'static str) -> Result<Reader<'a>, Error> {
        let n = self.u16()?;
        self.sub(usize::from(n), layer)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Rejects bytes left over after the last field of a structure.
    pub(crate) fn finish(&self) -> Result<(), Error> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes {
                layer: self.layer,
                count: self.buf.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_past_the_end_is_truncated_and_names_the_layer() {
        let mut r = Reader::new(&[1, 2, 3], "thing");
        assert_eq!(r.take(2), Ok(&[1u8, 2][..]));
        assert_eq!(
            r.take(2),
            Err(Error::Truncated {
                layer: "thing",
                required: 2,
                got: 1
            })
        );
    }

    #[test]
    fn sub_is_bounded_and_finish_rejects_leftovers() {
        let mut r = Reader::new(&[2, 0xaa, 0xbb, 0xcc], "outer");
        let mut inner = r.sub_u8("inner").unwrap();
        assert_eq!(inner.u16(), Ok(0xaabb));
        assert!(inner.u8().is_err());
        assert_eq!(
            r.finish(),
            Err(Error::TrailingBytes {
                layer: "outer",
                count: 1
            })
        );
        assert_eq!(r.rest(), &[0xcc]);
        assert!(r.is_empty());
        assert_eq!(r.finish(), Ok(()));
    }
}
