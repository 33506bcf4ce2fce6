//! Telling the runner which `pgdr.mark` messages are pgdr's own: those whose name has a mark
//! object in the repository (`pgdr mark` writes the object before the message).

use crate::catalog::marks::MARK_PREFIX;
use crate::catalog::Repository;

/// Whether a non-transactional message is a mark pgdr wrote. A repository that cannot be read
/// just now makes it foreign (reported, ignored for coverage), never stops the capture.
pub async fn is_mark(repo: &Repository, database: &str, prefix: &str, content: &[u8]) -> bool {
    if prefix != MARK_PREFIX {
        return false;
    }
    let Ok(name) = std::str::from_utf8(content) else {
        return false;
    };
    match repo.mark(database, name).await {
        Ok(found) => found.is_some(),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the mark object of a pgdr.mark message");
            false
        }
    }
}
