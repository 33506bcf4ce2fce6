//! The daemon's HTTP listener: `GET /metrics` (Prometheus text format) and `GET /healthz`.
//! hyper's HTTP/1 server on a tokio listener; nothing else is served.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use crate::error::{PgdrError, Result};

/// The scheduler's heartbeat: /healthz fails when it stops ticking.
#[derive(Default)]
pub struct Health {
    last_tick: AtomicI64,
}

/// The scheduler ticks at least this often (seconds); twice that without a tick is unhealthy.
pub const TICK_SECONDS: i64 = 30;

impl Health {
    pub fn tick(&self) {
        self.last_tick
            .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
    }

    /// Ok, or why not, in words an operator can act on.
    pub fn check(&self) -> std::result::Result<(), String> {
        let last = self.last_tick.load(Ordering::Relaxed);
        let ago = chrono::Utc::now().timestamp() - last;
        if last == 0 {
            Err("the scheduler has not started".into())
        } else if ago > 2 * TICK_SECONDS {
            Err(format!(
                "the scheduler has not ticked for {ago}s: the daemon is stuck; restart it and report the log"
            ))
        } else {
            Ok(())
        }
    }
}

/// Bind now (so a taken port fails the start-up), serve until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        PgdrError::config(format!("metrics.listen = '{addr}': cannot listen: {e}"))
            .hint("pick a free port, or remove [metrics] listen")
    })?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(address = %bound, "serving /metrics and /healthz");
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics listener: accept failed");
                        continue;
                    }
                },
                _ = shutdown.cancelled() => break,
            };
            let (metrics, health) = (metrics.clone(), health.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let r = respond(&req, &metrics, &health);
                    async move { Ok::<_, Infallible>(r) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!(error = %e, "metrics connection ended");
                }
            });
        }
    });
    Ok((bound, task))
}

fn respond(req: &Request<Incoming>, metrics: &Metrics, health: &Health) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method().as_str(), req.uri().path()) {
        ("GET", "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        ("GET", "/healthz") => match health.check() {
            Ok(()) => (StatusCode::OK, "text/plain", "ok\n".to_string()),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("unhealthy: {why}\n"),
            ),
        },
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics or /healthz\n".to_string(),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
