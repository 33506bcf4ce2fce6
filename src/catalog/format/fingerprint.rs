//! The fingerprint as stored in the manifest (`fingerprint`) and in the encrypted `sensitive`
//! object, mirroring the runtime types of `crate::fingerprint`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fingerprint::archive::{ArchiveSummary, LargeObjectData, TableData};
use crate::fingerprint::schema::SchemaFingerprint;
use crate::fingerprint::Fingerprint;

/// `fingerprint` of a manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredFingerprint {
    pub data: StoredArchiveSummary,
    /// Absent in backups made before the schema fingerprint existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<StoredSchema>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredArchiveSummary {
    pub version: String,
    pub database: String,
    pub server_version: String,
    pub pg_dump_version: String,
    pub encoding: Option<String>,
    pub toc_entries: usize,
    pub tables: Vec<StoredTableData>,
    pub large_objects: Vec<StoredLargeObject>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredTableData {
    pub dump_id: i32,
    pub schema: String,
    pub name: String,
    pub columns: Vec<String>,
    pub copy_statement: String,
    pub rows: u64,
    pub digest: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredLargeObject {
    pub oid: u32,
    pub bytes: u64,
    pub digest: String,
}

/// Section → object key → properties. The properties are free JSON on purpose: which
/// properties a section has is the capture's business, versioned by its content, not here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredSchema {
    pub sections: BTreeMap<String, BTreeMap<String, Value>>,
}

/// The format of the `sensitive` object written today.
pub const SENSITIVE_FORMAT: u32 = 1;

/// The plaintext of the encrypted `sensitive` object (compact JSON, its own format version).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredSensitive {
    pub format_version: u32,
    pub schema: StoredSchema,
}

impl From<&Fingerprint> for StoredFingerprint {
    fn from(f: &Fingerprint) -> Self {
        StoredFingerprint {
            data: (&f.data).into(),
            schema: f.schema.as_ref().map(Into::into),
        }
    }
}

impl From<StoredFingerprint> for Fingerprint {
    fn from(f: StoredFingerprint) -> Self {
        Fingerprint {
            data: f.data.into(),
            schema: f.schema.map(Into::into),
            // Never stored: whether sealed values were put back is known only after reading.
            revealed: false,
        }
    }
}

impl From<&ArchiveSummary> for StoredArchiveSummary {
    fn from(a: &ArchiveSummary) -> Self {
        StoredArchiveSummary {
            version: a.version.clone(),
            database: a.database.clone(),
            server_version: a.server_version.clone(),
            pg_dump_version: a.pg_dump_version.clone(),
            encoding: a.encoding.clone(),
            toc_entries: a.toc_entries,
            tables: a.tables.iter().map(Into::into).collect(),
            large_objects: a.large_objects.iter().map(Into::into).collect(),
        }
    }
}

impl From<StoredArchiveSummary> for ArchiveSummary {
    fn from(a: StoredArchiveSummary) -> Self {
        ArchiveSummary {
            version: a.version,
            database: a.database,
            server_version: a.server_version,
            pg_dump_version: a.pg_dump_version,
            encoding: a.encoding,
            toc_entries: a.toc_entries,
            tables: a.tables.into_iter().map(Into::into).collect(),
            large_objects: a.large_objects.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<&TableData> for StoredTableData {
    fn from(t: &TableData) -> Self {
        StoredTableData {
            dump_id: t.dump_id,
            schema: t.schema.clone(),
            name: t.name.clone(),
            columns: t.columns.clone(),
            copy_statement: t.copy_statement.clone(),
            rows: t.rows,
            digest: t.digest.clone(),
            bytes: t.bytes,
        }
    }
}

impl From<StoredTableData> for TableData {
    fn from(t: StoredTableData) -> Self {
        TableData {
            dump_id: t.dump_id,
            schema: t.schema,
            name: t.name,
            columns: t.columns,
            copy_statement: t.copy_statement,
            rows: t.rows,
            digest: t.digest,
            bytes: t.bytes,
        }
    }
}

impl From<&LargeObjectData> for StoredLargeObject {
    fn from(l: &LargeObjectData) -> Self {
        StoredLargeObject {
            oid: l.oid,
            bytes: l.bytes,
            digest: l.digest.clone(),
        }
    }
}

impl From<StoredLargeObject> for LargeObjectData {
    fn from(l: StoredLargeObject) -> Self {
        LargeObjectData {
            oid: l.oid,
            bytes: l.bytes,
            digest: l.digest,
        }
    }
}

impl From<&SchemaFingerprint> for StoredSchema {
    fn from(s: &SchemaFingerprint) -> Self {
        StoredSchema {
            sections: s.sections.clone(),
        }
    }
}

impl From<StoredSchema> for SchemaFingerprint {
    fn from(s: StoredSchema) -> Self {
        SchemaFingerprint {
            sections: s.sections,
        }
    }
}
