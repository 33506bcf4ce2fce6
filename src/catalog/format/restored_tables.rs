//! What a `pgdr restore --table` restored, inside its restore record (`mode: "tables"`).
//! Records that hold it are format 2 of the restore record: a reader of format 1 does not
//! know the mode. Full restores still write format 1's bytes.

use serde::{Deserialize, Serialize};

/// The restore record format of a table restore.
pub const TABLE_RESTORE_FORMAT: u32 = 2;

/// Where the tables went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoredTableMode {
    /// Beside the live tables, in a new schema (`--into`).
    Into,
    /// In place of the live tables, in one transaction (`--replace`).
    Replace,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRestoredTables {
    pub mode: StoredTableMode,
    /// `--into`: the schema the tables landed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The tables restored, as the backup names them ("public.orders"), partitions included.
    pub tables: Vec<String>,
    /// Rows restored, from the backup's fingerprint.
    pub rows: u64,
    /// `--replace --cascade`: foreign keys of other tables dropped and re-created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cascaded: Vec<String>,
    /// Entries of the tables not restored, with why (a foreign key to a table left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}
