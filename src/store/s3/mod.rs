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
//!
//! Files: this one (client, configuration, the `Store` methods), `upload.rs` (single and
//! multipart puts), `listing.rs` (object and upload listings, leftovers), `lock.rs` (Object
//! Lock retentions, bucket protection), `errors.rs` (what a failed request says).

mod errors;
mod listing;
mod lock;
mod upload;

use errors::innermost;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{ServerSideEncryption, StorageClass};
use aws_sdk_s3::Client;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{validate_key, ByteStream, Leftover, ObjectInfo, Protection, Retention, Store};
use crate::config::S3Settings;
use crate::error::{PgdrError, Result};

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
}

fn to_chrono(t: &aws_sdk_s3::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

#[async_trait::async_trait]
impl Store for S3Store {
    async fn put(&self, key: &str, body: ByteStream) -> Result<u64> {
        self.put_stream(key, body, None).await
    }

    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<()> {
        let full = self.full_key(key)?;
        self.put_object(&full, data, None).await
    }

    async fn put_retained(&self, key: &str, body: ByteStream, lock: Retention) -> Result<u64> {
        self.put_stream(key, body, Some(lock)).await
    }

    async fn put_bytes_retained(&self, key: &str, data: Bytes, lock: Retention) -> Result<()> {
        let full = self.full_key(key)?;
        self.put_object(&full, data, Some(lock)).await
    }

    async fn retention(&self, key: &str) -> Result<Option<Retention>> {
        self.object_retention(key).await
    }

    async fn extend_retention(&self, key: &str, lock: Retention) -> Result<()> {
        self.set_retention(key, lock).await
    }

    async fn protection(&self) -> Result<Option<Protection>> {
        self.bucket_protection().await.map(Some)
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
        self.list_objects(prefix).await
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
        self.uploads_older_than(older_than).await
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
