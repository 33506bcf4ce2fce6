//! What `capture enable` checks before it changes anything: each problem named with its fix.

use serde::Serialize;
use tokio_postgres::Client;

use crate::catalog::format::capture::LeftOut;
use crate::error::{PgdrError, Result};

/// The lowest server version: pgwire-replication always asks pgoutput for `messages 'true'`,
/// which PostgreSQL 14 introduced.
pub const MIN_SERVER_VERSION: i32 = 140000;

/// Slots and WAL senders a capture needs: its persistent slot and each backup's temporary one.
const ROOM_NEEDED: i64 = 2;

/// What is never in the change stream, said before anything is set up.
pub const NOT_CAPTURED: &[&str] = &[
    "DDL (schema changes): take a `pgdr backup` right after every migration",
    "sequences (sampled into the stream instead)",
    "large objects (restored as of the dump)",
    "unlogged and temporary tables",
    "materialized views (refreshed after replay)",
];

/// One finding: a failure stops `enable`, a warning does not.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub fatal: bool,
    pub problem: String,
    pub fix: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Preflight {
    pub server_version_num: i32,
    pub findings: Vec<Finding>,
    /// Tables to publish, `schema.table` as SQL writes them, sorted.
    pub tables: Vec<String>,
    pub left_out: Vec<LeftOut>,
}

impl Preflight {
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.fatal)
    }

    /// The first failure as an error, every other finding as a hint.
    pub fn error(&self, database: &str) -> Option<PgdrError> {
        let mut fails = self.failures();
        let first = fails.next()?;
        let mut e = PgdrError::database(format!(
            "capture cannot be enabled for database '{database}': {}",
            first.problem
        ))
        .hint(first.fix.clone());
        for f in fails {
            e = e.hint(format!("also: {}; fix: {}", f.problem, f.fix));
        }
        Some(e)
    }
}

fn fail(problem: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        fatal: true,
        problem: problem.into(),
        fix: fix.into(),
    }
}

fn warn(problem: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        fatal: false,
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// Run every check on the capture role's ordinary connection. `slot_exists`: enabling again
/// needs no new slot.
pub async fn run(client: &Client, slot_exists: bool) -> Result<Preflight> {
    let q = |e: tokio_postgres::Error| PgdrError::database(format!("capture preflight: {e}"));
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int,
                    current_setting('wal_level'),
                    r.rolreplication OR r.rolsuper
                      OR (EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_replication')
                          AND pg_has_role(current_user, 'rds_replication', 'MEMBER')),
                    current_user::text,
                    current_setting('max_replication_slots')::int8
                      - (SELECT count(*) FROM pg_replication_slots),
                    current_setting('max_wal_senders')::int8
                      - (SELECT count(*) FROM pg_stat_replication),
                    current_setting('max_slot_wal_keep_size')
               FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(q)?;
    let version: i32 = row.get(0);
    let wal_level: String = row.get(1);
    let replication: bool = row.get(2);
    let user: String = row.get(3);
    let free_slots: i64 = row.get(4);
    let free_senders: i64 = row.get(5);
    let keep: String = row.get(6);

    let mut findings = server_findings(version, &wal_level);
    if !replication {
        findings.push(fail(
            format!("role '{user}' has no REPLICATION attribute"),
            format!(
                "ALTER ROLE {} REPLICATION; (RDS/Aurora: GRANT rds_replication TO {};)",
                crate::sql::quote_ident(&user),
                crate::sql::quote_ident(&user)
            ),
        ));
    }
    let need = if slot_exists {
        ROOM_NEEDED - 1
    } else {
        ROOM_NEEDED
    };
    if free_slots < need {
        findings.push(fail(
            format!("max_replication_slots has room for {free_slots} more slot(s); capture needs {need} (its slot and each backup's temporary one)"),
            "raise max_replication_slots (restart), or drop unused slots (`pgdr capture doctor` lists pgdr's)",
        ));
    }
    if free_senders < ROOM_NEEDED {
        findings.push(fail(
            format!("max_wal_senders has room for {free_senders} more sender(s); capture needs {ROOM_NEEDED}"),
            "raise max_wal_senders (restart)",
        ));
    }
    if keep == "-1" {
        findings.push(warn(
            "max_slot_wal_keep_size is unbounded (-1): a stalled capture keeps WAL until the server's disk is full",
            "set max_slot_wal_keep_size (e.g. '10GB'): the slot is then invalidated instead, which pgdr records as a gap",
        ));
    }
    let (tables, left_out) = tables(client).await?;
    Ok(Preflight {
        server_version_num: version,
        findings,
        tables,
        left_out,
    })
}

/// Version and wal_level: what only the server's administrator can change.
fn server_findings(version: i32, wal_level: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    if version < MIN_SERVER_VERSION {
        findings.push(fail(
            format!("the server is PostgreSQL {version}; capture needs 14 or newer (pgoutput with logical messages)"),
            "upgrade the server to PostgreSQL 14 or newer",
        ));
    }
    if wal_level != "logical" {
        findings.push(fail(
            format!("wal_level is '{wal_level}', not 'logical'"),
            "set wal_level = logical and restart the server (RDS/Aurora: parameter rds.logical_replication = 1 in the parameter group, then reboot; Cloud SQL: flag cloudsql.logical_decoding = on; Supabase: already on)",
        ));
    }
    findings
}

/// The tables a publication can carry (permanent ordinary and partitioned tables that are not
/// partitions, outside the system schemas and extensions), split by whether they have a
/// replica identity; for those without, the ALTER that would give them one.
pub(crate) async fn tables(client: &Client) -> Result<(Vec<String>, Vec<LeftOut>)> {
    let rows = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname),
                    c.relreplident::text,
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
                    (SELECT format('%I', ic.relname) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                      WHERE i.indrelid = c.oid AND i.indisunique AND i.indimmediate AND i.indpred IS NULL
                        AND i.indexprs IS NULL
                        AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                                          AND a.attnum = ANY (i.indkey) AND NOT a.attnotnull)
                      ORDER BY ic.relname LIMIT 1)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p' AND NOT c.relispartition
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_%'
                AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                  AND d.objid = c.oid AND d.deptype = 'e')
              ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| PgdrError::database(format!("capture preflight: listing tables: {e}")))?;
    let mut tables = Vec::new();
    let mut left_out = Vec::new();
    for r in rows {
        let name: String = r.get(0);
        let ident: String = r.get(1);
        let has_pk: bool = r.get(2);
        let index: Option<String> = r.get(3);
        let reason = match ident.as_str() {
            "d" if !has_pk => "no primary key and the default replica identity",
            "n" => "REPLICA IDENTITY NOTHING",
            _ => {
                tables.push(name);
                continue;
            }
        };
        let fix = match index {
            Some(i) => format!("ALTER TABLE {name} REPLICA IDENTITY USING INDEX {i};"),
            // FULL sends whole old rows (more WAL); a primary key is the better fix where one fits.
            None => format!("ALTER TABLE {name} REPLICA IDENTITY FULL;"),
        };
        left_out.push(LeftOut {
            table: name,
            reason: format!("{reason}: its UPDATEs and DELETEs cannot be captured"),
            fix: Some(fix),
        });
    }
    Ok((tables, left_out))
}
