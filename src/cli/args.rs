//! The command line's argument types (clap derive): what the user can type, and its help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::flags::{
    DecryptArgs, EncryptArgs, GlobalArgs, JobArgs, ReadBackupArgs, RepoArgs, SignArgs, SourceArgs,
    TrustArgs, UnsignedArgs,
};
use super::ops;
use crate::commands;

#[derive(Parser, Debug)]
#[command(
    name = "pgdr",
    version,
    about = "Backup and disaster recovery for PostgreSQL: streamed, encrypted, verified."
)]
pub(super) struct Cli {
    #[command(flatten)]
    pub(super) global: GlobalArgs,
    #[command(subcommand)]
    pub(super) cmd: Cmd,
}

/// `--database` becomes a folder of the repository: checked before anything runs (exit 64).
pub(super) fn database_name(s: &str) -> Result<String, String> {
    crate::config::names::database_name(s, "database name")
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

#[derive(Subcommand, Debug)]
pub(super) enum Cmd {
    /// Create an age identity (private key, mode 0600) and print its public recipient; with
    /// --signing, a minisign signing key (unencrypted, 0600) and print its public key.
    Keygen {
        /// Where the new key is written (refused if the file exists).
        #[arg(long, env = "PGDR_OUT", value_name = "FILE")]
        out: PathBuf,
        /// A minisign signing key instead of an age identity.
        #[arg(long, env = "PGDR_SIGNING")]
        signing: bool,
    },
    /// Sign backups made before signing existed, after checking them (manifest checksum
    /// first): with --signing-key.
    Sign {
        /// Backup id or unique prefix.
        #[arg(
            required_unless_present = "all_unsigned",
            conflicts_with = "all_unsigned"
        )]
        id: Option<String>,
        /// Every backup without a signature.
        #[arg(long, env = "PGDR_ALL_UNSIGNED")]
        all_unsigned: bool,
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Re-encrypt backups to the current recipients (--identity: the old key; --signing-key:
    /// the manifests are re-signed); new objects beside the old, manifest last, old removed
    /// after. Resumable: run it again after an interruption.
    Rekey {
        /// Backup ids, prefixes or labels.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<String>,
        /// Every backup (of --database, or of all databases).
        #[arg(long, env = "PGDR_ALL")]
        all: bool,
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        encrypt: EncryptArgs,
        #[command(flatten)]
        decrypt: DecryptArgs,
        #[command(flatten)]
        sign: SignArgs,
        #[command(flatten)]
        trust: TrustArgs,
        #[command(flatten)]
        unsigned: UnsignedArgs,
    },
    /// Back up the selected (or every configured) database into the repository; --label
    /// names it, --keep-* keeps it beyond retention, --verify proves it before returning.
    Backup(super::labels::BackupArgs),
    /// Change how long retention keeps a backup (a keep record beside its manifest).
    Keep(super::labels::KeepArgs),
    /// Compare a live database with a backup's fingerprint (row counts, content, schema),
    /// restoring nothing. Exit 0 identical, 1 different, 2 could not run.
    Diff(super::diff::DiffArgs),
    /// List committed backups.
    List {
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Show one backup's manifest.
    Show {
        /// Backup id, a unique prefix of it, or its label.
        id: String,
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Decrypt one object of a backup (checked against its manifest) to a file or stdout.
    Cat {
        /// Backup id, unique prefix or label.
        id: String,
        /// Which object: dump (a pg_restore archive) or globals (SQL).
        #[arg(long, env = "PGDR_OBJECT", default_value = "dump")]
        object: String,
        /// Output file; stdout if absent.
        #[arg(long, env = "PGDR_OUT", value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        decrypt: DecryptArgs,
    },
    /// Prove backups: check every object and (unless --quick) restore into a scratch
    /// database and compare the fingerprint. Exit 0 verified, 1 differences, 2 could not run.
    Verify {
        /// Backup id, unique prefix or label; default: the newest backup of each database.
        id: Option<String>,
        /// The newest backup of each selected database (the default).
        #[arg(long, env = "PGDR_LATEST", conflicts_with_all = ["id", "unverified"])]
        latest: bool,
        /// Every backup without a passed verification.
        #[arg(long, env = "PGDR_UNVERIFIED", conflicts_with = "id")]
        unverified: bool,
        /// No restore: checksums, decryption, archive parse and data digests only.
        #[arg(long, env = "PGDR_QUICK")]
        quick: bool,
        #[command(flatten)]
        read: ReadBackupArgs,
        #[command(flatten)]
        job: JobArgs,
    },
    /// Emergency restore: find a backup in the repository, show the plan, restore it into
    /// --target with guard rails, prove it and record it. Exit 0 restored and proven,
    /// 1 restored but differences found, 2 could not run / refused / failed, 130/143 interrupted (SIGINT/SIGTERM).
    Restore(Box<RestoreArgs>),
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
    /// Write a named point into the database's change stream (pgdr.mark) and record it in
    /// the repository: `pgdr restore --at-mark NAME` restores to it.
    Mark {
        /// Letters, digits, '_', '-', '.'.
        name: String,
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        source: SourceArgs,
        /// The mark is signed like a manifest (restore --at-mark checks it).
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Change capture between dumps: enable, disable, doctor.
    Capture(super::capture::CaptureArgs),
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Print a shell completion script: `pgdr completions bash > /etc/bash_completion.d/pgdr`.
    Completions {
        /// The shell the script is for.
        #[arg(value_enum)]
        shell: super::docs::Shell,
    },
    /// Write man pages (pgdr.1 and one per subcommand, e.g. pgdr-restore.1) into a directory.
    Man {
        /// The directory the pages are written to (created if missing).
        #[arg(long, env = "PGDR_OUT", value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Args, Debug)]
pub(super) struct RestoreArgs {
    /// Target database, postgres://USER@HOST:PORT/DBNAME, connecting as a superuser (password
    /// via PGPASSWORD, ~/.pgpass or the URL; never shown).
    #[arg(long, env = "PGDR_TARGET", hide_env_values = true)]
    pub(super) target: String,
    /// Backup id, unique prefix or label.
    #[arg(long, env = "PGDR_BACKUP", conflicts_with_all = ["latest", "before"])]
    pub(super) backup: Option<String>,
    /// The newest backup (the default).
    #[arg(long, env = "PGDR_LATEST", conflicts_with = "before")]
    pub(super) latest: bool,
    /// The newest backup whose snapshot is at or before TIME (RFC 3339, or 'YYYY-MM-DD HH:MM[:SS]' UTC).
    #[arg(long, env = "PGDR_BEFORE", value_name = "TIME")]
    pub(super) before: Option<String>,
    /// Point-in-time restore to TIME (commits at or before it; 'latest': everything stored):
    /// the newest anchored backup before it, then the captured changes replayed onto it.
    #[arg(long, env = "PGDR_AT", value_name = "TIME", conflicts_with_all = ["backup", "latest", "before", "at_lsn", "at_mark"])]
    pub(super) at: Option<String>,
    /// Point-in-time restore up to the transaction whose commit record is at LSN (included).
    #[arg(long, env = "PGDR_AT_LSN", value_name = "LSN", conflicts_with_all = ["backup", "latest", "before", "at_mark"])]
    pub(super) at_lsn: Option<String>,
    /// Point-in-time restore to a mark written with `pgdr mark NAME`.
    #[arg(long, env = "PGDR_AT_MARK", value_name = "NAME", conflicts_with_all = ["backup", "latest", "before"])]
    pub(super) at_mark: Option<String>,
    /// If the target database has tables: drop it and restore in its place.
    #[arg(long, conflicts_with = "swap")]
    pub(super) clean: bool,
    /// If the target database exists: restore into <name>_restoring, prove it, then rename
    /// the old one to <name>_pre_restore_<time> and the copy to <name> in one step.
    #[arg(long)]
    pub(super) swap: bool,
    /// End other sessions (pg_terminate_backend) where a drop or the swap needs it.
    #[arg(long)]
    pub(super) terminate: bool,
    /// The target's database name, required when it is a configured source database.
    #[arg(long, value_name = "NAME")]
    pub(super) confirm: Option<String>,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub(super) yes: bool,
    /// Print the plan and change nothing.
    #[arg(long, env = "PGDR_DRY_RUN")]
    pub(super) dry_run: bool,
    /// Parallel pg_restore jobs; more than 1 spools the decrypted dump to a temp file first.
    #[arg(long, env = "PGDR_JOBS", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(super) jobs: Option<u32>,
    /// Directory of the spool file for --jobs (default: the system temp dir).
    #[arg(long, env = "PGDR_SPOOL_DIR", value_name = "DIR")]
    pub(super) spool_dir: Option<PathBuf>,
    /// Roles the target already has: merge (settings, comments, memberships made the
    /// backup's; attributes and passwords kept), keep (unchanged; alias skip-existing), or
    /// overwrite (every role made equal to the backup's).
    #[arg(long, value_enum, default_value = "merge")]
    pub(super) roles: RolesArg,
    /// Skip the fingerprint comparison after the restore.
    #[arg(long)]
    pub(super) no_verify: bool,
    /// Plan for a managed server (Supabase, RDS, Cloud SQL) even when connecting as a
    /// superuser; automatic for a role without SUPERUSER.
    #[arg(long, env = "PGDR_MANAGED")]
    pub(super) managed: bool,
    /// On a managed target: a schema the platform owns (only its tables' rows are restored).
    #[arg(long, env = "PGDR_PLATFORM_SCHEMA", value_name = "NAME")]
    pub(super) platform_schema: Vec<String>,
    /// On a managed target: a schema that is the application's (restored whole).
    #[arg(long, env = "PGDR_APP_SCHEMA", value_name = "NAME")]
    pub(super) app_schema: Vec<String>,
    /// Restore only this table (SCHEMA.NAME; repeatable) with its data, indexes,
    /// constraints, triggers, policies and grants into the live database.
    #[arg(long, env = "PGDR_TABLE", value_name = "SCHEMA.NAME", conflicts_with_all = ["clean", "swap", "at", "at_lsn", "at_mark", "managed", "jobs"])]
    pub(super) table: Vec<String>,
    /// Restore every table of this schema (repeatable), as --table does.
    #[arg(long = "schema", env = "PGDR_SCHEMA", value_name = "NAME", conflicts_with_all = ["clean", "swap", "at", "at_lsn", "at_mark", "managed", "jobs"])]
    pub(super) table_schema: Vec<String>,
    /// With --table/--schema: the new schema the tables land in (default restored_<backupid>).
    #[arg(
        long,
        env = "PGDR_INTO",
        value_name = "SCHEMA",
        conflicts_with = "replace"
    )]
    pub(super) into: Option<String>,
    /// With --table/--schema: replace the live tables in one transaction.
    #[arg(long)]
    pub(super) replace: bool,
    /// With --replace: drop other tables' foreign keys into the replaced tables and re-create
    /// them from the backup, in the same transaction.
    #[arg(long, requires = "replace")]
    pub(super) cascade: bool,
    #[command(flatten)]
    pub(super) read: ReadBackupArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RolesArg {
    Merge,
    #[value(alias = "skip-existing")]
    Keep,
    Overwrite,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub(super) struct DrillArgs {
    #[command(subcommand)]
    pub(super) cmd: Option<DrillCmd>,
    /// Backup id, unique prefix or label; default: per the drill file's selection (the newest).
    #[arg(long, env = "PGDR_BACKUP")]
    pub(super) backup: Option<String>,
    /// Drill definition: database, backup selection, targets, smoke checks (drills/README.md).
    #[arg(long, env = "PGDR_DRILL", value_name = "FILE")]
    pub(super) drill: Option<PathBuf>,
    /// Key drill: prove each --identity alone on the newest backup of each database (quick
    /// verify, no restore) and record which recipients it proved. Exit 1 if one fails.
    #[arg(long, env = "PGDR_KEY_CHECK", conflicts_with_all = ["backup", "drill"])]
    pub(super) key_check: bool,
    #[command(flatten)]
    pub(super) read: ReadBackupArgs,
    #[command(flatten)]
    pub(super) job: JobArgs,
}

#[derive(Subcommand, Debug)]
pub(super) enum DrillCmd {
    /// Past drills, newest first: RTO, RPO, worst RPO, result.
    History {
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// One self-contained file: the latest drill's phases, the history, RTO and RPO charts
    /// against their targets, and whether the backup schedule can meet the RPO target.
    Report {
        /// The report file to write.
        #[arg(long, env = "PGDR_OUT", value_name = "FILE")]
        out: PathBuf,
        /// html (one self-contained page), md (Markdown) or json.
        #[arg(long, env = "PGDR_FORMAT", value_enum, default_value = "html")]
        format: commands::drill::report::Format,
        #[command(flatten)]
        repo: RepoArgs,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum ConfigCmd {
    /// Validate the configuration and reach every database and the repository.
    Check {
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        encrypt: EncryptArgs,
        #[command(flatten)]
        decrypt: DecryptArgs,
        #[command(flatten)]
        sign: SignArgs,
        #[command(flatten)]
        trust: TrustArgs,
    },
}
