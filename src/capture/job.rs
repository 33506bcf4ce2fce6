//! `pgdr capture run`: the capture runner of one database. It holds the repository lease
//! `capture` (a second runner refuses while it is fresh), goes on from the end of the newest
//! stored segment (or the slot's start for a new capture), and runs `capture::runner` on the
//! slot's stream until stopped.

use std::sync::Arc;

use crate::capture::runner::{Heartbeat, Limits, RunReport, Runner, Target, HEARTBEAT_PREFIX};
use crate::catalog::segments::{Gap, GapCause, CAPTURE_FORMAT};
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
}

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
    let lease = repo
        .acquire_lease(&db.name, LEASE_JOB, &owner)
        .await?
        .map_err(|why| {
            PgdrError::usage(format!(
                "capture of '{}' is already running: {why}",
                db.name
            ))
            .hint("stop the other runner, or wait until its lease expires")
        })?;
    let res = run_held(&repo, db, &state, limits, params, stop).await;
    lease.release().await;
    res
}

async fn run_held(
    repo: &Repository,
    db: &Database,
    state: &crate::catalog::format::capture::CaptureState,
    limits: Limits,
    params: Arc<EncodeParams>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<RunReport> {
    let previous = repo.newest_segment(&db.name).await?;
    let start = previous.as_ref().map_or(state.start_lsn, |p| p.end);
    let system_id: u64 = state.system_identifier.parse().map_err(|_| {
        PgdrError::corrupt(format!(
            "capture state of '{}': system identifier '{}' is not a number",
            db.name, state.system_identifier
        ))
    })?;
    check_slot(repo, db, &state.slot, start).await?;
    let client = source::connect(db).await?;
    let stream = source::replication::start(db, &state.slot, &state.publication, start).await?;
    let target = Target {
        repo: repo.clone(),
        database: db.name.clone(),
        system_id,
        timeline: state.timeline,
        params,
    };
    let runner = Runner::new(
        target,
        limits,
        stream,
        PgHeartbeat(client),
        start,
        previous.as_ref(),
    );
    runner.run(stop).await
}

/// The slot must still hold everything after pgdr's durable position: a slot that is gone,
/// invalidated or ahead of it lost changes. That is recorded as a gap and the run refuses;
/// it never resumes silently.
async fn check_slot(repo: &Repository, db: &Database, slot: &str, durable: Lsn) -> Result<()> {
    let client = source::connect(db).await?;
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text, coalesce(wal_status, ''), pg_current_wal_lsn()::text \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| PgdrError::database(format!("reading slot '{slot}': {e}")))?;
    let now: Lsn = match &row {
        Some(r) => r.get::<_, String>(2).parse()?,
        None => client
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(|e| PgdrError::database(format!("reading the WAL position: {e}")))?
            .get::<_, String>(0)
            .parse()?,
    };
    let cause = match &row {
        None => Some((
            GapCause::SlotMissing,
            format!("slot '{slot}' does not exist"),
        )),
        Some(r) if r.get::<_, String>(1) == "lost" => Some((
            GapCause::SlotLost,
            format!("slot '{slot}' was invalidated (wal_status lost)"),
        )),
        Some(r) => {
            let confirmed: Option<String> = r.get(0);
            match confirmed.map(|c| c.parse::<Lsn>()).transpose()? {
                Some(c) if c > durable => Some((
                    GapCause::SlotAhead,
                    format!("slot '{slot}' confirmed {c}, past pgdr's durable {durable}"),
                )),
                _ => None,
            }
        }
    };
    let Some((cause, detail)) = cause else {
        return Ok(());
    };
    repo.write_gap(&Gap {
        format_version: CAPTURE_FORMAT,
        database: db.name.clone(),
        from: durable,
        to: now,
        cause,
        detail: Some(detail.clone()),
        detected_at: chrono::Utc::now(),
    })
    .await?;
    tracing::error!(database = %db.name, %durable, %now, detail, "capture gap recorded");
    Err(PgdrError::database(format!(
        "database '{}': changes after {durable} are lost: {detail}; the gap is recorded",
        db.name
    ))
    .hint("run `pgdr capture enable` again (a new slot) and `pgdr backup` (a new anchor)"))
}
