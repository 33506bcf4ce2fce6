//! Issue 20: a one-shot run (what a systemd timer or CronJob starts) pings its heartbeats,
//! mails its outcome and writes its gauges, like the daemon's runs; secrets in those settings
//! never reach the logs, and a notification that fails never changes the exit code.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use crate::common::*;

/// An HTTP receiver answering 200 to everything: (method, path with query, body), in order.
fn http_recorder() -> (u16, Receiver<(String, String, String)>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            r.read_line(&mut first).unwrap();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; len];
            r.read_exact(&mut body).unwrap();
            let mut parts = first.split_whitespace();
            let method = parts.next().unwrap_or("").to_string();
            let path = parts.next().unwrap_or("").to_string();
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nOK");
            let _ = tx.send((method, path, String::from_utf8_lossy(&body).into_owned()));
        }
    });
    (port, rx)
}

/// Everything received within a short while after the command ended.
fn drain<T>(rx: &Receiver<T>) -> Vec<T> {
    let mut got = Vec::new();
    while let Ok(x) = rx.recv_timeout(Duration::from_millis(500)) {
        got.push(x);
    }
    got
}

/// -vvv takes effect: the harness's PGDR_LOG=info would override it.
fn vvv(mut c: std::process::Command) -> std::process::Command {
    c.env_remove("PGDR_LOG");
    c
}

/// A source nobody listens on: the backup fails at once (exit 2).
fn dead_source() -> String {
    format!("postgres://postgres@127.0.0.1:{}/app", free_port())
}

#[test]
fn heartbeat_pings_start_then_success_or_fail_and_never_logs_its_url() {
    let w = World::local();
    let (port, rx) = http_recorder();
    let dead = free_port();
    let cfg = w.config_file(
        "hb.toml",
        &format!(
            "[[heartbeat]]\nurl = \"http://127.0.0.1:{port}/ping/tok3nSECRET?k=qSECRET\"\n\
             [[heartbeat]]\nurl = \"http://127.0.0.1:{dead}/down/tok3nSECRET\"\n\
             [[heartbeat]]\nurl = \"http://127.0.0.1:{port}/drills-only\"\njob = \"drill\"\n"
        ),
    );
    let r = run(vvv(w.pgdr_config(&cfg, &["backup", "-vvv"])));
    // The unreachable heartbeat is a warning: the backup's exit code stays 0.
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("heartbeat ping failed"), "{}", r.stderr);
    let got = drain(&rx);
    let paths: Vec<_> = got.iter().map(|(m, p, _)| format!("{m} {p}")).collect();
    assert_eq!(
        paths,
        [
            "POST /ping/tok3nSECRET/start?k=qSECRET",
            "POST /ping/tok3nSECRET?k=qSECRET"
        ]
    );
    assert!(
        got[1].2.starts_with("pgdr backup of 'app' succeeded on "),
        "{}",
        got[1].2
    );
    let id = w.list().last().unwrap()["id"].as_str().unwrap().to_string();
    assert!(
        got[1].2.contains(&id),
        "the body names the backup: {}",
        got[1].2
    );

    let mut c = vvv(pgdr_cmd());
    c.args(["backup", "-vvv", "--source", &dead_source(), "--config"])
        .arg(&cfg);
    w.repo.apply(&mut c);
    c.arg("--recipient").arg(&w.recipient);
    let f = run(c);
    assert_eq!(f.code, 2, "{}", f.stderr);
    let got = drain(&rx);
    let paths: Vec<_> = got.iter().map(|(_, p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/ping/tok3nSECRET/start?k=qSECRET",
            "/ping/tok3nSECRET/fail?k=qSECRET"
        ]
    );
    assert!(
        got[1].2.starts_with("pgdr backup of 'app' failed on "),
        "{}",
        got[1].2
    );
    assert!(got[1].2.contains("database 'app'"), "{}", got[1].2);
    for out in [&r.stderr, &r.stdout, &f.stderr, &f.stdout] {
        assert!(!out.contains("SECRET"), "a heartbeat URL leaked:\n{out}");
    }
}

#[test]
fn metrics_file_keeps_the_last_run_of_each_job() {
    let w = World::local();
    let prom = w.dir.path().join("textfile").join("pgdr.prom");
    std::fs::create_dir_all(prom.parent().unwrap()).unwrap();
    let before = chrono::Utc::now().timestamp() as f64;
    w.run(&[
        "backup",
        "--quiet",
        "--metrics-file",
        prom.to_str().unwrap(),
    ])
    .ok();
    let cfg = w.config_file(
        "m.toml",
        &format!("[metrics]\ntextfile = \"{}\"\n", prom.display()),
    );
    run(w.pgdr_config(&cfg, &["verify", "--quick"])).ok();
    let after = chrono::Utc::now().timestamp() as f64 + 1.0;
    let text = std::fs::read_to_string(&prom).unwrap();
    let get = |name: &str, job: &str| -> f64 {
        let key = format!("{name}{{database=\"app\",job=\"{job}\"}} ");
        let line = text
            .lines()
            .find(|l| l.starts_with(&key))
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"));
        line[key.len()..].parse().unwrap()
    };
    let m = w.backup_manifest_latest();
    let stored: u64 = m["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["stored_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(
        get("pgdr_last_run_bytes", "backup"),
        stored as f64,
        "{text}"
    );
    for job in ["backup", "verify"] {
        assert_eq!(get("pgdr_last_run_success", job), 1.0, "{text}");
        let (s, e) = (
            get("pgdr_last_run_start_timestamp_seconds", job),
            get("pgdr_last_run_end_timestamp_seconds", job),
        );
        assert!(before <= s && s <= e && e <= after, "{s} {e}:\n{text}");
        let d = get("pgdr_last_run_duration_seconds", job);
        assert!((d - (e - s)).abs() < 0.01, "{d} vs {}", e - s);
    }
    assert!(s_before_e_order(&text));
    let dir: Vec<_> = std::fs::read_dir(prom.parent().unwrap()).unwrap().collect();
    assert_eq!(dir.len(), 1, "only the file, no temp file left");
}

/// Each gauge's HELP/TYPE header appears once, before its lines.
fn s_before_e_order(text: &str) -> bool {
    text.matches("# TYPE pgdr_last_run_success gauge").count() == 1
        && text.find("# TYPE pgdr_last_run_success").unwrap()
            < text.find("pgdr_last_run_success{").unwrap()
}

impl World {
    fn backup_manifest_latest(&self) -> serde_json::Value {
        let id = self.list().last().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        self.run(&["show", &id, "--json"]).ok().json()
    }
}

/// Enough SMTP for one mail: EHLO (with AUTH), AUTH PLAIN, MAIL, RCPT, DATA, QUIT. Hands over
/// the whole transcript of each session.
fn smtp_sink() -> (u16, Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut log = String::new();
            let _ = s.write_all(b"220 sink ESMTP\r\n");
            let mut in_data = false;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                log.push_str(&line);
                let reply: &[u8] = if in_data {
                    if line != ".\r\n" {
                        continue;
                    }
                    in_data = false;
                    b"250 queued\r\n"
                } else {
                    match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                        "EHLO" => b"250-sink\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
                        "AUTH" => b"235 ok\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            let _ = s.write_all(b"221 bye\r\n");
                            break;
                        }
                        _ => b"250 ok\r\n",
                    }
                };
                let _ = s.write_all(reply);
            }
            let _ = tx.send(log);
        }
    });
    (port, rx)
}

#[test]
fn a_failed_backup_is_mailed_and_the_smtp_password_never_logged() {
    let w = World::local();
    let (port, rx) = smtp_sink();
    let cfg = w.config_file(
        "mail.toml",
        &format!(
            "[[email]]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
             username = \"pgdr\"\npassword = \"pa55SECRETword\"\n\
             from = \"pgdr@example.com\"\nto = [\"oncall@example.com\"]\n"
        ),
    );
    // A success is not mailed unless on_success: nothing arrives.
    let ok = run(vvv(w.pgdr_config(&cfg, &["backup", "-vvv"])));
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(drain(&rx).is_empty());

    let mut c = vvv(pgdr_cmd());
    c.args(["backup", "-vvv", "--source", &dead_source(), "--config"])
        .arg(&cfg);
    w.repo.apply(&mut c);
    c.arg("--recipient").arg(&w.recipient);
    let f = run(c);
    assert_eq!(f.code, 2, "{}", f.stderr);
    let mails = drain(&rx);
    assert_eq!(mails.len(), 1, "{mails:?}\n{}", f.stderr);
    let m = &mails[0];
    assert!(m.contains("RCPT TO:<oncall@example.com>"), "{m}");
    assert!(
        m.contains("Subject: [pgdr] FAILED: backup of 'app' on "),
        "{m}"
    );
    assert!(m.contains("outcome: failed"), "{m}");
    assert!(m.contains("error: database 'app'"), "{m}");
    // The password went to the relay (AUTH PLAIN: base64 of \0user\0password) ...
    let plain = "AHBnZHIAcGE1NVNFQ1JFVHdvcmQ="; // base64 of "\0pgdr\0pa55SECRETword"
    assert!(m.contains(plain), "{m}");
    // ... and nowhere else.
    for out in [&ok.stderr, &ok.stdout, &f.stderr, &f.stdout] {
        assert!(
            !out.contains("SECRET") && !out.contains(plain),
            "leaked:\n{out}"
        );
    }
}

#[test]
fn progress_log_shows_a_long_backup_is_alive_and_auto_says_nothing_off_a_terminal() {
    let w = World::local();
    // Enough rows that the dump outlasts a few intervals.
    w.pg.psql(
        "app",
        "create table big as select g, md5(g::text) || md5((g * 7)::text) as t \
         from generate_series(1, 600000) g",
    );
    let cfg = w.config_file("p.toml", "[progress]\ninterval = \"100ms\"\n");
    let r = run(w.pgdr_config(&cfg, &["backup", "--progress", "log"])).ok();
    let plain = strip_ansi(&r.stderr);
    let lines: Vec<_> = plain
        .lines()
        .filter(|l| l.contains("progress: app dump: "))
        .collect();
    assert!(!lines.is_empty(), "no progress line:\n{}", r.stderr);
    let bytes: Vec<u64> = lines
        .iter()
        .map(|l| {
            let v = l
                .split(" bytes=")
                .nth(1)
                .unwrap_or_else(|| panic!("no bytes field: {l}"));
            v.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect();
    assert!(bytes.iter().any(|b| *b > 0), "{}", r.stderr);
    assert!(
        bytes.windows(2).all(|p| p[0] <= p[1]),
        "counts only grow: {bytes:?}"
    );
    // auto, not on a terminal (cron): nothing.
    let quiet = run(w.pgdr_config(&cfg, &["backup"])).ok();
    assert!(!quiet.stderr.contains("progress:"), "{}", quiet.stderr);
}

/// The human log format colours its fields even on a pipe.
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The daemon goes through the same notifier: its scheduled backup pings start, then fail.
#[test]
fn the_daemon_pings_the_same_heartbeats() {
    use chrono::Timelike;
    let dir = tempdir();
    let (_, recipient) = keypair(dir.path());
    let (port, rx) = http_recorder();
    let t = chrono::Utc::now() + chrono::Duration::seconds(4);
    let cron = format!("{} {} {} * * *", t.second(), t.minute(), t.hour());
    let cfg = dir.path().join("d.toml");
    std::fs::write(
        &cfg,
        format!(
            "[daemon]\ncron_seconds = true\ngrace_period = \"0s\"\n\
             [schedule]\nbackup = \"{cron}\"\nverify = \"off\"\ndrill = \"off\"\nprune = \"off\"\ncatch_up = false\n\
             [[heartbeat]]\nurl = \"http://127.0.0.1:{port}/hb/dAEMONsecret\"\n\
             [[database]]\nname = \"app\"\nurl = \"{}\"\n",
            dead_source()
        ),
    )
    .unwrap();
    let log = dir.path().join("daemon.log");
    let mut c = vvv(pgdr_cmd());
    c.args(["daemon", "-vvv", "--config"])
        .arg(&cfg)
        .arg("--repo")
        .arg(dir.path().join("repo"))
        .arg("--recipient")
        .arg(&recipient)
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = c.spawn().unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((_, path, body)) => got.push((path, body)),
            Err(_) => break,
        }
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    let paths: Vec<_> = got.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["/hb/dAEMONsecret/start", "/hb/dAEMONsecret/fail"],
        "{stderr}"
    );
    assert!(
        got[1].1.starts_with("pgdr backup of 'app' failed on "),
        "{}",
        got[1].1
    );
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains("dAEMONsecret"),
        "the heartbeat URL leaked:\n{stderr}"
    );
}
