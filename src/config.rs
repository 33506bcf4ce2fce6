//! Configuration: one TOML file, overridden by environment variables, overridden by flags.
//!
//! The file is parsed twice on purpose: first as written (so a typo is reported with its line
//! and the expected keys), then after `${ENV_VAR}` interpolation (so a missing variable is
//! reported with the key path that needed it). Secrets live only in [`Secret`], whose `Debug`
//! and `Display` never show the value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{PgdrError, Result};

pub mod capture;
pub mod cron;
mod database;
mod file;
pub mod libpq;
pub mod names;
pub mod notify;
pub mod ops;
mod pg_service;
mod repository;
pub mod scratch;
pub mod signing;
pub mod sslmode;
use database::parse_database;
pub use database::{Database, DEFAULT_RPO_TARGET, DEFAULT_RTO_TARGET};
pub use file::{
    interpolate_str, load_file, parse_file, CompressionFile, DatabaseFile, EncryptionFile,
    FileConfig, RepositoryFile, S3File, ScratchFile, ToolsFile,
};
use repository::s3_settings;
pub use repository::{
    parse_size, LockMode, RepositoryUrl, S3Settings, DEFAULT_OBJECT_LOCK_MAX, DEFAULT_PART_SIZE,
    MIN_PART_SIZE,
};
pub use scratch::ScratchSettings;
pub use signing::SigningSettings;
pub use sslmode::{CertCheck, Roots, VerifyMode};

/// A value that must never reach a log, an error message, argv or a manifest.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The only way to read the value; grep for it to audit where secrets go.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

// ---------------------------------------------------------------------------------------------
// Overrides from flags and environment (clap fills these; flags win over env automatically).

#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub source: Option<String>,
    pub repo: Option<String>,
    pub recipients: Vec<String>,
    /// `--identity`, repeatable (PGDR_IDENTITY: comma-separated).
    pub identities: Vec<PathBuf>,
    pub database: Option<String>,
    pub signing_key: Option<PathBuf>,
    pub trust_keys: Vec<String>,
    pub allow_unsigned: bool,
    /// The caller's libpq environment (PGHOST, PGSERVICE, ...), applied to the source
    /// connections only; None for strings that are not a source (`--target`, the scratch
    /// url), which the caller's PG* variables must never steer.
    pub libpq_env: Option<libpq::LibpqEnv>,
}

// ---------------------------------------------------------------------------------------------
// The resolved settings every command works from.

#[derive(Debug, Clone)]
pub struct Settings {
    pub repository: RepositoryUrl,
    pub s3: S3Settings,
    pub recipients: Vec<String>,
    /// Identity files for commands that decrypt: every one is tried (a key drill proves each
    /// alone). Flags replace the config's list.
    pub identities: Vec<PathBuf>,
    pub compression: Compression,
    pub pg_bin_dir: Option<PathBuf>,
    pub scratch: ScratchSettings,
    pub databases: Vec<Database>,
    /// Schedules, retention, metrics, webhooks and the daemon, per database by name.
    pub ops: ops::OpsSettings,
    /// Where the settings came from, for messages ("--repo", "config file x.toml", ...).
    pub config_path: Option<PathBuf>,
    /// Signing key and trust keys (issue 19).
    pub signing: SigningSettings,
    /// `[keys] proof_max_age`: set, every recipient of the newest backups must have been
    /// proven by a key drill within it; unset, only databases that have key-check records are
    /// judged, against [`DEFAULT_PROOF_MAX_AGE`].
    pub proof_max_age: Option<std::time::Duration>,
    /// Heartbeats, mail, the metrics textfile and progress (issue 20).
    pub notify: notify::NotifySettings,
}

/// How long a key drill's proof of a recipient counts.
pub const DEFAULT_PROOF_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(90 * 86400);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Compression {
    pub level: i32,
    /// zstd worker threads; 0 = one per core.
    pub threads: u32,
}

/// Level 1 with workers: on 2 cores hard-to-compress data makes level 3 the bottleneck
/// (see scripts/bench-backup.sh); level 1 still compresses typical tables 3-20x.
pub const DEFAULT_COMPRESSION: Compression = Compression {
    level: 1,
    threads: 0,
};

impl Settings {
    /// Merge file, environment and flags. Environment values reach us through clap's `env`
    /// support, so `overrides` already reflects "flag beats env".
    pub fn load(ov: &Overrides) -> Result<Settings> {
        let file = match &ov.config {
            Some(p) => load_file(p)?,
            None => FileConfig::default(),
        };
        let repo_str = ov.repo.clone().or(file.repository.url.clone()).ok_or_else(|| {
            PgdrError::config("no repository configured").hint(
                "give --repo PATH_OR_S3_URL, set PGDR_REPO, or set [repository] url in the config file",
            )
        })?;
        let repository: RepositoryUrl = repo_str.parse()?;
        let s3 = s3_settings(&file.repository.s3)?;
        if s3.object_lock.is_some() && matches!(repository, RepositoryUrl::Local(_)) {
            return Err(PgdrError::config(format!(
                "repository.s3.object_lock is set but the repository {repository} is a directory"
            ))
            .hint("Object Lock needs an s3:// repository; remove object_lock for a local one"));
        }

        let recipients = if ov.recipients.is_empty() {
            file.encryption.recipients.clone()
        } else {
            ov.recipients.clone()
        };
        let identities = if ov.identities.is_empty() {
            file.encryption.identity.clone().into_paths()
        } else {
            ov.identities.clone()
        };

        let compression = compression(&file)?;

        let mut databases = file_databases(&file, ov.libpq_env.as_ref())?;

        apply_source(ov, &mut databases)?;

        let names: Vec<String> = databases.iter().map(|d| d.name.clone()).collect();
        let ops = ops::OpsSettings::resolve(&file, &names)?;
        let notify = notify::NotifySettings::resolve(&file)?;
        Ok(Settings {
            ops,
            notify,
            repository,
            s3,
            recipients,
            identities,
            compression,
            pg_bin_dir: file.tools.pg_bin_dir.clone(),
            scratch: ScratchSettings {
                url: file.scratch.url.clone(),
                os_user: file.scratch.os_user.clone(),
                temp_dir: file.scratch.temp_dir.clone(),
                pg_bin_dir: file.tools.pg_bin_dir.clone(),
            },
            databases,
            config_path: ov.config.clone(),
            proof_max_age: file
                .keys
                .proof_max_age
                .as_deref()
                .map(|v| ops::duration(v, "[keys] proof_max_age"))
                .transpose()?,
            signing: SigningSettings {
                key_file: ov.signing_key.clone().or(file.signing.key_file.clone()),
                trust_keys: if ov.trust_keys.is_empty() {
                    file.trust.keys.clone()
                } else {
                    ov.trust_keys.clone()
                },
                allow_unsigned: ov.allow_unsigned,
            },
        })
    }

    /// The databases a command acts on: the named one, or all configured ones.
    pub fn select(&self, name: Option<&str>) -> Result<Vec<&Database>> {
        match name {
            Some(n) => {
                let found: Vec<_> = self.databases.iter().filter(|d| d.name == n).collect();
                if found.is_empty() {
                    let known: Vec<_> = self.databases.iter().map(|d| d.name.as_str()).collect();
                    return Err(
                        PgdrError::config(format!("no database named '{n}' is configured")).hint(
                            if known.is_empty() {
                                "give --source postgres://USER@HOST:PORT/DBNAME or add a [[database]] to the config".to_string()
                            } else {
                                format!("configured: {}", known.join(", "))
                            },
                        ),
                    );
                }
                Ok(found)
            }
            None if self.databases.is_empty() => Err(PgdrError::config("no database to back up")
                .hint("give --source postgres://USER@HOST:PORT/DBNAME, set PGDR_SOURCE, or add a [[database]] to the config")),
            None => Ok(self.databases.iter().collect()),
        }
    }
}

/// `[compression]`, defaults filled in; a level zstd does not have is refused.
fn compression(file: &FileConfig) -> Result<Compression> {
    let compression = Compression {
        level: file.compression.level.unwrap_or(DEFAULT_COMPRESSION.level),
        threads: file
            .compression
            .threads
            .unwrap_or(DEFAULT_COMPRESSION.threads),
    };
    if !(-7..=22).contains(&compression.level) || compression.level == 0 {
        return Err(PgdrError::config(format!(
            "compression.level = {} is out of range",
            compression.level
        ))
        .hint("zstd levels are 1 (fastest) to 19 (smallest); 1-3 suit nightly backups"));
    }
    Ok(compression)
}

/// The `[[database]]` entries, each parsed and named; a name given twice is refused.
fn file_databases(file: &FileConfig, env: Option<&libpq::LibpqEnv>) -> Result<Vec<Database>> {
    let mut databases = Vec::new();
    for (i, d) in file.databases.iter().enumerate() {
        let path = format!("database[{i}]");
        let url = d.url.as_deref().ok_or_else(|| {
            PgdrError::config(format!("{path}.url is missing"))
                .hint("give each [[database]] a url = \"postgres://user@host:5432/dbname\"")
        })?;
        let key = format!("{path}.url");
        let url = with_libpq_env(url, env, &key)?;
        let mut db = parse_database(
            d.name.as_deref(),
            &url,
            d.password.clone(),
            d.exclude_tables.clone(),
            &key,
        )?;
        if let Some(t) = &d.rto_target {
            db.rto_target = Some(parse_duration(t, &format!("{path}.rto_target"))?);
        }
        if let Some(t) = &d.rpo_target {
            db.rpo_target = Some(parse_duration(t, &format!("{path}.rpo_target"))?);
        }
        if let Some(c) = &d.capture {
            db.capture = capture::resolve(c, &format!("{path}.capture"))?;
        }
        databases.push(db);
    }
    let mut seen = std::collections::BTreeSet::new();
    for d in &databases {
        if !seen.insert(d.name.clone()) {
            return Err(PgdrError::config(format!(
                "database name '{}' appears twice in the config",
                d.name
            ))
            .hint("give each [[database]] a distinct name = \"...\""));
        }
    }
    Ok(databases)
}

/// `--source`: replaces the selected (or only) configured database, keeping its name and
/// targets, or stands alone. Without `--source` and without a configured database, the
/// libpq environment is the source when it names a database (PGDATABASE or PGSERVICE).
fn apply_source(ov: &Overrides, databases: &mut Vec<Database>) -> Result<()> {
    let env = ov.libpq_env.as_ref();
    let (src, key) = match (&ov.source, env) {
        (Some(src), _) => (src.clone(), "--source"),
        (None, Some(e)) if databases.is_empty() && e.names_database() => {
            ("postgres://".to_string(), ENV_SOURCE)
        }
        (None, _) => return Ok(()),
    };
    let src = with_libpq_env(&src, env, key)?;
    // A one-off source replaces the selected (or only) configured database, or stands alone.
    let replaced = match &ov.database {
        Some(n) => databases.iter().position(|d| &d.name == n),
        None if databases.len() == 1 => Some(0),
        None => None,
    };
    let name = ov.database.clone();
    let db = parse_database(name.as_deref(), &src, None, Vec::new(), key)?;
    match replaced {
        Some(i) => {
            let keep_name = databases[i].name.clone();
            databases[i] = Database {
                name: keep_name,
                rto_target: databases[i].rto_target,
                rpo_target: databases[i].rpo_target,
                capture: databases[i].capture.clone(),
                ..db
            };
        }
        None => databases.push(db),
    }
    Ok(())
}

/// How messages name a source that came from the environment alone.
const ENV_SOURCE: &str = "the PG* environment (PGDATABASE/PGSERVICE)";

/// A source string with libpq's defaults filled in, when this load applies them.
fn with_libpq_env(url: &str, env: Option<&libpq::LibpqEnv>, key: &str) -> Result<String> {
    match env {
        Some(e) => libpq::resolve(url, e, key),
        None => Ok(url.to_string()),
    }
}

/// "15m", "1h 30m", "90s", "24h" (humantime); errors name the key.
pub fn parse_duration(s: &str, key: &str) -> Result<std::time::Duration> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        PgdrError::config(format!("{key} = '{s}': not a duration: {e}"))
            .hint("write a duration such as \"15m\", \"90s\", \"1h 30m\" or \"24h\"")
    })
}
/// Summary of settings for `config check`, with secrets replaced by their presence.
pub fn describe(settings: &Settings) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("repository".into(), settings.repository.to_string());
    m.insert("recipients".into(), settings.recipients.len().to_string());
    m.insert(
        "compression".into(),
        format!(
            "zstd level {} threads {}",
            settings.compression.level, settings.compression.threads
        ),
    );
    for d in &settings.databases {
        m.insert(format!("database.{}", d.name), d.describe());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_reads_env_and_names_missing_key() {
        std::env::set_var("PGDR_TEST_PW", "s3cr$t");
        assert_eq!(
            interpolate_str("a${PGDR_TEST_PW}b$$", "x").unwrap(),
            "as3cr$tb$"
        );
        let e = interpolate_str("${PGDR_TEST_NOPE}", "database[0].password").unwrap_err();
        assert_eq!(
            e.message,
            "database[0].password: environment variable PGDR_TEST_NOPE is not set"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse_file("[repository]\nurll = \"/x\"\n", "t.toml").unwrap_err();
        assert!(e.message.contains("unknown field `urll`"), "{}", e.message);
        assert!(
            e.message.starts_with("t.toml line 2: unknown field `urll`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn repository_urls() {
        assert_eq!(
            "s3://b/p/q/".parse::<RepositoryUrl>().unwrap(),
            RepositoryUrl::S3 {
                bucket: "b".into(),
                prefix: "p/q".into()
            }
        );
        assert_eq!(
            "/var/x".parse::<RepositoryUrl>().unwrap(),
            RepositoryUrl::Local("/var/x".into())
        );
        assert!("gs://x".parse::<RepositoryUrl>().is_err());
    }

    #[test]
    fn password_moves_out_of_the_url_and_is_not_displayed() {
        let d =
            parse_database(None, "postgres://u:hunter2@db:6543/app", None, vec![], "k").unwrap();
        assert_eq!(d.name, "app");
        assert_eq!(d.password.as_ref().unwrap().expose(), "hunter2");
        assert_eq!(d.describe(), "u@db:6543/app");
        assert!(!format!("{d:?}").contains("hunter2"));
    }

    #[test]
    fn verify_modes_ride_beside_a_require_config() {
        let d = parse_database(
            None,
            "postgres://u:hunter2@db/app?sslmode=verify-ca&sslrootcert=/etc/ca.pem&connect_timeout=3",
            None,
            vec![],
            "--source",
        )
        .unwrap();
        assert_eq!(
            d.conn.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(
            d.conn.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        assert_eq!(
            d.cert_check,
            Some(CertCheck {
                mode: VerifyMode::Ca,
                roots: Roots::File("/etc/ca.pem".into())
            })
        );
        assert_eq!(d.password.as_ref().unwrap().expose(), "hunter2");
        assert!(!format!("{d:?}").contains("hunter2"));
        let e = parse_database(
            None,
            "postgres://u:hunter2@db/app?sslmode=on",
            None,
            vec![],
            "--source",
        )
        .unwrap_err();
        assert_eq!(e.message, "--source: sslmode=on is not supported");
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn recovery_targets_parse_and_name_the_key() {
        let f = parse_file(
            "[[database]]\nurl = \"postgres://u@h/app\"\nrto_target = \"1h 30m\"\nrpo_target = \"24h\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(f.databases[0].rto_target.as_deref(), Some("1h 30m"));
        assert_eq!(
            parse_duration("1h 30m", "k").unwrap(),
            std::time::Duration::from_secs(5400)
        );
        assert_eq!(
            parse_duration("5m", "k").unwrap(),
            std::time::Duration::from_secs(300)
        );
        let e = parse_duration("soon", "database[0].rpo_target").unwrap_err();
        assert!(
            e.message
                .starts_with("database[0].rpo_target = 'soon': not a duration"),
            "{}",
            e.message
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8MiB").unwrap(), 8 << 20);
        assert_eq!(parse_size("5 MB").unwrap(), 5 << 20);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("3 parsecs").is_err());
    }
}
