//! Signed manifests (issue 19): a backup planted by someone who can write the repository and
//! knows the (public) recipient is refused by restore, verify and drill once trust keys are
//! configured; a signed one passes; a changed manifest is named; `--allow-unsigned` proceeds
//! and the record says so; `pgdr sign` adopts old backups. Signatures are checked by hand with
//! the real `minisign` tool, as README tells an operator to.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

fn repo_root(w: &World) -> PathBuf {
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    root.clone()
}

/// `pgdr keygen --signing`: (key file, public key, key id from stderr).
fn signing_key(dir: &Path, name: &str) -> (PathBuf, String, String) {
    let path = dir.join(name);
    let mut c = pgdr_cmd();
    c.args(["keygen", "--signing", "--out"]).arg(&path);
    let r = run(c).ok();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the signing key is private");
    let id = r
        .stderr
        .split_whitespace()
        .nth(2)
        .expect("signing key <id> written")
        .to_string();
    assert_eq!(id.len(), 16, "{}", r.stderr);
    (path, r.stdout.trim().to_string(), id)
}

/// The newest backup id of a repository folder (ids sort by time).
fn newest_id(root: &Path) -> String {
    let mut ids: Vec<String> = std::fs::read_dir(root.join("app"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with('Z'))
        .collect();
    ids.sort();
    ids.pop().expect("a backup")
}

/// A backup made by another pgdr with its own repository, encrypted to the same recipient
/// (it is public), optionally signed by `key`, then copied into the world's repository: what
/// an attacker who can write the bucket does. Returns its id.
fn plant_forgery(w: &World, other: &Path, key: Option<&Path>) -> String {
    let mut c = pgdr_cmd();
    c.args(["backup", "--quiet", "--source"])
        .arg(w.pg.url("app"))
        .arg("--repo")
        .arg(other)
        .arg("--recipient")
        .arg(&w.recipient);
    if let Some(k) = key {
        c.arg("--signing-key").arg(k);
    }
    run(c).ok();
    let id = newest_id(other);
    let st = Command::new("cp")
        .arg("-r")
        .arg(other.join("app").join(&id))
        .arg(repo_root(w).join("app"))
        .status()
        .unwrap();
    assert!(st.success());
    id
}

/// `minisign -V` by hand, as README tells an operator: Ok(output) or Err(output).
pub(crate) fn minisign_verify(file: &Path, public: &str) -> Result<String, String> {
    let out = Command::new("minisign")
        .arg("-Vm")
        .arg(file)
        .arg("-P")
        .arg(public)
        .output()
        .expect("the minisign tool (apt-get install minisign; scripts/lib.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

fn with_trust(mut c: Command, public: &str) -> Command {
    c.arg("--trust-key").arg(public);
    c
}

/// A config with the scratch cluster in the test's folder and the trust key in `[trust]`.
fn drill_config(w: &World, trust: &str) -> PathBuf {
    let tmp = w.dir.path().join("scratch-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    w.config_file(
        "drill.toml",
        &format!(
            "[scratch]\ntemp_dir = \"{}\"\n\n[trust]\nkeys = [\"{trust}\"]\n\n[[database]]\nname = \"app\"\nurl = \"{}\"\n",
            tmp.display(),
            w.pg.url("app")
        ),
    )
}

#[test]
fn forged_backups_are_refused_by_restore_verify_and_drill_and_a_signed_one_passes() {
    let w = World::local();
    let (host, host_pub, host_id) = signing_key(w.dir.path(), "host.key");
    let (evil, _, evil_id) = signing_key(w.dir.path(), "evil.key");
    let mut c = w.pgdr(&["backup", "--quiet"]);
    c.arg("--signing-key").arg(&host);
    run(c).ok();
    let signed = newest_id(&repo_root(&w));
    let manifest = repo_root(&w)
        .join("app")
        .join(&signed)
        .join("manifest.json");
    // By hand: minisign checks the stored manifest with the printed public key.
    let by_hand = minisign_verify(&manifest, &host_pub).expect("minisign accepts the manifest");
    assert!(
        by_hand.contains(&format!("app/{signed}/manifest.json")),
        "{by_hand}"
    );

    let other = w.dir.path().join("other-repo");
    let unsigned = plant_forgery(&w, &other, None);
    let foreign = plant_forgery(&w, &other, Some(&evil));
    assert!(minisign_verify(
        &repo_root(&w)
            .join("app")
            .join(&foreign)
            .join("manifest.json"),
        &host_pub
    )
    .is_err());
    let refusals = [
        (unsigned.as_str(), format!("backup app/{unsigned} is not signed")),
        (
            foreign.as_str(),
            format!("backup app/{foreign} is signed by key {evil_id}, which is not a trusted key ({host_id})"),
        ),
    ];
    let cfg = drill_config(&w, &host_pub);
    for (id, why) in &refusals {
        // verify: a finding (exit 1), named.
        let r = run(with_trust(
            w.pgdr(&["verify", id, "--quick", "--json"]),
            &host_pub,
        ));
        assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
        let rec = &r.json()[0];
        assert_eq!(rec["outcome"], "failed");
        assert!(
            rec["differences"][0].as_str().unwrap().contains(why),
            "{rec:#}"
        );
        // restore: refused (exit 2) before the target is touched.
        let target = format!("app_forged_{}", &id[..8]);
        let mut c = w.restore_cmd(&w.pg, &target, &["--backup", id, "--yes"]);
        c.env("PGDR_TRUST_KEYS", &host_pub);
        // --allow-unsigned is a flag only: the environment cannot give it.
        c.env("PGDR_ALLOW_UNSIGNED", "true");
        let r = run(c);
        assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(why.as_str()), "{}", r.stderr);
        assert!(r.stderr.contains("--allow-unsigned"), "{}", r.stderr);
        assert!(!w.pg.exists(&target));
        // drill (trust key from the config file): failed (exit 1), recorded with the reason.
        let r = run(w.pgdr_config(&cfg, &["drill", "--backup", id, "--json"]));
        assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
        let rec = &r.json()[0];
        assert_eq!(rec["outcome"], "failed");
        assert!(
            rec["failures"].to_string().contains(why.as_str()),
            "{rec:#}"
        );
    }

    // The signed one passes all three, and their records say by which key.
    let r = run(with_trust(
        w.pgdr(&["verify", &signed, "--quick", "--json"]),
        &host_pub,
    ))
    .ok();
    let sig = &r.json()[0]["backup_signature"];
    assert_eq!(sig["acceptance"], "trusted", "{sig:#}");
    assert_eq!(sig["key_id"], host_id.as_str());
    let mut c = w.restore_cmd(
        &w.pg,
        "app_signed",
        &["--backup", &signed, "--yes", "--json"],
    );
    c.arg("--trust-key").arg(&host_pub);
    let r = run(c).ok();
    assert_eq!(
        r.json()["backup_signature"]["acceptance"],
        "trusted",
        "{}",
        r.stdout
    );
    assert_eq!(
        w.pg.psql("app_signed", "SELECT count(*) FROM public.orders"),
        w.pg.psql("app", "SELECT count(*) FROM public.orders")
    );
    let r = run(w.pgdr_config(&cfg, &["drill", "--backup", &signed, "--json"]));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()[0]["backup_signature"]["key_id"], host_id.as_str());

    // show names the signer, and whether this host trusts it.
    let mut c = w.pgdr(&["show", &foreign]);
    c.arg("--trust-key").arg(&host_pub);
    let out = run(c).ok().stdout;
    assert!(
        out.contains(&format!(
            "yes, by key {evil_id} (not a trust key of this host)"
        )),
        "{out}"
    );
}

/// Change one byte of the pretty-printed manifest that its checksum does not cover (a space
/// of indentation becomes a tab): it still reads, only the signature can tell.
fn flip_whitespace(manifest: &Path) {
    let mut b = std::fs::read(manifest).unwrap();
    let at = b.windows(3).position(|w| w == b"\n  ").unwrap() + 1;
    b[at] = b'\t';
    std::fs::write(manifest, b).unwrap();
}

#[test]
fn a_changed_manifest_is_named_allow_unsigned_is_recorded_and_sign_adopts_old_backups() {
    let w = World::local();
    let (host, host_pub, host_id) = signing_key(w.dir.path(), "host.key");
    let root = repo_root(&w);
    // An old backup (before signing), then a signed one.
    w.run(&["backup", "--quiet"]).ok();
    let old = newest_id(&root);
    let mut c = w.pgdr(&["backup", "--quiet"]);
    c.arg("--signing-key").arg(&host);
    run(c).ok();
    let signed = newest_id(&root);
    assert_ne!(old, signed);

    // One byte changed in the signed manifest: named by verify and restore, and by minisign.
    let manifest = root.join("app").join(&signed).join("manifest.json");
    flip_whitespace(&manifest);
    let why = format!("signature does not match manifest.json of backup app/{signed}");
    let r = run(with_trust(
        w.pgdr(&["verify", &signed, "--quick", "--json"]),
        &host_pub,
    ));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&why), "{}", r.stdout);
    let r = run(with_trust(
        w.restore_cmd(&w.pg, "app_flipped", &["--backup", &signed, "--yes"]),
        &host_pub,
    ));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&why), "{}", r.stderr);
    assert!(minisign_verify(&manifest, &host_pub).is_err());

    // No trust key at all (the transition rule): a warning, and it proceeds.
    let r = w.run(&["verify", &old, "--quick", "--json"]).ok();
    assert!(
        r.stderr.contains("no trust keys configured"),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.json()[0]["backup_signature"]["acceptance"],
        "no_trust_keys"
    );

    // With trust keys, --allow-unsigned proceeds; the plan and the records say so.
    let r = run(with_trust(
        w.pgdr(&["verify", &old, "--quick", "--json", "--allow-unsigned"]),
        &host_pub,
    ))
    .ok();
    let sig = &r.json()[0]["backup_signature"];
    assert_eq!(sig["acceptance"], "allowed_unsigned", "{sig:#}");
    assert!(sig["problem"].as_str().unwrap().contains("is not signed"));
    let records = root.join("app").join(&old).join("verifications");
    let mut stored: Vec<String> = files_under(&records)
        .into_iter()
        .filter(|f| f.ends_with(".json"))
        .collect();
    stored.sort();
    assert_eq!(stored.len(), 2, "{stored:?}");
    let text = std::fs::read_to_string(records.join(stored.last().unwrap())).unwrap();
    assert!(text.contains("allowed_unsigned"), "{text}");
    let plan = run(with_trust(
        w.restore_cmd(
            &w.pg,
            "app_old",
            &["--backup", &old, "--dry-run", "--allow-unsigned"],
        ),
        &host_pub,
    ))
    .ok();
    assert!(
        plan.stdout.contains("--allow-unsigned: restoring although"),
        "{}",
        plan.stdout
    );
    let r = run(with_trust(
        w.restore_cmd(
            &w.pg,
            "app_old",
            &["--backup", &old, "--yes", "--json", "--allow-unsigned"],
        ),
        &host_pub,
    ))
    .ok();
    assert_eq!(
        r.json()["backup_signature"]["acceptance"],
        "allowed_unsigned"
    );

    // An operator adopts the old backup after checking it; a damaged one is refused.
    let mut c = w.pgdr(&["sign", &old]);
    c.arg("--signing-key").arg(&host);
    let out = run(c).ok().stdout;
    assert!(
        out.contains(&format!("signed app/{old} with key {host_id}")),
        "{out}"
    );
    assert!(minisign_verify(
        &root.join("app").join(&old).join("manifest.json"),
        &host_pub
    )
    .is_ok());
    // Verified by a host with its own key: the record is signed too.
    let mut c = with_trust(w.pgdr(&["verify", &old, "--quick"]), &host_pub);
    c.arg("--signing-key").arg(&host);
    run(c).ok();
    let signed_records: Vec<String> = files_under(&records)
        .into_iter()
        .filter(|f| f.ends_with(".json.minisig"))
        .collect();
    assert_eq!(signed_records.len(), 1, "{:?}", files_under(&records));
    let rec = records.join(signed_records[0].trim_end_matches(".minisig"));
    assert!(minisign_verify(&rec, &host_pub).is_ok());
    // show names both signers: the manifest's and the newest verification record's.
    let out = run(with_trust(w.pgdr(&["show", &old]), &host_pub))
        .ok()
        .stdout;
    let trusted = format!("yes, by key {host_id} (trusted)");
    assert!(
        out.lines()
            .any(|l| l.starts_with("signed ") && l.ends_with(&trusted)),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("  record signed") && l.ends_with(&trusted)),
        "{out}"
    );

    // A manifest whose checksum fails is never signed.
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replacen("\"app\"", "\"app2\"", 1)).unwrap();
    std::fs::remove_file(root.join("app").join(&signed).join("manifest.json.minisig")).unwrap();
    let mut c = w.pgdr(&["sign", "--all-unsigned"]);
    c.arg("--signing-key").arg(&host);
    let r = run(c);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!("not signed: app/{signed}")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("checksum mismatch"), "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("already signed: app/{old}")),
        "{}",
        r.stdout
    );
    assert!(!root
        .join("app")
        .join(&signed)
        .join("manifest.json.minisig")
        .exists());
}

/// `capture run` stopped (SIGTERM, then reaped) whatever the test's outcome.
struct Runner(std::process::Child);
impl Drop for Runner {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn segments_signed_by_the_capture_host_are_replayed_and_unsigned_ones_refused() {
    let pg = Pg::start_logical();
    pg.create_db("app");
    pg.psql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'a' FROM generate_series(1, 10) g",
    );
    let w = World::around_pg(pg, None);
    let (host, host_pub, _) = signing_key(w.dir.path(), "host.key");
    w.run(&["capture", "enable"]).ok();
    let mut c = w.pgdr(&["capture", "run", "--segment-age", "1s", "--heartbeat", "1s"]);
    c.arg("--signing-key").arg(&host);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let runner = Runner(c.spawn().unwrap());
    let mut c = w.pgdr(&["backup", "--quiet"]);
    c.arg("--signing-key").arg(&host);
    run(c).ok();
    w.pg.psql(
        "app",
        "INSERT INTO t SELECT g, 'b' FROM generate_series(11, 20) g",
    );
    // Marks are signed too: restore --at-mark refuses one a trusted key did not sign.
    let mut c = w.pgdr(&["mark", "end"]);
    c.arg("--signing-key").arg(&host);
    run(c).ok();
    // Wait until the stored changes reach the mark (the plan stops refusing it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let plan = loop {
        let c = w.restore_cmd(&w.pg, "probe", &["--dry-run", "--json", "--at-mark", "end"]);
        let r = run(with_trust(c, &host_pub));
        if r.code == 0 {
            break r.json();
        }
        assert!(std::time::Instant::now() < deadline, "{}", r.stderr);
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    drop(runner);
    let segments = repo_root(&w).join("app/capture/segments");
    let starts: Vec<String> = plan["point"]["segment_starts"]
        .as_array()
        .unwrap_or_else(|| panic!("{plan:#}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert!(!starts.is_empty(), "{plan:#}");
    // Every entry the plan replays is signed; minisign checks one by hand.
    let entries: Vec<String> = files_under(&segments)
        .into_iter()
        .filter(|f| f.ends_with(".json"))
        .collect();
    assert!(!entries.is_empty());
    for e in &entries {
        assert!(
            segments.join(format!("{e}.minisig")).exists(),
            "{e} unsigned"
        );
    }
    assert!(minisign_verify(&segments.join(&entries[0]), &host_pub).is_ok());

    let c = w.restore_cmd(&w.pg, "app_at_end", &["--yes", "--at-mark", "end"]);
    run(with_trust(c, &host_pub)).ok();
    assert_eq!(
        w.pg.psql("app_at_end", "SELECT count(*) FROM t").trim(),
        "20"
    );

    // A segment entry without its signature (planted, or from a host without the key).
    for e in &entries {
        std::fs::remove_file(segments.join(format!("{e}.minisig"))).unwrap();
    }
    let c = w.restore_cmd(&w.pg, "app_refused", &["--yes", "--at-mark", "end"]);
    let r = run(with_trust(c, &host_pub));
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("segment entry app/capture/segments/")
            && r.stderr.contains("is not signed"),
        "{}",
        r.stderr
    );
    assert!(!w.pg.exists("app_refused"));
}
