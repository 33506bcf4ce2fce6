//! Roles after a restore into a fresh server where the backup's roles already exist with
//! other settings: `--roles=merge` (the default) and `--roles=overwrite`, checked by SQL of
//! the test's own against `pg_authid`, `pg_db_role_setting` and `pg_auth_members`.

use std::process::Command;

use crate::common::*;

fn restore_to(w: &World, target: &Pg, db: &str, args: &[&str]) -> Command {
    let mut c = w.restore_cmd(target, db, &["--yes"]);
    c.args(args);
    c
}

/// The roles of the test (not the platform's own), in one comparable text each.
const ROLES: &str =
    "('postgres', 'app_user', 'expiring', 'anon', 'authenticated', 'service_role', 'app_owner')";

fn authid(pg: &Pg) -> String {
    pg.psql(
        "postgres",
        &format!(
            "SELECT string_agg(concat_ws(' ', rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb,
                    rolcanlogin, rolreplication, rolbypassrls, rolconnlimit,
                    COALESCE(rolvaliduntil AT TIME ZONE 'UTC', 'infinity'), COALESCE(rolpassword, '-')), E'\\n' ORDER BY rolname)
               FROM pg_authid WHERE rolname IN {ROLES}"
        ),
    )
}

fn role_settings(pg: &Pg) -> String {
    pg.psql(
        "postgres",
        &format!(
            "SELECT string_agg(r.rolname || ' ' || array_to_string(s.setconfig, '|'), E'\\n' ORDER BY r.rolname)
               FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
              WHERE s.setdatabase = 0 AND r.rolname IN {ROLES}"
        ),
    )
}

fn memberships(pg: &Pg) -> String {
    pg.psql(
        "postgres",
        &format!(
            "SELECT string_agg(r.rolname || ' > ' || m.rolname || ' ' || a.admin_option, E'\\n' ORDER BY 1)
               FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
              WHERE m.rolname IN {ROLES}"
        ),
    )
}

#[test]
fn existing_roles_get_the_backups_settings_and_memberships_and_overwrite_makes_them_equal() {
    let w = World::local();
    // The source: the connecting superuser has a password and a search_path with the schema
    // of an extension; an application role with a setting and a membership; an expiring role.
    w.pg.psql(
        "app",
        "CREATE SCHEMA extensions; CREATE EXTENSION pgcrypto SCHEMA extensions;",
    );
    w.pg.psql(
        "postgres",
        "ALTER ROLE postgres PASSWORD 'pgdr-test-pw';
         ALTER ROLE postgres SET search_path = \"$user\", public, extensions;
         CREATE ROLE app_user LOGIN PASSWORD 'app-pw';
         ALTER ROLE app_user SET statement_timeout = '7s';
         GRANT anon TO app_user;
         CREATE ROLE expiring LOGIN VALID UNTIL '2031-06-01 00:00:00+00';",
    );
    assert_eq!(
        PG_PASSWORD, "pgdr-test-pw",
        "same password, a new verifier (new salt)"
    );
    w.backup();

    // A fresh server where those roles exist with other settings.
    let target = Pg::start();
    target.psql(
        "postgres",
        "ALTER ROLE postgres SET statement_timeout = '1min';
         CREATE ROLE app_user LOGIN PASSWORD 'other-pw';
         ALTER ROLE app_user SET statement_timeout = '1s';
         GRANT pg_monitor TO app_user;
         CREATE ROLE expiring LOGIN VALID UNTIL '2040-01-01 00:00:00+00';",
    );

    // Default: merge.
    let plan = crate::common::run(restore_to(&w, &target, "app", &["--dry-run"])).ok();
    assert!(
        plan.stdout
            .contains("roles: role 'postgres' (pgdr connects as it) exists:")
            && plan
                .stdout
                .contains("setting search_path set in the backup, not on the target")
            && plan
                .stdout
                .contains("password (password differs from the backup's): kept (--roles=merge)"),
        "{}",
        plan.stdout
    );
    let r = crate::common::run(restore_to(&w, &target, "app", &[])).ok();
    assert!(
        r.stdout.contains("kept on the target, differs from the backup: role postgres: password differs from the backup's"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("roles: 4 difference(s) kept on the target as asked (listed below)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("kept on the target, differs from the backup: role app_user: member of pg_monitor on the target, not in the backup"),
        "{}",
        r.stdout
    );
    let settings = role_settings(&target);
    assert_eq!(
        settings,
        role_settings(&w.pg),
        "settings equal the source's"
    );
    assert!(settings.contains("postgres search_path=\"$user\", public, extensions"));
    let m = memberships(&target);
    assert!(m.contains("anon > app_user false"), "{m}");
    assert!(m.contains("pg_monitor > app_user false"), "kept: {m}");
    // A new session of the superuser has the source's search_path: an unqualified call to
    // the extension's function in its own schema works.
    assert_eq!(
        target.psql("app", "SELECT crypt('x', gen_salt('md5')) LIKE '$1$%'"),
        "t"
    );
    // Attributes and passwords are kept, and the record says so.
    assert_ne!(authid(&target), authid(&w.pg));
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    let dir = root.join("app").join("restores");
    let recs = files_under(&dir);
    assert_eq!(recs.len(), 1);
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(&recs[0])).unwrap()).unwrap();
    assert_eq!(rec["outcome"], "restored", "{rec}");
    assert!(
        rec["roles_kept"].as_array().unwrap().iter().any(|k| k
            == "kept on the target, differs from the backup: role postgres: password differs from the backup's"),
        "{rec}"
    );

    // verify on a scratch cluster compares the roles fully; its bootstrap superuser is
    // handled as an existing role (merge) and what it keeps is said.
    let tmp = w.dir.path().join("scratch-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let cfg = w.config_file(
        "verify.toml",
        &format!("[scratch]\ntemp_dir = \"{}\"\n", tmp.display()),
    );
    let v = crate::common::run(w.pgdr_config(&cfg, &["verify"]));
    assert_eq!(v.code, 0, "{}\n{}", v.stdout, v.stderr);
    assert!(
        v.stderr
            .contains("kept on the target, differs from the backup: role postgres: password"),
        "{}",
        v.stderr
    );
    // A drill proves the roles the same way (same scratch cluster, same roles proof).
    let d = crate::common::run(w.pgdr_config(&cfg, &["drill"]));
    assert_eq!(d.code, 0, "{}\n{}", d.stdout, d.stderr);
    assert!(
        d.stderr
            .contains("kept on the target, differs from the backup: role postgres: password"),
        "{}",
        d.stderr
    );

    // Overwrite: every role equal to the source's, by the test's own comparison.
    crate::common::run(restore_to(&w, &target, "app2", &["--roles=overwrite"])).ok();
    assert_eq!(authid(&target), authid(&w.pg));
    assert_eq!(role_settings(&target), role_settings(&w.pg));
    assert_eq!(memberships(&target), memberships(&w.pg));
}
