//! `pgdr capture run` and `pgdr capture check`: parsing and rendering (the rest of the
//! `capture` group is in `cli::capture`).

use std::time::Duration;

use clap::Args;

use super::Global;
use crate::capture::check::CheckReport;
use crate::capture::runner::RunReport;
use crate::commands::capture::{check, run};
use crate::config::Settings;
use crate::error::{exit, PgdrError};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Close a segment after this long (at a transaction boundary): "10s" (the default).
    #[arg(long, env = "PGDR_SEGMENT_AGE", value_name = "DURATION")]
    segment_age: Option<String>,
    /// Close a segment at this many plain bytes (at a transaction boundary); default 16 MiB.
    #[arg(long, env = "PGDR_SEGMENT_BYTES", value_name = "BYTES")]
    segment_bytes: Option<u64>,
    /// Write a heartbeat message after this long without changes: "10s" (the default).
    #[arg(long, env = "PGDR_HEARTBEAT", value_name = "DURATION")]
    heartbeat: Option<String>,
    /// Write a sample of every sequence into the stream this often: "5s" (the default).
    #[arg(long, env = "PGDR_SEQUENCE_SAMPLE", value_name = "DURATION")]
    sequence_sample: Option<String>,
    #[command(flatten)]
    pub(super) repo: super::flags::RepoArgs,
    #[command(flatten)]
    pub(super) source: super::flags::SourceArgs,
    #[command(flatten)]
    pub(super) encrypt: super::flags::EncryptArgs,
    #[command(flatten)]
    pub(super) sign: super::flags::SignArgs,
    #[command(flatten)]
    pub(super) job: super::flags::JobArgs,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// List every stored transaction (xid, commit LSN) in the JSON report.
    #[arg(long, env = "PGDR_LIST_TRANSACTIONS")]
    list_transactions: bool,
    #[command(flatten)]
    pub(super) repo: super::flags::RepoArgs,
    #[command(flatten)]
    pub(super) decrypt: super::flags::DecryptArgs,
    #[command(flatten)]
    pub(super) job: super::flags::JobArgs,
}

fn duration(v: &Option<String>, flag: &str, default: Duration) -> Result<Duration, PgdrError> {
    v.as_deref()
        .map(|t| crate::config::parse_duration(t, flag))
        .transpose()
        .map(|d| d.unwrap_or(default))
}

/// Runs until SIGINT or SIGTERM (`cancel`, cancelled by the process's one signal handler):
/// the open segment is then committed at a transaction boundary. The token stays cancelled,
/// so a signal that comes while the run is still starting (lease, recovery, connecting) stops
/// it as soon as the runner starts; a second handler of its own, installed only when the
/// runner first polled it, missed such a signal (the process's handler had taken it) and the
/// run went on after SIGTERM.
pub async fn run_capture(
    g: &Global,
    s: &Settings,
    a: &RunArgs,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<i32, PgdrError> {
    // Flags over `[database.capture]` over the built-in defaults.
    let configured = s
        .select(g.database.as_deref())?
        .first()
        .map(|db| crate::capture::settings::limits(&db.capture))
        .unwrap_or_default();
    let mut limits = configured.clone();
    limits.max_age = duration(&a.segment_age, "--segment-age", configured.max_age)?;
    limits.max_bytes = a.segment_bytes.unwrap_or(configured.max_bytes);
    limits.heartbeat_every = duration(&a.heartbeat, "--heartbeat", configured.heartbeat_every)?;
    limits.sequence_sample = duration(
        &a.sequence_sample,
        "--sequence-sample",
        configured.sequence_sample,
    )?;
    let r = run::run(s, g.database.as_deref(), limits, cancel.cancelled_owned()).await?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&r).expect("json"));
    } else {
        print!("{}", render_run(&r));
    }
    Ok(exit::OK)
}

fn render_run(r: &RunReport) -> String {
    let txns: u64 = r.segments.iter().map(|s| s.transactions).sum();
    let mut s = format!(
        "database '{}': {} segment(s), {txns} transaction(s) stored, durable {} -> {}\n",
        r.database,
        r.segments.len(),
        r.started_at,
        r.durable
    );
    if let Some(g) = &r.gap {
        s.push_str(&format!(
            "GAP {} to {} recorded ({:?}): capturing again from a new slot\n",
            g.from, g.to, g.cause
        ));
    }
    for a in &r.anchors {
        match (&a.backup_id, &a.error) {
            (Some(id), _) => s.push_str(&format!("anchored backup {id} ({})\n", a.reason)),
            (None, e) => s.push_str(&format!(
                "anchored backup FAILED ({}): {}; run `pgdr backup`\n",
                a.reason,
                e.as_deref().unwrap_or("unknown error")
            )),
        }
    }
    for f in &r.foreign_messages {
        s.push_str(&format!(
            "warning: message '{}' at {} has pgdr's prefix but pgdr did not write it (ignored)\n",
            f.prefix, f.lsn
        ));
    }
    s
}

pub async fn check_capture(g: &Global, s: &Settings, a: &CheckArgs) -> Result<i32, PgdrError> {
    let r = check::run(s, g.database.as_deref(), a.list_transactions).await?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&r).expect("json"));
    } else {
        print!("{}", render_check(&r));
    }
    Ok(if r.ok() { exit::OK } else { exit::CHECK_FAILED })
}

fn render_check(r: &CheckReport) -> String {
    let mut s = match (r.from, r.until) {
        (Some(f), Some(u)) => format!(
            "database '{}': {} segment(s), {} transaction(s), covering {f} to {u}\n",
            r.database, r.segments, r.transactions
        ),
        _ => format!("database '{}': no stored segments\n", r.database),
    };
    for g in &r.gaps {
        s.push_str(&format!("GAP {} to {}: {}", g.from, g.to, g.cause));
        if let Some(d) = &g.detail {
            s.push_str(&format!(" ({d})"));
        }
        s.push('\n');
    }
    for p in &r.problems {
        s.push_str(&format!("PROBLEM segment {}: {}\n", p.start, p.problem));
    }
    for c in &r.schema_changes {
        s.push_str(&format!(
            "schema change: {}.{} at {}: later points replay only from the next anchored backup\n",
            c.namespace, c.name, c.lsn
        ));
    }
    for f in &r.foreign_messages {
        s.push_str(&format!(
            "foreign message '{}' at {} (pgdr's prefix, not pgdr's)\n",
            f.prefix, f.lsn
        ));
    }
    s.push_str(if r.ok() { "ok\n" } else { "NOT COMPLETE\n" });
    s
}
