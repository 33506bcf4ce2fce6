//! `auto_add`: a table created after `capture enable --auto-add` joins the publication while
//! the runner runs, its rows then show up in the stored segments (found with `capture check
//! --list-transactions` by the txid the client saw); a new table without a replica identity
//! is reported with its ALTER and left alone.

use std::time::{Duration, Instant};

use crate::capture_run::{check, start_runner, stop_runner, txn, world};
use crate::common::*;

fn state(w: &World) -> serde_json::Value {
    let path = w.dir.path().join("repo/app/capture/state.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn published(w: &World) -> String {
    w.pg.psql(
        "app",
        "SELECT string_agg(format('%I.%I', schemaname, tablename), ',' ORDER BY 1)
           FROM pg_publication_tables WHERE pubname = 'pgdr_app'",
    )
}

#[test]
fn a_table_created_after_enable_is_added_and_its_rows_are_captured() {
    let w = world();
    let e = w
        .run(&["capture", "enable", "--auto-add", "--json"])
        .ok()
        .json();
    assert_eq!(e[0]["state"]["auto_add"], true, "{e:#}");
    let runner = start_runner(&w);
    w.pg.psql(
        "app",
        "CREATE TABLE late (id int PRIMARY KEY, v text); CREATE TABLE late_noid (v text);",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !published(&w).contains("public.late") {
        assert!(Instant::now() < deadline, "never added: {}", published(&w));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!published(&w).contains("late_noid"), "{}", published(&w));

    let xid = txn(
        &w,
        "INSERT INTO late VALUES (1, 'a'), (2, 'b'), (3, 'c')",
        "COMMIT",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let (_, j) = check(&w);
        let hit = j["transaction_list"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["xid"].as_u64() == Some(xid)).cloned());
        if let Some(t) = hit {
            break t;
        }
        assert!(Instant::now() < deadline, "xid {xid} never stored: {j:#}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(seen["changes"], 3, "{seen}");
    let report = stop_runner(runner);

    // Recorded: the state's table list and the run report, with the ALTER for the other one.
    let s = state(&w);
    let tables: Vec<&str> = s["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tables.contains(&"public.late"), "{s:#}");
    let added = report["auto_added"].as_array().expect("auto_added");
    let all: Vec<&serde_json::Value> = added
        .iter()
        .flat_map(|a| a["tables"].as_array().unwrap())
        .collect();
    assert_eq!(all, vec!["public.late"], "{report:#}");
    let left: Vec<&serde_json::Value> = added
        .iter()
        .flat_map(|a| a["left_out"].as_array().unwrap())
        .collect();
    assert_eq!(left.len(), 1, "{report:#}");
    assert_eq!(left[0]["table"], "public.late_noid");
    assert_eq!(
        left[0]["fix"],
        "ALTER TABLE public.late_noid REPLICA IDENTITY FULL;"
    );
    assert!(s["left_out"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["table"] == "public.late_noid"));

    // The added table's earlier rows are in no segment: an anchored backup was taken for them,
    // and the repository lists it (its manifest has a cut).
    let anchors = report["anchors"].as_array().expect("anchors");
    let a = anchors
        .iter()
        .find(|a| a["reason"].as_str().unwrap().contains("public.late"))
        .unwrap_or_else(|| panic!("no anchor for the added table: {report:#}"));
    let id = a["backup_id"].as_str().expect("backup id");
    assert!(w.list().iter().any(|b| b["id"] == id), "{id} not listed");
    let Repo::Local(root) = &w.repo else {
        panic!("a local repository")
    };
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("app").join(id).join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(m["snapshot"]["method"], "replication_slot", "{m:#}");
    assert!(m["snapshot"]["cut_lsn"].is_string(), "{m:#}");
}

#[test]
fn without_auto_add_a_new_table_stays_out() {
    let w = world();
    w.run(&["capture", "enable"]).ok();
    let runner = start_runner(&w);
    w.pg.psql("app", "CREATE TABLE late (id int PRIMARY KEY, v text)");
    std::thread::sleep(Duration::from_secs(3));
    let report = stop_runner(runner);
    assert!(report["auto_added"].is_null(), "{report:#}");
    assert!(!published(&w).contains("late"), "{}", published(&w));
}
