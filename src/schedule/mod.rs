//! Running backups, verifications, drills and retention on their own. What to run when (cron
//! schedules, retention policies) is read and resolved by `config::ops`; this module acts on it:
//!
//! - `retention`: the retention plan, pure (the clock is an argument);
//! - `prune`: pruning by that plan, and the leftovers of interrupted runs;
//! - `state`: the daemon's job state (the last run of each job, in the repository);
//! - `daemon`: the loop, the jobs and their exclusion; it drives the engines of `backup`,
//!   `verify`, `drill` and `prune`, never the commands.

pub mod daemon;
pub mod prune;
pub mod retention;
pub mod state;
