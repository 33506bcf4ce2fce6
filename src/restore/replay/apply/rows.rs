//! Changes that touch existing rows: UPDATE and DELETE located by replica identity (a miss
//! is divergence), TRUNCATE with its option bits.

use futures::FutureExt;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::pipe::Outcome;
use super::{text, Applier, Op, TextParam};
use crate::capture::pgoutput::{
    OldTuple, Tuple, Value, TRUNCATE_CASCADE, TRUNCATE_RESTART_IDENTITY,
};
use crate::restore::replay::sql::{self, Locate, Table};
use crate::restore::replay::{ReplayError, TriggerMode};
use crate::source::Lsn;

impl<'c> Applier<'c> {
    /// Where an old row is: key columns (from the old key tuple, else the new row), or every
    /// old column under REPLICA IDENTITY FULL. The values are read later from the tuple
    /// `locate_tuple` picks (the statement's future owns the tuples).
    fn locate(
        &self,
        lsn: Lsn,
        t: &Table,
        old: Option<&OldTuple>,
        new: Option<&Tuple>,
    ) -> Result<Locate, ReplayError> {
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
        Ok(if full {
            Locate::Full(cols)
        } else {
            Locate::Key(cols)
        })
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
        let loc = self.locate(lsn, t, old.as_ref(), Some(&new))?;
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
        let st = self
            .statement(lsn, relid, t, Op::Update(set.clone()), Some(loc.clone()))
            .await?;
        let bytes = tuple_bytes(&new) + old.as_ref().map_or(0, |o| tuple_bytes(old_tuple(o)));
        let client = self.client;
        let update = async move {
            let t = &mapped.table;
            let where_values = located(lsn, &loc, locate_tuple(old.as_ref(), &new))?;
            let mut values = set
                .iter()
                .map(|&c| text(&new[c], lsn))
                .collect::<Result<Vec<_>, _>>()?;
            values.extend(where_values.iter().copied());
            match execute(client, lsn, &st, &values, t, "update").await? {
                0 => Err(divergence(lsn, t, &loc, &where_values, "update")),
                n => Ok(Outcome::Updated(n)),
            }
        };
        self.send(update.boxed(), bytes).await
    }

    pub(super) async fn delete(
        &mut self,
        lsn: Lsn,
        relid: u32,
        old: OldTuple,
    ) -> Result<(), ReplayError> {
        let mapped = self.mapped(lsn, relid)?;
        let t = &mapped.table;
        let loc = self.locate(lsn, t, Some(&old), None)?;
        let st = self
            .statement(lsn, relid, t, Op::Delete, Some(loc.clone()))
            .await?;
        if self.mode == TriggerMode::PerTable {
            // The target's own cascade will empty these tables' matching rows.
            self.cascaded
                .extend(mapped.cascade_children.iter().map(|(oid, _)| *oid));
        }
        // Known now, in stream order: the cascades of the deletes sent before this one.
        let by_cascade = self.cascaded.contains(&t.oid);
        let bytes = tuple_bytes(old_tuple(&old));
        let client = self.client;
        let delete = async move {
            let t = &mapped.table;
            let values = located(lsn, &loc, old_tuple(&old))?;
            match execute(client, lsn, &st, &values, t, "delete").await? {
                0 if by_cascade => Ok(Outcome::DeleteDoneByCascade),
                0 => Err(divergence(lsn, t, &loc, &values, "delete")),
                n => Ok(Outcome::Deleted(n)),
            }
        };
        self.send(delete.boxed(), bytes).await
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
        self.drain().await?;
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

/// The tuple an old row is located by: the old key or row when sent, else the new row (the
/// key did not change).
fn locate_tuple<'t>(old: Option<&'t OldTuple>, new: &'t Tuple) -> &'t Tuple {
    old.map_or(new, old_tuple)
}

fn old_tuple(old: &OldTuple) -> &Tuple {
    match old {
        OldTuple::Key(t) | OldTuple::Full(t) => t,
    }
}

/// The locating values, as text.
fn located<'t>(
    lsn: Lsn,
    loc: &Locate,
    tuple: &'t Tuple,
) -> Result<Vec<Option<&'t [u8]>>, ReplayError> {
    loc.columns()
        .iter()
        .map(|&c| text(&tuple[c], lsn))
        .collect()
}

/// What a tuple holds in memory, roughly (the pipeline's bound).
fn tuple_bytes(t: &Tuple) -> usize {
    t.iter()
        .map(|v| match v {
            Value::Text(b) | Value::Binary(b) => b.len() + 1,
            _ => 3,
        })
        .sum()
}

async fn execute(
    client: &Client,
    lsn: Lsn,
    st: &Statement,
    values: &[Option<&[u8]>],
    t: &Table,
    what: &str,
) -> Result<u64, ReplayError> {
    let params: Vec<TextParam> = values.iter().map(|v| TextParam(*v)).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    client
        .execute(st, &refs)
        .await
        .map_err(|e| ReplayError::db(&format!("{what} on {}", t.display), Some(lsn), &e))
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
