//! S3 Object Lock per retention tier, against moto's S3 server (a versioned bucket with
//! Object Lock): what pgdr writes is locked for what retention keeps it anyway, prune never
//! sends a delete for a locked object (on a versioned bucket that would hide the backup behind
//! a delete marker), and prune extends the lock of backups a longer rule keeps.

use chrono::{DateTime, Duration, Utc};

use crate::common::moto::moto;
use crate::common::{tempdir, World};

/// The retention pgdr's object got, read back with HeadObject (moto does not serve
/// GetObjectRetention): (mode, until).
pub(crate) async fn retention(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> (String, DateTime<Utc>) {
    let out = c
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("HeadObject {key}: {e}"));
    let until = out
        .object_lock_retain_until_date()
        .unwrap_or_else(|| panic!("{key} has no retain-until date"));
    (
        out.object_lock_mode()
            .expect("a lock mode")
            .as_str()
            .to_string(),
        DateTime::from_timestamp(until.secs(), 0).unwrap(),
    )
}

fn assert_near(what: &str, got: DateTime<Utc>, want: DateTime<Utc>) {
    let off = (got - want).num_seconds().abs();
    assert!(
        off < 600,
        "{what}: locked until {got}, expected about {want}"
    );
}

fn ids(w: &World) -> Vec<String> {
    w.list()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn object_lock_per_tier_prune_skips_locked_and_extends_kept() {
    let m = moto();
    let (repo, prefix) = m.repo("lock");
    let w = World::with_repo(tempdir(), repo);
    let cfg = w.config_file(
        "lock.toml",
        "[repository.s3]\nobject_lock = \"governance\"\nobject_lock_max = \"400d\"\n\
         [retention]\nkeep_daily = 8\nkeep_weekly = 4\n",
    );
    let c = m.client();
    let key = |id: &str, file: &str| format!("{prefix}/app/{id}/{file}");

    for _ in 0..3 {
        pgdr_ok(&w, &cfg, &["backup", "--quiet"]);
    }
    let all = ids(&w);
    assert_eq!(all.len(), 3, "{all:?}");
    let (a, b, newest) = (&all[0], &all[1], &all[2]);
    // Creation: keep_daily = 8 locks every object of a backup for 8 days, weekly not yet.
    let created = Utc::now();
    for file in ["dump.zst.age", "manifest.json"] {
        let (mode, until) = retention(&c, &m.bucket, &key(a, file)).await;
        assert_eq!(mode, "GOVERNANCE", "{file}");
        assert_near(file, until, created + Duration::days(8));
    }
    // b is kept forever: prune must lock it for object_lock_max.
    pgdr_ok(&w, &cfg, &["keep", b, "--keep-forever"]);

    let pruned = pgdr_ok(&w, &cfg, &["prune"]);
    let after = Utc::now();
    // a: only the newest of the day is kept daily, so retention drops a, but its lock holds.
    assert_eq!(ids(&w), all, "a locked backup disappeared from the listing");
    // No delete request reached the bucket: a DeleteObject on a versioned bucket would have
    // "succeeded" with a delete marker hiding the backup.
    let versions = c
        .list_object_versions()
        .bucket(&m.bucket)
        .prefix(format!("{prefix}/"))
        .send()
        .await
        .unwrap();
    // (Probes and leases are deleted as usual: only a backup's objects are locked.)
    let markers: Vec<&str> = versions
        .delete_markers()
        .iter()
        .filter_map(|d| d.key())
        .collect();
    assert!(
        !markers
            .iter()
            .any(|k| all.iter().any(|id| k.starts_with(&key(id, "")))),
        "prune sent deletes for objects of locked backups: {markers:?}"
    );
    assert!(
        pruned.contains(&format!("app/{a}: Object Lock until")),
        "prune did not say it skipped the locked backup:\n{pruned}"
    );
    // The skipped backup still restores: a quick verify reads and checks every object.
    pgdr_ok(&w, &cfg, &["verify", a, "--quick"]);

    // The newest is kept weekly (1/4): its lock runs 4 weeks from the prune, not 8 days.
    let (_, until) = retention(&c, &m.bucket, &key(newest, "dump.zst.age")).await;
    assert_near("weekly backup", until, after + Duration::weeks(4));
    // keep-forever: object_lock_max.
    let (_, until) = retention(&c, &m.bucket, &key(b, "manifest.json")).await;
    assert_near("kept-forever backup", until, after + Duration::days(400));
    // a was not extended.
    let (_, until) = retention(&c, &m.bucket, &key(a, "dump.zst.age")).await;
    assert_near("dropped backup", until, created + Duration::days(8));

    // Releasing the keep rule does not pretend to shorten the lock.
    let released = pgdr_ok(&w, &cfg, &["keep", b, "--release"]);
    assert!(
        released.contains("governance Object Lock still holds it until"),
        "keep --release does not say the lock stays:\n{released}"
    );

    let check = run_config(&w, &cfg, &["config", "check"]);
    assert!(
        check.contains("versioning Enabled, Object Lock enabled"),
        "config check does not report the bucket's protection:\n{check}"
    );
}

fn pgdr_ok(w: &World, cfg: &std::path::Path, args: &[&str]) -> String {
    let r = crate::common::run(w.pgdr_config(cfg, args));
    let out = format!("{}{}", r.stdout, r.stderr);
    r.ok();
    out
}

fn run_config(w: &World, cfg: &std::path::Path, args: &[&str]) -> String {
    let r = crate::common::run(w.pgdr_config(cfg, args));
    format!("{}{}", r.stdout, r.stderr)
}

/// Object Lock asked of a bucket without it (Garage has none): `config check` names it.
#[test]
fn config_check_fails_when_the_bucket_has_no_object_lock() {
    let g = crate::common::garage::garage();
    let dir = tempdir();
    let cfg = dir.path().join("lock.toml");
    std::fs::write(&cfg, "[repository.s3]\nobject_lock = \"compliance\"\n").unwrap();
    let mut c = crate::common::pgdr_cmd();
    c.args(["config", "check", "--config"]).arg(&cfg);
    c.arg("--repo").arg(format!(
        "s3://{}/{}",
        g.bucket,
        crate::common::garage::unique_prefix("nolock")
    ));
    c.env("AWS_ENDPOINT_URL", &g.endpoint)
        .env("AWS_REGION", &g.region)
        .env("AWS_ACCESS_KEY_ID", &g.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &g.secret_key);
    let r = crate::common::run(c);
    let out = format!("{}{}", r.stdout, r.stderr);
    assert_ne!(r.code, 0, "{out}");
    assert!(
        out.contains("object_lock = \"compliance\" but the bucket has no Object Lock"),
        "{out}"
    );
}
