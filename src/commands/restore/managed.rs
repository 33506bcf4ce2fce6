//! `pgdr restore` onto a managed server (no SUPERUSER, or `--managed`): the plan's decisions
//! ([`crate::restore::managed`]), the refusals, and the proof narrowed to what was restored.

use std::sync::Arc;

use tokio_postgres::Client;

use crate::catalog::Manifest;
use crate::config::Database;
use crate::error::{PgdrError, Result};
use crate::restore::managed::{self, ManagedPlan};

use super::target::TargetState;
use super::{ModeFlag, RestoreOptions};

/// A managed plan for a target role without SUPERUSER, or with `--managed`.
pub(super) async fn plan_if(
    maint: &Client,
    target: &Database,
    state: &TargetState,
    m: &Manifest,
    opts: &RestoreOptions,
    superuser: bool,
    previous: &str,
) -> Result<Option<Arc<ManagedPlan>>> {
    if superuser && !opts.managed {
        return Ok(None);
    }
    Ok(Some(plan(maint, target, state, m, opts, previous).await?))
}

/// Triggers an interrupted managed restore left disabled on this target (recorded in the
/// repository): put back to their recorded states before anything is planned (the plan
/// reads the triggers and the platform tables as they are), whatever this run then does.
pub(super) async fn put_back_held(
    repo: &crate::catalog::Repository,
    m: &Manifest,
    target: &Database,
    state: &TargetState,
) -> Result<Vec<String>> {
    if matches!(state, TargetState::Missing) {
        return Ok(Vec::new());
    }
    let server = super::plan::server_of(target);
    let at = crate::restore::managed_hold::HeldAt {
        repo,
        repo_db: &m.database,
        server: &server,
        database: target.conn.get_dbname().unwrap_or_default(),
    };
    if repo
        .held_triggers(at.repo_db, at.server, at.database)
        .await?
        .is_none()
    {
        return Ok(Vec::new());
    }
    let db = crate::source::connect(target).await?;
    crate::restore::managed_hold::put_back_leftover(at, &db).await
}

/// Plan the managed restore; refuse, naming every problem, when it cannot be done as asked.
pub(super) async fn plan(
    maint: &Client,
    target: &Database,
    state: &TargetState,
    m: &Manifest,
    opts: &RestoreOptions,
    previous: &str,
) -> Result<Arc<ManagedPlan>> {
    let swap = opts.mode == ModeFlag::Swap && !matches!(state, TargetState::Missing);
    if swap {
        super::managed_swap::check(maint, target).await?;
    }
    // A swap restores into a new `<name>_restoring`: planned as a new database (every schema
    // restored whole), the existing one is not looked into.
    let db = match state {
        TargetState::Missing => None,
        _ if swap => None,
        _ => Some(crate::source::connect(target).await?),
    };
    let mut p = managed::plan(
        maint,
        db.as_ref(),
        m,
        &opts.schemas,
        opts.mode == ModeFlag::Clean,
    )
    .await?;
    p.server = super::plan::server_of(target);
    if !p.problems.is_empty() {
        let mut e = PgdrError::usage(format!(
            "cannot restore onto the managed target {}: {}",
            target.describe(),
            p.problems.join("; ")
        ));
        if !p.app_contents.is_empty() && !p.clean {
            e = e.hint("add --clean to drop and re-create the application schemas (platform schemas are not touched)")
                .hint("or --swap to restore into a new database and rename it into place, keeping this one (where the connecting role owns the database and has CREATEDB)");
        }
        e = e.hint("--platform-schema NAME / --app-schema NAME say which schemas are whose");
        return Err(e);
    }
    if swap {
        super::managed_swap::describe(&mut p, target, previous);
    }
    Ok(Arc::new(p))
}

/// The proof of a managed restore: the application schemas by the full schema fingerprint,
/// every table's rows (platform tables' too, by the backup's columns) by count and digest.
pub(super) async fn prove(
    target: &crate::restore::Target,
    m: &Manifest,
    p: &ManagedPlan,
) -> Result<Vec<String>> {
    crate::catalog::sensitive::require_revealed(m)?;
    let Some(fp) = &m.fingerprint else {
        return Ok(vec![
            "the manifest has no fingerprint to compare with".into()
        ]);
    };
    let mut diffs = Vec::new();
    if let Some(expected) = &fp.schema {
        let client = crate::source::connect(&target.database()).await?;
        let mut actual = crate::fingerprint::schema::capture(&client).await?;
        let mut expected = expected.clone();
        crate::restore::managed_run::narrow(&mut expected, p, None);
        crate::restore::managed_run::narrow(&mut actual, p, Some(&expected));
        // The owners the plan named as replaced (superusers the connecting role can never
        // act as) are the connecting role in the copy, as owners and in every privilege they
        // held or granted: compared as the plan said, everything else as it was.
        let replaced = p
            .foreign_owners
            .iter()
            .map(|o| (o.clone(), p.role.clone()))
            .collect();
        crate::fingerprint::schema::map_roles(&mut expected, &replaced);
        // Roles and memberships are judged by the roles proof that follows (the same
        // attributes, settings and memberships, and more): it knows which attributes and
        // grantors a non-superuser could not give and named, which this diff cannot.
        let opts = crate::fingerprint::schema::DiffOptions {
            database_properties: false,
            // Owners too: `--no-owner` gives the connecting role every object, so an owner
            // the plan did not name as replaced (one whose membership it planned to grant,
            // or one it already had) is reported, as the privileges it held would be.
            owners: true,
            roles: false,
            ..Default::default()
        };
        diffs.extend(crate::fingerprint::schema::diff(&expected, &actual, &opts));
    }
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let actual = crate::verify::recompute_data(target, &fp.data, parallel).await?;
    diffs.extend(crate::verify::compare_data(
        &fp.data,
        &actual,
        "after restore",
    ));
    Ok(diffs)
}

/// The restore mode on a managed target: into the existing database, beside it (`--swap`,
/// checked possible by [`plan`]), or a new one.
pub(super) fn mode(
    p: Option<&ManagedPlan>,
    state: &TargetState,
    flag: ModeFlag,
) -> Option<crate::catalog::records::RestoreMode> {
    use crate::catalog::records::RestoreMode;
    p.map(|p| {
        if flag == ModeFlag::Swap && !matches!(state, TargetState::Missing) {
            RestoreMode::Swap
        } else if p.database_exists {
            RestoreMode::IntoExisting
        } else {
            RestoreMode::Create
        }
    })
}
