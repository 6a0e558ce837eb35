//! The v1 writer: one text line, its length known before it is written.

use super::sink::Sink;
use super::{Builder, EmitError};
use crate::ip_text::{Text, ipv4_text, ipv6_text, port_text};
use crate::layout::v1::{CRLF, PROXY, TCP4, TCP6, UNKNOWN};
use crate::{Addresses, Transport};

/// A v1 line, its address text already formatted.
pub(super) struct V1Line {
    proto: &'static [u8],
    texts: Option<[Text; 4]>,
}

impl V1Line {
    pub(super) fn len(&self) -> usize {
        let fields: usize = self
            .texts
            .iter()
            .flatten()
            .map(|t| 1 + t.as_bytes().len())
            .sum();
        PROXY.len() + 1 + self.proto.len() + fields + CRLF.len()
    }

    pub(super) fn write_to(&self, sink: &mut impl Sink) {
        sink.put(PROXY);
        sink.put(b" ");
        sink.put(self.proto);
        for text in self.texts.iter().flatten() {
            sink.put(b" ");
            sink.put(text.as_bytes());
        }
        sink.put(CRLF);
    }
}

impl Builder<'_> {
    /// The line, or why this builder has none.
    pub(super) fn v1_line(&self) -> Result<V1Line, EmitError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.count > 0 || self.crc32c {
            return Err(EmitError::NotEncodable("v1 carries no TLVs"));
        }
        if matches!(self.transport, Some(Transport::Dgram)) {
            return Err(EmitError::NotEncodable("v1 carries TCP only"));
        }
        let (proto, [src, dst], ports) = match self.addresses {
            Addresses::Unspec => {
                return Ok(V1Line {
                    proto: UNKNOWN,
                    texts: None,
                });
            }
            Addresses::Ipv4 { src, dst } => {
                let ips = [ipv4_text(*src.ip()), ipv4_text(*dst.ip())];
                (TCP4, ips, [src.port(), dst.port()])
            }
            Addresses::Ipv6 { src, dst } => {
                let ips = [ipv6_text(*src.ip()), ipv6_text(*dst.ip())];
                (TCP6, ips, [src.port(), dst.port()])
            }
            Addresses::Unix { .. } => {
                return Err(EmitError::NotEncodable("v1 carries no UNIX addresses"));
            }
        };
        let [src_port, dst_port] = ports.map(port_text);
        Ok(V1Line {
            proto,
            texts: Some([src, dst, src_port, dst_port]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{sa, written};
    use crate::{Addresses, Builder, EmitError, Transport};

    #[test]
    fn v1_lines() {
        let tcp4 = Builder::v1(Addresses::from_pair(
            sa("192.0.2.1:56324"),
            sa("198.51.100.7:443"),
        ));
        assert_eq!(
            written(&tcp4),
            b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n"
        );
        let tcp6 = Builder::v1(Addresses::from_pair(
            sa("[2001:db8:0:0:1::1]:1"),
            sa("[::1]:65535"),
        ));
        assert_eq!(
            written(&tcp6),
            b"PROXY TCP6 2001:db8::1:0:0:1 ::1 1 65535\r\n"
        );
        let mixed = Builder::v1(Addresses::from_pair(
            sa("192.0.2.1:56324"),
            sa("[2001:db8::80]:443"),
        ));
        assert_eq!(
            written(&mixed),
            b"PROXY TCP6 ::ffff:192.0.2.1 2001:db8::80 56324 443\r\n"
        );
        assert_eq!(
            written(&Builder::v1(Addresses::Unspec)),
            b"PROXY UNKNOWN\r\n"
        );
    }

    #[test]
    fn v1_refuses_what_it_cannot_carry() {
        let a = Addresses::from_pair(sa("192.0.2.1:1"), sa("192.0.2.2:2"));
        let mut buf = [0u8; 128];
        for b in [
            Builder::v1(a).alpn(b"h2"),
            Builder::v1(a).crc32c(),
            Builder::v1(a).transport(Transport::Dgram),
            Builder::v1(Addresses::Unix {
                src: b"/a",
                dst: b"/b",
            }),
        ] {
            assert!(matches!(b.len(), Err(EmitError::NotEncodable(_))));
            assert!(matches!(b.write(&mut buf), Err(EmitError::NotEncodable(_))));
        }
    }
}
