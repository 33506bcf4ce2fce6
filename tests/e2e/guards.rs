//! Guards: what verify, prune, backup and restore must refuse or report rather than pass
//! over (issue 12, "restore and prune that never destroy what they weren't asked to").

use std::process::Command;

use crate::common::*;

/// pgdr with the repository and the identity but no --source: no database is configured, so
/// repository-wide commands look at every database the repository holds.
fn bare(w: &World, args: &[&str]) -> Command {
    let mut c = pgdr_cmd();
    c.args(args);
    w.repo.apply(&mut c);
    c.arg("--identity").arg(&w.identity);
    c
}

fn backup_of(w: &World, db: &str) -> String {
    let mut c = pgdr_cmd();
    c.args(["backup", "--quiet", "--source"]).arg(w.pg.url(db));
    w.repo.apply(&mut c);
    c.arg("--recipient").arg(&w.recipient);
    run(c).ok();
    let mut c = bare(w, &["list", "--json", "--database", db]);
    c.arg("--recipient").arg(&w.recipient);
    run(c).ok().json().as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn manifest_path(w: &World, db: &str, id: &str) -> std::path::PathBuf {
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    root.join(db).join(id).join("manifest.json")
}

#[test]
fn verify_latest_takes_each_database_once_when_their_backups_interleave() {
    let w = World::local();
    w.pg.sample_db("other");
    backup_of(&w, "app");
    let other = backup_of(&w, "other");
    let app = backup_of(&w, "app");
    let r = run(bare(&w, &["verify", "--quick", "--json"])).ok();
    let mut got: Vec<(String, String)> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["database"].as_str().unwrap().to_string(),
                v["backup_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![("app".into(), app), ("other".into(), other)]);
}

#[test]
fn a_damaged_newest_manifest_is_a_finding_not_passed_over() {
    let w = World::local();
    let old = w.backup()["id"].as_str().unwrap().to_string();
    let new = w.backup()["id"].as_str().unwrap().to_string();
    std::fs::write(manifest_path(&w, "app", &new), b"{ torn").unwrap();
    for args in [
        &["verify", "--quick"][..],
        &["verify", "--unverified", "--quick"][..],
    ] {
        let r = w.run(args);
        assert_eq!(r.code, 1, "{args:?}\n{}\n{}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains(&format!("backup {new} of 'app': FAILED"))
                && r.stdout
                    .contains(&format!("manifest app/{new}/manifest.json: cannot be read")),
            "{args:?}: {}",
            r.stdout
        );
        assert!(
            !r.stdout.contains("nothing to verify"),
            "{args:?}: {}",
            r.stdout
        );
    }
    // The older, readable backup was verified by --unverified, not instead of the newest.
    let r = w.run(&["verify", "--unverified", "--quick"]);
    assert!(
        !r.stdout.contains(&format!("{old} of 'app': verified")),
        "{}",
        r.stdout
    );
}

#[test]
fn verify_of_an_empty_repository_could_not_run() {
    let w = World::local();
    // An existing, empty repository (a missing folder is a different error).
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    std::fs::create_dir_all(root).unwrap();
    for args in [
        &["verify", "--quick"][..],
        &["verify", "--unverified", "--quick"][..],
    ] {
        let r = run(bare(&w, args));
        assert_eq!(r.code, 2, "{args:?}\n{}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("no backup"), "{args:?}: {}", r.stderr);
    }
}
