//! `capture enable` and `capture disable`.

use chrono::Utc;
use serde::Serialize;
use tokio_postgres::Client;

use super::names::{admin_database, capture_name};
use super::preflight::{self, Preflight, NOT_CAPTURED};
use crate::catalog::format::capture::{CaptureState, CaptureStatus, CAPTURE_STATE_FORMAT};
use crate::catalog::Repository;
use crate::config::{Database, Settings};
use crate::error::{PgdrError, Result};
use crate::source::walsender::Walsender;
use crate::source::{self, Lsn};

#[derive(Debug, Clone, Default)]
pub struct EnableOptions {
    pub database: Option<String>,
    /// Owner/admin connection for the publication statements.
    pub admin_url: Option<String>,
    /// Print the setup statements, change nothing.
    pub print_sql: bool,
    /// How long backups wait for their anchor slot (kept from before, else 60 s).
    pub anchor_timeout: Option<std::time::Duration>,
    /// `--auto-add`: the runner adds new tables with a replica identity.
    pub auto_add: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnableReport {
    pub database: String,
    pub preflight: Preflight,
    /// The publication statements (run, or only printed with --print-sql).
    pub statements: Vec<String>,
    /// The state written to the repository; None with --print-sql.
    pub state: Option<CaptureState>,
    pub not_captured: Vec<String>,
}

pub async fn enable(settings: &Settings, opts: &EnableOptions) -> Result<Vec<EnableReport>> {
    let repo = Repository::open(settings).await?;
    let mut out = Vec::new();
    for db in settings.select(opts.database.as_deref())? {
        out.push(enable_one(&repo, db, opts).await?);
    }
    Ok(out)
}

async fn enable_one(
    repo: &Repository,
    db: &Database,
    opts: &EnableOptions,
) -> Result<EnableReport> {
    let name = capture_name(&db.name);
    let client = source::connect(db).await?;
    let slot_lsn = existing_slot(&client, &name).await?;
    let pre = preflight::run(&client, slot_lsn.is_some()).await?;
    if let Some(e) = pre.error(&db.name) {
        return Err(e);
    }
    // Only now: wal_level and REPLICATION are the likelier causes of a refused session.
    let mut walsender = Walsender::open(db).await?;
    let system = walsender.identify().await.map_err(|e| {
        e.hint("capture needs a direct replication connection (replication=database): on Supabase the direct host, not the pooler; pg_hba.conf needs a line for it")
    })?;
    let statements = publication_sql(&client, &name, &pre.tables).await?;
    let mut report = EnableReport {
        database: db.name.clone(),
        preflight: pre,
        statements,
        state: None,
        not_captured: NOT_CAPTURED.iter().map(|s| s.to_string()).collect(),
    };
    if opts.print_sql {
        return Ok(report);
    }
    let admin_url = opts.admin_url.as_deref().or(configured_admin(db));
    run_setup(db, &client, admin_url, &report.statements).await?;
    let start_lsn = match slot_lsn {
        Some(lsn) => lsn,
        None => {
            walsender
                .create_slot(&name, false, false)
                .await?
                .consistent_point
        }
    };
    let previous = repo.capture_state(&db.name).await?;
    let state = CaptureState {
        format_version: CAPTURE_STATE_FORMAT,
        database: db.name.clone(),
        status: CaptureStatus::Enabled,
        slot: name.clone(),
        publication: name,
        tables: report.preflight.tables.clone(),
        left_out: report.preflight.left_out.clone(),
        not_captured: report.not_captured.clone(),
        system_identifier: system.system_identifier,
        timeline: system.timeline,
        server_version_num: report.preflight.server_version_num,
        // Enabling again (new tables) keeps when and where the capture began.
        enabled_at: previous
            .as_ref()
            .filter(|p| p.enabled() && slot_lsn.is_some())
            .map_or_else(Utc::now, |p| p.enabled_at),
        start_lsn,
        anchor_timeout_seconds: opts
            .anchor_timeout
            .or(db.capture.anchor_timeout)
            .map(|d| d.as_secs().max(1))
            .or(previous.as_ref().map(|p| p.anchor_timeout_seconds))
            .unwrap_or(crate::source::anchor::DEFAULT_TIMEOUT.as_secs()),
        disabled_at: None,
        // The flag or the file turns it on; enabling again keeps it unless the file says no.
        auto_add: opts.auto_add
            || db
                .capture
                .auto_add
                .unwrap_or_else(|| previous.as_ref().is_some_and(|p| p.auto_add)),
    };
    repo.save_capture_state(&state).await?;
    report.state = Some(state);
    Ok(report)
}

/// The slot's confirmed position if pgdr's slot exists in this database already.
async fn existing_slot(client: &Client, name: &str) -> Result<Option<Lsn>> {
    let row = client
        .query_opt(
            "SELECT coalesce(confirmed_flush_lsn, restart_lsn)::text FROM pg_replication_slots
              WHERE slot_name = $1 AND database = current_database() AND plugin = 'pgoutput'",
            &[&name],
        )
        .await
        .map_err(|e| PgdrError::database(format!("reading replication slots: {e}")))?;
    row.and_then(|r| r.get::<_, Option<String>>(0))
        .map(|s| s.parse())
        .transpose()
}

/// The statements that make publication `name` list exactly `tables` with
/// `publish_via_partition_root`; none when it already does.
async fn publication_sql(client: &Client, name: &str, tables: &[String]) -> Result<Vec<String>> {
    let q = |e: tokio_postgres::Error| PgdrError::database(format!("reading publications: {e}"));
    let existing = client
        .query_opt(
            "SELECT pubviaroot, puballtables FROM pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await
        .map_err(q)?;
    let list = tables.join(", ");
    let Some(row) = existing else {
        let for_tables = if tables.is_empty() {
            String::new()
        } else {
            format!(" FOR TABLE {list}")
        };
        return Ok(vec![format!(
            "CREATE PUBLICATION {name}{for_tables} WITH (publish_via_partition_root = true);"
        )]);
    };
    let (via_root, all): (bool, bool) = (row.get(0), row.get(1));
    let mut current: Vec<String> = client
        .query(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_publication_tables
              WHERE pubname = $1",
            &[&name],
        )
        .await
        .map_err(q)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    current.sort();
    let mut out = Vec::new();
    if all {
        // Never FOR ALL TABLES: it makes UPDATE/DELETE fail on tables without replica identity.
        out.push(format!("DROP PUBLICATION {name};"));
        out.push(format!(
            "CREATE PUBLICATION {name} FOR TABLE {list} WITH (publish_via_partition_root = true);"
        ));
        return Ok(out);
    }
    if current != tables {
        out.push(if tables.is_empty() {
            format!("ALTER PUBLICATION {name} SET TABLE {};", current.join(", "))
        } else {
            format!("ALTER PUBLICATION {name} SET TABLE {list};")
        });
    }
    if !via_root {
        out.push(format!(
            "ALTER PUBLICATION {name} SET (publish_via_partition_root = true);"
        ));
    }
    Ok(out)
}

/// Run the publication statements: through `--admin-url` if given, else as the capture role
/// (enough where it owns the tables). A refusal names both ways out.
pub(crate) async fn run_setup(
    db: &Database,
    client: &Client,
    admin_url: Option<&str>,
    statements: &[String],
) -> Result<()> {
    if statements.is_empty() {
        return Ok(());
    }
    let admin = match admin_url {
        Some(url) => Some(source::connect(&admin_database(url, db)?).await?),
        None => None,
    };
    let c = admin.as_ref().unwrap_or(client);
    let sql = format!("BEGIN; {} COMMIT;", statements.join(" "));
    c.batch_execute(&sql).await.map_err(|e| {
        let code = e.code().map(|c| c.code().to_string());
        let err = PgdrError::database(format!(
            "setting up the publication of database '{}': {}",
            db.name,
            e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string())
        ));
        match (code.as_deref(), admin_url) {
            (Some("42501"), None) => err.hint(
                "CREATE PUBLICATION ... FOR TABLE needs the tables' owner: give --admin-url postgres://OWNER@HOST/DB, or run the statements of `pgdr capture enable --print-sql` as the owner and enable again",
            ),
            _ => err,
        }
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct DisableReport {
    pub database: String,
    pub slot_dropped: bool,
    pub publication_dropped: bool,
    pub state: Option<CaptureState>,
}

/// `[database.capture] admin_url`, used where no `--admin-url` (or PGDR_ADMIN_URL) is given.
pub(crate) fn configured_admin(db: &Database) -> Option<&str> {
    db.capture.admin_url.as_ref().map(|s| s.expose())
}

/// Drop slot and publication, mark the state disabled (kept as the record).
pub async fn disable(
    settings: &Settings,
    database: Option<&str>,
    admin_url: Option<&str>,
) -> Result<Vec<DisableReport>> {
    let repo = Repository::open(settings).await?;
    let mut out = Vec::new();
    for db in settings.select(database)? {
        let mut state = repo.capture_state(&db.name).await?;
        let name = capture_name(&db.name);
        let (slot, publication) = state.as_ref().map_or((name.clone(), name), |s| {
            (s.slot.clone(), s.publication.clone())
        });
        let client = source::connect(db).await?;
        let slot_dropped = drop_slot(&client, &slot).await?;
        let admin_url = admin_url.or(configured_admin(db));
        let publication_dropped = drop_publication(db, &client, admin_url, &publication).await?;
        if let Some(s) = state.as_mut() {
            s.status = CaptureStatus::Disabled;
            s.disabled_at = Some(Utc::now());
            repo.save_capture_state(s).await?;
        }
        out.push(DisableReport {
            database: db.name.clone(),
            slot_dropped,
            publication_dropped,
            state,
        });
    }
    Ok(out)
}

async fn drop_slot(client: &Client, slot: &str) -> Result<bool> {
    let r = client
        .query(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
              WHERE slot_name = $1 AND database = current_database()",
            &[&slot],
        )
        .await;
    match r {
        Ok(rows) => Ok(!rows.is_empty()),
        Err(e) => {
            let err = PgdrError::database(format!("dropping slot '{slot}': {e}"));
            Err(match e.code().map(|c| c.code()) {
                Some("55006") => {
                    err.hint("the capture runner still streams from it: stop it first")
                }
                _ => err,
            })
        }
    }
}

async fn drop_publication(
    db: &Database,
    client: &Client,
    admin_url: Option<&str>,
    publication: &str,
) -> Result<bool> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|e| PgdrError::database(format!("reading publications: {e}")))?
        .is_some();
    if exists {
        run_setup(
            db,
            client,
            admin_url,
            &[format!("DROP PUBLICATION {publication};")],
        )
        .await?;
    }
    Ok(exists)
}
