//! Change capture over TLS against a server presenting a certificate from a test CA: the
//! replication connection checks it exactly as pgdr's own connections do (verify-full by name
//! and by IP subjectAltName, `sslrootcert=system` meaning the operating system's store, not a
//! built-in list), and a wrong CA is refused by `capture enable` and `capture run` with one
//! line naming the certificate check.

use std::process::{Child, Command, Stdio};

use crate::capture_run::{stop_runner, stored_xids, txn};
use crate::common::*;

/// `pgdr capture ARGS` for `app` through `host` with the URL query `query`.
fn capture(w: &World, host: &str, query: &str, args: &[&str]) -> Command {
    let mut c = pgdr_cmd();
    c.arg("capture").args(args).args([
        "--source",
        &format!(
            "postgres://postgres:{PG_PASSWORD}@{host}:{}/app?{query}",
            w.pg.port
        ),
    ]);
    // `enable` takes neither key, `run` only the recipient: the environment gives them.
    c.env("PGDR_RECIPIENT", &w.recipient);
    w.repo.apply(&mut c);
    c
}

fn runner(mut c: Command) -> Child {
    c.args(["--segment-age", "1s", "--heartbeat", "1s", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.spawn().unwrap()
}

/// Whether every walsender of `app` speaks TLS (and there is one).
fn walsender_uses_tls(w: &World) -> bool {
    let out = w.pg.psql(
        "postgres",
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a
           JOIN pg_stat_ssl s USING (pid)
          WHERE a.backend_type = 'walsender' AND a.datname = 'app'",
    );
    let (tls, all) = out.trim().split_once('|').expect("two counts");
    tls == all && all != "0"
}

/// One transaction, stored by the runner `c` (its `want`-th), and the runner's walsender on TLS.
fn captures_one(w: &World, c: Command, want: usize) {
    let child = runner(c);
    let xid = txn(w, "INSERT INTO t (v) VALUES ('over tls')", "COMMIT");
    let stored = stored_xids(w, want);
    assert!(stored.contains(&(xid & 0xFFFF_FFFF)), "{stored:?}");
    assert!(
        walsender_uses_tls(w),
        "the replication session is not on TLS"
    );
    let report = stop_runner(child);
    assert!(
        !report["segments"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
}

#[track_caller]
fn refused_by_the_certificate_check(r: &Run, roots: &str) {
    assert_eq!(r.code, 2, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(
        lines[0].contains(&format!(
            "certificate check failed: the server's certificate is not signed by a CA in {roots}"
        )),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(PG_PASSWORD), "{}", r.stderr);
}

#[test]
fn capture_runs_over_verify_full_and_refuses_a_wrong_ca() {
    let pg = Pg::start_logical();
    pg.create_db("app");
    pg.psql("app", "CREATE TABLE t (id serial PRIMARY KEY, v text)");
    let w = World::around_pg(pg, None);
    let ca = w.pg.require_ssl_signed("DNS:localhost,IP:127.0.0.1");
    let full = format!("sslmode=verify-full&sslrootcert={}", ca.display());

    // A wrong CA first: nothing is set up, nothing runs.
    let (other, _) = make_ca(&w.dir.path().join("other"), "other");
    let wrong = format!("sslmode=verify-full&sslrootcert={}", other.display());
    let r = run(capture(&w, "localhost", &wrong, &["enable"]));
    refused_by_the_certificate_check(&r, &other.display().to_string());

    run(capture(&w, "localhost", &full, &["enable"])).ok();
    // By name, then by address (the IP subjectAltName counts, as for pgdr's own connections).
    captures_one(&w, capture(&w, "localhost", &full, &["run"]), 1);
    captures_one(&w, capture(&w, "127.0.0.1", &full, &["run"]), 2);

    let r = run(capture(&w, "localhost", &wrong, &["run"]));
    refused_by_the_certificate_check(&r, &other.display().to_string());
    // The system store does not hold the test CA.
    let r = run(capture(&w, "localhost", "sslrootcert=system", &["run"]));
    refused_by_the_certificate_check(&r, "the system trust store");

    // `sslrootcert=system` is the operating system's store on the replication connection as
    // on pgdr's own (SSL_CERT_FILE points rustls-native-certs, OpenSSL and libpq at a bundle):
    // with the test CA in it the capture runs. A built-in list of public CAs would refuse it.
    let mut c = capture(&w, "localhost", "sslrootcert=system", &["run"]);
    c.env("SSL_CERT_FILE", &ca);
    captures_one(&w, c, 3);
}
