//! Diff wording and ACL parsing on hand-made fingerprints.

use super::acl::{parse_aclitem, privilege_words};
use super::*;
use serde_json::json;

fn fp(sections: Value) -> SchemaFingerprint {
    serde_json::from_value(json!({ "sections": sections })).unwrap()
}

fn sample() -> SchemaFingerprint {
    fp(json!({
        "tables": {
            "public.orders": {"kind": "table", "owner": "app_owner", "row_level_security": true,
                              "force_row_level_security": true,
                              "acl": ["app_owner=arwdDxt/app_owner", "authenticated=arwdDxt/app_owner"]},
            "public.profiles": {"kind": "table", "owner": "postgres", "row_level_security": true,
                                "force_row_level_security": false,
                                "acl": ["anon=r/postgres", "postgres=arwdDxt/postgres"],
                                "comment": "User profiles"}
        },
        "columns": {
            "public.orders.amount": {"position": 4, "type": "numeric(12,2)", "not_null": true}
        },
        "views": {"public.v": {"owner": "postgres", "definition_sha256": "aa"}},
        "indexes": {
            "public.orders_user_idx": {"table": "public.orders", "definition": "CREATE INDEX orders_user_idx ON public.orders USING btree (user_id)"}
        },
        "policies": {
            "public.profiles.profiles_select": {"command": "SELECT", "permissive": true,
                                                "roles": ["anon", "authenticated"], "using": "(NOT is_private)"}
        },
        "functions": {
            "public.is_admin(uid uuid)": {"kind": "function", "security_definer": true,
                                          "config": {"search_path": "public, auth"},
                                          "body_sha256": "abc"}
        },
        "sequences": {
            "public.orders_id_seq": {"increment": 1, "last_value": 5000, "is_called": true}
        },
        "roles": {"anon": {"login": false}, "authenticated": {"login": false}},
        "memberships": {"anon → authenticated": {"admin_option": false}},
        "database": {"current": {"owner": "postgres", "comment": "sample",
                                  "settings": {"app.settings.environment": "demo"}}}
    }))
}

fn set(f: &mut SchemaFingerprint, section: &str, key: &str, prop: &str, v: Value) {
    let obj = f
        .sections
        .get_mut(section)
        .unwrap()
        .get_mut(key)
        .unwrap()
        .as_object_mut()
        .unwrap();
    if v.is_null() {
        obj.remove(prop);
    } else {
        obj.insert(prop.into(), v);
    }
}

fn d(e: &SchemaFingerprint, a: &SchemaFingerprint) -> Vec<String> {
    diff(e, a, &DiffOptions::default())
}

#[test]
fn identical_is_empty() {
    assert!(d(&sample(), &sample()).is_empty());
}

#[test]
fn missing_and_unexpected() {
    let e = sample();
    let mut a = sample();
    a.sections.get_mut("policies").unwrap().clear();
    a.sections.get_mut("indexes").unwrap().insert(
        "public.orders_extra_idx".into(),
        json!({"definition": "CREATE INDEX ..."}),
    );
    assert_eq!(
        d(&e, &a),
        [
            "index public.orders_extra_idx: unexpected after restore",
            "policy \"profiles_select\" on public.profiles: missing after restore",
        ]
    );
    // And the other way round.
    assert_eq!(
        d(&a, &e),
        [
            "index public.orders_extra_idx: missing after restore",
            "policy \"profiles_select\" on public.profiles: unexpected after restore",
        ]
    );
}

#[test]
fn changed_properties() {
    let e = sample();
    let mut a = sample();
    set(
        &mut a,
        "columns",
        "public.orders.amount",
        "type",
        json!("numeric"),
    );
    set(
        &mut a,
        "functions",
        "public.is_admin(uid uuid)",
        "definition_sha256",
        json!("def"),
    );
    set(
        &mut a,
        "tables",
        "public.orders",
        "force_row_level_security",
        json!(false),
    );
    set(
        &mut a,
        "policies",
        "public.profiles.profiles_select",
        "using",
        json!("true"),
    );
    set(
        &mut a,
        "policies",
        "public.profiles.profiles_select",
        "roles",
        json!(["authenticated"]),
    );
    set(&mut a, "tables", "public.profiles", "comment", Value::Null);
    assert_eq!(
        d(&e, &a),
        [
            "table public.orders: force row level security true in backup, false after restore",
            "table public.profiles: comment set in backup, not set after restore",
            "table public.orders: column \"amount\" type numeric(12,2) in backup, numeric after restore",
            "function public.is_admin(uid uuid): definition differs",
            "policy \"profiles_select\" on public.profiles: roles anon, authenticated in backup, authenticated after restore",
            "policy \"profiles_select\" on public.profiles: using (NOT is_private) in backup, true after restore",
        ]
    );
}

#[test]
fn contents_of_a_missing_table_or_schema_are_not_listed() {
    let e = sample();
    let mut a = sample();
    a.sections
        .get_mut("tables")
        .unwrap()
        .remove("public.orders");
    a.sections
        .get_mut("columns")
        .unwrap()
        .remove("public.orders.amount");
    a.sections.get_mut("indexes").unwrap().clear();
    assert_eq!(d(&e, &a), ["table public.orders: missing after restore"]);

    let mut e2 = sample();
    e2.sections.insert(
        "schemas".into(),
        [("public".to_string(), json!({"owner": "postgres"}))].into(),
    );
    let mut a2 = e2.clone();
    a2.sections.get_mut("schemas").unwrap().clear();
    for section in [
        "tables",
        "columns",
        "views",
        "indexes",
        "policies",
        "functions",
        "sequences",
    ] {
        a2.sections.get_mut(section).unwrap().clear();
    }
    assert_eq!(d(&e2, &a2), ["schema public: missing after restore"]);
}

#[test]
fn view_columns_are_named_as_view_columns() {
    let mut e = sample();
    e.sections
        .get_mut("columns")
        .unwrap()
        .insert("public.v.x".into(), json!({"type": "integer"}));
    let mut a = e.clone();
    set(&mut a, "columns", "public.v.x", "type", json!("bigint"));
    assert_eq!(
        d(&e, &a),
        ["view public.v: column \"x\" type integer in backup, bigint after restore"]
    );
}

#[test]
fn function_config_and_security() {
    let e = sample();
    let mut a = sample();
    set(
        &mut a,
        "functions",
        "public.is_admin(uid uuid)",
        "config",
        Value::Null,
    );
    set(
        &mut a,
        "functions",
        "public.is_admin(uid uuid)",
        "security_definer",
        json!(false),
    );
    assert_eq!(
        d(&e, &a),
        [
            "function public.is_admin(uid uuid): setting search_path set in backup, not set after restore",
            "function public.is_admin(uid uuid): security definer true in backup, false after restore",
        ]
    );
}

#[test]
fn sequence_value_wording() {
    let e = sample();
    let mut a = sample();
    set(
        &mut a,
        "sequences",
        "public.orders_id_seq",
        "last_value",
        json!(1),
    );
    assert_eq!(
        d(&e, &a),
        ["sequence public.orders_id_seq: value 5000 in backup, 1 after restore"]
    );
    set(
        &mut a,
        "sequences",
        "public.orders_id_seq",
        "is_called",
        json!(false),
    );
    assert_eq!(
        d(&e, &a),
        ["sequence public.orders_id_seq: value 5000 in backup, 1 (not yet used) after restore"]
    );

    // Ahead is fine with NotBehind, behind is not.
    let not_behind = DiffOptions {
        sequence_values: SequenceValues::NotBehind,
        ..Default::default()
    };
    let mut ahead = sample();
    set(
        &mut ahead,
        "sequences",
        "public.orders_id_seq",
        "last_value",
        json!(5007),
    );
    assert!(diff(&e, &ahead, &not_behind).is_empty());
    assert_eq!(diff(&e, &a, &not_behind).len(), 1);
    // 5001 not yet used hands out 5001 next, as 5000 used does.
    let mut same_next = sample();
    set(
        &mut same_next,
        "sequences",
        "public.orders_id_seq",
        "last_value",
        json!(5001),
    );
    set(
        &mut same_next,
        "sequences",
        "public.orders_id_seq",
        "is_called",
        json!(false),
    );
    assert!(diff(&e, &same_next, &not_behind).is_empty());
    let ignore = DiffOptions {
        sequence_values: SequenceValues::Ignore,
        ..Default::default()
    };
    assert!(diff(&e, &a, &ignore).is_empty());
}

#[test]
fn privileges_in_words() {
    let e = sample();
    let mut a = sample();
    set(
        &mut a,
        "tables",
        "public.profiles",
        "acl",
        json!(["postgres=arwdDxt/postgres"]),
    );
    set(
        &mut a,
        "tables",
        "public.orders",
        "acl",
        json!(["app_owner=arwdDxt/app_owner", "authenticated=r*w/postgres"]),
    );
    assert_eq!(
        d(&e, &a),
        [
            "table public.orders: privileges of authenticated: INSERT, SELECT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER in backup, SELECT WITH GRANT OPTION, UPDATE after restore",
            "table public.profiles: privileges of anon: SELECT in backup, none after restore",
        ]
    );
    let mut g = sample();
    set(
        &mut g,
        "tables",
        "public.profiles",
        "acl",
        json!([
            "=r/postgres",
            "\"odd \"\"name\"=r/postgres",
            "postgres=arwdDxt/postgres"
        ]),
    );
    assert_eq!(
        d(&e, &g),
        [
            "table public.profiles: privileges of PUBLIC: none in backup, SELECT after restore",
            "table public.profiles: privileges of anon: SELECT in backup, none after restore",
            "table public.profiles: privileges of odd \"name: none in backup, SELECT after restore",
        ]
    );
    let no_privs = DiffOptions {
        privileges: false,
        ..Default::default()
    };
    assert!(diff(&e, &a, &no_privs).is_empty());
}

#[test]
fn grantor_named_only_when_it_alone_differs() {
    let e = sample();
    let mut a = sample();
    set(
        &mut a,
        "tables",
        "public.profiles",
        "acl",
        json!(["anon=r/other", "postgres=arwdDxt/postgres"]),
    );
    assert_eq!(
        d(&e, &a),
        ["table public.profiles: privileges of anon: SELECT (granted by postgres) in backup, SELECT (granted by other) after restore"]
    );
}

#[test]
fn roles_extra_after_restore_tolerated() {
    let e = sample();
    let mut a = sample();
    a.sections.get_mut("roles").unwrap().insert(
        "scratch_admin".into(),
        json!({"login": true, "superuser": true}),
    );
    a.sections
        .get_mut("memberships")
        .unwrap()
        .insert("anon → scratch_admin".into(), json!({"admin_option": true}));
    assert!(d(&e, &a).is_empty());

    // Missing or changed ones are reported.
    let mut m = sample();
    m.sections.get_mut("roles").unwrap().remove("anon");
    set(&mut m, "roles", "authenticated", "login", json!(true));
    m.sections.get_mut("memberships").unwrap().clear();
    assert_eq!(
        d(&e, &m),
        [
            "role anon: missing after restore",
            "role authenticated: login false in backup, true after restore",
            "role membership anon → authenticated: missing after restore",
        ]
    );
    let no_roles = DiffOptions {
        roles: false,
        ..Default::default()
    };
    assert!(diff(&e, &m, &no_roles).is_empty());
}

#[test]
fn database_properties() {
    let e = sample();
    let mut a = sample();
    set(&mut a, "database", "current", "comment", Value::Null);
    set(&mut a, "database", "current", "settings", Value::Null);
    set(
        &mut a,
        "database",
        "current",
        "role_settings",
        json!({"authenticated": {"statement_timeout": "5s"}}),
    );
    assert_eq!(
        d(&e, &a),
        [
            "database: comment set in backup, not set after restore",
            "database: setting statement_timeout for role authenticated not set in backup, set after restore",
            "database: setting app.settings.environment set in backup, not set after restore",
        ]
    );
    let skip = DiffOptions {
        database_properties: false,
        ..Default::default()
    };
    assert!(diff(&e, &a, &skip).is_empty());
}

#[test]
fn owners_can_be_skipped() {
    let e = sample();
    let mut a = sample();
    set(&mut a, "views", "public.v", "owner", json!("someone"));
    assert_eq!(
        d(&e, &a),
        ["view public.v: owner postgres in backup, someone after restore"]
    );
    let skip = DiffOptions {
        owners: false,
        ..Default::default()
    };
    assert!(diff(&e, &a, &skip).is_empty());
}

#[test]
fn section_absent_from_backup_is_not_compared() {
    let mut e = sample();
    e.sections.remove("policies");
    assert!(d(&e, &sample()).is_empty());
    // Absent after restore: everything in it is missing.
    let mut a = sample();
    a.sections.remove("indexes");
    assert_eq!(
        d(&sample(), &a),
        ["index public.orders_user_idx: missing after restore"]
    );
}

#[test]
fn long_values_are_not_printed() {
    let e = sample();
    let mut a = sample();
    let long = "x".repeat(300);
    set(
        &mut a,
        "indexes",
        "public.orders_user_idx",
        "definition",
        json!(long),
    );
    assert_eq!(
        d(&e, &a),
        ["index public.orders_user_idx: definition differs"]
    );
}

#[test]
fn aclitem_parsing() {
    assert_eq!(
        parse_aclitem("=U/postgres"),
        Some(("".into(), "U".into(), "postgres".into()))
    );
    assert_eq!(
        parse_aclitem("\"a=b/c\"=r*/\"x y\""),
        Some(("a=b/c".into(), "r*".into(), "x y".into()))
    );
    assert_eq!(parse_aclitem("garbage"), None);
    assert_eq!(privilege_words("r*w"), "SELECT WITH GRANT OPTION, UPDATE");
}

#[test]
fn json_is_sorted_and_round_trips() {
    let f = sample();
    let text = serde_json::to_string(&f).unwrap();
    assert!(text.find("\"columns\"").unwrap() < text.find("\"tables\"").unwrap());
    let back: SchemaFingerprint = serde_json::from_str(&text).unwrap();
    assert_eq!(back, f);
}
