//! The target's catalog, read once per Relation message: which table a source relation is
//! (by schema and name: OIDs differ between clusters), its columns' types, whether the
//! applying role may write it without row-level security filtering the replay.

use std::collections::HashMap;

use tokio_postgres::Client;

use super::sql::{Col, Table};
use super::ReplayError;
use crate::capture::pgoutput::Relation;
use crate::sql::quote_ident;

/// Type OIDs below this are built in and equal on every cluster (PostgreSQL's
/// `FirstGenbkiObjectId`); pgoutput announces the others with a Type message.
const FIRST_USER_TYPE_OID: u32 = 10_000;

/// What the applying role may do, read once.
#[derive(Debug, Clone, Copy)]
pub struct Role {
    pub superuser: bool,
    pub bypass_rls: bool,
}

impl Role {
    pub async fn read(client: &Client) -> Result<Role, ReplayError> {
        let r = client
            .query_one(
                "SELECT rolsuper, rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = current_user",
                &[],
            )
            .await
            .map_err(|e| ReplayError::db("reading the applying role", None, &e))?;
        Ok(Role {
            superuser: r.get(0),
            bypass_rls: r.get(1),
        })
    }
}

/// A mapped table and what replay needs around it.
#[derive(Debug, Clone)]
pub struct Mapped {
    pub table: Table,
    /// Target tables (OID, name) a delete here reaches through ON DELETE CASCADE foreign
    /// keys, transitively: when the target's own cascade runs (triggers not suppressed), their
    /// stream deletes find the rows already gone, and their triggers must be silenced before
    /// the stream names them.
    pub cascade_children: Vec<(u32, String)>,
}

const TABLE_SQL: &str = "SELECT c.oid, c.relkind = 'p', c.relrowsecurity, c.relforcerowsecurity,
        pg_catalog.pg_has_role(c.relowner, 'USAGE')
   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')";

/// Each column with its type and the base type (through domains) the source announces.
const COLUMNS_SQL: &str = "WITH RECURSIVE cols AS (
   SELECT a.attnum, a.attname::text AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS ty,
          a.attgenerated <> '' AS generated, a.atttypid AS typ, a.attidentity = 'a' AS always
     FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
 ), base AS (
   SELECT attnum, typ AS t FROM cols
   UNION ALL
   SELECT b.attnum, y.typbasetype FROM base b JOIN pg_catalog.pg_type y ON y.oid = b.t
    WHERE y.typtype = 'd'
 )
 SELECT c.name, c.ty, c.generated, c.always, bt.oid, bn.nspname::text, bt.typname::text,
        EXISTS (SELECT 1 FROM pg_catalog.pg_opclass oc JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod
                 WHERE oc.opcdefault AND am.amname IN ('btree', 'hash')
                   AND oc.opcintype = CASE WHEN bt.typcategory = 'A' AND bt.typelem <> 0
                                           THEN bt.typelem ELSE bt.oid END)
          OR (bt.typtype IN ('e', 'r', 'm') AND bt.typcategory <> 'A')
   FROM cols c JOIN base b ON b.attnum = c.attnum
   JOIN pg_catalog.pg_type bt ON bt.oid = b.t AND bt.typtype <> 'd'
   JOIN pg_catalog.pg_namespace bn ON bn.oid = bt.typnamespace
  ORDER BY c.attnum";

const CASCADE_SQL: &str = "WITH RECURSIVE kids AS (
   SELECT f.conrelid FROM pg_catalog.pg_constraint f
    WHERE f.contype = 'f' AND f.confdeltype = 'c'
      AND f.confrelid IN (SELECT $1::oid UNION SELECT relid FROM pg_catalog.pg_partition_tree($1::oid::regclass))
   UNION
   SELECT f.conrelid FROM pg_catalog.pg_constraint f JOIN kids k ON f.confrelid = k.conrelid
    WHERE f.contype = 'f' AND f.confdeltype = 'c'
 )
 SELECT k.conrelid, n.nspname::text || '.' || c.relname::text
   FROM kids k JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace";

/// A target column as the catalog has it.
struct TargetCol {
    ty: String,
    generated: bool,
    identity_always: bool,
    base_oid: u32,
    base_name: (String, String),
    has_eq: bool,
}

/// Map a source Relation onto the target: the table by (schema, name), every column the
/// source sends present on the target, not generated there, of the same (base) type.
pub async fn map(
    client: &Client,
    rel: &Relation,
    types: &HashMap<u32, (String, String)>,
    role: Role,
) -> Result<Mapped, ReplayError> {
    let schema = if rel.namespace.is_empty() {
        "pg_catalog"
    } else {
        rel.namespace.as_str()
    };
    let display = format!("{schema}.{}", rel.name);
    let db =
        |e: tokio_postgres::Error| ReplayError::db(&format!("reading table {display}"), None, &e);
    let rows = client
        .query(TABLE_SQL, &[&schema, &rel.name])
        .await
        .map_err(db)?;
    let Some(row) = rows.first() else {
        return Err(ReplayError::Schema {
            table: display,
            detail: "the table does not exist on the target".into(),
        });
    };
    let oid: u32 = row.get(0);
    let (rls, force, owned): (bool, bool, bool) = (row.get(2), row.get(3), row.get(4));
    // Row-level security would filter or reject replayed rows (row_security = off makes it
    // an error rather than a silent filter; refuse up front, by name).
    if rls && !role.superuser && !role.bypass_rls && (force || !owned) {
        return Err(ReplayError::Refused {
            what: format!(
                "table {display} has row-level security and the applying role does not bypass it"
            ),
            fix: "replay as a superuser or a role with BYPASSRLS (ALTER ROLE ... BYPASSRLS)".into(),
        });
    }
    let mut target: HashMap<String, TargetCol> = HashMap::new();
    for r in client.query(COLUMNS_SQL, &[&oid]).await.map_err(db)? {
        target.insert(
            r.get(0),
            TargetCol {
                ty: r.get(1),
                generated: r.get(2),
                identity_always: r.get(3),
                base_oid: r.get(4),
                base_name: (r.get(5), r.get(6)),
                has_eq: r.get(7),
            },
        );
    }
    let columns = rel
        .columns
        .iter()
        .map(|c| column(&display, c, target.get(&c.name), types))
        .collect::<Result<Vec<_>, _>>()?;
    let cascade_children = client
        .query(CASCADE_SQL, &[&oid])
        .await
        .map_err(db)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let table = Table {
        oid,
        ident: format!("{}.{}", quote_ident(schema), quote_ident(&rel.name)),
        display,
        partitioned: row.get(1),
        key: (0..rel.columns.len())
            .filter(|&i| rel.columns[i].key)
            .collect(),
        full: rel.replica_identity == b'f',
        columns,
    };
    Ok(Mapped {
        table,
        cascade_children,
    })
}

/// One source column against the target's: present, not generated, same type.
fn column(
    table: &str,
    c: &crate::capture::pgoutput::Column,
    t: Option<&TargetCol>,
    types: &HashMap<u32, (String, String)>,
) -> Result<Col, ReplayError> {
    let bad = |detail: String| ReplayError::Schema {
        table: table.to_string(),
        detail,
    };
    let Some(t) = t else {
        return Err(bad(format!(
            "column {} does not exist on the target",
            c.name
        )));
    };
    if t.generated {
        return Err(bad(format!(
            "column {} is generated on the target but sent by the source",
            c.name
        )));
    }
    let same = if c.type_oid < FIRST_USER_TYPE_OID {
        c.type_oid == t.base_oid
    } else {
        let Some((ns, name)) = types.get(&c.type_oid) else {
            return Err(bad(format!(
                "column {}: type OID {} was not announced by a Type message before the Relation",
                c.name, c.type_oid
            )));
        };
        let ns = if ns.is_empty() {
            "pg_catalog"
        } else {
            ns.as_str()
        };
        (ns, name.as_str()) == (t.base_name.0.as_str(), t.base_name.1.as_str())
    };
    if !same {
        return Err(bad(format!(
            "column {} has type {} on the target, another type on the source",
            c.name, t.ty
        )));
    }
    Ok(Col {
        name: c.name.clone(),
        ty: t.ty.clone(),
        has_eq: t.has_eq,
        identity_always: t.identity_always,
    })
}
