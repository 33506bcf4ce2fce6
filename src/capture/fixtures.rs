//! Test support: the pgoutput messages recorded from a real PostgreSQL 15 by
//! `scripts/record-pgoutput.sh` (tests/fixtures/pgoutput/), one `<lsn> <xid> <hex>` a line.

use bytes::Bytes;

use crate::source::changes::Change;
use crate::source::Lsn;

pub struct Recorded {
    pub lsn: Lsn,
    pub xid: u32,
    pub data: Vec<u8>,
}

pub fn recorded(name: &str) -> Vec<Recorded> {
    let path = format!(
        "{}/tests/fixtures/pgoutput/{name}.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Recorded {
                lsn: f[0].parse().expect("lsn"),
                xid: f[1].parse().expect("xid"),
                data: hex::decode(f[2]).expect("hex"),
            }
        })
        .collect()
}

/// The workload as the change stream would deliver it.
pub fn workload_changes() -> Vec<Change> {
    recorded("pg15-workload")
        .into_iter()
        .map(|r| Change::Message {
            lsn: r.lsn,
            data: Bytes::from(r.data),
        })
        .collect()
}
