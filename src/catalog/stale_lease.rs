//! A lease whose holder was killed on this very host (kill -9, OOM, power cut of the process)
//! is dead for sure: the holder can never renew it, and waiting out its 15 minutes would stop
//! the capture that long. Only this host can know, so only a lease written here is broken.

use super::format::jobs::StoredLease;
use super::{Key, Repository};
use crate::error::Result;

impl Repository {
    /// Remove the lease of `job` if it was written on this host by a process that no longer
    /// exists (owner `host:pid:random`). True when it was removed.
    pub async fn break_dead_lease(&self, database: &str, job: &str) -> Result<bool> {
        let key = Key::Lease {
            database: database.to_string(),
            job: job.to_string(),
        };
        let Ok(b) = self.get_bytes(&key).await else {
            return Ok(false);
        };
        let Ok(lease) = serde_json::from_slice::<StoredLease>(&b) else {
            return Ok(false);
        };
        let mut parts = lease.owner.split(':');
        let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
            return Ok(false);
        };
        let Ok(pid) = pid.parse::<u32>() else {
            return Ok(false);
        };
        if host != super::records::hostname() || pid == std::process::id() || alive(pid) {
            return Ok(false);
        }
        tracing::warn!(%key, owner = %lease.owner, "the lease's holder on this host is gone: lease released");
        self.delete(&key).await?;
        Ok(true)
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}
