//! Custody gaps of issue 19: who signed each backup in `list --json`, change segments
//! re-encrypted by `pgdr rekey` (checked with the `age` tool, not pgdr), and marks signed
//! like the other records. The Object Lock cases live in `objectlock_custody`.

use std::path::{Path, PathBuf};

use crate::common::*;
use crate::signing::minisign_verify;

/// `pgdr keygen --signing --out DIR/NAME`: (key file, public key, key id from stderr).
pub(crate) fn signing_key(dir: &Path, name: &str) -> (PathBuf, String, String) {
    let path = dir.join(name);
    let mut c = pgdr_cmd();
    c.args(["keygen", "--signing", "--out"]).arg(&path);
    let r = run(c).ok();
    let id = r
        .stderr
        .split_whitespace()
        .nth(2)
        .expect("signing key <id> written")
        .to_string();
    (path, r.stdout.trim().to_string(), id)
}

/// The key id inside a minisign public key, decoded by hand (base64 of "Ed", the 8-byte key
/// number little-endian, the 32-byte key): the oracle for what pgdr reports.
fn key_id_of(public: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut raw = Vec::new();
    for c in public.trim().bytes().take_while(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            raw.push((bits >> n) as u8);
        }
    }
    assert_eq!(&raw[..2], b"Ed", "{public}");
    let mut id = [0u8; 8];
    id.copy_from_slice(&raw[2..10]);
    format!("{:016X}", u64::from_le_bytes(id))
}

#[test]
fn list_json_names_the_key_that_signed_each_backup() {
    let w = World::local();
    let (host, host_pub, host_id) = signing_key(w.dir.path(), "host.key");
    assert_eq!(host_id, key_id_of(&host_pub));
    let mut c = w.pgdr(&["backup", "--quiet"]);
    c.arg("--signing-key").arg(&host);
    run(c).ok();
    w.run(&["backup", "--quiet"]).ok();
    let list = w.list();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["signer"], key_id_of(&host_pub).as_str(), "{list:?}");
    assert_eq!(list[1]["signer"], "unsigned", "{list:?}");
    // Human `show` says it too.
    let id = list[0]["id"].as_str().unwrap();
    let show = w.run(&["show", id]).ok().stdout;
    assert!(show.contains(&format!("yes, by key {host_id}")), "{show}");
}

pub(crate) fn repo_root(w: &World) -> PathBuf {
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    root.clone()
}

/// A world whose change capture was signed by `host`: `app.t` (10 rows), an anchored backup,
/// 10 more rows, a mark `end` the stored changes reach; the runner stopped.
pub(crate) struct Captured {
    pub w: World,
    pub host: PathBuf,
    pub host_pub: String,
    pub host_id: String,
}

/// `cmd` with the signing key (writers) and the trust key (readers) of `c`.
pub(crate) fn signed(c: &Captured, mut cmd: std::process::Command) -> std::process::Command {
    // As variables: each command reads only those of the flags it takes.
    cmd.env("PGDR_SIGNING_KEY", &c.host)
        .env("PGDR_TRUST_KEYS", &c.host_pub);
    cmd
}

pub(crate) fn captured(repo: Option<Repo>, config: &str) -> Captured {
    let pg = Pg::start_logical();
    pg.create_db("app");
    pg.psql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'a' FROM generate_series(1, 10) g",
    );
    let w = World::around_pg(pg, repo);
    let (host, host_pub, host_id) = signing_key(w.dir.path(), "host.key");
    let cfg = w.config_file("custody.toml", config);
    let c = Captured {
        w,
        host,
        host_pub,
        host_id,
    };
    let w = &c.w;
    let pgdr = |args: &[&str]| signed(&c, w.pgdr_config(&cfg, args));
    run(pgdr(&["capture", "enable"])).ok();
    let mut r = pgdr(&["capture", "run", "--segment-age", "1s", "--heartbeat", "1s"]);
    r.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let runner = crate::pitr::Runner(r.spawn().unwrap());
    run(pgdr(&["backup", "--quiet"])).ok();
    std::thread::sleep(std::time::Duration::from_secs(3));
    run(pgdr(&["backup", "--quiet"])).ok();
    w.pg.psql(
        "app",
        "INSERT INTO t SELECT g, 'b' FROM generate_series(11, 20) g",
    );
    run(pgdr(&["mark", "end"])).ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let probe = w.restore_cmd(&w.pg, "probe", &["--dry-run", "--json", "--at-mark", "end"]);
        let r = run(signed(&c, probe));
        if r.code == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", r.stderr);
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    drop(runner);
    c
}

/// `age -d -i IDENTITY FILE` with the age tool: the plaintext, or age's complaint.
pub(crate) fn age_decrypt(file: &Path, identity: &Path) -> Result<Vec<u8>, String> {
    let out = std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .expect("the age tool");
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `pgdr rekey --all` to `new_pub` only, reading with the world's identity.
pub(crate) fn rekey(c: &Captured, cfg: Option<&Path>, new_pub: &str) -> Run {
    run(rekey_cmd(c, cfg, new_pub))
}

/// The command [`rekey`] runs.
fn rekey_cmd(c: &Captured, cfg: Option<&Path>, new_pub: &str) -> std::process::Command {
    let w = &c.w;
    let mut cmd = pgdr_cmd();
    cmd.args(["rekey", "--all"]);
    w.repo.apply(&mut cmd);
    cmd.arg("--recipient").arg(new_pub);
    cmd.arg("--identity").arg(&w.identity);
    if let Some(cfg) = cfg {
        cmd.arg("--config").arg(cfg);
    }
    signed(c, cmd)
}

/// `pgdr restore --at-mark end` into `db` with one identity (and the trust key).
pub(crate) fn restore_at_end(c: &Captured, db: &str, identity: &Path) -> Run {
    let w = &c.w;
    let mut cmd = pgdr_cmd();
    cmd.arg("restore")
        .arg("--target")
        .arg(w.pg.url(db))
        .args(["--yes", "--at-mark", "end"]);
    w.repo.apply(&mut cmd);
    cmd.arg("--identity").arg(identity);
    cmd.arg("--trust-key").arg(&c.host_pub);
    run(cmd)
}

fn start_of(file: &str) -> String {
    file.split('.').next().unwrap().to_string()
}

/// The segment objects' file names, and each segment's plaintext as the age tool decrypts it
/// with the world's identity (by start).
fn segment_plaintexts(c: &Captured) -> (Vec<String>, std::collections::BTreeMap<String, Vec<u8>>) {
    let segdir = repo_root(&c.w).join("app/capture/segments");
    let before = segment_objects(&segdir);
    assert!(before.len() >= 2, "{before:?}");
    let plain = before
        .iter()
        .map(|f| {
            let p = age_decrypt(&segdir.join(f), &c.w.identity).unwrap();
            (start_of(f), p)
        })
        .collect();
    (before, plain)
}

/// After a finished rekey: as many segment objects as `before`, none of them an old one, each
/// read by `new_id` (the age tool) to the plaintext it had, none by the world's identity.
fn assert_rekeyed(
    c: &Captured,
    before: &[String],
    plain: &std::collections::BTreeMap<String, Vec<u8>>,
    new_id: &Path,
) {
    let segdir = repo_root(&c.w).join("app/capture/segments");
    let after = segment_objects(&segdir);
    assert_eq!(after.len(), before.len(), "{after:?}");
    for f in &after {
        assert!(!before.contains(f), "old segment object left: {f}");
        let file = segdir.join(f);
        let old = age_decrypt(&file, &c.w.identity);
        assert!(old.is_err(), "the old identity still reads {f}");
        let p = age_decrypt(&file, new_id).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(p, plain[&start_of(f)], "{f}: the plaintext changed");
    }
}

fn segment_objects(segdir: &Path) -> Vec<String> {
    files_under(segdir)
        .into_iter()
        .filter(|f| f.ends_with(".seg.zst.age"))
        .collect()
}

#[test]
fn rekey_reencrypts_change_segments_for_the_new_identity_only() {
    let c = captured(None, "");
    let w = &c.w;
    let (new_id, new_pub) = keypair(w.dir.path());
    let segdir = repo_root(w).join("app/capture/segments");
    let objects = || segment_objects(&segdir);
    let (before, plain) = segment_plaintexts(&c);

    let r = rekey(&c, None, &new_pub).ok();
    let after = objects();
    assert_rekeyed(&c, &before, &plain, &new_id);
    for f in &after {
        // The entry names the new object and recipients, re-signed by the host's key.
        let entry = segdir.join(format!("{}.json", start_of(f)));
        let e: serde_json::Value = serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
        assert_eq!(e["format_version"], 2, "{e}");
        assert_eq!(e["rekeyed"]["recipients"], serde_json::json!([new_pub]));
        if let Err(e) = minisign_verify(&entry, &c.host_pub) {
            panic!("{e}");
        }
    }

    assert!(
        r.stdout.contains(&format!(
            "app: change segments: {} re-encrypted",
            before.len()
        )),
        "{}",
        r.stdout
    );

    // A point-in-time restore reads with the new identity, not with the old one.
    let r = restore_at_end(&c, "app_new", &new_id);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(w.pg.psql("app_new", "SELECT count(*) FROM t").trim(), "20");
    let r = restore_at_end(&c, "app_old", &w.identity);
    assert_ne!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    // A second run has nothing to do.
    let r = rekey(&c, None, &new_pub).ok();
    assert!(
        r.stdout.contains(&format!(
            "app: change segments: 0 re-encrypted, {} already",
            before.len()
        )),
        "{}",
        r.stdout
    );
}

/// Killed after a segment's new object is stored and before its entry names it: every entry
/// still names an object the old identity reads (the age tool), with the same plaintext. The
/// next run finishes: only new objects are left, the new identity reads each to the same
/// plaintext and the old one none, and a point-in-time restore reads with the new identity.
#[test]
fn segment_rekey_killed_midway_stays_readable_and_the_next_run_finishes_it() {
    let c = captured(None, "");
    let w = &c.w;
    let (new_id, new_pub) = keypair(w.dir.path());
    let segdir = repo_root(w).join("app/capture/segments");
    let (before, plain) = segment_plaintexts(&c);

    let mut cmd = rekey_cmd(&c, None, &new_pub);
    cmd.env("PGDR_REKEY_PAUSE", "segment")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let t0 = std::time::Instant::now();
    while segment_objects(&segdir).len() == before.len() {
        assert!(
            t0.elapsed().as_secs() < 60,
            "rekey wrote no new segment object"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let midway = segment_objects(&segdir);
    assert_eq!(midway.len(), before.len() + 1, "{midway:?}");
    for start in plain.keys() {
        let e: serde_json::Value =
            serde_json::from_slice(&std::fs::read(segdir.join(format!("{start}.json"))).unwrap())
                .unwrap();
        assert!(e["rekeyed"].is_null(), "{start}: the entry moved on: {e}");
        let file = segdir.join(format!("{start}.seg.zst.age"));
        let p = age_decrypt(&file, &w.identity).unwrap_or_else(|e| panic!("{start}: {e}"));
        assert_eq!(&p, &plain[start], "{start}");
    }

    let r = rekey(&c, None, &new_pub).ok();
    assert!(r.stdout.contains("app: change segments: "), "{}", r.stdout);
    assert_rekeyed(&c, &before, &plain, &new_id);
    let r = restore_at_end(&c, "app_new", &new_id);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(w.pg.psql("app_new", "SELECT count(*) FROM t").trim(), "20");
}

#[test]
fn marks_are_signed_and_restore_at_mark_refuses_an_unsigned_or_foreign_one() {
    let c = captured(None, "");
    let w = &c.w;
    let marks = repo_root(w).join("app/capture/marks");
    let sig = marks.join("end.json.minisig");
    assert!(sig.exists(), "{:?}", files_under(&marks));
    if let Err(e) = minisign_verify(&marks.join("end.json"), &c.host_pub) {
        panic!("{e}");
    }
    let plan = |extra: &[&str]| {
        let mut args = vec!["--dry-run", "--json", "--at-mark", "end"];
        args.extend_from_slice(extra);
        let mut cmd = w.restore_cmd(&w.pg, "probe", &args);
        cmd.arg("--trust-key").arg(&c.host_pub);
        run(cmd)
    };
    let p = plan(&[]).ok().json();
    let point = p["point"]["point"].as_str().unwrap_or_default().to_string();
    assert!(
        point.contains(&format!("signed by trusted key {}", c.host_id)),
        "{p:#}"
    );

    // Signed by a key this host does not trust (another host's mark): refused, key named.
    let (evil, _, evil_id) = signing_key(w.dir.path(), "evil.key");
    let mut m = w.pgdr(&["mark", "foreign"]);
    m.arg("--signing-key").arg(&evil);
    run(m).ok();
    let mut cmd = w.restore_cmd(&w.pg, "probe", &["--dry-run", "--at-mark", "foreign"]);
    cmd.arg("--trust-key").arg(&c.host_pub);
    let r = run(cmd);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "mark app/capture/marks/foreign.json is signed by key {evil_id}, which is not a trusted key"
        )),
        "{}",
        r.stderr
    );

    // Unsigned (planted by someone who can write the bucket): refused unless --allow-unsigned.
    std::fs::remove_file(&sig).unwrap();
    let r = plan(&[]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("mark app/capture/marks/end.json is not signed"),
        "{}",
        r.stderr
    );
    let p = plan(&["--allow-unsigned"]).ok().json();
    assert!(
        p["point"]["point"]
            .as_str()
            .unwrap_or_default()
            .contains("NOT PROVEN: is not signed"),
        "{p:#}"
    );
}
