//! Restoring a backup into a database: the engine shared by `verify`, `drill` and `restore`.
//! Roles first, then the database with its original owner, then pg_restore; every child
//! process is owned here and reaped.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use crate::catalog::manifest::PhaseTimer;
use crate::catalog::{self, Manifest};
use crate::codec::Identities;
use crate::error::{Kind, PgdrError, Result};
use crate::fingerprint::archive::{ArchiveParser, ArchiveSummary};
use crate::pipeline;
use crate::progress::{Meter, Steps};

pub mod dbprops;
pub mod dumpall;
mod engine;
pub mod globals;
pub mod managed;
pub mod managed_hold;
pub mod managed_owners;
pub mod managed_run;
pub mod offsets;
pub mod point;
pub mod replay;
pub mod roles;
pub mod sensitive;
pub mod spool;
pub mod tables;
pub mod tables_run;

pub use engine::restore_with;
pub use roles::RolesMode;

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
    /// Called with each stderr line (progress).
    on_line: LineObserver,
    /// The child reads a `--use-list` selection and may stop early (see [`Metered::drain`]).
    drain: bool,
}

type LineObserver = Box<dyn Fn(&str) + Send + 'static>;

/// `pg_restore --verbose` writes one of these lines as it handles each TOC entry.
pub fn is_toc_step(line: &str) -> bool {
    [
        "creating ",
        "processing data for ",
        "executing ",
        "processing item ",
    ]
    .iter()
    .any(|p| {
        line.strip_prefix("pg_restore: ")
            .is_some_and(|l| l.starts_with(p))
    })
}

/// Counts pg_restore's TOC entries on a terminal progress bar.
fn toc_observer(steps: &Steps) -> LineObserver {
    let steps = steps.clone();
    Box::new(move |line: &str| {
        if is_toc_step(line) {
            steps.inc();
        }
    })
}

/// What a restore's meter counts up to: the plaintext archive, whose size the manifest
/// records, so the bar and the log lines can say how long is left.
pub(crate) fn archive_total(m: &crate::catalog::Manifest) -> Option<crate::progress::Total> {
    m.object("dump").map(|r| crate::progress::Total {
        bytes: r.raw_bytes,
        estimated: false,
    })
}

/// An async writer that counts what passes into a [`Meter`] (a progress bar on a terminal).
/// With a parser, it also fingerprints the archive on its way to pg_restore, so a full proof
/// needs no separate pass over the object.
struct Metered<W> {
    inner: W,
    meter: Meter,
    parser: Option<SharedParser>,
    /// A child restoring a `--use-list` selection may exit before the archive ends: then the
    /// rest is read and discarded, so the object's sha256 is still checked to its end.
    drain: bool,
}

/// The archive parser shared with the caller, who reads its summary once the stream ended.
pub type SharedParser = Arc<std::sync::Mutex<ArchiveParser>>;

impl<W: AsyncWrite + Unpin> AsyncWrite for Metered<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Err(e)) if this.drain && e.kind() == std::io::ErrorKind::BrokenPipe => {
                Poll::Ready(Ok(buf.len()))
            }
            r => r,
        };
        if let Poll::Ready(Ok(n)) = &r {
            let _ = std::io::Write::write(&mut this.meter, &buf[..*n]);
            if let Some(p) = &this.parser {
                // A parse error is kept by the parser and reported by `finish`.
                let _ = p.lock().expect("parser lock").feed(&buf[..*n]);
            }
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let drain = this.drain;
        drained(drain, Pin::new(&mut this.inner).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let drain = this.drain;
        drained(drain, Pin::new(&mut this.inner).poll_shutdown(cx))
    }
}

/// With `drain`, a pipe the child closed is no error (see [`Metered::drain`]).
fn drained(drain: bool, r: Poll<std::io::Result<()>>) -> Poll<std::io::Result<()>> {
    match r {
        Poll::Ready(Err(e)) if drain && e.kind() == std::io::ErrorKind::BrokenPipe => {
            Poll::Ready(Ok(()))
        }
        r => r,
    }
}

/// Stream one object of the backup into a child's stdin and wait for both; the child's
/// failure is the better message when both fail (a pg_restore that stopped reading).
async fn feed_child(
    repo: &catalog::Repository,
    m: &Manifest,
    object: &str,
    ids: Identities,
    child: ChildSpec<'_>,
    meter: Meter,
    parser: Option<SharedParser>,
) -> Result<String> {
    let rec = m
        .object(object)
        .ok_or_else(|| PgdrError::corrupt(format!("backup {} has no {object} object", m.id)))?;
    let key = catalog::Key::object(&m.database, &m.id, &rec.file);
    let drain = child.drain;
    let (child, stdin) = crate::scratch::ClientChild::spawn(
        child.name,
        child.tool,
        child.args,
        child.db,
        child.on_line,
    )
    .map(|mut c| {
        let stdin = c.stdin.take().expect("piped");
        (c, stdin)
    })?;
    let stdin = Metered {
        inner: stdin,
        meter,
        parser,
        drain,
    };
    let fed = pipeline::download_to(repo, &key, Some(rec.sha256_stored.clone()), ids, stdin).await;
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

/// How the engine restores; the defaults are what `verify` needs.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    pub roles: RolesMode,
    /// More than 1: spool the archive to a file and run `pg_restore -j N` from it.
    pub jobs: Option<u32>,
    /// Where the spool goes; default the system temp dir.
    pub spool_dir: Option<PathBuf>,
    /// Replay database-level properties recorded in the manifest (phase `properties`).
    pub database_properties: bool,
    /// Progress bars (bytes fetched) on a terminal.
    pub show_progress: bool,
    /// Parse the archive as it streams and hand its fingerprint back in the report.
    pub fingerprint_archive: bool,
    /// `pg_restore --single-transaction` (without `jobs`): all or nothing, and on a server
    /// with wal_level=minimal the new tables and their indexes skip WAL.
    pub single_transaction: bool,
    /// A target without SUPERUSER: restore as [`managed`] plans it (existing database kept,
    /// platform schemas' rows only, filtered TOC list).
    pub managed: Option<std::sync::Arc<managed::ManagedPlan>>,
    /// A `pg_restore --use-list` file in archive order (streamed restore only): the entries
    /// `restore --table` puts into its scratch database.
    pub use_list: Option<PathBuf>,
}

/// What the engine did beyond restoring rows, in operator words.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EngineReport {
    pub roles_created: Vec<String>,
    /// "role 'anon' exists: kept as is"
    pub roles_kept: Vec<String>,
    /// The names of the existing roles whose attributes were not replayed.
    pub kept_role_names: Vec<String>,
    /// "authenticated → anon"
    pub memberships_added: Vec<String>,
    /// Statements of the roles step that failed: "CREATE TABLESPACE fast: ...".
    pub globals_errors: Vec<String>,
    /// Database-level statements replayed.
    pub properties: Vec<String>,
    /// Why some (or all) database-level properties were not replayed.
    pub properties_skipped: Vec<String>,
    /// Bytes of the spool file, for `--jobs`.
    pub spooled_bytes: Option<u64>,
    /// This run created the target database: only then may a failed run drop it.
    pub created_database: bool,
    /// On a managed target: what was done differently or skipped, one line each.
    pub managed: Vec<String>,
    /// On a managed target: pg_restore ran with `--no-owner` (an owner pgdr cannot act as).
    pub no_owner: bool,
    /// The archive's fingerprint as it streamed (with `fingerprint_archive`), or why the
    /// archive could not be parsed.
    #[serde(skip)]
    pub archive: Option<std::result::Result<ArchiveSummary, String>>,
    /// The roles step's plan for existing roles, finished by [`roles_proof`] (holds password
    /// verifiers: never serialized or printed).
    #[serde(skip)]
    pub roles: Option<roles::Pending>,
}

/// Decrypt the globals SQL into memory, checked against the manifest (it is small). Also the
/// cheapest proof that the identity opens this backup.
pub async fn fetch_globals(
    repo: &catalog::Repository,
    m: &Manifest,
    ids: Identities,
) -> Result<String> {
    let rec = m
        .object("globals")
        .ok_or_else(|| PgdrError::corrupt(format!("backup {} has no globals object", m.id)))?;
    let key = catalog::Key::object(&m.database, &m.id, &rec.file);
    let (st, bytes) =
        pipeline::download(repo, &key, Some(rec.sha256_stored.clone()), ids, Vec::new()).await?;
    if st.plain_sha256 != rec.sha256_plain {
        return Err(PgdrError::corrupt(format!(
            "object {}: decrypted content does not match the manifest's sha256",
            rec.file
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| PgdrError::corrupt(format!("object {}: not UTF-8 text", rec.file)))
}

async fn existing_globals(client: &tokio_postgres::Client) -> Result<globals::Existing> {
    let q = |e: tokio_postgres::Error| {
        PgdrError::database(format!("reading the target's roles: {}", db_message(&e)))
    };
    let roles = client
        .query("SELECT rolname::text FROM pg_roles", &[])
        .await
        .map_err(q)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let memberships = client
        .query(
            "SELECT r.rolname::text, m.rolname::text FROM pg_auth_members a
               JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member",
            &[],
        )
        .await
        .map_err(q)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let tablespaces = client
        .query("SELECT spcname::text FROM pg_tablespace", &[])
        .await
        .map_err(q)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let current_user: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .map_err(q)?
        .get(0);
    Ok(globals::Existing {
        roles,
        memberships,
        tablespaces,
        current_user,
        limits: None,
    })
}

/// Restore a backup into a new database on `target` with the defaults: streamed, entry by
/// entry, as an emergency restore does (what a drill times).
pub async fn restore_into(
    repo: &catalog::Repository,
    m: &Manifest,
    ids: Identities,
    target: &Target,
    timer: &mut PhaseTimer,
) -> Result<EngineReport> {
    let mut report = EngineReport::default();
    restore_with(
        repo,
        m,
        ids,
        target,
        &EngineOptions::default(),
        None,
        timer,
        &mut report,
    )
    .await?;
    Ok(report)
}

/// After the restore (and the proof of the data): the changes to the role pgdr connects as,
/// then the roles proof. Kept differences join `roles_kept` (summary and record); the
/// findings are returned.
pub async fn roles_proof(target: &Target, report: &mut EngineReport) -> Result<Vec<String>> {
    let Some(p) = report.roles.take() else {
        return Ok(Vec::new());
    };
    let client = crate::source::connect(&target.maintenance).await?;
    let (verdict, errors) = roles::finish(&client, &p.desired, &p.plan, p.mode).await?;
    report.globals_errors.extend(errors);
    report.roles_kept.extend(verdict.kept);
    Ok(verdict.findings)
}

/// A statement that failed because what it creates is already there (a role, a tablespace):
/// the SQLSTATEs PostgreSQL reports as "... already exists".
fn is_duplicate(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState as S;
    e.code().is_some_and(|c| {
        [
            S::DUPLICATE_OBJECT,
            S::DUPLICATE_DATABASE,
            S::DUPLICATE_SCHEMA,
            S::DUPLICATE_TABLE,
            S::DUPLICATE_FUNCTION,
            S::DUPLICATE_COLUMN,
            S::DUPLICATE_CURSOR,
            S::DUPLICATE_PSTATEMENT,
        ]
        .contains(c)
    })
}

/// Spooling failed: on a full disk, say where the room is needed.
fn spool_error(e: PgdrError) -> PgdrError {
    if e.io_kind() == Some(std::io::ErrorKind::StorageFull) {
        e.hint("free space in the spool directory or pass --spool-dir elsewhere")
    } else {
        e
    }
}

pub fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::{is_toc_step, spool_error};
    use crate::error::{from_io, Kind};

    /// The hint follows the io kind, not the words: a full disk gets it, a failure whose
    /// message merely mentions space does not.
    #[test]
    fn a_full_spool_disk_is_named_by_its_io_kind() {
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let e = spool_error(from_io(full, "reading app/1/dump", Kind::Corrupt));
        assert_eq!(
            e.message,
            "reading app/1/dump: No space left on device (os error 28)"
        );
        assert_eq!(e.hints.len(), 1, "{e}");
        let other = std::io::Error::other("No space left, says the text");
        assert!(spool_error(from_io(other, "x", Kind::Corrupt))
            .hints
            .is_empty());
    }

    #[test]
    fn toc_steps_are_recognised_in_pg_restore_verbose_output() {
        for l in [
            "pg_restore: creating TABLE \"public.orders\"",
            "pg_restore: processing data for table \"public.orders\"",
            "pg_restore: executing SEQUENCE SET orders_id_seq",
            "pg_restore: processing item 3374 TABLE DATA users",
        ] {
            assert!(is_toc_step(l), "{l}");
        }
        for l in [
            "pg_restore: connecting to database for restore",
            "pg_restore: error: could not execute query",
            "creating TABLE without the prefix",
        ] {
            assert!(!is_toc_step(l), "{l}");
        }
    }
}
