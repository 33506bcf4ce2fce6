//! Windows of the change stream that cannot be replayed (`<db>/capture/not-replayable/`):
//! written by the capture when a schema change arrives, closed by the anchored backup after
//! it, read by the restore to refuse points inside them by name.

use super::format::replayable::NOT_REPLAYABLE_FORMAT;
use super::{Key, Repository};
use crate::error::{PgdrError, Result};

pub use super::format::replayable::{
    StoredNotReplayable as NotReplayable, StoredNotReplayableReason as NotReplayableReason,
};

impl Repository {
    /// Record (or update, same `from`) a window.
    pub async fn write_not_replayable(&self, w: &NotReplayable) -> Result<()> {
        let key = Key::NotReplayable {
            database: w.database.clone(),
            from: w.from,
        };
        self.put_json(&key, w).await
    }

    /// The recorded windows of a database, oldest first. An unreadable one is an error: a
    /// restore must never replay through a window it could not read.
    pub async fn not_replayable(&self, database: &str) -> Result<Vec<NotReplayable>> {
        let mut out: Vec<NotReplayable> = self
            .read_all_of(
                database,
                |k| matches!(k, Key::NotReplayable { .. }),
                "a not-replayable window",
            )
            .await?;
        for w in &out {
            if w.format_version > NOT_REPLAYABLE_FORMAT {
                return Err(PgdrError::corrupt(format!(
                    "{}: format {} is newer than this pgdr reads ({NOT_REPLAYABLE_FORMAT})",
                    Key::NotReplayable {
                        database: database.to_string(),
                        from: w.from
                    },
                    w.format_version
                ))
                .hint("upgrade pgdr"));
            }
        }
        out.sort_by_key(|w| w.from);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Lsn;

    #[tokio::test]
    async fn a_window_is_written_open_then_closed_and_listed() {
        let repo = crate::catalog::testkit::Repo::new().catalog;
        let mut w = NotReplayable {
            format_version: NOT_REPLAYABLE_FORMAT,
            database: "app".into(),
            from: Lsn(0x100),
            to: None,
            reason: NotReplayableReason::SchemaChange,
            detail: "public.t".into(),
            anchor_backup: None,
            recorded_at: chrono::Utc::now(),
        };
        repo.write_not_replayable(&w).await.unwrap();
        w.to = Some(Lsn(0x200));
        repo.write_not_replayable(&w).await.unwrap();
        let got = repo.not_replayable("app").await.unwrap();
        assert_eq!(got, vec![w]);
        assert!(repo.not_replayable("other").await.unwrap().is_empty());
    }
}
