//! The data section: blocks, chunks and large objects, fed in pieces of any size.

use xxhash_rust::xxh3::Xxh3;

use super::{ArchiveError, ArchiveParser, Block, DataState, LargeObjectData, LoState, TableData};
use crate::archive::{decode_int, malformed, BLK_BLOBS, BLK_DATA};
use crate::fingerprint::rows::CopyRowSplitter;

impl ArchiveParser {
    pub(super) fn feed_data(&mut self, mut input: &[u8]) -> Result<(), ArchiveError> {
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
