//! `prune` on a memory store with an injected clock: what the plan decides, that apply deletes
//! exactly that, and that failures leave a repository every command can still read.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::catalog::inuse::InUseMark;
use crate::catalog::keys::{IN_USE_DIR, MANIFEST_FILE};
use crate::catalog::records::Outcome;
use crate::catalog::testkit::object_key;
use crate::catalog::testkit::{at, named, settings, Repo};
use crate::catalog::{Key, DUMP_FILE};

const NOW: &str = "2026-03-10T12:00:00Z";

fn config(retention: &str) -> Settings {
    settings(&format!(
        "[retention]\n{retention}\n\
         [[database]]\nname = \"app\"\nurl = \"postgres://u@h/app\"\n\
         [[database]]\nname = \"crm\"\nurl = \"postgres://u@h/crm\"\n"
    ))
}

/// Daily backups of `db` at 02:00, the newest today (10h before NOW), oldest first.
async fn daily(r: &Repo, db: &str, days: i64) -> Vec<BackupId> {
    let now = at(NOW);
    let times: Vec<DateTime<Utc>> = (0..days)
        .rev()
        .map(|d| now - Duration::days(d) - Duration::hours(10))
        .collect();
    r.backups(db, &times).await
}

async fn plan_of(r: &Repo, s: &Settings, db: &str, now: DateTime<Utc>) -> DatabasePlan {
    plan(&r.catalog, s, &[db.to_string()], now)
        .await
        .expect("plan")
        .databases
        .remove(0)
}

fn deleted(p: &DatabasePlan) -> Vec<BackupId> {
    p.to_delete().map(|b| b.id.clone()).collect()
}

#[tokio::test]
async fn the_plan_keeps_by_rule_and_proof_at_the_given_time() {
    let r = Repo::new();
    let ids = daily(&r, "app", 6).await;
    daily(&r, "crm", 6).await;
    // The oldest is the only one proven: min_verified keeps it. The fourth failed: it takes
    // no slot of keep_last, which reaches one further back, and is deleted.
    r.verified("app", &ids[0], Outcome::Passed, at(NOW)).await;
    r.verified("app", &ids[3], Outcome::Failed, at(NOW)).await;
    let s = config("keep_last = 3\nmin_verified = 1");
    let p = plan_of(&r, &s, "app", at(NOW)).await;
    assert_eq!(p.hold, None);
    assert_eq!(deleted(&p), [ids[1].clone(), ids[3].clone()]);
    let reasons: Vec<String> = p.backups.iter().map(|b| b.reasons.join("; ")).collect();
    assert_eq!(
        reasons,
        [
            "proof: newest verified 1/1",
            "no rule keeps it",
            "last 3/3",
            "failed verification: no rule keeps a known-bad backup",
            "last 2/3",
            "last 1/3",
        ]
    );
    assert_eq!(p.backups[0].proof, Proof::Passed);
    assert_eq!(p.backups[3].proof, Proof::Failed);

    // Seen a month later, backups have stopped: nothing is deleted by age.
    let later = at(NOW) + Duration::days(30);
    let p = plan_of(&r, &s, "app", later).await;
    assert!(
        p.hold.as_deref().unwrap().contains("backups have stopped"),
        "{:?}",
        p.hold
    );
    assert!(deleted(&p).is_empty());
}

#[tokio::test]
async fn a_failed_or_unreadable_newest_backup_holds_everything() {
    let r = Repo::new();
    let ids = daily(&r, "app", 4).await;
    let s = config("keep_last = 1");
    r.verified("app", &ids[3], Outcome::Failed, at(NOW)).await;
    let p = plan_of(&r, &s, "app", at(NOW)).await;
    assert!(p.hold.as_deref().unwrap().contains("failed verification"));
    assert!(deleted(&p).is_empty());
    r.damage("app", &ids[3]).await;
    let p = plan_of(&r, &s, "app", at(NOW)).await;
    assert!(p.hold.as_deref().unwrap().contains("cannot be read"));
    assert!(deleted(&p).is_empty());
}

#[tokio::test]
async fn apply_deletes_exactly_the_plan_and_nothing_else() {
    let r = Repo::new();
    let now = at(NOW);
    let ids = daily(&r, "app", 5).await;
    let crm = daily(&r, "crm", 5).await;
    // An interrupted backup of last week (an orphan) and one of ten minutes ago (may still
    // be running: kept); four drill records (keep 2); a leftover upload of each age.
    let old = r.uncommitted("app", now - Duration::days(7)).await;
    let fresh = r.uncommitted("app", now - Duration::minutes(10)).await;
    for d in 1..=4 {
        r.put(&format!("app/drills/2026030{d}T040000.000Z.json"), b"{}")
            .await;
    }
    r.store
        .add_leftover("app/x/dump.zst.age", now - Duration::days(3));
    r.store
        .add_leftover("app/y/dump.zst.age", now - Duration::hours(1));
    r.store
        .add_leftover("crm/z/dump.zst.age", now - Duration::days(3));
    r.store.page_size(3);
    let s = config("keep_last = 2\nkeep_drills = 2");
    let p = plan(&r.catalog, &s, &["app".to_string()], now)
        .await
        .unwrap();
    let db = &p.databases[0];
    assert_eq!(deleted(db), ids[..3].to_vec());
    assert_eq!(db.orphans.iter().map(|o| &o.id).collect::<Vec<_>>(), [&old]);
    assert_eq!(db.leftovers.len(), 1);
    assert_eq!(db.records.len(), 2);

    let before: BTreeSet<String> = r.store.keys().into_iter().collect();
    let report = apply(&r.catalog, &p).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        (
            report.deleted_backups,
            report.removed_orphans,
            report.removed_records,
            report.removed_leftovers
        ),
        (3, 1, 2, 1)
    );
    let after: BTreeSet<String> = r.store.keys().into_iter().collect();
    let mut planned: BTreeSet<String> = BTreeSet::new();
    for id in &ids[..3] {
        planned.insert(object_key("app", id, DUMP_FILE));
        planned.insert(object_key("app", id, MANIFEST_FILE));
    }
    planned.insert(object_key("app", &old, DUMP_FILE));
    planned.insert("app/drills/20260301T040000.000Z.json".into());
    planned.insert("app/drills/20260302T040000.000Z.json".into());
    let gone: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(gone, planned);
    assert!(after.contains(&object_key("app", &fresh, DUMP_FILE)));
    assert_eq!(r.listed(Some("app")).await, named("app", &ids[3..]));
    assert_eq!(r.listed(Some("crm")).await, named("crm", &crm));
    assert_eq!(
        r.store.leftover_keys(),
        ["app/y/dump.zst.age", "crm/z/dump.zst.age"]
    );
}

#[tokio::test]
async fn a_backup_marked_in_use_is_kept_at_plan_and_at_apply() {
    let r = Repo::new();
    let ids = daily(&r, "app", 3).await;
    let s = config("keep_last = 1");
    let mark = |heartbeat| {
        serde_json::to_vec(&InUseMark {
            purpose: "restore".into(),
            host: "h".into(),
            pid: 1,
            since: heartbeat,
            heartbeat,
        })
        .unwrap()
    };
    let key = |id: &BackupId| format!("app/{IN_USE_DIR}/{id}/restore-1.json");
    r.put(&key(&ids[0]), &mark(at(NOW))).await;
    let p = plan(&r.catalog, &s, &["app".into()], at(NOW))
        .await
        .unwrap();
    assert_eq!(deleted(&p.databases[0]), [ids[1].clone()]);
    let kept = &p.databases[0].backups[0];
    assert!(kept.keep && kept.reasons[0].starts_with("kept: in use by restore"));
    // A reader that starts after the plan: apply asks again (with the real clock).
    r.put(&key(&ids[1]), &mark(Utc::now())).await;
    let report = apply(&r.catalog, &p).await;
    assert_eq!(report.deleted_backups, 0);
    assert_eq!(report.kept_in_use.len(), 1);
    assert!(report.kept_in_use[0].starts_with(&format!("app/{}: in use by restore", ids[1])));
    assert_eq!(r.listed(Some("app")).await, named("app", &ids));
}

#[tokio::test]
async fn a_failed_delete_is_reported_and_the_next_prune_finishes_the_job() {
    let r = Repo::new();
    let ids = daily(&r, "app", 4).await;
    let s = config("keep_last = 1");
    r.store.fail_delete(&object_key("app", &ids[1], DUMP_FILE));
    let p = plan(&r.catalog, &s, &["app".into()], at(NOW))
        .await
        .unwrap();
    let report = apply(&r.catalog, &p).await;
    assert_eq!(report.deleted_backups, 2, "the others still go");
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(report.errors[0].starts_with(&format!("backup app/{}: ", ids[1])));
    // Its manifest went first: no listed backup lacks its dump.
    assert_eq!(r.listed(Some("app")).await, named("app", &ids[3..]));
    for l in r.list(Some("app")).await {
        assert!(r.store.contains(&object_key("app", l.id(), DUMP_FILE)));
    }
    // Healed, a later prune removes the rest as an uncommitted folder.
    r.store.heal_delete(&object_key("app", &ids[1], DUMP_FILE));
    let p = plan(
        &r.catalog,
        &s,
        &["app".into()],
        at(NOW) + Duration::hours(1),
    )
    .await
    .unwrap();
    assert_eq!(p.databases[0].orphans[0].id, ids[1]);
    let report = apply(&r.catalog, &p).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        r.store.keys(),
        [
            object_key("app", &ids[3], DUMP_FILE),
            object_key("app", &ids[3], MANIFEST_FILE)
        ]
    );
}

#[tokio::test]
async fn a_failed_commit_leaves_an_orphan_that_only_ages_out() {
    let r = Repo::new();
    let ids = daily(&r, "app", 2).await;
    // The backup's third put (its manifest, after the dump and its signature) fails: the
    // dump stays, uncommitted.
    r.store.fail_put_at(3);
    let t = at(NOW) - Duration::hours(2);
    let m = crate::catalog::testkit::manifest("app", t);
    r.store.set_now(t);
    r.put(&object_key("app", &m.id, DUMP_FILE), b"dump").await;
    // A signing host writes the manifest's signature just before the manifest.
    let sig = Key::manifest("app", &m.id).signature();
    r.put(&object_key("app", &m.id, "manifest.json.minisig"), b"sig")
        .await;
    assert!(r.catalog.commit(&m).await.is_err());
    assert_eq!(r.listed(Some("app")).await, named("app", &ids));
    let s = config("keep_last = 5");
    // Within leftover_age (24h) it may be a backup still running: left alone.
    let p = plan_of(&r, &s, "app", at(NOW)).await;
    assert!(p.orphans.is_empty());
    let p = plan_of(&r, &s, "app", at(NOW) + Duration::hours(23)).await;
    assert_eq!(p.orphans[0].id, m.id);
    assert_eq!(
        p.orphans[0].keys,
        [Key::object("app", &m.id, DUMP_FILE), sig]
    );
    assert!(deleted(&p).is_empty());
}

#[tokio::test]
async fn without_configured_databases_each_database_in_the_repository_once() {
    let r = Repo::new();
    daily(&r, "crm", 3).await;
    daily(&r, "app", 3).await;
    let none = settings("");
    let names = database_names(&none, &r.catalog, None).await.unwrap();
    assert_eq!(names, ["app", "crm"]);
    assert_eq!(
        database_names(&none, &r.catalog, Some("crm"))
            .await
            .unwrap(),
        ["crm"]
    );
    let e = database_names(&none, &Repo::new().catalog, None)
        .await
        .unwrap_err();
    assert_eq!(e.message, "no database and no backup in memory://");
}
