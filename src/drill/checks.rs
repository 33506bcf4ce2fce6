//! The drill's smoke checks: each runs on its own connection to the restored database, in a
//! transaction that is rolled back, under a statement timeout; the last result set counts.

use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::SimpleQueryMessage;

use crate::catalog::records::CheckResult;
use crate::config::Database;
use crate::restore::db_message;

use super::spec;

pub(super) async fn server_version(db: &Database) -> Option<String> {
    let c = crate::source::connect(db).await.ok()?;
    c.query_one("SELECT current_setting('server_version')", &[])
        .await
        .ok()
        .map(|r| r.get(0))
}

/// Run one smoke check on its own connection, inside a transaction that is rolled back (so
/// `SET ROLE` and anything the SQL changes end with it), under a statement timeout.
pub(super) async fn run_check(db: &Database, c: &spec::Check) -> CheckResult {
    let t = Instant::now();
    let result: std::result::Result<spec::Outcome, String> = async {
        let client = crate::source::connect(db).await.map_err(|e| e.message)?;
        client
            .batch_execute(&format!(
                "BEGIN; SET LOCAL statement_timeout = {}",
                c.timeout.as_millis().max(1)
            ))
            .await
            .map_err(|e| db_message(&e))?;
        let msgs = tokio::time::timeout(
            c.timeout + Duration::from_secs(5),
            client.simple_query(&c.sql),
        )
        .await
        .map_err(|_| {
            format!(
                "no answer within {}",
                crate::progress::human_duration(c.timeout.as_secs_f64())
            )
        })?
        .map_err(|e| {
            let m = db_message(&e);
            // 57014: the statement_timeout set above cancelled it (only this session cancels).
            if e.code() == Some(&SqlState::QUERY_CANCELED) {
                format!(
                    "{m} (timeout {})",
                    crate::progress::human_duration(c.timeout.as_secs_f64())
                )
            } else {
                m
            }
        })?;
        let _ = client.batch_execute("ROLLBACK").await;
        Ok(outcome_of(&msgs))
    }
    .await;
    let (passed, rows, value, message) = match result {
        Ok(o) => match c.expect.check(&o) {
            Ok(()) => (true, o.rows, o.first, None),
            Err(why) => (false, o.rows, o.first, Some(why)),
        },
        Err(e) => (false, None, None, Some(format!("error: {e}"))),
    };
    CheckResult {
        name: c.name.clone(),
        sql: c.sql.clone(),
        expect: c.expect_text.clone(),
        passed,
        rows,
        value: value.map(|v| v.chars().take(200).collect()),
        message,
        seconds: t.elapsed().as_secs_f64(),
    }
}

/// The rows of the last statement that returned a result set.
pub(super) fn outcome_of(msgs: &[SimpleQueryMessage]) -> spec::Outcome {
    let mut last = None;
    let mut cur: Option<(u64, Option<String>)> = None;
    for m in msgs {
        match m {
            SimpleQueryMessage::RowDescription(_) => cur = Some((0, None)),
            SimpleQueryMessage::Row(r) => {
                let c = cur.get_or_insert((0, None));
                c.0 += 1;
                if c.0 == 1 {
                    c.1 = r.try_get(0).ok().flatten().map(str::to_string);
                }
            }
            SimpleQueryMessage::CommandComplete(_) => {
                if let Some(c) = cur.take() {
                    last = Some(c);
                }
            }
            _ => {}
        }
    }
    let last = cur.or(last);
    spec::Outcome {
        rows: last.as_ref().map(|l| l.0),
        first: last.and_then(|l| l.1),
    }
}
