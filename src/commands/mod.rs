//! One file per command: options in, a report out. The CLI parses and renders; nothing here
//! prints.

pub mod backup;
pub mod capture;
pub mod cat;
pub mod config_check;
pub mod daemon;
pub mod drill;
pub mod keygen;
pub mod list;
pub mod prune;
pub mod restore;
pub mod schedule;
pub mod status;
pub mod verify;
