//! Decrypting a backup's sensitive object back into its manifest, before a restore or a
//! proof compares or replays setting values and comments.

use crate::catalog::{self, sensitive, Manifest};
use crate::error::{PgdrError, Result};
use crate::pipeline;

/// `m` with the sensitive values decrypted back into its fingerprint. A manifest without the
/// object (made before it existed) carries its values in clear and comes back as it is.
pub async fn reveal(
    repo: &catalog::Repository,
    m: &Manifest,
    ids: crate::codec::Identities,
) -> Result<Manifest> {
    let Some(rec) = m.object(sensitive::OBJECT) else {
        let mut out = m.clone();
        if let Some(fp) = out.fingerprint.as_mut() {
            fp.revealed = true;
        }
        return Ok(out);
    };
    let key = catalog::Key::object(&m.database, &m.id, &rec.file);
    let (st, bytes) =
        pipeline::download(repo, &key, Some(rec.sha256_stored.clone()), ids, Vec::new()).await?;
    if st.plain_sha256 != rec.sha256_plain {
        return Err(PgdrError::corrupt(format!(
            "object {}: decrypted content does not match the manifest's sha256",
            rec.file
        )));
    }
    sensitive::reveal_with(m, &bytes)
}
