//! Exclusion on the source database: one backup of a database at a time, whether the CLI or
//! a daemon (on any host) takes it.

use crate::catalog::records::{self};
use crate::config::ops::JobKind;
use crate::config::Database;
use crate::error::{PgdrError, Result};
use crate::source;

// Exclusion across daemons.

/// `pgdr` in ASCII: the advisory-lock class of every pgdr lock.
const LOCK_CLASS: i32 = 0x7067_6472;

/// A session-level PostgreSQL advisory lock on the source database, held on its own
/// connection for the duration of a backup, so that several daemons pointed at the same
/// database run one backup between them.
///
/// Why the source, and why an advisory lock: the source is the one thing every daemon backing
/// up this database shares (their hosts, clocks and even repositories may differ), and a
/// session lock dies with its session. A daemon that crashes, is killed or loses its network
/// cannot leave a stale lock behind, which a lock file or a lock object would (they need an
/// expiry, and a clock to trust). Advisory locks conflict only with advisory locks, so the
/// backup itself (snapshot, pg_dump's table locks) is not affected. They are scoped to the
/// database, so different databases on one server do not block each other.
pub struct SourceLock {
    client: tokio_postgres::Client,
    job: i32,
}

impl SourceLock {
    /// `Ok(None)`: another session holds it.
    pub async fn try_acquire(db: &Database, job: JobKind) -> Result<Option<SourceLock>> {
        // The session names its holder, so that a refused run can say who holds the lock.
        let mut named = db.clone();
        named.conn.application_name(format!(
            "pgdr {job} lock: host {} pid {}",
            records::hostname(),
            std::process::id()
        ));
        let client = source::connect(&named).await?;
        let code = job as i32 + 1;
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_CLASS, &code])
            .await
            .map_err(|e| {
                PgdrError::database(format!(
                    "database '{}': taking the backup lock: {e}",
                    db.name
                ))
            })?
            .get(0);
        Ok(got.then_some(SourceLock { client, job: code }))
    }

    /// Who holds the lock: "pgdr backup lock: host H pid P, for 12s" (from the holder's
    /// session), for a refusal that names it.
    pub async fn holder(db: &Database, job: JobKind) -> String {
        let code = job as i32 + 1;
        let found = async {
            let c = source::connect(db).await.ok()?;
            let row = c
                .query_opt(
                    "SELECT COALESCE(NULLIF(a.application_name, ''), 'pid ' || a.pid),
                            extract(epoch FROM now() - a.backend_start)::float8
                       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                      WHERE l.locktype = 'advisory' AND l.granted
                        AND l.classid::bigint = $1::bigint AND l.objid::bigint = $2::bigint
                        AND l.objsubid = 2
                      LIMIT 1",
                    &[&(LOCK_CLASS as i64), &(code as i64)],
                )
                .await
                .ok()??;
            let who: String = row.get(0);
            let secs: f64 = row.get(1);
            Some(format!(
                "{who}, for {}",
                crate::progress::human_duration(secs)
            ))
        }
        .await;
        found.unwrap_or_else(|| "another session (it could not be named)".into())
    }

    /// Unlock and end the session (ending it alone would release the lock too).
    pub async fn release(self) {
        let _ = self
            .client
            .execute(
                "SELECT pg_advisory_unlock($1, $2)",
                &[&LOCK_CLASS, &self.job],
            )
            .await;
    }
}
