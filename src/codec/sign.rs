//! Detached ed25519 signatures in minisign's format (prehashed, `.minisig` text), so an
//! operator checks a stored object by hand: `minisign -Vm manifest.json -P <public key>`.
//!
//! age encrypts to a public recipient that every manifest prints: anyone who can write the
//! repository can plant a backup that decrypts. A signature by the backup host's key over the
//! exact stored bytes of a manifest (which holds the sha256 of every object) is what tells a
//! reader the backup is the host's. The secret key file is unencrypted on purpose: the backup
//! host signs unattended, so a password would have to sit beside it anyway.
//! Bytes in, bytes out: this module knows neither the store nor the database.

use std::io::{Cursor, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use minisign::{KeyPair, PublicKey, PublicKeyBox, SecretKey, SecretKeyBox, SignatureBox};

use crate::error::{PgdrError, Result};

/// A key id as minisign prints it: 16 upper-case hex digits.
pub type KeyId = String;

fn key_id(keynum: &[u8]) -> KeyId {
    let mut b = [0u8; 8];
    b.copy_from_slice(&keynum[..8]);
    format!("{:016X}", u64::from_le_bytes(b))
}

/// The signing key of a host that writes manifests, segment entries or records.
pub struct SigningKey {
    sk: SecretKey,
    pk: PublicKey,
    id: KeyId,
    path: PathBuf,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret: only which key it is.
        write!(f, "SigningKey({} from {})", self.id, self.path.display())
    }
}

impl SigningKey {
    /// Read an unencrypted minisign secret key (`pgdr keygen --signing`, `minisign -GW`).
    pub fn load(path: &Path) -> Result<SigningKey> {
        let bad =
            |what: String| PgdrError::config(format!("signing key {}: {what}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| {
            bad(format!("cannot be read: {e}"))
                .hint("create one with `pgdr keygen --signing --out FILE`, or fix --signing-key / PGDR_SIGNING_KEY / [signing] key_file")
        })?;
        let sk = SecretKeyBox::from_string(&text)
            .and_then(|b| b.into_unencrypted_secret_key())
            .map_err(|e| {
                bad(format!("not an unencrypted minisign secret key ({e})")).hint(
                    "the host signs unattended, so the key has no password: make one with `pgdr keygen --signing --out FILE` (or `minisign -GW`)",
                )
            })?;
        let pk = PublicKey::from_secret_key(&sk)
            .map_err(|e| bad(format!("holds no public key ({e})")))?;
        let id = key_id(sk.keynum());
        Ok(SigningKey {
            sk,
            pk,
            id,
            path: path.to_path_buf(),
        })
    }

    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The public key (base64, as `minisign -P` and `[trust] keys` take it).
    pub fn public_key(&self) -> String {
        self.pk.to_base64()
    }

    /// A detached signature over `data`, as the text of a `.minisig` file. `what` (the
    /// object's key) goes into the signed trusted comment, so a hand check shows what it is.
    pub fn sign(&self, data: &[u8], what: &str) -> Result<Vec<u8>> {
        let comment = format!("pgdr {what} timestamp:{}", chrono::Utc::now().timestamp());
        let sig = minisign::sign(
            Some(&self.pk),
            &self.sk,
            Cursor::new(data),
            Some(&comment),
            Some(&format!("signature from pgdr key {}", self.id)),
        )
        .map_err(|e| PgdrError::internal(format!("signing {what}: {e}")))?;
        Ok(sig.into_string().into_bytes())
    }
}

/// Why a signature did not prove an object: the reader names it and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadSignature {
    /// Not a minisign signature at all.
    Unreadable(String),
    /// Signed, but by a key not in the trust list.
    UnknownKey(KeyId),
    /// By a trusted key, but over other bytes (the object was changed after signing).
    Mismatch(KeyId),
}

/// The public keys whose signatures a reader accepts (`[trust] keys`, `--trust-key`,
/// `PGDR_TRUST_KEYS`).
#[derive(Clone, Default)]
pub struct TrustKeys {
    keys: Vec<(KeyId, PublicKey)>,
}

impl std::fmt::Debug for TrustKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.0))
            .finish()
    }
}

impl TrustKeys {
    /// Each key as minisign's base64 public key (the line `pgdr keygen --signing` prints), or
    /// a whole minisign public key file's text.
    pub fn parse(keys: &[String]) -> Result<TrustKeys> {
        let mut out = Vec::new();
        for k in keys.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
            let line = k
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
                .unwrap_or(k);
            let pk = PublicKey::from_base64(line).map_err(|e| {
                PgdrError::config(format!("trust key '{line}' is not a minisign public key ({e})"))
                    .hint("give the public key `pgdr keygen --signing` printed (56 characters, starting with RW)")
            })?;
            out.push((key_id(&pk_keynum(&pk)), pk));
        }
        Ok(TrustKeys { keys: out })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|k| k.0.clone()).collect()
    }

    /// Which trusted key signed exactly these bytes.
    pub fn check(&self, data: &[u8], signature: &[u8]) -> std::result::Result<KeyId, BadSignature> {
        let sig = parse_signature(signature)?;
        let id = key_id(sig.keynum());
        let Some((_, pk)) = self.keys.iter().find(|(k, _)| *k == id) else {
            return Err(BadSignature::UnknownKey(id));
        };
        minisign::verify(pk, &sig, Cursor::new(data), true, false, false)
            .map(|()| id.clone())
            .map_err(|_| BadSignature::Mismatch(id))
    }
}

fn pk_keynum(pk: &PublicKey) -> Vec<u8> {
    // to_bytes is sig_alg (2) + keynum (8) + key (32).
    pk.to_bytes()[2..10].to_vec()
}

fn parse_signature(signature: &[u8]) -> std::result::Result<SignatureBox, BadSignature> {
    let text =
        std::str::from_utf8(signature).map_err(|_| BadSignature::Unreadable("not text".into()))?;
    SignatureBox::from_string(text).map_err(|e| BadSignature::Unreadable(e.to_string()))
}

/// The key id a signature names, without checking it (readers show who signed a record).
pub fn signer(signature: &[u8]) -> Option<KeyId> {
    parse_signature(signature).ok().map(|s| key_id(s.keynum()))
}

/// `pgdr keygen --signing`: a new key pair, the secret key written 0600 (never over an
/// existing file). Returns the public key (base64) and its key id.
pub fn generate(out: &Path) -> Result<(String, KeyId)> {
    let KeyPair { pk, sk } = KeyPair::generate_unencrypted_keypair()
        .map_err(|e| PgdrError::internal(format!("generating a signing key: {e}")))?;
    let id = key_id(sk.keynum());
    let comment = format!("pgdr signing key {id} (unencrypted: the host signs unattended)");
    let text = sk
        .to_box(Some(&comment))
        .map_err(|e| PgdrError::internal(format!("encoding the signing key: {e}")))?
        .into_string();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| {
            let err = PgdrError::config(format!(
                "cannot create signing key file {}: {e}",
                out.display()
            ));
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                err.hint("pgdr never overwrites a key; choose another --out")
            } else {
                err.hint("choose a writable --out path")
            }
        })?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| {
            PgdrError::config(format!("writing signing key file {}: {e}", out.display()))
        })?;
    let public: PublicKeyBox = pk
        .to_box()
        .map_err(|e| PgdrError::internal(format!("encoding the public key: {e}")))?;
    let public = PublicKey::from_box(public)
        .map_err(|e| PgdrError::internal(e.to_string()))?
        .to_base64();
    Ok((public, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair(dir: &Path, name: &str) -> (SigningKey, String) {
        let p = dir.join(name);
        let (public, id) = generate(&p).unwrap();
        let k = SigningKey::load(&p).unwrap();
        assert_eq!(k.key_id(), id);
        assert_eq!(k.public_key(), public);
        (k, public)
    }

    #[test]
    fn a_signature_names_its_key_and_the_bytes_it_covers() {
        let dir = tempfile::tempdir().unwrap();
        let (a, a_pub) = keypair(dir.path(), "a.key");
        let (b, _) = keypair(dir.path(), "b.key");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("a.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let trust = TrustKeys::parse(&[a_pub]).unwrap();
        let data = b"{\"manifest\": 1}";
        let sig = a.sign(data, "app/x/manifest.json").unwrap();
        assert_eq!(trust.check(data, &sig), Ok(a.key_id().to_string()));
        assert_eq!(signer(&sig).as_deref(), Some(a.key_id()));
        let mut flipped = data.to_vec();
        flipped[3] ^= 1;
        assert_eq!(
            trust.check(&flipped, &sig),
            Err(BadSignature::Mismatch(a.key_id().to_string()))
        );
        let other = b.sign(data, "x").unwrap();
        assert_eq!(
            trust.check(data, &other),
            Err(BadSignature::UnknownKey(b.key_id().to_string()))
        );
        assert!(matches!(
            trust.check(data, b"nonsense"),
            Err(BadSignature::Unreadable(_))
        ));
        assert!(
            generate(&dir.path().join("a.key")).is_err(),
            "never overwrites"
        );
        assert!(TrustKeys::parse(&["RWQnot-a-key".into()]).is_err());
        assert!(format!("{a:?}").contains(a.key_id()));
    }
}
