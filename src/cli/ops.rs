//! Parsing and rendering of the operations commands: prune, status, schedule, daemon.

use chrono::Utc;
use clap::Args;

use super::{overrides, report_error, Global};
use crate::commands;
use crate::config::Settings;
use crate::error::{exit, PgdrError};
use crate::progress::human_bytes;

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Print every backup with keep/delete and the rule that decided it; change nothing.
    #[arg(long, env = "PGDR_DRY_RUN")]
    pub(super) dry_run: bool,
    /// The plan (and what was done) as JSON on stdout.
    #[command(flatten)]
    pub(super) repo: super::flags::RepoArgs,
    #[command(flatten)]
    pub(super) source: super::flags::SourceArgs,
    #[command(flatten)]
    pub(super) job: super::flags::JobArgs,
}

pub async fn prune(g: &Global, a: &PruneArgs) -> Result<i32, PgdrError> {
    let settings = Settings::load(&overrides(g))?;
    let opts = commands::prune::PruneOptions {
        database: g.database.clone(),
        dry_run: a.dry_run,
    };
    let (plan, report) = commands::prune::run(&settings, &opts, Utc::now()).await?;
    if g.json {
        let v = serde_json::json!({ "plan": plan, "done": report, "dry_run": a.dry_run });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        print!("{}", render_prune_plan(&plan, a.dry_run));
        match &report {
            None => println!("dry run: nothing was changed"),
            Some(r) => println!(
                "deleted {} backup(s), {} leftover(s), {} uncommitted folder(s), {} record(s), {} capture segment(s), {} old gap(s)",
                r.deleted_backups, r.removed_leftovers, r.removed_orphans, r.removed_records, r.removed_segments, r.removed_gaps
            ),
        }
    }
    if let Some(r) = &report {
        for k in &r.kept_in_use {
            println!("kept (in use, or a keep record written, since the plan was made): {k}");
        }
        for k in &r.locked {
            println!("kept: {k}");
        }
        if r.extended_locks > 0 {
            println!(
                "extended the Object Lock of {} object(s) of backups a longer rule keeps",
                r.extended_locks
            );
        }
        for e in &r.errors {
            report_error(&PgdrError::repository(format!("could not remove {e}")));
        }
        if !r.errors.is_empty() {
            return Ok(exit::COULD_NOT_RUN);
        }
    }
    Ok(exit::OK)
}

pub fn render_prune_plan(plan: &commands::prune::PrunePlan, dry_run: bool) -> String {
    let mut s = String::new();
    let verb = |keep: bool| if keep { "keep  " } else { "DELETE" };
    for db in &plan.databases {
        let del = db.to_delete().count();
        s.push_str(&format!(
            "database '{}': {} backup(s), keep {}, {} {}\n",
            db.database,
            db.backups.len(),
            db.backups.len() - del,
            if dry_run { "would delete" } else { "delete" },
            del
        ));
        s.push_str(&format!("  retention policy: {}\n", db.policy));
        if let Some(h) = &db.hold {
            s.push_str(&format!("  {h}\n"));
        }
        for b in &db.backups {
            s.push_str(&format!(
                "  {} {}  {}  {}\n",
                verb(b.keep),
                b.id,
                b.snapshot_time.format("%Y-%m-%d %H:%M"),
                b.reasons.join("; ")
            ));
        }
        for l in &db.leftovers {
            s.push_str(&format!(
                "  DELETE {} of {}{} (since {})\n",
                l.what,
                l.key,
                l.size
                    .map(|n| format!(", {}", human_bytes(n)))
                    .unwrap_or_default(),
                l.since
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|| "?".into())
            ));
        }
        for o in &db.orphans {
            s.push_str(&format!(
                "  DELETE uncommitted backup folder {}/{} ({} object(s), {}): interrupted before its manifest\n",
                db.database,
                o.id,
                o.keys.len(),
                human_bytes(o.bytes)
            ));
        }
        for r in &db.records {
            s.push_str(&format!(
                "  DELETE {} record {} (beyond the newest {})\n",
                r.kind, r.key, r.limit
            ));
        }
        let c = &db.capture;
        if let (Some(from), Some(anchor)) = (c.keep_from, &c.anchor) {
            s.push_str(&format!(
                "  capture: keep the stream from {from} (oldest kept anchored backup {anchor}); DELETE {} segment(s), {} unlisted segment object(s), {} old gap(s)\n",
                c.segments.len(),
                c.orphans.len(),
                c.gaps.len()
            ));
        }
    }
    s
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// One Nagios/Icinga plugin line with perfdata; exit 0 OK, 1 WARNING, 2 CRITICAL,
    /// 3 UNKNOWN (the repository cannot be read).
    #[arg(long, env = "PGDR_NAGIOS", conflicts_with = "json")]
    nagios: bool,
    #[command(flatten)]
    pub(super) repo: super::flags::RepoArgs,
    #[command(flatten)]
    pub(super) source: super::flags::SourceArgs,
    #[command(flatten)]
    pub(super) encrypt: super::flags::EncryptArgs,
}

pub async fn status(g: &Global, a: &StatusArgs) -> Result<i32, PgdrError> {
    if a.nagios {
        return Ok(super::nagios::status(g).await);
    }
    let settings = Settings::load(&overrides(g))?;
    let opts = commands::status::StatusOptions {
        database: g.database.clone(),
    };
    let report = commands::status::run(&settings, &opts, Utc::now()).await?;
    if g.json {
        let mut v = serde_json::to_value(&report).expect("json");
        v["healthy"] = serde_json::Value::Bool(report.healthy());
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        if !g.quiet {
            print!("{}", render_status(&report));
        }
        for p in report.problems() {
            println!("problem: {p}");
        }
    }
    Ok(if report.healthy() {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
}

fn outcome_word<T: serde::Serialize>(o: &T) -> String {
    serde_json::to_value(o)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn secs_text(s: f64) -> String {
    crate::progress::human_duration(s)
}

pub fn render_status(r: &commands::status::StatusReport) -> String {
    let mut s = String::new();
    let t = utc_minute;
    for d in &r.databases {
        s.push_str(&format!(
            "database '{}' ({} backups)\n",
            d.database, d.backups
        ));
        let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<16} {v}\n"));
        line("newest backup", newest_backup_text(d));
        line("verification", verification_text(d));
        line("drill", drill_text(d));
        line("worst RPO (30d)", worst_rpo_text(d));
        if let Some(c) = &d.capture {
            for (k, v) in super::capture_status::lines(c, d.rpo_seconds) {
                line(k, v);
            }
        }
        if let Some(h) = &d.retention_hold {
            line("retention", h.clone());
        }
        for l in &d.labelled {
            line(
                "labelled",
                format!(
                    "'{}' {}: {}{}",
                    l.label,
                    l.id,
                    l.verification,
                    l.keep
                        .as_ref()
                        .map(|k| format!(", kept {k}"))
                        .unwrap_or_default()
                ),
            );
        }
        for j in &d.jobs {
            let last = match j.last.as_ref().and_then(|x| x.last_run.as_ref()) {
                None => "never run by the daemon".to_string(),
                Some(run) => format!("last {} {}", outcome_word(&run.outcome), t(&run.started_at)),
            };
            line(
                j.job.as_str(),
                format!(
                    "'{}' {}: next {}; {last}",
                    j.schedule,
                    j.timezone,
                    j.next_run.as_ref().map_or("never".into(), t)
                ),
            );
        }
    }
    s
}

/// A time in the status report: to the minute, in UTC, said so.
fn utc_minute(d: &chrono::DateTime<Utc>) -> String {
    d.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The status line of the newest backup: id, age against its limit, size, duration.
fn newest_backup_text(d: &commands::status::DatabaseStatus) -> String {
    match &d.newest_backup {
        None => "none".into(),
        Some(b) => format!(
            "{}, {} old (max {}), {} stored, took {:.1}s",
            b.id,
            secs_text(b.age_seconds),
            secs_text(d.max_backup_age_seconds),
            human_bytes(b.stored_bytes),
            b.duration_seconds
        ),
    }
}

/// The status line of the newest verification: outcome, mode, backup, when, differences.
fn verification_text(d: &commands::status::DatabaseStatus) -> String {
    let t = utc_minute;
    match &d.newest_verification {
        None => "none".into(),
        Some(v) => format!(
            "{} ({}) of {}, {}{}",
            outcome_word(&v.outcome),
            outcome_word(&v.mode),
            v.backup_id,
            t(&v.finished_at),
            if v.differences > 0 {
                format!(", {} difference(s)", v.differences)
            } else {
                String::new()
            }
        ),
    }
}

/// The status line of the last drill: outcome, when, and the RTO and RPO it measured.
fn drill_text(d: &commands::status::DatabaseStatus) -> String {
    let t = utc_minute;
    match &d.newest_drill {
        None => "none".into(),
        Some(x) => format!(
            "{} {}{}{}",
            outcome_word(&x.outcome),
            t(&x.finished_at),
            x.rto_seconds
                .map(|v| format!(", RTO {}", secs_text(v)))
                .unwrap_or_default(),
            x.rpo_seconds
                .map(|v| format!(", RPO {}", secs_text(v)))
                .unwrap_or_default()
        ),
    }
}

/// The status line of the worst RPO of the window, with the target when one is configured.
fn worst_rpo_text(d: &commands::status::DatabaseStatus) -> String {
    match &d.worst_rpo {
        None => "no restorable backup".into(),
        Some(w) => format!(
            "{} ({} to {}){}",
            secs_text(w.seconds),
            w.from.format("%Y-%m-%d %H:%M"),
            w.to.format("%Y-%m-%d %H:%M"),
            d.rpo_target_seconds
                .map(|x| format!(", target {}", secs_text(x)))
                .unwrap_or_default()
        ),
    }
}

#[derive(Args, Debug)]
pub struct ScheduleArgs {
    /// How many next runs to show per job.
    #[arg(long, env = "PGDR_NEXT", default_value_t = 3)]
    next: usize,
    /// As JSON on stdout.
    #[command(flatten)]
    pub(super) repo: super::flags::RepoArgs,
    #[command(flatten)]
    pub(super) source: super::flags::SourceArgs,
}

pub async fn schedule(g: &Global, a: &ScheduleArgs) -> Result<i32, PgdrError> {
    let settings = Settings::load(&overrides(g))?;
    let jobs =
        commands::schedule::run(&settings, g.database.as_deref(), Utc::now(), a.next).await?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&jobs).expect("json"));
        return Ok(exit::OK);
    }
    print!("{}", render_schedule(&jobs));
    Ok(exit::OK)
}

pub fn render_schedule(jobs: &[commands::schedule::ScheduledJob]) -> String {
    let mut s = String::new();
    for j in jobs {
        let tz: chrono_tz::Tz = j
            .timezone
            .as_deref()
            .and_then(|z| z.parse().ok())
            .unwrap_or(chrono_tz::UTC);
        let zone = j
            .timezone
            .as_deref()
            .map(|z| format!(" ({z})"))
            .unwrap_or_default();
        let jitter = if j.jitter_seconds > 0 {
            format!(" + up to {}s jitter", j.jitter_seconds)
        } else {
            String::new()
        };
        s.push_str(&format!(
            "{} {}: {}{zone}{jitter}\n",
            j.database, j.job, j.schedule
        ));
        if !j.next_runs.is_empty() {
            let next: Vec<String> = j
                .next_runs
                .iter()
                .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string())
                .collect();
            s.push_str(&format!("  next  {}\n", next.join(", ")));
        }
        s.push_str(&match &j.last {
            None => "  last  never\n".to_string(),
            Some(l) => format!(
                "  last  {} {}{} [{}]\n",
                l.outcome,
                l.at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"),
                l.detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default(),
                l.from
            ),
        });
    }
    s
}

#[derive(Args, Debug)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub(super) repo: super::flags::RepoArgs,
    #[command(flatten)]
    pub(super) source: super::flags::SourceArgs,
    #[command(flatten)]
    pub(super) encrypt: super::flags::EncryptArgs,
    #[command(flatten)]
    pub(super) decrypt: super::flags::DecryptArgs,
    #[command(flatten)]
    pub(super) sign: super::flags::SignArgs,
    #[command(flatten)]
    pub(super) trust: super::flags::TrustArgs,
}

pub async fn daemon(
    g: &Global,
    _a: &DaemonArgs,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<i32, PgdrError> {
    let settings = Settings::load(&overrides(g))?;
    let opts = commands::daemon::DaemonOptions {
        database: g.database.clone(),
    };
    commands::daemon::run(settings, &opts, shutdown).await?;
    Ok(exit::OK)
}
