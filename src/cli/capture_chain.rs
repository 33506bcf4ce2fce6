//! `pgdr capture prove-chain`: parsing and rendering; the proof is `verify::chain`.

use clap::Args;

use super::Global;
use crate::catalog::records::Outcome;
use crate::config::Settings;
use crate::error::{exit, PgdrError};
use crate::verify::chain::{self, ChainOptions};

#[derive(Args, Debug)]
pub struct ProveChainArgs {
    /// Backup N, an id or unique prefix (default: the newest): the proof replays from the
    /// anchored backup before it to its cut.
    #[arg(long, env = "PGDR_BACKUP", value_name = "ID")]
    backup: Option<String>,
    #[command(flatten)]
    pub(super) repo: super::flags::RepoArgs,
    #[command(flatten)]
    pub(super) decrypt: super::flags::DecryptArgs,
    #[command(flatten)]
    pub(super) sign: super::flags::SignArgs,
    #[command(flatten)]
    pub(super) trust: super::flags::TrustArgs,
    #[command(flatten)]
    pub(super) unsigned: super::flags::UnsignedArgs,
}

/// The record rendered as `pgdr verify` renders its own; exit 1 on a difference, 2 when the
/// proof could not run.
pub async fn prove_chain(g: &Global, s: &Settings, a: &ProveChainArgs) -> Result<i32, PgdrError> {
    let opts = ChainOptions {
        database: g.database.clone(),
        backup: a.backup.clone(),
    };
    let rec = chain::run(s, &opts).await?;
    super::render::render_verify_run(std::slice::from_ref(&rec), &[], g.json);
    Ok(match rec.outcome {
        Outcome::Passed => exit::OK,
        Outcome::Failed => exit::CHECK_FAILED,
        Outcome::Error => exit::COULD_NOT_RUN,
    })
}
