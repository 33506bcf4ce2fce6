//! Streaming parser for pg_dump custom-format archives (`pg_dump --format=custom --compress=0`).
//!
//! pgdr pipes pg_dump's stdout through compression and encryption into object storage. This
//! parser sits on that pipe: it sees every byte exactly once, in chunks of any size, and
//! records per `TABLE DATA` entry the row count and order-independent
//! [`RowDigest`](super::rows::RowDigest) of its COPY rows, and per large object its size and
//! hash. Verification later recomputes the same values from the restored database, so a backup
//! can be proven without re-reading the source. It also tells a complete archive from one cut
//! short, which a byte count alone cannot.
//!
//! Layout (from `pg_backup_archiver.c` / `pg_backup_custom.c`; archive versions 1.12–1.16,
//! i.e. pg_dump 9.0–18, differ only where marked):
//!
//! ```text
//! header   "PGDMP" vmaj vmin vrev intSize offSize format(1=custom)
//!          compression: int level (< 1.15) | byte algorithm (>= 1.15)
//!          7 ints (creation time: sec min hour mday mon year isdst)
//!          str dbname, str server version, str pg_dump version
//! toc      int count, then per entry:
//!          int dumpId, int hadDumper, str tableoid, str oid, str tag, str desc, int section,
//!          str defn, str dropStmt, str copyStmt, str namespace, str tablespace,
//!          str tableam (>= 1.14), int relkind (>= 1.16), str owner, str "false" (withOids),
//!          str dependency... terminated by a NULL str,
//!          offset: flag byte (1 = pos not set, 2 = pos set, 3 = no data) + offSize bytes
//! data     per entry with data, in TOC order, then end of stream (nothing follows):
//!          byte 1 (BLK_DATA), int dumpId, { int len > 0, len bytes }*, int 0
//!          byte 3 (BLK_BLOBS), int dumpId, { int oid, { int len, bytes }*, int 0 }*, int 0
//! int      sign byte (1 = negative) + intSize bytes little-endian magnitude
//! str      int length (-1 = NULL) + bytes
//! ```
//!
//! A table's data is exactly the COPY text pg_dump received from the server (one chunk per row
//! with `--compress=0`, but chunks are not relied on) followed by `\.\n\n\n`, which pg_dump
//! appends itself; the row splitter drops that trailer. Entries whose TOC offset flag is 1 or 2
//! promise a data block; the stream has no end marker, so a stream is complete exactly when
//! every promised block has arrived whole.
//!
//! Memory stays bounded whatever the archive size: before the data section at most one TOC
//! entry plus the current input chunk is held; in the data section only an integer prefix
//! (at most 9 bytes) and one partial COPY row.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use super::rows::CopyRowSplitter;

const MAGIC: &[u8; 5] = b"PGDMP";
/// `archCustom` in pg_backup.h; toc.dat of a directory-format dump carries 5 here.
const FORMAT_CUSTOM: u8 = 1;
const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
const K_OFFSET_POS_NOT_SET: u8 = 1;
const K_OFFSET_POS_SET: u8 = 2;
const K_OFFSET_NO_DATA: u8 = 3;
/// Oldest archive minor version accepted: 1.12 (pg_dump 9.0) has every field we read at the
/// position we expect it; the per-version differences after it are tableam (1.14),
/// the compression byte (1.15) and relkind (1.16).
const MIN_MINOR: u8 = 12;
/// Newest archive minor version this code was written against (pg_dump 17 and 18 write 1.16).
const MAX_MINOR: u8 = 16;
/// A TOC string this long cannot come from pg_dump's own bookkeeping fields (tag, desc,
/// namespace, COPY statement); refusing it keeps a corrupt length from allocating gigabytes.
const MAX_KEPT_STRING: usize = 64 << 20;
/// No TOC string (not even a definition) can reach PostgreSQL's 1 GB allocation limit; a
/// longer length is corruption, and refusing it bounds what one TOC entry can make us buffer.
const MAX_TOC_STRING: usize = 1 << 30;

/// Version code as in pg_backup_archiver.h's MAKE_ARCHIVE_VERSION, so comparisons read like
/// the C source.
const fn vers(major: u8, minor: u8, rev: u8) -> u32 {
    ((major as u32) << 16) | ((minor as u32) << 8) | rev as u32
}
const K_VERS_1_14: u32 = vers(1, 14, 0);
const K_VERS_1_15: u32 = vers(1, 15, 0);
const K_VERS_1_16: u32 = vers(1, 16, 0);

/// What the archive contained, as recorded into the backup manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArchiveSummary {
    /// Archive format version, e.g. "1.14.0".
    pub version: String,
    /// Database name from the header.
    pub database: String,
    /// Server version string of the dumped server, e.g. "15.18 (Debian 15.18-0+deb12u1)".
    pub server_version: String,
    pub pg_dump_version: String,
    /// Client encoding of the dump session (from the ENCODING TOC entry); the COPY text, and
    /// so the digests, are in this encoding.
    pub encoding: Option<String>,
    pub toc_entries: usize,
    /// One per TABLE DATA entry that had a data block, in TOC order.
    pub tables: Vec<TableData>,
    /// In archive order.
    pub large_objects: Vec<LargeObjectData>,
}

/// Fingerprint of one table's data block.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableData {
    pub dump_id: i32,
    /// Schema and name from the TOC entry (for `--load-via-partition-root` the COPY statement
    /// names the root table instead; these still name the partition itself).
    pub schema: String,
    pub name: String,
    /// Column list parsed from the TOC entry's COPY statement, unquoted identifiers. Generated
    /// and dropped columns are absent, exactly as pg_dump's `COPY ... TO stdout` lists them.
    pub columns: Vec<String>,
    /// As stored in the TOC, e.g. `COPY public.t (a, b) FROM stdin;\n`. Empty for
    /// `pg_dump --inserts`, whose data is SQL text; its "rows" are then lines of that text.
    pub copy_statement: String,
    pub rows: u64,
    /// [`RowDigest::hex`](super::rows::RowDigest::hex) of the rows.
    pub digest: String,
    /// Payload bytes of the data block (COPY text including pg_dump's `\.` trailer).
    pub bytes: u64,
}

/// Fingerprint of one large object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LargeObjectData {
    pub oid: u32,
    pub bytes: u64,
    /// [`large_object_digest`] of the content.
    pub digest: String,
}

/// Hash of a large object's content as recorded in [`LargeObjectData::digest`]: xxh3-128 as 32
/// hex chars. Verification calls this on `lo_get(oid)`.
pub fn large_object_digest(content: &[u8]) -> String {
    hex::encode(xxhash_rust::xxh3::xxh3_128(content).to_be_bytes())
}

/// Why an archive was rejected. Every variant means the backup must not be trusted as-is.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ArchiveError {
    #[error("input is not a pg_dump custom-format archive ({detail}); pgdr needs the output of pg_dump --format=custom")]
    NotCustomFormat { detail: String },
    #[error("pg_dump archive format version {found} is not supported (supported: 1.12 to 1.16, written by pg_dump 9.0 to 18)")]
    UnsupportedVersion { found: String },
    #[error("pg_dump archive data is compressed ({method}); pgdr must run pg_dump with --compress=0 so rows can be fingerprinted (pgdr compresses the stream itself)")]
    Compressed { method: String },
    #[error("pg_dump archive is truncated: {what}; the dump did not complete")]
    Truncated { what: String },
    #[error("pg_dump archive is malformed: {what}")]
    Malformed { what: String },
}

fn malformed(what: impl Into<String>) -> ArchiveError {
    ArchiveError::Malformed { what: what.into() }
}

/// Incremental parser; feed it the archive in chunks of any size, then call [`finish`].
///
/// [`finish`]: ArchiveParser::finish
#[derive(Debug, Default)]
pub struct ArchiveParser {
    /// Set once something was wrong; every later call reports it again.
    error: Option<ArchiveError>,
    header: Option<Header>,
    toc_total: usize,
    toc_read: usize,
    encoding: Option<String>,
    /// Unparsed bytes while in the header/TOC (never used once data blocks start).
    acc: Vec<u8>,
    /// `acc` cannot hold a complete item before it has this many bytes; saves re-parsing.
    need: usize,
    in_data: bool,
    /// Entries whose offset flag promises a data block, in TOC order.
    expected: Vec<Expected>,
    by_dump_id: HashMap<i32, usize>,
    blocks_seen: usize,
    large_objects: Vec<LargeObjectData>,
    // ---- data section (hot path) ----
    int_size: usize,
    state: DataState,
    /// Partial integer (or block type) that straddled a chunk boundary.
    small: [u8; 9],
    small_len: usize,
    block: Block,
}

#[derive(Debug, Clone)]
struct Header {
    version: u32,
    int_size: usize,
    off_size: usize,
    database: String,
    server_version: String,
    pg_dump_version: String,
}

#[derive(Debug)]
struct Expected {
    dump_id: i32,
    desc: String,
    schema: String,
    name: String,
    copy_statement: String,
    columns: Vec<String>,
    result: Option<TableData>,
    seen: bool,
}

impl Expected {
    fn label(&self) -> String {
        if self.desc == "BLOBS" {
            format!("large objects (dump id {})", self.dump_id)
        } else {
            format!(
                "{} {}.{} (dump id {})",
                self.desc, self.schema, self.name, self.dump_id
            )
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum DataState {
    /// Between blocks: a block-type byte, or the end of the archive.
    #[default]
    BlockType,
    BlockId {
        kind: u8,
    },
    ChunkLen,
    ChunkBody {
        remaining: usize,
    },
    /// Inside a BLOBS block: the next large object's OID, or 0 for the end of the block.
    LoOid,
}

#[derive(Debug, Default)]
enum Block {
    #[default]
    None,
    Table {
        idx: usize,
        rows: CopyRowSplitter,
        bytes: u64,
    },
    Blobs {
        idx: usize,
        lo: Option<Box<LoState>>,
    },
}

struct LoState {
    oid: u32,
    bytes: u64,
    hasher: Xxh3,
}

impl std::fmt::Debug for LoState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoState")
            .field("oid", &self.oid)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl ArchiveParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes the next chunk of the archive. Chunks may be split anywhere.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ArchiveError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let result = if self.in_data {
            self.feed_data(chunk)
        } else {
            self.feed_preamble(chunk)
        };
        if let Err(e) = &result {
            self.error = Some(e.clone());
        }
        result
    }

    /// Bytes held back between calls (partial TOC entry, partial integer, partial COPY row);
    /// bounded independently of the size of the archive's data.
    pub fn buffered_bytes(&self) -> usize {
        let rows = match &self.block {
            Block::Table { rows, .. } => rows.buffered_bytes(),
            _ => 0,
        };
        self.acc.len() + self.small_len + rows
    }

    /// Ends the stream and returns the summary; errors if the archive stopped early anywhere
    /// (header, TOC, inside a block, or before every announced data block arrived).
    pub fn finish(self) -> Result<ArchiveSummary, ArchiveError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let Some(header) = self.header else {
            let what = if self.acc.is_empty() {
                "the stream is empty".to_string()
            } else {
                format!("it ends inside the header after {} bytes", self.acc.len())
            };
            return Err(ArchiveError::Truncated { what });
        };
        if !self.in_data {
            return Err(ArchiveError::Truncated {
                what: format!(
                    "it ends inside the table of contents after {} of {} entries",
                    self.toc_read, self.toc_total
                ),
            });
        }
        if self.state != DataState::BlockType || self.small_len != 0 {
            let what = match &self.block {
                Block::Table { idx, .. } | Block::Blobs { idx, .. } => {
                    format!("it ends inside the data of {}", self.expected[*idx].label())
                }
                Block::None => "it ends inside a data block header".to_string(),
            };
            return Err(ArchiveError::Truncated { what });
        }
        if let Some(missing) = self.expected.iter().find(|e| !e.seen) {
            return Err(ArchiveError::Truncated {
                what: format!(
                    "the data of {} never arrived ({} of {} data blocks present)",
                    missing.label(),
                    self.blocks_seen,
                    self.expected.len()
                ),
            });
        }
        let (major, minor, rev) = (
            header.version >> 16,
            (header.version >> 8) & 0xff,
            header.version & 0xff,
        );
        Ok(ArchiveSummary {
            version: format!("{major}.{minor}.{rev}"),
            database: header.database,
            server_version: header.server_version,
            pg_dump_version: header.pg_dump_version,
            encoding: self.encoding,
            toc_entries: self.toc_total,
            tables: self.expected.into_iter().filter_map(|e| e.result).collect(),
            large_objects: self.large_objects,
        })
    }

    // ---------------------------------------------------------------- header and TOC

    fn feed_preamble(&mut self, chunk: &[u8]) -> Result<(), ArchiveError> {
        self.acc.extend_from_slice(chunk);
        if self.acc.len() < self.need {
            return Ok(());
        }
        let acc = std::mem::take(&mut self.acc);
        let mut pos = 0;
        let outcome = loop {
            if self.header.is_some() && self.toc_read == self.toc_total {
                self.in_data = true;
                break Ok(());
            }
            let mut r = Reader::new(&acc[pos..], self.header.as_ref());
            let step = if self.header.is_none() {
                r.header().map(|(h, count)| {
                    self.int_size = h.int_size;
                    self.header = Some(h);
                    self.toc_total = count;
                })
            } else {
                r.toc_entry()
                    .and_then(|entry| self.on_toc_entry(entry).map_err(Stop::Fail))
            };
            match step {
                Ok(()) => pos += r.pos,
                Err(Stop::Need(n)) => {
                    self.need = n;
                    break Ok(());
                }
                Err(Stop::Fail(e)) => break Err(e),
            }
        };
        outcome?;
        if self.in_data {
            self.need = 0;
            self.feed_data(&acc[pos..])
        } else {
            self.acc = acc;
            self.acc.drain(..pos);
            Ok(())
        }
    }

    fn on_toc_entry(&mut self, e: TocEntry) -> Result<(), ArchiveError> {
        self.toc_read += 1;
        if e.desc == "ENCODING" {
            // defn is `SET client_encoding = 'UTF8';`
            self.encoding = e.defn_quoted;
        }
        if let Some(expected) = e.expected {
            let idx = self.expected.len();
            if self.by_dump_id.insert(expected.dump_id, idx).is_some() {
                return Err(malformed(format!(
                    "two TOC entries with data share dump id {}",
                    expected.dump_id
                )));
            }
            self.expected.push(expected);
        }
        Ok(())
    }

    // ---------------------------------------------------------------- data blocks

    fn feed_data(&mut self, mut input: &[u8]) -> Result<(), ArchiveError> {
        let int_len = 1 + self.int_size;
        while !input.is_empty() {
            match self.state {
                DataState::ChunkBody { remaining } => {
                    let n = remaining.min(input.len());
                    self.consume_payload(&input[..n]);
                    input = &input[n..];
                    self.state = if n == remaining {
                        DataState::ChunkLen
                    } else {
                        DataState::ChunkBody {
                            remaining: remaining - n,
                        }
                    };
                }
                DataState::BlockType => {
                    let kind = input[0];
                    if kind != BLK_DATA && kind != BLK_BLOBS {
                        return Err(malformed(format!(
                            "unknown data block type {kind} after {} of {} data blocks",
                            self.blocks_seen,
                            self.expected.len()
                        )));
                    }
                    self.state = DataState::BlockId { kind };
                    input = &input[1..];
                }
                _ => {
                    // Every other state waits for one integer.
                    let value = if self.small_len == 0 && input.len() >= int_len {
                        let v = decode_int(&input[..int_len])?;
                        input = &input[int_len..];
                        v
                    } else {
                        let take = (int_len - self.small_len).min(input.len());
                        self.small[self.small_len..self.small_len + take]
                            .copy_from_slice(&input[..take]);
                        self.small_len += take;
                        input = &input[take..];
                        if self.small_len < int_len {
                            return Ok(());
                        }
                        self.small_len = 0;
                        decode_int(&self.small[..int_len])?
                    };
                    self.on_int(value)?;
                }
            }
        }
        Ok(())
    }

    #[inline]
    fn consume_payload(&mut self, data: &[u8]) {
        match &mut self.block {
            Block::Table { rows, bytes, .. } => {
                rows.feed(data);
                *bytes += data.len() as u64;
            }
            Block::Blobs { lo: Some(lo), .. } => {
                lo.hasher.update(data);
                lo.bytes += data.len() as u64;
            }
            // on_int only enters ChunkBody inside a table block or a large object.
            Block::Blobs { lo: None, .. } | Block::None => {}
        }
    }

    fn on_int(&mut self, value: i64) -> Result<(), ArchiveError> {
        match self.state {
            DataState::BlockId { kind } => self.start_block(kind, value),
            DataState::ChunkLen if value > 0 => {
                let remaining = usize::try_from(value)
                    .map_err(|_| malformed(format!("data chunk length {value}")))?;
                self.state = DataState::ChunkBody { remaining };
                Ok(())
            }
            DataState::ChunkLen if value == 0 => self.end_chunks(),
            DataState::ChunkLen => Err(malformed(format!(
                "negative data chunk length {value} in {}",
                self.current_label()
            ))),
            DataState::LoOid if value == 0 => {
                self.block = Block::None;
                self.state = DataState::BlockType;
                Ok(())
            }
            DataState::LoOid => {
                let oid = u32::try_from(value)
                    .map_err(|_| malformed(format!("large object OID {value} out of range")))?;
                if let Block::Blobs { lo, .. } = &mut self.block {
                    *lo = Some(Box::new(LoState {
                        oid,
                        bytes: 0,
                        hasher: Xxh3::new(),
                    }));
                }
                self.state = DataState::ChunkLen;
                Ok(())
            }
            DataState::BlockType | DataState::ChunkBody { .. } => {
                unreachable!("feed_data reads no integer in this state")
            }
        }
    }

    fn start_block(&mut self, kind: u8, dump_id: i64) -> Result<(), ArchiveError> {
        let idx = i32::try_from(dump_id)
            .ok()
            .and_then(|id| self.by_dump_id.get(&id).copied())
            .ok_or_else(|| {
                malformed(format!(
                    "data block (type {kind}) for dump id {dump_id}, which the table of contents does not list as having data"
                ))
            })?;
        let entry = &mut self.expected[idx];
        if entry.seen {
            return Err(malformed(format!(
                "second data block for {}",
                entry.label()
            )));
        }
        let want = if entry.desc == "BLOBS" {
            BLK_BLOBS
        } else {
            BLK_DATA
        };
        if kind != want {
            return Err(malformed(format!(
                "data block type {kind} for {}, expected {want}",
                entry.label()
            )));
        }
        entry.seen = true;
        self.blocks_seen += 1;
        if kind == BLK_BLOBS {
            self.block = Block::Blobs { idx, lo: None };
            self.state = DataState::LoOid;
        } else {
            self.block = Block::Table {
                idx,
                rows: CopyRowSplitter::new(),
                bytes: 0,
            };
            self.state = DataState::ChunkLen;
        }
        Ok(())
    }

    /// A zero-length chunk: end of a table's data or of one large object.
    fn end_chunks(&mut self) -> Result<(), ArchiveError> {
        match std::mem::take(&mut self.block) {
            Block::Table { idx, rows, bytes } => {
                let entry = &mut self.expected[idx];
                let digest = rows
                    .finish()
                    .map_err(|e| malformed(format!("data of {}: {e}", entry.label())))?;
                entry.result = Some(TableData {
                    dump_id: entry.dump_id,
                    schema: entry.schema.clone(),
                    name: entry.name.clone(),
                    columns: std::mem::take(&mut entry.columns),
                    copy_statement: std::mem::take(&mut entry.copy_statement),
                    rows: digest.rows,
                    digest: digest.hex(),
                    bytes,
                });
                self.state = DataState::BlockType;
            }
            Block::Blobs { idx, lo: Some(lo) } => {
                self.large_objects.push(LargeObjectData {
                    oid: lo.oid,
                    bytes: lo.bytes,
                    digest: hex::encode(lo.hasher.digest128().to_be_bytes()),
                });
                self.block = Block::Blobs { idx, lo: None };
                self.state = DataState::LoOid;
            }
            Block::Blobs { lo: None, .. } | Block::None => {
                unreachable!("ChunkLen is only entered inside a table block or a large object")
            }
        }
        Ok(())
    }

    fn current_label(&self) -> String {
        match &self.block {
            Block::Table { idx, .. } | Block::Blobs { idx, .. } => self.expected[*idx].label(),
            Block::None => "a data block".to_string(),
        }
    }
}

impl std::io::Write for ArchiveParser {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.feed(buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decodes pg_dump's integer: a sign byte then little-endian magnitude bytes.
#[inline]
fn decode_int(bytes: &[u8]) -> Result<i64, ArchiveError> {
    let (sign, magnitude) = bytes.split_first().expect("int is at least 2 bytes");
    let v = if let Ok(four) = <[u8; 4]>::try_from(magnitude) {
        // sizeof(int) everywhere pg_dump runs; one load instead of a byte loop.
        u64::from(u32::from_le_bytes(four))
    } else {
        magnitude
            .iter()
            .enumerate()
            .fold(0u64, |v, (i, b)| v | u64::from(*b) << (8 * i))
    };
    // intSize is capped at 8 in the header, but the value itself must also fit an i64.
    let v = i64::try_from(v).map_err(|_| malformed("integer out of range"))?;
    match sign {
        0 => Ok(v),
        1 => Ok(-v),
        s => Err(malformed(format!("invalid integer sign byte {s}"))),
    }
}

/// Why parsing a header or TOC entry from a buffer stopped.
enum Stop {
    /// The buffer ends early; the item needs at least this many bytes from its start.
    Need(usize),
    Fail(ArchiveError),
}

impl From<ArchiveError> for Stop {
    fn from(e: ArchiveError) -> Self {
        Stop::Fail(e)
    }
}

/// What one TOC entry contributes to the summary.
struct TocEntry {
    desc: String,
    /// The quoted value in `defn`, only extracted for ENCODING entries.
    defn_quoted: Option<String>,
    expected: Option<Expected>,
}

/// Cursor over buffered header/TOC bytes; every read either succeeds or says how much more
/// input the current item needs.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    version: u32,
    int_size: usize,
    off_size: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], header: Option<&Header>) -> Self {
        Reader {
            buf,
            pos: 0,
            version: header.map_or(0, |h| h.version),
            int_size: header.map_or(4, |h| h.int_size),
            off_size: header.map_or(8, |h| h.off_size),
        }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        let end = self.pos.checked_add(n).ok_or(Stop::Need(usize::MAX))?;
        let s = self.buf.get(self.pos..end).ok_or(Stop::Need(end))?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, Stop> {
        Ok(self.bytes(1)?[0])
    }

    fn int(&mut self) -> Result<i64, Stop> {
        let raw = self.bytes(1 + self.int_size)?;
        Ok(decode_int(raw)?)
    }

    /// A string, `None` for NULL.
    fn str(&mut self, what: &str) -> Result<Option<&'a [u8]>, Stop> {
        match self.int()? {
            -1 => Ok(None),
            n if n < 0 => Err(malformed(format!("negative length {n} for {what}")).into()),
            n => {
                let n = usize::try_from(n)
                    .ok()
                    .filter(|n| *n <= MAX_TOC_STRING)
                    .ok_or_else(|| malformed(format!("{what} claims to be {n} bytes long")))?;
                Ok(Some(self.bytes(n)?))
            }
        }
    }

    /// A string that is kept in the summary (so must be text and of sane size).
    fn text(&mut self, what: &str) -> Result<String, Stop> {
        let Some(raw) = self.str(what)? else {
            return Ok(String::new());
        };
        if raw.len() > MAX_KEPT_STRING {
            return Err(malformed(format!("{what} is {} bytes long", raw.len())).into());
        }
        Ok(String::from_utf8_lossy(raw).into_owned())
    }

    fn header(&mut self) -> Result<(Header, usize), Stop> {
        let have = &self.buf[..self.buf.len().min(MAGIC.len())];
        if have != &MAGIC[..have.len()] {
            return Err(ArchiveError::NotCustomFormat {
                detail: "no PGDMP signature at the start".into(),
            }
            .into());
        }
        self.bytes(MAGIC.len())?;
        let (vmaj, vmin, vrev) = (self.byte()?, self.byte()?, self.byte()?);
        if vmaj != 1 || !(MIN_MINOR..=MAX_MINOR).contains(&vmin) {
            return Err(ArchiveError::UnsupportedVersion {
                found: format!("{vmaj}.{vmin}.{vrev}"),
            }
            .into());
        }
        self.version = vers(vmaj, vmin, vrev);
        let int_size = self.byte()? as usize;
        let off_size = self.byte()? as usize;
        // pg_dump writes sizeof(int) and sizeof(pgoff_t), i.e. 4 and 8 on every platform.
        if !(1..=8).contains(&int_size) || !(1..=16).contains(&off_size) {
            return Err(malformed(format!(
                "unsupported integer size {int_size} / offset size {off_size}"
            ))
            .into());
        }
        self.int_size = int_size;
        self.off_size = off_size;
        let format = self.byte()?;
        if format != FORMAT_CUSTOM {
            let name = match format {
                3 => "tar",
                5 => "directory (this looks like its toc.dat)",
                _ => "unknown",
            };
            return Err(ArchiveError::NotCustomFormat {
                detail: format!("archive format byte {format}: {name}"),
            }
            .into());
        }
        if self.version >= K_VERS_1_15 {
            // pg_compress_algorithm: 0 none, 1 gzip, 2 lz4, 3 zstd.
            let method = match self.byte()? {
                0 => None,
                1 => Some("gzip".to_string()),
                2 => Some("lz4".to_string()),
                3 => Some("zstd".to_string()),
                a => Some(format!("algorithm {a}")),
            };
            if let Some(method) = method {
                return Err(ArchiveError::Compressed { method }.into());
            }
        } else {
            // zlib level; -1 is Z_DEFAULT_COMPRESSION.
            let level = self.int()?;
            if level != 0 {
                return Err(ArchiveError::Compressed {
                    method: format!("gzip level {level}"),
                }
                .into());
            }
        }
        for _ in 0..7 {
            self.int()?; // creation time
        }
        let database = self.text("database name")?;
        let server_version = self.text("server version")?;
        let pg_dump_version = self.text("pg_dump version")?;
        let count = self.int()?;
        let count = usize::try_from(count)
            .map_err(|_| malformed(format!("negative TOC entry count {count}")))?;
        Ok((
            Header {
                version: self.version,
                int_size,
                off_size,
                database,
                server_version,
                pg_dump_version,
            },
            count,
        ))
    }

    fn toc_entry(&mut self) -> Result<TocEntry, Stop> {
        let dump_id = self.int()?;
        let dump_id = i32::try_from(dump_id)
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| malformed(format!("TOC entry dump id {dump_id} out of range")))?;
        self.int()?; // hadDumper
        self.str("table oid")?;
        self.str("oid")?;
        let tag = self.text("tag")?;
        let desc = self.text("desc")?;
        self.int()?; // section
        let defn = self.str("definition")?;
        self.str("drop statement")?;
        let copy_statement = self.text("COPY statement")?;
        let namespace = self.text("namespace")?;
        self.str("tablespace")?;
        if self.version >= K_VERS_1_14 {
            self.str("table access method")?;
        }
        if self.version >= K_VERS_1_16 {
            self.int()?; // relkind
        }
        self.str("owner")?;
        self.str("with oids")?; // always "false" since 1.9
        while self.str("dependency")?.is_some() {}
        let flag = self.byte()?;
        self.bytes(self.off_size)?;
        let has_data = match flag {
            K_OFFSET_POS_NOT_SET | K_OFFSET_POS_SET => true,
            K_OFFSET_NO_DATA => false,
            f => {
                return Err(malformed(format!(
                    "TOC entry {dump_id} ({desc} {tag}) has unknown data offset flag {f}"
                ))
                .into())
            }
        };
        let defn_quoted = if desc == "ENCODING" {
            defn.and_then(|d| {
                let d = String::from_utf8_lossy(d);
                let mut parts = d.split('\'');
                parts.next();
                parts.next().map(str::to_string)
            })
        } else {
            None
        };
        let expected = if has_data {
            let columns = if desc == "TABLE DATA" && !copy_statement.is_empty() {
                parse_copy_columns(&copy_statement).ok_or_else(|| {
                    malformed(format!(
                        "cannot parse the COPY statement of {namespace}.{tag}: {copy_statement:?}"
                    ))
                })?
            } else {
                Vec::new()
            };
            Some(Expected {
                dump_id,
                desc: desc.clone(),
                schema: namespace,
                name: tag,
                copy_statement,
                columns,
                result: None,
                seen: false,
            })
        } else {
            None
        };
        Ok(TocEntry {
            desc,
            defn_quoted,
            expected,
        })
    }
}

/// Extracts the column names from pg_dump's `COPY name [(col, ...)] FROM stdin;` statement.
/// Identifiers are as produced by fmtId: bare, or double-quoted with `""` for a quote.
fn parse_copy_columns(stmt: &str) -> Option<Vec<String>> {
    let s = stmt.as_bytes();
    let mut i = "COPY ".len();
    if !stmt.starts_with("COPY ") {
        return None;
    }
    // Qualified table name.
    loop {
        parse_ident(s, &mut i)?;
        if s.get(i) == Some(&b'.') {
            i += 1;
        } else {
            break;
        }
    }
    while s.get(i) == Some(&b' ') {
        i += 1;
    }
    let mut columns = Vec::new();
    if s.get(i) == Some(&b'(') {
        i += 1;
        loop {
            while s.get(i) == Some(&b' ') {
                i += 1;
            }
            columns.push(parse_ident(s, &mut i)?);
            match s.get(i)? {
                b',' => i += 1,
                b')' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
        while s.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    stmt[i..].starts_with("FROM stdin;").then_some(columns)
}

fn parse_ident(s: &[u8], i: &mut usize) -> Option<String> {
    if s.get(*i) == Some(&b'"') {
        let mut out = Vec::new();
        *i += 1;
        loop {
            match s.get(*i)? {
                b'"' if s.get(*i + 1) == Some(&b'"') => {
                    out.push(b'"');
                    *i += 2;
                }
                b'"' => {
                    *i += 1;
                    return String::from_utf8(out).ok();
                }
                b => {
                    out.push(*b);
                    *i += 1;
                }
            }
        }
    } else {
        let start = *i;
        while let Some(b) = s.get(*i) {
            if matches!(
                b,
                b' ' | b'.' | b',' | b'(' | b')' | b';' | b'\n' | b'\t' | b'"'
            ) {
                break;
            }
            *i += 1;
        }
        (*i > start).then(|| String::from_utf8_lossy(&s[start..*i]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::super::rows::RowDigest;
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/archives/{}"),
            name
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn parse_chunked(data: &[u8], chunk: usize) -> Result<ArchiveSummary, ArchiveError> {
        let mut p = ArchiveParser::new();
        for c in data.chunks(chunk) {
            p.feed(c)?;
        }
        p.finish()
    }

    fn parse(data: &[u8]) -> Result<ArchiveSummary, ArchiveError> {
        parse_chunked(data, 64 * 1024)
    }

    /// Values make.sh computed with psql/pg_restore/Python, not with this parser.
    struct Expectation {
        meta: HashMap<String, String>,
        tables: Vec<(i32, String, String, u64, String, Vec<String>)>,
        los: Vec<(u32, u64, String)>,
    }

    fn expectation(name: &str) -> Expectation {
        let text = String::from_utf8(fixture(name)).unwrap();
        let mut e = Expectation {
            meta: HashMap::new(),
            tables: Vec::new(),
            los: Vec::new(),
        };
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.split('\t').collect();
            match f[0] {
                "meta" => {
                    e.meta.insert(f[1].to_string(), f[2].to_string());
                }
                "table" => e.tables.push((
                    f[1].parse().unwrap(),
                    f[2].to_string(),
                    f[3].to_string(),
                    f[4].parse().unwrap(),
                    f[5].to_string(),
                    if f[6].is_empty() {
                        Vec::new()
                    } else {
                        f[6].split('\u{1f}').map(str::to_string).collect()
                    },
                )),
                "lo" => e.los.push((
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    f[3].to_string(),
                )),
                other => panic!("unknown expectation line kind {other}"),
            }
        }
        e
    }

    fn check_against_expectation(s: &ArchiveSummary, e: &Expectation) {
        assert_eq!(
            s.version, "1.14.0",
            "pg_dump 15 writes archive version 1.14"
        );
        assert_eq!(s.database, e.meta["database"]);
        assert_eq!(s.server_version, e.meta["server_version"]);
        assert_eq!(s.pg_dump_version, e.meta["pg_dump_version"]);
        assert_eq!(s.toc_entries.to_string(), e.meta["toc_entries"]);
        assert_eq!(s.encoding.as_deref(), Some("UTF8"));
        let got: Vec<_> = s
            .tables
            .iter()
            .map(|t| {
                (
                    t.dump_id,
                    t.schema.clone(),
                    t.name.clone(),
                    t.rows,
                    t.digest.clone(),
                    t.columns.clone(),
                )
            })
            .collect();
        assert_eq!(got, e.tables);
        let got_los: Vec<_> = s
            .large_objects
            .iter()
            .map(|l| (l.oid, l.bytes, l.digest.clone()))
            .collect();
        assert_eq!(got_los, e.los);
    }

    #[test]
    fn basic_archive_matches_independent_expectations() {
        let s = parse(&fixture("basic.dump")).unwrap();
        check_against_expectation(&s, &expectation("basic.expected"));
        assert_eq!(
            s.tables.len(),
            8,
            "the partitioned parent has no data entry"
        );
        assert_eq!(s.large_objects.len(), 3);
    }

    #[test]
    fn basic_archive_details() {
        let s = parse(&fixture("basic.dump")).unwrap();
        let table = |name: &str| s.tables.iter().find(|t| t.name == name).unwrap();

        let weird = table("Weird \"Name\" tbl");
        assert_eq!(weird.schema, "public");
        assert_eq!(
            weird.copy_statement,
            "COPY public.\"Weird \"\"Name\"\" tbl\" (\"Col \"\"A\"\"\", \"mixed Case\", \"select\", plain) FROM stdin;\n"
        );
        assert_eq!(
            weird.columns,
            ["Col \"A\"", "mixed Case", "select", "plain"]
        );
        assert_eq!(weird.rows, 3, "duplicate rows both count");

        let gen = table("gen");
        assert_eq!(
            gen.columns,
            ["id", "a", "c"],
            "generated column b is omitted"
        );
        assert_eq!(gen.rows, 50);

        let no_cols = table("no_cols");
        assert!(no_cols.columns.is_empty());
        assert_eq!(no_cols.copy_statement, "COPY public.no_cols  FROM stdin;\n");
        assert_eq!(no_cols.rows, 3);

        let empty = table("empty_tbl");
        assert_eq!(empty.rows, 0);
        assert_eq!(empty.digest, RowDigest::default().hex());
        // An empty table's block still carries pg_dump's "\.\n\n\n" trailer.
        assert_eq!(empty.bytes, 5);

        let items = table("items");
        assert_eq!(items.schema, "Other Schema");
        assert_eq!(
            items.copy_statement,
            "COPY \"Other Schema\".items (id, name, price, tags) FROM stdin;\n"
        );
        assert!(s.tables.iter().all(|t| t.name != "measure"));
        assert!(s.tables.iter().all(|t| t.name != "mv_counts"));

        let big_lo = &s.large_objects[0];
        assert_eq!(big_lo.oid, 424242);
        assert_eq!(big_lo.bytes, 40000, "spans three 16 KiB pg_dump chunks");
        let empty_lo = &s.large_objects[2];
        assert_eq!((empty_lo.oid, empty_lo.bytes), (424244, 0));
        assert_eq!(empty_lo.digest, large_object_digest(b""));
        assert_eq!(
            s.large_objects[1].digest,
            large_object_digest(b"hello large object")
        );
    }

    #[test]
    fn seekable_archive_gives_same_summary() {
        // pg_dump -f FILE rewrites the TOC with data offsets (flag "pos set") at the end.
        let piped = parse(&fixture("basic.dump")).unwrap();
        let seekable = parse(&fixture("basic_seekable.dump")).unwrap();
        assert_eq!(piped, seekable);
    }

    #[test]
    fn tiny_and_schema_only_archives() {
        let tiny = parse(&fixture("tiny.dump")).unwrap();
        check_against_expectation(&tiny, &expectation("tiny.expected"));
        let t = &tiny.tables[0];
        assert_eq!((t.schema.as_str(), t.name.as_str()), ("public", "t"));
        assert_eq!(t.columns, ["id", "v"]);
        assert_eq!(t.rows, 3);

        let empty = parse(&fixture("empty.dump")).unwrap();
        check_against_expectation(&empty, &expectation("empty.expected"));
        assert!(empty.tables.is_empty() && empty.large_objects.is_empty());
    }

    #[test]
    fn chunk_size_does_not_matter() {
        let data = fixture("basic.dump");
        let reference = parse_chunked(&data, data.len()).unwrap();
        for chunk in [1, 7, 64 * 1024] {
            assert_eq!(
                parse_chunked(&data, chunk).unwrap(),
                reference,
                "chunk {chunk}"
            );
        }
        // Irregular chunk sizes from a small LCG.
        let mut p = ArchiveParser::new();
        let (mut pos, mut x) = (0usize, 12345u64);
        while pos < data.len() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = ((x >> 33) % 3000) as usize + 1;
            let end = (pos + n).min(data.len());
            p.feed(&data[pos..end]).unwrap();
            pos = end;
        }
        assert_eq!(p.finish().unwrap(), reference);
    }

    #[test]
    fn io_write_adapter() {
        let data = fixture("basic.dump");
        let mut p = ArchiveParser::new();
        std::io::copy(&mut &data[..], &mut p).unwrap();
        assert_eq!(p.finish().unwrap(), parse(&data).unwrap());

        let mut p = ArchiveParser::new();
        let err = std::io::Write::write_all(&mut p, b"garbage").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    fn assert_truncation_rejected(data: &[u8], cut: usize) {
        let mut p = ArchiveParser::new();
        let result = p.feed(&data[..cut]).and_then(|()| p.finish().map(|_| ()));
        match result {
            Err(ArchiveError::Truncated { .. }) => {}
            other => panic!("prefix of {cut} of {} bytes gave {other:?}", data.len()),
        }
    }

    #[test]
    fn every_truncation_of_tiny_archive_is_detected() {
        let data = fixture("tiny.dump");
        for cut in 0..data.len() {
            assert_truncation_rejected(&data, cut);
        }
        assert!(parse(&data).is_ok());
    }

    #[test]
    fn sampled_truncations_of_basic_archive_are_detected() {
        let data = fixture("basic.dump");
        let mut cuts: Vec<usize> = (0..250).map(|i| i * data.len() / 250).collect();
        cuts.extend(data.len() - 64..data.len()); // inside the last LO and the end markers
        for cut in cuts {
            assert_truncation_rejected(&data, cut);
        }
    }

    #[test]
    fn truncation_message_names_the_missing_table() {
        let data = fixture("basic.dump");
        let s = parse(&data).unwrap();
        // Cut exactly where the block of the second table starts: a clean block boundary.
        let needle = block_start(&data, BLK_DATA, s.tables[1].dump_id);
        let mut p = ArchiveParser::new();
        p.feed(&data[..needle]).unwrap();
        let err = p.finish().unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ArchiveError::Truncated { .. }), "{msg}");
        assert!(msg.contains("Weird \"Name\" tbl"), "{msg}");
    }

    /// Offset of the last data block header of type `kind` for `dump_id`; data blocks follow
    /// the TOC, so the last match of the 6-byte pattern is the block itself.
    fn block_start(data: &[u8], kind: u8, dump_id: i32) -> usize {
        let mut pat = vec![kind, 0];
        pat.extend_from_slice(&dump_id.to_le_bytes());
        let hits: Vec<usize> = data
            .windows(pat.len())
            .enumerate()
            .filter(|(_, w)| *w == pat.as_slice())
            .map(|(i, _)| i)
            .collect();
        *hits.last().unwrap()
    }

    #[test]
    fn compressed_archive_is_rejected() {
        let err = parse(&fixture("compressed.dump")).unwrap_err();
        assert_eq!(
            err,
            ArchiveError::Compressed {
                method: "gzip level 6".into()
            }
        );
        assert!(err.to_string().contains("--compress=0"));
    }

    #[test]
    fn garbage_is_not_custom_format() {
        for input in [
            &b"garbage, definitely not an archive"[..],
            b"--\n-- PostgreSQL database dump\n--\n",
            b"\x1f\x8b\x08\x00",
            b"X",
            b"PGDMX",
        ] {
            // Rejected as soon as the first wrong byte arrives, not only at finish().
            let mut p = ArchiveParser::new();
            let err = p.feed(input).unwrap_err();
            assert!(
                matches!(err, ArchiveError::NotCustomFormat { .. }),
                "{input:?}: {err:?}"
            );
            // Sticky: later calls keep failing.
            assert_eq!(p.feed(b"PGDMP").unwrap_err(), err);
            assert_eq!(p.finish().unwrap_err(), err);
        }
        // A prefix of the signature is merely short.
        assert!(matches!(
            parse(b"PG").unwrap_err(),
            ArchiveError::Truncated { .. }
        ));
        // A directory-format toc.dat has the signature but format byte 5.
        let mut dir = fixture("tiny.dump");
        dir[10] = 5;
        assert!(matches!(
            parse(&dir).unwrap_err(),
            ArchiveError::NotCustomFormat { .. }
        ));
        assert!(matches!(
            parse(b"").unwrap_err(),
            ArchiveError::Truncated { .. }
        ));
    }

    #[test]
    fn unknown_versions_are_rejected() {
        let mut data = fixture("tiny.dump");
        assert_eq!(&data[5..8], &[1, 14, 0]);
        for (minor, ok) in [
            (11, false),
            (12, true),
            (13, true),
            (17, false),
            (255, false),
        ] {
            data[6] = minor;
            let result = parse(&data);
            if ok {
                // Same layout as 1.14 minus tableam, so a 1.14 body is misread: not Unsupported.
                assert!(!matches!(
                    result,
                    Err(ArchiveError::UnsupportedVersion { .. })
                ));
            } else {
                assert_eq!(
                    result.unwrap_err(),
                    ArchiveError::UnsupportedVersion {
                        found: format!("1.{minor}.0")
                    }
                );
            }
        }
        data[5] = 2;
        data[6] = 14;
        assert!(matches!(
            parse(&data).unwrap_err(),
            ArchiveError::UnsupportedVersion { .. }
        ));
    }

    // ------------------------------------------------------------------ synthetic archives
    //
    // pg_dump 16 (1.15) and 17/18 (1.16) are not installed here, so archives of those
    // versions are written by this small writer, which mirrors WriteHead/WriteToc/
    // WriteDataChunks in pg_backup_archiver.c and pg_backup_custom.c field by field.

    struct Writer {
        out: Vec<u8>,
        minor: u8,
    }

    struct SynthEntry<'a> {
        dump_id: i32,
        tag: &'a str,
        desc: &'a str,
        defn: &'a str,
        copy: Option<&'a str>,
        namespace: &'a str,
        has_data: bool,
    }

    impl Writer {
        fn int(&mut self, v: i64) {
            self.out.push(u8::from(v < 0));
            self.out
                .extend_from_slice(&(v.unsigned_abs() as u32).to_le_bytes());
        }
        fn str(&mut self, s: Option<&str>) {
            match s {
                None => self.int(-1),
                Some(s) => {
                    self.int(s.len() as i64);
                    self.out.extend_from_slice(s.as_bytes());
                }
            }
        }
        fn header(&mut self, toc_count: i64, compression: u8) {
            self.out.extend_from_slice(b"PGDMP");
            self.out.extend_from_slice(&[1, self.minor, 0, 4, 8, 1]);
            if self.minor >= 15 {
                self.out.push(compression);
            } else {
                self.int(i64::from(compression));
            }
            for v in [1, 2, 3, 4, 5, 124, 0] {
                self.int(v);
            }
            self.str(Some("synthdb"));
            self.str(Some("17.2"));
            self.str(Some("17.2"));
            self.int(toc_count);
        }
        fn entry(&mut self, e: &SynthEntry) {
            self.int(i64::from(e.dump_id));
            self.int(i64::from(e.has_data));
            self.str(Some("0"));
            self.str(Some("16384"));
            self.str(Some(e.tag));
            self.str(Some(e.desc));
            self.int(if e.has_data { 3 } else { 1 }); // section
            self.str(Some(e.defn));
            self.str(Some(""));
            self.str(e.copy);
            self.str(Some(e.namespace));
            self.str(Some(""));
            if self.minor >= 14 {
                self.str(Some("heap"));
            }
            if self.minor >= 16 {
                self.int(i64::from(b'r'));
            }
            self.str(Some("postgres"));
            self.str(Some("false"));
            self.str(Some("1"));
            self.str(Some("2"));
            self.str(None);
            self.out.push(if e.has_data { 1 } else { 3 });
            self.out.extend_from_slice(&[0; 8]);
        }
        fn table_block(&mut self, dump_id: i32, chunks: &[&[u8]]) {
            self.out.push(BLK_DATA);
            self.int(i64::from(dump_id));
            for c in chunks {
                self.int(c.len() as i64);
                self.out.extend_from_slice(c);
            }
            self.int(0);
        }
        fn blobs_block(&mut self, dump_id: i32, los: &[(u32, &[u8])]) {
            self.out.push(BLK_BLOBS);
            self.int(i64::from(dump_id));
            for (oid, content) in los {
                self.int(i64::from(*oid));
                for c in content.chunks(5) {
                    self.int(c.len() as i64);
                    self.out.extend_from_slice(c);
                }
                self.int(0);
            }
            self.int(0);
        }
    }

    const SYNTH_COPY: &str = "COPY s.\"T\" (a, \"B c\") FROM stdin;\n";

    fn synth_archive(minor: u8) -> Vec<u8> {
        let mut w = Writer {
            out: Vec::new(),
            minor,
        };
        w.header(4, 0);
        w.entry(&SynthEntry {
            dump_id: 1,
            tag: "ENCODING",
            desc: "ENCODING",
            defn: "SET client_encoding = 'LATIN1';\n",
            copy: None,
            namespace: "",
            has_data: false,
        });
        w.entry(&SynthEntry {
            dump_id: 2,
            tag: "T",
            desc: "TABLE",
            defn: "CREATE TABLE s.\"T\" (a int, \"B c\" text);\n",
            copy: None,
            namespace: "s",
            has_data: false,
        });
        w.entry(&SynthEntry {
            dump_id: 3,
            tag: "T",
            desc: "TABLE DATA",
            defn: "",
            copy: Some(SYNTH_COPY),
            namespace: "s",
            has_data: true,
        });
        w.entry(&SynthEntry {
            dump_id: 4,
            tag: "LARGE OBJECTS 5..6",
            desc: "BLOBS",
            defn: "",
            copy: None,
            namespace: "",
            has_data: true,
        });
        // Rows split across chunks on purpose, then pg_dump's trailer.
        w.table_block(3, &[b"1\tx\n2\t", b"y\n", b"3\t\\N\n", b"\\.\n\n\n"]);
        w.blobs_block(4, &[(5, b"large object five"), (6, b"")]);
        w.out
    }

    #[test]
    fn synthetic_archives_of_every_supported_version() {
        let mut rows = CopyRowSplitter::new();
        rows.feed(b"1\tx\n2\ty\n3\t\\N\n");
        let expected_rows = rows.finish().unwrap();
        for minor in 12..=16 {
            let data = synth_archive(minor);
            let s = parse_chunked(&data, 3).unwrap_or_else(|e| panic!("1.{minor}: {e}"));
            assert_eq!(s.version, format!("1.{minor}.0"));
            assert_eq!(s.database, "synthdb");
            assert_eq!(s.encoding.as_deref(), Some("LATIN1"));
            assert_eq!(s.toc_entries, 4);
            assert_eq!(
                s.tables,
                [TableData {
                    dump_id: 3,
                    schema: "s".into(),
                    name: "T".into(),
                    columns: vec!["a".into(), "B c".into()],
                    copy_statement: SYNTH_COPY.into(),
                    rows: 3,
                    digest: expected_rows.hex(),
                    bytes: 18,
                }]
            );
            assert_eq!(
                s.large_objects,
                [
                    LargeObjectData {
                        oid: 5,
                        bytes: 17,
                        digest: large_object_digest(b"large object five"),
                    },
                    LargeObjectData {
                        oid: 6,
                        bytes: 0,
                        digest: large_object_digest(b""),
                    },
                ]
            );
            for cut in 0..data.len() {
                assert_truncation_rejected(&data, cut);
            }
        }
    }

    #[test]
    fn compression_byte_of_newer_versions() {
        for (algorithm, name) in [(1, "gzip"), (2, "lz4"), (3, "zstd")] {
            let mut w = Writer {
                out: Vec::new(),
                minor: 16,
            };
            w.header(0, algorithm);
            assert_eq!(
                parse(&w.out).unwrap_err(),
                ArchiveError::Compressed {
                    method: name.into()
                }
            );
        }
    }

    #[test]
    fn inconsistent_blocks_are_malformed() {
        let data = synth_archive(16);
        let blocks_at = block_start(&data, BLK_DATA, 3);
        let (head, blocks) = data.split_at(blocks_at);

        // The table block twice.
        let table_block_len = block_start(&data, BLK_BLOBS, 4) - blocks_at;
        let mut dup = data.clone();
        dup.extend_from_slice(&blocks[..table_block_len]);
        assert!(matches!(
            parse(&dup).unwrap_err(),
            ArchiveError::Malformed { .. }
        ));

        // A block for a dump id without data.
        let mut w = Writer {
            out: head.to_vec(),
            minor: 16,
        };
        w.table_block(2, &[b"1\n"]);
        let err = parse(&w.out).unwrap_err();
        assert!(err.to_string().contains("dump id 2"), "{err}");

        // Unknown block type.
        let mut bad = data.clone();
        bad[blocks_at] = 7;
        assert!(matches!(
            parse(&bad).unwrap_err(),
            ArchiveError::Malformed { .. }
        ));

        // A table block whose rows end without a newline.
        let mut w = Writer {
            out: head.to_vec(),
            minor: 16,
        };
        w.table_block(3, &[b"1\tx\n2\ty"]);
        w.blobs_block(4, &[]);
        let err = parse(&w.out).unwrap_err();
        assert!(err.to_string().contains("incomplete row"), "{err}");

        // Trailing garbage after a complete archive.
        let mut trailing = data.clone();
        trailing.push(0);
        assert!(parse(&trailing).is_err());
    }

    #[test]
    fn memory_stays_bounded_on_a_large_table() {
        // ~40 MB of rows in one block, fed in 1 MiB chunks: only a partial row may be held.
        let mut w = Writer {
            out: Vec::new(),
            minor: 16,
        };
        w.header(1, 0);
        w.entry(&SynthEntry {
            dump_id: 1,
            tag: "big",
            desc: "TABLE DATA",
            defn: "",
            copy: Some("COPY public.big (id, payload) FROM stdin;\n"),
            namespace: "public",
            has_data: true,
        });
        w.out.push(BLK_DATA);
        w.int(1);
        let header = std::mem::take(&mut w.out);

        let mut p = ArchiveParser::new();
        p.feed(&header).unwrap();
        let row_payload = "p".repeat(200);
        let mut digest = RowDigest::default();
        let mut chunk = Vec::with_capacity(1 << 20);
        let mut max_buffered = 0;
        for i in 0..200_000u32 {
            let row = format!("{i}\t{row_payload}");
            digest.add_row(row.as_bytes());
            // Large pg_dump chunks that do not align with rows.
            let mut framed = Writer {
                out: Vec::new(),
                minor: 16,
            };
            framed.int(row.len() as i64 + 1);
            chunk.extend_from_slice(&framed.out);
            chunk.extend_from_slice(row.as_bytes());
            chunk.push(b'\n');
            if chunk.len() >= 1 << 20 {
                // Feed in two uneven halves so rows and chunk headers straddle calls.
                let (a, b) = chunk.split_at(chunk.len() / 3);
                p.feed(a).unwrap();
                max_buffered = max_buffered.max(p.buffered_bytes());
                p.feed(b).unwrap();
                max_buffered = max_buffered.max(p.buffered_bytes());
                chunk.clear();
            }
        }
        let mut tail = Writer {
            out: chunk,
            minor: 16,
        };
        tail.int(0);
        p.feed(&tail.out).unwrap();
        let s = p.finish().unwrap();
        assert_eq!(s.tables[0].rows, 200_000);
        assert_eq!(s.tables[0].digest, digest.hex());
        assert!(max_buffered < 512, "held {max_buffered} bytes");
    }

    #[test]
    fn copy_statement_parsing() {
        let cols = |s: &str| parse_copy_columns(s);
        assert_eq!(
            cols("COPY public.t (a, b) FROM stdin;\n").unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            cols("COPY \"S.x\".\"t(1)\" (\"a,b\", \"c\"\"d\", e) FROM stdin;\n").unwrap(),
            ["a,b", "c\"d", "e"]
        );
        assert_eq!(
            cols("COPY public.t  FROM stdin;\n").unwrap(),
            Vec::<String>::new()
        );
        assert!(cols("INSERT INTO t VALUES (1);").is_none());
        assert!(cols("COPY public.t (a, b FROM stdin;").is_none());
        assert!(cols("COPY public.t (a, \"b) FROM stdin;").is_none());
    }
}
