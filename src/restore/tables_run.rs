//! The child processes of `pgdr restore --table`: pg_restore of the selected entries streamed
//! from the repository, and pg_dump of the scratch database's side schema piped into
//! pg_restore on the target. Owned here, like every client program of a restore.

use std::path::Path;

use crate::catalog::{self, Manifest};
use crate::codec::Identities;
use crate::error::{PgdrError, Result};
use crate::progress::Meter;
use crate::scratch::ClientChild;

use super::{feed_child, ChildSpec, Target};

/// pg_restore of the entries in `list` (archive order, so the archive can come from a pipe),
/// fed from the repository as it streams, in one transaction. `replace`: with
/// `--clean --if-exists`, so the listed objects are dropped first in that same transaction
/// and nothing changes unless all of it succeeds.
pub async fn restore_list(
    repo: &catalog::Repository,
    m: &Manifest,
    ids: Identities,
    target: &Target,
    list: &Path,
    replace: bool,
    show_progress: bool,
) -> Result<()> {
    let pg_restore = target.bin_dir.join("pg_restore");
    let mut args: Vec<String> = vec![
        "--exit-on-error".into(),
        "--no-password".into(),
        "--single-transaction".into(),
        format!("--use-list={}", list.display()),
        format!(
            "--dbname={}",
            crate::config::names::libpq_dbname_arg(&target.dbname)
        ),
    ];
    if replace {
        args.extend(["--clean".into(), "--if-exists".into()]);
    }
    feed_child(
        repo,
        m,
        "dump",
        ids,
        ChildSpec {
            name: "pg_restore",
            tool: &pg_restore,
            args: &args,
            db: &target.database(),
            on_line: Box::new(|_| {}),
        },
        Meter::new("restoring tables (fetched)", show_progress),
        None,
    )
    .await?;
    Ok(())
}

/// `pg_dump -t 'SCHEMA.*'` of `from` (the tables of the side schema with their indexes,
/// constraints, triggers, policies, grants and owned sequences, but not the schema itself)
/// piped into pg_restore on `to` in one transaction.
pub async fn copy_schema(from: &Target, to: &Target, schema: &str) -> Result<()> {
    let pattern = format!("{}.*", crate::sql::quote_ident(schema));
    let dump_args: Vec<String> = vec![
        "--format=custom".into(),
        "--no-password".into(),
        format!("--table={pattern}"),
        format!(
            "--dbname={}",
            crate::config::names::libpq_dbname_arg(&from.dbname)
        ),
    ];
    let restore_args: Vec<String> = vec![
        "--exit-on-error".into(),
        "--no-password".into(),
        "--single-transaction".into(),
        format!(
            "--dbname={}",
            crate::config::names::libpq_dbname_arg(&to.dbname)
        ),
    ];
    let mut dump = ClientChild::spawn_out(
        "pg_dump",
        &from.bin_dir.join("pg_dump"),
        &dump_args,
        &from.database(),
        |_| {},
        true,
    )?;
    let mut restore = ClientChild::spawn(
        "pg_restore",
        &to.bin_dir.join("pg_restore"),
        &restore_args,
        &to.database(),
        |_| {},
    )?;
    let mut out = dump.stdout.take().expect("piped");
    let mut input = restore.stdin.take().expect("piped");
    let copied = async {
        let n = tokio::io::copy(&mut out, &mut input).await;
        drop(input);
        n
    }
    .await;
    let dumped = dump.wait().await;
    let restored = restore.wait().await;
    // pg_restore stopping (an SQL error on the target) makes pg_dump fail on a closed pipe:
    // its error is the one that explains.
    restored?;
    dumped?;
    copied.map_err(|e| PgdrError::tool(format!("pg_dump | pg_restore of schema {schema}: {e}")))?;
    Ok(())
}
