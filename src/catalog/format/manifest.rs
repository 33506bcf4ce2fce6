//! `manifest.json`, formats 1 and 2 (same shape; see the module above; format 2 gained the
//! optional `snapshot.cut_lsn` / `snapshot.not_anchored` of change capture, absent otherwise,
//! so older manifests read and write back unchanged; likewise the optional `label`, `note` and
//! `keep` of labelled backups), and the conversions
//! from and to the runtime [`Manifest`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::fingerprint::StoredFingerprint;
use super::keep::StoredKeepRule;
use super::{mirror_enum, via_stored};
use crate::catalog::id::BackupId;
use crate::catalog::manifest::{CodecInfo, Manifest, ObjectRecord, Phase, SnapshotInfo, ToolsInfo};
use crate::config::Compression;
use crate::source::dump::GlobalsMode;
use crate::source::snapshot::NotAnchored;
use crate::source::{Lsn, ServerInfo};

/// The newest manifest format this pgdr writes; it reads every format up to it.
pub const MANIFEST_FORMAT: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredManifest {
    pub format_version: u32,
    pub pgdr_version: String,
    pub id: BackupId,
    pub database: String,
    pub source: StoredServer,
    pub snapshot: StoredSnapshot,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub phases: Vec<StoredPhase>,
    pub tools: StoredTools,
    pub codec: StoredCodec,
    pub globals_mode: StoredGlobalsMode,
    pub objects: Vec<StoredObject>,
    pub fingerprint: Option<StoredFingerprint>,
    /// `pgdr backup --label`: unique per database, never readable as an id (see
    /// `catalog::labels`). Absent on unlabelled backups, as `note` and `keep` are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The keep rule the backup was taken with; a newer keep record overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<StoredKeepRule>,
    /// Fields written by newer pgdr versions, kept as they are.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredServer {
    pub server_version: String,
    pub server_version_num: i32,
    pub system_identifier: Option<String>,
    pub database: String,
    pub database_owner: String,
    pub encoding: String,
    pub is_superuser: bool,
    pub in_recovery: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredSnapshot {
    pub time: DateTime<Utc>,
    pub method: String,
    /// Anchored backups only (change capture); absent in older manifests and without capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_lsn: Option<Lsn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_anchored: Option<StoredNotAnchored>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredNotAnchored {
    pub reason: String,
    pub blocking_pid: Option<i32>,
    pub blocking_seconds: Option<f64>,
}

/// Also the phases of every record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredPhase {
    pub name: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredTools {
    pub pg_dump_version: String,
    pub pg_dump_args: Vec<String>,
    pub pg_dumpall_version: String,
    pub pg_dumpall_args: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredCodec {
    pub compression: String,
    pub zstd: StoredZstd,
    pub encryption: String,
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredZstd {
    pub level: i32,
    pub threads: u32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum StoredGlobalsMode {
    Full,
    RolesOnlyNoPasswords,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredObject {
    pub name: String,
    pub file: String,
    pub raw_bytes: u64,
    pub compressed_bytes: u64,
    pub stored_bytes: u64,
    pub sha256_plain: String,
    pub sha256_stored: String,
}

via_stored!(Manifest, StoredManifest);
via_stored!(Phase, StoredPhase);
via_stored!(SnapshotInfo, StoredSnapshot);
via_stored!(ToolsInfo, StoredTools);
via_stored!(CodecInfo, StoredCodec);
via_stored!(ObjectRecord, StoredObject);
mirror_enum!(GlobalsMode, StoredGlobalsMode, [Full, RolesOnlyNoPasswords]);

impl From<&Manifest> for StoredManifest {
    fn from(m: &Manifest) -> Self {
        StoredManifest {
            format_version: m.format_version,
            pgdr_version: m.pgdr_version.clone(),
            id: m.id.clone(),
            database: m.database.clone(),
            source: (&m.source).into(),
            snapshot: (&m.snapshot).into(),
            started_at: m.started_at,
            finished_at: m.finished_at,
            phases: m.phases.iter().map(Into::into).collect(),
            tools: (&m.tools).into(),
            codec: (&m.codec).into(),
            globals_mode: (&m.globals_mode).into(),
            objects: m.objects.iter().map(Into::into).collect(),
            fingerprint: m.fingerprint.as_ref().map(Into::into),
            label: m.label.clone(),
            note: m.note.clone(),
            keep: m.keep.as_ref().map(Into::into),
            extra: m.extra.clone(),
        }
    }
}

impl From<StoredManifest> for Manifest {
    fn from(m: StoredManifest) -> Self {
        Manifest {
            format_version: m.format_version,
            pgdr_version: m.pgdr_version,
            id: m.id,
            database: m.database,
            source: m.source.into(),
            snapshot: m.snapshot.into(),
            started_at: m.started_at,
            finished_at: m.finished_at,
            phases: m.phases.into_iter().map(Into::into).collect(),
            tools: m.tools.into(),
            codec: m.codec.into(),
            globals_mode: m.globals_mode.into(),
            objects: m.objects.into_iter().map(Into::into).collect(),
            fingerprint: m.fingerprint.map(Into::into),
            label: m.label,
            note: m.note,
            keep: m.keep.map(Into::into),
            extra: m.extra,
        }
    }
}

impl From<&ServerInfo> for StoredServer {
    fn from(s: &ServerInfo) -> Self {
        StoredServer {
            server_version: s.server_version.clone(),
            server_version_num: s.server_version_num,
            system_identifier: s.system_identifier.clone(),
            database: s.database.clone(),
            database_owner: s.database_owner.clone(),
            encoding: s.encoding.clone(),
            is_superuser: s.is_superuser,
            in_recovery: s.in_recovery,
        }
    }
}

impl From<StoredServer> for ServerInfo {
    fn from(s: StoredServer) -> Self {
        ServerInfo {
            server_version: s.server_version,
            server_version_num: s.server_version_num,
            system_identifier: s.system_identifier,
            database: s.database,
            database_owner: s.database_owner,
            encoding: s.encoding,
            is_superuser: s.is_superuser,
            in_recovery: s.in_recovery,
        }
    }
}

impl From<&SnapshotInfo> for StoredSnapshot {
    fn from(s: &SnapshotInfo) -> Self {
        StoredSnapshot {
            time: s.time,
            method: s.method.clone(),
            cut_lsn: s.cut_lsn,
            not_anchored: s.not_anchored.as_ref().map(|n| StoredNotAnchored {
                reason: n.reason.clone(),
                blocking_pid: n.blocking_pid,
                blocking_seconds: n.blocking_seconds,
            }),
        }
    }
}

impl From<StoredSnapshot> for SnapshotInfo {
    fn from(s: StoredSnapshot) -> Self {
        SnapshotInfo {
            time: s.time,
            method: s.method,
            cut_lsn: s.cut_lsn,
            not_anchored: s.not_anchored.map(|n| NotAnchored {
                reason: n.reason,
                blocking_pid: n.blocking_pid,
                blocking_seconds: n.blocking_seconds,
            }),
        }
    }
}

impl From<&Phase> for StoredPhase {
    fn from(p: &Phase) -> Self {
        StoredPhase {
            name: p.name.clone(),
            seconds: p.seconds,
        }
    }
}

impl From<StoredPhase> for Phase {
    fn from(p: StoredPhase) -> Self {
        Phase {
            name: p.name,
            seconds: p.seconds,
        }
    }
}

impl From<&ToolsInfo> for StoredTools {
    fn from(t: &ToolsInfo) -> Self {
        StoredTools {
            pg_dump_version: t.pg_dump_version.clone(),
            pg_dump_args: t.pg_dump_args.clone(),
            pg_dumpall_version: t.pg_dumpall_version.clone(),
            pg_dumpall_args: t.pg_dumpall_args.clone(),
        }
    }
}

impl From<StoredTools> for ToolsInfo {
    fn from(t: StoredTools) -> Self {
        ToolsInfo {
            pg_dump_version: t.pg_dump_version,
            pg_dump_args: t.pg_dump_args,
            pg_dumpall_version: t.pg_dumpall_version,
            pg_dumpall_args: t.pg_dumpall_args,
        }
    }
}

impl From<&CodecInfo> for StoredCodec {
    fn from(c: &CodecInfo) -> Self {
        StoredCodec {
            compression: c.compression.clone(),
            zstd: StoredZstd {
                level: c.zstd.level,
                threads: c.zstd.threads,
            },
            encryption: c.encryption.clone(),
            recipients: c.recipients.clone(),
        }
    }
}

impl From<StoredCodec> for CodecInfo {
    fn from(c: StoredCodec) -> Self {
        CodecInfo {
            compression: c.compression,
            zstd: Compression {
                level: c.zstd.level,
                threads: c.zstd.threads,
            },
            encryption: c.encryption,
            recipients: c.recipients,
        }
    }
}

impl From<&ObjectRecord> for StoredObject {
    fn from(o: &ObjectRecord) -> Self {
        StoredObject {
            name: o.name.clone(),
            file: o.file.clone(),
            raw_bytes: o.raw_bytes,
            compressed_bytes: o.compressed_bytes,
            stored_bytes: o.stored_bytes,
            sha256_plain: o.sha256_plain.clone(),
            sha256_stored: o.sha256_stored.clone(),
        }
    }
}

impl From<StoredObject> for ObjectRecord {
    fn from(o: StoredObject) -> Self {
        ObjectRecord {
            name: o.name,
            file: o.file,
            raw_bytes: o.raw_bytes,
            compressed_bytes: o.compressed_bytes,
            stored_bytes: o.stored_bytes,
            sha256_plain: o.sha256_plain,
            sha256_stored: o.sha256_stored,
        }
    }
}
