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
//! reveal the values (`restore::sensitive`) before comparing or replaying them.
//!
//! Expressions (column defaults, checks, policies, trigger definitions) stay in the manifest:
//! they are code, like the function signatures; function and view bodies are hashed there.

use std::collections::BTreeMap;

use serde_json::Value;

use super::schema::SchemaFingerprint;

/// What the manifest shows in place of a value kept in the encrypted object.
pub const SEALED: &str = "(encrypted)";

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
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn fp(v: Value) -> SchemaFingerprint {
        serde_json::from_value(json!({ "sections": v })).unwrap()
    }

    /// A fingerprint with a secret in every kind of sensitive place.
    pub(crate) fn sample() -> SchemaFingerprint {
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
