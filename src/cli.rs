//! Command-line parsing and rendering. Commands do the work; this only translates.

mod ops;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::catalog::{Listed, Manifest};
use crate::commands;
use crate::config::{Overrides, Settings};
use crate::error::{exit, PgdrError};
use crate::progress::{self, human_bytes};

#[derive(Parser, Debug)]
#[command(
    name = "pgdr",
    version,
    about = "Backup and disaster recovery for PostgreSQL: streamed, encrypted, verified."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Debug)]
struct Global {
    /// Config file (TOML); see config/pgdr.example.toml.
    #[arg(long, env = "PGDR_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Source database URL, postgres://USER@HOST:PORT/DBNAME (password via PGPASSWORD, ~/.pgpass or the config).
    #[arg(long, env = "PGDR_SOURCE", global = true, hide_env_values = true)]
    source: Option<String>,
    /// Repository: a local directory or s3://BUCKET/PREFIX.
    #[arg(long, env = "PGDR_REPO", global = true)]
    repo: Option<String>,
    /// age public key backups are encrypted to (repeatable; env: comma-separated).
    #[arg(
        long = "recipient",
        env = "PGDR_RECIPIENT",
        value_delimiter = ',',
        global = true
    )]
    recipients: Vec<String>,
    /// age identity file, for commands that decrypt.
    #[arg(long, env = "PGDR_IDENTITY", global = true)]
    identity: Option<PathBuf>,
    /// Database name (as configured, or the dbname of --source).
    #[arg(long, env = "PGDR_DATABASE", global = true, value_parser = database_name)]
    database: Option<String>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "human", global = true)]
    log_format: LogFormat,
    /// Only errors; no progress.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// More detail (repeat for more).
    #[arg(long, short, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

/// `--database` becomes a folder of the repository: checked before anything runs (exit 2).
fn database_name(s: &str) -> Result<String, String> {
    crate::config::names::database_name(s, "database name")
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create an age identity (private key, mode 0600) and print its public recipient.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Back up the selected (or every configured) database into the repository.
    Backup,
    /// List committed backups.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one backup's manifest.
    Show {
        /// Backup id or a unique prefix of it.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Decrypt one object of a backup (checked against its manifest) to a file or stdout.
    Cat {
        id: String,
        /// Which object: dump (a pg_restore archive) or globals (SQL).
        #[arg(long, default_value = "dump")]
        object: String,
        /// Output file; stdout if absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Prove backups: check every object and (unless --quick) restore into a scratch
    /// database and compare the fingerprint. Exit 0 verified, 1 differences, 2 could not run.
    Verify {
        /// Backup id or unique prefix; default: the newest backup of each database.
        id: Option<String>,
        /// The newest backup of each selected database (the default).
        #[arg(long, conflicts_with_all = ["id", "unverified"])]
        latest: bool,
        /// Every backup without a passed verification.
        #[arg(long, conflicts_with = "id")]
        unverified: bool,
        /// No restore: checksums, decryption, archive parse and data digests only.
        #[arg(long)]
        quick: bool,
        #[arg(long)]
        json: bool,
    },
    /// Emergency restore: find a backup in the repository, show the plan, restore it into
    /// --target with guard rails, prove it and record it. Exit 0 restored and proven,
    /// 1 restored but differences found, 2 could not run / refused / failed, 130 interrupted.
    Restore(RestoreArgs),
    /// Recovery drill: restore a backup into a scratch database as an emergency restore would,
    /// time every phase, prove it against the fingerprint, run the drill's smoke checks, and
    /// record RTO and RPO in the repository. Exit 0 passed, 1 failed, 2 could not run.
    Drill(DrillArgs),
    /// Apply the retention policy, remove leftovers of interrupted runs and old records.
    /// --dry-run prints every backup with keep/delete and the rule that decided it.
    Prune(ops::PruneArgs),
    /// Health at a glance: newest backup and its age, newest verification and drill, worst RPO
    /// of 30 days, next scheduled runs. Exit 0 all within limits, 1 a problem (one line each),
    /// 2 could not look.
    Status(ops::StatusArgs),
    /// Every scheduled job with its next runs and its last result.
    Schedule(ops::ScheduleArgs),
    /// Run the scheduled backups, verifications, drills and prunes, with metrics and webhooks.
    /// SIGTERM/SIGINT: start nothing new, let running jobs finish within the grace period.
    Daemon(ops::DaemonArgs),
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
}

#[derive(Args, Debug)]
struct RestoreArgs {
    /// Target database, postgres://USER@HOST:PORT/DBNAME, connecting as a superuser (password
    /// via PGPASSWORD, ~/.pgpass or the URL; never shown).
    #[arg(long, env = "PGDR_TARGET", hide_env_values = true)]
    target: String,
    /// Backup id or unique prefix.
    #[arg(long, conflicts_with_all = ["latest", "before"])]
    backup: Option<String>,
    /// The newest backup (the default).
    #[arg(long, conflicts_with = "before")]
    latest: bool,
    /// The newest backup whose snapshot is at or before TIME (RFC 3339, or 'YYYY-MM-DD HH:MM[:SS]' UTC).
    #[arg(long, value_name = "TIME")]
    before: Option<String>,
    /// If the target database has tables: drop it and restore in its place.
    #[arg(long, conflicts_with = "swap")]
    clean: bool,
    /// If the target database exists: restore into <name>_restoring, prove it, then rename
    /// the old one to <name>_pre_restore_<time> and the copy to <name> in one step.
    #[arg(long)]
    swap: bool,
    /// End other sessions (pg_terminate_backend) where a drop or the swap needs it.
    #[arg(long)]
    terminate: bool,
    /// The target's database name, required when it is a configured source database.
    #[arg(long, value_name = "NAME")]
    confirm: Option<String>,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    yes: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Parallel pg_restore jobs; more than 1 spools the decrypted dump to a temp file first.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: Option<u32>,
    /// Directory of the spool file for --jobs (default: the system temp dir).
    #[arg(long, value_name = "DIR")]
    spool_dir: Option<PathBuf>,
    /// Roles the target already has: merge (settings, comments, memberships made the
    /// backup's; attributes and passwords kept), keep (unchanged; alias skip-existing), or
    /// overwrite (every role made equal to the backup's).
    #[arg(long, value_enum, default_value = "merge")]
    roles: RolesArg,
    /// Skip the fingerprint comparison after the restore.
    #[arg(long)]
    no_verify: bool,
    /// The plan (--dry-run) or the restore record as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum RolesArg {
    Merge,
    #[value(alias = "skip-existing")]
    Keep,
    Overwrite,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct DrillArgs {
    #[command(subcommand)]
    cmd: Option<DrillCmd>,
    /// Backup id or unique prefix; default: per the drill file's selection (the newest).
    #[arg(long)]
    backup: Option<String>,
    /// Drill definition: database, backup selection, targets, smoke checks (drills/README.md).
    #[arg(long, value_name = "FILE")]
    drill: Option<PathBuf>,
    /// The drill record(s) as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum DrillCmd {
    /// Past drills, newest first: RTO, RPO, worst RPO, result.
    History {
        #[arg(long)]
        json: bool,
    },
    /// One self-contained file: the latest drill's phases, the history, RTO and RPO charts
    /// against their targets, and whether the backup schedule can meet the RPO target.
    Report {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "html")]
        format: commands::drill::report::Format,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// Validate the configuration and reach every database and the repository.
    Check {
        #[arg(long)]
        json: bool,
    },
}

/// `-v` raises pgdr's own logs only: other crates stay at `info` (their debug output carries
/// SQL text with setting values and authentication details) unless `PGDR_LOG` names them.
fn log_filter(quiet: bool, verbose: u8) -> &'static str {
    match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,pgdr=info",
        (false, 1) => "info,pgdr=debug",
        _ => "info,pgdr=trace",
    }
}

fn init_logging(g: &Global) {
    use tracing_subscriber::EnvFilter;
    let default = log_filter(g.quiet, g.verbose);
    let filter = EnvFilter::try_from_env("PGDR_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match g.log_format {
        LogFormat::Json => b.json().init(),
        LogFormat::Human => b.with_target(false).init(),
    }
}

/// Parse, run, render; returns the exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging(&cli.global);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgdr: error: cannot start the runtime: {e}");
            return exit::COULD_NOT_RUN;
        }
    };
    let code = rt.block_on(async {
        let cancel = CancellationToken::new();
        spawn_signal_handler(cancel.clone());
        match dispatch(&cli, cancel).await {
            Ok(code) => code,
            Err(e) => {
                report_error(&e);
                e.exit_code()
            }
        }
    });
    // Child processes were reaped by their owners; do not wait on stray blocking reads.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    code
}

fn report_error(e: &PgdrError) {
    eprintln!("pgdr: error: {}", e.message);
    for h in &e.hints {
        eprintln!("  hint: {h}");
    }
}

fn spawn_signal_handler(cancel: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        tracing::warn!("interrupted: stopping; nothing partial will be left visible");
        cancel.cancel();
    });
}

fn overrides(g: &Global) -> Overrides {
    Overrides {
        config: g.config.clone(),
        source: g.source.clone(),
        repo: g.repo.clone(),
        recipients: g
            .recipients
            .iter()
            .filter(|r| !r.trim().is_empty())
            .cloned()
            .collect(),
        identity: g.identity.clone(),
        database: g.database.clone(),
    }
}

async fn dispatch(cli: &Cli, cancel: CancellationToken) -> Result<i32, PgdrError> {
    let g = &cli.global;
    match &cli.cmd {
        Cmd::Keygen { out } => {
            let public = commands::keygen::run(out)?;
            eprintln!(
                "identity written to {} (keep it off the database host; it is needed to restore)",
                out.display()
            );
            println!("{public}");
            Ok(exit::OK)
        }
        Cmd::Backup => {
            let settings = Settings::load(&overrides(g))?;
            let opts = commands::backup::BackupOptions {
                database: g.database.clone(),
                show_progress: progress::enabled(g.quiet),
                lock_source: true,
            };
            let report = commands::backup::run(&settings, &opts, cancel.clone()).await?;
            for (_, r) in &report.results {
                if let Ok(m) = r {
                    if !g.quiet {
                        println!("{}", backup_line(m));
                    }
                }
            }
            let failed: Vec<_> = report.failed().collect();
            if let Some((_, first)) = failed.first() {
                for (_, e) in &failed {
                    report_error(e);
                }
                return Ok(first.exit_code());
            }
            if cancel.is_cancelled() {
                return Ok(exit::INTERRUPTED);
            }
            Ok(exit::OK)
        }
        Cmd::List { json } => {
            let settings = Settings::load(&overrides(g))?;
            let listed = commands::list::list(&settings, g.database.as_deref()).await?;
            let mut out = std::io::stdout().lock();
            if *json {
                let v: Vec<serde_json::Value> = listed.iter().map(listed_json).collect();
                let _ = writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"));
            } else {
                let _ = write!(out, "{}", render_list(&listed));
            }
            Ok(exit::OK)
        }
        Cmd::Show { id, json } => {
            let settings = Settings::load(&overrides(g))?;
            let e = commands::list::show(&settings, g.database.as_deref(), id).await?;
            if *json {
                // The manifest as stored, plus the newest verification beside it.
                let mut v = serde_json::to_value(&e.manifest).expect("json");
                // A manifest written before format 2 holds setting values and comments in
                // clear: shown sealed, as newer manifests store them.
                if let Some(s) = v.pointer_mut("/fingerprint/schema") {
                    crate::fingerprint::sensitive::seal_json_view(s);
                }
                v["last_verification"] = serde_json::to_value(&e.verification).expect("json");
                println!("{}", serde_json::to_string_pretty(&v).expect("json"));
            } else {
                print!("{}", render_manifest(&e.manifest));
                println!(
                    "{:<18} {}",
                    "verified",
                    verification_text(e.verification.as_ref())
                );
                if let Some(v) = &e.verification {
                    for d in &v.differences {
                        println!("{:<18} {d}", "  difference");
                    }
                    if let Some(err) = &v.error {
                        println!("{:<18} {err}", "  error");
                    }
                }
            }
            Ok(exit::OK)
        }
        Cmd::Cat { id, object, out } => {
            let settings = Settings::load(&overrides(g))?;
            let (m, st) =
                commands::cat::run(&settings, g.database.as_deref(), id, object, out.as_deref())
                    .await?;
            tracing::info!(id = %m.id, object = %object, bytes = st.plain_bytes, "decrypted; sha256 matches the manifest");
            Ok(exit::OK)
        }
        Cmd::Verify {
            id,
            latest: _,
            unverified,
            quick,
            json,
        } => {
            let settings = Settings::load(&overrides(g))?;
            let selection = match (id, unverified) {
                (Some(id), _) => commands::verify::Selection::Id(id.clone()),
                (None, true) => commands::verify::Selection::Unverified,
                (None, false) => commands::verify::Selection::Latest,
            };
            let opts = commands::verify::VerifyOptions {
                database: g.database.clone(),
                selection,
                quick: *quick,
            };
            let records = tokio::select! {
                r = commands::verify::run(&settings, &opts) => r?,
                _ = cancel.cancelled() => {
                    return Err(PgdrError::new(crate::error::Kind::Interrupted, "verification interrupted; the scratch database was removed"));
                }
            };
            render_verifications(&records, *json);
            use crate::catalog::records::Outcome;
            Ok(if records.iter().any(|r| r.outcome == Outcome::Failed) {
                exit::CHECK_FAILED
            } else if records.iter().any(|r| r.outcome == Outcome::Error) {
                exit::COULD_NOT_RUN
            } else {
                exit::OK
            })
        }
        Cmd::Restore(a) => run_restore(g, a, cancel).await,
        Cmd::Drill(a) => run_drill(g, a, cancel).await,
        Cmd::Prune(a) => ops::prune(g, a).await,
        Cmd::Schedule(a) => ops::schedule(g, a).await,
        Cmd::Daemon(a) => ops::daemon(g, a, cancel).await,
        Cmd::Status(a) => ops::status(g, a).await,
        Cmd::Config {
            cmd: ConfigCmd::Check { json },
        } => {
            let settings = Settings::load(&overrides(g))?;
            let checks = commands::config_check::run(&settings).await;
            if *json {
                println!("{}", serde_json::to_string_pretty(&checks).expect("json"));
            } else {
                for c in &checks {
                    let mark = if c.ok { "ok  " } else { "FAIL" };
                    println!("{mark} {}: {}", c.what, c.detail.replace('\n', "\n     "));
                }
            }
            Ok(if checks.iter().all(|c| c.ok) {
                exit::OK
            } else {
                exit::COULD_NOT_RUN
            })
        }
    }
}

async fn run_restore(
    g: &Global,
    a: &RestoreArgs,
    cancel: CancellationToken,
) -> Result<i32, PgdrError> {
    use commands::restore::{self as r, ModeFlag, Selection};
    let settings = Settings::load(&overrides(g))?;
    let selection = match (&a.backup, &a.before) {
        (Some(id), _) => Selection::Id(id.clone()),
        (None, Some(t)) => Selection::Before(r::parse_time(t)?),
        (None, None) => Selection::Latest,
    };
    let opts = r::RestoreOptions {
        target_url: a.target.clone(),
        database: g.database.clone(),
        selection,
        mode: match (a.clean, a.swap) {
            (true, _) => ModeFlag::Clean,
            (_, true) => ModeFlag::Swap,
            _ => ModeFlag::None,
        },
        terminate: a.terminate,
        jobs: a.jobs,
        spool_dir: a.spool_dir.clone(),
        roles: match a.roles {
            RolesArg::Merge => crate::restore::RolesMode::Merge,
            RolesArg::Keep => crate::restore::RolesMode::Keep,
            RolesArg::Overwrite => crate::restore::RolesMode::Overwrite,
        },
        verify: !a.no_verify,
        show_progress: progress::enabled(g.quiet),
    };
    let plan = tokio::select! {
        p = r::prepare(&settings, &opts) => p?,
        _ = cancel.cancelled() => {
            return Err(PgdrError::new(crate::error::Kind::Interrupted, "interrupted before anything was changed"));
        }
    };
    if a.dry_run {
        if a.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&plan.to_json()).expect("json")
            );
        } else {
            print!("{}", plan.render());
            println!("dry run: nothing was changed");
        }
        return Ok(exit::OK);
    }
    if a.json {
        eprint!("{}", plan.render());
    } else {
        print!("{}", plan.render());
        let _ = std::io::stdout().flush();
    }
    confirm_restore(&plan, a.yes, a.confirm.as_deref())?;
    if cancel.is_cancelled() {
        // Ctrl-C at the prompt: the signal handler caught it while the prompt waited.
        return Err(PgdrError::new(
            crate::error::Kind::Interrupted,
            "interrupted before anything was changed",
        ));
    }
    let report = r::execute(plan, cancel).await;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.record).expect("json")
        );
    } else {
        print!("{}", report.render());
    }
    if let Some(e) = &report.error {
        report_error(e);
    }
    Ok(report.exit_code())
}

/// The one interactive step: a typed confirmation on a terminal, flags otherwise.
fn confirm_restore(
    plan: &commands::restore::Plan,
    yes: bool,
    confirm: Option<&str>,
) -> Result<(), PgdrError> {
    use std::io::IsTerminal;
    let tty = std::io::stdin().is_terminal();
    let ask = |prompt: &str| -> String {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        line.trim().to_string()
    };
    let aborted = || PgdrError::usage("restore aborted: nothing was changed");
    let mut typed_name = false;
    if plan.is_source {
        match confirm {
            Some(n) if n == plan.name => {}
            Some(n) => {
                return Err(PgdrError::usage(format!(
                    "--confirm {n} does not match the target database '{}'",
                    plan.name
                ))
                .hint(format!("pass --confirm {} to restore over the source database", plan.name)))
            }
            None if tty => {
                let typed = ask(&format!(
                    "'{}' is a configured source database. Type its name to restore over it: ",
                    plan.name
                ));
                if typed != plan.name {
                    return Err(aborted());
                }
                typed_name = true;
            }
            None => {
                return Err(PgdrError::usage(format!(
                    "the target '{}' is a configured source database; restoring over it needs its name confirmed",
                    plan.name
                ))
                .hint(format!("pass --confirm {} (and --yes) after checking the plan", plan.name)))
            }
        }
    }
    if yes || typed_name {
        return Ok(());
    }
    if !tty {
        return Err(PgdrError::usage(
            "refusing to restore without confirmation: stdin is not a terminal",
        )
        .hint("check the plan above and add --yes (or use --dry-run to only print the plan)"));
    }
    if ask("Type 'yes' to restore: ") != "yes" {
        return Err(aborted());
    }
    Ok(())
}

async fn run_drill(g: &Global, a: &DrillArgs, cancel: CancellationToken) -> Result<i32, PgdrError> {
    use crate::catalog::records::Outcome;
    use commands::drill::{self as d, report};
    let settings = Settings::load(&overrides(g))?;
    match &a.cmd {
        None => {
            let opts = d::DrillOptions {
                database: g.database.clone(),
                backup: a.backup.clone(),
                drill: a.drill.clone(),
            };
            let runs = tokio::select! {
                r = d::run(&settings, &opts) => r?,
                _ = cancel.cancelled() => {
                    return Err(PgdrError::new(crate::error::Kind::Interrupted, "drill interrupted; the scratch database was removed; nothing recorded"));
                }
            };
            if a.json {
                let v: Vec<_> = runs.iter().map(|r| &r.record).collect();
                println!("{}", serde_json::to_string_pretty(&v).expect("json"));
            } else {
                for r in &runs {
                    print!("{}", report::render_drill(&r.record, &r.key));
                }
            }
            let outcomes: Vec<Outcome> = runs.iter().map(|r| r.record.outcome).collect();
            Ok(if outcomes.contains(&Outcome::Failed) {
                exit::CHECK_FAILED
            } else if outcomes.contains(&Outcome::Error) {
                exit::COULD_NOT_RUN
            } else {
                exit::OK
            })
        }
        Some(DrillCmd::History { json }) => {
            let h = d::history(&settings, g.database.as_deref()).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&h).expect("json"));
            } else {
                print!("{}", report::render_history(&h));
            }
            Ok(exit::OK)
        }
        Some(DrillCmd::Report { out, format }) => {
            let text = d::report(&settings, g.database.as_deref(), *format).await?;
            std::fs::write(out, text).map_err(|e| {
                PgdrError::usage(format!("cannot write the report to {}: {e}", out.display()))
            })?;
            if !g.quiet {
                eprintln!("report written to {}", out.display());
            }
            Ok(exit::OK)
        }
    }
}

fn render_verifications(records: &[crate::catalog::VerificationRecord], json: bool) {
    use crate::catalog::records::{Outcome, VerifyMode};
    if json {
        println!("{}", serde_json::to_string_pretty(records).expect("json"));
    } else if records.is_empty() {
        println!("nothing to verify");
    }
    for r in records {
        let secs = (r.finished_at - r.started_at).num_milliseconds() as f64 / 1000.0;
        let mode = if r.mode == VerifyMode::Quick {
            "quick"
        } else {
            "full"
        };
        match r.outcome {
            Outcome::Passed if !json => println!(
                "backup {} of '{}': verified ({mode}) in {secs:.1}s",
                r.backup_id, r.database
            ),
            Outcome::Failed if !json => {
                println!(
                    "backup {} of '{}': FAILED verification ({mode}), {} difference(s):",
                    r.backup_id,
                    r.database,
                    r.differences.len()
                );
                for d in &r.differences {
                    println!("  {d}");
                }
            }
            Outcome::Error => eprintln!(
                "pgdr: error: backup {} of '{}': could not verify: {}",
                r.backup_id,
                r.database,
                r.error.as_deref().unwrap_or("")
            ),
            _ => {}
        }
    }
}

fn backup_line(m: &Manifest) -> String {
    let dump = m.object("dump");
    format!(
        "backup {} of '{}' committed: snapshot {}, dump {} → stored {} in {:.1}s",
        m.id,
        m.database,
        m.snapshot.time.format("%Y-%m-%d %H:%M:%S%.3f UTC"),
        human_bytes(dump.map_or(0, |d| d.raw_bytes)),
        human_bytes(m.objects.iter().map(|o| o.stored_bytes).sum()),
        m.duration_seconds()
    )
}

/// "passed (full, 2026-11-26 03:10)" / "unverified"
fn verification_text(v: Option<&crate::catalog::VerificationRecord>) -> String {
    match v {
        None => "unverified".into(),
        Some(r) => format!(
            "{} ({}, {})",
            serde_json::to_value(r.outcome)
                .expect("enum")
                .as_str()
                .unwrap_or("?"),
            serde_json::to_value(r.mode)
                .expect("enum")
                .as_str()
                .unwrap_or("?"),
            r.finished_at.format("%Y-%m-%d %H:%M")
        ),
    }
}

fn listed_json(l: &Listed) -> serde_json::Value {
    match l {
        Listed::Ok(e) => {
            let m = &e.manifest;
            serde_json::json!({
                "id": m.id,
                "database": m.database,
                "snapshot_time": m.snapshot.time,
                "started_at": m.started_at,
                "duration_seconds": m.duration_seconds(),
                "raw_bytes": m.object("dump").map_or(0, |d| d.raw_bytes),
                "stored_bytes": m.objects.iter().map(|o| o.stored_bytes).sum::<u64>(),
                "verification": e.verification.as_ref().map(|v| serde_json::json!({
                    "outcome": v.outcome, "mode": v.mode, "finished_at": v.finished_at,
                    "differences": v.differences.len(),
                })),
                "status": "ok",
            })
        }
        Listed::Damaged {
            database,
            id,
            error,
        } => serde_json::json!({
            "id": id, "database": database, "status": "damaged", "error": error,
        }),
    }
}

fn render_list(listed: &[Listed]) -> String {
    if listed.is_empty() {
        return "no backups\n".into();
    }
    let mut s = format!(
        "{:<22} {:<16} {:<20} {:>12} {:>12} {:>8}  {}\n",
        "ID", "DATABASE", "SNAPSHOT (UTC)", "DUMP", "STORED", "SECONDS", "VERIFIED"
    );
    for l in listed {
        match l {
            Listed::Ok(e) => {
                let m = &e.manifest;
                s.push_str(&format!(
                    "{:<22} {:<16} {:<20} {:>12} {:>12} {:>8.1}  {}\n",
                    m.id.as_str(),
                    m.database,
                    m.snapshot.time.format("%Y-%m-%d %H:%M:%S"),
                    human_bytes(m.object("dump").map_or(0, |d| d.raw_bytes)),
                    human_bytes(m.objects.iter().map(|o| o.stored_bytes).sum()),
                    m.duration_seconds(),
                    verification_text(e.verification.as_ref())
                ))
            }
            Listed::Damaged {
                database,
                id,
                error,
            } => s.push_str(&format!(
                "{:<22} {:<16} DAMAGED: {error}\n",
                id.as_str(),
                database
            )),
        }
    }
    s
}

fn render_manifest(m: &Manifest) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<18} {v}\n"));
    line("id", m.id.to_string());
    line("database", m.database.clone());
    line(
        "snapshot",
        format!("{} ({})", m.snapshot.time.to_rfc3339(), m.snapshot.method),
    );
    line("started", m.started_at.to_rfc3339());
    line(
        "finished",
        format!(
            "{} ({:.1}s)",
            m.finished_at.to_rfc3339(),
            m.duration_seconds()
        ),
    );
    line(
        "server",
        format!(
            "PostgreSQL {} (system id {}), owner {}, encoding {}",
            m.source.server_version,
            m.source.system_identifier.as_deref().unwrap_or("unknown"),
            m.source.database_owner,
            m.source.encoding
        ),
    );
    line(
        "pg_dump",
        format!(
            "{} {}",
            m.tools.pg_dump_version,
            m.tools.pg_dump_args.join(" ")
        ),
    );
    line(
        "globals",
        format!(
            "{:?} ({})",
            m.globals_mode,
            m.tools.pg_dumpall_args.join(" ")
        ),
    );
    line(
        "codec",
        format!(
            "zstd level {} threads {}, {}",
            m.codec.zstd.level, m.codec.zstd.threads, m.codec.encryption
        ),
    );
    line("recipients", m.codec.recipients.join(", "));
    for p in &m.phases {
        line(&format!("phase {}", p.name), format!("{:.2}s", p.seconds));
    }
    for o in &m.objects {
        line(
            &format!("object {}", o.name),
            format!(
                "{}: {} raw, {} compressed, {} stored; sha256 {}",
                o.file,
                human_bytes(o.raw_bytes),
                human_bytes(o.compressed_bytes),
                human_bytes(o.stored_bytes),
                o.sha256_stored
            ),
        );
    }
    line(
        "fingerprint",
        if m.fingerprint.is_some() {
            "recorded".into()
        } else {
            "none".into()
        },
    );
    s
}
