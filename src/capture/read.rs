//! Reading a stored segment back: through the pipeline (stored sha256, age, zstd, plain
//! sha256), frame by frame, never whole in memory, checking what the segment itself promises:
//! its header matches its entry, every message decodes, transactions are whole, and every
//! change comes after the Relation that describes it.

use std::collections::HashSet;
use std::io::{self, Write};
use std::sync::Arc;

use super::pgoutput::{self, Message};
use super::segment::{Decoder, Frame, Header};
use crate::catalog::segments::SegmentEntry;
use crate::catalog::Repository;
use crate::error::{PgdrError, Result};
use crate::pipeline;
use crate::source::Lsn;

/// One transaction as a segment holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TxnSeen {
    pub xid: u32,
    pub commit_lsn: Lsn,
    pub changes: u64,
}

/// What a segment holds, read back.
#[derive(Debug, Default)]
pub struct SegmentContent {
    pub header: Option<Header>,
    pub end: Option<Lsn>,
    pub transactions: Vec<TxnSeen>,
    pub messages: Vec<(Lsn, String)>,
    /// What is wrong inside the segment (empty: nothing).
    pub problems: Vec<String>,
}

/// A `Write` sink that decodes frames as the bytes arrive.
struct Sink {
    decoder: Decoder,
    state: State,
}

#[derive(Default)]
struct State {
    content: SegmentContent,
    open: Option<TxnSeen>,
    described: HashSet<u32>,
    /// Stop collecting problems after a few: one damaged segment says enough.
    muted: bool,
}

impl State {
    fn problem(&mut self, p: String) {
        if self.content.problems.len() < 10 {
            self.content.problems.push(p);
        } else {
            self.muted = true;
        }
    }

    fn frame(&mut self, f: Frame) {
        let m = match pgoutput::decode(&f.data) {
            Ok(m) => m,
            Err(e) => return self.problem(format!("message at {}: {e}", f.lsn)),
        };
        match &m {
            Message::Begin { final_lsn, xid, .. } => {
                if self.open.is_some() {
                    self.problem(format!("Begin at {} inside a transaction", f.lsn));
                }
                self.open = Some(TxnSeen {
                    xid: *xid,
                    commit_lsn: *final_lsn,
                    changes: 0,
                });
            }
            Message::Commit { commit_lsn, .. } => match self.open.take() {
                Some(t) if t.commit_lsn == *commit_lsn => self.content.transactions.push(t),
                _ => self.problem(format!("Commit at {commit_lsn} without its Begin")),
            },
            Message::Relation(r) => {
                self.described.insert(r.oid);
            }
            Message::LogicalMessage { lsn, prefix, .. } => {
                self.content.messages.push((*lsn, prefix.clone()));
            }
            _ => {}
        }
        let relids = match &m {
            Message::Relation(_) => Vec::new(),
            other => pgoutput::relid_of(other),
        };
        for r in relids {
            if !self.described.contains(&r) {
                self.problem(format!(
                    "change at {} to relation {r} before its Relation message: the segment does not decode on its own",
                    f.lsn
                ));
            }
        }
        if let (
            Some(t),
            Message::Insert { .. }
            | Message::Update { .. }
            | Message::Delete { .. }
            | Message::Truncate { .. },
        ) = (self.open.as_mut(), &m)
        {
            t.changes += 1;
        }
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let st = &mut self.state;
        self.decoder.feed(data, &mut |f| {
            st.frame(f);
            Ok(())
        })?;
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Read a committed segment back and check it against its entry. Damage in the object (sha256,
/// decryption, framing) is an error; what is wrong inside the stream is listed in `problems`.
pub async fn read_segment(
    repo: &Repository,
    entry: &SegmentEntry,
    identities: Arc<Vec<age::x25519::Identity>>,
) -> Result<SegmentContent> {
    let key = entry.object_key();
    let sink = Sink {
        decoder: Decoder::new(),
        state: State::default(),
    };
    let (stats, sink) = pipeline::download(
        repo,
        &key,
        Some(entry.stored.sha256.clone()),
        identities,
        sink,
    )
    .await?;
    let (header, end) = sink
        .decoder
        .finish()
        .map_err(|e| PgdrError::corrupt(format!("{key}: {e}")))?;
    let mut st = sink.state;
    if stats.plain_sha256 != entry.plain.sha256 || stats.plain_bytes != entry.plain.bytes {
        st.problem(format!(
            "plain content differs from the entry ({} bytes, sha256 {}...)",
            stats.plain_bytes,
            &stats.plain_sha256[..12]
        ));
    }
    if header.start != entry.start || end != entry.end {
        st.problem(format!(
            "the object covers {}..{}, its entry {}..{}",
            header.start, end, entry.start, entry.end
        ));
    }
    if header.system_id.to_string() != entry.system_identifier || header.timeline != entry.timeline
    {
        st.problem("the object's system identifier or timeline differs from its entry".into());
    }
    if let Some(t) = st.open.take() {
        st.problem(format!(
            "transaction {} (commit {}) has no Commit in the segment",
            t.xid, t.commit_lsn
        ));
    }
    if st.content.transactions.len() as u64 != entry.transactions {
        st.problem(format!(
            "{} transactions in the object, {} in its entry",
            st.content.transactions.len(),
            entry.transactions
        ));
    }
    if st.muted {
        st.content
            .problems
            .push("(more problems not listed)".into());
    }
    st.content.header = Some(header);
    st.content.end = Some(end);
    Ok(st.content)
}
