//! What a backup holds, in a form that can be recomputed from a restored copy.
//!
//! The data part is taken from the dump stream itself while it passes (no second scan of the
//! source): per table the row count and an order-independent digest of its COPY rows. The
//! schema part (catalog queries inside the same snapshot) is added beside it.

use serde::{Deserialize, Serialize};

pub mod archive;
pub mod rows;
pub mod schema;
pub mod sensitive;

pub use archive::{ArchiveParser, ArchiveSummary};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fingerprint {
    /// Row counts and digests per table and large object, from the archive stream.
    pub data: ArchiveSummary,
    /// Catalog fingerprint (tables, policies, functions, ...); absent in backups made before
    /// it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<schema::SchemaFingerprint>,
    /// Whether the sensitive values (see [`sensitive`]) are back in `schema`: never stored,
    /// set by `restore::sensitive::reveal` after decrypting them.
    #[serde(skip)]
    pub revealed: bool,
}
