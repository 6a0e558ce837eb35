//! Reading a header off a tokio stream, with a deadline and a policy on who may send one.
//!
//! Call [`read_header`] **in the task that serves the connection, never in the accept loop**: a
//! client that sends its header one byte a minute must only cost its own task, up to the
//! deadline, while other connections are accepted.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use proxy_proto::{Parser, TrustPolicy};
//! use proxy_proto::tokio::read_header;
//! use tokio::time::Instant;
//!
//! # async fn serve() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("[::]:8443").await?;
//! // Our load balancers must send a header; nobody else may.
//! let policy = Arc::new(TrustPolicy::trusted(["192.0.2.0/24".parse().unwrap()]));
//! loop {
//!     let (mut stream, peer) = listener.accept().await?;
//!     let policy = Arc::clone(&policy);
//!     tokio::spawn(async move {
//!         // One deadline for everything before the first byte is served.
//!         let deadline = Instant::now() + Duration::from_secs(5);
//!         match read_header(&mut stream, peer, &policy, deadline, &Parser::new()).await {
//!             Ok(accepted) => {
//!                 let client = accepted.client_address().unwrap_or(peer);
//!                 // ... serve `client`, starting with the bytes in `accepted.rest()`
//! #               let _ = client;
//!             }
//!             Err(e) => eprintln!("{peer}: dropped: {e}"),
//!         }
//!     });
//! }
//! # }
//! ```

use core::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use core::ops::Range;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use crate::{Addresses, Command, Error, Header, Parser, Status, Transport, Version};

/// Re-exported from the crate root, where they live now: they need no runtime (and `Cidr`,
/// `CidrError` and `Policy` no allocator). Kept here so code written against this module compiles.
#[doc(no_inline)]
pub use crate::{Cidr, CidrError, Policy, TrustPolicy};

/// Why [`read_header`] gave up on a connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The header was malformed (or too large).
    #[error("{0}")]
    Invalid(Error),
    /// The source must send a header and its first bytes are not one.
    #[error("a PROXY header is required from this source")]
    Missing,
    /// The source may not send a header and did.
    #[error("a PROXY header is not accepted from this source")]
    Forbidden,
    /// The peer closed the connection before the header was whole.
    #[error("connection closed after {received} bytes, before the PROXY header was complete")]
    Closed {
        /// Bytes received before the end.
        received: usize,
    },
    /// The deadline passed first.
    #[error("no complete PROXY header before the deadline ({received} bytes received)")]
    Timeout {
        /// Bytes received before the deadline.
        received: usize,
    },
    /// Reading failed.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// What [`read_header`] read: the header, if one was taken, and the bytes that came after it.
#[derive(Debug, Clone)]
pub struct Accepted {
    header: Option<OwnedHeader>,
    rest: Bytes,
}

impl Accepted {
    /// The header, if there was one.
    pub fn header(&self) -> Option<&OwnedHeader> {
        self.header.as_ref()
    }

    /// Bytes read past the header (or all bytes read, when there was none): the application's
    /// first bytes, to be handled before reading the stream again.
    pub fn rest(&self) -> &Bytes {
        &self.rest
    }

    /// The client's address from a PROXY header, `None` without one or for LOCAL/UNSPEC/UNIX:
    /// then the socket's peer address is the client.
    pub fn client_address(&self) -> Option<SocketAddr> {
        self.header.as_ref().and_then(|h| h.header().source())
    }

    /// The header and the bytes after it.
    pub fn into_parts(self) -> (Option<OwnedHeader>, Bytes) {
        (self.header, self.rest)
    }
}

/// A parsed header that owns its bytes.
#[derive(Debug, Clone)]
pub struct OwnedHeader {
    raw: Bytes,
    version: Version,
    command: Command,
    transport: Transport,
    addresses: OwnedAddresses,
    tlvs: Range<usize>,
}

#[derive(Debug, Clone, Copy)]
enum OwnedAddresses {
    Unspec,
    Ipv4(SocketAddrV4, SocketAddrV4),
    Ipv6(SocketAddrV6, SocketAddrV6),
    /// Path lengths; v2 places the paths at fixed offsets.
    Unix(usize, usize),
}

impl OwnedHeader {
    fn new(header: &Header<'_>, raw: Bytes) -> Self {
        let addresses = match header.addresses {
            Addresses::Unspec => OwnedAddresses::Unspec,
            Addresses::Ipv4 { src, dst } => OwnedAddresses::Ipv4(src, dst),
            Addresses::Ipv6 { src, dst } => OwnedAddresses::Ipv6(src, dst),
            Addresses::Unix { src, dst } => OwnedAddresses::Unix(src.len(), dst.len()),
        };
        OwnedHeader {
            version: header.version,
            command: header.command,
            transport: header.transport,
            addresses,
            // The TLV region is always the header's tail.
            tlvs: header.len - header.tlvs.len()..header.len,
            raw,
        }
    }

    /// The header, borrowed from the bytes this owns.
    pub fn header(&self) -> Header<'_> {
        const UNIX_SRC: usize = 16;
        const UNIX_DST: usize = 16 + 108;
        let addresses = match self.addresses {
            OwnedAddresses::Unspec => Addresses::Unspec,
            OwnedAddresses::Ipv4(src, dst) => Addresses::Ipv4 { src, dst },
            OwnedAddresses::Ipv6(src, dst) => Addresses::Ipv6 { src, dst },
            OwnedAddresses::Unix(s, d) => Addresses::Unix {
                src: &self.raw[UNIX_SRC..UNIX_SRC + s],
                dst: &self.raw[UNIX_DST..UNIX_DST + d],
            },
        };
        Header {
            version: self.version,
            command: self.command,
            transport: self.transport,
            addresses,
            tlvs: &self.raw[self.tlvs.clone()],
            len: self.raw.len(),
        }
    }

    /// The header's bytes as received.
    pub fn as_bytes(&self) -> &Bytes {
        &self.raw
    }
}

/// Reads a PROXY header off `stream` from `peer`, as `policy` says for that peer, before
/// `deadline`, with `parser`'s size cap and v1 leniency. See the [module docs](self) for where to
/// call it.
///
/// The deadline is an instant, as in `sni_peek::tokio::peek`, so that one budget covers the header
/// and whatever is read after it; the specification suggests at least 3 s, enough for a lost
/// segment to be sent again.
pub async fn read_header<S>(
    stream: &mut S,
    peer: SocketAddr,
    policy: &TrustPolicy,
    deadline: Instant,
    parser: &Parser,
) -> Result<Accepted, ReadError>
where
    S: AsyncRead + Unpin + ?Sized,
{
    let policy = policy.policy_for(peer.ip());
    if policy == Policy::Ignore {
        return Ok(Accepted {
            header: None,
            rest: Bytes::new(),
        });
    }
    read(stream, policy, deadline, parser).await
}

async fn read<S>(
    stream: &mut S,
    policy: Policy,
    deadline: Instant,
    parser: &Parser,
) -> Result<Accepted, ReadError>
where
    S: AsyncRead + Unpin + ?Sized,
{
    let mut buf = BytesMut::with_capacity(512);
    loop {
        let needed = match parser.parse(&buf) {
            Ok(Status::Complete(_)) if policy == Policy::Reject => {
                return Err(ReadError::Forbidden);
            }
            Ok(Status::Complete(header)) => {
                // Take the parsed fields first: `header` borrows `buf`, which is split next.
                let (len, parts) = (header.len(), OwnedHeader::new(&header, Bytes::new()));
                let header = OwnedHeader {
                    raw: buf.split_to(len).freeze(),
                    ..parts
                };
                return Ok(Accepted {
                    header: Some(header),
                    rest: buf.freeze(),
                });
            }
            Ok(Status::Partial(needed)) => needed.min(),
            Err(Error::NotProxy) if policy == Policy::Require => return Err(ReadError::Missing),
            Err(Error::NotProxy) => {
                return Ok(Accepted {
                    header: None,
                    rest: buf.freeze(),
                });
            }
            Err(e) => return Err(ReadError::Invalid(e)),
        };
        buf.reserve(needed.max(512));
        let received = buf.len();
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Err(_elapsed) => return Err(ReadError::Timeout { received }),
            Ok(Err(e)) => return Err(ReadError::Io(e)),
            Ok(Ok(0)) => return Err(ReadError::Closed { received }),
            Ok(Ok(_)) => {}
        }
    }
}
