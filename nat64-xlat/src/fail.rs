//! Why a translation stopped, and the ICMP error the translator itself sends for it.

use core::net::Ipv4Addr;

use crate::checksum;
use crate::config::Config;
use crate::emit::{self, Hdr4, Hdr6};
use crate::outcome::{DropReason, Emitted, Outcome};
use crate::wire::{self, Parse, field, proto};

/// Largest ICMPv4 error the translator emits (RFC 1812 §4.3.2.3).
pub(crate) const MAX_ICMP4_ERROR: usize = 576;
/// Largest ICMPv6 error the translator emits (RFC 4443 §2.4 (c)).
pub(crate) const MAX_ICMP6_ERROR: usize = 1280;

/// Why a translation stopped: a silent drop, or a drop answered by an ICMP error to the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fail {
    Drop(DropReason),
    /// Answer with this ICMP type/code; `rest` is bytes 4-7 of the ICMP header.
    Reply {
        reason: DropReason,
        ty: u8,
        code: u8,
        rest: u32,
    },
}

impl From<DropReason> for Fail {
    fn from(r: DropReason) -> Self {
        Fail::Drop(r)
    }
}

/// The IP version of the refused packet, and so of the ICMP error that answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ip {
    V4,
    V6,
}

impl Fail {
    /// What becomes of `input`: dropped, or answered with the ICMP error written into `out` (and
    /// dropped after all when the error cannot be sent).
    pub(crate) fn answer(self, cfg: &Config<'_>, ip: Ip, input: &[u8], out: &mut [u8]) -> Outcome {
        match self {
            Fail::Drop(r) => Outcome::Dropped(r),
            Fail::Reply {
                reason,
                ty,
                code,
                rest,
            } => {
                let icmp = Icmp { ty, code, rest };
                let reply = match ip {
                    Ip::V4 => reply4(cfg, input, out, icmp),
                    Ip::V6 => reply6(cfg, input, out, icmp),
                };
                match reply {
                    Ok(e) => Outcome::IcmpError { reason, reply: e },
                    Err(_) => Outcome::Dropped(reason),
                }
            }
        }
    }
}

/// The header of an ICMP error: type, code and bytes 4-7.
#[derive(Clone, Copy)]
struct Icmp {
    ty: u8,
    code: u8,
    rest: u32,
}

/// An ICMP error written into `out`, or why none could be.
type Reply = Result<Emitted, DropReason>;

/// An ICMPv4 error from the translator to the sender of `input`, quoting as much as fits in 576.
/// Fails (and the caller just drops) without an own address to send it from.
fn reply4(cfg: &Config<'_>, input: &[u8], out: &mut [u8], icmp: Icmp) -> Reply {
    let own = cfg.own_v4.ok_or(DropReason::UntranslatableSource)?;
    let ip = wire::Ipv4::parse(input, Parse::Lax)?;
    // RFC 1812 §4.3.2.7: no error about a datagram to or from a group or broadcast address.
    let group = |a: Ipv4Addr| a.is_multicast() || a.is_broadcast() || a.is_unspecified();
    if group(ip.src) || group(ip.dst) {
        return Err(DropReason::Malformed);
    }
    let head = field::IPV4_LEN + field::ICMP_LEN;
    let quote = &input[..usize::from(ip.total_len)
        .min(input.len())
        .min(MAX_ICMP4_ERROR - head)];
    let h = Hdr4 {
        tos: 0,
        id: 0,
        df: false,
        mf: false,
        offset: 0,
        ttl: 64,
        proto: proto::ICMP,
        src: own.to_bits(),
        dst: ip.src.to_bits(),
    };
    let icmp_len = field::ICMP_LEN + quote.len();
    emit::ipv4_header(out, &h, icmp_len)?;
    emit::copy(out, head, quote)?;
    let msg = &mut out[field::IPV4_LEN..head + quote.len()];
    emit::icmp_header(msg, icmp.ty, icmp.code, icmp.rest, 0);
    Ok(Emitted::new(head + quote.len(), 1))
}

/// An ICMPv6 error from the translator to the sender of `input`, quoting as much as fits in 1280.
fn reply6(cfg: &Config<'_>, input: &[u8], out: &mut [u8], icmp: Icmp) -> Reply {
    let own = cfg.own_v6.ok_or(DropReason::UntranslatableSource)?;
    let ip = wire::Ipv6::parse(input, Parse::Lax)?;
    // RFC 4443 §2.4 (e): no error to an unspecified or multicast source, nor about a packet to a
    // multicast group (its Packet Too Big exception is not taken).
    if ip.src.is_unspecified() || ip.src.is_multicast() || ip.dst.is_multicast() {
        return Err(DropReason::Malformed);
    }
    let end = (field::IPV6_LEN + usize::from(ip.payload_len)).min(input.len());
    let head = field::IPV6_LEN + field::ICMP_LEN;
    let quote = &input[..end.min(MAX_ICMP6_ERROR - head)];
    let h = Hdr6 {
        traffic_class: 0,
        next: proto::ICMPV6,
        hop_limit: 64,
        src: own.to_bits(),
        dst: ip.src.to_bits(),
    };
    let icmp_len = field::ICMP_LEN + quote.len();
    emit::ipv6_header(out, &h, None, icmp_len)?;
    emit::copy(out, head, quote)?;
    let pseudo = checksum::pseudo6(own, ip.src, proto::ICMPV6, icmp_len as u32);
    let msg = &mut out[field::IPV6_LEN..head + quote.len()];
    emit::icmp_header(msg, icmp.ty, icmp.code, icmp.rest, pseudo);
    Ok(Emitted::new(head + quote.len(), 1))
}
