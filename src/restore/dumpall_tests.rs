use super::*;

/// Real `pg_dumpall --globals-only` output of PostgreSQL 15.18: roles with passwords, a VALID
/// UNTIL and a connection limit, settings (one written as `E''`), comments, memberships with
/// ADMIN and grantors, parameter privileges, a tablespace with options, ACLs (one granted by
/// a non-owner, hence `SET SESSION AUTHORIZATION`) and a comment.
const GLOBALS: &str = include_str!("../../tests/fixtures/globals/pg15-globals-only.sql");
/// The same cluster, `--roles-only --no-role-passwords` (what managed services allow).
const ROLES_ONLY: &str =
    include_str!("../../tests/fixtures/globals/pg15-roles-only-no-passwords.sql");

fn stmts(sql: &str) -> Vec<Stmt> {
    parse(sql)
        .unwrap_or_else(|e| panic!("{}", e.message))
        .into_iter()
        .map(|p| p.stmt)
        .collect()
}

#[test]
fn real_pg_dumpall_output_is_accepted_statement_by_statement() {
    let s = stmts(GLOBALS);
    assert_eq!(s.len(), 44, "{s:#?}");
    assert_eq!(s[0], Stmt::Meta);
    assert_eq!(s[1], Stmt::Session);
    assert_eq!(s[2], Stmt::Header);
    assert!(s.contains(&Stmt::CreateRole("Weird \"name".into())));
    let weird = s
        .iter()
        .find_map(|x| match x {
            Stmt::RoleAttrs { role, attrs } if role == "Weird \"name" => Some(attrs.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(weird.login, Some(true));
    assert_eq!(weird.superuser, Some(false));
    assert_eq!(weird.connection_limit, Some(5));
    assert_eq!(weird.valid_until.as_deref(), Some("2030-01-01 00:00:00+00"));
    assert!(weird
        .password
        .as_deref()
        .unwrap()
        .starts_with("SCRAM-SHA-256$4096:"));
    assert!(s.contains(&Stmt::RoleComment {
        role: "anon".into(),
        comment: "it's anon; -- not a comment".into()
    }));
    assert!(s.contains(&Stmt::RoleSetting {
        role: "anon".into(),
        database: None,
        name: "app.settings.jwt_secret".into(),
        values: vec!["se'cret\\x".into()],
    }));
    assert!(s.contains(&Stmt::RoleSetting {
        role: "postgres".into(),
        database: None,
        name: "search_path".into(),
        values: vec!["$user".into(), "public".into(), "extensions".into()],
    }));
    assert!(s.contains(&Stmt::Membership(Grant {
        role: "anon".into(),
        member: "authenticated".into(),
        admin: true,
        inherit: None,
        set: None,
        grantor: Some("postgres".into()),
    })));
    assert!(s.contains(&Stmt::Membership(Grant {
        role: "Upper".into(),
        member: "md5user".into(),
        admin: false,
        inherit: None,
        set: None,
        grantor: Some("postgres".into()),
    })));
    assert!(s.contains(&Stmt::ParameterPrivilege("app.settings.x".into())));
    assert!(s.contains(&Stmt::ParameterPrivilege("work_mem".into())));
    assert!(s.contains(&Stmt::CreateTablespace("fast".into())));
    let ts = s
        .iter()
        .filter(|x| **x == Stmt::TablespaceProperty("fast".into()))
        .count();
    assert_eq!(ts, 6, "options, revoke, 3 grants, comment");
    assert_eq!(s.iter().filter(|x| **x == Stmt::Session).count(), 3);
    assert_eq!(s.last(), Some(&Stmt::Meta));
}

#[test]
fn statement_text_is_kept_whole_for_the_server() {
    let p = parse(GLOBALS).unwrap();
    let c = p
        .iter()
        .find(|x| matches!(x.stmt, Stmt::RoleComment { .. }))
        .unwrap();
    assert_eq!(
        c.sql,
        "COMMENT ON ROLE anon IS 'it''s anon; -- not a comment';"
    );
    assert!(p[0].sql.starts_with("\\restrict "));
}

#[test]
fn roles_only_without_passwords_is_accepted_and_has_no_password() {
    let s = stmts(ROLES_ONLY);
    assert!(s.iter().any(|x| matches!(x, Stmt::RoleAttrs { .. })));
    assert!(!s.iter().any(|x| matches!(
        x,
        Stmt::RoleAttrs { attrs, .. } if attrs.password.is_some()
    )));
    assert!(!s.iter().any(|x| matches!(x, Stmt::CreateTablespace(_))));
}

#[test]
fn postgresql_16_membership_options_are_accepted() {
    let s = stmts(
        "GRANT anon TO authenticated WITH ADMIN OPTION, INHERIT FALSE, SET FALSE GRANTED BY postgres;\n\
         GRANT b TO c WITH INHERIT TRUE GRANTED BY postgres;\n\
         GRANT b TO d WITH ADMIN TRUE, INHERIT TRUE;\n\
         ALTER ROLE app IN DATABASE app SET work_mem TO '8MB';\n\
         SELECT pg_catalog.set_config('search_path', '', false);\n\
         SECURITY LABEL FOR selinux ON ROLE \"R\" IS 'x';\n",
    );
    assert_eq!(
        s[0],
        Stmt::Membership(Grant {
            role: "anon".into(),
            member: "authenticated".into(),
            admin: true,
            inherit: Some(false),
            set: Some(false),
            grantor: Some("postgres".into()),
        })
    );
    assert!(matches!(&s[1], Stmt::Membership(g) if g.inherit == Some(true) && !g.admin));
    assert!(matches!(&s[2], Stmt::Membership(g) if g.admin && g.grantor.is_none()));
    assert!(matches!(&s[3], Stmt::RoleSetting { database: Some(d), .. } if d == "app"));
    assert_eq!(s[4], Stmt::Session);
    assert_eq!(s[5], Stmt::RoleLabel("R".into()));
}

/// Statements pg_dumpall does not emit, each with the start of the statement the refusal
/// must name: one per family (functions, COPY, DO, extensions, ALTER SYSTEM, role changes
/// pg_dumpall never writes, grants beyond memberships, comments on non-roles, tablespaces,
/// session settings, utility commands, empty statements).
const REFUSED: &[(&str, &str)] = &[
    (
        "SELECT lo_export(1234, '/tmp/pwned'); -- set_config",
        "SELECT lo_export(1234,",
    ),
    (
        "SELECT pg_catalog.set_config('x', 'y', false);",
        "SELECT pg_catalog.set_config(",
    ),
    (
        "SELECT pg_catalog.set_config('search_path', '', false); DROP TABLE t;",
        "DROP TABLE t;",
    ),
    (
        "SELECT pg_catalog.set_config('search_path', '', true);",
        "SELECT",
    ),
    ("COPY t FROM PROGRAM 'id > /tmp/x';", "COPY t FROM PROGRAM"),
    ("DO $$BEGIN PERFORM 1; END$$;", "DO"),
    ("CREATE EXTENSION adminpack;", "CREATE EXTENSION adminpack;"),
    (
        "ALTER SYSTEM SET archive_command = 'x';",
        "ALTER SYSTEM SET archive_command",
    ),
    (
        "ALTER ROLE ALL SET work_mem TO '1MB';",
        "ALTER ROLE ALL SET",
    ),
    (
        "ALTER ROLE CURRENT_USER WITH NOSUPERUSER;",
        "ALTER ROLE CURRENT_USER WITH",
    ),
    ("ALTER ROLE anon PASSWORD 'x';", "ALTER ROLE anon PASSWORD"),
    ("ALTER ROLE anon RENAME TO anon2;", "ALTER ROLE anon RENAME"),
    (
        "ALTER ROLE anon SET search_path TO DEFAULT;",
        "ALTER ROLE anon SET",
    ),
    ("CREATE ROLE x SUPERUSER;", "CREATE ROLE x SUPERUSER;"),
    ("DROP ROLE anon;", "DROP ROLE anon;"),
    (
        "GRANT SELECT ON pg_authid TO anon;",
        "GRANT SELECT ON pg_authid",
    ),
    ("GRANT a, b TO c;", "GRANT a, b TO"),
    ("GRANT a TO b, c;", "GRANT a TO b,"),
    ("GRANT a TO PUBLIC;", "GRANT a TO PUBLIC;"),
    ("REVOKE a FROM b;", "REVOKE a FROM b;"),
    (
        "COMMENT ON ROLE anon IS 'a' || pg_read_file('/etc/passwd');",
        "COMMENT ON ROLE anon",
    ),
    ("COMMENT ON TABLE t IS 'x';", "COMMENT ON TABLE t"),
    (
        "CREATE TABLESPACE t OWNER a LOCATION '/x' WITH (seq_page_cost=1);",
        "CREATE TABLESPACE t OWNER",
    ),
    (
        "ALTER TABLESPACE fast OWNER TO anon;",
        "ALTER TABLESPACE fast OWNER",
    ),
    (
        "SET session_preload_libraries = '/tmp/x.so';",
        "SET session_preload_libraries =",
    ),
    ("SET ROLE anon;", "SET ROLE anon;"),
    ("RESET ALL;", "RESET ALL;"),
    ("CREATE ROLE x; -- trailing", "CREATE ROLE x;"),
    ("CALL p();", "CALL p();"),
    ("VACUUM;", "VACUUM;"),
    ("CREATE ROLE x;;", "statement"),
];

/// Each is appended to real output; each must refuse the whole object, naming the statement.
#[test]
fn anything_pg_dumpall_does_not_emit_is_refused_by_name() {
    let cases = REFUSED;
    for (evil, head) in cases {
        let sql = format!("{GLOBALS}\n{evil}\n");
        let e = match parse(&sql) {
            Err(e) => e,
            Ok(_) if *evil == "CREATE ROLE x; -- trailing" => continue,
            Ok(_) => panic!("accepted: {evil}"),
        };
        assert!(
            e.message
                .contains("the globals object holds a statement pg_dumpall does not emit"),
            "{evil}: {}",
            e.message
        );
        assert!(e.message.contains(head), "{evil}: {}", e.message);
        assert_eq!(e.message.lines().count(), 1);
        assert_eq!(e.kind, crate::error::Kind::Corrupt);
    }
}

/// Text the lexer cannot be sure the server reads the same way is refused before shapes.
#[test]
fn text_outside_the_narrow_lexer_is_refused() {
    let cases = [
        "ALTER ROLE anon WITH LOGIN /* x */ PASSWORD 'p';",
        "COMMENT ON ROLE anon IS 'a\\'; DROP TABLE t; --';",
        "COMMENT ON ROLE anon IS E'a\\'; DROP TABLE t; --';",
        "COMMENT ON ROLE anon IS U&'\\0041';",
        "COMMENT ON ROLE anon IS $x$a$x$;",
        "\\! touch /tmp/pwned",
        "\\copy t from program 'id'",
        "CREATE ROLE x",
        "ALTER ROLE anon WITH CONNECTION LIMIT -1;",
        "CREATE ROLE \"unterminated;",
        "CREATE ROLE ünïcode;",
    ];
    for evil in cases {
        let sql = format!("{GLOBALS}\n{evil}\n");
        let e = parse(&sql)
            .err()
            .unwrap_or_else(|| panic!("accepted: {evil}"));
        assert!(
            e.message.contains("pg_dumpall does not emit"),
            "{evil}: {}",
            e.message
        );
        assert!(!e.message.contains("DROP TABLE"), "{}", e.message);
    }
}

#[test]
fn a_refusal_never_shows_a_string_literal() {
    let e = parse("ALTER ROLE anon WITH LOGIN PASSWORD 'hunter2' ENCRYPTED;\n").unwrap_err();
    assert!(!e.message.contains("hunter2"), "{}", e.message);
    let e = parse("ALTER ROLE anon PASSWORD 'hunter2';\n").unwrap_err();
    assert!(!e.message.contains("hunter2"), "{}", e.message);
}
