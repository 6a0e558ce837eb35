//! The v2 writer: preamble, address block, then the TLVs, the CRC32C first (as HAProxy sends it).

use super::sink::Sink;
use super::{Builder, EmitError, Slot};
use crate::layout::{
    CRC32C_LEN, MAX_LEN, PREAMBLE, TLV_HEAD, UNIX_PATH, command_byte, family_byte, tlv_head,
};
use crate::{Addresses, TlvType, Transport, V2_SIGNATURE};

/// The CRC32C TLV: its head and the checksum.
const CRC32C_TLV: usize = TLV_HEAD + CRC32C_LEN;

/// A v2 header worked out and checked, ready to be written.
#[derive(Clone, Copy)]
pub(super) struct Plan {
    /// The length field: what follows the preamble.
    pub(super) len: usize,
    family: u8,
}

impl Plan {
    /// The whole header's length.
    pub(super) fn total(self) -> usize {
        PREAMBLE + self.len
    }
}

impl<'a> Builder<'a> {
    fn slots(&self) -> &[Slot<'a>] {
        &self.slots[..self.count]
    }

    fn value_len(&self, slot: &Slot<'_>) -> Result<usize, EmitError> {
        match (slot.ssl, self.ssl) {
            (true, Some(ssl)) => ssl.value_len(),
            _ => Ok(usize::from(slot.head_len) + slot.tail.len()),
        }
    }

    /// The family/transport byte, or why there is none.
    fn family_byte(&self) -> Result<u8, EmitError> {
        let transport = self.transport.unwrap_or(match self.addresses {
            Addresses::Unspec => Transport::Unspec,
            _ => Transport::Stream,
        });
        family_byte(self.addresses.family_nibble(), transport).ok_or(EmitError::NotEncodable(
            "the UNSPEC family goes with the UNSPEC transport, and only it",
        ))
    }

    /// The length field (address block and TLVs) and the family byte, or why the header cannot
    /// be written.
    pub(super) fn v2_plan(&self) -> Result<Plan, EmitError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let family = self.family_byte()?;
        if let Addresses::Unix { src, dst } = self.addresses {
            if src.len() > UNIX_PATH || dst.len() > UNIX_PATH {
                return Err(EmitError::NotEncodable(
                    "a UNIX path is longer than 108 bytes",
                ));
            }
            // A path ends at its first NUL on the wire: one inside would cut it short.
            if src.contains(&0) || dst.contains(&0) {
                return Err(EmitError::NotEncodable("a UNIX path contains a NUL byte"));
            }
        }
        let mut len = self.addresses.v2_len() + if self.crc32c { CRC32C_TLV } else { 0 };
        for slot in self.slots() {
            let value = self.value_len(slot)?;
            if value > MAX_LEN {
                return Err(EmitError::TooLong);
            }
            len += TLV_HEAD + value;
        }
        if len > MAX_LEN {
            return Err(EmitError::TooLong);
        }
        Ok(Plan { len, family })
    }

    /// Where the CRC32C value is in the written header, when there is one.
    pub(super) fn crc32c_at(&self) -> Option<usize> {
        // The CRC TLV comes right after the address block.
        self.crc32c
            .then(|| PREAMBLE + self.addresses.v2_len() + TLV_HEAD)
    }

    /// Writes a v2 header as planned, with `crc` in the CRC32C TLV if there is one.
    pub(super) fn v2_write(&self, sink: &mut impl Sink, plan: Plan, crc: u32) {
        sink.put(&V2_SIGNATURE);
        sink.put(&[command_byte(self.command), plan.family]);
        sink.put(&(plan.len as u16).to_be_bytes());
        match self.addresses {
            Addresses::Unspec => {}
            Addresses::Ipv4 { src, dst } => ip_block(
                sink,
                [src.ip().octets(), dst.ip().octets()],
                [src.port(), dst.port()],
            ),
            Addresses::Ipv6 { src, dst } => ip_block(
                sink,
                [src.ip().octets(), dst.ip().octets()],
                [src.port(), dst.port()],
            ),
            Addresses::Unix { src, dst } => {
                const ZEROS: [u8; UNIX_PATH] = [0; UNIX_PATH];
                for path in [src, dst] {
                    sink.put(path);
                    sink.put(&ZEROS[path.len()..]);
                }
            }
        }
        if self.crc32c {
            sink.put(&tlv_head(TlvType::CRC32C.0, CRC32C_LEN));
            sink.put(&crc.to_be_bytes());
        }
        for slot in self.slots() {
            let len = self.value_len(slot).unwrap_or_default();
            sink.put(&tlv_head(slot.kind.0, len));
            match (slot.ssl, self.ssl) {
                (true, Some(ssl)) => ssl.write_value(sink),
                _ => {
                    sink.put(&slot.head[..usize::from(slot.head_len)]);
                    sink.put(slot.tail);
                }
            }
        }
    }
}

/// An IPv4 or IPv6 block: both addresses, then both ports.
fn ip_block<const N: usize>(sink: &mut impl Sink, [src, dst]: [[u8; N]; 2], ports: [u16; 2]) {
    sink.put(&src);
    sink.put(&dst);
    for port in ports {
        sink.put(&port.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{sa, written};
    use crate::{Addresses, Builder, Command, Transport, V2_SIGNATURE};

    #[test]
    fn v2_bytes_exactly() {
        let b = Builder::v2_proxy(sa("192.0.2.1:56324"), sa("198.51.100.7:443"));
        let mut want = V2_SIGNATURE.to_vec();
        want.extend_from_slice(&[
            0x21, 0x11, 0, 12, 192, 0, 2, 1, 198, 51, 100, 7, 0xDC, 0x04, 0x01, 0xBB,
        ]);
        assert_eq!(written(&b), want);
        let local = written(&Builder::v2_local());
        assert_eq!(local.len(), 16);
        assert_eq!(&local[12..], &[0x20, 0x00, 0, 0]);
        let udp =
            written(&Builder::v2_proxy(sa("[::1]:53"), sa("[::2]:53")).transport(Transport::Dgram));
        assert_eq!(udp[13], 0x22);
        let unix = written(&Builder::v2(
            Command::Proxy,
            Addresses::Unix {
                src: b"/run/a",
                dst: &[b'x'; 108],
            },
        ));
        assert_eq!(
            (unix.len(), unix[13], &unix[16..22], unix[22]),
            (232, 0x31, &b"/run/a"[..], 0)
        );
    }
}
