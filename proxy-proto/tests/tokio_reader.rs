//! The tokio reader: policies per source, deadline, bytes after the header kept.
#![cfg(feature = "tokio")]

use core::net::SocketAddr;
use core::time::Duration;

use proxy_proto::tokio::{ReadError, read_header};
use proxy_proto::{Addresses, Builder, Error, Parser, Policy, TrustPolicy};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

const TRUSTED: &str = "192.0.2.10:40000";
const STRANGER: &str = "203.0.113.9:40000";

fn policy() -> TrustPolicy {
    TrustPolicy::trusted(["192.0.2.0/24".parse().unwrap()])
}

/// A deadline none of these tests reach but the slowloris one.
fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

fn peer(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

async fn read_from(
    peer_addr: &str,
    bytes: &[u8],
    policy: &TrustPolicy,
) -> Result<proxy_proto::tokio::Accepted, ReadError> {
    let (mut client, mut server) = tokio::io::duplex(4096);
    client.write_all(bytes).await.unwrap();
    drop(client); // end of stream after the bytes
    read_header(&mut server, peer(peer_addr), policy, soon(), &Parser::new()).await
}

#[tokio::test]
async fn a_trusted_source_sends_a_header_and_the_rest_is_kept() {
    let bytes = b"PROXY TCP4 198.51.100.1 192.0.2.1 5555 443\r\nGET / HTTP/1.1\r\n";
    let accepted = read_from(TRUSTED, bytes, &policy()).await.unwrap();
    assert_eq!(accepted.client_address(), Some(peer("198.51.100.1:5555")));
    assert_eq!(&accepted.rest()[..], b"GET / HTTP/1.1\r\n");
    let header = accepted.header().unwrap();
    assert_eq!(&header.as_bytes()[..], &bytes[..44]);
    assert_eq!(header.header().len(), 44);
}

#[tokio::test]
async fn owned_v2_headers_keep_their_tlvs_and_unix_paths() {
    let b = Builder::v2(
        proxy_proto::Command::Proxy,
        Addresses::Unix {
            src: b"/c",
            dst: b"/s",
        },
    )
    .authority("x.example")
    .crc32c();
    let mut bytes = vec![0; b.len().unwrap()];
    b.write(&mut bytes).unwrap();
    bytes.extend_from_slice(b"tail");
    let accepted = read_from(TRUSTED, &bytes, &policy()).await.unwrap();
    let h = accepted.header().unwrap().header();
    assert_eq!(
        h.addresses(),
        Addresses::Unix {
            src: b"/c",
            dst: b"/s"
        }
    );
    assert_eq!(h.authority(), Some("x.example"));
    assert!(h.crc32c().is_some());
    assert_eq!(&accepted.rest()[..], b"tail");
}

#[tokio::test]
async fn a_header_over_several_reads_keeps_the_bytes_after_it() {
    let (mut client, mut server) = tokio::io::duplex(4096);
    let writer = tokio::spawn(async move {
        for chunk in [
            &b"PROXY TCP6 2001:db8::1 "[..],
            b"2001:db8::2 1",
            b"234 443\r\nhel",
            b"lo",
        ] {
            client.write_all(chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        client
    });
    let accepted = read_header(
        &mut server,
        peer(TRUSTED),
        &policy(),
        soon(),
        &Parser::new(),
    )
    .await
    .unwrap();
    assert_eq!(accepted.client_address(), Some(peer("[2001:db8::1]:1234")));
    let mut rest = accepted.rest().to_vec();
    drop(writer.await.unwrap());
    tokio::io::AsyncReadExt::read_to_end(&mut server, &mut rest)
        .await
        .unwrap();
    assert_eq!(rest, b"hello", "every byte after the header, once");
}

#[tokio::test]
async fn require_refuses_a_connection_without_a_header() {
    let e = read_from(TRUSTED, b"GET / HTTP/1.1\r\n", &policy())
        .await
        .unwrap_err();
    assert!(matches!(e, ReadError::Missing), "{e}");
}

#[tokio::test]
async fn reject_refuses_a_header_from_an_untrusted_source() {
    let e = read_from(STRANGER, b"PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n", &policy())
        .await
        .unwrap_err();
    assert!(matches!(e, ReadError::Forbidden), "{e}");
    // Without a header, its bytes are the application's.
    let ok = read_from(STRANGER, b"\x16\x03\x01\x00\x05hello", &policy())
        .await
        .unwrap();
    assert!(ok.header().is_none());
    assert_eq!(&ok.rest()[..], b"\x16\x03\x01\x00\x05hello");
}

#[tokio::test]
async fn use_takes_a_header_when_there_is_one() {
    let p = TrustPolicy::new(Policy::Use);
    let with = read_from(STRANGER, b"PROXY UNKNOWN\r\nx", &p)
        .await
        .unwrap();
    assert!(with.header().is_some());
    assert_eq!(
        with.client_address(),
        None,
        "UNKNOWN: use the socket's address"
    );
    let without = read_from(STRANGER, b"SSH-2.0-x\r\n", &p).await.unwrap();
    assert!(without.header().is_none());
    assert_eq!(&without.rest()[..], b"SSH-2.0-x\r\n");
}

#[tokio::test]
async fn ignore_reads_nothing() {
    let p = TrustPolicy::new(Policy::Ignore);
    let (_client, mut server) = tokio::io::duplex(64);
    let accepted = read_header(&mut server, peer(STRANGER), &p, soon(), &Parser::new())
        .await
        .unwrap();
    assert!(accepted.header().is_none() && accepted.rest().is_empty());
}

#[tokio::test]
async fn malformed_and_truncated_headers() {
    let e = read_from(TRUSTED, b"PROXY TCP4 1.1.1.1 2.2.2.2 +1 2\r\n", &policy())
        .await
        .unwrap_err();
    assert!(matches!(e, ReadError::Invalid(Error::V1(_))), "{e}");
    let e = read_from(TRUSTED, b"PROXY TCP4 1.1.1.1", &policy())
        .await
        .unwrap_err();
    assert!(matches!(e, ReadError::Closed { received: 18 }), "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_slowloris_client_is_cut_at_the_deadline() {
    let (mut client, mut server) = tokio::io::duplex(64);
    let drip = tokio::spawn(async move {
        for b in b"PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n" {
            if client.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(3);
    let e = read_header(
        &mut server,
        peer(TRUSTED),
        &policy(),
        deadline,
        &Parser::new(),
    )
    .await
    .unwrap_err();
    // A byte a second from the start: three or four of them (the fourth is due at the deadline).
    assert!(matches!(e, ReadError::Timeout { received: 3..=4 }), "{e}");
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    drop(server);
    drip.await.unwrap();
}

/// The trust types moved to the crate root; the old paths still name the same types.
#[test]
fn trust_types_keep_their_tokio_paths() {
    let cidr: proxy_proto::tokio::Cidr = "192.0.2.0/24".parse().unwrap();
    let policy: proxy_proto::TrustPolicy = proxy_proto::tokio::TrustPolicy::trusted([cidr]);
    let _: proxy_proto::Policy = proxy_proto::tokio::Policy::Require;
    let _: proxy_proto::CidrError = "x".parse::<proxy_proto::Cidr>().unwrap_err();
    let _: proxy_proto::tokio::CidrError = proxy_proto::CidrError;
    drop(policy);
}
