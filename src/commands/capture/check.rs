//! `pgdr capture check`: the stored change stream of one database, proven complete or not
//! (`capture::check`). Needs only the repository and the identity.

use std::sync::Arc;

use crate::capture::check::CheckReport;
use crate::catalog::Repository;
use crate::codec;
use crate::config::Settings;
use crate::error::{PgdrError, Result};

pub async fn run(
    settings: &Settings,
    database: Option<&str>,
    list_transactions: bool,
) -> Result<CheckReport> {
    let database = database.ok_or_else(|| {
        PgdrError::usage("capture check needs the database").hint("add --database NAME")
    })?;
    let ids = Arc::new(codec::require_identities(&settings.identities)?);
    let repo = Repository::open(settings).await?;
    crate::capture::check::check(&repo, database, ids, list_transactions).await
}
