//! The schema fingerprint against a real cluster: capture of the sample database, a
//! pg_dump/pg_restore round trip that must compare equal, and single mutations that the diff
//! must name in one line each.

use std::process::Command;
use std::time::Instant;

use pgdr::fingerprint::schema::{capture, diff, DiffOptions, SchemaFingerprint};
use serde_json::{json, Value};
use tokio_postgres::Client;

use crate::common::*;

/// A pgdr `Database` for `db` on this cluster, connected the way pgdr connects.
async fn connect(pg: &Pg, db: &str) -> Client {
    let settings = pgdr::config::Settings::load(&pgdr::config::Overrides {
        source: Some(pg.url(db)),
        repo: Some("/tmp/pgdr-schema-test-repo".into()),
        ..Default::default()
    })
    .unwrap();
    pgdr::source::connect(&settings.databases[0]).await.unwrap()
}

async fn capture_ok(client: &Client) -> SchemaFingerprint {
    capture(client)
        .await
        .unwrap_or_else(|e| panic!("capture failed: {e}"))
}

/// A PostgreSQL client program pointed at the cluster.
fn pg_tool(pg: &Pg, prog: &str) -> Command {
    let mut c = Command::new(pg_bin().join(prog));
    c.args([
        "-h",
        "127.0.0.1",
        "-p",
        &pg.port.to_string(),
        "-U",
        "postgres",
    ])
    .env("PGPASSWORD", PG_PASSWORD);
    c
}

fn run_ok(mut c: Command, what: &str) {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `pg_dump -Fc from` restored into a new database `to` made by `createdb -T template0 -O
/// <owner of from>`, as a verification restore does (without --create, so the database's own
/// comment and settings are not replayed).
fn restored_copy(pg: &Pg, from: &str, to: &str) {
    let dir = tempdir();
    let file = dir.path().join("dump.pgdump");
    let mut dump = pg_tool(pg, "pg_dump");
    dump.args(["-Fc", "-f"]).arg(&file).arg(from);
    run_ok(dump, "pg_dump");
    let owner = pg.psql(
        from,
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()",
    );
    let mut create = pg_tool(pg, "createdb");
    create.args(["-T", "template0", "-O", &owner, to]);
    run_ok(create, "createdb");
    let mut restore = pg_tool(pg, "pg_restore");
    restore.args(["--exit-on-error", "-d", to]).arg(&file);
    run_ok(restore, "pg_restore");
}

fn section<'a>(
    fp: &'a SchemaFingerprint,
    name: &str,
) -> &'a std::collections::BTreeMap<String, Value> {
    fp.sections
        .get(name)
        .unwrap_or_else(|| panic!("section {name} missing"))
}

fn obj<'a>(fp: &'a SchemaFingerprint, sec: &str, key: &str) -> &'a Value {
    section(fp, sec)
        .get(key)
        .unwrap_or_else(|| panic!("{sec} has no {key}: {:?}", section(fp, sec).keys()))
}

fn no_db_props() -> DiffOptions {
    DiffOptions {
        database_properties: false,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_capture_of_sample_db() {
    let pg = Pg::start();
    pg.sample_db("app");
    let client = connect(&pg, "app").await;
    let show = |name: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(&format!("SHOW {name}"), &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    let (path_before, tz_before) = (show("search_path").await, show("TimeZone").await);

    let t = Instant::now();
    let a = capture_ok(&client).await;
    let took = t.elapsed();
    eprintln!(
        "schema capture of the sample database: {took:?} ({} objects)",
        a.object_count()
    );
    let b = capture_ok(&client).await;
    assert_eq!(a, b, "two captures differ");
    assert!(diff(&a, &b, &DiffOptions::default()).is_empty());

    // The pinned session settings are put back.
    assert_eq!(show("search_path").await, path_before);
    assert_eq!(show("TimeZone").await, tz_before);

    // Inside a snapshot-like transaction, as the backup runs it: same result, and the
    // transaction stays usable.
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .unwrap();
    let c = capture_ok(&client).await;
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!(a, c);
    assert_eq!(show("search_path").await, path_before);

    // Content an operator relies on.
    let p = obj(&a, "policies", "public.profiles.profiles_select");
    assert_eq!(p["using"], "(NOT is_private)");
    assert_eq!(p["roles"], json!(["anon", "authenticated"]));
    assert_eq!(p["command"], "SELECT");
    assert_eq!(p["permissive"], true);
    let p = obj(&a, "policies", "public.profiles.profiles_update");
    assert!(p["with_check"]
        .as_str()
        .unwrap()
        .contains("request.jwt.claim.sub"));

    let f = obj(&a, "functions", "public.is_admin(uid uuid)");
    assert_eq!(f["security_definer"], true);
    assert_eq!(f["config"], json!({"search_path": "public, auth"}));
    assert_eq!(f["volatility"], "stable");
    assert_eq!(f["language"], "sql");
    // REVOKE ALL FROM PUBLIC + GRANT EXECUTE TO authenticated.
    assert_eq!(
        f["acl"],
        json!(["authenticated=X/postgres", "postgres=X/postgres"])
    );
    assert_eq!(f["body_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(f["arguments"], "uid uuid");
    assert_eq!(f["returns"], "boolean");
    // Default privileges are spelled out (NULL acl = the built-in default).
    assert_eq!(
        obj(&a, "functions", "public.health()")["acl"],
        json!(["=X/postgres", "postgres=X/postgres"])
    );

    let t = obj(&a, "triggers", "public.profiles.profiles_updated_at");
    assert_eq!(
        t["definition"],
        "CREATE TRIGGER profiles_updated_at BEFORE UPDATE ON public.profiles FOR EACH ROW EXECUTE FUNCTION public.handle_updated_at()"
    );
    assert_eq!(t["enabled"], "origin");

    let e = obj(&a, "types", "public.order_status");
    assert_eq!(e["kind"], "enum");
    assert_eq!(
        e["labels"],
        json!(["pending", "paid", "shipped", "cancelled"])
    );

    let d = obj(&a, "database", "current");
    assert_eq!(d["settings"], json!({"app.settings.environment": "demo"}));
    assert_eq!(d["comment"], "pgdr sample database");
    assert_eq!(d["owner"], "postgres");
    assert_eq!(d["encoding"], "UTF8");

    let s = obj(&a, "sequences", "public.orders_id_seq");
    assert_eq!(s["last_value"], 5000);
    assert_eq!(s["is_called"], true);
    assert_eq!(s["owned_by"], "public.orders.id");
    assert_eq!(s["owner"], "app_owner");

    let o = obj(&a, "tables", "public.orders");
    assert_eq!(o["owner"], "app_owner");
    assert_eq!(o["row_level_security"], true);
    assert_eq!(o["force_row_level_security"], true);
    assert_eq!(o["comment"], "Customer orders");
    assert_eq!(
        o["acl"],
        json!([
            "app_owner=arwdDxt/app_owner",
            "authenticated=arwdDxt/app_owner",
            "service_role=arwdDxt/app_owner"
        ])
    );
    let c = obj(&a, "columns", "public.orders.amount");
    assert_eq!(c["type"], "numeric(12,2)");
    assert_eq!(c["not_null"], true);
    assert_eq!(
        obj(&a, "columns", "public.orders.status")["default"],
        "'pending'::public.order_status"
    );
    assert_eq!(
        obj(&a, "columns", "public.profiles.username")["acl"],
        json!(["authenticated=w/postgres"])
    );
    assert_eq!(
        obj(&a, "indexes", "public.orders_user_idx")["definition"],
        "CREATE INDEX orders_user_idx ON public.orders USING btree (user_id, created_at)"
    );
    assert_eq!(
        obj(&a, "constraints", "public.profiles.profiles_id_fkey")["definition"],
        "FOREIGN KEY (id) REFERENCES auth.users(id) ON DELETE CASCADE"
    );
    assert!(obj(&a, "schemas", "public")["acl"]
        .as_array()
        .unwrap()
        .contains(&json!("anon=U/pg_database_owner")));
    assert_eq!(obj(&a, "roles", "service_role")["bypassrls"], true);
    assert_eq!(obj(&a, "roles", "app_owner")["login"], true);
    assert_eq!(
        obj(&a, "memberships", "anon → authenticated")["admin_option"],
        false
    );

    // User objects only.
    for (name, sec) in &a.sections {
        for key in sec.keys() {
            assert!(
                !key.starts_with("pg_catalog.")
                    && !key.starts_with("information_schema.")
                    && !key.starts_with("pg_toast"),
                "{name}: system object {key}"
            );
        }
    }
    assert!(section(&a, "roles").keys().all(|r| !r.starts_with("pg_")));

    // The JSON is readable and stable: sections and keys sorted.
    let text = serde_json::to_string_pretty(&a).unwrap();
    assert!(text.find("\"columns\"").unwrap() < text.find("\"tables\"").unwrap());
    assert!(!text.contains(PG_PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_excludes_extension_members() {
    let pg = Pg::start();
    pg.create_db("ext");
    pg.psql(
        "ext",
        "CREATE EXTENSION citext; CREATE TABLE public.t (id int, name public.citext)",
    );
    let client = connect(&pg, "ext").await;
    let fp = capture_ok(&client).await;
    assert_eq!(obj(&fp, "extensions", "citext")["schema"], "public");
    assert_eq!(
        obj(&fp, "columns", "public.t.name")["type"],
        "public.citext"
    );
    assert!(
        section(&fp, "functions").is_empty(),
        "extension functions captured: {:?}",
        section(&fp, "functions").keys()
    );
    assert!(
        section(&fp, "types").is_empty(),
        "extension types captured: {:?}",
        section(&fp, "types").keys()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_survives_pg_dump_and_restore() {
    let pg = Pg::start();
    pg.sample_db("app");
    restored_copy(&pg, "app", "app_restored");
    let source = capture_ok(&connect(&pg, "app").await).await;
    let restored = capture_ok(&connect(&pg, "app_restored").await).await;

    assert_eq!(
        diff(&source, &restored, &no_db_props()),
        Vec::<String>::new()
    );
    // pg_restore without --create does not replay the database's own comment and settings.
    assert_eq!(
        diff(&source, &restored, &DiffOptions::default()),
        [
            "database: comment set in backup, not set after restore",
            "database: setting app.settings.environment set in backup, not set after restore",
        ]
    );
}

/// Objects of every kind the fingerprint knows, so a round trip shows no false difference.
const MORE_OBJECTS: &str = r#"
CREATE EXTENSION citext;
CREATE SCHEMA billing AUTHORIZATION app_owner;
COMMENT ON SCHEMA billing IS 'money';
CREATE DOMAIN billing.positive AS numeric(12,2) DEFAULT 1 CONSTRAINT positive_check CHECK (VALUE > 0) NOT NULL;
CREATE TYPE billing.money_pair AS (a numeric, "B" text COLLATE "C");
CREATE TYPE billing.floatrange AS RANGE (subtype = float8);
CREATE TABLE billing.invoices (
  id bigint GENERATED ALWAYS AS IDENTITY,
  dropped int,
  issued date NOT NULL DEFAULT '2026-01-02',
  total billing.positive,
  net numeric GENERATED ALWAYS AS (total * 0.8) STORED,
  code public.citext COLLATE "C",
  at timestamptz DEFAULT '2026-01-01 12:00:00+00',
  PRIMARY KEY (id, issued)
) PARTITION BY RANGE (issued);
ALTER TABLE billing.invoices DROP COLUMN dropped;
CREATE TABLE billing.invoices_2026 PARTITION OF billing.invoices
  FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE billing.invoices_old (LIKE billing.invoices INCLUDING GENERATED INCLUDING DEFAULTS);
ALTER TABLE billing.invoices ATTACH PARTITION billing.invoices_old
  FOR VALUES FROM (MINVALUE) TO ('2026-01-01');
CREATE INDEX invoices_code_idx ON billing.invoices (code);
ALTER TABLE billing.invoices_2026 ALTER COLUMN code SET STATISTICS 500;
COMMENT ON COLUMN billing.invoices.total IS 'gross';
INSERT INTO billing.invoices (issued, total, code) VALUES ('2026-05-01', 10, 'A'), ('2025-05-01', 20, 'b');
CREATE UNLOGGED TABLE billing.cache (k text PRIMARY KEY, v jsonb) WITH (fillfactor = 70);
ALTER TABLE billing.cache REPLICA IDENTITY FULL;
CREATE TABLE billing.parent (a int);
CREATE TABLE billing.child (b int) INHERITS (billing.parent);
CREATE SEQUENCE billing.fresh_seq START 100 INCREMENT 5 MAXVALUE 1000 CYCLE;
CREATE SEQUENCE billing.reset_seq;
SELECT setval('billing.reset_seq', 42, false);
CREATE VIEW billing.totals WITH (security_invoker = true) AS
  SELECT issued, sum(total) AS total FROM billing.invoices GROUP BY issued;
COMMENT ON VIEW billing.totals IS 'per day';
GRANT SELECT ON billing.totals TO authenticated;
CREATE MATERIALIZED VIEW billing.totals_mv AS SELECT * FROM billing.totals;
CREATE MATERIALIZED VIEW billing.empty_mv AS SELECT 1 AS one WITH NO DATA;
CREATE UNIQUE INDEX totals_mv_issued ON billing.totals_mv (issued);
CREATE RULE no_delete AS ON DELETE TO billing.cache DO INSTEAD NOTHING;
CREATE STATISTICS billing.inv_stats (dependencies) ON issued, code FROM billing.invoices_2026;
CREATE PROCEDURE billing.touch(INOUT n int) LANGUAGE plpgsql AS $$ BEGIN n := n + 1; END $$;
CREATE FUNCTION billing.add(a int, b int DEFAULT 1) RETURNS int IMMUTABLE STRICT PARALLEL SAFE
  LANGUAGE sql BEGIN ATOMIC SELECT a + b; END;
COMMENT ON FUNCTION billing.add(int, int) IS 'adds';
CREATE FUNCTION billing.ddl_log() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
CREATE EVENT TRIGGER ddl_log ON ddl_command_end WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION billing.ddl_log();
CREATE FUNCTION billing.audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER invoices_audit AFTER INSERT ON billing.invoices FOR EACH ROW EXECUTE FUNCTION billing.audit();
CREATE TRIGGER cache_audit AFTER UPDATE ON billing.cache FOR EACH STATEMENT EXECUTE FUNCTION billing.audit();
ALTER TABLE billing.cache DISABLE TRIGGER cache_audit;
CREATE PUBLICATION pub_orders FOR TABLE public.orders (id, amount) WHERE (amount > 0), auth.users;
CREATE PUBLICATION pub_billing FOR TABLES IN SCHEMA billing WITH (publish = 'insert');
ALTER DEFAULT PRIVILEGES IN SCHEMA billing GRANT SELECT ON TABLES TO anon;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER TABLE billing.cache ENABLE ROW LEVEL SECURITY;
CREATE POLICY cache_read ON billing.cache AS RESTRICTIVE FOR SELECT TO PUBLIC USING (k <> 'secret');
ALTER ROLE authenticated IN DATABASE app SET statement_timeout = '5s';
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_round_trip_of_many_object_kinds() {
    let pg = Pg::start();
    pg.sample_db("app");
    pg.psql("app", MORE_OBJECTS);
    restored_copy(&pg, "app", "app_restored");
    let source = capture_ok(&connect(&pg, "app").await).await;
    let restored = capture_ok(&connect(&pg, "app_restored").await).await;

    // Everything above was captured.
    for (sec, key) in [
        ("schemas", "billing"),
        ("types", "billing.positive"),
        ("types", "billing.money_pair"),
        ("types", "billing.floatrange"),
        ("tables", "billing.invoices"),
        ("tables", "billing.invoices_2026"),
        ("tables", "billing.child"),
        ("columns", "billing.invoices.net"),
        ("indexes", "billing.invoices_code_idx"),
        ("sequences", "billing.reset_seq"),
        ("sequences", "billing.invoices_id_seq"),
        ("views", "billing.totals"),
        ("materialized_views", "billing.empty_mv"),
        ("rules", "billing.cache.no_delete"),
        ("statistics", "billing.inv_stats"),
        ("functions", "billing.touch(INOUT n integer)"),
        ("functions", "billing.add(a integer, b integer)"),
        ("event_triggers", "ddl_log"),
        ("triggers", "billing.cache.cache_audit"),
        ("publications", "pub_orders"),
        ("publications", "pub_billing"),
        ("default_privileges", "postgres on tables in schema billing"),
        ("default_privileges", "app_owner on functions"),
        ("policies", "billing.cache.cache_read"),
    ] {
        obj(&source, sec, key);
    }
    assert_eq!(
        obj(&source, "columns", "billing.invoices.net")["generated"],
        "((total)::numeric * 0.8)"
    );
    assert_eq!(
        obj(&source, "columns", "billing.invoices.at")["position"],
        6,
        "dropped columns do not count"
    );
    assert_eq!(
        obj(&source, "tables", "billing.invoices_2026")["partition_bound"],
        "FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"
    );
    assert_eq!(
        obj(&source, "tables", "billing.cache")["persistence"],
        "unlogged"
    );
    assert_eq!(
        obj(&source, "sequences", "billing.reset_seq")["last_value"],
        42
    );
    assert_eq!(
        obj(&source, "sequences", "billing.reset_seq")["is_called"],
        false
    );
    assert_eq!(
        obj(&source, "materialized_views", "billing.empty_mv")["populated"],
        false
    );
    assert_eq!(
        obj(&source, "triggers", "billing.cache.cache_audit")["enabled"],
        "disabled"
    );
    assert_eq!(
        obj(&source, "publications", "pub_orders")["tables"],
        json!([
            "auth.users",
            "public.orders (id, amount) WHERE (amount > (0)::numeric)"
        ])
    );
    assert_eq!(
        obj(&source, "database", "current")["role_settings"],
        json!({"authenticated": {"statement_timeout": "5s"}})
    );

    assert_eq!(
        diff(&source, &restored, &no_db_props()),
        Vec::<String>::new()
    );
    assert_eq!(
        diff(&source, &restored, &DiffOptions::default()),
        [
            "database: comment set in backup, not set after restore",
            "database: setting statement_timeout for role authenticated set in backup, not set after restore",
            "database: setting app.settings.environment set in backup, not set after restore",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_diff_names_each_mutation() {
    let pg = Pg::start();
    pg.sample_db("app");
    restored_copy(&pg, "app", "scratch");
    let expected = capture_ok(&connect(&pg, "app").await).await;
    let scratch = connect(&pg, "scratch").await;
    assert_eq!(
        diff(&expected, &capture_ok(&scratch).await, &no_db_props()),
        Vec::<String>::new()
    );

    // Session settings that change deparsed text make no difference, and are left as found.
    scratch
        .batch_execute(
            "SET search_path = auth, public; SET TimeZone = 'Asia/Tokyo'; \
             SET DateStyle = 'German, DMY'; SET quote_all_identifiers = on; \
             SET extra_float_digits = 3",
        )
        .await
        .unwrap();
    assert_eq!(
        diff(&expected, &capture_ok(&scratch).await, &no_db_props()),
        Vec::<String>::new()
    );
    let path: String = scratch
        .query_one("SHOW search_path", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(path, "auth, public");
    scratch.batch_execute("RESET ALL").await.unwrap();

    // Each mutation inside a transaction that is rolled back afterwards.
    let cases: &[(&str, &str)] = &[
        (
            "ALTER POLICY profiles_select ON public.profiles USING (true)",
            "policy \"profiles_select\" on public.profiles: using (NOT is_private) in backup, true after restore",
        ),
        (
            "CREATE OR REPLACE FUNCTION public.health() RETURNS text LANGUAGE sql AS $$ SELECT 'not ok' $$",
            "function public.health(): definition differs",
        ),
        (
            "DROP INDEX public.orders_user_idx",
            "index public.orders_user_idx: missing after restore",
        ),
        (
            "CREATE INDEX orders_status_idx ON public.orders (status)",
            "index public.orders_status_idx: unexpected after restore",
        ),
        (
            "ALTER TABLE public.orders NO FORCE ROW LEVEL SECURITY",
            "table public.orders: force row level security true in backup, false after restore",
        ),
        (
            "REVOKE SELECT ON public.profiles FROM anon",
            "table public.profiles: privileges of anon: SELECT in backup, none after restore",
        ),
        (
            "REVOKE EXECUTE ON FUNCTION public.is_admin(uuid) FROM authenticated",
            "function public.is_admin(uid uuid): privileges of authenticated: EXECUTE in backup, none after restore",
        ),
        (
            "ALTER FUNCTION public.is_admin(uuid) RESET search_path",
            "function public.is_admin(uid uuid): setting search_path set in backup, not set after restore",
        ),
        (
            "ALTER TABLE public.orders ALTER COLUMN amount TYPE numeric",
            "table public.orders: column \"amount\" type numeric(12,2) in backup, numeric after restore",
        ),
        (
            "DROP POLICY profiles_select ON public.profiles",
            "policy \"profiles_select\" on public.profiles: missing after restore",
        ),
        (
            // Its columns, indexes, constraints, policies and trigger go with it: one line.
            "DROP TABLE public.profiles",
            "table public.profiles: missing after restore",
        ),
        (
            "ALTER TABLE public.profiles DISABLE TRIGGER profiles_updated_at",
            "trigger \"profiles_updated_at\" on public.profiles: enabled origin in backup, disabled after restore",
        ),
        (
            "ALTER TYPE public.order_status ADD VALUE 'refunded'",
            "type public.order_status: labels pending, paid, shipped, cancelled in backup, pending, paid, shipped, cancelled, refunded after restore",
        ),
    ];
    for (sql, want) in cases {
        scratch.batch_execute("BEGIN").await.unwrap();
        scratch.batch_execute(sql).await.unwrap();
        let actual = capture_ok(&scratch).await;
        scratch.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(
            diff(&expected, &actual, &no_db_props()),
            [*want],
            "after {sql}"
        );
    }
    // Rolled back: equal again.
    assert_eq!(
        diff(&expected, &capture_ok(&scratch).await, &no_db_props()),
        Vec::<String>::new()
    );

    // Sequences are not transactional: last.
    scratch
        .batch_execute("SELECT setval('public.orders_id_seq', 1)")
        .await
        .unwrap();
    assert_eq!(
        diff(&expected, &capture_ok(&scratch).await, &no_db_props()),
        ["sequence public.orders_id_seq: value 5000 in backup, 1 after restore"]
    );
}
