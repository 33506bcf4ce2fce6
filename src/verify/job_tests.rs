//! Which backups `verify` picks, on a memory store.

use super::*;
use crate::catalog::testkit::{at, settings, Repo};

fn opts(database: Option<&str>, selection: Selection) -> VerifyOptions {
    VerifyOptions {
        database: database.map(String::from),
        selection,
        quick: true,
    }
}

/// `database/id` of each target, damaged ones marked.
fn picked(targets: &[Target]) -> Vec<String> {
    targets
        .iter()
        .map(|t| match t {
            Target::Backup(m) => format!("{}/{}", m.database, m.id),
            Target::Damaged { database, id, .. } => format!("{database}/{id} (damaged)"),
        })
        .collect()
}

#[tokio::test]
async fn latest_without_configured_databases_verifies_each_database_once() {
    let r = Repo::new();
    // Interleaved in the listing (sorted by id): app, crm, app, crm.
    let t = |d| at(&format!("2026-03-0{d}T02:00:00Z"));
    let app = r.backups("app", &[t(1), t(3)]).await;
    let crm = r.backups("crm", &[t(2), t(4)]).await;
    let none = settings("");
    let got = select(&r.catalog, &none, &opts(None, Selection::Latest))
        .await
        .unwrap();
    assert_eq!(
        picked(&got),
        [format!("app/{}", app[1]), format!("crm/{}", crm[1])]
    );
    // A damaged newest manifest is a finding, not passed over.
    r.damage("crm", &crm[1]).await;
    let got = select(&r.catalog, &none, &opts(Some("crm"), Selection::Latest))
        .await
        .unwrap();
    assert_eq!(picked(&got), [format!("crm/{} (damaged)", crm[1])]);
    let e = select(&Repo::new().catalog, &none, &opts(None, Selection::Latest))
        .await
        .err()
        .unwrap();
    assert_eq!(e.message, "no backup in memory://");
}

#[tokio::test]
async fn unverified_picks_those_without_a_passed_verification() {
    let r = Repo::new();
    let t = |d| at(&format!("2026-03-0{d}T02:00:00Z"));
    let ids = r.backups("app", &[t(1), t(2), t(3)]).await;
    r.verified("app", &ids[0], Outcome::Passed, t(4)).await;
    r.verified("app", &ids[1], Outcome::Passed, t(4)).await;
    r.verified("app", &ids[1], Outcome::Failed, t(5)).await;
    let got = select(
        &r.catalog,
        &settings(""),
        &opts(None, Selection::Unverified),
    )
    .await
    .unwrap();
    assert_eq!(
        picked(&got),
        [format!("app/{}", ids[1]), format!("app/{}", ids[2])]
    );
}
