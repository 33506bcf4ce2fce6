//! The clap tree walked whole: every argument documented, every flag with its `PGDR_*`
//! variable except the safety ones, and each flag only where it means something.

use clap::{CommandFactory, Parser};

use super::super::args::Cli;
use super::{context, Global};

/// Flags that confirm or weaken a safety check: command line only, on purpose (no env var),
/// so an exported variable never says yes for a person. README lists them.
const SAFETY_FLAGS: &[&str] = &[
    "yes",
    "confirm",
    "clean",
    "swap",
    "terminate",
    "roles",
    "allow-unsigned",
    "replace",
    "cascade",
    "no-verify",
    "release",
];

/// Variables whose names predate the rule (PGDR_ + the flag in upper snake case).
const LEGACY_ENV: &[(&str, &str)] = &[("trust-key", "PGDR_TRUST_KEYS")];

/// Every (command path, argument) of the tree, help and version left out.
fn all_args() -> Vec<(String, clap::Arg)> {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if id != "help" && id != "version" {
                out.push((path.to_string(), a.clone()));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, "pgdr", &mut out);
    out
}

/// `--json` is another helper's (cli-output makes it one global flag with its help and
/// variable); the per-command ones it replaces are left as they are here.
fn per_command_json(a: &clap::Arg) -> bool {
    a.get_id() == "json" && !a.is_global_set()
}

#[test]
fn every_argument_has_help() {
    let missing: Vec<String> = all_args()
        .into_iter()
        .filter(|(_, a)| a.get_help().is_none() && a.get_long_help().is_none())
        .filter(|(_, a)| !per_command_json(a))
        .map(|(p, a)| format!("{p}: {}", a.get_id()))
        .collect();
    assert!(missing.is_empty(), "arguments without help: {missing:#?}");
}

#[test]
fn every_flag_has_its_pgdr_variable_except_the_safety_flags() {
    let mut wrong = Vec::new();
    for (path, a) in all_args() {
        let Some(long) = a.get_long() else {
            continue; // a positional: given each time, no variable
        };
        if per_command_json(&a) {
            continue;
        }
        let env = a.get_env().map(|e| e.to_string_lossy().into_owned());
        let want = LEGACY_ENV
            .iter()
            .find(|(l, _)| *l == long)
            .map(|(_, e)| e.to_string())
            .unwrap_or_else(|| format!("PGDR_{}", long.to_uppercase().replace('-', "_")));
        match (SAFETY_FLAGS.contains(&long), env) {
            (true, Some(e)) => wrong.push(format!("{path} --{long}: safety flag with {e}")),
            (false, None) => wrong.push(format!("{path} --{long}: no variable ({want})")),
            (false, Some(e)) if e != want => {
                wrong.push(format!("{path} --{long}: {e}, want {want}"))
            }
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn variables_that_may_hold_a_password_are_never_shown_in_help() {
    // A connection URL may carry its password: `--help` must not print the variable's value.
    for (path, a) in all_args() {
        if matches!(a.get_long(), Some("source" | "target" | "admin-url")) {
            assert!(
                a.is_hide_env_values_set(),
                "{path} --{}",
                a.get_long().unwrap()
            );
        }
    }
}

#[test]
fn every_safety_flag_exists_somewhere() {
    // A renamed safety flag must not silently leave the list (and gain a variable).
    let longs: Vec<String> = all_args()
        .iter()
        .filter_map(|(_, a)| a.get_long().map(str::to_string))
        .collect();
    for f in SAFETY_FLAGS {
        assert!(
            longs.iter().any(|l| l == f),
            "--{f} is not a flag of any command"
        );
    }
}

#[test]
fn the_tree_is_consistent() {
    Cli::command().debug_assert();
}

fn parse(args: &[&str]) -> Result<Global, clap::Error> {
    let mut argv = vec!["pgdr"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).map(|c| context(&c))
}

#[test]
fn a_flag_a_command_does_not_take_is_a_usage_error_naming_it() {
    for (args, flag) in [
        (&["keygen", "--out", "k", "--repo", "/r"][..], "--repo"),
        (&["list", "--recipient", "age1x"], "--recipient"),
        (&["list", "--identity", "/id"], "--identity"),
        (
            &["keygen", "--out", "k", "--source", "postgres://h/db"],
            "--source",
        ),
        (&["daemon", "--allow-unsigned"], "--allow-unsigned"),
        (&["prune", "--signing-key", "/k"], "--signing-key"),
        (&["drill", "history", "--identity", "/id"], "--identity"),
        (&["status", "--metrics-file", "/m"], "--metrics-file"),
        (&["--repo", "/r", "list"], "--repo"),
    ] {
        let e = parse(args).expect_err(&format!("{args:?} was accepted"));
        assert_eq!(
            e.kind(),
            clap::error::ErrorKind::UnknownArgument,
            "{args:?}"
        );
        assert!(e.to_string().contains(flag), "{args:?}: {e}");
    }
}

#[test]
fn each_command_gets_the_values_of_the_groups_it_takes() {
    let g = parse(&[
        "backup",
        "--repo",
        "/r",
        "--database",
        "app",
        "--source",
        "postgres://h/app",
        "--recipient",
        "age1a,age1b",
        "--identity",
        "/id1",
        "--identity",
        "/id2",
        "--signing-key",
        "/sk",
        "--trust-key",
        "RWQ1",
        "--allow-unsigned",
        "--metrics-file",
        "/m.prom",
        "-vv",
        "--quiet",
    ])
    .unwrap();
    assert_eq!(g.repo.as_deref(), Some("/r"));
    assert_eq!(g.database.as_deref(), Some("app"));
    assert_eq!(g.source.as_deref(), Some("postgres://h/app"));
    assert_eq!(g.recipients, ["age1a", "age1b"]);
    assert_eq!(
        g.identities,
        [std::path::Path::new("/id1"), "/id2".as_ref()]
    );
    assert_eq!(g.signing_key.as_deref(), Some("/sk".as_ref()));
    assert_eq!(g.trust_keys, ["RWQ1"]);
    assert!(g.allow_unsigned && g.quiet);
    assert_eq!(g.verbose, 2);
    assert_eq!(g.metrics_file.as_deref(), Some("/m.prom".as_ref()));

    // A subcommand of a group takes its own flags, placed after it.
    let g = parse(&["drill", "history", "--repo", "/r", "--database", "app"]).unwrap();
    assert_eq!(
        (g.repo.as_deref(), g.database.as_deref()),
        (Some("/r"), Some("app"))
    );
    let g = parse(&["capture", "check", "--repo", "/r", "--identity", "/id"]).unwrap();
    assert_eq!(g.identities, [std::path::Path::new("/id")]);
    assert!(g.source.is_none() && g.recipients.is_empty());
    // Restore reads the source: restoring onto it asks for --confirm (plan::is_source).
    let g = parse(&[
        "restore",
        "--target",
        "postgres://h/app",
        "--source",
        "postgres://h/app",
    ]);
    assert_eq!(g.unwrap().source.as_deref(), Some("postgres://h/app"));
    // The global flags anywhere.
    let g = parse(&["--config", "/c.toml", "list", "--log-format", "json"]).unwrap();
    assert_eq!(g.config.as_deref(), Some("/c.toml".as_ref()));
    assert_eq!(g.log_format, super::LogFormat::Json);
}
