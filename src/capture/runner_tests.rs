use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::*;
use crate::capture::check::check;
use crate::capture::fixtures::{recorded, workload_changes};
use crate::capture::read::read_segment;
use crate::catalog::segments::ListedSegment;
use crate::catalog::testkit::Repo;
use crate::config::Compression;

const DB: &str = "app";

/// What an ack saw: the position, and the segment entries then in the repository.
type Acks = Arc<Mutex<Vec<(Lsn, Vec<String>)>>>;

/// A change source that plays a script, then ends (or waits, when `hang`). At every ack it
/// notes which segment entries are already in the repository.
struct Scripted {
    script: VecDeque<(Duration, Change)>,
    acks: Acks,
    store: Arc<crate::store::memory::MemoryStore>,
    hang: bool,
}

impl ChangeSource for Scripted {
    async fn next(&mut self) -> Result<Option<Change>> {
        // Cancel-safe, as the runner requires: nothing is taken before the wait is over.
        if let Some((wait, _)) = self.script.front() {
            tokio::time::sleep(*wait).await;
        }
        match self.script.pop_front() {
            Some((_, c)) => Ok(Some(c)),
            None if self.hang => std::future::pending().await,
            None => Ok(None),
        }
    }

    fn ack(&mut self, durable: Lsn) {
        // The entry keys present at this moment (checked against the entries' ends later).
        let entries: Vec<String> = self
            .store
            .keys()
            .into_iter()
            .filter(|k| k.contains("/capture/segments/") && k.ends_with(".json"))
            .collect();
        self.acks.lock().unwrap().push((durable, entries));
    }
}

struct Beats(u64, Arc<Mutex<Vec<Lsn>>>);

impl Heartbeat for Beats {
    async fn emit(&mut self) -> Result<Lsn> {
        self.0 += 1;
        let l = Lsn(0xFFFF_0000 + self.0);
        self.1.lock().unwrap().push(l);
        Ok(l)
    }
}

struct World {
    repo: Repo,
    identity: age::x25519::Identity,
    acks: Acks,
    beats: Arc<Mutex<Vec<Lsn>>>,
}

impl World {
    fn new() -> World {
        World {
            repo: Repo::new(),
            identity: age::x25519::Identity::generate(),
            acks: Arc::default(),
            beats: Arc::default(),
        }
    }

    fn runner(
        &self,
        limits: Limits,
        script: Vec<(Duration, Change)>,
        start: Lsn,
        previous: Option<&SegmentEntry>,
    ) -> Runner<Scripted, Beats> {
        let target = Target {
            repo: self.repo.catalog.clone(),
            database: DB.into(),
            system_id: 7_300_000_000_000_000_001,
            timeline: 1,
            params: Arc::new(EncodeParams {
                compression: Compression {
                    level: 1,
                    threads: 0,
                },
                recipients: vec![self.identity.to_public()],
            }),
        };
        let source = Scripted {
            script: script.into(),
            acks: self.acks.clone(),
            store: self.repo.store.clone(),
            hang: false,
        };
        Runner::new(
            target,
            limits,
            source,
            Beats(0, self.beats.clone()),
            start,
            previous,
        )
    }

    async fn entries(&self) -> Vec<SegmentEntry> {
        self.repo
            .catalog
            .segments(DB)
            .await
            .unwrap()
            .into_iter()
            .map(|l| match l {
                ListedSegment::Ok(e) => *e,
                ListedSegment::Damaged { error, .. } => panic!("{error}"),
            })
            .collect()
    }

    /// The acknowledged positions, each checked to be the end of a segment whose entry was
    /// already written when it was acknowledged.
    async fn acks(&self) -> Vec<Lsn> {
        let entries = self.entries().await;
        let acks = self.acks.lock().unwrap().clone();
        for (lsn, present) in &acks {
            let e = entries
                .iter()
                .find(|e| e.end == *lsn)
                .expect("an acked segment");
            let key = crate::catalog::Key::SegmentEntry {
                database: DB.into(),
                start: e.start,
            }
            .to_string();
            assert!(
                present.contains(&key),
                "ack of {lsn} before its entry {key}"
            );
        }
        acks.into_iter().map(|(l, _)| l).collect()
    }

    fn ids(&self) -> Arc<Vec<age::x25519::Identity>> {
        Arc::new(vec![self.identity.clone()])
    }
}

fn now(changes: Vec<Change>) -> Vec<(Duration, Change)> {
    changes.into_iter().map(|c| (Duration::ZERO, c)).collect()
}

fn limits(max_bytes: u64) -> Limits {
    Limits {
        max_age: Duration::from_secs(3600),
        max_bytes,
        heartbeat_every: Duration::from_secs(3600),
        sequence_sample: Duration::from_secs(3600),
    }
}

/// The position the recorded stream starts at (its first Begin's LSN).
fn start() -> Lsn {
    recorded("pg15-workload")[0].lsn
}

fn never() -> impl Future<Output = ()> {
    std::future::pending()
}

#[tokio::test]
async fn one_segment_holds_the_recorded_stream_byte_for_byte() {
    let w = World::new();
    // Everything before the ALTER TABLE (a schema change closes a segment).
    let cut = workload_changes().len() - 8;
    let script = now(workload_changes()[..cut].to_vec());
    let rep = w
        .runner(limits(1 << 30), script, start(), None)
        .run(never())
        .await
        .unwrap();
    assert_eq!(rep.segments.len(), 1);
    let e = &w.entries().await[0];
    assert_eq!(e.transactions, 15);
    // The entry's row count is the stream's own: every Insert, Update and Delete in it.
    let rows = rec_rows(&workload_changes()[..cut]);
    assert!(rows > 0);
    assert_eq!(e.rows, Some(rows));
    assert_eq!(e.closed_by, ClosedBy::Stop);
    assert_eq!(e.start, start());
    let mut rec = recorded("pg15-workload");
    rec.truncate(cut);
    assert_eq!(
        e.end,
        rec.last().unwrap().lsn,
        "ends at the last Commit's end"
    );
    assert_eq!(w.acks().await, vec![e.end]);
    let names: Vec<&str> = e.relations.iter().map(|r| r.name.as_str()).collect();
    for n in ["parent", "child", "nokey", "big", "seq_t", "pt"] {
        assert!(names.contains(&n), "{names:?}");
    }
    // Read back through the pipeline: the frames are the recorded messages, in order.
    let (_, plain) = crate::pipeline::download(
        &w.repo.catalog,
        &e.object_key(),
        Some(e.stored.sha256.clone()),
        w.ids(),
        Vec::new(),
    )
    .await
    .unwrap();
    let (h, frames, end) = crate::capture::segment::read_all(&plain[..]).unwrap();
    assert_eq!(
        (h.start, h.system_id, end),
        (e.start, 7_300_000_000_000_000_001, e.end)
    );
    let got: Vec<&[u8]> = frames.iter().map(|f| &f.data[..]).collect();
    let want: Vec<&[u8]> = rec.iter().map(|r| &r.data[..]).collect();
    assert_eq!(got, want);
    // The unrecorded pgdr messages are foreign (the mark and the heartbeat of the script).
    assert_eq!(e.foreign_messages.len(), 2);
    assert!(e.pgdr_messages.is_empty());
}

#[tokio::test]
async fn small_segments_close_at_size_decode_on_their_own_and_ack_in_order() {
    let w = World::new();
    let rep = w
        .runner(limits(200), now(workload_changes()), start(), None)
        .run(never())
        .await
        .unwrap();
    let entries = w.entries().await;
    assert!(entries.len() >= 15, "{}", entries.len());
    assert_eq!(rep.segments.len(), entries.len());
    for pair in entries.windows(2) {
        assert_eq!(pair[0].end, pair[1].start, "contiguous");
    }
    let acks = w.acks().await;
    assert_eq!(acks, entries.iter().map(|e| e.end).collect::<Vec<_>>());
    assert!(entries.iter().any(|e| e.closed_by == ClosedBy::Size));
    // Each segment re-emits what it uses: the reader finds no change before its Relation.
    let mut txns = 0;
    for e in &entries {
        let c = read_segment(&w.repo.catalog, e, w.ids()).await.unwrap();
        assert!(c.problems.is_empty(), "{}: {:?}", e.start, c.problems);
        txns += c.transactions.len();
    }
    assert_eq!(txns, 17);
    let report = check(&w.repo.catalog, DB, w.ids(), true).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.transactions, 17);
}

#[tokio::test]
async fn a_changed_relation_closes_the_segment_before_its_transaction_a_repeated_one_does_not() {
    let w = World::new();
    w.runner(limits(1 << 30), now(workload_changes()), start(), None)
        .run(never())
        .await
        .unwrap();
    let entries = w.entries().await;
    // The stream re-sends parent, child and nokey unchanged after the TRUNCATEs, then nokey
    // with one more column (ALTER TABLE ... ADD COLUMN): one close, before that transaction.
    assert_eq!(entries.len(), 2, "{entries:#?}");
    assert_eq!(entries[0].closed_by, ClosedBy::SchemaChange);
    let sc = entries[0].schema_change.as_ref().unwrap();
    assert_eq!((sc.name.as_str(), sc.inside), ("nokey", false));
    assert_eq!(entries[1].start, entries[0].end);
    assert!(entries[1].first_commit.as_ref().unwrap().lsn >= sc.lsn);
    let c = read_segment(&w.repo.catalog, &entries[1], w.ids())
        .await
        .unwrap();
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    // A restart remembers the last description: the same change is found again.
    let w2 = World::new();
    let changes = workload_changes();
    let cut = changes.len() - 8; // just after the TRUNCATE nokey transaction
    w2.runner(limits(1 << 30), now(changes[..cut].to_vec()), start(), None)
        .run(never())
        .await
        .unwrap();
    let first = w2.entries().await.pop().unwrap();
    w2.runner(
        limits(1 << 30),
        now(changes[cut..].to_vec()),
        first.end,
        Some(&first),
    )
    .run(never())
    .await
    .unwrap();
    let e = w2.entries().await;
    let marked: Vec<_> = e.iter().filter_map(|e| e.schema_change.as_ref()).collect();
    assert_eq!(marked.len(), 1, "{e:#?}");
    assert_eq!(marked[0].name, "nokey");
}

#[tokio::test]
async fn a_segment_closes_after_its_age_at_a_transaction_boundary() {
    let w = World::new();
    let script: Vec<(Duration, Change)> = workload_changes()
        .into_iter()
        .map(|c| (Duration::from_millis(15), c))
        .collect();
    let l = Limits {
        max_age: Duration::from_millis(100),
        ..limits(1 << 30)
    };
    w.runner(l, script, start(), None)
        .run(never())
        .await
        .unwrap();
    let entries = w.entries().await;
    assert!(entries.len() >= 3, "{}", entries.len());
    assert!(entries.iter().any(|e| e.closed_by == ClosedBy::Age));
    let report = check(&w.repo.catalog, DB, w.ids(), false).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.transactions, 17);
}

#[tokio::test]
async fn a_restart_resumes_at_the_newest_entry_and_stores_nothing_twice() {
    let w = World::new();
    let changes = workload_changes();
    w.runner(limits(200), now(changes[..30].to_vec()), start(), None)
        .run(never())
        .await
        .unwrap();
    let newest = w.repo.catalog.newest_segment(DB).await.unwrap().unwrap();
    // The server sends again from before the durable position (as after a crash between
    // the entry and the acknowledgement): what is stored is skipped.
    let rep = w
        .runner(limits(200), now(changes.clone()), newest.end, Some(&newest))
        .run(never())
        .await
        .unwrap();
    assert!(rep.duplicates_skipped >= 5, "{rep:?}");
    let report = check(&w.repo.catalog, DB, w.ids(), true).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.transactions, 17);
    let xids: Vec<u32> = report
        .transaction_list
        .unwrap()
        .iter()
        .map(|t| t.xid)
        .collect();
    let mut want: Vec<u32> = recorded("pg15-workload")
        .iter()
        .filter(|r| r.data[0] == b'B')
        .map(|r| r.xid)
        .collect();
    want.dedup();
    assert_eq!(xids, want);
}

#[tokio::test]
async fn a_transaction_larger_than_a_segment_streams_through_without_being_held() {
    let w = World::new();
    let rec = recorded("pg15-workload");
    // The transaction that inserted into `big`: Begin, Relation, Insert (~19 KB), Commit.
    let b = rec
        .iter()
        .position(|r| r.data[0] == b'R' && r.data.windows(4).any(|x| x == b"big\0"))
        .unwrap()
        - 1;
    let (begin, rel, ins, commit) = (&rec[b], &rec[b + 1], &rec[b + 2], &rec[b + 3]);
    let msg = |r: &crate::capture::fixtures::Recorded| Change::Message {
        lsn: r.lsn,
        data: Bytes::from(r.data.clone()),
    };
    let mut script = vec![msg(begin), msg(rel)];
    let n = 600; // ~11 MB
    script.extend(std::iter::repeat_with(|| msg(ins)).take(n));
    script.push(msg(commit));
    let max = 1024 * 1024;
    let rep = w
        .runner(limits(max), now(script), begin.lsn, None)
        .run(never())
        .await
        .unwrap();
    assert!(
        rep.peak_buffered <= max + ins.data.len() as u64,
        "{}",
        rep.peak_buffered
    );
    let e = w.entries().await;
    assert_eq!(e.len(), 1);
    assert!(e[0].plain.bytes > 10 * max, "{}", e[0].plain.bytes);
    let c = read_segment(&w.repo.catalog, &e[0], w.ids()).await.unwrap();
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert_eq!(c.transactions.len(), 1);
    assert_eq!(c.transactions[0].changes, n as u64);
}

/// With the default 16 MiB segments, an 11 MB transaction is still held only up to
/// HOLD_BYTES: holding a segment's worth cost pgdr twice that in memory.
#[tokio::test]
async fn a_transaction_is_held_only_up_to_hold_bytes_whatever_the_segment_size() {
    let w = World::new();
    let rec = recorded("pg15-workload");
    let b = rec
        .iter()
        .position(|r| r.data[0] == b'R' && r.data.windows(4).any(|x| x == b"big\0"))
        .unwrap()
        - 1;
    let msg = |r: &crate::capture::fixtures::Recorded| Change::Message {
        lsn: r.lsn,
        data: Bytes::from(r.data.clone()),
    };
    let ins = &rec[b + 2];
    let mut script = vec![msg(&rec[b]), msg(&rec[b + 1])];
    script.extend(std::iter::repeat_with(|| msg(ins)).take(600));
    script.push(msg(&rec[b + 3]));
    let rep = w
        .runner(Limits::default(), now(script), rec[b].lsn, None)
        .run(never())
        .await
        .unwrap();
    assert!(
        rep.peak_buffered <= super::HOLD_BYTES + ins.data.len() as u64,
        "{}",
        rep.peak_buffered
    );
    let e = w.entries().await;
    assert_eq!((e.len(), e[0].transactions), (1, 1));
    assert!(
        e[0].plain.bytes > 10 * super::HOLD_BYTES,
        "{}",
        e[0].plain.bytes
    );
}

#[tokio::test]
async fn heartbeats_on_an_idle_stream_are_recorded_as_pgdrs_own() {
    let w = World::new();
    let l = Limits {
        max_age: Duration::from_millis(50),
        max_bytes: 1 << 30,
        heartbeat_every: Duration::from_millis(30),
        sequence_sample: Duration::from_secs(3600),
    };
    let mut runner = w.runner(l, Vec::new(), Lsn(0x100), None);
    runner.source.hang = true;
    // The server echoes each heartbeat as a non-transactional message at the LSN it returned.
    let rep = tokio::time::timeout(
        Duration::from_secs(5),
        runner.run(tokio::time::sleep(Duration::from_millis(300))),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(rep.heartbeats >= 3, "{rep:?}");
    assert_eq!(w.beats.lock().unwrap().len() as u64, rep.heartbeats);
    // Echoed: the runner that wrote them recognises them.
    let beats = w.beats.lock().unwrap().clone();
    let echo: Vec<Change> = beats
        .iter()
        .map(|l| {
            let mut d = vec![b'M', 0];
            d.extend(l.0.to_be_bytes());
            d.extend(b"pgdr.heartbeat\0");
            d.extend(1u32.to_be_bytes());
            d.push(b'1');
            Change::Message {
                lsn: *l,
                data: Bytes::from(d),
            }
        })
        .collect();
    let mut r = w.runner(limits(1 << 30), now(echo), Lsn(0x100), None);
    for l in &beats {
        r.expect_message(*l);
    }
    let rep = r.run(never()).await.unwrap();
    assert!(rep.foreign_messages.is_empty(), "{rep:?}");
    let e = w.entries().await;
    assert_eq!(e[0].pgdr_messages, beats);
    assert_eq!(
        e[0].end,
        *beats.last().unwrap(),
        "a heartbeat moves coverage"
    );
}

#[tokio::test]
async fn an_entry_that_cannot_be_written_is_never_acknowledged() {
    let w = World::new();
    // Put 1 is the segment object, put 2 its entry.
    w.repo.store.fail_put_at(2);
    let e = w
        .runner(limits(1 << 30), now(workload_changes()), start(), None)
        .run(never())
        .await
        .unwrap_err();
    assert!(!e.message.is_empty());
    assert!(w.acks().await.is_empty());
    assert!(w.repo.catalog.newest_segment(DB).await.unwrap().is_none());
}

#[tokio::test]
async fn after_a_failed_entry_a_restart_captures_the_same_transactions_once() {
    let w = World::new();
    w.repo.store.fail_put_at(2);
    let script = now(workload_changes()[..30].to_vec());
    assert!(w
        .runner(limits(1 << 30), script, start(), None)
        .run(never())
        .await
        .is_err());
    // The server sends everything again from the slot's position: stored once.
    let rep = w
        .runner(limits(1 << 30), now(workload_changes()), start(), None)
        .run(never())
        .await
        .unwrap();
    assert_eq!(rep.duplicates_skipped, 0);
    let report = check(&w.repo.catalog, DB, w.ids(), false).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.transactions, 17);
}

#[tokio::test]
async fn check_names_a_hole_and_a_transaction_stored_twice() {
    // The first 19 messages end at a Commit.
    let changes = workload_changes();
    // A hole: the second run starts after a stretch no segment covers.
    let w = World::new();
    w.runner(limits(1 << 30), now(changes[..19].to_vec()), start(), None)
        .run(never())
        .await
        .unwrap();
    let first = w.repo.catalog.newest_segment(DB).await.unwrap().unwrap();
    let later = Lsn(first.end.0 + 0x10);
    w.runner(limits(1 << 30), now(changes[19..].to_vec()), later, None)
        .run(never())
        .await
        .unwrap();
    let r = check(&w.repo.catalog, DB, w.ids(), false).await.unwrap();
    assert!(!r.ok());
    assert_eq!(r.gaps.len(), 1, "{r:?}");
    assert_eq!((r.gaps[0].from, r.gaps[0].to), (first.end, later));
    assert_eq!(r.gaps[0].cause, "unrecorded");
    // Twice: a second runner told to start before what is stored (what resuming from the
    // newest entry prevents) stores the same transactions again.
    let w = World::new();
    w.runner(limits(1 << 30), now(changes[..19].to_vec()), start(), None)
        .run(never())
        .await
        .unwrap();
    w.runner(limits(1 << 30), now(changes[..19].to_vec()), Lsn(1), None)
        .run(never())
        .await
        .unwrap();
    let r = check(&w.repo.catalog, DB, w.ids(), false).await.unwrap();
    assert!(!r.ok());
    let problems: Vec<&str> = r.problems.iter().map(|p| p.problem.as_str()).collect();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("inside the previous segment")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("stored twice")),
        "{problems:?}"
    );
}

/// Row changes in a recorded stream, by the decoder: what the runner's entry must count.
fn rec_rows(changes: &[Change]) -> u64 {
    changes
        .iter()
        .filter(|c| match c {
            Change::Message { data, .. } => matches!(
                crate::capture::pgoutput::decode(data),
                Ok(crate::capture::pgoutput::Message::Insert { .. }
                    | crate::capture::pgoutput::Message::Update { .. }
                    | crate::capture::pgoutput::Message::Delete { .. })
            ),
            _ => false,
        })
        .count() as u64
}
