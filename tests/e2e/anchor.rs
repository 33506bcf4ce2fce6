//! Anchored dumps: with capture enabled, `pgdr backup` cuts the change stream exactly (a
//! temporary slot's exported snapshot) and records the cut; a session idle in a transaction
//! cannot make it hang: the backup goes on unanchored and names the session.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgdr::source::Lsn;

use crate::common::*;

struct Anchored {
    pg: Pg,
    dir: tempfile::TempDir,
    recipient: String,
}

impl Anchored {
    fn new(enable: &[&str]) -> Anchored {
        let pg = Pg::start_logical();
        pg.create_db("app");
        pg.psql("app", "CREATE TABLE keyed (id int PRIMARY KEY, v text)");
        let dir = tempdir();
        let (_, recipient) = keypair(dir.path());
        let a = Anchored { pg, dir, recipient };
        a.pgdr(&[&["capture", "enable"], enable].concat()).ok();
        a
    }

    fn pgdr(&self, args: &[&str]) -> Run {
        // Through the environment: each command reads the variables of the flags it takes.
        let mut c = pgdr_cmd();
        c.args(args)
            .env("PGDR_SOURCE", self.pg.url("app"))
            .env("PGDR_REPO", self.dir.path().join("repo"))
            .env("PGDR_RECIPIENT", &self.recipient);
        run(c)
    }

    /// Back up; the new manifest and the run.
    fn backup(&self) -> (serde_json::Value, Run) {
        let r = self.pgdr(&["backup"]).ok();
        let list = self.pgdr(&["list", "--json"]).ok().json();
        let id = list.as_array().unwrap().last().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        (self.pgdr(&["show", &id, "--json"]).ok().json(), r)
    }

    fn anchor_slots(&self) -> String {
        self.pg.psql(
            "app",
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pgdr\\_anchor%'",
        )
    }

    /// End positions of the commits in pgdr's capture slot (the SQL interface: an oracle
    /// independent of pgdr's code), oldest first.
    fn commits(&self) -> Vec<Lsn> {
        self.pg
            .psql(
                "app",
                "SELECT lsn FROM pg_logical_slot_peek_binary_changes('pgdr_app', NULL, NULL,
                   'proto_version', '1', 'publication_names', 'pgdr_app')
                  WHERE get_byte(data, 0) = ascii('C')",
            )
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    }
}

fn rows(m: &serde_json::Value, name: &str) -> u64 {
    m["fingerprint"]["data"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in the fingerprint"))["rows"]
        .as_u64()
        .unwrap()
}

/// A phase's seconds from the manifest; it must be there.
fn phase(m: &serde_json::Value, name: &str) -> f64 {
    m["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no {name} phase in {}", m["phases"]))["seconds"]
        .as_f64()
        .unwrap()
}

#[test]
fn an_anchored_backup_records_its_cut() {
    let a = Anchored::new(&[]);
    a.pg.psql("app", "INSERT INTO keyed VALUES (1, 'before')");
    let (m, _) = a.backup();
    a.pg.psql("app", "INSERT INTO keyed VALUES (2, 'after')");

    assert_eq!(m["snapshot"]["method"], "replication_slot");
    assert!(m["snapshot"]["not_anchored"].is_null());
    let cut: Lsn = m["snapshot"]["cut_lsn"].as_str().unwrap().parse().unwrap();
    // The commit before the backup is before the cut and in the dump; the one after, after.
    let commits = a.commits();
    assert_eq!(commits.len(), 2, "{commits:?}");
    assert!(
        commits[0] <= cut && cut < commits[1],
        "cut {cut}, commits {commits:?}"
    );
    assert_eq!(rows(&m, "keyed"), 1);
    // The slot's creation wait is its own phase, inside the snapshot's.
    let (snapshot, anchor) = (phase(&m, "snapshot"), phase(&m, "anchor"));
    assert!(0.0 < anchor && anchor <= snapshot, "{}", m["phases"]);
    // The temporary slot went with its session.
    assert_eq!(a.anchor_slots(), "0");
}

#[test]
fn a_session_idle_in_transaction_is_named_and_the_backup_goes_on() {
    let a = Anchored::new(&["--anchor-timeout", "2s"]);
    // A session that wrote and then sits idle in its transaction (psql waits for more input).
    let mut blocker = Command::new(pg_bin().join("psql"))
        .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "app"])
        .arg("-p")
        .arg(a.pg.port.to_string())
        .env("PGPASSWORD", PG_PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = blocker.stdin.take().unwrap();
    stdin
        .write_all(b"BEGIN; INSERT INTO keyed VALUES (7, 'open');\n")
        .unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        let p = a.pg.psql(
            "app",
            "SELECT pid FROM pg_stat_activity WHERE state = 'idle in transaction' AND backend_xid IS NOT NULL",
        );
        if !p.is_empty() {
            break p;
        }
        assert!(Instant::now() < deadline, "the blocker never went idle");
        std::thread::sleep(Duration::from_millis(100));
    };

    let started = Instant::now();
    let (m, r) = a.backup();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the backup waited {:?}",
        started.elapsed()
    );
    assert_eq!(m["snapshot"]["method"], "pg_export_snapshot");
    assert!(m["snapshot"]["cut_lsn"].is_null());
    let not = &m["snapshot"]["not_anchored"];
    assert_eq!(not["blocking_pid"].to_string(), pid);
    assert!(not["blocking_seconds"].as_f64().unwrap() >= 2.0);
    // The phase says what the wait cost: the whole timeout.
    let anchor = phase(&m, "anchor");
    assert!(
        (2.0..10.0).contains(&anchor) && anchor <= phase(&m, "snapshot"),
        "{}",
        m["phases"]
    );
    let reason = not["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("session pid {pid} (idle in transaction)"))
            && reason.contains("not anchored"),
        "{reason}"
    );
    // Said as a warning when it happens, not only in the manifest.
    assert!(
        r.stderr.contains("backup_not_anchored") && r.stderr.contains(&pid),
        "{}",
        r.stderr
    );
    // The cancelled slot creation left nothing behind, though the blocker is still open.
    assert_eq!(a.anchor_slots(), "0");
    assert_eq!(rows(&m, "keyed"), 0);

    drop(stdin);
    let _ = blocker.kill();
    let _ = blocker.wait();
}
