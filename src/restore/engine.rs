//! The steps of [`restore_with`]: globals, the database, pg_restore (streamed or spooled),
//! then the database-level properties. Each step is its own function so a reader can follow
//! the order in `restore_with` and the detail of one step at a time.

use std::sync::Arc;

use crate::catalog::manifest::PhaseTimer;
use crate::catalog::{self, Manifest};
use crate::codec::Identities;
use crate::error::{PgdrError, Result};
use crate::fingerprint::archive::ArchiveParser;
use crate::pipeline;
use crate::progress::{Meter, Steps};
use crate::sql::quote_ident as qi;

use super::{
    db_message, dbprops, existing_globals, feed_child, fetch_globals, globals, is_duplicate,
    offsets, roles, spool, spool_error, toc_observer, ChildSpec, EngineOptions, EngineReport,
    Metered, SharedParser, Target,
};

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
    apply_globals(&client, m, &parsed, opts, report).await?;
    timer.done("globals");

    let exists = opts.managed.as_ref().is_some_and(|p| p.database_exists);
    if !exists {
        create_database(&client, m, target, opts, report).await?;
        report.created_database = true;
        timer.done("create");
    }
    match &opts.managed {
        Some(p) => managed_restore(repo, m, ids, target, opts, p, timer, report).await?,
        None => run_pg_restore(repo, m, ids, target, opts, timer, report).await?,
    }

    if opts.database_properties {
        replay_properties(&client, m, target, opts.managed.is_some(), report).await?;
        timer.done("properties");
    }
    Ok(())
}

/// pg_restore on a managed target, between the preparation (owners, `--clean`, CREATE
/// grants, disabled triggers) and its undoing, which runs also when the preparation or the
/// restore failed; the restore's own error comes first.
#[allow(clippy::too_many_arguments)]
async fn managed_restore(
    repo: &catalog::Repository,
    m: &Manifest,
    ids: Identities,
    target: &Target,
    opts: &EngineOptions,
    p: &super::managed::ManagedPlan,
    timer: &mut PhaseTimer,
    report: &mut EngineReport,
) -> Result<()> {
    let db = crate::source::connect(&target.database()).await?;
    let at = super::managed_hold::HeldAt {
        repo,
        repo_db: &m.database,
        server: &p.server,
        database: &target.dbname,
    };
    // The triggers' states go to the repository before any is disabled: a kill after this
    // leaves them for the next run to put back.
    let held = super::managed_hold::states(&db, p).await?;
    super::managed_hold::hold(at, &p.role, &held).await?;
    let mut undo = super::managed_run::Undo::default();
    let restored = match super::managed_run::prepare(&db, p, &held, report, &mut undo).await {
        Ok(no_owner) => {
            report.no_owner = no_owner;
            super::managed_hold::test_pause().await;
            run_pg_restore(repo, m, ids, target, opts, timer, report).await
        }
        Err(e) => Err(e),
    };
    // pg_restore may have run long: a fresh session for the undoing.
    let fresh = crate::source::connect(&target.database()).await.ok();
    let restored = match restored {
        // Owners the connecting role can act as get their objects back.
        Ok(()) if report.no_owner => {
            let c = fresh.as_ref().unwrap_or(&db);
            super::managed_owners::give_back(c, m, p, report).await
        }
        r => r,
    };
    let c = fresh.as_ref().unwrap_or(&db);
    let mut undone = super::managed_run::finish(c, &mut undo, report).await;
    if !held.is_empty() && undo.triggers_back() {
        // Kept otherwise: the next run puts back what this one could not.
        undone = undone.and(super::managed_hold::release(at).await);
    }
    match (restored, undone) {
        (Err(e), Err(u)) => {
            // The restore's error is the one returned; what could not be undone is named.
            tracing::warn!("{u}");
            report.managed.push(format!("NOT undone: {}", u.message));
            Err(e)
        }
        (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// The globals step: roles, memberships and tablespaces planned against what the target has
/// before anything runs, then applied; a failed statement is reported, not fatal, so one
/// role the target refuses does not stop the restore.
async fn apply_globals(
    client: &tokio_postgres::Client,
    m: &Manifest,
    parsed: &[globals::Statement],
    opts: &EngineOptions,
    report: &mut EngineReport,
) -> Result<()> {
    let actual = roles::read(client).await?;
    let mut existing = existing_globals(client).await?;
    existing.limits = roles::Limits::of(&actual);
    let plan = globals::plan(parsed, &existing, opts.roles);
    // Existing roles, planned against what the target has before anything runs.
    let desired = roles::desired(parsed, roles::passwords_in(m));
    let mut role_plan = roles::plan(&desired, &actual, opts.roles);
    role_plan.refused.extend(plan.refused.iter().cloned());
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
        .extend(roles::apply(client, &role_plan.now).await);
    report.roles_created = plan.created_roles;
    report.roles_kept = plan.kept;
    report.roles_kept.extend(plan.limited);
    report.roles_kept.extend(role_plan.lines.iter().cloned());
    report.roles = Some(roles::Pending {
        desired,
        plan: role_plan,
        mode: opts.roles,
    });
    report.kept_role_names = plan.kept_role_names;
    report.memberships_added = plan.memberships;
    Ok(())
}

/// The create step: the database with its original owner when the target has that role, and
/// (with properties asked for) the recorded locale, falling back to the server's default so a
/// target without that locale still restores.
async fn create_database(
    client: &tokio_postgres::Client,
    m: &Manifest,
    target: &Target,
    opts: &EngineOptions,
    report: &mut EngineReport,
) -> Result<()> {
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
    // On a managed target the database is the connecting role's (it may not be able to give
    // it away).
    if owner_exists && opts.managed.is_none() {
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
    Ok(())
}

/// The restore step: pg_restore fed from the repository as it streams, or (with `jobs` > 1)
/// from a spool file, since `pg_restore -j` needs a seekable archive. The archive parser, when
/// asked for, fingerprints the bytes on their way and its summary lands in the report.
async fn run_pg_restore(
    repo: &catalog::Repository,
    m: &Manifest,
    ids: Identities,
    target: &Target,
    opts: &EngineOptions,
    timer: &mut PhaseTimer,
    report: &mut EngineReport,
) -> Result<()> {
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
    if report.no_owner {
        args.push("--no-owner".into());
    }
    match spool_jobs(opts) {
        None => {
            stream_args(opts, &mut args);
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
                    drain: opts.use_list.is_some(),
                },
                Meter::with_total(
                    "restoring (fetched)",
                    opts.show_progress,
                    super::archive_total(m),
                ),
                parser.clone(),
            )
            .await?;
        }
        Some(jobs) => {
            let spooled = Spooled {
                pg_restore: &pg_restore,
                args,
                jobs,
                steps: &steps,
                parser: parser.clone(),
            };
            restore_from_spool(repo, m, ids, target, opts, spooled, timer, report).await?;
        }
    }
    steps.finish();
    timer.done("restore");
    if let Some(p) = parser {
        report.archive = Some(finish_parser(p)?);
    }
    Ok(())
}

/// pg_restore's options that only a streamed restore takes: one transaction, a TOC list.
fn stream_args(opts: &EngineOptions, args: &mut Vec<String>) {
    if opts.single_transaction {
        args.push("--single-transaction".into());
    }
    if let Some(l) = &opts.use_list {
        args.push(format!("--use-list={}", l.display()));
    }
}

/// The archive's fingerprint once the stream ended (the parser is no longer shared).
fn finish_parser(
    p: SharedParser,
) -> Result<std::result::Result<crate::fingerprint::ArchiveSummary, String>> {
    let p = Arc::try_unwrap(p)
        .map_err(|_| PgdrError::internal("archive parser still shared"))?
        .into_inner()
        .expect("parser lock");
    Ok(p.finish().map_err(|e| e.to_string()))
}

/// What the spooled restore shares with the streamed one: the tool, its arguments so far,
/// the progress steps and the archive parser.
struct Spooled<'a> {
    pg_restore: &'a std::path::Path,
    args: Vec<String>,
    jobs: u32,
    steps: &'a Steps,
    parser: Option<SharedParser>,
}

/// The `--jobs` path: download the dump to a spool file (checked against the manifest and
/// given its data offsets so workers need not scan), then `pg_restore -j` from the file. The
/// file is removed when dropped, whatever happens.
#[allow(clippy::too_many_arguments)]
async fn restore_from_spool(
    repo: &catalog::Repository,
    m: &Manifest,
    ids: Identities,
    target: &Target,
    opts: &EngineOptions,
    spooled: Spooled<'_>,
    timer: &mut PhaseTimer,
    report: &mut EngineReport,
) -> Result<()> {
    let Spooled {
        pg_restore,
        mut args,
        jobs,
        steps,
        parser,
    } = spooled;
    let rec = m
        .object("dump")
        .ok_or_else(|| PgdrError::corrupt(format!("backup {} has no dump object", m.id)))?;
    let dir = spool::dir(opts.spool_dir.as_deref());
    spool::check_space(&dir, spool::needed_bytes(rec.raw_bytes))?;
    // Removed when dropped: on success, on error and on a graceful interrupt.
    let file = spool::create(&dir)?;
    let writer = tokio::fs::File::from_std(
        file.reopen()
            .map_err(|e| PgdrError::usage(format!("spool file in {}: {e}", dir.display())))?,
    );
    let key = catalog::Key::object(&m.database, &m.id, &rec.file);
    let st = pipeline::download_to(
        repo,
        &key,
        Some(rec.sha256_stored.clone()),
        ids,
        Metered {
            inner: writer,
            meter: Meter::with_total("spooling", opts.show_progress, super::archive_total(m)),
            parser,
            drain: false,
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
    let list = file.path().with_extension("list");
    let _list_guard = RemoveOnDrop(list.clone());
    let db = managed_list(target, opts, file.path(), &list, &mut args, report).await?;
    args.push(format!("--jobs={jobs}"));
    args.push(file.path().display().to_string());
    let child = crate::scratch::ClientChild::spawn(
        "pg_restore",
        pg_restore,
        &args,
        &db,
        toc_observer(steps),
    )?;
    child.wait().await?;
    drop(file);
    Ok(())
}

/// The properties step: the database-level settings, comment and ACL recorded in the
/// manifest, replayed against the new database's actual owner and the roles that exist; what
/// cannot be replayed is reported as skipped.
async fn replay_properties(
    client: &tokio_postgres::Client,
    m: &Manifest,
    target: &Target,
    opts_managed: bool,
    report: &mut EngineReport,
) -> Result<()> {
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
            let roles = existing_globals(client).await?.roles;
            let (sql, skipped) = dbprops::statements(&props, &target.dbname, &owner, &roles);
            report.properties_skipped.extend(skipped);
            for s in sql {
                if opts_managed {
                    // A managed target's admin may not own the database: named, not fatal.
                    if let Err(e) = client.batch_execute(&s).await {
                        report.properties_skipped.push(format!(
                            "{}: {}",
                            dbprops::without_value(&s),
                            db_message(&e)
                        ));
                    } else {
                        report.properties.push(s);
                    }
                    continue;
                }
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
    Ok(())
}

/// Removes a file when dropped (the TOC list beside the spool file), whatever happens.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// With `jobs` > 1, or on a managed target (a filtered TOC list needs the archive as a file),
/// the restore goes through a spool file.
fn spool_jobs(opts: &EngineOptions) -> Option<u32> {
    match &opts.managed {
        Some(_) => Some(opts.jobs.unwrap_or(1).max(1)),
        None => opts.jobs.filter(|j| *j > 1),
    }
}

/// On a managed target: the filtered TOC list for pg_restore, and its connection with
/// `session_replication_role = replica` where allowed. Elsewhere: the target as it is.
async fn managed_list(
    target: &Target,
    opts: &EngineOptions,
    archive: &std::path::Path,
    list: &std::path::Path,
    args: &mut Vec<String>,
    report: &mut EngineReport,
) -> Result<crate::config::Database> {
    let mut db = target.database();
    if let Some(p) = &opts.managed {
        let c = crate::source::connect(&db).await?;
        let skipped = super::managed_run::write_list(&c, p, archive, list).await?;
        report.managed.extend(skipped);
        args.push(format!("--use-list={}", list.display()));
        if p.replica {
            db.conn.options("-c session_replication_role=replica");
        }
    }
    Ok(db)
}
