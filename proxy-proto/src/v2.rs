//! The v2 binary header: signature, version/command, family/transport, length, addresses, TLVs.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use crate::crc32c::header_checksum;
use crate::layout::{
    CRC32C_LEN, INET_BLOCK, INET6_BLOCK, PREAMBLE, UNIX_BLOCK, UNIX_PATH, block_len, command,
    family, family_transport, field,
};
use crate::tlv::{be_u32, check_region};
use crate::{Addresses, Command, Error, Header, Needed, Status, Transport, V2_SIGNATURE, Version};

/// The signature as the top 96 bits of the big-endian preamble, to check it in one compare.
const SIGNATURE_BITS: u128 = {
    let mut bits = 0u128;
    let mut i = 0;
    while i < field::SIGNATURE.end {
        bits = bits << 8 | V2_SIGNATURE[i] as u128;
        i += 1;
    }
    bits << 32
};

#[inline]
pub(crate) fn parse(buf: &[u8], max_len: usize) -> Result<Status<Header<'_>>, Error> {
    let Some(preamble) = buf.first_chunk::<PREAMBLE>() else {
        return parse_short(buf);
    };
    let bits = u128::from_be_bytes(*preamble);
    if bits & !0xFFFF_FFFF != SIGNATURE_BITS {
        return Err(Error::NotProxy);
    }
    let [.., ver_cmd, fam, hi, lo] = *preamble;
    let command = command(ver_cmd)?;
    let family = family_transport(fam);
    if command == Command::Proxy && family.is_none() {
        return Err(Error::V2("unknown address family or transport for PROXY"));
    }
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    parse_body(buf, max_len, command, family, len)
}

/// Fewer than 16 bytes: refuse what can already be refused, else ask for the rest.
fn parse_short(buf: &[u8]) -> Result<Status<Header<'_>>, Error> {
    let sig = buf.len().min(field::SIGNATURE.end);
    if buf[..sig] != V2_SIGNATURE[..sig] {
        return Err(Error::NotProxy);
    }
    // Refuse a bad version, command or family as soon as its byte arrives.
    let command = match buf.get(field::VER_CMD) {
        Some(&ver_cmd) => Some(command(ver_cmd)?),
        None => None,
    };
    if let (Some(Command::Proxy), Some(&fam)) = (command, buf.get(field::FAM)) {
        family_transport(fam).ok_or(Error::V2("unknown address family or transport for PROXY"))?;
    }
    Ok(Status::Partial(Needed::at_least(PREAMBLE - buf.len())))
}

#[inline]
fn parse_body(
    buf: &[u8],
    max_len: usize,
    command: Command,
    family: Option<(u8, Transport)>,
    len: usize,
) -> Result<Status<Header<'_>>, Error> {
    let total = PREAMBLE + len;
    if total > max_len {
        return Err(Error::TooLarge {
            len: total,
            max: max_len,
        });
    }
    let block = family.map_or(0, |(fam, _)| block_len(fam).unwrap_or(0));
    if command == Command::Proxy && len < block {
        return Err(Error::V2("length is shorter than the address block"));
    }
    let Some(header) = buf.get(..total) else {
        return Ok(Status::Partial(Needed::exactly(total - buf.len())));
    };
    let body = &header[PREAMBLE..];

    // LOCAL: the specification says to ignore the block. We read it when it is whole (a health
    // check may still send addresses and a CRC32C) and skip it when it is not.
    let (transport, addresses, mut tlvs) = match family {
        Some((fam, transport)) if len >= block => (transport, addresses(fam, body), &body[block..]),
        _ => (Transport::Unspec, Addresses::Unspec, &body[..0]),
    };
    let crc_at = match (tlvs.is_empty(), command) {
        (true, _) => None,
        (false, Command::Proxy) => check_region(tlvs)?,
        // LOCAL: what follows the addresses is to be discarded; if it is not TLVs, skip it.
        // Well-formed TLVs are kept and checked (a CRC32C still has to match).
        (false, Command::Local) => match check_region(tlvs) {
            Ok(at) => at,
            Err(_) => {
                tlvs = &tlvs[..0];
                None
            }
        },
    };
    if let Some(at) = crc_at {
        let at = PREAMBLE + block + at;
        let sent = be_u32(&header[at..at + CRC32C_LEN]).unwrap_or_default();
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

/// The address block of a known family; `body` is at least as long as the block.
#[inline]
fn addresses(fam: u8, body: &[u8]) -> Addresses<'_> {
    let inet = body.first_chunk::<INET_BLOCK>();
    let inet6 = body.first_chunk::<INET6_BLOCK>();
    match (fam, inet, inet6) {
        (family::INET, Some(&[a, b, c, d, e, f, g, h, sp0, sp1, dp0, dp1]), _) => Addresses::Ipv4 {
            src: SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), u16::from_be_bytes([sp0, sp1])),
            dst: SocketAddrV4::new(Ipv4Addr::new(e, f, g, h), u16::from_be_bytes([dp0, dp1])),
        },
        (family::INET6, _, Some(block)) => {
            let (src, dst) = block.split_at(16);
            let v = u128::from_be_bytes(*src.first_chunk::<16>().unwrap_or(&[0; 16]));
            let w = u128::from_be_bytes(*dst.first_chunk::<16>().unwrap_or(&[0; 16]));
            let [.., sp0, sp1, dp0, dp1] = *block;
            Addresses::Ipv6 {
                src: SocketAddrV6::new(Ipv6Addr::from(v), u16::from_be_bytes([sp0, sp1]), 0, 0),
                dst: SocketAddrV6::new(Ipv6Addr::from(w), u16::from_be_bytes([dp0, dp1]), 0, 0),
            }
        }
        (family::UNIX, ..) if body.len() >= UNIX_BLOCK => {
            // A path ends at its first NUL; one that fills all 108 bytes has none.
            let path =
                |raw: &'_ [u8]| -> usize { raw.iter().position(|&b| b == 0).unwrap_or(raw.len()) };
            let (src, dst) = (&body[..UNIX_PATH], &body[UNIX_PATH..UNIX_BLOCK]);
            Addresses::Unix {
                src: &src[..path(src)],
                dst: &dst[..path(dst)],
            }
        }
        _ => Addresses::Unspec,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Parser, TlvType, parse, parse_v2};
    use core::net::SocketAddr;
    use std::vec::Vec;

    /// A v2 header: signature, the two bytes given, the length, then `body`.
    fn v2(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[ver_cmd, fam]);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    const INET: [u8; 12] = [192, 0, 2, 1, 198, 51, 100, 7, 0xDC, 0x04, 0x01, 0xBB];

    fn complete(bytes: &[u8]) -> Header<'_> {
        match parse(bytes) {
            Ok(Status::Complete(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn proxy_over_each_family() {
        let h = complete(v2(0x21, 0x11, &INET).leak());
        assert_eq!(h.source(), Some("192.0.2.1:56324".parse().unwrap()));
        assert_eq!(h.destination(), Some("198.51.100.7:443".parse().unwrap()));
        assert_eq!(
            (h.len(), h.command(), h.transport(), h.version()),
            (28, Command::Proxy, Transport::Stream, Version::V2)
        );

        let mut inet6 = [0u8; 36];
        inet6[0..16].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        inet6[16..32].copy_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        inet6[32..36].copy_from_slice(&[0, 1, 0, 2]);
        let h = complete(v2(0x21, 0x22, &inet6).leak());
        assert_eq!(h.transport(), Transport::Dgram);
        assert_eq!(
            h.source(),
            Some("[2001:db8::1]:1".parse::<SocketAddr>().unwrap())
        );

        let mut unix = [0u8; 216];
        unix[..9].copy_from_slice(b"/run/a.sk");
        unix[108..216].fill(b'x'); // no NUL: the path is all 108 bytes
        let bytes = v2(0x21, 0x31, &unix);
        let h = complete(&bytes);
        assert_eq!(
            h.addresses(),
            Addresses::Unix {
                src: b"/run/a.sk",
                dst: &[b'x'; 108]
            }
        );
        assert_eq!(h.source(), None);
        let h = complete(v2(0x21, 0x00, &[]).leak());
        assert_eq!(
            (h.addresses(), h.transport()),
            (Addresses::Unspec, Transport::Unspec)
        );
    }

    #[test]
    fn bytes_after_the_header_are_left_alone() {
        let mut bytes = v2(0x21, 0x11, &INET);
        bytes.extend_from_slice(b"\x16\x03\x01 hello");
        let h = complete(&bytes);
        assert_eq!(&bytes[h.len()..], b"\x16\x03\x01 hello");
    }

    #[test]
    fn local_is_accepted_however_it_comes() {
        // len 0 with every family byte, defined or not.
        for fam in 0..=0xFF {
            let h = complete(v2(0x20, fam, &[]).leak());
            assert_eq!(
                (h.command(), h.addresses(), h.len()),
                (Command::Local, Addresses::Unspec, 16)
            );
            assert_eq!(h.source(), None);
        }
        // With a whole address block: read, but source() still says "use the socket's".
        let h = complete(v2(0x20, 0x11, &INET).leak());
        assert!(matches!(h.addresses(), Addresses::Ipv4 { .. }));
        assert_eq!(h.source(), None);
        // A whole block followed by bytes that are not TLVs: the rest is skipped.
        let h = complete(v2(0x20, 0x11, &[INET.as_slice(), &[1, 2]].concat()).leak());
        assert_eq!((h.len(), h.tlvs().count()), (30, 0));
        // A short block is skipped.
        assert_eq!(
            complete(v2(0x20, 0x21, &INET).leak()).addresses(),
            Addresses::Unspec
        );
        // HAProxy's health check with a CRC32C: UNSPEC, then the TLV.
        let mut crc = v2(0x20, 0x00, &[0x03, 0, 4, 0, 0, 0, 0]);
        let sum = crate::crc32c::checksum(&crc);
        crc[19..23].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(complete(&crc).crc32c(), Some(sum));
    }

    #[test]
    fn preamble_errors() {
        let e = |bytes: &[u8]| parse_v2(bytes).unwrap_err();
        assert_eq!(e(&v2(0x11, 0x11, &INET)), Error::V2("version is not 2"));
        assert_eq!(e(&v2(0x31, 0x11, &INET)), Error::V2("version is not 2"));
        assert_eq!(
            e(&v2(0x22, 0x11, &INET)),
            Error::V2("command is neither LOCAL nor PROXY")
        );
        assert_eq!(
            e(&v2(0x2F, 0x11, &INET)),
            Error::V2("command is neither LOCAL nor PROXY")
        );
        for fam in (0..=0xFF).filter(|f| ![0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32].contains(f)) {
            assert_eq!(
                e(&v2(0x21, fam, &[0; 216])),
                Error::V2("unknown address family or transport for PROXY"),
                "{fam:#x}"
            );
        }
        assert_eq!(
            e(&v2(0x21, 0x11, &INET[..11])),
            Error::V2("length is shorter than the address block")
        );
        assert_eq!(
            e(&v2(0x21, 0x21, &[0; 35])),
            Error::V2("length is shorter than the address block")
        );
        assert_eq!(
            e(&v2(0x21, 0x31, &[0; 215])),
            Error::V2("length is shorter than the address block")
        );
        let mut wrong_sig = v2(0x21, 0x11, &INET);
        wrong_sig[11] = b'X';
        assert_eq!(e(&wrong_sig), Error::NotProxy);
    }

    #[test]
    fn errors_come_as_soon_as_their_byte_does() {
        let bad_version = v2(0x11, 0x11, &INET);
        assert_eq!(
            parse_v2(&bad_version[..13]),
            Err(Error::V2("version is not 2"))
        );
        let bad_family = v2(0x21, 0x41, &INET);
        assert!(parse_v2(&bad_family[..14]).is_err());
        let short_len = v2(0x21, 0x11, &INET[..4]);
        assert!(parse_v2(&short_len[..16]).is_err());
        assert_eq!(parse_v2(b"\r\n\r\n\0\r\nQUIX"), Err(Error::NotProxy));
        let good = v2(0x21, 0x11, &INET);
        assert_eq!(
            parse_v2(&good[..10]),
            Ok(Status::Partial(Needed::at_least(6)))
        );
        assert_eq!(
            parse_v2(&good[..16]),
            Ok(Status::Partial(Needed::exactly(12)))
        );
        assert_eq!(
            parse_v2(&good[..27]),
            Ok(Status::Partial(Needed::exactly(1)))
        );
    }

    #[test]
    fn size_cap() {
        let big = v2(
            0x21,
            0x11,
            &[INET.as_slice(), &[0x04, 0x10, 0x00], &[0; 4096]].concat(),
        );
        // Refused from the 16-byte preamble, before the rest arrives.
        assert_eq!(
            parse_v2(&big[..16]),
            Err(Error::TooLarge {
                len: 16 + 12 + 3 + 4096,
                max: 4096
            })
        );
        let roomy = Parser::new().max_v2_len(65_551);
        assert_eq!(
            roomy.parse(&big).unwrap().complete().unwrap().len(),
            big.len()
        );
        let max = v2(
            0x21,
            0x11,
            &[INET.as_slice(), &[0x04, 0xFF, 0xF0], &[0; 0xFFF0]].concat(),
        );
        assert_eq!(max.len(), 65_551);
        assert_eq!(roomy.parse(&max).unwrap().complete().unwrap().len(), 65_551);
    }

    #[test]
    fn tlv_region_rules() {
        let with = |tlvs: &[u8]| v2(0x21, 0x11, &[INET.as_slice(), tlvs].concat());
        let tlv_err = |tlvs: &[u8]| parse_v2(&with(tlvs)).unwrap_err();
        // Zero-length TLVs are fine; so are custom and experimental ones, passed through.
        let ok = with(&[0x04, 0, 0, 0xE5, 0, 2, 7, 8, 0xF3, 0, 1, 9]);
        let h = complete(&ok);
        let all: Vec<_> = h.tlvs().map(|t| (t.kind.0, t.value.to_vec())).collect();
        assert_eq!(
            all,
            [
                (0x04, std::vec![]),
                (0xE5, std::vec![7, 8]),
                (0xF3, std::vec![9])
            ]
        );
        assert_eq!(h.tlv(TlvType(0xE5)), Some(&[7u8, 8][..]));
        // A TLV past len: header cut, value cut.
        assert!(matches!(tlv_err(&[0x01, 0]), Error::Tlv { .. }));
        assert!(matches!(
            tlv_err(&[0x01, 0, 5, 1, 2]),
            Error::Tlv {
                tlv: TlvType::ALPN,
                ..
            }
        ));
        assert!(matches!(
            tlv_err(&[0x03, 0, 3, 1, 2, 3]),
            Error::Tlv {
                tlv: TlvType::CRC32C,
                ..
            }
        ));
        assert!(matches!(
            tlv_err(&[[0x05, 0, 129].as_slice(), &[1; 129]].concat()),
            Error::Tlv {
                tlv: TlvType::UNIQUE_ID,
                ..
            }
        ));
        assert!(
            complete(&with(&[[0x05, 0, 128].as_slice(), &[1; 128]].concat()))
                .unique_id()
                .is_some()
        );
        assert!(matches!(
            tlv_err(&[0x02, 0, 2, 0xC3, 0x28]),
            Error::Tlv {
                tlv: TlvType::AUTHORITY,
                ..
            }
        ));
        assert!(matches!(
            tlv_err(&[0x30, 0, 1, 0xFF]),
            Error::Tlv {
                tlv: TlvType::NETNS,
                ..
            }
        ));
    }

    #[test]
    fn ssl_tlv_rules() {
        let with = |tlvs: &[u8]| v2(0x21, 0x11, &[INET.as_slice(), tlvs].concat());
        let ssl = [
            [0x20, 0, 5 + 10 + 7 + 3].as_slice(),
            &[0x07, 0, 0, 0, 0],
            &[0x21, 0, 7],
            b"TLSv1.3",
            &[0x22, 0, 4],
            b"leaf",
            &[0x99, 0, 0], // unknown sub-type: skipped
        ]
        .concat();
        let bytes = with(&ssl);
        let s = complete(&bytes).ssl().unwrap();
        assert!(s.client().ssl() && s.client().cert_conn() && s.client().cert_sess());
        assert_eq!(
            (s.verify(), s.version(), s.cn(), s.cipher()),
            (0, Some("TLSv1.3"), Some("leaf"), None)
        );
        assert_eq!(s.sub_tlvs().count(), 3);
        let e = |tlvs: &[u8]| parse_v2(&with(tlvs)).unwrap_err();
        assert!(matches!(
            e(&[0x20, 0, 4, 1, 0, 0, 0]),
            Error::Tlv {
                tlv: TlvType::SSL,
                ..
            }
        ));
        assert!(matches!(
            e(&[0x20, 0, 7, 1, 0, 0, 0, 0, 0x21, 0]),
            Error::Tlv {
                tlv: TlvType::SSL,
                ..
            }
        ));
        assert!(matches!(
            e(&[0x20, 0, 9, 1, 0, 0, 0, 0, 0x21, 0, 5, b'x']),
            Error::Tlv {
                tlv: TlvType::SSL_VERSION,
                ..
            }
        ));
        assert!(matches!(
            e(&[0x20, 0, 9, 1, 0, 0, 0, 0, 0x22, 0, 1, 0xFF]),
            Error::Tlv {
                tlv: TlvType::SSL_CN,
                ..
            }
        ));
    }

    #[test]
    fn crc32c_anywhere_once_and_right() {
        let body = |crc_first: bool| -> Vec<u8> {
            let crc = [0x03, 0, 4, 0, 0, 0, 0];
            let alpn = [0x01, 0, 2, b'h', b'2'];
            match crc_first {
                true => [INET.as_slice(), &crc, &alpn].concat(),
                false => [INET.as_slice(), &alpn, &crc].concat(),
            }
        };
        for crc_first in [true, false] {
            let mut bytes = v2(0x21, 0x11, &body(crc_first));
            let at = if crc_first { 31 } else { 36 };
            let sum = crate::crc32c::checksum(&bytes);
            bytes[at..at + 4].copy_from_slice(&sum.to_be_bytes());
            assert_eq!(complete(&bytes).crc32c(), Some(sum));
            // Flips that keep the structure valid (addresses, ports, the ALPN value) are caught
            // by the checksum and nothing else.
            let alpn_value = if crc_first { 38 } else { 31 };
            for flip in [16, 19, 20, 27, alpn_value, alpn_value + 1] {
                let mut bad = bytes.clone();
                bad[flip] ^= 0x01;
                assert!(
                    matches!(parse_v2(&bad), Err(Error::Checksum { .. })),
                    "flipped byte {flip}"
                );
            }
            bytes[at] ^= 0x80;
            assert!(matches!(parse_v2(&bytes), Err(Error::Checksum { .. })));
        }
        let twice = v2(
            0x21,
            0x11,
            &[
                INET.as_slice(),
                &[0x03, 0, 4, 0, 0, 0, 0],
                &[0x03, 0, 4, 0, 0, 0, 0],
            ]
            .concat(),
        );
        assert!(matches!(
            parse_v2(&twice),
            Err(Error::Tlv {
                tlv: TlvType::CRC32C,
                reason: "sent twice"
            })
        ));
    }

    #[test]
    fn cloud_tlvs() {
        let bytes = v2(
            0x21,
            0x11,
            &[
                INET.as_slice(),
                &[0xEA, 0, 23, 0x01],
                b"vpce-08d2bf15fac5001c9",
                &[0xEE, 0, 5, 0x01, 0x78, 0x56, 0x34, 0x12],
                &[0xE0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 2],
            ]
            .concat(),
        );
        let h = complete(&bytes);
        assert_eq!(h.aws_vpc_endpoint_id(), Some("vpce-08d2bf15fac5001c9"));
        assert_eq!(h.azure_private_link_id(), Some(0x1234_5678));
        assert_eq!(h.gcp_psc_connection_id(), Some(0x0102));
        // Custom-range types used by someone else are not errors, just not cloud ids.
        let other = v2(
            0x21,
            0x11,
            &[INET.as_slice(), &[0xE0, 0, 1, 9, 0xEE, 0, 1, 2, 0xEA, 0, 0]].concat(),
        );
        let h = complete(&other);
        assert_eq!(
            (
                h.gcp_psc_connection_id(),
                h.azure_private_link_id(),
                h.aws_vpc_endpoint_id()
            ),
            (None, None, None)
        );
    }
}
