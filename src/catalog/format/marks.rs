//! Marks of work in progress, unversioned JSON: in-use marks
//! (`<database>/in-use/<backup-id>/<holder>.json`) and restoring marks
//! (`<database>/restores/in-progress/<digest>.json`), mirroring `catalog::inuse` and
//! `catalog::restoring`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::via_stored;
use crate::catalog::inuse::InUseMark;
use crate::catalog::restoring::RestoringMark;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredInUse {
    pub purpose: String,
    pub host: String,
    pub pid: u32,
    pub since: DateTime<Utc>,
    pub heartbeat: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRestoring {
    pub server: String,
    pub database: String,
    pub oid: Option<u32>,
    pub started_at: DateTime<Utc>,
    pub host: String,
    pub pid: u32,
}

via_stored!(InUseMark, StoredInUse);
via_stored!(RestoringMark, StoredRestoring);

impl From<&InUseMark> for StoredInUse {
    fn from(m: &InUseMark) -> Self {
        StoredInUse {
            purpose: m.purpose.clone(),
            host: m.host.clone(),
            pid: m.pid,
            since: m.since,
            heartbeat: m.heartbeat,
        }
    }
}

impl From<StoredInUse> for InUseMark {
    fn from(m: StoredInUse) -> Self {
        InUseMark {
            purpose: m.purpose,
            host: m.host,
            pid: m.pid,
            since: m.since,
            heartbeat: m.heartbeat,
        }
    }
}

impl From<&RestoringMark> for StoredRestoring {
    fn from(m: &RestoringMark) -> Self {
        StoredRestoring {
            server: m.server.clone(),
            database: m.database.clone(),
            oid: m.oid,
            started_at: m.started_at,
            host: m.host.clone(),
            pid: m.pid,
        }
    }
}

impl From<StoredRestoring> for RestoringMark {
    fn from(m: StoredRestoring) -> Self {
        RestoringMark {
            server: m.server,
            database: m.database,
            oid: m.oid,
            started_at: m.started_at,
            host: m.host,
            pid: m.pid,
        }
    }
}
