//! Secrets at rest and in logs: setting values and comments never reach a plaintext object of
//! the repository, `show`/`list` output, diff lines or logs at any verbosity.

use std::path::Path;

use crate::common::*;

/// A marker no test data contains by chance.
fn marker(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("pgdrMarker{tag}x{:x}x{}", nanos, std::process::id())
}

/// Secret-looking values in every place the fingerprint reads free text from.
struct Markers {
    database_setting: String,
    role_setting: String,
    role_in_database_setting: String,
    comment: String,
}

impl Markers {
    fn all(&self) -> [&str; 4] {
        [
            &self.database_setting,
            &self.role_setting,
            &self.role_in_database_setting,
            &self.comment,
        ]
    }
}

fn plant(pg: &Pg) -> Markers {
    let m = Markers {
        database_setting: marker("db"),
        role_setting: marker("role"),
        role_in_database_setting: marker("roleindb"),
        comment: marker("comment"),
    };
    pg.psql(
        "app",
        &format!(
            "ALTER DATABASE app SET app.settings.jwt_secret = '{}';
             CREATE ROLE pgdr_marker_role;
             ALTER ROLE pgdr_marker_role SET app.token = '{}';
             ALTER ROLE pgdr_marker_role IN DATABASE app SET app.other = '{}';
             COMMENT ON TABLE public.orders IS '{}';",
            m.database_setting, m.role_setting, m.role_in_database_setting, m.comment
        ),
    );
    m
}

/// Every file of the local repository that is not age-encrypted holds none of `secrets`;
/// returns the files checked.
#[track_caller]
fn assert_plaintext_clean(root: &Path, secrets: &[&str]) -> Vec<String> {
    let mut checked = Vec::new();
    for f in files_under(root) {
        let bytes = std::fs::read(root.join(&f)).unwrap();
        if bytes.starts_with(b"age-encryption.org") {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        for s in secrets {
            assert!(!text.contains(s), "{f} holds a secret in clear:\n{text}");
        }
        checked.push(f);
    }
    checked
}

fn repo_root(w: &World) -> &Path {
    match &w.repo {
        Repo::Local(p) => p,
        Repo::S3 { .. } => unreachable!("local only"),
    }
}

#[test]
fn setting_values_and_comments_stay_encrypted_and_still_verify() {
    let w = World::local();
    let m = plant(&w.pg);
    let manifest = w.backup();
    let id = manifest["id"].as_str().unwrap();

    let checked = assert_plaintext_clean(repo_root(&w), &m.all());
    assert!(
        checked.iter().any(|f| f.ends_with("manifest.json")),
        "{checked:?}"
    );
    // Names stay readable; the values are in their own encrypted object.
    let show = w.run(&["show", id, "--json"]).ok();
    let human = w.run(&["show", id]).ok();
    let list = w.run(&["list"]).ok();
    let list_json = w.run(&["list", "--json"]).ok();
    for out in [&show, &human, &list, &list_json] {
        for s in m.all() {
            assert!(!out.stdout.contains(s), "{}", out.stdout);
        }
    }
    let sections = &show.json()["fingerprint"]["schema"]["sections"];
    assert_eq!(
        sections["database"]["current"]["settings"]["app.settings.jwt_secret"],
        "(encrypted)"
    );
    assert_eq!(
        sections["roles"]["pgdr_marker_role"]["config"]["app.token"],
        "(encrypted)"
    );
    assert_eq!(
        sections["tables"]["public.orders"]["comment"],
        "(encrypted)"
    );
    let objects = show.json()["objects"].clone();
    assert!(
        objects
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "sensitive" && o["file"] == "sensitive.json.zst.age"),
        "{objects}"
    );
    let secret = std::fs::read_to_string(w.cat(id, "sensitive")).unwrap();
    for s in m.all() {
        assert!(
            secret.contains(s),
            "{s} not in the sensitive object: {secret}"
        );
    }

    // Full verify compares the decrypted values (the sealed ones would all differ) and
    // passes; quick verify checks the object too. Their records hold no value either.
    let v = w.run(&["verify"]);
    assert_eq!(v.code, 0, "{}\n{}", v.stdout, v.stderr);
    w.run(&["verify", "--quick"]).ok();
    assert_plaintext_clean(repo_root(&w), &m.all());
}

#[test]
fn restore_replays_secret_values_and_names_a_difference_without_them() {
    let w = World::local();
    let m = plant(&w.pg);
    w.backup();
    // After the backup the role (cluster-wide, kept by the restore) gets another value.
    let changed = marker("changed");
    w.pg.psql(
        "postgres",
        &format!("ALTER ROLE pgdr_marker_role SET app.token = '{changed}'"),
    );
    // keep: the role's changed setting stays and must be named, without either value.
    let r = run(w.restore_cmd(&w.pg, "app_copy", &["--roles=keep", "--yes"])).ok();
    let out = format!("{}\n{}", r.stdout, r.stderr);
    assert!(
        out.contains("pgdr_marker_role: setting app.token differs"),
        "{out}"
    );
    for s in m.all().iter().chain([&changed.as_str()]) {
        assert!(!out.contains(s), "{s} printed:\n{out}");
    }
    // The values came out of the encrypted object onto the new database.
    assert_eq!(
        w.pg.psql("app_copy", "SHOW app.settings.jwt_secret"),
        m.database_setting
    );
    assert_eq!(
        w.pg.psql(
            "app_copy",
            "SELECT obj_description('public.orders'::regclass, 'pg_class')"
        ),
        m.comment
    );
    assert_plaintext_clean(repo_root(&w), &[&m.database_setting, &changed]);
}

#[test]
fn most_verbose_logs_of_backup_and_restore_hold_no_secret() {
    let w = World::local();
    let m = plant(&w.pg);
    let password = marker("pw");
    w.pg.psql(
        "postgres",
        &format!("CREATE ROLE pgdr_pw_user LOGIN SUPERUSER PASSWORD '{password}'"),
    );
    let url = |db: &str| {
        format!(
            "postgres://pgdr_pw_user:{password}@127.0.0.1:{}/{db}",
            w.pg.port
        )
    };
    let secrets = [m.database_setting.as_str(), password.as_str()];
    for format in ["human", "json"] {
        let mut b = pgdr_cmd();
        b.env_remove("PGDR_LOG")
            .args(["backup", "-vvv", "--log-format", format, "--source"])
            .arg(url("app"));
        w.repo.apply(&mut b);
        b.arg("--recipient").arg(&w.recipient);
        let backup = run(b).ok();

        let target = format!("app_copy_{format}");
        let mut c = pgdr_cmd();
        c.env_remove("PGDR_LOG")
            .args([
                "restore",
                "-vvv",
                "--log-format",
                format,
                "--yes",
                "--target",
            ])
            .arg(url(&target));
        w.repo.apply(&mut c);
        c.arg("--identity").arg(&w.identity);
        let restore = run(c).ok();
        for r in [&backup, &restore] {
            let out = format!("{}\n{}", r.stdout, r.stderr);
            for s in secrets {
                assert!(!out.contains(s), "{s} in the {format} log:\n{out}");
            }
        }
        // The most verbose level was in effect: pgdr's own debug lines are there.
        assert!(
            restore.stderr.contains("recomputing row digests"),
            "{}",
            restore.stderr
        );
        // And the setting itself was replayed.
        assert_eq!(
            w.pg.psql(&target, "SHOW app.settings.jwt_secret"),
            m.database_setting
        );
    }
}
