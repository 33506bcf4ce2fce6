//! The runner's limits from `[database.capture]` (the built-in defaults where it says
//! nothing): one place, so `capture run` and the daemon run a database alike.

use super::runner::Limits;
use crate::config::capture::CaptureConfig;

/// The configured limits over the built-in ones (fields the file does not know keep theirs).
pub fn limits(c: &CaptureConfig) -> Limits {
    let mut l = Limits::default();
    if let Some(d) = c.segment_age {
        l.max_age = d;
    }
    if let Some(b) = c.segment_bytes {
        l.max_bytes = b;
    }
    if let Some(d) = c.heartbeat {
        l.heartbeat_every = d;
    }
    if let Some(d) = c.sequence_sample {
        l.sequence_sample = d;
    }
    l
}
