//! The parser against real pg_dump archives (tests/fixtures/archives, made by make.sh).

use super::super::rows::RowDigest;
use super::*;
use crate::archive::BLK_DATA;

pub(super) fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/archives/{}"),
        name
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub(super) fn parse_chunked(data: &[u8], chunk: usize) -> Result<ArchiveSummary, ArchiveError> {
    let mut p = ArchiveParser::new();
    for c in data.chunks(chunk) {
        p.feed(c)?;
    }
    p.finish()
}

pub(super) fn parse(data: &[u8]) -> Result<ArchiveSummary, ArchiveError> {
    parse_chunked(data, 64 * 1024)
}

/// Values make.sh computed with psql/pg_restore/Python, not with this parser.
struct Expectation {
    meta: HashMap<String, String>,
    tables: Vec<(i32, String, String, u64, String, Vec<String>)>,
    los: Vec<(u32, u64, String)>,
}

fn expectation(name: &str) -> Expectation {
    let text = String::from_utf8(fixture(name)).unwrap();
    let mut e = Expectation {
        meta: HashMap::new(),
        tables: Vec::new(),
        los: Vec::new(),
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        match f[0] {
            "meta" => {
                e.meta.insert(f[1].to_string(), f[2].to_string());
            }
            "table" => e.tables.push((
                f[1].parse().unwrap(),
                f[2].to_string(),
                f[3].to_string(),
                f[4].parse().unwrap(),
                f[5].to_string(),
                if f[6].is_empty() {
                    Vec::new()
                } else {
                    f[6].split('\u{1f}').map(str::to_string).collect()
                },
            )),
            "lo" => e.los.push((
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].to_string(),
            )),
            other => panic!("unknown expectation line kind {other}"),
        }
    }
    e
}

fn check_against_expectation(s: &ArchiveSummary, e: &Expectation) {
    assert_eq!(
        s.version, "1.14.0",
        "pg_dump 15 writes archive version 1.14"
    );
    assert_eq!(s.database, e.meta["database"]);
    assert_eq!(s.server_version, e.meta["server_version"]);
    assert_eq!(s.pg_dump_version, e.meta["pg_dump_version"]);
    assert_eq!(s.toc_entries.to_string(), e.meta["toc_entries"]);
    assert_eq!(s.encoding.as_deref(), Some("UTF8"));
    let got: Vec<_> = s
        .tables
        .iter()
        .map(|t| {
            (
                t.dump_id,
                t.schema.clone(),
                t.name.clone(),
                t.rows,
                t.digest.clone(),
                t.columns.clone(),
            )
        })
        .collect();
    assert_eq!(got, e.tables);
    let got_los: Vec<_> = s
        .large_objects
        .iter()
        .map(|l| (l.oid, l.bytes, l.digest.clone()))
        .collect();
    assert_eq!(got_los, e.los);
}

#[test]
fn basic_archive_matches_independent_expectations() {
    let s = parse(&fixture("basic.dump")).unwrap();
    check_against_expectation(&s, &expectation("basic.expected"));
    assert_eq!(
        s.tables.len(),
        8,
        "the partitioned parent has no data entry"
    );
    assert_eq!(s.large_objects.len(), 3);
}

#[test]
fn basic_archive_details() {
    let s = parse(&fixture("basic.dump")).unwrap();
    let table = |name: &str| s.tables.iter().find(|t| t.name == name).unwrap();

    let weird = table("Weird \"Name\" tbl");
    assert_eq!(weird.schema, "public");
    assert_eq!(
        weird.copy_statement,
        "COPY public.\"Weird \"\"Name\"\" tbl\" (\"Col \"\"A\"\"\", \"mixed Case\", \"select\", plain) FROM stdin;\n"
    );
    assert_eq!(
        weird.columns,
        ["Col \"A\"", "mixed Case", "select", "plain"]
    );
    assert_eq!(weird.rows, 3, "duplicate rows both count");

    let gen = table("gen");
    assert_eq!(
        gen.columns,
        ["id", "a", "c"],
        "generated column b is omitted"
    );
    assert_eq!(gen.rows, 50);

    let no_cols = table("no_cols");
    assert!(no_cols.columns.is_empty());
    assert_eq!(no_cols.copy_statement, "COPY public.no_cols  FROM stdin;\n");
    assert_eq!(no_cols.rows, 3);

    let empty = table("empty_tbl");
    assert_eq!(empty.rows, 0);
    assert_eq!(empty.digest, RowDigest::default().hex());
    // An empty table's block still carries pg_dump's "\.\n\n\n" trailer.
    assert_eq!(empty.bytes, 5);

    let items = table("items");
    assert_eq!(items.schema, "Other Schema");
    assert_eq!(
        items.copy_statement,
        "COPY \"Other Schema\".items (id, name, price, tags) FROM stdin;\n"
    );
    assert!(s.tables.iter().all(|t| t.name != "measure"));
    assert!(s.tables.iter().all(|t| t.name != "mv_counts"));

    let big_lo = &s.large_objects[0];
    assert_eq!(big_lo.oid, 424242);
    assert_eq!(big_lo.bytes, 40000, "spans three 16 KiB pg_dump chunks");
    let empty_lo = &s.large_objects[2];
    assert_eq!((empty_lo.oid, empty_lo.bytes), (424244, 0));
    assert_eq!(empty_lo.digest, large_object_digest(b""));
    assert_eq!(
        s.large_objects[1].digest,
        large_object_digest(b"hello large object")
    );
}

#[test]
fn seekable_archive_gives_same_summary() {
    // pg_dump -f FILE rewrites the TOC with data offsets (flag "pos set") at the end.
    let piped = parse(&fixture("basic.dump")).unwrap();
    let seekable = parse(&fixture("basic_seekable.dump")).unwrap();
    assert_eq!(piped, seekable);
}

#[test]
fn tiny_and_schema_only_archives() {
    let tiny = parse(&fixture("tiny.dump")).unwrap();
    check_against_expectation(&tiny, &expectation("tiny.expected"));
    let t = &tiny.tables[0];
    assert_eq!((t.schema.as_str(), t.name.as_str()), ("public", "t"));
    assert_eq!(t.columns, ["id", "v"]);
    assert_eq!(t.rows, 3);

    let empty = parse(&fixture("empty.dump")).unwrap();
    check_against_expectation(&empty, &expectation("empty.expected"));
    assert!(empty.tables.is_empty() && empty.large_objects.is_empty());
}

#[test]
fn chunk_size_does_not_matter() {
    let data = fixture("basic.dump");
    let reference = parse_chunked(&data, data.len()).unwrap();
    for chunk in [1, 7, 64 * 1024] {
        assert_eq!(
            parse_chunked(&data, chunk).unwrap(),
            reference,
            "chunk {chunk}"
        );
    }
    // Irregular chunk sizes from a small LCG.
    let mut p = ArchiveParser::new();
    let (mut pos, mut x) = (0usize, 12345u64);
    while pos < data.len() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = ((x >> 33) % 3000) as usize + 1;
        let end = (pos + n).min(data.len());
        p.feed(&data[pos..end]).unwrap();
        pos = end;
    }
    assert_eq!(p.finish().unwrap(), reference);
}

#[test]
fn io_write_adapter() {
    let data = fixture("basic.dump");
    let mut p = ArchiveParser::new();
    std::io::copy(&mut &data[..], &mut p).unwrap();
    assert_eq!(p.finish().unwrap(), parse(&data).unwrap());

    let mut p = ArchiveParser::new();
    let err = std::io::Write::write_all(&mut p, b"garbage").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}

pub(super) fn assert_truncation_rejected(data: &[u8], cut: usize) {
    let mut p = ArchiveParser::new();
    let result = p.feed(&data[..cut]).and_then(|()| p.finish().map(|_| ()));
    match result {
        Err(ArchiveError::Truncated { .. }) => {}
        other => panic!("prefix of {cut} of {} bytes gave {other:?}", data.len()),
    }
}

#[test]
fn every_truncation_of_tiny_archive_is_detected() {
    let data = fixture("tiny.dump");
    for cut in 0..data.len() {
        assert_truncation_rejected(&data, cut);
    }
    assert!(parse(&data).is_ok());
}

#[test]
fn sampled_truncations_of_basic_archive_are_detected() {
    let data = fixture("basic.dump");
    let mut cuts: Vec<usize> = (0..250).map(|i| i * data.len() / 250).collect();
    cuts.extend(data.len() - 64..data.len()); // inside the last LO and the end markers
    for cut in cuts {
        assert_truncation_rejected(&data, cut);
    }
}

#[test]
fn truncation_message_names_the_missing_table() {
    let data = fixture("basic.dump");
    let s = parse(&data).unwrap();
    // Cut exactly where the block of the second table starts: a clean block boundary.
    let needle = block_start(&data, BLK_DATA, s.tables[1].dump_id);
    let mut p = ArchiveParser::new();
    p.feed(&data[..needle]).unwrap();
    let err = p.finish().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ArchiveError::Truncated { .. }), "{msg}");
    assert!(msg.contains("Weird \"Name\" tbl"), "{msg}");
}

/// Offset of the last data block header of type `kind` for `dump_id`; data blocks follow
/// the TOC, so the last match of the 6-byte pattern is the block itself.
pub(crate) fn block_start(data: &[u8], kind: u8, dump_id: i32) -> usize {
    let mut pat = vec![kind, 0];
    pat.extend_from_slice(&dump_id.to_le_bytes());
    let hits: Vec<usize> = data
        .windows(pat.len())
        .enumerate()
        .filter(|(_, w)| *w == pat.as_slice())
        .map(|(i, _)| i)
        .collect();
    *hits.last().unwrap()
}

#[test]
fn compressed_archive_is_rejected() {
    let err = parse(&fixture("compressed.dump")).unwrap_err();
    assert_eq!(
        err,
        ArchiveError::Compressed {
            method: "gzip level 6".into()
        }
    );
    assert!(err.to_string().contains("--compress=0"));
}

#[test]
fn garbage_is_not_custom_format() {
    for input in [
        &b"garbage, definitely not an archive"[..],
        b"--\n-- PostgreSQL database dump\n--\n",
        b"\x1f\x8b\x08\x00",
        b"X",
        b"PGDMX",
    ] {
        // Rejected as soon as the first wrong byte arrives, not only at finish().
        let mut p = ArchiveParser::new();
        let err = p.feed(input).unwrap_err();
        assert!(
            matches!(err, ArchiveError::NotCustomFormat { .. }),
            "{input:?}: {err:?}"
        );
        // Sticky: later calls keep failing.
        assert_eq!(p.feed(b"PGDMP").unwrap_err(), err);
        assert_eq!(p.finish().unwrap_err(), err);
    }
    // A prefix of the signature is merely short.
    assert!(matches!(
        parse(b"PG").unwrap_err(),
        ArchiveError::Truncated { .. }
    ));
    // A directory-format toc.dat has the signature but format byte 5.
    let mut dir = fixture("tiny.dump");
    dir[10] = 5;
    assert!(matches!(
        parse(&dir).unwrap_err(),
        ArchiveError::NotCustomFormat { .. }
    ));
    assert!(matches!(
        parse(b"").unwrap_err(),
        ArchiveError::Truncated { .. }
    ));
}
