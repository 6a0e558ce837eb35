//! The `virtio_net_hdr` in front of every packet on a TUN device opened with `IFF_VNET_HDR`, and
//! the offload bookkeeping around a translation: checksums the kernel left partial
//! (`NEEDS_CSUM`) and TCP super-packets (GSO) that stand for many segments.
//!
//! A super-packet is translated once, as one packet: the segments share every header field the
//! translator touches, so only the header offsets, the GSO type and the pseudo-header part of the
//! partial checksum change (wireguard-go `tun/offload_linux.go` does the same bookkeeping for GRO).

use nat64_xlat::checksum;

/// Bytes of the header, as the kernel uses it without `TUNSETVNETHDRSZ`.
pub(crate) const LEN: usize = 10;

/// `flags`: the L4 checksum is partial; the kernel (or we) must finish it.
pub(crate) const NEEDS_CSUM: u8 = 1;
/// `gso_type` values (`include/uapi/linux/virtio_net.h`).
pub(crate) const GSO_NONE: u8 = 0;
pub(crate) const GSO_TCPV4: u8 = 1;
pub(crate) const GSO_TCPV6: u8 = 4;
pub(crate) const GSO_ECN: u8 = 0x80;

const TCP: u8 = 6;
const UDP: u8 = 17;

/// The header, host order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Header {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl Header {
    /// Fields are little-endian on every architecture we run on (virtio 1.0 with a little-endian
    /// host; TUN uses the host's order unless TUNSETVNETBE, which we never set).
    pub(crate) fn read(b: &[u8; LEN]) -> Header {
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Header {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        }
    }

    pub(crate) fn write(&self, b: &mut [u8]) {
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
    }

    pub(crate) fn needs_csum(&self) -> bool {
        self.flags & NEEDS_CSUM != 0
    }

    pub(crate) fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE
    }
}

/// Why an offload header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A GSO type we never negotiated (UDP, or TCPV4 on an IPv6 packet), or GSO without a
    /// partial checksum.
    GsoType,
    /// The partial checksum's position lies outside the packet or not on a TCP/UDP checksum.
    ChecksumPosition,
}

/// What the packet's offload header asks of us, checked against the packet itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offload {
    pub header: Header,
    /// Offset of the L4 checksum field in the packet, when the checksum is partial.
    pub csum_field: Option<usize>,
}

impl Offload {
    pub(crate) fn check(header: Header, packet: &[u8]) -> Result<Offload, Refused> {
        let version = packet.first().map_or(0, |b| b >> 4);
        // The ECN bit qualifies a GSO type; alone, the kernel refuses it on write.
        if header.gso_type == GSO_ECN {
            return Err(Refused::GsoType);
        }
        if header.is_gso() {
            let want = if version == 4 { GSO_TCPV4 } else { GSO_TCPV6 };
            if header.gso_type & !GSO_ECN != want || !header.needs_csum() || header.gso_size == 0 {
                return Err(Refused::GsoType);
            }
        }
        if !header.needs_csum() {
            return Ok(Offload {
                header,
                csum_field: None,
            });
        }
        let start = usize::from(header.csum_start);
        let field = start + usize::from(header.csum_offset);
        let proto = l4_proto_at(packet, start);
        let ok = match (proto, header.csum_offset) {
            (Some(TCP), 16) => packet.len() >= start + 20,
            (Some(UDP), 6) => packet.len() >= start + 8 && !header.is_gso(),
            _ => false,
        };
        if !ok || field + 2 > packet.len() {
            return Err(Refused::ChecksumPosition);
        }
        Ok(Offload {
            header,
            csum_field: Some(field),
        })
    }
}

/// The protocol of the L4 header that starts at `start`, if `start` is where the IP header chain
/// ends (IPv4 header length; IPv6 header plus extension headers, which the kernel's `csum_start`
/// already skips — we only check that the chain's last protocol is TCP or UDP).
fn l4_proto_at(packet: &[u8], start: usize) -> Option<u8> {
    match packet.first()? >> 4 {
        4 => {
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            (ihl == start && packet.len() >= 20).then(|| packet[9])
        }
        6 => {
            if packet.len() < 40 || start < 40 {
                return None;
            }
            let (mut next, mut at) = (packet[6], 40);
            // Hop-by-hop, routing, destination options: the kernel hands us partial checksums
            // behind them; anything else ends the walk.
            while at < start && matches!(next, 0 | 43 | 60) {
                let len = (usize::from(*packet.get(at + 1)?) + 1) * 8;
                next = *packet.get(at)?;
                at += len;
            }
            (at == start).then_some(next)
        }
        _ => None,
    }
}

/// Finishes a partial checksum in software: the field holds the pseudo-header sum, so the sum of
/// everything from `csum_start` complemented is the real checksum. Needed before a packet takes
/// the translator's copying path (fragmented, hairpinned, quoted in an ICMP error).
pub(crate) fn finish_checksum(packet: &mut [u8], o: &Offload) {
    let Some(field) = o.csum_field else { return };
    let start = usize::from(o.header.csum_start);
    let mut c = checksum::finish(checksum::sum(&packet[start..]));
    if o.header.csum_offset == 6 {
        // A UDP checksum that computes to 0 is sent as 0xffff (0 means "none").
        c = checksum::udp(c);
    }
    packet[field..field + 2].copy_from_slice(&c.to_be_bytes());
}

/// The offload header of a translated packet, and its partial checksum redone for the new
/// addresses: the kernel finishes it from `csum_start`, so the field must hold the uncomplemented
/// pseudo-header sum of the new header (an RFC 1624 update, right for a finished checksum, is
/// wrong for a partial one). `packet` is the translated packet.
///
/// A super-packet that became IPv6 has segments 20 bytes longer than the IPv4 sender cut them:
/// `gso_size` shrinks so each still fits `mtu`, sparing a Packet Too Big round trip (smaller
/// segments are always within the receiver's MSS; larger ones would not be, so IPv4 segments keep
/// theirs).
pub(crate) fn after_translation(packet: &mut [u8], o: &Offload, mtu: u16) -> Option<Header> {
    let Some(_) = o.csum_field else {
        return Some(Header::default());
    };
    // The translator writes no extension header for a packet with a partial checksum (it is
    // never a fragment), so the L4 header follows the IP header.
    let (l4, proto) = match packet.first()? >> 4 {
        4 => (usize::from(packet[0] & 0x0f) * 4, *packet.get(9)?),
        6 => (40, *packet.get(6)?),
        _ => return None,
    };
    let pseudo = pseudo_header(packet, l4, proto)?;
    let field = l4 + usize::from(o.header.csum_offset);
    let expect = if o.header.csum_offset == 16 { TCP } else { UDP };
    if proto != expect || field + 2 > packet.len() {
        return None;
    }
    packet[field..field + 2].copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
    let mut h = o.header;
    h.csum_start = l4 as u16;
    if h.is_gso() {
        let ecn = h.gso_type & GSO_ECN;
        h.gso_type = ecn | if l4 == 40 { GSO_TCPV6 } else { GSO_TCPV4 };
        let doff = usize::from(packet.get(l4 + 12)? >> 4) * 4;
        h.hdr_len = (l4 + doff) as u16;
        let fits = usize::from(mtu).saturating_sub(l4 + doff);
        if l4 == 40 && usize::from(h.gso_size) > fits && fits >= 8 {
            h.gso_size = fits as u16;
        }
    } else {
        h.hdr_len = 0;
    }
    Some(h)
}

/// Cuts a TCP super-packet into the segments the kernel would have sent, each a plain packet with
/// a whole checksum: for the rare super-packet the translator cannot take in place (hairpinned,
/// an IPv4 one without DF that IPv6 must fragment, one whose hop limit runs out), which must leave
/// as ordinary packets. `scratch` holds one segment at a time; `each` gets them in order.
pub(crate) fn segment(
    packet: &[u8],
    o: &Offload,
    scratch: &mut Vec<u8>,
    mut each: impl FnMut(&[u8]),
) {
    let l4 = usize::from(o.header.csum_start);
    let Some(doff) = packet.get(l4 + 12).map(|b| usize::from(b >> 4) * 4) else {
        return;
    };
    let headers = l4 + doff;
    let mss = usize::from(o.header.gso_size);
    if doff < 20 || headers > packet.len() || mss == 0 {
        return;
    }
    let v4 = packet[0] >> 4 == 4;
    let seq = u32::from_be_bytes([
        packet[l4 + 4],
        packet[l4 + 5],
        packet[l4 + 6],
        packet[l4 + 7],
    ]);
    let id = u16::from_be_bytes([packet[4], packet[5]]);
    let flags = packet[l4 + 13];
    let chunks = packet[headers..].chunks(mss);
    let last = chunks.len().saturating_sub(1);
    for (i, chunk) in chunks.enumerate() {
        scratch.clear();
        scratch.extend_from_slice(&packet[..headers]);
        scratch.extend_from_slice(chunk);
        let total = scratch.len();
        if v4 {
            scratch[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            // The kernel numbers a super-packet's segments ID, ID+1, ...
            scratch[4..6].copy_from_slice(&id.wrapping_add(i as u16).to_be_bytes());
            scratch[10..12].fill(0);
            let c = checksum::finish(checksum::sum(&scratch[..l4]));
            scratch[10..12].copy_from_slice(&c.to_be_bytes());
        } else {
            scratch[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
        }
        let pseudo = pseudo_header(scratch, l4, TCP).unwrap_or_default();
        let seq = seq.wrapping_add((i * mss) as u32);
        scratch[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        // FIN and PSH end the burst: on its last segment only. CWR starts it: on the first only.
        let mut f = flags;
        if i != last {
            f &= !(0x01 | 0x08);
        }
        if i != 0 {
            f &= !0x80;
        }
        scratch[l4 + 13] = f;
        scratch[l4 + 16..l4 + 18].fill(0);
        let c = checksum::finish(checksum::add(pseudo, checksum::sum(&scratch[l4..])));
        scratch[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
        each(scratch);
    }
}

/// The pseudo-header sum (RFC 768/8200) of `packet`'s addresses, `proto` and the length from
/// `l4` to the end: the part of an L4 checksum that depends on the IP header.
pub(crate) fn pseudo_header(packet: &[u8], l4: usize, proto: u8) -> Option<u32> {
    let len = u32::try_from(packet.len().checked_sub(l4)?).ok()?;
    match packet.first()? >> 4 {
        4 => {
            let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            Some(checksum::pseudo4(src.into(), dst.into(), proto, len))
        }
        6 => {
            let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            Some(checksum::pseudo6(src.into(), dst.into(), proto, len))
        }
        _ => None,
    }
}

/// Puts a value the translator treats as an ordinary checksum into a partial UDP field (a partial
/// sum of 0 would read as "no checksum"), returning what was there.
pub(crate) fn neutralise(packet: &mut [u8], o: &Offload) -> Option<[u8; 2]> {
    let field = o.csum_field?;
    let old = [packet[field], packet[field + 1]];
    packet[field..field + 2].copy_from_slice(&[0xff, 0xff]);
    Some(old)
}

pub(crate) fn restore(packet: &mut [u8], o: &Offload, old: Option<[u8; 2]>) {
    if let (Some(field), Some(old)) = (o.csum_field, old) {
        packet[field..field + 2].copy_from_slice(&old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_little_endian() {
        let h = Header {
            flags: NEEDS_CSUM,
            gso_type: GSO_TCPV6 | GSO_ECN,
            hdr_len: 0x0102,
            gso_size: 1428,
            csum_start: 40,
            csum_offset: 16,
        };
        let mut b = [0u8; LEN];
        h.write(&mut b);
        assert_eq!(b, [1, 0x84, 2, 1, 0x94, 5, 40, 0, 16, 0]);
        assert_eq!(Header::read(&b), h);
    }
}
