//! `pgdr restore`: the emergency restore. Needs nothing but the repository, the identity and a
//! target server: finds the backup, inspects the target, makes a plan (nothing is changed
//! before the operator confirms it), restores through the shared engine, proves the result
//! against the backup's fingerprint, and records the restore in the repository.
//!
//! Safety rules: a database with user tables is never written into: `--clean` drops it first,
//! `--swap` restores beside it and renames in one transaction only after the copy is proven;
//! until that moment the original is not touched, so an interrupted `--swap` (even SIGKILL)
//! leaves it in place.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::error::{PgdrError, Result};
use crate::restore::RolesMode;

mod execute;
mod managed;
mod managed_swap;
mod plan;
mod replay_run;
mod select;
mod tables;
mod tables_exec;
mod tables_record;
mod target;

pub use execute::{execute, RestoreReport};
pub(crate) use plan::target_database;
pub use plan::{prepare, Plan};
pub use tables::{prepare_tables, TableMode, TableOptions, TablePlan};
pub use tables_exec::{execute_tables, TableReport};
pub use target::{describe_sessions, Sessions, TargetState};

#[derive(Debug, Clone)]
pub enum Selection {
    /// A backup id or unique prefix.
    Id(String),
    /// The newest backup (the default).
    Latest,
    /// The newest backup whose snapshot is at or before this time.
    Before(DateTime<Utc>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeFlag {
    None,
    Clean,
    Swap,
}

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// libpq URL of the target database; the password moves to the environment.
    pub target_url: String,
    /// Repository name of the database (`--database`); inferred when there is one.
    pub database: Option<String>,
    pub selection: Selection,
    pub mode: ModeFlag,
    pub terminate: bool,
    pub jobs: Option<u32>,
    pub spool_dir: Option<PathBuf>,
    pub roles: RolesMode,
    pub verify: bool,
    pub show_progress: bool,
    /// Plan for a managed target even when the role is a superuser (`--managed`); a target
    /// role without SUPERUSER always is one.
    pub managed: bool,
    /// `--platform-schema` / `--app-schema`.
    pub schemas: crate::restore::managed::SchemaChoice,
    /// Point-in-time restore (`--at`, `--at-lsn`, `--at-mark`): the anchored backup before
    /// the point is chosen, `selection` is not used.
    pub at: Option<crate::restore::point::PointSpec>,
}

/// `2026-11-26T02:00:00Z`, `2026-11-26T03:00:00+01:00`, `2026-11-26 02:00[:00]` (UTC),
/// `2026-11-26` (midnight UTC).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    let t = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(n.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    Err(PgdrError::usage(format!("--before '{s}' is not a time"))
        .hint("write RFC 3339 (2026-11-26T02:00:00Z) or 'YYYY-MM-DD HH:MM[:SS]' in UTC"))
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod select_tests;

#[cfg(test)]
mod tests {
    use super::plan::target_database;
    use super::target::address;
    use super::*;

    #[test]
    fn times() {
        let want: DateTime<Utc> = "2026-11-26T02:00:00Z".parse().unwrap();
        assert_eq!(parse_time("2026-11-26T02:00:00Z").unwrap(), want);
        assert_eq!(parse_time("2026-11-26T03:00:00+01:00").unwrap(), want);
        assert_eq!(parse_time("2026-11-26 02:00").unwrap(), want);
        assert_eq!(parse_time("2026-11-26 02:00:00").unwrap(), want);
        assert_eq!(
            parse_time("2026-11-26 02:00:00.5").unwrap(),
            want + chrono::Duration::milliseconds(500)
        );
        assert_eq!(
            parse_time("2026-11-26").unwrap(),
            want - chrono::Duration::hours(2)
        );
        let e = parse_time("yesterday").unwrap_err();
        assert_eq!(e.message, "--before 'yesterday' is not a time");
    }

    #[test]
    fn target_url_password_is_moved_out_and_never_described() {
        let d = target_database("postgres://u:hunter2@db.example:6543/app").unwrap();
        assert_eq!(d.describe(), "u@db.example:6543/app");
        assert_eq!(d.password.as_ref().unwrap().expose(), "hunter2");
        let same = target_database("postgres://other@DB.example:6543/app").unwrap();
        assert_eq!(address(&d), address(&same));
        let local = target_database("postgres://u@127.0.0.1:5432/app").unwrap();
        let local2 = target_database("postgres://u@localhost/app").unwrap();
        assert_eq!(address(&local), address(&local2));
    }
}
