//! Drill definitions (`drills/*.toml`): which database, which backup, the targets, and the
//! smoke checks with their expectations. See drills/README.md for the format.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::config::parse_duration;
use crate::error::{PgdrError, Result};

/// Which backup a drill restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The newest committed backup: what an emergency restore would take.
    Newest,
    /// A random backup whose snapshot is at most N days old: catches old-backup rot.
    RandomWithinDays(u32),
    /// A random moment inside the capture's covered, replayable window of the last N days,
    /// reached by replaying the stored changes onto its anchored backup (`drill::point`).
    RandomPointWithinDays(u32),
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selection::Newest => f.write_str("newest"),
            Selection::RandomWithinDays(n) => write!(f, "random within {n} days"),
            Selection::RandomPointWithinDays(n) => write!(f, "random point within {n} days"),
        }
    }
}

/// What a smoke check's result must look like.
///
/// ```text
/// rows > N | rows >= N | rows = N | rows != N | rows < N | rows <= N
/// no rows                     (the same as rows = 0)
/// equals 'text'               (exactly one row; its first column, as text, is `text`;
///                              '' inside the quotes is a quote)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    Rows(Cmp, u64),
    Equals(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Gt,
    Ge,
    Eq,
    Ne,
    Lt,
    Le,
}

impl Cmp {
    fn holds(self, a: u64, b: u64) -> bool {
        match self {
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
        }
    }
    fn symbol(self) -> &'static str {
        match self {
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
            Cmp::Eq => "=",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
        }
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::Rows(Cmp::Eq, 0) => f.write_str("no rows"),
            Expectation::Rows(c, n) => write!(f, "rows {} {n}", c.symbol()),
            Expectation::Equals(t) => write!(f, "equals '{}'", t.replace('\'', "''")),
        }
    }
}

fn plural(n: u64) -> String {
    match n {
        0 => "no rows".into(),
        1 => "1 row".into(),
        n => format!("{n} rows"),
    }
}

impl std::str::FromStr for Expectation {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        if lower.split_whitespace().collect::<Vec<_>>() == ["no", "rows"] {
            return Ok(Expectation::Rows(Cmp::Eq, 0));
        }
        if let Some(rest) = lower.strip_prefix("rows") {
            let rest = rest.trim_start();
            let ops = [
                (">=", Cmp::Ge),
                ("<=", Cmp::Le),
                ("!=", Cmp::Ne),
                ("==", Cmp::Eq),
                (">", Cmp::Gt),
                ("<", Cmp::Lt),
                ("=", Cmp::Eq),
            ];
            let (op, after) = ops
                .iter()
                .find_map(|(sym, c)| rest.strip_prefix(sym).map(|a| (*c, a)))
                .ok_or_else(|| {
                    format!("'{t}': expected a comparison after 'rows' (>, >=, =, !=, <, <=)")
                })?;
            let n: u64 = after.trim().parse().map_err(|_| {
                format!(
                    "'{t}': expected a whole number after 'rows {}'",
                    op.symbol()
                )
            })?;
            return Ok(Expectation::Rows(op, n));
        }
        if lower.starts_with("equals") {
            let rest = t["equals".len()..].trim();
            let inner = rest
                .strip_prefix('\'')
                .and_then(|r| r.strip_suffix('\''))
                .filter(|_| rest.len() >= 2)
                .ok_or_else(|| {
                    format!("'{t}': the value after 'equals' goes in single quotes: equals 'ok'")
                })?;
            // '' is a quote; a lone quote inside is a mistake.
            if inner.replace("''", "").contains('\'') {
                return Err(format!("'{t}': write a quote inside the value as ''"));
            }
            return Ok(Expectation::Equals(inner.replace("''", "'")));
        }
        Err(format!(
            "'{t}' is not an expectation; use rows > N, rows = N, no rows, or equals 'text'"
        ))
    }
}

/// What one check's SQL returned: the rows of its last statement that returned rows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// None: no statement returned a result set.
    pub rows: Option<u64>,
    /// First column of the first row, as text (None: no row, or NULL).
    pub first: Option<String>,
}

impl Expectation {
    /// Ok, or why not in operator words.
    pub fn check(&self, got: &Outcome) -> std::result::Result<(), String> {
        let Some(rows) = got.rows else {
            return Err("the SQL returned no result set (end it with a SELECT)".into());
        };
        match self {
            Expectation::Rows(c, n) if c.holds(rows, *n) => Ok(()),
            Expectation::Rows(..) => Err(format!("expected {self}, got {}", plural(rows))),
            Expectation::Equals(want) => match (rows, &got.first) {
                (1, Some(v)) if v == want => Ok(()),
                (1, Some(v)) => Err(format!(
                    "expected '{want}', got '{}'",
                    v.chars().take(200).collect::<String>()
                )),
                (1, None) => Err(format!("expected '{want}', got NULL")),
                (n, _) => Err(format!(
                    "expected one row equal to '{want}', got {}",
                    plural(n)
                )),
            },
        }
    }
}

/// A smoke check: a named SQL query and what its result must look like.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub sql: String,
    pub expect: Expectation,
    /// The expectation as written, for the record.
    pub expect_text: String,
    pub timeout: Duration,
}

pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// A drill definition, loaded and checked.
#[derive(Debug, Clone)]
pub struct DrillSpec {
    pub name: String,
    pub database: Option<String>,
    pub selection: Selection,
    pub rto_target: Option<Duration>,
    pub rpo_target: Option<Duration>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrillFile {
    name: Option<String>,
    database: Option<String>,
    selection: Option<toml::Value>,
    rto_target: Option<String>,
    rpo_target: Option<String>,
    #[serde(default, rename = "check")]
    checks: Vec<CheckFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckFile {
    name: String,
    sql: String,
    expect: String,
    timeout: Option<String>,
}

impl DrillSpec {
    pub fn load(path: &Path) -> Result<DrillSpec> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            PgdrError::config(format!("cannot read drill file {}: {e}", path.display()))
                .hint("pass --drill with the path of a drill definition (see drills/README.md)")
        })?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "drill".into());
        DrillSpec::parse(&text, &path.display().to_string(), &stem)
    }

    /// Parse a definition; `origin` names it in errors, `stem` is the default name.
    pub fn parse(text: &str, origin: &str, stem: &str) -> Result<DrillSpec> {
        let f = read_toml(text, origin)?;
        let selection = selection(f.selection.as_ref(), origin)?;
        let rto_target = f
            .rto_target
            .as_deref()
            .map(|t| parse_duration(t, &format!("{origin}: rto_target")))
            .transpose()?;
        let rpo_target = f
            .rpo_target
            .as_deref()
            .map(|t| parse_duration(t, &format!("{origin}: rpo_target")))
            .transpose()?;
        let checks = checks(&f.checks, origin)?;
        Ok(DrillSpec {
            name: f.name.unwrap_or_else(|| stem.to_string()),
            database: f.database,
            selection,
            rto_target,
            rpo_target,
            checks,
        })
    }
}

/// The TOML, with a syntax or shape error named by its line and said on one line.
fn read_toml(text: &str, origin: &str) -> Result<DrillFile> {
    toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let before = &text.as_bytes()[..s.start.min(text.len())];
                format!(
                    " line {}",
                    before.iter().filter(|&&b| b == b'\n').count() + 1
                )
            })
            .unwrap_or_default();
        PgdrError::config(format!(
            "{origin}{at}: {}",
            e.message().split_whitespace().collect::<Vec<_>>().join(" ")
        ))
        .hint("see drills/README.md for the drill file format")
    })
}

/// `selection`: "newest" (the default), `{ random_within_days = N }` or
/// `{ random_point_within_days = N }`.
fn selection(value: Option<&toml::Value>, origin: &str) -> Result<Selection> {
    let table = match value {
        None => return Ok(Selection::Newest),
        Some(toml::Value::String(s)) if s == "newest" => return Ok(Selection::Newest),
        Some(toml::Value::Table(t)) if t.len() == 1 => t,
        Some(other) => return Err(not_a_selection(origin, other)),
    };
    let (key, v) = table.iter().next().expect("one entry");
    let make = match key.as_str() {
        "random_within_days" => Selection::RandomWithinDays,
        "random_point_within_days" => Selection::RandomPointWithinDays,
        _ => return Err(not_a_selection(origin, value.expect("a table"))),
    };
    match v.as_integer() {
        Some(n) if n >= 1 && n <= u32::MAX as i64 => Ok(make(n as u32)),
        _ => Err(PgdrError::config(format!(
            "{origin}: selection.{key} must be a whole number of days, at least 1"
        ))),
    }
}

fn not_a_selection(origin: &str, v: &toml::Value) -> PgdrError {
    PgdrError::config(format!("{origin}: selection = {v} is not a backup selection")).hint(
        "write selection = \"newest\", selection = { random_within_days = 30 } or selection = { random_point_within_days = 7 }",
    )
}

/// The `[[check]]` tables: each named once, with SQL, an expectation that parses and a
/// timeout (default [`DEFAULT_CHECK_TIMEOUT`]); the first bad one is the error.
fn checks(files: &[CheckFile], origin: &str) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (i, c) in files.iter().enumerate() {
        let what = format!("{origin}: check[{i}] '{}'", c.name);
        if c.name.trim().is_empty() {
            return Err(PgdrError::config(format!(
                "{origin}: check[{i}] has an empty name"
            )));
        }
        if !names.insert(c.name.clone()) {
            return Err(PgdrError::config(format!("{what}: the name is used twice"))
                .hint("give every [[check]] its own name: records and reports refer to it"));
        }
        if c.sql.trim().is_empty() {
            return Err(PgdrError::config(format!("{what}: sql is empty")));
        }
        let expect: Expectation = c.expect.parse().map_err(|e: String| {
            PgdrError::config(format!("{what}: expect = {e}")).hint(
                "expectations: rows > N, rows >= N, rows = N, rows < N, no rows, equals 'text'",
            )
        })?;
        let timeout = c
            .timeout
            .as_deref()
            .map(|t| parse_duration(t, &format!("{what}: timeout")))
            .transpose()?
            .unwrap_or(DEFAULT_CHECK_TIMEOUT);
        checks.push(Check {
            name: c.name.clone(),
            sql: c.sql.trim().to_string(),
            expect,
            expect_text: c.expect.trim().to_string(),
            timeout,
        });
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(rows: Option<u64>, first: Option<&str>) -> Outcome {
        Outcome {
            rows,
            first: first.map(String::from),
        }
    }

    #[test]
    fn expectation_grammar() {
        let p = |s: &str| s.parse::<Expectation>();
        assert_eq!(p("rows > 0").unwrap(), Expectation::Rows(Cmp::Gt, 0));
        assert_eq!(p("  ROWS>=10 ").unwrap(), Expectation::Rows(Cmp::Ge, 10));
        assert_eq!(p("rows = 2000").unwrap(), Expectation::Rows(Cmp::Eq, 2000));
        assert_eq!(p("rows == 3").unwrap(), Expectation::Rows(Cmp::Eq, 3));
        assert_eq!(p("rows != 3").unwrap(), Expectation::Rows(Cmp::Ne, 3));
        assert_eq!(p("rows < 5").unwrap(), Expectation::Rows(Cmp::Lt, 5));
        assert_eq!(p("rows <= 5").unwrap(), Expectation::Rows(Cmp::Le, 5));
        assert_eq!(p("no rows").unwrap(), Expectation::Rows(Cmp::Eq, 0));
        assert_eq!(p("No  Rows").unwrap(), Expectation::Rows(Cmp::Eq, 0));
        assert_eq!(p("equals 'ok'").unwrap(), Expectation::Equals("ok".into()));
        assert_eq!(p("equals ''").unwrap(), Expectation::Equals("".into()));
        assert_eq!(
            p("equals 'it''s OK'").unwrap(),
            Expectation::Equals("it's OK".into())
        );
        // Round trip through Display.
        for s in ["rows > 0", "no rows", "rows <= 7", "equals 'it''s'"] {
            assert_eq!(p(s).unwrap().to_string(), s);
        }
        // Mistakes are named.
        assert!(p("rows >> 0").unwrap_err().contains("whole number"));
        assert!(p("rows 3").unwrap_err().contains("comparison after 'rows'"));
        assert!(p("rows > -1").unwrap_err().contains("whole number"));
        assert!(p("equals ok").unwrap_err().contains("single quotes"));
        assert!(p("equals 'a'b'").unwrap_err().contains("''"));
        assert!(p("some rows")
            .unwrap_err()
            .contains("is not an expectation"));
    }

    #[test]
    fn expectations_judge_results() {
        let gt0: Expectation = "rows > 0".parse().unwrap();
        assert!(gt0.check(&out(Some(3), Some("x"))).is_ok());
        assert_eq!(
            gt0.check(&out(Some(0), None)).unwrap_err(),
            "expected rows > 0, got no rows"
        );
        let none: Expectation = "no rows".parse().unwrap();
        assert!(none.check(&out(Some(0), None)).is_ok());
        assert_eq!(
            none.check(&out(Some(667), Some("a"))).unwrap_err(),
            "expected no rows, got 667 rows"
        );
        assert_eq!(
            none.check(&out(None, None)).unwrap_err(),
            "the SQL returned no result set (end it with a SELECT)"
        );
        let eq: Expectation = "equals 'ok'".parse().unwrap();
        assert!(eq.check(&out(Some(1), Some("ok"))).is_ok());
        assert_eq!(
            eq.check(&out(Some(1), Some("degraded"))).unwrap_err(),
            "expected 'ok', got 'degraded'"
        );
        assert_eq!(
            eq.check(&out(Some(1), None)).unwrap_err(),
            "expected 'ok', got NULL"
        );
        assert_eq!(
            eq.check(&out(Some(2), Some("ok"))).unwrap_err(),
            "expected one row equal to 'ok', got 2 rows"
        );
        let eq3: Expectation = "rows = 1".parse().unwrap();
        assert_eq!(
            eq3.check(&out(Some(2), None)).unwrap_err(),
            "expected rows = 1, got 2 rows"
        );
    }

    #[test]
    fn drill_files_parse_and_name_mistakes() {
        let s = DrillSpec::parse(
            r#"
database = "app"
selection = { random_within_days = 30 }
rto_target = "10m"
[[check]]
name = "users"
sql = "SELECT 1 FROM auth.users"
expect = "rows > 0"
timeout = "5s"
"#,
            "m.toml",
            "monthly",
        )
        .unwrap();
        assert_eq!(s.name, "monthly");
        assert_eq!(s.database.as_deref(), Some("app"));
        assert_eq!(s.selection, Selection::RandomWithinDays(30));
        assert_eq!(s.rto_target, Some(Duration::from_secs(600)));
        assert_eq!(s.rpo_target, None);
        assert_eq!(s.checks[0].timeout, Duration::from_secs(5));
        assert_eq!(s.checks[0].expect, Expectation::Rows(Cmp::Gt, 0));

        let s = DrillSpec::parse("selection = \"newest\"\n", "m.toml", "x").unwrap();
        assert_eq!(s.selection, Selection::Newest);
        assert!(s.checks.is_empty());

        let e = DrillSpec::parse("selection = \"oldest\"\n", "m.toml", "x").unwrap_err();
        assert!(
            e.message.contains("is not a backup selection"),
            "{}",
            e.message
        );
        let e = DrillSpec::parse("databse = \"app\"\n", "m.toml", "x").unwrap_err();
        assert!(
            e.message
                .starts_with("m.toml line 1: unknown field `databse`"),
            "{}",
            e.message
        );
        let e = DrillSpec::parse(
            "[[check]]\nname = \"a\"\nsql = \"SELECT 1\"\nexpect = \"rows ~ 1\"\n",
            "m.toml",
            "x",
        )
        .unwrap_err();
        assert!(
            e.message
                .starts_with("m.toml: check[0] 'a': expect = 'rows ~ 1'"),
            "{}",
            e.message
        );
        let e = DrillSpec::parse("rpo_target = \"soon\"\n", "m.toml", "x").unwrap_err();
        assert!(e.message.contains("rpo_target = 'soon'"), "{}", e.message);
    }

    #[test]
    fn a_random_point_selection_parses() {
        let s = DrillSpec::parse(
            "selection = { random_point_within_days = 7 }\n",
            "m.toml",
            "x",
        )
        .unwrap();
        assert_eq!(s.selection, Selection::RandomPointWithinDays(7));
        assert_eq!(s.selection.to_string(), "random point within 7 days");
        let e = DrillSpec::parse(
            "selection = { random_point_within_days = 0 }\n",
            "m.toml",
            "x",
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "m.toml: selection.random_point_within_days must be a whole number of days, at least 1"
        );
    }
}
