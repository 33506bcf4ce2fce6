//! The stored segment: pgoutput messages exactly as the server sent them, in pgdr's own framing,
//! so a segment reads years later without the transport crate.
//!
//! ```text
//! header  "PGDRSEG\0" (8) | version u32 | start LSN u64 | system id u64 | timeline u32
//! frame   LSN u64 | length u32 | length bytes of one pgoutput v1 message
//! end     end LSN u64 | 0xFFFFFFFF        (the segment covers [start, end))
//! ```
//! Big-endian throughout. A segment decodes on its own: it re-emits every Relation (and Type)
//! message before the first change that uses it. A stream that stops before the end frame is
//! truncated, never taken for a whole segment.

use std::io::{self, Read};

use crate::source::Lsn;

pub const MAGIC: &[u8; 8] = b"PGDRSEG\0";
/// The framing written today; readers refuse a newer one.
pub const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 8 + 8 + 4;
const FRAME_HEAD: usize = 8 + 4;
const END_MARK: u32 = u32::MAX;
/// Largest message a frame may hold (PostgreSQL's own limit on one value is 1 GB).
pub const MAX_MESSAGE: u32 = 0x7FFF_FFFF;

/// What a segment says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub start: Lsn,
    pub system_id: u64,
    pub timeline: u32,
}

impl Header {
    pub fn new(start: Lsn, system_id: u64, timeline: u32) -> Header {
        Header {
            version: FORMAT_VERSION,
            start,
            system_id,
            timeline,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.version.to_be_bytes());
        b.extend_from_slice(&self.start.0.to_be_bytes());
        b.extend_from_slice(&self.system_id.to_be_bytes());
        b.extend_from_slice(&self.timeline.to_be_bytes());
        b
    }
}

/// One frame's bytes (head and body), appended to `out`.
pub fn encode_frame(out: &mut Vec<u8>, lsn: Lsn, data: &[u8]) {
    assert!(
        data.len() <= MAX_MESSAGE as usize,
        "pgoutput message over 2 GiB"
    );
    out.extend_from_slice(&lsn.0.to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

/// The end frame: the segment covers everything before `end`.
pub fn encode_end(end: Lsn) -> Vec<u8> {
    let mut b = Vec::with_capacity(FRAME_HEAD);
    b.extend_from_slice(&end.0.to_be_bytes());
    b.extend_from_slice(&END_MARK.to_be_bytes());
    b
}

/// Why a segment's bytes are not a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentError {
    NotASegment,
    NewerVersion(u32),
    /// The bytes stop before the end frame (or inside a frame).
    Truncated,
    /// Bytes after the end frame.
    Trailing,
    TooLarge(u32),
}

impl std::fmt::Display for SegmentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SegmentError::NotASegment => write!(f, "not a pgdr change segment (bad magic)"),
            SegmentError::NewerVersion(v) => write!(
                f,
                "segment format {v} is newer than this pgdr reads ({FORMAT_VERSION}); upgrade pgdr"
            ),
            SegmentError::Truncated => write!(f, "segment ends before its end frame"),
            SegmentError::Trailing => write!(f, "bytes after the segment's end frame"),
            SegmentError::TooLarge(n) => write!(f, "segment frame of {n} bytes is over the limit"),
        }
    }
}

impl std::error::Error for SegmentError {}

impl From<SegmentError> for io::Error {
    fn from(e: SegmentError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// One message of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub lsn: Lsn,
    pub data: Vec<u8>,
}

/// A push decoder: bytes arrive in any chunking (a download's sink), frames come out whole.
/// Holds at most one frame's bytes.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    header: Option<Header>,
    end: Option<Lsn>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    pub fn header(&self) -> Option<Header> {
        self.header
    }

    /// The end LSN, once the end frame was read.
    pub fn end(&self) -> Option<Lsn> {
        self.end
    }

    /// Take `data`, hand every whole frame to `each`.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        each: &mut dyn FnMut(Frame) -> io::Result<()>,
    ) -> io::Result<()> {
        while !data.is_empty() {
            if self.end.is_some() {
                return Err(SegmentError::Trailing.into());
            }
            let want = self.want()?;
            let n = (want - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == want {
                self.complete(each)?;
            }
        }
        Ok(())
    }

    /// How many bytes the current item (header, frame head, or frame) needs in `buf`.
    fn want(&self) -> io::Result<usize> {
        if self.header.is_none() {
            return Ok(HEADER_LEN);
        }
        if self.buf.len() < FRAME_HEAD {
            return Ok(FRAME_HEAD);
        }
        let len = u32::from_be_bytes(self.buf[8..12].try_into().expect("4"));
        if len == END_MARK {
            return Ok(FRAME_HEAD);
        }
        if len > MAX_MESSAGE {
            return Err(SegmentError::TooLarge(len).into());
        }
        Ok(FRAME_HEAD + len as usize)
    }

    fn complete(&mut self, each: &mut dyn FnMut(Frame) -> io::Result<()>) -> io::Result<()> {
        let b = &self.buf;
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8"));
        if self.header.is_none() {
            if &b[..8] != MAGIC {
                return Err(SegmentError::NotASegment.into());
            }
            let version = u32::from_be_bytes(b[8..12].try_into().expect("4"));
            if version > FORMAT_VERSION {
                return Err(SegmentError::NewerVersion(version).into());
            }
            self.header = Some(Header {
                version,
                start: Lsn(u64_at(12)),
                system_id: u64_at(20),
                timeline: u32::from_be_bytes(b[28..32].try_into().expect("4")),
            });
            self.buf.clear();
            return Ok(());
        }
        let lsn = Lsn(u64_at(0));
        let len = u32::from_be_bytes(b[8..12].try_into().expect("4"));
        if len == END_MARK {
            self.end = Some(lsn);
            self.buf.clear();
            return Ok(());
        }
        if b.len() == FRAME_HEAD && len > 0 {
            return Ok(()); // the head alone: the body follows
        }
        let data = std::mem::take(&mut self.buf).split_off(FRAME_HEAD);
        each(Frame { lsn, data })
    }

    /// The input ended: it must have ended with the end frame.
    pub fn finish(&self) -> Result<(Header, Lsn), SegmentError> {
        match (self.header, self.end) {
            (Some(h), Some(e)) => Ok((h, e)),
            _ => Err(SegmentError::Truncated),
        }
    }
}

/// Every frame of a whole segment read from `r` (tests, tools; the check streams instead).
pub fn read_all(mut r: impl Read) -> io::Result<(Header, Vec<Frame>, Lsn)> {
    let mut d = Decoder::new();
    let mut frames = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        d.feed(&buf[..n], &mut |f| {
            frames.push(f);
            Ok(())
        })?;
    }
    let (h, end) = d.finish()?;
    Ok((h, frames, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = Header::new(Lsn(0x10), 7, 1).encode();
        encode_frame(&mut b, Lsn(0x20), b"B...");
        encode_frame(&mut b, Lsn(0x20), b"");
        encode_frame(&mut b, Lsn(0x30), &[0u8; 1000]);
        b.extend(encode_end(Lsn(0x40)));
        b
    }

    #[test]
    fn frames_round_trip_in_any_chunking() {
        let bytes = sample();
        for chunk in [1, 3, 12, 13, 4096] {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for c in bytes.chunks(chunk) {
                d.feed(c, &mut |f| {
                    got.push(f);
                    Ok(())
                })
                .unwrap();
            }
            let (h, end) = d.finish().unwrap();
            assert_eq!(h, Header::new(Lsn(0x10), 7, 1));
            assert_eq!(end, Lsn(0x40));
            let lens: Vec<(u64, usize)> = got.iter().map(|f| (f.lsn.0, f.data.len())).collect();
            assert_eq!(lens, [(0x20, 4), (0x20, 0), (0x30, 1000)], "chunk {chunk}");
        }
    }

    #[test]
    fn damage_is_named() {
        let bytes = sample();
        let err = |b: &[u8]| {
            read_all(b)
                .unwrap_err()
                .into_inner()
                .unwrap()
                .downcast::<SegmentError>()
                .map(|e| *e)
                .unwrap()
        };
        // Every cut short of the end is truncated.
        for cut in 0..bytes.len() {
            assert_eq!(err(&bytes[..cut]), SegmentError::Truncated, "cut {cut}");
        }
        let mut more = bytes.clone();
        more.push(0);
        assert_eq!(err(&more), SegmentError::Trailing);
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert_eq!(err(&magic), SegmentError::NotASegment);
        let mut newer = bytes.clone();
        newer[11] = 2;
        assert_eq!(err(&newer), SegmentError::NewerVersion(2));
        assert!(SegmentError::NewerVersion(2)
            .to_string()
            .contains("upgrade pgdr"));
    }
}
