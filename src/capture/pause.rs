//! A TEST HOOK, not a feature: `PGDR_CAPTURE_PAUSE=after-upload|after-entry` (with
//! `PGDR_CAPTURE_PAUSE_MARKER=<file>`) makes the capture runner stop dead at that point of its
//! first segment commit (the segment object stored but no entry yet; or the entry written but
//! the slot not yet acknowledged), write the marker file and sleep until killed. The crash
//! tests kill -9 it there to prove a restart loses and doubles nothing.
//! `before-stream` waits instead, from after the stream started until the marker is deleted,
//! before the runner's loop: the stop test signals it there (still starting). Read once at
//! start by `capture::job`; children never see it (every child starts from a cleared
//! environment).

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausePoint {
    AfterUpload,
    AfterEntry,
    BeforeStream,
}

#[derive(Debug, Clone)]
pub struct Pause {
    pub at: PausePoint,
    pub marker: PathBuf,
}

impl Pause {
    /// The hook from the environment, if both variables are set and the point is known.
    pub fn from_env() -> Option<Pause> {
        let at = match std::env::var("PGDR_CAPTURE_PAUSE").ok()?.as_str() {
            "after-upload" => PausePoint::AfterUpload,
            "after-entry" => PausePoint::AfterEntry,
            "before-stream" => PausePoint::BeforeStream,
            other => {
                tracing::warn!(value = other, "PGDR_CAPTURE_PAUSE: unknown point, ignored");
                return None;
            }
        };
        let marker = PathBuf::from(std::env::var_os("PGDR_CAPTURE_PAUSE_MARKER")?);
        tracing::warn!(
            ?at,
            "test hook PGDR_CAPTURE_PAUSE is set: the capture will stop dead"
        );
        Some(Pause { at, marker })
    }

    /// At `point`: write the marker and never return (`before-stream`: return once the
    /// marker is deleted).
    pub async fn at(this: &Option<Pause>, point: PausePoint) {
        let Some(p) = this else { return };
        if p.at != point {
            return;
        }
        let _ = std::fs::write(&p.marker, format!("{point:?}\n"));
        if point == PausePoint::BeforeStream {
            while p.marker.exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
}
