//! `pgdr drill`: run a drill (the engine is `crate::drill`, re-exported here), and read the
//! drills already run: their history and the report on them (`report`: text, Markdown, HTML).

use chrono::Utc;

use crate::catalog::records::DrillRecord;
use crate::catalog::Catalog;
use crate::config::{Settings, DEFAULT_RPO_TARGET};
use crate::drill::{rpo, target, WORST_RPO_WINDOW_DAYS};
use crate::error::{PgdrError, Result};

pub mod report;

pub use crate::drill::{run, DrillOptions, DrillRun, DrillSpec, Selection};

/// Past drills, newest first.
pub async fn history(settings: &Settings, database: Option<&str>) -> Result<Vec<DrillRecord>> {
    let catalog = Catalog::open(settings).await?;
    let mut v = catalog.drills(database).await?;
    v.reverse();
    Ok(v)
}

/// The report on past drills, in the format asked for.
pub async fn report(
    settings: &Settings,
    database: Option<&str>,
    format: report::Format,
) -> Result<String> {
    let catalog = Catalog::open(settings).await?;
    let drills = catalog.drills(database).await?;
    let mut names: Vec<String> = drills.iter().map(|d| d.database.clone()).collect();
    if let Some(d) = database {
        names.push(d.to_string());
    }
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Err(
            PgdrError::not_found(format!("no drill records in {}", catalog.describe()))
                .hint("run `pgdr drill` first"),
        );
    }
    let now = Utc::now();
    let mut sections = Vec::new();
    for name in names {
        let listed = catalog.list(Some(&name)).await?;
        let points = rpo::points(&listed);
        let history: Vec<DrillRecord> = drills
            .iter()
            .filter(|d| d.database == name)
            .cloned()
            .collect();
        let configured = settings.databases.iter().find(|d| d.name == name);
        // The newest drill's targets (they record where they came from); else the config's.
        let rpo_target = history.last().map_or_else(
            || {
                target(
                    None,
                    configured.and_then(|d| d.rpo_target),
                    DEFAULT_RPO_TARGET,
                )
                .0
            },
            |d| d.targets.rpo_seconds,
        );
        let worst = rpo::worst_rpo(&points, now, WORST_RPO_WINDOW_DAYS);
        let typical = rpo::typical_interval(&points, 31);
        sections.push(report::Section {
            database: name,
            schedule: rpo::schedule_verdict(typical, worst.as_ref(), rpo_target),
            worst_rpo_now: worst,
            backups: points.len(),
            drills: history,
        });
    }
    Ok(report::render(&sections, format, now))
}
