//! The manifest: what a backup holds, how it was made, and how to check it.
//!
//! Written last, it is the commit marker of a backup. It checks itself (a sha256 over its own
//! canonical JSON), carries a format version (a newer one is refused, never guessed at), and
//! keeps fields it does not know, so an older pgdr can still read a newer minor addition.
//! Its JSON is [`format::manifest::StoredManifest`](super::format::manifest), converted from
//! these runtime types, which may change freely.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::format::manifest::{StoredManifest, MANIFEST_FORMAT};
use super::id::BackupId;
use crate::config::Compression;
use crate::error::{PgdrError, Result};
use crate::fingerprint::Fingerprint;
use crate::source::dump::GlobalsMode;
use crate::source::ServerInfo;

/// 2: setting values and comments of the schema fingerprint moved out of the manifest into
/// the encrypted `sensitive` object (see `fingerprint::sensitive`); the manifest keeps their
/// names. Format 1 (values in clear, no such object) is still read.
pub const FORMAT_VERSION: u32 = MANIFEST_FORMAT;

#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub format_version: u32,
    pub pgdr_version: String,
    pub id: BackupId,
    /// The repository name of the database (config `name`, default the dbname).
    pub database: String,
    pub source: ServerInfo,
    pub snapshot: SnapshotInfo,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Seconds per phase, in the order they ran.
    pub phases: Vec<Phase>,
    pub tools: ToolsInfo,
    pub codec: CodecInfo,
    pub globals_mode: GlobalsMode,
    pub objects: Vec<ObjectRecord>,
    /// What the backup holds, to be proven equal after a restore.
    pub fingerprint: Option<Fingerprint>,
    /// `pgdr backup --label NAME`: another way to name this backup (unique per database).
    pub label: Option<String>,
    /// `pgdr backup --note TEXT`: why it was taken, for whoever looks later.
    pub note: Option<String>,
    /// The keep rule it was taken with (retention never deletes it before its time); a keep
    /// record (`pgdr keep`) overrides it.
    pub keep: Option<super::labels::KeepRule>,
    /// Fields written by newer pgdr versions, kept as they are.
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotInfo {
    /// `now()` inside the snapshot: the point in time the backup restores to.
    pub time: DateTime<Utc>,
    pub method: String,
    /// Change capture: the anchor slot's consistent point. The dump holds exactly the
    /// transactions that committed before it; replay starts with those committed at or after.
    pub cut_lsn: Option<crate::source::Lsn>,
    /// Change capture was on but the anchor could not be made (and who blocked it).
    pub not_anchored: Option<crate::source::snapshot::NotAnchored>,
}

impl SnapshotInfo {
    /// What the manifest records of the backup's snapshot (and its cut, with capture).
    pub fn of(s: &crate::source::snapshot::Snapshot) -> SnapshotInfo {
        SnapshotInfo {
            time: s.time,
            method: s.method.to_string(),
            cut_lsn: s.cut_lsn(),
            not_anchored: s.not_anchored().cloned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolsInfo {
    pub pg_dump_version: String,
    pub pg_dump_args: Vec<String>,
    pub pg_dumpall_version: String,
    pub pg_dumpall_args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CodecInfo {
    pub compression: String,
    pub zstd: Compression,
    pub encryption: String,
    /// Public keys only: who can decrypt this backup.
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectRecord {
    /// Role of the object: "dump", "globals" or "sensitive".
    pub name: String,
    /// File name inside the backup folder.
    pub file: String,
    /// Bytes of plaintext (the pg_dump archive or SQL).
    pub raw_bytes: u64,
    pub compressed_bytes: u64,
    pub stored_bytes: u64,
    pub sha256_plain: String,
    pub sha256_stored: String,
}

/// Times consecutive phases of a command (backup, verify, restore, drill).
pub struct PhaseTimer {
    pub phases: Vec<Phase>,
    mark: std::time::Instant,
}

impl Default for PhaseTimer {
    fn default() -> Self {
        PhaseTimer {
            phases: Vec::new(),
            mark: std::time::Instant::now(),
        }
    }
}

impl PhaseTimer {
    pub fn done(&mut self, name: &str) {
        let now = std::time::Instant::now();
        self.phases.push(Phase {
            name: name.to_string(),
            seconds: (now - self.mark).as_secs_f64(),
        });
        self.mark = now;
    }

    /// A phase that ran beside others (the backup's schema capture and globals run during its
    /// dump): its own duration, without moving the mark of the sequential phases.
    pub fn record(&mut self, name: &str, took: std::time::Duration) {
        self.phases.push(Phase {
            name: name.to_string(),
            seconds: took.as_secs_f64(),
        });
    }
}

impl Manifest {
    pub fn object(&self, name: &str) -> Option<&ObjectRecord> {
        self.objects.iter().find(|o| o.name == name)
    }

    pub fn duration_seconds(&self) -> f64 {
        (self.finished_at - self.started_at).num_milliseconds() as f64 / 1000.0
    }

    /// Serialize with the self-check: `checksum` is the sha256 of the canonical JSON (sorted
    /// keys, compact) of the manifest without the checksum field.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let stored = StoredManifest::from(self);
        let mut v =
            serde_json::to_value(&stored).map_err(|e| PgdrError::internal(e.to_string()))?;
        let sum = canonical_sha256(&v);
        v.as_object_mut()
            .expect("manifest is an object")
            .insert("checksum".into(), serde_json::Value::String(sum));
        serde_json::to_vec_pretty(&v).map_err(|e| PgdrError::internal(e.to_string()))
    }

    /// Parse and check. `what` names the object in errors.
    pub fn from_json(bytes: &[u8], what: &str) -> Result<Manifest> {
        let mut v: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| PgdrError::corrupt(format!("{what}: not a readable manifest: {e}")))?;
        let obj = v.as_object_mut().ok_or_else(|| {
            PgdrError::corrupt(format!(
                "{what}: not a readable manifest: not a JSON object"
            ))
        })?;
        let version = obj.get("format_version").and_then(|x| x.as_u64());
        match version {
            Some(n) if n as u32 > FORMAT_VERSION => {
                return Err(PgdrError::corrupt(format!(
                    "{what}: manifest format {n} is newer than this pgdr understands ({FORMAT_VERSION})"
                ))
                .hint("upgrade pgdr to read this backup"))
            }
            None => {
                return Err(PgdrError::corrupt(format!(
                    "{what}: not a pgdr manifest (no format_version)"
                )))
            }
            _ => {}
        }
        let stored = obj
            .remove("checksum")
            .and_then(|c| c.as_str().map(String::from));
        let Some(stored) = stored else {
            return Err(PgdrError::corrupt(format!(
                "{what}: the manifest has no checksum"
            )));
        };
        let computed = canonical_sha256(&v);
        if stored != computed {
            return Err(PgdrError::corrupt(format!(
                "{what}: manifest checksum mismatch (stored {}..., computed {}...)",
                &stored[..12.min(stored.len())],
                &computed[..12]
            ))
            .hint("the manifest was edited or damaged after it was written; this backup cannot be trusted"));
        }
        serde_json::from_value::<StoredManifest>(v)
            .map(Manifest::from)
            .map_err(|e| {
                PgdrError::corrupt(format!(
                    "{what}: manifest does not match format {FORMAT_VERSION}: {e}"
                ))
            })
    }
}

fn canonical_sha256(v: &serde_json::Value) -> String {
    // serde_json's Map is a BTreeMap here (no preserve_order feature): keys come out sorted.
    let bytes = serde_json::to_vec(v).expect("a Value serializes");
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> Manifest {
        let t: DateTime<Utc> = "2026-11-26T02:00:00Z".parse().unwrap();
        Manifest {
            format_version: FORMAT_VERSION,
            pgdr_version: "0.1.0".into(),
            id: BackupId::from_time(t),
            database: "app".into(),
            source: ServerInfo {
                server_version: "15.18".into(),
                server_version_num: 150018,
                system_identifier: Some("7300000000000000000".into()),
                database: "app".into(),
                database_owner: "postgres".into(),
                encoding: "UTF8".into(),
                is_superuser: true,
                in_recovery: false,
            },
            snapshot: SnapshotInfo {
                time: t,
                method: "pg_export_snapshot".into(),
                cut_lsn: None,
                not_anchored: None,
            },
            started_at: t,
            finished_at: t + chrono::Duration::seconds(3),
            phases: vec![Phase {
                name: "dump".into(),
                seconds: 2.5,
            }],
            tools: ToolsInfo {
                pg_dump_version: "15.18".into(),
                pg_dump_args: vec!["--format=custom".into()],
                pg_dumpall_version: "15.18".into(),
                pg_dumpall_args: vec!["--globals-only".into()],
            },
            codec: CodecInfo {
                compression: "zstd".into(),
                zstd: Compression {
                    level: 1,
                    threads: 0,
                },
                encryption: "age-x25519".into(),
                recipients: vec!["age1xyz".into()],
            },
            globals_mode: GlobalsMode::Full,
            objects: vec![],
            fingerprint: None,
            label: None,
            note: None,
            keep: None,
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn any_phase_duration_survives_the_self_check() {
        // Durations are arbitrary f64s (Duration::as_secs_f64); a manifest must read back
        // with its checksum intact whatever digits they print as.
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..10_000 {
            let mut m = sample();
            m.phases[0].seconds = rng.f64() * 10f64.powi(rng.i32(-3..4));
            let bytes = m.to_json().unwrap();
            if let Err(e) = Manifest::from_json(&bytes, "m") {
                panic!("{} does not round-trip: {e}", m.phases[0].seconds);
            }
        }
    }

    #[test]
    fn round_trip_is_byte_exact_and_self_checking() {
        let m = sample();
        let j = m.to_json().unwrap();
        let back = Manifest::from_json(&j, "m").unwrap();
        assert_eq!(back, m);
        assert_eq!(back.to_json().unwrap(), j);
        // One edited value is caught.
        let tampered = String::from_utf8(j.clone())
            .unwrap()
            .replace("\"app\"", "\"app2\"");
        let e = Manifest::from_json(tampered.as_bytes(), "m").unwrap_err();
        assert!(
            e.message.starts_with("m: manifest checksum mismatch"),
            "{}",
            e.message
        );
    }

    #[test]
    fn newer_format_refused_unknown_fields_kept() {
        let m = sample();
        let mut v = serde_json::to_value(&m).unwrap();
        v["format_version"] = (FORMAT_VERSION + 1).into();
        let mut raw = serde_json::to_vec(&v).unwrap();
        let e = Manifest::from_json(&raw, "m").unwrap_err();
        assert!(
            e.message
                .contains(&format!("manifest format {} is newer", FORMAT_VERSION + 1)),
            "{}",
            e.message
        );

        v["format_version"] = FORMAT_VERSION.into();
        v["future_field"] = serde_json::json!({"x": 1});
        let sum = canonical_sha256(&v);
        v["checksum"] = sum.into();
        raw = serde_json::to_vec(&v).unwrap();
        let back = Manifest::from_json(&raw, "m").unwrap();
        assert_eq!(back.extra["future_field"], serde_json::json!({"x": 1}));
        let again = Manifest::from_json(&back.to_json().unwrap(), "m").unwrap();
        assert_eq!(again.extra["future_field"], serde_json::json!({"x": 1}));
    }
}
