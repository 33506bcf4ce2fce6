//! Which backup to restore: the repository database (--database, configured, the only one,
//! or the one named like the target), then the catalog's `select()`.

use crate::catalog::{Catalog, Entry, Pick};
use crate::config::Settings;
use crate::error::{PgdrError, Result};

use super::{RestoreOptions, Selection};

/// The repository database to restore from: --database, the one configured, the only one in
/// the repository, or the one named like the target.
async fn repo_database(
    catalog: &Catalog,
    settings: &Settings,
    opts: &RestoreOptions,
    target_name: &str,
) -> Result<Option<String>> {
    if let Some(d) = &opts.database {
        return Ok(Some(d.clone()));
    }
    if settings.databases.len() == 1 {
        return Ok(Some(settings.databases[0].name.clone()));
    }
    let mut names = catalog.databases().await?;
    let by_id = matches!(opts.selection, Selection::Id(_));
    match names.len() {
        1 => Ok(Some(names.remove(0))),
        _ if names.iter().any(|n| n == target_name) => Ok(Some(target_name.to_string())),
        _ if by_id => Ok(None),
        0 => Err(PgdrError::not_found(format!(
            "no backups in {}",
            catalog.describe()
        ))
        .hint("check --repo (and the S3 credentials): `pgdr list` shows what the repository holds")),
        _ => Err(PgdrError::usage(format!(
            "the repository holds backups of several databases ({}); which one should be restored?",
            names.join(", ")
        ))
        .hint("add --database NAME")),
    }
}

pub(super) async fn select_backup(
    catalog: &Catalog,
    settings: &Settings,
    opts: &RestoreOptions,
    target_name: &str,
) -> Result<Entry> {
    let db = repo_database(catalog, settings, opts, target_name).await?;
    let pick = match &opts.selection {
        Selection::Id(id) => Pick::Id(id),
        Selection::Latest => Pick::Latest,
        Selection::Before(t) => Pick::Before(*t),
    };
    catalog.select(db.as_deref(), pick).await
}

/// For `--at*`: the point's plan (anchor, segments), from the repository database.
pub(super) async fn point_plan(
    catalog: &Catalog,
    settings: &Settings,
    opts: &RestoreOptions,
    target_name: &str,
    spec: &crate::restore::point::PointSpec,
) -> Result<crate::restore::point::PointPlan> {
    let db = repo_database(catalog, settings, opts, target_name)
        .await?
        .ok_or_else(|| PgdrError::usage("which database's changes?").hint("add --database NAME"))?;
    crate::restore::point::plan(catalog, &db, spec).await
}

/// `--before TIME` picks a dump; when the captured changes reach TIME, say so and show the
/// command that restores the database as it was at TIME. Nothing here may fail the plan.
pub(super) async fn before_note(
    settings: &Settings,
    opts: &RestoreOptions,
    target_name: &str,
) -> Option<String> {
    let Selection::Before(t) = opts.selection else {
        return None;
    };
    if opts.at.is_some() {
        return None;
    }
    let catalog = Catalog::open(settings).await.ok()?;
    let spec = crate::restore::point::PointSpec::Time(t);
    match point_plan(&catalog, settings, opts, target_name, &spec).await {
        Ok(p) => Some(format!(
            "change capture covers {}: `pgdr restore --at '{}'` restores the database as it was then (this plan restores the dump alone; {} transaction(s) at most would be replayed onto backup {})",
            t.to_rfc3339(),
            t.to_rfc3339(),
            p.transactions_at_most,
            p.anchor.id
        )),
        Err(e) => {
            tracing::debug!(error = %e, "--before: capture does not cover the time");
            None
        }
    }
}
