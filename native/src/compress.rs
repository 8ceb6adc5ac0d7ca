//! gzip for what leaves the router: OTLP/HTTP export bodies and stored objects.
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
}

#[cfg(test)]
mod tests {
    use super::gzip;
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
    fn empty_input_is_a_valid_member() {
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gzip(b"", 1)[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
