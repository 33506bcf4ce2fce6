//! The plan: everything decided before anything is changed (the backup, the target's state,
//! the mode, the spool, the roles). `cli::restore_render` renders it.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::catalog::records::{self, RestoreMode};
use crate::catalog::{Catalog, Manifest};
use crate::codec::{self, Identities};
use crate::config::{Database, Settings};
use crate::error::{PgdrError, Result};
use crate::restore::{self, db_message, RolesMode};
use tokio_postgres::Client;

use super::select::select_backup;
use super::target::{self, address, connect_maintenance, inspect, sessions};
use super::target::{Leftover, Sessions, TargetState};
use super::{ModeFlag, RestoreOptions};

/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
const MAX_NAME: usize = 63;

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
    /// A target without SUPERUSER (or `--managed`): every decision made for it.
    pub managed: Option<Arc<crate::restore::managed::ManagedPlan>>,
    /// Point-in-time restore: the changes replayed onto the anchor after its proof.
    pub point: Option<crate::restore::point::PointPlan>,
    pub(super) globals_sql: String,
    pub(super) ids: Identities,
    pub(super) catalog: Catalog,
    /// How the backup was accepted (signed by a trusted key, or let through): in the record.
    pub backup_signature: crate::catalog::format::signature::BackupSignature,
}

/// Parse `--target` like a source URL: password out of the URL into a secret, .pgpass and
/// PGPASSWORD honoured.
pub(crate) fn target_database(url: &str) -> Result<Database> {
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

/// Find the backup, inspect the target, decide. Changes nothing anywhere, but for putting
/// back the triggers an interrupted managed restore left disabled on the target.
pub async fn prepare(settings: &Settings, opts: &RestoreOptions) -> Result<Plan> {
    let target = target_database(&opts.target_url)?;
    let name = target.conn.get_dbname().unwrap_or_default().to_string();
    let (planned_at, previous) = previous_name(&name, opts)?;
    let (point, mut backup) = open_point_and_backup(settings, opts, &name).await?;
    let m = backup.manifest;
    let (maintenance, client) = connect_maintenance(&target).await?;
    let server_facts = read_server(&client, &maintenance, &m).await?;
    let bin_dir = client_tools(settings, server_facts.major.max(m.source.major()))?;
    let roles_preview = restore::roles::preview(&client, &backup.parsed, &m, opts.roles).await?;
    let state = inspect(&client, &target, &name).await?;
    let mut notes = super::managed::put_back_held(&backup.catalog, &m, &target, &state).await?;
    notes.append(&mut backup.notes);
    let managed = super::managed::plan_if(
        &client,
        &target,
        &state,
        &m,
        opts,
        server_facts.superuser,
        &previous,
    )
    .await?;
    let mode = super::managed::mode(managed.as_deref(), &state, opts.mode).map_or_else(
        || decide_mode(&state, opts.mode, &name, &maintenance, &mut notes),
        Ok,
    )?;
    let (beside, restore_name) = restore_name(mode, &name);
    let server = server_of(&target);
    let leftover = leftover_if(
        beside,
        &client,
        &backup.catalog,
        &m.database,
        &server,
        &restore_name,
    )
    .await?;
    let sessions = sessions_now(&client, &state, &name).await?;
    let jobs = opts.jobs.unwrap_or(1).max(1);
    let spool = plan_spool(opts, &m, jobs, &mut notes)?;
    // A managed plan names its own decisions instead of the generic warning.
    let superuser_or_planned = server_facts.superuser || managed.is_some();
    closing_notes(&target, superuser_or_planned, opts, mode, &mut notes);
    Ok(Plan {
        manifest: m,
        verification: backup.verification,
        is_source: is_source(settings, &target),
        target,
        maintenance,
        server_version: server_facts.version,
        superuser: server_facts.superuser,
        name,
        state,
        mode,
        restore_name,
        previous_name: beside.then_some(previous),
        leftover,
        server,
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
        managed,
        point,
        globals_sql: backup.globals_sql,
        ids: backup.ids,
        catalog: backup.catalog,
        backup_signature: backup.signature,
    })
}

/// Whether the restore goes beside the target (`<name>_restoring`, then renamed), and the
/// name it restores into.
fn restore_name(mode: RestoreMode, name: &str) -> (bool, String) {
    let beside = matches!(mode, RestoreMode::Swap | RestoreMode::Clean);
    let into = beside.then(|| format!("{name}_restoring"));
    (beside, into.unwrap_or_else(|| name.to_string()))
}

/// When the plan is made, and the name the previous database would be kept under (checked).
fn previous_name(name: &str, opts: &RestoreOptions) -> Result<(DateTime<Utc>, String)> {
    let planned_at = Utc::now();
    let previous = format!("{name}_pre_restore_{}", planned_at.format("%Y%m%d%H%M%S"));
    check_name_length(name, &previous, opts.mode != ModeFlag::None)?;
    Ok((planned_at, previous))
}

/// The plan says when the backup's origin is not proven: `--allow-unsigned`, or no trust key.
fn signature_note(s: &crate::catalog::format::signature::BackupSignature) -> Option<String> {
    use crate::catalog::format::signature::Acceptance;
    match s.acceptance {
        Acceptance::Trusted => None,
        Acceptance::AllowedUnsigned => Some(format!(
            "--allow-unsigned: restoring although {} (the record says so)",
            s.problem.as_deref().unwrap_or("the backup is not signed by a trusted key")
        )),
        Acceptance::NoTrustKeys => Some(match &s.key_id {
            None => "unsigned backup, no trust keys configured: its origin is not checked (set [trust] keys to refuse forgeries)".into(),
            Some(k) => format!("backup signed by key {k}, but no trust keys are configured: the signature is not checked"),
        }),
    }
}

/// `host:port` of the target server, as restore marks name it.
pub(super) fn server_of(target: &Database) -> String {
    let (host, port, _) = address(target);
    format!("{host}:{port}")
}

/// Sessions on the target database now (none when it does not exist).
async fn sessions_now(client: &Client, state: &TargetState, name: &str) -> Result<Vec<Sessions>> {
    match state {
        TargetState::Missing => Ok(Vec::new()),
        _ => sessions(client, &[name]).await,
    }
}

/// Whether the target is a configured source database (same host, port and name).
pub(super) fn is_source(settings: &Settings, target: &Database) -> bool {
    settings
        .databases
        .iter()
        .any(|d| address(d) == address(target))
}

/// The target's name, and for `--swap`/`--clean` the name the original is renamed to, must
/// fit PostgreSQL's identifier limit.
fn check_name_length(name: &str, previous: &str, swap: bool) -> Result<()> {
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
    Ok(())
}

/// The selected backup, opened: its globals decrypted and parsed, its sensitive parts
/// revealed. Proves the identity (and the repository) before the target is touched.
pub(super) struct Backup {
    pub(super) manifest: Manifest,
    verification: Option<crate::catalog::VerificationRecord>,
    pub(super) globals_sql: String,
    parsed: Vec<restore::globals::Statement>,
    pub(super) ids: Identities,
    pub(super) catalog: Catalog,
    pub(super) signature: crate::catalog::format::signature::BackupSignature,
    /// The plan's first notes: the signature's (when not proven), `--before`'s.
    pub(super) notes: Vec<String>,
}

pub(super) async fn open_backup(
    settings: &Settings,
    opts: &RestoreOptions,
    name: &str,
) -> Result<Backup> {
    let ids: Identities = Arc::new(codec::require_identities(&settings.identities)?);
    let catalog = Catalog::open(settings).await?;
    let entry = select_backup(&catalog, settings, opts, name).await?;
    // A backup no trusted key signed is refused before anything is decrypted or touched.
    let signature = catalog.authenticate(&entry.manifest).await?;
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
    Ok(Backup {
        manifest: m,
        verification: entry.verification,
        notes: Vec::from_iter(signature_note(&signature)),
        signature,
        globals_sql,
        parsed,
        ids,
        catalog,
    })
}

/// For `--at*`: the point's plan, and its anchor opened; otherwise the selected backup.
async fn open_point_and_backup(
    settings: &Settings,
    opts: &RestoreOptions,
    name: &str,
) -> Result<(Option<crate::restore::point::PointPlan>, Backup)> {
    let Some(spec) = &opts.at else {
        let mut backup = open_backup(settings, opts, name).await?;
        backup
            .notes
            .extend(super::select::before_note(settings, opts, name).await);
        return Ok((None, backup));
    };
    let catalog = Catalog::open(settings).await?;
    let point = super::select::point_plan(&catalog, settings, opts, name, spec).await?;
    let mut backup_opts = opts.clone();
    backup_opts.selection = super::Selection::Id(point.anchor.id.clone());
    let backup = open_backup(settings, &backup_opts, name).await?;
    Ok((Some(point), backup))
}

/// What the plan needs to know of the target server.
pub(super) struct ServerFacts {
    /// "15.18"
    pub(super) version: String,
    pub(super) major: u32,
    pub(super) superuser: bool,
}

/// Read the target server's version and the connecting role; refuse a server older than the
/// backup's.
pub(super) async fn read_server(
    client: &Client,
    maintenance: &Database,
    m: &Manifest,
) -> Result<ServerFacts> {
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
    Ok(ServerFacts {
        version: server_version,
        major: server_major,
        superuser,
    })
}

/// The restore mode from the target's state and `--clean`/`--swap`: a non-empty database is
/// never written into without one of them.
fn decide_mode(
    state: &TargetState,
    flag: ModeFlag,
    name: &str,
    maintenance: &Database,
    notes: &mut Vec<String>,
) -> Result<RestoreMode> {
    Ok(match (state, flag) {
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
    })
}

/// With `--jobs N` (N > 1) the dump goes through a spool file: where, how much it needs and
/// how much is free (refused when it does not fit).
fn plan_spool(
    opts: &RestoreOptions,
    m: &Manifest,
    jobs: u32,
    notes: &mut Vec<String>,
) -> Result<Option<(PathBuf, u64, u64)>> {
    Ok(if jobs > 1 {
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
    })
}

/// Weaker guarantees and flags with nothing to do, for the operator.
fn closing_notes(
    target: &Database,
    superuser: bool,
    opts: &RestoreOptions,
    mode: RestoreMode,
    notes: &mut Vec<String>,
) {
    if !superuser {
        notes.push(format!(
            "the target role {} is not a superuser: roles, owners and some privileges may not restore",
            target.conn.get_user().unwrap_or("?")
        ));
    }
    if opts.terminate && matches!(mode, RestoreMode::Create) {
        notes.push("--terminate has nothing to do: no database is dropped or renamed".into());
    }
}

impl Plan {
    /// The mark of this run's `<name>_restoring` in the repository.
    pub(super) fn mark(&self, oid: Option<u32>) -> crate::catalog::restoring::RestoringMark {
        crate::catalog::restoring::RestoringMark {
            server: self.server.clone(),
            database: self.restore_name.clone(),
            oid,
            started_at: Utc::now(),
            host: records::hostname(),
            pid: std::process::id(),
        }
    }

    /// (tables, rows) the backup's fingerprint holds.
    pub fn table_count(&self) -> (usize, u64) {
        self.manifest.fingerprint.as_ref().map_or((0, 0), |f| {
            (
                f.data.tables.len(),
                f.data.tables.iter().map(|t| t.rows).sum(),
            )
        })
    }
}

/// For `--swap`/`--clean`: a `<name>_restoring` an interrupted pgdr restore left.
async fn leftover_if(
    beside: bool,
    client: &Client,
    catalog: &Catalog,
    repo_db: &str,
    server: &str,
    restore_name: &str,
) -> Result<Option<Leftover>> {
    if !beside {
        return Ok(None);
    }
    target::leftover(client, catalog, repo_db, server, restore_name).await
}

/// Where the PostgreSQL client tools for this major version are.
pub(super) fn client_tools(settings: &Settings, major: u32) -> Result<PathBuf> {
    let tool = crate::scratch::pg_restore(major, &settings.scratch)?;
    Ok(tool.path.parent().expect("a file").to_path_buf())
}
