//! `pgdr list` and `pgdr show`: read-only views of the catalog.

use crate::catalog::{Catalog, Entry, Listed};
use crate::config::Settings;
use crate::error::Result;
use crate::store;

pub async fn list(settings: &Settings, database: Option<&str>) -> Result<Vec<Listed>> {
    let catalog = Catalog::new(store::open(settings).await?);
    catalog.list(database).await
}

pub async fn show(settings: &Settings, database: Option<&str>, id: &str) -> Result<Entry> {
    let catalog = Catalog::new(store::open(settings).await?);
    catalog.find_entry(database, id).await
}
