//! `pgdr cat`: decrypt one object of a backup to a file or stdout, checked against the
//! manifest. The manual escape hatch: `pgdr cat ID | pg_restore ...`.

use std::path::Path;
use std::sync::Arc;

use crate::catalog::{self, Catalog, Manifest};
use crate::codec::{self, DecodeStats};
use crate::config::Settings;
use crate::error::{PgdrError, Result};
use crate::pipeline;
use crate::store;

pub async fn run(
    settings: &Settings,
    database: Option<&str>,
    id: &str,
    object: &str,
    out: Option<&Path>,
) -> Result<(Manifest, DecodeStats)> {
    let ids = Arc::new(codec::require_identities(settings.identity.as_deref())?);
    let catalog = Catalog::new(store::open(settings).await?);
    let m = catalog.find(database, id).await?;
    // Prune keeps it while it is read; the mark goes when this function returns.
    let _in_use = catalog.mark_in_use(&m.database, &m.id, "cat").await?;
    let rec = m.object(object).cloned().ok_or_else(|| {
        let have: Vec<&str> = m.objects.iter().map(|o| o.name.as_str()).collect();
        PgdrError::usage(format!("backup {} has no object '{object}'", m.id))
            .hint(format!("objects: {}", have.join(", ")))
    })?;
    let key = catalog::object_key(&m.database, &m.id, &rec.file);
    let store = catalog.store().as_ref();
    let stats = match out {
        Some(p) => {
            let f = tokio::fs::File::create(p)
                .await
                .map_err(|e| PgdrError::usage(format!("cannot create {}: {e}", p.display())))?;
            pipeline::download_to(store, &key, Some(rec.sha256_stored.clone()), ids, f).await?
        }
        None => {
            pipeline::download(
                store,
                &key,
                Some(rec.sha256_stored.clone()),
                ids,
                std::io::stdout(),
            )
            .await?
            .0
        }
    };
    if stats.plain_sha256 != rec.sha256_plain {
        return Err(PgdrError::corrupt(format!(
            "object {key}: decrypted content does not match the manifest's sha256"
        )));
    }
    Ok((m, stats))
}
