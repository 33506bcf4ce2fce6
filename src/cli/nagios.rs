//! `pgdr status --nagios`: one Nagios/Icinga plugin line with performance data, and the
//! plugin exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), as `barman check --nagios` and
//! check_pgbackrest print them, so a monitoring system runs pgdr as a check unchanged.

use chrono::Utc;

use super::{overrides, Global};
use crate::commands::status::{self, DatabaseStatus, StatusReport};
use crate::config::Settings;

const OK: i32 = 0;
const WARNING: i32 = 1;
const CRITICAL: i32 = 2;
const UNKNOWN: i32 = 3;

/// Never an error: a status that cannot be looked at is UNKNOWN (the repository unreachable,
/// a config that does not load), said on the one line.
pub(super) async fn status(g: &Global) -> i32 {
    let report = async {
        let settings = Settings::load(&overrides(g))?;
        let opts = status::StatusOptions {
            database: g.database.clone(),
        };
        status::run(&settings, &opts, Utc::now()).await
    };
    let (code, line) = match report.await {
        Ok(r) => verdict(&r),
        Err(e) => (UNKNOWN, format!("PGDR UNKNOWN - {}", one_line(&e.message))),
    };
    println!("{line}");
    code
}

/// The state and the line: CRITICAL when a database's newest backup is missing, too old,
/// unreadable or failed verification; WARNING for any other problem `pgdr status` names
/// (a failed drill, RPO above target, capture lag or a gap, a failing job, an unverified label).
pub(super) fn verdict(r: &StatusReport) -> (i32, String) {
    let critical = r.databases.iter().any(|d| d.critical);
    let code = match (critical, r.healthy()) {
        (true, _) => CRITICAL,
        (false, false) => WARNING,
        (false, true) => OK,
    };
    let word = ["OK", "WARNING", "CRITICAL"][code as usize];
    let text = if r.healthy() {
        summary(r)
    } else {
        r.problems()
            .map(|p| one_line(p))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let perf: Vec<String> = r
        .databases
        .iter()
        .flat_map(|d| perfdata(d, r.now))
        .collect();
    (code, format!("PGDR {word} - {text} | {}", perf.join(" ")))
}

/// The OK line: each database's newest backup and its age.
fn summary(r: &StatusReport) -> String {
    if r.databases.is_empty() {
        return "no databases".into();
    }
    let dbs: Vec<String> = r
        .databases
        .iter()
        .map(|d| match &d.newest_backup {
            Some(b) => format!(
                "{}: newest backup {} old",
                d.database,
                crate::progress::human_duration(b.age_seconds)
            ),
            None => format!("{}: no backup", d.database),
        })
        .collect();
    dbs.join(", ")
}

/// Nagios perfdata, `label=value[UOM];warn;crit;min`, per database: the newest backup's age
/// (critical above `max_backup_age`), the newest verification's age, the capture lag (warning
/// above the lag alert) when capture is on. A value pgdr does not have is left out.
fn perfdata(d: &DatabaseStatus, now: chrono::DateTime<Utc>) -> Vec<String> {
    let mut v = Vec::new();
    let db = &d.database;
    if let Some(b) = &d.newest_backup {
        v.push(format!(
            "{db}_backup_age={:.0}s;;{:.0};0",
            b.age_seconds, d.max_backup_age_seconds
        ));
    }
    if let Some(x) = &d.newest_verification {
        let age = (now - x.finished_at).num_seconds().max(0);
        v.push(format!("{db}_verify_age={age}s;;;0"));
    }
    if let Some(lag) = d.capture.as_ref().and_then(|c| c.lag_seconds) {
        let warn = crate::capture::health::LAG_ALERT.as_secs();
        v.push(format!("{db}_capture_lag={lag:.0}s;{warn};;0"));
    }
    v
}

/// A plugin's output is one line: messages keep their text, not their line breaks, and no
/// '|' (it starts the perfdata).
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ").replace('|', "/")
}
