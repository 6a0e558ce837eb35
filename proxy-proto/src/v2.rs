//! The v2 binary header: signature, version/command, family/transport, length, addresses, TLVs.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use crate::addresses::family_block_len;
use crate::crc32c::header_checksum;
use crate::tlv::{be_u32, check_region};
use crate::{Addresses, Command, Error, Header, Needed, Status, Transport, V2_SIGNATURE, Version};

/// Signature, version/command, family/transport and the length: 16 bytes.
const PREAMBLE: usize = 16;

pub(crate) fn parse(buf: &[u8], max_len: usize) -> Result<Status<Header<'_>>, Error> {
    let sig = buf.len().min(V2_SIGNATURE.len());
    if buf[..sig] != V2_SIGNATURE[..sig] {
        return Err(Error::NotProxy);
    }
    // Refuse a bad version, command or family as soon as its byte arrives.
    let command = match buf.get(12) {
        Some(&ver_cmd) => Some(command(ver_cmd)?),
        None => None,
    };
    let family = match (command, buf.get(13)) {
        (Some(Command::Proxy), Some(&fam)) => {
            Some(family(fam).ok_or(Error::V2("unknown address family or transport for PROXY"))?)
        }
        (_, Some(&fam)) => family(fam),
        _ => None,
    };
    let (Some(command), [_, _, hi, lo, ..]) = (command, &buf[12.min(buf.len())..]) else {
        return Ok(Status::Partial(Needed::AtLeast(PREAMBLE - buf.len())));
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    let total = PREAMBLE + len;
    if total > max_len {
        return Err(Error::TooLarge {
            len: total,
            max: max_len,
        });
    }
    let block = family.map_or(0, |(fam, _)| family_block_len(fam).unwrap_or(0));
    if command == Command::Proxy && len < block {
        return Err(Error::V2("length is shorter than the address block"));
    }
    let Some(header) = buf.get(..total) else {
        return Ok(Status::Partial(Needed::Exactly(total - buf.len())));
    };
    let body = &header[PREAMBLE..];

    // LOCAL: the specification says to ignore the block. We read it when it is whole (a health
    // check may still send addresses and a CRC32C) and skip it when it is not.
    let (transport, addresses, tlvs) = match family {
        Some((fam, transport)) if len >= block => (transport, addresses(fam, body), &body[block..]),
        _ => (Transport::Unspec, Addresses::Unspec, &body[..0]),
    };
    if let Some(at) = check_region(tlvs)? {
        let at = PREAMBLE + block + at;
        let sent = be_u32(&header[at..at + 4]).unwrap_or_default();
        let computed = header_checksum(header, at);
        if sent != computed {
            return Err(Error::Checksum { sent, computed });
        }
    }
    Ok(Status::Complete(Header {
        version: Version::V2,
        command,
        transport,
        addresses,
        tlvs,
        len: total,
    }))
}

fn command(ver_cmd: u8) -> Result<Command, Error> {
    if ver_cmd >> 4 != 2 {
        return Err(Error::V2("version is not 2"));
    }
    match ver_cmd & 0x0F {
        0 => Ok(Command::Local),
        1 => Ok(Command::Proxy),
        _ => Err(Error::V2("command is neither LOCAL nor PROXY")),
    }
}

/// The seven defined family/transport bytes: `00 11 12 21 22 31 32`.
fn family(byte: u8) -> Option<(u8, Transport)> {
    let transport = match byte & 0x0F {
        0 => Transport::Unspec,
        1 => Transport::Stream,
        2 => Transport::Dgram,
        _ => return None,
    };
    let fam = byte >> 4;
    match (fam, transport) {
        (0, Transport::Unspec) | (1..=3, Transport::Stream | Transport::Dgram) => {
            Some((fam, transport))
        }
        _ => None,
    }
}

/// The address block of a known family; `body` is at least as long as the block.
fn addresses(fam: u8, body: &[u8]) -> Addresses<'_> {
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    match fam {
        1 => {
            let ip = |at: usize| Ipv4Addr::new(body[at], body[at + 1], body[at + 2], body[at + 3]);
            Addresses::Ipv4 {
                src: SocketAddrV4::new(ip(0), port(8)),
                dst: SocketAddrV4::new(ip(4), port(10)),
            }
        }
        2 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&body[at..at + 16]);
                Ipv6Addr::from(octets)
            };
            Addresses::Ipv6 {
                src: SocketAddrV6::new(ip(0), port(32), 0, 0),
                dst: SocketAddrV6::new(ip(16), port(34), 0, 0),
            }
        }
        3 => {
            // A path ends at its first NUL; one that fills all 108 bytes has none.
            let path =
                |raw: &'_ [u8]| -> usize { raw.iter().position(|&b| b == 0).unwrap_or(raw.len()) };
            let (src, dst) = (&body[..108], &body[108..216]);
            Addresses::Unix {
                src: &src[..path(src)],
                dst: &dst[..path(dst)],
            }
        }
        _ => Addresses::Unspec,
    }
}
