//! `pgdr diff`: a live database against a backup's fingerprint, restoring nothing.
//!
//! Everything is read on one connection inside one REPEATABLE READ, READ ONLY transaction, so
//! the counts, digests and catalog describe one moment even while the application writes.
//! The rows are re-read the way verify re-reads a restored copy ([`super::copy_digest`] under
//! pg_dump's session settings), with the backup's column list: a column added since then
//! does not make every row "changed" (the schema part names the column instead).
//!
//! Sensitive values (setting values, comments) are compared only when the caller revealed
//! them (it holds the age identity); otherwise the live side is sealed the same way as the
//! manifest, so a setting or comment that appeared or vanished is still named, and a changed
//! value is not (the database host should not hold the identity).

use serde::Serialize;
use tokio_postgres::Client;

use crate::catalog::Manifest;
use crate::error::{PgdrError, Result};
use crate::fingerprint::archive::{ArchiveSummary, TableData};
use crate::fingerprint::schema::{self, SchemaFingerprint, SequenceValues};
use crate::sql::quote_ident as qi;

/// What to compare.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// Only these tables (`schema.name`, or a name unique among the backup's tables); empty:
    /// all of them, and the whole schema.
    pub tables: Vec<String>,
    /// Row counts only: no digests (a large database), content is "not compared".
    pub counts_only: bool,
}

/// Whether a table's rows are the ones the backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    Same,
    Changed,
    /// The table is in the backup and gone from the live database.
    Dropped,
    /// The table is in the live database and not in the backup (created since).
    New,
    /// `--counts-only`.
    NotCompared,
}

/// One row of the before/after table.
#[derive(Debug, Clone, Serialize)]
pub struct TableDiff {
    pub table: String,
    /// None for a table created since the backup.
    pub rows_backup: Option<u64>,
    /// None when the table was dropped since the backup.
    pub rows_now: Option<u64>,
    /// `rows_now - rows_backup`.
    pub diff: Option<i64>,
    pub content: Content,
}

impl TableDiff {
    pub fn differs(&self) -> bool {
        matches!(
            self.content,
            Content::Changed | Content::Dropped | Content::New
        ) || self.diff.is_some_and(|d| d != 0)
    }
}

/// What `pgdr diff` found; `cli` renders it.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub database: String,
    pub backup_id: String,
    pub label: Option<String>,
    pub backup_time: chrono::DateTime<chrono::Utc>,
    /// host:port/dbname as user (never a password).
    pub target: String,
    pub counts_only: bool,
    pub tables: Vec<TableDiff>,
    /// Large objects missing or changed (empty with `--counts-only` or `--table`).
    pub large_objects: Vec<String>,
    /// Schema differences in the fingerprint's words, e.g.
    /// `policy "orders_owner" on public.orders: missing now`.
    pub schema: Vec<String>,
    /// Whether setting values and comments were compared, or their names only.
    pub sensitive_values_compared: bool,
    pub identical: bool,
}

/// Compare `db` (live) with `m`'s fingerprint. `revealed`: the sensitive values are in `m`.
pub async fn live(
    db: &crate::config::Database,
    m: &Manifest,
    revealed: bool,
    opts: &DiffOptions,
) -> Result<DiffReport> {
    let fp = m.fingerprint.as_ref().ok_or_else(|| {
        PgdrError::not_found(format!(
            "backup {}/{} has no fingerprint to compare with",
            m.database, m.id
        ))
        .hint("take a new backup with this pgdr and diff against it")
    })?;
    let selected = select_tables(&fp.data, &opts.tables)?;
    let client = crate::source::connect(db).await?;
    client
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL lock_timeout = '30s'",
        )
        .await
        .map_err(|e| db_error("starting the snapshot", &e))?;
    let schema = match &fp.schema {
        Some(expected) => {
            let mut actual = schema::capture(&client).await?;
            if !revealed {
                crate::fingerprint::sensitive::split(&mut actual);
            }
            // Without --table, the whole schema.
            let only: Vec<String> = match opts.tables.is_empty() {
                true => Vec::new(),
                false => selected.iter().map(|t| key(t)).collect(),
            };
            schema_lines(expected, &actual, &only)
        }
        None => Vec::new(),
    };
    client
        .batch_execute(super::COPY_SETTINGS)
        .await
        .map_err(|e| db_error("setting up the row re-read", &e))?;
    let mut tables = Vec::new();
    for t in &selected {
        tables.push(table_diff(&client, t, opts.counts_only).await?);
    }
    // Without --table, the tables created since the backup are rows of the table too.
    if opts.tables.is_empty() {
        for (schema, name) in new_tables(&client, fp).await? {
            tables.push(new_table_diff(&client, &schema, &name).await?);
        }
    }
    let large_objects = if opts.counts_only || !opts.tables.is_empty() {
        Vec::new()
    } else {
        large_object_lines(&client, &fp.data).await?
    };
    // Read only: nothing to keep.
    let _ = client.batch_execute("ROLLBACK").await;
    let identical =
        schema.is_empty() && large_objects.is_empty() && !tables.iter().any(TableDiff::differs);
    Ok(DiffReport {
        database: m.database.clone(),
        backup_id: m.id.to_string(),
        label: m.label.clone(),
        backup_time: m.snapshot.time,
        target: db.describe(),
        counts_only: opts.counts_only,
        tables,
        large_objects,
        schema,
        sensitive_values_compared: revealed,
        identical,
    })
}

fn key(t: &TableData) -> String {
    format!("{}.{}", t.schema, t.name)
}

/// The backup's tables `names` picks (all when empty); an unknown name is a usage error that
/// lists what the backup has, so a typo is not read as "no difference".
fn select_tables<'a>(data: &'a ArchiveSummary, names: &[String]) -> Result<Vec<&'a TableData>> {
    if names.is_empty() {
        return Ok(data.tables.iter().collect());
    }
    let mut out: Vec<&TableData> = Vec::new();
    for n in names {
        let hits: Vec<&TableData> = data
            .tables
            .iter()
            .filter(|t| key(t) == *n || (!n.contains('.') && t.name == *n))
            .collect();
        match hits.as_slice() {
            [t] => {
                if !out.iter().any(|o| std::ptr::eq(*o, *t)) {
                    out.push(t)
                }
            }
            [] => {
                return Err(PgdrError::usage(format!(
                    "--table {n}: the backup has no data for a table of that name"
                ))
                .hint(
                    "name it as SCHEMA.NAME; `pgdr diff` without --table lists the backup's tables",
                ))
            }
            many => {
                let names: Vec<String> = many.iter().map(|t| key(t)).collect();
                return Err(PgdrError::usage(format!(
                    "--table {n}: more than one table has that name ({})",
                    names.join(", ")
                ))
                .hint("name it as SCHEMA.NAME"));
            }
        }
    }
    Ok(out)
}

/// The schema diff in the live database's words; with `tables`, only the lines about them.
fn schema_lines(
    expected: &SchemaFingerprint,
    actual: &SchemaFingerprint,
    tables: &[String],
) -> Vec<String> {
    let opts = schema::DiffOptions {
        // A live database's sequences move on; one behind its backup is still named.
        sequence_values: SequenceValues::NotBehind,
        ..Default::default()
    };
    let (expected, actual) = if tables.is_empty() {
        (expected.clone(), actual.clone())
    } else {
        (only_tables(expected, tables), only_tables(actual, tables))
    };
    schema::diff(&expected, &actual, &opts)
        .iter()
        .map(|l| live_words(l))
        .collect()
}

/// Sections that describe a table or what hangs on it, keyed `schema.table[.name]`.
const TABLE_SECTIONS: &[&str] = &[
    "tables",
    "columns",
    "constraints",
    "triggers",
    "rules",
    "policies",
];

/// `fp` reduced to the objects of `tables` (indexes by their `table` property).
fn only_tables(fp: &SchemaFingerprint, tables: &[String]) -> SchemaFingerprint {
    let mine = |k: &str| {
        tables.iter().any(|t| {
            k == t
                || k.strip_prefix(t.as_str())
                    .is_some_and(|r| r.starts_with('.'))
        })
    };
    let mut out = SchemaFingerprint::default();
    for (section, objects) in &fp.sections {
        let kept = objects.iter().filter(|(k, v)| {
            if section == "indexes" {
                v.get("table")
                    .and_then(|t| t.as_str())
                    .is_some_and(|t| tables.iter().any(|x| x == t))
            } else {
                TABLE_SECTIONS.contains(&section.as_str()) && mine(k)
            }
        });
        out.sections.insert(
            section.clone(),
            kept.map(|(k, v)| (k.clone(), v.clone())).collect(),
        );
    }
    out
}

/// The schema diff speaks of a restored copy ("missing after restore"); here the other side
/// is the live database ("missing now").
fn live_words(line: &str) -> String {
    line.replace(" after restore", " now")
}

/// Count (and unless `counts_only`, digest) one table inside the snapshot.
async fn table_diff(client: &Client, t: &TableData, counts_only: bool) -> Result<TableDiff> {
    let table = key(t);
    // A missing table or column fails its statement, which would abort the snapshot's
    // transaction: each table runs inside a savepoint, undone after such a failure.
    savepoint(client, "SAVEPOINT pgdr_table").await?;
    let rows_now = count(client, t).await?;
    let content = match (rows_now, counts_only) {
        (None, _) => Content::Dropped,
        (Some(_), true) => Content::NotCompared,
        // A column of the backup's list that is gone makes the COPY fail: content changed.
        (Some(_), false) => match super::copy_digest(client, t, None).await? {
            Some(d) if d.rows == t.rows && d.hex() == t.digest => Content::Same,
            Some(_) => Content::Changed,
            None => Content::Dropped,
        },
    };
    let end = match content {
        Content::Dropped => "ROLLBACK TO SAVEPOINT pgdr_table",
        _ => "RELEASE SAVEPOINT pgdr_table",
    };
    savepoint(client, end).await?;
    // The table is there but a column of the backup's is not: its content changed.
    let content = match (content, rows_now) {
        (Content::Dropped, Some(_)) => Content::Changed,
        (c, _) => c,
    };
    Ok(TableDiff {
        table,
        rows_backup: Some(t.rows),
        rows_now,
        diff: rows_now.map(|n| n as i64 - t.rows as i64),
        content,
    })
}

async fn savepoint(client: &Client, sql: &str) -> Result<()> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| db_error("keeping the snapshot", &e))
}

/// `count(*)` of a table, None when it is gone.
async fn count(client: &Client, t: &TableData) -> Result<Option<u64>> {
    count_rel(client, &t.schema, &t.name).await
}

async fn count_rel(client: &Client, schema: &str, name: &str) -> Result<Option<u64>> {
    // ONLY: a partition's rows are counted once, in the partition, as pg_dump dumps them.
    let sql = format!("SELECT count(*) FROM ONLY {}.{}", qi(schema), qi(name));
    match client.query_one(sql.as_str(), &[]).await {
        Ok(r) => Ok(Some(r.get::<_, i64>(0) as u64)),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => Ok(None),
        Err(e) => Err(db_error(
            &format!("counting the rows of {schema}.{name}"),
            &e,
        )),
    }
}

/// Tables with rows of their own (partitions, not their parents) that the live database has
/// and the backup does not: neither data nor, in its schema fingerprint, the table itself.
/// The tables pg_dump would dump: not in a system schema, not an extension's member.
async fn new_tables(
    client: &Client,
    fp: &crate::fingerprint::Fingerprint,
) -> Result<Vec<(String, String)>> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                                 WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                   AND e.objid = c.oid AND e.deptype = 'e')
              ORDER BY n.nspname COLLATE \"C\", c.relname COLLATE \"C\"",
            &[],
        )
        .await
        .map_err(|e| db_error("listing the live tables", &e))?;
    let in_schema = |k: &str| {
        fp.schema
            .as_ref()
            .and_then(|s| s.sections.get("tables"))
            .is_some_and(|t| t.contains_key(k))
    };
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .filter(|(s, n)| {
            !fp.data
                .tables
                .iter()
                .any(|t| t.schema == *s && t.name == *n)
                && !in_schema(&format!("{s}.{n}"))
        })
        .collect())
}

/// A table created since the backup: its rows now, nothing to compare them with.
async fn new_table_diff(client: &Client, schema: &str, name: &str) -> Result<TableDiff> {
    Ok(TableDiff {
        table: format!("{schema}.{name}"),
        rows_backup: None,
        rows_now: count_rel(client, schema, name).await?,
        diff: None,
        content: Content::New,
    })
}

/// Large objects of the backup that are gone or differ now.
async fn large_object_lines(client: &Client, data: &ArchiveSummary) -> Result<Vec<String>> {
    if data.large_objects.is_empty() {
        return Ok(Vec::new());
    }
    let mut found = super::DataDigests::default();
    super::large_object_digests(client, data, &mut found).await?;
    let empty = ArchiveSummary {
        tables: Vec::new(),
        ..data.clone()
    };
    Ok(super::compare_data(&empty, &found, "now"))
}

fn db_error(doing: &str, e: &tokio_postgres::Error) -> PgdrError {
    PgdrError::database(format!("{doing}: {}", crate::restore::db_message(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(tables: &[(&str, &str)]) -> ArchiveSummary {
        let t: Vec<_> = tables
            .iter()
            .map(|(s, n)| {
                json!({"dump_id": 1, "schema": s, "name": n, "columns": ["id"],
                       "copy_statement": "", "rows": 1, "digest": "00", "bytes": 1})
            })
            .collect();
        serde_json::from_value(json!({"version": "1", "database": "app",
            "server_version": "15", "pg_dump_version": "15", "encoding": null,
            "toc_entries": 0, "tables": t, "large_objects": []}))
        .unwrap()
    }

    #[test]
    fn tables_are_picked_by_qualified_or_unique_name() {
        let s = summary(&[("public", "orders"), ("auth", "users"), ("public", "users")]);
        let got = select_tables(&s, &["orders".into(), "auth.users".into()]).unwrap();
        let names: Vec<String> = got.iter().map(|t| key(t)).collect();
        assert_eq!(names, ["public.orders", "auth.users"]);
        assert_eq!(select_tables(&s, &[]).unwrap().len(), 3);
    }

    #[test]
    fn unknown_or_ambiguous_table_is_a_named_usage_error() {
        let s = summary(&[("auth", "users"), ("public", "users")]);
        let e = select_tables(&s, &["nosuch".into()]).unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Usage);
        assert!(e.message.contains("--table nosuch"), "{}", e.message);
        let e = select_tables(&s, &["users".into()]).unwrap_err();
        assert!(
            e.message.contains("auth.users, public.users"),
            "{}",
            e.message
        );
    }

    #[test]
    fn only_tables_keeps_the_objects_of_those_tables() {
        let fp = SchemaFingerprint {
            sections: serde_json::from_value(json!({
                "tables": {"public.orders": {}, "public.orders2": {}},
                "policies": {"public.orders.p": {}, "public.profiles.q": {}},
                "indexes": {"public.o_idx": {"table": "public.orders"},
                            "public.p_idx": {"table": "public.profiles"}},
                "functions": {"public.f()": {}}
            }))
            .unwrap(),
        };
        let got = only_tables(&fp, &["public.orders".into()]);
        let keys = |s: &str| got.sections[s].keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys("tables"), ["public.orders"]);
        assert_eq!(keys("policies"), ["public.orders.p"]);
        assert_eq!(keys("indexes"), ["public.o_idx"]);
        assert!(keys("functions").is_empty());
    }

    #[test]
    fn lines_speak_of_now() {
        assert_eq!(
            live_words("policy \"p\" on public.t: missing after restore"),
            "policy \"p\" on public.t: missing now"
        );
        assert_eq!(
            live_words("value 5 in backup, 1 after restore"),
            "value 5 in backup, 1 now"
        );
    }
}
