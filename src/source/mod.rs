//! Everything that talks to the source PostgreSQL: connections, the consistent snapshot,
//! pg_dump and pg_dumpall. This module owns those child processes and always reaps them.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::config::Database;
use crate::error::{Cause, PgdrError, Result};

pub mod anchor;
pub mod changes;
pub mod dump;
pub mod lsn;
pub mod process;
pub mod replication;
mod replication_tls;
pub mod snapshot;
pub mod tls;
pub mod tools;
pub mod walsender;

pub use changes::{Change, ChangeSource};
pub use lsn::Lsn;

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
    // way libpq does, so pgdr reaches the servers pg_dump reaches; verify-ca/verify-full
    // (require in `conn`) check the certificate as well.
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
        let tls = tls::connector(db.cert_check.as_ref()).map_err(|e| e.context(target(db)))?;
        let (client, connection) = conn.connect(tls).await.map_err(|e| connect_error(db, &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "source connection closed");
            }
        });
        client
    };
    Ok(client)
}

/// "database 'app' (user@host:5432/app)": how messages name a connection, without the password.
fn target(db: &Database) -> String {
    format!("database '{}' ({})", db.name, db.describe())
}

fn connect_error(db: &Database, e: &tokio_postgres::Error) -> PgdrError {
    let what = target(db);
    if let Some(c) = tls::certificate_error(e) {
        return certificate_rejected(db, c);
    }
    if let Some(dbe) = e.as_db_error() {
        let code = dbe.code().code();
        let err = PgdrError::database(format!("{what}: {}", dbe.message()))
            .caused_by(Cause::Sql(dbe.code().clone()));
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

/// The server's certificate failed sslmode=verify-ca/verify-full: say which check and the fix.
fn certificate_rejected(db: &Database, c: &rustls::CertificateError) -> PgdrError {
    use rustls::CertificateError as C;
    let roots = db.cert_check.as_ref().map_or_else(
        || "the configured roots".to_string(),
        |c| c.roots.to_string(),
    );
    let host = match db.conn.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".into(),
    };
    let (problem, fix) = match c {
        C::UnknownIssuer | C::BadSignature => (
            format!("the server's certificate is not signed by a CA in {roots}"),
            format!(
                "set sslrootcert=/path/to/ca.crt to the CA that signed the server's certificate; {}",
                tls::SUPABASE_HINT
            ),
        ),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            let names = match c {
                C::NotValidForNameContext { presented, .. } if !presented.is_empty() => {
                    let names: Vec<&str> = presented.iter().map(|n| plain_name(n)).collect();
                    format!(" (it names {})", names.join(", "))
                }
                _ => String::new(),
            };
            (
                format!("the server's certificate is not valid for host '{host}'{names}"),
                "connect by a host name the certificate lists, or use sslmode=verify-ca to check the CA but not the name".to_string(),
            )
        }
        C::Expired | C::ExpiredContext { .. } => (
            "the server's certificate has expired".to_string(),
            "renew the server's certificate, or check this machine's clock".to_string(),
        ),
        C::NotValidYet | C::NotValidYetContext { .. } => (
            "the server's certificate is not valid yet".to_string(),
            "check this machine's clock".to_string(),
        ),
        other => (
            format!("the server's certificate was rejected: {other}"),
            format!("check sslrootcert ({roots}) and the server's certificate"),
        ),
    };
    PgdrError::database(format!(
        "{}: certificate check failed: {problem}",
        target(db)
    ))
    .hint(fix)
}

/// rustls reports presented names as `DnsName("db.example.com")` / `IpAddress(10.0.0.1)`;
/// operators want the name.
fn plain_name(n: &str) -> &str {
    ["DnsName(", "IpAddress(", "UriName("]
        .iter()
        .find_map(|p| n.strip_prefix(p))
        .and_then(|r| r.strip_suffix(')'))
        .map_or(n, |r| r.trim_matches('"'))
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
