//! Finding PostgreSQL client programs of a suitable major version.
//!
//! Debian installs each major under /usr/lib/postgresql/N/bin, and /usr/bin/pg_dump is a
//! wrapper that may pick the wrong one, so pgdr looks there itself: the same major as the
//! server when installed (its archives stay readable by that major's pg_restore), else the
//! newest newer one.

use std::path::{Path, PathBuf};

use crate::error::{PgdrError, Result};

#[derive(Debug, Clone)]
pub struct Tool {
    pub path: PathBuf,
    /// "15.18"
    pub version: String,
    pub major: u32,
}

/// `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` → ("15.18", 15)
pub fn parse_version(out: &str) -> Option<(String, u32)> {
    let v = out
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let end = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(v.len());
    let v = v[..end].trim_end_matches('.');
    let major: u32 = v.split('.').next()?.parse().ok()?;
    Some((v.to_string(), major))
}

fn probe(path: &Path) -> Option<Tool> {
    let mut cmd = std::process::Command::new(path);
    crate::source::process::clean_env(&mut cmd);
    let out = cmd
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let (version, major) = parse_version(&String::from_utf8_lossy(&out.stdout))?;
    Some(Tool {
        path: path.to_path_buf(),
        version,
        major,
    })
}

/// Where Debian installs each major's programs: `<LAYOUT>/<major>/bin/<name>`.
const LAYOUT: &str = "/usr/lib/postgresql";

/// `name` of exactly the server's major from Debian's layout, without running it: the probe
/// costs 5-15 ms, and the backup's pg_dump waited for it. The directory names the major; the
/// exact version comes from the program's own output (the archive header's "pg_dump version",
/// [`reported_version`]). None where the layout does not say (a configured directory, `$PATH`):
/// those are probed by [`find`].
pub fn find_in_layout(name: &str, major: u32, configured: Option<&Path>) -> Option<Tool> {
    use std::os::unix::fs::PermissionsExt;
    if configured.is_some() {
        return None;
    }
    let path = Path::new(LAYOUT)
        .join(major.to_string())
        .join("bin")
        .join(name);
    let meta = std::fs::metadata(&path).ok()?;
    (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then(|| Tool {
        path,
        version: major.to_string(),
        major,
    })
}

/// The version a tool reported in its own output ("15.18 (Debian 15.18-0+deb12u1)" in an
/// archive header): what it is, whatever its path said (a layout find knows the major only);
/// `tool.version` where the output names none.
pub fn reported_version(tool: &Tool, reported: &str) -> String {
    parse_version(reported).map_or_else(|| tool.version.clone(), |(v, _)| v)
}

fn candidates(name: &str, configured: Option<&Path>) -> Vec<PathBuf> {
    if let Some(dir) = configured {
        return vec![dir.join(name)];
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(LAYOUT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let p = e.path().join("bin").join(name);
            p.exists().then_some((major, p))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut out: Vec<PathBuf> = found.into_iter().map(|(_, p)| p).collect();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.exists() {
                out.push(p);
            }
        }
    }
    out
}

/// Find `name` whose major version is at least `min_major`.
///
/// Candidates are probed in order and the search stops at the first of the server's own
/// major: every probe runs the program, and on Debian the PATH entries are a Perl wrapper that
/// costs tens of milliseconds each, which every backup, verify and drill used to pay four
/// times before its dump started. Only when no exact match exists are all of them compared.
pub fn find(name: &str, min_major: u32, configured: Option<&Path>) -> Result<Tool> {
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut tools: Vec<Tool> = Vec::new();
    for p in candidates(name, configured) {
        // /bin and /usr/bin are one directory on merged-/usr systems: probe each file once.
        let real = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        if seen.contains(&real) {
            continue;
        }
        seen.push(real);
        if let Some(t) = probe(&p) {
            if t.major == min_major {
                return Ok(t);
            }
            tools.push(t);
        }
    }
    if let Some(t) = tools
        .iter()
        .filter(|t| t.major > min_major)
        .max_by_key(|t| t.major)
    {
        return Ok(t.clone());
    }
    let found = if tools.is_empty() {
        format!("no {name} was found")
    } else {
        let list: Vec<String> = tools
            .iter()
            .map(|t| format!("{} at {}", t.version, t.path.display()))
            .collect();
        format!("found only {}", list.join(", "))
    };
    let where_ = match configured {
        Some(d) => format!(" (tools.pg_bin_dir = {})", d.display()),
        None => String::new(),
    };
    Err(PgdrError::tool(format!(
        "{name} {min_major} or newer is needed for a PostgreSQL {min_major} server; {found}{where_}"
    ))
    .hint(format!(
        "install it: apt-get install postgresql-client-{min_major} (PostgreSQL's apt repository has every major), or set [tools] pg_bin_dir"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(("15.18".into(), 15))
        );
        assert_eq!(
            parse_version("pg_restore (PostgreSQL) 17beta1"),
            Some(("17".into(), 17))
        );
    }

    /// This machine has Debian's layout for the server major the tests run (the suite's
    /// clusters come from it): found without running the program, its major from the path.
    #[test]
    fn the_layout_names_the_major_without_a_probe() {
        let dir = std::fs::read_dir(LAYOUT).unwrap().flatten().find_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            e.path().join("bin/pg_dump").exists().then_some(major)
        });
        let major = dir.expect("a /usr/lib/postgresql/N/bin/pg_dump on the test machine");
        let t = find_in_layout("pg_dump", major, None).unwrap();
        assert_eq!(
            t.path,
            Path::new(LAYOUT).join(format!("{major}/bin/pg_dump"))
        );
        assert_eq!(
            (t.major, t.version.as_str()),
            (major, major.to_string().as_str())
        );
        assert!(find_in_layout("pg_dump", 99, None).is_none());
        assert!(find_in_layout("pg_dump", major, Some(Path::new("/opt/pg/bin"))).is_none());
        assert!(find_in_layout("no_such_program", major, None).is_none());
        let full = format!("{major}.7 (Debian {major}.7-1)");
        assert_eq!(reported_version(&t, &full), format!("{major}.7"));
        // The output is the program itself: it wins over what the path said.
        assert_eq!(reported_version(&t, "9.6.1"), "9.6.1");
        assert_eq!(reported_version(&t, ""), major.to_string());
    }

    #[test]
    fn too_old_names_the_package() {
        let e = find("pg_dump", 99, None).unwrap_err();
        assert!(
            e.message.starts_with("pg_dump 99 or newer is needed"),
            "{}",
            e.message
        );
        assert!(e.hints[0].contains("postgresql-client-99"));
    }
}
