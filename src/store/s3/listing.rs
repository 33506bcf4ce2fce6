//! Listing: the objects under the repository prefix, and multipart uploads left behind.

use chrono::{DateTime, Utc};

use aws_sdk_s3::error::ProvideErrorMetadata;

use super::upload::abort;
use super::{to_chrono, S3Store, PROBE_PREFIX};
use crate::error::Result;
use crate::store::{Leftover, ObjectInfo};

impl S3Store {
    /// Multipart uploads under the repository prefix that were never completed nor aborted
    /// (a killed process leaves them; S3 bills their parts): (key relative to the repository,
    /// upload id, initiated).
    pub async fn list_incomplete_uploads(
        &self,
    ) -> Result<Vec<(String, String, Option<DateTime<Utc>>)>> {
        let prefix = self.full_prefix("");
        let mut out = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut id_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| self.sdk_err("ListMultipartUploads", &prefix, e))?;
            for u in page.uploads() {
                let (Some(key), Some(id)) = (u.key(), u.upload_id()) else {
                    continue;
                };
                if let Some(rel) = self.relative(key) {
                    out.push((
                        rel.to_string(),
                        id.to_string(),
                        u.initiated().and_then(to_chrono),
                    ));
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() && id_marker.is_none() {
                break;
            }
        }
        out.sort();
        Ok(out)
    }

    /// Abort one multipart upload (its parts are deleted). An upload that is already gone is
    /// not an error: the goal is that it does not exist.
    pub async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<()> {
        let full = self.full_key(key)?;
        match abort(&self.client, &self.bucket, &full, upload_id).await {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("NoSuchUpload") => Ok(()),
            Err(e) => Err(self.sdk_err("AbortMultipartUpload", &full, e)),
        }
    }

    pub(super) async fn list_objects(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let full_prefix = self.full_prefix(prefix);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.sdk_err("ListObjectsV2", &full_prefix, e))?;
            for o in page.contents() {
                let Some(rel) = o.key().and_then(|k| self.relative(k)) else {
                    continue;
                };
                if rel.starts_with(PROBE_PREFIX) {
                    continue;
                }
                out.push(ObjectInfo {
                    key: rel.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    modified: o.last_modified().and_then(to_chrono),
                });
            }
            token = page.next_continuation_token().map(str::to_string);
            if page.is_truncated() != Some(true) || token.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    pub(super) async fn uploads_older_than(
        &self,
        older_than: DateTime<Utc>,
    ) -> Result<Vec<Leftover>> {
        Ok(self
            .list_incomplete_uploads()
            .await?
            .into_iter()
            .filter(|(_, _, initiated)| initiated.is_some_and(|t| t < older_than))
            .map(|(key, upload_id, initiated)| Leftover {
                key,
                since: initiated,
                size: None,
                what: "multipart upload",
                handle: upload_id,
            })
            .collect())
    }
}
