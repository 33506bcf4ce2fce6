//! The change-stream transport against a real server: what pgdr's `ChangeSource` yields over
//! the replication protocol must be, message for message and byte for byte, what the SQL
//! interface (`pg_logical_slot_peek_binary_changes`, an independent oracle) returns for the
//! same slot position; and the slot moves only when pgdr acknowledges.

use std::time::Duration;

use pgdr::source::replication::{self, ReplicationStream};
use pgdr::source::{Change, ChangeSource, Lsn};

use crate::common::*;

fn database(pg: &Pg, db: &str) -> pgdr::config::Database {
    let settings = pgdr::config::Settings::load(&pgdr::config::Overrides {
        source: Some(pg.url(db)),
        repo: Some("/tmp/pgdr-replication-test-repo".into()),
        ..Default::default()
    })
    .unwrap();
    settings.databases[0].clone()
}

/// A database whose defaults differ from every pinned setting, so the stream's value text
/// shows the pins took effect.
fn setup(pg: &Pg) {
    pg.create_db("app");
    pg.psql(
        "postgres",
        "ALTER DATABASE app SET timezone = 'Asia/Tokyo';
         ALTER DATABASE app SET datestyle = 'SQL, DMY';
         ALTER DATABASE app SET intervalstyle = 'sql_standard';
         ALTER DATABASE app SET extra_float_digits = 0;
         ALTER DATABASE app SET bytea_output = 'escape'",
    );
    pg.psql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, ts timestamptz, f float8, b bytea, i interval, s text);
         CREATE PUBLICATION p FOR TABLE t",
    );
    // Apart: a slot cannot be created in a transaction that wrote.
    pg.psql(
        "app",
        "SELECT pg_create_logical_replication_slot('s', 'pgoutput')",
    );
}

/// The oracle: every message the SQL interface decodes from the slot, with the pinned
/// settings set the same way, as (lsn, hex data).
fn peek(pg: &Pg) -> Vec<(Lsn, String)> {
    let out = pg.psql(
        "app",
        "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3;
         SET TimeZone = UTC; SET bytea_output = hex;
         SELECT lsn, encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('s', NULL, NULL,
           'proto_version', '1', 'publication_names', 'p', 'messages', 'true')",
    );
    out.lines()
        .map(|l| {
            let (lsn, hex) = l.split_once('|').unwrap();
            (lsn.parse().unwrap(), hex.to_string())
        })
        .collect()
}

/// Messages from the stream until `n` arrived (keepalives skipped), within a minute.
async fn collect(stream: &mut ReplicationStream, n: usize) -> Vec<(Lsn, Vec<u8>)> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while got.len() < n {
            match stream.next().await.unwrap().expect("stream ended early") {
                Change::Message { lsn, data } => got.push((lsn, data.to_vec())),
                Change::KeepAlive { .. } => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {n} messages arrived: {got:?}", got.len()));
    got
}

fn confirmed_flush(pg: &Pg) -> Lsn {
    pg.psql(
        "app",
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 's'",
    )
    .parse()
    .unwrap()
}

const WORKLOAD: &str = "BEGIN;
    INSERT INTO t VALUES (1, '2024-01-02 03:04:05+00', 1.0/3, '\\x0102', '1 day 2 hours', 'one');
    SELECT pg_logical_emit_message(true, 'pgdr.test', 'inside');
    INSERT INTO t VALUES (2, NULL, 0.1, NULL, NULL, repeat('x', 20));
    COMMIT;
    SELECT pg_logical_emit_message(false, 'pgdr.test', 'outside');
    UPDATE t SET s = 'uno' WHERE id = 1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_matches_the_sql_interface_byte_for_byte() {
    let pg = Pg::start_logical();
    setup(&pg);
    let start = confirmed_flush(&pg);
    let db = database(&pg, "app");
    let mut stream = replication::start(&db, "s", "p", Lsn::ZERO).await.unwrap();
    pg.psql("app", WORKLOAD);
    // B R I M I C, M (non-transactional), B U C.
    let got = collect(&mut stream, 10).await;
    stream.stop().await.unwrap();
    // Nothing was acknowledged: the slot still starts where it did.
    assert_eq!(confirmed_flush(&pg), start);

    let want = peek(&pg);
    assert_eq!(want.len(), got.len(), "oracle: {want:?}");
    for ((lsn, data), (want_lsn, want_hex)) in got.iter().zip(&want) {
        assert_eq!(&hex::encode(data), want_hex, "message at {want_lsn}");
        // Positions as sent: none for Relation (the walsender sends 0) and Begin (the crate
        // drops it); the rest equal the SQL interface's.
        match data[0] {
            b'R' | b'B' => assert_eq!(*lsn, Lsn::ZERO),
            _ => assert_eq!(lsn, want_lsn, "position of {}", data[0] as char),
        }
    }
    let tags: String = got.iter().map(|(_, d)| d[0] as char).collect();
    assert_eq!(tags, "BRIMICMBUC");

    // The pinned session settings, not the database's defaults, wrote the values.
    let insert = String::from_utf8_lossy(&got[2].1).into_owned();
    for text in [
        "2024-01-02 03:04:05+00",
        "0.3333333333333333",
        "\\x0102",
        "1 day 02:00:00",
    ] {
        assert!(insert.contains(text), "{text} not in {insert:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slot_moves_only_on_ack() {
    let pg = Pg::start_logical();
    setup(&pg);
    let db = database(&pg, "app");
    let mut stream = replication::start(&db, "s", "p", Lsn::ZERO).await.unwrap();
    pg.psql("app", WORKLOAD);
    let got = collect(&mut stream, 10).await;
    let first_commit = got.iter().find(|(_, d)| d[0] == b'C').unwrap().0;
    // Received is not durable: a few status intervals pass, the slot stays.
    let before = confirmed_flush(&pg);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(confirmed_flush(&pg), before);
    assert!(before < first_commit);

    stream.ack(first_commit);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while confirmed_flush(&pg) != first_commit {
        assert!(
            std::time::Instant::now() < deadline,
            "slot at {} after ack({first_commit})",
            confirmed_flush(&pg)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stream.stop().await.unwrap();

    // A restart from the acknowledged position starts after the first transaction.
    let mut again = replication::start(&db, "s", "p", first_commit)
        .await
        .unwrap();
    let next = collect(&mut again, 1).await;
    assert_eq!(
        next[0].1[0], b'M',
        "the non-transactional message comes next"
    );
    again.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_slot_is_named_with_its_fix() {
    let pg = Pg::start_logical();
    pg.create_db("app");
    pg.psql("app", "CREATE PUBLICATION p FOR ALL TABLES");
    let db = database(&pg, "app");
    let e = match replication::start(&db, "nosuch", "p", Lsn::ZERO).await {
        Ok(_) => panic!("started on a missing slot"),
        Err(e) => e,
    };
    let text = format!("{e}");
    assert_eq!(e.sqlstate().map(|c| c.code()), Some("42704"), "{text}");
    assert!(
        text.contains("nosuch") && text.contains("pgdr capture enable"),
        "{text}"
    );
    assert!(!text.contains(PG_PASSWORD), "{text}");
}
