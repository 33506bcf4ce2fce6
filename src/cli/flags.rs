//! Flag groups (issue 20): each flag exists only on the commands where it means something,
//! under one name for one meaning, so `pgdr keygen --repo X` is a usage error instead of a
//! flag silently ignored. Each command flattens the groups it uses; [`context`] folds the
//! groups of the command that was parsed into [`Global`], the one struct the command code reads
//! (what a command does not take stays empty, and the config file fills it as before).
//!
//! Every flag has a `PGDR_*` environment variable except the ones that confirm or weaken a
//! safety check (the list in `flags_tests.rs`, which a test walking the whole clap tree
//! enforces): an exported variable must never say yes for a person.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::args::{Cli, Cmd, ConfigCmd, DrillCmd};
use super::capture::CaptureCmd;

/// The flags every command takes: how pgdr is configured and how it talks.
#[derive(Args, Debug)]
pub(super) struct GlobalArgs {
    /// Config file (TOML); see config/pgdr.example.toml.
    #[arg(long, env = "PGDR_CONFIG", global = true)]
    pub(super) config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(
        long,
        env = "PGDR_LOG_FORMAT",
        value_enum,
        default_value = "human",
        global = true
    )]
    pub(super) log_format: LogFormat,
    /// Only errors; no progress.
    #[arg(long, short, env = "PGDR_QUIET", global = true)]
    pub(super) quiet: bool,
    /// More detail (repeat for more; env: the count, e.g. PGDR_VERBOSE=2).
    #[arg(long, short, env = "PGDR_VERBOSE", action = clap::ArgAction::Count, global = true)]
    pub(super) verbose: u8,
    /// Progress: auto (a bar on a terminal, nothing elsewhere), bar, log (a line every
    /// [progress] interval, default 30s), none (or [progress] mode).
    #[arg(long, env = "PGDR_PROGRESS", value_enum, global = true)]
    pub(super) progress: Option<crate::config::notify::ProgressMode>,
    /// Output as JSON on stdout, for every command (fields: README "JSON output"); an error is
    /// one {"error": ...} object there too, and its line still goes to stderr.
    #[arg(long, env = "PGDR_JSON", global = true)]
    pub(super) json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Every command that reads or writes the repository.
#[derive(Args, Debug, Default)]
pub(super) struct RepoArgs {
    /// Repository: a local directory or s3://BUCKET/PREFIX.
    #[arg(long, env = "PGDR_REPO")]
    repo: Option<String>,
    /// Database name (as configured, or the dbname of --source).
    #[arg(long, env = "PGDR_DATABASE", value_parser = super::args::database_name)]
    database: Option<String>,
}

/// Commands that connect to the source database, or that act on the configured databases
/// (a one-off `--source` is one: verify, drill, prune and schedule select it, restore's
/// default backup is its, and restoring onto it asks for `--confirm`).
#[derive(Args, Debug, Default)]
pub(super) struct SourceArgs {
    /// Source database URL, postgres://USER@HOST:PORT/DBNAME (password via PGPASSWORD, ~/.pgpass or the config).
    #[arg(long, env = "PGDR_SOURCE", hide_env_values = true)]
    source: Option<String>,
}

/// Commands that encrypt (or judge what is encrypted to whom).
#[derive(Args, Debug, Default)]
pub(super) struct EncryptArgs {
    /// age public key backups are encrypted to (repeatable; env: comma-separated).
    #[arg(long = "recipient", env = "PGDR_RECIPIENT", value_delimiter = ',')]
    recipients: Vec<String>,
}

/// Commands that decrypt.
#[derive(Args, Debug, Default)]
pub(super) struct DecryptArgs {
    /// age identity file, for commands that decrypt (repeatable: each is tried; a key drill
    /// proves each alone; env: comma-separated).
    #[arg(long = "identity", env = "PGDR_IDENTITY", value_delimiter = ',')]
    identities: Vec<PathBuf>,
}

/// Commands that write signed objects: manifests, segment entries, records.
#[derive(Args, Debug, Default)]
pub(super) struct SignArgs {
    /// minisign secret key this host signs manifests, segment entries and records with.
    #[arg(long, env = "PGDR_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
}

/// Commands that read signed objects and say or decide whether they are trusted.
#[derive(Args, Debug, Default)]
pub(super) struct TrustArgs {
    /// minisign public key whose signatures readers accept (repeatable; env: comma-separated).
    #[arg(long = "trust-key", env = "PGDR_TRUST_KEYS", value_delimiter = ',')]
    trust_keys: Vec<String>,
}

/// Commands that refuse an unsigned backup unless told otherwise, one run at a time.
#[derive(Args, Debug, Default)]
pub(super) struct UnsignedArgs {
    /// Restore, verify or drill a backup that is not signed by a trusted key (command line
    /// only; printed in the plan and stored in the record).
    #[arg(long)]
    allow_unsigned: bool,
}

/// Commands that read a backup to prove or restore it (verify, restore, drill): where it is,
/// the database it is compared with, the key that opens it and whose signatures to trust.
#[derive(Args, Debug, Default)]
pub(super) struct ReadBackupArgs {
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    decrypt: DecryptArgs,
    #[command(flatten)]
    sign: SignArgs,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    unsigned: UnsignedArgs,
}

/// Commands that run a job (backup, verify, drill, prune, capture run/check).
#[derive(Args, Debug, Default)]
pub(super) struct JobArgs {
    /// After the run: write its gauges into this node_exporter textfile, merged with the
    /// other databases' and jobs' (or [metrics] textfile).
    #[arg(long, env = "PGDR_METRICS_FILE", value_name = "PATH")]
    metrics_file: Option<PathBuf>,
}

/// What the command code reads: the global flags and the groups the parsed command took.
#[derive(Debug, Default)]
pub(super) struct Global {
    pub(super) config: Option<PathBuf>,
    pub(super) source: Option<String>,
    pub(super) repo: Option<String>,
    pub(super) recipients: Vec<String>,
    pub(super) identities: Vec<PathBuf>,
    pub(super) signing_key: Option<PathBuf>,
    pub(super) trust_keys: Vec<String>,
    pub(super) allow_unsigned: bool,
    pub(super) database: Option<String>,
    pub(super) log_format: LogFormat,
    pub(super) quiet: bool,
    pub(super) verbose: u8,
    pub(super) metrics_file: Option<PathBuf>,
    pub(super) progress: Option<crate::config::notify::ProgressMode>,
    pub(super) json: bool,
}

/// Apply each named group of a command to the context.
macro_rules! take {
    ($g:expr; $($group:expr),* $(,)?) => {{ $( $group.apply($g); )* }};
}

/// A flag group puts its values into the context.
pub(super) trait Group {
    fn apply(&self, g: &mut Global);
}

impl Group for RepoArgs {
    fn apply(&self, g: &mut Global) {
        g.repo.clone_from(&self.repo);
        g.database.clone_from(&self.database);
    }
}
impl Group for SourceArgs {
    fn apply(&self, g: &mut Global) {
        g.source.clone_from(&self.source);
    }
}
impl Group for EncryptArgs {
    fn apply(&self, g: &mut Global) {
        g.recipients.clone_from(&self.recipients);
    }
}
impl Group for DecryptArgs {
    fn apply(&self, g: &mut Global) {
        g.identities.clone_from(&self.identities);
    }
}
impl Group for SignArgs {
    fn apply(&self, g: &mut Global) {
        g.signing_key.clone_from(&self.signing_key);
    }
}
impl Group for TrustArgs {
    fn apply(&self, g: &mut Global) {
        g.trust_keys.clone_from(&self.trust_keys);
    }
}
impl Group for UnsignedArgs {
    fn apply(&self, g: &mut Global) {
        g.allow_unsigned = self.allow_unsigned;
    }
}
impl Group for ReadBackupArgs {
    fn apply(&self, g: &mut Global) {
        take!(g; self.repo, self.source, self.decrypt, self.sign, self.trust, self.unsigned);
    }
}
impl Group for JobArgs {
    fn apply(&self, g: &mut Global) {
        g.metrics_file.clone_from(&self.metrics_file);
    }
}

/// The context of one run: the global flags, then the groups of the command that was parsed.
pub(super) fn context(cli: &Cli) -> Global {
    let a = &cli.global;
    let mut g = Global {
        config: a.config.clone(),
        log_format: a.log_format,
        quiet: a.quiet,
        verbose: a.verbose,
        progress: a.progress,
        json: a.json,
        ..Global::default()
    };
    take_command(&cli.cmd, &mut g);
    g
}

/// Which groups each command takes (the table in README's flag reference).
fn take_command(cmd: &Cmd, g: &mut Global) {
    match cmd {
        Cmd::Keygen { .. } | Cmd::Completions { .. } | Cmd::Man { .. } => {}
        Cmd::Sign { repo, sign, .. } => take!(g; repo, sign),
        Cmd::Rekey {
            repo,
            encrypt,
            decrypt,
            sign,
            trust,
            unsigned,
            ..
        } => take!(g; repo, encrypt, decrypt, sign, trust, unsigned),
        Cmd::Backup(a) => take!(g; a.read, a.encrypt, a.job),
        Cmd::Keep(a) => take!(g; a.repo),
        Cmd::Diff(a) => take!(g; a.repo, a.decrypt, a.trust, a.unsigned),
        Cmd::List { repo, trust, .. } | Cmd::Show { repo, trust, .. } => take!(g; repo, trust),
        Cmd::Cat { repo, decrypt, .. } => take!(g; repo, decrypt),
        Cmd::Verify { read, job, .. } => take!(g; read, job),
        Cmd::Restore(a) => take!(g; a.read),
        Cmd::Drill(a) => match &a.cmd {
            None => take!(g; a.read, a.job),
            Some(DrillCmd::History { repo, .. } | DrillCmd::Report { repo, .. }) => {
                take!(g; repo)
            }
        },
        Cmd::Prune(a) => take!(g; a.repo, a.source, a.job),
        Cmd::Status(a) => take!(g; a.repo, a.source, a.encrypt),
        Cmd::Schedule(a) => take!(g; a.repo, a.source),
        Cmd::Daemon(a) => take!(g; a.repo, a.source, a.encrypt, a.decrypt, a.sign, a.trust),
        Cmd::Mark {
            repo, source, sign, ..
        } => take!(g; repo, source, sign),
        Cmd::Capture(a) => take_capture(&a.cmd, g),
        Cmd::Config {
            cmd:
                ConfigCmd::Check {
                    repo,
                    source,
                    encrypt,
                    decrypt,
                    sign,
                    trust,
                    ..
                },
        } => take!(g; repo, source, encrypt, decrypt, sign, trust),
    }
}

fn take_capture(cmd: &CaptureCmd, g: &mut Global) {
    match cmd {
        CaptureCmd::Enable(a) => take!(g; a.repo, a.source),
        CaptureCmd::Disable(a) => take!(g; a.repo, a.source),
        CaptureCmd::Doctor(a) => take!(g; a.repo, a.source),
        CaptureCmd::Run(a) => take!(g; a.repo, a.source, a.encrypt, a.sign, a.job),
        CaptureCmd::Check(a) => take!(g; a.repo, a.decrypt, a.job),
        CaptureCmd::ProveChain(a) => take!(g; a.repo, a.decrypt, a.sign, a.trust, a.unsigned),
    }
}

#[cfg(test)]
#[path = "flags_tests.rs"]
mod tests;
