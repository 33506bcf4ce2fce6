//! Restoring a backup into a database: the engine shared by `verify`, `drill` and `restore`.
//! Roles first, then the database with its original owner, then pg_restore; every child
//! process is owned here and reaped.

use std::sync::Arc;

use crate::catalog::manifest::PhaseTimer;
use crate::catalog::{self, Manifest};
use crate::error::{Kind, PgdrError, Result};
use crate::pipeline;
use crate::store::Store;

pub type Identities = Arc<Vec<age::x25519::Identity>>;

fn qi(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Where a backup is restored to: a server reached as a superuser through `maintenance`
/// (a connection to an existing database such as `postgres`), the name of the database to
/// create there, and the PostgreSQL client tools to use.
pub struct Target {
    pub maintenance: crate::config::Database,
    pub dbname: String,
    pub bin_dir: std::path::PathBuf,
}

impl Target {
    pub fn database(&self) -> crate::config::Database {
        let mut d = self.maintenance.clone();
        d.conn.dbname(&self.dbname);
        d.name = self.dbname.clone();
        d
    }
}

/// A client program to feed: its name for messages, path, arguments and connection.
struct ChildSpec<'a> {
    name: &'a str,
    tool: &'a std::path::Path,
    args: &'a [String],
    db: &'a crate::config::Database,
}

/// Stream one object of the backup into a child's stdin and wait for both; the child's
/// failure is the better message when both fail (a pg_restore that stopped reading).
async fn feed_child(
    store: &dyn Store,
    m: &Manifest,
    object: &str,
    ids: Identities,
    child: ChildSpec<'_>,
) -> Result<String> {
    let rec = m
        .object(object)
        .ok_or_else(|| PgdrError::corrupt(format!("backup {} has no {object} object", m.id)))?;
    let key = catalog::object_key(&m.database, &m.id, &rec.file);
    let (child, stdin) =
        crate::scratch::InputChild::spawn(child.name, child.tool, child.args, child.db)?;
    let fed = pipeline::download_to(store, &key, Some(rec.sha256_stored.clone()), ids, stdin).await;
    let waited = child.wait().await;
    match (fed, waited) {
        (Ok(st), Ok(stderr)) => {
            if st.plain_sha256 != rec.sha256_plain {
                return Err(PgdrError::corrupt(format!(
                    "object {}: decrypted content does not match the manifest's sha256",
                    rec.file
                )));
            }
            Ok(stderr)
        }
        (Err(fe), _) if matches!(fe.kind, Kind::Corrupt | Kind::NotFound | Kind::Crypto) => Err(fe),
        (_, Err(we)) => Err(we),
        (Err(fe), Ok(_)) => Err(fe),
    }
}

/// Restore a backup into a new database on `target`: globals (roles) first, tolerating roles
/// that exist; the database created with the original owner; then pg_restore with
/// `--exit-on-error`, owners and privileges kept.
pub async fn restore_into(
    store: &dyn Store,
    m: &Manifest,
    ids: Identities,
    target: &Target,
    timer: &mut PhaseTimer,
) -> Result<()> {
    let psql = target.bin_dir.join("psql");
    let args: Vec<String> = ["-X", "-q", "-v", "ON_ERROR_STOP=0", "--no-password"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let stderr = feed_child(
        store,
        m,
        "globals",
        ids.clone(),
        ChildSpec {
            name: "psql (globals)",
            tool: &psql,
            args: &args,
            db: &target.maintenance,
        },
    )
    .await?;
    for line in stderr
        .lines()
        .filter(|l| l.contains("ERROR") && !l.contains("already exists"))
    {
        tracing::warn!("globals: {line}");
    }
    timer.done("globals");

    let client = crate::source::connect(&target.maintenance).await?;
    let owner_exists = client
        .query_opt(
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
            &[&m.source.database_owner],
        )
        .await
        .map_err(|e| PgdrError::database(format!("checking roles: {e}")))?
        .is_some();
    let mut create = format!(
        "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'",
        qi(&target.dbname)
    );
    if owner_exists {
        create.push_str(&format!(" OWNER {}", qi(&m.source.database_owner)));
    }
    client.batch_execute(&create).await.map_err(|e| {
        PgdrError::database(format!(
            "creating database '{}' on {}: {}",
            target.dbname,
            target.maintenance.describe(),
            db_message(&e)
        ))
    })?;
    timer.done("create");

    let pg_restore = target.bin_dir.join("pg_restore");
    let args: Vec<String> = vec![
        "--exit-on-error".into(),
        "--no-password".into(),
        // The name only; host, user and password travel in the environment.
        format!("--dbname={}", target.dbname),
    ];
    feed_child(
        store,
        m,
        "dump",
        ids,
        ChildSpec {
            name: "pg_restore",
            tool: &pg_restore,
            args: &args,
            db: &target.database(),
        },
    )
    .await?;
    timer.done("restore");
    Ok(())
}

pub fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}
