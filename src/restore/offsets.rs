//! Data offsets for a spooled archive.
//!
//! pg_dump writing to a pipe (as pgdr always runs it) cannot seek back to record where each
//! table's data starts, so every TOC entry says "offset not set". `pg_restore -j N` still
//! works on such a file, but each worker has to scan for its blocks, which costs 25-40% on a
//! table-heavy restore. pg_dump writing to a file fills the offsets in at the end; this does
//! the same for the spool file: one sequential read of the block headers (the data is
//! skipped), then the fixed-size offset fields of the TOC are overwritten in place.
//!
//! The header and table of contents are read by [`crate::archive`] (the same reader as the
//! fingerprint's, so both accept the same versions); the data section is only skipped here.
//! Anything unexpected leaves the file as it is (it restores either way, only slower).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::archive::{
    decode_int, ArchiveError, Header, Reader, Stop, BLK_BLOBS, BLK_DATA, K_OFFSET_POS_NOT_SET,
    K_OFFSET_POS_SET,
};

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn invalid(e: ArchiveError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The header and TOC, read item by item through the shared reader: the buffer holds at most
/// one TOC entry plus what was read ahead.
struct Preamble {
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    base: u64,
}

impl Preamble {
    /// The next item, parsed from the start of the buffer, and its file offset; reads more of
    /// the file while the reader says the item is incomplete.
    fn next<T>(
        &mut self,
        header: Option<&Header>,
        parse: impl for<'b> Fn(&mut Reader<'b>) -> Result<T, Stop>,
    ) -> io::Result<(T, u64)> {
        loop {
            let mut r = Reader::new(&self.buf, header);
            match parse(&mut r) {
                Ok(v) => {
                    let (start, used) = (self.base, r.pos());
                    self.buf.drain(..used);
                    self.base += used as u64;
                    return Ok((v, start));
                }
                Err(Stop::Fail(e)) => return Err(invalid(e)),
                Err(Stop::Need(n)) => self.read_more(n)?,
            }
        }
    }

    /// Grows the buffer towards `need` bytes; an error at the end of the file.
    fn read_more(&mut self, need: usize) -> io::Result<()> {
        let want = need.saturating_sub(self.buf.len()).clamp(1, 1 << 20);
        let have = self.buf.len();
        self.buf.resize(have + want.max(64 << 10), 0);
        let got = self.file.read(&mut self.buf[have..])?;
        self.buf.truncate(have + got);
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

/// The data section, read sequentially; block payloads are skipped, not read.
struct Scan {
    r: BufReader<File>,
    pos: u64,
    int_size: usize,
}

impl Scan {
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

    /// pg_dump's integer, decoded as the shared reader does.
    fn int(&mut self) -> io::Result<i64> {
        let mut raw = [0u8; 9];
        let raw = &mut raw[..1 + self.int_size];
        self.r.read_exact(raw)?;
        self.pos += raw.len() as u64;
        decode_int(raw).map_err(invalid)
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

    /// Where each data block starts, by dump id.
    fn blocks(&mut self) -> io::Result<HashMap<i64, u64>> {
        let mut blocks = HashMap::new();
        loop {
            let at = self.pos;
            let Some(kind) = self.byte_or_eof()? else {
                return Ok(blocks);
            };
            let id = self.int()?;
            blocks.insert(id, at);
            match kind {
                BLK_DATA => self.skip_chunks()?,
                BLK_BLOBS => loop {
                    if self.int()? == 0 {
                        break;
                    }
                    self.skip_chunks()?;
                },
                _ => return Err(bad("unknown data block type")),
            }
        }
    }
}

/// What the TOC says about the data offsets.
struct Toc {
    header: Header,
    /// Entries whose offset is not set: dump id → file offset of its offset flag.
    unset: Vec<(i64, u64)>,
    /// Where the data section starts.
    data_at: u64,
}

fn read_toc(path: &Path) -> io::Result<Toc> {
    let mut p = Preamble {
        file: File::open(path)?,
        buf: Vec::new(),
        base: 0,
    };
    let ((header, count), _) = p.next(None, |r| r.header())?;
    let mut unset = Vec::new();
    for _ in 0..count {
        let ((dump_id, flag, flag_at), start) = p.next(Some(&header), |r| {
            r.toc_entry()
                .map(|e| (e.dump_id, e.offset_flag, e.offset_at))
        })?;
        if flag == K_OFFSET_POS_NOT_SET {
            unset.push((i64::from(dump_id), start + flag_at as u64));
        }
    }
    Ok(Toc {
        header,
        unset,
        data_at: p.base,
    })
}

/// One TOC entry as a filtered restore list needs it.
#[derive(Debug, Clone)]
pub struct ListEntry {
    pub dump_id: i32,
    pub desc: String,
    pub tag: String,
    pub namespace: String,
    pub owner: String,
}

/// The TOC of a custom-format archive file, in archive order (for `pg_restore --use-list`).
pub fn list(path: &Path) -> io::Result<Vec<ListEntry>> {
    let mut p = Preamble {
        file: File::open(path)?,
        buf: Vec::new(),
        base: 0,
    };
    let ((header, count), _) = p.next(None, |r| r.header())?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (e, _) = p.next(Some(&header), |r| {
            r.toc_entry().map(|e| ListEntry {
                dump_id: e.dump_id,
                desc: e.desc,
                tag: e.tag,
                namespace: e.namespace,
                owner: e.owner,
            })
        })?;
        out.push(e);
    }
    Ok(out)
}

/// Fill in the data offsets of a custom-format archive in place; returns how many entries
/// were given one. An archive that already has them, or has no data, is left as it is.
pub fn fill(path: &Path) -> io::Result<usize> {
    let Toc {
        header,
        unset,
        data_at,
    } = read_toc(path)?;
    if unset.is_empty() {
        return Ok(0);
    }
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(data_at))?;
    let blocks = Scan {
        r: BufReader::with_capacity(1 << 20, file),
        pos: data_at,
        int_size: header.int_size,
    }
    .blocks()?;
    let off_size = header.off_size;
    let out = std::fs::OpenOptions::new().write(true).open(path)?;
    let mut filled = 0;
    for (id, flag_pos) in unset {
        let Some(&at) = blocks.get(&id) else {
            continue;
        };
        if off_size < 8 && at >> (8 * off_size) != 0 {
            continue;
        }
        // Little-endian, zero-padded to the archive's offset size (at most 16 bytes).
        let mut field = vec![K_OFFSET_POS_SET];
        field.extend_from_slice(&at.to_le_bytes()[..off_size.min(8)]);
        field.resize(1 + off_size, 0);
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

    /// Every archive version the fingerprint accepts (1.12 to 1.16, synthetic where no
    /// pg_dump of that version is installed) gets its offsets, at the blocks' real positions,
    /// and still parses to the same summary.
    #[test]
    fn every_supported_version_gets_its_offsets() {
        use crate::fingerprint::archive::tests::block_start;
        use crate::fingerprint::archive::tests_synth::synth_archive;
        use crate::fingerprint::ArchiveParser;
        let summary = |data: &[u8]| {
            let mut p = ArchiveParser::new();
            p.feed(data).unwrap();
            p.finish().unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        for minor in 12..=16u8 {
            let data = synth_archive(minor);
            let p = dir.path().join(format!("v{minor}.dump"));
            std::fs::write(&p, &data).unwrap();
            assert_eq!(fill(&p).unwrap(), 2, "1.{minor}");
            let got = std::fs::read(&p).unwrap();
            assert_eq!(got.len(), data.len());
            let table_at = block_start(&data, BLK_DATA, 3) as u64;
            let blobs_at = block_start(&data, BLK_BLOBS, 4) as u64;
            for at in [table_at, blobs_at] {
                let mut field = vec![K_OFFSET_POS_SET];
                field.extend_from_slice(&at.to_le_bytes());
                assert!(
                    got.windows(9).any(|w| w == field.as_slice()),
                    "1.{minor}: no offset {at}"
                );
            }
            assert_eq!(summary(&got), summary(&data), "1.{minor}");
            assert_eq!(fill(&p).unwrap(), 0);
        }
        // A version neither reader knows is refused, the file untouched.
        let mut data = synth_archive(16);
        data[6] = 17;
        let p = dir.path().join("v17.dump");
        std::fs::write(&p, &data).unwrap();
        assert!(fill(&p).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), data);
    }
}
