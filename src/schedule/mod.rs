//! Running backups, verifications, drills and retention on their own: schedules (cron in a
//! time zone), the retention plan, and the settings both read from the config.
//!
//! `retention` and `cron` are pure (the clock is an argument); the daemon and the commands
//! that act on their answers live in `commands/`.

pub mod cron;
pub mod retention;
pub mod settings;
pub mod state;
