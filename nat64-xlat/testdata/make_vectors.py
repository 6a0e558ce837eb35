#!/usr/bin/env python3
"""Writes the reference translations in this directory from first principles: each packet pair is
built field by field as RFC 791 / RFC 8200 / RFC 6052 / RFC 7915 describe, and every checksum is
summed from scratch (RFC 1071), not updated as the translator does. `--check` compares with the
committed files instead of writing them.

    python3 make_vectors.py [--check]
"""

import ipaddress
import pathlib
import struct
import sys


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def v4(a: str) -> bytes:
    return ipaddress.IPv4Address(a).packed


def v6(a: str) -> bytes:
    return ipaddress.IPv6Address(a).packed


def embed40(a: str) -> bytes:
    """RFC 6052 §2.2 under 2001:db8:100::/40: IPv4 bytes 0-2 in bytes 5-7, the u octet, byte 3."""
    b = v4(a)
    return v6("2001:db8:100::")[:5] + b[:3] + b"\0" + b[3:] + bytes(6)


def l4(proto: int, seg: bytes, pseudo: bytes, at: int) -> bytes:
    seg = seg[:at] + b"\0\0" + seg[at + 2 :]
    c = csum(pseudo + seg)
    return seg[:at] + struct.pack("!H", c) + seg[at + 2 :]


def pseudo4(src: bytes, dst: bytes, proto: int, n: int) -> bytes:
    return src + dst + struct.pack("!BBH", 0, proto, n)


def pseudo6(src: bytes, dst: bytes, nh: int, n: int) -> bytes:
    return src + dst + struct.pack("!IxxxB", n, nh)


def ipv4(tos, ident, flags, ttl, proto, src, dst, payload) -> bytes:
    h = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), ident, flags, ttl, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload


def ipv6(tc, nh, hop, src, dst, payload) -> bytes:
    return struct.pack("!IHBB", (6 << 28) | (tc << 20), len(payload), nh, hop) + src + dst + payload


def vectors():
    # UDP through the Well-Known Prefix (RFC 6052 §2.1), TOS 0x28 copied to the traffic class.
    s4, d4 = v4("8.8.8.8"), v4("1.1.1.1")
    s6, d6 = v6("64:ff9b::8.8.8.8"), v6("64:ff9b::1.1.1.1")
    udp = struct.pack("!HHHH", 53, 5353, 16, 0) + b"sixgate!"
    yield "udp-wkp.v4.bin", ipv4(0x28, 0x1234, 0x4000, 64, 17, s4, d4, l4(17, udp, pseudo4(s4, d4, 17, 16), 6))
    yield "udp-wkp.v6.bin", ipv6(0x28, 17, 63, s6, d6, l4(17, udp, pseudo6(s6, d6, 17, 16), 6))

    # Echo Request 8 -> 128 through a /40 prefix; the ICMPv6 checksum gains the pseudo-header.
    s4, d4 = v4("198.51.100.2"), v4("192.0.2.33")
    s6, d6 = embed40("198.51.100.2"), embed40("192.0.2.33")
    body = struct.pack("!HH", 0x4242, 7) + b"ping" * 4
    yield "echo-40.v4.bin", ipv4(0, 0x1234, 0x4000, 64, 1, s4, d4, l4(1, b"\x08\0\0\0" + body, b"", 2))
    icmp6 = l4(58, b"\x80\0\0\0" + body, pseudo6(s6, d6, 58, 4 + len(body)), 2)
    yield "echo-40.v6.bin", ipv6(0, 58, 63, s6, d6, icmp6)

    # TCP SYN in an IPv6 atomic fragment (RFC 7915 §5.1.1): the IPv4 ID is the low 16 bits of the
    # fragment ID, DF clear, no Fragment header on the IPv4 side.
    s6, d6 = embed40("192.0.2.33"), embed40("198.51.100.2")
    s4, d4 = v4("192.0.2.33"), v4("198.51.100.2")
    syn = struct.pack("!HHIIBBHHH", 0xC001, 443, 1, 0, 0x50, 0x02, 0xFFFF, 0, 0)
    frag = struct.pack("!BBHI", 6, 0, 0, 0xABCD1234)
    yield "tcp-atomic.v6.bin", ipv6(0, 44, 9, s6, d6, frag + l4(6, syn, pseudo6(s6, d6, 6, 20), 16))
    yield "tcp-atomic.v4.bin", ipv4(0, 0x1234, 0, 8, 6, s4, d4, l4(6, syn, pseudo4(s4, d4, 6, 20), 16))


def main() -> int:
    here = pathlib.Path(__file__).resolve().parent
    check = "--check" in sys.argv[1:]
    bad = 0
    for name, data in vectors():
        path = here / name
        if check:
            if path.read_bytes() != data:
                print(f"{name}: differs")
                bad += 1
        else:
            path.write_bytes(data)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
