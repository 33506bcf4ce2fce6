//! `[[heartbeat]]`, `[[email]]`, `[metrics] textfile` and `[progress]`: how every run that does
//! a job (daemon or one-shot, issue 20) tells the world it ran. `[[webhook]]` stays in `ops`.
//! URLs and passwords here are secrets (a healthchecks.io URL is its own credential).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ops::duration;
use crate::config::{FileConfig, Secret};
use crate::error::{PgdrError, Result};

/// `[[heartbeat]]`: a dead-man's-switch URL (healthchecks.io, Cronitor convention).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatFile {
    pub url: Secret,
    /// Only runs of this job ("backup", "verify", "drill", "prune", "capture"); default all.
    pub job: Option<String>,
    /// Only runs for this database; default all.
    pub database: Option<String>,
    /// Per ping (default "10s").
    pub timeout: Option<String>,
}

/// `[[email]]`: a mail per run outcome through an SMTP relay.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct EmailFile {
    pub host: String,
    /// Default 587 (submission with STARTTLS), 465 with tls = "tls", 25 with "none".
    pub port: Option<u16>,
    /// "starttls" (default, required), "tls" (implicit TLS) or "none" (a local relay only).
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    /// Also mail successes (default false: failures only).
    pub on_success: Option<bool>,
    /// Per delivery (default "30s").
    pub timeout: Option<String>,
}

/// `[progress]`: what a long job shows while it runs.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ProgressFile {
    /// "auto" (default), "bar", "log" or "none".
    pub mode: Option<String>,
    /// Between log lines (default "30s").
    pub interval: Option<String>,
}

#[derive(Debug, Clone)]
pub struct HeartbeatSettings {
    pub url: Secret,
    pub job: Option<String>,
    pub database: Option<String>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Implicit,
    None,
}

#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    pub on_success: bool,
    pub timeout: Duration,
}

/// How progress is shown: see `crate::progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar on a terminal; nothing for a one-shot command elsewhere; log lines in the daemon.
    #[default]
    Auto,
    Bar,
    Log,
    None,
}

pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Default)]
pub struct NotifySettings {
    pub heartbeats: Vec<HeartbeatSettings>,
    pub emails: Vec<EmailSettings>,
    /// `--metrics-file` or `[metrics] textfile`.
    pub metrics_textfile: Option<PathBuf>,
    pub progress: ProgressMode,
    pub progress_interval: Option<Duration>,
}

const JOBS: [&str; 6] = [
    "backup",
    "verify",
    "drill",
    "prune",
    "capture",
    "chain-proof",
];

impl NotifySettings {
    pub fn resolve(file: &FileConfig) -> Result<NotifySettings> {
        let mut heartbeats = Vec::new();
        for (i, h) in file.heartbeat.iter().enumerate() {
            let key = format!("heartbeat[{i}]");
            http_url(&h.url, &key)?;
            if let Some(j) = h.job.as_deref().filter(|j| !JOBS.contains(j)) {
                return Err(PgdrError::config(format!("{key}.job = '{j}': unknown job"))
                    .hint(format!("use one of {}", JOBS.join(", "))));
            }
            heartbeats.push(HeartbeatSettings {
                url: h.url.clone(),
                job: h.job.clone(),
                database: h.database.clone(),
                timeout: opt_duration(&h.timeout, &format!("{key}.timeout"), 10)?,
            });
        }
        let emails = file
            .email
            .iter()
            .enumerate()
            .map(|(i, e)| email(e, &format!("email[{i}]")))
            .collect::<Result<_>>()?;
        let p = file.progress.clone().unwrap_or_default();
        let progress = match p.mode.as_deref() {
            None => ProgressMode::Auto,
            Some(m) => <ProgressMode as clap::ValueEnum>::from_str(m, true).map_err(|_| {
                PgdrError::config(format!("progress.mode = '{m}': unknown mode"))
                    .hint("use \"auto\", \"bar\", \"log\" or \"none\"")
            })?,
        };
        let progress_interval = match &p.interval {
            Some(s) => match duration(s, "progress.interval")? {
                d if d.is_zero() => {
                    return Err(
                        PgdrError::config(format!("progress.interval = '{s}' is zero"))
                            .hint("write an interval such as \"30s\""),
                    )
                }
                d => Some(d),
            },
            None => None,
        };
        Ok(NotifySettings {
            heartbeats,
            emails,
            metrics_textfile: file.metrics.as_ref().and_then(|m| m.textfile.clone()),
            progress,
            progress_interval,
        })
    }
}

fn email(e: &EmailFile, key: &str) -> Result<EmailSettings> {
    let tls = match e.tls.as_deref().unwrap_or("starttls") {
        "starttls" => SmtpTls::StartTls,
        "tls" => SmtpTls::Implicit,
        "none" => SmtpTls::None,
        other => {
            return Err(
                PgdrError::config(format!("{key}.tls = '{other}': unknown mode"))
                    .hint("use \"starttls\" (default), \"tls\" or \"none\" (a local relay only)"),
            )
        }
    };
    if e.to.is_empty() {
        return Err(PgdrError::config(format!("{key}.to is empty"))
            .hint("write to = [\"oncall@example.com\"]"));
    }
    for a in std::iter::once(&e.from).chain(&e.to) {
        if !a.contains('@') {
            return Err(
                PgdrError::config(format!("{key}: '{a}' is not a mail address"))
                    .hint("write addresses such as \"pgdr@example.com\""),
            );
        }
    }
    if e.password.is_some() != e.username.is_some() {
        return Err(
            PgdrError::config(format!("{key}: username and password go together"))
                .hint("set both (password = \"${SMTP_PASSWORD}\") or neither"),
        );
    }
    Ok(EmailSettings {
        host: e.host.clone(),
        port: e.port.unwrap_or(match tls {
            SmtpTls::StartTls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        }),
        tls,
        username: e.username.clone(),
        password: e.password.clone(),
        from: e.from.clone(),
        to: e.to.clone(),
        on_success: e.on_success.unwrap_or(false),
        timeout: opt_duration(&e.timeout, &format!("{key}.timeout"), 30)?,
    })
}

fn http_url(u: &Secret, key: &str) -> Result<()> {
    let u = u.expose();
    if u.starts_with("http://") || u.starts_with("https://") {
        return Ok(());
    }
    Err(
        PgdrError::config(format!("{key}.url is not an http(s) URL"))
            .hint("write url = \"https://hc-ping.com/<uuid>\" (or ${ENV_VAR})"),
    )
}

fn opt_duration(s: &Option<String>, key: &str, default_secs: u64) -> Result<Duration> {
    match s {
        Some(s) => duration(s, key),
        None => Ok(Duration::from_secs(default_secs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<NotifySettings> {
        NotifySettings::resolve(&crate::config::parse_file(text, "t.toml")?)
    }

    #[test]
    fn reads_every_section() {
        let n = resolve(
            "[[heartbeat]]\nurl = \"https://hc-ping.com/abc\"\njob = \"backup\"\n\
             [[email]]\nhost = \"smtp.example.com\"\nfrom = \"pgdr@example.com\"\nto = [\"ops@example.com\"]\n\
             [metrics]\ntextfile = \"/var/lib/node_exporter/pgdr.prom\"\n\
             [progress]\nmode = \"log\"\ninterval = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(n.heartbeats[0].job.as_deref(), Some("backup"));
        assert_eq!(n.emails[0].port, 587);
        assert_eq!(n.emails[0].tls, SmtpTls::StartTls);
        assert_eq!(n.progress, ProgressMode::Log);
        assert_eq!(n.progress_interval, Some(Duration::from_secs(5)));
        assert!(n.metrics_textfile.is_some());
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = resolve("[[heartbeat]]\nurl = \"hc-ping.com/x\"\n").unwrap_err();
        assert!(e.message.starts_with("heartbeat[0].url"), "{}", e.message);
        let e = resolve("[[email]]\nhost = \"h\"\nfrom = \"a@b\"\nto = [\"c@d\"]\ntls = \"ssl\"\n")
            .unwrap_err();
        assert!(
            e.message.starts_with("email[0].tls = 'ssl'"),
            "{}",
            e.message
        );
        let e = resolve("[progress]\nmode = \"fancy\"\n").unwrap_err();
        assert!(
            e.message.starts_with("progress.mode = 'fancy'"),
            "{}",
            e.message
        );
    }
}
