//! How a reader (verify, drill, restore) accepted the backup it read, as its record stores
//! it: signed by which trusted key, or let through unsigned and why (issue 19).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Acceptance {
    /// The manifest's signature is by a trusted key over its exact bytes.
    Trusted,
    /// Not proven, and read anyway because the operator gave `--allow-unsigned`.
    AllowedUnsigned,
    /// No trust key is configured on this host: nothing to prove against (a warning).
    NoTrustKeys,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSignature {
    pub acceptance: Acceptance,
    /// The key id that signed the manifest (trusted or not), if it is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// What was wrong when it was let through (unsigned, unknown key, mismatch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}
