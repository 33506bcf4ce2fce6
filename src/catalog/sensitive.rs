//! The encrypted object that holds the schema fingerprint's sensitive values
//! (`fingerprint::sensitive` decides what is sensitive and splits it off): its file, its JSON
//! format, and how a manifest gets its values back once the object is decrypted. The
//! Repository owns it like every other stored format.

use crate::catalog::format::fingerprint::StoredSensitive;
use crate::catalog::Manifest;
use crate::error::{PgdrError, Result};
use crate::fingerprint::schema::SchemaFingerprint;
use crate::fingerprint::sensitive::merge;

/// Name of the object in the manifest's object list.
pub const OBJECT: &str = "sensitive";
/// File name of the object inside the backup folder.
pub const FILE: &str = "sensitive.json.zst.age";

/// Format of the encrypted object's JSON ([`StoredSensitive`]).
const FORMAT_VERSION: u32 = crate::catalog::format::fingerprint::SENSITIVE_FORMAT;

/// The object's plaintext (JSON) for `secret`.
pub fn to_bytes(secret: &SchemaFingerprint) -> Result<Vec<u8>> {
    let obj = StoredSensitive {
        format_version: FORMAT_VERSION,
        schema: secret.into(),
    };
    serde_json::to_vec(&obj).map_err(|e| PgdrError::internal(e.to_string()))
}

/// Parse the object's plaintext; errors name the file, never a value.
pub fn from_bytes(bytes: &[u8]) -> Result<SchemaFingerprint> {
    let obj: StoredSensitive = serde_json::from_slice(bytes).map_err(|e| {
        PgdrError::corrupt(format!(
            "object {FILE}: not readable (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if obj.format_version > FORMAT_VERSION {
        return Err(PgdrError::corrupt(format!(
            "object {FILE}: format {} is newer than this pgdr understands ({FORMAT_VERSION})",
            obj.format_version
        ))
        .hint("upgrade pgdr to read this backup"));
    }
    Ok(obj.schema.into())
}

/// Check that decrypted `bytes` of the object belong to `m`'s fingerprint (quick verify).
pub fn check(m: &Manifest, bytes: &[u8]) -> Result<()> {
    reveal_with(m, bytes).map(|_| ())
}

pub fn reveal_with(m: &Manifest, bytes: &[u8]) -> Result<Manifest> {
    let secret = from_bytes(bytes)?;
    let mut out = m.clone();
    let fp = out.fingerprint.as_mut().ok_or_else(|| {
        PgdrError::corrupt(format!(
            "backup {}: has {FILE} but no fingerprint in its manifest",
            m.id
        ))
    })?;
    let public = fp.schema.clone().unwrap_or_default();
    let full = merge(&public, &secret).map_err(|e| {
        PgdrError::corrupt(format!("object {FILE}: {e}"))
            .hint("the backup was altered after it was written; use another backup")
    })?;
    if fp.schema.is_some() {
        fp.schema = Some(full);
    }
    fp.revealed = true;
    Ok(out)
}

/// Refuse to use a fingerprint whose values are still sealed: replaying `(encrypted)` as a
/// setting, or comparing it, would be silently wrong.
pub fn require_revealed(m: &Manifest) -> Result<()> {
    let sealed = m.object(OBJECT).is_some() && m.fingerprint.as_ref().is_some_and(|f| !f.revealed);
    if sealed {
        return Err(PgdrError::internal(format!(
            "backup {}: the fingerprint's sensitive values were not decrypted before use",
            m.id
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::sensitive::split;
    use crate::fingerprint::sensitive::tests::sample;
    use serde_json::json;

    fn empty_data() -> crate::fingerprint::ArchiveSummary {
        serde_json::from_value(json!({"version": "1.14.0", "database": "app",
            "server_version": "15", "pg_dump_version": "15", "encoding": null,
            "toc_entries": 0, "tables": [], "large_objects": []}))
        .unwrap()
    }
    #[test]
    fn object_bytes_round_trip() {
        let mut public = sample();
        let secret = split(&mut public);
        assert_eq!(from_bytes(&to_bytes(&secret).unwrap()).unwrap(), secret);
        let e = from_bytes(br#"{"format_version": 9, "schema": {"sections": {}}}"#).unwrap_err();
        assert!(e.message.contains("format 9 is newer"), "{}", e.message);
        let e = from_bytes(b"{\"s3cret").unwrap_err();
        assert!(!e.message.contains("s3cret"), "{}", e.message);
    }
    #[test]
    fn format_1_manifest_with_values_in_clear_still_reads_and_needs_no_object() {
        let mut m = crate::catalog::manifest::tests::sample();
        m.format_version = 1;
        m.fingerprint = Some(crate::fingerprint::Fingerprint {
            data: empty_data(),
            schema: Some(sample()),
            revealed: false,
        });
        let back = Manifest::from_json(&m.to_json().unwrap(), "m").unwrap();
        assert_eq!(back.format_version, 1);
        assert_eq!(back.fingerprint.as_ref().unwrap().schema, Some(sample()));
        // No sensitive object: nothing to decrypt, usable as it is.
        assert!(require_revealed(&back).is_ok());
    }
    #[test]
    fn a_sealed_manifest_is_refused_until_revealed() {
        let mut public = sample();
        let secret = split(&mut public);
        let mut m = crate::catalog::manifest::tests::sample();
        m.fingerprint = Some(crate::fingerprint::Fingerprint {
            data: empty_data(),
            schema: Some(public),
            revealed: false,
        });
        m.objects.push(crate::catalog::manifest::ObjectRecord {
            name: OBJECT.into(),
            file: FILE.into(),
            raw_bytes: 1,
            compressed_bytes: 1,
            stored_bytes: 1,
            sha256_plain: String::new(),
            sha256_stored: String::new(),
        });
        let back = Manifest::from_json(&m.to_json().unwrap(), "m").unwrap();
        assert!(require_revealed(&back).is_err());
        let full = reveal_with(&back, &to_bytes(&secret).unwrap()).unwrap();
        assert!(require_revealed(&full).is_ok());
        assert_eq!(full.fingerprint.unwrap().schema, Some(sample()));
        // Values that belong to another backup are refused.
        let mut wrong = secret;
        wrong.sections.remove("roles");
        assert!(check(&back, &to_bytes(&wrong).unwrap()).is_err());
    }
}
