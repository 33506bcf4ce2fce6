//! `--metrics-file` / `[metrics] textfile`: the last one-shot run of each database and job as
//! gauges in node_exporter's textfile-collector format, so runs from cron or a Kubernetes
//! CronJob are scraped and alerted on like the daemon's. Each run rewrites the file atomically
//! (temp file in the same directory, then rename: the collector never reads half a file) and
//! keeps the lines of the other databases and jobs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::metrics::unix;

/// One run, as the gauges say it.
#[derive(Debug, Clone)]
pub struct RunEntry {
    pub database: String,
    pub job: String,
    pub success: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Stored bytes of what the run wrote (a backup); absent when it wrote nothing to count.
    pub bytes: Option<u64>,
}

/// (name, help) of each gauge, in the file's order.
const GAUGES: [(&str, &str); 5] = [
    (
        "pgdr_last_run_success",
        "1 if the last run of the job succeeded, 0 if it failed.",
    ),
    (
        "pgdr_last_run_start_timestamp_seconds",
        "When the last run started (Unix time).",
    ),
    (
        "pgdr_last_run_end_timestamp_seconds",
        "When the last run ended (Unix time).",
    ),
    (
        "pgdr_last_run_duration_seconds",
        "How long the last run took.",
    ),
    (
        "pgdr_last_run_bytes",
        "Bytes stored by the last run (compressed, encrypted).",
    ),
];

/// (database, job) -> gauge name -> value as written.
type Series = BTreeMap<(String, String), BTreeMap<String, String>>;

/// Merge `e` into the file at `path` (created if missing) and replace it atomically.
pub fn update(path: &Path, e: &RunEntry) -> std::io::Result<()> {
    let mut series = match std::fs::read_to_string(path) {
        Ok(text) => parse(&text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Series::new(),
        Err(err) => return Err(err),
    };
    let mut values = BTreeMap::new();
    let seconds = (e.finished_at - e.started_at).num_milliseconds() as f64 / 1000.0;
    let nums = [
        Some(if e.success { 1.0 } else { 0.0 }),
        Some(unix(e.started_at)),
        Some(unix(e.finished_at)),
        Some(seconds),
        e.bytes.map(|b| b as f64),
    ];
    for ((name, _), v) in GAUGES.iter().zip(nums) {
        if let Some(v) = v {
            values.insert(name.to_string(), v.to_string());
        }
    }
    series.insert((e.database.clone(), e.job.clone()), values);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".pgdr-metrics-")
        .tempfile_in(dir)?;
    tmp.write_all(render(&series).as_bytes())?;
    tmp.as_file().sync_all()?;
    // The collector runs as another user: world-readable like any exporter output.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn render(series: &Series) -> String {
    let mut out = String::new();
    for (name, help) in GAUGES {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for ((db, job), values) in series {
            if let Some(v) = values.get(name) {
                out.push_str(&format!(
                    "{name}{{database=\"{}\",job=\"{}\"}} {v}\n",
                    escape(db),
                    escape(job)
                ));
            }
        }
    }
    out
}

/// The lines of our gauges in a file we wrote before; anything else is dropped.
fn parse(text: &str) -> Series {
    let mut series = Series::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        if !GAUGES.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let (Some(db), Some(job)) = (label(labels, "database"), label(labels, "job")) else {
            continue;
        };
        series
            .entry((db, job))
            .or_default()
            .insert(name.to_string(), value.trim().to_string());
    }
    series
}

/// The value of `key="..."` in a label set we wrote (escapes undone).
fn label(labels: &str, key: &str) -> Option<String> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let mut out = String::new();
    let mut chars = labels[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(db: &str, job: &str, ok: bool) -> RunEntry {
        let t: DateTime<Utc> = "2026-11-26T02:00:00Z".parse().unwrap();
        RunEntry {
            database: db.into(),
            job: job.into(),
            success: ok,
            started_at: t,
            finished_at: t + chrono::Duration::milliseconds(2500),
            bytes: ok.then_some(1234),
        }
    }

    #[test]
    fn merges_and_replaces_per_database_and_job() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pgdr.prom");
        update(&p, &entry("app", "backup", true)).unwrap();
        update(&p, &entry("we\"ird", "verify", false)).unwrap();
        update(&p, &entry("app", "backup", false)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("pgdr_last_run_success{database=\"app\",job=\"backup\"} 0\n"));
        assert!(text.contains("pgdr_last_run_success{database=\"we\\\"ird\",job=\"verify\"} 0\n"));
        assert!(
            text.contains("pgdr_last_run_duration_seconds{database=\"app\",job=\"backup\"} 2.5\n")
        );
        assert!(text.contains(
            "pgdr_last_run_start_timestamp_seconds{database=\"app\",job=\"backup\"} 1795658400\n"
        ));
        // The failed rerun wrote no bytes: the old value is not kept beside a new outcome.
        assert!(!text.contains("pgdr_last_run_bytes{"), "{text}");
        assert_eq!(
            text.matches("# TYPE pgdr_last_run_success gauge").count(),
            1
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }
}
