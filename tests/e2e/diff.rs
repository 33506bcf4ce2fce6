//! Issue 18, `pgdr diff`: the live sample database (Supabase-like schema) against a labelled
//! backup's fingerprint, before and after a migration.

use serde_json::Value;

use crate::common::*;

/// `pgdr diff ARGS --target <app>` with the repository only (no --source): with the age
/// identity when `identity`, as on the host that holds it; without, as on the database host.
fn diff(w: &World, args: &[&str], identity: bool) -> Run {
    let mut c = pgdr_cmd();
    c.arg("diff")
        .args(args)
        .arg("--target")
        .arg(w.pg.url("app"));
    w.repo.apply(&mut c);
    if identity {
        c.arg("--identity").arg(&w.identity);
    }
    run(c)
}

fn table<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == name)
        .unwrap_or_else(|| panic!("{name} not in {r:#}"))
}

/// Tables whose counts or content differ.
fn differing(r: &Value) -> Vec<String> {
    r["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["diff"] != 0 || (t["content"] != "same" && t["content"] != "not_compared"))
        .map(|t| t["table"].as_str().unwrap().to_string())
        .collect()
}

fn lines(r: &Value, key: &str) -> Vec<String> {
    r[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn diff_names_exactly_what_a_migration_changed() {
    let w = World::local();
    w.run(&["backup", "--label", "before-migration", "--quiet"])
        .ok();
    let orders = w.pg.psql("app", "SELECT count(*) FROM public.orders");
    let orders: i64 = orders.trim().parse().unwrap();
    assert!(orders >= 3, "the sample has orders to delete");

    // Untouched: empty, exit 0, whether setting values are compared (identity) or not.
    for identity in [false, true] {
        let r = diff(&w, &["before-migration", "--json"], identity);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let j = r.json();
        assert_eq!(j["identical"], true);
        assert_eq!(j["sensitive_values_compared"], identity);
        assert!(lines(&j, "schema").is_empty(), "{j:#}");
        assert!(differing(&j).is_empty(), "{j:#}");
        assert!(j["tables"].as_array().unwrap().len() >= 5, "{j:#}");
        assert_eq!(table(&j, "public.orders")["rows_now"], orders);
        assert_eq!(table(&j, "public.orders")["content"], "same");
    }
    let human = diff(&w, &["--latest"], false);
    assert_eq!(human.code, 0, "{}\n{}", human.stdout, human.stderr);
    assert!(human.stdout.contains("rows in backup"), "{}", human.stdout);
    assert!(
        human.stdout.contains("identical to the backup"),
        "{}",
        human.stdout
    );

    w.pg.psql(
        "app",
        "ALTER TABLE public.profiles ADD COLUMN nickname text;
         DROP POLICY profiles_update ON public.profiles;
         DELETE FROM public.orders WHERE id IN (SELECT id FROM public.orders ORDER BY id LIMIT 2);
         CREATE OR REPLACE FUNCTION public.health() RETURNS text LANGUAGE sql AS $$ SELECT 'fine' $$;",
    );

    let r = diff(&w, &["before-migration", "--json"], true);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["identical"], false);
    assert_eq!(differing(&j), ["public.orders"], "{j:#}");
    let o = table(&j, "public.orders");
    assert_eq!(o["rows_backup"], orders);
    assert_eq!(o["rows_now"], orders - 2);
    assert_eq!(o["diff"], -2);
    assert_eq!(o["content"], "changed");
    // The new column does not change the rows the backup holds.
    assert_eq!(table(&j, "public.profiles")["content"], "same");
    let schema = lines(&j, "schema");
    assert_eq!(schema.len(), 3, "{schema:#?}");
    assert!(
        schema.contains(&"policy \"profiles_update\" on public.profiles: missing now".to_string()),
        "{schema:#?}"
    );
    let one = |needle: &str| {
        assert_eq!(
            schema.iter().filter(|l| l.contains(needle)).count(),
            1,
            "{needle} in {schema:#?}"
        )
    };
    one("column \"nickname\"");
    one("function public.health()");
    assert!(schema
        .iter()
        .any(|l| l.starts_with("table public.profiles: column \"nickname\"")));

    let human = diff(&w, &["before-migration"], false);
    assert_eq!(human.code, 1, "{}\n{}", human.stdout, human.stderr);
    assert!(human.stdout.contains("public.orders"), "{}", human.stdout);
    assert!(human.stdout.contains("changed"), "{}", human.stdout);
    assert!(human.stdout.contains("profiles_update"), "{}", human.stdout);
    assert!(
        human.stdout.contains("differs from the backup"),
        "{}",
        human.stdout
    );

    // --counts-only: counts, no digests.
    let r = diff(&w, &["before-migration", "--json", "--counts-only"], false);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["counts_only"], true);
    assert!(j["tables"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["content"] == "not_compared"));
    assert_eq!(differing(&j), ["public.orders"], "{j:#}");
    assert_eq!(table(&j, "public.orders")["diff"], -2);

    // --table narrows counts and schema lines to that table.
    let r = diff(
        &w,
        &["before-migration", "--json", "--table", "public.profiles"],
        false,
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    let tables: Vec<&str> = j["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(tables, ["public.profiles"]);
    assert_eq!(lines(&j, "schema").len(), 2, "{j:#}");

    // A setting's value is compared only with the identity, and never printed.
    w.pg.psql(
        "app",
        "ALTER DATABASE app SET app.settings.environment = 'production'",
    );
    let with = diff(&w, &["before-migration", "--json"], true).json();
    let setting: Vec<String> = lines(&with, "schema")
        .into_iter()
        .filter(|l| l.contains("app.settings.environment"))
        .collect();
    assert_eq!(setting.len(), 1, "{with:#}");
    assert!(
        !setting[0].contains("production") && !setting[0].contains("demo"),
        "{setting:?}"
    );
    let without = diff(&w, &["before-migration", "--json"], false).json();
    assert_eq!(lines(&without, "schema").len(), 3, "{without:#}");

    // A dropped table and a dropped column fail their statements: each is named and the
    // snapshot goes on to the other tables.
    w.pg.psql(
        "app",
        "DROP TABLE public.measurements CASCADE; ALTER TABLE public.profiles DROP COLUMN bio",
    );
    let r = diff(&w, &["before-migration", "--json"], true);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    let m = table(&j, "public.measurements");
    assert_eq!(
        (m["content"].as_str(), m["rows_now"].is_null()),
        (Some("dropped"), true)
    );
    let p = table(&j, "public.profiles");
    assert_eq!(
        (p["content"].as_str(), &p["diff"]),
        (Some("changed"), &Value::from(0))
    );
    for t in j["tables"].as_array().unwrap() {
        if t["table"] != "public.measurements" {
            assert!(t["rows_now"].is_u64(), "{t}");
        }
    }
    assert_eq!(
        differing(&j),
        ["public.measurements", "public.orders", "public.profiles"],
        "{j:#}"
    );

    // An unknown table is named, exit 2, nothing else printed on stdout.
    let r = diff(&w, &["before-migration", "--table", "public.nosuch"], false);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("--table public.nosuch"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

/// A table created after the backup is a row of its own ("new", rows now, none in the
/// backup), a dropped one the other way round ("dropped", rows in the backup, none now), in
/// the human table and in --json; both make the diff exit 1.
#[test]
fn diff_shows_a_new_table_and_a_dropped_one_as_rows() {
    let w = World::local();
    let events: i64 =
        w.pg.psql("app", "SELECT count(*) FROM public.events_2026_01")
            .trim()
            .parse()
            .unwrap();
    assert!(events > 0);
    w.run(&["backup", "--label", "before", "--quiet"]).ok();
    w.pg.psql(
        "app",
        "CREATE TABLE public.audit (id int PRIMARY KEY, what text);
         INSERT INTO public.audit SELECT i, 'a' || i FROM generate_series(1, 12) i;
         CREATE SCHEMA extra; CREATE TABLE extra.\"Empty One\" (x int);
         DROP TABLE public.events_2026_01;",
    );
    // The oracle: the live catalog and counts, not pgdr's.
    let audit: i64 =
        w.pg.psql("app", "SELECT count(*) FROM public.audit")
            .trim()
            .parse()
            .unwrap();
    assert_eq!(
        w.pg.psql(
            "app",
            "SELECT count(*) FROM pg_class WHERE relname = 'events_2026_01'"
        ),
        "0"
    );

    let r = diff(&w, &["before", "--json"], false);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["identical"], false);
    let a = table(&j, "public.audit");
    assert_eq!(
        (&a["rows_backup"], &a["rows_now"], &a["diff"], &a["content"]),
        (
            &Value::Null,
            &Value::from(audit),
            &Value::Null,
            &Value::from("new")
        ),
        "{a}"
    );
    let e = table(&j, "extra.Empty One");
    assert_eq!(
        (&e["rows_now"], &e["content"]),
        (&Value::from(0), &Value::from("new"))
    );
    let d = table(&j, "public.events_2026_01");
    assert_eq!(
        (&d["rows_backup"], &d["rows_now"], &d["diff"], &d["content"]),
        (
            &Value::from(events),
            &Value::Null,
            &Value::Null,
            &Value::from("dropped")
        ),
        "{d}"
    );
    // Exactly those three differ; the partitioned parent (no rows of its own) is no row.
    assert_eq!(
        differing(&j),
        ["public.events_2026_01", "extra.Empty One", "public.audit"],
        "{j:#}"
    );
    let human = diff(&w, &["before"], false);
    assert_eq!(human.code, 1, "{}\n{}", human.stdout, human.stderr);
    let row = |name: &str| {
        human
            .stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not in {}", human.stdout))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("public.audit "),
        ["public.audit", "-", &audit.to_string(), "-", "new"]
    );
    assert_eq!(
        row("public.events_2026_01 "),
        [
            "public.events_2026_01",
            &events.to_string(),
            "-",
            "-",
            "dropped"
        ]
    );
    // --table names backup tables only: no new rows are added to a narrowed diff.
    let r = diff(&w, &["before", "--json", "--table", "public.orders"], false);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["tables"].as_array().unwrap().len(), 1);
}

/// A fingerprint no trusted key signed could be made to match anything: with trust keys, diff
/// refuses it (exit 2, named) and accepts the one the host signed.
#[test]
fn diff_refuses_a_backup_no_trusted_key_signed() {
    let w = World::local();
    let key = w.dir.path().join("host.key");
    let mut c = pgdr_cmd();
    c.args(["keygen", "--signing", "--out"]).arg(&key);
    let public = run(c).ok().stdout.trim().to_string();
    w.run(&["backup", "--label", "plain", "--quiet"]).ok();
    let mut c = w.pgdr(&["backup", "--label", "signed", "--quiet"]);
    c.arg("--signing-key").arg(&key);
    run(c).ok();

    let trusted = |label: &str| {
        let mut c = pgdr_cmd();
        c.args(["diff", label, "--json", "--target"])
            .arg(w.pg.url("app"))
            .arg("--trust-key")
            .arg(&public);
        w.repo.apply(&mut c);
        run(c)
    };
    let r = trusted("plain");
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    // Nothing compared: with --json, stdout is the error object only.
    let e = r.json();
    assert!(e.get("identical").is_none(), "{e:#}");
    assert!(
        e["error"].as_str().unwrap().contains("is not signed"),
        "{e:#}"
    );
    assert!(r.stderr.contains("unsigned"), "{}", r.stderr);
    let r = trusted("signed");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["identical"], true);
}
