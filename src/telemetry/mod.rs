//! What the daemon tells the world: Prometheus metrics and logs emitted together by one
//! struct per event (`events`), the /metrics and /healthz listener (`server`), and webhook
//! notifications (`webhook`).

pub mod capture;
pub mod capture_events;
pub mod events;
pub mod metrics;
pub mod server;
pub mod webhook;
