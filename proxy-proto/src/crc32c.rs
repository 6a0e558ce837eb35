//! CRC-32C (Castagnoli, RFC 4960 appendix B), as the v2 CRC32C TLV uses it.
//!
//! With `std`, the `crc32c` crate's SSE4.2/ARMv8 instructions do the work (we forbid `unsafe`, so
//! we cannot call them ourselves); without it, a slicing-by-8 table built at compile time.

#[cfg_attr(feature = "std", allow(dead_code))]
const POLY: u32 = 0x82F6_3B78; // reflected 0x1EDC6F41

#[cfg_attr(feature = "std", allow(dead_code))]
const TABLES: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            k += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        s += 1;
    }
    t
};

/// Continues a checksum over more bytes (start with 0), in software.
#[cfg_attr(feature = "std", allow(dead_code))] // the fallback, and the reference in tests
pub(crate) fn append_software(crc: u32, bytes: &[u8]) -> u32 {
    let mut crc = !crc;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let lo = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        crc = TABLES[7][(lo & 0xFF) as usize]
            ^ TABLES[6][((lo >> 8) & 0xFF) as usize]
            ^ TABLES[5][((lo >> 16) & 0xFF) as usize]
            ^ TABLES[4][(lo >> 24) as usize]
            ^ TABLES[3][usize::from(c[4])]
            ^ TABLES[2][usize::from(c[5])]
            ^ TABLES[1][usize::from(c[6])]
            ^ TABLES[0][usize::from(c[7])];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ TABLES[0][((crc ^ u32::from(b)) & 0xFF) as usize];
    }
    !crc
}

/// Continues a checksum over more bytes (start with 0), in hardware where there is `std`.
pub(crate) fn append(crc: u32, bytes: &[u8]) -> u32 {
    #[cfg(feature = "std")]
    {
        ::crc32c::crc32c_append(crc, bytes)
    }
    #[cfg(not(feature = "std"))]
    {
        append_software(crc, bytes)
    }
}

/// The checksum of `bytes`.
pub(crate) fn checksum(bytes: &[u8]) -> u32 {
    append(0, bytes)
}

/// The checksum of `bytes`, always in software (for tests and fuzzing against the fast path).
#[allow(dead_code)] // for tests and the fuzz targets
pub(crate) fn checksum_software(bytes: &[u8]) -> u32 {
    append_software(0, bytes)
}

/// The checksum of a header with the 4 bytes at `zeroed` counted as zeros, as the TLV requires.
pub(crate) fn header_checksum(header: &[u8], zeroed: usize) -> u32 {
    let crc = append(0, &header[..zeroed]);
    let crc = append(crc, &[0; 4]);
    append(crc, &header[zeroed + 4..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_test_vectors() {
        assert_eq!(checksum_software(b"123456789"), 0xE306_9283);
        assert_eq!(checksum(b"123456789"), 0xE306_9283);
        // RFC 3720 B.4: 32 bytes of zeros, of 0xFF, and an ascending sequence.
        assert_eq!(checksum_software(&[0; 32]), 0x8A91_36AA);
        assert_eq!(checksum_software(&[0xFF; 32]), 0x62A8_AB43);
        let ascending: [u8; 32] = core::array::from_fn(|i| i as u8);
        assert_eq!(checksum_software(&ascending), 0x46DD_794E);
        assert_eq!(checksum_software(b""), 0);
    }

    #[test]
    fn software_matches_hardware_at_every_length_and_split() {
        let data: [u8; 300] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        for len in 0..data.len() {
            let whole = checksum_software(&data[..len]);
            assert_eq!(whole, checksum(&data[..len]), "len {len}");
            let split = len / 3;
            assert_eq!(
                append_software(append_software(0, &data[..split]), &data[split..len]),
                whole
            );
        }
    }
}
