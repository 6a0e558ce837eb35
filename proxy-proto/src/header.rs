//! A parsed header: what the proxy told us about the connection.

use core::net::SocketAddr;

use crate::{Addresses, Ssl, TlvType, Tlvs};

/// The protocol version a header was sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// The text line, `PROXY TCP4 …\r\n`.
    V1,
    /// The binary block with TLVs.
    V2,
}

/// What the sender asks the receiver to do with the addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// The connection was made by the proxy itself (a health check): use the socket's own
    /// addresses. v1 has no LOCAL; its `UNKNOWN` line parses as [`Command::Proxy`] with
    /// [`Addresses::Unspec`].
    Local,
    /// Relayed for a client: the addresses are the client's.
    Proxy,
}

/// The transport protocol of the relayed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Unknown or unspecified (v2 `0x0`, v1 `UNKNOWN`).
    Unspec,
    /// `SOCK_STREAM`: TCP, or a UNIX stream socket.
    Stream,
    /// `SOCK_DGRAM`: UDP, or a UNIX datagram socket.
    Dgram,
}

/// A PROXY header, borrowed from the bytes it was parsed from.
///
/// All TLVs were checked when it was parsed (structure, lengths, the CRC32C), so none of the
/// accessors can fail; those that return `Option` say whether the TLV was sent. When a type is
/// sent more than once (other than CRC32C, which may be sent once), the accessors return the
/// first; [`Header::tlvs`] yields all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub(crate) version: Version,
    pub(crate) command: Command,
    pub(crate) transport: Transport,
    pub(crate) addresses: Addresses<'a>,
    pub(crate) tlvs: &'a [u8],
    pub(crate) len: usize,
}

impl<'a> Header<'a> {
    /// The protocol version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// LOCAL or PROXY.
    pub fn command(&self) -> Command {
        self.command
    }

    /// The relayed connection's transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The addresses, as sent.
    pub fn addresses(&self) -> Addresses<'a> {
        self.addresses
    }

    /// How many bytes the header took: the application's bytes start right after.
    #[allow(clippy::len_without_is_empty)] // a header is never empty
    pub fn len(&self) -> usize {
        self.len
    }

    /// The client's address, for a PROXY command over IPv4 or IPv6. `None` for LOCAL (use the
    /// socket's peer address), UNSPEC and UNIX. As sent: an IPv4 client behind a sender that
    /// writes v4-mapped IPv6 comes back as `[::ffff:a.b.c.d]`; `ip().to_canonical()` unmaps it.
    pub fn source(&self) -> Option<SocketAddr> {
        match self.command {
            Command::Proxy => self.addresses.source(),
            Command::Local => None,
        }
    }

    /// The address the client connected to, under the same rules as [`Header::source`].
    pub fn destination(&self) -> Option<SocketAddr> {
        match self.command {
            Command::Proxy => self.addresses.destination(),
            Command::Local => None,
        }
    }

    /// Every TLV in the order sent (v1: none).
    pub fn tlvs(&self) -> Tlvs<'a> {
        Tlvs::new_checked(self.tlvs)
    }

    /// The raw TLV region (everything after the address block); empty for v1.
    pub fn tlv_bytes(&self) -> &'a [u8] {
        self.tlvs
    }

    /// The value of the first TLV of this type.
    pub fn tlv(&self, kind: TlvType) -> Option<&'a [u8]> {
        self.tlvs().find(|t| t.kind == kind).map(|t| t.value)
    }

    /// `PP2_TYPE_ALPN`: the negotiated application protocol, e.g. `h2`.
    pub fn alpn(&self) -> Option<&'a [u8]> {
        self.tlv(TlvType::ALPN)
    }

    /// `PP2_TYPE_AUTHORITY`: the host name the client asked for (the TLS SNI). Checked to be UTF-8.
    pub fn authority(&self) -> Option<&'a str> {
        self.tlv(TlvType::AUTHORITY)
            .and_then(|v| core::str::from_utf8(v).ok())
    }

    /// `PP2_TYPE_CRC32C`: the checksum sent, already verified against the header.
    pub fn crc32c(&self) -> Option<u32> {
        self.tlv(TlvType::CRC32C).and_then(crate::tlv::be_u32)
    }

    /// `PP2_TYPE_UNIQUE_ID`: an opaque connection id of at most 128 bytes.
    pub fn unique_id(&self) -> Option<&'a [u8]> {
        self.tlv(TlvType::UNIQUE_ID)
    }

    /// `PP2_TYPE_SSL`: how the client connected to the proxy over TLS, with its sub-TLVs.
    pub fn ssl(&self) -> Option<Ssl<'a>> {
        self.tlv(TlvType::SSL).map(Ssl::new_checked)
    }

    /// `PP2_TYPE_NETNS`: the network namespace the connection was accepted in.
    pub fn netns(&self) -> Option<&'a str> {
        self.tlv(TlvType::NETNS)
            .and_then(|v| core::str::from_utf8(v).ok())
    }

    /// AWS (type `0xEA`, sub-type `0x01`): the VPC endpoint id, e.g. `vpce-08d2bf15fac5001c9`.
    pub fn aws_vpc_endpoint_id(&self) -> Option<&'a str> {
        self.tlvs()
            .filter(|t| t.kind == TlvType::AWS)
            .find_map(|t| match t.value.split_first() {
                Some((0x01, id)) => core::str::from_utf8(id).ok(),
                _ => None,
            })
    }

    /// Azure (type `0xEE`, sub-type `0x01`): the Private Link `LINKID`, a little-endian u32.
    pub fn azure_private_link_id(&self) -> Option<u32> {
        self.tlvs()
            .filter(|t| t.kind == TlvType::AZURE)
            .find_map(|t| match *t.value {
                [0x01, a, b, c, d] => Some(u32::from_le_bytes([a, b, c, d])),
                _ => None,
            })
    }

    /// Google Cloud (type `0xE0`): the Private Service Connect connection id, a big-endian u64.
    ///
    /// `0xE0` is in the custom range: another sender may use it for something else, so a value
    /// that is not 8 bytes long is not an error — it is just not a PSC id.
    pub fn gcp_psc_connection_id(&self) -> Option<u64> {
        self.tlvs()
            .filter(|t| t.kind == TlvType::GCP)
            .find_map(|t| t.value.try_into().ok().map(u64::from_be_bytes))
    }
}
