//! pgdr's own decoder of pgoutput protocol version 1 (PostgreSQL's `proto.c`): segments must
//! read years later whatever the transport crate becomes, so the stored bytes are pgoutput's
//! and this module is the one reader of them. Pure: bytes in, typed messages out, no I/O.
//!
//! Integers are big-endian; strings are NUL-terminated; times are microseconds since
//! 2000-01-01 UTC (PostgreSQL's epoch).

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};

use crate::source::Lsn;

/// A decoded pgoutput message. Text and binary column values are kept as the server sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Begin {
        final_lsn: Lsn,
        commit_time: DateTime<Utc>,
        xid: u32,
    },
    Commit {
        flags: u8,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: DateTime<Utc>,
    },
    Origin {
        origin_lsn: Lsn,
        name: String,
    },
    Relation(Relation),
    Type {
        oid: u32,
        namespace: String,
        name: String,
    },
    Insert {
        relid: u32,
        new: Tuple,
    },
    Update {
        relid: u32,
        /// The key columns ('K') or the whole old row ('O', REPLICA IDENTITY FULL), when sent.
        old: Option<OldTuple>,
        new: Tuple,
    },
    Delete {
        relid: u32,
        old: OldTuple,
    },
    Truncate {
        /// Bit 1: CASCADE, bit 2: RESTART IDENTITY.
        options: u8,
        relids: Vec<u32>,
    },
    /// A logical message (`pg_logical_emit_message`).
    LogicalMessage {
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: Vec<u8>,
    },
}

pub const TRUNCATE_CASCADE: u8 = 1;
pub const TRUNCATE_RESTART_IDENTITY: u8 = 2;

/// A table as the Relation message describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub oid: u32,
    /// Empty for `pg_catalog`, as pgoutput sends it.
    pub namespace: String,
    pub name: String,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<Column>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Part of the replica identity key.
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// An old row: only its key columns, or all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldTuple {
    Key(Tuple),
    Full(Tuple),
}

pub type Tuple = Vec<Value>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    /// An unchanged TOASTed value, not sent: the row keeps what it has.
    UnchangedToast,
    Text(Vec<u8>),
    Binary(Vec<u8>),
}

/// Why a message does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    Empty,
    /// The message ends before the field.
    Truncated {
        tag: u8,
        field: &'static str,
    },
    /// Bytes left after the last field.
    Trailing {
        tag: u8,
        extra: usize,
    },
    /// A tag protocol v1 never sends (streaming, two-phase), or none at all.
    UnknownTag(u8),
    /// A sub-tag (tuple kind, old-tuple kind) that is not one of pgoutput's.
    BadKind {
        tag: u8,
        field: &'static str,
        kind: u8,
    },
    /// A name that is not UTF-8.
    NotUtf8 {
        tag: u8,
        field: &'static str,
    },
    Negative {
        tag: u8,
        field: &'static str,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = |t: &u8| char::from(*t).escape_default().to_string();
        match self {
            DecodeError::Empty => write!(f, "empty pgoutput message"),
            DecodeError::Truncated { tag, field } => {
                write!(f, "pgoutput message '{}' ends before its {field}", t(tag))
            }
            DecodeError::Trailing { tag, extra } => {
                write!(
                    f,
                    "pgoutput message '{}' has {extra} bytes after its end",
                    t(tag)
                )
            }
            DecodeError::UnknownTag(tag) => write!(
                f,
                "pgoutput message '{}' is not one protocol version 1 sends",
                t(tag)
            ),
            DecodeError::BadKind { tag, field, kind } => write!(
                f,
                "pgoutput message '{}': '{}' is not a valid {field}",
                t(tag),
                t(kind)
            ),
            DecodeError::NotUtf8 { tag, field } => {
                write!(f, "pgoutput message '{}': its {field} is not UTF-8", t(tag))
            }
            DecodeError::Negative { tag, field } => {
                write!(f, "pgoutput message '{}': negative {field}", t(tag))
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Microseconds between 1970-01-01 and 2000-01-01.
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// A PostgreSQL timestamp (microseconds since 2000-01-01 UTC) as a time.
pub fn pg_time(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros.saturating_add(PG_EPOCH_OFFSET_MICROS))
        .single()
        .unwrap_or_default()
}

/// A cursor over one message's bytes.
struct Reader<'a> {
    tag: u8,
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated {
                tag: self.tag,
                field,
            });
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(
            self.take(4, field)?.try_into().expect("4"),
        ))
    }
    fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        Ok(self.u32(field)? as i32)
    }
    fn i16(&mut self, field: &'static str) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(
            self.take(2, field)?.try_into().expect("2"),
        ))
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(
            self.take(8, field)?.try_into().expect("8"),
        ))
    }
    fn lsn(&mut self, field: &'static str) -> Result<Lsn, DecodeError> {
        self.u64(field).map(Lsn)
    }
    fn time(&mut self, field: &'static str) -> Result<DateTime<Utc>, DecodeError> {
        self.u64(field).map(|v| pg_time(v as i64))
    }
    fn count(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let n = self.i16(field)?;
        usize::try_from(n).map_err(|_| DecodeError::Negative {
            tag: self.tag,
            field,
        })
    }
    fn len32(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let n = self.i32(field)?;
        usize::try_from(n).map_err(|_| DecodeError::Negative {
            tag: self.tag,
            field,
        })
    }
    fn cstr(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let end = self
            .buf
            .iter()
            .position(|b| *b == 0)
            .ok_or(DecodeError::Truncated {
                tag: self.tag,
                field,
            })?;
        let s = std::str::from_utf8(&self.buf[..end]).map_err(|_| DecodeError::NotUtf8 {
            tag: self.tag,
            field,
        })?;
        self.buf = &self.buf[end + 1..];
        Ok(s.to_string())
    }
    fn tuple(&mut self) -> Result<Tuple, DecodeError> {
        let n = self.count("column count")?;
        let mut out = Vec::with_capacity(n.min(1600));
        for _ in 0..n {
            out.push(match self.u8("column kind")? {
                b'n' => Value::Null,
                b'u' => Value::UnchangedToast,
                b't' => {
                    let len = self.len32("value length")?;
                    Value::Text(self.take(len, "value")?.to_vec())
                }
                b'b' => {
                    let len = self.len32("value length")?;
                    Value::Binary(self.take(len, "value")?.to_vec())
                }
                kind => {
                    return Err(DecodeError::BadKind {
                        tag: self.tag,
                        field: "column kind",
                        kind,
                    })
                }
            });
        }
        Ok(out)
    }
    /// 'N' then the new tuple.
    fn new_tuple(&mut self) -> Result<Tuple, DecodeError> {
        match self.u8("tuple kind")? {
            b'N' => self.tuple(),
            kind => Err(DecodeError::BadKind {
                tag: self.tag,
                field: "tuple kind",
                kind,
            }),
        }
    }
    fn old_tuple(&mut self, kind: u8) -> Result<OldTuple, DecodeError> {
        match kind {
            b'K' => Ok(OldTuple::Key(self.tuple()?)),
            b'O' => Ok(OldTuple::Full(self.tuple()?)),
            kind => Err(DecodeError::BadKind {
                tag: self.tag,
                field: "old tuple kind",
                kind,
            }),
        }
    }
}

/// Decode one whole pgoutput v1 message.
pub fn decode(data: &[u8]) -> Result<Message, DecodeError> {
    let (&tag, rest) = data.split_first().ok_or(DecodeError::Empty)?;
    let mut r = Reader { tag, buf: rest };
    let m = match tag {
        b'B' => Message::Begin {
            final_lsn: r.lsn("final LSN")?,
            commit_time: r.time("commit time")?,
            xid: r.u32("xid")?,
        },
        b'C' => Message::Commit {
            flags: r.u8("flags")?,
            commit_lsn: r.lsn("commit LSN")?,
            end_lsn: r.lsn("end LSN")?,
            commit_time: r.time("commit time")?,
        },
        b'O' => Message::Origin {
            origin_lsn: r.lsn("origin LSN")?,
            name: r.cstr("origin name")?,
        },
        b'R' => Message::Relation(relation(&mut r)?),
        b'Y' => Message::Type {
            oid: r.u32("type oid")?,
            namespace: r.cstr("namespace")?,
            name: r.cstr("type name")?,
        },
        b'I' => Message::Insert {
            relid: r.u32("relation oid")?,
            new: r.new_tuple()?,
        },
        b'U' => update(&mut r)?,
        b'D' => delete(&mut r)?,
        b'T' => truncate(&mut r)?,
        b'M' => logical_message(&mut r)?,
        other => return Err(DecodeError::UnknownTag(other)),
    };
    if !r.buf.is_empty() {
        return Err(DecodeError::Trailing {
            tag,
            extra: r.buf.len(),
        });
    }
    Ok(m)
}

fn update(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let relid = r.u32("relation oid")?;
    let old = match r.buf.first() {
        Some(&k) if k == b'K' || k == b'O' => {
            r.u8("old tuple kind")?;
            Some(r.old_tuple(k)?)
        }
        _ => None,
    };
    Ok(Message::Update {
        relid,
        old,
        new: r.new_tuple()?,
    })
}

fn delete(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let relid = r.u32("relation oid")?;
    let kind = r.u8("old tuple kind")?;
    Ok(Message::Delete {
        relid,
        old: r.old_tuple(kind)?,
    })
}

fn truncate(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let n = r.len32("relation count")?;
    let options = r.u8("options")?;
    let mut relids = Vec::with_capacity(n.min(r.buf.len() / 4));
    for _ in 0..n {
        relids.push(r.u32("relation oid")?);
    }
    Ok(Message::Truncate { options, relids })
}

fn logical_message(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let flags = r.u8("flags")?;
    let lsn = r.lsn("message LSN")?;
    let prefix = r.cstr("prefix")?;
    let len = r.len32("content length")?;
    Ok(Message::LogicalMessage {
        transactional: flags & 1 == 1,
        lsn,
        prefix,
        content: r.take(len, "content")?.to_vec(),
    })
}

fn relation(r: &mut Reader<'_>) -> Result<Relation, DecodeError> {
    let oid = r.u32("relation oid")?;
    let namespace = r.cstr("namespace")?;
    let name = r.cstr("relation name")?;
    let replica_identity = r.u8("replica identity")?;
    let n = r.count("column count")?;
    let mut columns = Vec::with_capacity(n.min(1600));
    for _ in 0..n {
        columns.push(Column {
            key: r.u8("column flags")? & 1 == 1,
            name: r.cstr("column name")?,
            type_oid: r.u32("column type")?,
            type_modifier: r.i32("column type modifier")?,
        });
    }
    Ok(Relation {
        oid,
        namespace,
        name,
        replica_identity,
        columns,
    })
}

/// The relation OID a message is about, for the messages that name one (Relation included).
pub fn relid_of(m: &Message) -> Vec<u32> {
    match m {
        Message::Relation(r) => vec![r.oid],
        Message::Insert { relid, .. }
        | Message::Update { relid, .. }
        | Message::Delete { relid, .. } => vec![*relid],
        Message::Truncate { relids, .. } => relids.clone(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
#[path = "pgoutput_tests.rs"]
mod tests;
