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
//! The archive's layout is read by [`crate::archive`] (shared with the restore spool); this
//! module adds what the fingerprint needs on top: the data blocks, rows and digests.
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

mod copy;
mod data;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
pub(crate) mod tests_synth;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use super::rows::CopyRowSplitter;
use crate::archive::{malformed, Header, Reader, Stop, TocEntry};
use copy::parse_copy_columns;

pub use crate::archive::ArchiveError;

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
                    .and_then(|entry| Ok(entry_info(entry)?))
                    .and_then(|info| self.on_toc_entry(info).map_err(Stop::Fail))
            };
            match step {
                Ok(()) => pos += r.pos(),
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

    fn on_toc_entry(&mut self, e: EntryInfo) -> Result<(), ArchiveError> {
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

/// What one TOC entry contributes to the summary.
struct EntryInfo {
    desc: String,
    /// The quoted value in `defn`, only extracted for ENCODING entries.
    defn_quoted: Option<String>,
    expected: Option<Expected>,
}

/// The summary's view of a TOC entry: the encoding it sets, and the data block it promises
/// (with the columns of its COPY statement).
fn entry_info(e: TocEntry<'_>) -> Result<EntryInfo, ArchiveError> {
    let TocEntry {
        dump_id,
        tag,
        desc,
        defn,
        copy_statement,
        namespace,
        has_data,
        ..
    } = e;
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
    Ok(EntryInfo {
        desc,
        defn_quoted,
        expected,
    })
}
