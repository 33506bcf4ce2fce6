//! Rewriting the roles a fingerprint names, for a restore that replaced owners on purpose: on
//! a managed target, objects whose owner the connecting role can never become (a superuser)
//! are owned by the connecting role (`pg_restore --no-owner`), and every privilege that owner
//! held or granted is then held or granted by the connecting role. The proof compares the
//! restored copy with the backup as the plan said it would be restored, not as it was.

use std::collections::BTreeMap;

use serde_json::Value;

use super::acl::parse_aclitem;
use super::SchemaFingerprint;

/// Sections naming roles by key (cluster-wide): left as they are, the roles proof judges them.
const ROLE_SECTIONS: &[&str] = &["roles", "memberships"];

/// PostgreSQL's order of privilege letters in an aclitem (`ACL_ALL_RIGHTS_STR`).
const PRIVILEGE_ORDER: &str = "arwdDxtXUCTcsAm";

/// Every object's `owner` and every ACL item's grantee and grantor that `map` names are
/// replaced by the role it maps to; ACL items that then share grantee and grantor are merged
/// into one, as PostgreSQL keeps them. Object keys are not changed.
pub fn map_roles(fp: &mut SchemaFingerprint, map: &BTreeMap<String, String>) {
    if map.is_empty() {
        return;
    }
    for (section, objects) in fp.sections.iter_mut() {
        if ROLE_SECTIONS.contains(&section.as_str()) {
            continue;
        }
        for props in objects.values_mut() {
            map_props(props, map);
        }
    }
}

/// One object's properties (a column's are an object of their own in `columns`).
fn map_props(props: &mut Value, map: &BTreeMap<String, String>) {
    let Some(obj) = props.as_object_mut() else {
        return;
    };
    if let Some(Value::String(owner)) = obj.get_mut("owner") {
        if let Some(to) = map.get(owner.as_str()) {
            *owner = to.clone();
        }
    }
    if let Some(Value::Array(items)) = obj.get_mut("acl") {
        if let Some(mapped) = map_acl(items, map) {
            *items = mapped;
        }
    }
}

/// The ACL with roles replaced, sorted as the capture sorts it; `None` (left as it is, so the
/// diff shows it) when an item cannot be read.
fn map_acl(items: &[Value], map: &BTreeMap<String, String>) -> Option<Vec<Value>> {
    let role = |r: String| map.get(&r).cloned().unwrap_or(r);
    let mut merged: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for item in items {
        let (grantee, privs, grantor) = parse_aclitem(item.as_str()?)?;
        merged
            .entry((role(grantee), role(grantor)))
            .or_default()
            .push(privs);
    }
    let mut out: Vec<String> = merged
        .into_iter()
        .map(|((grantee, grantor), privs)| {
            let privs = if privs.len() == 1 {
                privs.into_iter().next().unwrap_or_default()
            } else {
                merge_privileges(&privs)
            };
            format!("{}={privs}/{}", quote(&grantee), quote(&grantor))
        })
        .collect();
    out.sort();
    Some(out.into_iter().map(Value::String).collect())
}

/// The union of several privilege strings (`r*w` = SELECT WITH GRANT OPTION, UPDATE), in
/// PostgreSQL's order.
fn merge_privileges(all: &[String]) -> String {
    let mut rights: BTreeMap<usize, (char, bool)> = BTreeMap::new();
    for privs in all {
        let mut chars = privs.chars().peekable();
        while let Some(c) = chars.next() {
            let option = chars.next_if_eq(&'*').is_some();
            let pos = PRIVILEGE_ORDER
                .find(c)
                .unwrap_or(PRIVILEGE_ORDER.len() + c as usize);
            let e = rights.entry(pos).or_insert((c, false));
            e.1 |= option;
        }
    }
    rights
        .values()
        .map(|(c, option)| {
            if *option {
                format!("{c}*")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A role name as an aclitem prints it: double-quoted unless only letters, digits and `_`.
fn quote(name: &str) -> String {
    if name.is_empty() || name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fingerprint::schema::{diff, DiffOptions};

    fn fp(sections: Value) -> SchemaFingerprint {
        serde_json::from_value(json!({ "sections": sections })).unwrap()
    }

    fn postgres_to_admin() -> BTreeMap<String, String> {
        BTreeMap::from([("postgres".to_string(), "admin".to_string())])
    }

    /// The backup: a schema and a table owned by the superuser `postgres`, with grants.
    fn backup() -> SchemaFingerprint {
        fp(json!({
            "schemas": { "shop": { "owner": "postgres",
                "acl": ["app_reader=U/postgres", "postgres=UC/postgres"] } },
            "tables": { "shop.items": { "owner": "postgres", "kind": "table",
                "acl": ["app_reader=r/postgres", "postgres=arwdDxt/postgres"] } },
            "columns": { "shop.items.name": { "type": "text",
                "acl": ["app_owner=w/postgres"] } },
            "roles": { "postgres": { "superuser": true } },
        }))
    }

    /// What a restore as `admin` with `--no-owner` makes of it.
    fn restored() -> SchemaFingerprint {
        fp(json!({
            "schemas": { "shop": { "owner": "admin",
                "acl": ["admin=UC/admin", "app_reader=U/admin"] } },
            "tables": { "shop.items": { "owner": "admin", "kind": "table",
                "acl": ["admin=arwdDxt/admin", "app_reader=r/admin"] } },
            "columns": { "shop.items.name": { "type": "text",
                "acl": ["app_owner=w/admin"] } },
            "roles": { "postgres": { "superuser": true } },
        }))
    }

    #[test]
    fn replaced_owners_compare_equal_after_mapping_and_differ_without() {
        let opts = DiffOptions::default();
        let mut expected = backup();
        assert!(!diff(&expected, &restored(), &opts).is_empty());
        map_roles(&mut expected, &postgres_to_admin());
        assert_eq!(diff(&expected, &restored(), &opts), Vec::<String>::new());
        // Role sections are keyed by role: untouched.
        assert_eq!(expected.sections["roles"], backup().sections["roles"]);
    }

    #[test]
    fn a_privilege_missing_after_restore_is_still_reported() {
        let mut expected = backup();
        map_roles(&mut expected, &postgres_to_admin());
        let mut actual = restored();
        // `REVOKE SELECT ON shop.items FROM app_reader` on the target after the restore.
        actual.sections.get_mut("tables").unwrap().insert(
            "shop.items".into(),
            json!({ "owner": "admin", "kind": "table", "acl": ["admin=arwdDxt/admin"] }),
        );
        assert_eq!(
            diff(&expected, &actual, &DiffOptions::default()),
            vec![
                "table shop.items: privileges of app_reader: SELECT in backup, none after restore"
            ]
        );
    }

    #[test]
    fn an_owner_other_than_the_mapped_one_is_still_reported() {
        let mut expected = backup();
        map_roles(&mut expected, &postgres_to_admin());
        let mut actual = restored();
        let t = actual.sections.get_mut("tables").unwrap();
        t.get_mut("shop.items").unwrap()["owner"] = json!("app_owner");
        assert_eq!(
            diff(&expected, &actual, &DiffOptions::default()),
            vec!["table shop.items: owner admin in backup, app_owner after restore"]
        );
    }

    #[test]
    fn items_meeting_on_one_grantee_and_grantor_are_merged() {
        let items = [
            json!("admin=r*/postgres"),
            json!("postgres=arwdDxt/postgres"),
            json!("=r/postgres"),
            json!("\"Odd \"\"Name\"=w/postgres"),
        ];
        assert_eq!(
            map_acl(&items, &postgres_to_admin()).unwrap(),
            vec![
                json!("\"Odd \"\"Name\"=w/admin"),
                json!("=r/admin"),
                json!("admin=ar*wdDxt/admin"),
            ]
        );
    }

    #[test]
    fn an_unreadable_acl_is_left_for_the_diff_to_show() {
        assert_eq!(
            map_acl(&[json!("not an aclitem")], &postgres_to_admin()),
            None
        );
        let mut f = fp(json!({ "tables": { "t": { "acl": ["garbage"], "owner": "postgres" } } }));
        map_roles(&mut f, &postgres_to_admin());
        assert_eq!(
            f.sections["tables"]["t"],
            json!({ "acl": ["garbage"], "owner": "admin" })
        );
    }
}
