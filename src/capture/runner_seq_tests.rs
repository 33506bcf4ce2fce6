//! Sequence samples: written on the runner's clock, echoed by the server as non-transactional
//! `pgdr.sequences` messages, stored in segments and recorded as pgdr's own.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::*;
use crate::capture::read::read_segment;
use crate::catalog::segments::ListedSegment;
use crate::catalog::testkit::Repo;
use crate::config::Compression;

type Queue = Arc<Mutex<VecDeque<Lsn>>>;

/// The server: echoes each sample at the LSN the sampler returned.
struct Echo(Queue);

impl ChangeSource for Echo {
    async fn next(&mut self) -> Result<Option<Change>> {
        loop {
            // Cancel-safe: the queue is only popped after the wait.
            tokio::time::sleep(Duration::from_millis(5)).await;
            if let Some(l) = self.0.lock().unwrap().pop_front() {
                let mut d = vec![b'M', 0];
                d.extend(l.0.to_be_bytes());
                d.extend(SEQUENCES_PREFIX.as_bytes());
                d.push(0);
                let body = br#"{"v":1,"sequences":[]}"#;
                d.extend((body.len() as u32).to_be_bytes());
                d.extend(body);
                return Ok(Some(Change::Message {
                    lsn: l,
                    data: Bytes::from(d),
                }));
            }
        }
    }
    fn ack(&mut self, _: Lsn) {}
}

struct Sampler(Queue, Vec<Lsn>, Arc<Mutex<Vec<Lsn>>>);

impl Heartbeat for Sampler {
    async fn emit(&mut self) -> Result<Lsn> {
        unreachable!("no heartbeat within the test")
    }
    async fn sample_sequences(&mut self) -> Result<Option<Lsn>> {
        let l = Lsn(0x1000 + 0x10 * (self.1.len() as u64 + 1));
        self.1.push(l);
        self.2.lock().unwrap().push(l);
        self.0.lock().unwrap().push_back(l);
        Ok(Some(l))
    }
}

#[tokio::test]
async fn sequence_samples_are_written_on_the_clock_stored_and_recorded_as_pgdrs_own() {
    let repo = Repo::new();
    let identity = age::x25519::Identity::generate();
    let target = Target {
        repo: repo.catalog.clone(),
        database: "app".into(),
        system_id: 1,
        timeline: 1,
        params: Arc::new(EncodeParams {
            compression: Compression {
                level: 1,
                threads: 0,
            },
            recipients: vec![identity.to_public()],
        }),
    };
    let limits = Limits {
        max_age: Duration::from_millis(60),
        max_bytes: 1 << 30,
        heartbeat_every: Duration::from_secs(3600),
        sequence_sample: Duration::from_millis(40),
    };
    let q: Queue = Arc::default();
    let written: Arc<Mutex<Vec<Lsn>>> = Arc::default();
    let runner = Runner::new(
        target,
        limits,
        Echo(q.clone()),
        Sampler(q, Vec::new(), written.clone()),
        Lsn(0x100),
        None,
    );
    let rep = runner
        .run(tokio::time::sleep(Duration::from_millis(400)))
        .await
        .unwrap();
    // Every 40 ms over 400 ms: not one per tick (ticks come every 20 ms), not none.
    assert!((5..=11).contains(&rep.sequence_samples), "{rep:?}");
    assert!(rep.foreign_messages.is_empty(), "{rep:?}");
    let mut recorded = Vec::new();
    let mut stored = Vec::new();
    let ids = Arc::new(vec![identity]);
    for s in repo.catalog.segments("app").await.unwrap() {
        let ListedSegment::Ok(e) = s else {
            panic!("damaged")
        };
        recorded.extend(e.pgdr_messages.iter().copied());
        let c = read_segment(&repo.catalog, &e, ids.clone()).await.unwrap();
        stored.extend(c.messages.iter().map(|(l, p)| {
            assert_eq!(p, SEQUENCES_PREFIX);
            *l
        }));
    }
    // Each echoed sample is in a segment and recorded as pgdr's own (the last may still have
    // been in flight at the stop).
    let written = written.lock().unwrap().clone();
    assert!(
        recorded.len() + 1 >= written.len(),
        "{recorded:?} / {written:?}"
    );
    assert_eq!(recorded, written[..recorded.len()].to_vec());
    assert_eq!(stored, recorded);
}
