//! Object Lock and the change capture, against moto (a versioned bucket with Object Lock):
//! capture writes its segments locked for what retention keeps them anyway, prune leaves the
//! locked ones (no delete sent), and `pgdr rekey` leaves old objects still locked in place,
//! saying until when, while the rekeyed backup stays listed and restorable.

use chrono::{DateTime, Duration, Utc};

use crate::common::moto::moto;
use crate::common::*;
use crate::custody::{captured, rekey, restore_at_end};
use crate::objectlock::retention;

/// The retain-until date of an object, whose lock must be GOVERNANCE.
async fn locked_until(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> DateTime<Utc> {
    let (mode, until) = retention(c, bucket, key).await;
    assert_eq!(mode, "GOVERNANCE", "{key}");
    until
}

/// Current object keys under `prefix`, and the keys of every delete marker there.
async fn listing(c: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> (Vec<String>, Vec<String>) {
    let v = c
        .list_object_versions()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    let current = v
        .versions()
        .iter()
        .filter(|o| o.is_latest() == Some(true))
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    let markers = v
        .delete_markers()
        .iter()
        .filter_map(|d| d.key().map(str::to_string))
        .collect();
    (current, markers)
}

#[tokio::test(flavor = "multi_thread")]
async fn locked_segments_survive_prune_and_rekey_keeps_locked_old_objects_saying_until_when() {
    let m = moto();
    let (repo, prefix) = m.repo("seglock");
    let config = "[repository.s3]\nobject_lock = \"governance\"\n[retention]\nkeep_daily = 8\n";
    let created = Utc::now();
    let c = tokio::task::spawn_blocking(move || captured(Some(repo), config))
        .await
        .unwrap();
    let w = &c.w;
    let cfg = w.dir.path().join("custody.toml");
    let s3 = m.client();
    let segments = format!("{prefix}/app/capture/segments/");
    let (objects, _) = listing(&s3, &m.bucket, &segments).await;
    let seg_objects: Vec<&String> = objects
        .iter()
        .filter(|k| k.ends_with(".seg.zst.age"))
        .collect();
    assert!(seg_objects.len() >= 2, "{objects:?}");
    // Capture locks what it writes (object and entry) for keep_daily = 8 days.
    for k in seg_objects.iter().take(2) {
        let until = locked_until(&s3, &m.bucket, k).await;
        let off = (until - (created + Duration::days(8))).num_seconds().abs();
        assert!(off < 900, "{k}: locked until {until}");
        let entry = k.replace(".seg.zst.age", ".json");
        locked_until(&s3, &m.bucket, &entry).await;
    }

    // Prune: the older backup and the segments before the newer anchor fall out of
    // retention, but are locked: skipped, said, no delete sent.
    let pruned = run(signed_cfg(&c, &cfg, &["prune"])).ok();
    let out = format!("{}{}", pruned.stdout, pruned.stderr);
    assert!(
        out.contains("capture/segments/") && out.contains("Object Lock until"),
        "prune did not say it kept locked segments:\n{out}"
    );
    let (after, markers) = listing(&s3, &m.bucket, &format!("{prefix}/app/")).await;
    assert!(
        objects.iter().all(|k| after.contains(k)),
        "a locked segment object disappeared"
    );
    let backup_or_segment = |k: &String| !k.contains("/jobs/") && !k.contains("/in-use/");
    let bad: Vec<&String> = markers.iter().filter(|k| backup_or_segment(k)).collect();
    assert!(
        bad.is_empty(),
        "deletes were sent for locked objects: {bad:?}"
    );
    let ids: Vec<String> = w
        .list()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");

    // Rekey: new objects beside the old; the old ones are locked, so they stay, said with
    // their date, and no delete is sent for them.
    let (new_id, new_pub) = keypair(w.dir.path());
    let old_dump = format!("{prefix}/app/{}/dump.zst.age", ids[1]);
    let old_until = locked_until(&s3, &m.bucket, &old_dump).await;
    let r = rekey(&c, Some(&cfg), &new_pub).ok();
    let said = format!(
        "old object app/{}/dump.zst.age stays until {} (Object Lock)",
        ids[1],
        old_until.format("%Y-%m-%d %H:%M UTC")
    );
    assert!(
        r.stdout.contains(&said),
        "wanted {said:?} in:\n{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("app/capture/segments/") && r.stdout.contains("(Object Lock)"),
        "{}",
        r.stdout
    );
    let (now, markers) = listing(&s3, &m.bucket, &format!("{prefix}/app/")).await;
    let bad: Vec<&String> = markers.iter().filter(|k| backup_or_segment(k)).collect();
    assert!(
        bad.is_empty(),
        "rekey sent deletes for locked objects: {bad:?}"
    );
    assert!(now.contains(&old_dump), "the locked old dump is gone");
    assert!(
        now.iter()
            .any(|k| k.contains(".k") && k.ends_with(".seg.zst.age")),
        "no rekeyed segment object: {now:?}"
    );
    // Still listed, and restorable with the new identity (backup and segments).
    assert_eq!(w.list().len(), 2);
    let r = restore_at_end(&c, "app_new", &new_id);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(w.pg.psql("app_new", "SELECT count(*) FROM t").trim(), "20");
}

/// pgdr with the world's keys, the lock config, the signing and trust keys.
fn signed_cfg(
    c: &crate::custody::Captured,
    cfg: &std::path::Path,
    args: &[&str],
) -> std::process::Command {
    crate::custody::signed(c, c.w.pgdr_config(cfg, args))
}
