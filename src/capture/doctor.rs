//! `capture doctor`: pgdr's slots on the server, the WAL each holds back, and the DROP for the
//! ones no enabled capture in the repository owns (a slot without a consumer keeps WAL until
//! the disk is full).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::catalog::Repository;
use crate::config::Settings;
use crate::error::{PgdrError, Result};
use crate::source;

#[derive(Debug, Clone, Serialize)]
pub struct SlotReport {
    pub slot: String,
    pub database: Option<String>,
    pub active: bool,
    pub temporary: bool,
    pub wal_status: Option<String>,
    /// WAL the slot keeps from being recycled (current position minus its restart_lsn).
    pub retained_bytes: Option<i64>,
    /// No enabled capture in the repository uses it (and it is no backup's temporary anchor).
    pub orphan: bool,
    /// The statement that drops it, for orphans.
    pub drop_sql: Option<String>,
}

/// Every `pgdr_*` slot on the server(s) of the selected databases.
pub async fn run(settings: &Settings, database: Option<&str>) -> Result<Vec<SlotReport>> {
    let repo = Repository::open(settings).await?;
    let mut owned = BTreeSet::new();
    // Databases with backups, and the configured ones (a capture may precede any backup).
    let mut names: BTreeSet<String> = repo.databases().await?.into_iter().collect();
    names.extend(settings.databases.iter().map(|d| d.name.clone()));
    for db in names {
        if let Some(s) = repo.capture_state(&db).await? {
            if s.enabled() {
                owned.insert(s.slot);
            }
        }
    }
    let mut out: Vec<SlotReport> = Vec::new();
    for db in settings.select(database)? {
        let client = source::connect(db).await?;
        let rows = client
            .query(
                "SELECT slot_name::text, database::text, active, temporary, wal_status,
                        pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                                             ELSE pg_current_wal_lsn() END, restart_lsn)::int8
                   FROM pg_replication_slots WHERE slot_name LIKE 'pgdr\\_%' ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| PgdrError::database(format!("reading replication slots: {e}")))?;
        for r in rows {
            let slot: String = r.get(0);
            if out.iter().any(|o| o.slot == slot) {
                continue; // two configured databases on one server
            }
            let temporary: bool = r.get(3);
            let orphan = !temporary && !owned.contains(&slot);
            out.push(SlotReport {
                drop_sql: orphan.then(|| {
                    format!(
                        "SELECT pg_drop_replication_slot({});",
                        crate::sql::quote_literal(&slot)
                    )
                }),
                slot,
                database: r.get(1),
                active: r.get(2),
                temporary,
                wal_status: r.get(4),
                retained_bytes: r.get(5),
                orphan,
            });
        }
    }
    Ok(out)
}
