//! The roles step of a restore, made safe for servers that already have roles.
//!
//! `pg_dumpall --globals-only` writes `CREATE ROLE x;` followed by `ALTER ROLE x WITH ...
//! PASSWORD ...;` for every role, including the ones the target already has (its superuser,
//! the roles a managed service provides). Replayed blindly, that rewrites their passwords and
//! attributes. Here the SQL is parsed strictly (see [`super::dumpall`]) and a plan made
//! against what the target has: missing roles, memberships and tablespaces are created from
//! the backup's statements; roles that exist are left to [`super::roles`], which plans them
//! per `--roles` mode. Pure functions, no I/O.

use std::collections::BTreeSet;

pub use super::dumpall::{parse, Parsed as Statement, Stmt as StmtKind};
pub use super::roles::RolesMode;

impl Statement {
    /// A short description for messages, never the whole text (it may hold a password hash).
    pub fn label(&self) -> String {
        match &self.stmt {
            StmtKind::CreateRole(r) => format!("CREATE ROLE {r}"),
            StmtKind::RoleAttrs { role, .. } => format!("ALTER ROLE (role {role})"),
            StmtKind::RoleSetting { role, name, .. } => {
                format!("ALTER ROLE SET {name} (role {role})")
            }
            StmtKind::RoleComment { role, .. } => format!("COMMENT ON (role {role})"),
            StmtKind::RoleLabel(r) => format!("SECURITY LABEL (role {r})"),
            StmtKind::Membership(g) => format!("GRANT {} TO {}", g.role, g.member),
            StmtKind::CreateTablespace(t) => format!("CREATE TABLESPACE {t}"),
            StmtKind::TablespaceProperty(t) => format!("{} (tablespace {t})", head(&self.sql, 2)),
            StmtKind::ParameterPrivilege(p) => format!("{} (parameter {p})", head(&self.sql, 1)),
            _ => head(&self.sql, 3),
        }
    }

    /// The role a role statement is about.
    fn role(&self) -> Option<&str> {
        match &self.stmt {
            StmtKind::RoleAttrs { role, .. }
            | StmtKind::RoleSetting { role, .. }
            | StmtKind::RoleComment { role, .. }
            | StmtKind::RoleLabel(role) => Some(role),
            _ => None,
        }
    }
}

/// The first `n` words of a statement, upper-cased keywords as written.
fn head(sql: &str, n: usize) -> String {
    sql.split_whitespace()
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(';')
        .to_string()
}

/// Settings that make the server load a shared library when the role logs in: pg_dumpall
/// writes them, but applied to a role pgdr (or anyone) then connects as, they run code from
/// a path the backup names. Never applied by pgdr; the plan says so.
pub const LIBRARY_SETTINGS: &[&str] = &[
    "session_preload_libraries",
    "local_preload_libraries",
    "dynamic_library_path",
];

/// What the target server has before the roles step.
#[derive(Debug, Clone, Default)]
pub struct Existing {
    pub roles: BTreeSet<String>,
    /// (role, member)
    pub memberships: BTreeSet<(String, String)>,
    pub tablespaces: BTreeSet<String>,
    /// The role pgdr connects as: never altered.
    pub current_user: String,
    /// It is not a superuser (a managed service's admin): what it may grant. `None`: every
    /// statement is replayed as written.
    pub limits: Option<super::roles::Limits>,
}

/// The statements to run, and what was decided, in operator words.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GlobalsPlan {
    /// In order; meta-commands left out.
    pub run: Vec<Statement>,
    pub created_roles: Vec<String>,
    /// "role 'anon' exists: kept as is", one line per role or tablespace.
    pub kept: Vec<String>,
    /// "authenticated → anon": memberships to add.
    pub memberships: Vec<String>,
    /// Existing roles whose attributes, settings and comments were not replayed.
    pub kept_role_names: Vec<String>,
    /// On a target without SUPERUSER: what the backup's statements said that pgdr could not
    /// replay as written (attributes not granted, grantors), one line each.
    pub limited: Vec<String>,
    /// The roles proof's difference texts of those attributes: named here, not findings.
    pub refused: Vec<String>,
}

pub fn plan(stmts: &[Statement], existing: &Existing, mode: RolesMode) -> GlobalsPlan {
    let mut p = GlobalsPlan::default();
    let mut noted: BTreeSet<String> = BTreeSet::new();
    let mut note = |p: &mut GlobalsPlan, key: String, line: String| {
        if noted.insert(key) {
            p.kept.push(line);
        }
    };
    for s in stmts {
        if let StmtKind::RoleSetting { role, name, .. } = &s.stmt {
            if LIBRARY_SETTINGS.contains(&name.as_str()) {
                note(
                    &mut p,
                    format!("setting {role} {name}"),
                    format!("role '{role}': setting {name} not applied (it loads libraries at login); apply it by hand if you trust it"),
                );
                continue;
            }
        }
        let keep = match &s.stmt {
            StmtKind::Meta | StmtKind::Header => false,
            StmtKind::Session | StmtKind::ParameterPrivilege(_) => true,
            StmtKind::CreateRole(r) => {
                if existing.roles.contains(r) {
                    if *r == existing.current_user || mode != RolesMode::Overwrite {
                        p.kept_role_names.push(r.clone());
                    }
                    false
                } else {
                    p.created_roles.push(r.clone());
                    true
                }
            }
            // Existing roles are planned in `roles` (per mode, against what the target has).
            StmtKind::RoleAttrs { .. }
            | StmtKind::RoleSetting { .. }
            | StmtKind::RoleComment { .. }
            | StmtKind::RoleLabel(_) => {
                !existing.roles.contains(s.role().expect("a role statement"))
            }
            StmtKind::Membership(g) => {
                if existing
                    .memberships
                    .contains(&(g.role.clone(), g.member.clone()))
                {
                    false
                } else {
                    p.memberships.push(format!("{} → {}", g.member, g.role));
                    true
                }
            }
            StmtKind::CreateTablespace(t) => {
                if existing.tablespaces.contains(t) {
                    note(
                        &mut p,
                        format!("tablespace {t}"),
                        format!("tablespace '{t}' exists: kept as is"),
                    );
                    false
                } else {
                    true
                }
            }
            StmtKind::TablespaceProperty(t) => !existing.tablespaces.contains(t),
        };
        if !keep {
            continue;
        }
        match existing.limits {
            Some(l) => {
                if let Some(s) = limited(s, &l, &existing.current_user, &mut p) {
                    p.run.push(s);
                }
            }
            None => p.run.push(s.clone()),
        }
    }
    p
}

/// A statement as a connecting role without SUPERUSER may run it: `ALTER ROLE ... WITH`
/// without the attributes it may not set, `GRANT` without another grantor; what is lost is
/// named in `p.limited` (and its proof text in `p.refused`).
fn limited(
    s: &Statement,
    l: &super::roles::Limits,
    me: &str,
    p: &mut GlobalsPlan,
) -> Option<Statement> {
    use super::roles::{grant_sql_without_grantor, limited_attrs_sql, lost_flag_text, FLAGS};
    match &s.stmt {
        StmtKind::RoleAttrs { role, attrs } => {
            let (sql, lost) = limited_attrs_sql(role, attrs, l);
            if !lost.is_empty() {
                let names: Vec<&str> = lost.iter().map(|i| FLAGS[*i]).collect();
                p.limited.push(format!(
                    "role '{role}': {} not granted ({me} is not a superuser and may not grant it); grant it by hand where the platform allows",
                    names.join(", ")
                ));
                p.refused
                    .extend(lost.iter().map(|i| lost_flag_text(role, *i)));
            }
            sql.map(|sql| Statement {
                sql,
                stmt: s.stmt.clone(),
            })
        }
        StmtKind::Membership(g) if g.grantor.as_deref().is_some_and(|x| x != me) => {
            p.limited.push(format!(
                "membership {} → {}: granted by {me}, not by {} as in the backup (only a superuser may name another grantor)",
                g.member,
                g.role,
                g.grantor.as_deref().unwrap_or_default()
            ));
            Some(Statement {
                sql: grant_sql_without_grantor(g),
                stmt: s.stmt.clone(),
            })
        }
        // Only a superuser (or a role holding the grant option on it) may grant a parameter
        // privilege: run as written it fails; named instead, as the plan's own item.
        StmtKind::ParameterPrivilege(_) => {
            let sql = s.sql.split_whitespace().collect::<Vec<_>>().join(" ");
            p.limited.push(format!(
                "skipped: {}: needs superuser ({me} is not one; run it by hand as a role that may grant it)",
                sql.trim_end_matches(';')
            ));
            None
        }
        _ => Some(s.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMPALL: &str = r#"--
-- PostgreSQL database cluster dump
--

\restrict LzeCcgxdlrZg2H5z1I6Cg

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

--
-- Roles
--

CREATE ROLE "Weird ""name";
ALTER ROLE "Weird ""name" WITH NOSUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:fe9I;lk';
CREATE ROLE anon;
ALTER ROLE anon WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
COMMENT ON ROLE anon IS 'anon; role
on two lines -- not a comment';
CREATE ROLE authenticated;
ALTER ROLE authenticated WITH NOSUPERUSER INHERIT NOLOGIN;
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;

--
-- User Configurations
--

ALTER ROLE anon SET statement_timeout TO '3s';

--
-- Role memberships
--

GRANT "Weird ""name" TO anon GRANTED BY postgres;
GRANT anon TO authenticated WITH INHERIT TRUE GRANTED BY postgres;

--
-- Tablespaces
--

CREATE TABLESPACE fast OWNER postgres LOCATION '/mnt/fast';
GRANT CREATE ON TABLESPACE fast TO anon;

\unrestrict LzeCcgxdlrZg2H5z1I6Cg

--
-- PostgreSQL database cluster dump complete
--
"#;

    fn parsed() -> Vec<Statement> {
        parse(DUMPALL).unwrap()
    }

    #[test]
    fn labels_never_carry_the_password() {
        let s = parsed();
        assert_eq!(s[5].label(), "ALTER ROLE (role Weird \"name)");
        assert!(s[5].sql.ends_with("PASSWORD 'SCRAM-SHA-256$4096:fe9I;lk';"));
        assert!(s[8].sql.ends_with("-- not a comment';"), "{}", s[8].sql);
        assert_eq!(s[0].sql, "\\restrict LzeCcgxdlrZg2H5z1I6Cg");
    }

    #[test]
    fn library_loading_settings_are_never_applied() {
        let sql = format!(
            "{DUMPALL}\nALTER ROLE anon SET session_preload_libraries TO '/tmp/evil.so';\n"
        );
        let p = plan(&parse(&sql).unwrap(), &Existing::default(), RolesMode::Keep);
        assert!(!p.run.iter().any(|s| s.sql.contains("preload")));
        assert!(p
            .kept
            .iter()
            .any(|k| k.contains("session_preload_libraries not applied")));
    }

    fn existing() -> Existing {
        Existing {
            roles: ["postgres", "anon", "authenticated"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            memberships: [("anon".to_string(), "authenticated".to_string())]
                .into_iter()
                .collect(),
            tablespaces: ["pg_default".to_string()].into_iter().collect(),
            current_user: "postgres".into(),
            limits: None,
        }
    }

    fn run_sql(p: &GlobalsPlan) -> Vec<String> {
        p.run.iter().map(|s| s.label()).collect()
    }

    #[test]
    fn existing_roles_are_never_replayed_here_and_missing_things_are_added() {
        for mode in [RolesMode::Keep, RolesMode::Merge, RolesMode::Overwrite] {
            let p = plan(&parsed(), &existing(), mode);
            assert_eq!(p.created_roles, vec!["Weird \"name".to_string()]);
            assert_eq!(p.memberships, vec!["anon → Weird \"name".to_string()]);
            assert_eq!(
                run_sql(&p),
                vec![
                    "SET default_transaction_read_only =",
                    "CREATE ROLE Weird \"name",
                    "ALTER ROLE (role Weird \"name)",
                    "GRANT Weird \"name TO anon",
                    "CREATE TABLESPACE fast",
                    "GRANT CREATE (tablespace fast)",
                ]
            );
            // No statement of the backup alters an existing role; no meta-command is sent.
            assert!(!p.run.iter().any(|s| s.sql.contains("ROLE anon")
                || s.sql.contains("ROLE authenticated")
                || s.sql.contains("ROLE postgres")));
            assert!(!p.run.iter().any(|s| s.sql.starts_with('\\')));
            let kept = if mode == RolesMode::Overwrite {
                vec!["postgres"]
            } else {
                vec!["anon", "authenticated", "postgres"]
            };
            assert_eq!(p.kept_role_names, kept);
        }
        let mut ex = existing();
        ex.tablespaces.insert("fast".into());
        let p = plan(&parsed(), &ex, RolesMode::Overwrite);
        assert!(!run_sql(&p).iter().any(|l| l.contains("tablespace fast")));
        assert_eq!(p.kept, vec!["tablespace 'fast' exists: kept as is"]);
    }

    /// A managed service's admin: CREATEDB, CREATEROLE, BYPASSRLS, no SUPERUSER.
    fn admin(version: i32) -> Existing {
        Existing {
            current_user: "admin".into(),
            limits: Some(crate::restore::roles::Limits {
                version,
                own: [false, true, true, true, true, false, true],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_non_superuser_replays_what_it_may_and_names_the_rest() {
        let sql = format!("{DUMPALL}\nCREATE ROLE svc;\nALTER ROLE svc WITH NOSUPERUSER LOGIN BYPASSRLS REPLICATION CONNECTION LIMIT 4 PASSWORD 'md5abc';\n");
        let p = plan(&parse(&sql).unwrap(), &admin(150000), RolesMode::Merge);
        let sqls: Vec<&str> = p.run.iter().map(|s| s.sql.as_str()).collect();
        // PostgreSQL 15 keeps SUPERUSER, REPLICATION and BYPASSRLS, even their NO forms, for
        // superusers: the statement keeps only the rest.
        assert!(
            sqls.contains(&r#"ALTER ROLE "svc" WITH LOGIN CONNECTION LIMIT 4 PASSWORD 'md5abc';"#),
            "{sqls:?}"
        );
        assert!(
            sqls.contains(&r#"ALTER ROLE "anon" WITH INHERIT NOCREATEROLE NOCREATEDB NOLOGIN;"#),
            "{sqls:?}"
        );
        assert!(sqls.contains(&"ALTER ROLE \"Weird \"\"name\" WITH INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:fe9I;lk';"), "{sqls:?}");
        assert!(
            sqls.contains(&r#"ALTER ROLE "postgres" WITH INHERIT CREATEROLE CREATEDB LOGIN;"#),
            "{sqls:?}"
        );
        // Grantors other than the connecting role are dropped, the options kept.
        assert!(
            sqls.contains(&r#"GRANT "anon" TO "authenticated" WITH INHERIT TRUE;"#),
            "{sqls:?}"
        );
        assert!(
            sqls.contains(&r#"GRANT "Weird ""name" TO "anon";"#),
            "{sqls:?}"
        );
        assert!(!sqls
            .iter()
            .any(|s| s.contains("SUPERUSER") || s.contains("GRANTED BY")));
        assert_eq!(
            p.refused,
            vec![
                "role postgres: SUPERUSER in the backup, NOSUPERUSER on the target",
                "role postgres: REPLICATION in the backup, NOREPLICATION on the target",
                "role postgres: BYPASSRLS in the backup, NOBYPASSRLS on the target",
                "role svc: REPLICATION in the backup, NOREPLICATION on the target",
                "role svc: BYPASSRLS in the backup, NOBYPASSRLS on the target",
            ]
        );
        assert!(
            p.limited.iter().any(|l| l.starts_with(
                "role 'svc': REPLICATION, BYPASSRLS not granted (admin is not a superuser"
            )),
            "{:?}",
            p.limited
        );
        assert!(p.limited.iter().any(|l| l == "membership authenticated → anon: granted by admin, not by postgres as in the backup (only a superuser may name another grantor)"), "{:?}", p.limited);
        // PostgreSQL 16: BYPASSRLS may be granted by a role that has it, REPLICATION not.
        let p = plan(&parse(&sql).unwrap(), &admin(160000), RolesMode::Merge);
        assert!(p.run.iter().any(|s| s.sql
            == r#"ALTER ROLE "svc" WITH LOGIN BYPASSRLS CONNECTION LIMIT 4 PASSWORD 'md5abc';"#));
        assert!(p.run.iter().any(|s| s.sql
            == r#"ALTER ROLE "anon" WITH INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOBYPASSRLS;"#));
    }

    #[test]
    fn a_superuser_replays_the_statements_as_written() {
        let ex = Existing {
            current_user: "postgres".into(),
            ..Default::default()
        };
        let all = parsed();
        let p = plan(&all, &ex, RolesMode::Merge);
        assert!(p.run.iter().all(|s| all.contains(s)));
        assert!(p.limited.is_empty() && p.refused.is_empty());
    }

    #[test]
    fn empty_target_runs_everything_but_meta_commands() {
        let ex = Existing {
            current_user: "admin".into(),
            ..Default::default()
        };
        let all = parsed();
        let p = plan(&all, &ex, RolesMode::Merge);
        // Meta-commands and the client_encoding/standard_conforming_strings header are not sent.
        assert_eq!(p.run.len(), all.len() - 4);
        assert_eq!(p.created_roles.len(), 4);
        assert!(p.kept.is_empty());
    }
}
