//! libpq's connection service file (`pg_service.conf`), read as libpq reads it, so
//! `PGSERVICE=name` (or `service=name` in a conninfo) means for pgdr what it means for psql.
//!
//! No maintained crate reads this file, and the format is small: `[name]` sections of
//! `keyword=value` lines, `#` comments, no quoting and no spaces around `=`. The search order
//! is libpq's: `PGSERVICEFILE`, else `~/.pg_service.conf`; if the service is not defined
//! there, `PGSYSCONFDIR/pg_service.conf`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{PgdrError, Result};

/// Where libpq looks when PGSYSCONFDIR is not set: the system directory of the PostgreSQL
/// packages of Debian and Ubuntu (the `pg_config --sysconfdir` of their libpq).
pub const DEFAULT_SYSCONFDIR: &str = "/etc/postgresql-common";

/// The keywords libpq accepts in a service section; anything else is a syntax error there.
const LIBPQ_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "target_session_attrs",
    "load_balance_hosts",
];

/// The keywords pgdr's own connection and its children carry; a service that sets another
/// libpq keyword is refused rather than half-honoured (a client certificate pgdr would not
/// present, say).
pub const SUPPORTED: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "sslmode",
    "sslrootcert",
    "connect_timeout",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "tcp_user_timeout",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// The files libpq searches for a service, in order (only those that exist are read).
pub fn search_path(
    service_file: Option<&Path>,
    home: Option<&Path>,
    sysconf_dir: Option<&Path>,
) -> Vec<PathBuf> {
    let mut files = Vec::new();
    match (service_file, home) {
        (Some(f), _) => files.push(f.to_path_buf()),
        (None, Some(h)) => files.push(h.join(".pg_service.conf")),
        (None, None) => {}
    }
    let sys = sysconf_dir.unwrap_or(Path::new(DEFAULT_SYSCONFDIR));
    files.push(sys.join("pg_service.conf"));
    files
}

/// The settings of `service` from the first of `files` that defines it. `key` names where
/// the service name came from ("PGSERVICE", "--source") in messages.
pub fn lookup(service: &str, files: &[PathBuf], key: &str) -> Result<BTreeMap<String, String>> {
    for f in files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            // libpq skips a file it cannot stat; one it cannot read is worth saying.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(PgdrError::config(format!(
                    "{key}: cannot read service file {}: {e}",
                    f.display()
                ))
                .hint("make the file readable by pgdr's user, or unset PGSERVICE"))
            }
        };
        if let Some(found) = parse(&text, service, f, key)? {
            return Ok(found);
        }
    }
    let searched: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    Err(PgdrError::config(format!(
        "{key}: service '{service}' is not defined in {}",
        searched.join(" or ")
    ))
    .hint(format!(
        "add a [{service}] section to one of those files (PGSERVICEFILE names another), or fix the service name"
    )))
}

/// The `[service]` section of one file's text: None if the file does not define it.
pub fn parse(
    text: &str,
    service: &str,
    file: &Path,
    key: &str,
) -> Result<Option<BTreeMap<String, String>>> {
    let mut found: Option<BTreeMap<String, String>> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            if found.is_some() {
                break; // the next section ends ours
            }
            // libpq compares the name and then wants ']' right after it.
            if rest
                .strip_prefix(service)
                .is_some_and(|r| r.starts_with(']'))
            {
                found = Some(BTreeMap::new());
            }
            continue;
        }
        let Some(settings) = found.as_mut() else {
            continue;
        };
        let at = || format!("{key}: service file {} line {}", file.display(), i + 1);
        let Some((k, v)) = line.split_once('=') else {
            return Err(PgdrError::config(format!("{}: no '=' in this line", at()))
                .hint("write keyword=value, as in host=db.example.com"));
        };
        if k == "service" {
            return Err(PgdrError::config(format!(
                "{}: a service cannot name another service",
                at()
            ))
            .hint("copy the other service's settings into this section"));
        }
        if !LIBPQ_KEYWORDS.contains(&k) {
            return Err(
                PgdrError::config(format!("{}: unknown keyword '{k}'", at())).hint(
                    "use libpq's connection keywords: host, port, dbname, user, sslmode, ...",
                ),
            );
        }
        if !SUPPORTED.contains(&k) {
            return Err(PgdrError::config(format!(
                "{}: pgdr does not support '{k}' in a service",
                at()
            ))
            .hint(format!("supported: {}", SUPPORTED.join(", "))));
        }
        // As in libpq, the first setting of a keyword in the section counts.
        settings
            .entry(k.to_string())
            .or_insert_with(|| v.to_string());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# a comment
[other]
host=elsewhere

[app]
  host=db.example.com
port=6432
dbname=app
user=backup
host=ignored
sslmode=require
[appendix]
dbname=nope
";

    fn get(text: &str, service: &str) -> Result<Option<BTreeMap<String, String>>> {
        parse(text, service, Path::new("/x/pg_service.conf"), "PGSERVICE")
    }

    #[test]
    fn a_section_is_read_as_libpq_reads_it() {
        let s = get(FILE, "app").unwrap().unwrap();
        assert_eq!(
            s["host"], "db.example.com",
            "first setting wins, leading space skipped"
        );
        assert_eq!(s["port"], "6432");
        assert_eq!(s["dbname"], "app");
        assert_eq!(s["user"], "backup");
        assert_eq!(s["sslmode"], "require");
        assert_eq!(s.len(), 5, "{s:?}");
        // "[appendix]" does not match "app"; "[other]" is another section.
        assert_eq!(get(FILE, "appendix").unwrap().unwrap()["dbname"], "nope");
        assert_eq!(get(FILE, "other").unwrap().unwrap()["host"], "elsewhere");
        assert_eq!(get(FILE, "missing").unwrap(), None);
        assert_eq!(get(FILE, "ap").unwrap(), None);
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        let e = get("[a]\nhost db\n", "a").unwrap_err();
        assert_eq!(
            e.message,
            "PGSERVICE: service file /x/pg_service.conf line 2: no '=' in this line"
        );
        let e = get("[a]\nservice=b\n", "a").unwrap_err();
        assert!(e
            .message
            .ends_with("line 2: a service cannot name another service"));
        let e = get("[a]\nhots=db\n", "a").unwrap_err();
        assert!(
            e.message.ends_with("line 2: unknown keyword 'hots'"),
            "{}",
            e.message
        );
        let e = get("[a]\nsslcert=/c.pem\n", "a").unwrap_err();
        assert!(e
            .message
            .ends_with("pgdr does not support 'sslcert' in a service"));
        // Lines of other sections are not judged, as in libpq.
        assert!(get("[b]\nnonsense\n[a]\nhost=h\n", "a").unwrap().is_some());
    }

    #[test]
    fn the_search_order_is_libpqs() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            search_path(Some(Path::new("/s.conf")), Some(Path::new("/home/u")), None),
            vec![p("/s.conf"), p("/etc/postgresql-common/pg_service.conf")]
        );
        assert_eq!(
            search_path(None, Some(Path::new("/home/u")), Some(Path::new("/etc/pg"))),
            vec![p("/home/u/.pg_service.conf"), p("/etc/pg/pg_service.conf")]
        );
    }

    #[test]
    fn the_user_file_wins_and_a_missing_service_names_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.conf");
        let sys = dir.path().join("sys.conf");
        std::fs::write(&user, "[a]\nhost=from-user\n").unwrap();
        std::fs::write(&sys, "[a]\nhost=from-sys\n[b]\nhost=only-sys\n").unwrap();
        let files = vec![user.clone(), dir.path().join("absent.conf"), sys.clone()];
        assert_eq!(
            lookup("a", &files, "PGSERVICE").unwrap()["host"],
            "from-user"
        );
        assert_eq!(
            lookup("b", &files, "PGSERVICE").unwrap()["host"],
            "only-sys"
        );
        let e = lookup("nope", &files, "PGSERVICE").unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "PGSERVICE: service 'nope' is not defined in {} or {} or {}",
                user.display(),
                dir.path().join("absent.conf").display(),
                sys.display()
            )
        );
        assert_eq!(e.kind, crate::error::Kind::Config);
    }
}
