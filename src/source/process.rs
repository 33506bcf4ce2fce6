//! A child process whose stdout is a stream that fails unless the child exits cleanly.
//!
//! `pg_dump | zstd | ...` in a shell hides a pg_dump that died halfway: the pipeline sees an
//! ordinary end of input. Here the end of stdout is held back until the child's exit status
//! is known; a non-zero status (or a signal, or a cancel) turns the end into an error, which
//! aborts the upload downstream so the partial archive never becomes an object.

use std::io;
use std::process::{ExitStatus, Stdio};

use std::io::Read;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Database, Secret};
use crate::error::{to_io, Kind, PgdrError};

/// The most of a child's stderr kept for the error message.
const STDERR_TAIL: usize = 16 * 1024;

pub struct ChildStream {
    name: String,
    /// The read end of the child's stdout, read with plain blocking reads on the encoder's
    /// thread: no async machinery on the hot path.
    stdout: std::fs::File,
    child: Option<Child>,
    stderr: Option<JoinHandle<String>>,
    cancel: CancellationToken,
    handle: tokio::runtime::Handle,
    /// Kills the child when the operation is cancelled, which ends a blocked read.
    killer: JoinHandle<()>,
    finished: bool,
}

/// Whether a variable of pgdr's environment may reach a child: the program search path, the
/// locale and the time zone. Nothing else (S3 keys, webhook URLs, a systemd unit's
/// `EnvironmentFile` secrets, the caller's PGHOST/PGSERVICE/PGOPTIONS...).
fn inherited(name: &std::ffi::OsStr) -> bool {
    let n = name.as_encoded_bytes();
    matches!(n, b"PATH" | b"LANG" | b"TZ") || n.starts_with(b"LC_")
}

/// Start `cmd` from an empty environment plus the allow-list of [`inherited`]. Every child
/// pgdr spawns goes through here (`Command::new` appears nowhere without it); what a child
/// needs beyond that (libpq's settings) its caller sets explicitly afterwards.
pub fn clean_env(cmd: &mut std::process::Command) {
    cmd.env_clear();
    for (k, v) in std::env::vars_os() {
        if inherited(&k) {
            cmd.env(k, v);
        }
    }
}

/// Set libpq's environment for a child from the database config, over a cleared environment
/// ([`clean_env`]): only the connection pgdr resolved itself reaches the child. The password
/// travels only here, never in argv.
pub fn libpq_env(cmd: &mut Command, db: &Database) {
    clean_env(cmd.as_std_mut());
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
    // Session settings for the child (`-c name=value`), e.g. session_replication_role for a
    // restore onto a managed target.
    if let Some(o) = c.get_options() {
        cmd.env("PGOPTIONS", o);
    }
    if let Some(p) = db.password.as_ref().map(Secret::expose) {
        cmd.env("PGPASSWORD", p);
    }
    // The child checks the certificate exactly as pgdr's own connection does: the real
    // verify mode (`conn` says only require) and the same roots.
    let sslmode = match (&db.cert_check, c.get_ssl_mode()) {
        (Some(check), _) => {
            cmd.env(
                "PGSSLROOTCERT",
                crate::source::tls::libpq_root_cert(&check.roots),
            );
            check.mode.as_str()
        }
        (None, tokio_postgres::config::SslMode::Disable) => "disable",
        (None, tokio_postgres::config::SslMode::Require) => "require",
        (None, _) => "prefer",
    };
    cmd.env("PGSSLMODE", sslmode);
    cmd.env("PGAPPNAME", "pgdr");
    cmd.env("PGCONNECT_TIMEOUT", "10");
    // Dumps are byte-for-byte reproducible only with a fixed time zone.
    cmd.env("PGTZ", "UTC");
}

/// A 1 MiB pipe instead of Linux's 64 KiB default: fewer wake-ups and syscalls per byte
/// between pg_dump and the encoder. Best effort: the default still works.
fn grow_pipe(stdout: &ChildStdout) {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a valid, owned pipe descriptor; failure is harmless.
    unsafe {
        libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
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
        grow_pipe(&stdout);
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
        let stdout = stdout
            .into_owned_fd()
            .map(std::fs::File::from)
            .map_err(|e| PgdrError::internal(format!("{name} stdout: {e}")))?;
        let pid = child.id();
        let token = cancel.clone();
        let killer = tokio::spawn(async move {
            token.cancelled().await;
            if let Some(pid) = pid {
                // SAFETY: signalling our own child, which is reaped only after this task ends.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        });
        Ok(ChildStream {
            name: name.to_string(),
            stdout,
            child: Some(child),
            stderr: Some(stderr),
            cancel,
            handle: tokio::runtime::Handle::current(),
            killer,
            finished: false,
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

impl ChildStream {
    fn interrupted(&self) -> io::Error {
        to_io(PgdrError::new(
            Kind::Interrupted,
            format!("interrupted while {} was running", self.name),
        ))
    }
}

impl Read for ChildStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.finished {
            return Ok(0);
        }
        if self.cancel.is_cancelled() {
            return Err(self.interrupted());
        }
        let n = self.stdout.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        // End of stdout: the end counts only if the child exited cleanly.
        if self.cancel.is_cancelled() {
            return Err(self.interrupted());
        }
        let mut child = self.child.take().expect("child present until EOF");
        let stderr = self.stderr.take().expect("present");
        let (st, text) = self.handle.block_on(async move {
            let st = child.wait().await;
            (st, stderr.await.unwrap_or_default())
        });
        self.killer.abort();
        let st = st?;
        if st.success() {
            self.finished = true;
            Ok(0)
        } else {
            Err(self.failure(&st, &text))
        }
    }
}

impl Drop for ChildStream {
    fn drop(&mut self) {
        self.killer.abort();
        // A child still present is killed by kill_on_drop and reaped by tokio.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(url: &str) -> std::collections::HashMap<String, Option<String>> {
        let o = crate::config::Overrides {
            source: Some(url.to_string()),
            repo: Some("/".into()),
            ..Default::default()
        };
        let db = crate::config::Settings::load(&o)
            .unwrap()
            .databases
            .remove(0);
        let mut cmd = Command::new("true");
        libpq_env(&mut cmd, &db);
        cmd.as_std()
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn children_get_the_real_sslmode_and_roots() {
        let e = env_of("postgres://u@h/db?sslmode=verify-full&sslrootcert=/etc/x/ca.crt");
        assert_eq!(e["PGSSLMODE"].as_deref(), Some("verify-full"));
        assert_eq!(e["PGSSLROOTCERT"].as_deref(), Some("/etc/x/ca.crt"));
        let e = env_of("postgres://u@h/db?sslmode=verify-ca&sslrootcert=/ca.pem");
        assert_eq!(e["PGSSLMODE"].as_deref(), Some("verify-ca"));
        // Without checking, an inherited PGSSLROOTCERT is removed, not passed on.
        let e = env_of("postgres://u@h/db?sslmode=require");
        assert_eq!(e["PGSSLMODE"].as_deref(), Some("require"));
        assert_eq!(e.get("PGSSLROOTCERT").cloned().flatten(), None);
        let e = env_of("postgres://u@h/db");
        assert_eq!(e["PGSSLMODE"].as_deref(), Some("prefer"));
    }

    #[test]
    fn only_path_locale_and_time_zone_are_inherited() {
        for ok in ["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ"] {
            assert!(inherited(std::ffi::OsStr::new(ok)), "{ok}");
        }
        for no in [
            "HOME",
            "PGHOST",
            "PGSERVICE",
            "PGOPTIONS",
            "PGPASSWORD",
            "AWS_SECRET_ACCESS_KEY",
            "PGDR_WEBHOOK_URL",
            "LD_PRELOAD",
            "XLC_X",
        ] {
            assert!(!inherited(std::ffi::OsStr::new(no)), "{no}");
        }
        // Only what pgdr resolved: the libpq settings it sets, nothing else explicitly.
        let e = env_of("postgres://u@h:5433/db");
        assert_eq!(e["PGHOST"].as_deref(), Some("h"));
        assert_eq!(e["PGPORT"].as_deref(), Some("5433"));
        assert!(
            e.keys()
                .all(|k| k.starts_with("PG") || inherited(k.as_ref())),
            "{e:?}"
        );
    }

    #[test]
    fn system_roots_become_a_bundle_older_libpq_reads() {
        let e = env_of("postgres://u@h/db?sslrootcert=system");
        assert_eq!(e["PGSSLMODE"].as_deref(), Some("verify-full"));
        let root = e["PGSSLROOTCERT"].clone().unwrap();
        assert!(
            root == "system" || std::path::Path::new(&root).is_file(),
            "{root}"
        );
    }
}
