//! Scratch databases to restore into for verification and drills: an ephemeral cluster that
//! pgdr starts itself (initdb in a temp dir, loopback, free port), or a database created on a
//! server the operator names. Either is torn down afterwards, also after a failure or a
//! cancel: the cluster's `Drop` stops the server and removes its files.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;

use tokio::process::Command;

use crate::config::Database;
use crate::error::{PgdrError, Result};
use crate::source::tools::{self, Tool};

pub mod target;

pub use target::Scratch;

/// Settings for scratch databases (config `[scratch]`).
#[derive(Debug, Clone, Default)]
pub struct ScratchSettings {
    /// An existing server to create `pgdr_verify_<id>` databases on, instead of a cluster.
    pub url: Option<String>,
    /// OS user that runs the ephemeral cluster when pgdr runs as root (initdb refuses root).
    pub os_user: Option<String>,
    /// Parent directory for the ephemeral cluster; default the system temp dir.
    pub temp_dir: Option<PathBuf>,
    /// Directory with initdb/pg_ctl/pg_restore; default as for pg_dump.
    pub pg_bin_dir: Option<PathBuf>,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The throwaway cluster trades durability for speed: its data is discarded after the proof,
/// so no fsync, no full-page images, minimal WAL (a restore in one transaction writes no WAL
/// for the tables it creates, nor for their index builds), no checkpoints during the restore,
/// no autovacuum competing with the restore and the re-read, and room for index builds to
/// sort in memory. One transaction holds a lock per restored object until it commits, so the
/// lock table is sized from the archive's TOC entries (an upper bound of the objects; at
/// least ~100k slots, ~25 MB of shared memory). Publications restore with a warning only
/// (they need wal_level=logical to publish).
fn server_settings(objects: u64) -> Vec<String> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let connections = cores + 20;
    let locks = (4 * objects).div_ceil(connections).max(4096);
    [
        "listen_addresses=127.0.0.1".to_string(),
        "fsync=off".into(),
        "full_page_writes=off".into(),
        "synchronous_commit=off".into(),
        "wal_level=minimal".into(),
        "max_wal_senders=0".into(),
        "max_wal_size=8GB".into(),
        "checkpoint_timeout=1h".into(),
        "autovacuum=off".into(),
        "maintenance_work_mem=1GB".into(),
        format!("max_connections={connections}"),
        format!("max_locks_per_transaction={locks}"),
    ]
    .into_iter()
    .flat_map(|kv| ["-c".to_string(), kv])
    .collect()
}

/// A throwaway PostgreSQL cluster on loopback.
pub struct EphemeralCluster {
    dir: Option<tempfile::TempDir>,
    pub port: u16,
    pub bin_dir: PathBuf,
    pub version: String,
    /// Who runs initdb and the server when pgdr runs as root (they refuse root).
    os_user: Option<nix::unistd::User>,
    /// The postmaster: pgdr's own child (started with the OS user's uid, no runuser in
    /// between), in its own process group so a Ctrl-C reaches pgdr, which then stops it.
    server: Option<std::process::Child>,
}

impl EphemeralCluster {
    /// initdb and start a cluster whose major version is at least `min_major`, with a lock
    /// table for restoring about `objects` objects in one transaction.
    pub async fn start(
        min_major: u32,
        s: &ScratchSettings,
        objects: u64,
    ) -> Result<EphemeralCluster> {
        let initdb = tools::find("initdb", min_major, s.pg_bin_dir.as_deref()).map_err(|e| {
            e.context("scratch cluster").hint(
                "the scratch cluster needs server binaries (apt-get install postgresql-N) of the backup's major version or newer, or set [scratch] url to an existing server",
            )
        })?;
        let bin_dir = initdb.path.parent().expect("a file").to_path_buf();
        let os_user = if is_root() {
            let name = s.os_user.clone().unwrap_or_else(|| "postgres".into());
            match nix::unistd::User::from_name(&name) {
                Ok(Some(u)) => Some(u),
                _ => {
                    return Err(PgdrError::tool(format!(
                        "scratch cluster: OS user '{name}' does not exist (initdb and the server refuse to run as root)"
                    ))
                    .hint("create that user (the postgresql package makes 'postgres') or set [scratch] os_user"))
                }
            }
        } else {
            None
        };
        let parent = s.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let swept = parent.clone();
        let _ = tokio::task::spawn_blocking(move || sweep_orphans(&swept)).await;
        let dir = tempfile::Builder::new()
            .prefix(SCRATCH_PREFIX)
            .tempdir_in(&parent)
            .map_err(|e| {
                PgdrError::tool(format!("scratch cluster: cannot create a folder in {}: {e}", parent.display()))
                    .hint("set [scratch] temp_dir to a writable folder with room for the restored database")
            })?;
        // Who owns this cluster, for the sweep of a later run should this process be killed.
        std::fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string()).map_err(
            |e| {
                PgdrError::tool(format!(
                    "scratch cluster: writing in {}: {e}",
                    dir.path().display()
                ))
            },
        )?;
        let mut cluster = EphemeralCluster {
            dir: Some(dir),
            port: 0,
            bin_dir,
            version: initdb.version.clone(),
            os_user,
            server: None,
        };
        cluster.init(objects).await?;
        Ok(cluster)
    }

    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("present until drop").path()
    }

    /// `prog` of the cluster's binaries, as the cluster's OS user: its uid and gid set on the
    /// child itself, so the process pgdr holds, kills and reaps is initdb or the server, never
    /// a wrapper that would leave it running. Secrets of pgdr's environment are not passed on.
    fn command(&self, prog: &str) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut c = std::process::Command::new(self.bin_dir.join(prog));
        if let Some(u) = &self.os_user {
            c.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        }
        c.current_dir(self.dir())
            .env_remove("PGPASSWORD")
            .stdin(Stdio::null());
        c
    }

    async fn run(&self, what: &str, c: std::process::Command) -> Result<()> {
        let out = Command::from(c)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| PgdrError::tool(format!("scratch cluster: cannot run {what}: {e}")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            // initdb ends with clean-up chatter; the first error line is the cause.
            let last = err
                .lines()
                .find(|l| {
                    let l = l.to_lowercase();
                    l.contains("error") || l.contains("fatal") || l.contains("no space")
                })
                .or_else(|| err.lines().rev().find(|l| !l.trim().is_empty()))
                .unwrap_or("")
                .trim()
                .to_string();
            let e = PgdrError::tool(format!("scratch cluster: {what} failed: {last}"));
            return Err(if last.contains("No space left") {
                e.hint("free space in the scratch temp dir or set [scratch] temp_dir elsewhere")
            } else {
                e
            });
        }
        Ok(())
    }

    async fn init(&mut self, objects: u64) -> Result<()> {
        let dir = self.dir().to_path_buf();
        if let Some(u) = &self.os_user {
            std::os::unix::fs::chown(&dir, Some(u.uid.as_raw()), Some(u.gid.as_raw())).map_err(
                |e| {
                    PgdrError::tool(format!(
                        "scratch cluster: cannot hand {} to OS user '{}': {e}",
                        dir.display(),
                        u.name
                    ))
                    .hint("set [scratch] temp_dir to a folder where pgdr may do that")
                },
            )?;
        }
        let data = dir.join("data");
        let mut c = self.command("initdb");
        c.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
            "-A",
            "trust",
            "--no-sync",
        ]);
        self.run("initdb", c).await?;
        // A free port can be taken between probe and bind; try a few.
        let mut last = None;
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| PgdrError::tool(format!("scratch cluster: no free port: {e}")))?;
            match self.start_server(port, objects).await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried"))
    }

    /// Start the postmaster as a child and wait until its pid file says it accepts
    /// connections (polled every few milliseconds: pg_ctl's 100 ms steps would add up to a
    /// tenth of a second to every proof).
    async fn start_server(&mut self, port: u16, objects: u64) -> Result<()> {
        use std::os::unix::process::CommandExt;
        let dir = self.dir().to_path_buf();
        let data = dir.join("data");
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path)
            .and_then(|f| Ok((f.try_clone()?, f)))
            .map_err(|e| {
                PgdrError::tool(format!("scratch cluster: {}: {e}", log_path.display()))
            })?;
        let mut c = self.command("postgres");
        c.arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(&dir)
            .args(server_settings(objects))
            .stdout(log.0)
            .stderr(log.1)
            .process_group(0);
        let child = c
            .spawn()
            .map_err(|e| PgdrError::tool(format!("scratch cluster: cannot start postgres: {e}")))?;
        self.server = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            if pid_file_status(&data).as_deref() == Some("ready") {
                self.port = port;
                return Ok(());
            }
            let exited = self
                .server
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
                .is_some();
            if exited || std::time::Instant::now() > deadline {
                self.stop_server();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let reason = log
                    .lines()
                    .rev()
                    .find(|l| l.contains("FATAL") || l.contains("ERROR"))
                    .unwrap_or(if exited {
                        "it exited"
                    } else {
                        "not ready within 120 s"
                    })
                    .trim()
                    .to_string();
                return Err(PgdrError::tool(format!(
                    "scratch cluster: the server did not start: {reason}"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Immediate shutdown (SIGQUIT to the postmaster, which is the child) and reap it. The
    /// data is thrown away, so there is nothing to flush. Synchronous, for `Drop`; takes
    /// milliseconds.
    fn stop_server(&mut self) {
        let Some(mut child) = self.server.take() else {
            return;
        };
        // Reaped here only, so the pid cannot belong to anyone else yet.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if std::time::Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(2)),
            }
        }
    }

    /// Connection settings for a database of this cluster, as the bootstrap superuser.
    pub fn database(&self, dbname: &str) -> Database {
        let url = format!("postgres://postgres@127.0.0.1:{}/{dbname}", self.port);
        Database {
            name: dbname.to_string(),
            conn: tokio_postgres::Config::from_str(&url).expect("valid url"),
            cert_check: None,
            password: None,
            exclude_tables: Vec::new(),
            rto_target: None,
            rpo_target: None,
        }
    }

    /// Stop and remove now, off the async threads (what `Drop` does, as a backstop).
    pub async fn stop(self) {
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }
}

impl Drop for EphemeralCluster {
    fn drop(&mut self) {
        self.stop_server();
        if let Some(d) = self.dir.take() {
            let path = d.path().to_path_buf();
            // An initdb killed a moment ago may still have been writing: try once more.
            if d.close().is_err() {
                std::thread::sleep(std::time::Duration::from_millis(100));
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    tracing::warn!(dir = %path.display(), error = %e, "could not remove the scratch cluster's folder; remove it by hand");
                }
            }
        }
    }
}

const SCRATCH_PREFIX: &str = "pgdr-scratch-";
/// The pid of the pgdr process that made a scratch cluster, in the cluster's folder.
const OWNER_FILE: &str = "pgdr.pid";

/// Scratch clusters whose pgdr was killed outright (SIGKILL, the OOM killer: no `Drop`) keep
/// their server running and their files on disk. A later run removes them: a folder of ours
/// whose owner process is gone gets its postmaster stopped (when the process with that pid
/// really is the postmaster of that folder) and is deleted. Best effort; failures are logged.
fn sweep_orphans(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let dir = e.path();
        if !e.file_name().to_string_lossy().starts_with(SCRATCH_PREFIX) {
            continue;
        }
        let Some(owner) = std::fs::read_to_string(dir.join(OWNER_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        else {
            continue;
        };
        // Our own pid here means a pid reused after a restart (a container's pgdr is often
        // pid 1 every time): this process has not made its folder yet.
        if owner as u32 != std::process::id() && process_exists(owner) {
            continue;
        }
        let data = dir.join("data");
        if let Some(pm) = pid_file_line(&data, 0).and_then(|l| l.trim().parse::<i32>().ok()) {
            if is_postmaster_of(pm, &data) {
                // SAFETY: kill has no memory-safety preconditions.
                if unsafe { libc::kill(pm, libc::SIGQUIT) } != 0 {
                    tracing::warn!(dir = %dir.display(), pid = pm, "cannot stop the server of a scratch cluster left by a killed pgdr; stop it and remove the folder by hand");
                    continue;
                }
                // Not our child: its pid file going away says it stopped.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while data.join("postmaster.pid").exists() && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                tracing::info!(dir = %dir.display(), owner, "removed a scratch cluster left by a pgdr process that is gone")
            }
            Err(err) => {
                tracing::warn!(dir = %dir.display(), error = %err, "cannot remove a scratch cluster left by a killed pgdr; remove it by hand")
            }
        }
    }
}

fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether `pid` runs postgres on `data` (a pid from an old pid file may be anything now).
fn is_postmaster_of(pid: i32, data: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
        let data = data.as_os_str().as_encoded_bytes();
        args.first().is_some_and(|a| a.ends_with(b"postgres")) && args.contains(&data)
    })
}

/// Line `n` (from 0) of the cluster's `postmaster.pid`: 0 is the pid, 7 the status.
fn pid_file_line(data: &Path, n: usize) -> Option<String> {
    std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()?
        .lines()
        .nth(n)
        .map(str::to_string)
}

/// "starting", "ready", "stopping", ... as the postmaster wrote it (PostgreSQL 10+).
fn pid_file_status(data: &Path) -> Option<String> {
    pid_file_line(data, 7).map(|l| l.trim().to_string())
}

/// The pg_restore to use for an archive made by pg_dump of `major`.
pub fn pg_restore(major: u32, s: &ScratchSettings) -> Result<Tool> {
    tools::find("pg_restore", major, s.pg_bin_dir.as_deref())
}

/// A PostgreSQL client program run by pgdr (pg_restore) with its stdin piped from pgdr and
/// stderr kept for the message. Killed if dropped before `wait`.
pub struct ClientChild {
    name: String,
    child: tokio::process::Child,
    stderr: tokio::task::JoinHandle<String>,
    pub stdin: Option<tokio::process::ChildStdin>,
}

impl ClientChild {
    /// Spawn `tool` with `args`; connection settings and the password go in the environment
    /// (never argv). `on_line` sees each line the child writes to stderr as it comes
    /// (progress from `pg_restore --verbose`).
    pub fn spawn(
        name: &str,
        tool: &Path,
        args: &[String],
        db: &Database,
        on_line: impl Fn(&str) + Send + 'static,
    ) -> Result<ClientChild> {
        use tokio::io::AsyncBufReadExt;
        let mut cmd = Command::new(tool);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        crate::source::process::libpq_env(&mut cmd, db);
        let mut child = cmd
            .spawn()
            .map_err(|e| PgdrError::tool(format!("cannot start {name}: {e}")))?;
        let mut err = child.stderr.take().expect("piped");
        let stderr = tokio::spawn(async move {
            // Keep the first MiB for the message; read to the end so the child never blocks
            // on a full pipe.
            let mut kept = String::new();
            let mut lines = tokio::io::BufReader::new(&mut err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                on_line(&line);
                if kept.len() < 1 << 20 {
                    kept.push_str(&line);
                    kept.push('\n');
                }
            }
            kept
        });
        Ok(ClientChild {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            stderr,
        })
    }

    /// Wait for exit; Err names the first error line of stderr. Returns stderr on success
    /// (warnings worth logging).
    pub async fn wait(mut self) -> Result<String> {
        drop(self.stdin.take());
        let st = self
            .child
            .wait()
            .await
            .map_err(|e| PgdrError::tool(format!("{}: {e}", self.name)))?;
        let text = (&mut self.stderr).await.unwrap_or_default();
        if st.success() {
            return Ok(text);
        }
        let first = text
            .lines()
            .find(|l| l.contains("error:") || l.contains("ERROR") || l.contains("FATAL"))
            .or_else(|| text.lines().find(|l| !l.trim().is_empty()))
            .unwrap_or("")
            .trim()
            .to_string();
        let e = PgdrError::tool(format!("{} failed: {first}", self.name));
        Err(if let Some(ext) = missing_extension(&text) {
            PgdrError::tool(format!(
                "extension \"{ext}\" is not installed on the server restored into ({} failed)",
                self.name
            ))
            .hint(format!("install the package that provides {ext} for this PostgreSQL version there, or restore into a server that has it"))
        } else {
            e
        })
    }
}

/// `could not open extension control file ".../pg_graphql.control"` → `pg_graphql`
fn missing_extension(stderr: &str) -> Option<String> {
    let line = stderr
        .lines()
        .find(|l| l.contains("extension control file"))?;
    let start = line.rfind('/')? + 1;
    let end = line[start..].find(".control")? + start;
    Some(line[start..end].to_string())
}
