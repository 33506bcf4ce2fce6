//! Cron expressions in an IANA time zone, evaluated with `croner` (POSIX/Vixie semantics).
//!
//! Standard 5 fields: MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK (and `@daily` & co.). A
//! leading seconds field is accepted only under `[daemon] cron_seconds = true`, meant for
//! tests and demos.
//!
//! Daylight saving time, as croner resolves it (tested below with Europe/Berlin):
//! - spring forward: a fixed-time job whose time does not exist that day (02:30 when clocks
//!   jump from 02:00 to 03:00) runs once, at the first instant after the gap (03:00);
//! - fall back: a fixed-time job whose time happens twice (02:30 when clocks go from 03:00
//!   back to 02:00) runs once, at the first of the two; jobs that run every hour or minute
//!   run in both repeated hours, since those are real hours that pass.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

#[derive(Debug, Clone)]
pub struct CronSchedule {
    /// As written in the config.
    pub expr: String,
    pub tz: Tz,
    cron: Cron,
}

impl CronSchedule {
    pub fn parse(expr: &str, tz: Tz, allow_seconds: bool) -> Result<CronSchedule, String> {
        let parser = CronParser::builder()
            .seconds(if allow_seconds {
                Seconds::Optional
            } else {
                Seconds::Disallowed
            })
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(expr.trim())
            .map_err(|e| e.to_string().to_lowercase())?;
        Ok(CronSchedule {
            expr: expr.trim().to_string(),
            tz,
            cron,
        })
    }

    /// The first run strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The last run at or before `t`.
    pub fn previous(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The next `n` runs after `t`.
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut cur = t;
        while out.len() < n {
            match self.next_after(cur) {
                Some(x) => {
                    out.push(x);
                    cur = x;
                }
                None => break,
            }
        }
        out
    }

    /// How often it runs around `t`: the gap between the last run at or before `t` and the
    /// next one (a month for "0 4 1 * *", a day for "0 2 * * *").
    pub fn period_at(&self, t: DateTime<Utc>) -> Option<chrono::Duration> {
        let next = self.next_after(t)?;
        let prev = self.previous(t).or_else(|| {
            let after = self.next_after(next)?;
            Some(next - (after - next))
        })?;
        Some(next - prev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn runs(expr: &str, tz: Tz, from: &str, n: usize) -> Vec<String> {
        CronSchedule::parse(expr, tz, false)
            .unwrap()
            .upcoming(at(from), n)
            .iter()
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .collect()
    }

    #[test]
    fn next_runs_in_utc() {
        assert_eq!(
            runs("0 2 * * *", Tz::UTC, "2026-11-26T01:59:59Z", 3),
            vec![
                "2026-11-26T02:00:00Z",
                "2026-11-27T02:00:00Z",
                "2026-11-28T02:00:00Z"
            ]
        );
        // Strictly after: a run at exactly t is not "next".
        assert_eq!(
            runs("0 2 * * *", Tz::UTC, "2026-11-26T02:00:00Z", 1),
            vec!["2026-11-27T02:00:00Z"]
        );
        assert_eq!(
            runs("0 4 1 * *", Tz::UTC, "2026-11-26T00:00:00Z", 3),
            vec![
                "2026-12-01T04:00:00Z",
                "2027-01-01T04:00:00Z",
                "2027-02-01T04:00:00Z"
            ]
        );
    }

    #[test]
    fn time_zone_is_applied() {
        // 02:00 in Berlin is 01:00 UTC in winter, 00:00 UTC in summer.
        assert_eq!(
            runs(
                "0 2 * * *",
                chrono_tz::Europe::Berlin,
                "2026-01-10T12:00:00Z",
                1
            ),
            vec!["2026-01-11T01:00:00Z"]
        );
        assert_eq!(
            runs(
                "0 2 * * *",
                chrono_tz::Europe::Berlin,
                "2026-07-10T12:00:00Z",
                1
            ),
            vec!["2026-07-11T00:00:00Z"]
        );
    }

    #[test]
    fn berlin_spring_forward() {
        // 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
        let b = chrono_tz::Europe::Berlin;
        assert_eq!(
            runs("30 2 * * *", b, "2026-03-27T12:00:00Z", 4),
            vec![
                "2026-03-28T01:30:00Z", // 02:30 CET
                "2026-03-29T01:00:00Z", // the first instant after the gap: 03:00 CEST
                "2026-03-30T00:30:00Z", // 02:30 CEST
                "2026-03-31T00:30:00Z",
            ]
        );
        // A time outside the gap moves with the offset and is never skipped or doubled.
        assert_eq!(
            runs("0 4 * * *", b, "2026-03-28T12:00:00Z", 2),
            vec!["2026-03-29T02:00:00Z", "2026-03-30T02:00:00Z"]
        );
        // Hourly: the skipped hour has no run; no hour runs twice.
        assert_eq!(
            runs("0 * * * *", b, "2026-03-29T00:30:00Z", 3),
            vec![
                "2026-03-29T01:00:00Z", // 03:00 CEST (02:00 CET never happened)
                "2026-03-29T02:00:00Z",
                "2026-03-29T03:00:00Z",
            ]
        );
    }

    #[test]
    fn berlin_fall_back() {
        // 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
        let b = chrono_tz::Europe::Berlin;
        assert_eq!(
            runs("30 2 * * *", b, "2026-10-24T12:00:00Z", 3),
            vec![
                "2026-10-25T00:30:00Z", // the first 02:30 (CEST) only
                "2026-10-26T01:30:00Z", // 02:30 CET
                "2026-10-27T01:30:00Z",
            ]
        );
        // Hourly jobs run in both repeated hours: they are real hours.
        assert_eq!(
            runs("0 * * * *", b, "2026-10-24T23:30:00Z", 4),
            vec![
                "2026-10-25T00:00:00Z", // 02:00 CEST
                "2026-10-25T01:00:00Z", // 02:00 CET
                "2026-10-25T02:00:00Z", // 03:00 CET
                "2026-10-25T03:00:00Z",
            ]
        );
    }

    #[test]
    fn period_and_previous() {
        let s = CronSchedule::parse("0 2 * * *", Tz::UTC, false).unwrap();
        assert_eq!(
            s.previous(at("2026-11-26T12:00:00Z")),
            Some(at("2026-11-26T02:00:00Z"))
        );
        assert_eq!(
            s.period_at(at("2026-11-26T12:00:00Z")),
            Some(chrono::Duration::days(1))
        );
        let m = CronSchedule::parse("0 4 1 * *", Tz::UTC, false).unwrap();
        assert_eq!(
            m.period_at(at("2026-11-26T12:00:00Z")),
            Some(chrono::Duration::days(30))
        );
    }

    #[test]
    fn seconds_only_when_allowed() {
        assert!(CronSchedule::parse("*/5 * * * * *", Tz::UTC, false).is_err());
        let s = CronSchedule::parse("*/5 * * * * *", Tz::UTC, true).unwrap();
        assert_eq!(
            s.next_after(at("2026-11-26T12:00:01Z")),
            Some(at("2026-11-26T12:00:05Z"))
        );
        assert!(CronSchedule::parse("0 2 * *", Tz::UTC, false).is_err());
        assert!(CronSchedule::parse("0 2 * * * 2027", Tz::UTC, false).is_err());
        assert!(CronSchedule::parse("@daily", Tz::UTC, false).is_ok());
    }
}
