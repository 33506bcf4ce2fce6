//! Order-independent fingerprint of COPY text-format rows.
//!
//! The same digest is computed twice: once while pg_dump's archive streams past during backup
//! (see `archive.rs`) and once during verification from `COPY ... TO STDOUT` run against the
//! restored scratch database. Heap order after a restore is not guaranteed to match the
//! original, so the digest must not depend on row order; a plain sum of per-row hashes gives
//! that while still changing for any altered, missing or duplicated row.

use xxhash_rust::xxh3::xxh3_128;

/// Order-independent digest of COPY text-format rows: row count plus the wrapping (mod 2^128)
/// sum of xxh3-128 hashes of each row's bytes (without the trailing '\n'). Order does not
/// matter, but a changed, missing or duplicated row changes it.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowDigest {
    pub rows: u64,
    sum: u128,
}

impl RowDigest {
    /// Adds one row, given without its terminating '\n'.
    #[inline]
    pub fn add_row(&mut self, row: &[u8]) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(xxh3_128(row));
    }

    /// Combines two digests, e.g. of a table's rows fed through separate splitters. Because the
    /// digest is a sum, merging is exactly the digest of the union (multiset) of the rows.
    pub fn merge(&mut self, other: &RowDigest) {
        self.rows += other.rows;
        self.sum = self.sum.wrapping_add(other.sum);
    }

    /// The sum as 32 lowercase hex characters (big-endian), the form stored in manifests.
    pub fn hex(&self) -> String {
        hex::encode(self.sum.to_be_bytes())
    }

    /// The raw 128-bit sum, for callers that store it in binary form.
    pub fn sum(&self) -> u128 {
        self.sum
    }
}

/// Why a stream of COPY text could not be turned into a digest.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum RowsError {
    /// The text stopped in the middle of a row, i.e. the COPY output was cut short.
    #[error("COPY data ends with an incomplete row ({bytes} bytes without a terminating newline); the data was cut short")]
    PartialRow { bytes: usize },
    /// Something other than blank lines followed the `\.` end-of-data marker.
    #[error("COPY data continues after the \\. end-of-data marker")]
    DataAfterEndMarker,
}

/// Feeds arbitrary chunks of COPY text output (rows separated by '\n', may be split anywhere),
/// keeps at most one partial row buffered. `finish()` errors if there is a dangling partial row.
/// It ignores a final `\.` end-of-data marker line if present, plus blank lines after it:
/// pg_dump writes `\.\n\n\n` after every table's rows in custom-format archives, while
/// `COPY ... TO STDOUT` through libpq carries no marker. A data row can never be exactly `\.`
/// (COPY escapes a backslash in a value as `\\`), so the marker is unambiguous. Blank lines
/// *before* the marker are real rows: a table with zero columns yields one empty line per row.
#[derive(Default, Debug, Clone)]
pub struct CopyRowSplitter {
    digest: RowDigest,
    partial: Vec<u8>,
    ended: bool,
    data_after_end: bool,
}

impl CopyRowSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes a chunk; rows may straddle chunk boundaries.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        if !self.partial.is_empty() {
            match find_newline(rest) {
                None => {
                    self.partial.extend_from_slice(rest);
                    return;
                }
                Some(i) => {
                    self.partial.extend_from_slice(&rest[..i]);
                    let row = std::mem::take(&mut self.partial);
                    self.line(&row);
                    self.partial = row;
                    self.partial.clear();
                    rest = &rest[i + 1..];
                }
            }
        }
        while let Some(i) = find_newline(rest) {
            self.line(&rest[..i]);
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
    }

    /// Bytes currently held back as an incomplete row (the only buffering this type does).
    pub fn buffered_bytes(&self) -> usize {
        self.partial.len()
    }

    /// Returns the digest of all complete rows, or an error if the input did not end on a row
    /// boundary or had data after the end marker.
    pub fn finish(self) -> Result<RowDigest, RowsError> {
        if !self.partial.is_empty() {
            return Err(RowsError::PartialRow {
                bytes: self.partial.len(),
            });
        }
        if self.data_after_end {
            return Err(RowsError::DataAfterEndMarker);
        }
        Ok(self.digest)
    }

    #[inline]
    fn line(&mut self, line: &[u8]) {
        if self.ended {
            if !line.is_empty() {
                self.data_after_end = true;
            }
        } else if line == b"\\." {
            self.ended = true;
        } else {
            self.digest.add_row(line);
        }
    }
}

/// Position of the first '\n' (memchr: SIMD, the standard crate for it).
#[inline]
pub(crate) fn find_newline(haystack: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', haystack)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(rows: &[&[u8]]) -> RowDigest {
        let mut d = RowDigest::default();
        for r in rows {
            d.add_row(r);
        }
        d
    }

    fn split_all(text: &[u8], chunk: usize) -> Result<RowDigest, RowsError> {
        let mut s = CopyRowSplitter::new();
        for c in text.chunks(chunk.max(1)) {
            s.feed(c);
        }
        s.finish()
    }

    #[test]
    fn digest_is_order_independent_but_sensitive_to_changes() {
        let a = digest_of(&[b"1\ta", b"2\tb", b"3\tc"]);
        let b = digest_of(&[b"3\tc", b"1\ta", b"2\tb"]);
        assert_eq!(a, b);
        assert_eq!(a.rows, 3);
        assert_ne!(a, digest_of(&[b"1\ta", b"2\tb", b"3\tC"]), "changed row");
        assert_ne!(a, digest_of(&[b"1\ta", b"2\tb"]), "missing row");
        let dup = digest_of(&[b"1\ta", b"2\tb", b"3\tc", b"3\tc"]);
        assert_ne!(a, dup, "duplicated row");
        assert_ne!(a.hex(), dup.hex());
        // Swapping bytes between rows keeps the byte multiset but not the digest.
        assert_ne!(a, digest_of(&[b"1\tb", b"2\ta", b"3\tc"]));
    }

    #[test]
    fn empty_digest_and_hex_format() {
        let d = RowDigest::default();
        assert_eq!(d.rows, 0);
        assert_eq!(d.hex(), "0".repeat(32));
        let one = digest_of(&[b"abc"]);
        // xxh3-128("abc") = 06b05ab6733a618578af5f94892f3950 (reference value from the
        // `xxhash` Python package), so a one-row digest is exactly that hash.
        assert_eq!(one.hex(), "06b05ab6733a618578af5f94892f3950");
        assert_eq!(one.sum(), 0x06b05ab6733a618578af5f94892f3950);
    }

    #[test]
    fn merge_equals_digest_of_union() {
        let mut left = digest_of(&[b"x", b"y"]);
        let right = digest_of(&[b"z", b"x"]);
        left.merge(&right);
        assert_eq!(left, digest_of(&[b"x", b"x", b"y", b"z"]));
        assert_eq!(left.rows, 4);
    }

    #[test]
    fn splitter_matches_python_reference_for_tiny_fixture() {
        // COPY public.t (id, v) TO STDOUT of the tiny fixture; digest and count in
        // tests/fixtures/archives/tiny.expected were computed by make.sh with Python.
        let text = b"1\ta\n2\tb\\tc\n3\t\\N\n";
        let expected = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/archives/tiny.expected"
        ))
        .unwrap();
        let line = expected.lines().find(|l| l.starts_with("table\t")).unwrap();
        let fields: Vec<&str> = line.split('\t').collect();
        for chunk in [1, 2, 3, 5, 64] {
            let d = split_all(text, chunk).unwrap();
            assert_eq!(d.rows.to_string(), fields[4]);
            assert_eq!(d.hex(), fields[5]);
        }
    }

    #[test]
    fn splitter_is_independent_of_chunking() {
        let mut text = Vec::new();
        for i in 0..500u32 {
            text.extend_from_slice(
                format!("{i}\tvalue with\\ttab {}\n", "x".repeat((i % 70) as usize)).as_bytes(),
            );
        }
        let whole = split_all(&text, text.len()).unwrap();
        assert_eq!(whole.rows, 500);
        for chunk in [1, 2, 7, 15, 16, 17, 33, 4096] {
            assert_eq!(split_all(&text, chunk).unwrap(), whole, "chunk {chunk}");
        }
    }

    #[test]
    fn end_marker_and_trailing_blank_lines_are_ignored() {
        let plain = b"1\ta\n2\tb\n";
        let base = split_all(plain, 100).unwrap();
        for tail in [&b"\\.\n"[..], b"\\.\n\n\n", b"\\.\n\n"] {
            let mut text = plain.to_vec();
            text.extend_from_slice(tail);
            for chunk in [1, 3, 100] {
                assert_eq!(split_all(&text, chunk).unwrap(), base);
            }
        }
    }

    #[test]
    fn data_after_end_marker_is_an_error() {
        assert_eq!(
            split_all(b"1\n\\.\n2\n", 4),
            Err(RowsError::DataAfterEndMarker)
        );
    }

    #[test]
    fn escaped_backslash_dot_is_a_row_not_a_marker() {
        // A value "\." is written by COPY as "\\." -- that is data.
        let d = split_all(b"\\\\.\n", 1).unwrap();
        assert_eq!(d, digest_of(&[b"\\\\."]));
    }

    #[test]
    fn blank_lines_before_marker_are_rows() {
        // Zero-column tables produce one empty line per row.
        let d = split_all(b"\n\n\n\\.\n\n\n", 2).unwrap();
        assert_eq!(d.rows, 3);
        assert_eq!(d, digest_of(&[b"", b"", b""]));
    }

    #[test]
    fn dangling_partial_row_is_an_error() {
        assert_eq!(
            split_all(b"1\ta\n2\tb", 3),
            Err(RowsError::PartialRow { bytes: 3 })
        );
        let mut s = CopyRowSplitter::new();
        s.feed(b"1\ta\n22");
        assert_eq!(s.buffered_bytes(), 2);
        s.feed(b"\n");
        assert_eq!(s.buffered_bytes(), 0);
        assert_eq!(s.finish().unwrap().rows, 2);
    }

    #[test]
    fn empty_input_is_zero_rows() {
        assert_eq!(split_all(b"", 1).unwrap(), RowDigest::default());
    }

    #[test]
    fn find_newline_agrees_with_position() {
        let mut buf = vec![b'a'; 100];
        assert_eq!(find_newline(&buf), None);
        for i in 0..100 {
            buf[i] = b'\n';
            for start in 0..=i.min(20) {
                assert_eq!(find_newline(&buf[start..]), Some(i - start));
            }
            buf[i] = b'a';
        }
        assert_eq!(find_newline(b""), None);
    }
}
