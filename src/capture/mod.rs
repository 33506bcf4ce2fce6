//! Change capture: the change stream between dumps, stored as segments in the repository.
//!
//! `pgoutput` decodes the stream's messages (pgdr's own decoder, so segments read whatever
//! the transport becomes); `segment` frames them into self-contained, versioned segments;
//! `runner` groups whole transactions into segments, stores them through the pipeline and
//! only then acknowledges; `check` proves the stored stream complete.

pub mod check;
pub mod pgoutput;
pub mod read;
pub mod runner;
mod schema;
pub mod segment;
mod upload;

#[cfg(test)]
pub(crate) mod fixtures;
