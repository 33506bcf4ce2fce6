//! `pgdr capture ...`: parsing and rendering. One variant per subcommand, one arm each.

use clap::{Args, Subcommand};

use super::{overrides, Global};
use crate::commands::capture::{doctor, setup};
use crate::config::Settings;
use crate::error::{exit, PgdrError};

#[derive(Args, Debug)]
pub struct CaptureArgs {
    #[command(subcommand)]
    pub cmd: CaptureCmd,
}

#[derive(Subcommand, Debug)]
pub enum CaptureCmd {
    /// Check the server, create the publication pgdr_<db> (FOR TABLE, every table with a
    /// replica identity) and the slot pgdr_<db>, and record them in the repository. Not
    /// captured: DDL, sequences (sampled), large objects, unlogged tables, matviews.
    Enable(EnableArgs),
    /// Drop the slot and the publication; the repository keeps the state, marked disabled.
    Disable(DisableArgs),
    /// List pgdr's replication slots with the WAL each holds, and the DROP for orphans.
    Doctor(DoctorArgs),
    /// Capture the change stream into segments until stopped (SIGINT/SIGTERM).
    Run(super::capture_run::RunArgs),
    /// Prove the stored stream complete: contiguous, one cluster, checksums, each transaction
    /// once; gaps listed with cause. Exit 1 on a gap or a problem.
    Check(super::capture_run::CheckArgs),
    /// Prove the chain: restore the anchored backup before N into a scratch cluster, replay
    /// the stored changes to N's cut, compare every table with N's fingerprint. Exit 1 on a
    /// difference (named per table); recorded beside backup N.
    ProveChain(super::capture_chain::ProveChainArgs),
}

#[derive(Args, Debug)]
pub struct EnableArgs {
    /// Owner/admin connection of the same database for the publication statements (the
    /// capture role rarely owns the tables on managed services); password via PGPASSWORD,
    /// ~/.pgpass or the URL, never shown.
    #[arg(long, env = "PGDR_ADMIN_URL", hide_env_values = true)]
    admin_url: Option<String>,
    /// Print the setup statements for an operator to run as the owner; change nothing.
    #[arg(long, env = "PGDR_PRINT_SQL", conflicts_with = "admin_url")]
    print_sql: bool,
    /// How long each backup waits for its anchor slot (in-progress transactions delay it)
    /// before it goes on unanchored and says who blocked: "60s" (the default), "5m".
    #[arg(long, env = "PGDR_ANCHOR_TIMEOUT", value_name = "DURATION")]
    anchor_timeout: Option<String>,
    /// The runner adds tables created later that have a replica identity to the publication
    /// (and records it); tables without one are reported with the ALTER that would include them.
    #[arg(long, env = "PGDR_AUTO_ADD")]
    auto_add: bool,
    #[command(flatten)]
    pub(super) repo: super::flags::RepoArgs,
    #[command(flatten)]
    pub(super) source: super::flags::SourceArgs,
}

#[derive(Args, Debug)]
pub struct DisableArgs {
    /// Owner/admin connection for DROP PUBLICATION.
    #[arg(long, env = "PGDR_ADMIN_URL", hide_env_values = true)]
    admin_url: Option<String>,
    #[command(flatten)]
    pub(super) repo: super::flags::RepoArgs,
    #[command(flatten)]
    pub(super) source: super::flags::SourceArgs,
}

#[derive(Args, Debug)]
/// `capture doctor` reads the repository and connects to the source.
pub struct DoctorArgs {
    #[command(flatten)]
    pub(super) repo: super::flags::RepoArgs,
    #[command(flatten)]
    pub(super) source: super::flags::SourceArgs,
}

/// `cancel` is the process's SIGINT/SIGTERM token: `capture run` stops on it.
pub async fn run(
    g: &Global,
    a: &CaptureArgs,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<i32, PgdrError> {
    let settings = Settings::load(&overrides(g))?;
    let db = g.database.as_deref();
    match &a.cmd {
        CaptureCmd::Enable(e) => enable(&settings, db, e, g.json).await,
        CaptureCmd::Run(r) => super::capture_run::run_capture(g, &settings, r, cancel).await,
        CaptureCmd::Check(c) => super::capture_run::check_capture(g, &settings, c).await,
        CaptureCmd::ProveChain(c) => super::capture_chain::prove_chain(g, &settings, c).await,
        CaptureCmd::Disable(d) => {
            let r = setup::disable(&settings, db, d.admin_url.as_deref()).await?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&r).expect("json"));
            }
            for x in r.iter().filter(|_| !g.json) {
                println!(
                    "database '{}': slot {}, publication {}; capture disabled",
                    x.database,
                    if x.slot_dropped {
                        "dropped"
                    } else {
                        "was absent"
                    },
                    if x.publication_dropped {
                        "dropped"
                    } else {
                        "was absent"
                    },
                );
            }
            Ok(exit::OK)
        }
        CaptureCmd::Doctor(_) => {
            let slots = doctor::run(&settings, db).await?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&slots).expect("json"));
            } else {
                print!("{}", render_doctor(&slots));
            }
            Ok(if slots.iter().any(|s| s.orphan) {
                exit::CHECK_FAILED
            } else {
                exit::OK
            })
        }
    }
}

async fn enable(
    settings: &Settings,
    db: Option<&str>,
    a: &EnableArgs,
    json: bool,
) -> Result<i32, PgdrError> {
    let opts = setup::EnableOptions {
        database: db.map(str::to_string),
        admin_url: a.admin_url.clone(),
        print_sql: a.print_sql,
        auto_add: a.auto_add,
        anchor_timeout: a
            .anchor_timeout
            .as_deref()
            .map(|t| crate::config::parse_duration(t, "--anchor-timeout"))
            .transpose()?,
    };
    let reports = setup::enable(settings, &opts).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&reports).expect("json"));
        return Ok(exit::OK);
    }
    for r in &reports {
        print!("{}", render_enable(r, a.print_sql));
    }
    Ok(exit::OK)
}

fn render_enable(r: &setup::EnableReport, print_sql: bool) -> String {
    let mut s = String::new();
    if print_sql {
        s.push_str(&format!(
            "-- database '{}': run as the tables' owner, then `pgdr capture enable` again\n",
            r.database
        ));
        for st in &r.statements {
            s.push_str(&format!("{st}\n"));
        }
    } else if let Some(st) = &r.state {
        s.push_str(&format!(
            "database '{}': capture enabled: slot {}, publication {}, {} table(s), from {}\n",
            r.database,
            st.slot,
            st.publication,
            st.tables.len(),
            st.start_lsn
        ));
    }
    for f in &r.preflight.findings {
        s.push_str(&format!("warning: {}; fix: {}\n", f.problem, f.fix));
    }
    for l in &r.preflight.left_out {
        s.push_str(&format!("not captured: {} ({})", l.table, l.reason));
        if let Some(fix) = &l.fix {
            s.push_str(&format!("; to include it: {fix}"));
        }
        s.push('\n');
    }
    for n in &r.not_captured {
        s.push_str(&format!("never captured: {n}\n"));
    }
    s
}

fn render_doctor(slots: &[doctor::SlotReport]) -> String {
    if slots.is_empty() {
        return "no pgdr replication slots\n".into();
    }
    let mut s = String::new();
    for x in slots {
        s.push_str(&format!(
            "{} {}  database {}  {}  wal_status {}  retains {}\n",
            if x.orphan { "ORPHAN" } else { "ok    " },
            x.slot,
            x.database.as_deref().unwrap_or("-"),
            if x.active { "active" } else { "inactive" },
            x.wal_status.as_deref().unwrap_or("-"),
            x.retained_bytes.map_or(
                "-".into(),
                |b| crate::progress::human_bytes(b.max(0) as u64)
            ),
        ));
        if let Some(d) = &x.drop_sql {
            s.push_str(&format!("       drop it: {d}\n"));
        }
    }
    s
}
