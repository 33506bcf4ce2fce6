//! Command-line parsing and rendering. Commands do the work; this only translates.

mod args;
mod capture;
mod capture_chain;
mod capture_run;
mod capture_status;
mod diff;
mod docs;
mod flags;
mod key_check;
mod labels;
mod nagios;
mod ops;
mod output;
mod render;
mod restore;
mod restore_point;
mod restore_render;
mod restore_tables;
mod run_alerts;

use std::io::Write;

use tokio_util::sync::CancellationToken;

use crate::commands;
use crate::config::{Overrides, Settings};
use crate::error::{exit, PgdrError};

use args::{Cli, Cmd, DrillArgs, DrillCmd};
use flags::{Global, LogFormat};
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

/// Colour codes only for a person at a terminal: a pipe, a file, journald or a CI log gets
/// plain text, and NO_COLOR (set and not empty, no-color.org) turns them off everywhere.
fn use_colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

fn init_logging(g: &Global) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let default = log_filter(g.quiet, g.verbose);
    let filter = EnvFilter::try_from_env("PGDR_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match g.log_format {
        LogFormat::Json => b.json().init(),
        LogFormat::Human => b.with_target(false).init(),
    }
}

/// Parse, run, render; returns the exit status.
pub fn main() -> i32 {
    let cli = match output::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let g = flags::context(&cli);
    init_logging(&g);
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
        match dispatch(&cli, &g, cancel).await {
            Ok(code) => code,
            Err(e) => {
                report_error(&e);
                if g.json {
                    output::print_error_json(&e);
                }
                e.exit_code()
            }
        }
    });
    // Child processes were reaped by their owners; do not wait on stray blocking reads.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    output::final_status(&cli.cmd, code)
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
            _ = tokio::signal::ctrl_c() => output::record_signal(exit::INTERRUPTED),
            _ = term.recv() => output::record_signal(exit::TERMINATED),
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
        libpq_env: Some(crate::config::libpq::LibpqEnv::from_process()),
    }
}

/// A command that runs a job goes through the shared alerts and metrics file.
async fn dispatch(cli: &Cli, g: &Global, cancel: CancellationToken) -> Result<i32, PgdrError> {
    run_alerts::setup_progress(g, &cli.cmd);
    if output::stops_at_once(&cli.cmd) {
        return tokio::select! {
            r = dispatch_cmd(cli, g, cancel.clone()) => r,
            _ = cancel.cancelled() => Err(output::interrupted()),
        };
    }
    match run_alerts::job_of(&cli.cmd) {
        Some(job) => run_alerts::around(g, job, dispatch_cmd(cli, g, cancel)).await,
        None => dispatch_cmd(cli, g, cancel).await,
    }
}

async fn dispatch_cmd(cli: &Cli, g: &Global, cancel: CancellationToken) -> Result<i32, PgdrError> {
    match &cli.cmd {
        Cmd::Keygen { out, signing } => output::keygen(out, *signing, g.json),
        Cmd::Completions { shell } => docs::completions(*shell),
        Cmd::Man { out } => docs::man(out, g.quiet),
        Cmd::Sign { id, .. } => run_sign(g, id.as_deref()).await,
        Cmd::Backup(a) => labels::run_backup(g, a, cancel).await,
        Cmd::Keep(a) => labels::run_keep(g, a).await,
        Cmd::Diff(a) => diff::run(g, a).await,
        Cmd::List { .. } => {
            let settings = Settings::load(&overrides(g))?;
            let listed = commands::list::list(&settings, g.database.as_deref()).await?;
            let mut out = std::io::stdout().lock();
            if g.json {
                let v: Vec<serde_json::Value> = listed.iter().map(listed_json).collect();
                let _ = writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"));
            } else {
                let _ = write!(out, "{}", render_list(&listed));
                let marks = commands::list::marks(&settings, g.database.as_deref()).await?;
                let _ = write!(out, "{}", restore_render::marks(&marks));
            }
            Ok(exit::OK)
        }
        Cmd::Show { id, .. } => run_show(g, id).await,
        Cmd::Cat {
            id, object, out, ..
        } => {
            if g.json && out.is_none() {
                return Err(PgdrError::usage("cat --json: the object itself is stdout")
                    .hint("add --out FILE: the object goes there, the JSON summary to stdout"));
            }
            let settings = Settings::load(&overrides(g))?;
            let (m, st) =
                commands::cat::run(&settings, g.database.as_deref(), id, object, out.as_deref())
                    .await?;
            tracing::info!(id = %m.id, object = %object, bytes = st.plain_bytes, "decrypted; sha256 matches the manifest");
            if let (true, Some(out)) = (g.json, out) {
                let v = serde_json::json!({ "id": m.id, "database": m.database, "object": object, "bytes": st.plain_bytes, "out": out });
                println!("{}", serde_json::to_string_pretty(&v).expect("json"));
            }
            Ok(exit::OK)
        }
        Cmd::Verify {
            id,
            latest: _,
            unverified,
            quick,
            ..
        } => run_verify(g, id.as_deref(), *unverified, *quick, cancel).await,
        Cmd::Restore(a) => run_restore(g, a, cancel).await,
        Cmd::Drill(a) => run_drill(g, a, cancel).await,
        Cmd::Rekey { ids, all, .. } => key_check::rekey(g, ids, *all, overrides(g)).await,
        Cmd::Prune(a) => ops::prune(g, a).await,
        Cmd::Schedule(a) => ops::schedule(g, a).await,
        Cmd::Daemon(a) => ops::daemon(g, a, cancel).await,
        Cmd::Status(a) => ops::status(g, a).await,
        Cmd::Capture(a) => capture::run(g, a, cancel).await,
        Cmd::Mark { name, .. } => restore::run_mark(g, name).await,
        Cmd::Config { cmd } => output::config_check(g, cmd).await,
    }
}

/// `pgdr sign`: one line per backup; a refused one (damaged manifest) exits 1.
async fn run_sign(g: &Global, id: Option<&str>) -> Result<i32, PgdrError> {
    let settings = Settings::load(&overrides(g))?;
    let r = commands::sign::run(&settings, g.database.as_deref(), id).await?;
    if g.json {
        let refused: Vec<_> = r
            .refused
            .iter()
            .map(|(b, why)| serde_json::json!({ "backup": b, "reason": why }))
            .collect();
        let v = serde_json::json!({ "key_id": r.key_id, "signed": r.signed, "already_signed": r.already_signed, "refused": refused });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    }
    for b in r.signed.iter().filter(|_| !g.json) {
        println!("signed {b} with key {}", r.key_id);
    }
    for b in r.already_signed.iter().filter(|_| !g.json) {
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
async fn run_show(g: &Global, id: &str) -> Result<i32, PgdrError> {
    let settings = Settings::load(&overrides(g))?;
    let e = commands::list::show(&settings, g.database.as_deref(), id).await?;
    let signed = commands::list::signed_by(&settings, &e.manifest).await?;
    let restores = commands::list::restores(&settings, &e.manifest).await?;
    let record_signed = match &e.verification {
        Some(v) => Some(commands::list::verification_signed_by(&settings, v).await?),
        None => None,
    };
    if g.json {
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
    render::render_verify_run(&records, &captures, g.json);
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
        None if a.key_check => key_check::run(&settings, g.database.as_deref(), g.json).await,
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
            if g.json {
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
        Some(DrillCmd::History { .. }) => {
            let h = d::history(&settings, g.database.as_deref()).await?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&h).expect("json"));
            } else {
                print!("{}", report::render_history(&h));
            }
            Ok(exit::OK)
        }
        Some(DrillCmd::Report { out, format, .. }) => {
            let text = d::report(&settings, g.database.as_deref(), *format).await?;
            std::fs::write(out, text).map_err(|e| {
                PgdrError::usage(format!("cannot write the report to {}: {e}", out.display()))
            })?;
            if g.json {
                let v = serde_json::json!({ "report": out, "format": format!("{format:?}").to_lowercase() });
                println!("{}", serde_json::to_string_pretty(&v).expect("json"));
            } else if !g.quiet {
                eprintln!("report written to {}", out.display());
            }
            Ok(exit::OK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::use_colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some("".into())), "empty NO_COLOR is unset");
        assert!(!use_colour(true, Some("1".into())));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some("1".into())));
    }
}
