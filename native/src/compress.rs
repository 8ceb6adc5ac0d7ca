//! gzip for what leaves the router: OTLP/HTTP export bodies and stored objects; and the crc32
//! that guards the spool's records.
//!
//! zlib-rs (through flate2) rather than the zlib CPython links: the same format at 1.3 to 1.6x
//! less CPU on OTLP requests at levels 1 and 6 (`python bench/compress_inprocess.py`), with a
//! slightly larger output at level 1, and the GIL is let go while it runs.  Inflating requests stays in Python (receivers/payload.py): it needs
//! zlib's member-by-member control under a cap, and is cheap beside this.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

/// `data` as one gzip member at `level` (0 to 9; higher levels are taken as 9).
pub fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    // Output of level 1 is about a fifth of the input for OTLP; start at a quarter.
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        Compression::new(level.min(9)),
    );
    // Writing into a Vec cannot fail.
    encoder.write_all(data).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// The CRC-32 of zlib (`zlib.crc32`), going on from `start` (the checksum so far, its final xor
/// undone to go on): crc-fast folds it with the widest carry-less multiply the CPU has, 65 GB/s
/// with AVX-512 on this machine against 7 for CPython's zlib and 17 for zlib-rs.
pub fn crc32(data: &[u8], start: u32) -> u32 {
    let mut digest = crc_fast::Digest::new_with_init_state(
        crc_fast::CrcAlgorithm::Crc32IsoHdlc,
        u64::from(start ^ 0xffff_ffff),
    );
    digest.update(data);
    digest.finalize() as u32
}

#[cfg(feature = "python")]
pub mod python {
    use pyo3::prelude::*;
    use pyo3::types::PyBytes;

    /// `data` gzipped at `level` (0 to 9), without holding the GIL while it compresses.
    #[pyfunction]
    pub fn gzip<'py>(py: Python<'py>, data: &[u8], level: u32) -> Bound<'py, PyBytes> {
        let out = py.allow_threads(|| super::gzip(data, level));
        PyBytes::new(py, &out)
    }

    /// `zlib.crc32(data, start)`, faster. A spool record's crc is microseconds and holds the
    /// GIL; a stored object's (up to a rotation's 64 MB, milliseconds) lets the loop run.
    #[pyfunction]
    #[pyo3(signature = (data, start=0))]
    pub fn crc32(py: Python<'_>, data: &[u8], start: u32) -> u32 {
        if data.len() >= 1 << 20 {
            py.allow_threads(|| super::crc32(data, start))
        } else {
            super::crc32(data, start)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{crc32, gzip};
    use std::io::Read;

    #[test]
    fn round_trips_at_every_level() {
        let data: Vec<u8> = (0..100_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 997) as u8)
            .collect();
        for level in 0..=10 {
            let packed = gzip(&data, level);
            assert_eq!(&packed[..2], b"\x1f\x8b");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&packed[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "level {level}");
        }
        assert!(gzip(&data, 6).len() < data.len() / 4);
    }

    #[test]
    fn crc32_is_zlibs() {
        // zlib.crc32(b"123456789") is the CRC-32 check value; going on from a start is chaining.
        assert_eq!(crc32(b"123456789", 0), 0xCBF4_3926);
        assert_eq!(crc32(b"", 0), 0);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
        assert_eq!(
            crc32(&data[1000..], crc32(&data[..1000], 0)),
            crc32(&data, 0)
        );
    }

    #[test]
    fn empty_input_is_a_valid_member() {
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gzip(b"", 1)[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
