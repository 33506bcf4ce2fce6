//! The daemon's `chain_proof` job: `pgdr capture prove-chain` of the newest backup, under its
//! own lease and schedule (weekly by default), never inside the verification after a backup:
//! replaying days of changes must not hold up the nightly backup's proof.

use tokio_util::sync::CancellationToken;

use crate::catalog::records::Outcome;
use crate::config::ops::JobKind;
use crate::telemetry::events::VerificationFinished;
use crate::verify::chain::{self, ChainOptions};

use super::jobs::start_leased;
use super::{Ctx, JobResult, Trigger};

pub(super) async fn chain_job(
    ctx: &Ctx,
    name: &str,
    trigger: Trigger,
    cancel: CancellationToken,
) -> JobResult {
    // Without capture there is no chain to prove: not a failure of the schedule's default.
    match ctx.catalog.capture_state(name).await {
        Ok(None) => return JobResult::Skipped("change capture is not enabled".into()),
        Ok(Some(_)) => {}
        Err(e) => return JobResult::Failed("chain_proof", e.to_string()),
    }
    let lease = match start_leased(ctx, name, JobKind::ChainProof, &trigger).await {
        Ok(l) => l,
        Err(skipped_or_failed) => return skipped_or_failed,
    };
    let opts = ChainOptions {
        database: Some(name.to_string()),
        backup: None,
    };
    let r = tokio::select! {
        r = chain::run(&ctx.settings, &opts) => r,
        // Dropping the proof removes its scratch cluster.
        _ = cancel.cancelled() => {
            lease.release().await;
            return JobResult::Cancelled;
        }
    };
    lease.release().await;
    let rec = match r {
        Ok(rec) => rec,
        Err(e) => return JobResult::Failed("chain_proof", e.to_string()),
    };
    VerificationFinished {
        database: name,
        backup_id: rec.backup_id.as_str(),
        mode: rec.mode,
        outcome: rec.outcome,
        finished_at: rec.finished_at,
        differences: rec.differences.len(),
    }
    .emit(&ctx.metrics);
    match rec.outcome {
        Outcome::Passed => JobResult::Done(format!(
            "chain proven: the previous anchored backup plus the stored changes equal backup {}",
            rec.backup_id
        )),
        Outcome::Failed => JobResult::Failed(
            "chain_proof",
            format!(
                "chain proof of backup {} FAILED: {}",
                rec.backup_id,
                rec.differences.join("; ")
            ),
        ),
        Outcome::Error => JobResult::Failed(
            "chain_proof",
            format!(
                "chain proof could not run: {}",
                rec.error.unwrap_or_default()
            ),
        ),
    }
}
