//! pgdr: streamed, encrypted, verified PostgreSQL backups.
//!
//! Stages, each one module with one job (ARCHITECTURE.md is the map):
//! `config` → `source` (snapshot, pg_dump, globals) → `codec` (zstd, age, sha256) →
//! `store` (fs, s3) → `catalog` (the Repository) → `fingerprint` → `backup` / `restore` →
//! `verify` → `drill` → `schedule` (retention, prune, the daemon) → `commands` → `cli`.
//! `pipeline` is the one streaming path every stage shares; `cli` only parses and renders.
//! `archive` reads pg_dump's archive layout for both `fingerprint` and `restore`.

pub mod archive;
pub mod backup;
pub mod capture;
pub mod catalog;
pub mod cli;
pub mod codec;
pub mod commands;
pub mod config;
pub mod drill;
pub mod error;
pub mod fingerprint;
pub mod pipeline;
pub mod progress;
pub mod rekey;
pub mod restore;
pub mod schedule;
pub mod scratch;
pub mod source;
pub mod sql;
pub mod store;
pub mod telemetry;
pub mod verify;
