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
use crate::sql::quote_ident as qi;

pub mod dbprops;
pub mod dumpall;
pub mod globals;
pub mod offsets;
pub mod roles;
pub mod sensitive;
pub mod spool;

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

/// An async writer that counts what passes into a [`Meter`] (a progress bar on a terminal).
/// With a parser, it also fingerprints the archive on its way to pg_restore, so a full proof
/// needs no separate pass over the object.
struct Metered<W> {
    inner: W,
    meter: Meter,
    parser: Option<SharedParser>,
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
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
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
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
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

/// Restore a backup into a new database on `target`: globals (roles) first, planned against
/// the roles the server has (see [`globals`]); the database created with the original owner;
/// then pg_restore with `--exit-on-error`, owners and privileges kept, streamed or (with
/// `jobs`) from a spool file; then, if asked, the database-level properties.
/// `globals_sql` is the decrypted globals object when the caller fetched it already; `report`
/// is filled as the steps go, so the caller still has it when a later step fails.
#[allow(clippy::too_many_arguments)]
pub async fn restore_with(
    repo: &catalog::Repository,
    m: &Manifest,
    ids: Identities,
    target: &Target,
    opts: &EngineOptions,
    globals_sql: Option<String>,
    timer: &mut PhaseTimer,
    report: &mut EngineReport,
) -> Result<()> {
    crate::catalog::sensitive::require_revealed(m)?;
    let globals_sql = match globals_sql {
        Some(s) => s,
        None => fetch_globals(repo, m, ids.clone()).await?,
    };
    // Refused as a whole before anything runs when a statement is not a pg_dumpall shape.
    let parsed = globals::parse(&globals_sql)?;
    let client = crate::source::connect(&target.maintenance).await?;
    let existing = existing_globals(&client).await?;
    let plan = globals::plan(&parsed, &existing, opts.roles);
    // Existing roles, planned against what the target has before anything runs.
    let desired = roles::desired(&parsed, roles::passwords_in(m));
    let role_plan = roles::plan(&desired, &roles::read(&client).await?, opts.roles);
    for s in &plan.run {
        // The extended protocol runs exactly one statement: a second guard after the parser.
        if let Err(e) = client.execute(s.sql.as_str(), &[]).await {
            let line = format!("{}: {}", s.label(), db_message(&e));
            if !is_duplicate(&e) {
                tracing::warn!("roles: {line}");
            }
            report.globals_errors.push(line);
        }
    }
    // A tablespace grant by a non-owner switched the session's user: back to pgdr's own.
    client
        .batch_execute("RESET SESSION AUTHORIZATION")
        .await
        .map_err(|e| PgdrError::database(format!("roles: {}", db_message(&e))))?;
    report
        .globals_errors
        .extend(roles::apply(&client, &role_plan.now).await);
    report.roles_created = plan.created_roles;
    report.roles_kept = plan.kept;
    report.roles_kept.extend(role_plan.lines.iter().cloned());
    report.roles = Some(roles::Pending {
        desired,
        plan: role_plan,
        mode: opts.roles,
    });
    report.kept_role_names = plan.kept_role_names;
    report.memberships_added = plan.memberships;
    timer.done("globals");

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
    // The recorded locale, when asked to restore the database's properties; a server that
    // lacks it gets its default, and the report says so.
    let locale = if opts.database_properties {
        dbprops::recorded(m).and_then(|p| dbprops::locale_clause(&p))
    } else {
        None
    };
    let created = match &locale {
        Some(l) => match client.batch_execute(&format!("{create} {l}")).await {
            Ok(()) => Ok(()),
            Err(e) => {
                report.properties_skipped.push(format!(
                    "locale ({l}) not accepted by the target ({}): created with the server's default",
                    db_message(&e)
                ));
                client.batch_execute(&create).await
            }
        },
        None => client.batch_execute(&create).await,
    };
    created.map_err(|e| {
        PgdrError::database(format!(
            "creating database '{}' on {}: {}",
            target.dbname,
            target.maintenance.describe(),
            db_message(&e)
        ))
    })?;
    report.created_database = true;
    timer.done("create");

    let pg_restore = target.bin_dir.join("pg_restore");
    let mut args: Vec<String> = vec![
        "--exit-on-error".into(),
        "--no-password".into(),
        // The name only, quoted as `dbname='...'` so libpq never reads it as a connection
        // string; host, user and password travel in the environment.
        format!(
            "--dbname={}",
            crate::config::names::libpq_dbname_arg(&target.dbname)
        ),
    ];
    // On a terminal: TOC entries restored out of the archive's count, from --verbose lines.
    let toc_total = m
        .fingerprint
        .as_ref()
        .map_or(0, |f| f.data.toc_entries as u64);
    let steps = Steps::new("restoring (TOC entries)", toc_total, opts.show_progress);
    if opts.show_progress {
        args.push("--verbose".into());
    }
    let parser: Option<SharedParser> = opts
        .fingerprint_archive
        .then(|| Arc::new(std::sync::Mutex::new(ArchiveParser::new())));
    match opts.jobs.filter(|j| *j > 1) {
        None => {
            if opts.single_transaction {
                args.push("--single-transaction".into());
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
                    on_line: toc_observer(&steps),
                },
                Meter::new("restoring (fetched)", opts.show_progress),
                parser.clone(),
            )
            .await?;
        }
        Some(jobs) => {
            let rec = m
                .object("dump")
                .ok_or_else(|| PgdrError::corrupt(format!("backup {} has no dump object", m.id)))?;
            let dir = spool::dir(opts.spool_dir.as_deref());
            spool::check_space(&dir, spool::needed_bytes(rec.raw_bytes))?;
            // Removed when dropped: on success, on error and on a graceful interrupt.
            let file = spool::create(&dir)?;
            let writer =
                tokio::fs::File::from_std(file.reopen().map_err(|e| {
                    PgdrError::usage(format!("spool file in {}: {e}", dir.display()))
                })?);
            let key = catalog::Key::object(&m.database, &m.id, &rec.file);
            let st = pipeline::download_to(
                repo,
                &key,
                Some(rec.sha256_stored.clone()),
                ids,
                Metered {
                    inner: writer,
                    meter: Meter::new("spooling (fetched)", opts.show_progress),
                    parser: parser.clone(),
                },
            )
            .await
            .map_err(spool_error)?;
            if st.plain_sha256 != rec.sha256_plain {
                return Err(PgdrError::corrupt(format!(
                    "object {}: decrypted content does not match the manifest's sha256",
                    rec.file
                )));
            }
            report.spooled_bytes = Some(st.plain_bytes);
            // A piped pg_dump could not record where each table's data starts; without that
            // every pg_restore worker scans for its blocks.
            let path = file.path().to_path_buf();
            match tokio::task::spawn_blocking(move || offsets::fill(&path)).await {
                Ok(Ok(n)) => tracing::debug!(entries = n, "spool: data offsets filled in"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "spool: data offsets not filled in; pg_restore -j scans instead")
                }
                Err(e) => tracing::warn!(error = %e, "spool: data offsets not filled in"),
            }
            timer.done("fetch");
            args.push(format!("--jobs={jobs}"));
            args.push(file.path().display().to_string());
            let child = crate::scratch::ClientChild::spawn(
                "pg_restore",
                &pg_restore,
                &args,
                &target.database(),
                toc_observer(&steps),
            )?;
            child.wait().await?;
            drop(file);
        }
    }
    steps.finish();
    timer.done("restore");
    if let Some(p) = parser {
        let p = Arc::try_unwrap(p)
            .map_err(|_| PgdrError::internal("archive parser still shared"))?
            .into_inner()
            .expect("parser lock");
        report.archive = Some(p.finish().map_err(|e| e.to_string()));
    }

    if opts.database_properties {
        match dbprops::recorded(m) {
            None => report.properties_skipped.push(
                "the backup's manifest records no database-level properties (settings, comment, ACL): none replayed".into(),
            ),
            Some(props) => {
                let owner: String = client
                    .query_one(
                        "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
                        &[&target.dbname],
                    )
                    .await
                    .map_err(|e| PgdrError::database(format!("reading the new database's owner: {}", db_message(&e))))?
                    .get(0);
                let roles = existing_globals(&client).await?.roles;
                let (sql, skipped) = dbprops::statements(&props, &target.dbname, &owner, &roles);
                report.properties_skipped.extend(skipped);
                for s in sql {
                    client.batch_execute(&s).await.map_err(|e| {
                        PgdrError::database(format!(
                            "replaying a database property ({}): {}",
                            dbprops::without_value(&s),
                            db_message(&e)
                        ))
                    })?;
                    report.properties.push(s);
                }
            }
        }
        timer.done("properties");
    }
    Ok(())
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
