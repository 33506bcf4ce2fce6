//! Triggers must not fire again during replay: their effects on the source are already in the
//! stream. `session_replication_role = replica` silences ordinary triggers (and the foreign
//! keys' cascade triggers) where the role may set it (superuser, or PG15+ `GRANT SET ON
//! PARAMETER`); triggers set `ENABLE ALWAYS` or `ENABLE REPLICA` fire in that mode, so they
//! are disabled by name. Where the role may not set it (managed services), user triggers are
//! disabled per table as its owner. Either way each trigger's exact previous state is recorded
//! before it is touched and put back afterwards, also after a failure.

use std::collections::HashSet;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::ReplayError;
use crate::sql::quote_ident;

/// How replay keeps triggers from firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerMode {
    /// `session_replication_role = replica`, plus ALWAYS/REPLICA triggers disabled by name.
    Replica,
    /// `ALTER TABLE ... DISABLE TRIGGER USER` per table (the role owns the tables); the
    /// foreign keys' own cascades still run on the target.
    PerTable,
}

/// A trigger's state before replay touched it (`pg_trigger.tgenabled`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// `"schema"."table"`, quoted.
    pub table: String,
    pub trigger: String,
    /// 'O' enabled, 'D' disabled, 'R' replica, 'A' always.
    pub state: char,
}

impl Saved {
    /// The statement that puts the trigger back as it was.
    pub fn restore_sql(&self) -> String {
        let action = match self.state {
            'D' => "DISABLE TRIGGER",
            'R' => "ENABLE REPLICA TRIGGER",
            'A' => "ENABLE ALWAYS TRIGGER",
            _ => "ENABLE TRIGGER",
        };
        format!(
            "ALTER TABLE ONLY {} {action} {}",
            self.table,
            quote_ident(&self.trigger)
        )
    }
}

/// The triggers replay disabled, to be put back.
#[derive(Debug, Default)]
pub struct Guard {
    pub saved: Vec<Saved>,
    /// Target tables (OIDs) already handled.
    done: HashSet<u32>,
}

/// The user triggers of a table and of its partitions (changes published via a partitioned
/// root fire the partitions' triggers).
const TRIGGERS_SQL: &str = "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
        t.tgname::text, t.tgenabled::text
   FROM (SELECT $1::oid AS relid UNION SELECT relid FROM pg_catalog.pg_partition_tree($1::oid::regclass)) p
   JOIN pg_catalog.pg_class c ON c.oid = p.relid
   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   JOIN pg_catalog.pg_trigger t ON t.tgrelid = c.oid
  WHERE NOT t.tgisinternal
  ORDER BY 1, 2";

/// Try the replica role; a role that may not set it gets the per-table mode.
pub async fn choose_mode(client: &Client) -> Result<TriggerMode, ReplayError> {
    match client
        .batch_execute("SET session_replication_role = replica")
        .await
    {
        Ok(()) => Ok(TriggerMode::Replica),
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => Ok(TriggerMode::PerTable),
        Err(e) => Err(ReplayError::db(
            "setting session_replication_role",
            None,
            &e,
        )),
    }
}

impl Guard {
    /// Silence the triggers of target table `oid` (once per table), recording their states
    /// first. Runs inside the replayed transaction when one is open: a failure rolls the
    /// ALTER back with it, and [`Guard::restore`] puts back the recorded states either way.
    pub async fn silence(
        &mut self,
        client: &Client,
        oid: u32,
        display: &str,
        mode: TriggerMode,
    ) -> Result<(), ReplayError> {
        if !self.done.insert(oid) {
            return Ok(());
        }
        let rows = client.query(TRIGGERS_SQL, &[&oid]).await.map_err(|e| {
            ReplayError::db(&format!("reading the triggers of {display}"), None, &e)
        })?;
        let found: Vec<Saved> = rows
            .iter()
            .map(|r| Saved {
                table: r.get(0),
                trigger: r.get(1),
                state: r.get::<_, String>(2).chars().next().unwrap_or('O'),
            })
            .collect();
        let todo: Vec<Saved> = match mode {
            TriggerMode::Replica => found
                .into_iter()
                .filter(|s| s.state == 'A' || s.state == 'R')
                .collect(),
            TriggerMode::PerTable => found.into_iter().filter(|s| s.state != 'D').collect(),
        };
        for s in todo {
            let sql = format!(
                "ALTER TABLE ONLY {} DISABLE TRIGGER {}",
                s.table,
                quote_ident(&s.trigger)
            );
            // Recorded before it is changed: a failure of the ALTER itself is harmless.
            self.saved.push(s);
            client.batch_execute(&sql).await.map_err(|e| {
                if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
                    ReplayError::Refused {
                        what: format!("cannot disable the triggers of {display}: the applying role does not own it and may not set session_replication_role"),
                        fix: "replay as a superuser, as a role granted SET ON PARAMETER session_replication_role, or as the tables' owner".into(),
                    }
                } else {
                    ReplayError::db(&format!("disabling the triggers of {display}"), None, &e)
                }
            })?;
        }
        Ok(())
    }

    /// Put every recorded trigger back (outside any transaction). Every statement is tried;
    /// the ones that failed are returned for the operator to run.
    pub async fn restore(&mut self, client: &Client) -> Vec<String> {
        let mut failed = Vec::new();
        for s in self.saved.drain(..) {
            let sql = s.restore_sql();
            if client.batch_execute(&sql).await.is_err() {
                failed.push(sql);
            }
        }
        self.done.clear();
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::Saved;

    #[test]
    fn each_recorded_state_is_restored_exactly() {
        let s = |state| Saved {
            table: "\"public\".\"t\"".into(),
            trigger: "Audit".into(),
            state,
        };
        assert_eq!(
            s('O').restore_sql(),
            "ALTER TABLE ONLY \"public\".\"t\" ENABLE TRIGGER \"Audit\""
        );
        assert_eq!(
            s('D').restore_sql(),
            "ALTER TABLE ONLY \"public\".\"t\" DISABLE TRIGGER \"Audit\""
        );
        assert_eq!(
            s('R').restore_sql(),
            "ALTER TABLE ONLY \"public\".\"t\" ENABLE REPLICA TRIGGER \"Audit\""
        );
        assert_eq!(
            s('A').restore_sql(),
            "ALTER TABLE ONLY \"public\".\"t\" ENABLE ALWAYS TRIGGER \"Audit\""
        );
    }
}
