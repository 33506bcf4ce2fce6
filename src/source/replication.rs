//! The change stream over the streaming replication protocol (`replication=database`,
//! `START_REPLICATION SLOT s LOGICAL ... (proto_version '1', publication_names 'p',
//! messages 'true')`), through the `pgwire-replication` crate, as a [`ChangeSource`].
//!
//! The crate parses Begin, Commit and logical Message payloads into events; they are encoded
//! back here exactly as pgoutput wrote them (every field of those messages is in the event), so
//! what pgdr stores is the server's bytes. Positions: each message carries XLogData's
//! `wal_start` as the server sent it, which is 0 for Relation and Type messages (the walsender
//! sends no position for them); the crate drops Begin's `wal_start` (the transaction's first
//! record), so a Begin carries 0 too: its `final_lsn` is inside the message.
//!
//! Acknowledgement happens only through [`ChangeSource::ack`]: the session reports the start
//! position as flushed until then, so the slot never moves past what pgdr made durable.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use pgwire_replication::{ReplicationClient, ReplicationConfig, ReplicationEvent};

use super::replication_tls::{tls, RootsFile};
use super::{Change, ChangeSource, Lsn};
use crate::config::Database;
use crate::error::{Cause, PgdrError, Result};

/// Session settings pinned as pg_dump pins them, so the text of every value in the stream is
/// the same whatever the role's or database's defaults (and the same at replay).
pub const SESSION_OPTIONS: &str = "-c DateStyle=ISO -c IntervalStyle=postgres \
     -c extra_float_digits=3 -c TimeZone=UTC -c bytea_output=hex";

/// How often a raised acknowledgement reaches the server at most: soon after a segment is
/// durable the server may recycle its WAL.
const STATUS_INTERVAL: Duration = Duration::from_secs(2);

/// Events the crate may hold between its socket reader and the runner. Its default (8192)
/// holds 8192 rows of a big transaction while the runner waits on an upload: tens of MB for
/// wide rows, against pgdr's aim of memory bounded by a segment chunk whatever the
/// transaction. A few hundred keep the socket reader busy without that.
const BUFFER_EVENTS: usize = 256;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A running logical replication stream from one slot.
pub struct ReplicationStream {
    client: ReplicationClient,
    /// "slot 's' of database 'app' (user@host:port/app)", for errors.
    what: String,
    _roots: RootsFile,
}

/// The crate's connection settings for `db`: host, port, user, password and TLS from pgdr's
/// `Database` (its sslmode, libpq's semantics, the same roots as pgdr's own connections), the
/// pinned session settings. The result holds the password: never log or print it (its
/// `Debug` shows it). Keep the [`RootsFile`] as long as the connection.
pub(crate) fn connection(
    db: &Database,
    slot: &str,
    publication: &str,
) -> Result<(ReplicationConfig, RootsFile)> {
    for (what, name) in [("slot", slot), ("publication", publication)] {
        check_name(what, name)?;
    }
    let user = db.conn.get_user().unwrap_or("postgres");
    let password = db.password.as_ref().map_or("", |p| p.expose());
    let dbname = db.conn.get_dbname().unwrap_or_default();
    let host = match db.conn.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = db.conn.get_ports().first().copied().unwrap_or(5432);
    let mut cfg = ReplicationConfig::new(host, user, password, dbname, slot, publication)
        .with_port(port)
        .with_options(SESSION_OPTIONS)
        .with_application_name("pgdr")
        .with_status_interval(STATUS_INTERVAL);
    let mut roots = None;
    if !cfg.is_unix_socket() {
        let (t, file) = tls(db, &cfg.host)?;
        cfg = cfg.with_tls(t);
        roots = file;
    }
    Ok((cfg, roots))
}

/// Slot and publication names go into replication commands unquoted: only what PostgreSQL
/// allows for a slot name (lower-case letters, digits, '_', at most 63).
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(
            PgdrError::usage(format!("replication {what} name '{name}' is not usable"))
                .hint("use lower-case letters, digits and '_' only (at most 63)"),
        )
    }
}

/// Start streaming `slot` from `from` (the durable position; `Lsn::ZERO`: the slot's
/// confirmed position). Returns once the server has accepted START_REPLICATION, so a missing
/// slot or a refused connection is reported here.
pub async fn start(
    db: &Database,
    slot: &str,
    publication: &str,
    from: Lsn,
) -> Result<ReplicationStream> {
    let what = format!(
        "slot '{slot}' of database '{}' ({})",
        db.name,
        db.describe()
    );
    let (cfg, roots) = connection(db, slot, publication)?;
    let cfg = cfg
        .with_start_lsn(pgwire_replication::Lsn(from.0))
        .with_ack_lsn(pgwire_replication::Lsn(from.0))
        .with_buffer_size(BUFFER_EVENTS);
    let mut client = ReplicationClient::connect(cfg)
        .await
        .map_err(|e| wire_error(&what, e))?;
    client
        .wait_started()
        .await
        .map_err(|e| wire_error(&what, e))?;
    Ok(ReplicationStream {
        client,
        what,
        _roots: roots,
    })
}

impl ReplicationStream {
    /// End the stream cleanly (CopyDone); nothing is acknowledged on the way out.
    pub async fn stop(mut self) -> Result<()> {
        let what = self.what.clone();
        self.client
            .shutdown()
            .await
            .map_err(|e| wire_error(&what, e))
    }
}

impl ChangeSource for ReplicationStream {
    async fn next(&mut self) -> Result<Option<Change>> {
        loop {
            let event = self
                .client
                .recv()
                .await
                .map_err(|e| wire_error(&self.what, e))?;
            let Some(event) = event else {
                return Ok(None);
            };
            if let Some(change) = to_change(event) {
                return Ok(Some(change));
            }
        }
    }

    fn ack(&mut self, durable: Lsn) {
        self.client
            .update_applied_lsn(pgwire_replication::Lsn(durable.0));
    }
}

/// One crate event as pgdr's change; `None` for what pgdr never asks for (a stop position).
fn to_change(event: ReplicationEvent) -> Option<Change> {
    let lsn = |l: pgwire_replication::Lsn| Lsn(l.0);
    Some(match event {
        ReplicationEvent::KeepAlive {
            wal_end,
            server_time_micros,
            ..
        } => Change::KeepAlive {
            wal_end: lsn(wal_end),
            server_time: pg_time(server_time_micros),
        },
        ReplicationEvent::XLogData {
            wal_start, data, ..
        } => Change::Message {
            lsn: lsn(wal_start),
            data,
        },
        ReplicationEvent::Begin {
            final_lsn,
            xid,
            commit_time_micros,
        } => Change::Message {
            lsn: Lsn::ZERO,
            data: begin(final_lsn.0, commit_time_micros, xid),
        },
        ReplicationEvent::Commit {
            lsn: commit_lsn,
            end_lsn,
            commit_time_micros,
        } => Change::Message {
            lsn: lsn(end_lsn),
            data: commit(commit_lsn.0, end_lsn.0, commit_time_micros),
        },
        ReplicationEvent::Message {
            transactional,
            lsn: at,
            prefix,
            content,
        } => Change::Message {
            lsn: lsn(at),
            data: message(transactional, at.0, &prefix, &content),
        },
        ReplicationEvent::StoppedAt { .. } => return None,
    })
}

/// pgoutput Begin: 'B', final LSN, commit time, xid.
fn begin(final_lsn: u64, commit_time: i64, xid: u32) -> Bytes {
    let mut b = BytesMut::with_capacity(21);
    b.put_u8(b'B');
    b.put_u64(final_lsn);
    b.put_i64(commit_time);
    b.put_u32(xid);
    b.freeze()
}

/// pgoutput Commit: 'C', flags (always 0 in protocol 1), commit LSN, end LSN, commit time.
fn commit(commit_lsn: u64, end_lsn: u64, commit_time: i64) -> Bytes {
    let mut b = BytesMut::with_capacity(26);
    b.put_u8(b'C');
    b.put_u8(0);
    b.put_u64(commit_lsn);
    b.put_u64(end_lsn);
    b.put_i64(commit_time);
    b.freeze()
}

/// pgoutput logical Message: 'M', flags (1 = transactional), LSN, prefix (NUL-terminated),
/// content length, content. The prefix arrives in the session's client encoding, UTF-8, which
/// is the encoding the crate asks for, so its text is the server's bytes.
fn message(transactional: bool, at: u64, prefix: &str, content: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(15 + prefix.len() + content.len());
    b.put_u8(b'M');
    b.put_u8(u8::from(transactional));
    b.put_u64(at);
    b.put_slice(prefix.as_bytes());
    b.put_u8(0);
    b.put_u32(content.len() as u32);
    b.put_slice(content);
    b.freeze()
}

fn pg_time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros.saturating_add(PG_EPOCH_MICROS)).unwrap_or_default()
}

/// The crate's error as pgdr's, naming the slot and database; a server error keeps its
/// SQLSTATE (the crate renders it as "message (SQLSTATE xxxxx)") so callers can branch on it.
/// The crate's errors never hold the password.
pub(crate) fn wire_error(what: &str, e: pgwire_replication::PgWireError) -> PgdrError {
    use pgwire_replication::PgWireError as W;
    match e {
        W::Server(text) => {
            let (message, code) = split_sqlstate(&text);
            let mut err = PgdrError::database(format!("{what}: {message}"));
            if let Some(code) = code {
                err = err.caused_by(Cause::Sql(tokio_postgres::error::SqlState::from_code(code)));
            }
            hint_for(err)
        }
        W::Auth(text) => PgdrError::database(format!("{what}: authentication failed: {text}"))
            .hint("check the user and password: ${ENV} in the config, PGPASSWORD or ~/.pgpass"),
        W::Tls(text) => PgdrError::database(format!("{what}: TLS: {text}"))
            .hint("check sslmode and sslrootcert in the URL"),
        W::Io(io) => PgdrError::database(format!("{what}: cannot connect: {io}"))
            .caused_by(Cause::Io(io.kind()))
            .hint(
                "check that the server is running and reachable, and the host and port in the URL",
            ),
        other => PgdrError::database(format!("{what}: replication stream failed: {other}")),
    }
}

/// The fix for the server errors a replication session meets first.
fn hint_for(err: PgdrError) -> PgdrError {
    let code = err.sqlstate().map(|c| c.code().to_string());
    match code.as_deref() {
        // insufficient_privilege: the role lacks REPLICATION.
        Some("42501") => err.hint(
            "grant the role REPLICATION (ALTER ROLE ... REPLICATION; on RDS: GRANT rds_replication TO ...)",
        ),
        // undefined_object: the slot or publication does not exist.
        Some("42704") => {
            err.hint("run `pgdr capture enable` (it creates the slot and the publication)")
        }
        // object_in_use: another session streams this slot.
        Some("55006") => err.hint("another consumer holds the slot: stop it first"),
        Some("28000") => err.hint(
            "the server's pg_hba.conf has no `replication` line for this host and user, or the connection goes through a pooler: use the direct connection",
        ),
        Some("28P01") => err.hint(
            "check the user and password: ${ENV} in the config, PGPASSWORD or ~/.pgpass",
        ),
        _ => err,
    }
}

/// "message (SQLSTATE 42704)" -> ("message", Some("42704")).
fn split_sqlstate(text: &str) -> (&str, Option<&str>) {
    if let Some(head) = text.strip_suffix(')') {
        if let Some((message, code)) = head.rsplit_once(" (SQLSTATE ") {
            if code.len() == 5 && code.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return (message, Some(code));
            }
        }
    }
    (text, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_commit_message_encode_as_pgoutput() {
        let b = begin(0x1_0000_0002, 3, 4);
        assert_eq!(b.len(), 21);
        assert_eq!(&b[..9], &[b'B', 0, 0, 0, 1, 0, 0, 0, 2]);
        assert_eq!(&b[17..], &[0, 0, 0, 4]);
        let c = commit(1, 2, 3);
        assert_eq!(c.len(), 26);
        assert_eq!(&c[..2], &[b'C', 0]);
        let m = message(true, 5, "pgdr", b"xy");
        assert_eq!(
            &m[..],
            &[b'M', 1, 0, 0, 0, 0, 0, 0, 0, 5, b'p', b'g', b'd', b'r', 0, 0, 0, 0, 2, b'x', b'y']
        );
    }

    #[test]
    fn server_errors_keep_their_sqlstate() {
        let e = wire_error(
            "slot 's'",
            pgwire_replication::PgWireError::Server(
                "replication slot \"s\" does not exist (SQLSTATE 42704)".into(),
            ),
        );
        assert_eq!(e.sqlstate().map(|c| c.code()), Some("42704"));
        assert!(!e.to_string().contains("SQLSTATE"));
        assert_eq!(split_sqlstate("plain"), ("plain", None));
    }

    #[test]
    fn names_that_would_escape_the_command_are_refused() {
        assert!(check_name("slot", "pgdr_app").is_ok());
        for bad in ["", "Pgdr", "a b", "a'b", "a;b", &"x".repeat(64)] {
            assert!(check_name("slot", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_time_counts_from_2000() {
        assert_eq!(pg_time(0).to_rfc3339(), "2000-01-01T00:00:00+00:00");
    }
}
