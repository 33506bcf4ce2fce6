//! libpq's defaults for pgdr's connection to the source: what a URL or conninfo leaves out is
//! filled from the service (`service=` in it, else `PGSERVICE`, read from `pg_service.conf`),
//! then from `PGHOST`, `PGPORT`, `PGDATABASE` and `PGUSER`, as psql and pg_dump would.
//!
//! The result is a connection string again, so the rest of pgdr (certificate modes, the
//! password moved out, children given explicit parameters) works on it unchanged. Only the
//! source gets these defaults: restore targets and the scratch cluster are parsed without
//! them, so a caller's PG* variables never steer a restore.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{PgdrError, Result};

use super::pg_service;

/// The caller's libpq environment, read once (tests build one by hand).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LibpqEnv {
    pub host: Option<String>,
    pub port: Option<String>,
    pub dbname: Option<String>,
    pub user: Option<String>,
    pub service: Option<String>,
    pub service_file: Option<PathBuf>,
    pub sysconf_dir: Option<PathBuf>,
    pub home: Option<PathBuf>,
}

impl LibpqEnv {
    /// The process environment; empty variables count as unset.
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        LibpqEnv {
            host: var("PGHOST"),
            port: var("PGPORT"),
            dbname: var("PGDATABASE"),
            user: var("PGUSER"),
            service: var("PGSERVICE"),
            service_file: var("PGSERVICEFILE").map(PathBuf::from),
            sysconf_dir: var("PGSYSCONFDIR").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
        }
    }

    /// Whether the environment names a database by itself: only then is it a source without
    /// `--source` (PGHOST alone, common in shells, must not change what `verify` looks at).
    pub fn names_database(&self) -> bool {
        self.dbname.is_some() || self.service.is_some()
    }

    fn service_files(&self) -> Vec<PathBuf> {
        pg_service::search_path(
            self.service_file.as_deref(),
            self.home.as_deref(),
            self.sysconf_dir.as_deref(),
        )
    }
}

/// `explicit` with what it leaves out filled by libpq's rule: its own settings win, then the
/// service's, then the environment's. `key` names the setting in messages ("--source").
pub fn resolve(explicit: &str, env: &LibpqEnv, key: &str) -> Result<String> {
    // A string pgdr cannot take apart is left for tokio-postgres to report.
    let Some(mut form) = Form::parse(explicit) else {
        return Ok(explicit.to_string());
    };
    let named = form.take("service");
    let service = match (&named, &env.service) {
        (Some(s), _) => Some((s.clone(), key)),
        (None, Some(s)) => Some((s.clone(), "PGSERVICE")),
        (None, None) => None,
    };
    let mut defaults = match &service {
        Some((name, from)) => pg_service::lookup(name, &env.service_files(), from)?,
        None => BTreeMap::new(),
    };
    for (k, v) in [
        ("host", &env.host),
        ("port", &env.port),
        ("dbname", &env.dbname),
        ("user", &env.user),
    ] {
        if let Some(v) = v {
            defaults.entry(k.to_string()).or_insert_with(|| v.clone());
        }
    }
    if defaults.is_empty() && named.is_none() {
        return Ok(explicit.to_string());
    }
    for (k, v) in &defaults {
        if !form.gives(k) {
            form.fill(k, v, key)?;
        }
    }
    Ok(form.render())
}

/// A connection string taken apart just enough to see which keywords it sets and to add
/// the missing ones.
enum Form {
    Url(Url),
    Keywords(Vec<(String, String)>),
}

/// `scheme://[creds@]hosts[/dbname][?params]`, split where tokio-postgres splits it.
struct Url {
    scheme: String,
    creds: Option<String>,
    hosts: String,
    path: Option<String>,
    params: Vec<String>,
}

impl Form {
    fn parse(s: &str) -> Option<Form> {
        for scheme in ["postgres://", "postgresql://"] {
            if let Some(rest) = s.strip_prefix(scheme) {
                return Some(Form::Url(Url::parse(scheme, rest)));
            }
        }
        keywords(s).map(Form::Keywords)
    }

    /// Remove `key` (a keyword tokenizer or tokio-postgres would refuse) and return its value.
    fn take(&mut self, key: &str) -> Option<String> {
        match self {
            Form::Keywords(kv) => {
                let i = kv.iter().rposition(|(k, _)| k == key)?;
                let v = kv.remove(i).1;
                kv.retain(|(k, _)| k != key);
                Some(v)
            }
            Form::Url(u) => {
                let i = u.params.iter().rposition(|p| param_key(p) == key)?;
                let v = decode(u.params[i].split_once('=').map_or("", |(_, v)| v));
                u.params.retain(|p| param_key(p) != key);
                Some(v)
            }
        }
    }

    /// Whether the string sets `key` itself (host counts for hostaddr and the reverse).
    fn gives(&self, key: &str) -> bool {
        let keys: &[&str] = match key {
            "host" | "hostaddr" => &["host", "hostaddr"],
            _ => std::slice::from_ref(&key),
        };
        match self {
            Form::Keywords(kv) => kv.iter().any(|(k, _)| keys.contains(&k.as_str())),
            Form::Url(u) => {
                let in_url = match key {
                    "host" | "hostaddr" => !u.hosts.is_empty(),
                    "dbname" => u.path.as_deref().is_some_and(|p| !p.is_empty()),
                    "user" => u
                        .creds
                        .as_deref()
                        .is_some_and(|c| c.split(':').next().is_some_and(|u| !u.is_empty())),
                    "password" => u.creds.as_deref().is_some_and(|c| c.contains(':')),
                    "port" => !u.hosts.is_empty() && u.chunks_without_port().is_empty(),
                    _ => false,
                };
                in_url
                    || u.params
                        .iter()
                        .any(|p| keys.contains(&param_key(p).as_str()))
            }
        }
    }

    fn fill(&mut self, key: &str, value: &str, what: &str) -> Result<()> {
        match self {
            Form::Keywords(kv) => kv.push((key.to_string(), value.to_string())),
            // tokio-postgres gives every host of a URL a port (5432 unless written), so a
            // default port goes beside each host that has none.
            Form::Url(u) if key == "port" && !u.hosts.is_empty() => u.fill_ports(value, what)?,
            Form::Url(u) => u.params.push(format!("{key}={}", encode(value))),
        }
        Ok(())
    }

    fn render(&self) -> String {
        match self {
            Form::Keywords(kv) => {
                let parts: Vec<String> = kv
                    .iter()
                    .map(|(k, v)| {
                        let v = v.replace('\\', "\\\\").replace('\'', "\\'");
                        format!("{k}='{v}'")
                    })
                    .collect();
                parts.join(" ")
            }
            Form::Url(u) => {
                let mut s = u.scheme.clone();
                if let Some(c) = &u.creds {
                    s.push_str(c);
                    s.push('@');
                }
                s.push_str(&u.hosts);
                if let Some(p) = &u.path {
                    s.push('/');
                    s.push_str(p);
                }
                if !u.params.is_empty() {
                    s.push('?');
                    s.push_str(&u.params.join("&"));
                }
                s
            }
        }
    }
}

impl Url {
    fn parse(scheme: &str, rest: &str) -> Url {
        // As tokio-postgres: credentials up to the first '@', hosts up to '/' or '?', the
        // database name up to '?'.
        let (creds, rest) = match rest.split_once('@') {
            Some((c, r)) => (Some(c.to_string()), r),
            None => (None, rest),
        };
        let h = rest.find(['/', '?']).unwrap_or(rest.len());
        let (hosts, rest) = rest.split_at(h);
        let (path, query) = match rest.strip_prefix('/') {
            Some(p) => match p.split_once('?') {
                Some((p, q)) => (Some(p.to_string()), Some(q)),
                None => (Some(p.to_string()), None),
            },
            None => (None, rest.strip_prefix('?')),
        };
        let params = query
            .map(|q| {
                q.split('&')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Url {
            scheme: scheme.to_string(),
            creds,
            hosts: hosts.to_string(),
            path,
            params,
        }
    }

    /// Indexes of the comma-separated hosts written without a port.
    fn chunks_without_port(&self) -> Vec<usize> {
        let has_port = |c: &str| match c.strip_prefix('[') {
            Some(v6) => v6.split_once(']').is_some_and(|(_, r)| r.starts_with(':')),
            None => c.contains(':'),
        };
        self.hosts
            .split(',')
            .enumerate()
            .filter(|(_, c)| !has_port(c))
            .map(|(i, _)| i)
            .collect()
    }

    /// libpq's rule for a port list: one port for every host, or one per host.
    fn fill_ports(&mut self, value: &str, what: &str) -> Result<()> {
        let ports: Vec<&str> = value.split(',').collect();
        let chunks: Vec<&str> = self.hosts.split(',').collect();
        if ports.len() != 1 && ports.len() != chunks.len() {
            return Err(PgdrError::config(format!(
                "{what}: {} ports for {} hosts (PGPORT or the service's port)",
                ports.len(),
                chunks.len()
            ))
            .hint("give one port, or one port per host"));
        }
        let missing = self.chunks_without_port();
        let filled: Vec<String> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| match missing.contains(&i) {
                true => format!(
                    "{c}:{}",
                    encode(ports[if ports.len() == 1 { 0 } else { i }])
                ),
                false => c.to_string(),
            })
            .collect();
        self.hosts = filled.join(",");
        Ok(())
    }
}

fn param_key(p: &str) -> String {
    decode(p.split_once('=').map_or(p, |(k, _)| k))
}

/// Percent-decoding as tokio-postgres does it (a stray '%' stays, '+' is not a space).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if let (b'%', Some(h), Some(l)) = (
            b[i],
            b.get(i + 1).and_then(|&c| hex(c)),
            b.get(i + 2).and_then(|&c| hex(c)),
        ) {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every byte but the unreserved ones percent-encoded, so a value cannot end a parameter.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// libpq's `keyword = value` form: values in single quotes (with `\'` and `\\`) or bare up
/// to the next space (a backslash escapes one character). None if it does not parse.
fn keywords(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(c) = it.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        it.next_if_eq(&'=')?;
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if it.next_if_eq(&'\'').is_some() {
            loop {
                match it.next()? {
                    '\\' => value.push(it.next()?),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = it.next_if(|c| !c.is_whitespace()) {
                match c {
                    '\\' => value.push(it.next()?),
                    c => value.push(c),
                }
            }
        }
        out.push((key, value));
    }
}

#[cfg(test)]
#[path = "libpq_tests.rs"]
mod tests;
