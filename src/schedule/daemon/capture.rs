//! The daemon's change capture: one runner per database whose capture the repository says is
//! enabled (`capture::job`, under the same repository lease as `pgdr capture run`, so the two
//! never capture at once), started again with a growing pause after an error; and a monitor
//! that looks at every capture each minute, sets the gauges and sends an alert when one of
//! its conditions starts (lag, slot, gap, unanchored backup, server unreachable).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::capture::health::{self, Alert, AlertKind, CaptureHealth};
use crate::capture::{job, settings};
use crate::catalog::Listed;
use crate::error::Kind;
use crate::telemetry::capture::{
    CaptureAlert, CaptureAlertCleared, CaptureHeldElsewhere, CaptureObserved, CaptureRunFailed,
    CaptureRunning,
};

use super::Ctx;

/// How often a database whose capture is not enabled (or runs elsewhere) is looked at again.
const RECHECK: Duration = Duration::from_secs(30);
/// The pause after a failure: doubled each time up to the maximum, reset by a long run.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(300));
/// A run this long counts as healthy: the next failure starts the backoff over.
const HEALTHY_RUN: Duration = Duration::from_secs(300);
/// How often the monitor reads the backups' manifests again.
const LISTING_EVERY: Duration = Duration::from_secs(600);
/// How often the monitor looks.
pub(super) const MONITOR_EVERY: Duration = Duration::from_secs(60);

/// A supervisor per database and the monitor. They run until the shutdown itself (not the
/// jobs' grace period): each runner then commits its open segment and stops.
pub(super) fn spawn(
    ctx: &Arc<Ctx>,
    databases: &[String],
    shutdown: &CancellationToken,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for name in databases {
        set.spawn(supervise(ctx.clone(), name.clone(), shutdown.clone()));
    }
    set.spawn(monitor(ctx.clone(), databases.to_vec(), shutdown.clone()));
    set
}

/// Wait for the captures after the shutdown; abort what is still going after `grace`.
pub(super) async fn stop(set: &mut JoinSet<()>, grace: Duration) {
    let waited =
        tokio::time::timeout(grace, async { while set.join_next().await.is_some() {} }).await;
    if waited.is_err() {
        tracing::error!("a capture did not stop within the grace period; its open segment is not committed (the next run captures it again)");
        set.abort_all();
    }
}

/// Does this host run the capture of `name`? The config may keep it out; the repository
/// decides whether there is one.
async fn wanted(ctx: &Ctx, name: &str) -> crate::error::Result<bool> {
    let allowed = ctx
        .settings
        .databases
        .iter()
        .find(|d| d.name == name)
        .is_some_and(|d| d.capture.enabled != Some(false));
    if !allowed {
        return Ok(false);
    }
    Ok(ctx
        .catalog
        .capture_state(name)
        .await?
        .is_some_and(|s| s.enabled()))
}

/// Sleep unless stopped; true when stopped.
async fn pause(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.cancelled() => true,
    }
}

/// The pause to take now; the next one is twice as long, up to the maximum.
fn next_backoff(b: &mut Duration) -> Duration {
    let now = *b;
    *b = (now * 2).min(BACKOFF.1);
    now
}

/// Run the capture of `name` until `stop`: started when the repository says it is enabled,
/// started again after an error, waiting while another pgdr holds it.
async fn supervise(ctx: Arc<Ctx>, name: String, stop: CancellationToken) {
    let mut backoff = BACKOFF.0;
    while !stop.is_cancelled() {
        match wanted(&ctx, &name).await {
            Ok(true) => {}
            Ok(false) => {
                if pause(RECHECK, &stop).await {
                    break;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(database = %name, error = %e, "could not read the capture state");
                if pause(RECHECK, &stop).await {
                    break;
                }
                continue;
            }
        }
        let limits = ctx
            .settings
            .databases
            .iter()
            .find(|d| d.name == name)
            .map(|d| settings::limits(&d.capture))
            .unwrap_or_default();
        CaptureRunning {
            database: &name,
            running: true,
        }
        .emit(&ctx.metrics);
        let t0 = Instant::now();
        let r = job::run(&ctx.settings, Some(&name), limits, stop.cancelled()).await;
        if stop.is_cancelled() {
            CaptureRunning {
                database: &name,
                running: false,
            }
            .emit(&ctx.metrics);
            break;
        }
        if t0.elapsed() >= HEALTHY_RUN {
            backoff = BACKOFF.0;
        }
        let wait = match r {
            // Refused: another runner holds the lease (or the capture was just disabled).
            Err(e) if e.kind == Kind::Usage => {
                CaptureHeldElsewhere {
                    database: &name,
                    why: &e.to_string(),
                }
                .emit(&ctx.metrics);
                RECHECK
            }
            Err(e) => {
                CaptureRunFailed {
                    database: &name,
                    error: &e.to_string(),
                    retry_seconds: backoff.as_secs_f64(),
                }
                .emit(&ctx.metrics);
                next_backoff(&mut backoff)
            }
            Ok(_) => {
                let why = "the server ended the change stream";
                CaptureRunFailed {
                    database: &name,
                    error: why,
                    retry_seconds: backoff.as_secs_f64(),
                }
                .emit(&ctx.metrics);
                next_backoff(&mut backoff)
            }
        };
        if pause(wait, &stop).await {
            break;
        }
    }
}

/// Look at every enabled capture each [`MONITOR_EVERY`], until `stop`.
async fn monitor(ctx: Arc<Ctx>, names: Vec<String>, stop: CancellationToken) {
    let mut open: BTreeMap<String, BTreeMap<String, AlertKind>> = BTreeMap::new();
    let mut listings: BTreeMap<String, (Instant, Vec<Listed>)> = BTreeMap::new();
    loop {
        for name in &names {
            match look(&ctx, name, &mut listings).await {
                Ok(Some(h)) => alerts(&ctx, &h, open.entry(name.clone()).or_default()).await,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(database = %name, error = %e, "could not look at the capture")
                }
            }
        }
        if pause(MONITOR_EVERY, &stop).await {
            return;
        }
    }
}

/// One look; the backup listing (every manifest: many reads on S3) is refreshed only every
/// [`LISTING_EVERY`], so the window and the unanchored alert may lag that much behind.
async fn look(
    ctx: &Ctx,
    name: &str,
    listings: &mut BTreeMap<String, (Instant, Vec<Listed>)>,
) -> crate::error::Result<Option<CaptureHealth>> {
    let Some(state) = ctx
        .catalog
        .capture_state(name)
        .await?
        .filter(|s| s.enabled())
    else {
        return Ok(None);
    };
    let db = ctx.settings.databases.iter().find(|d| d.name == name);
    let max_age = settings::limits(&db.map(|d| d.capture.clone()).unwrap_or_default()).max_age;
    if listings
        .get(name)
        .is_none_or(|(at, _)| at.elapsed() >= LISTING_EVERY)
    {
        let fresh = ctx.catalog.list(Some(name)).await?;
        listings.insert(name.to_string(), (Instant::now(), fresh));
    }
    let listed = &listings[name].1;
    let h = health::observe(&ctx.catalog, name, db, &state, listed, max_age, Utc::now()).await?;
    CaptureObserved {
        database: name,
        lag_bytes: h.lag_bytes,
        lag_seconds: h.lag_seconds,
        retained_bytes: h.slot.as_ref().and_then(|s| s.retained_bytes),
        covered_until: h.covered_until,
        recoverable_from: h.recoverable_from,
        slot_ok: h
            .slot
            .as_ref()
            .is_some_and(|s| matches!(s.wal_status.as_deref(), Some("reserved" | "extended"))),
        gaps: h.gaps.len(),
    }
    .emit(&ctx.metrics);
    Ok(Some(h))
}

/// Alerts that started since the last look, and the kinds of those that ended; `open` is
/// updated. Lag and an unreachable server are one condition each; a gap, a slot state or an
/// unanchored backup is a new alert when it is a different one.
fn transitions(
    open: &mut BTreeMap<String, AlertKind>,
    current: Vec<Alert>,
) -> (Vec<Alert>, Vec<AlertKind>) {
    let now: BTreeMap<String, Alert> = current
        .into_iter()
        .map(|a| {
            let key = match a.kind {
                AlertKind::Lag | AlertKind::Unreachable => a.kind.as_str().to_string(),
                _ => format!("{}:{}", a.kind.as_str(), a.message),
            };
            (key, a)
        })
        .collect();
    let mut started = Vec::new();
    for (key, a) in &now {
        if !open.contains_key(key) {
            open.insert(key.clone(), a.kind);
            started.push(a.clone());
        }
    }
    let mut ended = Vec::new();
    open.retain(|key, kind| {
        let still = now.contains_key(key);
        if !still {
            ended.push(*kind);
        }
        still
    });
    (started, ended)
}

/// Send the alerts that started since the last look; note the ones that ended.
async fn alerts(ctx: &Ctx, h: &CaptureHealth, open: &mut BTreeMap<String, AlertKind>) {
    let (started, ended) = transitions(open, h.alerts());
    for a in &started {
        let e = CaptureAlert {
            database: &h.database,
            kind: a.kind.as_str(),
            message: &a.message,
        };
        e.emit(&ctx.metrics);
        if !ctx.notifier.is_empty() {
            ctx.notifier.alert(&e.notification(Utc::now())).await;
        }
    }
    for kind in ended {
        CaptureAlertCleared {
            database: &h.database,
            kind: kind.as_str(),
        }
        .emit(&ctx.metrics);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(kind: AlertKind, m: &str) -> Alert {
        Alert {
            kind,
            message: m.into(),
        }
    }

    #[test]
    fn an_alert_is_sent_when_its_condition_starts_not_at_every_look() {
        let mut open = BTreeMap::new();
        let (s, e) = transitions(
            &mut open,
            vec![a(AlertKind::Lag, "lags 130s"), a(AlertKind::Gap, "gap 1")],
        );
        assert_eq!(s.len(), 2);
        assert!(e.is_empty());
        // Lag still there (its seconds changed), the same gap: nothing new.
        let (s, e) = transitions(
            &mut open,
            vec![a(AlertKind::Lag, "lags 190s"), a(AlertKind::Gap, "gap 1")],
        );
        assert!(s.is_empty() && e.is_empty(), "{s:?} {e:?}");
        // A second gap is a new alert; the lag ended.
        let (s, e) = transitions(
            &mut open,
            vec![a(AlertKind::Gap, "gap 1"), a(AlertKind::Gap, "gap 2")],
        );
        assert_eq!(s, vec![a(AlertKind::Gap, "gap 2")]);
        assert_eq!(e, vec![AlertKind::Lag]);
        // Lag again: alerted again.
        let (s, _) = transitions(&mut open, vec![a(AlertKind::Lag, "lags 121s")]);
        assert_eq!(s, vec![a(AlertKind::Lag, "lags 121s")]);
    }
}
