//! Comparing two schema fingerprints: one operator-readable line per difference.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::acl::acl_diff;
use super::{DiffOptions, SchemaFingerprint, SequenceValues};

/// The order sections are reported in (containers before contents); sections not listed
/// follow alphabetically.
const SECTION_ORDER: &[&str] = &[
    "database",
    "roles",
    "memberships",
    "schemas",
    "extensions",
    "types",
    "tables",
    "columns",
    "constraints",
    "indexes",
    "sequences",
    "views",
    "materialized_views",
    "functions",
    "triggers",
    "rules",
    "policies",
    "publications",
    "event_triggers",
    "statistics",
    "default_privileges",
];

/// Sections where objects present only after restore are fine: roles are cluster-wide, and a
/// scratch cluster has its own bootstrap superuser and perhaps more.
const CLUSTER_SECTIONS: &[&str] = &["roles", "memberships"];

/// One operator-readable line per difference, e.g.
///   `policy "profiles_select" on public.profiles: missing after restore`
///   `function public.is_admin(uid uuid): definition differs`
///   `sequence public.orders_id_seq: value 5000 in backup, 1 after restore`
///   `table public.orders: column "amount" type numeric(12,2) in backup, numeric after restore`
///   `index public.orders_user_idx: unexpected after restore`
///
/// A section absent from `expected` (a backup made before pgdr captured it) is not compared.
/// The contents of a schema or relation that is missing (or unexpected) as a whole are not
/// listed one by one. Roles and memberships that exist only after restore are not reported.
pub fn diff(
    expected: &SchemaFingerprint,
    actual: &SchemaFingerprint,
    opts: &DiffOptions,
) -> Vec<String> {
    let empty = BTreeMap::new();
    let mut sections: Vec<&str> = SECTION_ORDER
        .iter()
        .copied()
        .filter(|s| expected.sections.contains_key(*s))
        .collect();
    sections.extend(
        expected
            .sections
            .keys()
            .map(String::as_str)
            .filter(|s| !SECTION_ORDER.contains(s)),
    );

    // Objects inside a schema or relation that is missing (or unexpected) as a whole are not
    // listed one by one: the container's line says it.
    let gone = whole_containers_gone(expected, actual);
    let mut out = Vec::new();
    for section in sections {
        match section {
            "database" if !opts.database_properties => continue,
            "roles" | "memberships" if !opts.roles => continue,
            "default_privileges" if !opts.privileges => continue,
            _ => {}
        }
        let exp = &expected.sections[section];
        let act = actual.sections.get(section).unwrap_or(&empty);
        let keys: BTreeSet<&String> = exp.keys().chain(act.keys()).collect();
        for key in keys {
            // A column reads as part of its table: `table t: column "c" type ...`.
            let sep = if section == "columns" { " " } else { ": " };
            let label = || label(section, key, expected, actual);
            let (e, a) = (exp.get(key), act.get(key));
            if (e.is_none() || a.is_none()) && inside_gone(section, key, e.or(a), &gone) {
                continue;
            }
            match (e, a) {
                (Some(_), None) => out.push(format!("{}{sep}missing after restore", label())),
                (None, Some(_)) if !CLUSTER_SECTIONS.contains(&section) => {
                    out.push(format!("{}{sep}unexpected after restore", label()));
                }
                (Some(e), Some(a)) if e != a => {
                    let lines = props_diff(section, e, a, opts);
                    let l = label();
                    out.extend(lines.into_iter().map(|line| format!("{l}{sep}{line}")));
                }
                _ => {}
            }
        }
    }
    out
}

/// Sections whose keys start with `schema.`.
const SCHEMA_QUALIFIED: &[&str] = &[
    "types",
    "tables",
    "columns",
    "constraints",
    "indexes",
    "sequences",
    "views",
    "materialized_views",
    "functions",
    "triggers",
    "rules",
    "policies",
    "statistics",
];

/// Sections whose keys are `schema.relation.name`.
const RELATION_CHILDREN: &[&str] = &["columns", "constraints", "triggers", "rules", "policies"];

/// Schemas and relations present on one side only.
fn whole_containers_gone(
    expected: &SchemaFingerprint,
    actual: &SchemaFingerprint,
) -> BTreeSet<(&'static str, String)> {
    let mut gone = BTreeSet::new();
    for (kind, sections) in [
        ("schema", &["schemas"][..]),
        ("relation", &["tables", "views", "materialized_views"][..]),
    ] {
        for section in sections {
            let (Some(e), Some(a)) = (
                expected.sections.get(*section),
                actual.sections.get(*section),
            ) else {
                continue;
            };
            for k in e.keys().filter(|k| !a.contains_key(*k)) {
                gone.insert((kind, k.clone()));
            }
            for k in a.keys().filter(|k| !e.contains_key(*k)) {
                gone.insert((kind, k.clone()));
            }
        }
    }
    gone
}

/// Whether an object one side lacks sits in a schema or relation that side lacks too.
fn inside_gone(
    section: &str,
    key: &str,
    props: Option<&Value>,
    gone: &BTreeSet<(&'static str, String)>,
) -> bool {
    if SCHEMA_QUALIFIED.contains(&section) {
        if let Some((schema, _)) = key.split_once('.') {
            if gone.contains(&("schema", schema.to_string())) {
                return true;
            }
        }
    }
    let relation = if RELATION_CHILDREN.contains(&section) {
        key.rsplit_once('.').map(|(rel, _)| rel.to_string())
    } else if section == "indexes" {
        props
            .and_then(|p| p.get("table"))
            .and_then(Value::as_str)
            .map(str::to_string)
    } else {
        None
    };
    relation.is_some_and(|r| gone.contains(&("relation", r)))
}

/// How an object is named in a diff line.
fn label(
    section: &str,
    key: &str,
    expected: &SchemaFingerprint,
    actual: &SchemaFingerprint,
) -> String {
    let prop = |name: &str| -> Option<String> {
        [expected, actual].iter().find_map(|fp| {
            fp.sections
                .get(section)?
                .get(key)?
                .get(name)?
                .as_str()
                .map(str::to_string)
        })
    };
    // Sub-objects are keyed `schema.table.name`.
    let split = || match key.rsplit_once('.') {
        Some((rel, name)) => (rel.to_string(), name.to_string()),
        None => (String::new(), key.to_string()),
    };
    match section {
        "tables" => format!("{} {key}", prop("kind").unwrap_or_else(|| "table".into())),
        "columns" => {
            let (rel, col) = split();
            let in_section = |s: &str| {
                [expected, actual]
                    .iter()
                    .any(|fp| fp.sections.get(s).is_some_and(|m| m.contains_key(&rel)))
            };
            let kind = if in_section("views") {
                "view"
            } else if in_section("materialized_views") {
                "materialized view"
            } else {
                "table"
            };
            format!("{kind} {rel}: column \"{col}\"")
        }
        "constraints" | "policies" | "triggers" | "rules" => {
            let (rel, name) = split();
            let what = match section {
                "constraints" => "constraint",
                "policies" => "policy",
                "triggers" => "trigger",
                _ => "rule",
            };
            format!("{what} \"{name}\" on {rel}")
        }
        "functions" => format!(
            "{} {key}",
            prop("kind").unwrap_or_else(|| "function".into())
        ),
        "types" => match prop("kind").as_deref() {
            Some("domain") => format!("domain {key}"),
            _ => format!("type {key}"),
        },
        "indexes" => format!("index {key}"),
        "sequences" => format!("sequence {key}"),
        "views" => format!("view {key}"),
        "materialized_views" => format!("materialized view {key}"),
        "schemas" => format!("schema {key}"),
        "extensions" => format!("extension {key}"),
        "publications" => format!("publication {key}"),
        "roles" => format!("role {key}"),
        "memberships" => format!("role membership {key}"),
        "database" => "database".to_string(),
        "default_privileges" => format!("default privileges of {key}"),
        "event_triggers" => format!("event trigger {key}"),
        "statistics" => format!("statistics object {key}"),
        other => format!("{} {key}", other.replace('_', " ")),
    }
}

/// The differing properties of one object, each as the text after `label: `.
fn props_diff(section: &str, e: &Value, a: &Value, opts: &DiffOptions) -> Vec<String> {
    let (Some(e), Some(a)) = (e.as_object(), a.as_object()) else {
        return vec![format!(
            "{} in backup, {} after restore",
            show(Some(e)),
            show(Some(a))
        )];
    };
    let mut out = Vec::new();
    let mut names: BTreeSet<&str> = e.keys().chain(a.keys()).map(String::as_str).collect();

    if section == "sequences" {
        names.remove("last_value");
        names.remove("is_called");
        if let Some(line) = sequence_value_diff(e, a, opts.sequence_values) {
            out.push(line);
        }
    }

    for name in names {
        let (x, y) = (e.get(name), a.get(name));
        if x == y {
            continue;
        }
        match name {
            // An index's table is part of its definition, which is compared.
            "table" if section == "indexes" => {}
            "owner" if !opts.owners => {}
            "acl" if !opts.privileges => {}
            "acl" => acl_diff(x, y, &mut out),
            "definition_sha256" | "body_sha256" => out.push("definition differs".into()),
            "settings" | "config" => settings_diff(x, y, "", &mut out),
            "role_settings" => {
                let (xo, yo) = (object(x), object(y));
                let roles: BTreeSet<&String> = xo.keys().chain(yo.keys()).collect();
                for role in roles {
                    if xo.get(role) != yo.get(role) {
                        let suffix = format!(" for role {role}");
                        settings_diff(xo.get(role), yo.get(role), &suffix, &mut out);
                    }
                }
            }
            // Comments and setting values may hold secrets: named, never shown (the lines
            // land in logs and in plaintext records).
            "comment" => out.push(presence_change("comment", x, y)),
            _ if x.is_some_and(Value::is_object) || y.is_some_and(Value::is_object) => {
                // e.g. a domain's constraints: name → definition.
                let (xo, yo) = (object(x), object(y));
                let subs: BTreeSet<&String> = xo.keys().chain(yo.keys()).collect();
                let what = singular(name);
                for sub in subs {
                    if xo.get(sub) != yo.get(sub) {
                        out.push(text_change(
                            &format!("{what} \"{sub}\""),
                            xo.get(sub),
                            yo.get(sub),
                        ));
                    }
                }
            }
            _ => {
                // A flag left out when false (jsonb_strip_nulls of NULLIF(x, false)).
                let absent_false = |v: Option<&Value>, other: Option<&Value>| match (v, other) {
                    (None, Some(Value::Bool(_))) => Some(Value::Bool(false)),
                    (v, _) => v.cloned(),
                };
                let (x2, y2) = (absent_false(x, y), absent_false(y, x));
                if x2 != y2 {
                    out.push(text_change(
                        &name.replace('_', " "),
                        x2.as_ref(),
                        y2.as_ref(),
                    ));
                }
            }
        }
    }
    out
}

fn object(v: Option<&Value>) -> serde_json::Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

fn singular(name: &str) -> String {
    let words = name.replace('_', " ");
    words.strip_suffix('s').map(str::to_string).unwrap_or(words)
}

/// `setting search_path differs`, `setting x set in backup, not set after restore`: names,
/// never values.
fn settings_diff(x: Option<&Value>, y: Option<&Value>, suffix: &str, out: &mut Vec<String>) {
    let (xo, yo) = (object(x), object(y));
    let names: BTreeSet<&String> = xo.keys().chain(yo.keys()).collect();
    for n in names {
        let (a, b) = (xo.get(n), yo.get(n));
        if a != b {
            out.push(presence_change(&format!("setting {n}{suffix}"), a, b));
        }
    }
}

/// `{what} differs`, or which side lacks it; the values are not shown.
fn presence_change(what: &str, x: Option<&Value>, y: Option<&Value>) -> String {
    let set = |v: Option<&Value>| v.is_some_and(|v| !v.is_null());
    match (set(x), set(y)) {
        (true, false) => format!("{what} set in backup, not set after restore"),
        (false, true) => format!("{what} not set in backup, set after restore"),
        _ => format!("{what} differs"),
    }
}

/// Longest value shown in a line; longer ones are reported as "differs".
const SHOW_MAX: usize = 200;

/// `{what} {x} in backup, {y} after restore`, or `{what} differs` when a value is too long to
/// read in one line.
pub(super) fn text_change(what: &str, x: Option<&Value>, y: Option<&Value>) -> String {
    let (a, b) = (show(x), show(y));
    if a.chars().count() > SHOW_MAX || b.chars().count() > SHOW_MAX {
        format!("{what} differs")
    } else {
        format!("{what} {a} in backup, {b} after restore")
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "none".into(),
        Some(Value::String(s)) if s.is_empty() => "\"\"".into(),
        Some(Value::String(s)) => one_line(s),
        Some(Value::Array(items)) if items.is_empty() => "none".into(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| show(Some(i)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(v) => v.to_string(),
    }
}

fn sequence_value_diff(
    e: &serde_json::Map<String, Value>,
    a: &serde_json::Map<String, Value>,
    mode: SequenceValues,
) -> Option<String> {
    let pos = |m: &serde_json::Map<String, Value>| {
        Some((
            m.get("last_value")?.as_i64()?,
            m.get("is_called")?.as_bool()?,
        ))
    };
    let (pe, pa) = (pos(e), pos(a));
    if pe == pa || mode == SequenceValues::Ignore {
        return None;
    }
    if let (SequenceValues::NotBehind, Some((le, ce)), Some((la, ca))) = (mode, pe, pa) {
        // Compare the value the next nextval() would return.
        let inc = a
            .get("increment")
            .or(e.get("increment"))
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let next = |last: i64, called: bool| {
            if called {
                last.saturating_add(inc)
            } else {
                last
            }
        };
        let (ne, na) = (next(le, ce), next(la, ca));
        if (inc >= 0 && na >= ne) || (inc < 0 && na <= ne) {
            return None;
        }
    }
    let fmt = |p: Option<(i64, bool)>| match p {
        None => "unknown".to_string(),
        Some((v, true)) => v.to_string(),
        Some((v, false)) => format!("{v} (not yet used)"),
    };
    Some(format!(
        "value {} in backup, {} after restore",
        fmt(pe),
        fmt(pa)
    ))
}
