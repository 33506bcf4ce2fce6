//! A replication session that runs replication commands instead of streaming
//! (`IDENTIFY_SYSTEM`, `CREATE_REPLICATION_SLOT`): capture setup and anchored dumps. It is the
//! crate's gated session, never started; dropping it ends the session (and with it a TEMPORARY
//! slot and its exported snapshot).

use pgwire_replication::ReplicationClient;

use super::replication::{connection, wire_error};
use super::Lsn;
use crate::config::Database;
use crate::error::{PgdrError, Result};

/// An open replication connection (`replication=database`) to one database.
pub struct Walsender {
    client: ReplicationClient,
    what: String,
    /// The roots file the connection's TLS handshake reads (sslrootcert=system).
    _roots: super::replication_tls::RootsFile,
}

/// What IDENTIFY_SYSTEM says about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemId {
    pub system_identifier: String,
    pub timeline: u32,
    pub flush_lsn: Lsn,
}

/// A slot just created: where its stream starts and, when asked for, the exported snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSlot {
    pub consistent_point: Lsn,
    pub snapshot: Option<String>,
}

impl Walsender {
    /// Connect and authenticate; errors (no REPLICATION, pg_hba, a pooler) come from the
    /// first command, as the crate connects in the background.
    pub async fn open(db: &Database) -> Result<Walsender> {
        Walsender::open_as(db, "pgdr").await
    }

    /// As [`Walsender::open`], with `application_name` set so the session can be found in
    /// pg_stat_activity (and cancelled).
    pub async fn open_as(db: &Database, application_name: &str) -> Result<Walsender> {
        let what = format!(
            "replication connection to database '{}' ({})",
            db.name,
            db.describe()
        );
        // Slot and publication are never used: the session never starts streaming.
        let (cfg, roots) = connection(db, "unused", "unused")?;
        let cfg = cfg
            .with_application_name(application_name)
            // The exported snapshot lives while this session idles, however long the dump.
            .with_options(format!(
                "{} -c idle_in_transaction_session_timeout=0",
                super::replication::SESSION_OPTIONS
            ));
        let client = ReplicationClient::connect_gated(cfg)
            .await
            .map_err(|e| wire_error(&what, e))?;
        Ok(Walsender {
            client,
            what,
            _roots: roots,
        })
    }

    pub async fn identify(&mut self) -> Result<SystemId> {
        let id = self
            .client
            .identify_system()
            .await
            .map_err(|e| wire_error(&self.what, e))?;
        Ok(SystemId {
            system_identifier: id.system_id,
            timeline: id.timeline,
            flush_lsn: Lsn(id.xlogpos.0),
        })
    }

    /// `CREATE_REPLICATION_SLOT name [TEMPORARY] LOGICAL pgoutput (SNAPSHOT 'export'|'nothing')`.
    /// Waits for every transaction in progress to end (callers bound it with a timeout).
    pub async fn create_slot(
        &mut self,
        name: &str,
        temporary: bool,
        export: bool,
    ) -> Result<CreatedSlot> {
        super::replication::check_name("slot", name)?;
        let sql = format!(
            "CREATE_REPLICATION_SLOT {name} {}LOGICAL pgoutput (SNAPSHOT '{}')",
            if temporary { "TEMPORARY " } else { "" },
            if export { "export" } else { "nothing" }
        );
        let rows = self
            .client
            .simple_query(&sql)
            .await
            .map_err(|e| wire_error(&self.what, e))?;
        // slot_name, consistent_point, snapshot_name, output_plugin
        let row = rows.into_iter().next().ok_or_else(|| {
            PgdrError::database(format!(
                "{}: CREATE_REPLICATION_SLOT returned no row",
                self.what
            ))
        })?;
        let text = |i: usize| {
            row.get(i)
                .and_then(|v| v.as_ref())
                .map(|b| String::from_utf8_lossy(b).into_owned())
        };
        let consistent_point = text(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| PgdrError::database(format!("{}: no consistent point", self.what)))?;
        Ok(CreatedSlot {
            consistent_point,
            snapshot: text(2),
        })
    }
}
