//! What the daemon tells the world: Prometheus metrics and logs emitted together by one
//! struct per event (`events`), the /metrics and /healthz listener (`server`), and webhook
//! notifications (`webhook`); `alerts` (webhooks, `email`, `heartbeat`) and `textfile` serve
//! every run, one-shot commands too.

pub mod alerts;
pub mod capture;
pub mod capture_events;
pub mod email;
pub mod events;
pub mod heartbeat;
pub mod metrics;
pub mod server;
pub mod textfile;
pub mod webhook;
