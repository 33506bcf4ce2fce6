//! The command line (issue 20): a flag only where it means something, a `PGDR_*` variable
//! that takes effect, and completions and man pages that name every command.

use std::process::Command;

use crate::common::*;

fn pgdr(args: &[&str]) -> Run {
    let mut c = pgdr_cmd();
    c.args(args);
    run(c)
}

/// The commands `pgdr [GROUP] --help` lists, as paths ("backup", "capture run", ...).
fn commands(prefix: &[&str]) -> Vec<Vec<String>> {
    let mut args: Vec<&str> = prefix.to_vec();
    args.push("--help");
    let help = pgdr(&args).ok().stdout;
    let listed = help
        .split("Commands:")
        .nth(1)
        .map(|s| s.split("\n\n").next().unwrap_or_default().to_string());
    let mut out = Vec::new();
    for line in listed.unwrap_or_default().lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if name == "help" {
            continue;
        }
        let mut path: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        path.push(name.to_string());
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        out.extend(commands(&refs));
        out.push(path);
    }
    out
}

#[test]
fn a_flag_the_command_does_not_take_is_refused_by_name_and_nothing_is_written() {
    let dir = tempdir();
    let key = dir.path().join("id.txt");
    let r = pgdr(&["keygen", "--out", key.to_str().unwrap(), "--repo", "/tmp/x"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("--repo"), "{}", r.stderr);
    assert!(
        !key.exists(),
        "keygen ran although its arguments were refused"
    );
    // A flag of another command, on a command that reads the repository.
    let r = pgdr(&["list", "--repo", "/tmp/x", "--recipient", "age1xyz"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("--recipient"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    // The same flag where it means something still works: keygen then, plainly, runs.
    let r = pgdr(&["keygen", "--out", key.to_str().unwrap()]).ok();
    assert!(r.stdout.trim().starts_with("age1"), "{}", r.stdout);
}

#[test]
fn completions_for_each_shell_name_every_command() {
    let all = commands(&[]);
    assert!(all.len() >= 20, "{all:?}");
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let r = pgdr(&["completions", shell]).ok();
        assert!(r.stdout.len() > 1000, "{shell}: {}", r.stdout);
        for path in &all {
            let name = path.last().unwrap();
            assert!(
                r.stdout.contains(name.as_str()),
                "{shell}: {path:?} missing"
            );
        }
        // Flags are completed per command: restore's safety flag is there.
        assert!(r.stdout.contains("allow-unsigned"), "{shell}");
    }
    let r = pgdr(&["completions", "tcsh"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("tcsh"), "{}", r.stderr);
}

#[test]
fn man_writes_a_page_per_command() {
    let dir = tempdir();
    let out = dir.path().join("man1");
    pgdr(&["man", "--out", out.to_str().unwrap()]).ok();
    let root = std::fs::read_to_string(out.join("pgdr.1")).unwrap();
    assert!(root.contains(".TH pgdr"), "{root}");
    for path in commands(&[]) {
        let page = out.join(format!("pgdr-{}.1", path.join("-")));
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        let title = format!(".TH pgdr-{} 1", path.join("-"));
        assert!(text.contains(&title), "{}: {text}", page.display());
    }
    let restore = std::fs::read_to_string(out.join("pgdr-restore.1")).unwrap();
    assert!(restore.contains("PGDR_TARGET"), "{restore}");
    assert!(restore.contains("allow\\-unsigned"), "{restore}");
}

#[test]
fn pgdr_database_selects_the_database_and_the_flag_beats_it() {
    let w = World::local();
    w.pg.sample_db("other");
    for db in ["app", "other"] {
        let mut c = pgdr_cmd();
        c.args(["backup", "--quiet", "--source"]).arg(w.pg.url(db));
        w.repo.apply(&mut c);
        c.env("PGDR_RECIPIENT", &w.recipient);
        run(c).ok();
    }
    let list = |env: Option<&str>, flag: Option<&str>| -> Vec<String> {
        let mut c = pgdr_cmd();
        c.args(["list", "--json"]);
        w.repo.apply(&mut c);
        if let Some(d) = env {
            c.env("PGDR_DATABASE", d);
        }
        if let Some(d) = flag {
            c.args(["--database", d]);
        }
        let v = run(c).ok().json();
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| b["database"].as_str().unwrap().to_string())
            .collect()
    };
    let mut both = list(None, None);
    both.sort();
    assert_eq!(both, ["app", "other"]);
    assert_eq!(list(Some("other"), None), ["other"]);
    assert_eq!(list(Some("app"), None), ["app"]);
    assert_eq!(list(Some("app"), Some("other")), ["other"]);
}

/// A command given only variables for flags it does not take runs as if they were unset.
#[test]
fn variables_of_flags_a_command_does_not_take_are_ignored() {
    let dir = tempdir();
    let key = dir.path().join("id.txt");
    let mut c: Command = pgdr_cmd();
    c.args(["keygen", "--out"]).arg(&key);
    c.env("PGDR_REPO", "/nonexistent")
        .env("PGDR_SOURCE", "postgres://nohost/x");
    let r = run(c).ok();
    let public = r.stdout.trim();
    assert!(public.starts_with("age1"), "{}", r.stdout);
    // The identity was written where --out said, for the public key printed.
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.contains(&format!("# public key: {public}")), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("AGE-SECRET-KEY-1")),
        "no identity line in the key file"
    );
}
