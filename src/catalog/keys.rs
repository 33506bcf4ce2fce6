//! Every kind of object key the repository holds, in one place: the catalog renders and parses
//! them, every other module names an object by its typed [`Key`] (and may print it).
//!
//! ```text
//! <db>/<id>/manifest.json                    Manifest (written last: the commit marker)
//! <db>/<id>/<file>                           Object (dump.zst.age, globals.sql.zst.age, ...)
//! <db>/<id>/verifications/<time>.json        Verification
//! <db>/<id>/keep/<time>.json                 Keep (`pgdr keep`: the backup's keep rule now)
//! <db>/drills/<time>.json                    Drill
//! <db>/restores/<time>.json                  Restore
//! <db>/key-checks/<time>.json                KeyCheck (`pgdr drill --key-check`: keys proven)
//! <db>/restores/in-progress/<digest>.json    Restoring (a restore in progress)
//! <db>/restores/triggers/<digest>.json       HeldTriggers (triggers a managed restore disabled)
//! <db>/in-use/<id>/<holder>.json             InUse (a reader's heartbeat)
//! <db>/jobs/<job>.json                       JobState (the daemon's last run)
//! <db>/jobs/<job>.lease                      Lease (which daemon runs a drill or prune)
//! <db>/capture/state.json                    CaptureState (slot, publication, tables)
//! <db>/capture/segments/<start>.seg.zst.age   Segment (change stream from <start>, hex LSN)
//! <db>/capture/segments/<start>.k<tag>.seg.zst.age   Segment re-encrypted by `pgdr rekey`
//! <db>/capture/segments/<start>.json          SegmentEntry (written last: the commit marker)
//! <db>/capture/gaps/<from>.json               Gap (changes the repository does not hold)
//! <db>/capture/not-replayable/<from>.json     NotReplayable (a window restore refuses)
//! <db>/capture/marks/<name>.json              Mark (a named point in the change stream)
//! <any of the above>.minisig                  Signature (detached, over the object's bytes)
//! ```

use std::fmt;

use super::BackupId;
use crate::source::Lsn;

pub const MANIFEST_FILE: &str = "manifest.json";
/// Folder (inside a backup's folder) of its verification records.
pub const VERIFICATIONS_DIR: &str = "verifications";
/// Folder (inside a database's folder) of the records of real restores.
pub const RESTORES_DIR: &str = "restores";
/// Folder (inside a database's folder) of its drill records.
pub const DRILLS_DIR: &str = "drills";
/// Folder (inside a database's folder) of its key-check records.
pub const KEY_CHECKS_DIR: &str = "key-checks";
/// Folder (inside a database's `restores/`) of the marks of restores in progress.
pub const IN_PROGRESS_DIR: &str = "in-progress";
/// Folder (inside a database's `restores/`) of the triggers a managed restore holds disabled.
pub const TRIGGERS_DIR: &str = "triggers";
/// Folder (inside a database's folder) of the in-use marks.
pub const IN_USE_DIR: &str = "in-use";
/// Folder (inside a database's folder) of the job records and leases.
pub const JOBS_DIR: &str = "jobs";
/// Folder (inside a database's folder) of the change capture's objects.
pub const CAPTURE_DIR: &str = "capture";
/// The capture's state object in [`CAPTURE_DIR`].
pub const CAPTURE_STATE_FILE: &str = "state.json";

// Change-capture segments and gaps (`capture/segments/`, `capture/gaps/`).
const SEGMENTS: &str = "segments";
const GAPS: &str = "gaps";
const NOT_REPLAYABLE: &str = "not-replayable";
const MARKS: &str = "marks";
const SEGMENT_SUFFIX: &str = ".seg.zst.age";
/// A detached minisign signature sits beside the object it signs, under its name + this.
pub const SIGNATURE_SUFFIX: &str = ".minisig";

/// One object of the repository, by what it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Manifest {
        database: String,
        id: BackupId,
    },
    /// Anything else in a backup's folder; `file` is a plain name for what pgdr writes, but
    /// a foreign path found there (prune removes it with an uncommitted folder) is kept whole.
    Object {
        database: String,
        id: BackupId,
        file: String,
    },
    Verification {
        database: String,
        id: BackupId,
        file: String,
    },
    /// A keep record: the newest one is the backup's keep rule (`pgdr keep`).
    Keep {
        database: String,
        id: BackupId,
        file: String,
    },
    Drill {
        database: String,
        file: String,
    },
    Restore {
        database: String,
        file: String,
    },
    /// A key drill's record: which identities opened the newest backup, which recipients
    /// that proved.
    KeyCheck {
        database: String,
        file: String,
    },
    Restoring {
        database: String,
        digest: String,
    },
    /// Triggers a managed restore disabled on one target (server and database), until it put
    /// them back.
    HeldTriggers {
        database: String,
        digest: String,
    },
    InUse {
        database: String,
        id: BackupId,
        holder: String,
    },
    JobState {
        database: String,
        job: String,
    },
    Lease {
        database: String,
        job: String,
    },
    CaptureState {
        database: String,
    },
    /// `tag`: None as the capture writes it; `pgdr rekey` writes the re-encrypted object
    /// beside the old one as `<start>.k<tag>.seg.zst.age` (its entry names the tag).
    Segment {
        database: String,
        start: Lsn,
        tag: Option<String>,
    },
    SegmentEntry {
        database: String,
        start: Lsn,
    },
    Gap {
        database: String,
        from: Lsn,
    },
    NotReplayable {
        database: String,
        from: Lsn,
    },
    /// A named point in the change stream (`pgdr mark`).
    Mark {
        database: String,
        name: String,
    },
    /// The detached signature of another object (a manifest, a segment entry, a record).
    Signature {
        of: Box<Key>,
    },
}

impl Key {
    /// One object of a backup.
    pub fn object(database: &str, id: &BackupId, file: &str) -> Key {
        Key::Object {
            database: database.to_string(),
            id: id.clone(),
            file: file.to_string(),
        }
    }

    pub fn manifest(database: &str, id: &BackupId) -> Key {
        Key::Manifest {
            database: database.to_string(),
            id: id.clone(),
        }
    }

    /// The signature object of this one.
    pub fn signature(&self) -> Key {
        Key::Signature {
            of: Box::new(self.clone()),
        }
    }

    /// The repository database (top-level folder) the object belongs to.
    pub fn database(&self) -> &str {
        match self {
            Key::Signature { of } => of.database(),
            Key::Manifest { database, .. }
            | Key::Object { database, .. }
            | Key::Verification { database, .. }
            | Key::Keep { database, .. }
            | Key::Drill { database, .. }
            | Key::Restore { database, .. }
            | Key::KeyCheck { database, .. }
            | Key::Restoring { database, .. }
            | Key::HeldTriggers { database, .. }
            | Key::InUse { database, .. }
            | Key::JobState { database, .. }
            | Key::Lease { database, .. }
            | Key::CaptureState { database }
            | Key::Segment { database, .. }
            | Key::SegmentEntry { database, .. }
            | Key::Gap { database, .. }
            | Key::NotReplayable { database, .. }
            | Key::Mark { database, .. } => database,
        }
    }

    /// The backup whose folder holds this object, if it sits in one.
    pub fn backup(&self) -> Option<&BackupId> {
        match self {
            Key::Manifest { id, .. }
            | Key::Object { id, .. }
            | Key::Verification { id, .. }
            | Key::Keep { id, .. } => Some(id),
            Key::Signature { of } => of.backup(),
            _ => None,
        }
    }

    /// The key string, as the store knows it. Private to the catalog: nobody else builds one.
    pub(super) fn render(&self) -> String {
        match self {
            Key::Manifest { database, id } => format!("{database}/{id}/{MANIFEST_FILE}"),
            Key::Object { database, id, file } => format!("{database}/{id}/{file}"),
            Key::Verification { database, id, file } => {
                format!("{database}/{id}/{VERIFICATIONS_DIR}/{file}")
            }
            Key::Keep { database, id, file } => {
                format!("{database}/{id}/{}/{file}", super::labels::KEEP_DIR)
            }
            Key::Drill { database, file } => format!("{database}/{DRILLS_DIR}/{file}"),
            Key::Restore { database, file } => format!("{database}/{RESTORES_DIR}/{file}"),
            Key::KeyCheck { database, file } => format!("{database}/{KEY_CHECKS_DIR}/{file}"),
            Key::Restoring { database, digest } => {
                format!("{database}/{RESTORES_DIR}/{IN_PROGRESS_DIR}/{digest}.json")
            }
            Key::HeldTriggers { database, digest } => {
                format!("{database}/{RESTORES_DIR}/{TRIGGERS_DIR}/{digest}.json")
            }
            Key::InUse {
                database,
                id,
                holder,
            } => format!("{database}/{IN_USE_DIR}/{id}/{holder}.json"),
            Key::JobState { database, job } => format!("{database}/{JOBS_DIR}/{job}.json"),
            Key::Lease { database, job } => format!("{database}/{JOBS_DIR}/{job}.lease"),
            Key::CaptureState { database } => {
                format!("{database}/{CAPTURE_DIR}/{CAPTURE_STATE_FILE}")
            }
            Key::Segment {
                database,
                start,
                tag,
            } => format!(
                "{database}/{CAPTURE_DIR}/{SEGMENTS}/{}{}{SEGMENT_SUFFIX}",
                start.to_key(),
                tag.as_ref().map(|t| format!(".k{t}")).unwrap_or_default()
            ),
            Key::SegmentEntry { database, start } => {
                format!(
                    "{database}/{CAPTURE_DIR}/{SEGMENTS}/{}.json",
                    start.to_key()
                )
            }
            Key::Gap { database, from } => {
                format!("{database}/{CAPTURE_DIR}/{GAPS}/{}.json", from.to_key())
            }
            Key::NotReplayable { database, from } => {
                format!(
                    "{database}/{CAPTURE_DIR}/{NOT_REPLAYABLE}/{}.json",
                    from.to_key()
                )
            }
            Key::Mark { database, name } => format!("{database}/{CAPTURE_DIR}/{MARKS}/{name}.json"),
            Key::Signature { of } => format!("{}{SIGNATURE_SUFFIX}", of.render()),
        }
    }

    /// What a listed key is; None for anything the catalog does not recognise (ignored, so the
    /// layout can grow).
    pub(super) fn parse(key: &str) -> Option<Key> {
        if let Some(of) = key.strip_suffix(SIGNATURE_SUFFIX) {
            return match Key::parse(of)? {
                Key::Signature { .. } => None,
                of => Some(of.signature()),
            };
        }
        let parts: Vec<&str> = key.split('/').collect();
        if parts.len() < 3 || parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        let database = parts[0].to_string();
        let s = |x: &str| x.to_string();
        if let Ok(id) = parts[1].parse::<BackupId>() {
            return Some(match &parts[2..] {
                [f] if *f == MANIFEST_FILE => Key::Manifest { database, id },
                [dir, file] if *dir == VERIFICATIONS_DIR => Key::Verification {
                    database,
                    id,
                    file: s(file),
                },
                [dir, file] if *dir == super::labels::KEEP_DIR && file.ends_with(".json") => {
                    Key::Keep {
                        database,
                        id,
                        file: s(file),
                    }
                }
                rest => Key::Object {
                    database,
                    id,
                    file: rest.join("/"),
                },
            });
        }
        match (parts[1], &parts[2..]) {
            (DRILLS_DIR, [file]) => Some(Key::Drill {
                database,
                file: s(file),
            }),
            (KEY_CHECKS_DIR, [file]) => Some(Key::KeyCheck {
                database,
                file: s(file),
            }),
            (RESTORES_DIR, [file]) => Some(Key::Restore {
                database,
                file: s(file),
            }),
            (RESTORES_DIR, [IN_PROGRESS_DIR, file]) => Some(Key::Restoring {
                database,
                digest: s(file.strip_suffix(".json")?),
            }),
            (RESTORES_DIR, [TRIGGERS_DIR, file]) => Some(Key::HeldTriggers {
                database,
                digest: s(file.strip_suffix(".json")?),
            }),
            (IN_USE_DIR, [id, file]) => Some(Key::InUse {
                database,
                id: id.parse().ok()?,
                holder: s(file.strip_suffix(".json")?),
            }),
            (JOBS_DIR, [file]) => {
                if let Some(job) = file.strip_suffix(".json") {
                    Some(Key::JobState {
                        database,
                        job: s(job),
                    })
                } else {
                    file.strip_suffix(".lease").map(|job| Key::Lease {
                        database,
                        job: s(job),
                    })
                }
            }
            (CAPTURE_DIR, rest) => Key::parse_capture(database, rest),
            _ => None,
        }
    }
    /// The keys under `<db>/capture/`: the change stream's objects.
    fn parse_capture(database: String, rest: &[&str]) -> Option<Key> {
        let s = |x: &str| x.to_string();
        match rest {
            [CAPTURE_STATE_FILE] => Some(Key::CaptureState { database }),
            [SEGMENTS, file] => {
                if let Some(name) = file.strip_suffix(SEGMENT_SUFFIX) {
                    let (start, tag) = match name.split_once(".k") {
                        Some((start, tag)) if rekey_tag(tag) => (start, Some(s(tag))),
                        Some(_) => return None,
                        None => (name, None),
                    };
                    Some(Key::Segment {
                        database,
                        start: Lsn::from_key(start)?,
                        tag,
                    })
                } else {
                    Some(Key::SegmentEntry {
                        database,
                        start: Lsn::from_key(file.strip_suffix(".json")?)?,
                    })
                }
            }
            [GAPS, file] => Some(Key::Gap {
                database,
                from: Lsn::from_key(file.strip_suffix(".json")?)?,
            }),
            [NOT_REPLAYABLE, file] => Some(Key::NotReplayable {
                database,
                from: Lsn::from_key(file.strip_suffix(".json")?)?,
            }),
            [MARKS, file] => Some(Key::Mark {
                database,
                name: s(file.strip_suffix(".json")?),
            }),
            _ => None,
        }
    }
}

/// For messages: the key as the repository shows it.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// Plans and reports name objects by their key string.
impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.render())
    }
}

/// A rekeyed segment's tag (`pgdr rekey`): eight lower-case hex digits, nothing else.
pub fn rekey_tag(tag: &str) -> bool {
    tag.len() == 8
        && tag
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_key_round_trips() {
        let id: BackupId = "20260101T000000.000Z".parse().unwrap();
        let db = "app".to_string();
        let all = [
            Key::manifest("app", &id),
            Key::object("app", &id, "dump.zst.age"),
            Key::object("app", &id, "globals.sql.zst.age"),
            Key::Verification {
                database: db.clone(),
                id: id.clone(),
                file: "20260101T000100.000Z.json".into(),
            },
            Key::Drill {
                database: db.clone(),
                file: "20260101T000000.000Z.json".into(),
            },
            Key::Restore {
                database: db.clone(),
                file: "20260101T000000.000Z.json".into(),
            },
            Key::Restoring {
                database: db.clone(),
                digest: "0123456789abcdef0123456789abcdef".into(),
            },
            Key::HeldTriggers {
                database: db.clone(),
                digest: "0123456789abcdef0123456789abcdef".into(),
            },
            Key::InUse {
                database: db.clone(),
                id: id.clone(),
                holder: "verify-7-0000abcd".into(),
            },
            Key::JobState {
                database: db.clone(),
                job: "backup".into(),
            },
            Key::Lease {
                database: db.clone(),
                job: "prune".into(),
            },
            Key::CaptureState {
                database: db.clone(),
            },
            Key::Keep {
                database: db.clone(),
                id: id.clone(),
                file: "20260101T000200.000Z.json".into(),
            },
            Key::manifest("app", &id).signature(),
            Key::Drill {
                database: db.clone(),
                file: "20260101T000000.000Z.json".into(),
            }
            .signature(),
        ];
        for k in all {
            let s = k.to_string();
            let back = Key::parse(&s).unwrap_or_else(|| panic!("{s} does not parse"));
            assert_eq!(back, k, "{s}");
            assert_eq!(back.render(), s);
            assert_eq!(back.database(), "app");
        }
        assert_eq!(
            Key::manifest("app", &id).to_string(),
            "app/20260101T000000.000Z/manifest.json"
        );
        assert_eq!(
            Key::manifest("app", &id).signature().to_string(),
            "app/20260101T000000.000Z/manifest.json.minisig"
        );
        assert_eq!(
            Key::Lease {
                database: db,
                job: "drill".into()
            }
            .to_string(),
            "app/jobs/drill.lease"
        );
    }

    #[test]
    fn key_check_key_round_trips() {
        let k = Key::KeyCheck {
            database: "app".into(),
            file: "20260101T000000.000Z.json".into(),
        };
        assert_eq!(k.to_string(), "app/key-checks/20260101T000000.000Z.json");
        assert_eq!(Key::parse(&k.to_string()), Some(k.clone()));
        assert_eq!(Key::parse(&k.signature().to_string()), Some(k.signature()));
    }

    #[test]
    fn capture_segment_and_gap_keys_round_trip() {
        let database = "app".to_string();
        let start = Lsn(0x16_B374_D848);
        for k in [
            Key::Segment {
                database: database.clone(),
                start,
                tag: None,
            },
            Key::Segment {
                database: database.clone(),
                start,
                tag: Some("0123abcd".into()),
            },
            Key::SegmentEntry {
                database: database.clone(),
                start,
            },
            Key::Gap {
                database: database.clone(),
                from: Lsn(1),
            },
            Key::NotReplayable {
                database: database.clone(),
                from: Lsn(2),
            },
            Key::Mark {
                database: database.clone(),
                name: "pre-migration".into(),
            },
            Key::SegmentEntry {
                database: database.clone(),
                start,
            }
            .signature(),
        ] {
            let s = k.to_string();
            assert_eq!(Key::parse(&s), Some(k), "{s}");
        }
        assert_eq!(
            Key::Segment {
                database,
                start,
                tag: None
            }
            .to_string(),
            "app/capture/segments/00000016B374D848.seg.zst.age"
        );
    }

    #[test]
    fn foreign_keys_are_not_recognised() {
        for k in [
            "app",
            "app/x",
            "app/notes/readme.txt",
            "app/jobs/backup.tmp",
            "app/in-use/not-an-id/h.json",
            "app/restores/in-progress/x.txt",
            "app/drills/x/y.json",
            "app//x",
            "app/capture/segments/12.json",
            "app/capture/segments/00000016B374D848.seg",
            "app/capture/gaps/00000016B374D848.txt",
            "app/capture/other/00000016B374D848.json",
            "app/jobs/x.minisig",
            "app/drills/x.json.minisig.minisig",
        ] {
            assert!(Key::parse(k).is_none(), "{k}");
        }
        // A foreign path in a backup folder is an object of that folder (prune's orphans).
        let k = Key::parse("app/20260101T000000.000Z/a/b").unwrap();
        assert_eq!(k.backup().unwrap().as_str(), "20260101T000000.000Z");
        assert_eq!(k.to_string(), "app/20260101T000000.000Z/a/b");
    }
}
