//! `pgdr diff`: parsing and rendering (the before/after table, or JSON for CI).

use std::fmt::Write as _;

use clap::Args;

use super::{overrides, Global};
use crate::commands::diff::{DiffOptions, Which};
use crate::config::Settings;
use crate::error::{exit, PgdrError};
use crate::verify::diff::{Content, DiffReport};

#[derive(Args, Debug)]
pub(super) struct DiffArgs {
    /// Backup id, unique prefix or label.
    #[arg(required_unless_present = "latest", conflicts_with = "latest")]
    id: Option<String>,
    /// The newest backup of --database (or of the target's database name).
    #[arg(long, env = "PGDR_LATEST")]
    latest: bool,
    /// The live database, postgres://USER@HOST:PORT/DBNAME (password via PGPASSWORD or
    /// ~/.pgpass); only read, inside one read-only snapshot.
    #[arg(long, env = "PGDR_TARGET", hide_env_values = true, value_name = "URL")]
    target: String,
    /// Only this table (SCHEMA.NAME, or a unique NAME); repeatable.
    #[arg(long = "table", env = "PGDR_TABLE", value_name = "NAME")]
    tables: Vec<String>,
    /// Row counts only, no content digests (faster on a large database).
    #[arg(long, env = "PGDR_COUNTS_ONLY")]
    counts_only: bool,
    #[command(flatten)]
    pub(super) repo: super::flags::RepoArgs,
    #[command(flatten)]
    pub(super) decrypt: super::flags::DecryptArgs,
    #[command(flatten)]
    pub(super) trust: super::flags::TrustArgs,
    #[command(flatten)]
    pub(super) unsigned: super::flags::UnsignedArgs,
}

/// Exit 0 identical, 1 different, 2 could not run (the error path).
pub(super) async fn run(g: &Global, a: &DiffArgs) -> Result<i32, PgdrError> {
    let settings = Settings::load(&overrides(g))?;
    let opts = DiffOptions {
        database: g.database.clone(),
        which: match &a.id {
            Some(id) => Which::Id(id.clone()),
            None => Which::Latest,
        },
        target_url: a.target.clone(),
        compare: crate::verify::diff::DiffOptions {
            tables: a.tables.clone(),
            counts_only: a.counts_only,
        },
    };
    let r = crate::commands::diff::run(&settings, &opts).await?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&r).expect("json"));
    } else {
        print!("{}", render(&r));
    }
    Ok(if r.identical {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
}

/// The before/after table operators write by hand before a migration, then the schema lines.
fn render(r: &DiffReport) -> String {
    let mut s = String::new();
    let label = r
        .label
        .as_ref()
        .map(|l| format!(" ({l})"))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "backup {}/{}{label}, {} vs {} now",
        r.database,
        r.backup_id,
        r.backup_time.format("%Y-%m-%d %H:%M:%S UTC"),
        r.target
    );
    let w = r
        .tables
        .iter()
        .map(|t| t.table.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(
        s,
        "\n{:<w$}  {:>14}  {:>10}  {:>8}  content",
        "table", "rows in backup", "rows now", "diff"
    );
    for t in &r.tables {
        let now = t.rows_now.map_or("-".into(), |n| n.to_string());
        let before = t.rows_backup.map_or("-".into(), |n| n.to_string());
        let diff = match t.diff {
            None => "-".into(),
            Some(0) => "0".into(),
            Some(d) => format!("{d:+}"),
        };
        let content = match t.content {
            Content::Same => "same",
            Content::Changed => "changed",
            Content::Dropped => "dropped",
            Content::New => "new",
            Content::NotCompared => "not compared",
        };
        let _ = writeln!(
            s,
            "{:<w$}  {:>14}  {:>10}  {:>8}  {content}",
            t.table, before, now, diff
        );
    }
    for l in &r.large_objects {
        let _ = writeln!(s, "{l}");
    }
    if !r.schema.is_empty() {
        let _ = writeln!(s, "\nschema:");
        for l in &r.schema {
            let _ = writeln!(s, "  {l}");
        }
    }
    if !r.sensitive_values_compared {
        let _ = writeln!(
            s,
            "\nsetting values and comments compared by name only (pass --identity to compare them)"
        );
    }
    let verdict = if r.identical {
        "identical to the backup"
    } else {
        "differs from the backup"
    };
    let _ = writeln!(s, "\n{verdict}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::diff::TableDiff;

    #[test]
    fn the_before_after_table_reads_like_the_hand_written_one() {
        let t = |table: &str, b: Option<u64>, now: Option<u64>, content| TableDiff {
            table: table.into(),
            rows_backup: b,
            rows_now: now,
            diff: b.zip(now).map(|(b, n)| n as i64 - b as i64),
            content,
        };
        let r = DiffReport {
            database: "app".into(),
            backup_id: "20261205T045835.874Z".into(),
            label: Some("before-migration".into()),
            backup_time: "2026-12-05T04:58:35Z".parse().unwrap(),
            target: "postgres@127.0.0.1:5432/app".into(),
            counts_only: false,
            tables: vec![
                t("public.orders", Some(5), Some(3), Content::Changed),
                t("public.profiles", Some(3), Some(3), Content::Same),
                t("public.gone", Some(7), None, Content::Dropped),
                t("public.audit", None, Some(12), Content::New),
            ],
            large_objects: vec![],
            schema: vec!["policy \"p\" on public.profiles: missing now".into()],
            sensitive_values_compared: false,
            identical: false,
        };
        let text = render(&r);
        let expected = "\
backup app/20261205T045835.874Z (before-migration), 2026-12-05 04:58:35 UTC vs postgres@127.0.0.1:5432/app now

table            rows in backup    rows now      diff  content
public.orders                 5           3        -2  changed
public.profiles               3           3         0  same
public.gone                   7           -         -  dropped
public.audit                  -          12         -  new

schema:
  policy \"p\" on public.profiles: missing now

setting values and comments compared by name only (pass --identity to compare them)

differs from the backup
";
        assert_eq!(text, expected);
    }
}
