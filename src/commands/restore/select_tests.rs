//! Which backup `restore` picks (id, prefix, latest, before a time), on a memory store.

use super::select::select_backup;
use super::*;
use crate::catalog::testkit::{at, settings, Repo};
use crate::config::Settings;
use crate::error::Kind;

fn opts(database: Option<&str>, selection: Selection) -> RestoreOptions {
    RestoreOptions {
        target_url: "postgres://u@h/target".into(),
        database: database.map(String::from),
        selection,
        mode: ModeFlag::None,
        terminate: false,
        jobs: None,
        spool_dir: None,
        roles: RolesMode::default(),
        verify: true,
        show_progress: false,
        managed: false,
        schemas: Default::default(),
        at: None,
    }
}

async fn pick(r: &Repo, s: &Settings, o: RestoreOptions, target: &str) -> Result<String> {
    select_backup(&r.catalog, s, &o, target)
        .await
        .map(|e| format!("{}/{}", e.manifest.database, e.manifest.id))
}

#[tokio::test]
async fn before_a_time_picks_the_newest_snapshot_at_or_before_it() {
    let r = Repo::new();
    let t = |d| at(&format!("2026-03-0{d}T02:00:00Z"));
    let ids = r.backups("app", &[t(1), t(3), t(5)]).await;
    r.backups("crm", &[t(4)]).await;
    let none = settings("");
    let before = |s: &str| opts(Some("app"), Selection::Before(at(s)));
    let got = pick(&r, &none, before("2026-03-04T00:00:00Z"), "x").await;
    assert_eq!(got.unwrap(), format!("app/{}", ids[1]));
    // At the snapshot time exactly: that one.
    let got = pick(&r, &none, before("2026-03-05T02:00:00Z"), "x").await;
    assert_eq!(got.unwrap(), format!("app/{}", ids[2]));
    // A damaged manifest is passed over for the one before it.
    r.damage("app", &ids[1]).await;
    let got = pick(&r, &none, before("2026-03-04T00:00:00Z"), "x").await;
    assert_eq!(got.unwrap(), format!("app/{}", ids[0]));
    let e = pick(&r, &none, before("2026-02-01T00:00:00Z"), "x")
        .await
        .unwrap_err();
    assert_eq!(e.kind, Kind::NotFound);
    assert!(
        e.message.starts_with(&format!(
            "no backup of 'app' has a snapshot at or before 2026-02-01 00:00:00 UTC; the oldest is {}",
            ids[0]
        )),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn the_database_is_named_inferred_or_asked_for() {
    let r = Repo::new();
    let t = |d| at(&format!("2026-03-0{d}T02:00:00Z"));
    let app = r.backups("app", &[t(1), t(3)]).await;
    let crm = r.backups("crm", &[t(2)]).await;
    let none = settings("");
    // Two databases: the target's name decides, else the operator must say.
    let got = pick(&r, &none, opts(None, Selection::Latest), "crm").await;
    assert_eq!(got.unwrap(), format!("crm/{}", crm[0]));
    let e = pick(&r, &none, opts(None, Selection::Latest), "x")
        .await
        .unwrap_err();
    assert_eq!(e.kind, Kind::Usage);
    assert!(
        e.message.contains("several databases (app, crm)"),
        "{}",
        e.message
    );
    // By id, across databases; a prefix matching two is refused.
    let got = pick(
        &r,
        &none,
        opts(None, Selection::Id(app[1].to_string())),
        "x",
    )
    .await;
    assert_eq!(got.unwrap(), format!("app/{}", app[1]));
    let e = pick(&r, &none, opts(None, Selection::Id("202603".into())), "x")
        .await
        .unwrap_err();
    assert!(e.message.contains("matches 3 backups"), "{}", e.message);
    let got = pick(&r, &none, opts(Some("app"), Selection::Latest), "x").await;
    assert_eq!(got.unwrap(), format!("app/{}", app[1]));
}
