use super::*;

fn env() -> LibpqEnv {
    LibpqEnv {
        home: Some("/nonexistent-home".into()),
        sysconf_dir: Some("/nonexistent-sysconf".into()),
        ..Default::default()
    }
}

fn pg_env() -> LibpqEnv {
    LibpqEnv {
        host: Some("envhost".into()),
        port: Some("6000".into()),
        dbname: Some("envdb".into()),
        user: Some("envuser".into()),
        ..env()
    }
}

fn parsed(s: &str) -> tokio_postgres::Config {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn host(c: &tokio_postgres::Config) -> String {
    match &c.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    }
}

#[test]
fn nothing_to_fill_leaves_the_string_alone() {
    for s in [
        "postgres://u:p@h:5433/db?sslmode=require",
        "host=h dbname=db",
        "postgres://",
        "not a conninfo",
    ] {
        assert_eq!(resolve(s, &env(), "--source").unwrap(), s);
    }
}

#[test]
fn the_environment_fills_what_a_url_leaves_out() {
    let c = parsed(&resolve("postgres://", &pg_env(), "k").unwrap());
    assert_eq!(host(&c), "envhost");
    assert_eq!(c.get_ports(), &[6000]);
    assert_eq!(c.get_dbname(), Some("envdb"));
    assert_eq!(c.get_user(), Some("envuser"));

    // What the URL says wins; a host without a port gets PGPORT, not tokio-postgres' 5432.
    let s = resolve("postgres://me@db.x/app", &pg_env(), "k").unwrap();
    assert_eq!(s, "postgres://me@db.x:6000/app");
    let c = parsed(&resolve("postgres://me@db.x:5433/app", &pg_env(), "k").unwrap());
    assert_eq!((host(&c), c.get_ports()), ("db.x".to_string(), &[5433][..]));
    assert_eq!(c.get_user(), Some("me"));
    // Two hosts, one port each where missing; IPv6 in brackets.
    let s = resolve("postgres://a,[::1]:7,[::2]/d", &pg_env(), "k").unwrap();
    assert!(
        s.starts_with("postgres://a:6000,[::1]:7,[::2]:6000/d?"),
        "{s}"
    );
    let c = parsed(&s);
    assert_eq!(c.get_ports(), &[6000, 7, 6000]);
    // A password but no user: the user comes from PGUSER, the password stays.
    let c = parsed(&resolve("postgres://:pw@h/db", &pg_env(), "k").unwrap());
    assert_eq!(c.get_user(), Some("envuser"));
    assert_eq!(c.get_password(), Some(&b"pw"[..]));
    // Query parameters count as given.
    let c = parsed(&resolve("postgres:///?dbname=q&host=qh", &pg_env(), "k").unwrap());
    assert_eq!((host(&c), c.get_dbname()), ("qh".to_string(), Some("q")));
}

#[test]
fn the_environment_fills_a_keyword_conninfo() {
    let s = resolve("host=h  dbname = 'my db' password='it\\'s'", &pg_env(), "k").unwrap();
    let c = parsed(&s);
    assert_eq!(host(&c), "h");
    assert_eq!(c.get_dbname(), Some("my db"));
    assert_eq!(c.get_password(), Some(&b"it's"[..]));
    assert_eq!(c.get_ports(), &[6000]);
    assert_eq!(c.get_user(), Some("envuser"));
    // hostaddr given: PGHOST does not add a second, mismatched host list.
    let c = parsed(&resolve("hostaddr=127.0.0.1 dbname=d", &pg_env(), "k").unwrap());
    assert!(c.get_hosts().is_empty());
}

#[test]
fn unix_socket_directories_and_odd_values_survive_the_url() {
    let e = LibpqEnv {
        host: Some("/var/run/postgresql".into()),
        dbname: Some("a&b=c d".into()),
        ..env()
    };
    let c = parsed(&resolve("postgres://", &e, "k").unwrap());
    assert_eq!(host(&c), "/var/run/postgresql");
    assert_eq!(c.get_dbname(), Some("a&b=c d"));
}

#[test]
fn a_port_list_must_match_the_hosts() {
    let e = LibpqEnv {
        port: Some("1,2,3".into()),
        ..env()
    };
    let err = resolve("postgres://a,b/db", &e, "--source").unwrap_err();
    assert_eq!(
        err.message,
        "--source: 3 ports for 2 hosts (PGPORT or the service's port)"
    );
    let e = LibpqEnv {
        port: Some("1,2".into()),
        ..env()
    };
    let c = parsed(&resolve("postgres://a,b/db", &e, "k").unwrap());
    assert_eq!(c.get_ports(), &[1, 2]);
}

fn with_service_file(text: &str) -> (tempfile::TempDir, LibpqEnv) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("svc.conf");
    std::fs::write(&f, text).unwrap();
    let e = LibpqEnv {
        service_file: Some(f),
        ..pg_env()
    };
    (dir, e)
}

#[test]
fn a_service_beats_the_environment_and_loses_to_the_string() {
    let (_d, mut e) = with_service_file(
        "[prod]\nhost=svchost\nport=7000\ndbname=svcdb\nsslmode=require\npassword=svcpw\n",
    );
    e.service = Some("prod".into());
    let c = parsed(&resolve("postgres://", &e, "k").unwrap());
    assert_eq!(host(&c), "svchost");
    assert_eq!(c.get_ports(), &[7000]);
    assert_eq!(c.get_dbname(), Some("svcdb"));
    assert_eq!(c.get_user(), Some("envuser"), "not in the service: PGUSER");
    assert_eq!(c.get_password(), Some(&b"svcpw"[..]));
    assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
    let c = parsed(&resolve("postgres://h2/other", &e, "k").unwrap());
    assert_eq!(host(&c), "h2");
    assert_eq!(c.get_ports(), &[7000]);
    assert_eq!(c.get_dbname(), Some("other"));
}

#[test]
fn service_in_the_string_is_taken_out_and_wins_over_pgservice() {
    let (_d, mut e) = with_service_file("[a]\ndbname=from_a\n[b]\ndbname=from_b\n");
    e.service = Some("a".into());
    let s = resolve("service=b host=h", &e, "--source").unwrap();
    assert!(!s.contains("service"), "{s}");
    assert_eq!(parsed(&s).get_dbname(), Some("from_b"));
    let s = resolve("postgres://h?service=b&connect_timeout=3", &e, "--source").unwrap();
    assert!(!s.contains("service"), "{s}");
    let c = parsed(&s);
    assert_eq!(c.get_dbname(), Some("from_b"));
    assert_eq!(
        c.get_connect_timeout(),
        Some(&std::time::Duration::from_secs(3))
    );
    let err = resolve("service=zz", &e, "--source").unwrap_err();
    assert!(
        err.message
            .starts_with("--source: service 'zz' is not defined in "),
        "{}",
        err.message
    );
    e.service = Some("nope".into());
    let err = resolve("postgres://h/db", &e, "--source").unwrap_err();
    assert!(
        err.message
            .starts_with("PGSERVICE: service 'nope' is not defined in "),
        "{}",
        err.message
    );
    assert!(err.message.contains("svc.conf"), "{}", err.message);
}

#[test]
fn only_a_database_or_a_service_makes_a_source_alone() {
    let mut e = env();
    e.host = Some("h".into());
    e.port = Some("1".into());
    assert!(!e.names_database());
    e.dbname = Some("d".into());
    assert!(e.names_database());
    let e = LibpqEnv {
        service: Some("s".into()),
        ..env()
    };
    assert!(e.names_database());
}
