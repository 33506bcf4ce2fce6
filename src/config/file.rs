//! The configuration file as written (raw TOML structs, unknown keys refused) and its
//! reading: structure checked first, then `${ENV_VAR}` interpolation, then deserialisation.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{PgdrError, Result};

use super::{ops, Secret};

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
    #[serde(default)]
    pub heartbeat: Vec<super::notify::HeartbeatFile>,
    #[serde(default)]
    pub email: Vec<super::notify::EmailFile>,
    pub progress: Option<super::notify::ProgressFile>,
    pub daemon: Option<ops::DaemonFile>,
    #[serde(default)]
    pub signing: super::signing::SigningFile,
    #[serde(default)]
    pub trust: super::signing::TrustFile,
    #[serde(default)]
    pub keys: KeysFile,
}

/// `[keys]`: how recently every recipient of the newest backups must have been proven by a
/// key drill (`pgdr drill --key-check`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    pub proof_max_age: Option<String>,
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
    /// "governance" or "compliance": write backups and change segments with a retain-until date.
    pub object_lock: Option<String>,
    /// The lock of a `--keep-forever` backup, renewed by prune (default "3650d").
    pub object_lock_max: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionFile {
    #[serde(default)]
    pub recipients: Vec<String>,
    /// One identity file, or a list (`identity = ["ops.txt", "escrow.txt"]`).
    #[serde(default)]
    pub identity: IdentityFiles,
}

/// `[encryption] identity`: the old single path still reads.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(untagged)]
pub enum IdentityFiles {
    #[default]
    None,
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl IdentityFiles {
    pub fn into_paths(self) -> Vec<PathBuf> {
        match self {
            IdentityFiles::None => Vec::new(),
            IdentityFiles::One(p) => vec![p],
            IdentityFiles::Many(v) => v,
        }
    }
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
    /// `[database.capture]`: the change capture's settings (see `config::capture`).
    pub capture: Option<super::capture::CaptureFile>,
}

// ---------------------------------------------------------------------------------------------

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
pub(super) fn toml_error(origin: &str, text: &str, e: toml::de::Error) -> PgdrError {
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

pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(super) fn interpolate(v: &mut toml::Value, path: &str) -> Result<()> {
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
