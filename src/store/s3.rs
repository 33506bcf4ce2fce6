//! The S3 backend: AWS S3 and compatible servers (Garage, MinIO, Ceph RGW, ...).
//!
//! Objects up to one part go up in a single PutObject. Longer streams become a multipart
//! upload with at most `max_parts_in_flight` parts in flight; while every slot is busy the
//! input is not read, so a slow bucket pushes back on pg_dump and memory stays near
//! part_size × (max_parts_in_flight + 1) whatever the size of the database. A failed or
//! abandoned upload is aborted, so nothing (and no billed orphan parts) is left under the key.
//! Transient failures (5xx, throttling, timeouts, broken connections) are retried by the SDK's
//! standard classified retry policy; everything else fails at once with a message that names
//! the bucket, the key and the request that failed.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ServerSideEncryption, StorageClass,
};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::task::JoinSet;

use super::{validate_key, ByteStream, Leftover, ObjectInfo, Store};
use crate::config::S3Settings;
use crate::error::{Kind, PgdrError, Result};

/// S3 numbers parts 1..=10000.
const MAX_PARTS: i32 = 10_000;
/// Probe objects written by `check_writable`; `list` hides them.
const PROBE_PREFIX: &str = ".pgdr-probe";

/// Network timeouts. The read timeout covers sending a whole part and waiting for the answer
/// (that is how the SDK's HTTP client applies it), so it has to grow with the part size.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
}

impl Timeouts {
    /// Ten seconds to connect; a minute for the server to answer plus time to send one part at
    /// 256 KiB/s, so a slow uplink is not mistaken for a dead server.
    pub fn for_part_size(part_size: usize) -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(60 + (part_size / (256 * 1024)) as u64),
        }
    }
}

pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    /// For messages only: the endpoint URL in effect, or a description of AWS's.
    endpoint: String,
    part_size: usize,
    max_parts_in_flight: usize,
    storage_class: Option<StorageClass>,
    sse: Option<ServerSideEncryption>,
    sse_kms_key_id: Option<String>,
    /// Bytes the server has acknowledged (whole objects and parts), for progress reporting.
    uploaded: Arc<AtomicU64>,
}

impl S3Store {
    pub async fn new(bucket: &str, prefix: &str, s: &S3Settings) -> Result<Self> {
        Self::with_timeouts(bucket, prefix, s, Timeouts::for_part_size(s.part_size)).await
    }

    /// Like [`S3Store::new`] with explicit network timeouts (tests and health checks want to
    /// fail fast).
    pub async fn with_timeouts(
        bucket: &str,
        prefix: &str,
        s: &S3Settings,
        timeouts: Timeouts,
    ) -> Result<Self> {
        let region = RegionProviderChain::first_try(s.region.clone().map(Region::new))
            .or_default_provider()
            .or_else(Region::from_static("us-east-1"));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .retry_config(RetryConfig::standard().with_max_attempts(s.max_attempts.max(1)))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeouts.connect)
                    .read_timeout(timeouts.read)
                    .build(),
            );
        if let Some(e) = &s.endpoint {
            loader = loader.endpoint_url(e);
        }
        match (&s.access_key_id, &s.secret_access_key) {
            (Some(id), Some(secret)) => {
                loader = loader.credentials_provider(Credentials::new(
                    id.expose(),
                    secret.expose(),
                    s.session_token.as_ref().map(|t| t.expose().to_string()),
                    None,
                    "pgdr-config",
                ));
            }
            (None, None) => {}
            _ => {
                return Err(PgdrError::config(
                    "repository.s3: access_key_id and secret_access_key must be set together",
                )
                .hint("set both, or neither to use the standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws, instance role)"));
            }
        }
        let sdk = loader.load().await;

        // aws-config resolves AWS_ENDPOINT_URL (and profile endpoint_url) into the SdkConfig;
        // the S3-specific variable is only consulted when the client is built.
        let env_s3_endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
            .ok()
            .filter(|v| !v.is_empty());
        let endpoint_in_effect = s
            .endpoint
            .clone()
            .or_else(|| env_s3_endpoint.clone())
            .or_else(|| sdk.endpoint_url().map(str::to_string));
        // Self-hosted servers rarely have wildcard DNS for virtual-hosted buckets.
        let path_style = s.force_path_style.unwrap_or(endpoint_in_effect.is_some());
        let conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(path_style)
            .build();
        let endpoint = endpoint_in_effect.unwrap_or_else(|| {
            let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
            format!("the AWS S3 endpoint of region {region}")
        });

        Ok(S3Store {
            client: Client::from_conf(conf),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint,
            part_size: s.part_size,
            max_parts_in_flight: s.max_parts_in_flight.max(1),
            storage_class: s.storage_class.as_deref().map(StorageClass::from),
            sse: s
                .server_side_encryption
                .as_deref()
                .map(ServerSideEncryption::from),
            sse_kms_key_id: s.sse_kms_key_id.clone(),
            uploaded: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Bytes the server has acknowledged since this store was opened: whole objects and
    /// multipart parts (counted when the part's response has been handled).
    pub fn uploaded_bytes(&self) -> u64 {
        self.uploaded.load(Ordering::Relaxed)
    }

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

    fn full_key(&self, key: &str) -> Result<String> {
        validate_key(key).map_err(|e| PgdrError::internal(e.to_string()))?;
        Ok(self.full_prefix(key))
    }

    fn full_prefix(&self, p: &str) -> String {
        if self.prefix.is_empty() {
            p.to_string()
        } else {
            format!("{}/{p}", self.prefix)
        }
    }

    /// The repository-relative form of an object key; `None` if it lies outside the prefix.
    fn relative<'a>(&self, full: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            Some(full)
        } else {
            full.strip_prefix(self.prefix.as_str())?.strip_prefix('/')
        }
    }

    async fn put_object(&self, full: &str, data: Bytes) -> Result<()> {
        let len = data.len() as u64;
        self.client
            .put_object()
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
    ) -> Result<u64> {
        let created = self
            .client
            .create_multipart_upload()
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

    fn fail(&self, action: &str, target: &str, what: &str) -> PgdrError {
        PgdrError::repository(format!("{}: {action} {target} {what}", self.describe()))
    }

    /// One line naming the bucket, the request and the key, plus a hint; never credentials.
    fn sdk_err<E>(&self, action: &str, target: &str, e: SdkError<E, HttpResponse>) -> PgdrError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let head = format!("{}: {action} {target}", self.describe());
        let unreachable_hint = "check [repository.s3] endpoint (or AWS_ENDPOINT_URL), the network and that the S3 server is running";
        match &e {
            SdkError::TimeoutError(_) => PgdrError::repository(format!(
                "{head} failed: endpoint {} unreachable (timed out)",
                self.endpoint
            ))
            .hint(unreachable_hint),
            SdkError::DispatchFailure(d) => {
                let why = if d.is_timeout() {
                    "timed out".to_string()
                } else {
                    innermost(&e)
                };
                PgdrError::repository(format!(
                    "{head} failed: endpoint {} unreachable ({why})",
                    self.endpoint
                ))
                .hint(unreachable_hint)
            }
            SdkError::ConstructionFailure(_) => {
                PgdrError::repository(format!("{head} failed: {}", innermost(&e))).hint(
                    "check the S3 credentials: [repository.s3] access_key_id/secret_access_key, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the instance role",
                )
            }
            SdkError::ResponseError(_) => PgdrError::repository(format!(
                "{head} failed: unreadable response from {} ({})",
                self.endpoint,
                innermost(&e)
            ))
            .hint("check that [repository.s3] endpoint points at an S3 API, not a web console or proxy"),
            _ => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let code = e.code().map(str::to_string);
                let label = code
                    .clone()
                    .or_else(|| status.map(|s| format!("HTTP {s}")))
                    .unwrap_or_else(|| "unknown error".into());
                let detail = e
                    .message()
                    .filter(|m| !m.is_empty())
                    .map(|m| format!(": {}", one_line(m)))
                    .unwrap_or_default();
                match (code.as_deref(), status) {
                    (Some("NoSuchKey"), _) | (None, Some(404)) => {
                        PgdrError::not_found(format!("{head}: no such object"))
                    }
                    (Some("NoSuchBucket"), _) => PgdrError::repository(format!(
                        "{head} failed: bucket '{}' does not exist",
                        self.bucket
                    ))
                    .hint(self.no_bucket_hint()),
                    (
                        Some(
                            "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken"
                            | "InvalidToken" | "TokenRefreshRequired",
                        ),
                        _,
                    ) => PgdrError::repository(format!(
                        "{head} rejected: the credentials are not valid ({label})"
                    ))
                    .hint(CREDENTIALS_HINT),
                    (Some("AccessDenied" | "AllAccessDisabled"), _) | (None, Some(403)) => {
                        PgdrError::repository(format!("{head} denied ({label})"))
                            .hint(self.denied_hint())
                    }
                    (_, Some(s)) if s >= 500 || code.as_deref() == Some("SlowDown") => {
                        PgdrError::repository(format!("{head} failed: {label}{detail}")).hint(
                            "the S3 service kept failing or throttling through all retries; try again later, or raise [repository.s3] max_attempts / lower max_parts_in_flight",
                        )
                    }
                    _ => PgdrError::repository(format!("{head} failed: {label}{detail}")),
                }
            }
        }
    }

    fn no_bucket_hint(&self) -> String {
        format!(
            "create the bucket (aws s3 mb s3://{0}, or garage bucket create {0}) or fix [repository] url / --repo",
            self.bucket
        )
    }

    fn denied_hint(&self) -> String {
        format!(
            "the credentials are wrong or lack permission on bucket '{}': check access_key_id/secret_access_key (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and the key's grants (read, write, list, multipart)",
            self.bucket
        )
    }
}

const CREDENTIALS_HINT: &str = "check [repository.s3] access_key_id/secret_access_key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and the session token if temporary), and the region";

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

async fn abort(
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

/// The input stream failed (pg_dump died, the encoder failed): its own message is the cause.
fn producer_err(key: &str, e: io::Error) -> PgdrError {
    crate::error::from_io(e, format_args!("producing {key}"), Kind::Internal)
}

fn to_chrono(t: &aws_sdk_s3::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The most specific cause in an error chain ("Connection refused (os error 111)"), which is
/// what an operator can act on; the SDK's outer layers only say "dispatch failure".
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    let mut text = cur.to_string();
    while let Some(next) = cur.source() {
        let t = next.to_string();
        if !t.is_empty() {
            text = t;
        }
        cur = next;
    }
    // io::Error's Display adds "(os error 111)"; operators want the words.
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    one_line(&text)
}

#[async_trait::async_trait]
impl Store for S3Store {
    async fn put(&self, key: &str, mut body: ByteStream) -> Result<u64> {
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
                    self.put_object(&full, data).await?;
                    return Ok(total);
                }
                Some(Err(e)) => return Err(producer_err(key, e)),
                Some(Ok(c)) => {
                    total += c.len() as u64;
                    first.push(c);
                }
            }
        }
        self.put_multipart(key, &full, first, total, body).await
    }

    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<()> {
        let full = self.full_key(key)?;
        self.put_object(&full, data).await
    }

    async fn get(&self, key: &str) -> Result<ByteStream> {
        let full = self.full_key(key)?;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| self.sdk_err("GetObject", &full, e))?;
        let what = format!("{}: reading {full}", self.describe());
        // Chunk by chunk as the consumer pulls: a restore never holds the object in memory.
        let stream = futures::stream::unfold(Some(out.body), move |body| {
            let what = what.clone();
            async move {
                let mut body = body?;
                match body.next().await {
                    None => None,
                    Some(Ok(b)) => Some((Ok(b), Some(body))),
                    Some(Err(e)) => {
                        let err = PgdrError::repository(format!("{what}: {}", innermost(&e)))
                            .hint("the connection to the S3 endpoint broke mid-download; run the command again");
                        Some((Err(crate::error::to_io(err)), None))
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
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

    async fn delete(&self, key: &str) -> Result<()> {
        let full = self.full_key(key)?;
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchKey") => Ok(()),
            Err(e) => Err(self.sdk_err("DeleteObject", &full, e)),
        }
    }

    /// Multipart uploads started before `older_than` and never completed nor aborted.
    async fn leftovers(&self, older_than: DateTime<Utc>) -> Result<Vec<Leftover>> {
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

    async fn remove_leftover(&self, leftover: &Leftover) -> Result<()> {
        self.abort_upload(&leftover.key, &leftover.handle).await
    }

    async fn check_writable(&self) -> Result<()> {
        if let Err(e) = self.client.head_bucket().bucket(&self.bucket).send().await {
            let resp = e.raw_response();
            let status = resp.map(|r| r.status().as_u16());
            let bucket_region = resp
                .and_then(|r| r.headers().get("x-amz-bucket-region"))
                .map(str::to_string);
            return Err(match (status, bucket_region) {
                (Some(404), _) => PgdrError::repository(format!(
                    "{}: bucket '{}' does not exist at {}",
                    self.describe(),
                    self.bucket,
                    self.endpoint
                ))
                .hint(self.no_bucket_hint()),
                (Some(403), _) => PgdrError::repository(format!(
                    "{}: access denied to bucket '{}' (HeadBucket returned 403)",
                    self.describe(),
                    self.bucket
                ))
                .hint(self.denied_hint()),
                (Some(301 | 400), Some(region)) => PgdrError::repository(format!(
                    "{}: bucket '{}' is in region {region}",
                    self.describe(),
                    self.bucket
                ))
                .hint(format!(
                    "set [repository.s3] region = \"{region}\" (or AWS_REGION)"
                )),
                _ => self.sdk_err("HeadBucket", &self.bucket, e),
            });
        }
        // Unique per attempt: two jobs of one daemon must not delete each other's probe.
        let key = format!("{PROBE_PREFIX}{}", super::fs::attempt_suffix());
        self.put_bytes(&key, Bytes::from_static(b"probe")).await?;
        self.delete(&key).await
    }

    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
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
