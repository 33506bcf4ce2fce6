//! `[[email]]`: one mail per run outcome through an SMTP relay (STARTTLS by default), for teams
//! whose on-call reads mail rather than chat. A relay that refuses is a warning naming the
//! relay's host, never the password, and never changes the job's outcome.

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::webhook::Notification;
use crate::config::notify::{EmailSettings, SmtpTls};

/// Mail every relay that wants this notification (failures always, successes when asked).
pub async fn send_all(emails: &[EmailSettings], n: &Notification) {
    let wanted = emails.iter().filter(|e| n.failed() || e.on_success);
    futures::future::join_all(wanted.map(|e| send_logged(e, n))).await;
}

async fn send_logged(e: &EmailSettings, n: &Notification) {
    match send(e, n).await {
        Ok(()) => tracing::debug!(relay = %e.host, "alert mail sent"),
        Err(why) => {
            tracing::warn!(relay = %e.host, error = %why, "alert mail not sent (the run's outcome is unchanged)")
        }
    }
}

async fn send(e: &EmailSettings, n: &Notification) -> Result<(), String> {
    let msg = message(e, n)?;
    let mut b = match e.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&e.host),
        SmtpTls::StartTls | SmtpTls::Implicit => {
            let params = TlsParameters::new(e.host.clone()).map_err(|x| x.to_string())?;
            let tls = if e.tls == SmtpTls::StartTls {
                Tls::Required(params)
            } else {
                Tls::Wrapper(params)
            };
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&e.host).tls(tls)
        }
    };
    b = b.port(e.port).timeout(Some(e.timeout));
    if let (Some(u), Some(p)) = (&e.username, &e.password) {
        b = b.credentials(Credentials::new(u.clone(), p.expose().to_string()));
    }
    let password = e.password.as_ref().map(|p| p.expose());
    b.build()
        .send(msg)
        .await
        .map(|_| ())
        .map_err(|x| redact(&x.to_string(), password))
}

/// Subject: the one-line outcome; body: every field a person needs to act on it.
fn message(e: &EmailSettings, n: &Notification) -> Result<Message, String> {
    let mut m = Message::builder()
        .from(
            e.from
                .parse()
                .map_err(|x| format!("from '{}': {x}", e.from))?,
        )
        .subject(subject(n));
    for to in &e.to {
        m = m.to(to.parse().map_err(|x| format!("to '{to}': {x}"))?);
    }
    m.header(ContentType::TEXT_PLAIN)
        .body(body(n))
        .map_err(|x| x.to_string())
}

fn subject(n: &Notification) -> String {
    let mark = if n.failed() { "FAILED" } else { "ok" };
    format!("[pgdr] {mark}: {} of '{}' on {}", n.job, n.database, n.host)
}

fn body(n: &Notification) -> String {
    let mut s = format!(
        "{}\n\ndatabase: {}\njob: {}\noutcome: {}\nhost: {}\nstarted: {}\nfinished: {}\nduration: {:.1}s\n",
        n.one_line(),
        n.database,
        n.job,
        n.outcome,
        n.host,
        n.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        n.finished_at.format("%Y-%m-%d %H:%M:%S UTC"),
        n.duration_seconds
    );
    if let Some(err) = &n.error {
        s.push_str(&format!("error: {err}\n"));
    }
    if let Some(sum) = &n.summary {
        s.push_str(&format!("summary: {sum}\n"));
    }
    s
}

/// A relay's error never carries the password today; this keeps it so if one ever echoes it.
fn redact(msg: &str, password: Option<&str>) -> String {
    match password.filter(|p| !p.is_empty()) {
        Some(p) => msg.replace(p, "***"),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_and_body_name_the_database_and_outcome() {
        let t: chrono::DateTime<chrono::Utc> = "2026-11-26T02:00:00Z".parse().unwrap();
        let n = Notification {
            source: "pgdr",
            database: "app".into(),
            job: "backup".into(),
            outcome: "failed",
            error: Some("connection refused".into()),
            summary: None,
            started_at: t,
            finished_at: t,
            duration_seconds: 1.0,
            host: "db1".into(),
        };
        assert_eq!(subject(&n), "[pgdr] FAILED: backup of 'app' on db1");
        assert!(body(&n).contains("error: connection refused\n"));
        assert_eq!(
            redact("535 bad secret s3cr", Some("s3cr")),
            "535 bad secret ***"
        );
    }
}
