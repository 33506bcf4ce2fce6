//! Heartbeat pings in the healthchecks.io / Cronitor convention: `<url>/start` when a run
//! starts, `<url>` when it succeeds, `<url>/fail` when it fails, the one-line outcome as body.
//! The monitor alerts when a ping is late or a fail ping comes, so a timer whose runs stopped
//! altogether is noticed too. The URL is the check's credential: never logged, only its host.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;

use super::webhook::{error_chain, Https};
use crate::config::notify::HeartbeatSettings;

/// Which ping of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    Start,
    Success,
    Fail,
}

/// `<url>/start`, `<url>`, `<url>/fail`; a query string (Cronitor's `?state=`, a token) stays
/// at the end.
pub fn ping_url(base: &str, ping: Ping) -> String {
    let suffix = match ping {
        Ping::Start => "/start",
        Ping::Success => return base.to_string(),
        Ping::Fail => "/fail",
    };
    let (path, query) = match base.find('?') {
        Some(i) => base.split_at(i),
        None => (base, ""),
    };
    format!("{}{suffix}{query}", path.trim_end_matches('/'))
}

/// Whether a heartbeat follows this run.
pub fn wants(h: &HeartbeatSettings, database: &str, job: &str) -> bool {
    h.job.as_deref().is_none_or(|j| j == job) && h.database.as_deref().is_none_or(|d| d == database)
}

/// Send one ping; two attempts, then a warning naming only the host. Never an error.
pub async fn ping(client: &Client<Https, Full<Bytes>>, h: &HeartbeatSettings, p: Ping, body: &str) {
    let url = ping_url(h.url.expose(), p);
    let host = url::Url::parse(&url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let mut last = String::new();
    for attempt in 1..=2u32 {
        match send(client, &url, h.timeout, body).await {
            Ok(()) => {
                tracing::debug!(host = %host, ping = ?p, "heartbeat sent");
                return;
            }
            Err(e) => last = e,
        }
        if attempt == 1 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    tracing::warn!(host = %host, ping = ?p, error = %last, "heartbeat ping failed (the run's outcome is unchanged)");
}

async fn send(
    client: &Client<Https, Full<Bytes>>,
    url: &str,
    timeout: Duration,
    body: &str,
) -> Result<(), String> {
    let req = hyper::Request::post(url)
        .header("content-type", "text/plain; charset=utf-8")
        .header("user-agent", concat!("pgdr/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|_| "the heartbeat URL is not a valid URI".to_string())?;
    let resp = tokio::time::timeout(timeout, client.request(req))
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
        .map_err(|e| {
            format!(
                "cannot reach the heartbeat: {}",
                redact(&error_chain(&e), url)
            )
        })?;
    let status = resp.status();
    let _ = tokio::time::timeout(timeout, resp.into_body().collect()).await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the heartbeat answered HTTP {status}"))
    }
}

/// hyper's errors do not carry the URI today; this keeps it so if one ever does.
fn redact(msg: &str, url: &str) -> String {
    msg.replace(url, "<heartbeat url>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_convention() {
        let b = "https://hc-ping.com/5f2c";
        assert_eq!(ping_url(b, Ping::Start), "https://hc-ping.com/5f2c/start");
        assert_eq!(ping_url(b, Ping::Success), b);
        assert_eq!(ping_url(b, Ping::Fail), "https://hc-ping.com/5f2c/fail");
        assert_eq!(
            ping_url("https://x.example/p/key/?t=1", Ping::Fail),
            "https://x.example/p/key/fail?t=1"
        );
    }
}
