//! `pgdr backup`, `list`, `show`, `cat`, `keygen`, `config check` against a real cluster.

use std::process::{Command, Stdio};

use crate::common::*;

/// Decrypt with the standard tools only (no pgdr): the repository format is plain
/// age(zstd(pg_dump archive)).
/// Decrypt and decompress a stored object with the age and zstd programs alone (no pgdr)
/// into `plain`.
fn standard_tools_decode(
    identity: &std::path::Path,
    object: &std::path::Path,
    plain: &std::path::Path,
) {
    let sh = format!(
        "age -d -i '{}' '{}' | zstd -d -q -f -o '{}'",
        identity.display(),
        object.display(),
        plain.display()
    );
    let out = Command::new("bash")
        .args(["-o", "pipefail", "-c", &sh])
        .output();
    check(out.unwrap(), "age -d | zstd -d");
}

/// The manifest's record of the object `name` (sizes, sha256s).
fn object<'a>(m: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let objects = m["objects"].as_array().unwrap();
    objects.iter().find(|o| o["name"] == name).unwrap()
}

fn standard_tools_restore_list(identity: &std::path::Path, object: &std::path::Path) -> String {
    // Decrypt to a file first: pg_restore --list stops reading after the TOC.
    let plain = object.with_extension("plain");
    standard_tools_decode(identity, object, &plain);
    let out = Command::new(pg_bin().join("pg_restore"))
        .arg("--list")
        .arg(&plain)
        .output();
    let out = check(out.unwrap(), "pg_restore --list");
    std::fs::remove_file(&plain).unwrap();
    String::from_utf8(out.stdout).unwrap()
}

pub fn backup_lands_with_manifest(w: &World) {
    let before = chrono::Utc::now();
    let m = w.backup();
    let after = chrono::Utc::now();

    assert_eq!(m["database"], "app");
    assert_eq!(m["format_version"], 2);
    assert!(m["source"]["server_version"]
        .as_str()
        .unwrap()
        .starts_with(&pg_major()));
    let snap: chrono::DateTime<chrono::Utc> =
        m["snapshot"]["time"].as_str().unwrap().parse().unwrap();
    assert!(
        before <= snap && snap <= after,
        "snapshot time {snap} outside the run"
    );
    assert_eq!(m["globals_mode"], "full");
    // The tools' exact versions, as the programs themselves print them (pg_dump's is read from
    // its archive header, with no probe before the dump).
    for tool in ["pg_dump", "pg_dumpall"] {
        let out = std::process::Command::new(pg_bin().join(tool))
            .arg("--version")
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        let version = m["tools"][format!("{tool}_version")].as_str().unwrap();
        assert!(
            version.contains('.') && printed.contains(&format!(" {version}")),
            "{tool}: manifest {version}, the program prints {printed}"
        );
    }
    assert_eq!(m["codec"]["recipients"][0], w.recipient.as_str());
    let phases: Vec<&str> = m["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["connect", "snapshot", "schema", "globals", "dump"]);
    let schema = &m["fingerprint"]["schema"]["sections"];
    assert_eq!(
        schema["policies"]["public.profiles.profiles_select"]["command"], "SELECT",
        "{schema}"
    );
    assert!(
        schema["database"]["current"]
            .to_string()
            .contains("app.settings.environment"),
        "{schema}"
    );
    // Password never lands in the manifest.
    assert!(!m.to_string().contains(PG_PASSWORD));

    let objects = m["objects"].as_array().unwrap();
    let dump = objects.iter().find(|o| o["name"] == "dump").unwrap();
    assert_eq!(dump["file"], "dump.zst.age");
    let raw = dump["raw_bytes"].as_u64().unwrap();
    let compressed = dump["compressed_bytes"].as_u64().unwrap();
    let stored = dump["stored_bytes"].as_u64().unwrap();
    assert!(raw > 500_000, "dump of the sample db is {raw} bytes");
    assert!(
        compressed < raw / 2,
        "zstd did not compress: {compressed} of {raw}"
    );
    assert!(
        stored > compressed && stored < compressed + 4096,
        "age overhead: {stored} vs {compressed}"
    );

    // The fingerprint's data part counts exactly the rows the database holds.
    let tables = m["fingerprint"]["data"]["tables"].as_array().unwrap();
    let rows = |schema: &str, name: &str| {
        tables
            .iter()
            .find(|t| t["schema"] == schema && t["name"] == name)
            .unwrap_or_else(|| panic!("{schema}.{name} not in fingerprint"))["rows"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(rows("public", "orders"), 5000);
    assert_eq!(rows("auth", "users"), 2000);
    assert_eq!(rows("public", "profiles"), 2000);

    // Listed with its sizes.
    let list = w.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], m["id"]);
    assert_eq!(list[0]["raw_bytes"].as_u64().unwrap(), raw);
}

pub fn dump_decrypts_and_restores_list(w: &World) {
    let m = w.backup();
    let id = m["id"].as_str().unwrap();
    let listing = match &w.repo {
        Repo::Local(root) => {
            let object = root.join("app").join(id).join("dump.zst.age");
            standard_tools_restore_list(&w.identity, &object)
        }
        Repo::S3 { .. } => {
            let plain = w.cat(id, "dump");
            let out = Command::new(pg_bin().join("pg_restore"))
                .arg("--list")
                .arg(&plain)
                .output()
                .unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap()
        }
    };
    for want in [
        "TABLE DATA public orders",
        "TABLE DATA auth users",
        "POLICY public profiles profiles_select",
        "FUNCTION public is_admin(uuid)",
        "TRIGGER public profiles profiles_updated_at",
        "TYPE public order_status",
        "ROW SECURITY public orders",
    ] {
        assert!(
            listing.contains(want),
            "pg_restore --list lacks {want:?}:\n{listing}"
        );
    }

    // pgdr cat gives the same archive, checked against the manifest's sha256.
    let plain = w.cat(id, "dump");
    let bytes = std::fs::read(&plain).unwrap();
    let dump = object(&m, "dump");
    assert_eq!(bytes.len() as u64, dump["raw_bytes"].as_u64().unwrap());
    assert_eq!(&bytes[..5], b"PGDMP");
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&bytes)),
        dump["sha256_plain"].as_str().unwrap()
    );

    // Globals hold the roles and memberships.
    let globals = std::fs::read_to_string(w.cat(id, "globals")).unwrap();
    for want in [
        "CREATE ROLE anon;",
        "CREATE ROLE authenticated;",
        "CREATE ROLE service_role;",
        "GRANT anon TO authenticated",
    ] {
        assert!(globals.contains(want), "globals lack {want:?}:\n{globals}");
    }
}

fn pg_major() -> String {
    pg_bin()
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn local_backup_lands_with_manifest() {
    backup_lands_with_manifest(&World::local());
}

#[test]
fn local_dump_decrypts_and_restores_list() {
    dump_decrypts_and_restores_list(&World::local());
}

#[test]
fn s3_backup_lands_with_manifest() {
    backup_lands_with_manifest(&World::s3());
}

#[test]
fn s3_dump_decrypts_and_restores_list() {
    dump_decrypts_and_restores_list(&World::s3());
}

#[test]
fn two_backups_list_in_order_and_show_by_prefix() {
    let w = World::local();
    let a = w.backup();
    w.pg.psql(
        "app",
        "INSERT INTO auth.users VALUES (md5('x')::uuid, 'new@example.com', now(), null)",
    );
    let b = w.backup();
    let list = w.list();
    let ids: Vec<&str> = list.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [a["id"].as_str().unwrap(), b["id"].as_str().unwrap()]);
    let users = |m: &serde_json::Value| {
        m["fingerprint"]["data"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "users")
            .unwrap()
            .clone()
    };
    assert_eq!(users(&a)["rows"], 2000);
    assert_eq!(users(&b)["rows"], 2001);
    assert_ne!(users(&a)["digest"], users(&b)["digest"]);
    // Unchanged tables give identical digests across backups.
    let orders = |m: &serde_json::Value| {
        m["fingerprint"]["data"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "orders")
            .unwrap()["digest"]
            .clone()
    };
    assert_eq!(orders(&a), orders(&b));

    // show takes a unique prefix; the text rendering names the essentials.
    let id_b = b["id"].as_str().unwrap();
    let shown = w.run(&["show", &id_b[..id_b.len() - 3]]).ok().stdout;
    assert!(
        shown.contains(&format!("id                 {id_b}")),
        "{shown}"
    );
    assert!(shown.contains("object dump"), "{shown}");
    let text = w.run(&["list"]).ok().stdout;
    assert!(text.lines().count() == 3 && text.contains(id_b), "{text}");
    // An unknown id names the nearest ones.
    let r = w.run(&["show", "20990101T000000.000Z"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("no backup with id '20990101T000000.000Z'"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint: nearest: "), "{}", r.stderr);
}

#[test]
fn malformed_recipient_fails_before_anything_is_written() {
    let w = World::local();
    let mut c = pgdr_cmd();
    c.args([
        "backup",
        "--source",
        &w.pg.url("app"),
        "--recipient",
        "age1thisisnotakey",
    ]);
    w.repo.apply(&mut c);
    let r = run(c);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("pgdr: error: recipient 'age1thisisno...' is not a valid age public key"),
        "{}",
        r.stderr
    );
    let Repo::Local(root) = &w.repo else {
        unreachable!()
    };
    assert!(files_under(root).is_empty());
}

#[test]
fn unreachable_database_and_bad_password_fail_before_anything_is_written() {
    let w = World::local();
    let Repo::Local(root) = &w.repo else {
        unreachable!()
    };
    let dead = free_port();
    let mut c = pgdr_cmd();
    c.args([
        "backup",
        "--source",
        &format!("postgres://postgres@127.0.0.1:{dead}/app"),
        "--recipient",
        &w.recipient,
    ]);
    w.repo.apply(&mut c);
    let r = run(c);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "database 'app' (postgres@127.0.0.1:{dead}/app): cannot connect: connection refused"
        )),
        "{}",
        r.stderr
    );
    assert!(files_under(root).is_empty(), "{:?}", files_under(root));

    let mut c = pgdr_cmd();
    let url = format!(
        "postgres://postgres:wrong-password@127.0.0.1:{}/app",
        w.pg.port
    );
    c.args(["backup", "--source", &url, "--recipient", &w.recipient]);
    w.repo.apply(&mut c);
    let r = run(c);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("password authentication failed for user \"postgres\""),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("wrong-password"),
        "password leaked: {}",
        r.stderr
    );
    assert!(files_under(root).is_empty());
}

/// A pg_dump stand-in: the real one, cut off mid-stream, then either exiting 0 (an archive that
/// ends early) or killed by a signal.
fn broken_pg_dump(dir: &std::path::Path, ending: &str) -> std::path::PathBuf {
    let bin = dir.join(format!("bin-{}", free_port()));
    std::fs::create_dir_all(&bin).unwrap();
    let real = pg_bin();
    let script = format!(
        "#!/bin/bash\nif [ \"$1\" = --version ]; then exec '{0}/pg_dump' --version; fi\n'{0}/pg_dump' \"$@\" | head -c 200000\n{ending}\n",
        real.display()
    );
    let p = bin.join("pg_dump");
    std::fs::write(&p, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(real.join("pg_dumpall"), bin.join("pg_dumpall")).unwrap();
    bin
}

fn backup_with_bin(w: &World, bin: &std::path::Path) -> Run {
    let cfg = w.config_file(
        &format!("cfg-{}.toml", free_port()),
        &format!("[tools]\npg_bin_dir = \"{}\"\n", bin.display()),
    );
    let c = w.pgdr_config(&cfg, &["backup"]);
    run(c)
}

#[test]
fn pg_dump_cut_off_or_killed_never_becomes_a_backup() {
    let w = World::local();
    let Repo::Local(root) = &w.repo else {
        unreachable!()
    };

    // Ends early but exits 0: only the archive parser can tell.
    let r = backup_with_bin(&w, &broken_pg_dump(w.dir.path(), "exit 0"));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("pg_dump archive is truncated"),
        "{}",
        r.stderr
    );
    assert!(w.list().is_empty());
    assert!(
        files_under(root).is_empty(),
        "left behind: {:?}",
        files_under(root)
    );

    // Killed by a signal mid-stream.
    let r = backup_with_bin(&w, &broken_pg_dump(w.dir.path(), "kill -9 $$"));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("pg_dump was killed by signal 9"),
        "{}",
        r.stderr
    );
    assert!(
        files_under(root).is_empty(),
        "left behind: {:?}",
        files_under(root)
    );

    // Exits non-zero with a message: the message is shown.
    let r = backup_with_bin(
        &w,
        &broken_pg_dump(
            w.dir.path(),
            "echo 'pg_dump: error: simulated failure' >&2; exit 1",
        ),
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("pg_dump exited with status 1: pg_dump: error: simulated failure"),
        "{}",
        r.stderr
    );
    assert!(files_under(root).is_empty());

    // And the next good run works.
    w.backup();
    assert_eq!(w.list().len(), 1);
}

#[test]
fn killing_pgdr_mid_backup_leaves_no_visible_backup() {
    let w = World::local();
    let Repo::Local(root) = &w.repo else {
        unreachable!()
    };
    // A pg_dump that stalls halfway, so there is time to kill pgdr.
    let bin = broken_pg_dump(w.dir.path(), "sleep 60");
    let cfg = w.config_file(
        "stall.toml",
        &format!("[tools]\npg_bin_dir = \"{}\"\n", bin.display()),
    );
    let mut c = w.pgdr(&["backup"]);
    c.arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    // Wait until the dump object is being written.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !files_under(root)
        .iter()
        .any(|f| f.contains("dump.zst.age.partial"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "backup never started writing"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(143), "{err}"); // SIGTERM: 128 + 15
    assert!(err.contains("interrupted"), "{err}");
    assert!(w.list().is_empty());
    assert!(
        files_under(root).is_empty(),
        "left behind: {:?}",
        files_under(root)
    );
}

#[test]
fn full_disk_fails_cleanly_and_keeps_nothing() {
    let w = World::local();
    let disk = SmallDisk::mount(w.dir.path().join("small"), "64k");
    let mnt = disk.0.clone();
    let mut c = pgdr_cmd();
    c.args([
        "backup",
        "--source",
        &w.pg.url("app"),
        "--recipient",
        &w.recipient,
        "--repo",
    ])
    .arg(&mnt);
    let r = run(c);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no space left on device"), "{}", r.stderr);
    assert!(
        r.stderr.contains("hint: free space on the file system of"),
        "{}",
        r.stderr
    );
    assert!(
        files_under(&mnt).is_empty(),
        "left behind: {:?}",
        files_under(&mnt)
    );
}

#[test]
fn repository_not_writable_is_named() {
    let w = World::local();
    let file = w.dir.path().join("plainfile");
    std::fs::write(&file, "x").unwrap();
    let mut c = pgdr_cmd();
    c.args([
        "backup",
        "--source",
        &w.pg.url("app"),
        "--recipient",
        &w.recipient,
        "--repo",
    ])
    .arg(file.join("repo"));
    let r = run(c);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains(&format!("repository {}/repo", file.display())),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("not a directory"), "{}", r.stderr);
}

#[test]
fn config_file_with_env_secrets_and_two_databases() {
    let w = World::local();
    w.pg.sample_db("crm");
    let cfg = w.dir.path().join("pgdr.toml");
    let Repo::Local(root) = &w.repo else {
        unreachable!()
    };
    std::fs::write(
        &cfg,
        format!(
            r#"
[repository]
url = "{}"

[encryption]
recipients = ["{}"]

[compression]
level = 3
threads = 2

[[database]]
name = "app"
url = "postgres://postgres@127.0.0.1:{port}/app"
password = "${{PGDR_TEST_DB_PASSWORD}}"

[[database]]
name = "crm-main"
url = "postgres://postgres:${{PGDR_TEST_DB_PASSWORD}}@127.0.0.1:{port}/crm"
"#,
            root.display(),
            w.recipient,
            port = w.pg.port
        ),
    )
    .unwrap();

    // A missing variable names the key.
    let mut c = pgdr_cmd();
    c.args(["backup", "--config"]).arg(&cfg);
    let r = run(c);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains(
            "database[0].password: environment variable PGDR_TEST_DB_PASSWORD is not set"
        ),
        "{}",
        r.stderr
    );

    let mut c = pgdr_cmd();
    c.args(["backup", "--config"])
        .arg(&cfg)
        .env("PGDR_TEST_DB_PASSWORD", PG_PASSWORD);
    let r = run(c).ok();
    assert_eq!(
        r.stdout.lines().filter(|l| l.contains("committed")).count(),
        2,
        "{}",
        r.stdout
    );

    let mut c = pgdr_cmd();
    c.args(["list", "--json", "--config"])
        .arg(&cfg)
        .env("PGDR_TEST_DB_PASSWORD", PG_PASSWORD);
    let list = run(c).ok().json();
    let mut dbs: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["database"].as_str().unwrap())
        .collect();
    dbs.sort();
    assert_eq!(dbs, ["app", "crm-main"]);

    // --database selects one; the flag overrides the file's level.
    let mut c = pgdr_cmd();
    c.args(["backup", "--database", "crm-main", "--config"])
        .arg(&cfg)
        .env("PGDR_TEST_DB_PASSWORD", PG_PASSWORD);
    run(c).ok();
    let mut c = pgdr_cmd();
    c.args(["list", "--json", "--database", "crm-main", "--config"])
        .arg(&cfg)
        .env("PGDR_TEST_DB_PASSWORD", PG_PASSWORD);
    assert_eq!(run(c).ok().json().as_array().unwrap().len(), 2);

    // A typo in the file is reported with its key.
    std::fs::write(&cfg, "[repository]\nurll = \"/x\"\n").unwrap();
    let mut c = pgdr_cmd();
    c.args(["backup", "--config"]).arg(&cfg);
    let r = run(c);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown field `urll`"), "{}", r.stderr);
}

#[test]
fn config_check_names_each_problem() {
    let w = World::local();
    let dead = free_port();
    let cfg = w.dir.path().join("check.toml");
    let Repo::Local(root) = &w.repo else {
        unreachable!()
    };
    std::fs::write(
        &cfg,
        format!(
            "[repository]\nurl = \"{}\"\n[encryption]\nrecipients = [\"age1bogus\"]\n[[database]]\nname = \"good\"\nurl = \"{}\"\n[[database]]\nname = \"down\"\nurl = \"postgres://postgres@127.0.0.1:{dead}/x\"\n",
            root.display(),
            w.pg.url("app")
        ),
    )
    .unwrap();
    let mut c = pgdr_cmd();
    c.args(["config", "check", "--json", "--config"]).arg(&cfg);
    let r = run(c);
    assert_eq!(r.code, 1, "ran and found problems: {}", r.stderr);
    let checks = r.json();
    let by = |what: &str| {
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["what"] == what)
            .unwrap()
            .clone()
    };
    assert_eq!(by("recipients")["ok"], false);
    assert!(by("recipients")["detail"]
        .as_str()
        .unwrap()
        .contains("not a valid age public key"));
    assert_eq!(by("repository")["ok"], true);
    assert_eq!(by("database 'good'")["ok"], true);
    assert!(by("database 'good'")["detail"]
        .as_str()
        .unwrap()
        .contains("reachable, PostgreSQL"));
    assert_eq!(by("database 'down'")["ok"], false);
    assert!(by("database 'down'")["detail"]
        .as_str()
        .unwrap()
        .contains("connection refused"));
}

#[test]
fn keygen_writes_0600_and_never_overwrites() {
    let dir = tempdir();
    let (path, public) = keypair(dir.path());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(public.starts_with("age1") && public.len() == 62, "{public}");
    assert!(text.contains(&format!("# public key: {public}")));
    assert!(text.lines().any(|l| l.starts_with("AGE-SECRET-KEY-1")));
    // age-keygen agrees on the public key.
    let out = Command::new("age-keygen")
        .arg("-y")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), public);

    let mut c = pgdr_cmd();
    c.args(["keygen", "--out"]).arg(&path);
    let r = run(c);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("pgdr never overwrites an identity"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn wrong_identity_cannot_decrypt() {
    let w = World::local();
    let m = w.backup();
    let (other, other_pub) = keypair(w.dir.path());
    let mut c = pgdr_cmd();
    c.args([
        "cat",
        m["id"].as_str().unwrap(),
        "--out",
        "/dev/null",
        "--identity",
    ])
    .arg(&other);
    w.repo.apply(&mut c);
    let r = run(c);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains(&format!(
            "no identity matches the backup's recipients (identity public keys: {other_pub})"
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn a_backup_waiting_on_a_lock_stops_promptly_when_interrupted() {
    let w = World::local();
    let Repo::Local(root) = &w.repo else {
        unreachable!()
    };
    // A migration holding a lock the backup needs.
    let mut locker = Command::new(pg_bin().join("psql"))
        .args([
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-p",
            &w.pg.port.to_string(),
            "-d",
            "app",
        ])
        .args([
            "-c",
            "BEGIN; LOCK TABLE public.orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);",
        ])
        .env("PGPASSWORD", PG_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut c = w.pgdr(&["backup"]);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2000));
    let sent = std::time::Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let waited = sent.elapsed();
    let _ = locker.kill();
    let _ = locker.wait();
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(143), "{err}"); // SIGTERM: 128 + 15
    assert!(
        waited < std::time::Duration::from_secs(10),
        "took {waited:?} to stop"
    );
    assert!(err.contains("interrupted"), "{err}");
    assert!(
        files_under(root).is_empty(),
        "left behind: {:?}",
        files_under(root)
    );
}

#[test]
fn tls_only_server_is_backed_up_over_tls() {
    let w = World::local();
    w.pg.require_ssl();
    // Plain text is refused by the server: proof that what follows used TLS end to end
    // (pgdr's own connection and pg_dump's).
    let mut c = pgdr_cmd();
    c.args([
        "backup",
        "--source",
        &format!("{}?sslmode=disable", w.pg.url("app")),
        "--recipient",
        &w.recipient,
    ]);
    w.repo.apply(&mut c);
    let r = run(c);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("pg_hba.conf rejects connection") && r.stderr.contains("no encryption"),
        "{}",
        r.stderr
    );

    assert!(
        r.stderr
            .contains("hint: the server accepts only TLS connections"),
        "{}",
        r.stderr
    );

    // sslmode=prefer (the default) and require both encrypt, and accept the self-signed
    // certificate as libpq does.
    let m = w.backup();
    assert_eq!(m["database"], "app");
    let mut c = pgdr_cmd();
    c.args([
        "backup",
        "--quiet",
        "--source",
        &format!("{}?sslmode=require", w.pg.url("app")),
        "--recipient",
        &w.recipient,
    ]);
    w.repo.apply(&mut c);
    run(c).ok();
    assert_eq!(w.list().len(), 2);
    w.run(&["verify", "--quick"]).ok();
}

/// Random text compresses only by entropy coding: past its first two 8 MiB windows zstd's
/// search steps ahead faster, and on the repeating table after it searches fully again. The
/// object stays an ordinary zstd frame. Oracles of its own: the age and zstd programs decode it
/// to the manifest's sha256, pg_restore loads it, and each table's md5 over every row matches
/// the source's.
#[test]
fn hard_to_compress_data_round_trips_through_the_standard_tools() {
    let w = World::local();
    w.pg.psql(
        "app",
        "CREATE TABLE hard AS SELECT i AS id, md5(i::text || random()::text) || md5(random()::text)
                || md5(random()::text) AS filler FROM generate_series(1, 260000) i;
         CREATE TABLE zeasy AS SELECT i AS id, repeat('pgdr ', 20) AS filler
           FROM generate_series(1, 300000) i",
    );
    let mut c = w.pgdr(&["backup"]);
    c.env("PGDR_LOG", "info,pgdr=debug");
    let r = run(c).ok();
    let switches: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("zstd_search"))
        .collect();
    assert!(
        switches.len() == 2
            && switches[0].contains("steps ahead faster")
            && switches[1].contains("searches fully again"),
        "{}",
        r.stderr
    );
    let id = w.list().last().unwrap()["id"].as_str().unwrap().to_string();
    let m = w.run(&["show", &id, "--json"]).ok().json();
    let dump = object(&m, "dump");
    // Literals are still entropy-coded where the search stepped faster: the random part
    // (~27 MB of hex) alone would take over 13 MB at 2:1; uncoded it would take 27.
    let stored = dump["compressed_bytes"].as_u64().unwrap();
    assert!(stored < 17_000_000, "{dump}");

    let Repo::Local(root) = &w.repo else {
        unreachable!()
    };
    let object = root
        .join("app")
        .join(m["id"].as_str().unwrap())
        .join("dump.zst.age");
    let plain = w.dir.path().join("dump.plain");
    standard_tools_decode(&w.identity, &object, &plain);
    let bytes = std::fs::read(&plain).unwrap();
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&bytes)),
        dump["sha256_plain"].as_str().unwrap()
    );

    w.pg.psql("postgres", "CREATE DATABASE copy");
    let out = Command::new(pg_bin().join("pg_restore"))
        .args(["--no-owner", "--table=hard", "--table=zeasy", "-d"])
        .arg(w.pg.url("copy"))
        .arg(&plain)
        .output();
    check(out.unwrap(), "pg_restore");
    for t in ["hard", "zeasy"] {
        let q = format!("SELECT count(*) || ' ' || md5(string_agg(id || ':' || filler, ',' ORDER BY id)) FROM {t}");
        assert_eq!(w.pg.psql("copy", &q), w.pg.psql("app", &q), "{t}");
    }
}
