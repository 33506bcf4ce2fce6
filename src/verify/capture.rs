//! `verify` of a database whose capture is enabled also proves the stored change stream
//! (`capture::check`): a gap or a damaged segment fails the verification run (exit 1). The
//! finding is the run's, not the backup's: the backup's own record is unchanged (a gap after
//! a good dump does not make the dump bad, and a failed record would let prune delete it).

use std::sync::Arc;

use crate::capture::check::{self, CheckReport};
use crate::catalog::Catalog;
use crate::codec;
use crate::config::Settings;
use crate::error::Result;

/// The capture check of each database in `databases` whose capture the repository says is
/// enabled, in that order.
pub async fn capture_checks(settings: &Settings, databases: &[String]) -> Result<Vec<CheckReport>> {
    let catalog = Catalog::open(settings).await?;
    let ids = Arc::new(codec::require_identities(&settings.identities)?);
    let mut out = Vec::new();
    for name in databases {
        if catalog
            .capture_state(name)
            .await?
            .is_some_and(|s| s.enabled())
        {
            out.push(check::check(&catalog, name, ids.clone(), false).await?);
        }
    }
    Ok(out)
}
