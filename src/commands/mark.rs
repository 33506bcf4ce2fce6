//! `pgdr mark NAME`: a named point in the change stream, to restore to later
//! (`pgdr restore --at-mark NAME`): the pre-migration checkpoint. The mark object is written
//! first (so the capture runner knows the message is pgdr's own), then the non-transactional
//! `pgdr.mark` message, then the object again with the message's LSN.

use chrono::Utc;

use crate::catalog::marks::{self, Mark, MARK_FORMAT, MARK_PREFIX};
use crate::catalog::records;
use crate::catalog::Repository;
use crate::config::Settings;
use crate::error::{PgdrError, Result};
use crate::source::{self, Lsn};

pub async fn run(settings: &Settings, database: Option<&str>, name: &str) -> Result<Mark> {
    marks::check_name(name)?;
    let dbs = settings.select(database)?;
    let [db] = dbs.as_slice() else {
        return Err(PgdrError::usage(format!(
            "pgdr mark writes into one database's stream; {} are selected",
            dbs.len()
        ))
        .hint("add --database NAME"));
    };
    let repo = Repository::open(settings).await?;
    if repo.capture_state(&db.name).await?.is_none() {
        return Err(PgdrError::usage(format!(
            "database '{}' has no change capture: a mark would name a point nothing can restore to",
            db.name
        ))
        .hint("run `pgdr capture enable` first"));
    }
    if let Some(old) = repo.mark(&db.name, name).await? {
        return Err(PgdrError::usage(format!(
            "mark '{name}' of database '{}' exists (made {}); marks are never moved",
            db.name, old.created_at
        ))
        .hint("choose another name"));
    }
    let client = source::connect(db).await?;
    let mut mark = Mark {
        format_version: MARK_FORMAT,
        database: db.name.clone(),
        name: name.to_string(),
        created_at: Utc::now(),
        lsn: None,
        host: records::hostname(),
    };
    repo.write_mark(&mark)
        .await
        .map_err(|e| e.context(format!("recording mark '{name}'")))?;
    let row = client
        .query_one(
            "SELECT pg_logical_emit_message(false, $1, $2)::text",
            &[&MARK_PREFIX, &name],
        )
        .await
        .map_err(|e| {
            PgdrError::database(format!(
                "writing mark '{name}' into the stream: {}",
                crate::restore::db_message(&e)
            ))
        })?;
    let lsn: Lsn = row.get::<_, String>(0).parse()?;
    mark.lsn = Some(lsn);
    repo.write_mark(&mark).await.map_err(|e| {
        e.context(format!(
            "mark '{name}' is in the stream at {lsn} but its LSN could not be recorded"
        ))
    })?;
    Ok(mark)
}
