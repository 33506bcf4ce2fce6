//! The part of the schema fingerprint that can hold a secret, kept out of the plaintext
//! manifest.
//!
//! Setting values (`ALTER DATABASE ... SET`, `ALTER ROLE ... [IN DATABASE ...] SET`,
//! `ALTER FUNCTION ... SET`) and comments are free text an operator fills in: Supabase keeps
//! its JWT secret in `app.settings.jwt_secret`. A digest would not hide them (no key on the
//! backup host to make it keyed; a low-entropy value is guessed from an unkeyed one), so the
//! values go into an object of their own, encrypted like the dump to the same recipients. The
//! manifest keeps the names, each value replaced by [`SEALED`], so `pgdr show` still says which
//! settings and comments exist. Commands that hold the identity (verify, drill, restore)
//! [`reveal`] the values before comparing or replaying them.
//!
//! Expressions (column defaults, checks, policies, trigger definitions) stay in the manifest:
//! they are code, like the function signatures; function and view bodies are hashed there.

use std::collections::BTreeMap;

use serde_json::Value;

use super::schema::SchemaFingerprint;
use crate::catalog::format::fingerprint::StoredSensitive;
use crate::catalog::{self, Manifest};
use crate::error::{PgdrError, Result};
use crate::pipeline;

/// Name of the object in the manifest's object list.
pub const OBJECT: &str = "sensitive";
/// File name of the object inside the backup folder.
pub const FILE: &str = "sensitive.json.zst.age";
/// What the manifest shows in place of a value kept in the encrypted object.
pub const SEALED: &str = "(encrypted)";

/// Format of the encrypted object's JSON ([`StoredSensitive`], owned by the catalog).
const FORMAT_VERSION: u32 = crate::catalog::format::fingerprint::SENSITIVE_FORMAT;

/// Whether property `prop` of an object in `section` can hold a secret.
pub fn is_sensitive(section: &str, prop: &str) -> bool {
    prop == "comment"
        || (section == "database" && (prop == "settings" || prop == "role_settings"))
        || ((section == "roles" || section == "functions") && prop == "config")
}

/// The same shape with every value replaced: objects keep their keys (setting names, roles).
fn seal(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), seal(v))).collect()),
        _ => Value::String(SEALED.into()),
    }
}

/// Move the sensitive values out of `fp` (which keeps their names, sealed) into the returned
/// fingerprint, which holds only those properties.
pub fn split(fp: &mut SchemaFingerprint) -> SchemaFingerprint {
    let mut secret = SchemaFingerprint::default();
    for (section, objects) in fp.sections.iter_mut() {
        for (key, props) in objects.iter_mut() {
            let Some(props) = props.as_object_mut() else {
                continue;
            };
            for (prop, v) in props.iter_mut() {
                if is_sensitive(section, prop) {
                    let sealed = seal(v);
                    let value = std::mem::replace(v, sealed);
                    let entry = secret
                        .sections
                        .entry(section.clone())
                        .or_default()
                        .entry(key.clone())
                        .or_insert_with(|| Value::Object(Default::default()));
                    if let Value::Object(m) = entry {
                        m.insert(prop.clone(), value);
                    }
                }
            }
        }
    }
    secret
}

/// The whole fingerprint again: `public` (from the manifest) with the values of `secret` (from
/// the encrypted object) put back. Fails, naming nothing secret, when the two do not belong
/// together (a value without a sealed name, or a sealed name without a value).
pub fn merge(
    public: &SchemaFingerprint,
    secret: &SchemaFingerprint,
) -> std::result::Result<SchemaFingerprint, String> {
    let mut full = public.clone();
    for (section, objects) in &secret.sections {
        for (key, props) in objects {
            let Some(target) = full
                .sections
                .get_mut(section)
                .and_then(|s| s.get_mut(key))
                .and_then(Value::as_object_mut)
            else {
                return Err(format!(
                    "{section} {key}: has values but is not in the manifest"
                ));
            };
            for (prop, v) in props.as_object().into_iter().flatten() {
                target.insert(prop.clone(), v.clone());
            }
        }
    }
    // Splitting the result again must give back both halves exactly.
    let mut again = full.clone();
    let secret_again = split(&mut again);
    if again != *public || secret_again != *secret {
        let names = first_mismatch(public, &again);
        return Err(format!(
            "its values do not match the names in the manifest{names}"
        ));
    }
    Ok(full)
}

/// ` (section key)` of the first object whose sealed form differs, for the error.
fn first_mismatch(a: &SchemaFingerprint, b: &SchemaFingerprint) -> String {
    for (section, objects) in &a.sections {
        for (key, v) in objects {
            if b.sections.get(section).and_then(|s| s.get(key)) != Some(v) {
                return format!(" ({section} {key})");
            }
        }
    }
    String::new()
}

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

fn reveal_with(m: &Manifest, bytes: &[u8]) -> Result<Manifest> {
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

/// `m` with the sensitive values decrypted back into its fingerprint. A manifest without the
/// object (made before it existed) carries its values in clear and comes back as it is.
pub async fn reveal(
    repo: &catalog::Repository,
    m: &Manifest,
    ids: crate::codec::Identities,
) -> Result<Manifest> {
    let Some(rec) = m.object(OBJECT) else {
        let mut out = m.clone();
        if let Some(fp) = out.fingerprint.as_mut() {
            fp.revealed = true;
        }
        return Ok(out);
    };
    let key = catalog::Key::object(&m.database, &m.id, &rec.file);
    let (st, bytes) =
        pipeline::download(repo, &key, Some(rec.sha256_stored.clone()), ids, Vec::new()).await?;
    if st.plain_sha256 != rec.sha256_plain {
        return Err(PgdrError::corrupt(format!(
            "object {}: decrypted content does not match the manifest's sha256",
            rec.file
        )));
    }
    reveal_with(m, &bytes)
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

/// For display of manifests written before the split (values in clear): the same sealing in
/// a JSON view, so `pgdr show` prints no value whatever the manifest's age.
pub fn seal_json_view(schema: &mut Value) {
    let Some(sections) = schema.get_mut("sections").and_then(Value::as_object_mut) else {
        return;
    };
    let mut fp = SchemaFingerprint {
        sections: BTreeMap::new(),
    };
    for (section, objects) in sections.iter() {
        if let Some(o) = objects.as_object() {
            fp.sections.insert(
                section.clone(),
                o.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            );
        }
    }
    split(&mut fp);
    if let Ok(v) = serde_json::to_value(&fp) {
        *schema = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fp(v: Value) -> SchemaFingerprint {
        serde_json::from_value(json!({ "sections": v })).unwrap()
    }

    fn empty_data() -> crate::fingerprint::ArchiveSummary {
        serde_json::from_value(json!({"version": "1.14.0", "database": "app",
            "server_version": "15", "pg_dump_version": "15", "encoding": null,
            "toc_entries": 0, "tables": [], "large_objects": []}))
        .unwrap()
    }

    fn sample() -> SchemaFingerprint {
        fp(json!({
            "database": {"current": {"owner": "postgres", "comment": "db note",
                "settings": {"app.settings.jwt_secret": "s3cret"},
                "role_settings": {"authenticator": {"statement_timeout": "8s"}}}},
            "roles": {"anon": {"login": false, "config": {"app.token": "t0ken"}}},
            "functions": {"public.f()": {"config": {"search_path": "public"}, "body_sha256": "ab"}},
            "tables": {"public.t": {"owner": "postgres", "comment": "note"}},
            "columns": {"public.t.a": {"type": "text", "default": "'x'::text"}}
        }))
    }

    #[test]
    fn split_keeps_names_and_moves_every_value() {
        let mut public = sample();
        let secret = split(&mut public);
        let text = serde_json::to_string(&public).unwrap();
        for v in ["s3cret", "8s", "t0ken", "db note", "\"note\"", "\"public\""] {
            assert!(!text.contains(v), "{v} left in {text}");
        }
        for name in [
            "app.settings.jwt_secret",
            "authenticator",
            "statement_timeout",
            "app.token",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        let db = &public.sections["database"]["current"];
        assert_eq!(db["settings"]["app.settings.jwt_secret"], SEALED);
        assert_eq!(db["comment"], SEALED);
        assert_eq!(db["owner"], "postgres");
        // Code stays: a column default, a body hash.
        assert_eq!(
            public.sections["columns"]["public.t.a"]["default"],
            "'x'::text"
        );
        assert_eq!(
            public.sections["functions"]["public.f()"]["body_sha256"],
            "ab"
        );
        assert_eq!(
            secret.sections["roles"]["anon"],
            json!({"config": {"app.token": "t0ken"}})
        );
        assert_eq!(merge(&public, &secret).unwrap(), sample());
    }

    #[test]
    fn merge_refuses_halves_that_do_not_belong_together() {
        let mut public = sample();
        let secret = split(&mut public);
        // A value for a setting the manifest does not name.
        let mut extra = secret.clone();
        extra.sections.get_mut("roles").unwrap().insert(
            "anon".into(),
            json!({"config": {"app.token": "t0ken", "app.other": "x"}}),
        );
        let e = merge(&public, &extra).unwrap_err();
        assert!(e.contains("roles anon"), "{e}");
        assert!(!e.contains("t0ken"), "{e}");
        // A sealed name left without its value.
        let mut less = secret.clone();
        less.sections.remove("tables");
        assert!(merge(&public, &less).is_err());
        // An object the manifest does not have.
        let mut other = secret;
        other
            .sections
            .get_mut("tables")
            .unwrap()
            .insert("public.u".into(), json!({"comment": "x"}));
        assert!(merge(&public, &other).unwrap_err().contains("public.u"));
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
    fn a_changed_value_is_named_never_shown() {
        let e = sample();
        let mut a = sample();
        let obj = |a: &mut SchemaFingerprint, s: &str, k: &str| {
            a.sections.get_mut(s).unwrap().get_mut(k).unwrap().clone()
        };
        let mut db = obj(&mut a, "database", "current");
        db["settings"]["app.settings.jwt_secret"] = json!("other-1");
        db["role_settings"]["authenticator"]["statement_timeout"] = json!("other-2");
        a.sections
            .get_mut("database")
            .unwrap()
            .insert("current".into(), db);
        let mut role = obj(&mut a, "roles", "anon");
        role["config"]["app.token"] = json!("other-3");
        a.sections
            .get_mut("roles")
            .unwrap()
            .insert("anon".into(), role);
        let mut t = obj(&mut a, "tables", "public.t");
        t["comment"] = json!("other-4");
        a.sections
            .get_mut("tables")
            .unwrap()
            .insert("public.t".into(), t);
        let lines = super::super::schema::diff(&e, &a, &Default::default());
        assert_eq!(
            lines,
            [
                "database: setting statement_timeout for role authenticator differs",
                "database: setting app.settings.jwt_secret differs",
                "role anon: setting app.token differs",
                "table public.t: comment differs",
            ]
        );
        let text = lines.join("\n");
        for v in ["s3cret", "8s", "t0ken", "note", "other-"] {
            assert!(!text.contains(v), "{v} in {text}");
        }
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

    #[test]
    fn old_manifest_view_is_sealed_for_display() {
        let mut v = serde_json::to_value(sample()).unwrap();
        seal_json_view(&mut v);
        let text = v.to_string();
        assert!(
            !text.contains("s3cret") && !text.contains("t0ken"),
            "{text}"
        );
        assert!(text.contains("app.settings.jwt_secret"), "{text}");
    }
}
