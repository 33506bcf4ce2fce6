//! The chain proof against a real logical cluster: capture running in the background, two
//! anchored backups with a workload between them; `capture prove-chain` restores the first,
//! replays to the second's cut and must find every table equal. Then a table outside the
//! change stream (REPLICA IDENTITY NOTHING: not in the publication) changes between two
//! backups: the replay cannot give it back, and the proof must fail naming that table.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn world() -> World {
    let pg = Pg::start_logical();
    pg.create_db("app");
    pg.psql(
        "app",
        "CREATE TABLE acct (id serial PRIMARY KEY, owner text NOT NULL, balance int NOT NULL);
         CREATE TABLE tags (a int, b text);
         ALTER TABLE tags REPLICA IDENTITY FULL;
         CREATE TABLE outside (id int, note text);
         ALTER TABLE outside REPLICA IDENTITY NOTHING;
         INSERT INTO acct (owner, balance) SELECT 'o' || g, 100 FROM generate_series(1, 20) g;
         INSERT INTO outside VALUES (1, 'before');",
    );
    World::around_pg(pg, None)
}

/// The runner, stopped (SIGTERM, then killed) whatever the test's outcome.
struct Runner(Child);
impl Drop for Runner {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn workload(pg: &Pg, round: u32) {
    for i in 0..10 {
        let a = 1 + (round * 7 + i) % 20;
        pg.psql(
            "app",
            &format!(
                "BEGIN; UPDATE acct SET balance = balance - {i} WHERE id = {a};
                 INSERT INTO acct (owner, balance) VALUES ('r{round}i{i}', {i});
                 INSERT INTO tags VALUES ({a}, 'r{round}i{i}'); COMMIT;
                 UPDATE tags SET b = b || 'x' WHERE a = {a};
                 DELETE FROM acct WHERE id = (SELECT max(id) FROM acct WHERE owner LIKE 'r%') AND {i} % 3 = 0"
            ),
        );
    }
}

/// An anchored backup; its id.
fn anchored_backup(w: &World) -> String {
    let m = w.backup();
    assert!(m["snapshot"]["cut_lsn"].is_string(), "not anchored: {m:#}");
    m["id"].as_str().unwrap().to_string()
}

/// Prove the chain to `id`, waiting until the runner has stored the changes up to its cut.
fn prove(w: &World, id: &str) -> Run {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = w.run(&["capture", "prove-chain", "--backup", id, "--json"]);
        if r.code == 2 && r.stderr.contains("do not cover") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        return r;
    }
}

#[test]
fn prove_chain_passes_then_names_the_table_the_stream_cannot_give_back() {
    let w = world();
    w.run(&["capture", "enable"]).ok();
    let mut c = w.pgdr(&["capture", "run", "--segment-age", "1s", "--heartbeat", "1s"]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let _runner = Runner(c.spawn().unwrap());

    let b1 = anchored_backup(&w);
    workload(&w.pg, 1);
    let b2 = anchored_backup(&w);
    workload(&w.pg, 2);
    let r = prove(&w, &b2);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let rec = &r.json()[0];
    assert_eq!(rec["mode"], "chain", "{rec:#}");
    assert_eq!(rec["outcome"], "passed", "{rec:#}");
    assert_eq!(rec["backup_id"], b2.as_str());
    let shown = w.run(&["show", &b2, "--json"]).ok().json();
    assert_eq!(shown["last_verification"]["mode"], "chain", "{shown:#}");
    assert_ne!(b1, b2);

    // A change the stream does not carry, between the second and a third backup.
    w.pg.psql("app", "INSERT INTO outside VALUES (2, 'not captured')");
    workload(&w.pg, 3);
    let b3 = anchored_backup(&w);
    let r = prove(&w, &b3);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let rec = &r.json()[0];
    assert_eq!(rec["outcome"], "failed", "{rec:#}");
    let diffs: Vec<&str> = rec["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(
        diffs.len(),
        1,
        "only the uncaptured table differs: {diffs:?}"
    );
    assert!(
        diffs[0].starts_with("public.outside: 2 rows in backup, 1"),
        "{diffs:?}"
    );
    // The failure shows where operators look: list, show and status.
    let listed = w.list();
    let last = listed.iter().find(|b| b["id"] == b3.as_str()).unwrap();
    assert!(last.to_string().contains("chain"), "{last:#}");
    let show = w.run(&["show", &b3]).ok().stdout;
    assert!(show.contains("public.outside"), "{show}");
    let status = w.run(&["status"]);
    assert!(status.stdout.contains("chain"), "{}", status.stdout);
}

#[test]
fn prove_chain_refuses_a_backup_without_an_earlier_anchor() {
    let w = world();
    w.run(&["capture", "enable"]).ok();
    let b1 = anchored_backup(&w);
    let r = w.run(&["capture", "prove-chain", "--backup", &b1]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("no earlier anchored backup"),
        "{}",
        r.stderr
    );
}
