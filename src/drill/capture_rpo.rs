//! A drill's RPO when the database's change capture is enabled in the repository: the data
//! at risk at the drill's start is what came after the newest point durable in the
//! repository, not what came after the backup restored (the stream covers that). Measured
//! as `status` measures it (`capture::health`), from the repository alone: the drill does
//! not connect to the source server for it.

use chrono::{DateTime, Utc};

use crate::capture::health;
use crate::catalog::records::DrillRecord;
use crate::catalog::{Catalog, Listed, Manifest};
use crate::config::Settings;
use crate::error::Result;

/// Seconds from the newest point durable in the repository to `now`, or None when the
/// database's capture is not enabled (the RPO is then the backup's).
pub async fn capture_rpo(
    settings: &Settings,
    catalog: &Catalog,
    db: &str,
    listed: &[Listed],
    now: DateTime<Utc>,
) -> Result<Option<f64>> {
    let Some(state) = catalog.capture_state(db).await?.filter(|s| s.enabled()) else {
        return Ok(None);
    };
    let configured = settings.databases.iter().find(|d| d.name == db);
    let max_age = crate::capture::settings::limits(
        &configured.map(|d| d.capture.clone()).unwrap_or_default(),
    )
    .max_age;
    let h = health::observe(catalog, db, None, &state, listed, max_age, now).await?;
    Ok(h.lag_seconds)
}

/// With capture enabled, the record's RPO is the capture's, measured at the drill's start.
pub async fn record(
    rec: &mut DrillRecord,
    settings: &Settings,
    catalog: &Catalog,
    listed: &[Listed],
) -> Result<()> {
    let (db, now) = (rec.database.clone(), rec.started_at);
    if let Some(lag) = capture_rpo(settings, catalog, &db, listed, now).await? {
        rec.rpo_seconds = Some(lag);
        rec.rpo_source = Some("capture".into());
    }
    Ok(())
}

/// Without capture, the RPO is the drill's start minus the snapshot time of the backup.
pub fn or_backup(rec: &mut DrillRecord, m: &Manifest) {
    if rec.rpo_source.is_none() {
        let d = rec.started_at - m.snapshot.time;
        rec.rpo_seconds = Some(d.num_milliseconds() as f64 / 1000.0);
        rec.rpo_source = Some("backup".into());
    }
}
