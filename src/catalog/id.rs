//! Backup ids: UTC timestamps with milliseconds, `20261126T020000.123Z`, so that a plain
//! sort of keys is a sort by time and two backups in the same second still differ.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::error::{PgdrError, Result};

const FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";

#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

impl BackupId {
    pub fn from_time(t: DateTime<Utc>) -> Self {
        BackupId(t.format(FORMAT).to_string())
    }
    pub fn now() -> Self {
        Self::from_time(Utc::now())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn time(&self) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(&self.0, FORMAT)
            .expect("validated on construction")
            .and_utc()
    }
}

impl FromStr for BackupId {
    type Err = PgdrError;
    fn from_str(s: &str) -> Result<Self> {
        NaiveDateTime::parse_from_str(s, FORMAT)
            .map(|_| BackupId(s.to_string()))
            .map_err(|_| {
                PgdrError::usage(format!("'{s}' is not a backup id"))
                    .hint("ids look like 20261126T020000.123Z; `pgdr list` shows them")
            })
    }
}

impl TryFrom<String> for BackupId {
    type Error = PgdrError;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<BackupId> for String {
    fn from(id: BackupId) -> String {
        id.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Resolve a user-typed id or unique prefix among known ids.
pub fn resolve<'a>(typed: &str, known: impl IntoIterator<Item = &'a BackupId>) -> Result<BackupId> {
    let known: Vec<&BackupId> = known.into_iter().collect();
    if let Some(exact) = known.iter().find(|k| k.as_str() == typed) {
        return Ok((*exact).clone());
    }
    let matches: Vec<&&BackupId> = known
        .iter()
        .filter(|k| k.as_str().starts_with(typed))
        .collect();
    match matches.len() {
        1 => Ok((*matches[0]).clone()),
        0 => {
            // Name the nearest ids, so a typo is easy to correct.
            let mut near: Vec<&BackupId> = known.clone();
            near.sort_by_key(|k| {
                std::cmp::Reverse(
                    k.as_str()
                        .chars()
                        .zip(typed.chars())
                        .take_while(|(a, b)| a == b)
                        .count(),
                )
            });
            let near: Vec<&str> = near.iter().take(3).map(|k| k.as_str()).collect();
            let err = PgdrError::not_found(format!("no backup with id '{typed}'"));
            Err(if near.is_empty() {
                err.hint("the repository holds no backups yet")
            } else {
                err.hint(format!("nearest: {}", near.join(", ")))
            })
        }
        n => Err(PgdrError::usage(format!(
            "'{typed}' matches {n} backups: {}",
            matches
                .iter()
                .take(5)
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .hint("type more of the id")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_parse_back() {
        let a = BackupId::from_time("2026-01-02T03:04:05.006Z".parse().unwrap());
        assert_eq!(a.as_str(), "20260102T030405.006Z");
        let b = BackupId::from_time("2026-01-02T03:04:05.100Z".parse().unwrap());
        assert!(a < b);
        assert_eq!(a.as_str().parse::<BackupId>().unwrap(), a);
        assert!("2026-01-02".parse::<BackupId>().is_err());
        assert_eq!(a.time().to_rfc3339(), "2026-01-02T03:04:05.006+00:00");
    }

    #[test]
    fn prefix_lookup() {
        let ids: Vec<BackupId> = [
            "20260102T030405.006Z",
            "20260102T030406.000Z",
            "20260203T000000.000Z",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(
            resolve("202602", &ids).unwrap().as_str(),
            "20260203T000000.000Z"
        );
        let e = resolve("20260102", &ids).unwrap_err();
        assert!(e.message.contains("matches 2 backups"), "{}", e.message);
        let e = resolve("20260102T03049", &ids).unwrap_err();
        assert_eq!(e.message, "no backup with id '20260102T03049'");
        assert!(e.hints[0].starts_with("nearest: 20260102T030405.006Z"));
    }
}
