//! Command-line parsing and rendering. Commands do the work; this only translates.

mod args;
mod capture;
mod capture_chain;
mod capture_run;
mod capture_status;
mod diff;
mod key_check;
mod labels;
mod ops;
mod render;
mod restore;
mod restore_point;
mod restore_render;
mod restore_tables;
mod run_alerts;

use std::io::Write;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::commands;
use crate::config::{Overrides, Settings};
use crate::error::{exit, PgdrError};

use args::{Cli, Cmd, ConfigCmd, DrillArgs, DrillCmd, Global, LogFormat};
use render::{listed_json, render_entry, render_list, verification_text};
use restore::run_restore;

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
    run_alerts::remember(e);
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
        identities: g.identities.clone(),
        database: g.database.clone(),
        signing_key: g.signing_key.clone(),
        trust_keys: g
            .trust_keys
            .iter()
            .filter(|k| !k.trim().is_empty())
            .cloned()
            .collect(),
        allow_unsigned: g.allow_unsigned,
    }
}

/// A command that runs a job goes through the shared alerts and metrics file.
async fn dispatch(cli: &Cli, cancel: CancellationToken) -> Result<i32, PgdrError> {
    run_alerts::setup_progress(&cli.global, &cli.cmd);
    match run_alerts::job_of(&cli.cmd) {
        Some(job) => run_alerts::around(&cli.global, job, dispatch_cmd(cli, cancel)).await,
        None => dispatch_cmd(cli, cancel).await,
    }
}

async fn dispatch_cmd(cli: &Cli, cancel: CancellationToken) -> Result<i32, PgdrError> {
    let g = &cli.global;
    match &cli.cmd {
        Cmd::Keygen { out, signing } => run_keygen(out, *signing),
        Cmd::Sign {
            id,
            all_unsigned: _,
        } => run_sign(g, id.as_deref()).await,
        Cmd::Backup(a) => labels::run_backup(g, a, cancel).await,
        Cmd::Keep(a) => labels::run_keep(g, a).await,
        Cmd::Diff(a) => diff::run(g, a).await,
        Cmd::List { json } => {
            let settings = Settings::load(&overrides(g))?;
            let listed = commands::list::list(&settings, g.database.as_deref()).await?;
            let mut out = std::io::stdout().lock();
            if *json {
                let v: Vec<serde_json::Value> = listed.iter().map(listed_json).collect();
                let _ = writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"));
            } else {
                let _ = write!(out, "{}", render_list(&listed));
                let marks = commands::list::marks(&settings, g.database.as_deref()).await?;
                let _ = write!(out, "{}", restore_render::marks(&marks));
            }
            Ok(exit::OK)
        }
        Cmd::Show { id, json } => run_show(g, id, *json).await,
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
        } => run_verify(g, id.as_deref(), *unverified, *quick, *json, cancel).await,
        Cmd::Restore(a) => run_restore(g, a, cancel).await,
        Cmd::Drill(a) => run_drill(g, a, cancel).await,
        Cmd::Rekey { ids, all } => key_check::rekey(g, ids, *all, overrides(g)).await,
        Cmd::Prune(a) => ops::prune(g, a).await,
        Cmd::Schedule(a) => ops::schedule(g, a).await,
        Cmd::Daemon(a) => {
            refuse_allow_unsigned(g)?;
            ops::daemon(g, a, cancel).await
        }
        Cmd::Status(a) => ops::status(g, a).await,
        Cmd::Capture(a) => capture::run(g, a, cancel).await,
        Cmd::Mark { name, json } => restore::run_mark(g, name, *json).await,
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

/// `--allow-unsigned` is for one run a person decides on, never the daemon's every run.
fn refuse_allow_unsigned(g: &Global) -> Result<(), PgdrError> {
    if g.allow_unsigned {
        return Err(PgdrError::usage(
            "--allow-unsigned is for one run a person decides on, not for the daemon",
        )
        .hint("run `pgdr verify|drill|restore --allow-unsigned` by hand, or sign the backups with `pgdr sign`"));
    }
    Ok(())
}

/// `pgdr keygen [--signing]`: the public half on stdout, where it goes on stderr.
fn run_keygen(out: &std::path::Path, signing: bool) -> Result<i32, PgdrError> {
    if signing {
        let (public, id) = commands::keygen::run_signing(out)?;
        eprintln!(
            "signing key {id} written to {} (unencrypted, 0600: the backup host signs unattended; keep it on that host only)",
            out.display()
        );
        eprintln!("trust it where backups are restored, verified or drilled: [trust] keys = [\"{public}\"]");
        println!("{public}");
        return Ok(exit::OK);
    }
    let public = commands::keygen::run(out)?;
    eprintln!(
        "identity written to {} (keep it off the database host; it is needed to restore)",
        out.display()
    );
    println!("{public}");
    Ok(exit::OK)
}

/// `pgdr sign`: one line per backup; a refused one (damaged manifest) exits 1.
async fn run_sign(g: &Global, id: Option<&str>) -> Result<i32, PgdrError> {
    let settings = Settings::load(&overrides(g))?;
    let r = commands::sign::run(&settings, g.database.as_deref(), id).await?;
    for b in &r.signed {
        println!("signed {b} with key {}", r.key_id);
    }
    for b in &r.already_signed {
        println!("already signed: {b}");
    }
    for (b, why) in &r.refused {
        eprintln!("error: not signed: {b}: {why}");
    }
    Ok(if r.refused.is_empty() {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
}

/// `pgdr show`: a manifest with its newest verification, as text or JSON.
async fn run_show(g: &Global, id: &str, json: bool) -> Result<i32, PgdrError> {
    let settings = Settings::load(&overrides(g))?;
    let e = commands::list::show(&settings, g.database.as_deref(), id).await?;
    let signed = commands::list::signed_by(&settings, &e.manifest).await?;
    let restores = commands::list::restores(&settings, &e.manifest).await?;
    let record_signed = match &e.verification {
        Some(v) => Some(commands::list::verification_signed_by(&settings, v).await?),
        None => None,
    };
    if json {
        // The manifest as stored, plus the newest verification beside it.
        let mut v = serde_json::to_value(&e.manifest).expect("json");
        // A manifest written before format 2 holds setting values and comments in
        // clear: shown sealed, as newer manifests store them.
        if let Some(s) = v.pointer_mut("/fingerprint/schema") {
            crate::fingerprint::sensitive::seal_json_view(s);
        }
        v["last_verification"] = serde_json::to_value(&e.verification).expect("json");
        v["keep_in_force"] = render::keep_json(&e);
        v["signed_by"] = serde_json::to_value(&signed).expect("json");
        v["last_verification_signed_by"] = serde_json::to_value(&record_signed).expect("json");
        v["restores"] = serde_json::to_value(restores.iter().map(|(_, r)| r).collect::<Vec<_>>())
            .expect("json");
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        print!("{}", render_entry(&e));
        println!("{:<18} {}", "signed", render::signed_text(&signed));
        println!(
            "{:<18} {}",
            "verified",
            verification_text(e.verification.as_ref())
        );
        if let Some(v) = &e.verification {
            if let Some(s) = &record_signed {
                println!("{:<18} {}", "  record signed", render::signed_text(s));
            }
            for d in &v.differences {
                println!("{:<18} {d}", "  difference");
            }
            if let Some(err) = &v.error {
                println!("{:<18} {err}", "  error");
            }
        }
        print!("{}", restore_tables::restore_lines(&restores));
    }
    Ok(exit::OK)
}

/// `pgdr verify`: the records rendered; a failed check exits 1, one that could not run 2.
async fn run_verify(
    g: &Global,
    id: Option<&str>,
    unverified: bool,
    quick: bool,
    json: bool,
    cancel: CancellationToken,
) -> Result<i32, PgdrError> {
    let settings = Settings::load(&overrides(g))?;
    let selection = match (id, unverified) {
        (Some(id), _) => commands::verify::Selection::Id(id.to_string()),
        (None, true) => commands::verify::Selection::Unverified,
        (None, false) => commands::verify::Selection::Latest,
    };
    let opts = commands::verify::VerifyOptions {
        database: g.database.clone(),
        selection,
        quick,
    };
    let records = tokio::select! {
        r = commands::verify::run(&settings, &opts) => r?,
        _ = cancel.cancelled() => {
            return Err(PgdrError::new(crate::error::Kind::Interrupted, "verification interrupted; the scratch database was removed"));
        }
    };
    let mut databases: Vec<String> = records.iter().map(|r| r.database.clone()).collect();
    databases.sort();
    databases.dedup();
    let captures = commands::verify::capture_checks(&settings, &databases).await?;
    render::render_verify_run(&records, &captures, json);
    use crate::catalog::records::Outcome;
    let gap = captures.iter().any(|c| !c.ok());
    Ok(
        if gap || records.iter().any(|r| r.outcome == Outcome::Failed) {
            exit::CHECK_FAILED
        } else if records.iter().any(|r| r.outcome == Outcome::Error) {
            exit::COULD_NOT_RUN
        } else {
            exit::OK
        },
    )
}

async fn run_drill(g: &Global, a: &DrillArgs, cancel: CancellationToken) -> Result<i32, PgdrError> {
    use crate::catalog::records::Outcome;
    use commands::drill::{self as d, report};
    let settings = Settings::load(&overrides(g))?;
    match &a.cmd {
        None if a.key_check => key_check::run(&settings, g.database.as_deref(), a.json).await,
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
