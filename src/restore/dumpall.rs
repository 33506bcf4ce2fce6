//! The statements `pg_dumpall --globals-only` (or `--roles-only`) writes, parsed strictly.
//!
//! The globals object is executed as superuser on the scratch cluster and on a restore target,
//! so it is never trusted as SQL: each statement must be exactly one of the shapes pg_dumpall
//! emits (roles, their settings, comments and memberships, tablespaces, parameter privileges,
//! the session header), token by token; anything else refuses the whole object by name before
//! a single statement runs. The lexer is deliberately narrower than PostgreSQL's (no dollar
//! quoting, no block comments, no backslashes outside `E''` strings, ASCII words only) so that
//! what is accepted here is lexed the same way by the server, whatever its settings.
//!
//! Accepted although powerful: a role with SUPERUSER, membership in predefined roles such as
//! `pg_execute_server_program`, `GRANT ALTER SYSTEM ON PARAMETER`. pg_dumpall emits them for a
//! cluster that has them, and restoring them is what the backup is for; they grant rights to a
//! role but run nothing during the restore. Whoever can write a backup the identity opens can
//! choose them (the manifest-signing issue closes that).

use crate::error::{PgdrError, Result};

/// One lexical token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// Unquoted ASCII word, as written (`[A-Za-z_][A-Za-z0-9_]*`).
    Word(String),
    /// `"quoted identifier"`, unescaped.
    Quoted(String),
    /// `'string'` or `E'string'`, unescaped.
    Str(String),
    /// Unsigned number (`5`, `1.1`).
    Num(String),
    /// One of `; , ( ) = .`
    Punct(char),
}

/// A statement's tokens and its text (comments between its tokens included), `;` last.
struct RawStmt {
    text: String,
    toks: Vec<Tok>,
}

/// A role's attributes from `ALTER ROLE r WITH ...`; `None` where the statement says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleAttrs {
    pub superuser: Option<bool>,
    pub inherit: Option<bool>,
    pub createrole: Option<bool>,
    pub createdb: Option<bool>,
    pub login: Option<bool>,
    pub replication: Option<bool>,
    pub bypassrls: Option<bool>,
    pub connection_limit: Option<i32>,
    /// The verifier as stored (`SCRAM-SHA-256$...` or `md5...`): a secret, never shown.
    pub password: Option<String>,
    pub valid_until: Option<String>,
}

/// `GRANT role TO member [WITH ...] [GRANTED BY grantor]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub role: String,
    pub member: String,
    pub admin: bool,
    /// PostgreSQL 16+: `INHERIT TRUE|FALSE`, `SET TRUE|FALSE`; `None` where not written.
    pub inherit: Option<bool>,
    pub set: Option<bool>,
    pub grantor: Option<String>,
}

/// What a statement of pg_dumpall's output does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    /// A psql meta-command (`\restrict KEY`, `\unrestrict KEY`, `\connect db`): never sent.
    Meta,
    /// `SET client_encoding/standard_conforming_strings/...`: header lines that only say how
    /// the text is written; pgdr's session needs none of them, so they are not sent.
    Header,
    /// A session statement that is sent: `SET default_transaction_read_only = off`,
    /// `SELECT pg_catalog.set_config('search_path', '', false)`, `SET/RESET SESSION
    /// AUTHORIZATION` (tablespace grants made by a grantor other than the owner).
    Session,
    CreateRole(String),
    RoleAttrs {
        role: String,
        attrs: RoleAttrs,
    },
    /// `ALTER ROLE r [IN DATABASE d] SET name TO 'v'[, 'v'...]`.
    RoleSetting {
        role: String,
        database: Option<String>,
        name: String,
        values: Vec<String>,
    },
    RoleComment {
        role: String,
        comment: String,
    },
    /// `SECURITY LABEL FOR p ON ROLE r IS '...'`.
    RoleLabel(String),
    Membership(Grant),
    CreateTablespace(String),
    /// `ALTER TABLESPACE t SET (...)`, `GRANT/REVOKE ... ON TABLESPACE t`, its comment and
    /// security label.
    TablespaceProperty(String),
    /// `GRANT/REVOKE SET, ALTER SYSTEM ON PARAMETER p` (PostgreSQL 15+).
    ParameterPrivilege(String),
}

/// One accepted statement: its text as written (sent to the server) and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub sql: String,
    pub stmt: Stmt,
}

/// Parse a whole globals object; the first statement that is not a pg_dumpall shape refuses
/// the object (nothing of it may run).
pub fn parse(sql: &str) -> Result<Vec<Parsed>> {
    let raw = lex(sql)?;
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        if r.toks.is_empty() {
            out.push(Parsed {
                sql: r.text,
                stmt: Stmt::Meta,
            });
            continue;
        }
        match shape(&r.toks) {
            Some(stmt) => out.push(Parsed { sql: r.text, stmt }),
            None => return Err(refused(&r.text, i + 1, None)),
        }
    }
    Ok(out)
}

/// The one-line refusal: the statement's first words (never a string literal's contents),
/// and for text the lexer refuses, what it was.
fn refused(text: &str, n: usize, why: Option<&str>) -> PgdrError {
    let mut head: Vec<&str> = Vec::new();
    for w in text.split_whitespace().take(4) {
        match w.find(['\'', '$']) {
            Some(0) => break,
            Some(p) => {
                head.push(&w[..p]);
                break;
            }
            None => head.push(w),
        }
    }
    let mut head = head.join(" ");
    if head.chars().count() > 60 {
        head = head.chars().take(60).collect::<String>() + "...";
    }
    let why = why.map(|w| format!(", {w}")).unwrap_or_default();
    PgdrError::corrupt(format!(
        "the globals object holds a statement pg_dumpall does not emit (statement {n}: \"{head} ...\"{why}); refused, none of its statements ran"
    ))
    .hint("a backup's globals come from pg_dumpall; this one was altered after the backup: do not restore it, use another backup and find out who can write the repository")
}

/// Split into statements and tokens. A meta-command is a line starting with `\` where a
/// statement could start; only `\restrict`, `\unrestrict` and `\connect` are known.
fn lex(sql: &str) -> Result<Vec<RawStmt>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut toks: Vec<Tok> = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    // Refused: the statement being read (from its first token, or `at`) named.
    let fail = |out: &Vec<RawStmt>, start: Option<usize>, at: usize, why: &str| {
        let from = start.unwrap_or(at);
        let line = sql[..at].matches('\n').count() + 1;
        refused(
            &sql[from..],
            out.len() + 1,
            Some(&format!("{why} on line {line}")),
        )
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'\\' if toks.is_empty() => {
                let end = sql[i..].find('\n').map_or(b.len(), |n| i + n);
                let text = sql[i..end].trim_end().to_string();
                let cmd = text[1..].split_whitespace().next().unwrap_or("");
                if !matches!(cmd, "restrict" | "unrestrict" | "connect") {
                    return Err(fail(&out, None, i, "an unknown psql meta-command"));
                }
                out.push(RawStmt {
                    text,
                    toks: Vec::new(),
                });
                i = end;
            }
            b';' => {
                let s = start.take().unwrap_or(i);
                toks.push(Tok::Punct(';'));
                out.push(RawStmt {
                    text: sql[s..=i].to_string(),
                    toks: std::mem::take(&mut toks),
                });
                i += 1;
            }
            _ => {
                start.get_or_insert(i);
                let (tok, next) = token(sql, i).map_err(|w| fail(&out, start, i, w))?;
                toks.push(tok);
                i = next;
            }
        }
    }
    if !toks.is_empty() {
        return Err(fail(&out, start, b.len(), "no closing ';'"));
    }
    Ok(out)
}

/// The token at `i` (not whitespace, comment or `;`) and where the next one starts.
fn token(sql: &str, i: usize) -> std::result::Result<(Tok, usize), &'static str> {
    let b = sql.as_bytes();
    let c = b[i];
    match c {
        b'\'' => {
            let (s, n) = quoted(sql, i, b'\'', false)?;
            if s.contains('\\') {
                // pg_dumpall writes every string with a backslash as E'...'.
                return Err("a backslash in a plain string");
            }
            Ok((Tok::Str(s), n))
        }
        b'E' | b'e' if b.get(i + 1) == Some(&b'\'') => {
            let (s, n) = quoted(sql, i + 1, b'\'', true)?;
            Ok((Tok::Str(s), n))
        }
        b'"' => {
            let (s, n) = quoted(sql, i, b'"', false)?;
            if s.is_empty() {
                return Err("an empty quoted identifier");
            }
            Ok((Tok::Quoted(s), n))
        }
        b'A'..=b'Z' | b'a'..=b'z' | b'_' => {
            let n = i + b[i..]
                .iter()
                .take_while(|d| d.is_ascii_alphanumeric() || **d == b'_')
                .count();
            if matches!(b.get(n), Some(b'$' | b'\'' | b'"' | b'&'))
                || b.get(n).is_some_and(|d| *d >= 0x80)
            {
                return Err("a word joined to a quote, '$', '&' or a non-ASCII character");
            }
            Ok((Tok::Word(sql[i..n].to_string()), n))
        }
        b'0'..=b'9' => {
            let n = i + b[i..]
                .iter()
                .take_while(|d| d.is_ascii_digit() || **d == b'.')
                .count();
            if sql[i..n].matches('.').count() > 1
                || b.get(n)
                    .is_some_and(|d| d.is_ascii_alphabetic() || *d == b'_')
            {
                return Err("a number joined to a word");
            }
            Ok((Tok::Num(sql[i..n].to_string()), n))
        }
        b',' | b'(' | b')' | b'=' | b'.' => Ok((Tok::Punct(c as char), i + 1)),
        b'$' => Err("dollar quoting or a '$' outside a string"),
        b'/' if b.get(i + 1) == Some(&b'*') => Err("a block comment"),
        _ => Err("a character outside pg_dumpall's statements"),
    }
}

/// A `'...'` or `"..."` starting at `i` (the quote): doubled quotes stay inside; in an
/// `E'...'` string only `\\` is accepted (the one escape pg_dumpall writes).
fn quoted(
    sql: &str,
    i: usize,
    q: u8,
    escapes: bool,
) -> std::result::Result<(String, usize), &'static str> {
    let b = sql.as_bytes();
    let mut s = Vec::new();
    let mut j = i + 1;
    loop {
        match b.get(j) {
            None => return Err("an unterminated quote"),
            Some(&d) if d == q => {
                if b.get(j + 1) == Some(&q) {
                    s.push(q);
                    j += 2;
                } else {
                    j += 1;
                    break;
                }
            }
            Some(b'\\') if escapes => {
                if b.get(j + 1) != Some(&b'\\') {
                    return Err("an escape other than \\\\ in an E'' string");
                }
                s.push(b'\\');
                j += 2;
            }
            Some(&d) => {
                s.push(d);
                j += 1;
            }
        }
    }
    let s = String::from_utf8(s).map_err(|_| "invalid UTF-8 in a quote")?;
    Ok((s, j))
}

/// Reserved words that mean something else where a name is expected.
const ROLE_SPEC_WORDS: &[&str] = &[
    "all",
    "public",
    "none",
    "current_user",
    "current_role",
    "session_user",
    "user",
    "default",
];

/// A cursor over one statement's tokens; every `take_*` consumes on success only.
struct Cur<'a> {
    t: &'a [Tok],
    i: usize,
}

impl<'a> Cur<'a> {
    fn kw(&mut self, k: &str) -> bool {
        let ok = matches!(self.t.get(self.i), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k));
        self.i += ok as usize;
        ok
    }
    fn kws(&mut self, ks: &[&str]) -> bool {
        let save = self.i;
        let ok = ks.iter().all(|k| self.kw(k));
        if !ok {
            self.i = save;
        }
        ok
    }
    fn punct(&mut self, p: char) -> bool {
        let ok = self.t.get(self.i) == Some(&Tok::Punct(p));
        self.i += ok as usize;
        ok
    }
    /// A role, tablespace or setting name: unquoted words fold to lower case. An unquoted
    /// role specification keyword (`CURRENT_USER`, `ALL`, `PUBLIC`, ...) is not a name:
    /// pg_dumpall quotes a role so called, and unquoted it means another role or every role.
    fn name(&mut self) -> Option<String> {
        let n = match self.t.get(self.i)? {
            Tok::Word(w) if ROLE_SPEC_WORDS.iter().any(|k| w.eq_ignore_ascii_case(k)) => {
                return None
            }
            Tok::Word(w) => w.to_ascii_lowercase(),
            Tok::Quoted(q) => q.clone(),
            _ => return None,
        };
        self.i += 1;
        Some(n)
    }
    fn string(&mut self) -> Option<String> {
        let Some(Tok::Str(s)) = self.t.get(self.i) else {
            return None;
        };
        self.i += 1;
        Some(s.clone())
    }
    fn num(&mut self) -> Option<String> {
        let Some(Tok::Num(s)) = self.t.get(self.i) else {
            return None;
        };
        self.i += 1;
        Some(s.clone())
    }
    fn bool_word(&mut self) -> Option<bool> {
        if self.kw("TRUE") {
            Some(true)
        } else if self.kw("FALSE") {
            Some(false)
        } else {
            None
        }
    }
    /// The statement ends here: only its `;` is left.
    fn end(&mut self) -> bool {
        self.punct(';') && self.i == self.t.len()
    }
}

/// The statement's shape, or `None` when pg_dumpall never writes it.
fn shape(t: &[Tok]) -> Option<Stmt> {
    let c = &mut Cur { t, i: 0 };
    let s = if c.kw("SET") {
        session_set(c)?
    } else if c.kw("RESET") {
        c.kws(&["SESSION", "AUTHORIZATION"])
            .then_some(Stmt::Session)?
    } else if c.kw("SELECT") {
        set_config(c)?
    } else if c.kws(&["CREATE", "ROLE"]) {
        Stmt::CreateRole(c.name()?)
    } else if c.kws(&["ALTER", "ROLE"]) {
        alter_role(c)?
    } else if c.kws(&["COMMENT", "ON"]) {
        comment(c)?
    } else if c.kws(&["SECURITY", "LABEL", "FOR"]) {
        security_label(c)?
    } else if c.kws(&["CREATE", "TABLESPACE"]) {
        let name = c.name()?;
        (c.kw("OWNER") && c.name().is_some() && c.kw("LOCATION") && c.string().is_some())
            .then_some(())?;
        Stmt::CreateTablespace(name)
    } else if c.kws(&["ALTER", "TABLESPACE"]) {
        let name = c.name()?;
        tablespace_options(c)?;
        Stmt::TablespaceProperty(name)
    } else if c.kw("GRANT") {
        grant(c)?
    } else if c.kw("REVOKE") {
        revoke(c)?
    } else {
        return None;
    };
    c.end().then_some(s)
}

/// After `SET`: the header lines, and `SET SESSION AUTHORIZATION r`.
fn session_set(c: &mut Cur) -> Option<Stmt> {
    if c.kws(&["SESSION", "AUTHORIZATION"]) {
        c.name()?;
        return Some(Stmt::Session);
    }
    let name = c.name()?;
    if !c.punct('=') {
        return None;
    }
    match name.as_str() {
        "default_transaction_read_only" => c.kw("off").then_some(Stmt::Session),
        "client_encoding" => c.string().map(|_| Stmt::Header),
        "standard_conforming_strings" => (c.kw("on") || c.kw("off")).then_some(Stmt::Header),
        "escape_string_warning" => c.kw("off").then_some(Stmt::Header),
        _ => None,
    }
}

/// After `SELECT`: exactly `pg_catalog.set_config('search_path', '...', false)`.
fn set_config(c: &mut Cur) -> Option<Stmt> {
    (c.kw("pg_catalog") && c.punct('.') && c.kw("set_config") && c.punct('(')).then_some(())?;
    let name = c.string()?;
    (name == "search_path" && c.punct(',') && c.string().is_some() && c.punct(',')).then_some(())?;
    (c.kw("false") && c.punct(')')).then_some(Stmt::Session)
}

/// After `ALTER ROLE`: `r WITH attrs` or `r [IN DATABASE d] SET name TO values`.
fn alter_role(c: &mut Cur) -> Option<Stmt> {
    let role = c.name()?;
    if c.kw("WITH") {
        let attrs = role_attrs(c)?;
        return Some(Stmt::RoleAttrs { role, attrs });
    }
    let database = if c.kws(&["IN", "DATABASE"]) {
        Some(c.name()?)
    } else {
        None
    };
    if !c.kw("SET") {
        return None;
    }
    let name = setting_name(c)?;
    if !c.kw("TO") {
        return None;
    }
    let mut values = vec![c.string()?];
    while c.punct(',') {
        values.push(c.string()?);
    }
    Some(Stmt::RoleSetting {
        role,
        database,
        name,
        values,
    })
}

/// A setting name: a word, a quoted name (custom `"app.x"`, `"DateStyle"`).
fn setting_name(c: &mut Cur) -> Option<String> {
    c.name()
}

fn role_attrs(c: &mut Cur) -> Option<RoleAttrs> {
    let mut a = RoleAttrs::default();
    let mut any = false;
    loop {
        let flag = |c: &mut Cur, on: &str, slot: &mut Option<bool>| {
            if c.kw(on) {
                *slot = Some(true);
                true
            } else if c.kw(&format!("NO{on}")) {
                *slot = Some(false);
                true
            } else {
                false
            }
        };
        let hit = flag(c, "SUPERUSER", &mut a.superuser)
            || flag(c, "INHERIT", &mut a.inherit)
            || flag(c, "CREATEROLE", &mut a.createrole)
            || flag(c, "CREATEDB", &mut a.createdb)
            || flag(c, "LOGIN", &mut a.login)
            || flag(c, "REPLICATION", &mut a.replication)
            || flag(c, "BYPASSRLS", &mut a.bypassrls);
        if hit {
        } else if c.kws(&["CONNECTION", "LIMIT"]) {
            a.connection_limit = Some(c.num()?.parse().ok()?);
        } else if c.kw("PASSWORD") {
            a.password = Some(c.string()?);
        } else if c.kws(&["VALID", "UNTIL"]) {
            a.valid_until = Some(c.string()?);
        } else {
            break;
        }
        any = true;
    }
    any.then_some(a)
}

/// After `COMMENT ON`: `ROLE r IS '...'` or `TABLESPACE t IS '...'`.
fn comment(c: &mut Cur) -> Option<Stmt> {
    if c.kw("ROLE") {
        let role = c.name()?;
        let comment = (c.kw("IS")).then(|| c.string())??;
        Some(Stmt::RoleComment { role, comment })
    } else if c.kw("TABLESPACE") {
        let t = c.name()?;
        (c.kw("IS") && c.string().is_some()).then_some(Stmt::TablespaceProperty(t))
    } else {
        None
    }
}

/// After `SECURITY LABEL FOR`: `provider ON ROLE|TABLESPACE name IS '...'`.
fn security_label(c: &mut Cur) -> Option<Stmt> {
    c.name()?;
    if !c.kw("ON") {
        return None;
    }
    let role = c.kw("ROLE");
    if !role && !c.kw("TABLESPACE") {
        return None;
    }
    let name = c.name()?;
    (c.kw("IS") && c.string().is_some()).then_some(())?;
    Some(if role {
        Stmt::RoleLabel(name)
    } else {
        Stmt::TablespaceProperty(name)
    })
}

/// `SET (name=value, ...)` of `ALTER TABLESPACE`: numeric options only.
fn tablespace_options(c: &mut Cur) -> Option<()> {
    (c.kw("SET") && c.punct('(')).then_some(())?;
    loop {
        (c.name().is_some() && c.punct('=') && c.num().is_some()).then_some(())?;
        if c.punct(')') {
            return Some(());
        }
        if !c.punct(',') {
            return None;
        }
    }
}

/// A privilege list of a tablespace or parameter ACL: `ALL`, `CREATE`, `SET`, `ALTER SYSTEM`.
fn privileges(c: &mut Cur) -> bool {
    loop {
        if !(c.kw("ALL") || c.kw("CREATE") || c.kw("SET") || c.kws(&["ALTER", "SYSTEM"])) {
            return false;
        }
        if !c.punct(',') {
            return true;
        }
    }
}

/// `ON TABLESPACE t` / `ON PARAMETER p` of an ACL statement.
fn acl_object(c: &mut Cur) -> Option<Stmt> {
    if !c.kw("ON") {
        return None;
    }
    if c.kw("TABLESPACE") {
        Some(Stmt::TablespaceProperty(c.name()?))
    } else if c.kw("PARAMETER") {
        Some(Stmt::ParameterPrivilege(c.name()?))
    } else {
        None
    }
}

/// After `GRANT`: an ACL grant on a tablespace or parameter, or a role membership.
fn grant(c: &mut Cur) -> Option<Stmt> {
    let save = c.i;
    if privileges(c) && matches!(c.t.get(c.i), Some(Tok::Word(w)) if w.eq_ignore_ascii_case("ON")) {
        let s = acl_object(c)?;
        if !c.kw("TO") || (!c.kw("PUBLIC") && c.name().is_none()) {
            return None;
        }
        c.kws(&["WITH", "GRANT", "OPTION"]);
        return Some(s);
    }
    c.i = save;
    let role = c.name()?;
    if !c.kw("TO") {
        return None;
    }
    let member = c.name()?;
    let mut g = Grant {
        role,
        member,
        admin: false,
        inherit: None,
        set: None,
        grantor: None,
    };
    if c.kw("WITH") {
        loop {
            if c.kws(&["ADMIN", "OPTION"]) {
                g.admin = true;
            } else if c.kw("ADMIN") {
                g.admin = c.bool_word()?;
            } else if c.kw("INHERIT") {
                g.inherit = Some(c.bool_word()?);
            } else if c.kw("SET") {
                g.set = Some(c.bool_word()?);
            } else {
                return None;
            }
            if !c.punct(',') {
                break;
            }
        }
    }
    if c.kws(&["GRANTED", "BY"]) {
        g.grantor = Some(c.name()?);
    }
    Some(Stmt::Membership(g))
}

/// After `REVOKE`: an ACL revoke on a tablespace or parameter (pg_dumpall never revokes a
/// membership).
fn revoke(c: &mut Cur) -> Option<Stmt> {
    if !privileges(c) {
        return None;
    }
    let s = acl_object(c)?;
    (c.kw("FROM") && (c.kw("PUBLIC") || c.name().is_some())).then_some(s)
}

#[cfg(test)]
#[path = "dumpall_tests.rs"]
mod tests;
