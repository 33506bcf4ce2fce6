//! `pgdr restore --table` (issue 18): selected tables of a backup into the live database,
//! beside the live ones (`--into`) or in their place (`--replace`). Every assertion is the
//! test's own catalog query or row digest, taken on the source before the damage.

use crate::common::*;

/// Policies, row security, grants (table and column), indexes, triggers, comment, owned
/// sequence, and a digest of the rows of `schema.table`, with the schema name taken out so a
/// table in a side schema compares with the original.
fn table_state(pg: &Pg, schema: &str, table: &str) -> String {
    let q = format!("\"{}\"", table.replace('"', "\"\""));
    let (table, rel) = (
        table.replace('\'', "''"),
        format!("'{schema}.{}'::regclass", q.replace('\'', "''")),
    );
    let sql = format!(
        "SELECT 'rls ' || relrowsecurity || ' ' || relforcerowsecurity || ' acl ' || coalesce(relacl::text, '')
           || ' comment ' || coalesce(obj_description(oid, 'pg_class'), '') FROM pg_class WHERE oid = {rel};
         SELECT 'policy ' || policyname || ' ' || permissive || ' ' || roles::text || ' ' || cmd || ' '
           || coalesce(qual, '') || ' ' || coalesce(with_check, '')
           FROM pg_policies WHERE schemaname = '{schema}' AND tablename = '{table}' ORDER BY policyname;
         SELECT 'column ' || attname || ' ' || attacl::text FROM pg_attribute
           WHERE attrelid = {rel} AND attacl IS NOT NULL ORDER BY attname;
         SELECT 'index ' || indexname || ' ' || replace(indexdef, '{schema}.', '') FROM pg_indexes
           WHERE schemaname = '{schema}' AND tablename = '{table}' ORDER BY indexname;
         SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgrelid = {rel} AND NOT tgisinternal ORDER BY 1;
         SELECT 'constraint ' || conname || ' ' || contype::text FROM pg_constraint WHERE conrelid = {rel}
           AND contype <> 'f' ORDER BY 1;
         SELECT 'sequence ' || s.relname || ' ' || coalesce(s.relacl::text, '') FROM pg_depend d
           JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
           WHERE d.refobjid = {rel} AND d.deptype IN ('a', 'i');
         SELECT 'rows ' || count(*) || ' ' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))
           FROM {schema}.{q} t;"
    );
    pg.psql("app", &sql).replace(&format!("{schema}."), "")
}

/// Row digest of a table (the "other tables untouched" check).
fn digest(pg: &Pg, table: &str) -> String {
    pg.psql(
        "app",
        &format!("SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"),
    )
}

#[test]
fn a_table_restores_into_a_side_schema_with_its_policies_grants_and_rows() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    let before = table_state(&w.pg, "public", "orders");
    assert!(before.contains("policy orders_owner"), "{before}");
    assert!(before.contains("rls true true"), "{before}");
    let (users, profiles) = (
        digest(&w.pg, "auth.users"),
        digest(&w.pg, "public.profiles"),
    );
    // The damage: rows lost, a policy dropped.
    w.pg.psql(
        "app",
        "DELETE FROM public.orders WHERE id % 3 = 0; DROP POLICY orders_owner ON public.orders;",
    );
    let damaged = table_state(&w.pg, "public", "orders");

    let plan = run(w.restore_cmd(
        &w.pg,
        "app",
        &[
            "--table",
            "public.orders",
            "--into",
            "side",
            "--dry-run",
            "--json",
        ],
    ))
    .ok();
    let plan = plan.json();
    assert_eq!(plan["tables"], serde_json::json!(["public.orders"]));
    let objects = plan["objects"].to_string();
    for o in [
        "TABLE DATA public.orders",
        "POLICY public.orders orders_owner",
        "INDEX public.orders_user_idx",
        "ACL public.TABLE orders",
        "SEQUENCE public.orders_id_seq",
    ] {
        assert!(objects.contains(o), "{o} not in {objects}");
    }
    assert!(
        plan["skipped"]
            .to_string()
            .contains("orders_user_id_fkey: refers to auth.users"),
        "{}",
        plan["skipped"]
    );
    assert_eq!(
        w.pg.psql(
            "app",
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'side'"
        ),
        "0"
    );

    let r = run(w.restore_cmd(
        &w.pg,
        "app",
        &["--table", "public.orders", "--into", "side", "--yes"],
    ))
    .ok();
    assert!(r.stdout.contains("proven"), "{}", r.stdout);
    assert_eq!(table_state(&w.pg, "side", "orders"), before);
    // The live table, and the others, untouched.
    assert_eq!(table_state(&w.pg, "public", "orders"), damaged);
    assert_eq!(digest(&w.pg, "auth.users"), users);
    assert_eq!(digest(&w.pg, "public.profiles"), profiles);

    // The default schema is restored_<backupid>; a schema that exists is refused.
    let again = run(w.restore_cmd(
        &w.pg,
        "app",
        &["--table", "public.orders", "--into", "side", "--yes"],
    ));
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(
        again.stderr.contains("schema side already exists"),
        "{}",
        again.stderr
    );
    let r = run(w.restore_cmd(
        &w.pg,
        "app",
        &["--table", "public.orders", "--dry-run", "--json"],
    ))
    .ok();
    let want = format!(
        "restored_{}",
        id.to_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    assert_eq!(r.json()["mode"]["schema"], want.as_str());
    // Bad inputs: one line naming the fix, nothing changed.
    let r = run(w.restore_cmd(&w.pg, "app", &["--into", "other", "--yes"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--table SCHEMA.NAME"), "{}", r.stderr);
    let r = run(w.restore_cmd(&w.pg, "app", &["--table", "orders", "--yes"]));
    assert!(
        r.code == 2 && r.stderr.contains("is not SCHEMA.NAME"),
        "{}",
        r.stderr
    );
    let r = run(w.restore_cmd(&w.pg, "app", &["--table", "public.nope", "--yes"]));
    assert!(
        r.code == 2 && r.stderr.contains("public.nope is not in the backup"),
        "{}",
        r.stderr
    );
    assert_eq!(table_state(&w.pg, "public", "orders"), damaged);
}

#[test]
fn replace_puts_the_backup_table_back_in_one_transaction() {
    let w = World::local();
    // A table whose foreign key points into the one replaced.
    w.pg.psql(
        "app",
        "CREATE TABLE public.refunds (order_id bigint REFERENCES public.orders(id), note text);
         INSERT INTO public.refunds SELECT id, 'r' || id FROM public.orders WHERE id % 10 = 1;",
    );
    w.backup();
    let before = table_state(&w.pg, "public", "orders");
    let (users, refunds) = (digest(&w.pg, "auth.users"), digest(&w.pg, "public.refunds"));
    w.pg.psql(
        "app",
        "DELETE FROM public.orders WHERE id % 10 <> 1; UPDATE public.orders SET amount = 0;
         DROP POLICY orders_owner ON public.orders; REVOKE ALL ON public.orders FROM service_role;
         ALTER TABLE public.orders NO FORCE ROW LEVEL SECURITY;",
    );
    let damaged = table_state(&w.pg, "public", "orders");
    assert_ne!(damaged, before);

    let r = run(w.restore_cmd(
        &w.pg,
        "app",
        &["--table", "public.orders", "--replace", "--yes"],
    ));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("public.refunds refunds_order_id_fkey"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--cascade"), "{}", r.stderr);
    assert_eq!(table_state(&w.pg, "public", "orders"), damaged);

    let r = run(w.restore_cmd(
        &w.pg,
        "app",
        &[
            "--table",
            "public.orders",
            "--replace",
            "--cascade",
            "--yes",
        ],
    ))
    .ok();
    assert!(
        r.stdout
            .contains("refunds_order_id_fkey is dropped and re-created"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("proven"), "{}", r.stdout);
    assert_eq!(table_state(&w.pg, "public", "orders"), before);
    assert_eq!(digest(&w.pg, "auth.users"), users);
    assert_eq!(digest(&w.pg, "public.refunds"), refunds);
    assert_eq!(
        w.pg.psql(
            "app",
            "SELECT count(*) FROM pg_constraint WHERE conname = 'refunds_order_id_fkey'"
        ),
        "1"
    );
}

#[test]
fn replace_from_a_swapped_dump_object_changes_nothing() {
    let w = World::local();
    let first = w.backup()["id"].as_str().unwrap().to_string();
    w.pg.psql("app", "UPDATE auth.users SET email = 'forged-' || email");
    let second = w.backup()["id"].as_str().unwrap().to_string();
    let Repo::Local(root) = &w.repo else {
        unreachable!("local")
    };
    // Someone with write access to the store puts the second backup's dump (a valid archive,
    // encrypted to the same recipient) in place of the first's. auth.users' data comes first
    // in the archive: pg_restore has all it needs long before the object's end, where the
    // sha256 is checked.
    std::fs::copy(
        root.join("app").join(&second).join("dump.zst.age"),
        root.join("app").join(&first).join("dump.zst.age"),
    )
    .unwrap();
    w.pg.psql("app", "UPDATE auth.users SET email = 'live-' || email");
    let live = table_state(&w.pg, "auth", "users");
    let args = [
        "--table",
        "auth.users",
        "--replace",
        "--cascade",
        "--backup",
        &first,
        "--yes",
    ];
    let r = run(w.restore_cmd(&w.pg, "app", &args));
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("sha256"), "{}", r.stderr);
    assert_eq!(table_state(&w.pg, "auth", "users"), live);
}

/// The restore records of `app` in a local repository, oldest first (read as stored files:
/// the oracle is the repository, not pgdr's rendering of it).
fn restore_records(w: &World) -> Vec<serde_json::Value> {
    let Repo::Local(root) = &w.repo else {
        unreachable!("local")
    };
    let mut files: Vec<_> = std::fs::read_dir(root.join("app").join("restores"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

#[test]
fn a_table_restore_is_recorded_with_its_tables_mode_and_proof() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    let rows: u64 =
        w.pg.psql("app", "SELECT count(*) FROM public.orders")
            .parse()
            .unwrap();
    run(w.restore_cmd(
        &w.pg,
        "app",
        &["--table", "public.orders", "--into", "side", "--yes"],
    ))
    .ok();
    let recs = restore_records(&w);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let r = &recs[0];
    assert_eq!(r["format_version"], 2);
    assert_eq!(r["backup_id"], id.as_str());
    assert_eq!(r["mode"], "tables");
    assert_eq!(r["outcome"], "restored", "{r:#}");
    assert_eq!(r["differences"], serde_json::json!([]));
    let t = &r["tables"];
    assert_eq!(
        (&t["mode"], &t["schema"], &t["tables"], &t["rows"]),
        (
            &serde_json::json!("into"),
            &serde_json::json!("side"),
            &serde_json::json!(["public.orders"]),
            &serde_json::json!(rows)
        ),
        "{r:#}"
    );
    assert!(
        t["skipped"].to_string().contains("orders_user_id_fkey"),
        "{t}"
    );

    // --replace without the proof: recorded as such.
    let r = run(w.restore_cmd(
        &w.pg,
        "app",
        &[
            "--table",
            "public.profiles",
            "--replace",
            "--no-verify",
            "--yes",
        ],
    ))
    .ok();
    assert!(r.stdout.contains("recorded: app/restores/"), "{}", r.stdout);
    let recs = restore_records(&w);
    assert_eq!(recs.len(), 2, "{recs:#?}");
    let r = &recs[1];
    assert_eq!(r["outcome"], "restored-unverified", "{r:#}");
    assert_eq!(r["tables"]["mode"], "replace");
    assert_eq!(
        r["tables"]["tables"],
        serde_json::json!(["public.profiles"])
    );
    assert!(r["tables"]["schema"].is_null(), "{r:#}");

    // `show` of the backup lists both restores.
    let shown = w.run(&["show", &id, "--json"]).ok().json();
    let modes: Vec<&str> = shown["restores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tables"]["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["into", "replace"], "{shown:#}");
    let human = w.run(&["show", &id]).ok().stdout;
    assert!(
        human.contains("tables public.orders into schema side on ")
            && human.contains(": restored, proven"),
        "{human}"
    );
    assert!(
        human.contains("tables public.profiles replaced on "),
        "{human}"
    );
}

/// `--schema public`: every table of the schema (two RLS-protected, a partitioned one, an
/// awkward name) lands in the side schema with its rows, policies and grants; auth and the
/// live public tables are untouched.
#[test]
fn a_whole_schema_restores_into_a_side_schema() {
    let w = World::local();
    w.backup();
    let tables: Vec<String> =
        w.pg.psql(
            "app",
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace
               AND relkind IN ('r', 'p') ORDER BY relname COLLATE \"C\"",
        )
        .lines()
        .map(str::to_string)
        .collect();
    assert!(tables.len() >= 6, "{tables:?}");
    assert!(
        tables.contains(&"Weird \"Name\" tbl".to_string()),
        "{tables:?}"
    );
    let before: Vec<String> = tables
        .iter()
        .map(|t| table_state(&w.pg, "public", t))
        .collect();
    let rls = before.iter().filter(|s| s.contains("rls true")).count();
    assert!(rls >= 2, "{before:#?}");
    let users = digest(&w.pg, "auth.users");
    w.pg.psql("app", "DELETE FROM public.profiles WHERE is_private; DROP POLICY profiles_select ON public.profiles;");
    let damaged = table_state(&w.pg, "public", "profiles");
    let schemas = "SELECT string_agg(nspname, ',' ORDER BY nspname COLLATE \"C\") FROM pg_namespace WHERE nspname !~ '^pg_'";
    let schemas_before = w.pg.psql("app", schemas);

    let r = run(w.restore_cmd(
        &w.pg,
        "app",
        &["--schema", "public", "--into", "side", "--yes"],
    ))
    .ok();
    assert!(r.stdout.contains("proven"), "{}", r.stdout);
    let side: Vec<String> =
        w.pg.psql(
            "app",
            "SELECT relname FROM pg_class WHERE relnamespace = 'side'::regnamespace
               AND relkind IN ('r', 'p') ORDER BY relname COLLATE \"C\"",
        )
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(side, tables);
    for (t, b) in tables.iter().zip(&before) {
        assert_eq!(&table_state(&w.pg, "side", t), b, "{t}");
    }
    assert_eq!(table_state(&w.pg, "public", "profiles"), damaged);
    assert_eq!(digest(&w.pg, "auth.users"), users);
    // One schema more, side; nothing else created or dropped.
    let mut expected: Vec<&str> = schemas_before.split(',').collect();
    expected.push("side");
    expected.sort();
    assert_eq!(w.pg.psql("app", schemas), expected.join(","));
}

/// The partitions of `schema.events`: name, bound, rows and digest, one line each.
fn partitions(pg: &Pg, schema: &str) -> String {
    pg.psql(
        "app",
        &format!(
            "SELECT c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid) || ' ' ||
                    (SELECT count(*) || ' ' || md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), ''))
                       FROM {schema}.events t WHERE t.tableoid = c.oid)
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = '{schema}.events'::regclass ORDER BY c.relname"
        ),
    )
}

/// Naming a range-partitioned table restores its three partitions with their data, beside
/// the live table and in its place; the plan names them.
#[test]
fn a_partitioned_table_restores_with_its_partitions() {
    let w = World::local();
    w.pg.psql(
        "app",
        "CREATE TABLE public.events_2026_03 PARTITION OF public.events FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
         INSERT INTO public.events SELECT i, date '2026-03-01' + (i % 31), 'march ' || i FROM generate_series(5001, 5100) i;",
    );
    w.backup();
    let before = partitions(&w.pg, "public");
    assert_eq!(before.lines().count(), 3, "{before}");
    assert!(
        before.lines().all(|l| !l.contains(" 0 ")),
        "every partition has rows: {before}"
    );
    w.pg.psql(
        "app",
        "DELETE FROM public.events WHERE id % 2 = 0; DROP TABLE public.events_2026_03;",
    );
    let damaged = partitions(&w.pg, "public");

    let plan = run(w.restore_cmd(
        &w.pg,
        "app",
        &[
            "--table",
            "public.events",
            "--into",
            "side",
            "--dry-run",
            "--json",
        ],
    ))
    .ok()
    .json();
    assert_eq!(
        plan["tables"],
        serde_json::json!([
            "public.events",
            "public.events_2026_01",
            "public.events_2026_02",
            "public.events_2026_03"
        ]),
        "{plan:#}"
    );
    assert_eq!(plan["partitions"].as_array().unwrap().len(), 3, "{plan:#}");
    assert!(plan["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["partition_of"] == "public.events"));
    let text = run(w.restore_cmd(
        &w.pg,
        "app",
        &["--table", "public.events", "--into", "side", "--dry-run"],
    ))
    .ok()
    .stdout;
    assert!(
        text.contains("create public.events_2026_03 (partition of public.events)"),
        "{text}"
    );

    run(w.restore_cmd(
        &w.pg,
        "app",
        &["--table", "public.events", "--into", "side", "--yes"],
    ))
    .ok();
    assert_eq!(partitions(&w.pg, "side"), before);
    assert_eq!(partitions(&w.pg, "public"), damaged);

    let r = run(w.restore_cmd(
        &w.pg,
        "app",
        &["--table", "public.events", "--replace", "--yes"],
    ))
    .ok();
    assert!(r.stdout.contains("proven"), "{}", r.stdout);
    assert_eq!(partitions(&w.pg, "public"), before);
}
