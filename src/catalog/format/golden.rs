//! Golden files: real objects written by real runs (`tests/fixtures/format/`; the format-1
//! manifest by pgdr at commit 97bfeb6, the rest by today's), read and written again. A change
//! to a stored struct, or a runtime type that leaks into the JSON, fails here byte for byte.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::capture::CaptureState;
use super::fingerprint::StoredSensitive;
use super::jobs::{StoredJobState, StoredLease};
use super::manifest::StoredManifest;
use super::marks::{StoredInUse, StoredRestoring};
use super::records::{StoredDrill, StoredRestore, StoredVerification};
use crate::catalog::inuse::InUseMark;
use crate::catalog::manifest::Manifest;
use crate::catalog::records::{DrillRecord, RestoreRecord, VerificationRecord};
use crate::catalog::restoring::RestoringMark;
use crate::catalog::sensitive;
use crate::fingerprint::sensitive::{merge, SEALED};

fn golden(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/format/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `bytes` read as `T` and written again as pgdr writes such objects (pretty) are `bytes`.
fn pretty_round_trip<T: Serialize + DeserializeOwned>(name: &str) -> T {
    let bytes = golden(name);
    let v: T = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let again = serde_json::to_vec_pretty(&v).unwrap();
    assert_eq!(
        String::from_utf8(again).unwrap(),
        String::from_utf8(bytes).unwrap(),
        "{name} does not write back byte for byte"
    );
    v
}

/// Reads with its self-check, has no field the stored struct does not know, and writes back
/// byte for byte (checksum included).
fn manifest(name: &str, version: u32) -> Manifest {
    let bytes = golden(name);
    let m = Manifest::from_json(&bytes, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(m.format_version, version);
    assert!(m.extra.is_empty(), "{name}: unknown fields {:?}", m.extra);
    assert_eq!(
        String::from_utf8(m.to_json().unwrap()).unwrap(),
        String::from_utf8(bytes.clone()).unwrap(),
        "{name} does not write back byte for byte"
    );
    // The stored struct alone (no runtime type) reads it too.
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v.as_object_mut().unwrap().remove("checksum");
    let stored: StoredManifest = serde_json::from_value(v).unwrap();
    assert!(stored.extra.is_empty());
    m
}

fn database_props(m: &Manifest) -> &serde_json::Value {
    let schema = m.fingerprint.as_ref().unwrap().schema.as_ref().unwrap();
    &schema.sections["database"]["current"]
}

#[test]
fn manifest_format_1_reads_with_values_in_clear() {
    let m = manifest("manifest-v1.json", 1);
    assert!(m.object(sensitive::OBJECT).is_none());
    assert_eq!(database_props(&m)["comment"], "pgdr sample database");
    assert_eq!(
        database_props(&m)["settings"]["app.settings.environment"],
        "demo"
    );
    let fp = m.fingerprint.as_ref().unwrap();
    assert!(!fp.data.tables.is_empty() && !fp.data.large_objects.is_empty());
}

#[test]
fn manifest_format_2_reads_sealed_and_merges_with_its_sensitive_object() {
    let m = manifest("manifest-v2.json", 2);
    assert!(m.object(sensitive::OBJECT).is_some());
    assert_eq!(database_props(&m)["comment"], SEALED);
    let secret = sensitive::from_bytes(&golden("sensitive-v1.json")).unwrap();
    let public = m.fingerprint.as_ref().unwrap().schema.clone().unwrap();
    let full = merge(&public, &secret).unwrap();
    assert_eq!(
        full.sections["database"]["current"]["comment"],
        "pgdr sample database"
    );
    // The runtime writer of the object and the stored struct agree on its bytes.
    assert_eq!(
        sensitive::to_bytes(&secret).unwrap(),
        golden("sensitive-v1.json")
    );
    let stored: StoredSensitive = serde_json::from_slice(&golden("sensitive-v1.json")).unwrap();
    assert_eq!(
        serde_json::to_vec(&stored).unwrap(),
        golden("sensitive-v1.json")
    );
}

#[test]
fn an_edited_golden_manifest_fails_its_self_check() {
    for name in ["manifest-v1.json", "manifest-v2.json"] {
        let text = String::from_utf8(golden(name)).unwrap();
        let edited = text.replacen("\"rows\": 1", "\"rows\": 2", 1);
        assert_ne!(edited, text, "{name}: nothing to edit");
        let e = Manifest::from_json(edited.as_bytes(), name).unwrap_err();
        assert!(
            e.message.contains("manifest checksum mismatch"),
            "{}",
            e.message
        );
    }
}

#[test]
fn records_read_and_write_back_byte_for_byte() {
    for name in [
        "verification-quick-v1.json",
        "verification-full-v1.json",
        "verification-chain-v1.json",
        "verification-signed-v1.json",
    ] {
        let r: VerificationRecord = pretty_round_trip(name);
        assert_eq!(r.format_version, 1);
        pretty_round_trip::<StoredVerification>(name);
    }
    for name in [
        "drill-v1.json",
        "drill-checks-v1.json",
        "drill-capture-v1.json",
        "drill-point-v1.json",
    ] {
        pretty_round_trip::<DrillRecord>(name);
        pretty_round_trip::<StoredDrill>(name);
    }
    let signed: VerificationRecord = pretty_round_trip("verification-signed-v1.json");
    let sig = signed.backup_signature.expect("read");
    assert_eq!(
        sig.acceptance,
        super::signature::Acceptance::AllowedUnsigned
    );
    let capture: DrillRecord = pretty_round_trip("drill-capture-v1.json");
    assert_eq!(capture.rpo_source.as_deref(), Some("capture"));
    assert!(capture.replay.is_none());
    // A drill of a point: the replay, its point and distance (older records have none).
    let point: DrillRecord = pretty_round_trip("drill-point-v1.json");
    let r = point.replay.as_ref().unwrap();
    assert!(r.point.starts_with("time ") && r.distance_seconds.is_some());
    assert!(point.phases.iter().any(|p| p.name == "replay"));
    let checks: DrillRecord = pretty_round_trip("drill-checks-v1.json");
    assert!(!checks.checks.is_empty() && checks.worst_rpo.is_some());
    for name in [
        "restore-v1.json",
        "restore-swap-v1.json",
        "restore-managed-v1.json",
    ] {
        pretty_round_trip::<RestoreRecord>(name);
        pretty_round_trip::<StoredRestore>(name);
    }
    let managed: RestoreRecord = pretty_round_trip("restore-managed-v1.json");
    assert_eq!(
        managed.mode,
        crate::catalog::records::RestoreMode::IntoExisting
    );
    assert_eq!(managed.managed.len(), 7);
    let swap: RestoreRecord = pretty_round_trip("restore-swap-v1.json");
    assert!(swap.previous_kept_as.is_some());
    let plain: RestoreRecord = pretty_round_trip("restore-v1.json");
    assert!(plain.previous_kept_as.is_none());
    assert!(plain.managed.is_empty());
    assert!(plain.tables.is_none());
}

#[test]
fn a_table_restore_record_is_format_2_with_its_tables() {
    use super::restored_tables::{StoredTableMode, TABLE_RESTORE_FORMAT};
    pretty_round_trip::<StoredRestore>("restore-tables-v2.json");
    let r: RestoreRecord = pretty_round_trip("restore-tables-v2.json");
    assert_eq!(r.format_version, TABLE_RESTORE_FORMAT);
    assert_eq!(r.mode, crate::catalog::records::RestoreMode::Tables);
    let t = r.tables.unwrap();
    assert_eq!(t.mode, StoredTableMode::Into);
    assert_eq!(t.tables, ["public.orders"]);
    assert!(t.cascaded.is_empty() && t.skipped.len() == 1);
}

#[test]
fn marks_job_state_and_leases_read_and_write_back_byte_for_byte() {
    pretty_round_trip::<InUseMark>("in-use.json");
    pretty_round_trip::<StoredInUse>("in-use.json");
    let r: RestoringMark = pretty_round_trip("restoring.json");
    assert_eq!(r.oid, Some(16530));
    pretty_round_trip::<StoredRestoring>("restoring.json");
    let s: StoredJobState = pretty_round_trip("job-state-v1.json");
    assert_eq!(s.format_version, super::jobs::JOB_STATE_FORMAT);
    pretty_round_trip::<StoredLease>("lease.json");
}

#[test]
fn a_record_written_before_roles_were_recorded_still_reads() {
    // `roles_created`, `roles_kept` and `previous_kept_as` came later: absent means empty.
    let mut v: serde_json::Value = serde_json::from_slice(&golden("restore-v1.json")).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("roles_created");
    o.remove("roles_kept");
    let r: RestoreRecord = serde_json::from_value(v).unwrap();
    assert!(r.roles_created.is_empty() && r.roles_kept.is_empty());
}

#[test]
fn capture_state_reads_and_writes_back_byte_for_byte() {
    let s: CaptureState = pretty_round_trip("capture-state-v1.json");
    assert_eq!(s.format_version, super::capture::CAPTURE_STATE_FORMAT);
    assert!(s.enabled() && s.left_out.len() == 2 && s.start_lsn.0 > 0);
}

#[test]
fn an_anchored_manifest_reads_with_its_cut_and_older_ones_without() {
    let m = manifest("manifest-v2-anchored.json", 2);
    assert_eq!(m.snapshot.method, "replication_slot");
    assert!(m.snapshot.cut_lsn.is_some_and(|l| l.0 > 0));
    assert!(m.snapshot.not_anchored.is_none());
    for (name, v) in [("manifest-v1.json", 1), ("manifest-v2.json", 2)] {
        let m = manifest(name, v);
        assert!(m.snapshot.cut_lsn.is_none() && m.snapshot.not_anchored.is_none());
    }
}

#[test]
fn capture_segment_entries_and_gaps_read_and_write_back_byte_for_byte() {
    // The entry by pgdr's runner over messages recorded from PostgreSQL 15; the gap by the
    // same run's serializer (the cause a dropped slot records).
    use super::segments::{StoredGap, StoredSegmentEntry, CAPTURE_FORMAT};
    let e: StoredSegmentEntry = pretty_round_trip("segment-entry-v1.json");
    assert_eq!(e.format_version, CAPTURE_FORMAT);
    assert_eq!(e.transactions, 15);
    assert!(!e.relations.is_empty() && e.foreign_messages.len() == 2);
    // Entries written before rows were counted read as unknown and write back without it;
    // today's carry the count.
    assert_eq!(e.rows, None);
    let counted: StoredSegmentEntry = pretty_round_trip("segment-entry-v1-rows.json");
    assert_eq!(counted.rows, Some(41));
    assert_eq!(counted.transactions, e.transactions);
    let g: StoredGap = pretty_round_trip("gap-v1.json");
    assert!(g.to > g.from);
    // Rewritten by `pgdr rekey`: format 2, the tagged object and its recipients.
    let r: StoredSegmentEntry = pretty_round_trip("segment-entry-v2-rekeyed.json");
    assert_eq!(r.format_version, super::segments::REKEYED_FORMAT);
    let rekeyed = r.rekeyed.as_ref().expect("rekeyed");
    assert_eq!(rekeyed.tag, "5f0c2a9e");
    assert_eq!(
        r.object_key().to_string(),
        format!(
            "app/capture/segments/{}.k5f0c2a9e.seg.zst.age",
            r.start.to_key()
        )
    );
}

#[test]
fn not_replayable_windows_read_and_write_back_byte_for_byte() {
    use super::replayable::{
        StoredNotReplayable, StoredNotReplayableReason, NOT_REPLAYABLE_FORMAT,
    };
    let w: StoredNotReplayable = pretty_round_trip("not-replayable-v1.json");
    assert_eq!(w.format_version, NOT_REPLAYABLE_FORMAT);
    assert_eq!(w.reason, StoredNotReplayableReason::SchemaChange);
    assert!(w.to.is_some_and(|to| to > w.from));
}

#[test]
fn marks_read_and_write_back_byte_for_byte() {
    use super::mark::{StoredMark, MARK_FORMAT};
    let m: StoredMark = pretty_round_trip("mark-v1.json");
    assert_eq!(m.format_version, MARK_FORMAT);
    assert_eq!(m.lsn, Some(crate::source::Lsn(0x1A2B3C8)));
}

#[test]
fn held_triggers_read_and_write_back_byte_for_byte() {
    // Left in the repository by a managed restore killed with the triggers disabled (e2e
    // managed_held).
    use super::held_triggers::{StoredHeldTriggers, HELD_TRIGGERS_FORMAT};
    let h: StoredHeldTriggers = pretty_round_trip("held-triggers-v1.json");
    assert_eq!(h.format_version, HELD_TRIGGERS_FORMAT);
    let states: Vec<&str> = h.triggers.iter().map(|t| t.enabled.as_str()).collect();
    assert_eq!(states, ["A", "O", "D", "R"]);
}

#[test]
fn a_labelled_manifest_and_a_keep_record_read_and_write_back_byte_for_byte() {
    // Both from one real run: `backup --label pre-migration --note ... --keep-for 90d`, then
    // `pgdr keep pre-migration --keep-forever`.
    use super::keep::{StoredKeepChange, StoredKeepRecord, KEEP_FORMAT};
    use crate::catalog::labels::{KeepRecord, KeepRule};
    let m = manifest("manifest-v2-labelled.json", 2);
    assert_eq!(m.label.as_deref(), Some("pre-migration"));
    assert!(m.note.as_deref().is_some_and(|n| n.contains("OPS-1234")));
    assert!(matches!(m.keep, Some(KeepRule::Until(t)) if t > m.started_at));
    for (name, v) in [("manifest-v1.json", 1), ("manifest-v2.json", 2)] {
        let m = manifest(name, v);
        assert!(m.label.is_none() && m.note.is_none() && m.keep.is_none());
    }
    let r: KeepRecord = pretty_round_trip("keep-v1.json");
    assert_eq!(r.format_version, KEEP_FORMAT);
    assert_eq!(r.keep, StoredKeepChange::Forever);
    assert_eq!(r.backup_id, m.id);
    assert_eq!(r.rule(), Some(KeepRule::Forever));
    pretty_round_trip::<StoredKeepRecord>("keep-v1.json");
}

#[test]
fn key_check_records_v1() {
    use super::key_check::{StoredKeyCheck, KEY_CHECK_FORMAT};
    use super::records::StoredOutcome;
    let r: StoredKeyCheck = pretty_round_trip("key-check-v1.json");
    assert_eq!(r.format_version, KEY_CHECK_FORMAT);
    assert_eq!(r.outcome, StoredOutcome::Passed);
    assert_eq!(r.identities.len(), 2);
    assert!(r.identities.iter().all(|i| i.recipients_proved.len() == 1));
    let f: StoredKeyCheck = pretty_round_trip("key-check-v1-failed.json");
    assert_eq!(f.outcome, StoredOutcome::Failed);
    assert!(f.identities[0].problems[0].contains("no identity matches"));
}
