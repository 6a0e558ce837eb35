//! Where emitted bytes go: a slice, a `BufMut`, or a running checksum. The writers put their
//! bytes in order and do not know which.

#[cfg(feature = "bytes")]
use crate::crc32c;

/// A place that takes the header's bytes in order.
pub(super) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

/// A slice already checked to be exactly as long as what is written into it.
pub(super) struct SliceSink<'o> {
    out: &'o mut [u8],
    at: usize,
}

impl<'o> SliceSink<'o> {
    pub(super) fn new(out: &'o mut [u8]) -> Self {
        SliceSink { out, at: 0 }
    }
}

impl Sink for SliceSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.at + bytes.len();
        if let Some(dst) = self.out.get_mut(self.at..end) {
            dst.copy_from_slice(bytes);
        }
        self.at = end;
    }
}

/// The CRC-32C of what it is given, so far.
#[cfg(feature = "bytes")]
pub(super) struct CrcSink(pub(super) u32);

#[cfg(feature = "bytes")]
impl Sink for CrcSink {
    fn put(&mut self, bytes: &[u8]) {
        self.0 = crc32c::append(self.0, bytes);
    }
}

/// A `bytes::BufMut` already checked to have room.
#[cfg(feature = "bytes")]
pub(super) struct BufSink<'b, B>(pub(super) &'b mut B);

#[cfg(feature = "bytes")]
impl<B: bytes::BufMut> Sink for BufSink<'_, B> {
    fn put(&mut self, bytes: &[u8]) {
        self.0.put_slice(bytes);
    }
}
