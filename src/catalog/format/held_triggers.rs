//! The triggers a managed restore holds disabled on one target
//! (`<db>/restores/triggers/<digest>.json`), format 1. Written before the first
//! `ALTER TABLE ... DISABLE TRIGGER`, removed once every trigger is back: a run killed between
//! the two leaves it, and the next run against that target puts each trigger back to the
//! state recorded here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const HELD_TRIGGERS_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHeldTriggers {
    pub format_version: u32,
    /// `host:port` of the target server, as `pgdr restore` normalises it.
    pub server: String,
    /// The target database.
    pub database: String,
    /// The role that disabled them (it has the tables' owners' privileges).
    pub role: String,
    pub disabled_at: DateTime<Utc>,
    pub host: String,
    pub pid: u32,
    pub triggers: Vec<StoredHeldTrigger>,
}

/// One trigger and its `pg_trigger.tgenabled` before it was disabled (`O`, `R`, `A`, `D`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHeldTrigger {
    pub schema: String,
    pub table: String,
    pub trigger: String,
    pub enabled: String,
}
