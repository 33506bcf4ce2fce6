//! The catalog on a memory store: listing, finding a backup, deleting one, in-use marks.

use chrono::Duration;

use crate::catalog::inuse::{InUseMark, FRESH_FOR};
use crate::catalog::keys::{IN_USE_DIR, MANIFEST_FILE};
use crate::catalog::records::Outcome;
use crate::catalog::testkit::object_key;
use crate::catalog::testkit::{at, named, Repo};
use crate::catalog::Pick;
use crate::catalog::{BackupId, Listed, DUMP_FILE};
use crate::error::Kind;

#[tokio::test]
async fn listing_shows_committed_backups_oldest_first_and_names_damaged_ones() {
    let r = Repo::new();
    // Two databases whose backups interleave in time.
    let app = r
        .backups(
            "app",
            &[at("2026-03-01T02:00:00Z"), at("2026-03-03T02:00:00Z")],
        )
        .await;
    let crm = r
        .backups(
            "crm",
            &[at("2026-03-02T02:00:00Z"), at("2026-03-04T02:00:00Z")],
        )
        .await;
    // Interrupted (no manifest), records and marks beside backups: none is a backup.
    r.uncommitted("app", at("2026-03-05T02:00:00Z")).await;
    r.put("app/drills/20260301T040000.000Z.json", b"{}").await;
    r.put("app/restores/20260301T040000.000Z.json", b"{}").await;
    r.put(&format!("app/{IN_USE_DIR}/{}/x.json", app[0]), b"{}")
        .await;
    r.put("app/jobs/backup.json", b"{}").await;
    r.damage("crm", &crm[0]).await;
    r.verified("app", &app[1], Outcome::Failed, at("2026-03-03T03:00:00Z"))
        .await;
    r.verified("app", &app[1], Outcome::Passed, at("2026-03-03T04:00:00Z"))
        .await;
    // Small pages: the listing is joined from many.
    r.store.page_size(2);

    assert_eq!(
        r.listed(None).await,
        [
            format!("app/{}", app[0]),
            format!("crm/{} (damaged)", crm[0]),
            format!("app/{}", app[1]),
            format!("crm/{}", crm[1]),
        ]
    );
    assert!(r.store.pages_listed() > 5);
    assert_eq!(r.listed(Some("app")).await, named("app", &app));
    let listed = r.list(Some("app")).await;
    let Listed::Ok(e) = &listed[1] else {
        panic!("app's second backup is readable")
    };
    let v = e.verification.as_ref().expect("verified");
    assert_eq!(v.outcome, Outcome::Passed, "the newest record counts");
    let Listed::Ok(e) = &listed[0] else {
        panic!("readable")
    };
    assert!(e.verification.is_none());
    let damaged = r.list(Some("crm")).await;
    let Listed::Damaged { error, .. } = &damaged[0] else {
        panic!("crm's first manifest is damaged")
    };
    assert!(error.contains("manifest checksum mismatch"), "{error}");
    assert!(r.listed(Some("none")).await.is_empty());
}

#[tokio::test]
async fn a_manifest_in_the_wrong_folder_or_a_bad_folder_name_is_refused() {
    let r = Repo::new();
    let id = r.backup("app", at("2026-03-01T02:00:00Z")).await;
    // The same manifest copied under another database: it describes app, not crm.
    let bytes = crate::store::get_bytes(r.store.as_ref(), &object_key("app", &id, MANIFEST_FILE))
        .await
        .unwrap();
    r.put(&object_key("crm", &id, MANIFEST_FILE), &bytes).await;
    let crm = r.list(Some("crm")).await;
    let Listed::Damaged { error, .. } = &crm[0] else {
        panic!("a moved manifest is not crm's backup")
    };
    assert!(error.contains("the manifest describes app/"), "{error}");
    r.put(&format!(".hidden/{id}/{MANIFEST_FILE}"), &bytes)
        .await;
    let e = r.catalog.list(None).await.unwrap_err();
    assert_eq!(e.kind, Kind::Corrupt, "{e}");
}

#[tokio::test]
async fn find_by_id_or_unique_prefix_and_latest() {
    let r = Repo::new();
    let app = r
        .backups(
            "app",
            &[
                at("2026-03-01T02:00:00Z"),
                at("2026-03-01T02:30:00Z"),
                at("2026-04-01T02:00:00Z"),
            ],
        )
        .await;
    let crm = r.backup("crm", at("2026-03-01T02:30:00Z")).await;
    let find = |db: Option<&'static str>, typed: String| {
        let c = &r.catalog;
        async move { c.select(db, Pick::Id(&typed)).await.map(|e| e.manifest) }
    };
    assert_eq!(find(None, "202604".into()).await.unwrap().id, app[2]);
    assert_eq!(
        find(Some("app"), app[0].to_string()).await.unwrap().id,
        app[0]
    );
    let e = find(Some("app"), "20260301".into()).await.unwrap_err();
    assert_eq!(e.kind, Kind::Usage);
    assert!(e.message.contains("matches 2 backups"), "{}", e.message);
    let e = find(None, "2027".into()).await.unwrap_err();
    assert_eq!(e.kind, Kind::NotFound);
    // One id in two databases: which one is a question, not a guess.
    let e = r
        .catalog
        .select(None, Pick::Id(crm.as_str()))
        .await
        .map(|e| e.manifest)
        .unwrap_err();
    assert_eq!(e.kind, Kind::Usage);
    assert!(
        e.message.contains("exists for several databases"),
        "{}",
        e.message
    );
    let m = r
        .catalog
        .select(Some("crm"), Pick::Id(crm.as_str()))
        .await
        .map(|e| e.manifest)
        .unwrap();
    assert_eq!((m.database.as_str(), &m.id), ("crm", &crm));

    // The newest readable backup: a damaged newest manifest is passed over.
    assert_eq!(r.catalog.latest("app").await.unwrap().id, app[2]);
    r.damage("app", &app[2]).await;
    assert_eq!(r.catalog.latest("app").await.unwrap().id, app[1]);
    let e = find(Some("app"), app[2].to_string()).await.unwrap_err();
    assert_eq!(e.kind, Kind::Corrupt);
    let e = r.catalog.latest("other").await.unwrap_err();
    assert_eq!(e.kind, Kind::NotFound);
    assert_eq!(e.message, "no backup of database 'other' in memory://");
}

#[tokio::test]
async fn delete_backup_removes_its_folder_and_nothing_beside_it() {
    let r = Repo::new();
    let ids = r
        .backups(
            "app",
            &[at("2026-03-01T02:00:00Z"), at("2026-03-02T02:00:00Z")],
        )
        .await;
    r.verified("app", &ids[0], Outcome::Passed, at("2026-03-01T03:00:00Z"))
        .await;
    let other = r.backup("crm", at("2026-03-01T02:00:00Z")).await;
    r.catalog.delete_backup("app", &ids[0]).await.unwrap();
    assert_eq!(r.listed(Some("app")).await, named("app", &ids[1..]));
    assert!(!r
        .store
        .keys()
        .iter()
        .any(|k| k.contains(ids[0].as_str()) && k.starts_with("app/")));
    assert_eq!(r.listed(Some("crm")).await, named("crm", &[other]));
}

#[tokio::test]
async fn a_failed_manifest_delete_leaves_the_backup_whole() {
    let r = Repo::new();
    let id = r.backup("app", at("2026-03-01T02:00:00Z")).await;
    let manifest = object_key("app", &id, MANIFEST_FILE);
    r.store.fail_delete(&manifest);
    assert!(r.catalog.delete_backup("app", &id).await.is_err());
    // Still listed, so every object it lists must still be there: a listed backup whose dump
    // is gone would be restored from, and fail only then.
    assert_eq!(
        r.listed(Some("app")).await,
        named("app", std::slice::from_ref(&id))
    );
    assert!(r.store.contains(&object_key("app", &id, DUMP_FILE)));
    // Once the store heals, the deletion completes.
    r.store.heal_delete(&manifest);
    r.catalog.delete_backup("app", &id).await.unwrap();
    assert!(r.store.keys().is_empty());
}

#[tokio::test]
async fn a_failed_object_delete_leaves_no_listed_backup() {
    let r = Repo::new();
    let id = r.backup("app", at("2026-03-01T02:00:00Z")).await;
    r.store.fail_delete(&object_key("app", &id, DUMP_FILE));
    assert!(r.catalog.delete_backup("app", &id).await.is_err());
    // The manifest went first: what is left is an uncommitted folder, for prune to remove.
    assert!(r.listed(Some("app")).await.is_empty());
    assert_eq!(r.store.keys(), [object_key("app", &id, DUMP_FILE)]);
}

fn mark(heartbeat: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    serde_json::to_vec(&InUseMark {
        purpose: "drill".into(),
        host: "h2".into(),
        pid: 9,
        since: heartbeat,
        heartbeat,
    })
    .unwrap()
}

#[tokio::test]
async fn in_use_marks_count_while_fresh() {
    let r = Repo::new();
    let now = at("2026-03-01T02:00:00Z");
    let (a, b) = (
        BackupId::from_time(now - Duration::days(1)),
        BackupId::from_time(now - Duration::days(2)),
    );
    let fresh = now - Duration::seconds(30);
    let stale = now - Duration::from_std(FRESH_FOR).unwrap() - Duration::seconds(1);
    r.put(&format!("app/{IN_USE_DIR}/{a}/drill-1.json"), &mark(fresh))
        .await;
    r.put(&format!("app/{IN_USE_DIR}/{b}/drill-2.json"), &mark(stale))
        .await;
    // Unreadable marks and foreign names are ignored, not fatal.
    r.put(&format!("app/{IN_USE_DIR}/{b}/junk.json"), b"not json")
        .await;
    r.put(&format!("app/{IN_USE_DIR}/not-an-id/x.json"), &mark(fresh))
        .await;
    let marks = r.catalog.in_use("app", now).await.unwrap();
    assert_eq!(marks.keys().collect::<Vec<_>>(), [&a]);
    assert_eq!(marks[&a][0].host, "h2");
    assert!(r.catalog.in_use("crm", now).await.unwrap().is_empty());

    // A held mark of this process: listed until released, then gone from the store.
    let held = r.catalog.mark_in_use("app", &b, "verify").await.unwrap();
    let marks = r.catalog.in_use("app", chrono::Utc::now()).await.unwrap();
    assert_eq!(marks[&b][0].purpose, "verify");
    held.release().await;
    let marks = r.catalog.in_use("app", chrono::Utc::now()).await.unwrap();
    assert!(!marks.contains_key(&b));
    assert_eq!(
        r.store
            .keys()
            .iter()
            .filter(|k| k.contains("verify-"))
            .count(),
        0
    );
}

#[tokio::test]
async fn a_dropped_mark_is_removed_in_the_background() {
    let r = Repo::new();
    let id = BackupId::from_time(at("2026-03-01T02:00:00Z"));
    let held = r.catalog.mark_in_use("app", &id, "cat").await.unwrap();
    assert_eq!(r.store.keys().len(), 1);
    drop(held);
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert!(r.store.keys().is_empty());
}
