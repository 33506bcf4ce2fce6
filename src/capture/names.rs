//! The names capture gives things on the server (slot and publication) and the admin
//! connection of the one-time setup.

use crate::config::{Database, Overrides, Settings};
use crate::error::{PgdrError, Result};

/// Slot and publication of a database: `pgdr_<name>`, lower-cased, every character a slot
/// name cannot hold as '_', at most 63 bytes.
pub fn capture_name(database: &str) -> String {
    let mut s: String = format!("pgdr_{database}")
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect();
    s.truncate(63);
    s
}

/// `--admin-url`: the owner/admin connection for the one-time setup, parsed like a source
/// URL (password out of the URL, .pgpass and PGPASSWORD honoured). It must reach the same
/// database: a publication belongs to one.
pub(crate) fn admin_database(url: &str, db: &Database) -> Result<Database> {
    let o = Overrides {
        source: Some(url.to_string()),
        repo: Some("/".into()),
        ..Default::default()
    };
    let mut s = Settings::load(&o).map_err(|mut e| {
        e.message = e.message.replace("--source", "--admin-url");
        e
    })?;
    let admin = s.databases.remove(0);
    if admin.conn.get_dbname() != db.conn.get_dbname() {
        return Err(PgdrError::usage(format!(
            "--admin-url names database '{}', but the capture is for '{}'",
            admin.conn.get_dbname().unwrap_or_default(),
            db.conn.get_dbname().unwrap_or_default()
        ))
        .hint("give the admin URL of the same database (a publication belongs to one)"));
    }
    Ok(admin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_names_are_slot_names() {
        assert_eq!(capture_name("app"), "pgdr_app");
        assert_eq!(capture_name("My-App.v2"), "pgdr_my_app_v2");
        assert_eq!(capture_name(&"x".repeat(80)).len(), 63);
    }
}
