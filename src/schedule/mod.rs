//! Running backups, verifications, drills and retention on their own: the retention plan and
//! the daemon's job state. What to run when (cron schedules, retention policies) is read and
//! resolved by `config::ops`; this module acts on it.
//!
//! `retention` is pure (the clock is an argument); the daemon and the commands that act on
//! its answers live in `commands/`.

pub mod prune;
pub mod retention;
pub mod state;
