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

/// What a statement of the globals SQL does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StmtKind {
    /// `SET ...`, `SELECT pg_catalog.set_config(...)`: session settings, always run.
    Session,
    /// A psql meta-command (`\restrict KEY`): not SQL, never sent to the server.
    Meta,
    CreateRole(String),
    /// `ALTER ROLE r ...` (attributes, password, settings), `COMMENT ON ROLE r`,
    /// `SECURITY LABEL ... ON ROLE r`.
    RoleProperty(String),
    /// `GRANT role TO member ...`: a membership.
    Membership {
        role: String,
        member: String,
    },
    CreateTablespace(String),
    /// `ALTER TABLESPACE t`, `COMMENT ON TABLESPACE t`, `GRANT/REVOKE ... ON TABLESPACE t`.
    TablespaceProperty(String),
    /// Anything else: run as it is.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement as written, with its `;`.
    pub sql: String,
    pub kind: StmtKind,
}

impl Statement {
    /// A short description for messages, never the whole text (it may hold a password hash).
    pub fn label(&self) -> String {
        match &self.kind {
            StmtKind::CreateRole(r) => format!("CREATE ROLE {r}"),
            StmtKind::RoleProperty(r) => format!("{} (role {r})", head(&self.sql, 2)),
            StmtKind::Membership { role, member } => format!("GRANT {role} TO {member}"),
            StmtKind::CreateTablespace(t) => format!("CREATE TABLESPACE {t}"),
            StmtKind::TablespaceProperty(t) => format!("{} (tablespace {t})", head(&self.sql, 2)),
            _ => head(&self.sql, 3),
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

/// Split SQL text into statements: `;` ends one unless inside a string literal, a quoted
/// identifier or a comment; `--` comments are dropped; a line starting with `\` is a psql
/// meta-command on its own.
pub fn split(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = sql.chars().peekable();
    let at_statement_start = |cur: &str| cur.trim().is_empty();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                cur.push(c);
                // Doubled quotes stay inside; standard_conforming_strings is on in pg_dumpall
                // output, so backslashes are ordinary characters.
                while let Some(d) = chars.next() {
                    cur.push(d);
                    if d == c {
                        if chars.peek() == Some(&c) {
                            cur.push(chars.next().expect("peeked"));
                        } else {
                            break;
                        }
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        cur.push('\n');
                        break;
                    }
                }
            }
            '\\' if at_statement_start(&cur) => {
                let mut line = String::from('\\');
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                    line.push(d);
                }
                out.push(line.trim_end().to_string());
                cur.clear();
            }
            ';' => {
                cur.push(';');
                out.push(cur.trim().to_string());
                cur.clear();
            }
            c => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// A token: a word (keyword or identifier) or one punctuation character.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// Unquoted word, as written.
    Word(String),
    /// Quoted identifier, unescaped.
    Quoted(String),
    Punct(char),
    /// A string literal (contents not needed).
    Literal,
}

impl Tok {
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
    /// As a name: unquoted words fold to lower case, as PostgreSQL does.
    fn name(&self) -> Option<String> {
        match self {
            Tok::Word(w) => Some(w.to_lowercase()),
            Tok::Quoted(q) => Some(q.clone()),
            _ => None,
        }
    }
}

fn tokens(sql: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '\'' {
            chars.next();
            let mut s = String::new();
            while let Some(d) = chars.next() {
                if d == c {
                    if chars.peek() == Some(&c) {
                        chars.next();
                        s.push(c);
                    } else {
                        break;
                    }
                } else {
                    s.push(d);
                }
            }
            out.push(if c == '"' {
                Tok::Quoted(s)
            } else {
                Tok::Literal
            });
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut w = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_alphanumeric() || d == '_' || d == '$' {
                    w.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(Tok::Word(w));
        } else {
            chars.next();
            out.push(Tok::Punct(c));
        }
    }
    out
}

/// Classify one statement as written by pg_dumpall.
pub fn classify(stmt: &str) -> StmtKind {
    if stmt.starts_with('\\') {
        return StmtKind::Meta;
    }
    let t = tokens(stmt);
    let kw = |i: usize, k: &str| t.get(i).is_some_and(|x| x.is_kw(k));
    let name = |i: usize| t.get(i).and_then(Tok::name);
    if kw(0, "SET") || kw(0, "RESET") || (kw(0, "SELECT") && stmt.contains("set_config")) {
        return StmtKind::Session;
    }
    if kw(0, "CREATE") && (kw(1, "ROLE") || kw(1, "USER")) {
        if let Some(n) = name(2) {
            return StmtKind::CreateRole(n);
        }
    }
    if kw(0, "ALTER") && (kw(1, "ROLE") || kw(1, "USER")) {
        // `ALTER ROLE ALL SET ...` changes every role: left as it is.
        if let (Some(n), false) = (name(2), kw(2, "ALL")) {
            return StmtKind::RoleProperty(n);
        }
    }
    if kw(0, "COMMENT") && kw(1, "ON") && (kw(2, "ROLE") || kw(2, "USER")) {
        if let Some(n) = name(3) {
            return StmtKind::RoleProperty(n);
        }
    }
    if kw(0, "SECURITY") && kw(1, "LABEL") {
        if let Some(i) = (2..t.len()).find(|&i| kw(i, "ON")) {
            if kw(i + 1, "ROLE") {
                if let Some(n) = name(i + 2) {
                    return StmtKind::RoleProperty(n);
                }
            }
            if kw(i + 1, "TABLESPACE") {
                if let Some(n) = name(i + 2) {
                    return StmtKind::TablespaceProperty(n);
                }
            }
        }
    }
    if kw(0, "CREATE") && kw(1, "TABLESPACE") {
        if let Some(n) = name(2) {
            return StmtKind::CreateTablespace(n);
        }
    }
    if kw(0, "ALTER") && kw(1, "TABLESPACE") {
        if let Some(n) = name(2) {
            return StmtKind::TablespaceProperty(n);
        }
    }
    if kw(0, "COMMENT") && kw(1, "ON") && kw(2, "TABLESPACE") {
        if let Some(n) = name(3) {
            return StmtKind::TablespaceProperty(n);
        }
    }
    if kw(0, "GRANT") || kw(0, "REVOKE") {
        // Privileges on a tablespace: `GRANT CREATE ON TABLESPACE t TO r`.
        if let Some(i) = (1..t.len()).find(|&i| kw(i, "ON")) {
            if kw(i + 1, "TABLESPACE") {
                if let Some(n) = name(i + 2) {
                    return StmtKind::TablespaceProperty(n);
                }
            }
            return StmtKind::Other;
        }
        // A membership: exactly `GRANT role TO member [WITH ...] [GRANTED BY ...]`.
        if kw(0, "GRANT") && kw(2, "TO") && !kw(3, "PUBLIC") {
            if let (Some(role), Some(member)) = (name(1), name(3)) {
                let next_is_list = matches!(t.get(4), Some(Tok::Punct(',')));
                if !next_is_list {
                    return StmtKind::Membership { role, member };
                }
            }
        }
    }
    StmtKind::Other
}

/// `ALTER ROLE r WITH ...` / `ALTER ROLE r LOGIN ...`: attributes, not `SET`/`RESET`/`RENAME`.
fn is_role_attributes(sql: &str) -> bool {
    let t = tokens(sql);
    t.first().is_some_and(|x| x.is_kw("ALTER"))
        && t.get(1).is_some_and(|x| x.is_kw("ROLE") || x.is_kw("USER"))
        && !t.get(3).is_some_and(|x| {
            x.is_kw("SET") || x.is_kw("RESET") || x.is_kw("RENAME") || x.is_kw("IN")
        })
}

pub fn parse(sql: &str) -> Vec<Statement> {
    split(sql)
        .into_iter()
        .map(|s| Statement {
            kind: classify(&s),
            sql: s,
        })
        .collect()
}

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
        let keep = match &s.kind {
            StmtKind::Meta => false,
            StmtKind::Session | StmtKind::Other => true,
            StmtKind::CreateRole(r) => {
                if existing.roles.contains(r) {
                    if *r == existing.current_user || mode == RolesMode::SkipExisting {
                        p.kept_role_names.push(r.clone());
                    }
                    if *r == existing.current_user {
                        note(
                            &mut p,
                            format!("role {r}"),
                            format!("role '{r}' is the role pgdr connects as: kept as is"),
                        );
                    } else if mode == RolesMode::SkipExisting {
                        note(
                            &mut p,
                            format!("role {r}"),
                            format!("role '{r}' exists: kept as is"),
                        );
                    } else {
                        note(
                            &mut p,
                            format!("role {r}"),
                            format!("role '{r}' exists: attributes overwritten from the backup"),
                        );
                    }
                    false
                } else {
                    p.created_roles.push(r.clone());
                    true
                }
            }
            StmtKind::RoleProperty(r) => {
                let overwrite = existing.roles.contains(r)
                    && mode == RolesMode::Overwrite
                    && *r != existing.current_user;
                if overwrite && is_role_attributes(&s.sql) {
                    // pg_dumpall leaves defaults out (no CONNECTION LIMIT for -1) and lists
                    // settings one by one: reset those first so the backup's values win.
                    let q = quote_ident(r);
                    for sql in [
                        format!("ALTER ROLE {q} CONNECTION LIMIT -1;"),
                        format!("ALTER ROLE {q} RESET ALL;"),
                    ] {
                        p.run.push(Statement {
                            sql,
                            kind: StmtKind::RoleProperty(r.clone()),
                        });
                    }
                }
                !existing.roles.contains(r) || overwrite
            }
            StmtKind::Membership { role, member } => {
                if existing
                    .memberships
                    .contains(&(role.clone(), member.clone()))
                {
                    false
                } else {
                    p.memberships.push(format!("{member} → {role}"));
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

    #[test]
    fn splits_and_classifies_pg_dumpall_output() {
        let s = parse(DUMPALL);
        let kinds: Vec<&StmtKind> = s.iter().map(|s| &s.kind).collect();
        use StmtKind::*;
        let w = "Weird \"name".to_string();
        assert_eq!(
            kinds,
            vec![
                &Meta,
                &Session,
                &Session,
                &Session,
                &CreateRole(w.clone()),
                &RoleProperty(w.clone()),
                &CreateRole("anon".into()),
                &RoleProperty("anon".into()),
                &RoleProperty("anon".into()),
                &CreateRole("authenticated".into()),
                &RoleProperty("authenticated".into()),
                &CreateRole("postgres".into()),
                &RoleProperty("postgres".into()),
                &RoleProperty("anon".into()),
                &Membership {
                    role: w.clone(),
                    member: "anon".into()
                },
                &Membership {
                    role: "anon".into(),
                    member: "authenticated".into()
                },
                &CreateTablespace("fast".into()),
                &TablespaceProperty("fast".into()),
                &Meta,
            ]
        );
        // Semicolons and `--` inside literals do not split or cut statements.
        assert!(s[5].sql.ends_with("PASSWORD 'SCRAM-SHA-256$4096:fe9I;lk';"));
        assert!(s[8].sql.ends_with("-- not a comment';"), "{}", s[8].sql);
        // Labels never carry the password.
        assert_eq!(s[5].label(), "ALTER ROLE (role Weird \"name)");
        assert_eq!(s[0].sql, "\\restrict LzeCcgxdlrZg2H5z1I6Cg");
    }

    #[test]
    fn classify_edge_cases() {
        assert_eq!(
            classify("CREATE USER Mixed;"),
            StmtKind::CreateRole("mixed".into())
        );
        assert_eq!(classify("ALTER ROLE ALL SET x TO 1;"), StmtKind::Other);
        assert_eq!(
            classify("GRANT a, b TO c;"),
            StmtKind::Other,
            "lists are run as they are"
        );
        assert_eq!(
            classify("GRANT a TO b, c;"),
            StmtKind::Other,
            "lists are run as they are"
        );
        assert_eq!(classify("GRANT SELECT ON t TO anon;"), StmtKind::Other);
        assert_eq!(
            classify("SECURITY LABEL FOR selinux ON ROLE \"R\" IS 'x';"),
            StmtKind::RoleProperty("R".into())
        );
        assert_eq!(
            classify("SELECT pg_catalog.set_config('search_path', '', false);"),
            StmtKind::Session
        );
        assert_eq!(
            classify("ALTER TABLESPACE fast SET (random_page_cost = 1);"),
            StmtKind::TablespaceProperty("fast".into())
        );
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
        let p = plan(&parse(DUMPALL), &existing(), RolesMode::SkipExisting);
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
                "SET client_encoding =",
                "SET standard_conforming_strings =",
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
        let p = plan(&parse(DUMPALL), &ex, RolesMode::Overwrite);
        let labels = run_sql(&p);
        assert!(labels.contains(&"ALTER ROLE (role anon)".to_string()));
        // Defaults pg_dumpall leaves out are reset first, once per ALTER ROLE ... WITH.
        let anon: Vec<&str> = p
            .run
            .iter()
            .filter(|s| s.kind == StmtKind::RoleProperty("anon".into()))
            .map(|s| s.sql.as_str())
            .collect();
        assert_eq!(anon[0], "ALTER ROLE \"anon\" CONNECTION LIMIT -1;");
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
        let all = parse(DUMPALL);
        let p = plan(&all, &ex, RolesMode::SkipExisting);
        assert_eq!(p.run.len(), all.len() - 2);
        assert_eq!(p.created_roles.len(), 4);
        assert!(p.kept.is_empty());
    }
}
