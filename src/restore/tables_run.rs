//! The child processes of `pgdr restore --table`: pg_restore of the selected entries streamed
//! from the repository, and pg_dump of the scratch database's side schema piped into
//! pg_restore on the target. Owned here, like every client program of a restore.

use std::path::Path;

use crate::catalog::{self, Manifest};
use crate::codec::Identities;
use crate::error::{PgdrError, Result};
use crate::progress::Meter;
use crate::scratch::ClientChild;

use super::Target;

/// `--replace`: pg_restore of the entries in `list` (archive order, so the archive can come
/// from a pipe) with `--clean --if-exists`, as an SQL script run by psql in one transaction
/// that pgdr commits only after the whole object was read and matched the manifest's sha256
/// (pg_restore stops reading once its list is done; the rest is read and discarded). A
/// forged or damaged object therefore changes nothing: the transaction is never committed.
pub async fn replace_list(
    repo: &catalog::Repository,
    m: &Manifest,
    ids: Identities,
    target: &Target,
    list: &Path,
    show_progress: bool,
) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let rec = m
        .object("dump")
        .ok_or_else(|| PgdrError::corrupt(format!("backup {} has no dump object", m.id)))?;
    let key = catalog::Key::object(&m.database, &m.id, &rec.file);
    let (mut restore, mut psql) = spawn_script_pair(target, list)?;
    let mut script = restore.stdout.take().expect("piped");
    let mut sql_in = psql.stdin.take().expect("piped");
    let feed = super::Metered {
        inner: restore.stdin.take().expect("piped"),
        meter: Meter::with_total(
            "restoring tables (fetched)",
            show_progress,
            super::archive_total(m),
        ),
        parser: None,
        drain: true,
    };
    // Owns both pipe ends: when psql stops (an SQL error), pg_restore's output closes too.
    let pass = async move {
        sql_in.write_all(b"BEGIN;\n").await?;
        tokio::io::copy(&mut script, &mut sql_in).await?;
        Ok::<_, std::io::Error>(sql_in)
    };
    let fetch =
        crate::pipeline::download_to(repo, &key, Some(rec.sha256_stored.clone()), ids, feed);
    let (fetched, passed) = tokio::join!(fetch, pass);
    let restored = restore.wait().await;
    let fetched = fetched.and_then(|st| {
        if st.plain_sha256 == rec.sha256_plain {
            Ok(())
        } else {
            Err(PgdrError::corrupt(format!(
                "object {}: decrypted content does not match the manifest's sha256",
                rec.file
            )))
        }
    });
    // Committed only when the object is the backup's and pg_restore wrote all of its script;
    // otherwise psql's input ends inside the transaction, which PostgreSQL rolls back.
    let commit = match (&fetched, &restored, passed) {
        (Ok(()), Ok(_), Ok(mut sql_in)) => {
            let c = sql_in.write_all(b"COMMIT;\n").await;
            drop(sql_in);
            c.map_err(|e| PgdrError::tool(format!("psql stopped: {e}")))
        }
        _ => Err(PgdrError::internal("not committed")),
    };
    let ran = psql.wait().await;
    // A damaged object first, then psql's SQL error (pg_restore then fails on a closed pipe).
    fetched?;
    ran?;
    restored?;
    commit
}

/// pg_restore writing the selection's script (`--clean --if-exists`) to its stdout, and the
/// psql that runs it, stopping at the first error.
fn spawn_script_pair(target: &Target, list: &Path) -> Result<(ClientChild, ClientChild)> {
    let db = target.database();
    let restore_args: Vec<String> = vec![
        "--exit-on-error".into(),
        "--clean".into(),
        "--if-exists".into(),
        format!("--use-list={}", list.display()),
        "--file=-".into(),
    ];
    let restore = ClientChild::spawn_out(
        "pg_restore",
        &target.bin_dir.join("pg_restore"),
        &restore_args,
        &db,
        |_| {},
        true,
    )?;
    let psql_args: Vec<String> = vec![
        "--no-psqlrc".into(),
        "--quiet".into(),
        "--no-password".into(),
        "--set=ON_ERROR_STOP=1".into(),
        format!(
            "--dbname={}",
            crate::config::names::libpq_dbname_arg(&target.dbname)
        ),
    ];
    let psql = ClientChild::spawn(
        "psql",
        &target.bin_dir.join("psql"),
        &psql_args,
        &db,
        |_| {},
    )?;
    Ok((restore, psql))
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
