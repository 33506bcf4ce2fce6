//! `pgdr list` and `pgdr show`: read-only views of the catalog.

use crate::catalog::{Catalog, Entry, Listed, Pick};
use crate::config::Settings;
use crate::error::Result;

pub async fn list(settings: &Settings, database: Option<&str>) -> Result<Vec<Listed>> {
    let catalog = Catalog::open(settings).await?;
    catalog.list(database).await
}

pub async fn show(settings: &Settings, database: Option<&str>, id: &str) -> Result<Entry> {
    let catalog = Catalog::open(settings).await?;
    catalog.select(database, Pick::Id(id)).await
}

/// Who signed a backup's manifest (for `show`), and whether this host trusts that key.
pub async fn signed_by(
    settings: &Settings,
    m: &crate::catalog::Manifest,
) -> Result<crate::catalog::signatures::SignedBy> {
    let catalog = Catalog::open(settings).await?;
    catalog
        .signed_by(&crate::catalog::Key::manifest(&m.database, &m.id))
        .await
}

/// Who signed a verification record (records are signed by a verify host with a key).
pub async fn verification_signed_by(
    settings: &Settings,
    v: &crate::catalog::VerificationRecord,
) -> Result<crate::catalog::signatures::SignedBy> {
    let catalog = Catalog::open(settings).await?;
    let key = crate::catalog::Key::Verification {
        database: v.database.clone(),
        id: v.backup_id.clone(),
        file: crate::catalog::records::record_file(v.started_at),
    };
    catalog.signed_by(&key).await
}

/// The marks (`pgdr mark`) of the selected database, or of every database in the repository.
pub async fn marks(
    settings: &Settings,
    database: Option<&str>,
) -> Result<Vec<crate::catalog::marks::Mark>> {
    let catalog = Catalog::open(settings).await?;
    let dbs = match database {
        Some(d) => vec![d.to_string()],
        None => catalog.databases().await?,
    };
    let mut out = Vec::new();
    for d in dbs {
        out.extend(catalog.marks(&d).await?);
    }
    Ok(out)
}

/// The restores of a backup (full and `restore --table`), oldest first, with their keys.
pub async fn restores(
    settings: &Settings,
    m: &crate::catalog::Manifest,
) -> Result<Vec<(String, crate::catalog::RestoreRecord)>> {
    let catalog = Catalog::open(settings).await?;
    catalog.restores_of(&m.database, &m.id).await
}
