//! A one-shot command that runs a job (backup, verify, drill, prune, capture run/check) tells
//! the world like a daemon's run does (issue 20): heartbeats, webhooks and mail through the
//! shared `telemetry::alerts`, and the `--metrics-file` gauges, so a failing cron or
//! Kubernetes CronJob run is noticed. None of it changes the command's exit code.

use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::args::Cmd;
use super::capture::CaptureCmd;
use super::flags::Global;
use super::overrides;
use crate::catalog::Catalog;
use crate::config::notify::{NotifySettings, ProgressMode, DEFAULT_PROGRESS_INTERVAL};
use crate::config::Settings;
use crate::error::{exit, PgdrError};
use crate::progress::{human_bytes, Show};
use crate::telemetry::alerts::{hostname, Alerts};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::textfile::{self, RunEntry};
use crate::telemetry::webhook::Notification;

/// The first error the command reported while it ran: the alert's reason.
static FIRST_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// Called by `report_error`: keeps the first message (without hints) for the alert.
pub(super) fn remember(e: &PgdrError) {
    let mut first = FIRST_ERROR.lock().unwrap_or_else(|p| p.into_inner());
    first.get_or_insert_with(|| e.message.clone());
}

/// The job a command runs, if it runs one.
pub(super) fn job_of(cmd: &Cmd) -> Option<&'static str> {
    match cmd {
        Cmd::Backup(_) => Some("backup"),
        Cmd::Verify { .. } => Some("verify"),
        Cmd::Drill(a) if a.cmd.is_none() => Some("drill"),
        Cmd::Prune(a) if !a.dry_run => Some("prune"),
        Cmd::Capture(a) => match a.cmd {
            CaptureCmd::Run(_) | CaptureCmd::Check(_) => Some("capture"),
            _ => None,
        },
        _ => None,
    }
}

/// Run `command` between the start ping and the outcome's alerts and gauges.
pub(super) async fn around<F>(g: &Global, job: &'static str, command: F) -> Result<i32, PgdrError>
where
    F: Future<Output = Result<i32, PgdrError>>,
{
    // A config that does not load: the command itself says why; nothing to alert through.
    let Ok(settings) = Settings::load(&overrides(g)) else {
        return command.await;
    };
    let alerts = Alerts::for_settings(&settings, Arc::new(Metrics::new()));
    let textfile = g
        .metrics_file
        .clone()
        .or(settings.notify.metrics_textfile.clone());
    if alerts.is_empty() && textfile.is_none() {
        return command.await;
    }
    let database = match (&g.database, settings.databases.as_slice()) {
        (Some(d), _) => d.clone(),
        (None, [only]) => only.name.clone(),
        (None, _) => "all".to_string(),
    };
    let started_at = Utc::now();
    alerts.started(&database, job).await;
    let result = command.await;
    let finished_at = Utc::now();
    let code = match &result {
        Ok(c) => *c,
        Err(e) => e.exit_code(),
    };
    let error = match &result {
        Ok(c) if *c == exit::OK => None,
        Err(e) => Some(e.message.clone()),
        Ok(c) => Some(
            FIRST_ERROR
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_else(|| format!("exit code {c}")),
        ),
    };
    let (bytes, summary) = match (job, &error) {
        ("backup", None) => stored_since(&settings, g.database.as_deref(), started_at).await,
        _ => (None, None),
    };
    let n = Notification {
        source: "pgdr",
        database: database.clone(),
        job: job.to_string(),
        outcome: if error.is_some() {
            "failed"
        } else {
            "succeeded"
        },
        error: error.map(|e| interrupted(code).unwrap_or(e)),
        summary,
        started_at,
        finished_at,
        duration_seconds: (finished_at - started_at).num_milliseconds() as f64 / 1000.0,
        host: hostname(),
    };
    alerts.finished(job, &n).await;
    if let Some(path) = textfile {
        let entry = RunEntry {
            database,
            job: job.to_string(),
            success: !n.failed(),
            started_at,
            finished_at,
            bytes,
        };
        if let Err(e) = textfile::update(&path, &entry) {
            tracing::warn!(path = %path.display(), error = %e, "could not write the metrics file (the run's outcome is unchanged)");
        }
    }
    result
}

fn interrupted(code: i32) -> Option<String> {
    (code == exit::INTERRUPTED || code == exit::TERMINATED)
        .then(|| "interrupted by a signal".to_string())
}

/// The backups this run committed (started at or after `since`): their stored bytes and ids.
async fn stored_since(
    settings: &Settings,
    database: Option<&str>,
    since: DateTime<Utc>,
) -> (Option<u64>, Option<String>) {
    let Ok(catalog) = Catalog::open(settings).await else {
        return (None, None);
    };
    let Ok(dbs) = settings.select(database) else {
        return (None, None);
    };
    let (mut total, mut ids) = (0u64, Vec::new());
    for db in dbs {
        if let Ok(m) = catalog.latest(&db.name).await {
            if m.started_at >= since - chrono::Duration::seconds(1) {
                total += m.objects.iter().map(|o| o.stored_bytes).sum::<u64>();
                ids.push(m.id.to_string());
            }
        }
    }
    if ids.is_empty() {
        return (None, None);
    }
    let summary = format!("backup {}, {} stored", ids.join(", "), human_bytes(total));
    (Some(total), Some(summary))
}

/// `--progress` (or `[progress]`) for this process: `auto` is a bar on a terminal and nothing
/// elsewhere, except in the daemon, where it is a log line every interval.
pub(super) fn setup_progress(g: &Global, cmd: &Cmd) {
    // A config that does not read: the command says why; progress keeps its default.
    let file = g
        .config
        .as_deref()
        .and_then(|p| crate::config::load_file(p).ok())
        .and_then(|f| NotifySettings::resolve(&f).ok())
        .unwrap_or_default();
    let every = file.progress_interval.unwrap_or(DEFAULT_PROGRESS_INTERVAL);
    let show = match g.progress.unwrap_or(file.progress) {
        ProgressMode::Auto if matches!(cmd, Cmd::Daemon(_)) => Show::Log(every),
        ProgressMode::Auto => Show::Auto,
        ProgressMode::Bar => Show::Bar,
        ProgressMode::Log => Show::Log(every),
        ProgressMode::None => Show::Nothing,
    };
    crate::progress::configure(show);
}
