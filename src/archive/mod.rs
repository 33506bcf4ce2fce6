//! pg_dump's custom-format archive on the wire: the one reader of its layout.
//!
//! Two parts of pgdr read these archives: the fingerprint (streaming, on the backup pipe) and
//! the restore spool (filling in data offsets of a spooled file). Both take the header and the
//! table of contents from here, so they accept the same versions and agree on every field.
//! This module knows nothing of either: no digests, no files.
//!
//! Layout (from `pg_backup_archiver.c` / `pg_backup_custom.c`; archive versions 1.12–1.16,
//! i.e. pg_dump 9.0–18, differ only where marked):
//!
//! ```text
//! header   "PGDMP" vmaj vmin vrev intSize offSize format(1=custom)
//!          compression: int level (< 1.15) | byte algorithm (>= 1.15)
//!          7 ints (creation time: sec min hour mday mon year isdst)
//!          str dbname, str server version, str pg_dump version
//! toc      int count, then per entry:
//!          int dumpId, int hadDumper, str tableoid, str oid, str tag, str desc, int section,
//!          str defn, str dropStmt, str copyStmt, str namespace, str tablespace,
//!          str tableam (>= 1.14), int relkind (>= 1.16), str owner, str "false" (withOids),
//!          str dependency... terminated by a NULL str,
//!          offset: flag byte (1 = pos not set, 2 = pos set, 3 = no data) + offSize bytes
//! data     per entry with data, in TOC order, then end of stream (nothing follows):
//!          byte 1 (BLK_DATA), int dumpId, { int len > 0, len bytes }*, int 0
//!          byte 3 (BLK_BLOBS), int dumpId, { int oid, { int len, bytes }*, int 0 }*, int 0
//! int      sign byte (1 = negative) + intSize bytes little-endian magnitude
//! str      int length (-1 = NULL) + bytes
//! ```
//!
//! Entries whose TOC offset flag is 1 or 2 promise a data block; the stream has no end marker,
//! so a stream is complete exactly when every promised block has arrived whole.

const MAGIC: &[u8; 5] = b"PGDMP";
/// `archCustom` in pg_backup.h; toc.dat of a directory-format dump carries 5 here.
const FORMAT_CUSTOM: u8 = 1;
pub const BLK_DATA: u8 = 1;
pub const BLK_BLOBS: u8 = 3;
pub const K_OFFSET_POS_NOT_SET: u8 = 1;
pub const K_OFFSET_POS_SET: u8 = 2;
const K_OFFSET_NO_DATA: u8 = 3;
/// Oldest archive minor version accepted: 1.12 (pg_dump 9.0) has every field we read at the
/// position we expect it; the per-version differences after it are tableam (1.14),
/// the compression byte (1.15) and relkind (1.16).
const MIN_MINOR: u8 = 12;
/// Newest archive minor version this code was written against (pg_dump 17 and 18 write 1.16).
const MAX_MINOR: u8 = 16;
/// A TOC string this long cannot come from pg_dump's own bookkeeping fields (tag, desc,
/// namespace, COPY statement); refusing it keeps a corrupt length from allocating gigabytes.
const MAX_KEPT_STRING: usize = 64 << 20;
/// No TOC string (not even a definition) can reach PostgreSQL's 1 GB allocation limit; a
/// longer length is corruption, and refusing it bounds what one TOC entry can make us buffer.
const MAX_TOC_STRING: usize = 1 << 30;

/// Version code as in pg_backup_archiver.h's MAKE_ARCHIVE_VERSION, so comparisons read like
/// the C source.
const fn vers(major: u8, minor: u8, rev: u8) -> u32 {
    ((major as u32) << 16) | ((minor as u32) << 8) | rev as u32
}
const K_VERS_1_14: u32 = vers(1, 14, 0);
const K_VERS_1_15: u32 = vers(1, 15, 0);
const K_VERS_1_16: u32 = vers(1, 16, 0);

/// Why an archive was rejected. Every variant means the backup must not be trusted as-is.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ArchiveError {
    #[error("input is not a pg_dump custom-format archive ({detail}); pgdr needs the output of pg_dump --format=custom")]
    NotCustomFormat { detail: String },
    #[error("pg_dump archive format version {found} is not supported (supported: 1.12 to 1.16, written by pg_dump 9.0 to 18)")]
    UnsupportedVersion { found: String },
    #[error("pg_dump archive data is compressed ({method}); pgdr must run pg_dump with --compress=0 so rows can be fingerprinted (pgdr compresses the stream itself)")]
    Compressed { method: String },
    #[error("pg_dump archive is truncated: {what}; the dump did not complete")]
    Truncated { what: String },
    #[error("pg_dump archive is malformed: {what}")]
    Malformed { what: String },
}

pub fn malformed(what: impl Into<String>) -> ArchiveError {
    ArchiveError::Malformed { what: what.into() }
}

/// Decodes pg_dump's integer: a sign byte then little-endian magnitude bytes.
#[inline]
pub fn decode_int(bytes: &[u8]) -> Result<i64, ArchiveError> {
    let (sign, magnitude) = bytes.split_first().expect("int is at least 2 bytes");
    let v = if let Ok(four) = <[u8; 4]>::try_from(magnitude) {
        // sizeof(int) everywhere pg_dump runs; one load instead of a byte loop.
        u64::from(u32::from_le_bytes(four))
    } else {
        magnitude
            .iter()
            .enumerate()
            .fold(0u64, |v, (i, b)| v | u64::from(*b) << (8 * i))
    };
    // intSize is capped at 8 in the header, but the value itself must also fit an i64.
    let v = i64::try_from(v).map_err(|_| malformed("integer out of range"))?;
    match sign {
        0 => Ok(v),
        1 => Ok(-v),
        s => Err(malformed(format!("invalid integer sign byte {s}"))),
    }
}

/// Why parsing a header or TOC entry from a buffer stopped.
pub enum Stop {
    /// The buffer ends early; the item needs at least this many bytes from its start.
    Need(usize),
    Fail(ArchiveError),
}

impl From<ArchiveError> for Stop {
    fn from(e: ArchiveError) -> Self {
        Stop::Fail(e)
    }
}

/// The archive header: what every later read depends on, and what the summary reports.
#[derive(Debug, Clone)]
pub struct Header {
    pub version: u32,
    pub int_size: usize,
    pub off_size: usize,
    pub database: String,
    pub server_version: String,
    pub pg_dump_version: String,
}

/// One TOC entry as it is on the wire (only the fields a reader of pgdr looks at).
pub struct TocEntry<'a> {
    pub dump_id: i32,
    pub tag: String,
    pub desc: String,
    pub defn: Option<&'a [u8]>,
    pub copy_statement: String,
    pub namespace: String,
    /// The role that owns the object (empty for entries without one).
    pub owner: String,
    /// Dump ids of the entries this one depends on (a table's index, data, policies and ACL
    /// name the table): what a restore of selected tables follows.
    pub dependencies: Vec<i32>,
    /// The offset flag promises a data block (flag 1 or 2; 3 is "no data").
    pub has_data: bool,
    /// The offset flag itself, and where it sits from the start of the reader's buffer
    /// (followed by `off_size` bytes of offset).
    pub offset_flag: u8,
    pub offset_at: usize,
}

/// Cursor over buffered header/TOC bytes; every read either succeeds or says how much more
/// input the current item needs.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    version: u32,
    int_size: usize,
    off_size: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], header: Option<&Header>) -> Self {
        Reader {
            buf,
            pos: 0,
            version: header.map_or(0, |h| h.version),
            int_size: header.map_or(4, |h| h.int_size),
            off_size: header.map_or(8, |h| h.off_size),
        }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        let end = self.pos.checked_add(n).ok_or(Stop::Need(usize::MAX))?;
        let s = self.buf.get(self.pos..end).ok_or(Stop::Need(end))?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, Stop> {
        Ok(self.bytes(1)?[0])
    }

    fn int(&mut self) -> Result<i64, Stop> {
        let raw = self.bytes(1 + self.int_size)?;
        Ok(decode_int(raw)?)
    }

    /// A string, `None` for NULL.
    fn str(&mut self, what: &str) -> Result<Option<&'a [u8]>, Stop> {
        match self.int()? {
            -1 => Ok(None),
            n if n < 0 => Err(malformed(format!("negative length {n} for {what}")).into()),
            n => {
                let n = usize::try_from(n)
                    .ok()
                    .filter(|n| *n <= MAX_TOC_STRING)
                    .ok_or_else(|| malformed(format!("{what} claims to be {n} bytes long")))?;
                Ok(Some(self.bytes(n)?))
            }
        }
    }

    /// A string that is kept in the summary (so must be text and of sane size).
    fn text(&mut self, what: &str) -> Result<String, Stop> {
        let Some(raw) = self.str(what)? else {
            return Ok(String::new());
        };
        if raw.len() > MAX_KEPT_STRING {
            return Err(malformed(format!("{what} is {} bytes long", raw.len())).into());
        }
        Ok(String::from_utf8_lossy(raw).into_owned())
    }

    /// pgdr fingerprints rows, so the data must not be compressed by pg_dump.
    fn uncompressed(&mut self) -> Result<(), Stop> {
        if self.version >= K_VERS_1_15 {
            // pg_compress_algorithm: 0 none, 1 gzip, 2 lz4, 3 zstd.
            let method = match self.byte()? {
                0 => None,
                1 => Some("gzip".to_string()),
                2 => Some("lz4".to_string()),
                3 => Some("zstd".to_string()),
                a => Some(format!("algorithm {a}")),
            };
            if let Some(method) = method {
                return Err(ArchiveError::Compressed { method }.into());
            }
        } else {
            // zlib level; -1 is Z_DEFAULT_COMPRESSION.
            let level = self.int()?;
            if level != 0 {
                return Err(ArchiveError::Compressed {
                    method: format!("gzip level {level}"),
                }
                .into());
            }
        }
        Ok(())
    }

    pub fn header(&mut self) -> Result<(Header, usize), Stop> {
        let have = &self.buf[..self.buf.len().min(MAGIC.len())];
        if have != &MAGIC[..have.len()] {
            return Err(ArchiveError::NotCustomFormat {
                detail: "no PGDMP signature at the start".into(),
            }
            .into());
        }
        self.bytes(MAGIC.len())?;
        let (vmaj, vmin, vrev) = (self.byte()?, self.byte()?, self.byte()?);
        if vmaj != 1 || !(MIN_MINOR..=MAX_MINOR).contains(&vmin) {
            return Err(ArchiveError::UnsupportedVersion {
                found: format!("{vmaj}.{vmin}.{vrev}"),
            }
            .into());
        }
        self.version = vers(vmaj, vmin, vrev);
        let int_size = self.byte()? as usize;
        let off_size = self.byte()? as usize;
        // pg_dump writes sizeof(int) and sizeof(pgoff_t), i.e. 4 and 8 on every platform.
        if !(1..=8).contains(&int_size) || !(1..=16).contains(&off_size) {
            return Err(malformed(format!(
                "unsupported integer size {int_size} / offset size {off_size}"
            ))
            .into());
        }
        self.int_size = int_size;
        self.off_size = off_size;
        let format = self.byte()?;
        if format != FORMAT_CUSTOM {
            let name = match format {
                3 => "tar",
                5 => "directory (this looks like its toc.dat)",
                _ => "unknown",
            };
            return Err(ArchiveError::NotCustomFormat {
                detail: format!("archive format byte {format}: {name}"),
            }
            .into());
        }
        self.uncompressed()?;
        for _ in 0..7 {
            self.int()?; // creation time
        }
        let database = self.text("database name")?;
        let server_version = self.text("server version")?;
        let pg_dump_version = self.text("pg_dump version")?;
        let count = self.int()?;
        let count = usize::try_from(count)
            .map_err(|_| malformed(format!("negative TOC entry count {count}")))?;
        Ok((
            Header {
                version: self.version,
                int_size,
                off_size,
                database,
                server_version,
                pg_dump_version,
            },
            count,
        ))
    }

    /// Bytes consumed from the start of the buffer.
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn toc_entry(&mut self) -> Result<TocEntry<'a>, Stop> {
        let dump_id = self.int()?;
        let dump_id = i32::try_from(dump_id)
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| malformed(format!("TOC entry dump id {dump_id} out of range")))?;
        self.int()?; // hadDumper
        self.str("table oid")?;
        self.str("oid")?;
        let tag = self.text("tag")?;
        let desc = self.text("desc")?;
        self.int()?; // section
        let defn = self.str("definition")?;
        self.str("drop statement")?;
        let copy_statement = self.text("COPY statement")?;
        let namespace = self.text("namespace")?;
        self.str("tablespace")?;
        if self.version >= K_VERS_1_14 {
            self.str("table access method")?;
        }
        if self.version >= K_VERS_1_16 {
            self.int()?; // relkind
        }
        let owner = self.text("owner")?;
        self.str("with oids")?; // always "false" since 1.9
        let mut dependencies = Vec::new();
        while let Some(d) = self.str("dependency")? {
            // Written as decimal text; anything else is no dump id and cannot be followed.
            if let Some(id) = std::str::from_utf8(d).ok().and_then(|t| t.parse().ok()) {
                dependencies.push(id);
            }
        }
        let offset_at = self.pos;
        let flag = self.byte()?;
        self.bytes(self.off_size)?;
        let has_data = match flag {
            K_OFFSET_POS_NOT_SET | K_OFFSET_POS_SET => true,
            K_OFFSET_NO_DATA => false,
            f => {
                return Err(malformed(format!(
                    "TOC entry {dump_id} ({desc} {tag}) has unknown data offset flag {f}"
                ))
                .into())
            }
        };
        Ok(TocEntry {
            dump_id,
            tag,
            desc,
            defn,
            copy_statement,
            namespace,
            owner,
            dependencies,
            has_data,
            offset_flag: flag,
            offset_at,
        })
    }
}
