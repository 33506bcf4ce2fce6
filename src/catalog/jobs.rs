//! Job records (`<database>/jobs/<job>.json`): the catalog stores and finds them; what they
//! hold and mean is the scheduler's (`schedule::state`), so the body is generic here and the
//! catalog needs nothing of the scheduler.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Key, Repository};
use crate::error::{Kind, Result};

fn key(database: &str, job: &str) -> Key {
    Key::JobState {
        database: database.to_string(),
        job: job.to_string(),
    }
}

impl Repository {
    /// The stored record of `job`; None if the job never ran (or its record is unreadable:
    /// logged).
    pub async fn job_state<T: DeserializeOwned>(
        &self,
        database: &str,
        job: &str,
    ) -> Result<Option<T>> {
        let k = key(database, job);
        match self.get_bytes(&k).await {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(s) => Ok(Some(s)),
                Err(e) => {
                    tracing::warn!(key = %k, error = %e, "unreadable job record ignored");
                    Ok(None)
                }
            },
            Err(e) if e.kind == Kind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn save_job_state<T: Serialize>(
        &self,
        database: &str,
        job: &str,
        state: &T,
    ) -> Result<()> {
        self.put_json(&key(database, job), state).await
    }
}
