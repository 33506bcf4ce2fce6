//! Putting objects: one PutObject up to a part, a bounded multipart upload beyond.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::task::JoinSet;

use super::errors::{innermost, producer_err};
use super::lock::lock_fields;
use super::{S3Store, MAX_PARTS};
use crate::error::{PgdrError, Result};
use crate::store::{ByteStream, Retention};

impl S3Store {
    /// The `Store::put` of S3: one PutObject, or a multipart upload for longer streams.
    pub(super) async fn put_stream(
        &self,
        key: &str,
        mut body: ByteStream,
        lock: Option<Retention>,
    ) -> Result<u64> {
        let full = self.full_key(key)?;
        // Read up to one part before deciding: most objects (manifests, small databases) fit,
        // and one PutObject is cheaper and atomic by itself.
        let mut first: Vec<Bytes> = Vec::new();
        let mut total = 0u64;
        while total <= self.part_size as u64 {
            match body.next().await {
                None => {
                    let data = match first.len() {
                        0 => Bytes::new(),
                        1 => first.pop().expect("one chunk"),
                        _ => {
                            let mut b = BytesMut::with_capacity(total as usize);
                            for c in &first {
                                b.extend_from_slice(c);
                            }
                            b.freeze()
                        }
                    };
                    self.put_object(&full, data, lock).await?;
                    return Ok(total);
                }
                Some(Err(e)) => return Err(producer_err(key, e)),
                Some(Ok(c)) => {
                    total += c.len() as u64;
                    first.push(c);
                }
            }
        }
        self.put_multipart(key, &full, first, total, body, lock)
            .await
    }

    pub(super) async fn put_object(
        &self,
        full: &str,
        data: Bytes,
        lock: Option<Retention>,
    ) -> Result<()> {
        let len = data.len() as u64;
        let (mode, until, checksum) = lock_fields(lock);
        self.client
            .put_object()
            .set_object_lock_mode(mode)
            .set_object_lock_retain_until_date(until)
            .set_checksum_algorithm(checksum)
            .bucket(&self.bucket)
            .key(full)
            .content_length(len as i64)
            .body(SdkBody::from(data))
            .set_storage_class(self.storage_class.clone())
            .set_server_side_encryption(self.sse.clone())
            .set_ssekms_key_id(self.sse_kms_key_id.clone())
            .send()
            .await
            .map_err(|e| self.sdk_err("PutObject", full, e))?;
        self.uploaded.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    async fn put_multipart(
        &self,
        key: &str,
        full: &str,
        first: Vec<Bytes>,
        total: u64,
        body: ByteStream,
        lock: Option<Retention>,
    ) -> Result<u64> {
        // Parts carry the SDK's default CRC32 checksum, which a locked upload requires.
        let (mode, until, _) = lock_fields(lock);
        let created = self
            .client
            .create_multipart_upload()
            .set_object_lock_mode(mode)
            .set_object_lock_retain_until_date(until)
            .bucket(&self.bucket)
            .key(full)
            .set_storage_class(self.storage_class.clone())
            .set_server_side_encryption(self.sse.clone())
            .set_ssekms_key_id(self.sse_kms_key_id.clone())
            .send()
            .await
            .map_err(|e| self.sdk_err("CreateMultipartUpload", full, e))?;
        let upload_id = match created.upload_id() {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => {
                return Err(self
                    .fail("CreateMultipartUpload", full, "returned no upload id")
                    .hint("the endpoint does not behave like S3; check [repository.s3] endpoint"))
            }
        };
        // Covers a dropped future (a cancelled backup): aborts in the background.
        let mut guard = AbortOnDrop {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: full.to_string(),
            upload_id: Some(upload_id.clone()),
        };

        let mut inflight = JoinSet::new();
        let result = match self
            .upload_parts(key, full, &upload_id, first, total, body, &mut inflight)
            .await
        {
            Ok((parts, size)) => self.complete(full, &upload_id, parts).await.map(|()| size),
            Err(e) => {
                // Stop the other parts before aborting, so none lands after the abort.
                inflight.shutdown().await;
                Err(e)
            }
        };
        guard.upload_id = None;
        if result.is_err() {
            if let Err(e) = abort(&self.client, &self.bucket, full, &upload_id).await {
                let e = self.sdk_err("AbortMultipartUpload", full, e);
                tracing::warn!(upload_id = %upload_id, "could not abort a failed upload: {e}");
            }
        }
        result
    }

    /// Feed the input into parts of exactly `part_size` (the last may be smaller), at most
    /// `max_parts_in_flight` uploading at once. Returns the parts sorted by number and the size.
    #[allow(clippy::too_many_arguments)]
    async fn upload_parts(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
        first: Vec<Bytes>,
        mut total: u64,
        mut body: ByteStream,
        inflight: &mut JoinSet<PartResult>,
    ) -> Result<(Vec<CompletedPart>, u64)> {
        let mut buf = PartBuffer::new(self.part_size);
        let mut ready: VecDeque<Bytes> = VecDeque::new();
        for c in first {
            ready.extend(buf.push(c));
        }
        let mut parts = Vec::new();
        let mut next_number: i32 = 1;
        let mut eof = false;
        loop {
            while inflight.len() < self.max_parts_in_flight {
                let Some(data) = ready.pop_front() else { break };
                if next_number > MAX_PARTS {
                    return Err(self
                        .fail(
                            "UploadPart",
                            full,
                            &format!("needs more than {MAX_PARTS} parts of {} bytes", self.part_size),
                        )
                        .hint("raise [repository.s3] part_size (e.g. \"64MiB\") for objects this large"));
                }
                inflight.spawn(upload_part(
                    self.client.clone(),
                    self.bucket.clone(),
                    full.to_string(),
                    upload_id.to_string(),
                    next_number,
                    data,
                ));
                next_number += 1;
            }
            if eof && ready.is_empty() {
                if let Some(last) = buf.take_rest() {
                    ready.push_back(last);
                    continue;
                }
                while let Some(joined) = inflight.join_next().await {
                    parts.push(self.part_done(full, joined)?);
                }
                break;
            }
            if inflight.len() >= self.max_parts_in_flight {
                // Every slot is busy: do not read more input until one part is done. This is
                // the backpressure that bounds memory.
                let joined = inflight.join_next().await.expect("parts in flight");
                parts.push(self.part_done(full, joined)?);
                continue;
            }
            // A slot is free: read on, and notice a failed part while the input is slow.
            tokio::select! {
                biased;
                Some(joined) = inflight.join_next(), if !inflight.is_empty() => {
                    parts.push(self.part_done(full, joined)?);
                }
                item = body.next() => match item {
                    None => eof = true,
                    Some(Err(e)) => return Err(producer_err(key, e)),
                    Some(Ok(c)) => {
                        total += c.len() as u64;
                        ready.extend(buf.push(c));
                    }
                },
            }
        }
        parts.sort_by_key(|p| p.part_number());
        Ok((parts, total))
    }

    fn part_done(
        &self,
        full: &str,
        joined: std::result::Result<PartResult, tokio::task::JoinError>,
    ) -> Result<CompletedPart> {
        let (number, len, res) =
            joined.map_err(|e| PgdrError::internal(format!("S3 part upload task: {e}")))?;
        let out = res.map_err(|e| self.sdk_err(&format!("UploadPart {number} of"), full, e))?;
        let etag = match out.e_tag() {
            Some(t) if !t.is_empty() => t.to_string(),
            // Without the ETag the part cannot be named in CompleteMultipartUpload.
            _ => {
                return Err(self
                    .fail(&format!("UploadPart {number} of"), full, "answered without an ETag")
                    .hint("the endpoint does not behave like S3 (a proxy stripping headers?); check [repository.s3] endpoint"))
            }
        };
        self.uploaded.fetch_add(len, Ordering::Relaxed);
        Ok(CompletedPart::builder()
            .part_number(number)
            .e_tag(etag)
            .build())
    }

    async fn complete(&self, full: &str, upload_id: &str, parts: Vec<CompletedPart>) -> Result<()> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.sdk_err("CompleteMultipartUpload", full, e))?;
        Ok(())
    }
}

/// What a part upload task hands back: its number, its length and the SDK's answer.
type PartResult = (
    i32,
    u64,
    std::result::Result<
        aws_sdk_s3::operation::upload_part::UploadPartOutput,
        SdkError<aws_sdk_s3::operation::upload_part::UploadPartError, HttpResponse>,
    >,
);

async fn upload_part(
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    number: i32,
    data: Bytes,
) -> PartResult {
    let len = data.len() as u64;
    let res = client
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .content_length(len as i64)
        .body(SdkBody::from(data))
        .send()
        .await;
    (number, len, res)
}

pub(super) async fn abort(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> std::result::Result<
    (),
    SdkError<
        aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadError,
        HttpResponse,
    >,
> {
    client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
        .map(|_| ())
}

/// Aborts the multipart upload when the `put` future is dropped before it finished (a
/// cancelled backup), so no parts linger. `put` disarms it and aborts inline on its own errors.
struct AbortOnDrop {
    client: Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = abort(&client, &bucket, &key, &upload_id).await {
                        tracing::warn!(
                            bucket = %bucket, key = %key, upload_id = %upload_id,
                            "could not abort a cancelled upload: {}", innermost(&e)
                        );
                    }
                });
            }
            Err(_) => tracing::warn!(
                bucket = %self.bucket, key = %self.key, upload_id = %upload_id,
                "cancelled upload left incomplete (no runtime to abort it); prune removes it"
            ),
        }
    }
}

/// Cuts a stream of arbitrary chunks into parts of exactly `size` bytes.
struct PartBuffer {
    size: usize,
    cur: BytesMut,
}

impl PartBuffer {
    fn new(size: usize) -> Self {
        PartBuffer {
            size,
            cur: BytesMut::new(),
        }
    }

    fn push(&mut self, mut chunk: Bytes) -> Vec<Bytes> {
        let mut full = Vec::new();
        while !chunk.is_empty() {
            if self.cur.is_empty() && chunk.len() >= self.size {
                // A whole part inside one chunk: hand it on without copying.
                full.push(chunk.split_to(self.size));
                continue;
            }
            if self.cur.capacity() == 0 {
                self.cur.reserve(self.size);
            }
            let n = (self.size - self.cur.len()).min(chunk.len());
            self.cur.extend_from_slice(&chunk.split_to(n));
            if self.cur.len() == self.size {
                full.push(std::mem::take(&mut self.cur).freeze());
            }
        }
        full
    }

    fn take_rest(&mut self) -> Option<Bytes> {
        (!self.cur.is_empty()).then(|| std::mem::take(&mut self.cur).freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_buffer_cuts_exact_parts() {
        let mut b = PartBuffer::new(4);
        assert!(b.push(Bytes::from_static(b"ab")).is_empty());
        let parts = b.push(Bytes::from_static(b"cdefghijk"));
        assert_eq!(
            parts,
            vec![Bytes::from_static(b"abcd"), Bytes::from_static(b"efgh")]
        );
        assert_eq!(
            b.push(Bytes::from_static(b"lmn")),
            vec![Bytes::from_static(b"ijkl")]
        );
        assert_eq!(b.take_rest(), Some(Bytes::from_static(b"mn")));
        assert_eq!(b.take_rest(), None);
    }
}
