//! Choosing where a proof restore goes (shared by `verify` and `drill`): the ephemeral
//! cluster by default, or a database on the server named by `[scratch] url`; and removing it
//! again afterwards, whatever happened.

use crate::catalog::Manifest;
use crate::config::Settings;
use crate::error::{PgdrError, Result};
use crate::restore::Target;
use crate::scratch::EphemeralCluster;

/// A scratch database to restore into, and the cluster it lives in when pgdr started one.
pub struct Scratch {
    pub target: Target,
    pub cluster: Option<EphemeralCluster>,
}

impl Scratch {
    /// The ephemeral cluster (default) or a database `pgdr_<purpose>_<id>` on the configured
    /// scratch server, which must run the backup's major version or newer.
    pub async fn open(settings: &Settings, m: &Manifest, purpose: &str) -> Result<Scratch> {
        let (target, cluster) = scratch_target(settings, m, purpose).await?;
        Ok(Scratch { target, cluster })
    }

    /// "ephemeral PostgreSQL 17.2 cluster" / "database pgdr_verify_... on user@host:port/db"
    pub fn describe(&self) -> String {
        match &self.cluster {
            Some(c) => format!("ephemeral PostgreSQL {} cluster", c.version),
            None => format!(
                "database {} on {}",
                self.target.dbname,
                self.target.maintenance.describe()
            ),
        }
    }

    /// Whether to restore in one transaction: on pgdr's own cluster (wal_level=minimal) that
    /// spares writing the restored tables and indexes to WAL. Not on a named server, whose
    /// WAL level and lock table are not pgdr's to choose.
    pub fn single_transaction(&self) -> bool {
        self.cluster.is_some()
    }

    /// Stop the cluster, or drop the scratch database on the named server.
    pub async fn teardown(self) {
        match self.cluster {
            Some(c) => c.stop().await,
            None => drop_scratch_db(&self.target).await,
        }
    }
}

/// The ephemeral cluster (default) or a database on the configured scratch server.
pub async fn scratch_target(
    settings: &Settings,
    m: &Manifest,
    purpose: &str,
) -> Result<(Target, Option<EphemeralCluster>)> {
    let major = m.source.major();
    match &settings.scratch.url {
        None => {
            let objects = m
                .fingerprint
                .as_ref()
                .map_or(0, |f| f.data.toc_entries as u64);
            let c = EphemeralCluster::start(major, &settings.scratch, objects).await?;
            let t = Target {
                maintenance: c.database("postgres"),
                dbname: m.source.database.clone(),
                bin_dir: c.bin_dir.clone(),
            };
            Ok((t, Some(c)))
        }
        Some(url) => {
            let o = crate::config::Overrides {
                source: Some(url.clone()),
                repo: Some("/".into()),
                ..Default::default()
            };
            let maintenance = Settings::load(&o)
                .map_err(|e| e.context("[scratch] url"))?
                .databases
                .remove(0);
            let client = crate::source::connect(&maintenance).await?;
            let info = crate::source::server_info(&client).await?;
            if info.major() < major {
                return Err(PgdrError::tool(format!(
                    "scratch server {} runs PostgreSQL {}, older than the backup's {}",
                    maintenance.describe(),
                    info.server_version,
                    m.source.server_version
                ))
                .hint("point [scratch] url at a server of the same major version or newer"));
            }
            let tool = crate::scratch::pg_restore(info.major().max(major), &settings.scratch)?;
            let dbname = format!(
                "pgdr_{purpose}_{}",
                m.id.as_str().to_lowercase().replace('.', "_")
            );
            Ok((
                Target {
                    maintenance,
                    dbname,
                    bin_dir: tool.path.parent().expect("file").to_path_buf(),
                },
                None,
            ))
        }
    }
}

/// Drop a scratch database on a named server; a failure is a warning (drop it by hand).
pub async fn drop_scratch_db(t: &Target) {
    if let Ok(c) = crate::source::connect(&t.maintenance).await {
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            crate::sql::quote_ident(&t.dbname)
        );
        if let Err(e) = c.batch_execute(&sql).await {
            tracing::warn!(database = %t.dbname, error = %e, "could not drop the scratch database; drop it by hand");
        }
    }
}
