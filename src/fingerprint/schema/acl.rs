//! ACLs: compared per grantee, shown in words.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::diff::text_change;

/// One aclitem `grantee=privs/grantor`, names possibly double-quoted; empty grantee = PUBLIC.
pub(super) fn parse_aclitem(s: &str) -> Option<(String, String, String)> {
    fn name(s: &str) -> Option<(String, &str)> {
        if let Some(rest) = s.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = rest.char_indices();
            while let Some((i, c)) = chars.next() {
                if c == '"' {
                    if rest[i + 1..].starts_with('"') {
                        out.push('"');
                        chars.next();
                    } else {
                        return Some((out, &rest[i + 1..]));
                    }
                } else {
                    out.push(c);
                }
            }
            None
        } else {
            let end = s.find(['=', '/']).unwrap_or(s.len());
            Some((s[..end].to_string(), &s[end..]))
        }
    }
    let (grantee, rest) = name(s)?;
    let rest = rest.strip_prefix('=')?;
    let (privs, grantor) = rest.split_once('/')?;
    let (grantor, tail) = name(grantor)?;
    if !tail.is_empty() {
        return None;
    }
    Some((grantee, privs.to_string(), grantor))
}

pub(super) fn privilege_words(privs: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for c in privs.chars() {
        if c == '*' {
            if let Some(last) = words.last_mut() {
                last.push_str(" WITH GRANT OPTION");
            }
            continue;
        }
        let w = match c {
            'r' => "SELECT",
            'w' => "UPDATE",
            'a' => "INSERT",
            'd' => "DELETE",
            'D' => "TRUNCATE",
            'x' => "REFERENCES",
            't' => "TRIGGER",
            'X' => "EXECUTE",
            'U' => "USAGE",
            'C' => "CREATE",
            'c' => "CONNECT",
            'T' => "TEMPORARY",
            'm' => "MAINTAIN",
            's' => "SET",
            'A' => "ALTER SYSTEM",
            other => {
                words.push(other.to_string());
                continue;
            }
        };
        words.push(w.to_string());
    }
    words.join(", ")
}

type AclMap = BTreeMap<String, BTreeSet<(String, String)>>;

fn acl_map(v: Option<&Value>) -> Option<AclMap> {
    let mut map = AclMap::new();
    let Some(v) = v else { return Some(map) };
    for item in v.as_array()? {
        let (grantee, privs, grantor) = parse_aclitem(item.as_str()?)?;
        let grantee = if grantee.is_empty() {
            "PUBLIC".to_string()
        } else {
            grantee
        };
        map.entry(grantee)
            .or_default()
            .insert((privilege_words(&privs), grantor));
    }
    Some(map)
}

/// `privileges of anon: SELECT in backup, none after restore`; the grantor is named only when
/// it is all that differs.
pub(super) fn acl_diff(x: Option<&Value>, y: Option<&Value>, out: &mut Vec<String>) {
    let (Some(mx), Some(my)) = (acl_map(x), acl_map(y)) else {
        out.push(text_change("privileges", x, y));
        return;
    };
    let grantees: BTreeSet<&String> = mx.keys().chain(my.keys()).collect();
    for g in grantees {
        let (a, b) = (mx.get(g), my.get(g));
        if a == b {
            continue;
        }
        let privs = |s: Option<&BTreeSet<(String, String)>>| {
            s.map(|s| s.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>())
        };
        let with_grantor = privs(a) == privs(b);
        let fmt = |s: Option<&BTreeSet<(String, String)>>| match s {
            None => "none".to_string(),
            Some(s) => s
                .iter()
                .map(|(p, grantor)| {
                    let p = if p.is_empty() { "none" } else { p.as_str() };
                    if with_grantor {
                        format!("{p} (granted by {grantor})")
                    } else {
                        p.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
        };
        out.push(format!(
            "privileges of {g}: {} in backup, {} after restore",
            fmt(a),
            fmt(b)
        ));
    }
}
