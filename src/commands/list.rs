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
