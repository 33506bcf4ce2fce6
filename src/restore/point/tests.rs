use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::catalog::segments::{ClosedBy, Commit, Digest, GapCause, SegmentEntry};

fn t0() -> DateTime<Utc> {
    "2026-12-01T10:00:00Z".parse().unwrap()
}

fn seg(start: u64, end: u64, first: Option<(u64, i64)>, last: Option<(u64, i64)>) -> SegmentEntry {
    let c = |(l, s): (u64, i64)| Commit {
        lsn: Lsn(l),
        time: t0() + Duration::seconds(s),
        xid: l as u32,
    };
    SegmentEntry {
        format_version: 1,
        database: "app".into(),
        segment_format: 1,
        start: Lsn(start),
        end: Lsn(end),
        first_commit: first.map(c),
        last_commit: last.map(c),
        transactions: 3,
        rows: Some(10),
        system_identifier: "1".into(),
        timeline: 1,
        plain: Digest {
            bytes: 0,
            sha256: String::new(),
        },
        stored: Digest {
            bytes: 0,
            sha256: String::new(),
        },
        relations: Vec::new(),
        closed_by: ClosedBy::Age,
        schema_change: None,
        pgdr_messages: Vec::new(),
        foreign_messages: Vec::new(),
        written_at: t0(),
        rekeyed: None,
    }
}

fn anchor(id: &str, cut: u64, s: i64) -> Anchor {
    Anchor {
        id: id.into(),
        cut: Lsn(cut),
        time: t0() + Duration::seconds(s),
    }
}

fn chain() -> Vec<SegmentEntry> {
    vec![
        seg(100, 200, Some((150, 1)), Some((190, 5))),
        seg(200, 300, Some((250, 10)), Some((290, 15))),
        seg(300, 400, Some((350, 20)), Some((390, 25))),
    ]
}

#[test]
fn the_newest_anchor_before_the_point_and_the_segments_from_its_cut() {
    let anchors = [anchor("a", 120, 0), anchor("b", 260, 12)];
    let p = choose("x", Target::Lsn(Lsn(280)), &anchors, &chain(), &[]).unwrap();
    assert_eq!(p.anchor.id, "b");
    assert_eq!(p.segment_starts, vec![Lsn(200)]);
    let p = choose("x", Target::Lsn(Lsn(255)), &anchors, &chain(), &[]).unwrap();
    assert_eq!(p.anchor.id, "a");
    assert_eq!(p.segment_starts, vec![Lsn(100), Lsn(200)]);
    let p = choose("x", Target::End, &anchors, &chain(), &[]).unwrap();
    assert_eq!((p.anchor.id.as_str(), p.segment_starts.len()), ("b", 2));
    let p = choose(
        "x",
        Target::Time(t0() + Duration::seconds(17)),
        &anchors,
        &chain(),
        &[],
    )
    .unwrap();
    // A segment whose first commit is after the time is not read.
    assert_eq!(p.segment_starts, vec![Lsn(200)]);
    let t = Target::Time(t0() + Duration::seconds(22));
    let p = choose("x", t, &anchors, &chain(), &[]).unwrap();
    assert_eq!(p.segment_starts, vec![Lsn(200), Lsn(300)]);
    let p = choose(
        "x",
        Target::Time(t0() + Duration::seconds(15)),
        &anchors,
        &chain(),
        &[],
    )
    .unwrap();
    assert_eq!(p.segment_starts, vec![Lsn(200)]);
}

#[test]
fn points_outside_the_window_are_refused_with_it() {
    let anchors = [anchor("a", 120, 0)];
    let e = choose("LSN 0/10", Target::Lsn(Lsn(110)), &anchors, &chain(), &[]).unwrap_err();
    assert!(
        e.message.contains("before the oldest anchored backup"),
        "{}",
        e.message
    );
    assert!(
        e.hints.iter().any(|h| h.contains("cover 0/78")),
        "{:?}",
        e.hints
    );
    let e = choose("LSN", Target::Lsn(Lsn(400)), &anchors, &chain(), &[]).unwrap_err();
    assert!(
        e.message.contains("after the newest stored change"),
        "{}",
        e.message
    );
    let e = choose(
        "t",
        Target::Time(t0() + Duration::seconds(26)),
        &anchors,
        &chain(),
        &[],
    )
    .unwrap_err();
    assert!(
        e.message.contains("after the newest stored commit"),
        "{}",
        e.message
    );
    let e = choose("x", Target::End, &[], &chain(), &[]).unwrap_err();
    assert!(e.message.contains("no anchored backup"), "{}", e.message);
}

#[test]
fn a_gap_or_a_hole_between_the_cut_and_the_point_is_refused_by_name() {
    let anchors = [anchor("a", 120, 0), anchor("b", 330, 22)];
    let gap = Gap {
        format_version: 1,
        database: "app".into(),
        from: Lsn(300),
        to: Lsn(320),
        cause: GapCause::SlotLost,
        detail: None,
        detected_at: t0(),
    };
    let mut segs = chain();
    segs[2].start = Lsn(320);
    let e = choose(
        "x",
        Target::Lsn(Lsn(325)),
        &anchors,
        &segs,
        std::slice::from_ref(&gap),
    )
    .unwrap_err();
    assert!(
        e.message.contains("gap from 0/12C to 0/140 (slot-lost"),
        "{}",
        e.message
    );
    assert!(
        e.hints.iter().any(|h| h.contains("backup b")),
        "{:?}",
        e.hints
    );
    // Without the record, the hole in the chain itself refuses.
    let e = choose("x", Target::Lsn(Lsn(325)), &anchors, &segs, &[]).unwrap_err();
    assert!(e.message.contains("hole"), "{}", e.message);
    // Before the gap, or from the anchor after it: reachable.
    choose(
        "x",
        Target::Lsn(Lsn(250)),
        &anchors,
        &segs,
        std::slice::from_ref(&gap),
    )
    .unwrap();
    choose("x", Target::Lsn(Lsn(350)), &anchors, &segs, &[gap]).unwrap();
}

#[test]
fn the_plan_counts_transactions_and_rows_and_estimates_at_the_recorded_rate() {
    let anchors = [anchor("a", 120, 0)];
    let p = choose("x", Target::End, &anchors, &chain(), &[]).unwrap();
    assert_eq!((p.transactions_at_most, p.rows_at_most), (9, Some(30)));
    assert_eq!(p.estimated_replay_seconds, None);
    let rate = |rows, txns| crate::catalog::replay_rate::ReplayRate {
        rows_per_second: rows,
        transactions_per_second: txns,
        record: "app/restores/x.json".into(),
        at: t0(),
    };
    let est = p.clone().with_rate(Some(rate(15.0, 3.0)));
    assert_eq!(est.estimated_replay_seconds, Some(2.0));
    // An entry from before rows were counted: the count is unknown, the estimate uses
    // transactions.
    let mut old = chain();
    old[1].rows = None;
    let p = choose("x", Target::End, &anchors, &old, &[]).unwrap();
    assert_eq!(p.rows_at_most, None);
    let est = p.with_rate(Some(rate(15.0, 3.0)));
    assert_eq!(est.estimated_replay_seconds, Some(3.0));
}
