//! Keep rules in prune: a kept backup survives retention until its time, the plan names the
//! rule, and a kept old anchored backup keeps itself, not the change stream after it.

use chrono::Duration;

use super::*;
use crate::catalog::labels::{change_of, KeepRecord, KeepRule};
use crate::catalog::segments::SegmentEntry;
use crate::catalog::testkit::{at, manifest, settings, Repo};
use crate::source::Lsn;

const NOW: &str = "2026-03-10T12:00:00Z";
const SEG: u64 = 0x1000;

fn entry(start: u64) -> SegmentEntry {
    let golden = format!(
        "{}/tests/fixtures/format/segment-entry-v1.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut e: SegmentEntry = serde_json::from_slice(&std::fs::read(golden).unwrap()).unwrap();
    e.start = Lsn(start);
    e.end = Lsn(start + SEG);
    e
}

/// Six daily anchored backups (oldest first), cuts inside segments 1..6; the oldest labelled
/// and kept forever, the second kept 30 days by a keep record, the third kept until an
/// hour before NOW (expired).
async fn repo() -> (Repo, Vec<BackupId>) {
    let r = Repo::new();
    for k in 0..10 {
        let e = entry(0x100 + k * SEG);
        r.put(&e.object_key().to_string(), b"seg").await;
        r.catalog.commit_segment(&e).await.unwrap();
    }
    let mut ids = Vec::new();
    for d in 0..6u64 {
        let mut m = manifest(
            "app",
            at(NOW) - Duration::days(5 - d as i64) - Duration::hours(10),
        );
        m.snapshot.cut_lsn = Some(Lsn(0x1800 + d * SEG));
        match d {
            0 => {
                m.label = Some("pre-migration".into());
                m.keep = Some(KeepRule::Forever);
            }
            2 => m.keep = Some(KeepRule::Until(at(NOW) - Duration::hours(1))),
            _ => {}
        }
        r.store.set_now(m.snapshot.time);
        r.catalog.commit(&m).await.unwrap();
        ids.push(m.id);
    }
    r.catalog
        .write_keep(&KeepRecord {
            format_version: 1,
            database: "app".into(),
            backup_id: ids[1].clone(),
            written_at: at(NOW) - Duration::days(1),
            keep: change_of(Some(KeepRule::Until(at(NOW) + Duration::days(30)))),
            host: "h".into(),
        })
        .await
        .unwrap();
    (r, ids)
}

#[tokio::test]
async fn kept_backups_survive_and_keep_only_themselves() {
    let (r, ids) = repo().await;
    let s = settings(
        "[retention]\nkeep_last = 2\n[[database]]\nname = \"app\"\nurl = \"postgres://u@h/app\"\n",
    );
    let p = plan(&r.catalog, &s, &["app".into()], at(NOW))
        .await
        .unwrap();
    let db = &p.databases[0];
    let keep: Vec<bool> = db.backups.iter().map(|b| b.keep).collect();
    assert_eq!(keep, [true, true, false, false, true, true]);
    assert_eq!(
        db.backups[0].reasons,
        ["kept: label pre-migration, keep-forever"]
    );
    assert!(
        db.backups[1].reasons[0].starts_with("kept: until 2026-04-09"),
        "{:?}",
        db.backups[1].reasons
    );
    assert_eq!(
        db.backups[2].reasons,
        ["no rule keeps it"],
        "an expired rule keeps nothing"
    );
    // The stream is kept from the oldest backup retention keeps (ids[4], cut 0x5800), not
    // from the kept old ones.
    assert_eq!(db.capture.anchor.as_ref(), Some(&ids[4]));
    assert_eq!(db.capture.keep_from, Some(Lsn(0x5100)));

    let done = apply(&r.catalog, &p).await;
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    assert_eq!(done.deleted_backups, 2);
    let left: Vec<BackupId> = r
        .list(Some("app"))
        .await
        .iter()
        .map(|l| l.id().clone())
        .collect();
    assert_eq!(
        left,
        [
            ids[0].clone(),
            ids[1].clone(),
            ids[4].clone(),
            ids[5].clone()
        ]
    );
}

#[tokio::test]
async fn a_keep_record_written_after_the_plan_still_saves_the_backup() {
    let (r, ids) = repo().await;
    let s = settings(
        "[retention]\nkeep_last = 2\n[[database]]\nname = \"app\"\nurl = \"postgres://u@h/app\"\n",
    );
    let p = plan(&r.catalog, &s, &["app".into()], at(NOW))
        .await
        .unwrap();
    assert!(!p.databases[0].backups[3].keep);
    r.catalog
        .write_keep(&KeepRecord {
            format_version: 1,
            database: "app".into(),
            backup_id: ids[3].clone(),
            written_at: at(NOW),
            keep: change_of(Some(KeepRule::Forever)),
            host: "h".into(),
        })
        .await
        .unwrap();
    let done = apply(&r.catalog, &p).await;
    assert_eq!(done.deleted_backups, 1);
    assert_eq!(done.kept_in_use.len(), 1, "{:?}", done.kept_in_use);
    assert!(r.catalog.load_exact("app", &ids[3]).await.is_ok());
}

#[tokio::test]
async fn a_newer_chain_proof_does_not_hide_the_proof_of_the_dump() {
    use crate::catalog::records::Outcome;
    use crate::catalog::records::VerifyMode;
    use crate::catalog::Listed;
    use crate::schedule::retention::{facts, Proof};
    let r = Repo::new();
    let ids = r
        .backups(
            "app",
            &[at("2026-03-01T02:00:00Z"), at("2026-03-02T02:00:00Z")],
        )
        .await;
    let t = |s| at(s);
    r.verified_as(
        "app",
        &ids[0],
        VerifyMode::Full,
        Outcome::Passed,
        t("2026-03-01T03:00:00Z"),
    )
    .await;
    // The chain proof of the stream after it, newer, failed; then another chain record.
    for (o, when) in [
        (Outcome::Failed, "2026-03-02T05:00:00Z"),
        (Outcome::Passed, "2026-03-02T06:00:00Z"),
    ] {
        r.verified_as("app", &ids[0], VerifyMode::Chain, o, t(when))
            .await;
    }
    let listed = r.list(Some("app")).await;
    let Listed::Ok(e) = &listed[0] else {
        panic!("readable")
    };
    assert_eq!(
        e.verification.as_ref().map(|v| v.mode),
        Some(VerifyMode::Chain)
    );
    let dump = e
        .dump_verification
        .as_ref()
        .expect("the full proof is found");
    assert_eq!(
        (dump.mode, dump.outcome),
        (VerifyMode::Full, Outcome::Passed)
    );
    let f = facts(&listed, &[]);
    assert_eq!(f[0].proof, Proof::Passed, "the dump's own proof counts");
    assert_eq!(f[1].proof, Proof::Unproven);
}
