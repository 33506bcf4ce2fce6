//! Signed objects (issue 19): the host that writes a manifest, a segment entry or a record
//! signs its exact stored bytes when it has a signing key (`[signing] key_file`), and readers
//! that restore, verify or drill accept a backup only when a trusted key (`[trust] keys`)
//! signed its manifest. The manifest holds the sha256 of every object, so its signature
//! covers them all. The signature is its own object, `<key>.minisig`, written before the
//! object it signs (the manifest and segment entry stay the commit markers).
//!
//! Transition rule: with no trust key configured at all, a reader warns and proceeds (the
//! record says `no_trust_keys`), so existing users keep working; as soon as one trust key
//! exists, unsigned and foreign backups are refused unless `--allow-unsigned` is given.

use std::sync::Arc;

use bytes::Bytes;

use super::format::signature::{Acceptance, BackupSignature};
use super::{BackupId, Key, Manifest, Repository};
use crate::codec::sign::{self, BadSignature, SigningKey, TrustKeys};
use crate::config::SigningSettings;
use crate::error::{Kind, PgdrError, Result};

/// What this host signs with and what it accepts, from the settings.
#[derive(Debug, Clone, Default)]
pub struct Signing {
    pub key: Option<Arc<SigningKey>>,
    pub trust: TrustKeys,
    pub allow_unsigned: bool,
}

impl Signing {
    pub fn load(s: &SigningSettings) -> Result<Signing> {
        let key = match &s.key_file {
            Some(p) => Some(Arc::new(SigningKey::load(p)?)),
            None => None,
        };
        Ok(Signing {
            key,
            trust: TrustKeys::parse(&s.trust_keys)?,
            allow_unsigned: s.allow_unsigned,
        })
    }
}

/// Who signed an object, as `show` and `list --json` report it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignedBy {
    /// The key id the signature names; None when the object has no signature.
    pub key_id: Option<String>,
    /// Whether that key is one of this host's trust keys (false without trust keys).
    pub trusted: bool,
}

impl Repository {
    /// Whether this host checks signatures at all (rekey re-signs only what it could check).
    pub fn has_trust_keys(&self) -> bool {
        !self.signing.trust.is_empty()
    }

    /// The key id this repository handle signs with, if any.
    pub fn signing_key_id(&self) -> Option<&str> {
        self.signing.key.as_deref().map(SigningKey::key_id)
    }

    /// Store `body` under `key`, its signature first when this host has a signing key.
    pub(super) async fn put_signed(&self, key: &Key, body: Bytes) -> Result<()> {
        if let Some(k) = &self.signing.key {
            let sig = k.sign(&body, &key.to_string())?;
            self.put_bytes(&key.signature(), Bytes::from(sig)).await?;
        }
        self.put_bytes(key, body).await
    }

    /// The key id an object's signature names, for `list`: who signed, not whether the
    /// signature holds (readers that use the object check that: `authenticate`). None when
    /// unsigned; an unreadable signature names nobody.
    pub(super) async fn signer(&self, key: &Key) -> Option<String> {
        match self.get_bytes(&key.signature()).await {
            Ok(b) => sign::signer(&b),
            Err(e) if e.kind == Kind::NotFound => None,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "could not read the signature");
                None
            }
        }
    }

    /// Who signed an object (not checked against the bytes: for display).
    pub async fn signed_by(&self, key: &Key) -> Result<SignedBy> {
        let key_id = match self.get_bytes(&key.signature()).await {
            Ok(b) => sign::signer(&b),
            Err(e) if e.kind == Kind::NotFound => None,
            Err(e) => return Err(e),
        };
        let trusted = key_id
            .as_ref()
            .is_some_and(|id| self.signing.trust.ids().contains(id));
        Ok(SignedBy { key_id, trusted })
    }

    /// Whether a reader may use this backup: its manifest's signature is checked over the
    /// exact stored bytes against the trust keys. Refusals name the backup, the key and the fix.
    pub async fn authenticate(&self, m: &Manifest) -> Result<BackupSignature> {
        let key = Key::manifest(&m.database, &m.id);
        let bytes = self.get_bytes(&key).await?;
        if Manifest::from_json(&bytes, &key.to_string())? != *m {
            return Err(PgdrError::corrupt(format!(
                "{key}: the manifest changed while it was read"
            ))
            .hint("run the command again; if it persists, someone is writing the repository"));
        }
        let sig = match self.get_bytes(&key.signature()).await {
            Ok(s) => Some(s),
            Err(e) if e.kind == Kind::NotFound => None,
            Err(e) => return Err(e),
        };
        let name = format!("{}/{}", m.database, m.id);
        if self.signing.trust.is_empty() {
            let key_id = sig.as_deref().and_then(sign::signer);
            tracing::warn!(backup = %name, signed_by = key_id.as_deref().unwrap_or("nobody"),
                "unsigned backup, no trust keys configured: its origin is not checked (set [trust] keys to refuse forgeries)");
            return Ok(BackupSignature {
                acceptance: Acceptance::NoTrustKeys,
                key_id,
                problem: None,
            });
        }
        let checked = match &sig {
            None => Err(None),
            Some(s) => self.signing.trust.check(&bytes, s).map_err(Some),
        };
        match checked {
            Ok(id) => Ok(BackupSignature {
                acceptance: Acceptance::Trusted,
                key_id: Some(id),
                problem: None,
            }),
            Err(bad) => {
                let refusal = self.refusal(&name, &m.id, bad.as_ref());
                if !self.signing.allow_unsigned {
                    return Err(refusal);
                }
                tracing::warn!(backup = %name, problem = %refusal.message, "read anyway: --allow-unsigned");
                Ok(BackupSignature {
                    acceptance: Acceptance::AllowedUnsigned,
                    key_id: sig.as_deref().and_then(sign::signer),
                    problem: Some(refusal.message),
                })
            }
        }
    }

    fn refusal(&self, name: &str, id: &BackupId, bad: Option<&BadSignature>) -> PgdrError {
        let trusted = self.signing.trust.ids().join(", ");
        let once = "to read it once anyway, pass --allow-unsigned (recorded)";
        match bad {
            None => PgdrError::crypto(format!(
                "backup {name} is not signed, and this host trusts only signatures by {trusted}"
            ))
            .hint(format!("if it is yours and you have checked it: `pgdr sign {id} --signing-key FILE`"))
            .hint(once),
            Some(BadSignature::UnknownKey(k)) => PgdrError::crypto(format!(
                "backup {name} is signed by key {k}, which is not a trusted key ({trusted})"
            ))
            .hint(format!("if {k} is your backup host's key, add it to [trust] keys (or --trust-key); otherwise the backup was not written by your hosts"))
            .hint(once),
            Some(BadSignature::Mismatch(k)) => PgdrError::crypto(format!(
                "signature does not match manifest.json of backup {name} (key {k})"
            ))
            .hint("the manifest was changed after it was signed: this backup cannot be trusted")
            .hint(once),
            Some(BadSignature::Unreadable(e)) => PgdrError::crypto(format!(
                "the signature of backup {name} is not a minisign signature ({e})"
            ))
            .hint(once),
        }
    }

    /// The change-capture segments a point-in-time restore replays: each entry (which holds
    /// its segment's sha256) must be signed by a trusted key, under the same rule as a
    /// manifest. Returns how many were let through unproven (`--allow-unsigned`).
    pub async fn authenticate_segments(
        &self,
        database: &str,
        starts: &[crate::source::Lsn],
    ) -> Result<usize> {
        if self.signing.trust.is_empty() {
            return Ok(0);
        }
        let mut unproven = 0;
        for start in starts {
            let key = Key::SegmentEntry {
                database: database.to_string(),
                start: *start,
            };
            let bytes = self.get_bytes(&key).await?;
            let checked = match self.get_bytes(&key.signature()).await {
                Ok(sig) => self.signing.trust.check(&bytes, &sig).map_err(Some),
                Err(e) if e.kind == Kind::NotFound => Err(None),
                Err(e) => return Err(e),
            };
            let Err(bad) = checked else { continue };
            let why = why_not(bad);
            if !self.signing.allow_unsigned {
                return Err(PgdrError::crypto(format!("segment entry {key} {why}"))
                    .hint("the capture host signs segments with [signing] key_file; trust its key with [trust] keys")
                    .hint("to replay it once anyway, pass --allow-unsigned (recorded)"));
            }
            tracing::warn!(segment = %key, problem = %why, "replayed anyway: --allow-unsigned");
            unproven += 1;
        }
        Ok(unproven)
    }

    /// A mark `restore --at-mark` stops at, checked over `bytes` (the mark as read) under the
    /// segments' rule: a planted or changed mark would move the stop point. Returns how the
    /// plan describes its signature; refuses an unsigned or foreign one unless
    /// `--allow-unsigned`.
    pub(super) async fn authenticate_mark(&self, key: &Key, bytes: &[u8]) -> Result<String> {
        let sig = match self.get_bytes(&key.signature()).await {
            Ok(s) => Some(s),
            Err(e) if e.kind == Kind::NotFound => None,
            Err(e) => return Err(e),
        };
        if self.signing.trust.is_empty() {
            return Ok(match sig.as_deref().and_then(sign::signer) {
                Some(k) => format!("signed by key {k}, not checked: no trust keys configured"),
                None => "unsigned (no trust keys configured)".to_string(),
            });
        }
        let checked = match &sig {
            None => Err(None),
            Some(s) => self.signing.trust.check(bytes, s).map_err(Some),
        };
        match checked {
            Ok(id) => Ok(format!("signed by trusted key {id}")),
            Err(bad) => {
                let why = why_not(bad);
                if !self.signing.allow_unsigned {
                    return Err(PgdrError::crypto(format!("mark {key} {why}"))
                        .hint("`pgdr mark` signs marks with [signing] key_file; trust that key with [trust] keys")
                        .hint("to restore to it once anyway, pass --allow-unsigned (recorded)"));
                }
                tracing::warn!(mark = %key, problem = %why, "used anyway: --allow-unsigned");
                Ok(format!("NOT PROVEN: {why}; used by --allow-unsigned"))
            }
        }
    }

    /// `pgdr sign`: sign a committed backup's manifest as stored, after it proved its own
    /// checksum and names. Returns false when it already had a signature (left as is).
    pub async fn sign_backup(&self, database: &str, id: &BackupId) -> Result<bool> {
        let Some(k) = &self.signing.key else {
            return Err(PgdrError::usage("pgdr sign needs a signing key")
                .hint("give --signing-key FILE (or PGDR_SIGNING_KEY, [signing] key_file)"));
        };
        let key = Key::manifest(database, id);
        match self.get_bytes(&key.signature()).await {
            Ok(_) => return Ok(false),
            Err(e) if e.kind == Kind::NotFound => {}
            Err(e) => return Err(e),
        }
        // The checksum and the names are checked before anything is signed.
        self.load_exact(database, id).await?;
        let bytes = self.get_bytes(&key).await?;
        let sig = k.sign(&bytes, &key.to_string())?;
        self.put_bytes(&key.signature(), Bytes::from(sig)).await?;
        Ok(true)
    }
}

/// Why an object's signature does not prove it, after the object's name.
fn why_not(bad: Option<BadSignature>) -> String {
    match bad {
        None => "is not signed".to_string(),
        Some(BadSignature::UnknownKey(k)) => {
            format!("is signed by key {k}, which is not a trusted key")
        }
        Some(BadSignature::Mismatch(k)) => {
            format!("does not match its signature (key {k}): it was changed after it was signed")
        }
        Some(BadSignature::Unreadable(e)) => format!("has an unreadable signature ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::manifest;

    fn signing(dir: &std::path::Path, name: &str) -> (Signing, String) {
        let p = dir.join(name);
        let (public, _) = sign::generate(&p).unwrap();
        let key = Some(Arc::new(SigningKey::load(&p).unwrap()));
        let s = Signing {
            key,
            ..Default::default()
        };
        (s, public)
    }

    #[tokio::test]
    async fn readers_accept_only_trusted_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(crate::store::memory::MemoryStore::new());
        let (host, host_pub) = signing(dir.path(), "host.key");
        let (other, _) = signing(dir.path(), "other.key");
        let writer = Repository::new(store.clone()).with_signing(host);
        let m = manifest::tests::sample();
        writer.commit(&m).await.unwrap();
        let trust = TrustKeys::parse(&[host_pub]).unwrap();
        let reader = Repository::new(store.clone()).with_signing(Signing {
            trust: trust.clone(),
            ..Default::default()
        });
        let ok = reader.authenticate(&m).await.unwrap();
        assert_eq!(ok.acceptance, Acceptance::Trusted);
        assert_eq!(ok.key_id.as_deref(), writer.signing_key_id());
        // Unsigned.
        let k = Key::manifest(&m.database, &m.id);
        reader.delete(&k.signature()).await.unwrap();
        let e = reader.authenticate(&m).await.unwrap_err();
        assert!(e.message.contains("is not signed"), "{}", e.message);
        // Signed by another key.
        Repository::new(store.clone())
            .with_signing(other)
            .commit(&m)
            .await
            .unwrap();
        let e = reader.authenticate(&m).await.unwrap_err();
        assert!(e.message.contains("not a trusted key"), "{}", e.message);
        // --allow-unsigned lets it through, saying why.
        let lenient = Repository::new(store.clone()).with_signing(Signing {
            trust,
            allow_unsigned: true,
            ..Default::default()
        });
        let a = lenient.authenticate(&m).await.unwrap();
        assert_eq!(a.acceptance, Acceptance::AllowedUnsigned);
        assert!(a.problem.unwrap().contains("not a trusted key"));
        // No trust keys at all: the transition rule, a warning.
        let open = Repository::new(store.clone());
        assert_eq!(
            open.authenticate(&m).await.unwrap().acceptance,
            Acceptance::NoTrustKeys
        );
        assert!(open.sign_backup(&m.database, &m.id).await.is_err());
    }

    #[tokio::test]
    async fn segment_entries_are_signed_by_the_capture_host_and_checked_on_replay() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(crate::store::memory::MemoryStore::new());
        let (host, host_pub) = signing(dir.path(), "capture.key");
        let e: crate::catalog::segments::SegmentEntry = serde_json::from_str(include_str!(
            "../../tests/fixtures/format/segment-entry-v1.json"
        ))
        .unwrap();
        let start = e.start;
        Repository::new(store.clone())
            .with_signing(host)
            .commit_segment(&e)
            .await
            .unwrap();
        let reader = Repository::new(store.clone()).with_signing(Signing {
            trust: TrustKeys::parse(&[host_pub]).unwrap(),
            ..Default::default()
        });
        assert_eq!(
            reader
                .authenticate_segments(&e.database, &[start])
                .await
                .unwrap(),
            0
        );
        let key = Key::SegmentEntry {
            database: e.database.clone(),
            start,
        };
        // Planted by someone else: unsigned.
        reader.delete(&key.signature()).await.unwrap();
        let err = reader
            .authenticate_segments(&e.database, &[start])
            .await
            .unwrap_err();
        assert!(err.message.contains("is not signed"), "{}", err.message);
    }
}
