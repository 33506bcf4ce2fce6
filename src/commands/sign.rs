//! `pgdr sign ID | --all-unsigned`: an operator adopts backups made before signing existed
//! (or on a host without a key), after checking them. Each manifest must first prove its own
//! checksum and names; one that does not is refused and left unsigned.

use crate::catalog::{Catalog, Listed, Pick};
use crate::config::Settings;
use crate::error::{PgdrError, Result};

#[derive(Debug, Default, serde::Serialize)]
pub struct SignReport {
    pub key_id: String,
    /// `<db>/<id>` newly signed.
    pub signed: Vec<String>,
    /// Already signed (left as they were).
    pub already_signed: Vec<String>,
    /// Not signed, and why (a damaged manifest).
    pub refused: Vec<(String, String)>,
}

pub async fn run(
    settings: &Settings,
    database: Option<&str>,
    id: Option<&str>,
) -> Result<SignReport> {
    let catalog = Catalog::open(settings).await?;
    let Some(key_id) = catalog.signing_key_id().map(str::to_string) else {
        return Err(PgdrError::usage("pgdr sign needs a signing key")
            .hint("give --signing-key FILE (or PGDR_SIGNING_KEY, [signing] key_file)"));
    };
    let mut r = SignReport {
        key_id,
        ..Default::default()
    };
    let targets: Vec<Listed> = match id {
        // One backup: a damaged manifest is an error (exit 2), named by select.
        Some(id) => {
            let e = catalog.select(database, Pick::Id(id)).await?;
            vec![Listed::Ok(Box::new(e))]
        }
        None => catalog.list(database).await?,
    };
    for l in targets {
        let name = format!("{}/{}", l.database(), l.id());
        match l {
            Listed::Damaged { error, .. } => r.refused.push((name, error)),
            Listed::Ok(e) => {
                match catalog
                    .sign_backup(&e.manifest.database, &e.manifest.id)
                    .await
                {
                    Ok(true) => r.signed.push(name),
                    Ok(false) => r.already_signed.push(name),
                    Err(err) if id.is_some() => return Err(err),
                    Err(err) => r.refused.push((name, err.message)),
                }
            }
        }
    }
    Ok(r)
}
