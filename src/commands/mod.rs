//! One module per command: options in, a report out. The CLI parses and renders; nothing here
//! prints.
//!
//! A command whose engine is all there is to it is that engine, re-exported (`backup`,
//! `prune`, `verify`): the daemon runs the same engines, so they live in their stages
//! (`crate::backup`, `crate::schedule::prune`, `crate::verify`), below both.

pub use crate::backup;
pub mod capture;
pub mod cat;
pub mod config_check;
pub mod diff;
pub use crate::schedule::daemon;
pub mod drill;
pub mod keep;
pub mod keygen;
pub mod list;
pub mod mark;
pub use crate::schedule::prune;
pub mod restore;
pub mod schedule;
pub mod sign;
pub mod status;
pub use crate::verify;
