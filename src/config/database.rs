//! One source database: its connection (URL parsed by libpq's rules, password moved out into
//! a secret, ~/.pgpass honoured), its name and its per-database settings.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{PgdrError, Result};

use super::{sslmode, CertCheck};

use super::{names, Secret};

#[derive(Clone)]
pub struct Database {
    /// The name backups are filed under in the repository.
    pub name: String,
    pub conn: tokio_postgres::Config,
    /// sslmode=verify-ca/verify-full: what `conn` cannot say (its sslmode is then require).
    /// None: `conn`'s own sslmode, which encrypts without checking the certificate.
    pub cert_check: Option<CertCheck>,
    pub password: Option<Secret>,
    pub exclude_tables: Vec<String>,
    /// `rto_target` from the config; `pgdr drill` defaults to [`DEFAULT_RTO_TARGET`].
    pub rto_target: Option<std::time::Duration>,
    /// `rpo_target` from the config; `pgdr drill` defaults to [`DEFAULT_RPO_TARGET`].
    pub rpo_target: Option<std::time::Duration>,
    /// `[database.capture]`; all None without the section.
    pub capture: super::capture::CaptureConfig,
}

/// The users' stated recovery targets: restored within 15 minutes, losing at most 5.
pub const DEFAULT_RTO_TARGET: std::time::Duration = std::time::Duration::from_secs(15 * 60);
pub const DEFAULT_RPO_TARGET: std::time::Duration = std::time::Duration::from_secs(5 * 60);

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name)
            .field("target", &self.describe())
            .field("cert_check", &self.cert_check)
            .finish()
    }
}

impl Database {
    /// host:port/dbname as user, for messages: never the password.
    pub fn describe(&self) -> String {
        let host = self
            .conn
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(s) => s.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".into());
        let port = self.conn.get_ports().first().copied().unwrap_or(5432);
        format!(
            "{}@{}:{}/{}",
            self.conn.get_user().unwrap_or("?"),
            host,
            port,
            self.conn.get_dbname().unwrap_or("?")
        )
    }
}

pub(super) fn parse_database(
    name: Option<&str>,
    url: &str,
    password: Option<Secret>,
    exclude_tables: Vec<String>,
    key: &str,
) -> Result<Database> {
    let (url, cert_check) = sslmode::split(url, key)?;
    let mut conn = tokio_postgres::Config::from_str(&url).map_err(|e| {
        // tokio-postgres errors do not echo the URL, so no password leaks here.
        PgdrError::config(format!(
            "{key}: not a valid PostgreSQL connection string: {e}"
        ))
        .hint("use postgres://USER@HOST:PORT/DBNAME; put the password in ${ENV} or PGPASSWORD")
    })?;
    let dbname = conn.get_dbname().map(str::to_string).ok_or_else(|| {
        PgdrError::config(format!("{key}: the connection string names no database"))
            .hint("end the URL with /DBNAME")
    })?;
    // Children get the name as a parameter; one that libpq would read as a connection
    // string is refused here rather than at restore time.
    names::pg_database_name(&dbname, format!("{key}: dbname"))
        .map_err(|e| PgdrError::config(e.to_string()))?;
    if conn.get_hosts().is_empty() {
        conn.host("localhost");
    }
    if conn.get_user().is_none() {
        let user = std::env::var("PGUSER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "postgres".into());
        conn.user(&user);
    }
    // The password is moved out of the connection config so that it travels to child
    // processes only through PGPASSWORD, never argv.
    let mut password = password;
    if let Some(p) = conn.get_password() {
        if password.is_none() {
            password = Some(Secret::new(String::from_utf8_lossy(p).into_owned()));
        }
    }
    if password.is_none() {
        password = std::env::var("PGPASSWORD").ok().map(Secret::new);
    }
    if password.is_none() {
        password = pgpass_lookup(&conn);
    }
    if let Some(p) = &password {
        conn.password(p.expose());
    }
    conn.application_name("pgdr");
    let name = name.map(str::to_string).unwrap_or(dbname);
    validate_name(&name, key)?;
    Ok(Database {
        name,
        conn,
        cert_check,
        password,
        exclude_tables,
        rto_target: None,
        rpo_target: None,
        capture: Default::default(),
    })
}

/// Database names become a path segment in the repository, so keep them plain (the rule is
/// shared with `--database` and with names read back from the repository).
pub(super) fn validate_name(name: &str, key: &str) -> Result<()> {
    names::database_name(name, format!("{key}: database name")).map_err(|e| {
        PgdrError::config(format!("{e}; it cannot be used as a repository folder"))
            .hint("set name = \"...\" with letters, digits, '_', '-' or '.'")
    })
}

/// libpq's ~/.pgpass (or $PGPASSFILE), which tokio-postgres does not read itself.
pub(super) fn pgpass_lookup(conn: &tokio_postgres::Config) -> Option<Secret> {
    let path = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let host = match conn.get_hosts().first()? {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(_) => "localhost".into(),
    };
    let port = conn
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let db = conn.get_dbname()?.to_string();
    let user = conn.get_user()?.to_string();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass(line);
        if fields.len() != 5 {
            continue;
        }
        let want = [&host, &port, &db, &user];
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(Secret::new(fields[4].clone()));
        }
    }
    None
}

pub(super) fn split_pgpass(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.last_mut().unwrap().push(n)
                }
            }
            ':' if out.len() < 5 => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}
