//! What a failed S3 request says: one line naming the bucket, the request and the key, plus
//! a hint; never credentials.

use std::io;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::S3Store;
use crate::error::{Kind, PgdrError};
use crate::store::Store;

impl S3Store {
    pub(super) fn fail(&self, action: &str, target: &str, what: &str) -> PgdrError {
        PgdrError::repository(format!("{}: {action} {target} {what}", self.describe()))
    }

    /// One line naming the bucket, the request and the key, plus a hint; never credentials.
    pub(super) fn sdk_err<E>(
        &self,
        action: &str,
        target: &str,
        e: SdkError<E, HttpResponse>,
    ) -> PgdrError
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
            _ => self.service_err(&head, &e),
        }
    }

    /// The service answered with an error: name its code (or HTTP status) and what to do.
    fn service_err<E>(&self, head: &str, e: &SdkError<E, HttpResponse>) -> PgdrError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
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

    pub(super) fn no_bucket_hint(&self) -> String {
        format!(
            "create the bucket (aws s3 mb s3://{0}, or garage bucket create {0}) or fix [repository] url / --repo",
            self.bucket
        )
    }

    pub(super) fn denied_hint(&self) -> String {
        format!(
            "the credentials are wrong or lack permission on bucket '{}': check access_key_id/secret_access_key (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and the key's grants (read, write, list, multipart)",
            self.bucket
        )
    }
}

const CREDENTIALS_HINT: &str = "check [repository.s3] access_key_id/secret_access_key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and the session token if temporary), and the region";

/// The input stream failed (pg_dump died, the encoder failed): its own message is the cause.
pub(super) fn producer_err(key: &str, e: io::Error) -> PgdrError {
    crate::error::from_io(e, format_args!("producing {key}"), Kind::Internal)
}

pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The most specific cause in an error chain ("Connection refused (os error 111)"), which is
/// what an operator can act on; the SDK's outer layers only say "dispatch failure".
pub(super) fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
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
