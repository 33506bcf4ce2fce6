//! The one notifier every run uses, the daemon's and a one-shot command's alike (issue 20):
//! webhooks, mail and heartbeats. A notification that cannot be delivered is a warning and
//! never changes the job's outcome or exit code.

use std::sync::Arc;

use super::heartbeat::{self, Ping};
use super::metrics::Metrics;
use super::webhook::{https_client, Notification, Notifier};
use crate::config::notify::{EmailSettings, HeartbeatSettings, NotifySettings};
use crate::config::ops::WebhookSettings;

pub struct Alerts {
    webhooks: Notifier,
    heartbeats: Vec<HeartbeatSettings>,
    emails: Vec<EmailSettings>,
}

impl Alerts {
    pub fn new(
        webhooks: Vec<WebhookSettings>,
        notify: &NotifySettings,
        metrics: Arc<Metrics>,
    ) -> Alerts {
        Alerts {
            webhooks: Notifier::new(webhooks, metrics),
            heartbeats: notify.heartbeats.clone(),
            emails: notify.emails.clone(),
        }
    }

    /// Everything `settings` asks for: `[[webhook]]`, `[[heartbeat]]`, `[[email]]`.
    pub fn for_settings(settings: &crate::config::Settings, metrics: Arc<Metrics>) -> Alerts {
        Alerts::new(settings.ops.webhooks.clone(), &settings.notify, metrics)
    }

    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && self.heartbeats.is_empty() && self.emails.is_empty()
    }

    /// A run of `job` for `database` starts: the heartbeats' `/start` pings.
    pub async fn started(&self, database: &str, job: &str) {
        let body = format!("pgdr {job} of '{database}' started on {}", hostname());
        let wanted = self
            .heartbeats
            .iter()
            .filter(|h| heartbeat::wants(h, database, job));
        futures::future::join_all(
            wanted.map(|h| heartbeat::ping(https_client(), h, Ping::Start, &body)),
        )
        .await;
    }

    /// A run of `job` ended (`n.job` may name the part that failed, "verify" after a backup):
    /// heartbeats, webhooks and mail, all at once.
    pub async fn finished(&self, job: &str, n: &Notification) {
        tokio::join!(self.beat(job, n), self.alert(n));
    }

    /// Only the heartbeats' end ping: a run skipped or cancelled closes its `/start`.
    pub async fn beat(&self, job: &str, n: &Notification) {
        let p = if n.failed() {
            Ping::Fail
        } else {
            Ping::Success
        };
        let body = n.one_line();
        let beats = self
            .heartbeats
            .iter()
            .filter(|h| heartbeat::wants(h, &n.database, job))
            .map(|h| heartbeat::ping(https_client(), h, p, &body));
        futures::future::join_all(beats).await;
    }

    /// An event outside a run (capture lag, a gap): webhooks and mail, no heartbeat.
    pub async fn alert(&self, n: &Notification) {
        tokio::join!(
            self.webhooks.notify(n),
            super::email::send_all(&self.emails, n)
        );
    }
}

pub fn hostname() -> String {
    crate::catalog::records::hostname()
}
