//! The rules for names that reach a path, a command line or a connection: one place, so the
//! config, the command line and everything read back from the repository agree.
//!
//! A repository is data an attacker may have written. A database folder called `..` or a
//! manifest whose `source.database` is `host=evil dbname=x` must be refused by name before
//! it becomes a path or a libpq argument.

use std::fmt;

/// What a database's repository name may contain; said in every refusal.
pub const DATABASE_NAME_RULE: &str =
    "letters, digits, '_', '-' or '.', not starting with '.', at most 255 bytes";

/// What a PostgreSQL database or role name read from a manifest may be.
pub const PG_NAME_RULE: &str =
    "1 to 63 bytes, no control characters, not a libpq connection string (no '=', no postgres:// prefix)";

/// A name that breaks its rule: what it is (`--database`, `repository folder 'x'`), the value
/// and the rule, as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadName {
    pub what: String,
    pub value: String,
    pub rule: &'static str,
}

impl fmt::Display for BadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: '{}' is not an allowed name (allowed: {})",
            self.what,
            self.value.escape_debug(),
            self.rule
        )
    }
}

impl std::error::Error for BadName {}

/// A database's repository name: one plain folder segment (the `[[database]] name` rule).
pub fn database_name(value: &str, what: impl fmt::Display) -> Result<(), BadName> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && !value.starts_with('.')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(bad(what, value, DATABASE_NAME_RULE))
    }
}

/// A PostgreSQL database name that pgdr will connect to. libpq reads a dbname holding '=' or
/// starting with a URI prefix as a whole connection string (host, port, ...), so such a name
/// could send a restore to another server; PostgreSQL names are at most 63 bytes.
pub fn pg_database_name(value: &str, what: impl fmt::Display) -> Result<(), BadName> {
    let conninfo = value.contains('=')
        || value.starts_with("postgres://")
        || value.starts_with("postgresql://");
    if plain_pg_name(value) && !conninfo {
        Ok(())
    } else {
        Err(bad(what, value, PG_NAME_RULE))
    }
}

/// A PostgreSQL role name read from a manifest (it only ever reaches SQL as a quoted
/// identifier, but a NUL or a 1 kB name is no role a server could have had).
pub fn pg_role_name(value: &str, what: impl fmt::Display) -> Result<(), BadName> {
    if plain_pg_name(value) {
        Ok(())
    } else {
        Err(bad(what, value, PG_NAME_RULE))
    }
}

fn plain_pg_name(value: &str) -> bool {
    !value.is_empty() && value.len() <= 63 && !value.chars().any(char::is_control)
}

fn bad(what: impl fmt::Display, value: &str, rule: &'static str) -> BadName {
    BadName {
        what: what.to_string(),
        value: value.to_string(),
        rule,
    }
}

/// The `--dbname` argument of a libpq client program for a plain database name: a
/// connection string with only `dbname`, quoted, so libpq never expands the name itself into
/// host or port (only the first dbname is expanded, and this is it).
pub fn libpq_dbname_arg(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    for c in name.chars() {
        if matches!(c, '\\' | '\'') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    format!("dbname='{quoted}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_plain_folder_segments() {
        for ok in ["app", "App_1", "a-b.c", "x"] {
            database_name(ok, "t").unwrap();
        }
        for bad in [
            "", ".", "..", "../etc", "/etc", "a/b", ".hidden", "a\0b", "a b", "a\\b", "ü",
        ] {
            let e = database_name(bad, "--database").unwrap_err();
            assert!(e.to_string().starts_with("--database: '"), "{e}");
            assert!(e.to_string().contains(DATABASE_NAME_RULE), "{e}");
        }
        assert!(database_name(&"a".repeat(256), "t").is_err());
    }

    #[test]
    fn connection_strings_are_not_database_names() {
        for ok in ["app", "My DB", "ünïcode", "a/b", "x?y"] {
            pg_database_name(ok, "t").unwrap();
        }
        for bad in [
            "host=127.0.0.1 port=1 dbname=x",
            "postgresql://evil/x",
            "postgres://evil/x",
            "a=b",
            "",
            "a\0b",
            "a\nb",
        ] {
            assert!(pg_database_name(bad, "t").is_err(), "{bad:?}");
        }
        assert!(pg_database_name(&"a".repeat(64), "t").is_err());
        pg_role_name("role=with=equals", "t").unwrap();
        assert!(pg_role_name("a\0", "t").is_err());
    }

    #[test]
    fn dbname_argument_is_quoted() {
        assert_eq!(libpq_dbname_arg("app"), "dbname='app'");
        assert_eq!(
            libpq_dbname_arg(r"it's a\b host=x"),
            r"dbname='it\'s a\\b host=x'"
        );
    }
}
