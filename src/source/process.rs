//! A child process whose stdout is a stream that fails unless the child exits cleanly.
//!
//! `pg_dump | zstd | ...` in a shell hides a pg_dump that died halfway: the pipeline sees an
//! ordinary end of input. Here the end of stdout is held back until the child's exit status
//! is known; a non-zero status (or a signal, or a cancel) turns the end into an error, which
//! aborts the upload downstream so the partial archive never becomes an object.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::config::{Database, Secret};
use crate::error::{to_io, Kind, PgdrError};

/// The most of a child's stderr kept for the error message.
const STDERR_TAIL: usize = 16 * 1024;

type Exit = Pin<Box<dyn Future<Output = (io::Result<ExitStatus>, String)> + Send>>;

pub struct ChildStream {
    name: String,
    stdout: ChildStdout,
    child: Option<Child>,
    stderr: Option<JoinHandle<String>>,
    exit: Option<Exit>,
    cancel: Pin<Box<WaitForCancellationFutureOwned>>,
}

/// Set libpq's environment for a child from the database config. The password travels only
/// here, never in argv; inherited PG* variables that could redirect the child are removed.
pub fn libpq_env(cmd: &mut Command, db: &Database) {
    for var in [
        "PGSERVICE",
        "PGSERVICEFILE",
        "PGHOSTADDR",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
        "PGOPTIONS",
    ] {
        cmd.env_remove(var);
    }
    let c = &db.conn;
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    if !hosts.is_empty() {
        cmd.env("PGHOST", hosts.join(","));
    }
    let ports: Vec<String> = c.get_ports().iter().map(|p| p.to_string()).collect();
    if !ports.is_empty() {
        cmd.env("PGPORT", ports.join(","));
    }
    if let Some(u) = c.get_user() {
        cmd.env("PGUSER", u);
    }
    if let Some(d) = c.get_dbname() {
        cmd.env("PGDATABASE", d);
    }
    if let Some(p) = db.password.as_ref().map(Secret::expose) {
        cmd.env("PGPASSWORD", p);
    }
    let sslmode = match c.get_ssl_mode() {
        tokio_postgres::config::SslMode::Disable => "disable",
        tokio_postgres::config::SslMode::Require => "require",
        _ => "prefer",
    };
    cmd.env("PGSSLMODE", sslmode);
    cmd.env("PGAPPNAME", "pgdr");
    cmd.env("PGCONNECT_TIMEOUT", "10");
    // Dumps are byte-for-byte reproducible only with a fixed time zone.
    cmd.env("PGTZ", "UTC");
}

impl ChildStream {
    /// Spawn `cmd` with stdout piped. The child is killed if this stream is dropped early.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        cancel: CancellationToken,
    ) -> Result<Self, PgdrError> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            PgdrError::tool(format!("cannot start {name}: {e}"))
                .hint("check that the PostgreSQL client tools are installed")
        })?;
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let label = name.to_string();
        let stderr = tokio::spawn(async move {
            let mut tail = Vec::new();
            let mut buf = vec![0u8; 4096];
            loop {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        tail.extend_from_slice(&buf[..n]);
                        if tail.len() > STDERR_TAIL {
                            tail.drain(..tail.len() - STDERR_TAIL);
                        }
                    }
                }
            }
            let text = String::from_utf8_lossy(&tail).trim().to_string();
            for line in text.lines() {
                tracing::debug!(tool = %label, "{line}");
            }
            text
        });
        Ok(ChildStream {
            name: name.to_string(),
            stdout,
            child: Some(child),
            stderr: Some(stderr),
            exit: None,
            cancel: Box::pin(cancel.cancelled_owned()),
        })
    }

    fn failure(&self, status: &ExitStatus, stderr: &str) -> io::Error {
        use std::os::unix::process::ExitStatusExt;
        let how = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(s)) => format!("was killed by signal {s}"),
            _ => "failed".to_string(),
        };
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        let msg = if last.is_empty() {
            format!("{} {how}", self.name)
        } else {
            format!("{} {how}: {last}", self.name)
        };
        to_io(
            PgdrError::new(Kind::Tool, msg)
                .hint("nothing was stored from this run; fix the cause and run the backup again"),
        )
    }
}

impl AsyncRead for ChildStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.cancel.as_mut().poll(cx).is_ready() {
            if let Some(c) = this.child.as_mut() {
                let _ = c.start_kill();
            }
            return Poll::Ready(Err(to_io(PgdrError::new(
                Kind::Interrupted,
                format!("interrupted while {} was running", this.name),
            ))));
        }
        if this.exit.is_none() {
            let before = buf.filled().len();
            match Pin::new(&mut this.stdout).poll_read(cx, buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if buf.filled().len() > before => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    // End of stdout: now wait for the exit status before reporting the end.
                    let mut child = this.child.take().expect("child present until EOF");
                    let stderr = this.stderr.take().expect("present");
                    this.exit = Some(Box::pin(async move {
                        let st = child.wait().await;
                        let text = stderr.await.unwrap_or_default();
                        (st, text)
                    }));
                }
            }
        }
        let exit = this.exit.as_mut().expect("set above");
        match exit.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready((Ok(st), _)) if st.success() => Poll::Ready(Ok(())),
            Poll::Ready((Ok(st), text)) => {
                let e = this.failure(&st, &text);
                this.exit = Some(Box::pin(futures::future::pending()));
                Poll::Ready(Err(e))
            }
            Poll::Ready((Err(e), _)) => Poll::Ready(Err(e)),
        }
    }
}
