//! The conventions every command shares (issue 20): one `--json` switch whose errors are JSON
//! too, one table of exit codes (README "Errors and exit codes"), clap's usage errors at 64
//! and a signal's exit status (130 SIGINT, 143 SIGTERM) instead of "could not run".

use std::sync::atomic::{AtomicI32, Ordering};

use clap::Parser;
use serde_json::json;

use super::args::{Cli, Cmd, ConfigCmd, DrillArgs};
use super::capture::CaptureCmd;
use crate::error::{exit, PgdrError};

/// The status the received signal asks for (0: none yet).
static SIGNAL_EXIT: AtomicI32 = AtomicI32::new(0);

/// Called by the signal handler: the first signal decides the status.
pub(super) fn record_signal(status: i32) {
    let _ = SIGNAL_EXIT.compare_exchange(0, status, Ordering::SeqCst, Ordering::SeqCst);
}

/// The command line, or the exit status after clap said why not: `--help` and `--version`
/// exit 0, every rejected command line 64 (with `--json` also an error object on stdout).
pub(super) fn parse() -> Result<Cli, i32> {
    Cli::try_parse().map_err(|e| {
        if !e.use_stderr() {
            let _ = e.print();
            return exit::OK;
        }
        if std::env::args_os().any(|a| a == "--json") {
            let first = e.render().to_string();
            let first = first.lines().next().unwrap_or("usage error");
            let msg = first.strip_prefix("error: ").unwrap_or(first);
            println!("{}", json!({ "error": msg, "kind": "usage" }));
        }
        let _ = e.print();
        exit::USAGE
    })
}

/// `--json`: the error as the one object on stdout (its line and hints also go to stderr).
pub(super) fn print_error_json(e: &PgdrError) {
    let v = json!({ "error": e.message, "kind": e.kind, "hints": e.hints });
    println!("{}", serde_json::to_string_pretty(&v).expect("json"));
}

/// The exit status after a signal: an interrupted command (130 from its own path) and one that
/// finished its step after the signal both say which signal it was. The daemon and `capture
/// run` stop on a signal by design (systemd's convention: 0 after a graceful stop).
pub(super) fn final_status(cmd: &Cmd, code: i32) -> i32 {
    let service = matches!(cmd, Cmd::Daemon(_))
        || matches!(cmd, Cmd::Capture(a) if matches!(a.cmd, CaptureCmd::Run(_)));
    status_after(SIGNAL_EXIT.load(Ordering::SeqCst), service, code)
}

/// [`final_status`] without the process state: `signal` is 0, 130 or 143.
fn status_after(signal: i32, service: bool, code: i32) -> i32 {
    match (signal, code) {
        (0, _) => code,
        (_, exit::INTERRUPTED) => signal,
        (_, exit::OK) if !service => signal,
        _ => code,
    }
}

/// Commands that only read (the repository, a database in a read-only snapshot, the config):
/// on a signal they stop at once, their future dropped (connections closed, `cat --out`'s
/// temp file removed). The others stop at their own safe points (backup, verify, drill,
/// restore, capture run) or finish the short step they are in (prune, sign, rekey, keep, mark,
/// capture enable/disable: each change is whole on its own).
pub(super) fn stops_at_once(cmd: &Cmd) -> bool {
    match cmd {
        Cmd::List { .. } | Cmd::Show { .. } | Cmd::Cat { .. } | Cmd::Diff(_) => true,
        Cmd::Status(_) | Cmd::Schedule(_) | Cmd::Config { .. } => true,
        Cmd::Drill(DrillArgs { cmd: Some(_), .. }) => true,
        Cmd::Capture(a) => matches!(a.cmd, CaptureCmd::Doctor(_) | CaptureCmd::Check(_)),
        _ => false,
    }
}

/// The error a command stopped by a signal returns.
pub(super) fn interrupted() -> PgdrError {
    PgdrError::new(
        crate::error::Kind::Interrupted,
        "interrupted by a signal; nothing was changed",
    )
}

/// `pgdr keygen [--signing]`: the public half on stdout (text or JSON), where it went on stderr.
pub(super) fn keygen(
    out: &std::path::Path,
    signing: bool,
    as_json: bool,
) -> Result<i32, PgdrError> {
    use crate::commands::keygen as k;
    if signing {
        let (public, id) = k::run_signing(out)?;
        eprintln!(
            "signing key {id} written to {} (unencrypted, 0600: the backup host signs unattended; keep it on that host only)",
            out.display()
        );
        eprintln!("trust it where backups are restored, verified or drilled: [trust] keys = [\"{public}\"]");
        match as_json {
            true => println!(
                "{}",
                json!({ "public_key": public, "key_id": id, "signing_key_file": out })
            ),
            false => println!("{public}"),
        }
        return Ok(exit::OK);
    }
    let public = k::run(out)?;
    eprintln!(
        "identity written to {} (keep it off the database host; it is needed to restore)",
        out.display()
    );
    match as_json {
        true => println!("{}", json!({ "recipient": public, "identity_file": out })),
        false => println!("{public}"),
    }
    Ok(exit::OK)
}

/// `pgdr config check`: one line (or JSON entry) per check; any failed check exits 1 (the
/// check ran and found a problem), a config that cannot be read 2 (the error path).
pub(super) async fn config_check(g: &super::Global, cmd: &ConfigCmd) -> Result<i32, PgdrError> {
    let ConfigCmd::Check { .. } = cmd;
    let settings = crate::config::Settings::load(&super::overrides(g))?;
    let checks = crate::commands::config_check::run(&settings).await;
    if g.json {
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
        exit::CHECK_FAILED
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_decides_the_status_of_an_interrupted_or_finished_one_shot_command() {
        // No signal: the command's own status.
        assert_eq!(status_after(0, false, exit::INTERRUPTED), 130);
        assert_eq!(status_after(0, false, exit::CHECK_FAILED), 1);
        // SIGTERM: an interrupted command and one that finished its step say 143.
        assert_eq!(
            status_after(exit::TERMINATED, false, exit::INTERRUPTED),
            143
        );
        assert_eq!(status_after(exit::TERMINATED, false, exit::OK), 143);
        assert_eq!(status_after(exit::INTERRUPTED, false, exit::OK), 130);
        // A finding or a failure stays what it is.
        assert_eq!(status_after(exit::TERMINATED, false, exit::CHECK_FAILED), 1);
        assert_eq!(
            status_after(exit::TERMINATED, false, exit::COULD_NOT_RUN),
            2
        );
        // The daemon and capture run stop gracefully: 0 (systemd's convention).
        assert_eq!(status_after(exit::TERMINATED, true, exit::OK), 0);
    }
}
