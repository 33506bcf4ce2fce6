//! Everything that talks to the source PostgreSQL: connections, the consistent snapshot,
//! pg_dump and pg_dumpall. This module owns those child processes and always reaps them.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::config::Database;
use crate::error::{PgdrError, Result};

pub mod dump;
pub mod process;
pub mod snapshot;
pub mod tls;
pub mod tools;

/// Facts about the server recorded in the manifest.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ServerInfo {
    pub server_version: String,
    pub server_version_num: i32,
    /// `pg_control_system()`; None where the role may not read it (managed services).
    pub system_identifier: Option<String>,
    pub database: String,
    pub database_owner: String,
    pub encoding: String,
    pub is_superuser: bool,
    pub in_recovery: bool,
}

impl ServerInfo {
    pub fn major(&self) -> u32 {
        (self.server_version_num / 10000) as u32
    }
}

/// Open a connection; errors name the database and say what to fix.
pub async fn connect(db: &Database) -> Result<Client> {
    let mut conn = db.conn.clone();
    if conn.get_connect_timeout().is_none() {
        conn.connect_timeout(Duration::from_secs(10));
    }
    // sslmode=disable speaks plain text; prefer (the default) and require negotiate TLS the
    // way libpq does, so pgdr reaches the servers pg_dump reaches.
    let client = if conn.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
        let (client, connection) = conn
            .connect(NoTls)
            .await
            .map_err(|e| connect_error(db, &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "source connection closed");
            }
        });
        client
    } else {
        let (client, connection) = conn
            .connect(tls::connector())
            .await
            .map_err(|e| connect_error(db, &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "source connection closed");
            }
        });
        client
    };
    Ok(client)
}

fn connect_error(db: &Database, e: &tokio_postgres::Error) -> PgdrError {
    let what = format!("database '{}' ({})", db.name, db.describe());
    if let Some(dbe) = e.as_db_error() {
        let code = dbe.code().code();
        let err = PgdrError::database(format!("{what}: {}", dbe.message()));
        return match code {
            "28000" if dbe.message().contains("no encryption") => err.hint(
                "the server accepts only TLS connections: drop sslmode=disable from the URL (prefer, the default, and require use TLS)",
            ),
            "28000" if dbe.message().contains("pg_hba.conf") => err.hint(
                "the server's pg_hba.conf has no entry for this host, user and database: ask its administrator to allow pgdr's host",
            ),
            "28P01" | "28000" => err.hint(
                "check the user and password: ${ENV} in the config, PGPASSWORD or ~/.pgpass (never on the command line)",
            ),
            "3D000" => err.hint("check the database name at the end of the URL"),
            "53300" => err.hint("the server has no free connection slots; retry later or raise max_connections"),
            _ => err,
        };
    }
    // Network-level errors: tokio-postgres' Display says "error connecting to server: ...".
    let mut reason = e.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        reason = s.to_string();
        src = s.source();
    }
    let reason = reason
        .split(" (os error")
        .next()
        .unwrap_or(&reason)
        .to_lowercase();
    PgdrError::database(format!("{what}: cannot connect: {reason}"))
        .hint("check that the server is running and reachable, and the host and port in the URL")
}

/// Read what the manifest records about the server.
pub async fn server_info(client: &Client) -> Result<ServerInfo> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'),
                    current_setting('server_version_num')::int,
                    current_database()::text,
                    pg_get_userbyid(d.datdba)::text,
                    pg_encoding_to_char(d.encoding)::text,
                    r.rolsuper,
                    pg_is_in_recovery()
               FROM pg_database d, pg_roles r
              WHERE d.datname = current_database() AND r.rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| PgdrError::database(format!("reading server facts: {e}")))?;
    // Restricted on some managed services; a missing identifier only weakens a later check.
    let system_identifier = client
        .query_one(
            "SELECT system_identifier::text FROM pg_control_system()",
            &[],
        )
        .await
        .ok()
        .map(|r| r.get::<_, String>(0));
    Ok(ServerInfo {
        server_version: row.get(0),
        server_version_num: row.get(1),
        system_identifier,
        database: row.get(2),
        database_owner: row.get(3),
        encoding: row.get(4),
        is_superuser: row.get(5),
        in_recovery: row.get(6),
    })
}
