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
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::catalog::manifest::PhaseTimer;
use crate::catalog::records::{self, RestoreMode, RestoreOutcome, RestoreRecord};
use crate::catalog::{Catalog, Entry, Manifest, Pick};
use crate::codec::{self, Identities};
use crate::config::{Database, Settings};
use crate::error::{Kind, PgdrError, Result};
use crate::progress::{human_bytes, human_duration};
use crate::restore::{self, db_message, EngineOptions, EngineReport, RolesMode};
use crate::sql::quote_ident as qi;

mod target;
use target::{inspect, Leftover, TargetState};

/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
const MAX_NAME: usize = 63;

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

/// Sessions connected to a database, grouped.
#[derive(Debug, Clone)]
pub struct Sessions {
    pub database: String,
    pub application: String,
    pub user: String,
    pub client: String,
    pub count: i64,
}

fn describe_sessions(s: &[Sessions]) -> String {
    s.iter()
        .map(|x| {
            let n = if x.count > 1 {
                format!(" x{}", x.count)
            } else {
                String::new()
            };
            format!(
                "{} ({}@{}, on {}){n}",
                x.application, x.user, x.client, x.database
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything decided before anything is changed.
pub struct Plan {
    pub manifest: Manifest,
    pub verification: Option<crate::catalog::VerificationRecord>,
    /// The target database (its name is `name`).
    pub target: Database,
    /// The same server's maintenance database.
    pub maintenance: Database,
    pub server_version: String,
    pub superuser: bool,
    pub name: String,
    pub state: TargetState,
    pub mode: RestoreMode,
    /// The database the engine restores into: `name`, or `<name>_restoring` for a swap.
    pub restore_name: String,
    /// For a swap: what the previous database will be called (for `--clean`, until it is
    /// dropped once the copy is in place).
    pub previous_name: Option<String>,
    /// A `<name>_restoring` a previous pgdr restore left (marked in the repository): dropped
    /// first.
    pub leftover: Option<Leftover>,
    /// `host:port` of the target server, as restore marks name it.
    pub server: String,
    /// The target is a configured source database: its name must be typed (or --confirm).
    pub is_source: bool,
    /// Sessions on the target now.
    pub sessions: Vec<Sessions>,
    pub bin_dir: PathBuf,
    pub jobs: u32,
    /// (directory, bytes needed, bytes free) for `--jobs`.
    pub spool: Option<(PathBuf, u64, u64)>,
    pub roles: RolesMode,
    /// Per role of the backup that exists on the target: each difference and what is done.
    pub roles_preview: Vec<String>,
    pub verify: bool,
    pub terminate: bool,
    pub show_progress: bool,
    /// Notes for the operator (flags that have nothing to do, weaker guarantees).
    pub notes: Vec<String>,
    pub planned_at: DateTime<Utc>,
    globals_sql: String,
    ids: Identities,
    catalog: Catalog,
}

/// Parse `--target` like a source URL: password out of the URL into a secret, .pgpass and
/// PGPASSWORD honoured.
fn target_database(url: &str) -> Result<Database> {
    let o = crate::config::Overrides {
        source: Some(url.to_string()),
        repo: Some("/".into()),
        ..Default::default()
    };
    let mut s = Settings::load(&o).map_err(|e| {
        let mut e = e;
        e.message = e.message.replace("--source", "--target");
        e
    })?;
    Ok(s.databases.remove(0))
}

fn with_dbname(d: &Database, name: &str) -> Database {
    let mut x = d.clone();
    x.conn.dbname(name);
    x.name = name.to_string();
    x
}

/// host, port, dbname of a connection, for "is this the source database?".
fn address(d: &Database) -> (String, u16, String) {
    let host = d
        .conn
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.to_lowercase(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let host = match host.as_str() {
        "127.0.0.1" | "::1" | "[::1]" => "localhost".to_string(),
        _ => host,
    };
    let port = d.conn.get_ports().first().copied().unwrap_or(5432);
    (host, port, d.conn.get_dbname().unwrap_or("").to_string())
}

/// Connect to the server's maintenance database: `postgres`, or `template1` if it is missing.
async fn connect_maintenance(target: &Database) -> Result<(Database, Client)> {
    let m = with_dbname(target, "postgres");
    match crate::source::connect(&m).await {
        Ok(c) => Ok((m, c)),
        Err(e) if e.sqlstate() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            let t = with_dbname(target, "template1");
            let c = crate::source::connect(&t).await?;
            Ok((t, c))
        }
        Err(e) => Err(e.context("target server")),
    }
}

async fn sessions(client: &Client, names: &[&str]) -> Result<Vec<Sessions>> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let rows = client
        .query(
            "SELECT datname::text, COALESCE(NULLIF(application_name, ''), '(no name)'),
                    COALESCE(usename::text, '?'), COALESCE(host(client_addr), 'local'), count(*)
               FROM pg_stat_activity
              WHERE datname = ANY($1) AND pid <> pg_backend_pid()
              GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            &[&names],
        )
        .await
        .map_err(|e| PgdrError::database(format!("listing sessions: {}", db_message(&e))))?;
    Ok(rows
        .iter()
        .map(|r| Sessions {
            database: r.get(0),
            application: r.get(1),
            user: r.get(2),
            client: r.get(3),
            count: r.get(4),
        })
        .collect())
}

/// Wait until no other session is connected to `names` (a few seconds: pgdr's own sessions
/// take a moment to end); with `terminate`, end them with pg_terminate_backend.
async fn clear_sessions(
    client: &Client,
    names: &[&str],
    terminate: bool,
    what: &str,
) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(if terminate { 15 } else { 3 });
    loop {
        let s = sessions(client, names).await?;
        if s.is_empty() {
            return Ok(());
        }
        if terminate {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            client
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                      WHERE datname = ANY($1) AND pid <> pg_backend_pid()",
                    &[&names],
                )
                .await
                .map_err(|e| {
                    PgdrError::database(format!("terminating sessions: {}", db_message(&e)))
                })?;
        }
        if std::time::Instant::now() > deadline {
            let list = describe_sessions(&s);
            return Err(if terminate {
                PgdrError::database(format!(
                    "{what}: sessions did not end after pg_terminate_backend: {list}"
                ))
                .hint("something reconnects at once; stop those applications and run again")
            } else {
                PgdrError::usage(format!(
                    "{what} needs {} free of other sessions; connected: {list}",
                    names.join(" and ")
                ))
                .hint("stop those applications, or add --terminate to end their sessions (pg_terminate_backend)")
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn drop_database(client: &Client, name: &str, force: bool) -> Result<()> {
    let sql = if force {
        format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", qi(name))
    } else {
        format!("DROP DATABASE IF EXISTS {}", qi(name))
    };
    client.batch_execute(&sql).await.map_err(|e| {
        let err = PgdrError::database(format!("dropping database '{name}': {}", db_message(&e)));
        if e.code().map(|c| c.code()) == Some("55006") {
            err.hint("other sessions are connected; stop them, or add --terminate")
        } else {
            err
        }
    })
}

/// The repository database to restore from: --database, the one configured, the only one in
/// the repository, or the one named like the target.
async fn repo_database(
    catalog: &Catalog,
    settings: &Settings,
    opts: &RestoreOptions,
    target_name: &str,
) -> Result<Option<String>> {
    if let Some(d) = &opts.database {
        return Ok(Some(d.clone()));
    }
    if settings.databases.len() == 1 {
        return Ok(Some(settings.databases[0].name.clone()));
    }
    let mut names = catalog.databases().await?;
    let by_id = matches!(opts.selection, Selection::Id(_));
    match names.len() {
        1 => Ok(Some(names.remove(0))),
        _ if names.iter().any(|n| n == target_name) => Ok(Some(target_name.to_string())),
        _ if by_id => Ok(None),
        0 => Err(PgdrError::not_found(format!(
            "no backups in {}",
            catalog.describe()
        ))
        .hint("check --repo (and the S3 credentials): `pgdr list` shows what the repository holds")),
        _ => Err(PgdrError::usage(format!(
            "the repository holds backups of several databases ({}); which one should be restored?",
            names.join(", ")
        ))
        .hint("add --database NAME")),
    }
}

async fn select_backup(
    catalog: &Catalog,
    settings: &Settings,
    opts: &RestoreOptions,
    target_name: &str,
) -> Result<Entry> {
    let db = repo_database(catalog, settings, opts, target_name).await?;
    let pick = match &opts.selection {
        Selection::Id(id) => Pick::Id(id),
        Selection::Latest => Pick::Latest,
        Selection::Before(t) => Pick::Before(*t),
    };
    catalog.select(db.as_deref(), pick).await
}

/// Find the backup, inspect the target, decide. Changes nothing anywhere.
pub async fn prepare(settings: &Settings, opts: &RestoreOptions) -> Result<Plan> {
    let target = target_database(&opts.target_url)?;
    let name = target.conn.get_dbname().unwrap_or_default().to_string();
    let swap = opts.mode != ModeFlag::None;
    let planned_at = Utc::now();
    let previous = format!("{name}_pre_restore_{}", planned_at.format("%Y%m%d%H%M%S"));
    if name.len() > MAX_NAME || (swap && previous.len() > MAX_NAME) {
        return Err(PgdrError::usage(format!(
            "target database name '{name}' is too long{}",
            if swap {
                format!(" for --swap/--clean ('{previous}' exceeds PostgreSQL's {MAX_NAME} bytes)")
            } else {
                String::new()
            }
        ))
        .hint("restore under a shorter name: end --target with /NEWNAME"));
    }
    let ids: Identities = Arc::new(codec::require_identities(settings.identity.as_deref())?);
    let catalog = Catalog::open(settings).await?;
    let entry = select_backup(&catalog, settings, opts, &name).await?;
    let m = entry.manifest.clone();
    // Proves the identity (and the repository) before anything is touched.
    let globals_sql = restore::fetch_globals(&catalog, &m, ids.clone())
        .await
        .map_err(|e| e.context(format!("backup {}", m.id)))?;
    // Statements pg_dumpall does not emit refuse the backup before the target is touched.
    let parsed =
        restore::globals::parse(&globals_sql).map_err(|e| e.context(format!("backup {}", m.id)))?;
    // Setting values and comments, to replay and compare, from their encrypted object.
    let m = crate::restore::sensitive::reveal(&catalog, &m, ids.clone())
        .await
        .map_err(|e| e.context(format!("backup {}", m.id)))?;

    let (maintenance, client) = connect_maintenance(&target).await?;
    let info = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int,
                    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
            &[],
        )
        .await
        .map_err(|e| {
            PgdrError::database(format!("reading the target server: {}", db_message(&e)))
        })?;
    let server_version: String = info.get::<_, String>(0);
    // "15.18 (Debian 15.18-0+deb12u1)" → "15.18"
    let server_version = server_version
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let server_major = (info.get::<_, i32>(1) / 10000) as u32;
    let superuser: bool = info.get(2);
    let backup_major = m.source.major();
    if server_major < backup_major {
        return Err(PgdrError::usage(format!(
            "target server {} runs PostgreSQL {server_version}, older than the backup's {}",
            maintenance.describe(),
            m.source.server_version
        ))
        .hint("restore into a server of the same major version or newer"));
    }
    let tool = crate::scratch::pg_restore(server_major.max(backup_major), &settings.scratch)?;
    let bin_dir = tool.path.parent().expect("a file").to_path_buf();

    let roles_preview = restore::roles::preview(&client, &parsed, &m, opts.roles).await?;
    let state = inspect(&client, &target, &name).await?;
    let mut notes = Vec::new();
    let mode = match (&state, opts.mode) {
        (TargetState::Missing, flag) => {
            if flag != ModeFlag::None {
                notes.push(format!(
                    "database '{name}' does not exist: it is created; --clean/--swap have nothing to do"
                ));
            }
            RestoreMode::Create
        }
        (_, ModeFlag::Swap) => RestoreMode::Swap,
        (_, ModeFlag::Clean) => RestoreMode::Clean,
        (TargetState::Empty, ModeFlag::None) => RestoreMode::ReplaceEmpty,
        (TargetState::NonEmpty(n), ModeFlag::None) => {
            return Err(PgdrError::usage(format!(
                "target database '{name}' on {} is not empty ({}); pgdr restore replaces only a database without user objects unless told to",
                maintenance.describe().rsplit_once('/').map(|x| x.0).unwrap_or("the server"),
                TargetState::describe(n)
            ))
            .hint(format!("add --swap to restore beside it, prove the copy, then rename it to {name}_pre_restore_<time> and the copy into its place (the original stays untouched until then)"))
            .hint("or add --clean to do the same and then drop the original")
            .hint("or restore under another name: end --target with /NEWNAME"));
        }
    };
    let beside = matches!(mode, RestoreMode::Swap | RestoreMode::Clean);
    let restore_name = if beside {
        format!("{name}_restoring")
    } else {
        name.clone()
    };
    let (host, port, _) = address(&target);
    let server = format!("{host}:{port}");
    let leftover = if beside {
        target::leftover(&client, &catalog, &m.database, &server, &restore_name).await?
    } else {
        None
    };
    let is_source = settings
        .databases
        .iter()
        .any(|d| address(d) == address(&target));
    let sessions = if state == TargetState::Missing {
        Vec::new()
    } else {
        sessions(&client, &[&name]).await?
    };
    let jobs = opts.jobs.unwrap_or(1).max(1);
    let spool = if jobs > 1 {
        let dir = restore::spool::dir(opts.spool_dir.as_deref());
        let need = restore::spool::needed_bytes(m.object("dump").map_or(0, |d| d.raw_bytes));
        let free = restore::spool::check_space(&dir, need)?;
        Some((dir, need, free))
    } else {
        if opts.spool_dir.is_some() {
            notes.push(
                "--spool-dir has no effect without --jobs N (N > 1): the dump is streamed".into(),
            );
        }
        None
    };
    if !superuser {
        notes.push(format!(
            "the target role {} is not a superuser: roles, owners and some privileges may not restore",
            target.conn.get_user().unwrap_or("?")
        ));
    }
    if opts.terminate && matches!(mode, RestoreMode::Create) {
        notes.push("--terminate has nothing to do: no database is dropped or renamed".into());
    }
    Ok(Plan {
        manifest: m,
        verification: entry.verification,
        target,
        maintenance,
        server_version,
        superuser,
        name,
        state,
        mode,
        restore_name,
        previous_name: beside.then_some(previous),
        leftover,
        server,
        is_source,
        sessions,
        bin_dir,
        jobs,
        spool,
        roles: opts.roles,
        roles_preview,
        verify: opts.verify,
        terminate: opts.terminate,
        show_progress: opts.show_progress,
        notes,
        planned_at,
        globals_sql,
        ids,
        catalog,
    })
}

fn mode_word(m: RestoreMode) -> &'static str {
    match m {
        RestoreMode::Create => "create (the database does not exist)",
        RestoreMode::ReplaceEmpty => {
            "replace (the database exists without any user object: dropped and created again)"
        }
        RestoreMode::Clean => {
            "clean (restore beside it, prove, rename into place, then drop the original)"
        }
        RestoreMode::Swap => "swap (restore beside it, prove, then rename into place)",
    }
}

impl Plan {
    /// The mark of this run's `<name>_restoring` in the repository.
    fn mark(&self, oid: Option<u32>) -> crate::catalog::restoring::RestoringMark {
        crate::catalog::restoring::RestoringMark {
            server: self.server.clone(),
            database: self.restore_name.clone(),
            oid,
            started_at: Utc::now(),
            host: records::hostname(),
            pid: std::process::id(),
        }
    }

    fn table_count(&self) -> (usize, u64) {
        self.manifest.fingerprint.as_ref().map_or((0, 0), |f| {
            (
                f.data.tables.len(),
                f.data.tables.iter().map(|t| t.rows).sum(),
            )
        })
    }

    /// The plan in operator words (never the password).
    pub fn render(&self) -> String {
        let m = &self.manifest;
        let mut s = String::from("restore plan (nothing has been changed yet)\n");
        let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<12} {v}\n"));
        let verified = match &self.verification {
            None => "never verified".to_string(),
            Some(v) => format!(
                "last verification {} ({}, {})",
                serde_json::to_value(v.outcome)
                    .ok()
                    .and_then(|x| x.as_str().map(String::from))
                    .unwrap_or_default(),
                serde_json::to_value(v.mode)
                    .ok()
                    .and_then(|x| x.as_str().map(String::from))
                    .unwrap_or_default(),
                v.finished_at.format("%Y-%m-%d %H:%M")
            ),
        };
        line(
            "backup",
            format!("{} of '{}' ({verified})", m.id, m.database),
        );
        let age = (self.planned_at - m.snapshot.time).num_milliseconds() as f64 / 1000.0;
        line(
            "snapshot",
            format!(
                "{} ({} ago): the data-loss point; changes made after it are not in this backup",
                m.snapshot.time.format("%Y-%m-%d %H:%M:%S UTC"),
                human_duration(age)
            ),
        );
        let dump = m.object("dump");
        line(
            "dump",
            format!(
                "{} (stored {}), from PostgreSQL {}, database owner {}",
                human_bytes(dump.map_or(0, |d| d.raw_bytes)),
                human_bytes(m.objects.iter().map(|o| o.stored_bytes).sum()),
                m.source
                    .server_version
                    .split_whitespace()
                    .next()
                    .unwrap_or_default(),
                m.source.database_owner
            ),
        );
        line(
            "target",
            format!(
                "{} (PostgreSQL {})",
                self.target.describe(),
                self.server_version
            ),
        );
        line(
            "target now",
            match &self.state {
                TargetState::Missing => format!("database '{}' does not exist", self.name),
                TargetState::Empty => {
                    format!("database '{}' exists, without any user object", self.name)
                }
                TargetState::NonEmpty(n) => {
                    format!(
                        "database '{}' exists with {}",
                        self.name,
                        TargetState::describe(n)
                    )
                }
            },
        );
        if !self.sessions.is_empty() {
            line("sessions", describe_sessions(&self.sessions));
        }
        line("mode", mode_word(self.mode).to_string());
        s.push_str("  steps\n");
        let mut steps: Vec<String> = Vec::new();
        steps.push(match self.roles {
            RolesMode::Merge => "roles: create missing roles and memberships from the backup; existing roles get the backup's settings, comments and memberships, keep their attributes and passwords (--roles=merge)".into(),
            RolesMode::Keep => "roles: create missing roles and memberships from the backup; existing roles are kept as they are (--roles=keep)".into(),
            RolesMode::Overwrite => "roles: create missing roles; make every existing role equal to the backup's: attributes, password, settings, comments, memberships (--roles=overwrite)".into(),
        });
        let force = if self.terminate {
            "terminating other sessions (--terminate)"
        } else {
            "fails if other sessions are connected (add --terminate to end them)"
        };
        match self.mode {
            RestoreMode::Create => {}
            RestoreMode::ReplaceEmpty => {
                steps.push(format!("DROP DATABASE {}: {force}", self.name))
            }
            RestoreMode::Swap | RestoreMode::Clean => {
                if let Some(l) = &self.leftover {
                    steps.push(format!(
                        "DROP DATABASE {}: left by an interrupted pgdr restore (started {} on {}, pid {}); {force}",
                        l.name,
                        l.mark.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        l.mark.host,
                        l.mark.pid
                    ))
                }
            }
        }
        steps.push(format!(
            "create database {} owned by {}",
            self.restore_name, m.source.database_owner
        ));
        steps.push(match &self.spool {
            None => "pg_restore, streamed from the repository (no local copy)".into(),
            Some((dir, need, free)) => format!(
                "fetch the dump into a spool file in {} (needs {}, {} free; removed afterwards), then pg_restore -j {}",
                dir.display(),
                human_bytes(*need),
                human_bytes(*free),
                self.jobs
            ),
        });
        steps.push(match crate::restore::dbprops::recorded(m) {
            Some(_) => "replay the database's settings, comment and ACL recorded in the backup".into(),
            None => "database-level properties (ALTER DATABASE ... SET, comment, ACL): the backup records none, so none are replayed".into(),
        });
        let (tables, rows) = self.table_count();
        if self.verify {
            steps.push(format!(
                "prove: recompute row counts and digests of {tables} tables ({rows} rows) and compare with the backup's fingerprint"
            ));
        } else {
            steps.push("no proof (--no-verify)".into());
        }
        if let (RestoreMode::Swap | RestoreMode::Clean, Some(prev)) =
            (self.mode, &self.previous_name)
        {
            let how = if self.terminate {
                "terminating other sessions first (--terminate)"
            } else {
                "needs both databases free of other sessions (add --terminate to end them)"
            };
            steps.push(format!(
                "only if proven: in one transaction rename {} → {prev} and {} → {}; {how}",
                self.name, self.restore_name, self.name
            ));
            if self.mode == RestoreMode::Clean {
                steps.push(format!(
                    "then DROP DATABASE {prev} (the original, once the copy is in its place)"
                ));
            }
        }
        for (i, st) in steps.iter().enumerate() {
            s.push_str(&format!("    {}. {st}\n", i + 1));
        }
        for r in &self.roles_preview {
            s.push_str(&format!("  roles: {r}\n"));
        }
        for n in &self.notes {
            s.push_str(&format!("  note: {n}\n"));
        }
        if self.is_source {
            s.push_str(&format!(
                "  CAUTION: '{}' is a configured source database: confirm by typing its name (or --confirm {})\n",
                self.name, self.name
            ));
        }
        s
    }

    pub fn to_json(&self) -> serde_json::Value {
        let m = &self.manifest;
        serde_json::json!({
            "backup_id": m.id,
            "database": m.database,
            "snapshot_time": m.snapshot.time,
            "snapshot_age_seconds": (self.planned_at - m.snapshot.time).num_milliseconds() as f64 / 1000.0,
            "dump_bytes": m.object("dump").map_or(0, |d| d.raw_bytes),
            "target": self.target.describe(),
            "target_server_version": self.server_version,
            "target_state": match &self.state {
                TargetState::Missing => "missing".to_string(),
                TargetState::Empty => "empty".to_string(),
                TargetState::NonEmpty(n) => TargetState::describe(n),
            },
            "target_contents": match &self.state {
                TargetState::NonEmpty(n) => n.iter().map(|(k, c)| (k.clone(), *c)).collect(),
                _ => std::collections::BTreeMap::<String, i64>::new(),
            },
            "drops_leftover": self.leftover.as_ref().map(|l| l.name.clone()),
            "mode": self.mode,
            "restore_into": self.restore_name,
            "previous_kept_as": self.previous_name,
            "jobs": self.jobs,
            "roles": self.roles,
            "roles_plan": self.roles_preview,
            "verify": self.verify,
            "terminate": self.terminate,
            "requires_confirm_name": self.is_source,
            "notes": self.notes,
        })
    }
}

/// What happened, for the summary, the record and the exit status.
pub struct RestoreReport {
    pub record: RestoreRecord,
    pub engine: Option<EngineReport>,
    pub error: Option<PgdrError>,
    /// Where the record went, or why it could not be written.
    pub record_key: std::result::Result<String, String>,
    pub notes: Vec<String>,
    /// From the manifest, for the summary.
    pub tables: usize,
    pub rows: u64,
}

impl RestoreReport {
    pub fn exit_code(&self) -> i32 {
        use crate::error::exit;
        match self.record.outcome {
            RestoreOutcome::Restored | RestoreOutcome::RestoredUnverified => exit::OK,
            RestoreOutcome::Differences => exit::CHECK_FAILED,
            RestoreOutcome::Failed => exit::COULD_NOT_RUN,
            RestoreOutcome::Interrupted => exit::INTERRUPTED,
        }
    }

    pub fn render(&self) -> String {
        let r = &self.record;
        let mut s = String::new();
        let head = match r.outcome {
            RestoreOutcome::Restored => "restored and proven",
            RestoreOutcome::RestoredUnverified => "restored (not proven: --no-verify)",
            RestoreOutcome::Differences => "restored, but the copy DIFFERS from the backup",
            RestoreOutcome::Failed => "restore FAILED",
            RestoreOutcome::Interrupted => "restore INTERRUPTED",
        };
        s.push_str(&format!(
            "{head}: backup {} of '{}' into {}\n",
            r.backup_id, r.database, r.target
        ));
        let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<16} {v}\n"));
        let phases: Vec<String> = r
            .phases
            .iter()
            .map(|p| format!("{} {}", p.name, human_duration(p.seconds)))
            .collect();
        line("phases", phases.join(", "));
        line(
            "total (RTO)",
            if r.total_seconds < 60.0 {
                human_duration(r.total_seconds)
            } else {
                format!(
                    "{} ({:.0}s)",
                    human_duration(r.total_seconds),
                    r.total_seconds
                )
            },
        );
        line(
            "snapshot (RPO)",
            format!(
                "{}: changes of the last {} (before this restore finished) are not in it",
                r.snapshot_time.format("%Y-%m-%d %H:%M:%S UTC"),
                human_duration(r.rpo_seconds)
            ),
        );
        match r.outcome {
            RestoreOutcome::Restored => line(
                "proof",
                format!(
                    "fingerprint equal: {} tables, {} rows{}",
                    self.tables,
                    self.rows,
                    crate::restore::roles::kept_suffix(&r.roles_kept)
                ),
            ),
            RestoreOutcome::Differences => {
                line("proof", format!("{} difference(s):", r.differences.len()));
                for d in &r.differences {
                    s.push_str(&format!("    {d}\n"));
                }
            }
            _ => {}
        }
        let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<16} {v}\n"));
        if let Some(e) = &self.engine {
            if !e.roles_created.is_empty() {
                line("roles created", e.roles_created.join(", "));
            }
            for k in &e.roles_kept {
                line("roles", k.clone());
            }
            if !e.memberships_added.is_empty() {
                line("memberships", e.memberships_added.join(", "));
            }
            for g in &e.globals_errors {
                line("roles warning", g.clone());
            }
            if !e.properties.is_empty() {
                line(
                    "db properties",
                    format!("{} statement(s) replayed", e.properties.len()),
                );
            }
            for p in &e.properties_skipped {
                line("db properties", p.clone());
            }
        }
        if let Some(prev) = &r.previous_kept_as {
            line(
                "previous data",
                format!("kept as database {prev} (drop it when no longer needed)"),
            );
        }
        for n in &self.notes {
            line("note", n.clone());
        }
        match &self.record_key {
            Ok(k) => line("record", k.clone()),
            Err(e) => line("record", format!("NOT stored: {e}")),
        }
        s
    }
}

struct Progress {
    /// `--clean` (or an empty target) was dropped.
    dropped_original: bool,
    restored: bool,
    engine: EngineReport,
    notes: Vec<String>,
}

async fn restore_and_prove(
    plan: &Plan,
    timer: &mut PhaseTimer,
    progress: &mut Progress,
) -> Result<Vec<String>> {
    let client = crate::source::connect(&plan.maintenance).await?;
    match plan.mode {
        RestoreMode::Create => {}
        RestoreMode::ReplaceEmpty => {
            clear_sessions(
                &client,
                &[&plan.name],
                plan.terminate,
                &format!("DROP DATABASE {}", plan.name),
            )
            .await?;
            drop_database(&client, &plan.name, plan.terminate).await?;
            progress.dropped_original = true;
            timer.done("drop");
        }
        RestoreMode::Swap | RestoreMode::Clean => {
            if plan.mode == RestoreMode::Clean && !plan.terminate {
                // Fail before the restore, not after it, when the original cannot be replaced.
                let what = format!("replacing {} (--clean)", plan.name);
                clear_sessions(&client, &[&plan.name], false, &what).await?;
            }
            // Checked again: the plan may be minutes old. Only a leftover pgdr marked is
            // dropped, never the live database and never a database pgdr did not make.
            let repo_db = &plan.manifest.database;
            if let Some(l) = target::leftover(
                &client,
                &plan.catalog,
                repo_db,
                &plan.server,
                &plan.restore_name,
            )
            .await?
            {
                let what = format!("dropping the leftover {}", l.name);
                clear_sessions(&client, &[&l.name], plan.terminate, &what).await?;
                drop_database(&client, &l.name, plan.terminate).await?;
                timer.done("drop");
            }
            plan.catalog
                .write_restoring_mark(repo_db, &plan.mark(None))
                .await
                .map_err(|e| e.context("marking the restore in progress in the repository"))?;
        }
    }
    let target = restore::Target {
        maintenance: plan.maintenance.clone(),
        dbname: plan.restore_name.clone(),
        bin_dir: plan.bin_dir.clone(),
    };
    let opts = EngineOptions {
        fingerprint_archive: false,
        roles: plan.roles,
        jobs: Some(plan.jobs),
        spool_dir: plan.spool.as_ref().map(|s| s.0.clone()),
        database_properties: true,
        show_progress: plan.show_progress,
        single_transaction: false,
    };
    restore::restore_with(
        &plan.catalog,
        &plan.manifest,
        plan.ids.clone(),
        &target,
        &opts,
        Some(plan.globals_sql.clone()),
        timer,
        &mut progress.engine,
    )
    .await?;
    progress.restored = true;
    if matches!(plan.mode, RestoreMode::Swap | RestoreMode::Clean) {
        // Now that it exists, the mark names its OID: a database someone makes under the
        // same name later is not taken for ours.
        if let Ok(Some(oid)) = target::oid(&client, &plan.restore_name).await {
            let mark = plan.mark(Some(oid));
            if let Err(e) = plan
                .catalog
                .write_restoring_mark(&plan.manifest.database, &mark)
                .await
            {
                tracing::warn!(error = %e, "could not record the OID in the restore mark");
            }
        }
    }
    if !plan.verify {
        // The changes to the connecting role still run, last.
        restore::roles_proof(&target, &mut progress.engine).await?;
        return Ok(Vec::new());
    }
    let kept = progress.engine.kept_role_names.clone();
    let mut diffs = prove(&target, &plan.manifest, &kept, &mut progress.notes)
        .await
        .map_err(|e| e.context("restored, but the proof could not run"))?;
    // Roles compared with the backup's globals: a remaining difference is a finding unless
    // --roles kept it (then listed as kept, in the summary and the record).
    let roles = restore::roles_proof(&target, &mut progress.engine)
        .await
        .map_err(|e| e.context("restored, but the roles proof could not run"))?;
    diffs.extend(roles);
    timer.done("verify");
    Ok(diffs)
}

/// Compare the restored database with the backup's fingerprint as `verify` does, including
/// the database-level properties (replayed by the engine). Differences of existing roles that
/// were deliberately kept as they are (`--roles=skip-existing`) are notes, not differences.
async fn prove(
    target: &crate::restore::Target,
    m: &Manifest,
    kept_roles: &[String],
    notes: &mut Vec<String>,
) -> Result<Vec<String>> {
    let opts = crate::fingerprint::schema::DiffOptions {
        database_properties: true,
        ..Default::default()
    };
    let mut diffs = Vec::new();
    for d in crate::verify::compare_restored(target, m, &opts).await? {
        if kept_roles
            .iter()
            .any(|r| d.starts_with(&format!("role {r}:")))
        {
            notes.push(format!("{d} (an existing role, kept as is)"));
        } else {
            diffs.push(d);
        }
    }
    Ok(diffs)
}

/// Rename the old database away and the proven copy into place, in one transaction.
async fn swap(plan: &Plan, previous: &str) -> Result<()> {
    let mut client = crate::source::connect(&plan.maintenance).await?;
    let sql1 = format!(
        "ALTER DATABASE {} RENAME TO {}",
        qi(&plan.name),
        qi(previous)
    );
    let sql2 = format!(
        "ALTER DATABASE {} RENAME TO {}",
        qi(&plan.restore_name),
        qi(&plan.name)
    );
    let mut attempt = 0;
    loop {
        attempt += 1;
        clear_sessions(
            &client,
            &[&plan.name, &plan.restore_name],
            plan.terminate,
            "the swap (ALTER DATABASE ... RENAME)",
        )
        .await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| PgdrError::database(format!("swap: {}", db_message(&e))))?;
        let r = match tx.batch_execute(&sql1).await {
            Ok(()) => match tx.batch_execute(&sql2).await {
                Ok(()) => tx.commit().await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => return Ok(()),
            // A session slipped in between the check and the rename.
            Err(e) if e.code().map(|c| c.code()) == Some("55006") && attempt < 10 => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                return Err(PgdrError::database(format!(
                    "swap: renaming the databases: {}",
                    db_message(&e)
                ))
                .hint("nothing was renamed: the original database is in place"))
            }
        }
    }
}

/// `--clean`, once the proven copy is in place: drop the original (renamed to `prev`). What
/// is still kept, if the drop fails.
async fn drop_previous(
    plan: &Plan,
    prev: &str,
    timer: &mut PhaseTimer,
    notes: &mut Vec<String>,
) -> Option<String> {
    let dropped = async {
        let c = crate::source::connect(&plan.maintenance).await?;
        clear_sessions(
            &c,
            &[prev],
            plan.terminate,
            &format!("DROP DATABASE {prev}"),
        )
        .await?;
        drop_database(&c, prev, plan.terminate).await
    }
    .await;
    match dropped {
        Ok(()) => {
            timer.done("drop");
            None
        }
        Err(e) => {
            notes.push(format!(
                "the restored copy is in place as '{}'; the original, renamed '{prev}', could not be dropped ({}): drop it by hand",
                plan.name, e.message
            ));
            Some(prev.to_string())
        }
    }
}

/// Run the plan. Never returns early without a report: every run that started is recorded.
pub async fn execute(plan: Plan, cancel: CancellationToken) -> RestoreReport {
    let started_at = Utc::now();
    let clock = std::time::Instant::now();
    let mut timer = PhaseTimer::default();
    let mut progress = Progress {
        dropped_original: false,
        restored: false,
        engine: EngineReport::default(),
        notes: Vec::new(),
    };
    // Prune keeps the backup while it is restored (a failure to mark is only logged: an
    // emergency restore does not wait on a repository write).
    let in_use = plan
        .catalog
        .mark_in_use(&plan.manifest.database, &plan.manifest.id, "restore")
        .await
        .map_err(|e| tracing::warn!(error = %e, "could not mark the backup in use"))
        .ok();
    let result = {
        let work = restore_and_prove(&plan, &mut timer, &mut progress);
        tokio::select! {
            r = work => Some(r),
            _ = cancel.cancelled() => None,
        }
    };
    let mut notes = std::mem::take(&mut progress.notes);
    let failed = !matches!(result, Some(Ok(_)));
    // Only an empty target is dropped before the restore; after a failure nothing is in its
    // place unless the restored copy is kept (its proof could not run).
    if failed
        && progress.dropped_original
        && (!progress.engine.created_database || discard(&plan, &progress))
    {
        notes.push(format!(
            "the previous '{}' (without any user object) was dropped before the failure; nothing is in its place",
            plan.name
        ));
    }
    let mut previous_kept_as = None;
    let (outcome, differences, error) = match result {
        Some(Ok(diffs)) if !diffs.is_empty() => {
            if matches!(plan.mode, RestoreMode::Swap | RestoreMode::Clean) {
                notes.push(format!(
                    "not swapped: the copy differs from the backup; '{}' is untouched, the copy is kept as '{}' for inspection (drop it when done)",
                    plan.name, plan.restore_name
                ));
            }
            (RestoreOutcome::Differences, diffs, None)
        }
        Some(Ok(_)) => {
            let swapped = match (plan.mode, &plan.previous_name) {
                (RestoreMode::Swap | RestoreMode::Clean, Some(prev)) => {
                    match swap(&plan, prev).await {
                        Ok(()) => {
                            timer.done("swap");
                            plan.catalog
                                .delete_restoring_mark(
                                    &plan.manifest.database,
                                    &plan.server,
                                    &plan.restore_name,
                                )
                                .await;
                            previous_kept_as = Some(prev.clone());
                            if plan.mode == RestoreMode::Clean {
                                previous_kept_as =
                                    drop_previous(&plan, prev, &mut timer, &mut notes).await;
                            }
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                _ => Ok(()),
            };
            match swapped {
                Ok(()) if plan.verify => (RestoreOutcome::Restored, Vec::new(), None),
                Ok(()) => (RestoreOutcome::RestoredUnverified, Vec::new(), None),
                Err(e) => {
                    notes.push(format!(
                        "'{}' is untouched and in place; the proven copy is kept as '{}': run the restore again with --terminate, or rename by hand once the sessions are gone",
                        plan.name, plan.restore_name
                    ));
                    (RestoreOutcome::Failed, Vec::new(), Some(e))
                }
            }
        }
        Some(Err(e)) => {
            if discard(&plan, &progress) {
                cleanup(&plan, &mut notes).await;
            }
            (RestoreOutcome::Failed, Vec::new(), Some(e))
        }
        None => {
            if discard(&plan, &progress) {
                cleanup(&plan, &mut notes).await;
            }
            (
                RestoreOutcome::Interrupted,
                Vec::new(),
                Some(PgdrError::new(
                    Kind::Interrupted,
                    "restore interrupted by a signal",
                )),
            )
        }
    };
    if let Some(u) = in_use {
        u.release().await;
    }
    let finished_at = Utc::now();
    let m = &plan.manifest;
    let (tables, rows) = plan.table_count();
    let engine = Some(progress.engine);
    let record = RestoreRecord {
        format_version: records::RECORD_FORMAT_VERSION,
        pgdr_version: env!("CARGO_PKG_VERSION").to_string(),
        database: m.database.clone(),
        backup_id: m.id.clone(),
        snapshot_time: m.snapshot.time,
        target: plan.target.describe(),
        mode: plan.mode,
        jobs: plan.jobs,
        outcome,
        started_at,
        finished_at,
        phases: timer.phases,
        total_seconds: clock.elapsed().as_secs_f64(),
        rpo_seconds: (finished_at - m.snapshot.time).num_milliseconds() as f64 / 1000.0,
        differences,
        error: error.as_ref().map(|e| e.message.clone()),
        previous_kept_as,
        roles_created: engine
            .as_ref()
            .map(|e| e.roles_created.clone())
            .unwrap_or_default(),
        roles_kept: engine
            .as_ref()
            .map(|e| e.roles_kept.clone())
            .unwrap_or_default(),
        host: records::hostname(),
    };
    let record_key = plan
        .catalog
        .write_restore(&record)
        .await
        .map_err(|e| e.message);
    RestoreReport {
        record,
        engine,
        error,
        record_key,
        notes,
        tables,
        rows,
    }
}

/// Whether a failed or interrupted run drops the database it restored into: only one this run
/// created (never a database it found), and for `--clean`/new databases only an unfinished one
/// (a restored copy whose proof could not run is kept).
fn discard(plan: &Plan, progress: &Progress) -> bool {
    progress.engine.created_database
        && (matches!(plan.mode, RestoreMode::Swap | RestoreMode::Clean) || !progress.restored)
}

/// After a failure or an interrupt: remove what this run created, never the original.
async fn cleanup(plan: &Plan, notes: &mut Vec<String>) {
    let what = match plan.mode {
        RestoreMode::Swap | RestoreMode::Clean => format!(
            "'{}' is untouched and in place; the unfinished copy '{}'",
            plan.name, plan.restore_name
        ),
        _ => format!("the partly restored database '{}'", plan.restore_name),
    };
    let dropped = async {
        let c = crate::source::connect(&plan.maintenance).await?;
        drop_database(&c, &plan.restore_name, true).await
    }
    .await;
    match dropped {
        Ok(()) => {
            if matches!(plan.mode, RestoreMode::Swap | RestoreMode::Clean) {
                plan.catalog
                    .delete_restoring_mark(
                        &plan.manifest.database,
                        &plan.server,
                        &plan.restore_name,
                    )
                    .await;
            }
            notes.push(format!("{what} was dropped"))
        }
        Err(e) => notes.push(format!(
            "{what} could not be dropped ({}); drop it by hand",
            e.message
        )),
    }
}

#[cfg(test)]
#[path = "restore_select_tests.rs"]
mod select_tests;

#[cfg(test)]
mod tests {
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
