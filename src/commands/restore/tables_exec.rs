//! `pgdr restore --table`: the run and its proof (the restored tables' row counts and digests
//! against the backup's fingerprint).

use crate::error::{PgdrError, Result};
use crate::fingerprint::archive::ArchiveSummary;
use crate::restore::{self, tables_run, EngineOptions, EngineReport, Target};
use crate::sql::quote_ident as qi;

use super::tables::{TableMode, TablePlan};

/// What the run did; `differences` empty means proven (or not compared, with `--no-verify`).
#[derive(Debug, Default, serde::Serialize)]
pub struct TableReport {
    pub backup_id: String,
    pub database: String,
    /// The tables as they are now on the target ("restored_x.orders").
    pub tables: Vec<String>,
    pub rows: u64,
    pub verified: bool,
    pub differences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where the restore record went (`app/restores/<start>.json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// Why it could not be written (the restore itself stands).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_error: Option<String>,
}

impl TableReport {
    pub fn exit_code(&self) -> i32 {
        match (&self.error, self.differences.is_empty()) {
            (Some(_), _) => crate::error::exit::COULD_NOT_RUN,
            (None, false) => crate::error::exit::CHECK_FAILED,
            (None, true) => crate::error::exit::OK,
        }
    }
}

/// Run the plan and record it in the repository, as a full restore is; errors land in the
/// report (the caller renders them).
pub async fn execute_tables(plan: TablePlan) -> (TableReport, Option<PgdrError>) {
    let mut report = TableReport {
        backup_id: plan.manifest.id.to_string(),
        database: plan.name.clone(),
        ..Default::default()
    };
    let mut timing = super::tables_record::Timing::start();
    let error = run_and_prove(&plan, &mut report, &mut timing.timer).await;
    let record = super::tables_record::record(&plan, &report, timing);
    match plan.catalog.write_restore(&record).await {
        Ok(key) => report.record = Some(key),
        Err(e) => report.record_error = Some(e.message),
    }
    (report, error)
}

async fn run_and_prove(
    plan: &TablePlan,
    report: &mut TableReport,
    timer: &mut crate::catalog::manifest::PhaseTimer,
) -> Option<PgdrError> {
    let run = match &plan.mode {
        TableMode::Replace => replace(plan).await,
        TableMode::Into(schema) => into(plan, schema).await,
    };
    if let Err(e) = run {
        report.error = Some(e.message.clone());
        return Some(e);
    }
    timer.done("restore");
    let Some(expected) = expected_data(plan) else {
        let e = PgdrError::corrupt(format!(
            "restored, but backup {} has no fingerprint to prove the tables against",
            plan.manifest.id
        ));
        report.error = Some(e.message.clone());
        return Some(e);
    };
    report.tables = expected
        .tables
        .iter()
        .map(|t| format!("{}.{}", t.schema, t.name))
        .collect();
    report.rows = expected.tables.iter().map(|t| t.rows).sum();
    if plan.verify {
        match prove(plan, &expected).await {
            Ok(d) => {
                report.verified = true;
                report.differences = d;
                timer.done("verify");
            }
            Err(e) => {
                let e = e.context("restored, but the proof could not run");
                report.error = Some(e.message.clone());
                return Some(e);
            }
        }
    }
    None
}

fn target_of(plan: &TablePlan) -> Target {
    Target {
        maintenance: plan.target.clone(),
        dbname: plan.name.clone(),
        bin_dir: plan.bin_dir.clone(),
    }
}

/// A list file for pg_restore, removed when dropped.
fn list_file(ids: &[i32]) -> Result<tempfile::NamedTempFile> {
    let f = tempfile::Builder::new()
        .prefix("pgdr-tables-")
        .suffix(".list")
        .tempfile()
        .map_err(|e| PgdrError::usage(format!("creating a pg_restore list file: {e}")))?;
    std::fs::write(f.path(), restore::tables::list_text(ids))
        .map_err(|e| PgdrError::usage(format!("writing {}: {e}", f.path().display())))?;
    Ok(f)
}

async fn replace(plan: &TablePlan) -> Result<()> {
    let list = list_file(&plan.selected.keep)?;
    tables_run::replace_list(
        &plan.catalog,
        &plan.manifest,
        plan.ids.clone(),
        &target_of(plan),
        list.path(),
        plan.show_progress,
    )
    .await
    .map_err(|e| e.context("replacing the tables (rolled back: the live tables are as they were)"))
}

/// The scratch cluster gets every entry but the other tables' data and the foreign keys that
/// are skipped (they would fail against the empty tables they refer to).
fn scratch_list(plan: &TablePlan, toc: &[restore::tables::TocItem]) -> Vec<i32> {
    let keep: std::collections::HashSet<i32> = plan.selected.keep.iter().copied().collect();
    toc.iter()
        .filter(|e| match e.desc.as_str() {
            "TABLE DATA" | "SEQUENCE SET" | "BLOBS" | "BLOB" | "LARGE OBJECT" => {
                keep.contains(&e.dump_id)
            }
            "FK CONSTRAINT" => !plan.selected.skipped_ids.contains(&e.dump_id),
            _ => true,
        })
        .map(|e| e.dump_id)
        .collect()
}

async fn into(plan: &TablePlan, schema: &str) -> Result<()> {
    let toc = restore::tables::read_toc(&plan.catalog, &plan.manifest, plan.ids.clone()).await?;
    let list = list_file(&scratch_list(plan, &toc))?;
    let sc =
        crate::verify::scratch::Scratch::open(&plan.settings, &plan.manifest, "tables").await?;
    let r = into_via(plan, schema, &sc, list.path()).await;
    sc.teardown().await;
    r
}

async fn into_via(
    plan: &TablePlan,
    schema: &str,
    sc: &crate::verify::scratch::Scratch,
    list: &std::path::Path,
) -> Result<()> {
    let opts = EngineOptions {
        single_transaction: sc.single_transaction(),
        use_list: Some(list.to_path_buf()),
        show_progress: plan.show_progress,
        ..Default::default()
    };
    let mut timer = crate::catalog::manifest::PhaseTimer::default();
    restore::restore_with(
        &plan.catalog,
        &plan.manifest,
        plan.ids.clone(),
        &sc.target,
        &opts,
        Some(plan.globals_sql.clone()),
        &mut timer,
        &mut EngineReport::default(),
    )
    .await
    .map_err(|e| e.context(format!("restoring the tables into the {}", sc.describe())))?;
    let c = crate::source::connect(&sc.target.database()).await?;
    let mut sql = format!("CREATE SCHEMA {};", qi(schema));
    for (s, n) in &plan.selected.tables {
        sql.push_str(&format!(
            "ALTER TABLE {}.{} SET SCHEMA {};",
            qi(s),
            qi(n),
            qi(schema)
        ));
    }
    c.batch_execute(&sql).await.map_err(|e| {
        PgdrError::database(format!(
            "moving the tables to schema {schema} in the scratch database: {}",
            restore::db_message(&e)
        ))
    })?;
    let target = target_of(plan);
    let t = crate::source::connect(&target.database()).await?;
    t.batch_execute(&format!("CREATE SCHEMA {}", qi(schema)))
        .await
        .map_err(|e| {
            PgdrError::database(format!(
                "creating schema {schema}: {}",
                restore::db_message(&e)
            ))
        })?;
    if let Err(e) = tables_run::copy_schema(&sc.target, &target, schema).await {
        // The schema is this run's own and empty (pg_restore ran in one transaction).
        let _ = t
            .batch_execute(&format!("DROP SCHEMA {} RESTRICT", qi(schema)))
            .await;
        return Err(e.context(format!("copying schema {schema} into '{}'", plan.name)));
    }
    Ok(())
}

/// The backup's fingerprint of the selected tables, under the names they have now (`None`
/// for a backup without a fingerprint: nothing to prove against).
fn expected_data(plan: &TablePlan) -> Option<ArchiveSummary> {
    let mut s = plan.manifest.fingerprint.as_ref()?.data.clone();
    s.large_objects.clear();
    s.tables.retain(|t| {
        plan.selected
            .tables
            .iter()
            .any(|(sch, n)| *sch == t.schema && *n == t.name)
    });
    if let TableMode::Into(schema) = &plan.mode {
        for t in &mut s.tables {
            t.schema = schema.clone();
        }
    }
    Some(s)
}

async fn prove(plan: &TablePlan, expected: &ArchiveSummary) -> Result<Vec<String>> {
    let actual = crate::verify::recompute_data(&target_of(plan), expected, 2).await?;
    Ok(crate::verify::compare_data(
        expected,
        &actual,
        "after the restore",
    ))
}
