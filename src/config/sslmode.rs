//! libpq's certificate-checking sslmodes in a connection URL.
//!
//! tokio-postgres' parser knows only sslmode disable/prefer/require and rejects `sslrootcert`,
//! so the URL's query is read here first: `verify-ca` / `verify-full` and the root
//! certificates become a [`CertCheck`] kept beside the tokio-postgres `Config`, and
//! tokio-postgres is handed the same URL with `sslmode=require` (TLS is mandatory; checking the
//! certificate is the job of pgdr's connector, `source::tls`). Everything else in the URL is
//! passed on byte for byte.

use std::path::PathBuf;

use crate::error::{PgdrError, Result};

/// Which of libpq's verifying sslmodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// The chain must lead to a trusted root; the host name is not compared.
    Ca,
    /// The chain and the host name (DNS or IP subjectAltName).
    Full,
}

impl VerifyMode {
    /// The sslmode value, as libpq spells it (PGSSLMODE for the child tools).
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyMode::Ca => "verify-ca",
            VerifyMode::Full => "verify-full",
        }
    }
}

/// Where the trusted root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// `sslrootcert=PATH`, made absolute (child tools need not share pgdr's directory).
    File(PathBuf),
    /// No `sslrootcert`: libpq's default, `~/.postgresql/root.crt`. Kept apart from `File` so a
    /// missing file is reported with the fix (give sslrootcert) rather than as a bad path.
    Default(PathBuf),
    /// `sslrootcert=system`: the operating system's trust store (libpq 16+ spelling).
    System,
}

impl std::fmt::Display for Roots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Roots::File(p) | Roots::Default(p) => write!(f, "{}", p.display()),
            Roots::System => f.write_str("the system trust store"),
        }
    }
}

/// Certificate checking asked for in the URL; absent for disable/prefer/require, which
/// encrypt without checking (as libpq).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertCheck {
    pub mode: VerifyMode,
    pub roots: Roots,
}

const MODES_HINT: &str =
    "use sslmode=disable, prefer, require, verify-ca or verify-full (with sslrootcert=/path/to/ca.crt)";

/// Split `url` into what tokio-postgres can parse and the certificate check it cannot.
/// `key` names the setting in messages ("--source", "database[0].url").
pub fn split(url: &str, key: &str) -> Result<(String, Option<CertCheck>)> {
    let Some(after_scheme) = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|p| url.strip_prefix(p))
    else {
        return keyword_form(url, key);
    };
    // Where the query starts, found as tokio-postgres finds it: after the credentials (up to
    // the first '@'), the first '?'.
    let creds_end = after_scheme.find('@').map_or(0, |i| i + 1);
    let Some(q) = after_scheme[creds_end..].find('?') else {
        return Ok((url.to_string(), None));
    };
    let query_start = url.len() - after_scheme.len() + creds_end + q + 1;
    let (head, query) = url.split_at(query_start);

    let (mode, root) = ssl_params(query, key)?;
    let Some(mode) = verify_mode(mode.as_deref(), root.as_deref(), key)? else {
        return Ok((url.to_string(), None));
    };
    let roots = roots(root.as_deref(), mode, key)?;
    let out = format!("{}{}", head, rewrite(query, key)?);
    Ok((out, Some(CertCheck { mode, roots })))
}

/// The decoded `sslmode` and `sslrootcert` of a URL's query (the last of each wins, as in
/// libpq); every other parameter is tokio-postgres' to read.
fn ssl_params(query: &str, key: &str) -> Result<(Option<String>, Option<String>)> {
    let mut mode: Option<String> = None;
    let mut root: Option<String> = None;
    for param in query.split('&') {
        // A parameter without '=' is tokio-postgres' to report.
        let Some((k, v)) = param.split_once('=') else {
            continue;
        };
        match decode(k, key)?.as_str() {
            "sslmode" => mode = Some(decode(v, key)?),
            "sslrootcert" => root = Some(decode(v, key)?),
            _ => {}
        }
    }
    Ok((mode, root))
}

/// The certificate check the sslmode and sslrootcert ask for, as libpq reads the pair;
/// `None` encrypts without checking. The combinations libpq would read otherwise than a user
/// expects are refused with the fix.
fn verify_mode(mode: Option<&str>, root: Option<&str>, key: &str) -> Result<Option<VerifyMode>> {
    let verify = match mode {
        Some("verify-ca") => Some(VerifyMode::Ca),
        Some("verify-full") => Some(VerifyMode::Full),
        Some("disable" | "prefer" | "require") | None => None,
        Some(other) => {
            return Err(
                PgdrError::config(format!("{key}: sslmode={other} is not supported"))
                    .hint(MODES_HINT),
            )
        }
    };
    let verify = match (verify, mode, root) {
        (v, _, None) => v,
        // libpq 16: the system store only makes sense with the host name checked.
        (Some(VerifyMode::Full), _, Some("system")) | (None, None, Some("system")) => {
            Some(VerifyMode::Full)
        }
        (_, m, Some("system")) => {
            return Err(PgdrError::config(format!(
                "{key}: sslrootcert=system needs sslmode=verify-full, not {}",
                m.unwrap_or("prefer")
            ))
            .hint("public CAs sign certificates for any name, so libpq (and pgdr) check the host name too: use sslmode=verify-full"))
        }
        (Some(v), _, Some(_)) => Some(v),
        // libpq checks the chain under require whenever a root certificate is given.
        (None, Some("require"), Some(_)) => Some(VerifyMode::Ca),
        (None, m, Some(_)) => {
            return Err(PgdrError::config(format!(
                "{key}: sslrootcert is used only with sslmode=verify-ca or verify-full, not {}",
                m.unwrap_or("prefer (the default)")
            ))
            .hint("add sslmode=verify-full to the URL to check the server's certificate and host name"))
        }
    };
    Ok(verify)
}

/// Where the trusted roots come from: the system store, a file made absolute, or libpq's
/// default under HOME.
fn roots(root: Option<&str>, mode: VerifyMode, key: &str) -> Result<Roots> {
    let roots = match root {
        Some("system") => Roots::System,
        Some("") => {
            return Err(PgdrError::config(format!("{key}: sslrootcert is empty"))
                .hint("give sslrootcert=/path/to/ca.crt or sslrootcert=system"))
        }
        Some(p) => Roots::File(
            std::path::absolute(p)
                .map_err(|e| PgdrError::config(format!("{key}: sslrootcert {p}: {e}")))?,
        ),
        None => {
            let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).ok_or_else(|| {
                PgdrError::config(format!(
                    "{key}: sslmode={} without sslrootcert reads ~/.postgresql/root.crt, but HOME is not set",
                    mode.as_str()
                ))
                .hint("add sslrootcert=/path/to/ca.crt to the URL")
            })?;
            Roots::Default(PathBuf::from(home).join(".postgresql/root.crt"))
        }
    };
    Ok(roots)
}

/// The query rewritten for tokio-postgres: the verify modes become require, sslrootcert goes,
/// every other parameter is kept byte for byte.
fn rewrite(query: &str, key: &str) -> Result<String> {
    let mut kept: Vec<String> = Vec::new();
    let mut saw_mode = false;
    for param in query.split('&') {
        let k = param
            .split_once('=')
            .map(|(k, _)| decode(k, key))
            .transpose()?;
        match k.as_deref() {
            Some("sslrootcert") => {}
            Some("sslmode") => {
                saw_mode = true;
                kept.push("sslmode=require".into());
            }
            _ => kept.push(param.to_string()),
        }
    }
    if !saw_mode {
        kept.push("sslmode=require".into());
    }
    Ok(kept.join("&"))
}

/// The `host=... dbname=...` form: passed on as it is; the verify modes are taken in the URL
/// form only, said plainly instead of tokio-postgres' "invalid value".
fn keyword_form(s: &str, key: &str) -> Result<(String, Option<CertCheck>)> {
    if s.contains("sslrootcert") || s.contains("verify-ca") || s.contains("verify-full") {
        return Err(PgdrError::config(format!(
            "{key}: sslmode=verify-ca/verify-full and sslrootcert are read from the URL form only"
        ))
        .hint("write postgres://USER@HOST:PORT/DBNAME?sslmode=verify-full&sslrootcert=/path/to/ca.crt"));
    }
    Ok((s.to_string(), None))
}

/// Percent-decoding as tokio-postgres does it: %XX becomes the byte, a '%' not followed by two
/// hex digits stays, '+' is not a space.
fn decode(s: &str, key: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| {
        PgdrError::config(format!(
            "{key}: a URL parameter is not valid UTF-8 after percent-decoding"
        ))
        .hint("percent-encode each byte of a UTF-8 path, e.g. %C3%A9 for é")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> (String, Option<CertCheck>) {
        split(url, "--source").unwrap()
    }

    #[test]
    fn modes_without_checking_pass_through_untouched() {
        for u in [
            "postgres://u@h/db",
            "postgres://u@h/db?sslmode=disable",
            "postgresql://u:p%40ss@h:5433/db?sslmode=require&connect_timeout=5",
            "postgres://u@h/db?sslmode=prefer&application_name=x%20y",
            "host=h dbname=db sslmode=require",
        ] {
            assert_eq!(ok(u), (u.to_string(), None), "{u}");
        }
    }

    #[test]
    fn verify_modes_become_require_with_the_root_file() {
        let (u, c) = ok("postgres://u@h/db?connect_timeout=5&sslmode=verify-full&sslrootcert=/etc/ca.crt&options=-c%20x%3Dy");
        assert_eq!(
            u,
            "postgres://u@h/db?connect_timeout=5&sslmode=require&options=-c%20x%3Dy"
        );
        assert_eq!(
            c,
            Some(CertCheck {
                mode: VerifyMode::Full,
                roots: Roots::File("/etc/ca.crt".into())
            })
        );
        let (u, c) = ok("postgresql://u@h:1/db?sslrootcert=/ca.pem&sslmode=verify-ca");
        assert_eq!(u, "postgresql://u@h:1/db?sslmode=require");
        assert_eq!(c.unwrap().mode, VerifyMode::Ca);
        // The result is what tokio-postgres accepts.
        assert!(u.parse::<tokio_postgres::Config>().is_ok());
    }

    #[test]
    fn percent_encoded_keys_and_values_are_decoded() {
        let (u, c) =
            ok("postgres://u@h/db?ssl%6Dode=verify%2Dfull&sslrootcert=%2Ftmp%2Fmy%20ca.crt");
        assert_eq!(u, "postgres://u@h/db?sslmode=require");
        assert_eq!(c.unwrap().roots, Roots::File("/tmp/my ca.crt".into()));
        // '+' stays a plus, as in tokio-postgres and libpq.
        let (_, c) = ok("postgres://u@h/db?sslmode=verify-full&sslrootcert=/a+b.crt");
        assert_eq!(c.unwrap().roots, Roots::File("/a+b.crt".into()));
    }

    #[test]
    fn a_question_mark_in_the_password_is_not_the_query() {
        let (u, c) = ok("postgres://u:pa?ss@h/db?sslmode=verify-full&sslrootcert=/ca");
        assert_eq!(u, "postgres://u:pa?ss@h/db?sslmode=require");
        assert!(c.is_some());
    }

    #[test]
    fn relative_root_is_made_absolute() {
        let (_, c) = ok("postgres://u@h/db?sslmode=verify-full&sslrootcert=certs/ca.crt");
        let Roots::File(p) = c.unwrap().roots else {
            panic!()
        };
        assert!(p.is_absolute() && p.ends_with("certs/ca.crt"), "{p:?}");
    }

    #[test]
    fn default_root_is_libpqs() {
        let home = std::env::var("HOME").unwrap();
        let (u, c) = ok("postgres://u@h/db?sslmode=verify-full");
        assert_eq!(u, "postgres://u@h/db?sslmode=require");
        assert_eq!(
            c.unwrap().roots,
            Roots::Default(PathBuf::from(home).join(".postgresql/root.crt"))
        );
    }

    #[test]
    fn system_roots() {
        let (u, c) = ok("postgres://u@h/db?sslrootcert=system");
        assert_eq!(u, "postgres://u@h/db?sslmode=require");
        assert_eq!(
            c,
            Some(CertCheck {
                mode: VerifyMode::Full,
                roots: Roots::System
            })
        );
        for m in ["verify-ca", "require", "prefer", "disable"] {
            let e = split(
                &format!("postgres://u@h/db?sslmode={m}&sslrootcert=system"),
                "--source",
            )
            .unwrap_err();
            assert_eq!(
                e.message,
                format!("--source: sslrootcert=system needs sslmode=verify-full, not {m}")
            );
        }
    }

    #[test]
    fn require_with_a_root_checks_the_chain_as_libpq() {
        let (u, c) = ok("postgres://u@h/db?sslmode=require&sslrootcert=/ca");
        assert_eq!(u, "postgres://u@h/db?sslmode=require");
        assert_eq!(c.unwrap().mode, VerifyMode::Ca);
        let e = split("postgres://u@h/db?sslrootcert=/ca", "database[0].url").unwrap_err();
        assert_eq!(
            e.message,
            "database[0].url: sslrootcert is used only with sslmode=verify-ca or verify-full, not prefer (the default)"
        );
    }

    #[test]
    fn unknown_sslmode_is_named() {
        let e = split("postgres://u:secret@h/db?sslmode=verify_full", "--source").unwrap_err();
        assert_eq!(e.message, "--source: sslmode=verify_full is not supported");
        assert!(e.hints[0].contains("verify-full"), "{:?}", e.hints);
        assert!(!e.to_string().contains("secret"));
        let e = split("postgres://u@h/db?sslmode=allow", "--source").unwrap_err();
        assert_eq!(e.message, "--source: sslmode=allow is not supported");
    }

    #[test]
    fn keyword_form_says_to_use_the_url() {
        let e = split("host=h dbname=db sslmode=verify-full", "--source").unwrap_err();
        assert!(e.message.contains("URL form only"), "{}", e.message);
    }

    #[test]
    fn malformed_params_are_left_to_tokio_postgres() {
        let (u, c) = ok("postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca&bogus");
        assert_eq!(u, "postgres://u@h/db?sslmode=require&bogus");
        assert!(c.is_some());
        assert_eq!(ok("postgres://u@h/db?x=%zz").1, None);
    }
}
