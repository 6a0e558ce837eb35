//! Arbitrary bytes through every parser configuration: no panic, never past the input, and a
//! complete header parses the same from exactly its own bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_proto::{Parser, Status};

fuzz_target!(|data: &[u8]| {
    for parser in [
        Parser::new(),
        Parser::new().lenient_v1(true),
        Parser::new().max_v2_len(65_551),
        Parser::new().max_v2_len(16),
    ] {
        for result in [parser.parse(data), parser.parse_v1(data), parser.parse_v2(data)] {
            let Ok(Status::Complete(h)) = result else { continue };
            assert!(h.len() <= data.len());
            let again = parser.parse(&data[..h.len()]).unwrap().complete().unwrap();
            assert_eq!(again, h);
            // Every accessor answers without panicking on a checked header.
            let _ = (h.source(), h.destination(), h.alpn(), h.authority(), h.crc32c(), h.unique_id());
            let _ = (h.netns(), h.aws_vpc_endpoint_id(), h.azure_private_link_id(), h.gcp_psc_connection_id());
            if let Some(ssl) = h.ssl() {
                let _ = (ssl.client(), ssl.verify(), ssl.version(), ssl.cn(), ssl.client_cert());
                assert!(ssl.sub_tlvs().count() <= data.len());
            }
            let total: usize = h.tlvs().map(|t| 3 + t.value.len()).sum();
            assert_eq!(total, h.tlv_bytes().len());
        }
    }
    assert_eq!(
        proxy_proto::internal::crc32c(data),
        proxy_proto::internal::crc32c_software(data)
    );
});
