//! Changes that touch existing rows: UPDATE and DELETE located by replica identity (a miss
//! is divergence), TRUNCATE with its option bits.

use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;

use super::{text, Applier, Op, TextParam};
use crate::capture::pgoutput::{
    OldTuple, Tuple, Value, TRUNCATE_CASCADE, TRUNCATE_RESTART_IDENTITY,
};
use crate::restore::replay::sql::{self, Locate, Table};
use crate::restore::replay::{ReplayError, TriggerMode};
use crate::source::Lsn;

/// How to find an old row, and the values to find it by.
type Located<'t> = (Locate, Vec<Option<&'t [u8]>>);

impl Applier<'_> {
    /// Where an old row is: key columns (from the old key tuple, else the new row), or every
    /// old column under REPLICA IDENTITY FULL.
    fn locate<'t>(
        &self,
        lsn: Lsn,
        t: &Table,
        old: Option<&'t OldTuple>,
        new: Option<&'t Tuple>,
    ) -> Result<Located<'t>, ReplayError> {
        let (full, tuple) = match (old, new) {
            (Some(OldTuple::Full(o)), _) => (true, o),
            (Some(OldTuple::Key(o)), _) => (false, o),
            (None, Some(n)) => (false, n),
            (None, None) => unreachable!("a delete always has an old tuple"),
        };
        if tuple.len() != t.columns.len() {
            return Err(ReplayError::stream(
                lsn,
                format!(
                    "a row of {} with {} columns, its Relation has {}",
                    t.display,
                    tuple.len(),
                    t.columns.len()
                ),
            ));
        }
        let cols: Vec<usize> = if full {
            (0..tuple.len())
                .filter(|&i| tuple[i] != Value::UnchangedToast)
                .collect()
        } else {
            t.key.clone()
        };
        if cols.is_empty() {
            return Err(ReplayError::stream(
                lsn,
                format!(
                    "a change to {} without a replica identity to locate its row",
                    t.display
                ),
            ));
        }
        let values = cols
            .iter()
            .map(|&c| text(&tuple[c], lsn))
            .collect::<Result<Vec<_>, _>>()?;
        let loc = if full {
            Locate::Full(cols)
        } else {
            Locate::Key(cols)
        };
        Ok((loc, values))
    }

    pub(super) async fn update(
        &mut self,
        lsn: Lsn,
        relid: u32,
        old: Option<OldTuple>,
        new: Tuple,
    ) -> Result<(), ReplayError> {
        let mapped = self.mapped(lsn, relid)?;
        let t = &mapped.table;
        let (loc, where_values) = self.locate(lsn, t, old.as_ref(), Some(&new))?;
        if new.len() != t.columns.len() {
            return Err(ReplayError::stream(
                lsn,
                format!("an update of {} with {} columns", t.display, new.len()),
            ));
        }
        identity_unchanged(lsn, t, old.as_ref(), &new)?;
        // Unchanged TOAST values were not sent: the target keeps its own. An identity
        // ALWAYS column cannot be assigned (and did not change, checked above).
        let set: Vec<usize> = (0..new.len())
            .filter(|&i| new[i] != Value::UnchangedToast && !t.columns[i].identity_always)
            .collect();
        let mut values = set
            .iter()
            .map(|&c| text(&new[c], lsn))
            .collect::<Result<Vec<_>, _>>()?;
        values.extend(where_values.iter().copied());
        let st = self
            .statement(lsn, relid, t, Op::Update(set), Some(loc.clone()))
            .await?;
        let n = self.execute(lsn, &st, &values, t, "update").await?;
        if n == 0 {
            return Err(divergence(lsn, t, &loc, &where_values, "update"));
        }
        self.report.rows_updated += n;
        Ok(())
    }

    pub(super) async fn delete(
        &mut self,
        lsn: Lsn,
        relid: u32,
        old: OldTuple,
    ) -> Result<(), ReplayError> {
        let mapped = self.mapped(lsn, relid)?;
        let t = &mapped.table;
        let (loc, values) = self.locate(lsn, t, Some(&old), None)?;
        let st = self
            .statement(lsn, relid, t, Op::Delete, Some(loc.clone()))
            .await?;
        let n = self.execute(lsn, &st, &values, t, "delete").await?;
        if self.mode == TriggerMode::PerTable {
            // The target's own cascade will empty these tables' matching rows.
            self.cascaded
                .extend(mapped.cascade_children.iter().copied());
        }
        if n == 0 {
            if self.cascaded.contains(&t.oid) {
                self.report.deletes_done_by_cascade += 1;
                return Ok(());
            }
            return Err(divergence(lsn, t, &loc, &values, "delete"));
        }
        self.report.rows_deleted += n;
        Ok(())
    }

    async fn execute(
        &self,
        lsn: Lsn,
        st: &Statement,
        values: &[Option<&[u8]>],
        t: &Table,
        what: &str,
    ) -> Result<u64, ReplayError> {
        let params: Vec<TextParam> = values.iter().map(|v| TextParam(*v)).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        self.client
            .execute(st, &refs)
            .await
            .map_err(|e| ReplayError::db(&format!("{what} on {}", t.display), Some(lsn), &e))
    }

    pub(super) async fn truncate(
        &mut self,
        lsn: Lsn,
        options: u8,
        relids: &[u32],
    ) -> Result<(), ReplayError> {
        let mapped = relids
            .iter()
            .map(|&r| self.mapped(lsn, r))
            .collect::<Result<Vec<_>, _>>()?;
        let tables: Vec<&Table> = mapped.iter().map(|m| &m.table).collect();
        let text = sql::truncate(
            &tables,
            options & TRUNCATE_CASCADE != 0,
            options & TRUNCATE_RESTART_IDENTITY != 0,
        );
        self.client
            .batch_execute(&text)
            .await
            .map_err(|e| ReplayError::db("truncate", Some(lsn), &e))?;
        self.report.tables_truncated += tables.len() as u64;
        Ok(())
    }
}

/// An UPDATE cannot assign an identity ALWAYS column; the source changes one only with
/// `SET col = DEFAULT`, which replay cannot reproduce: say so rather than diverge silently.
fn identity_unchanged(
    lsn: Lsn,
    t: &Table,
    old: Option<&OldTuple>,
    new: &Tuple,
) -> Result<(), ReplayError> {
    let Some(OldTuple::Key(o) | OldTuple::Full(o)) = old else {
        return Ok(());
    };
    for (i, c) in t.columns.iter().enumerate() {
        let was = o.get(i).filter(|v| matches!(v, Value::Text(_)));
        if c.identity_always && was.is_some() && was != new.get(i) {
            return Err(ReplayError::Schema {
                table: t.display.clone(),
                detail: format!("an update at LSN {lsn} changed column {}, GENERATED ALWAYS AS IDENTITY (SET {} = DEFAULT): replay cannot assign it", c.name, c.name),
            });
        }
    }
    Ok(())
}

fn divergence(
    lsn: Lsn,
    t: &Table,
    loc: &Locate,
    values: &[Option<&[u8]>],
    operation: &'static str,
) -> ReplayError {
    ReplayError::Divergence {
        lsn,
        table: t.display.clone(),
        key: sql::describe_key(t, loc.columns(), values),
        operation,
    }
}
