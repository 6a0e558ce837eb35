//! A real TLS ClientHello, as rustls (ring provider) writes it, for tests that need a client's
//! first bytes without a handshake. Shared through `#[path]`.

use std::sync::Arc;

/// The first flight of a rustls client that asks for `sni`.
pub(crate) fn client_hello(sni: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = sni.to_owned().try_into().unwrap();
    let mut tls = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut hello = Vec::new();
    tls.write_tls(&mut hello).unwrap();
    hello
}
