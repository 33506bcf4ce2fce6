//! S3 Object Lock: retentions of single objects and the bucket's protection. pgdr never uses
//! the governance bypass: a lock it sets holds against pgdr too.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::DateTime as SdkDateTime;
use aws_sdk_s3::types::{
    BucketVersioningStatus, ChecksumAlgorithm, ObjectLockEnabled, ObjectLockMode,
    ObjectLockRetention, ObjectLockRetentionMode,
};
use chrono::{DateTime, Utc};

use super::{to_chrono, S3Store};
use crate::error::Result;
use crate::store::{LockMode, Protection, Retention};

/// Error codes of "this bucket has no Object Lock configuration", and of a server that has
/// no Object Lock at all (Garage answers NotImplemented).
const NO_LOCK_CODES: &[&str] = &["ObjectLockConfigurationNotFoundError", "NotImplemented"];

/// The PutObject/CreateMultipartUpload fields of a lock, and the checksum a locked PutObject
/// must carry (S3 refuses a locked put without Content-MD5 or an x-amz-checksum; CRC32 is
/// computed by the SDK on the way).
pub(super) fn lock_fields(
    lock: Option<Retention>,
) -> (
    Option<ObjectLockMode>,
    Option<SdkDateTime>,
    Option<ChecksumAlgorithm>,
) {
    match lock {
        None => (None, None, None),
        Some(r) => (
            Some(match r.mode {
                LockMode::Governance => ObjectLockMode::Governance,
                LockMode::Compliance => ObjectLockMode::Compliance,
            }),
            Some(sdk_time(r.until)),
            Some(ChecksumAlgorithm::Crc32),
        ),
    }
}

fn sdk_time(t: DateTime<Utc>) -> SdkDateTime {
    SdkDateTime::from_secs(t.timestamp())
}

fn retention_mode(m: LockMode) -> ObjectLockRetentionMode {
    match m {
        LockMode::Governance => ObjectLockRetentionMode::Governance,
        LockMode::Compliance => ObjectLockRetentionMode::Compliance,
    }
}

impl S3Store {
    /// Read with HeadObject, whose answer carries the lock (S3 sends the lock headers to a
    /// caller allowed s3:GetObjectRetention): it is what every S3 implementation serves,
    /// where GetObjectRetention is missing from some (moto answers it with the object).
    pub(super) async fn object_retention(&self, key: &str) -> Result<Option<Retention>> {
        let full = self.full_key(key)?;
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| self.sdk_err("HeadObject", &full, e))?;
        let mode = match out.object_lock_mode() {
            Some(ObjectLockMode::Compliance) => LockMode::Compliance,
            Some(ObjectLockMode::Governance) => LockMode::Governance,
            _ => return Ok(None),
        };
        Ok(out
            .object_lock_retain_until_date()
            .and_then(to_chrono)
            .map(|until| Retention { mode, until }))
    }

    pub(super) async fn set_retention(&self, key: &str, lock: Retention) -> Result<()> {
        let full = self.full_key(key)?;
        self.client
            .put_object_retention()
            .bucket(&self.bucket)
            .key(&full)
            .retention(
                ObjectLockRetention::builder()
                    .mode(retention_mode(lock.mode))
                    .retain_until_date(sdk_time(lock.until))
                    .build(),
            )
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(|e| self.sdk_err("PutObjectRetention", &full, e))?;
        Ok(())
    }

    pub(super) async fn bucket_protection(&self) -> Result<Protection> {
        let v = self
            .client
            .get_bucket_versioning()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.sdk_err("GetBucketVersioning", &self.bucket, e))?;
        let versioning = match v.status() {
            Some(BucketVersioningStatus::Enabled) => "Enabled".to_string(),
            Some(BucketVersioningStatus::Suspended) => "Suspended".to_string(),
            _ => "never enabled".to_string(),
        };
        let conf = match self
            .client
            .get_object_lock_configuration()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(o) => o.object_lock_configuration,
            Err(e) if e.code().is_some_and(|c| NO_LOCK_CODES.contains(&c)) => None,
            Err(e) => return Err(self.sdk_err("GetObjectLockConfiguration", &self.bucket, e)),
        };
        let object_lock = conf
            .as_ref()
            .is_some_and(|c| c.object_lock_enabled() == Some(&ObjectLockEnabled::Enabled));
        let default_retention = conf
            .as_ref()
            .and_then(|c| c.rule())
            .and_then(|r| r.default_retention())
            .map(|d| {
                let mode = d
                    .mode()
                    .map(|m| m.as_str().to_lowercase())
                    .unwrap_or_default();
                match (d.days(), d.years()) {
                    (Some(n), _) => format!("{mode} for {n} days"),
                    (_, Some(n)) => format!("{mode} for {n} years"),
                    _ => mode,
                }
            });
        Ok(Protection {
            versioning,
            object_lock,
            default_retention,
        })
    }
}
