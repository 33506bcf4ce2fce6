//! `[database.capture]`: the change capture's settings of one database. Whether a database IS
//! captured is the repository's business (`pgdr capture enable` records it there, so a fresh
//! host knows); the file only tunes the runner and may keep one host's daemon out of it.
//!
//! ```toml
//! [[database]]
//! url = "postgres://pgdr@db/app"
//! [database.capture]
//! enabled = true            # false: this host's daemon never runs the capture
//! segment_age = "10s"       # close a segment after this long (at a transaction boundary)
//! segment_bytes = "16MiB"   # ... or at this many plain bytes
//! heartbeat = "10s"         # a heartbeat message after this long without changes
//! sequence_sample = "5s"    # every sequence's value sampled into the stream this often
//! anchor_timeout = "60s"    # how long a backup waits for its anchor slot (capture enable)
//! auto_add = true          # new tables with a replica identity join the publication
//! admin_url = "postgres://postgres:${PGDR_ADMIN_PASSWORD}@db/app"  # setup as the owner
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::{parse_duration, parse_size, Secret};
use crate::error::{PgdrError, Result};

/// The section as written.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CaptureFile {
    pub enabled: Option<bool>,
    pub segment_age: Option<String>,
    /// "16MiB", or a number of bytes.
    pub segment_bytes: Option<toml::Value>,
    pub heartbeat: Option<String>,
    pub sequence_sample: Option<String>,
    pub anchor_timeout: Option<String>,
    /// A secret: it may hold the owner's password (`${ENV}` interpolation works).
    pub admin_url: Option<Secret>,
    pub auto_add: Option<bool>,
}

/// The section resolved: None where the file says nothing (the flag, then the built-in
/// default, decides).
#[derive(Debug, Default, Clone)]
pub struct CaptureConfig {
    /// Some(false): the daemon of this host leaves the capture to others, even when the
    /// repository says it is enabled.
    pub enabled: Option<bool>,
    pub segment_age: Option<Duration>,
    pub segment_bytes: Option<u64>,
    pub heartbeat: Option<Duration>,
    pub sequence_sample: Option<Duration>,
    pub anchor_timeout: Option<Duration>,
    pub admin_url: Option<Secret>,
    /// Some(true): the runner adds new tables that have a replica identity to the publication.
    pub auto_add: Option<bool>,
}

/// Below this a segment closes after nearly every transaction and the repository fills with
/// tiny objects; above an hour "covered until" (the RPO) lags by as much.
const SEGMENT_AGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
const SEGMENT_BYTES: (u64, u64) = (64 * 1024, 1 << 30);

pub(super) fn resolve(f: &CaptureFile, path: &str) -> Result<CaptureConfig> {
    let dur = |v: &Option<String>, k: &str| {
        v.as_deref()
            .map(|s| parse_duration(s, &format!("{path}.{k}")))
            .transpose()
    };
    let c = CaptureConfig {
        enabled: f.enabled,
        segment_age: dur(&f.segment_age, "segment_age")?,
        segment_bytes: f
            .segment_bytes
            .as_ref()
            .map(|v| bytes(v, &format!("{path}.segment_bytes")))
            .transpose()?,
        heartbeat: dur(&f.heartbeat, "heartbeat")?,
        sequence_sample: dur(&f.sequence_sample, "sequence_sample")?,
        anchor_timeout: dur(&f.anchor_timeout, "anchor_timeout")?,
        admin_url: f.admin_url.clone(),
        auto_add: f.auto_add,
    };
    let range = |k: &str, fix: &str| {
        PgdrError::config(format!("{path}.{k} is out of range")).hint(fix.to_string())
    };
    if c.segment_age
        .is_some_and(|d| d < SEGMENT_AGE.0 || d > SEGMENT_AGE.1)
    {
        return Err(range(
            "segment_age",
            "give a duration from \"1s\" to \"1h\"; \"10s\" is the default",
        ));
    }
    if c.segment_bytes
        .is_some_and(|b| b < SEGMENT_BYTES.0 || b > SEGMENT_BYTES.1)
    {
        return Err(range(
            "segment_bytes",
            "give a size from \"64KiB\" to \"1GiB\"; \"16MiB\" is the default",
        ));
    }
    if c.heartbeat
        .is_some_and(|d| d < Duration::from_secs(1) || d > Duration::from_secs(600))
    {
        return Err(range(
            "heartbeat",
            "give a duration from \"1s\" to \"10m\"; \"10s\" is the default",
        ));
    }
    if c.sequence_sample
        .is_some_and(|d| d < Duration::from_secs(1) || d > Duration::from_secs(600))
    {
        return Err(range(
            "sequence_sample",
            "give a duration from \"1s\" to \"10m\"; \"5s\" is the default",
        ));
    }
    if c.anchor_timeout.is_some_and(|d| d.is_zero()) {
        return Err(range(
            "anchor_timeout",
            "give a duration such as \"60s\" (the default)",
        ));
    }
    if let Some(u) = &c.admin_url {
        if !(u.expose().starts_with("postgres://") || u.expose().starts_with("postgresql://")) {
            // Never echo the value: it may hold the password.
            return Err(PgdrError::config(format!("{path}.admin_url is not a postgres:// URL"))
                .hint("write admin_url = \"postgres://OWNER@HOST/DBNAME\"; put the password in ${ENV} or ~/.pgpass"));
        }
    }
    Ok(c)
}

fn bytes(v: &toml::Value, key: &str) -> Result<u64> {
    let bad = || {
        PgdrError::config(format!("{key} is not a size"))
            .hint("write a size such as \"16MiB\", \"512KiB\" or a number of bytes")
    };
    match v {
        toml::Value::Integer(n) => u64::try_from(*n).map_err(|_| bad()),
        toml::Value::String(s) => parse_size(s).map(|n| n as u64).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_file;

    fn section(body: &str) -> Result<CaptureConfig> {
        let text =
            format!("[[database]]\nurl = \"postgres://u@h/app\"\n[database.capture]\n{body}");
        let f = parse_file(&text, "t.toml")?;
        resolve(
            f.databases[0].capture.as_ref().expect("section"),
            "database[0].capture",
        )
    }

    #[test]
    fn capture_section_resolves_and_names_bad_keys() {
        std::env::set_var("PGDR_TEST_ADMIN_PW", "s3cret");
        let c = section(
            "enabled = false\nsegment_age = \"30s\"\nsegment_bytes = \"8MiB\"\nheartbeat = \"5s\"\nsequence_sample = \"2s\"\nanchor_timeout = \"2m\"\nadmin_url = \"postgres://postgres:${PGDR_TEST_ADMIN_PW}@db/app\"\n",
        )
        .unwrap();
        assert_eq!(c.enabled, Some(false));
        assert_eq!(c.segment_age, Some(Duration::from_secs(30)));
        assert_eq!(c.segment_bytes, Some(8 << 20));
        assert_eq!(c.heartbeat, Some(Duration::from_secs(5)));
        assert_eq!(c.sequence_sample, Some(Duration::from_secs(2)));
        assert_eq!(c.anchor_timeout, Some(Duration::from_secs(120)));
        assert!(c.admin_url.as_ref().unwrap().expose().contains("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(
            section("segment_bytes = 1048576\n").unwrap().segment_bytes,
            Some(1 << 20)
        );

        for (body, msg) in [
            (
                "segment_age = \"soon\"\n",
                "database[0].capture.segment_age = 'soon': not a duration",
            ),
            (
                "segment_age = \"2h\"\n",
                "database[0].capture.segment_age is out of range",
            ),
            (
                "segment_bytes = \"3 parsecs\"\n",
                "database[0].capture.segment_bytes is not a size",
            ),
            (
                "segment_bytes = 10\n",
                "database[0].capture.segment_bytes is out of range",
            ),
            (
                "heartbeat = \"0s\"\n",
                "database[0].capture.heartbeat is out of range",
            ),
            (
                "anchor_timeout = \"0s\"\n",
                "database[0].capture.anchor_timeout is out of range",
            ),
            (
                "admin_url = \"host=db password=pw\"\n",
                "database[0].capture.admin_url is not a postgres:// URL",
            ),
        ] {
            let e = section(body).unwrap_err();
            assert!(e.message.starts_with(msg), "{body}: {}", e.message);
            assert!(!e.hints.is_empty(), "{body}: a fix is named");
            assert!(!e.to_string().contains("pw"), "{body}");
        }
        let e = section("segment_size = \"1MiB\"\n").unwrap_err();
        assert!(
            e.message
                .starts_with("t.toml line 4: unknown field `segment_size`"),
            "{}",
            e.message
        );
    }
}
