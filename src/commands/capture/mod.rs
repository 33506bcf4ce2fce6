//! `pgdr capture ...`: change capture between dumps. `enable` checks the server, sets up a
//! `FOR TABLE` publication and a persistent pgoutput slot and records them in the repository;
//! `disable` drops them; `doctor` lists pgdr's slots and the orphans' DROP; `run` captures;
//! `check` proves the stored stream. The engines live in the `capture` stage (the daemon runs
//! them too); `check` adds the command's own argument handling.

pub mod check;
pub use crate::capture::job as run;
pub use crate::capture::names::capture_name;
pub use crate::capture::{doctor, preflight, setup};
