//! The resolved `[scratch]` section: where verify and drill restore into. Kept in `config` so
//! that the settings depend on nothing above them; `scratch` reads it.

use std::path::PathBuf;

/// Settings for scratch databases (config `[scratch]`).
#[derive(Debug, Clone, Default)]
pub struct ScratchSettings {
    /// An existing server to create `pgdr_verify_<id>` databases on, instead of a cluster.
    pub url: Option<String>,
    /// OS user that runs the ephemeral cluster when pgdr runs as root (initdb refuses root).
    pub os_user: Option<String>,
    /// Parent directory for the ephemeral cluster; default the system temp dir.
    pub temp_dir: Option<PathBuf>,
    /// Directory with initdb/pg_ctl/pg_restore; default as for pg_dump.
    pub pg_bin_dir: Option<PathBuf>,
}
