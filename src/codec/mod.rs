//! Byte-stream transforms: zstd compression, age encryption, sha256 checksums.
//!
//! Synchronous on purpose: it runs on a blocking thread between a pipe from pg_dump and a
//! bounded channel to the store, which keeps the hot loop free of async overhead and lets zstd
//! use its own worker threads. It knows neither the store nor the database. The stored format
//! is plain `age(zstd(archive))`, so `age -d -i KEY | zstd -d | pg_restore` works without pgdr.

use std::io::{self, Read, Write};
use std::str::FromStr;

mod search;
pub mod sign;

use sha2::{Digest, Sha256};
use zstd::stream::raw::CParameter;
use zstd::zstd_safe::ParamSwitch;

use crate::config::Compression;
use crate::error::{to_io, PgdrError, Result};

/// Chunk size of the read loop: large enough to amortise per-call costs, small enough that
/// memory stays flat.
pub const CHUNK: usize = 1024 * 1024;

/// Everything needed to encode, resolved and validated before any byte is written.
pub struct EncodeParams {
    pub compression: Compression,
    pub recipients: Vec<age::x25519::Recipient>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodeStats {
    /// Bytes read from the source (the plain archive).
    pub plain_bytes: u64,
    pub plain_sha256: String,
    /// Bytes after zstd, before age.
    pub compressed_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    pub plain_bytes: u64,
    pub plain_sha256: String,
}

/// Parse age recipients, naming the bad one. Only X25519 (`age1...`) keys: public keys only,
/// so a backup host cannot read its own backups.
pub fn parse_recipients(list: &[String]) -> Result<Vec<age::x25519::Recipient>> {
    if list.is_empty() {
        return Err(PgdrError::config("no age recipient configured").hint(
            "create a key with `pgdr keygen --out identity.txt` and pass its public key with --recipient age1... (or [encryption] recipients)",
        ));
    }
    list.iter()
        .map(|r| {
            age::x25519::Recipient::from_str(r.trim()).map_err(|e| {
                let shown: String = r.chars().take(12).collect();
                PgdrError::config(format!(
                    "recipient '{shown}...' is not a valid age public key: {e}"
                ))
                .hint("recipients look like age1... (62 characters); `pgdr keygen` prints one")
            })
        })
        .collect()
}

/// Decryption identities, shared by the concurrent object streams of one restore or proof.
pub type Identities = std::sync::Arc<Vec<age::x25519::Identity>>;

/// The identities of `--identity` / PGDR_IDENTITY, for commands that decrypt; its absence is
/// an error that says where the identity comes from.
/// Several files: all their identities together (any one may open a backup).
pub fn require_identities(paths: &[std::path::PathBuf]) -> Result<Vec<age::x25519::Identity>> {
    if paths.is_empty() {
        return Err(PgdrError::crypto("no identity given to decrypt the backup with").hint(
            "pass --identity FILE or set PGDR_IDENTITY (the age identity made by `pgdr keygen`)",
        ));
    }
    let mut all = Vec::new();
    for p in paths {
        all.extend(load_identities(p)?);
    }
    Ok(all)
}

/// Read identities (private keys) from an age identity file, as written by `pgdr keygen` or
/// `age-keygen`.
pub fn load_identities(path: &std::path::Path) -> Result<Vec<age::x25519::Identity>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        PgdrError::crypto(format!("cannot read identity file {}: {e}", path.display()))
            .hint("pass --identity FILE (or PGDR_IDENTITY) with the age identity that matches the backups' recipients")
    })?;
    let ids: Vec<_> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            age::x25519::Identity::from_str(l).map_err(|_| {
                PgdrError::crypto(format!(
                    "identity file {} contains a line that is not an age identity",
                    path.display()
                ))
                .hint("identity lines start with AGE-SECRET-KEY-1")
            })
        })
        .collect::<Result<_>>()?;
    if ids.is_empty() {
        return Err(PgdrError::crypto(format!(
            "identity file {} holds no identity",
            path.display()
        )));
    }
    Ok(ids)
}

/// Counts bytes passing into the inner writer.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Compress and encrypt everything `input` yields into `out`; `tap` sees each plaintext chunk
/// (the fingerprint parser listens there). The age writer is finished explicitly: dropping it
/// would silently truncate the last chunk.
pub fn encode<R: Read, W: Write>(
    mut input: R,
    out: W,
    params: &EncodeParams,
    tap: &mut dyn Write,
) -> io::Result<(EncodeStats, W)> {
    let recipients: Vec<&dyn age::Recipient> = params
        .recipients
        .iter()
        .map(|r| r as &dyn age::Recipient)
        .collect();
    let encryptor = age::Encryptor::with_recipients(recipients.into_iter())
        .map_err(|e| io::Error::other(format!("age: {e}")))?;
    let age_w = encryptor.wrap_output(out)?;
    let counted = Counting {
        inner: age_w,
        count: 0,
    };
    let (mut z, mut search) = zstd_encoder(counted, &params.compression)?;

    let mut sha = Sha256::new();
    let mut plain = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        sha.update(chunk);
        tap.write_all(chunk)?;
        z.write_all(chunk)?;
        plain += n as u64;
        if let Some(s) = search.as_mut() {
            let compressed = z.get_ref().count;
            s.adapt(&mut z, plain, compressed)?;
        }
    }
    tap.flush()?;
    let counted = z.finish()?;
    let compressed = counted.count;
    let out = counted.inner.finish()?;
    Ok((
        EncodeStats {
            plain_bytes: plain,
            plain_sha256: hex::encode(sha.finalize()),
            compressed_bytes: compressed,
        },
        out,
    ))
}

/// The zstd writer of [`encode`], with the search that adapts at level 1 (`search`).
fn zstd_encoder<W: Write>(
    out: W,
    c: &Compression,
) -> io::Result<(
    zstd::stream::write::Encoder<'static, W>,
    Option<search::Search>,
)> {
    let mut z = zstd::stream::write::Encoder::new(out, c.level)?;
    let threads = match c.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        n => n,
    };
    if threads > 1 {
        z.multithread(threads)?;
    }
    // No zstd frame checksum: the plaintext's sha256 (checked by every verify and restore) and
    // age's per-chunk MAC over the compressed bytes already catch any damage, and the checksum's
    // xxhash pass over every plaintext byte cost 2% of a backup's CPU. Frames written with one
    // (older backups) still decode and are checked.
    z.include_checksum(false)?;
    let search = search::Search::new(c.level);
    if search.is_some() {
        // Literals stay entropy-coded when the search steps faster (zstd's own default would
        // stop coding them once targetLength is set, which halves the ratio of random text).
        z.set_parameter(CParameter::LiteralCompressionMode(ParamSwitch::Enable))?;
    }
    Ok((z, search))
}

/// Decrypt and decompress `input` into `out`. A wrong key, a flipped byte (age's MAC) or a
/// truncated object all fail here, before `out` has seen the damaged part.
pub fn decode<R: Read, W: Write>(
    input: R,
    out: &mut W,
    identities: &[age::x25519::Identity],
) -> io::Result<DecodeStats> {
    let mut raw = io::BufReader::with_capacity(CHUNK, input);
    let mut sha = Sha256::new();
    let mut plain = 0u64;
    {
        let decryptor =
            age::Decryptor::new_buffered(&mut raw).map_err(|e| age_error(e, identities))?;
        let ids = identities.iter().map(|i| i as &dyn age::Identity);
        let reader = decryptor
            .decrypt(ids)
            .map_err(|e| age_error(e, identities))?;
        let mut z = zstd::stream::read::Decoder::new(reader)?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match z.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            sha.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            plain += n as u64;
        }
        out.flush()?;
    }
    // Read the raw input to its end, so that checks made at the end of the stored stream
    // (its sha256) run, and bytes appended after the age stream are caught.
    let extra = io::copy(&mut raw, &mut io::sink())?;
    if extra > 0 {
        return Err(to_io(PgdrError::corrupt(format!(
            "{extra} unexpected bytes follow the end of the encrypted stream"
        ))));
    }
    Ok(DecodeStats {
        plain_bytes: plain,
        plain_sha256: hex::encode(sha.finalize()),
    })
}

/// Decrypt with `identities` and encrypt again to `recipients`, chunk by chunk: the zstd
/// stream inside is passed through untouched (rekey needs no decompression). Memory stays
/// flat whatever the object's size.
pub fn reencrypt<R: Read, W: Write>(
    input: R,
    out: W,
    identities: &[age::x25519::Identity],
    recipients: &[age::x25519::Recipient],
) -> io::Result<W> {
    let mut raw = io::BufReader::with_capacity(CHUNK, input);
    let out = {
        let decryptor =
            age::Decryptor::new_buffered(&mut raw).map_err(|e| age_error(e, identities))?;
        let ids = identities.iter().map(|i| i as &dyn age::Identity);
        let mut reader = decryptor
            .decrypt(ids)
            .map_err(|e| age_error(e, identities))?;
        let rs = recipients.iter().map(|r| r as &dyn age::Recipient);
        let encryptor = age::Encryptor::with_recipients(rs)
            .map_err(|e| io::Error::other(format!("age: {e}")))?;
        let mut w = encryptor.wrap_output(out)?;
        io::copy(&mut reader, &mut w)?;
        w.finish()?
    };
    let extra = io::copy(&mut raw, &mut io::sink())?;
    if extra > 0 {
        return Err(to_io(PgdrError::corrupt(format!(
            "{extra} unexpected bytes follow the end of the encrypted stream"
        ))));
    }
    Ok(out)
}

fn age_error(e: age::DecryptError, identities: &[age::x25519::Identity]) -> io::Error {
    match e {
        age::DecryptError::NoMatchingKeys => {
            let have: Vec<String> = identities
                .iter()
                .map(|i| i.to_public().to_string())
                .collect();
            to_io(
                PgdrError::crypto(format!(
                    "no identity matches the backup's recipients (identity public keys: {})",
                    have.join(", ")
                ))
                .hint("use the identity file whose public key is listed under recipients in `pgdr show`"),
            )
        }
        age::DecryptError::Io(e) => e,
        other => to_io(PgdrError::corrupt(format!(
            "the stored object is damaged or not an age file: {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(level: i32, threads: u32) -> (EncodeParams, age::x25519::Identity) {
        let id = age::x25519::Identity::generate();
        (
            EncodeParams {
                compression: Compression { level, threads },
                recipients: vec![id.to_public()],
            },
            id,
        )
    }

    #[test]
    fn round_trip_and_stats() {
        let data: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let (p, id) = params(3, 2);
        let mut tapped = Vec::new();
        let (st, stored) = encode(&data[..], Vec::new(), &p, &mut tapped).unwrap();
        assert_eq!(tapped, data);
        assert_eq!(st.plain_bytes, data.len() as u64);
        assert!(st.compressed_bytes < st.plain_bytes / 4);
        let mut back = Vec::new();
        let ds = decode(&stored[..], &mut back, &[id]).unwrap();
        assert_eq!(back, data);
        assert_eq!(ds.plain_sha256, st.plain_sha256);
    }

    /// The `zstd_search` debug events `f` logs on this thread, one line each.
    fn search_events(f: impl FnOnce()) -> Vec<String> {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(sub, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|l| l.contains("zstd_search"))
            .map(str::to_string)
            .collect()
    }

    /// Rows of random hex (the hard case) then repeating rows, four windows each (zstd's
    /// output lags its input by a few jobs): the search steps faster and back again mid-stream (`search`, seen in its events), and the frame still decodes to
    /// the same bytes with the literals of the random part entropy-coded (over 1.8:1, where
    /// uncoded hex is 1:1).
    #[test]
    fn adaptive_search_round_trips() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut data = Vec::new();
        let mut i = 0u64;
        while data.len() < 4 * search::WINDOW as usize {
            data.extend_from_slice(format!("{i}\t1\t0\t").as_bytes());
            for _ in 0..84 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                data.push(b"0123456789abcdef"[(x & 15) as usize]);
            }
            data.push(b'\n');
            i += 1;
        }
        let hard = data.len() as u64;
        let row = b"1\t1\t0\t                                        \n";
        while (data.len() as u64) < hard + 4 * search::WINDOW {
            data.extend_from_slice(row);
        }
        let (p, id) = params(1, 2);
        let mut encoded = None;
        let events = search_events(|| {
            encoded = Some(encode(&data[..], Vec::new(), &p, &mut io::sink()).unwrap());
        });
        assert!(
            events.len() == 2
                && events[0].contains("steps ahead faster")
                && events[1].contains("searches fully again"),
            "{events:#?}"
        );
        let (st, stored) = encoded.unwrap();
        assert!(
            st.compressed_bytes * 18 < hard * 10,
            "{} of {hard}",
            st.compressed_bytes
        );
        let mut back = Vec::new();
        let ds = decode(&stored[..], &mut back, &[id]).unwrap();
        assert!(back == data, "the decoded stream differs");
        assert_eq!(ds.plain_sha256, st.plain_sha256);
    }

    #[test]
    fn wrong_key_and_flipped_byte_fail() {
        let data = b"hello world, hello world".repeat(1000);
        let (p, _id) = params(1, 1);
        let (_, mut stored) = encode(&data[..], Vec::new(), &p, &mut io::sink()).unwrap();
        let other = age::x25519::Identity::generate();
        let e = decode(&stored[..], &mut Vec::new(), &[other]).unwrap_err();
        assert!(e.to_string().contains("no identity matches"), "{e}");

        let (p, id) = params(1, 1);
        let (_, s2) = encode(&data[..], Vec::new(), &p, &mut io::sink()).unwrap();
        stored = s2;
        let mid = stored.len() / 2;
        stored[mid] ^= 0x01;
        assert!(decode(&stored[..], &mut Vec::new(), std::slice::from_ref(&id)).is_err());
        stored[mid] ^= 0x01;
        stored.truncate(stored.len() - 10);
        assert!(decode(&stored[..], &mut Vec::new(), &[id]).is_err());
    }

    #[test]
    fn malformed_recipient_is_named() {
        let e = parse_recipients(&["age1notakey".into()]).unwrap_err();
        assert!(
            e.message.starts_with("recipient 'age1notakey..."),
            "{}",
            e.message
        );
    }
}
