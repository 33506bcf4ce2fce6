//! pg_dump and pg_dumpall invocations.

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::process::{libpq_env, ChildStream};
use super::tools::Tool;
use crate::config::Database;
use crate::error::Result;

/// How roles were captured; recorded in the manifest so a restore knows what it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GlobalsMode {
    /// `pg_dumpall --globals-only`: roles with password hashes, memberships, tablespaces.
    Full,
    /// `--roles-only --no-role-passwords`: what a non-superuser (managed services) may read.
    RolesOnlyNoPasswords,
}

/// The archive options, fixed: custom format so pg_restore can reorder and parallelise,
/// uncompressed because zstd downstream is faster and better.
pub fn pg_dump_args(snapshot_id: &str, db: &Database) -> Vec<String> {
    let mut args = vec![
        "--format=custom".to_string(),
        "--compress=0".to_string(),
        "--no-password".to_string(),
        // The fingerprint is taken over COPY text; one fixed encoding makes it comparable.
        "--encoding=UTF8".to_string(),
        format!("--snapshot={snapshot_id}"),
    ];
    for t in &db.exclude_tables {
        args.push(format!("--exclude-table={t}"));
    }
    args
}

/// Start pg_dump or pg_dumpall (`tool`) with `args`; connection settings and the password go
/// through the environment only.
pub fn spawn(
    tool: &Tool,
    name: &str,
    db: &Database,
    args: &[String],
    cancel: CancellationToken,
) -> Result<ChildStream> {
    let mut cmd = Command::new(&tool.path);
    cmd.args(args);
    libpq_env(&mut cmd, db);
    ChildStream::spawn(name, cmd, cancel)
}

pub fn pg_dumpall_args(mode: GlobalsMode, db: &Database) -> Vec<String> {
    let mut args = match mode {
        GlobalsMode::Full => vec!["--globals-only".to_string()],
        GlobalsMode::RolesOnlyNoPasswords => {
            vec![
                "--roles-only".to_string(),
                "--no-role-passwords".to_string(),
            ]
        }
    };
    args.push("--no-password".to_string());
    if let Some(d) = db.conn.get_dbname() {
        args.push(format!("--database={d}"));
    }
    args
}
