//! `pgdr restore` on the command line: options from the arguments, the plan shown, the
//! operator's confirmation, the report rendered.

use std::io::Write;

use tokio_util::sync::CancellationToken;

use crate::commands;
use crate::config::Settings;
use crate::error::{exit, PgdrError};
use crate::progress;

use super::args::{RestoreArgs, RolesArg};
use super::flags::Global;
use super::{overrides, report_error, restore_render};

pub(super) async fn run_restore(
    g: &Global,
    a: &RestoreArgs,
    cancel: CancellationToken,
) -> Result<i32, PgdrError> {
    use commands::restore as r;
    let settings = Settings::load(&overrides(g))?;
    let opts = options(g, a)?;
    if !a.table.is_empty() || !a.table_schema.is_empty() {
        return super::restore_tables::run(&settings, &opts, a, g.json, cancel).await;
    }
    if a.into.is_some() || a.replace {
        return Err(
            PgdrError::usage("--into and --replace restore selected tables")
                .hint("name them with --table SCHEMA.NAME or --schema NAME"),
        );
    }
    let plan = tokio::select! {
        p = r::prepare(&settings, &opts) => p?,
        _ = cancel.cancelled() => {
            return Err(PgdrError::new(crate::error::Kind::Interrupted, "interrupted before anything was changed"));
        }
    };
    if a.dry_run {
        if g.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&restore_render::plan_json(&plan)).expect("json")
            );
        } else {
            print!("{}", restore_render::plan_text(&plan));
            println!("dry run: nothing was changed");
        }
        return Ok(exit::OK);
    }
    if g.json {
        eprint!("{}", restore_render::plan_text(&plan));
    } else {
        print!("{}", restore_render::plan_text(&plan));
        let _ = std::io::stdout().flush();
    }
    confirm_restore(plan.is_source, &plan.name, a.yes, a.confirm.as_deref())?;
    if cancel.is_cancelled() {
        // Ctrl-C at the prompt: the signal handler caught it while the prompt waited.
        return Err(PgdrError::new(
            crate::error::Kind::Interrupted,
            "interrupted before anything was changed",
        ));
    }
    let report = r::execute(plan, cancel).await;
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.record).expect("json")
        );
    } else {
        print!("{}", restore_render::report_text(&report));
    }
    if let Some(e) = &report.error {
        report_error(e);
    }
    Ok(report.exit_code())
}

/// The one interactive step: a typed confirmation on a terminal, flags otherwise.
pub(super) fn confirm_restore(
    is_source: bool,
    name: &str,
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
    if is_source {
        match confirm {
            Some(n) if n == name => {}
            Some(n) => {
                return Err(PgdrError::usage(format!(
                    "--confirm {n} does not match the target database '{}'",
                    name
                ))
                .hint(format!("pass --confirm {} to restore over the source database", name)))
            }
            None if tty => {
                let typed = ask(&format!(
                    "'{}' is a configured source database. Type its name to restore over it: ",
                    name
                ));
                if typed != name {
                    return Err(aborted());
                }
                typed_name = true;
            }
            None => {
                return Err(PgdrError::usage(format!(
                    "the target '{}' is a configured source database; restoring over it needs its name confirmed",
                    name
                ))
                .hint(format!("pass --confirm {} (and --yes) after checking the plan", name)))
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

/// `--platform-schema` / `--app-schema`.
fn schema_choice(a: &RestoreArgs) -> crate::restore::managed::SchemaChoice {
    crate::restore::managed::SchemaChoice {
        platform: a.platform_schema.clone(),
        app: a.app_schema.clone(),
    }
}

/// `--at TIME|latest`, `--at-lsn LSN`, `--at-mark NAME`.
fn point_spec(a: &RestoreArgs) -> Result<Option<crate::restore::point::PointSpec>, PgdrError> {
    use crate::restore::point::PointSpec;
    Ok(match (&a.at, &a.at_lsn, &a.at_mark) {
        (Some(t), _, _) if t.trim() == "latest" => Some(PointSpec::Latest),
        (Some(t), _, _) => Some(PointSpec::Time(commands::restore::parse_time(t).map_err(
            |mut e| {
                e.message = e.message.replace("--before", "--at");
                e
            },
        )?)),
        (_, Some(l), _) => Some(PointSpec::Lsn(l.parse().map_err(|_| {
            PgdrError::usage(format!("--at-lsn '{l}' is not an LSN"))
                .hint("write it as PostgreSQL does: 16/B374D848")
        })?)),
        (_, _, Some(m)) => Some(PointSpec::Mark(m.clone())),
        _ => None,
    })
}

/// `pgdr mark NAME`.
pub(super) async fn run_mark(g: &Global, name: &str) -> Result<i32, PgdrError> {
    let settings = Settings::load(&overrides(g))?;
    let m = commands::mark::run(&settings, g.database.as_deref(), name).await?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&m).expect("json"));
    } else {
        println!(
            "mark '{}' of database '{}' at {}",
            m.name,
            m.database,
            m.lsn.map(|l| l.to_string()).unwrap_or_default()
        );
    }
    Ok(exit::OK)
}

/// The restore's options from the arguments.
pub(super) fn options(
    g: &Global,
    a: &RestoreArgs,
) -> Result<commands::restore::RestoreOptions, PgdrError> {
    use commands::restore::{self as r, ModeFlag, Selection};
    let selection = match (&a.backup, &a.before) {
        (Some(id), _) => Selection::Id(id.clone()),
        (None, Some(t)) => Selection::Before(r::parse_time(t)?),
        (None, None) => Selection::Latest,
    };
    Ok(r::RestoreOptions {
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
        managed: a.managed,
        schemas: schema_choice(a),
        at: point_spec(a)?,
    })
}
