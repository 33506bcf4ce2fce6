//! The capture lines of `pgdr status` (text): RPO, lag, slot, window, gaps.

use crate::capture::health::CaptureHealth;
use crate::progress::{human_bytes, human_duration};

pub fn lines(c: &CaptureHealth, rpo_seconds: Option<f64>) -> Vec<(&'static str, String)> {
    let t = |d: &chrono::DateTime<chrono::Utc>| d.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let mut out = Vec::new();
    out.push((
        "RPO (capture)",
        rpo_seconds.map_or("unknown".into(), |s| {
            format!("{} at risk now", human_duration(s))
        }),
    ));
    out.push((
        "capture lag",
        match (c.lag_seconds, c.lag_bytes) {
            (Some(s), Some(b)) => format!(
                "{} / {} of WAL (durable {})",
                human_duration(s),
                human_bytes(b),
                c.durable
            ),
            (Some(s), None) => format!(
                "{} (server not reachable: {})",
                human_duration(s),
                c.server_error.as_deref().unwrap_or("?")
            ),
            _ => "unknown".into(),
        },
    ));
    out.push((
        "capture slot",
        match &c.slot {
            None => "unknown (the server was not asked or did not answer)".into(),
            Some(s) => match &s.wal_status {
                None => format!("{} MISSING", s.name),
                Some(w) => format!(
                    "{} wal_status {w}, retains {}",
                    s.name,
                    s.retained_bytes.map_or("?".into(), human_bytes)
                ),
            },
        },
    ));
    out.push((
        "recoverable",
        match (&c.recoverable_from, &c.covered_until) {
            (Some(f), Some(u)) => format!("from {} to {}", t(f), t(u)),
            (None, Some(u)) => format!(
                "no anchored backup the stream reaches (covered until {})",
                t(u)
            ),
            (_, None) => "nothing captured yet".into(),
        },
    ));
    out.push((
        "capture gaps",
        if c.gaps.is_empty() {
            "none".into()
        } else {
            c.gaps
                .iter()
                .map(|g| format!("{}..{}", g.from, g.to))
                .collect::<Vec<_>>()
                .join(", ")
        },
    ));
    out
}
