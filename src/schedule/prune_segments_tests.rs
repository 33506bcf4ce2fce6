//! Capture retention on a memory store: the stream is kept from the oldest anchored backup
//! the rules keep; a backup kept only by an in-use mark keeps itself, not the stream after it.

use chrono::Duration;

use super::*;
use crate::catalog::inuse::InUseMark;
use crate::catalog::keys::IN_USE_DIR;
use crate::catalog::segments::{Gap, GapCause, ListedSegment, SegmentEntry};
use crate::catalog::testkit::{at, manifest, settings, Repo};
use crate::source::Lsn;

const NOW: &str = "2026-03-10T12:00:00Z";
const SEG: u64 = 0x1000;

fn entry(start: u64) -> SegmentEntry {
    let golden = format!(
        "{}/tests/fixtures/format/segment-entry-v1.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut e: SegmentEntry = serde_json::from_slice(&std::fs::read(golden).unwrap()).unwrap();
    e.start = Lsn(start);
    e.end = Lsn(start + SEG);
    e
}

/// Ten contiguous segments from 0x100, each with its object; an object without an entry
/// before them; a gap before them and one inside.
async fn stream(r: &Repo) {
    for k in 0..10 {
        let e = entry(0x100 + k * SEG);
        r.put(&e.object_key().to_string(), b"seg").await;
        r.catalog.commit_segment(&e).await.unwrap();
    }
    let stray = entry(0x50);
    r.put(&stray.object_key().to_string(), b"interrupted").await;
    for (from, to) in [(0x10, 0x50), (0x5100, 0x5100)] {
        r.catalog
            .write_gap(&Gap {
                format_version: 1,
                database: "app".into(),
                from: Lsn(from),
                to: Lsn(to),
                cause: GapCause::SlotMissing,
                detail: None,
                detected_at: at(NOW),
            })
            .await
            .unwrap();
    }
}

/// Five daily anchored backups, cuts in the middle of segments 1..5.
async fn anchored(r: &Repo) -> Vec<BackupId> {
    let mut ids = Vec::new();
    for d in 0..5 {
        let mut m = manifest("app", at(NOW) - Duration::days(4 - d) - Duration::hours(10));
        m.snapshot.cut_lsn = Some(Lsn(0x1800 + d as u64 * SEG));
        r.store.set_now(m.snapshot.time);
        r.catalog.commit(&m).await.unwrap();
        ids.push(m.id);
    }
    ids
}

async fn starts(r: &Repo) -> Vec<u64> {
    r.catalog
        .segments("app")
        .await
        .unwrap()
        .iter()
        .map(|s| match s {
            ListedSegment::Ok(e) => e.start.0,
            ListedSegment::Damaged { start, error } => panic!("{start}: {error}"),
        })
        .collect()
}

#[tokio::test]
async fn the_stream_is_kept_from_the_oldest_kept_anchor_and_an_in_use_backup_keeps_only_itself() {
    let r = Repo::new();
    stream(&r).await;
    let ids = anchored(&r).await;
    // The oldest backup is being restored: kept, but only itself.
    let mark = serde_json::to_vec(&InUseMark {
        purpose: "restore".into(),
        host: "h".into(),
        pid: 1,
        since: at(NOW),
        heartbeat: at(NOW),
    })
    .unwrap();
    r.put(
        &format!("app/{IN_USE_DIR}/{}/restore-1.json", ids[0]),
        &mark,
    )
    .await;
    let s = settings(
        "[retention]\nkeep_last = 3\n[[database]]\nname = \"app\"\nurl = \"postgres://u@h/app\"\n",
    );
    let p = plan(&r.catalog, &s, &["app".into()], at(NOW))
        .await
        .unwrap();
    let db = &p.databases[0];
    assert!(db.backups[0].keep, "in use");
    let c = &db.capture;
    // keep_last 3 keeps backups 2..4; the oldest of them cuts at 0x3800, inside the segment
    // from 0x3100: that segment and every later one stay.
    assert_eq!(c.anchor.as_ref(), Some(&ids[2]));
    assert_eq!(c.keep_from, Some(Lsn(0x3100)));
    assert_eq!(c.segments.len(), 3);
    assert!(c.segments.iter().all(|(_, o)| o.is_some()));
    assert_eq!(
        c.orphans.len(),
        1,
        "the object without an entry before the stream"
    );
    assert_eq!(c.gaps.len(), 1, "only the gap before the kept stream");

    let report = apply(&r.catalog, &p).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.removed_segments, 4);
    assert_eq!(report.removed_gaps, 1);
    let want: Vec<u64> = (3..10).map(|k| 0x100 + k * SEG).collect();
    assert_eq!(starts(&r).await, want);
    // Entries and objects alike: nothing of the removed segments is left in the store.
    let left: Vec<String> = r
        .catalog
        .objects("app")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|o| match o.key {
            Key::Segment { start, .. } => Some(start.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(left.len(), 7, "{left:?}");
    let gaps = r.catalog.gaps("app").await.unwrap();
    assert_eq!(gaps.iter().map(|g| g.from.0).collect::<Vec<_>>(), [0x5100]);

    // Again: nothing more to do.
    let p = plan(&r.catalog, &s, &["app".into()], at(NOW))
        .await
        .unwrap();
    assert!(p.databases[0].capture.segments.is_empty());
}

#[test]
fn without_a_kept_anchor_nothing_of_the_stream_goes() {
    let objects: Vec<crate::catalog::Stored> = vec![];
    let a = [segments::Anchor {
        id: crate::catalog::BackupId::from_time(at(NOW)),
        cut: Lsn(0x9000),
        kept_by_rules: false,
    }];
    let p = segments::plan(&a, &objects, &[]);
    assert_eq!(p.keep_from, None);
    assert!(p.segments.is_empty() && p.orphans.is_empty() && p.gaps.is_empty());
}

#[test]
fn both_objects_of_a_segment_a_rekey_left_are_removed_with_it() {
    let stored = |key: Key| crate::catalog::Stored {
        key,
        size: 1,
        modified: None,
    };
    let seg = |start: u64, tag: Option<&str>| {
        stored(Key::Segment {
            database: "app".into(),
            start: Lsn(start),
            tag: tag.map(str::to_string),
        })
    };
    let entry = |start: u64| {
        stored(Key::SegmentEntry {
            database: "app".into(),
            start: Lsn(start),
        })
    };
    // Segment 0x100 rekeyed, its old object still there (a rekey killed after its entry).
    let objects = vec![
        entry(0x100),
        seg(0x100, None),
        seg(0x100, Some("0123abcd")),
        entry(0x200),
        seg(0x200, None),
    ];
    let a = [segments::Anchor {
        id: crate::catalog::BackupId::from_time(at(NOW)),
        cut: Lsn(0x250),
        kept_by_rules: true,
    }];
    let p = segments::plan(&a, &objects, &[]);
    assert_eq!(p.segments.len(), 1);
    let mut gone: Vec<Key> = p.orphans.clone();
    gone.extend(p.segments[0].1.clone());
    gone.sort();
    assert_eq!(
        gone,
        vec![seg(0x100, None).key, seg(0x100, Some("0123abcd")).key]
    );
}
