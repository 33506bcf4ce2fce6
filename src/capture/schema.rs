//! The relations and types the stream has described so far, so that each segment can re-emit
//! the Relation and Type messages it uses (it then decodes on its own) and a changed Relation
//! is told apart from a repeated one (the server re-sends unchanged ones after any cache
//! invalidation).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::pgoutput::Relation;
use crate::catalog::segments::RelationUsed;

/// What a Relation message says compared with the last one seen for its relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time (and no earlier segment described it).
    New,
    Same,
    Changed,
}

struct Known {
    rel: Relation,
    raw: Bytes,
    sha256: String,
}

#[derive(Default)]
pub struct Schema {
    relations: HashMap<u32, Known>,
    types: HashMap<u32, Bytes>,
    /// Digests of relations described by the segment the capture resumes after.
    earlier: HashMap<u32, String>,
}

/// What one segment has emitted so far.
#[derive(Default)]
pub struct Emitted {
    relations: HashSet<u32>,
    types: HashSet<u32>,
}

fn digest(raw: &[u8]) -> String {
    hex::encode(Sha256::digest(raw))
}

impl Schema {
    /// Remember the relations of the segment the capture resumes after: a Relation that then
    /// arrives different is a schema change, even across a restart.
    pub fn resume_after(&mut self, used: &[RelationUsed]) {
        self.earlier = used.iter().map(|r| (r.oid, r.sha256.clone())).collect();
    }

    /// How a Relation message compares with the relation's description as written so far
    /// (decided on receipt, before the message is written anywhere).
    pub fn compare(&self, oid: u32, raw: &[u8]) -> Seen {
        let sha256 = digest(raw);
        let last = match self.relations.get(&oid) {
            Some(k) => Some(&k.sha256),
            None => self.earlier.get(&oid),
        };
        match last {
            None => Seen::New,
            Some(d) if *d == sha256 => Seen::Same,
            Some(_) => Seen::Changed,
        }
    }

    /// A Relation message was written: it is now the relation's description.
    /// `emitted`: the segment it was written into (None: learnt from a transaction that is
    /// not stored again).
    pub fn record(&mut self, rel: Relation, raw: Bytes, emitted: Option<&mut Emitted>) {
        let sha256 = digest(&raw);
        if let Some(e) = emitted {
            e.relations.insert(rel.oid);
        }
        self.relations.insert(rel.oid, Known { rel, raw, sha256 });
    }

    /// A Type message was written.
    pub fn record_type(&mut self, oid: u32, raw: Bytes, emitted: Option<&mut Emitted>) {
        if let Some(e) = emitted {
            e.types.insert(oid);
        }
        self.types.insert(oid, raw);
    }

    /// The Type and Relation messages to write before a change to `relids` in a segment that
    /// has emitted `emitted` (marked emitted now).
    pub fn preamble(&self, relids: &[u32], emitted: &mut Emitted) -> Vec<Bytes> {
        let mut out = Vec::new();
        for oid in relids {
            let Some(k) = self.relations.get(oid) else {
                continue;
            };
            if !emitted.relations.insert(*oid) {
                continue;
            }
            for c in &k.rel.columns {
                if let Some(t) = self.types.get(&c.type_oid) {
                    if emitted.types.insert(c.type_oid) {
                        out.push(t.clone());
                    }
                }
            }
            out.push(k.raw.clone());
        }
        out
    }

    /// The relations a segment described, for its entry.
    pub fn used(&self, emitted: &Emitted) -> Vec<RelationUsed> {
        let mut v: Vec<RelationUsed> = emitted
            .relations
            .iter()
            .filter_map(|oid| self.relations.get(oid))
            .map(|k| RelationUsed {
                oid: k.rel.oid,
                namespace: k.rel.namespace.clone(),
                name: k.rel.name.clone(),
                sha256: k.sha256.clone(),
            })
            .collect();
        v.sort_by_key(|r| r.oid);
        v
    }
}
