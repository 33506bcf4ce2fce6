//! `pgdr keygen`: a new age X25519 identity, written 0600, never over an existing file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use age::secrecy::ExposeSecret;

use crate::error::{PgdrError, Result};

/// `pgdr keygen --signing`: a minisign signing key (see `codec::sign`); returns the public
/// key and its id.
pub fn run_signing(out: &Path) -> Result<(String, String)> {
    crate::codec::sign::generate(out)
}

/// Returns the public recipient (`age1...`) to put in the config.
pub fn run(out: &Path) -> Result<String> {
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| {
            let err = PgdrError::config(format!("cannot create identity file {}: {e}", out.display()));
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                err.hint("pgdr never overwrites an identity (backups made for it would become unreadable); choose another --out")
            } else {
                err.hint("choose a writable --out path")
            }
        })?;
    let text = format!(
        "# created: {}\n# public key: {public}\n{}\n",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        id.to_string().expose_secret()
    );
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| PgdrError::config(format!("writing identity file {}: {e}", out.display())))?;
    Ok(public)
}
