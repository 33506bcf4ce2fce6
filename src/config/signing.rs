//! `[signing]` and `[trust]`: the key a host signs what it writes with, and the public keys a
//! reader accepts (issue 19). Paths and key text only: the keys are read by `codec::sign`.

use std::path::PathBuf;

use serde::Deserialize;

/// `[signing]`: the backup (or capture, verify, drill, restore) host's own key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningFile {
    pub key_file: Option<PathBuf>,
}

/// `[trust]`: minisign public keys whose signatures readers accept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustFile {
    #[serde(default)]
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SigningSettings {
    /// `--signing-key`, `PGDR_SIGNING_KEY`, `[signing] key_file`.
    pub key_file: Option<PathBuf>,
    /// `--trust-key` (repeatable), `PGDR_TRUST_KEYS`, `[trust] keys`: flags replace the file's.
    pub trust_keys: Vec<String>,
    /// `--allow-unsigned`: command line only, never from the environment or a file, so an
    /// exception is always a person's decision at the moment (printed in plans and records).
    pub allow_unsigned: bool,
}
