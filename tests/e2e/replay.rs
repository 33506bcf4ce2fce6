//! Replay of a decoded change stream onto a copy of the source taken before the stream began
//! (`CREATE DATABASE copy TEMPLATE src`, then the slot): after replay the copy must equal the
//! source, table by table, by this test's own digest (`COPY ... TO STDOUT` hashed here, not
//! pgdr's fingerprint code). The stream is read with `pg_logical_slot_get_binary_changes`, a
//! test-only reader; pgdr's decoder and applier do the rest.

use std::collections::BTreeMap;
use std::str::FromStr;

use futures::StreamExt;
use pgdr::capture::pgoutput::{decode, Message};
use pgdr::restore::replay::{replay, Bounds, ReplayError, ReplayReport, Stop, TriggerMode};
use pgdr::source::Lsn;
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, NoTls};

use crate::common::*;

const TABLES: &[&str] = &[
    "accounts",
    "orders",
    "order_lines",
    "events",
    "metrics",
    "audit",
];

const SCHEMA: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE accounts (
  id bigint PRIMARY KEY, owner text NOT NULL, mood mood, balance numeric(12,2) NOT NULL,
  doc text, twice numeric GENERATED ALWAYS AS (balance * 2) STORED);
CREATE TABLE orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  amount posint NOT NULL, note text);
CREATE TABLE order_lines (
  order_id bigint REFERENCES orders (id) ON DELETE CASCADE, line int, qty int,
  PRIMARY KEY (order_id, line));
CREATE TABLE events (kind text, payload json, at point, n int);
ALTER TABLE events REPLICA IDENTITY FULL;
CREATE TABLE metrics (region text NOT NULL, id int NOT NULL, v int, PRIMARY KEY (region, id))
  PARTITION BY LIST (region);
CREATE TABLE metrics_eu PARTITION OF metrics FOR VALUES IN ('eu');
CREATE TABLE metrics_us PARTITION OF metrics FOR VALUES IN ('us');
CREATE TABLE audit (id bigserial PRIMARY KEY, what text NOT NULL);
CREATE FUNCTION audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN INSERT INTO audit (what) VALUES (TG_TABLE_NAME || ':' || TG_OP); RETURN NULL; END $$;
CREATE TRIGGER orders_audit AFTER INSERT OR DELETE ON orders
  FOR EACH ROW EXECUTE FUNCTION audit_fn();
CREATE TRIGGER lines_audit AFTER INSERT ON order_lines FOR EACH ROW EXECUTE FUNCTION audit_fn();
ALTER TABLE order_lines ENABLE ALWAYS TRIGGER lines_audit;
CREATE TRIGGER metrics_audit AFTER INSERT OR UPDATE ON metrics
  FOR EACH ROW EXECUTE FUNCTION audit_fn();
INSERT INTO accounts (id, owner, mood, balance, doc)
  SELECT i, 'owner ' || i, 'ok', i * 10, CASE WHEN i % 3 = 0 THEN
    (SELECT string_agg(md5(random()::text || j), '') FROM generate_series(1, 600) j) END
  FROM generate_series(1, 30) i;
INSERT INTO orders (account_id, amount) SELECT 1 + i % 30, i FROM generate_series(1, 60) i;
INSERT INTO order_lines SELECT o, l, l FROM generate_series(1, 60) o, generate_series(1, 3) l;
INSERT INTO events VALUES ('dup', '{"a": 1}', '(1,2)', 1), ('dup', '{"a": 1}', '(1,2)', 1),
  ('dup', '{"a": 1}', '(1,2)', 1), ('one', NULL, NULL, NULL);
INSERT INTO metrics SELECT CASE WHEN i % 2 = 0 THEN 'eu' ELSE 'us' END, i, i
  FROM generate_series(1, 40) i;
CREATE PUBLICATION pub FOR TABLE accounts, orders, order_lines, events, metrics, audit
  WITH (publish_via_partition_root = true);
"#;

/// A client of the cluster as `user` (NoTls: the test clusters listen on loopback).
async fn client(pg: &Pg, db: &str, user: &str) -> Client {
    let url = format!("postgres://{user}:{PG_PASSWORD}@127.0.0.1:{}/{db}", pg.port);
    let (c, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);
    c
}

/// The source database with the schema above, `copies` made from it while idle, and the slot.
fn setup(pg: &Pg, copies: &[&str]) {
    pg.create_db("src");
    pg.psql("src", SCHEMA);
    for c in copies {
        pg.psql("postgres", &format!("CREATE DATABASE {c} TEMPLATE src"));
    }
    pg.psql(
        "src",
        "SELECT pg_create_logical_replication_slot('s', 'pgoutput')",
    );
}

/// Per table: row count and sha256 of `COPY (SELECT * ORDER BY the row) TO STDOUT`.
async fn digest(c: &Client) -> BTreeMap<String, (u64, String)> {
    c.batch_execute("SET TimeZone = 'UTC'; SET extra_float_digits = 3")
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for t in TABLES {
        let sql = format!("COPY (SELECT * FROM {t} ORDER BY {t}::text) TO STDOUT");
        let stream = c.copy_out(&sql).await.unwrap();
        let mut stream = std::pin::pin!(stream);
        let (mut h, mut rows) = (Sha256::new(), 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
            h.update(&chunk);
        }
        out.insert(t.to_string(), (rows, hex::encode(h.finalize())));
    }
    out
}

/// The slot's changes, decoded by pgdr, with their LSNs (session pinned as the capture pins it).
async fn changes(c: &Client) -> Vec<(Lsn, Message)> {
    c.batch_execute(
        "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; \
         SET TimeZone = 'UTC'; SET bytea_output = hex",
    )
    .await
    .unwrap();
    let rows = c
        .query(
            "SELECT lsn::text, data FROM pg_logical_slot_get_binary_changes('s', NULL, NULL, \
             'proto_version', '1', 'publication_names', 'pub', 'messages', 'true')",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let lsn = Lsn::from_str(r.get::<_, &str>(0)).unwrap();
            (lsn, decode(r.get::<_, &[u8]>(1)).unwrap())
        })
        .collect()
}

fn stream(
    msgs: &[(Lsn, Message)],
) -> impl futures::Stream<Item = Result<(Lsn, Message), pgdr::error::PgdrError>> + '_ {
    futures::stream::iter(msgs.iter().cloned().map(Ok))
}

/// One random transaction of the workload (savepoints rolled back, TOAST left untouched,
/// duplicates in the FULL table, cascades, cross-partition moves).
fn random_txn(rng: &mut fastrand::Rng, next_account: &mut i64) -> String {
    let a = rng.i64(1..*next_account);
    let mut s = String::from("BEGIN;");
    for _ in 0..rng.usize(1..5) {
        s += &match rng.u8(0..11) {
            0 => {
                *next_account += 1;
                format!(
                    "INSERT INTO accounts (id, owner, mood, balance, doc) VALUES ({0}, 'new {0}', 'happy', 1, \
                     (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 500)));",
                    *next_account
                )
            }
            1 => format!("UPDATE accounts SET balance = balance + 1.25, mood = 'sad' WHERE id = {a};"),
            2 => format!(
                "WITH o AS (INSERT INTO orders (account_id, amount, note) SELECT id, {0}, E'tab\\there' \
                 FROM accounts WHERE id = {a} RETURNING id) \
                 INSERT INTO order_lines SELECT o.id, l, l * 2 FROM o, generate_series(1, {0}) l;",
                rng.u8(1..6)
            ),
            3 => format!("UPDATE orders SET amount = amount + 1 WHERE account_id = {a};"),
            4 => format!("DELETE FROM orders WHERE id IN (SELECT id FROM orders WHERE account_id = {a} LIMIT 1);"),
            5 if rng.u8(0..4) == 0 => format!("DELETE FROM accounts WHERE id = {a};"),
            6 => "INSERT INTO events VALUES ('dup', '{\"a\": 1}', '(1,2)', 1);".into(),
            7 => format!(
                "UPDATE events SET n = {0} WHERE ctid = (SELECT ctid FROM events WHERE kind = 'dup' LIMIT 1);\
                 DELETE FROM events WHERE ctid = (SELECT ctid FROM events WHERE n = {0} LIMIT 1);",
                rng.u8(2..9)
            ),
            8 => format!(
                "UPDATE metrics SET region = CASE region WHEN 'eu' THEN 'us' ELSE 'eu' END, v = v + 1 \
                 WHERE id = {};",
                rng.i32(1..41)
            ),
            9 => format!(
                "SAVEPOINT p; INSERT INTO accounts (id, owner, balance) VALUES ({}, 'rolled back', 0); \
                 ROLLBACK TO SAVEPOINT p; UPDATE metrics SET v = v * 2 WHERE id = {};",
                1_000_000 + rng.i64(0..1000),
                rng.i32(1..41)
            ),
            _ => format!("UPDATE accounts SET owner = owner || '.' WHERE id = {a};"),
        };
    }
    s + "COMMIT;"
}

async fn workload(c: &Client, rng: &mut fastrand::Rng, next: &mut i64, txns: usize) {
    for _ in 0..txns {
        let sql = random_txn(rng, next);
        c.batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
}

fn print_rate(what: &str, r: &ReplayReport) {
    eprintln!(
        "replay {what}: {} txns, {} rows in {:.3}s: {:.0} rows/s, {:.0} txn/s ({:?})",
        r.transactions,
        r.rows(),
        r.elapsed_secs,
        r.rows_per_sec(),
        r.transactions_per_sec(),
        r.trigger_mode
    );
}

/// The full workload, replayed twice: up to an LSN in the middle (the source's state there
/// captured with the workload paused), then from there to the end. Each time the copy equals
/// the source; audit rows (written by triggers) are not doubled; the ALWAYS trigger is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reproduces_the_source_and_stops_at_an_lsn() {
    let pg = Pg::start_logical();
    setup(&pg, &["copy"]);
    let seed = fastrand::u64(..);
    eprintln!("workload seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let src = client(&pg, "src", "postgres").await;
    let mut next = 30;
    workload(&src, &mut rng, &mut next, 150).await;
    // A TRUNCATE with its option bits, then rows again.
    src.batch_execute(
        "TRUNCATE events RESTART IDENTITY; INSERT INTO events VALUES ('dup', '[1,2]', '(0,0)', 7), ('dup', '[1,2]', '(0,0)', 7);",
    )
    .await
    .unwrap();
    let mid: String = src
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let mid = Lsn::from_str(&mid).unwrap();
    let at_mid = digest(&src).await;
    workload(&src, &mut rng, &mut next, 250).await;
    // One big transaction: long runs of inserts (orders, then the trigger's audit rows).
    src.batch_execute(
        "INSERT INTO orders (account_id, amount) SELECT (SELECT min(id) FROM accounts), i FROM generate_series(1, 20000) i",
    )
    .await
    .unwrap();
    let at_end = digest(&src).await;
    let msgs = changes(&src).await;
    // The stream holds the hard cases (else the comparison below proves less than it says).
    let has = |f: &dyn Fn(&Message) -> bool| msgs.iter().any(|(_, m)| f(m));
    use pgdr::capture::pgoutput::{OldTuple, Value};
    assert!(has(&|m| matches!(m, Message::Type { .. })));
    assert!(has(
        &|m| matches!(m, Message::Truncate { options, .. } if *options != 0)
    ));
    assert!(has(
        &|m| matches!(m, Message::Update { new, .. } if new.contains(&Value::UnchangedToast))
    ));
    assert!(has(&|m| matches!(
        m,
        Message::Delete {
            old: OldTuple::Full(_),
            ..
        }
    )));
    assert!(has(&|m| matches!(
        m,
        Message::Update {
            old: Some(OldTuple::Full(_)),
            ..
        }
    )));

    let copy = client(&pg, "copy", "postgres").await;
    let bounds = Bounds {
        from: None,
        stop: Stop::Lsn(mid),
    };
    let r = replay(&copy, stream(&msgs), bounds).await.unwrap();
    print_rate("to the middle", &r);
    assert_eq!(r.trigger_mode, Some(TriggerMode::Replica));
    let last = r.last_applied.expect("applied something");
    let next_txn = r.first_not_applied.expect("stopped before the end");
    assert!(last.lsn <= mid && next_txn.lsn > mid, "{r:?}");
    assert_eq!(digest(&copy).await, at_mid);

    let bounds = Bounds {
        from: Some(next_txn.lsn),
        stop: Stop::End,
    };
    let r2 = replay(&copy, stream(&msgs), bounds).await.unwrap();
    print_rate("to the end", &r2);
    assert_eq!(r2.skipped_transactions, r.transactions);
    assert!(r2.rows_inserted >= 40_000, "{r2:?}");
    assert_eq!(digest(&copy).await, at_end);
    assert_eq!(
        pg.psql(
            "copy",
            "SELECT tgenabled FROM pg_trigger WHERE tgname = 'lines_audit'"
        ),
        "A"
    );
}

/// A row deleted on the target before replay: the update or delete that looks for it stops
/// replay, naming the LSN of that change, the table and the key; its transaction is rolled
/// back, the ones before stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_stops_at_divergence_naming_lsn_table_and_key() {
    let pg = Pg::start_logical();
    setup(&pg, &["copy"]);
    // No trigger fires on this delete (a cascade would write audit rows of its own).
    pg.psql("copy", "DELETE FROM metrics WHERE id = 7");
    let src = client(&pg, "src", "postgres").await;
    src.batch_execute("UPDATE accounts SET balance = 1 WHERE id = 1")
        .await
        .unwrap();
    src.batch_execute(
        "BEGIN; INSERT INTO metrics VALUES ('eu', 100, 1); UPDATE metrics SET v = 2 WHERE id = 7; COMMIT;",
    )
    .await
    .unwrap();
    let msgs = changes(&src).await;
    let lsn_of_update = msgs
        .iter()
        .filter(|(_, m)| matches!(m, Message::Update { .. }))
        .nth(1)
        .expect("two updates")
        .0;
    let copy = client(&pg, "copy", "postgres").await;
    let f = replay(&copy, stream(&msgs), Bounds::default())
        .await
        .unwrap_err();
    match &f.error {
        ReplayError::Divergence {
            lsn, table, key, ..
        } => {
            assert_eq!(*lsn, lsn_of_update);
            assert_eq!(table, "public.metrics");
            assert_eq!(key, "(region, id)=(us, 7)");
        }
        other => panic!("not a divergence: {other}"),
    }
    let msg = f.error.to_string();
    assert!(
        msg.starts_with(&format!(
            "divergence at LSN {lsn_of_update}, table public.metrics, key (region, id)=(us, 7)"
        )),
        "{msg}"
    );
    assert_eq!(f.report.transactions, 1);
    assert_eq!(
        pg.psql("copy", "SELECT balance FROM accounts WHERE id = 1"),
        "1.00"
    );
    assert_eq!(
        pg.psql("copy", "SELECT count(*) FROM metrics WHERE id = 100"),
        "0"
    );
}

/// The pipelined path: a zero-row UPDATE in the middle of a transaction whose other
/// statements (before and after it, already sent when its answer is read) all succeed.
/// Nothing of that transaction is committed, the error names the update's LSN, table and key,
/// the transaction before it stays, and the session is left outside any transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_divergence_mid_transaction_commits_nothing_of_it() {
    let pg = Pg::start_logical();
    setup(&pg, &["copy"]);
    pg.psql("copy", "DELETE FROM metrics WHERE id = 7");
    let src = client(&pg, "src", "postgres").await;
    // The first transaction makes every statement and relation known, so the second one's
    // answers are read only where its COMMIT would go out (no other sync point).
    for sql in [
        "BEGIN; UPDATE accounts SET balance = 1 WHERE id = 1; \
         INSERT INTO metrics VALUES ('eu', 99, 1); UPDATE metrics SET v = 2 WHERE id = 8; \
         DELETE FROM order_lines WHERE order_id = 4 AND line = 1; COMMIT",
        "BEGIN; UPDATE accounts SET balance = 2 WHERE id = 2; \
         INSERT INTO metrics VALUES ('eu', 100, 1); \
         UPDATE metrics SET v = 2 WHERE id = 7; \
         UPDATE accounts SET balance = 4 WHERE id = 4; \
         DELETE FROM order_lines WHERE order_id = 5 AND line = 1; \
         INSERT INTO metrics VALUES ('eu', 102, 1); COMMIT",
        "UPDATE accounts SET balance = 5 WHERE id = 5",
    ] {
        src.batch_execute(sql).await.unwrap();
    }
    let msgs = changes(&src).await;
    let (lsn_of_update, _) = msgs
        .iter()
        .filter(|(_, m)| matches!(m, Message::Update { new, .. } if new.len() == 3))
        .nth(1)
        .expect("the second update of metrics");
    let copy = client(&pg, "copy", "postgres").await;
    let f = replay(&copy, stream(&msgs), Bounds::default())
        .await
        .unwrap_err();
    let msg = f.error.to_string();
    assert!(
        msg.starts_with(&format!(
            "divergence at LSN {lsn_of_update}, table public.metrics, key (region, id)=(us, 7)"
        )),
        "{msg}"
    );
    assert_eq!(f.report.transactions, 1, "{:?}", f.report);
    assert_eq!(
        f.report.last_applied.map(|c| c.lsn < *lsn_of_update),
        Some(true)
    );
    assert_eq!(
        pg.psql(
            "copy",
            "SELECT string_agg(id || '=' || balance, ' ' ORDER BY id) FROM accounts WHERE id IN (1, 2, 4, 5)"
        ),
        "1=1.00 2=20.00 4=40.00 5=50.00"
    );
    assert_eq!(
        pg.psql(
            "copy",
            "SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM metrics WHERE id >= 99) || '/' || \
             (SELECT string_agg(order_id::text, ',' ORDER BY order_id) FROM order_lines \
              WHERE order_id IN (4, 5) AND line = 1)"
        ),
        "99/5"
    );
    // Rolled back, not left open (an open transaction would hold the statements' locks and
    // take the trigger restore down with it).
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'copy' AND state LIKE 'idle in transaction%'"
        ),
        "0"
    );
    let open: i64 = copy
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE relation = 'metrics'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 0);
}

const TRIGGER_STATES: &str = "SELECT string_agg(tgrelid::regclass::text || '.' || tgname || '=' || tgenabled::text, ' ' ORDER BY tgrelid::regclass::text, tgname) \
     FROM pg_trigger WHERE NOT tgisinternal";

/// A role `admin`, no superuser, owning every table of `dbs` (a managed service's admin).
fn owned_by_admin(pg: &Pg, dbs: &[&str]) {
    pg.psql(
        "postgres",
        &format!("CREATE ROLE admin LOGIN NOSUPERUSER BYPASSRLS PASSWORD '{PG_PASSWORD}'"),
    );
    for db in dbs {
        pg.psql(
            db,
            "DO $$ DECLARE r record; BEGIN FOR r IN SELECT c.oid::regclass AS t FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' \
             AND c.relkind IN ('r', 'p') LOOP EXECUTE format('ALTER TABLE %s OWNER TO admin', r.t); \
             END LOOP; END $$;",
        );
    }
}

/// Per-table mode, the target's own cascade reaching a table before the stream names it (the
/// first change deletes an account; its orders' delete trigger would write audit rows the
/// stream brings too): the cascade's tables are silenced with the table that cascades.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_as_table_owner_silences_tables_a_cascade_reaches_first() {
    let pg = Pg::start_logical();
    setup(&pg, &["copy"]);
    owned_by_admin(&pg, &["copy"]);
    let src = client(&pg, "src", "postgres").await;
    src.batch_execute("DELETE FROM accounts WHERE id = 2")
        .await
        .unwrap();
    let at_end = digest(&src).await;
    let msgs = changes(&src).await;
    let copy = client(&pg, "copy", "admin").await;
    let r = replay(&copy, stream(&msgs), Bounds::default())
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
    assert_eq!(r.trigger_mode, Some(TriggerMode::PerTable));
    assert!(r.deletes_done_by_cascade >= 2, "{r:?}");
    assert_eq!(digest(&copy).await, at_end);
}

/// A target where the replaying role is no superuser but owns the tables (a managed
/// service): triggers are disabled per table and put back exactly as they were, after a
/// complete replay (which must still equal the source, the foreign keys' own cascades
/// running on the target) and after a failed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_as_table_owner_puts_trigger_states_back_after_a_failure() {
    let pg = Pg::start_logical();
    setup(&pg, &["good", "bad"]);
    owned_by_admin(&pg, &["good", "bad"]);
    for db in ["good", "bad"] {
        pg.psql(
            db,
            "ALTER TABLE metrics_us ENABLE REPLICA TRIGGER metrics_audit; \
             CREATE TRIGGER off_audit AFTER INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION audit_fn(); \
             ALTER TABLE accounts DISABLE TRIGGER off_audit;",
        );
    }
    let before = pg.psql("good", TRIGGER_STATES);
    assert!(
        before.contains("accounts.off_audit=D") && before.contains("=R"),
        "{before}"
    );
    let src = client(&pg, "src", "postgres").await;
    let mut rng = fastrand::Rng::with_seed(fastrand::u64(..));
    let mut next = 30;
    workload(&src, &mut rng, &mut next, 150).await;
    src.batch_execute("DELETE FROM accounts WHERE id IN (2, 3, 4)")
        .await
        .unwrap();
    let at_end = digest(&src).await;
    let msgs = changes(&src).await;

    let good = client(&pg, "good", "admin").await;
    let r = replay(&good, stream(&msgs), Bounds::default())
        .await
        .unwrap();
    print_rate("as owner", &r);
    assert_eq!(r.trigger_mode, Some(TriggerMode::PerTable));
    assert!(r.deletes_done_by_cascade > 0, "{r:?}");
    assert!(r.triggers_not_restored.is_empty(), "{r:?}");
    assert_eq!(digest(&good).await, at_end);
    assert_eq!(pg.psql("good", TRIGGER_STATES), before);

    pg.psql("bad", "DELETE FROM events WHERE kind = 'one'");
    src.batch_execute("DELETE FROM events WHERE kind = 'one'")
        .await
        .unwrap();
    let after_delete = digest(&src).await;
    let more = changes(&src).await;
    let all: Vec<_> = msgs.into_iter().chain(more).collect();
    let bad = client(&pg, "bad", "admin").await;
    let f = replay(&bad, stream(&all), Bounds::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&f.error, ReplayError::Divergence { table, .. } if table == "public.events"),
        "{}",
        f.error
    );
    assert_eq!(f.report.trigger_mode, Some(TriggerMode::PerTable));
    assert!(f.report.triggers_not_restored.is_empty(), "{:?}", f.report);
    assert_eq!(pg.psql("bad", TRIGGER_STATES), before);
    // Everything before the failing transaction applied (the row it wanted was already gone).
    assert_eq!(digest(&bad).await, after_delete);
}
