//! Who can reach what pgdr starts (issue 12): no other local user reaches the scratch
//! cluster, no child sees pgdr's environment beyond the allow-list, what a killed pgdr left
//! is removed by the next command, and clusters of one process leave each other alone.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// An unprivileged OS user for the connection attempts; made once and kept (idempotent).
const PROBE_USER: &str = "pgdr_probe";

fn probe_user() -> &'static str {
    let exists = |u: &str| {
        Command::new("id")
            .args(["-u", u])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    if !exists(PROBE_USER) {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(PROBE_USER)
            .output()
            .unwrap();
        // Exit 9: a parallel test made it meanwhile.
        assert!(
            out.status.success() || out.status.code() == Some(9),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(exists(PROBE_USER));
    PROBE_USER
}

/// `SELECT 1` through psql as OS user `user` with `conninfo`, never prompting for a password
/// and with nothing of this process's environment: Ok(output) or Err(stderr).
fn psql_as(user: &str, conninfo: &str) -> Result<String, String> {
    let out = Command::new("runuser")
        .args(["-u", user, "--"])
        .arg(pg_bin().join("psql"))
        .args(["-X", "-w", "-A", "-t", "-d", conninfo, "-c", "SELECT 1"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    hex::encode(b)
}

/// Variables set in pgdr's environment that no child may see: secrets of random names and
/// values, and libpq settings of the caller that would redirect or alter a child.
fn markers() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = (0..3)
        .map(|_| {
            (
                format!("PGDR_MARK_{}", random_hex().to_uppercase()),
                format!("secret{}", random_hex()),
            )
        })
        .collect();
    v.push((
        "AWS_SECRET_ACCESS_KEY".into(),
        format!("secret{}", random_hex()),
    ));
    v.push(("PGOPTIONS".into(), "-c work_mem=77kB".into()));
    // PGSERVICE is no marker any more: pgdr itself honours it for the source, as psql does
    // (e2e conventions); a libpq variable pgdr does not read takes its place, one that would
    // make a child's connection to a primary fail if it leaked.
    v.push(("PGTARGETSESSIONATTRS".into(), "read-only".into()));
    v
}

/// The markers an environment ("K=V" entries) shows, by name or by secret value.
fn leaked(entries: &[String], marks: &[(String, String)]) -> Vec<String> {
    marks
        .iter()
        .filter(|(k, v)| {
            entries.iter().any(|e| {
                e.starts_with(&format!("{k}=")) || (v.starts_with("secret") && e.contains(v))
            })
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// The lines of `<cluster folder>/data/postmaster.pid` (0 pid, 3 port, 4 socket dir, 7 status).
fn pid_file(dir: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("data/postmaster.pid")).ok()?;
    Some(text.lines().map(|l| l.trim().to_string()).collect())
}

/// The scratch cluster folder under `tmp` once its server accepts connections, and the
/// postmaster's pid. Fails loudly when pgdr exits first or nothing runs within 60 s.
fn running_cluster(tmp: &Path, pgdr: &mut Child) -> (PathBuf, i32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = std::fs::read_dir(tmp)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| pid_file(p).is_some_and(|l| l.get(7).is_some_and(|s| s == "ready")));
        if let Some(dir) = ready {
            let pm = pid_file(&dir).unwrap()[0].parse().unwrap();
            return (dir, pm);
        }
        if let Some(st) = pgdr.try_wait().unwrap() {
            panic!("pgdr exited ({st}) before its scratch cluster was seen running");
        }
        assert!(
            Instant::now() < deadline,
            "no scratch cluster ran within 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn runs_postgres(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.contains("postgres"))
}

/// TCP ports `pid` listens on (IPv4 and IPv6): its socket inodes matched against the LISTEN
/// rows of its network namespace's tables.
fn tcp_listen_ports(pid: i32) -> Vec<u16> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_str()?.to_string();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            // sl local_address rem_address st ... inode (column 9); st 0A is LISTEN.
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && cols[3] == "0A" && inodes.contains(cols[9]) {
                let port = cols[1].rsplit(':').next().unwrap();
                ports.push(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports
}

/// Every way into the running scratch cluster at `dir` that is open to someone other than
/// pgdr, as descriptions; empty when it is closed.
fn open_routes(user: &str, dir: &Path, pm: i32) -> Vec<String> {
    let mut open = Vec::new();
    let meta = std::fs::metadata(dir).unwrap();
    if meta.mode() & 0o777 != 0o700 {
        open.push(format!("folder mode {:o}", meta.mode() & 0o777));
    }
    // The folder belongs to the cluster's OS user (who owns the data directory it made).
    let data_uid = std::fs::metadata(dir.join("data")).unwrap().uid();
    if meta.uid() != data_uid {
        open.push(format!(
            "folder owned by uid {}, not the cluster's",
            meta.uid()
        ));
    }
    let hba = std::fs::read_to_string(dir.join("data/pg_hba.conf")).unwrap();
    let rules: Vec<String> = hba
        .lines()
        .map(|l| {
            l.split('#')
                .next()
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|l| !l.is_empty())
        .collect();
    if rules != ["local all all scram-sha-256"] {
        open.push(format!("pg_hba.conf rules {rules:?}"));
    }
    let lines = pid_file(dir).unwrap();
    let mut ports: BTreeSet<u16> = tcp_listen_ports(pm).into_iter().collect();
    if !ports.is_empty() {
        open.push(format!("TCP listeners on {ports:?}"));
    }
    ports.insert(lines[3].parse().unwrap());
    for port in ports {
        for host in ["127.0.0.1", "::1"] {
            let ci =
                format!("host={host} port={port} user=postgres dbname=postgres connect_timeout=3");
            if let Ok(out) = psql_as(user, &ci) {
                open.push(format!("TCP {host}:{port} as {user}: {out}"));
            }
        }
    }
    // The socket exists (the route is real) and is closed to the probe user.
    let (sock_dir, port) = (&lines[4], &lines[3]);
    assert!(Path::new(sock_dir)
        .join(format!(".s.PGSQL.{port}"))
        .exists());
    let ci = format!("host={sock_dir} port={port} user=postgres dbname=postgres connect_timeout=3");
    if let Ok(out) = psql_as(user, &ci) {
        open.push(format!("socket as {user}: {out}"));
    }
    // Even the cluster's own OS user, who reaches the socket, needs the run's password.
    match psql_as("postgres", &ci) {
        Ok(out) => open.push(format!("socket as postgres without a password: {out}")),
        Err(e) if !e.contains("password") => open.push(format!("socket as postgres: {e}")),
        Err(_) => {}
    }
    open
}

#[test]
fn scratch_cluster_is_reachable_by_pgdr_alone() {
    let user = probe_user();
    let w = World::local();
    w.pg.psql(
        "app",
        "CREATE TABLE public.bulk AS SELECT i, md5(i::text) AS h FROM generate_series(1, 600000) AS i",
    );
    let id = w.backup()["id"].as_str().unwrap().to_string();
    // Controls: the probe user runs psql and gets into a server that lets it in, and the
    // port reader finds a real listener.
    let pw = format!(
        "host=127.0.0.1 port={} user=postgres password={PG_PASSWORD} dbname=app",
        w.pg.port
    );
    assert_eq!(psql_as(user, &pw).as_deref(), Ok("1"));
    let pg_pm: i32 = pid_file(w.pg.dir.path()).unwrap()[0].parse().unwrap();
    assert_eq!(tcp_listen_ports(pg_pm), [w.pg.port]);

    let tmp = w.dir.path().join("scratch-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let cfg = w.config_file(
        "s.toml",
        &format!("[scratch]\ntemp_dir = \"{}\"\n", tmp.display()),
    );
    let marks = markers();
    let mut c = w.pgdr_config(&cfg, &["verify", &id]);
    c.envs(marks.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let (dir, pm) = running_cluster(&tmp, &mut child);
    let open = open_routes(user, &dir, pm);
    let environ = std::fs::read(format!("/proc/{pm}/environ")).unwrap();
    let environ: Vec<String> = String::from_utf8_lossy(&environ)
        .split('\0')
        .map(str::to_string)
        .collect();
    // Every attempt above met the running server, not one already gone.
    assert!(
        runs_postgres(pm) && pid_file(&dir).is_some_and(|l| l[0] == pm.to_string()),
        "the scratch server stopped before all attempts were made: restore a bigger table"
    );
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(open.is_empty(), "the scratch cluster is open: {open:#?}");
    assert_eq!(
        leaked(&environ, &marks),
        Vec::<String>::new(),
        "{environ:?}"
    );
}

/// A bin dir of wrappers that log their environment to `log` and exec the real program.
fn env_logging_bin_dir(root: &Path) -> (PathBuf, PathBuf) {
    let (bin, log) = (root.join("wrap"), root.join("envlog"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&log).unwrap();
    // The server and initdb run as the cluster's OS user.
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o777)).unwrap();
    for name in [
        "initdb",
        "postgres",
        "pg_restore",
        "pg_dump",
        "pg_dumpall",
        "psql",
    ] {
        let script = format!(
            "#!/bin/sh\n/usr/bin/env > {log}/{name}.$$\nexec {real}/{name} \"$@\"\n",
            log = log.display(),
            real = pg_bin().display()
        );
        let path = bin.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (bin, log)
}

/// What a child may see: the allow-list, libpq's settings pgdr resolved, and what the
/// wrapper's shell adds.
fn allowed(name: &str) -> bool {
    const PG: &[&str] = &[
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
        "PGSSLMODE",
        "PGSSLROOTCERT",
        "PGAPPNAME",
        "PGCONNECT_TIMEOUT",
        "PGTZ",
    ];
    matches!(
        name,
        "PATH" | "LANG" | "TZ" | "PWD" | "OLDPWD" | "SHLVL" | "_"
    ) || name.starts_with("LC_")
        || PG.contains(&name)
}

#[test]
fn children_see_only_the_allow_listed_environment() {
    let w = World::local();
    let (bin, log) = env_logging_bin_dir(w.dir.path());
    let tmp = w.dir.path().join("scratch-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let cfg = w.config_file(
        "env.toml",
        &format!(
            "[tools]\npg_bin_dir = \"{}\"\n[scratch]\ntemp_dir = \"{}\"\n",
            bin.display(),
            tmp.display()
        ),
    );
    let marks = markers();
    let with_marks = |mut c: Command| {
        c.envs(marks.iter().map(|(k, v)| (k, v)));
        run(c).ok()
    };
    with_marks(w.pgdr_config(&cfg, &["backup", "--quiet"]));
    with_marks(w.pgdr_config(&cfg, &["verify"]));
    let mut c = pgdr_cmd();
    c.args(["restore", "--yes", "--jobs", "2", "--target"])
        .arg(w.pg.url("app_env"))
        .arg("--identity")
        .arg(&w.identity)
        .arg("--config")
        .arg(&cfg);
    w.repo.apply(&mut c);
    with_marks(c);

    let mut seen = BTreeSet::new();
    let mut bad = Vec::new();
    for e in std::fs::read_dir(&log).unwrap().flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        seen.insert(file.split('.').next().unwrap().to_string());
        let entries: Vec<String> = std::fs::read_to_string(e.path())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let leaks = leaked(&entries, &marks);
        let extra: Vec<&str> = entries
            .iter()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .filter(|k| !allowed(k))
            .collect();
        if !leaks.is_empty() || !extra.is_empty() {
            bad.push(format!("{file}: markers {leaks:?}, not allowed {extra:?}"));
        }
    }
    // Each kind of child was observed (dumps, the scratch server and its initdb, restores).
    for tool in ["pg_dump", "pg_dumpall", "initdb", "postgres", "pg_restore"] {
        assert!(
            seen.contains(tool),
            "{tool} never ran through the wrappers: {seen:?}"
        );
    }
    assert!(bad.is_empty(), "children saw pgdr's environment: {bad:#?}");
}

#[test]
fn status_removes_the_cluster_and_spool_a_killed_pgdr_left() {
    let w = World::local();
    w.pg.psql(
        "app",
        "CREATE TABLE public.bulk AS SELECT i, md5(i::text) AS h FROM generate_series(1, 600000) AS i",
    );
    let id = w.backup()["id"].as_str().unwrap().to_string();
    // Both default to the system temp dir.
    let tmp = w.dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();

    let mut c = w.pgdr(&["verify", &id]);
    c.env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let (cluster, pm) = running_cluster(&tmp, &mut child);
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    assert!(
        runs_postgres(pm),
        "the killed run's server should still be up"
    );

    let mut c = pgdr_cmd();
    c.args(["restore", "--yes", "--jobs", "2", "--target"])
        .arg(w.pg.url("app_spool"))
        .arg("--identity")
        .arg(&w.identity)
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    w.repo.apply(&mut c);
    let mut child = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let spool = loop {
        let found = std::fs::read_dir(&tmp).unwrap().flatten().find(|e| {
            e.file_name().to_string_lossy().starts_with("pgdr-spool-")
                && e.metadata().is_ok_and(|m| m.len() > 0)
        });
        if let Some(e) = found {
            break e.path();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "restore ended before its spool was seen"
        );
        assert!(Instant::now() < deadline, "no spool file within 60 s");
        std::thread::sleep(Duration::from_millis(2));
    };
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    assert!(spool.exists());

    let mut c = w.pgdr(&["status"]);
    c.env("TMPDIR", &tmp);
    let r = run(c);
    assert_ne!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(!runs_postgres(pm), "the orphaned server {pm} still runs");
    assert!(!cluster.exists(), "left behind: {}", cluster.display());
    assert!(!spool.exists(), "left behind: {}", spool.display());
    assert!(
        files_under(&tmp).is_empty(),
        "left behind: {:?}",
        files_under(&tmp)
    );
}

#[test]
fn clusters_of_one_process_leave_each_other_alone() {
    // One daemon runs the jobs of several databases at once, each with its own cluster; the
    // sweep of a starting one must not take a running one of the same process for an orphan.
    let tmp = tempdir();
    let s = pgdr::config::ScratchSettings {
        temp_dir: Some(tmp.path().to_path_buf()),
        ..Default::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let start = || pgdr::scratch::EphemeralCluster::start(0, &s, 0);
        let a = start().await.unwrap();
        let (b, c) = tokio::join!(start(), start());
        let (b, c) = (b.unwrap(), c.unwrap());
        pgdr::scratch::sweep_orphans(&s).await;
        for (name, cl) in [("a", &a), ("b", &b), ("c", &c)] {
            assert!(cl.dir().exists(), "cluster {name}'s folder was removed");
            let db = cl.database("postgres");
            let client = pgdr::source::connect(&db)
                .await
                .unwrap_or_else(|e| panic!("cluster {name}: {}", e.message));
            let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
            assert_eq!(one, 1);
        }
        for cl in [a, b, c] {
            cl.stop().await;
        }
    });
    assert!(
        files_under(tmp.path()).is_empty(),
        "{:?}",
        files_under(tmp.path())
    );
}
