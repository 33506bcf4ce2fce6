//! `pgdr status` of a database whose capture the repository says is enabled: lag, slot,
//! covered window, gaps; each alert a problem. With capture on, the RPO is the data at risk
//! now (the time since the newest point durable in the repository), not the backups' RPO.

use chrono::{DateTime, Utc};

use super::DatabaseStatus;
use crate::capture::health::{self, CaptureHealth};
use crate::catalog::{Catalog, Listed};
use crate::config::Settings;
use crate::error::Result;
use crate::progress::human_age;

/// The capture's health, when the repository says it is enabled (and this host's config does
/// not keep it out).
pub(super) async fn capture_health(
    settings: &Settings,
    catalog: &Catalog,
    name: &str,
    listed: &[Listed],
    now: DateTime<Utc>,
) -> Result<Option<CaptureHealth>> {
    let Some(state) = catalog.capture_state(name).await?.filter(|s| s.enabled()) else {
        return Ok(None);
    };
    let db = settings.databases.iter().find(|d| d.name == name);
    let max_age =
        crate::capture::settings::limits(&db.map(|d| d.capture.clone()).unwrap_or_default())
            .max_age;
    health::observe(catalog, name, db, &state, listed, max_age, now)
        .await
        .map(Some)
}

/// Fold the capture into the database's status: its alerts are problems, and the RPO is
/// the capture's lag (checked against `rpo_target` when one is configured).
pub(super) fn apply(s: &mut DatabaseStatus, h: CaptureHealth) {
    let name = s.database.clone();
    // The backups' worst RPO no longer says what is at risk: drop its problem.
    if let Some(old) = super::rpo_problem(&s.worst_rpo, s.rpo_target_seconds) {
        let old = format!("database '{name}': {old}");
        s.problems.retain(|p| *p != old);
    }
    s.rpo_seconds = h.lag_seconds;
    s.rpo_source = "capture";
    if let (Some(lag), Some(target)) = (h.lag_seconds, s.rpo_target_seconds) {
        if lag > target {
            s.problems.push(format!(
                "database '{name}': the RPO (capture) is {}, above the rpo_target of {}",
                human_age(chrono::Duration::milliseconds((lag * 1000.0) as i64)),
                human_age(chrono::Duration::milliseconds((target * 1000.0) as i64)),
            ));
        }
    }
    s.problems.extend(
        h.alerts()
            .into_iter()
            .map(|a| format!("database '{name}': {}", a.message)),
    );
    s.capture = Some(h);
}
