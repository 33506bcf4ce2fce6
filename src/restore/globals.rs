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
