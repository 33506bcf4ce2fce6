//! Webhook notifications of job outcomes: a generic JSON body or a Slack-compatible one,
//! POSTed with retries and exponential backoff. Delivery never affects the job: a webhook
//! that keeps failing is logged and counted, and that is all.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

use super::events::WebhookFailed;
use super::metrics::Metrics;
use crate::config::ops::WebhookSettings;

pub(super) type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// What happened, for the receiver.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub source: &'static str,
    pub database: String,
    pub job: String,
    /// "failed" or "succeeded".
    pub outcome: &'static str,
    pub error: Option<String>,
    pub summary: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_seconds: f64,
    pub host: String,
}

impl Notification {
    pub fn failed(&self) -> bool {
        self.outcome == "failed"
    }

    /// One line for a heartbeat body or a mail subject: job, database, outcome and why.
    pub fn one_line(&self) -> String {
        let detail = if self.failed() {
            self.error.as_deref().unwrap_or("unknown error")
        } else {
            self.summary.as_deref().unwrap_or("done")
        };
        let detail = detail.lines().next().unwrap_or_default();
        format!(
            "pgdr {} of '{}' {} on {} in {:.1}s: {detail}",
            self.job, self.database, self.outcome, self.host, self.duration_seconds
        )
    }

    /// The generic body: the notification itself.
    pub fn json_body(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("serializable")
    }

    /// An incoming-webhook body Slack (and Mattermost, Rocket.Chat, ...) understands.
    pub fn slack_body(&self) -> serde_json::Value {
        let headline = if self.failed() {
            format!(
                ":red_circle: pgdr {} of '{}' failed on {}: {}",
                self.job,
                self.database,
                self.host,
                self.error.as_deref().unwrap_or("unknown error")
            )
        } else {
            format!(
                ":large_green_circle: pgdr {} of '{}' succeeded on {}{}",
                self.job,
                self.database,
                self.host,
                self.summary
                    .as_deref()
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default()
            )
        };
        let mut fields = vec![
            serde_json::json!({"title": "database", "value": self.database, "short": true}),
            serde_json::json!({"title": "job", "value": self.job, "short": true}),
            serde_json::json!({"title": "duration", "value": format!("{:.1}s", self.duration_seconds), "short": true}),
            serde_json::json!({"title": "started", "value": self.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(), "short": true}),
        ];
        if let Some(e) = &self.error {
            fields.push(serde_json::json!({"title": "error", "value": e, "short": false}));
        }
        serde_json::json!({
            "text": headline,
            "attachments": [{
                "color": if self.failed() { "danger" } else { "good" },
                "fields": fields,
            }],
        })
    }
}

/// The HTTP(S) client webhooks and heartbeats share: native roots, or none (with a warning)
/// so plain-http receivers still work on a host without CA certificates. Built on first use,
/// once per process: reading the system's ~150 CA certificates took 10 ms per client, and
/// every command (a backup with no webhook configured too) used to pay it twice at start-up.
pub(super) fn https_client() -> &'static Client<Https, Full<Bytes>> {
    static CLIENT: std::sync::OnceLock<Client<Https, Full<Bytes>>> = std::sync::OnceLock::new();
    CLIENT.get_or_init(build_https_client)
}

fn build_https_client() -> Client<Https, Full<Bytes>> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_provider_and_native_roots(provider.clone()) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "no CA certificates found: https webhooks will fail (install ca-certificates)");
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder_with_provider(Arc::new(provider))
                    .with_safe_default_protocol_versions()
                    .expect("default protocol versions")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        }
    };
    let https = builder.https_or_http().enable_http1().build();
    Client::builder(TokioExecutor::new()).build(https)
}

pub struct Notifier {
    hooks: Vec<WebhookSettings>,
    metrics: Arc<Metrics>,
    /// The first retry waits this long, each next one twice as long.
    pub backoff: Duration,
}

impl Notifier {
    pub fn new(hooks: Vec<WebhookSettings>, metrics: Arc<Metrics>) -> Notifier {
        Notifier {
            hooks,
            metrics,
            backoff: Duration::from_secs(1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Deliver to every webhook that wants it (failures always; successes when asked).
    /// Returns when each delivered or gave up; never an error.
    pub async fn notify(&self, n: &Notification) {
        let wanted = self.hooks.iter().filter(|h| n.failed() || h.on_success);
        futures::future::join_all(wanted.map(|h| self.deliver(h, n))).await;
    }

    async fn deliver(&self, h: &WebhookSettings, n: &Notification) {
        let body = if h.slack {
            n.slack_body()
        } else {
            n.json_body()
        };
        let body = Bytes::from(serde_json::to_vec(&body).expect("json"));
        let host = url::Url::parse(h.url.expose())
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "?".into());
        let mut delay = self.backoff;
        let mut last_error = String::new();
        for attempt in 1..=h.max_attempts {
            match self.post(h, body.clone()).await {
                Ok(()) => {
                    tracing::debug!(host = %host, attempt, "webhook delivered");
                    return;
                }
                Err((e, retriable)) => {
                    tracing::warn!(host = %host, attempt, error = %e, "webhook attempt failed");
                    last_error = e;
                    if !retriable || attempt == h.max_attempts {
                        break;
                    }
                    // Full jitter: spread retries of many daemons.
                    let ms = delay.as_millis() as u64;
                    tokio::time::sleep(Duration::from_millis(ms / 2 + fastrand::u64(0..=ms / 2)))
                        .await;
                    delay *= 2;
                }
            }
        }
        WebhookFailed {
            host: &host,
            attempts: h.max_attempts,
            error: &last_error,
        }
        .emit(&self.metrics);
    }

    /// One attempt. Err((why, worth retrying)).
    async fn post(&self, h: &WebhookSettings, body: Bytes) -> Result<(), (String, bool)> {
        let req = hyper::Request::post(h.url.expose())
            .header("content-type", "application/json")
            .header("user-agent", concat!("pgdr/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(body))
            .map_err(|_| ("the webhook URL is not a valid URI".to_string(), false))?;
        let resp = tokio::time::timeout(h.timeout, https_client().request(req))
            .await
            .map_err(|_| (format!("no answer within {:?}", h.timeout), true))?
            .map_err(|e| {
                (
                    format!("cannot reach the webhook: {}", error_chain(&e)),
                    true,
                )
            })?;
        let status = resp.status();
        // Read (and drop) the body so the connection can be reused.
        let _ = tokio::time::timeout(h.timeout, resp.into_body().collect()).await;
        if status.is_success() {
            Ok(())
        } else {
            // 429 and 5xx are the receiver's passing trouble; other 4xx will not get better.
            let retriable = status.as_u16() == 429 || status.is_server_error();
            Err((format!("the webhook answered HTTP {status}"), retriable))
        }
    }
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn note() -> Notification {
        let t: DateTime<Utc> = "2026-11-26T02:00:00Z".parse().unwrap();
        Notification {
            source: "pgdr",
            database: "app".into(),
            job: "backup".into(),
            outcome: "failed",
            error: Some("database 'app': connection refused".into()),
            summary: None,
            started_at: t,
            finished_at: t + chrono::Duration::seconds(2),
            duration_seconds: 2.0,
            host: "db1".into(),
        }
    }

    #[test]
    fn bodies() {
        let j = note().json_body();
        assert_eq!(j["database"], "app");
        assert_eq!(j["job"], "backup");
        assert_eq!(j["outcome"], "failed");
        assert_eq!(j["duration_seconds"], 2.0);
        let s = note().slack_body();
        assert_eq!(
            s["text"],
            ":red_circle: pgdr backup of 'app' failed on db1: database 'app': connection refused"
        );
        assert_eq!(s["attachments"][0]["color"], "danger");
    }

    /// A receiver that answers 503 twice, then 200; the third attempt gets through.
    #[tokio::test]
    async fn retries_with_backoff_until_delivered() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut bodies = Vec::new();
            for i in 0..3 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(h) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap();
                        if got.len() >= h + 4 + len {
                            bodies.push(text[h + 4..].to_string());
                            break;
                        }
                    }
                }
                let status = if i < 2 {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                s.write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
            }
            bodies
        });
        let metrics = Arc::new(Metrics::new());
        let mut n = Notifier::new(
            vec![WebhookSettings {
                url: Secret::new(format!("http://{addr}/hook")),
                slack: false,
                on_success: false,
                max_attempts: 4,
                timeout: Duration::from_secs(5),
            }],
            metrics.clone(),
        );
        n.backoff = Duration::from_millis(20);
        n.notify(&note()).await;
        let bodies = server.await.unwrap();
        assert_eq!(bodies.len(), 3);
        let v: serde_json::Value = serde_json::from_str(&bodies[2]).unwrap();
        assert_eq!(v["error"], "database 'app': connection refused");
        assert_eq!(metrics.webhook_failures.get(), 0);
    }

    #[tokio::test]
    async fn an_unreachable_webhook_is_counted_not_raised() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let metrics = Arc::new(Metrics::new());
        let mut n = Notifier::new(
            vec![WebhookSettings {
                url: Secret::new(format!("http://127.0.0.1:{port}/hook")),
                slack: true,
                on_success: false,
                max_attempts: 2,
                timeout: Duration::from_secs(2),
            }],
            metrics.clone(),
        );
        n.backoff = Duration::from_millis(10);
        n.notify(&note()).await;
        assert_eq!(metrics.webhook_failures.get(), 1);
        // Successes go only to webhooks that ask for them.
        let mut ok = note();
        ok.outcome = "succeeded";
        n.notify(&ok).await;
        assert_eq!(metrics.webhook_failures.get(), 1);
    }
}
