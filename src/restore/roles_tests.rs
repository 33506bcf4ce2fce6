use super::*;
use crate::restore::dumpall::parse;

const GLOBALS: &str = include_str!("../../tests/fixtures/globals/pg15-globals-only.sql");

fn backup() -> Desired {
    desired(&parse(GLOBALS).unwrap(), true)
}

/// A target role equal to the backup's `name`, as [`read`] would return it.
fn same(d: &Desired, name: &str) -> TargetRole {
    let w = &d.roles[name];
    let f = desired_flags(&w.attrs).map(|x| x.unwrap_or(false));
    TargetRole {
        flags: f,
        connection_limit: w.attrs.connection_limit.unwrap_or(-1),
        valid_until: w.attrs.valid_until.as_deref().and_then(parse_valid_until),
        password: w
            .attrs
            .password
            .clone()
            .map_or(Verifier::None, Verifier::Some),
        settings: w
            .settings
            .iter()
            .map(|(k, v)| {
                let stored = if LIST_SETTINGS.contains(&k.as_str()) {
                    v.iter()
                        .map(|x| {
                            if x.starts_with('$') {
                                format!("\"{x}\"")
                            } else {
                                x.clone()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                } else {
                    v[0].clone()
                };
                (k.clone(), stored)
            })
            .collect(),
        comment: w.comment.clone(),
    }
}

/// The target equal to the backup in every role and membership.
fn equal_target(d: &Desired) -> Actual {
    Actual {
        roles: d.roles.keys().map(|k| (k.clone(), same(d, k))).collect(),
        grants: d
            .grants
            .iter()
            .map(|(k, g)| {
                (
                    k.clone(),
                    TargetGrant {
                        admin: g.admin,
                        inherit: None,
                        set: None,
                    },
                )
            })
            .collect(),
        current_user: "postgres".into(),
        version: 150000,
    }
}

/// What a fresh server with other settings looks like: `postgres` without the backup's
/// search_path and with another password, `app` with another setting and without its
/// membership, plus a membership the platform granted.
fn fresh_target(d: &Desired) -> Actual {
    let mut a = equal_target(d);
    let pg = a.roles.get_mut("postgres").unwrap();
    pg.settings.clear();
    pg.settings
        .insert("statement_timeout".into(), "1min".into());
    pg.password = Verifier::Some("SCRAM-SHA-256$other".into());
    let app = a.roles.get_mut("app").unwrap();
    app.settings.insert("statement_timeout".into(), "9s".into());
    app.flags[3] = false; // NOCREATEDB
    a.grants.remove(&("authenticated".into(), "app".into()));
    a.grants.insert(
        ("pg_monitor".into(), "app".into()),
        TargetGrant {
            admin: false,
            inherit: None,
            set: None,
        },
    );
    a
}

#[test]
fn an_equal_target_has_no_differences() {
    let d = backup();
    assert_eq!(d.roles.len(), 8);
    assert!(d.roles["md5user"].attrs.valid_until.as_deref() == Some("infinity"));
    assert_eq!(differences(&d, &equal_target(&d)), vec![]);
    assert!(setting_equal(
        "search_path",
        &["$user".into(), "public".into(), "extensions".into()],
        "\"$user\", public, extensions"
    ));
    assert_eq!(
        parse_valid_until("2030-01-01 00:00:00+00"),
        Some(1893456000.0)
    );
    assert_eq!(
        parse_valid_until("2030-01-01 01:00:00+01"),
        Some(1893456000.0)
    );
    assert_eq!(lit("a\\b'c"), "E'a\\\\b''c'");
}

#[test]
fn differences_are_named_per_role_and_never_show_a_password() {
    let d = backup();
    let diffs = differences(&d, &fresh_target(&d));
    let texts: Vec<&str> = diffs.iter().map(|x| x.text.as_str()).collect();
    assert_eq!(
        texts,
        vec![
            "role app: CREATEDB in the backup, NOCREATEDB on the target",
            "role app: setting statement_timeout differs from the backup's",
            "role app: member of authenticated in the backup, not on the target",
            "role app: member of pg_monitor on the target, not in the backup",
            "role postgres: password differs from the backup's",
            "role postgres: setting search_path set in the backup, not on the target",
            "role postgres: setting statement_timeout not set in the backup, set on the target",
        ]
    );
}

#[test]
fn merge_brings_settings_and_memberships_keeps_attributes_and_passwords() {
    let d = backup();
    let a = fresh_target(&d);
    let p = plan(&d, &a, RolesMode::Merge);
    let now: Vec<&str> = p.now.iter().map(|c| c.sql.as_str()).collect();
    assert_eq!(
        now,
        vec!["ALTER ROLE \"app\" SET \"statement_timeout\" TO '3s'"]
    );
    // The connecting role's changes run last.
    let last: Vec<&str> = p.last.iter().map(|c| c.sql.as_str()).collect();
    assert_eq!(
        last,
        vec![
            "ALTER ROLE \"postgres\" SET \"search_path\" TO '$user', 'public', 'extensions'",
            "ALTER ROLE \"postgres\" RESET \"statement_timeout\"",
        ]
    );
    let pg = p
        .lines
        .iter()
        .find(|l| l.starts_with("role 'postgres'"))
        .unwrap();
    assert!(pg.contains("(pgdr connects as it)"), "{pg}");
    assert!(
        pg.contains("password (password differs from the backup's): kept (--roles=merge)"),
        "{pg}"
    );
    let app = p
        .lines
        .iter()
        .find(|l| l.starts_with("role 'app'"))
        .unwrap();
    assert!(
        app.contains("attributes (CREATEDB in the backup, NOCREATEDB on the target): kept"),
        "{app}"
    );
    assert!(app.contains("memberships beyond the backup's (member of pg_monitor on the target, not in the backup): kept"), "{app}");
    assert!(p
        .lines
        .contains(&"role 'anon' exists: equal to the backup's".to_string()));

    // After the roles step (settings and the membership applied), what is left is kept.
    let mut after = a.clone();
    let eq = equal_target(&d);
    after.roles.get_mut("postgres").unwrap().settings = eq.roles["postgres"].settings.clone();
    after.roles.get_mut("app").unwrap().settings = eq.roles["app"].settings.clone();
    after.grants.insert(
        ("authenticated".into(), "app".into()),
        eq.grants[&("authenticated".into(), "app".into())],
    );
    let v = judge(&d, &after, &p, RolesMode::Merge);
    assert_eq!(v.findings, Vec::<String>::new());
    assert_eq!(
        v.kept,
        vec![
            "kept on the target, differs from the backup: role app: CREATEDB in the backup, NOCREATEDB on the target",
            "kept on the target, differs from the backup: role app: member of pg_monitor on the target, not in the backup",
            "kept on the target, differs from the backup: role postgres: password differs from the backup's",
        ]
    );
    // A setting still different after merge is a finding, never "equal".
    let v = judge(&d, &a, &p, RolesMode::Merge);
    assert!(
        v.findings.iter().any(|f| f.contains("setting search_path")),
        "{v:?}"
    );
}

#[test]
fn keep_changes_nothing_and_lists_everything_as_kept() {
    let d = backup();
    let a = fresh_target(&d);
    let p = plan(&d, &a, RolesMode::Keep);
    assert!(p.now.is_empty() && p.last.is_empty());
    let v = judge(&d, &a, &p, RolesMode::Keep);
    assert!(v.findings.is_empty(), "{v:?}");
    assert_eq!(v.kept.len(), 7);
}

#[test]
fn overwrite_makes_every_role_the_backups_but_never_locks_pgdr_out() {
    let d = backup();
    let mut a = fresh_target(&d);
    // On this target pgdr's role is a superuser that the backup has without SUPERUSER.
    let mut d2 = d.clone();
    d2.roles.get_mut("postgres").unwrap().attrs.superuser = Some(false);
    a.roles.get_mut("app").unwrap().password = Verifier::None;
    let p = plan(&d2, &a, RolesMode::Overwrite);
    let now: Vec<&str> = p.now.iter().map(|c| c.sql.as_str()).collect();
    assert!(
        now.contains(&"REVOKE \"pg_monitor\" FROM \"app\""),
        "{now:?}"
    );
    assert!(now.iter().any(|s| s.starts_with("ALTER ROLE \"app\" WITH NOSUPERUSER INHERIT NOCREATEROLE CREATEDB LOGIN NOREPLICATION BYPASSRLS CONNECTION LIMIT -1")), "{now:?}");
    assert!(now
        .iter()
        .any(|s| s.starts_with("ALTER ROLE \"app\" WITH PASSWORD 'SCRAM-SHA-256$")));
    let last: Vec<&str> = p.last.iter().map(|c| c.sql.as_str()).collect();
    let attrs = last.iter().find(|s| s.contains(" WITH INHERIT")).unwrap();
    assert!(!attrs.contains("SUPERUSER"), "{attrs}");
    assert_eq!(
        p.refused,
        vec!["role postgres: NOSUPERUSER in the backup, SUPERUSER on the target"]
    );
    let pg = p
        .lines
        .iter()
        .find(|l| l.starts_with("role 'postgres'"))
        .unwrap();
    assert!(
        pg.contains("except what would stop pgdr from finishing: role postgres: NOSUPERUSER"),
        "{pg}"
    );
    // Labels never hold the verifier.
    assert!(p
        .now
        .iter()
        .chain(&p.last)
        .all(|c| !c.label.contains("SCRAM")));
    // Afterwards: the refused difference is kept, anything else left is a finding.
    let mut after = equal_target(&d);
    after.roles.get_mut("anon").unwrap().connection_limit = 3;
    let v = judge(&d2, &after, &p, RolesMode::Overwrite);
    assert_eq!(v.kept, vec!["kept on the target, differs from the backup: role postgres: NOSUPERUSER in the backup, SUPERUSER on the target"]);
    assert_eq!(
        v.findings,
        vec!["role anon: CONNECTION LIMIT -1 in the backup, 3 on the target"]
    );
}

#[test]
fn roles_only_globals_say_passwords_cannot_be_restored() {
    let d = desired(
        &parse(include_str!(
            "../../tests/fixtures/globals/pg15-roles-only-no-passwords.sql"
        ))
        .unwrap(),
        false,
    );
    let mut a = equal_target(&backup());
    a.roles.get_mut("app").unwrap().password = Verifier::Unreadable;
    let p = plan(&d, &a, RolesMode::Overwrite);
    assert!(
        p.lines.iter().all(|l| l.contains(
            "password: not in the backup (roles-only globals): kept, cannot be restored"
        )),
        "{:?}",
        p.lines
    );
    assert!(p
        .now
        .iter()
        .chain(&p.last)
        .all(|c| !c.sql.contains("PASSWORD")));
}

/// A managed target: pg_authid unreadable is one named limitation, never a difference; an
/// attribute the connecting role could not grant to a role the restore created is kept as
/// named at plan time, any other difference of that role stays a finding.
#[test]
fn a_managed_targets_limits_are_named_not_findings() {
    let d = backup();
    let mut after = equal_target(&d);
    for r in after.roles.values_mut() {
        r.password = Verifier::Unreadable;
    }
    let created = "app".to_string();
    let mut p = plan(&d, &after, RolesMode::Merge);
    p.existed.remove(&created);
    let v = judge(&d, &after, &p, RolesMode::Merge);
    assert!(v.findings.is_empty(), "{:?}", v.findings);
    assert_eq!(v.kept.len(), 1, "{:?}", v.kept);
    assert!(v.kept[0].starts_with("passwords not compared (pg_authid is not readable"));
    assert!(v.kept[0].contains("app"), "{:?}", v.kept);

    let i = FLAGS.iter().position(|f| *f == "BYPASSRLS").unwrap();
    after.roles.get_mut("app").unwrap().flags[i] = false;
    let v = judge(&d, &after, &p, RolesMode::Merge);
    assert_eq!(v.findings, vec![lost_flag_text("app", i)]);
    p.refused.push(lost_flag_text("app", i));
    after.roles.get_mut("app").unwrap().connection_limit = 9;
    let v = judge(&d, &after, &p, RolesMode::Merge);
    assert_eq!(
        v.findings,
        vec!["role app: CONNECTION LIMIT -1 in the backup, 9 on the target"]
    );
    assert!(v.kept.contains(&format!(
        "kept on the target, differs from the backup: {}",
        lost_flag_text("app", i)
    )));
}
