//! Issue 18, labels and keeping: `backup --label/--note/--keep-*/--verify`, a label wherever an
//! id is typed, `pgdr keep`, and prune honouring keep rules (real PostgreSQL, local repository).

use std::path::{Path, PathBuf};

use crate::common::*;

fn local_root(w: &World) -> PathBuf {
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    root.clone()
}

/// `keep_last = 1` for `app` (the database itself comes from --source).
fn keep_last_one(w: &World) -> PathBuf {
    w.config_file(
        "retention.toml",
        "[retention]\nkeep_last = 1\n[[database]]\nname = \"app\"\nurl = \"postgres://x@127.0.0.1:1/app\"\n",
    )
}

fn with_config(w: &World, cfg: &Path, args: &[&str]) -> Run {
    run(w.pgdr_config(cfg, args))
}

fn ids(w: &World) -> Vec<String> {
    w.list()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_labelled_backup_is_listed_shown_verified_and_restored_by_its_label() {
    let w = World::local();
    let r = w
        .run(&[
            "backup",
            "--label",
            "pre-migration",
            "--note",
            "before migration 42",
            "--keep-forever",
        ])
        .ok();
    // Without --verify: the exact command to run where the identity lives.
    assert!(
        r.stdout.contains(&format!(
            "pgdr verify pre-migration --database app --repo {}",
            local_root(&w).display()
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("('pre-migration') of 'app' committed"),
        "{}",
        r.stdout
    );
    let listed = w.list();
    let b = &listed[0];
    let id = b["id"].as_str().unwrap().to_string();
    assert_eq!(b["label"], "pre-migration");
    assert_eq!(b["note"], "before migration 42");
    assert_eq!(b["keep"]["forever"], true);
    assert_eq!(b["keep"]["from"], "backup");
    let text = w.run(&["list"]).ok().stdout;
    assert!(text.contains("pre-migration, keep-forever"), "{text}");

    // status names the labelled backup that is not verified yet.
    let r = w.run(&["status"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains(&format!(
            "problem: database 'app': labelled backup 'pre-migration' ({id}) is not verified yet: where the identity lives, run `pgdr verify pre-migration --database app`"
        )),
        "{}",
        r.stdout
    );

    let shown = w.run(&["show", "pre-migration", "--json"]).ok().json();
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["label"], "pre-migration");
    assert_eq!(shown["keep"], "forever");
    let text = w.run(&["show", "pre-migration"]).ok().stdout;
    assert!(
        text.contains("note               before migration 42"),
        "{text}"
    );
    assert!(
        text.contains("keep               keep-forever (set by the backup)"),
        "{text}"
    );

    let r = w.run(&["verify", "pre-migration", "--quick"]).ok();
    assert!(
        r.stdout
            .contains(&format!("backup {id} of 'app': verified (quick)")),
        "{}",
        r.stdout
    );
    let r = w.run(&["status"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("'pre-migration' {id}: passed, kept keep-forever")),
        "{}",
        r.stdout
    );

    // The migration happens; the label brings the database back.
    w.pg.psql("app", "DELETE FROM orders");
    let want = w.pg.psql("app", "SELECT count(*) FROM profiles");
    run(w.restore_cmd(
        &w.pg,
        "rolled_back",
        &["--yes", "--backup", "pre-migration"],
    ))
    .ok();
    assert_eq!(
        w.pg.psql("rolled_back", "SELECT count(*) FROM profiles"),
        want
    );
    assert_ne!(w.pg.psql("rolled_back", "SELECT count(*) FROM orders"), "0");
}

#[test]
fn a_taken_or_hex_looking_label_is_refused_before_anything_is_written() {
    let w = World::local();
    w.run(&["backup", "--quiet", "--label", "pre-migration"])
        .ok();
    let root = local_root(&w);
    let before = files_under(&root);
    let r = w.run(&["backup", "--label", "pre-migration"]);
    assert_eq!(r.code, 2, "{r:?}");
    let first = r
        .stderr
        .lines()
        .find(|l| l.starts_with("pgdr: error:"))
        .unwrap();
    assert!(
        first.contains("label 'pre-migration' is already the label of backup")
            && first.contains("nothing was written"),
        "{}",
        r.stderr
    );
    for bad in ["deadbeef", "2026", "Pre-Migration"] {
        let r = w.run(&["backup", "--label", bad]);
        assert_eq!(r.code, 2, "{bad}: {r:?}");
        assert!(
            r.stderr.contains(&format!("label '{bad}' is not allowed"))
                && r.stderr.contains("at least one character outside 0-9a-f"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(files_under(&root), before, "nothing was written");
    // The same label on another database is fine: unique per database, not per repository.
    w.pg.sample_db("crm");
    let mut c = pgdr_cmd();
    c.args(["backup", "--quiet", "--label", "pre-migration", "--source"])
        .arg(w.pg.url("crm"))
        .arg("--recipient")
        .arg(&w.recipient);
    w.repo.apply(&mut c);
    run(c).ok();
    // ... but then the label alone is ambiguous, and says so.
    let r = w.run(&["show", "pre-migration"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("exists for several databases"),
        "{}",
        r.stderr
    );
    w.run(&["show", "pre-migration", "--database", "crm"]).ok();
}

#[test]
fn keep_forever_survives_prune_until_released_and_the_dry_run_names_the_rule() {
    let w = World::local();
    w.run(&[
        "backup",
        "--quiet",
        "--label",
        "pre-migration",
        "--keep-forever",
    ])
    .ok();
    w.backup();
    w.backup();
    let all = ids(&w);
    assert_eq!(all.len(), 3);
    let cfg = keep_last_one(&w);

    let dry = with_config(&w, &cfg, &["prune", "--dry-run"]).ok().stdout;
    let line = |id: &str| dry.lines().find(|l| l.contains(id)).unwrap().to_string();
    assert!(
        line(&all[0]).contains("keep   ")
            && line(&all[0]).contains("kept: label pre-migration, keep-forever"),
        "{dry}"
    );
    assert!(line(&all[1]).contains("DELETE"), "{dry}");
    assert!(line(&all[2]).contains("keep   "), "{dry}");
    with_config(&w, &cfg, &["prune"]).ok();
    assert_eq!(
        ids(&w),
        [all[0].clone(), all[2].clone()],
        "the unlabelled neighbour went"
    );

    // Kept for a while by `pgdr keep`: the record, not the manifest, says so.
    let manifest = local_root(&w)
        .join("app")
        .join(&all[0])
        .join("manifest.json");
    let bytes = std::fs::read(&manifest).unwrap();
    let r = w.run(&["keep", "pre-migration", "--keep-for", "30d"]).ok();
    assert!(
        r.stdout.contains("kept until") && r.stdout.contains("(was: keep-forever)"),
        "{}",
        r.stdout
    );
    assert_eq!(
        std::fs::read(&manifest).unwrap(),
        bytes,
        "the manifest is never rewritten"
    );
    let until = (chrono::Utc::now() + chrono::Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    let dry = with_config(&w, &cfg, &["prune", "--dry-run"]).ok().stdout;
    assert!(
        dry.contains(&format!("kept: label pre-migration, until {until}")),
        "{dry}"
    );
    let listed = w.list();
    assert_eq!(listed[0]["keep"]["from"], "keep record");
    assert_eq!(listed[0]["keep"]["forever"], false);

    // Released: retention decides again, and the old backup goes.
    let r = w.run(&["keep", &all[0], "--release"]).ok();
    assert!(r.stdout.contains("released"), "{}", r.stdout);
    with_config(&w, &cfg, &["prune"]).ok();
    assert_eq!(ids(&w), [all[2].clone()]);

    // Usage: a rule is required; an unknown label is named.
    let r = w.run(&["keep", &all[2]]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = w.run(&["keep", "no-such-label", "--keep-forever"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("no backup labelled 'no-such-label'"),
        "{}",
        r.stderr
    );
}

#[test]
fn backup_verify_quick_and_full_prove_the_backup_before_returning() {
    let w = World::local();
    let r = w
        .run(&["backup", "--label", "checked", "--verify", "quick"])
        .ok();
    assert!(r.stdout.contains("verified (quick)"), "{}", r.stdout);
    assert!(!r.stdout.contains("not verified yet"), "{}", r.stdout);
    let b = &w.list()[0];
    assert_eq!(b["verification"]["outcome"], "passed");
    assert_eq!(b["verification"]["mode"], "quick");
    let shown = w.run(&["show", "checked", "--json"]).ok().json();
    assert_eq!(shown["last_verification"]["outcome"], "passed");
    assert_eq!(w.run(&["status"]).code, 0);
    // Full: restored into a scratch cluster and compared before the command returns.
    let r = w.run(&["backup", "--verify", "full"]).ok();
    assert!(r.stdout.contains("verified (full)"), "{}", r.stdout);
    let b = &w.list()[1];
    assert_eq!(b["verification"]["outcome"], "passed");
    assert_eq!(b["verification"]["mode"], "full");
    // A proof that cannot run (no scratch server there) is not a pass: exit 2, the backup is
    // committed and stays unverified.
    let cfg = w.config_file(
        "no-scratch.toml",
        "[scratch]\nurl = \"postgres://postgres@127.0.0.1:1/postgres\"\n",
    );
    let r = run(w.pgdr_config(&cfg, &["backup", "--label", "unproven", "--verify", "full"]));
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("could not verify"), "{}", r.stderr);
    let b = &w.list()[2];
    assert_eq!(b["label"], "unproven");
    assert!(b["verification"].is_null(), "{b}");

    // Without an identity --verify is refused before the dump: nothing is written.
    let before = files_under(&local_root(&w));
    let mut c = pgdr_cmd();
    c.args([
        "backup",
        "--label",
        "unchecked",
        "--verify",
        "quick",
        "--source",
    ])
    .arg(w.pg.url("app"))
    .arg("--recipient")
    .arg(&w.recipient);
    w.repo.apply(&mut c);
    let r = run(c);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no identity"), "{}", r.stderr);
    assert_eq!(files_under(&local_root(&w)), before);
}

/// Segment entries' (start, end) LSNs in the repository, oldest first, read as files.
fn segment_bounds(w: &World) -> Vec<(u64, u64)> {
    let dir = local_root(w).join("app/capture/segments");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.map(|f| f.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    let lsn = |v: &serde_json::Value| {
        let (hi, lo) = v.as_str().unwrap().split_once('/').unwrap();
        (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
    };
    files
        .iter()
        .map(|p| {
            let e: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            (lsn(&e["start"]), lsn(&e["end"]))
        })
        .collect()
}

#[test]
fn a_kept_old_backup_keeps_itself_not_the_change_stream_after_it() {
    use crate::capture_ops::{start_runner, stop_runner, stored_xids, txn, world};
    let w = world();
    w.run(&["capture", "enable"]).ok();
    let runner = start_runner(&w);
    w.run(&[
        "backup",
        "--quiet",
        "--label",
        "pre-migration",
        "--keep-forever",
    ])
    .ok();
    let before: Vec<u64> = (0..3)
        .map(|i| {
            let x = txn(&w, &format!("INSERT INTO t (v) VALUES ('a{i}')"));
            std::thread::sleep(std::time::Duration::from_millis(1200));
            x
        })
        .collect();
    stored_xids(&w, &before);
    w.run(&["backup", "--quiet"]).ok();
    let newest = ids(&w)[1].clone();
    let shown = w.run(&["show", &newest, "--json"]).ok().json();
    let (hi, lo) = shown["snapshot"]["cut_lsn"]
        .as_str()
        .unwrap()
        .split_once('/')
        .unwrap();
    let cut = (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap();
    let after = [txn(&w, "INSERT INTO t (v) VALUES ('b')")];
    stored_xids(&w, &after);
    stop_runner(runner);
    let segments_before = segment_bounds(&w).len();

    let cfg = w.config_file(
        "prune.toml",
        "[retention]\nkeep_last = 1\nmin_verified = 0\n[[database]]\nname = \"app\"\nurl = \"postgres://x@127.0.0.1:1/app\"\n",
    );
    run(w.pgdr_config(&cfg, &["prune"])).ok();
    assert_eq!(ids(&w).len(), 2, "the kept backup and the newest stay");
    let left = segment_bounds(&w);
    assert!(
        left.len() < segments_before,
        "the kept old backup pinned the stream"
    );
    // The stream starts at the segment holding the newest (retention-kept) backup's cut.
    assert!(left[0].0 <= cut && cut < left[0].1, "{left:?} cut {cut:X}");
}
