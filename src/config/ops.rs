//! The operations part of the config: schedules, retention, metrics, webhooks and the daemon.
//!
//! The file sections are parsed here (config.rs only embeds them), then resolved per database:
//! a `[[database]]`'s own `[database.schedule]` / `[database.retention]` keys win over the
//! top-level `[schedule]` / `[retention]` defaults, key by key, which win over built-in
//! defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;

use super::cron::CronSchedule;
use crate::config::{FileConfig, Secret};
use crate::error::{PgdrError, Result};

pub const DEFAULT_BACKUP_CRON: &str = "0 2 * * *";
pub const DEFAULT_DRILL_CRON: &str = "0 4 1 * *";
pub const DEFAULT_PRUNE_CRON: &str = "30 5 * * *";
/// Weekly, Sunday after the nightly backup: a proof may replay a week of changes.
pub const DEFAULT_CHAIN_PROOF_CRON: &str = "0 3 * * 0";
pub const DEFAULT_MAX_BACKUP_AGE: Duration = Duration::from_secs(26 * 3600);
pub const DEFAULT_LEFTOVER_AGE: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_MIN_VERIFIED: u32 = 2;
pub const DEFAULT_KEEP_RECORDS: u32 = 100;
pub const DEFAULT_KEEP_VERIFICATIONS: u32 = 10;
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------------
// The file, as written.

/// `[retention]` and `[database.retention]`.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RetentionFile {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    /// The newest this many verified backups are never deleted (default 2).
    pub min_verified: Option<u32>,
    /// Newest backup older than this: an outage; `status` fails and prune deletes nothing by
    /// age (default "26h").
    pub max_backup_age: Option<String>,
    /// Leftovers of interrupted runs older than this are removed by prune (default "24h").
    pub leftover_age: Option<String>,
    /// Calendar periods (days, weeks, ...) are counted in this IANA zone (default UTC).
    pub timezone: Option<String>,
    /// Records kept per kind (default 100 drills, 100 restores, 10 verifications per backup).
    pub keep_drills: Option<u32>,
    pub keep_restores: Option<u32>,
    pub keep_verifications: Option<u32>,
}

/// A job's schedule: `"0 2 * * *"`, `"off"`, or `{ cron = "...", timezone = "...", jitter = "10m" }`.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum JobFile {
    Cron(String),
    Table(JobTable),
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct JobTable {
    pub cron: String,
    pub timezone: Option<String>,
    pub jitter: Option<String>,
}

/// `[schedule]` and `[database.schedule]`.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFile {
    /// IANA zone the cron expressions are read in (default UTC).
    pub timezone: Option<String>,
    pub backup: Option<JobFile>,
    /// After every scheduled backup: "quick", "full" or "off" (default "quick").
    pub verify: Option<String>,
    pub drill: Option<JobFile>,
    /// A drill definition file for scheduled drills.
    pub drill_file: Option<PathBuf>,
    pub prune: Option<JobFile>,
    /// The chain proof (`pgdr capture prove-chain`), its own job: it may replay days of
    /// changes, so it never rides on the verification after a backup. Default weekly.
    pub chain_proof: Option<JobFile>,
    /// Random delay added to each run, up to this long (default none).
    pub jitter: Option<String>,
    /// Run a job missed while the daemon was down once at start-up (default true).
    pub catch_up: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    /// `127.0.0.1:9187`: serves /metrics and /healthz.
    pub listen: Option<String>,
    /// node_exporter textfile every one-shot run updates (see `config::notify`).
    pub textfile: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct WebhookFile {
    /// Where to POST; often a secret (Slack), so never logged beyond its host.
    pub url: Secret,
    /// "json" (default) or "slack".
    pub format: Option<String>,
    /// Also notify on success (default false).
    pub on_success: Option<bool>,
    /// Attempts before giving up (default 4), backing off 1s, 2s, 4s, ...
    pub max_attempts: Option<u32>,
    /// Per attempt (default "10s").
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct DaemonFile {
    /// On SIGTERM/SIGINT, running jobs get this long to finish before they are cancelled
    /// (default "5m").
    pub grace_period: Option<String>,
    /// Accept a leading seconds field in cron expressions (6 fields). For tests and demos
    /// only: production schedules are 5-field, minute granularity.
    pub cron_seconds: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Resolved.

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    Backup,
    Drill,
    Prune,
    /// `pgdr capture prove-chain` of the newest backup (databases with capture enabled).
    ChainProof,
}

impl JobKind {
    pub const ALL: [JobKind; 4] = [
        JobKind::Backup,
        JobKind::Drill,
        JobKind::Prune,
        JobKind::ChainProof,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Drill => "drill",
            JobKind::Prune => "prune",
            JobKind::ChainProof => "chain_proof",
        }
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyAfter {
    Off,
    Quick,
    Full,
}

/// How many backups to keep by age, and the gates that stop deletion (applied by
/// `schedule::retention`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionPolicy {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    pub min_verified: u32,
    pub max_backup_age: Duration,
    pub timezone: Tz,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_last: None,
            keep_hourly: None,
            keep_daily: None,
            keep_weekly: None,
            keep_monthly: None,
            keep_yearly: None,
            min_verified: DEFAULT_MIN_VERIFIED,
            max_backup_age: DEFAULT_MAX_BACKUP_AGE,
            timezone: Tz::UTC,
        }
    }
}

/// One scheduled job of one database.
#[derive(Debug, Clone)]
pub struct JobSchedule {
    pub database: String,
    pub kind: JobKind,
    pub schedule: CronSchedule,
    pub jitter: Duration,
}

/// What the daemon, `schedule`, `status` and `prune` need to know about one database.
#[derive(Debug, Clone)]
pub struct DatabaseOps {
    pub retention: RetentionPolicy,
    pub leftover_age: Duration,
    pub keep_drills: u32,
    pub keep_restores: u32,
    pub keep_verifications: u32,
    /// Enabled jobs (a job set to "off" is absent).
    pub jobs: Vec<JobSchedule>,
    pub verify_after: VerifyAfter,
    pub drill_file: Option<PathBuf>,
    pub catch_up: bool,
    /// Which retention policy applies, in config words, for `prune --dry-run`: the database's
    /// own `[database.retention]`, the global `[retention]`, or the built-in defaults.
    pub policy: String,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: Secret,
    pub slack: bool,
    pub on_success: bool,
    pub max_attempts: u32,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct OpsSettings {
    pub databases: BTreeMap<String, DatabaseOps>,
    pub metrics_listen: Option<SocketAddr>,
    pub webhooks: Vec<WebhookSettings>,
    pub grace_period: Duration,
    pub cron_seconds: bool,
    /// The top-level `[retention]` and `[schedule]`: what a database in the repository but
    /// not in the config gets (never the built-in defaults when the file has its own).
    default_retention: RetentionFile,
    default_schedule: ScheduleFile,
    has_global_retention: bool,
}

impl Default for OpsSettings {
    fn default() -> Self {
        OpsSettings {
            default_retention: RetentionFile::default(),
            default_schedule: ScheduleFile::default(),
            has_global_retention: false,
            databases: BTreeMap::new(),
            metrics_listen: None,
            webhooks: Vec::new(),
            grace_period: DEFAULT_GRACE_PERIOD,
            cron_seconds: false,
        }
    }
}

impl OpsSettings {
    /// Resolve the sections of `file` for the databases named `names` (in the order of
    /// `file.databases`; names beyond it, such as a one-off --source, get the defaults).
    pub fn resolve(file: &FileConfig, names: &[String]) -> Result<OpsSettings> {
        let daemon = file.daemon.clone().unwrap_or_default();
        let cron_seconds = daemon.cron_seconds.unwrap_or(false);
        let grace_period = match &daemon.grace_period {
            Some(s) => duration(s, "daemon.grace_period")?,
            None => DEFAULT_GRACE_PERIOD,
        };
        let default_ret = file.retention.clone().unwrap_or_default();
        let default_sched = file.schedule.clone().unwrap_or_default();
        let mut databases = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            let own = file.databases.get(i);
            let path = if own.is_some() {
                format!("database[{i}]")
            } else {
                "database".to_string()
            };
            let own_ret = own.and_then(|d| d.retention.as_ref());
            let ret = merge_retention(&default_ret, own_ret);
            let sched = merge_schedule(&default_sched, own.and_then(|d| d.schedule.as_ref()));
            let mut ops = resolve_db(name, &ret, &sched, cron_seconds, &path)?;
            ops.policy = policy_source(own_ret.is_some(), file.retention.is_some(), &path);
            databases.insert(name.clone(), ops);
        }
        let metrics_listen = match file.metrics.as_ref().and_then(|m| m.listen.as_deref()) {
            Some(s) => Some(s.parse::<SocketAddr>().map_err(|e| {
                PgdrError::config(format!("metrics.listen = '{s}': {e}"))
                    .hint("write an address and port such as \"127.0.0.1:9187\"")
            })?),
            None => None,
        };
        let mut webhooks = Vec::new();
        for (i, w) in file.webhook.iter().enumerate() {
            let key = format!("webhook[{i}]");
            let slack = match w.format.as_deref().unwrap_or("json") {
                "json" => false,
                "slack" => true,
                other => {
                    return Err(PgdrError::config(format!(
                        "{key}.format = '{other}': unknown format"
                    ))
                    .hint("use \"json\" (a generic JSON body) or \"slack\""))
                }
            };
            let u = w.url.expose();
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(
                    PgdrError::config(format!("{key}.url is not an http(s) URL"))
                        .hint("write url = \"https://hooks.example.com/...\" (or ${ENV_VAR})"),
                );
            }
            webhooks.push(WebhookSettings {
                url: w.url.clone(),
                slack,
                on_success: w.on_success.unwrap_or(false),
                max_attempts: w.max_attempts.unwrap_or(4).max(1),
                timeout: match &w.timeout {
                    Some(t) => duration(t, &format!("{key}.timeout"))?,
                    None => Duration::from_secs(10),
                },
            });
        }
        Ok(OpsSettings {
            default_retention: default_ret,
            default_schedule: default_sched,
            has_global_retention: file.retention.is_some(),
            databases,
            metrics_listen,
            webhooks,
            grace_period,
            cron_seconds,
        })
    }

    /// The settings of one database; for a name the config lacks (a database found only in
    /// the repository), the top-level `[retention]` and `[schedule]` (validated by `resolve`).
    pub fn database(&self, name: &str) -> DatabaseOps {
        self.databases.get(name).cloned().unwrap_or_else(|| {
            let mut ops = resolve_db(
                name,
                &self.default_retention,
                &self.default_schedule,
                self.cron_seconds,
                "database",
            )
            .unwrap_or_else(|_| {
                // Only reachable for settings not built by `resolve` (which checked these).
                resolve_db(
                    name,
                    &RetentionFile::default(),
                    &ScheduleFile::default(),
                    self.cron_seconds,
                    "database",
                )
                .expect("the built-in defaults are valid")
            });
            ops.policy = policy_source(false, self.has_global_retention, "database");
            ops
        })
    }
}

/// In config words, which retention section decided.
fn policy_source(own: bool, global: bool, path: &str) -> String {
    match (own, global) {
        (true, true) => format!("[{path}.retention] over the global [retention]"),
        (true, false) => format!("[{path}.retention]"),
        (false, true) => "the global [retention]".into(),
        (false, false) => "the built-in defaults (the config has no [retention])".into(),
    }
}

fn merge_retention(d: &RetentionFile, o: Option<&RetentionFile>) -> RetentionFile {
    let Some(o) = o else { return d.clone() };
    RetentionFile {
        keep_last: o.keep_last.or(d.keep_last),
        keep_hourly: o.keep_hourly.or(d.keep_hourly),
        keep_daily: o.keep_daily.or(d.keep_daily),
        keep_weekly: o.keep_weekly.or(d.keep_weekly),
        keep_monthly: o.keep_monthly.or(d.keep_monthly),
        keep_yearly: o.keep_yearly.or(d.keep_yearly),
        min_verified: o.min_verified.or(d.min_verified),
        max_backup_age: o.max_backup_age.clone().or(d.max_backup_age.clone()),
        leftover_age: o.leftover_age.clone().or(d.leftover_age.clone()),
        timezone: o.timezone.clone().or(d.timezone.clone()),
        keep_drills: o.keep_drills.or(d.keep_drills),
        keep_restores: o.keep_restores.or(d.keep_restores),
        keep_verifications: o.keep_verifications.or(d.keep_verifications),
    }
}

fn merge_schedule(d: &ScheduleFile, o: Option<&ScheduleFile>) -> ScheduleFile {
    let Some(o) = o else { return d.clone() };
    ScheduleFile {
        timezone: o.timezone.clone().or(d.timezone.clone()),
        backup: o.backup.clone().or(d.backup.clone()),
        verify: o.verify.clone().or(d.verify.clone()),
        drill: o.drill.clone().or(d.drill.clone()),
        drill_file: o.drill_file.clone().or(d.drill_file.clone()),
        prune: o.prune.clone().or(d.prune.clone()),
        chain_proof: o.chain_proof.clone().or(d.chain_proof.clone()),
        jitter: o.jitter.clone().or(d.jitter.clone()),
        catch_up: o.catch_up.or(d.catch_up),
    }
}

fn resolve_db(
    name: &str,
    r: &RetentionFile,
    s: &ScheduleFile,
    cron_seconds: bool,
    path: &str,
) -> Result<DatabaseOps> {
    let retention = retention_policy(r, path)?;
    let leftover_age = match &r.leftover_age {
        Some(v) => duration(v, &format!("{path}.retention.leftover_age"))?,
        None => DEFAULT_LEFTOVER_AGE,
    };
    let jobs = job_schedules(name, s, cron_seconds, path)?;
    let verify_after = match s.verify.as_deref().unwrap_or("quick") {
        "quick" => VerifyAfter::Quick,
        "full" => VerifyAfter::Full,
        "off" => VerifyAfter::Off,
        other => {
            return Err(PgdrError::config(format!(
                "{path}.schedule.verify = '{other}': unknown mode"
            ))
            .hint("use \"quick\", \"full\" or \"off\""))
        }
    };
    Ok(DatabaseOps {
        retention,
        leftover_age,
        keep_drills: r.keep_drills.unwrap_or(DEFAULT_KEEP_RECORDS),
        keep_restores: r.keep_restores.unwrap_or(DEFAULT_KEEP_RECORDS),
        keep_verifications: r.keep_verifications.unwrap_or(DEFAULT_KEEP_VERIFICATIONS),
        jobs,
        verify_after,
        drill_file: s.drill_file.clone(),
        catch_up: s.catch_up.unwrap_or(true),
        policy: String::new(),
    })
}

/// The retention policy from its file form, the defaults filled in.
fn retention_policy(r: &RetentionFile, path: &str) -> Result<RetentionPolicy> {
    let ret_tz = timezone(r.timezone.as_deref(), &format!("{path}.retention.timezone"))?;
    let retention = RetentionPolicy {
        keep_last: r.keep_last,
        keep_hourly: r.keep_hourly,
        keep_daily: r.keep_daily,
        keep_weekly: r.keep_weekly,
        keep_monthly: r.keep_monthly,
        keep_yearly: r.keep_yearly,
        min_verified: r.min_verified.unwrap_or(DEFAULT_MIN_VERIFIED),
        max_backup_age: match &r.max_backup_age {
            Some(v) => duration(v, &format!("{path}.retention.max_backup_age"))?,
            None => DEFAULT_MAX_BACKUP_AGE,
        },
        timezone: ret_tz,
    };
    Ok(retention)
}

/// The scheduled jobs (backup, drill, prune) of one database: each from its own cron (or
/// the default), time zone and jitter over the schedule's; "off" leaves the job out.
fn job_schedules(
    name: &str,
    s: &ScheduleFile,
    cron_seconds: bool,
    path: &str,
) -> Result<Vec<JobSchedule>> {
    let tz = timezone(s.timezone.as_deref(), &format!("{path}.schedule.timezone"))?;
    let jitter = match &s.jitter {
        Some(j) => duration(j, &format!("{path}.schedule.jitter"))?,
        None => Duration::ZERO,
    };
    let mut jobs = Vec::new();
    for (kind, spec, default) in [
        (JobKind::Backup, &s.backup, DEFAULT_BACKUP_CRON),
        (JobKind::Drill, &s.drill, DEFAULT_DRILL_CRON),
        (JobKind::Prune, &s.prune, DEFAULT_PRUNE_CRON),
        (
            JobKind::ChainProof,
            &s.chain_proof,
            DEFAULT_CHAIN_PROOF_CRON,
        ),
    ] {
        let key = format!("{path}.schedule.{kind}");
        let (expr, job_tz, job_jitter) = match spec {
            None => (default.to_string(), tz, jitter),
            Some(JobFile::Cron(c)) => (c.clone(), tz, jitter),
            Some(JobFile::Table(t)) => (
                t.cron.clone(),
                match &t.timezone {
                    Some(z) => timezone(Some(z), &format!("{key}.timezone"))?,
                    None => tz,
                },
                match &t.jitter {
                    Some(j) => duration(j, &format!("{key}.jitter"))?,
                    None => jitter,
                },
            ),
        };
        if expr.trim().eq_ignore_ascii_case("off") {
            continue;
        }
        let schedule = CronSchedule::parse(&expr, job_tz, cron_seconds).map_err(|e| {
            PgdrError::config(format!("{key} = '{expr}': {e}")).hint(if cron_seconds {
                "write a cron expression: [SECOND] MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK, or \"off\""
            } else {
                "write a 5-field cron expression: MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK (\"0 2 * * *\"), or \"off\""
            })
        })?;
        jobs.push(JobSchedule {
            database: name.to_string(),
            kind,
            schedule,
            jitter: job_jitter,
        });
    }
    Ok(jobs)
}

fn timezone(s: Option<&str>, key: &str) -> Result<Tz> {
    match s {
        None => Ok(Tz::UTC),
        Some(z) => z.parse::<Tz>().map_err(|_| {
            PgdrError::config(format!("{key} = '{z}': not an IANA time zone")).hint(
                "write a zone name such as \"UTC\", \"Europe/Berlin\" or \"America/New_York\"",
            )
        }),
    }
}

/// "26h", "90s", "1h 30m"; errors name the key.
pub fn duration(s: &str, key: &str) -> Result<Duration> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        PgdrError::config(format!("{key} = '{s}': not a duration: {e}"))
            .hint("write a duration such as \"26h\", \"90s\" or \"1h 30m\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<OpsSettings> {
        let f = crate::config::parse_file(text, "t.toml")?;
        let names: Vec<String> = f
            .databases
            .iter()
            .map(|d| d.name.clone().unwrap_or_else(|| "app".into()))
            .collect();
        OpsSettings::resolve(&f, &names)
    }

    #[test]
    fn defaults_apply_without_any_section() {
        let o = resolve("[[database]]\nname = \"app\"\nurl = \"postgres://u@h/app\"\n").unwrap();
        let d = &o.databases["app"];
        let jobs: Vec<_> = d
            .jobs
            .iter()
            .map(|j| (j.kind, j.schedule.expr.as_str()))
            .collect();
        assert_eq!(
            jobs,
            vec![
                (JobKind::Backup, DEFAULT_BACKUP_CRON),
                (JobKind::Drill, DEFAULT_DRILL_CRON),
                (JobKind::Prune, DEFAULT_PRUNE_CRON),
                (JobKind::ChainProof, DEFAULT_CHAIN_PROOF_CRON)
            ]
        );
        assert_eq!(d.retention.min_verified, 2);
        assert_eq!(d.retention.max_backup_age, DEFAULT_MAX_BACKUP_AGE);
        assert_eq!(d.verify_after, VerifyAfter::Quick);
        assert!(d.retention.is_empty());
    }

    /// A database found only in the repository gets the global `[retention]`, not the
    /// built-in defaults, and the policy says which section decided.
    #[test]
    fn global_retention_applies_to_databases_not_in_the_config() {
        let o = resolve(
            "[retention]\nkeep_last = 3\nmax_backup_age = \"30h\"\n[[database]]\nname = \"app\"\nurl = \"postgres://u@h/app\"\n[database.retention]\nkeep_daily = 2\n",
        )
        .unwrap();
        let other = o.database("old_app");
        assert_eq!(other.retention.keep_last, Some(3));
        assert_eq!(
            other.retention.max_backup_age,
            Duration::from_secs(30 * 3600)
        );
        assert_eq!(other.policy, "the global [retention]");
        assert_eq!(
            o.database("app").policy,
            "[database[0].retention] over the global [retention]"
        );
        let bare = resolve("[[database]]\nname = \"app\"\nurl = \"postgres://u@h/app\"\n").unwrap();
        assert!(bare.database("old_app").retention.is_empty());
        assert!(bare
            .database("old_app")
            .policy
            .starts_with("the built-in defaults"));
    }

    #[test]
    fn database_sections_override_defaults_key_by_key() {
        let o = resolve(
            r#"
[retention]
keep_daily = 7
keep_weekly = 4
max_backup_age = "30h"
[schedule]
timezone = "Europe/Berlin"
drill = "off"
[[database]]
name = "app"
url = "postgres://u@h/app"
[database.retention]
keep_daily = 14
[database.schedule]
backup = { cron = "15 3 * * *", timezone = "America/New_York", jitter = "5m" }
verify = "full"
chain_proof = "off"
"#,
        )
        .unwrap();
        let d = &o.databases["app"];
        assert_eq!(d.retention.keep_daily, Some(14));
        assert_eq!(d.retention.keep_weekly, Some(4));
        assert_eq!(d.retention.max_backup_age, Duration::from_secs(30 * 3600));
        assert_eq!(d.jobs.len(), 2, "drill and chain_proof are off");
        assert_eq!(d.jobs[0].schedule.tz, chrono_tz::America::New_York);
        assert_eq!(d.jobs[0].jitter, Duration::from_secs(300));
        assert_eq!(d.jobs[1].kind, JobKind::Prune);
        assert_eq!(d.jobs[1].schedule.tz, chrono_tz::Europe::Berlin);
        assert_eq!(d.verify_after, VerifyAfter::Full);
    }

    #[test]
    fn errors_name_the_key() {
        let e = resolve(
            "[[database]]\nurl = \"postgres://u@h/app\"\n[database.schedule]\nbackup = \"0 2 * *\"\n",
        )
        .unwrap_err();
        assert!(
            e.message
                .starts_with("database[0].schedule.backup = '0 2 * *': "),
            "{}",
            e.message
        );
        let e = resolve(
            "[schedule]\ntimezone = \"Mars/Olympus\"\n[[database]]\nurl = \"postgres://u@h/app\"\n",
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "database[0].schedule.timezone = 'Mars/Olympus': not an IANA time zone"
        );
        // Seconds only under the explicit daemon option.
        assert!(resolve(
            "[schedule]\nbackup = \"*/5 * * * * *\"\n[[database]]\nurl = \"postgres://u@h/app\"\n"
        )
        .is_err());
        assert!(resolve(
            "[daemon]\ncron_seconds = true\n[schedule]\nbackup = \"*/5 * * * * *\"\n[[database]]\nurl = \"postgres://u@h/app\"\n"
        )
        .is_ok());
        let e = resolve("[metrics]\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(
            e.message.starts_with("metrics.listen = 'nowhere'"),
            "{}",
            e.message
        );
    }
}
