//! Change capture: the change stream between dumps, stored as segments in the repository.
//!
//! `pgoutput` decodes the stream's messages (pgdr's own decoder, so segments read whatever
//! the transport becomes); `segment` frames them into self-contained, versioned segments;
//! `runner` groups whole transactions into segments, stores them through the pipeline and
//! only then acknowledges; `check` proves the stored stream complete. The engines the
//! commands and the daemon share: `setup` (enable/disable, with `preflight`), `doctor`, `job`
//! (one database's runner under its lease).

pub mod anchors;
pub mod auto_add;
pub mod check;
pub mod doctor;
pub mod health;
pub mod job;
pub mod marks;
pub mod names;
mod pause;
pub mod pgoutput;
pub mod preflight;
pub mod read;
pub mod recover;
pub mod runner;
mod schema;
pub mod segment;
pub mod settings;
pub mod setup;
pub mod stream;
mod upload;

#[cfg(test)]
pub(crate) mod fixtures;
