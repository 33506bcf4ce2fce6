//! Scratch databases to restore into for verification and drills: an ephemeral cluster that
//! pgdr starts itself (initdb in a temp dir), or a database created on a server the operator
//! names. Either is torn down afterwards, also after a failure or a cancel: the cluster's
//! `Drop` stops the server and removes its files.
//!
//! The ephemeral cluster holds the decrypted rows, so only pgdr reaches it: no TCP listener,
//! its Unix socket in a 0700 folder of the cluster's OS user, and `pg_hba.conf` accepting
//! only `scram-sha-256` over that socket with a random password made for this one run.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::config::{Database, ScratchSettings, Secret};
use crate::error::{PgdrError, Result};
use crate::source::tools::{self, Tool};

pub mod orphans;

pub use orphans::sweep_orphans;
use orphans::{Owner, OWNER_FILE, SCRATCH_PREFIX};

/// The port in the socket's name (`.s.PGSQL.<port>`): there is no TCP listener, and the
/// socket's folder is the cluster's own, so any fixed number does.
const SOCKET_PORT: u16 = 5432;

/// The only way in: pgdr's own connections over the private socket, with the run's password.
const PG_HBA: &str =
    "# Written by pgdr: the socket only, with this run's password.\nlocal all all scram-sha-256\n";

/// A password for one run, from the OS's CSPRNG: 32 bytes, hex.
fn random_password() -> Result<Secret> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b)
        .map_err(|e| PgdrError::tool(format!("scratch cluster: no random password: {e}")))?;
    Ok(Secret::new(hex::encode(b)))
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
        // No TCP at all; the socket's folder and pg_hba.conf keep everyone else out.
        "listen_addresses=".to_string(),
        "unix_socket_permissions=0700".into(),
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

/// A throwaway PostgreSQL cluster reached only through its private Unix socket.
pub struct EphemeralCluster {
    dir: Option<tempfile::TempDir>,
    /// The bootstrap superuser's password, made for this run.
    password: Secret,
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
        sweep_orphans(s).await;
        let dir = tempfile::Builder::new()
            .prefix(SCRATCH_PREFIX)
            .tempdir_in(&parent)
            .map_err(|e| {
                PgdrError::tool(format!("scratch cluster: cannot create a folder in {}: {e}", parent.display()))
                    .hint("set [scratch] temp_dir to a writable folder with room for the restored database")
            })?;
        // Who owns this cluster, for the sweep of a later run should this process be killed.
        std::fs::write(dir.path().join(OWNER_FILE), Owner::me().to_file()).map_err(|e| {
            PgdrError::tool(format!(
                "scratch cluster: writing in {}: {e}",
                dir.path().display()
            ))
        })?;
        let mut cluster = EphemeralCluster {
            dir: Some(dir),
            password: random_password()?,
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
    /// a wrapper that would leave it running. Nothing of pgdr's environment is passed on but
    /// the allow-list of [`crate::source::process::clean_env`].
    fn command(&self, prog: &str) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut c = std::process::Command::new(self.bin_dir.join(prog));
        crate::source::process::clean_env(&mut c);
        if let Some(u) = &self.os_user {
            c.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        }
        c.current_dir(self.dir()).stdin(Stdio::null());
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

    /// Hand `path` to the cluster's OS user (when pgdr runs as root).
    fn give(&self, path: &Path) -> Result<()> {
        let Some(u) = &self.os_user else {
            return Ok(());
        };
        std::os::unix::fs::chown(path, Some(u.uid.as_raw()), Some(u.gid.as_raw())).map_err(|e| {
            PgdrError::tool(format!(
                "scratch cluster: cannot hand {} to OS user '{}': {e}",
                path.display(),
                u.name
            ))
            .hint("set [scratch] temp_dir to a folder where pgdr may do that")
        })
    }

    /// initdb with the run's password (in a 0600 file removed right after: never in argv),
    /// then pgdr's own `pg_hba.conf`, then the server.
    async fn init(&mut self, objects: u64) -> Result<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = self.dir().to_path_buf();
        let io = |what: &Path, e: std::io::Error| {
            PgdrError::tool(format!("scratch cluster: {}: {e}", what.display()))
        };
        // The socket's folder: the cluster's OS user's alone (root, pgdr's own side, passes).
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io(&dir, e))?;
        self.give(&dir)?;
        let pwfile = dir.join("pwfile");
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&pwfile)
                .map_err(|e| io(&pwfile, e))?;
            f.write_all(self.password.expose().as_bytes())
                .map_err(|e| io(&pwfile, e))?;
        }
        self.give(&pwfile)?;
        let data = dir.join("data");
        let mut c = self.command("initdb");
        c.arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-E", "UTF8", "--no-locale"])
            .args(["--auth=scram-sha-256", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()));
        let done = self.run("initdb", c).await;
        let removed = std::fs::remove_file(&pwfile);
        done?;
        removed.map_err(|e| io(&pwfile, e))?;
        let hba = data.join("pg_hba.conf");
        std::fs::write(&hba, PG_HBA).map_err(|e| io(&hba, e))?;
        self.start_server(objects).await
    }

    /// Start the postmaster as a child and wait until its pid file says it accepts
    /// connections (polled every few milliseconds: pg_ctl's 100 ms steps would add up to a
    /// tenth of a second to every proof).
    async fn start_server(&mut self, objects: u64) -> Result<()> {
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
            .arg(SOCKET_PORT.to_string())
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

    /// Connection settings for a database of this cluster, as the bootstrap superuser: the
    /// private socket and the run's password (children get it as PGPASSWORD, never in argv).
    pub fn database(&self, dbname: &str) -> Database {
        let mut conn = tokio_postgres::Config::new();
        conn.host_path(self.dir())
            .port(SOCKET_PORT)
            .user("postgres")
            .dbname(dbname)
            .password(self.password.expose())
            .ssl_mode(tokio_postgres::config::SslMode::Disable);
        Database {
            name: dbname.to_string(),
            conn,
            cert_check: None,
            password: Some(self.password.clone()),
            exclude_tables: Vec::new(),
            rto_target: None,
            rpo_target: None,
            capture: Default::default(),
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
    pub stdout: Option<tokio::process::ChildStdout>,
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
        Self::spawn_out(name, tool, args, db, on_line, false)
    }

    /// Like [`spawn`](Self::spawn); with `piped_out` its stdout is in `stdout` (pg_dump
    /// feeding a pg_restore).
    pub fn spawn_out(
        name: &str,
        tool: &Path,
        args: &[String],
        db: &Database,
        on_line: impl Fn(&str) + Send + 'static,
        piped_out: bool,
    ) -> Result<ClientChild> {
        use tokio::io::AsyncBufReadExt;
        let mut cmd = Command::new(tool);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(if piped_out {
                Stdio::piped()
            } else {
                Stdio::null()
            })
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
            stdout: child.stdout.take(),
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
