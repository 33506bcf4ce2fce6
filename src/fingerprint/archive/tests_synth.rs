//! The parser against garbage, every supported version (synthetic archives), and bad blocks.

use super::super::rows::RowDigest;
use super::tests::{assert_truncation_rejected, block_start, fixture, parse, parse_chunked};
use super::*;
use crate::archive::{BLK_BLOBS, BLK_DATA};

#[test]
fn unknown_versions_are_rejected() {
    let mut data = fixture("tiny.dump");
    assert_eq!(&data[5..8], &[1, 14, 0]);
    for (minor, ok) in [
        (11, false),
        (12, true),
        (13, true),
        (17, false),
        (255, false),
    ] {
        data[6] = minor;
        let result = parse(&data);
        if ok {
            // Same layout as 1.14 minus tableam, so a 1.14 body is misread: not Unsupported.
            assert!(!matches!(
                result,
                Err(ArchiveError::UnsupportedVersion { .. })
            ));
        } else {
            assert_eq!(
                result.unwrap_err(),
                ArchiveError::UnsupportedVersion {
                    found: format!("1.{minor}.0")
                }
            );
        }
    }
    data[5] = 2;
    data[6] = 14;
    assert!(matches!(
        parse(&data).unwrap_err(),
        ArchiveError::UnsupportedVersion { .. }
    ));
}

// ------------------------------------------------------------------ synthetic archives
//
// pg_dump 16 (1.15) and 17/18 (1.16) are not installed here, so archives of those
// versions are written by this small writer, which mirrors WriteHead/WriteToc/
// WriteDataChunks in pg_backup_archiver.c and pg_backup_custom.c field by field.

struct Writer {
    out: Vec<u8>,
    minor: u8,
}

struct SynthEntry<'a> {
    dump_id: i32,
    tag: &'a str,
    desc: &'a str,
    defn: &'a str,
    copy: Option<&'a str>,
    namespace: &'a str,
    has_data: bool,
}

impl Writer {
    fn int(&mut self, v: i64) {
        self.out.push(u8::from(v < 0));
        self.out
            .extend_from_slice(&(v.unsigned_abs() as u32).to_le_bytes());
    }
    fn str(&mut self, s: Option<&str>) {
        match s {
            None => self.int(-1),
            Some(s) => {
                self.int(s.len() as i64);
                self.out.extend_from_slice(s.as_bytes());
            }
        }
    }
    fn header(&mut self, toc_count: i64, compression: u8) {
        self.out.extend_from_slice(b"PGDMP");
        self.out.extend_from_slice(&[1, self.minor, 0, 4, 8, 1]);
        if self.minor >= 15 {
            self.out.push(compression);
        } else {
            self.int(i64::from(compression));
        }
        for v in [1, 2, 3, 4, 5, 124, 0] {
            self.int(v);
        }
        self.str(Some("synthdb"));
        self.str(Some("17.2"));
        self.str(Some("17.2"));
        self.int(toc_count);
    }
    fn entry(&mut self, e: &SynthEntry) {
        self.int(i64::from(e.dump_id));
        self.int(i64::from(e.has_data));
        self.str(Some("0"));
        self.str(Some("16384"));
        self.str(Some(e.tag));
        self.str(Some(e.desc));
        self.int(if e.has_data { 3 } else { 1 }); // section
        self.str(Some(e.defn));
        self.str(Some(""));
        self.str(e.copy);
        self.str(Some(e.namespace));
        self.str(Some(""));
        if self.minor >= 14 {
            self.str(Some("heap"));
        }
        if self.minor >= 16 {
            self.int(i64::from(b'r'));
        }
        self.str(Some("postgres"));
        self.str(Some("false"));
        self.str(Some("1"));
        self.str(Some("2"));
        self.str(None);
        self.out.push(if e.has_data { 1 } else { 3 });
        self.out.extend_from_slice(&[0; 8]);
    }
    fn table_block(&mut self, dump_id: i32, chunks: &[&[u8]]) {
        self.out.push(BLK_DATA);
        self.int(i64::from(dump_id));
        for c in chunks {
            self.int(c.len() as i64);
            self.out.extend_from_slice(c);
        }
        self.int(0);
    }
    fn blobs_block(&mut self, dump_id: i32, los: &[(u32, &[u8])]) {
        self.out.push(BLK_BLOBS);
        self.int(i64::from(dump_id));
        for (oid, content) in los {
            self.int(i64::from(*oid));
            for c in content.chunks(5) {
                self.int(c.len() as i64);
                self.out.extend_from_slice(c);
            }
            self.int(0);
        }
        self.int(0);
    }
}

const SYNTH_COPY: &str = "COPY s.\"T\" (a, \"B c\") FROM stdin;\n";

pub(crate) fn synth_archive(minor: u8) -> Vec<u8> {
    let mut w = Writer {
        out: Vec::new(),
        minor,
    };
    w.header(4, 0);
    w.entry(&SynthEntry {
        dump_id: 1,
        tag: "ENCODING",
        desc: "ENCODING",
        defn: "SET client_encoding = 'LATIN1';\n",
        copy: None,
        namespace: "",
        has_data: false,
    });
    w.entry(&SynthEntry {
        dump_id: 2,
        tag: "T",
        desc: "TABLE",
        defn: "CREATE TABLE s.\"T\" (a int, \"B c\" text);\n",
        copy: None,
        namespace: "s",
        has_data: false,
    });
    w.entry(&SynthEntry {
        dump_id: 3,
        tag: "T",
        desc: "TABLE DATA",
        defn: "",
        copy: Some(SYNTH_COPY),
        namespace: "s",
        has_data: true,
    });
    w.entry(&SynthEntry {
        dump_id: 4,
        tag: "LARGE OBJECTS 5..6",
        desc: "BLOBS",
        defn: "",
        copy: None,
        namespace: "",
        has_data: true,
    });
    // Rows split across chunks on purpose, then pg_dump's trailer.
    w.table_block(3, &[b"1\tx\n2\t", b"y\n", b"3\t\\N\n", b"\\.\n\n\n"]);
    w.blobs_block(4, &[(5, b"large object five"), (6, b"")]);
    w.out
}

#[test]
fn synthetic_archives_of_every_supported_version() {
    let mut rows = CopyRowSplitter::new();
    rows.feed(b"1\tx\n2\ty\n3\t\\N\n");
    let expected_rows = rows.finish().unwrap();
    for minor in 12..=16 {
        let data = synth_archive(minor);
        let s = parse_chunked(&data, 3).unwrap_or_else(|e| panic!("1.{minor}: {e}"));
        assert_eq!(s.version, format!("1.{minor}.0"));
        assert_eq!(s.database, "synthdb");
        assert_eq!(s.encoding.as_deref(), Some("LATIN1"));
        assert_eq!(s.toc_entries, 4);
        assert_eq!(
            s.tables,
            [TableData {
                dump_id: 3,
                schema: "s".into(),
                name: "T".into(),
                columns: vec!["a".into(), "B c".into()],
                copy_statement: SYNTH_COPY.into(),
                rows: 3,
                digest: expected_rows.hex(),
                bytes: 18,
            }]
        );
        assert_eq!(
            s.large_objects,
            [
                LargeObjectData {
                    oid: 5,
                    bytes: 17,
                    digest: large_object_digest(b"large object five"),
                },
                LargeObjectData {
                    oid: 6,
                    bytes: 0,
                    digest: large_object_digest(b""),
                },
            ]
        );
        for cut in 0..data.len() {
            assert_truncation_rejected(&data, cut);
        }
    }
}

#[test]
fn compression_byte_of_newer_versions() {
    for (algorithm, name) in [(1, "gzip"), (2, "lz4"), (3, "zstd")] {
        let mut w = Writer {
            out: Vec::new(),
            minor: 16,
        };
        w.header(0, algorithm);
        assert_eq!(
            parse(&w.out).unwrap_err(),
            ArchiveError::Compressed {
                method: name.into()
            }
        );
    }
}

#[test]
fn inconsistent_blocks_are_malformed() {
    let data = synth_archive(16);
    let blocks_at = block_start(&data, BLK_DATA, 3);
    let (head, blocks) = data.split_at(blocks_at);

    // The table block twice.
    let table_block_len = block_start(&data, BLK_BLOBS, 4) - blocks_at;
    let mut dup = data.clone();
    dup.extend_from_slice(&blocks[..table_block_len]);
    assert!(matches!(
        parse(&dup).unwrap_err(),
        ArchiveError::Malformed { .. }
    ));

    // A block for a dump id without data.
    let mut w = Writer {
        out: head.to_vec(),
        minor: 16,
    };
    w.table_block(2, &[b"1\n"]);
    let err = parse(&w.out).unwrap_err();
    assert!(err.to_string().contains("dump id 2"), "{err}");

    // Unknown block type.
    let mut bad = data.clone();
    bad[blocks_at] = 7;
    assert!(matches!(
        parse(&bad).unwrap_err(),
        ArchiveError::Malformed { .. }
    ));

    // A table block whose rows end without a newline.
    let mut w = Writer {
        out: head.to_vec(),
        minor: 16,
    };
    w.table_block(3, &[b"1\tx\n2\ty"]);
    w.blobs_block(4, &[]);
    let err = parse(&w.out).unwrap_err();
    assert!(err.to_string().contains("incomplete row"), "{err}");

    // Trailing garbage after a complete archive.
    let mut trailing = data.clone();
    trailing.push(0);
    assert!(parse(&trailing).is_err());
}

#[test]
fn memory_stays_bounded_on_a_large_table() {
    // ~40 MB of rows in one block, fed in 1 MiB chunks: only a partial row may be held.
    let mut w = Writer {
        out: Vec::new(),
        minor: 16,
    };
    w.header(1, 0);
    w.entry(&SynthEntry {
        dump_id: 1,
        tag: "big",
        desc: "TABLE DATA",
        defn: "",
        copy: Some("COPY public.big (id, payload) FROM stdin;\n"),
        namespace: "public",
        has_data: true,
    });
    w.out.push(BLK_DATA);
    w.int(1);
    let header = std::mem::take(&mut w.out);

    let mut p = ArchiveParser::new();
    p.feed(&header).unwrap();
    let row_payload = "p".repeat(200);
    let mut digest = RowDigest::default();
    let mut chunk = Vec::with_capacity(1 << 20);
    let mut max_buffered = 0;
    for i in 0..200_000u32 {
        let row = format!("{i}\t{row_payload}");
        digest.add_row(row.as_bytes());
        // Large pg_dump chunks that do not align with rows.
        let mut framed = Writer {
            out: Vec::new(),
            minor: 16,
        };
        framed.int(row.len() as i64 + 1);
        chunk.extend_from_slice(&framed.out);
        chunk.extend_from_slice(row.as_bytes());
        chunk.push(b'\n');
        if chunk.len() >= 1 << 20 {
            // Feed in two uneven halves so rows and chunk headers straddle calls.
            let (a, b) = chunk.split_at(chunk.len() / 3);
            p.feed(a).unwrap();
            max_buffered = max_buffered.max(p.buffered_bytes());
            p.feed(b).unwrap();
            max_buffered = max_buffered.max(p.buffered_bytes());
            chunk.clear();
        }
    }
    let mut tail = Writer {
        out: chunk,
        minor: 16,
    };
    tail.int(0);
    p.feed(&tail.out).unwrap();
    let s = p.finish().unwrap();
    assert_eq!(s.tables[0].rows, 200_000);
    assert_eq!(s.tables[0].digest, digest.hex());
    assert!(max_buffered < 512, "held {max_buffered} bytes");
}

#[test]
fn copy_statement_parsing() {
    let cols = |s: &str| parse_copy_columns(s);
    assert_eq!(
        cols("COPY public.t (a, b) FROM stdin;\n").unwrap(),
        ["a", "b"]
    );
    assert_eq!(
        cols("COPY \"S.x\".\"t(1)\" (\"a,b\", \"c\"\"d\", e) FROM stdin;\n").unwrap(),
        ["a,b", "c\"d", "e"]
    );
    assert_eq!(
        cols("COPY public.t  FROM stdin;\n").unwrap(),
        Vec::<String>::new()
    );
    assert!(cols("INSERT INTO t VALUES (1);").is_none());
    assert!(cols("COPY public.t (a, b FROM stdin;").is_none());
    assert!(cols("COPY public.t (a, \"b) FROM stdin;").is_none());
}
