//! Data offsets for a spooled archive.
//!
//! pg_dump writing to a pipe (as pgdr always runs it) cannot seek back to record where each
//! table's data starts, so every TOC entry says "offset not set". `pg_restore -j N` still
//! works on such a file, but each worker has to scan for its blocks, which costs 25-40% on a
//! table-heavy restore. pg_dump writing to a file fills the offsets in at the end; this does
//! the same for the spool file: one sequential read of the block headers (the data is
//! skipped), then the fixed-size offset fields of the TOC are overwritten in place.
//!
//! Layout: see `crate::fingerprint::archive`. Anything unexpected leaves the file as it is
//! (it restores either way, only slower).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
const K_OFFSET_POS_NOT_SET: u8 = 1;
const K_OFFSET_POS_SET: u8 = 2;

struct Scan {
    r: BufReader<File>,
    pos: u64,
    int_size: usize,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl Scan {
    fn byte(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.r.read_exact(&mut b)?;
        self.pos += 1;
        Ok(b[0])
    }

    /// A byte, or None at the end of the file.
    fn byte_or_eof(&mut self) -> io::Result<Option<u8>> {
        let mut b = [0u8; 1];
        match self.r.read(&mut b)? {
            0 => Ok(None),
            _ => {
                self.pos += 1;
                Ok(Some(b[0]))
            }
        }
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        self.r.seek_relative(n as i64)?;
        self.pos += n;
        Ok(())
    }

    /// Sign byte + `int_size` bytes little-endian magnitude.
    fn int(&mut self) -> io::Result<i64> {
        let neg = self.byte()? != 0;
        let mut v: u64 = 0;
        for i in 0..self.int_size {
            let b = self.byte()? as u64;
            if i < 8 {
                v |= b << (8 * i);
            }
        }
        let v = i64::try_from(v).map_err(|_| bad("integer out of range"))?;
        Ok(if neg { -v } else { v })
    }

    /// Skip a string; false for a NULL string.
    fn skip_str(&mut self) -> io::Result<bool> {
        let n = self.int()?;
        if n < 0 {
            return Ok(false);
        }
        self.skip(n as u64)?;
        Ok(true)
    }

    /// Skip `{ int len > 0, len bytes }*, int 0`.
    fn skip_chunks(&mut self) -> io::Result<()> {
        loop {
            let n = self.int()?;
            if n == 0 {
                return Ok(());
            }
            if n < 0 {
                return Err(bad("negative chunk length"));
            }
            self.skip(n as u64)?;
        }
    }
}

/// Fill in the data offsets of a custom-format archive in place; returns how many entries
/// were given one. An archive that already has them, or has no data, is left as it is.
pub fn fill(path: &Path) -> io::Result<usize> {
    let file = File::open(path)?;
    let mut s = Scan {
        r: BufReader::with_capacity(1 << 20, file),
        pos: 0,
        int_size: 4,
    };
    let mut magic = [0u8; 5];
    s.r.read_exact(&mut magic)?;
    s.pos = 5;
    if &magic != b"PGDMP" {
        return Err(bad("not a pg_dump custom-format archive"));
    }
    let (vmaj, vmin) = (s.byte()?, s.byte()?);
    let _vrev = s.byte()?;
    if vmaj != 1 || !(12..=16).contains(&vmin) {
        return Err(bad("archive version not supported"));
    }
    s.int_size = s.byte()? as usize;
    let off_size = s.byte()? as usize;
    if s.byte()? != 1 || !(1..=8).contains(&s.int_size) || !(1..=8).contains(&off_size) {
        return Err(bad("not a custom-format archive"));
    }
    if vmin >= 15 {
        s.byte()?; // compression algorithm
    } else {
        s.int()?; // compression level
    }
    for _ in 0..7 {
        s.int()?; // creation time
    }
    for _ in 0..3 {
        s.skip_str()?; // database, server version, pg_dump version
    }
    let count = s.int()?;
    // dump id → position of its offset flag, for entries whose offset is not set.
    let mut unset: Vec<(i64, u64)> = Vec::new();
    for _ in 0..count {
        let dump_id = s.int()?;
        s.int()?; // hadDumper
        for _ in 0..4 {
            s.skip_str()?; // tableoid, oid, tag, desc
        }
        s.int()?; // section
        for _ in 0..5 {
            s.skip_str()?; // defn, dropStmt, copyStmt, namespace, tablespace
        }
        if vmin >= 14 {
            s.skip_str()?; // tableam
        }
        if vmin >= 16 {
            s.int()?; // relkind
        }
        s.skip_str()?; // owner
        s.skip_str()?; // withOids
        while s.skip_str()? {} // dependencies, NULL-terminated
        let flag_pos = s.pos;
        let flag = s.byte()?;
        s.skip(off_size as u64)?;
        if flag == K_OFFSET_POS_NOT_SET {
            unset.push((dump_id, flag_pos));
        }
    }
    if unset.is_empty() {
        return Ok(0);
    }
    // The data section: where each block starts.
    let mut blocks: HashMap<i64, u64> = HashMap::new();
    loop {
        let at = s.pos;
        let Some(kind) = s.byte_or_eof()? else {
            break;
        };
        let id = s.int()?;
        blocks.insert(id, at);
        match kind {
            BLK_DATA => s.skip_chunks()?,
            BLK_BLOBS => loop {
                if s.int()? == 0 {
                    break;
                }
                s.skip_chunks()?;
            },
            _ => return Err(bad("unknown data block type")),
        }
    }
    let out = std::fs::OpenOptions::new().write(true).open(path)?;
    let mut filled = 0;
    for (id, flag_pos) in unset {
        let Some(&at) = blocks.get(&id) else {
            continue;
        };
        if off_size < 8 && at >> (8 * off_size) != 0 {
            continue;
        }
        let mut field = vec![K_OFFSET_POS_SET];
        field.extend_from_slice(&at.to_le_bytes()[..off_size]);
        out.write_all_at(&field, flag_pos)?;
        filled += 1;
    }
    out.sync_data().ok();
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/archives")
            .join(name)
    }

    #[test]
    fn piped_archive_gets_the_offsets_pg_dump_writes_to_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.dump");
        std::fs::copy(fixture("basic.dump"), &p).unwrap();
        let n = fill(&p).unwrap();
        assert!(n > 0);
        let got = std::fs::read(&p).unwrap();
        let want = std::fs::read(fixture("basic_seekable.dump")).unwrap();
        assert_eq!(got.len(), want.len());
        // Header: "PGDMP", version, sizes, format, compression, then 7 ints of creation time
        // (which differ between the two pg_dump runs); everything after must be identical.
        let (vmin, int_size) = (got[6] as usize, got[8] as usize);
        let compression = if vmin >= 15 { 1 } else { 1 + int_size };
        let header = 11 + compression + 7 * (1 + int_size);
        assert_eq!(&got[header..], &want[header..]);
        // A second run finds nothing to do.
        assert_eq!(fill(&p).unwrap(), 0);
    }

    #[test]
    fn archives_without_data_or_not_archives_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.dump");
        std::fs::copy(fixture("empty.dump"), &p).unwrap();
        let before = std::fs::read(&p).unwrap();
        let _ = fill(&p);
        assert_eq!(std::fs::read(&p).unwrap(), before);
        let q = dir.path().join("x");
        std::fs::write(&q, b"not an archive").unwrap();
        assert!(fill(&q).is_err());
        assert_eq!(std::fs::read(&q).unwrap(), b"not an archive");
        // Cut inside the data: an error, nothing written.
        let t = dir.path().join("t.dump");
        let full = std::fs::read(fixture("tiny.dump")).unwrap();
        std::fs::write(&t, &full[..full.len() - 10]).unwrap();
        assert!(fill(&t).is_err());
        assert_eq!(std::fs::read(&t).unwrap(), &full[..full.len() - 10]);
    }
}
