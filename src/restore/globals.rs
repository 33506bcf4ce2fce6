//! The roles step of a restore, made safe for servers that already have roles.
//!
//! `pg_dumpall --globals-only` writes `CREATE ROLE x;` followed by `ALTER ROLE x WITH ...
//! PASSWORD ...;` for every role, including the ones the target already has (its superuser,
//! the roles a managed service provides). Replayed blindly, that rewrites their passwords and
//! attributes. Here the SQL is split into statements, each statement classified, and a plan
//! made against what the target has: missing roles, memberships and tablespaces are created;
//! existing roles are kept as they are unless `--roles=overwrite`. Pure functions, no I/O.

use std::collections::BTreeSet;

use crate::sql::quote_ident;

/// What to do with roles the target already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolesMode {
    /// Never run CREATE/ALTER ROLE, COMMENT ON ROLE for a role that exists (the default).
    #[default]
    SkipExisting,
    /// Replay attributes, passwords, settings and comments of existing roles too (except the
    /// role pgdr connects as, which is never altered).
    Overwrite,
}

pub use super::dumpall::{parse, Parsed as Statement, Stmt as StmtKind};

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
                    if *r == existing.current_user || mode == RolesMode::SkipExisting {
                        p.kept_role_names.push(r.clone());
                    }
                    let line = if *r == existing.current_user {
                        format!("role '{r}' is the role pgdr connects as: kept as is")
                    } else if mode == RolesMode::SkipExisting {
                        format!("role '{r}' exists: kept as is")
                    } else {
                        format!("role '{r}' exists: attributes overwritten from the backup")
                    };
                    note(&mut p, format!("role {r}"), line);
                    false
                } else {
                    p.created_roles.push(r.clone());
                    true
                }
            }
            StmtKind::RoleAttrs { .. }
            | StmtKind::RoleSetting { .. }
            | StmtKind::RoleComment { .. }
            | StmtKind::RoleLabel(_) => {
                let r = s.role().expect("a role statement");
                let overwrite = existing.roles.contains(r)
                    && mode == RolesMode::Overwrite
                    && r != existing.current_user;
                if overwrite && matches!(s.stmt, StmtKind::RoleAttrs { .. }) {
                    // pg_dumpall leaves defaults out (no CONNECTION LIMIT for -1) and lists
                    // settings one by one: reset those first so the backup's values win.
                    let q = quote_ident(r);
                    for sql in [
                        format!("ALTER ROLE {q} WITH CONNECTION LIMIT -1;"),
                        format!("ALTER ROLE {q} RESET ALL;"),
                    ] {
                        p.run.push(Statement {
                            sql,
                            stmt: StmtKind::RoleAttrs {
                                role: r.to_string(),
                                attrs: Default::default(),
                            },
                        });
                    }
                }
                !existing.roles.contains(r) || overwrite
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
        if keep {
            p.run.push(s.clone());
        }
    }
    p
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
        let p = plan(
            &parse(&sql).unwrap(),
            &Existing::default(),
            RolesMode::SkipExisting,
        );
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
        }
    }

    fn run_sql(p: &GlobalsPlan) -> Vec<String> {
        p.run.iter().map(|s| s.label()).collect()
    }

    #[test]
    fn skip_existing_keeps_existing_roles_and_adds_what_is_missing() {
        let p = plan(&parsed(), &existing(), RolesMode::SkipExisting);
        assert_eq!(p.created_roles, vec!["Weird \"name".to_string()]);
        assert_eq!(
            p.kept,
            vec![
                "role 'anon' exists: kept as is",
                "role 'authenticated' exists: kept as is",
                "role 'postgres' is the role pgdr connects as: kept as is",
            ]
        );
        assert_eq!(p.memberships, vec!["anon → Weird \"name".to_string()]);
        assert_eq!(p.kept_role_names, vec!["anon", "authenticated", "postgres"]);
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
        // No statement alters an existing role.
        assert!(!p.run.iter().any(|s| s.sql.contains("ROLE anon")
            || s.sql.contains("ROLE authenticated")
            || s.sql.contains("ROLE postgres")));
        // The meta-commands are not sent.
        assert!(!p.run.iter().any(|s| s.sql.starts_with('\\')));
    }

    #[test]
    fn overwrite_replays_existing_roles_except_the_connecting_one() {
        let mut ex = existing();
        ex.tablespaces.insert("fast".into());
        let p = plan(&parsed(), &ex, RolesMode::Overwrite);
        let labels = run_sql(&p);
        assert!(labels.contains(&"ALTER ROLE (role anon)".to_string()));
        // Defaults pg_dumpall leaves out are reset first, once per ALTER ROLE ... WITH.
        let anon: Vec<&str> = p
            .run
            .iter()
            .filter(|s| s.role() == Some("anon"))
            .map(|s| s.sql.as_str())
            .collect();
        assert_eq!(anon[0], "ALTER ROLE \"anon\" WITH CONNECTION LIMIT -1;");
        assert_eq!(anon[1], "ALTER ROLE \"anon\" RESET ALL;");
        assert!(anon[2].starts_with("ALTER ROLE anon WITH NOSUPERUSER"));
        assert_eq!(anon.len(), 5, "{anon:?}");
        assert!(!p
            .run
            .iter()
            .any(|s| s.sql.contains("\"postgres\" CONNECTION LIMIT")));
        assert!(labels.contains(&"COMMENT ON (role anon)".to_string()));
        assert!(labels.contains(&"ALTER ROLE (role authenticated)".to_string()));
        assert!(!labels.contains(&"ALTER ROLE (role postgres)".to_string()));
        assert!(!labels.iter().any(|l| l.starts_with("CREATE ROLE anon")));
        assert!(!labels.iter().any(|l| l.contains("tablespace fast")));
        assert!(p
            .kept
            .contains(&"role 'anon' exists: attributes overwritten from the backup".to_string()));
        assert!(p
            .kept
            .contains(&"tablespace 'fast' exists: kept as is".to_string()));
    }

    #[test]
    fn empty_target_runs_everything_but_meta_commands() {
        let ex = Existing {
            current_user: "admin".into(),
            ..Default::default()
        };
        let all = parsed();
        let p = plan(&all, &ex, RolesMode::SkipExisting);
        // Meta-commands and the client_encoding/standard_conforming_strings header are not sent.
        assert_eq!(p.run.len(), all.len() - 4);
        assert_eq!(p.created_roles.len(), 4);
        assert!(p.kept.is_empty());
    }
}
