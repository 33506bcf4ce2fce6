//! `pgdr drill --key-check`: each identity proven alone on the newest backup, recorded; and
//! `status` judging recipients by those proofs.

use std::path::{Path, PathBuf};

use crate::common::*;

/// pgdr with --source, --repo and the given recipients and identities only.
fn cmd(
    w: &World,
    args: &[&str],
    recipients: &[&str],
    identities: &[&Path],
) -> std::process::Command {
    // As variables (comma-separated lists): each command reads those of the flags it takes.
    let mut c = pgdr_cmd();
    c.args(args);
    c.env("PGDR_SOURCE", w.pg.url("app"));
    w.repo.apply_env(&mut c);
    if !recipients.is_empty() {
        c.env("PGDR_RECIPIENT", recipients.join(","));
    }
    if !identities.is_empty() {
        let ids: Vec<String> = identities.iter().map(|i| i.display().to_string()).collect();
        c.env("PGDR_IDENTITY", ids.join(","));
    }
    c
}

fn key_checks(w: &World) -> Vec<serde_json::Value> {
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    let dir = root.join("app/key-checks");
    files_under(&dir)
        .iter()
        .filter(|f| f.ends_with(".json"))
        .map(|f| serde_json::from_slice(&std::fs::read(dir.join(f)).unwrap()).unwrap())
        .collect()
}

#[test]
fn key_check_wrong_identity_fails_and_is_recorded_right_ones_prove_recipients() {
    let w = World::local();
    let (escrow, escrow_pub) = keypair(w.dir.path());
    let (stranger, _) = keypair(w.dir.path());
    let both = [w.recipient.as_str(), escrow_pub.as_str()];
    run(cmd(&w, &["backup"], &both, &[])).ok();
    let cfg: PathBuf = w.config_file("keys.toml", "[keys]\nproof_max_age = \"90d\"\n");

    // Before any key drill: with a proof age configured, both recipients are unproven.
    let mut st = cmd(&w, &["status"], &both, &[]);
    st.arg("--config").arg(&cfg);
    let st = run(st);
    assert_eq!(st.code, 1, "{}{}", st.stdout, st.stderr);
    let text = format!("{}{}", st.stdout, st.stderr);
    assert!(
        text.contains(&format!(
            "recipient {} of the newest backup: never proven",
            w.recipient
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "recipient {escrow_pub} of the newest backup: never proven"
        )),
        "{text}"
    );

    // A wrong identity: exit 1, recorded as failed, named by its file, its content never.
    let bad = run(cmd(&w, &["drill", "--key-check"], &both, &[&stranger]));
    assert_eq!(bad.code, 1, "{}{}", bad.stdout, bad.stderr);
    assert!(
        bad.stdout.contains(&stranger.display().to_string()),
        "{}",
        bad.stdout
    );
    assert!(bad.stdout.contains("FAILED"), "{}", bad.stdout);
    let recs = key_checks(&w);
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["identities"][0]["file"], stranger.display().to_string());
    assert_eq!(r["identities"][0]["outcome"], "failed");
    assert_eq!(
        r["identities"][0]["recipients_proved"],
        serde_json::json!([])
    );
    assert!(
        r["identities"][0]["problems"][0]
            .as_str()
            .unwrap()
            .contains("no identity matches"),
        "{r}"
    );
    let secret = std::fs::read_to_string(&stranger).unwrap();
    let secret_line = secret
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    assert!(!r.to_string().contains(secret_line));
    assert!(!bad.stdout.contains(secret_line) && !bad.stderr.contains(secret_line));

    // The operational key and the escrow key, each alone: both pass, each proves its own.
    // Signed like every record when this host has a signing key.
    let sk = w.dir.path().join("host.key");
    let mut c = pgdr_cmd();
    c.args(["keygen", "--signing", "--out"]).arg(&sk);
    run(c).ok();
    let mut c = cmd(
        &w,
        &["drill", "--key-check", "--json"],
        &both,
        &[&w.identity, &escrow],
    );
    c.arg("--signing-key").arg(&sk);
    let good = run(c);
    assert_eq!(good.code, 0, "{}{}", good.stdout, good.stderr);
    let v: serde_json::Value = serde_json::from_str(&good.stdout).unwrap();
    let ids = &v[0]["identities"];
    assert_eq!(v[0]["outcome"], "passed");
    assert_eq!(
        ids[0]["recipients_proved"],
        serde_json::json!([w.recipient])
    );
    assert_eq!(ids[1]["recipients_proved"], serde_json::json!([escrow_pub]));
    assert_eq!(key_checks(&w).len(), 2);
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    let sigs: Vec<String> = files_under(&root.join("app/key-checks"))
        .into_iter()
        .filter(|f| f.ends_with(".json.minisig"))
        .collect();
    assert_eq!(
        sigs.len(),
        1,
        "the signed run's record has its signature: {sigs:?}"
    );

    // Status stops warning about keys.
    let mut st = cmd(&w, &["status"], &both, &[]);
    st.arg("--config").arg(&cfg);
    let st = run(st);
    let text = format!("{}{}", st.stdout, st.stderr);
    assert!(!text.contains("of the newest backup"), "{text}");

    // A recipient dropped from the configuration is named.
    let mut st = cmd(&w, &["status"], &[w.recipient.as_str()], &[]);
    st.arg("--config").arg(&cfg);
    let st = run(st);
    let text = format!("{}{}", st.stdout, st.stderr);
    assert_eq!(st.code, 1, "{text}");
    assert!(
        text.contains(&format!(
            "recipient {escrow_pub}, which is no longer configured"
        )),
        "{text}"
    );
}

#[test]
fn identity_is_repeatable_for_commands_that_decrypt() {
    let w = World::local();
    let (other, _) = keypair(w.dir.path());
    w.backup();
    // The matching identity second: every file given is tried.
    let r = run(cmd(
        &w,
        &["verify", "--quick"],
        &[&w.recipient],
        &[&other, &w.identity],
    ));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // Only the wrong one: refused.
    let r = run(cmd(&w, &["verify", "--quick"], &[&w.recipient], &[&other]));
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

/// Files of the backup folder that hold encrypted objects.
fn encrypted_files(w: &World) -> Vec<String> {
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    files_under(&root.join("app"))
        .into_iter()
        .filter(|f| f.ends_with(".age"))
        .collect()
}

#[test]
fn rekey_killed_midway_stays_readable_and_the_next_run_finishes_it() {
    let w = World::local();
    let (new_id, new_pub) = keypair(w.dir.path());
    let sk = w.dir.path().join("host.key");
    let mut c = pgdr_cmd();
    c.args(["keygen", "--signing", "--out"]).arg(&sk);
    let pubkey = run(c).ok().stdout.trim().to_string();
    let signed = |mut c: std::process::Command| {
        c.arg("--signing-key")
            .arg(&sk)
            .arg("--trust-key")
            .arg(&pubkey);
        c
    };
    run(signed(cmd(&w, &["backup"], &[&w.recipient], &[]))).ok();
    let old_files = encrypted_files(&w);
    let rekey = |pause: bool| {
        let mut c = signed(cmd(&w, &["rekey", "--all"], &[&new_pub], &[&w.identity]));
        if pause {
            c.env("PGDR_REKEY_PAUSE", "1");
        }
        c
    };

    // A manifest not signed by a trusted key is never re-signed: refused, nothing written.
    let mut c = cmd(&w, &["rekey", "--all"], &[&new_pub], &[&w.identity]);
    c.arg("--signing-key").arg(&sk);
    let r = run(c);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no trust key"), "{}", r.stderr);
    assert_eq!(encrypted_files(&w), old_files);

    // Killed after the first new object, before the manifest: readable with the old key.
    let mut child = rekey(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while encrypted_files(&w).len() == old_files.len() {
        assert!(t0.elapsed().as_secs() < 60, "rekey wrote no new object");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let verify = |id: &Path| run(signed(cmd(&w, &["verify", "--quick"], &[&new_pub], &[id])));
    let r = verify(&w.identity);
    assert_eq!(
        r.code, 0,
        "old key after a killed rekey: {}{}",
        r.stdout, r.stderr
    );

    // The next run finishes: signed, trusted, readable with the new key only, old objects gone.
    let r = run(rekey(false));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("re-encrypted"), "{}", r.stdout);
    let r = verify(&new_id);
    assert_eq!(r.code, 0, "new key after rekey: {}{}", r.stdout, r.stderr);
    let r = verify(&w.identity);
    assert_ne!(
        r.code, 0,
        "the old key must no longer read it: {}{}",
        r.stdout, r.stderr
    );
    let now = encrypted_files(&w);
    assert!(
        old_files.iter().all(|f| !now.contains(f)),
        "old objects left: {now:?}"
    );
    assert_eq!(now.len(), old_files.len(), "{now:?}");
    // Unsigned readers refuse what the untrusted key did not sign: the manifest is signed.
    let Repo::Local(root) = &w.repo else {
        unreachable!()
    };
    assert!(files_under(&root.join("app"))
        .iter()
        .any(|f| f.ends_with("manifest.json.minisig")));
    // A second run has nothing to do.
    let r = run(rekey(false));
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("already encrypted"), "{}", r.stdout);
}
