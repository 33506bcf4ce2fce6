//! Where the repository is: its URL (a directory or `s3://`) and the S3 settings resolved
//! from the file.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{PgdrError, Result};

use super::{S3File, Secret};

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
    /// S3 Object Lock for backups and change segments; `None`: objects are written unlocked.
    pub object_lock: Option<LockMode>,
    /// The longest lock pgdr sets (a `--keep-forever` backup's, renewed by prune).
    pub object_lock_max: std::time::Duration,
}

/// The S3 Object Lock retention mode: governance can be lifted by a principal with
/// s3:BypassGovernanceRetention, compliance by nobody until the date passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    Governance,
    Compliance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        }
    }
}

/// Ten years: long enough for "forever" (prune renews it), short enough not to outlive a bucket
/// nobody pays for any more by decades.
pub const DEFAULT_OBJECT_LOCK_MAX: std::time::Duration =
    std::time::Duration::from_secs(3650 * 86_400);

fn lock_settings(f: &S3File) -> Result<(Option<LockMode>, std::time::Duration)> {
    let mode = match f.object_lock.as_deref() {
        None => None,
        Some("governance") => Some(LockMode::Governance),
        Some("compliance") => Some(LockMode::Compliance),
        Some(other) => {
            return Err(PgdrError::config(format!(
                "repository.s3.object_lock = '{other}' is not a lock mode"
            ))
            .hint("write \"governance\" or \"compliance\", or remove the key for no lock"))
        }
    };
    let max = match &f.object_lock_max {
        Some(s) => super::ops::duration(s, "repository.s3.object_lock_max")?,
        None => DEFAULT_OBJECT_LOCK_MAX,
    };
    if max.is_zero() {
        return Err(
            PgdrError::config("repository.s3.object_lock_max must be above zero")
                .hint("write a duration such as \"3650d\""),
        );
    }
    Ok((mode, max))
}

/// S3 allows parts of 5 MiB to 5 GiB (the last may be smaller).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

pub(super) fn s3_settings(f: &S3File) -> Result<S3Settings> {
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
    let (object_lock, object_lock_max) = lock_settings(f)?;
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
        object_lock,
        object_lock_max,
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

#[cfg(test)]
mod lock_tests {
    use super::*;

    fn s3(text: &str) -> Result<S3Settings> {
        let f = crate::config::parse_file(text, "t.toml")?;
        s3_settings(&f.repository.s3)
    }

    #[test]
    fn object_lock_modes_and_max_parse_and_bad_ones_are_named() {
        let s = s3("[repository.s3]\nobject_lock = \"compliance\"\nobject_lock_max = \"400d\"\n")
            .unwrap();
        assert_eq!(s.object_lock, Some(LockMode::Compliance));
        assert_eq!(s.object_lock_max.as_secs(), 400 * 86_400);
        let s = s3("[repository.s3]\n").unwrap();
        assert_eq!(s.object_lock, None);
        assert_eq!(s.object_lock_max, DEFAULT_OBJECT_LOCK_MAX);
        let e = s3("[repository.s3]\nobject_lock = \"strict\"\n").unwrap_err();
        assert_eq!(
            e.message,
            "repository.s3.object_lock = 'strict' is not a lock mode"
        );
        let e = s3("[repository.s3]\nobject_lock_max = \"forever\"\n").unwrap_err();
        assert!(
            e.message
                .starts_with("repository.s3.object_lock_max = 'forever'"),
            "{}",
            e.message
        );
    }
}
