//! Rendering of the repository's contents: the backup list, a manifest, verification records.

use crate::catalog::labels::KeepRule;
use crate::catalog::{Entry, Listed, Manifest};
use crate::progress::human_bytes;

pub(super) fn render_verifications(records: &[crate::catalog::VerificationRecord], json: bool) {
    use crate::catalog::records::{Outcome, VerifyMode};
    if json {
        println!("{}", serde_json::to_string_pretty(records).expect("json"));
    } else if records.is_empty() {
        println!("nothing to verify");
    }
    for r in records {
        let secs = (r.finished_at - r.started_at).num_milliseconds() as f64 / 1000.0;
        let mode = match r.mode {
            VerifyMode::Quick => "quick",
            VerifyMode::Full => "full",
            VerifyMode::Chain => "chain: previous backup + replayed changes",
        };
        match r.outcome {
            Outcome::Passed if !json => println!(
                "backup {} of '{}': verified ({mode}) in {secs:.1}s",
                r.backup_id, r.database
            ),
            Outcome::Failed if !json => {
                println!(
                    "backup {} of '{}': FAILED verification ({mode}), {} difference(s):",
                    r.backup_id,
                    r.database,
                    r.differences.len()
                );
                for d in &r.differences {
                    println!("  {d}");
                }
            }
            Outcome::Error => eprintln!(
                "pgdr: error: backup {} of '{}': could not verify: {}",
                r.backup_id,
                r.database,
                r.error.as_deref().unwrap_or("")
            ),
            _ => {}
        }
    }
}

/// `pgdr verify`'s output: the records and, for databases with capture, the capture check.
/// JSON: the records array as before; with capture checks, `{"verifications": [...],
/// "capture_checks": [...]}`.
pub(crate) fn render_verify_run(
    records: &[crate::catalog::VerificationRecord],
    captures: &[crate::capture::check::CheckReport],
    json: bool,
) {
    if json && !captures.is_empty() {
        let v = serde_json::json!({ "verifications": records, "capture_checks": captures });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return;
    }
    render_verifications(records, json);
    for c in captures.iter().filter(|_| !json) {
        let head = match (c.from, c.until) {
            (Some(f), Some(u)) => format!("{} segment(s), {f} to {u}", c.segments),
            _ => "no stored segments".to_string(),
        };
        if c.ok() {
            println!("capture of '{}': complete ({head})", c.database);
            continue;
        }
        println!("capture of '{}': NOT COMPLETE ({head}):", c.database);
        for g in &c.gaps {
            println!(
                "  GAP {} to {}: {}{}",
                g.from,
                g.to,
                g.cause,
                g.detail
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            );
        }
        for p in &c.problems {
            println!("  PROBLEM segment {}: {}", p.start, p.problem);
        }
    }
}

pub(super) fn backup_line(m: &Manifest) -> String {
    let dump = m.object("dump");
    format!(
        "backup {}{} of '{}' committed: snapshot {}, dump {} → stored {} in {:.1}s",
        m.id,
        m.label
            .as_ref()
            .map(|l| format!(" ('{l}')"))
            .unwrap_or_default(),
        m.database,
        m.snapshot.time.format("%Y-%m-%d %H:%M:%S%.3f UTC"),
        human_bytes(dump.map_or(0, |d| d.raw_bytes)),
        human_bytes(m.objects.iter().map(|o| o.stored_bytes).sum()),
        m.duration_seconds()
    )
}

/// "passed (full, 2026-11-26 03:10)" / "unverified"
pub(super) fn verification_text(v: Option<&crate::catalog::VerificationRecord>) -> String {
    match v {
        None => "unverified".into(),
        Some(r) => format!(
            "{} ({}, {})",
            serde_json::to_value(r.outcome)
                .expect("enum")
                .as_str()
                .unwrap_or("?"),
            serde_json::to_value(r.mode)
                .expect("enum")
                .as_str()
                .unwrap_or("?"),
            r.finished_at.format("%Y-%m-%d %H:%M")
        ),
    }
}

pub(super) fn listed_json(l: &Listed) -> serde_json::Value {
    match l {
        Listed::Ok(e) => {
            let m = &e.manifest;
            serde_json::json!({
                "id": m.id,
                "database": m.database,
                "snapshot_time": m.snapshot.time,
                "started_at": m.started_at,
                "duration_seconds": m.duration_seconds(),
                "raw_bytes": m.object("dump").map_or(0, |d| d.raw_bytes),
                "stored_bytes": m.objects.iter().map(|o| o.stored_bytes).sum::<u64>(),
                "verification": e.verification.as_ref().map(|v| serde_json::json!({
                    "outcome": v.outcome, "mode": v.mode, "finished_at": v.finished_at,
                    "differences": v.differences.len(),
                })),
                "label": m.label,
                "note": m.note,
                "keep": keep_json(e),
                // Who signed the manifest (its key id), or "unsigned".
                "signer": e.signer.as_deref().unwrap_or("unsigned"),
                "status": "ok",
            })
        }
        Listed::Damaged {
            database,
            id,
            error,
        } => serde_json::json!({
            "id": id, "database": database, "status": "damaged", "error": error,
        }),
    }
}

pub(super) fn render_list(listed: &[Listed]) -> String {
    if listed.is_empty() {
        return "no backups\n".into();
    }
    let mut s = format!(
        "{:<22} {:<16} {:<20} {:>12} {:>12} {:>8}  {:<28} {}\n",
        "ID", "DATABASE", "SNAPSHOT (UTC)", "DUMP", "STORED", "SECONDS", "VERIFIED", "LABEL"
    );
    for l in listed {
        match l {
            Listed::Ok(e) => {
                let m = &e.manifest;
                s.push_str(
                    format!(
                        "{:<22} {:<16} {:<20} {:>12} {:>12} {:>8.1}  {:<28} {}",
                        m.id.as_str(),
                        m.database,
                        m.snapshot.time.format("%Y-%m-%d %H:%M:%S"),
                        human_bytes(m.object("dump").map_or(0, |d| d.raw_bytes)),
                        human_bytes(m.objects.iter().map(|o| o.stored_bytes).sum()),
                        m.duration_seconds(),
                        verification_text(e.verification.as_ref()),
                        label_text(e)
                    )
                    .trim_end(),
                );
                s.push('\n');
            }
            Listed::Damaged {
                database,
                id,
                error,
            } => s.push_str(&format!(
                "{:<22} {:<16} DAMAGED: {error}\n",
                id.as_str(),
                database
            )),
        }
    }
    s
}

/// "pre-migration, keep-forever" / "until 2027-01-04 03:40 UTC" / "".
fn label_text(e: &Entry) -> String {
    let keep = e.keep_rule().map(|r| r.describe());
    [e.manifest.label.clone(), keep]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
}

/// The keep rule in force and where it comes from, for `list --json` and `show --json`.
pub(super) fn keep_json(e: &Entry) -> serde_json::Value {
    let Some(rule) = e.keep_rule() else {
        return serde_json::Value::Null;
    };
    let (forever, until) = match rule {
        KeepRule::Forever => (true, None),
        KeepRule::Until(t) => (false, Some(t)),
    };
    serde_json::json!({
        "forever": forever,
        "until": until,
        "from": if e.keep.is_some() { "keep record" } else { "backup" },
    })
}

/// `show`: a manifest and what is known beside it (keep rule in force).
pub(super) fn render_entry(e: &Entry) -> String {
    let m = &e.manifest;
    let mut s = render_manifest(m);
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<18} {v}\n"));
    if let Some(l) = &m.label {
        line("label", l.clone());
    }
    if let Some(n) = &m.note {
        line("note", n.escape_debug().to_string());
    }
    match (e.keep_rule(), &e.keep) {
        (None, Some(_)) => line("keep", "released (retention decides)".into()),
        (None, None) => {}
        (Some(r), from) => line(
            "keep",
            format!(
                "{} (set by {})",
                r.describe(),
                if from.is_some() {
                    "pgdr keep"
                } else {
                    "the backup"
                }
            ),
        ),
    }
    s
}

pub(super) fn render_manifest(m: &Manifest) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<18} {v}\n"));
    line("id", m.id.to_string());
    line("database", m.database.clone());
    line(
        "snapshot",
        format!("{} ({})", m.snapshot.time.to_rfc3339(), m.snapshot.method),
    );
    line("started", m.started_at.to_rfc3339());
    line(
        "finished",
        format!(
            "{} ({:.1}s)",
            m.finished_at.to_rfc3339(),
            m.duration_seconds()
        ),
    );
    line(
        "server",
        format!(
            "PostgreSQL {} (system id {}), owner {}, encoding {}",
            m.source.server_version,
            m.source.system_identifier.as_deref().unwrap_or("unknown"),
            m.source.database_owner,
            m.source.encoding
        ),
    );
    line(
        "pg_dump",
        format!(
            "{} {}",
            m.tools.pg_dump_version,
            m.tools.pg_dump_args.join(" ")
        ),
    );
    line(
        "globals",
        format!(
            "{:?} ({})",
            m.globals_mode,
            m.tools.pg_dumpall_args.join(" ")
        ),
    );
    line(
        "codec",
        format!(
            "zstd level {} threads {}, {}",
            m.codec.zstd.level, m.codec.zstd.threads, m.codec.encryption
        ),
    );
    line("recipients", m.codec.recipients.join(", "));
    for p in &m.phases {
        line(&format!("phase {}", p.name), format!("{:.2}s", p.seconds));
    }
    for o in &m.objects {
        line(
            &format!("object {}", o.name),
            format!(
                "{}: {} raw, {} compressed, {} stored; sha256 {}",
                o.file,
                human_bytes(o.raw_bytes),
                human_bytes(o.compressed_bytes),
                human_bytes(o.stored_bytes),
                o.sha256_stored
            ),
        );
    }
    line(
        "fingerprint",
        if m.fingerprint.is_some() {
            "recorded".into()
        } else {
            "none".into()
        },
    );
    s
}

/// `show`'s signature line: by which key, and whether this host trusts it.
pub(super) fn signed_text(s: &crate::catalog::signatures::SignedBy) -> String {
    match (&s.key_id, s.trusted) {
        (None, _) => "no (unsigned)".into(),
        (Some(k), true) => format!("yes, by key {k} (trusted)"),
        (Some(k), false) => format!("yes, by key {k} (not a trust key of this host)"),
    }
}
