//! `pgdr diff`: which backup, is it trusted, may its sensitive values be read; the comparison
//! itself is the verify stage's ([`crate::verify::diff`]).

use crate::catalog::{sensitive, Catalog, Pick};
use crate::config::Settings;
use crate::error::Result;
use crate::verify::diff::{self, DiffReport};

/// Which backup to compare with.
#[derive(Debug, Clone)]
pub enum Which {
    /// An id, unique id prefix or label.
    Id(String),
    /// The newest backup of `--database`, or of the target's database name.
    Latest,
}

#[derive(Debug, Clone)]
pub struct DiffOptions {
    pub database: Option<String>,
    pub which: Which,
    /// The live database, as `restore --target` takes it.
    pub target_url: String,
    pub compare: diff::DiffOptions,
}

pub async fn run(settings: &Settings, opts: &DiffOptions) -> Result<DiffReport> {
    let target = super::restore::target_database(&opts.target_url)?;
    let catalog = Catalog::open(settings).await?;
    let entry = match &opts.which {
        Which::Id(id) => {
            catalog
                .select(opts.database.as_deref(), Pick::Id(id))
                .await?
        }
        Which::Latest => {
            let db = opts
                .database
                .clone()
                .or_else(|| target.conn.get_dbname().map(str::to_string));
            catalog.select(db.as_deref(), Pick::Latest).await?
        }
    };
    // A fingerprint no trusted key signed could be made to match anything.
    catalog.authenticate(&entry.manifest).await?;
    let m = entry.manifest;
    // With the identity, setting values and comments are compared too; without it (the
    // database host, where diff runs after a migration) only their names are.
    let (m, revealed) = match settings.identities.is_empty() {
        false => {
            let ids = std::sync::Arc::new(crate::codec::require_identities(&settings.identities)?);
            (
                crate::restore::sensitive::reveal(&catalog, &m, ids).await?,
                true,
            )
        }
        true => {
            // Made before values were sealed: the manifest holds them in clear.
            let clear = m.object(sensitive::OBJECT).is_none();
            (m, clear)
        }
    };
    diff::live(&target, &m, revealed, &opts.compare).await
}
