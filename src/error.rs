//! The one error type operators see.
//!
//! Every module keeps its own detailed error enum; at the command boundary they become a
//! `PgdrError`: one line that names the thing that broke, optional hints that say how to fix
//! it, and an exit status scripts can branch on. Messages never contain secrets.

use std::fmt;

/// Exit statuses, stable across releases (documented in README.md).
pub mod exit {
    /// Everything worked, or the check passed.
    pub const OK: i32 = 0;
    /// The command ran and found a problem (verification difference, failed drill, unhealthy status).
    pub const CHECK_FAILED: i32 = 1;
    /// The command could not run: bad config, unreachable database or store, wrong key, ...
    pub const COULD_NOT_RUN: i32 = 2;
    /// Interrupted by SIGINT before it finished (nothing partial is left visible); 128 + 2.
    pub const INTERRUPTED: i32 = 130;
    /// Interrupted by SIGTERM (systemd's stop, Kubernetes' termination); 128 + 15.
    pub const TERMINATED: i32 = 143;
    /// The command line is malformed (what argument parsing rejects; BSD sysexits' EX_USAGE):
    /// clap's own 2 would read as "could not run".
    pub const USAGE: i32 = 64;
}

/// What kind of failure; decides the exit status and lets tests and scripts match without
/// parsing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Usage,
    Config,
    Database,
    Tool,
    Repository,
    NotFound,
    Crypto,
    Corrupt,
    Interrupted,
    Internal,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Interrupted => exit::INTERRUPTED,
            _ => exit::COULD_NOT_RUN,
        }
    }
}

/// The typed failure underneath a `PgdrError`, for the callers that must tell failures apart
/// (a missing database, a full disk): they match on this, never on the message text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The server's SQLSTATE.
    Sql(tokio_postgres::error::SqlState),
    /// The operating system's error, as std classifies it.
    Io(std::io::ErrorKind),
    /// An S3 Object Lock holds the object until this date: pgdr sent no delete.
    Locked(chrono::DateTime<chrono::Utc>),
}

#[derive(Debug, Clone)]
pub struct PgdrError {
    pub kind: Kind,
    pub message: String,
    pub hints: Vec<String>,
    pub cause: Option<Cause>,
}

pub type Result<T, E = PgdrError> = std::result::Result<T, E>;

impl PgdrError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        PgdrError {
            kind,
            message: message.into(),
            hints: Vec::new(),
            cause: None,
        }
    }

    /// Keep the typed cause (see [`Cause`]); the message is unchanged.
    pub fn caused_by(mut self, cause: Cause) -> Self {
        self.cause = Some(cause);
        self
    }

    /// The server's SQLSTATE, when the failure came from PostgreSQL.
    pub fn sqlstate(&self) -> Option<&tokio_postgres::error::SqlState> {
        match &self.cause {
            Some(Cause::Sql(s)) => Some(s),
            _ => None,
        }
    }

    /// The io error's kind, when the failure came from the operating system.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self.cause {
            Some(Cause::Io(k)) => Some(k),
            _ => None,
        }
    }

    /// The date an Object Lock holds the object until, when that is why nothing was deleted.
    pub fn locked_until(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.cause {
            Some(Cause::Locked(t)) => Some(t),
            _ => None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Prefix the message with where it happened ("database 'app': ...").
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(Kind::Config, message)
    }
    pub fn database(message: impl Into<String>) -> Self {
        Self::new(Kind::Database, message)
    }
    pub fn tool(message: impl Into<String>) -> Self {
        Self::new(Kind::Tool, message)
    }
    pub fn repository(message: impl Into<String>) -> Self {
        Self::new(Kind::Repository, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, message)
    }
    pub fn crypto(message: impl Into<String>) -> Self {
        Self::new(Kind::Crypto, message)
    }
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(Kind::Corrupt, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Kind::Internal, message)
    }

    pub fn exit_code(&self) -> i32 {
        self.kind.exit_code()
    }
}

impl fmt::Display for PgdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for h in &self.hints {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PgdrError {}

/// Carries a `PgdrError` through `std::io::Error` (the streaming pipeline speaks io::Result),
/// so the operator still sees the original message, not "other error".
pub fn to_io(e: PgdrError) -> std::io::Error {
    std::io::Error::other(e)
}

/// The reverse of [`to_io`]: recover a `PgdrError` that crossed the pipeline, or wrap a plain
/// io error with a description of what was being done.
pub fn from_io(e: std::io::Error, doing: impl fmt::Display, kind: Kind) -> PgdrError {
    if e.get_ref().is_some_and(|inner| inner.is::<PgdrError>()) {
        let inner = e.into_inner().expect("checked above");
        return *inner.downcast::<PgdrError>().expect("checked above");
    }
    PgdrError::new(kind, format!("{doing}: {e}")).caused_by(Cause::Io(e.kind()))
}
