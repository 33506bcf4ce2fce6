//! A drill's restore and its proof: the restore onto the scratch database, the fingerprint and
//! roles comparison, the smoke checks, and naming the damage when a stored object no longer
//! matches its manifest.

use super::*;

/// Steps 3 to 5: the restore (globals, create, then fetch, decrypt, decompress and
/// pg_restore streamed together, setting values and comments revealed first), then the proof
/// and the smoke checks. Returns the restore's outcome and whether the proof passed.
pub(super) async fn restore_and_prove(
    catalog: &Catalog,
    m: &mut Manifest,
    ids: Identities,
    sc: &Scratch,
    (checks, point): (&[spec::Check], Option<&restore::point::PointPlan>),
    rec: &mut DrillRecord,
    timer: &mut PhaseTimer,
) -> (Result<restore::EngineReport>, bool) {
    let mut restored = match crate::restore::sensitive::reveal(catalog, m, ids.clone()).await {
        Ok(full) => {
            *m = full;
            restore::restore_into(catalog, m, ids.clone(), &sc.target, timer).await
        }
        Err(e) => Err(e),
    };
    let mut proven = false;
    match &mut restored {
        Err(e) => {
            timer.done("failed");
            rec.failures.push(format!("restore failed: {}", e.message));
            if e.kind == Kind::Corrupt {
                // Name the damage precisely when a stored object no longer matches.
                rec.failures.extend(damaged_objects(catalog, m).await);
            }
            rec.checks = not_run(checks, "the restore failed");
        }
        Ok(report) => {
            proven = prove(sc, m, report, rec, timer).await;
            if let Some(p) = point.filter(|_| proven) {
                // The anchor is proven; now the point, timed as its own RTO phase.
                proven = super::point::replay(catalog, ids, p, sc, m, rec).await;
                timer.done("replay");
            }
            smoke_checks(sc, checks, rec, timer).await;
        }
    }
    (restored, proven)
}

/// Step 4 on the restored copy: the fingerprint and roles compared with the backup's.
/// Whether the copy is proven equal.
async fn prove(
    sc: &Scratch,
    m: &Manifest,
    report: &mut restore::EngineReport,
    rec: &mut DrillRecord,
    timer: &mut PhaseTimer,
) -> bool {
    let mut proven = false;
    // 4. Fingerprint and roles: the restored copy is what the backup says it holds.
    match verify::compare_scratch(&sc.target, m, report).await {
        Ok(d) => {
            if !d.is_empty() {
                rec.failures.push(format!(
                    "fingerprint: {} difference(s) between the backup and the restored copy",
                    d.len()
                ));
            }
            proven = d.is_empty();
            rec.differences = d;
        }
        Err(e) => rec.failures.push(format!(
            "fingerprint comparison could not run: {}",
            e.message
        )),
    }
    timer.done("compare");
    proven
}

/// Step 5: the drill's smoke checks (after the replay, for a point).
async fn smoke_checks(
    sc: &Scratch,
    checks: &[spec::Check],
    rec: &mut DrillRecord,
    timer: &mut PhaseTimer,
) {
    let restored_db = sc.target.database();
    rec.scratch_server_version = server_version(&restored_db).await;
    for c in checks {
        let r = run_check(&restored_db, c).await;
        if !r.passed {
            rec.failures.push(format!(
                "smoke check '{}': {}",
                r.name,
                r.message.as_deref().unwrap_or("failed")
            ));
        }
        rec.checks.push(r);
    }
    timer.done("checks");
}

/// Objects of the backup whose stored bytes no longer match the manifest's sha256.
async fn damaged_objects(catalog: &Catalog, m: &Manifest) -> Vec<String> {
    use futures::StreamExt;
    use sha2::{Digest, Sha256};
    let mut out = Vec::new();
    for o in &m.objects {
        let key = crate::catalog::Key::object(&m.database, &m.id, &o.file);
        let Ok(mut st) = catalog.get_object(&key).await else {
            out.push(format!("object {}: missing from the repository", o.file));
            continue;
        };
        let mut h = Sha256::new();
        let mut ok = true;
        while let Some(c) = st.next().await {
            match c {
                Ok(c) => h.update(&c),
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        let got = hex::encode(h.finalize());
        if ok && got != o.sha256_stored {
            out.push(format!(
                "object {}: sha256 mismatch (manifest {}..., stored {}...): the stored object is damaged",
                o.file,
                &o.sha256_stored[..12.min(o.sha256_stored.len())],
                &got[..12]
            ));
        }
    }
    out
}
