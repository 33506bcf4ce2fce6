//! Configuration: one TOML file, overridden by environment variables, overridden by flags.
//!
//! The file is parsed twice on purpose: first as written (so a typo is reported with its line
//! and the expected keys), then after `${ENV_VAR}` interpolation (so a missing variable is
//! reported with the key path that needed it). Secrets live only in [`Secret`], whose `Debug`
//! and `Display` never show the value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::error::{PgdrError, Result};

pub mod cron;
pub mod names;
pub mod ops;
pub mod scratch;
pub mod sslmode;
pub use scratch::ScratchSettings;
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
// The file, as written.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub repository: RepositoryFile,
    #[serde(default)]
    pub encryption: EncryptionFile,
    #[serde(default)]
    pub compression: CompressionFile,
    #[serde(default)]
    pub tools: ToolsFile,
    #[serde(default)]
    pub scratch: ScratchFile,
    #[serde(default, rename = "database")]
    pub databases: Vec<DatabaseFile>,
    /// Defaults for every database (see `config::ops`).
    pub retention: Option<ops::RetentionFile>,
    pub schedule: Option<ops::ScheduleFile>,
    pub metrics: Option<ops::MetricsFile>,
    #[serde(default)]
    pub webhook: Vec<ops::WebhookFile>,
    pub daemon: Option<ops::DaemonFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryFile {
    /// A local directory, or `s3://bucket/prefix`.
    pub url: Option<String>,
    #[serde(default)]
    pub s3: S3File,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct S3File {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub force_path_style: Option<bool>,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    pub part_size: Option<String>,
    pub max_parts_in_flight: Option<usize>,
    pub max_attempts: Option<u32>,
    pub storage_class: Option<String>,
    pub server_side_encryption: Option<String>,
    pub sse_kms_key_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionFile {
    #[serde(default)]
    pub recipients: Vec<String>,
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionFile {
    pub level: Option<i32>,
    pub threads: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsFile {
    /// Directory with pg_dump, pg_dumpall, pg_restore; default: the newest
    /// /usr/lib/postgresql/N/bin that is new enough, then $PATH.
    pub pg_bin_dir: Option<PathBuf>,
}

/// Where verification restores go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScratchFile {
    /// An existing server (superuser URL to a maintenance database such as `postgres`) to
    /// create `pgdr_verify_<id>` on, instead of an ephemeral cluster.
    pub url: Option<String>,
    /// OS user that runs the ephemeral cluster when pgdr runs as root; default `postgres`.
    pub os_user: Option<String>,
    /// Parent folder of the ephemeral cluster; default the system temp dir.
    pub temp_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseFile {
    pub name: Option<String>,
    pub url: Option<String>,
    pub password: Option<Secret>,
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    /// Recovery time objective, checked by `pgdr drill`: "15m" (the default), "1h".
    pub rto_target: Option<String>,
    /// Recovery point objective, checked by `pgdr drill`: "5m" (the default), "24h".
    pub rpo_target: Option<String>,
    /// This database's own retention and schedule keys, over `[retention]` / `[schedule]`.
    pub retention: Option<ops::RetentionFile>,
    pub schedule: Option<ops::ScheduleFile>,
}

// ---------------------------------------------------------------------------------------------
// Overrides from flags and environment (clap fills these; flags win over env automatically).

#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub source: Option<String>,
    pub repo: Option<String>,
    pub recipients: Vec<String>,
    pub identity: Option<PathBuf>,
    pub database: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The resolved settings every command works from.

#[derive(Debug, Clone)]
pub struct Settings {
    pub repository: RepositoryUrl,
    pub s3: S3Settings,
    pub recipients: Vec<String>,
    pub identity: Option<PathBuf>,
    pub compression: Compression,
    pub pg_bin_dir: Option<PathBuf>,
    pub scratch: ScratchSettings,
    pub databases: Vec<Database>,
    /// Schedules, retention, metrics, webhooks and the daemon, per database by name.
    pub ops: ops::OpsSettings,
    /// Where the settings came from, for messages ("--repo", "config file x.toml", ...).
    pub config_path: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryUrl {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl fmt::Display for RepositoryUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepositoryUrl::Local(p) => write!(f, "{}", p.display()),
            RepositoryUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            RepositoryUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl FromStr for RepositoryUrl {
    type Err = PgdrError;
    fn from_str(s: &str) -> Result<Self> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(
                    PgdrError::config(format!("repository '{s}' names no bucket"))
                        .hint("write it as s3://BUCKET or s3://BUCKET/PREFIX"),
                );
            }
            Ok(RepositoryUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            })
        } else if s.contains("://") {
            Err(
                PgdrError::config(format!("repository '{s}' has an unsupported scheme"))
                    .hint("use a local directory path or s3://BUCKET/PREFIX"),
            )
        } else if s.is_empty() {
            Err(PgdrError::config("repository path is empty"))
        } else {
            Ok(RepositoryUrl::Local(PathBuf::from(s)))
        }
    }
}

#[derive(Debug, Clone)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// `None`: path-style whenever a custom endpoint is in effect (config or AWS_ENDPOINT_URL),
    /// since MinIO/Garage/Ceph rarely serve virtual-hosted buckets; AWS gets virtual-hosted.
    pub force_path_style: Option<bool>,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    pub part_size: usize,
    pub max_parts_in_flight: usize,
    pub max_attempts: u32,
    pub storage_class: Option<String>,
    pub server_side_encryption: Option<String>,
    pub sse_kms_key_id: Option<String>,
}

/// S3 allows parts of 5 MiB to 5 GiB (the last may be smaller).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

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

#[derive(Clone)]
pub struct Database {
    /// The name backups are filed under in the repository.
    pub name: String,
    pub conn: tokio_postgres::Config,
    /// sslmode=verify-ca/verify-full: what `conn` cannot say (its sslmode is then require).
    /// None: `conn`'s own sslmode, which encrypts without checking the certificate.
    pub cert_check: Option<CertCheck>,
    pub password: Option<Secret>,
    pub exclude_tables: Vec<String>,
    /// `rto_target` from the config; `pgdr drill` defaults to [`DEFAULT_RTO_TARGET`].
    pub rto_target: Option<std::time::Duration>,
    /// `rpo_target` from the config; `pgdr drill` defaults to [`DEFAULT_RPO_TARGET`].
    pub rpo_target: Option<std::time::Duration>,
}

/// The users' stated recovery targets: restored within 15 minutes, losing at most 5.
pub const DEFAULT_RTO_TARGET: std::time::Duration = std::time::Duration::from_secs(15 * 60);
pub const DEFAULT_RPO_TARGET: std::time::Duration = std::time::Duration::from_secs(5 * 60);

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name)
            .field("target", &self.describe())
            .field("cert_check", &self.cert_check)
            .finish()
    }
}

impl Database {
    /// host:port/dbname as user, for messages: never the password.
    pub fn describe(&self) -> String {
        let host = self
            .conn
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(s) => s.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".into());
        let port = self.conn.get_ports().first().copied().unwrap_or(5432);
        format!(
            "{}@{}:{}/{}",
            self.conn.get_user().unwrap_or("?"),
            host,
            port,
            self.conn.get_dbname().unwrap_or("?")
        )
    }
}

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

        let recipients = if ov.recipients.is_empty() {
            file.encryption.recipients.clone()
        } else {
            ov.recipients.clone()
        };
        let identity = ov.identity.clone().or(file.encryption.identity.clone());

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

        let mut databases = Vec::new();
        for (i, d) in file.databases.iter().enumerate() {
            let path = format!("database[{i}]");
            let url = d.url.as_deref().ok_or_else(|| {
                PgdrError::config(format!("{path}.url is missing"))
                    .hint("give each [[database]] a url = \"postgres://user@host:5432/dbname\"")
            })?;
            let mut db = parse_database(
                d.name.as_deref(),
                url,
                d.password.clone(),
                d.exclude_tables.clone(),
                &format!("{path}.url"),
            )?;
            if let Some(t) = &d.rto_target {
                db.rto_target = Some(parse_duration(t, &format!("{path}.rto_target"))?);
            }
            if let Some(t) = &d.rpo_target {
                db.rpo_target = Some(parse_duration(t, &format!("{path}.rpo_target"))?);
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

        if let Some(src) = &ov.source {
            // A one-off source replaces the selected (or only) configured database, or stands alone.
            let replaced = match &ov.database {
                Some(n) => databases.iter().position(|d| &d.name == n),
                None if databases.len() == 1 => Some(0),
                None => None,
            };
            let name = ov.database.clone();
            let db = parse_database(name.as_deref(), src, None, Vec::new(), "--source")?;
            match replaced {
                Some(i) => {
                    let keep_name = databases[i].name.clone();
                    databases[i] = Database {
                        name: keep_name,
                        rto_target: databases[i].rto_target,
                        rpo_target: databases[i].rpo_target,
                        ..db
                    };
                }
                None => databases.push(db),
            }
        }

        let names: Vec<String> = databases.iter().map(|d| d.name.clone()).collect();
        let ops = ops::OpsSettings::resolve(&file, &names)?;
        Ok(Settings {
            ops,
            repository,
            s3,
            recipients,
            identity,
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

fn parse_database(
    name: Option<&str>,
    url: &str,
    password: Option<Secret>,
    exclude_tables: Vec<String>,
    key: &str,
) -> Result<Database> {
    let (url, cert_check) = sslmode::split(url, key)?;
    let mut conn = tokio_postgres::Config::from_str(&url).map_err(|e| {
        // tokio-postgres errors do not echo the URL, so no password leaks here.
        PgdrError::config(format!(
            "{key}: not a valid PostgreSQL connection string: {e}"
        ))
        .hint("use postgres://USER@HOST:PORT/DBNAME; put the password in ${ENV} or PGPASSWORD")
    })?;
    let dbname = conn.get_dbname().map(str::to_string).ok_or_else(|| {
        PgdrError::config(format!("{key}: the connection string names no database"))
            .hint("end the URL with /DBNAME")
    })?;
    // Children get the name as a parameter; one that libpq would read as a connection
    // string is refused here rather than at restore time.
    names::pg_database_name(&dbname, format!("{key}: dbname"))
        .map_err(|e| PgdrError::config(e.to_string()))?;
    if conn.get_hosts().is_empty() {
        conn.host("localhost");
    }
    if conn.get_user().is_none() {
        let user = std::env::var("PGUSER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "postgres".into());
        conn.user(&user);
    }
    // The password is moved out of the connection config so that it travels to child
    // processes only through PGPASSWORD, never argv.
    let mut password = password;
    if let Some(p) = conn.get_password() {
        if password.is_none() {
            password = Some(Secret::new(String::from_utf8_lossy(p).into_owned()));
        }
    }
    if password.is_none() {
        password = std::env::var("PGPASSWORD").ok().map(Secret::new);
    }
    if password.is_none() {
        password = pgpass_lookup(&conn);
    }
    if let Some(p) = &password {
        conn.password(p.expose());
    }
    conn.application_name("pgdr");
    let name = name.map(str::to_string).unwrap_or(dbname);
    validate_name(&name, key)?;
    Ok(Database {
        name,
        conn,
        cert_check,
        password,
        exclude_tables,
        rto_target: None,
        rpo_target: None,
    })
}

/// "15m", "1h 30m", "90s", "24h" (humantime); errors name the key.
pub fn parse_duration(s: &str, key: &str) -> Result<std::time::Duration> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        PgdrError::config(format!("{key} = '{s}': not a duration: {e}"))
            .hint("write a duration such as \"15m\", \"90s\", \"1h 30m\" or \"24h\"")
    })
}

/// Database names become a path segment in the repository, so keep them plain (the rule is
/// shared with `--database` and with names read back from the repository).
fn validate_name(name: &str, key: &str) -> Result<()> {
    names::database_name(name, format!("{key}: database name")).map_err(|e| {
        PgdrError::config(format!("{e}; it cannot be used as a repository folder"))
            .hint("set name = \"...\" with letters, digits, '_', '-' or '.'")
    })
}

/// libpq's ~/.pgpass (or $PGPASSFILE), which tokio-postgres does not read itself.
fn pgpass_lookup(conn: &tokio_postgres::Config) -> Option<Secret> {
    let path = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let host = match conn.get_hosts().first()? {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(_) => "localhost".into(),
    };
    let port = conn
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let db = conn.get_dbname()?.to_string();
    let user = conn.get_user()?.to_string();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass(line);
        if fields.len() != 5 {
            continue;
        }
        let want = [&host, &port, &db, &user];
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(Secret::new(fields[4].clone()));
        }
    }
    None
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.last_mut().unwrap().push(n)
                }
            }
            ':' if out.len() < 5 => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

fn s3_settings(f: &S3File) -> Result<S3Settings> {
    let part_size = match &f.part_size {
        Some(s) => parse_size(s).map_err(|e| {
            PgdrError::config(format!("repository.s3.part_size = '{s}': {e}"))
                .hint("write a size such as \"8MiB\" or \"64MiB\"")
        })?,
        None => DEFAULT_PART_SIZE,
    };
    if part_size < MIN_PART_SIZE {
        return Err(PgdrError::config(format!(
            "repository.s3.part_size = {part_size} bytes is below S3's minimum part size"
        ))
        .hint("use at least \"5MiB\""));
    }
    let max_parts_in_flight = f.max_parts_in_flight.unwrap_or(4);
    if max_parts_in_flight == 0 {
        return Err(PgdrError::config(
            "repository.s3.max_parts_in_flight must be at least 1",
        ));
    }
    Ok(S3Settings {
        endpoint: f.endpoint.clone(),
        region: f.region.clone(),
        force_path_style: f.force_path_style,
        access_key_id: f.access_key_id.clone(),
        secret_access_key: f.secret_access_key.clone(),
        session_token: f.session_token.clone(),
        part_size,
        max_parts_in_flight,
        max_attempts: f.max_attempts.unwrap_or(5),
        storage_class: f.storage_class.clone(),
        server_side_encryption: f.server_side_encryption.clone(),
        sse_kms_key_id: f.sse_kms_key_id.clone(),
    })
}

/// "8MiB", "64 MB", "1048576".
pub fn parse_size(s: &str) -> std::result::Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| "not a size".to_string())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown unit '{other}'")),
    };
    Ok((n * mult) as usize)
}

/// Read, check structure, interpolate `${VAR}`, deserialize.
pub fn load_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        PgdrError::config(format!("cannot read config file {}: {e}", path.display())).hint(
            "pass --config with the path of a readable TOML file (see config/pgdr.example.toml)",
        )
    })?;
    parse_file(&text, &path.display().to_string())
}

pub fn parse_file(text: &str, origin: &str) -> Result<FileConfig> {
    // First pass: structure, with line numbers that match the file.
    toml::from_str::<FileConfig>(text).map_err(|e| toml_error(origin, text, e))?;
    // Second pass: interpolate, with key paths.
    let mut value: toml::Value = toml::from_str(text).map_err(|e| toml_error(origin, text, e))?;
    interpolate(&mut value, "")?;
    value
        .try_into::<FileConfig>()
        .map_err(|e| PgdrError::config(format!("{origin}: {}", one_line(&e.to_string()))))
}

/// "t.toml line 2: unknown field `urll`, expected `url` or `s3`"
fn toml_error(origin: &str, text: &str, e: toml::de::Error) -> PgdrError {
    let at = e
        .span()
        .map(|span| {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            format!(
                " line {}",
                before.iter().filter(|&&b| b == b'\n').count() + 1
            )
        })
        .unwrap_or_default();
    PgdrError::config(format!("{origin}{at}: {}", one_line(e.message())))
        .hint("see config/pgdr.example.toml for every key")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn interpolate(v: &mut toml::Value, path: &str) -> Result<()> {
    match v {
        toml::Value::String(s) => {
            *s = interpolate_str(s, path)?;
        }
        toml::Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                interpolate(x, &format!("{path}[{i}]"))?;
            }
        }
        toml::Value::Table(t) => {
            for (k, x) in t.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                interpolate(x, &p)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `${NAME}` is replaced by the variable; `$$` is a literal `$`. A missing variable is an
/// error naming the key, so a typo never silently becomes an empty password.
pub fn interpolate_str(s: &str, path: &str) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r.find('}').ok_or_else(|| {
                PgdrError::config(format!("{path}: unterminated ${{...}}"))
                    .hint("write ${NAME} to read the environment variable NAME")
            })?;
            let name = &r[..end];
            let val = std::env::var(name).map_err(|_| {
                PgdrError::config(format!("{path}: environment variable {name} is not set")).hint(
                    format!("export {name}=... before running pgdr, or edit {path}"),
                )
            })?;
            out.push_str(&val);
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
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
