//! `pgdr capture run`: the capture runner of one database. It holds the repository lease
//! `capture` (a second runner refuses while it is fresh), goes on from the end of the newest
//! stored segment (or the slot's start for a new capture), and runs `capture::runner` on the
//! slot's stream until stopped.

use std::sync::Arc;

use super::anchors::{AnchorWhy, Anchors};
use super::pause::{Pause, PausePoint};
use super::recover::check_and_recover;
use crate::capture::runner::{
    Heartbeat, Limits, RunReport, Runner, Target, HEARTBEAT_PREFIX, SEQUENCES_PREFIX,
};
use crate::catalog::Repository;
use crate::codec::{self, EncodeParams};
use crate::config::{Database, Settings};
use crate::error::{PgdrError, Result};
use crate::source::{self, Lsn};

/// The repository lease a runner holds.
pub const LEASE_JOB: &str = "capture";

/// `pg_logical_emit_message` on a normal connection: the heartbeat that keeps an idle
/// stream's coverage fresh. Non-transactional, so it shows at once.
struct PgHeartbeat(tokio_postgres::Client);

impl Heartbeat for PgHeartbeat {
    async fn emit(&mut self) -> Result<Lsn> {
        let row = self
            .0
            .query_one(
                "SELECT pg_logical_emit_message(false, $1, now()::text)::text",
                &[&HEARTBEAT_PREFIX],
            )
            .await
            .map_err(|e| PgdrError::database(format!("writing a capture heartbeat: {e}")))?;
        row.get::<_, String>(0).parse()
    }

    async fn sample_sequences(&mut self) -> Result<Option<Lsn>> {
        let row = self
            .0
            .query_one(SAMPLE_SQL, &[&SEQUENCES_PREFIX])
            .await
            .map_err(|e| PgdrError::database(format!("writing a sequence sample: {e}")))?;
        row.get::<_, String>(0).parse().map(Some)
    }
}

/// The sample of CDC.md, built and written in one statement: every sequence the role can
/// read (`pg_sequences` shows NULL `last_value` for one never used: then `is_called` false and
/// the start value).
const SAMPLE_SQL: &str = "SELECT pg_logical_emit_message(false, $1, json_build_object(
    'v', 1,
    'sampled_at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
    'sequences', coalesce((
        SELECT json_agg(json_build_object(
                   'schema', schemaname, 'name', sequencename,
                   'last_value', coalesce(last_value, start_value),
                   'is_called', last_value IS NOT NULL)
                 ORDER BY schemaname, sequencename)
          FROM pg_sequences
         WHERE has_sequence_privilege(format('%I.%I', schemaname, sequencename), 'SELECT')),
        '[]'::json))::text)::text";

/// Run the capture of `database` until `stop` resolves or the server ends the stream.
pub async fn run(
    settings: &Settings,
    database: Option<&str>,
    limits: Limits,
    stop: impl std::future::Future<Output = ()>,
) -> Result<RunReport> {
    let dbs = settings.select(database)?;
    let [db] = dbs.as_slice() else {
        return Err(
            PgdrError::usage("capture run runs one database at a time").hint("add --database NAME")
        );
    };
    let params = Arc::new(EncodeParams {
        compression: settings.compression,
        recipients: codec::parse_recipients(&settings.recipients)?,
    });
    let repo = Repository::open(settings).await?;
    let state = repo
        .capture_state(&db.name)
        .await?
        .filter(|s| s.enabled())
        .ok_or_else(|| {
            PgdrError::usage(format!("capture of database '{}' is not enabled", db.name))
                .hint("run `pgdr capture enable` first")
        })?;
    let owner = format!(
        "{}:{}:{:08x}",
        crate::catalog::records::hostname(),
        std::process::id(),
        fastrand::u32(..)
    );
    let mut taken = repo.acquire_lease(&db.name, LEASE_JOB, &owner).await?;
    // A runner killed on this host (kill -9) cannot renew its lease: take over at once.
    if taken.is_err() && repo.break_dead_lease(&db.name, LEASE_JOB).await? {
        taken = repo.acquire_lease(&db.name, LEASE_JOB, &owner).await?;
    }
    let lease = taken.map_err(|why| {
        PgdrError::usage(format!(
            "capture of '{}' is already running: {why}",
            db.name
        ))
        .hint("stop the other runner, or wait until its lease expires")
    })?;
    let res = run_held(settings, &repo, db, &state, limits, params, stop).await;
    lease.release().await;
    res
}

#[allow(clippy::too_many_arguments)]
async fn run_held(
    settings: &Settings,
    repo: &Repository,
    db: &Database,
    state: &crate::catalog::format::capture::CaptureState,
    limits: Limits,
    params: Arc<EncodeParams>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<RunReport> {
    let previous = repo.newest_segment(&db.name).await?;
    // After a recorded gap the capture went on from a new slot: resume there, not before it.
    let after_gaps = repo.gaps(&db.name).await?.iter().map(|g| g.to).max();
    let mut start = previous
        .as_ref()
        .map_or(state.start_lsn, |p| p.end)
        .max(after_gaps.unwrap_or(Lsn(0)));
    let system_id: u64 = state.system_identifier.parse().map_err(|_| {
        PgdrError::corrupt(format!(
            "capture state of '{}': system identifier '{}' is not a number",
            db.name, state.system_identifier
        ))
    })?;
    let anchors = Anchors::start(settings.clone(), repo.clone(), db.name.clone());
    let gap = check_and_recover(repo, db, &state.slot, start).await?;
    if let Some(g) = &gap {
        start = g.to;
        let _ = anchors.sender().send(AnchorWhy::Gap(g.to));
    }
    let res = stream(
        repo, db, state, limits, params, stop, start, previous, system_id, &anchors,
    )
    .await;
    let taken = anchors.finish().await;
    res.map(|mut r| {
        r.gap = gap;
        r.anchors = taken;
        r
    })
}

#[allow(clippy::too_many_arguments)]
async fn stream(
    repo: &Repository,
    db: &Database,
    state: &crate::catalog::format::capture::CaptureState,
    limits: Limits,
    params: Arc<EncodeParams>,
    stop: impl std::future::Future<Output = ()>,
    start: Lsn,
    previous: Option<crate::catalog::segments::SegmentEntry>,
    system_id: u64,
    anchors: &Anchors,
) -> Result<RunReport> {
    let client = source::connect(db).await?;
    let period = limits.max_age;
    let stream = source::replication::start(db, &state.slot, &state.publication, start).await?;
    let target = Target {
        repo: repo.clone(),
        database: db.name.clone(),
        system_id,
        timeline: state.timeline,
        params,
    };
    let mut runner = Runner::new(
        target,
        limits,
        stream,
        PgHeartbeat(client),
        start,
        previous.as_ref(),
    );
    runner.ask_anchors(anchors.sender());
    let pause = Pause::from_env();
    Pause::at(&pause, PausePoint::BeforeStream).await;
    runner.pause_at(pause);
    let auto =
        (state.auto_add && db.capture.auto_add != Some(false)) || db.capture.auto_add == Some(true);
    let reconcile = match auto {
        true => Some(spawn_reconcile(repo, db, period, anchors.sender()).await?),
        false => None,
    };
    let res = runner.run(stop).await;
    let added = match reconcile {
        Some((task, found)) => {
            task.abort();
            let _ = task.await;
            std::mem::take(&mut *found.lock().expect("auto_add results"))
        }
        None => Vec::new(),
    };
    res.map(|mut r| {
        r.auto_added = added;
        r
    })
}

type Found = Arc<std::sync::Mutex<Vec<super::auto_add::AutoAdded>>>;

/// The `auto_add` reconcile beside the runner, every `period` (the segment age); a round that
/// fails is logged and tried again next time (the capture never stops for it).
async fn spawn_reconcile(
    repo: &Repository,
    db: &Database,
    period: std::time::Duration,
    anchors: tokio::sync::mpsc::UnboundedSender<AnchorWhy>,
) -> Result<(tokio::task::JoinHandle<()>, Found)> {
    let client = source::connect(db).await?;
    let found: Found = Arc::default();
    let (repo, db, out) = (repo.clone(), db.clone(), found.clone());
    let task = tokio::spawn(async move {
        let mut r = super::auto_add::Reconciler::default();
        loop {
            tokio::time::sleep(period).await;
            match r.round(&repo, &db, &client).await {
                Ok(Some(a)) => {
                    // The new tables' rows from before they joined are in no segment: a
                    // dump taken now is the base that holds them.
                    if !a.tables.is_empty() {
                        let _ = anchors.send(AnchorWhy::TablesAdded(a.tables.clone()));
                    }
                    out.lock().expect("auto_add results").push(a)
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(event = "capture_auto_add_failed", database = %db.name, "{e}")
                }
            }
        }
    });
    Ok((task, found))
}
