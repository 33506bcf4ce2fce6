//! Sequence samples in the stored stream: `nextval` on the source, then the sample found in
//! the stored segments (decrypted and decoded here with pgdr's segment reader and pgoutput
//! decoder) with the values the source's own `pg_sequences` shows.

use std::time::Duration;

use pgdr::capture::pgoutput::{decode, Message};
use pgdr::capture::segment::read_all;

use crate::capture_run::{start_runner_with, stop_runner, world};
use crate::common::*;

/// Every `pgdr.sequences` sample in the stored segments: (LSN, JSON, recorded as pgdr's own).
pub fn stored_samples(w: &World) -> Vec<(u64, serde_json::Value, bool)> {
    let ids = pgdr::codec::load_identities(&w.identity).unwrap();
    let dir = w.dir.path().join("repo/app/capture/segments");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let entry: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let ours: Vec<u64> = entry["pgdr_messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| crate::capture_run::lsn(l.as_str().unwrap()))
            .collect();
        let object = path.with_extension("seg.zst.age");
        let mut plain = Vec::new();
        pgdr::codec::decode(std::fs::File::open(&object).unwrap(), &mut plain, &ids).unwrap();
        let (_, frames, _) = read_all(&plain[..]).unwrap();
        for f in frames {
            if let Ok(Message::LogicalMessage {
                lsn,
                prefix,
                content,
                ..
            }) = decode(&f.data)
            {
                if prefix == "pgdr.sequences" {
                    let v = serde_json::from_slice(&content).unwrap();
                    out.push((lsn.0, v, ours.contains(&lsn.0)));
                }
            }
        }
    }
    out.sort_by_key(|s| s.0);
    out
}

#[test]
fn sequence_samples_carry_the_sources_values_into_the_stored_stream() {
    let w = world();
    w.pg.psql(
        "app",
        "CREATE SEQUENCE s; CREATE SEQUENCE fresh START 100; CREATE SCHEMA other;
         CREATE SEQUENCE other.\"Odd\" INCREMENT 5;",
    );
    w.run(&["capture", "enable"]).ok();
    w.pg.psql(
        "app",
        "SELECT nextval('s') FROM generate_series(1, 41); SELECT nextval('other.\"Odd\"');
         SELECT nextval('other.\"Odd\"');",
    );
    let runner = start_runner_with(&w, &["--sequence-sample", "1s"]);
    std::thread::sleep(Duration::from_secs(4));
    let report = stop_runner(runner);
    assert!(
        report["sequence_samples"].as_u64().unwrap() >= 2,
        "{report:#}"
    );
    let samples = stored_samples(&w);
    assert!(samples.len() >= 2, "{samples:?}");
    assert!(
        samples.iter().all(|s| s.2),
        "a sample not recorded as pgdr's own: {samples:?}"
    );
    let (_, newest, _) = samples.last().unwrap();
    assert_eq!(newest["v"], 1);
    assert!(
        newest["sampled_at"].as_str().unwrap().ends_with('Z'),
        "{newest}"
    );
    let find = |schema: &str, name: &str| {
        newest["sequences"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["schema"] == schema && s["name"] == name)
            .unwrap_or_else(|| panic!("{schema}.{name} not in {newest}"))
            .clone()
    };
    let s = find("public", "s");
    assert_eq!(
        (s["last_value"].as_i64(), s["is_called"].as_bool()),
        (Some(41), Some(true))
    );
    let f = find("public", "fresh");
    assert_eq!(
        (f["last_value"].as_i64(), f["is_called"].as_bool()),
        (Some(100), Some(false))
    );
    let o = find("other", "Odd");
    assert_eq!(o["last_value"].as_i64(), Some(6));
    // The source agrees (the oracle is the server, not pgdr's sample).
    assert_eq!(w.pg.psql("app", "SELECT last_value FROM s"), "41");
    // No foreign message: every sample came back at the position pgdr wrote it.
    assert_eq!(
        report["foreign_messages"],
        serde_json::json!([]),
        "{report:#}"
    );
}
