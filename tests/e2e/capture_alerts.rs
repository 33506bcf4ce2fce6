//! The daemon and change capture: its alerts (webhook, metrics) for a missing slot and an
//! unanchored backup, and the lease it shares with `pgdr capture run`.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::capture_ops::{
    capture_config, start_daemon, start_runner, stop_runner, stored_xids, term, txn, wait_log,
    world,
};
use crate::common::*;

/// A webhook receiver on 127.0.0.1: every POSTed JSON body, in arrival order.
fn receiver() -> (u16, std::sync::mpsc::Receiver<serde_json::Value>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send(serde_json::from_slice(&body).unwrap());
        }
    });
    (port, rx)
}

/// A session that wrote and then sits idle in its transaction, and its pid. The caller kills
/// and waits for it (a panic here leaves it to the cluster's teardown).
#[allow(clippy::zombie_processes)]
fn idle_in_transaction(w: &World) -> (Child, String) {
    use std::io::Write;
    let mut c = std::process::Command::new(pg_bin().join("psql"))
        .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "app"])
        .arg("-p")
        .arg(w.pg.port.to_string())
        .env("PGPASSWORD", PG_PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    stdin
        .write_all(b"BEGIN; INSERT INTO t (v) VALUES ('open');\n")
        .unwrap();
    stdin.flush().unwrap();
    std::mem::forget(stdin);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let p = w.pg.psql(
            "app",
            "SELECT pid FROM pg_stat_activity WHERE state = 'idle in transaction' AND backend_xid IS NOT NULL",
        );
        if !p.is_empty() {
            return (c, p);
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            panic!("the blocker never went idle");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_daemon_alerts_a_missing_slot_and_an_unanchored_backup_once_each() {
    let w = world();
    w.run(&["capture", "enable", "--anchor-timeout", "1s"]).ok();
    let (mut blocker, _pid) = idle_in_transaction(&w);
    w.run(&["backup", "--quiet"]).ok();
    blocker.kill().unwrap();
    blocker.wait().unwrap();
    w.pg.psql("app", "SELECT pg_drop_replication_slot('pgdr_app')");
    let (port, rx) = receiver();
    let metrics_port = free_port();
    // This host only monitors (its runner would replace the slot at once): the alerts of a
    // capture are the daemon's whether or not it runs it.
    let cfg = capture_config(
        &w,
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n[[webhook]]\nurl = \"http://127.0.0.1:{port}/hook\"\n"
        ),
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        // ... and has a nightly prune to run, or it would have nothing to do.
        text.replace(
            "[database.capture]\n",
            "[database.capture]\nenabled = false\n",
        )
        .replace("prune = \"off\"", "prune = \"30 5 * * *\""),
    )
    .unwrap();
    let (daemon, log) = start_daemon(&w, &cfg);
    let mut got: Vec<serde_json::Value> = Vec::new();
    let has = |got: &[serde_json::Value], j: &str| got.iter().any(|b| b["job"] == j);
    while !(has(&got, "capture (slot)") && has(&got, "capture (not-anchored)")) {
        let b = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{got:?}\n{}", std::fs::read_to_string(&log).unwrap()));
        got.push(b);
    }
    // One alert per condition (more looks send no more: the daemon's unit test).
    std::thread::sleep(Duration::from_secs(2));
    got.extend(rx.try_iter());
    for j in ["capture (slot)", "capture (not-anchored)"] {
        assert_eq!(got.iter().filter(|b| b["job"] == j).count(), 1, "{got:#?}");
    }
    for b in &got {
        assert_eq!(b["database"], "app");
        assert_eq!(b["outcome"], "failed");
    }
    let slot = got.iter().find(|b| b["job"] == "capture (slot)").unwrap();
    assert!(
        slot["error"]
            .as_str()
            .unwrap()
            .contains("slot 'pgdr_app' is missing"),
        "{slot}"
    );
    // The metrics say it too.
    let text = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(
        text.contains("pgdr_capture_slot_ok{database=\"app\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("pgdr_capture_alerts_total{alert=\"slot\",database=\"app\"} 1"),
        "{text}"
    );
    assert_eq!(term(daemon, 60), 0);
}

#[test]
fn a_daemon_waits_while_capture_run_holds_the_capture_and_takes_over_after_it() {
    let w = world();
    w.run(&["capture", "enable"]).ok();
    let runner = start_runner(&w);
    let x = txn(&w, "INSERT INTO t (v) VALUES ('by the runner')");
    stored_xids(&w, &[x]);
    let cfg = capture_config(&w, "");
    let (daemon, log) = start_daemon(&w, &cfg);
    wait_log(&log, "capture runs elsewhere; waiting", 20);
    assert!(
        !std::fs::read_to_string(&log)
            .unwrap()
            .contains("capture failed"),
        "a held lease is not a failure"
    );
    stop_runner(runner);
    // The runner released its lease: the daemon's next look (30 s) takes over.
    let y = txn(&w, "INSERT INTO t (v) VALUES ('by the daemon')");
    let stored = stored_xids(&w, &[y]);
    assert_eq!(stored.iter().filter(|s| **s == y).count(), 1, "{stored:?}");
    assert_eq!(stored.iter().filter(|s| **s == x).count(), 1, "{stored:?}");
    assert_eq!(term(daemon, 60), 0);
}
