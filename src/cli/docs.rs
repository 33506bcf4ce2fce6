//! `pgdr completions SHELL` and `pgdr man --out DIR`: generated from the parser's own clap
//! tree (clap_complete, clap_mangen), so they name exactly the flags each command takes.

use std::path::Path;

use clap::CommandFactory;

use super::args::Cli;
use crate::error::{exit, PgdrError};

pub(super) use clap_complete::Shell;

/// The completion script for `shell` on stdout.
pub(super) fn completions(shell: Shell) -> Result<i32, PgdrError> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "pgdr", &mut std::io::stdout().lock());
    Ok(exit::OK)
}

/// pgdr.1 and one page per subcommand (pgdr-restore.1, pgdr-drill-history.1, ...) in `out`.
pub(super) fn man(out: &Path, quiet: bool) -> Result<i32, PgdrError> {
    let cannot = |e: std::io::Error| {
        PgdrError::usage(format!(
            "cannot write man pages into {}: {e}",
            out.display()
        ))
        .hint("give --out a directory this user can write")
    };
    std::fs::create_dir_all(out).map_err(cannot)?;
    clap_mangen::generate_to(Cli::command(), out).map_err(cannot)?;
    if !quiet {
        eprintln!("man pages written to {}", out.display());
    }
    Ok(exit::OK)
}
