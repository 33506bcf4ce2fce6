use super::*;

/// A real entry (the golden file) moved to [start, end).
fn seg(start: u64, end: u64) -> ListedSegment {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/format/segment-entry-v1.json"
    ))
    .unwrap();
    let mut e: SegmentEntry = serde_json::from_str(&text).unwrap();
    e.start = Lsn(start);
    e.end = Lsn(end);
    ListedSegment::Ok(Box::new(e))
}

#[test]
fn segments_between_the_cuts_are_picked_in_order() {
    let got = between(
        vec![seg(300, 400), seg(0, 100), seg(100, 200), seg(200, 300)],
        Lsn(150),
        Lsn(250),
    )
    .unwrap();
    let starts: Vec<u64> = got.iter().map(|e| e.start.0).collect();
    assert_eq!(starts, vec![100, 200]);
}

#[test]
fn a_hole_or_a_short_stream_is_an_error_not_a_shorter_proof() {
    let hole = between(vec![seg(100, 200), seg(250, 300)], Lsn(150), Lsn(280)).unwrap_err();
    assert!(
        hole.message.contains("from 0/C8 to 0/FA"),
        "{}",
        hole.message
    );
    let short = between(vec![seg(100, 200)], Lsn(150), Lsn(280)).unwrap_err();
    assert!(short.message.contains("do not cover"), "{}", short.message);
    let late = between(vec![seg(160, 300)], Lsn(150), Lsn(280)).unwrap_err();
    assert!(late.message.contains("do not cover"), "{}", late.message);
}
