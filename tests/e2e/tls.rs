//! sslmode=verify-ca / verify-full against a real server presenting a certificate from a test
//! CA: pgdr's own connection and pg_dump's both check it, and a failed check is one line
//! naming the database and what to fix.

use std::path::Path;

use crate::common::*;

/// `backup` of `app` on `w`'s cluster through `host` with the given query string.
fn backup(w: &World, host: &str, query: &str, home: Option<&Path>) -> Run {
    let mut c = pgdr_cmd();
    c.args([
        "backup",
        "--quiet",
        "--source",
        &format!(
            "postgres://postgres:{PG_PASSWORD}@{host}:{}/app?{query}",
            w.pg.port
        ),
        "--recipient",
        &w.recipient,
    ]);
    if let Some(h) = home {
        c.env("HOME", h);
    }
    w.repo.apply(&mut c);
    run(c)
}

#[track_caller]
fn fails_with(r: &Run, message: &str, hint: &str) {
    assert_eq!(r.code, 2, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stderr.contains(message), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("hint: {hint}")), "{}", r.stderr);
    assert!(!r.stderr.contains(PG_PASSWORD), "{}", r.stderr);
}

#[test]
fn verify_full_checks_the_chain_and_the_host_for_pgdr_and_pg_dump() {
    let w = World::local();
    let ca = w.pg.require_ssl_signed("DNS:localhost,IP:127.0.0.1");
    let ca = ca.display();

    // The server refuses plain text, so a completed backup means pgdr's connection and
    // pg_dump's (PGSSLMODE=verify-full, PGSSLROOTCERT=the CA) both passed the check.
    backup(
        &w,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
        None,
    )
    .ok();
    // The IP subjectAltName counts for a connection by address, as in libpq.
    backup(
        &w,
        "127.0.0.1",
        &format!("connect_timeout=5&sslrootcert={ca}&sslmode=verify-full"),
        None,
    )
    .ok();
    let list = w.list();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list.iter().all(|b| b["database"] == "app"), "{list:?}");

    // Another CA did not sign the server's certificate: nothing is stored.
    let (other, _) = make_ca(&w.dir.path().join("other"), "other");
    let r = backup(
        &w,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", other.display()),
        None,
    );
    fails_with(
        &r,
        &format!(
            "database 'app' (postgres@localhost:{}/app): certificate check failed: the server's certificate is not signed by a CA in {}",
            w.pg.port,
            other.display()
        ),
        "set sslrootcert=/path/to/ca.crt to the CA that signed the server's certificate",
    );
    // Nor is the OS trust store's.
    let r = backup(&w, "localhost", "sslrootcert=system", None);
    fails_with(
        &r,
        "the server's certificate is not signed by a CA in the system trust store",
        "set sslrootcert=",
    );
    assert_eq!(w.list().len(), 2);

    // Without sslrootcert, libpq's ~/.postgresql/root.crt: its absence is named with the fix.
    let home = w.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let r = backup(&w, "localhost", "sslmode=verify-full", Some(&home));
    fails_with(
        &r,
        &format!(
            "database 'app' (postgres@localhost:{}/app): sslmode=verify-full needs the CA certificate that signed the server's: {}/.postgresql/root.crt does not exist",
            w.pg.port,
            home.display()
        ),
        "add sslrootcert=/path/to/ca.crt to the URL; for Supabase, download the CA certificate from the dashboard's database settings",
    );
    std::fs::create_dir_all(home.join(".postgresql")).unwrap();
    std::fs::copy(ca.to_string(), home.join(".postgresql/root.crt")).unwrap();
    backup(&w, "localhost", "sslmode=verify-full", Some(&home)).ok();
    assert_eq!(w.list().len(), 3);

    // An unknown sslmode is refused before connecting.
    let r = backup(&w, "localhost", "sslmode=verify", None);
    fails_with(
        &r,
        "--source: sslmode=verify is not supported",
        "use sslmode=disable, prefer, require, verify-ca or verify-full",
    );
}

#[test]
fn verify_ca_checks_the_chain_but_not_the_host_name() {
    let w = World::local();
    // A certificate for another name: right CA, wrong host.
    let ca = w.pg.require_ssl_signed("DNS:db.pgdr.test");
    let ca = ca.display();

    let r = backup(
        &w,
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
        None,
    );
    fails_with(
        &r,
        &format!(
            "database 'app' (postgres@127.0.0.1:{}/app): certificate check failed: the server's certificate is not valid for host '127.0.0.1' (it names db.pgdr.test)",
            w.pg.port
        ),
        "connect by a host name the certificate lists, or use sslmode=verify-ca",
    );
    assert!(w.list().is_empty());

    // verify-ca accepts the name (pgdr and pg_dump alike: the backup completes)...
    backup(
        &w,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
        None,
    )
    .ok();
    let list = w.list();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["database"], "app");

    // ... but still refuses a certificate its roots did not sign.
    let (other, _) = make_ca(&w.dir.path().join("other"), "other");
    let r = backup(
        &w,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={}", other.display()),
        None,
    );
    fails_with(
        &r,
        "certificate check failed: the server's certificate is not signed by a CA in",
        "set sslrootcert=",
    );
    assert_eq!(w.list().len(), 1);
}
