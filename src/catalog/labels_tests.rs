//! Labels and keep records on a memory store.

use super::*;
use crate::catalog::testkit::{at, manifest, Repo};
use crate::catalog::Pick;

#[test]
fn a_label_can_never_be_read_as_an_id_or_a_hex_digest() {
    for ok in [
        "pre-migration",
        "v2.4_release",
        "x",
        "release-2026-12-05",
        "go",
    ] {
        check_label(ok).unwrap_or_else(|e| panic!("{ok}: {}", e.message));
        assert!(is_label(ok), "{ok}");
    }
    for bad in [
        "",
        "deadbeef",
        "cafe",
        "abc123",
        "2026",
        "20261126T020000.123Z",
        "1st-try",
        "-x",
        "_x",
        "Pre-Migration",
        "a b",
        "a/b",
        "../x",
        &"x".repeat(64),
    ] {
        let e = check_label(bad).unwrap_err();
        assert_eq!(e.kind, Kind::Usage, "{bad:?}");
        assert!(e.message.contains("outside 0-9a-f"), "{}", e.message);
    }
    // Every id and id prefix is typed with a digit first: never taken for a label.
    for id in ["2", "20261126", "20261126T020000.123Z"] {
        assert!(!is_label(id));
    }
}

async fn labelled(r: &Repo, db: &str, t: &str, label: &str, keep: Option<KeepRule>) -> BackupId {
    let mut m = manifest(db, at(t));
    m.label = Some(label.into());
    m.note = Some("before migration 42".into());
    m.keep = keep;
    r.catalog.commit(&m).await.unwrap();
    m.id
}

#[tokio::test]
async fn select_finds_a_label_in_its_database_and_names_the_ambiguity() {
    let r = Repo::new();
    r.backup("app", at("2026-03-01T02:00:00Z")).await;
    let id = labelled(&r, "app", "2026-03-02T02:00:00Z", "pre-mig", None).await;
    labelled(&r, "crm", "2026-03-03T02:00:00Z", "pre-mig", None).await;
    let e = r
        .catalog
        .select(Some("app"), Pick::Id("pre-mig"))
        .await
        .unwrap();
    assert_eq!(e.manifest.id, id);
    assert_eq!(e.manifest.note.as_deref(), Some("before migration 42"));
    let e = r
        .catalog
        .select(None, Pick::Id("pre-mig"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, Kind::Usage);
    assert!(
        e.message.contains("exists for several databases"),
        "{}",
        e.message
    );
    let e = r
        .catalog
        .select(Some("app"), Pick::Id("other"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, Kind::NotFound);
    assert_eq!(
        r.catalog.labelled("app", "pre-mig").await.unwrap(),
        Some(id.clone())
    );
    assert_eq!(r.catalog.labelled("app", "post-mig").await.unwrap(), None);
    // Ids and prefixes still pick as before.
    let e = r
        .catalog
        .select(Some("app"), Pick::Id("20260302"))
        .await
        .unwrap();
    assert_eq!(e.manifest.id, id);
}

#[tokio::test]
async fn the_newest_keep_record_is_the_rule_else_the_manifests() {
    let r = Repo::new();
    let id = labelled(
        &r,
        "app",
        "2026-03-02T02:00:00Z",
        "pre-mig",
        Some(KeepRule::Forever),
    )
    .await;
    let entry = || async {
        r.catalog
            .select(Some("app"), Pick::Id("pre-mig"))
            .await
            .unwrap()
    };
    assert_eq!(entry().await.keep_rule(), Some(KeepRule::Forever));
    assert_eq!(
        entry()
            .await
            .kept_because(at("2030-01-01T00:00:00Z"))
            .unwrap(),
        "label pre-mig, keep-forever"
    );
    let record = |t: &str, rule: Option<KeepRule>| KeepRecord {
        format_version: KEEP_FORMAT,
        database: "app".into(),
        backup_id: id.clone(),
        written_at: at(t),
        keep: change_of(rule),
        host: "h".into(),
    };
    r.catalog
        .write_keep(&record("2026-03-03T00:00:00Z", None))
        .await
        .unwrap();
    assert_eq!(entry().await.keep_rule(), None, "released");
    let until = at("2026-04-01T00:00:00Z");
    r.catalog
        .write_keep(&record(
            "2026-03-04T00:00:00Z",
            Some(KeepRule::Until(until)),
        ))
        .await
        .unwrap();
    let e = entry().await;
    assert_eq!(e.keep_rule(), Some(KeepRule::Until(until)));
    assert!(e.kept_because(at("2026-03-31T00:00:00Z")).is_some());
    assert!(e.kept_because(until).is_none(), "expired");
    assert_eq!(r.catalog.keep_records("app", &id).await.unwrap().len(), 2);
    // A keep record of a backup that does not exist is refused.
    let mut stray = record("2026-03-05T00:00:00Z", None);
    stray.backup_id = BackupId::from_time(at("2026-01-01T00:00:00Z"));
    assert_eq!(
        r.catalog.write_keep(&stray).await.unwrap_err().kind,
        Kind::NotFound
    );
}

#[tokio::test]
async fn an_unreadable_newest_keep_record_keeps_the_backup() {
    let r = Repo::new();
    let id = labelled(&r, "app", "2026-03-02T02:00:00Z", "pre-mig", None).await;
    r.put(&format!("app/{id}/keep/20260303T000000.000Z.json"), b"{")
        .await;
    let e = r
        .catalog
        .select(Some("app"), Pick::Id("pre-mig"))
        .await
        .unwrap();
    assert_eq!(e.keep_rule(), Some(KeepRule::Forever));
    let why = e.kept_because(at("2030-01-01T00:00:00Z")).unwrap();
    assert!(why.contains("cannot be read"), "{why}");
    assert!(
        r.catalog
            .kept_by_record("app", &id, at("2030-01-01T00:00:00Z"))
            .await
    );
}

#[test]
fn a_manifest_with_a_label_note_and_keep_round_trips_and_older_ones_are_unchanged() {
    let mut m = crate::catalog::manifest::tests::sample();
    let plain = String::from_utf8(m.to_json().unwrap()).unwrap();
    assert!(!plain.contains("\"label\"") && !plain.contains("\"keep\""));
    m.label = Some("pre-mig".into());
    m.note = Some("ticket 42".into());
    m.keep = Some(KeepRule::Until(at("2027-01-01T00:00:00Z")));
    let j = m.to_json().unwrap();
    let text = String::from_utf8(j.clone()).unwrap();
    assert!(
        text.contains("\"until\": \"2027-01-01T00:00:00Z\""),
        "{text}"
    );
    let back = crate::catalog::Manifest::from_json(&j, "m").unwrap();
    assert_eq!(back, m);
    assert!(back.extra.is_empty());
    m.keep = Some(KeepRule::Forever);
    let text = String::from_utf8(m.to_json().unwrap()).unwrap();
    assert!(text.contains("\"keep\": \"forever\""), "{text}");
}

#[tokio::test]
async fn a_manifest_whose_label_breaks_the_rule_is_damaged_not_trusted() {
    // Whoever can write the repository can write a valid checksum: the label itself is checked
    // before it reaches a message or a terminal.
    let r = Repo::new();
    let mut m = manifest("app", at("2026-03-02T02:00:00Z"));
    m.label = Some("x\u{1b}[2J".into());
    r.catalog.commit(&m).await.unwrap();
    let listed = r.listed(Some("app")).await;
    assert_eq!(listed, [format!("app/{} (damaged)", m.id)]);
}
