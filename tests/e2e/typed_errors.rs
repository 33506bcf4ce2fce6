//! Failures that pgdr tells apart by their type (SQLSTATE), not by their message text.

use crate::common::*;

/// A target server without a `postgres` database (SQLSTATE 3D000 on connecting to it):
/// restore falls back to `template1` for its administration and restores as usual.
#[test]
fn restore_to_a_server_without_a_postgres_database_uses_template1() {
    let w = World::local();
    w.backup();
    w.pg.psql("template1", "DROP DATABASE postgres");
    let r = run(w.restore_cmd(&w.pg, "app_copy", &["--yes"]));
    // Put it back before asserting, for the harness's own queries.
    w.pg.psql("template1", "CREATE DATABASE postgres");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("restored and proven: "), "{}", r.stdout);
    assert_eq!(
        w.pg.psql("app_copy", "SELECT count(*) FROM public.orders"),
        w.pg.psql("app", "SELECT count(*) FROM public.orders")
    );
}
