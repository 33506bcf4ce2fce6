//! `pgdr capture enable / disable / doctor` against real clusters: each preflight failure that
//! a cluster can show, named with its fix; the publication, slot and state they leave.

use std::path::PathBuf;

use tempfile::TempDir;

use crate::common::*;

/// A cluster and an empty local repository.
struct Cap {
    pg: Pg,
    dir: TempDir,
}

impl Cap {
    fn new(pg: Pg) -> Cap {
        pg.create_db("app");
        Cap { pg, dir: tempdir() }
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// `pgdr capture ARGS` as `url` (the superuser's by default).
    fn run_as(&self, url: &str, args: &[&str]) -> Run {
        let mut c = pgdr_cmd();
        c.arg("capture").args(args);
        c.arg("--source").arg(url).arg("--repo").arg(self.repo());
        run(c)
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_as(&self.pg.url("app"), args)
    }

    fn state(&self) -> serde_json::Value {
        let p = self.repo().join("app/capture/state.json");
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    }

    fn publication_tables(&self) -> String {
        self.pg.psql(
            "app",
            "SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY 1)
               FROM pg_publication_tables WHERE pubname = 'pgdr_app'",
        )
    }
}

const TABLES: &str = "
    CREATE TABLE keyed (id int PRIMARY KEY, v text);
    CREATE TABLE by_index (code text NOT NULL, v text);
    CREATE UNIQUE INDEX by_index_code ON by_index (code);
    CREATE TABLE nokey (v text);
    CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY);
    CREATE TABLE parted (id int PRIMARY KEY, d date) PARTITION BY RANGE (id);
    CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
    CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x";

#[test]
fn enable_publishes_tables_with_identity_and_names_the_rest() {
    let c = Cap::new(Pg::start_logical());
    c.pg.psql("app", TABLES);
    let r = c.run(&["enable"]).ok();
    assert!(
        r.stdout
            .contains("capture enabled: slot pgdr_app, publication pgdr_app, 2 table(s)"),
        "{}",
        r.stdout
    );
    // Left out, with the exact statement that would include each.
    assert!(r.stdout.contains(
        "not captured: public.by_index (no primary key and the default replica identity: its UPDATEs and DELETEs cannot be captured); to include it: ALTER TABLE public.by_index REPLICA IDENTITY USING INDEX by_index_code;"
    ), "{}", r.stdout);
    assert!(r
        .stdout
        .contains("to include it: ALTER TABLE public.nokey REPLICA IDENTITY FULL;"));
    for never in [
        "DDL",
        "sequences",
        "large objects",
        "unlogged",
        "materialized views",
    ] {
        assert!(r.stdout.contains(never), "{never}: {}", r.stdout);
    }
    // Unbounded max_slot_wal_keep_size (the default) is a warning, not a failure.
    assert!(r
        .stdout
        .contains("warning: max_slot_wal_keep_size is unbounded"));

    assert_eq!(c.publication_tables(), "public.keyed,public.parted");
    assert_eq!(
        c.pg.psql(
            "app",
            "SELECT pubviaroot, puballtables FROM pg_publication WHERE pubname = 'pgdr_app'"
        ),
        "t|f"
    );
    let slot = c.pg.psql(
        "app",
        "SELECT plugin, temporary, confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'pgdr_app'",
    );
    let s = c.state();
    assert_eq!(s["format_version"], 1);
    assert_eq!(s["status"], "enabled");
    assert_eq!(s["slot"], "pgdr_app");
    assert_eq!(
        s["tables"],
        serde_json::json!(["public.keyed", "public.parted"])
    );
    assert_eq!(s["left_out"].as_array().unwrap().len(), 2);
    assert_eq!(
        slot,
        format!("pgoutput|f|{}", s["start_lsn"].as_str().unwrap())
    );
    assert_eq!(
        s["system_identifier"].as_str().unwrap(),
        c.pg.psql("app", "SELECT system_identifier FROM pg_control_system()")
    );
    assert_eq!(s["timeline"], 1);

    // The operator runs the printed fix and enables again: the table joins, same slot.
    c.pg.psql("app", "ALTER TABLE public.nokey REPLICA IDENTITY FULL");
    c.run(&["enable"]).ok();
    assert_eq!(
        c.publication_tables(),
        "public.keyed,public.nokey,public.parted"
    );
    assert_eq!(c.state()["start_lsn"], s["start_lsn"]);
    assert_eq!(c.state()["enabled_at"], s["enabled_at"]);
}

#[test]
fn doctor_and_disable() {
    let c = Cap::new(Pg::start_logical());
    c.pg.psql("app", "CREATE TABLE keyed (id int PRIMARY KEY)");
    c.run(&["enable"]).ok();
    let r = c.run(&["doctor"]).ok();
    assert!(
        r.stdout
            .starts_with("ok     pgdr_app  database app  inactive  wal_status reserved  retains "),
        "{}",
        r.stdout
    );

    // A slot left by an earlier setup: an orphan, with the statement that drops it.
    c.pg.psql(
        "app",
        "SELECT pg_create_logical_replication_slot('pgdr_old', 'pgoutput')",
    );
    let r = c.run(&["doctor"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("ORPHAN pgdr_old  database app"),
        "{}",
        r.stdout
    );
    assert!(r
        .stdout
        .contains("drop it: SELECT pg_drop_replication_slot('pgdr_old');"));
    let j = c.run(&["doctor", "--json"]).json();
    let old = j
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slot"] == "pgdr_old")
        .unwrap();
    assert!(old["retained_bytes"].as_i64().unwrap() >= 0);
    c.pg.psql("app", "SELECT pg_drop_replication_slot('pgdr_old')");

    let r = c.run(&["disable"]).ok();
    assert!(
        r.stdout
            .contains("slot dropped, publication dropped; capture disabled"),
        "{}",
        r.stdout
    );
    assert_eq!(
        c.pg.psql("app", "SELECT count(*) FROM pg_replication_slots"),
        "0"
    );
    assert_eq!(c.pg.psql("app", "SELECT count(*) FROM pg_publication"), "0");
    assert_eq!(c.state()["status"], "disabled");
    assert!(c.state()["disabled_at"].is_string());
    assert_eq!(
        c.run(&["doctor"]).ok().stdout,
        "no pgdr replication slots\n"
    );
}

#[test]
fn wal_level_replica_is_named_with_the_managed_service_settings() {
    let c = Cap::new(Pg::start());
    let r = c.run(&["enable"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("wal_level is 'replica', not 'logical'"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("rds.logical_replication = 1")
            && r.stderr.contains("cloudsql.logical_decoding")
    );
    assert!(!c.repo().join("app/capture/state.json").exists());
}

#[test]
fn a_role_without_replication_and_a_role_that_owns_nothing() {
    let c = Cap::new(Pg::start_logical());
    c.pg.psql("app", "CREATE TABLE keyed (id int PRIMARY KEY)");
    c.pg.psql("postgres", "CREATE ROLE plain LOGIN PASSWORD 'plain-pw'");
    let url = |role: &str| format!("postgres://{role}:{role}-pw@127.0.0.1:{}/app", c.pg.port);
    let r = c.run_as(&url("plain"), &["enable"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("role 'plain' has no REPLICATION attribute"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("ALTER ROLE \"plain\" REPLICATION")
            && r.stderr.contains("rds_replication")
    );
    assert!(!r.stderr.contains("plain-pw"));

    // With REPLICATION but not the tables' owner: publication setup is refused, both ways
    // out named; --print-sql prints the statements; --admin-url runs them.
    c.pg.psql(
        "postgres",
        "CREATE ROLE capt LOGIN REPLICATION PASSWORD 'capt-pw'",
    );
    let r = c.run_as(&url("capt"), &["enable"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--admin-url") && r.stderr.contains("--print-sql"),
        "{}",
        r.stderr
    );
    let r = c.run_as(&url("capt"), &["enable", "--print-sql"]).ok();
    assert!(r.stdout.contains(
        "CREATE PUBLICATION pgdr_app FOR TABLE public.keyed WITH (publish_via_partition_root = true);"
    ), "{}", r.stdout);
    assert_eq!(c.pg.psql("app", "SELECT count(*) FROM pg_publication"), "0");
    assert!(!c.repo().join("app/capture/state.json").exists());
    let r = c
        .run_as(&url("capt"), &["enable", "--admin-url", &c.pg.url("app")])
        .ok();
    assert!(r.stdout.contains("capture enabled"), "{}", r.stdout);
    assert!(!r.stdout.contains(PG_PASSWORD) && !r.stderr.contains(PG_PASSWORD));
    assert_eq!(c.publication_tables(), "public.keyed");
}
