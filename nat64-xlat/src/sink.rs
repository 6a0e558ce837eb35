//! What becomes of a planned plain packet, in either direction: written into the output buffer,
//! cut into fragments when it must be, or handed back for the in-place path to write.

use crate::emit::{self, Frag6, Hdr4, Hdr6, Patches};
use crate::outcome::{DropReason, Emitted};

/// Which piece a header heads: `None` for the whole packet, else the offset of its first payload
/// byte and whether it is the last piece.
pub(crate) type Piece = Option<(usize, bool)>;

/// A translated header that heads the whole packet or one piece of it.
pub(crate) trait Head: Copy {
    /// Writes the header for `len` payload bytes: of the whole packet, or, with `piece` =
    /// `Some((start, last))`, of the piece holding the payload bytes from `start` (`last`: the final
    /// piece). Returns the header length.
    fn write(&self, out: &mut [u8], len: usize, piece: Piece) -> Result<usize, DropReason>;
}

/// An IPv6 header, the Fragment header of a packet that is a fragment already, and the
/// Identification its pieces carry when it must be cut.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head6 {
    pub(crate) h: Hdr6,
    pub(crate) frag: Option<Frag6>,
    pub(crate) id: u32,
}

impl Head for Head6 {
    #[inline(always)]
    fn write(&self, out: &mut [u8], len: usize, piece: Piece) -> Result<usize, DropReason> {
        let frag = match piece {
            None => self.frag,
            Some((start, last)) => {
                let (offset, more) = self.frag.map_or((0, false), |f| (f.offset, f.more));
                Some(Frag6 {
                    offset: offset + (start / 8) as u16,
                    more: !last || more,
                    id: self.id,
                })
            }
        };
        emit::ipv6_header(out, &self.h, frag, len)
    }
}

impl Head for Hdr4 {
    #[inline(always)]
    fn write(&self, out: &mut [u8], len: usize, piece: Piece) -> Result<usize, DropReason> {
        let Some((start, last)) = piece else {
            return emit::ipv4_header(out, self, len);
        };
        let mut h = *self;
        h.offset += (start / 8) as u16;
        h.mf = !last || self.mf;
        emit::ipv4_header(out, &h, len)
    }
}

/// A plain (not ICMP error) packet's translated header, the transport bytes that change, and the
/// piece size when it must be cut. Borrowed pieces, so nothing built byte by byte is moved as a
/// block (which stalls the store buffer on every packet).
#[derive(Clone, Copy)]
pub(crate) struct Plan<'p, H> {
    pub(crate) head: &'p H,
    pub(crate) patches: &'p Patches,
    pub(crate) split: Option<usize>,
}

/// What becomes of a planned plain packet. A continuation rather than a returned plan: moving the
/// plan out through a `Result` costs more than building it.
pub(crate) trait Sink<H> {
    type Out;
    fn plain(self, payload: &[u8], p: Plan<'_, H>) -> Result<Self::Out, DropReason>;
}

/// Written, fragmented if need be, into the output buffer.
pub(crate) struct ToBuffer<'o>(pub(crate) &'o mut [u8]);

impl<H: Head> Sink<H> for ToBuffer<'_> {
    type Out = Emitted;
    #[inline(always)]
    fn plain(self, payload: &[u8], p: Plan<'_, H>) -> Result<Emitted, DropReason> {
        write(self.0, payload, p)
    }
}

/// Handed back, for the in-place path to write once the input is no longer borrowed.
pub(crate) struct Pieces;

impl<H: Copy> Sink<H> for Pieces {
    type Out = (H, Patches, Option<usize>);
    #[inline(always)]
    fn plain(self, _: &[u8], p: Plan<'_, H>) -> Result<Self::Out, DropReason> {
        Ok((*p.head, *p.patches, p.split))
    }
}

/// Writes a plain packet, or its pieces when `split` says so (RFC 7915 §4 / §4.1 and §5.1: DF
/// clear and too big for the next link), every piece but the last a multiple of 8 bytes.
#[inline(always)]
fn write<H: Head>(out: &mut [u8], payload: &[u8], p: Plan<'_, H>) -> Result<Emitted, DropReason> {
    let Some(chunk) = p.split else {
        let hl = p.head.write(out, payload.len(), None)?;
        copy_patched(out, hl, payload, p.patches, 0)?;
        return Ok(Emitted::new(hl + payload.len(), 1));
    };
    let (mut at, mut start, mut count) = (0, 0, 0);
    while start < payload.len() {
        let end = (start + chunk).min(payload.len());
        let o = out.get_mut(at..).ok_or(DropReason::BufferTooSmall)?;
        let last = end == payload.len();
        let hl = p.head.write(o, end - start, Some((start, last)))?;
        copy_patched(o, hl, &payload[start..end], p.patches, start)?;
        at += hl + end - start;
        count += 1;
        start = end;
    }
    Ok(Emitted::new(at, count))
}

/// Copies `data`, payload bytes from `start` on, to `out[at..]`, and applies the patches that fall
/// in it.
#[inline(always)]
pub(crate) fn copy_patched(
    out: &mut [u8],
    at: usize,
    data: &[u8],
    patches: &Patches,
    start: usize,
) -> Result<(), DropReason> {
    emit::copy(out, at, data)?;
    patches.apply(&mut out[at..at + data.len()], start);
    Ok(())
}

/// The largest multiple of 8 that fits after `headers` bytes in `mtu`: the size of every piece but
/// the last.
#[inline]
pub(crate) const fn piece_len(mtu: usize, headers: usize) -> usize {
    (mtu - headers) / 8 * 8
}
