//! Test harness: throwaway PostgreSQL clusters, the Garage S3 server, and running pgdr.

#![allow(dead_code)]

pub mod garage;
pub mod moto;
pub mod s3script;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use tempfile::TempDir;

/// Superuser password of every test cluster; host connections use scram, so the password
/// path of pgdr (URL → PGPASSWORD for children) is exercised.
pub const PG_PASSWORD: &str = "pgdr-test-pw";

/// The newest installed PostgreSQL's bin directory.
pub fn pg_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .expect(
                "PostgreSQL is installed under /usr/lib/postgresql (apt-get install postgresql)",
            )
            .flatten()
            .filter_map(|e| {
                let v: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").exists().then_some((v, bin))
            })
            .collect();
        dirs.sort();
        dirs.pop()
            .expect("an initdb under /usr/lib/postgresql/*/bin")
            .1
    })
    .clone()
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Run a PostgreSQL server program as the `postgres` OS user when we are root (initdb and
/// postgres refuse to run as root).
fn pg_cmd(prog: &str) -> Command {
    let path = pg_bin().join(prog);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn chown_pg(path: &Path) {
    if is_root() {
        let st = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// `out` of a command that must have succeeded; its output shown otherwise.
pub fn check(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A world-traversable temp dir (the postgres user must reach into it).
pub fn tempdir() -> TempDir {
    let d = tempfile::Builder::new()
        .prefix("pgdr-test-")
        .tempdir_in("/tmp")
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// initdb once per test process; each cluster copies it (much faster than initdb each time).
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = tempdir().keep();
        let data = dir.join("data");
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, PG_PASSWORD).unwrap();
        chown_pg(&dir);
        check(
            pg_cmd("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"])
                .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                .arg(format!("--pwfile={}", pwfile.display()))
                .output()
                .unwrap(),
            "initdb",
        );
        extern "C" fn cleanup() {
            // The template's whole folder: its data dir and the password file beside it.
            if let Some(dir) = TEMPLATE.get().and_then(|p| p.parent()) {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        unsafe { libc::atexit(cleanup) };
        data
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running throwaway cluster on loopback; stopped (immediate) and removed on drop.
pub struct Pg {
    pub dir: TempDir,
    pub port: u16,
}

impl Pg {
    pub fn start() -> Pg {
        Pg::start_with("")
    }

    /// A cluster with `wal_level = logical` (change capture tests), room for slots and senders.
    pub fn start_logical() -> Pg {
        Pg::start_with("-c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10")
    }

    /// A cluster started with extra `postgres` options (`-c name=value ...`).
    pub fn start_with(extra: &str) -> Pg {
        let dir = tempdir();
        let data = dir.path().join("data");
        let st = Command::new("cp")
            .arg("-a")
            .arg(template())
            .arg(&data)
            .status()
            .unwrap();
        assert!(st.success());
        chown_pg(dir.path());
        for attempt in 0..5 {
            let port = free_port();
            let out = pg_cmd("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.path().join("log"))
                .arg("-o")
                .arg(format!(
                    "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c shared_buffers=32MB -c max_connections=40 {extra}",
                    dir.path().display()
                ))
                .args(["-w", "-t", "60", "start"])
                .stdout(Stdio::null())
                .output()
                .unwrap();
            if out.status.success() {
                return Pg { dir, port };
            }
            if attempt == 4 {
                let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
                panic!("postgres did not start: {log}");
            }
        }
        unreachable!()
    }

    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{PG_PASSWORD}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    /// Without the password: for tests that supply it another way.
    pub fn url_nopw(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn psql_cmd(&self, db: &str) -> Command {
        let mut c = Command::new(pg_bin().join("psql"));
        c.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-p",
                &self.port.to_string(),
                "-d",
                db,
            ])
            .env("PGPASSWORD", PG_PASSWORD);
        c
    }

    /// Run SQL, return trimmed unaligned output; panics on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = check(self.psql_cmd(db).arg("-c").arg(sql).output().unwrap(), sql);
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Whether database `db` exists on this cluster.
    pub fn exists(&self, db: &str) -> bool {
        self.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
        ) == "1"
    }

    pub fn psql_file(&self, db: &str, file: &Path) {
        check(
            self.psql_cmd(db).arg("-f").arg(file).output().unwrap(),
            &file.display().to_string(),
        );
    }

    pub fn create_db(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }

    /// Accept only TLS on loopback from now on (a self-signed certificate, as managed services
    /// present certificates pgdr cannot check against public roots).
    pub fn require_ssl(&self) {
        let data = self.dir.path().join("data");
        let st = Command::new("openssl")
            .args([
                "req",
                "-new",
                "-x509",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
            ])
            .arg("-keyout")
            .arg(data.join("server.key"))
            .arg("-out")
            .arg(data.join("server.crt"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "openssl req failed");
        self.enable_ssl_only();
    }

    /// Accept only TLS, presenting a certificate signed by a fresh test CA for `sans` (an
    /// openssl subjectAltName list, e.g. "DNS:localhost,IP:127.0.0.1"). Returns the CA
    /// certificate (PEM), the file sslrootcert names.
    pub fn require_ssl_signed(&self, sans: &str) -> PathBuf {
        let tls = self.dir.path().join("tls");
        let (ca, ca_key) = make_ca(&tls, "ca");
        let data = self.dir.path().join("data");
        openssl(
            &[
                "req",
                "-new",
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-subj",
                "/CN=pgdr test server",
            ],
            &[
                ("-keyout", &data.join("server.key")),
                ("-out", &tls.join("server.csr")),
            ],
        );
        let ext = tls.join("server.ext");
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={sans}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .unwrap();
        openssl(
            &["x509", "-req", "-days", "2", "-set_serial", "2"],
            &[
                ("-in", &tls.join("server.csr")),
                ("-CA", &ca),
                ("-CAkey", &ca_key),
                ("-extfile", &ext),
                ("-out", &data.join("server.crt")),
            ],
        );
        self.enable_ssl_only();
        ca
    }

    /// server.crt/server.key are in the data dir: make the key private to the postgres user,
    /// refuse plain-text host connections, turn ssl on and reload.
    fn enable_ssl_only(&self) {
        let data = self.dir.path().join("data");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        chown_pg(&data);
        self.psql("postgres", "ALTER SYSTEM SET ssl = on");
        self.psql("postgres", "SELECT pg_reload_conf()");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    /// A database loaded with tests/fixtures/schema.sql.
    pub fn sample_db(&self, name: &str) {
        self.create_db(name);
        self.psql_file(name, &fixture("schema.sql"));
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = pg_cmd("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Run openssl with `args`, then (flag, path) pairs; panics with its stderr.
fn openssl(args: &[&str], paths: &[(&str, &Path)]) {
    let mut c = Command::new("openssl");
    c.args(args);
    for (flag, p) in paths {
        c.arg(flag).arg(p);
    }
    check(c.output().unwrap(), &format!("openssl {}", args.join(" ")));
}

/// A self-signed test CA (CA:TRUE, may sign certificates) in `dir` (created):
/// (`NAME.crt`, `NAME.key`).
pub fn make_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    openssl(
        &[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-days",
            "2",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-subj",
            &format!("/CN=pgdr test CA {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        &[("-keyout", &key), ("-out", &crt)],
    );
    (crt, key)
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The outcome of one pgdr run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "pgdr failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), exit {}: {}\nstderr: {}",
                self.code, self.stdout, self.stderr
            )
        })
    }
}

/// A pgdr command with a clean environment (no PGDR_* or PG* leaking in from the caller).
pub fn pgdr_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgdr"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PGDR_") || k.starts_with("PG") || k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.env("PGDR_LOG", "info").stdin(Stdio::null());
    c
}

pub fn run(mut c: Command) -> Run {
    let out = c.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A key pair made by `pgdr keygen`: (identity file, public recipient).
pub fn keypair(dir: &Path) -> (PathBuf, String) {
    let path = dir.join(format!("identity-{}.txt", free_port()));
    let mut c = pgdr_cmd();
    c.args(["keygen", "--out"]).arg(&path);
    let r = run(c).ok();
    (path, r.stdout.trim().to_string())
}

/// Where a test's backups go: the same tests run against both backends.
#[derive(Clone, Debug)]
pub enum Repo {
    Local(PathBuf),
    S3 {
        url: String,
        env: Vec<(String, String)>,
    },
}

impl Repo {
    pub fn url(&self) -> String {
        match self {
            Repo::Local(p) => p.display().to_string(),
            Repo::S3 { url, .. } => url.clone(),
        }
    }
    pub fn apply(&self, c: &mut Command) {
        c.arg("--repo").arg(self.url());
        self.apply_store_env(c);
    }
    /// As [`Repo::apply`], the repository given as PGDR_REPO.
    pub fn apply_env(&self, c: &mut Command) {
        c.env("PGDR_REPO", self.url());
        self.apply_store_env(c);
    }
    fn apply_store_env(&self, c: &mut Command) {
        if let Repo::S3 { env, .. } = self {
            for (k, v) in env {
                c.env(k, v);
            }
        }
    }
}

/// One test's world: a cluster with the sample database `app`, a repository, a key pair.
pub struct World {
    pub pg: Pg,
    pub dir: TempDir,
    pub repo: Repo,
    pub identity: PathBuf,
    pub recipient: String,
}

impl World {
    pub fn local() -> World {
        let dir = tempdir();
        let repo = Repo::Local(dir.path().join("repo"));
        Self::with_repo(dir, repo)
    }

    /// The same world with its repository in the test Garage server (a private prefix).
    pub fn s3() -> World {
        let g = garage::garage();
        let repo = Repo::S3 {
            url: format!("s3://{}/{}", g.bucket, garage::unique_prefix("world")),
            env: vec![
                ("AWS_ENDPOINT_URL".into(), g.endpoint.clone()),
                ("AWS_REGION".into(), g.region.clone()),
                ("AWS_ACCESS_KEY_ID".into(), g.access_key.clone()),
                ("AWS_SECRET_ACCESS_KEY".into(), g.secret_key.clone()),
            ],
        };
        Self::with_repo(tempdir(), repo)
    }

    pub fn with_repo(dir: TempDir, repo: Repo) -> World {
        let pg = Pg::start();
        pg.sample_db("app");
        Self::around(pg, dir, repo)
    }

    /// A world around a cluster the test prepared (e.g. `Pg::start_logical()`); the
    /// repository is `repo`, or a local one in the world's folder.
    pub fn around_pg(pg: Pg, repo: Option<Repo>) -> World {
        let dir = tempdir();
        let repo = repo.unwrap_or_else(|| Repo::Local(dir.path().join("repo")));
        Self::around(pg, dir, repo)
    }

    fn around(pg: Pg, dir: TempDir, repo: Repo) -> World {
        let (identity, recipient) = keypair(dir.path());
        World {
            pg,
            dir,
            repo,
            identity,
            recipient,
        }
    }

    /// pgdr with the source (db `app`), repository, recipient and identity set through
    /// PGDR_SOURCE, PGDR_REPO, PGDR_RECIPIENT and PGDR_IDENTITY: each command takes only the
    /// flags that mean something to it, and reads only those variables (a flag the test
    /// adds replaces its variable).
    pub fn pgdr(&self, args: &[&str]) -> Command {
        let mut c = pgdr_cmd();
        c.args(args);
        c.env("PGDR_SOURCE", self.pg.url("app"));
        self.repo.apply_env(&mut c);
        c.env("PGDR_RECIPIENT", &self.recipient);
        c.env("PGDR_IDENTITY", &self.identity);
        c
    }

    /// Write a config file `name` with `toml` in the test's folder; its path.
    pub fn config_file(&self, name: &str, toml: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, toml).unwrap();
        path
    }

    /// pgdr as [`World::pgdr`], plus `--config FILE`.
    /// `pgdr restore --target <url of db on target>` with the repository and identity only,
    /// no --source and no config: what an operator types on a fresh host.
    pub fn restore_cmd(&self, target: &Pg, db: &str, args: &[&str]) -> Command {
        let mut c = pgdr_cmd();
        c.arg("restore").arg("--target").arg(target.url(db));
        c.args(args);
        self.repo.apply(&mut c);
        c.arg("--identity").arg(&self.identity);
        c
    }

    pub fn pgdr_config(&self, config: &Path, args: &[&str]) -> Command {
        let mut c = self.pgdr(args);
        c.arg("--config").arg(config);
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        run(self.pgdr(args))
    }

    /// Back up `app`, return the new manifest (from `show --json`).
    pub fn backup(&self) -> serde_json::Value {
        let r = self.run(&["backup", "--quiet"]).ok();
        let _ = r;
        let list = self.run(&["list", "--json"]).ok().json();
        let id = list.as_array().unwrap().last().expect("a backup is listed")["id"]
            .as_str()
            .unwrap()
            .to_string();
        self.run(&["show", &id, "--json"]).ok().json()
    }

    pub fn list(&self) -> Vec<serde_json::Value> {
        self.run(&["list", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Decrypt a backup's object with pgdr cat into a file; returns its path.
    pub fn cat(&self, id: &str, object: &str) -> PathBuf {
        let out = self.dir.path().join(format!("{id}.{object}"));
        self.run(&[
            "cat",
            id,
            "--object",
            object,
            "--out",
            out.to_str().unwrap(),
        ])
        .ok();
        out
    }
}

/// Every file under a local repository (relative paths), for "nothing was written" checks.
pub fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if !root.exists() {
        return out;
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A small tmpfs mounted at `dir` (created), to make a full disk; unmounted on drop. Needs
/// root, as CI has.
pub struct SmallDisk(pub PathBuf);

impl SmallDisk {
    pub fn mount(dir: PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "tmpfs",
            ])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success(), "this test needs root to mount a small tmpfs");
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
