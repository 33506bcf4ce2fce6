//! Database-level properties: `ALTER DATABASE ... SET`, `ALTER ROLE ... IN DATABASE ... SET`,
//! the database comment, its ACL and connection limit.
//!
//! pg_restore replays them only with `--create` under the original name, so a restore into a
//! database it creates itself (any name, e.g. `<name>_restoring` during `--swap`) replays them
//! here, from the `database` section of the manifest's schema fingerprint
//! (`fingerprint.schema.sections.database.current`). Backups whose manifest has no such
//! section carry nothing to replay; the restore says so. Pure functions, no I/O.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::catalog::Manifest;
use crate::sql::{quote_ident as qi, quote_literal as lit};

/// The recorded properties of the backed-up database, if the manifest has them.
pub fn recorded(m: &Manifest) -> Option<Value> {
    let fp = m.fingerprint.as_ref()?;
    // Read through JSON so this does not depend on the fingerprint's Rust type.
    let schema = serde_json::to_value(&fp.schema).ok()?;
    let current = schema
        .get("sections")?
        .get("database")?
        .get("current")?
        .clone();
    current.is_object().then_some(current)
}

/// Settings whose value is a list of quoted items (pg_dump's `variable_is_guc_list_quote`).
const LIST_QUOTE: &[&str] = &[
    "local_preload_libraries",
    "search_path",
    "session_preload_libraries",
    "shared_preload_libraries",
    "temp_tablespaces",
    "unix_socket_directories",
];

/// `"$user", public` → [`$user`, `public`] (the server's SplitGUCList).
fn split_guc_list(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = v.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    let last = cur.trim().to_string();
    if !last.is_empty() || !out.is_empty() {
        out.push(last);
    }
    out
}

/// `SET name TO value` as pg_dump writes it.
fn set_clause(name: &str, value: &str) -> String {
    let v = if LIST_QUOTE.contains(&name.to_lowercase().as_str()) {
        let items = split_guc_list(value);
        if items.is_empty() {
            "''".to_string()
        } else {
            items.iter().map(|i| lit(i)).collect::<Vec<_>>().join(", ")
        }
    } else {
        lit(value)
    };
    format!("SET {} TO {v}", qi(name))
}

/// A replayed statement as an error may show it: up to its value (`... SET "x" TO`,
/// `COMMENT ON DATABASE "d" IS`), since setting values and comments can be secrets.
pub fn without_value(sql: &str) -> &str {
    for sep in [" TO ", " IS "] {
        if let Some(i) = sql.find(sep) {
            return &sql[..i + sep.len() - 1];
        }
    }
    sql
}

/// The locale options of `CREATE DATABASE` for the recorded locale, if any was recorded.
pub fn locale_clause(props: &Value) -> Option<String> {
    let get = |k: &str| props.get(k).and_then(Value::as_str);
    let mut parts = Vec::new();
    if let Some(c) = get("collate") {
        parts.push(format!("LC_COLLATE {}", lit(c)));
    }
    if let Some(c) = get("ctype") {
        parts.push(format!("LC_CTYPE {}", lit(c)));
    }
    match (get("locale_provider"), get("locale")) {
        (Some("icu"), Some(l)) => {
            parts.push("LOCALE_PROVIDER icu".into());
            parts.push(format!("ICU_LOCALE {}", lit(l)));
        }
        (Some("builtin"), Some(l)) => {
            parts.push("LOCALE_PROVIDER builtin".into());
            parts.push(format!("BUILTIN_LOCALE {}", lit(l)));
        }
        _ => {}
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// One aclitem: `grantee=privs/grantor`, grantee empty for PUBLIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclItem {
    /// None = PUBLIC.
    pub grantee: Option<String>,
    /// (privilege letter, with grant option)
    pub privs: Vec<(char, bool)>,
}

/// Parse `anon=T*c*/postgres`, `"Weird ""x"=c/postgres`, `=Tc/postgres`.
pub fn parse_aclitem(s: &str) -> Option<AclItem> {
    let (grantee, rest) = if let Some(r) = s.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = r.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if chars.peek().map(|p| p.1) == Some('"') {
                    chars.next();
                    name.push('"');
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                name.push(c);
            }
        }
        (Some(name), &r[end?..])
    } else {
        let eq = s.find('=')?;
        let g = &s[..eq];
        ((!g.is_empty()).then(|| g.to_string()), &s[eq..])
    };
    let rest = rest.strip_prefix('=')?;
    let privs_text = rest.split('/').next()?;
    let mut privs = Vec::new();
    let mut chars = privs_text.chars().peekable();
    while let Some(c) = chars.next() {
        let grant = chars.peek() == Some(&'*');
        if grant {
            chars.next();
        }
        privs.push((c, grant));
    }
    Some(AclItem { grantee, privs })
}

fn priv_name(c: char) -> Option<&'static str> {
    match c {
        'C' => Some("CREATE"),
        'c' => Some("CONNECT"),
        'T' => Some("TEMPORARY"),
        _ => None,
    }
}

/// The statements that make `dbname` carry the recorded properties, and what was left out
/// (roles the target does not have). `owner` is the restored database's actual owner.
pub fn statements(
    props: &Value,
    dbname: &str,
    owner: &str,
    roles: &BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let db = qi(dbname);
    let mut sql = Vec::new();
    let mut skipped = Vec::new();

    if let Some(c) = props.get("comment").and_then(Value::as_str) {
        sql.push(format!("COMMENT ON DATABASE {db} IS {}", lit(c)));
    }
    if let Some(n) = props.get("connection_limit").and_then(Value::as_i64) {
        sql.push(format!("ALTER DATABASE {db} CONNECTION LIMIT = {n}"));
    }
    if let Some(settings) = props.get("settings").and_then(Value::as_object) {
        for (k, v) in settings {
            if let Some(v) = v.as_str() {
                sql.push(format!("ALTER DATABASE {db} {}", set_clause(k, v)));
            }
        }
    }
    if let Some(per_role) = props.get("role_settings").and_then(Value::as_object) {
        role_setting_statements(per_role, &db, roles, &mut sql, &mut skipped);
    }
    if let Some(acl) = props.get("acl").and_then(Value::as_array) {
        let recorded_owner = props.get("owner").and_then(Value::as_str).unwrap_or(owner);
        acl_statements(
            acl,
            &db,
            recorded_owner,
            owner,
            roles,
            &mut sql,
            &mut skipped,
        );
    }
    (sql, skipped)
}

/// Whether a statement naming role `r` can run on the target; if not, why it is skipped.
fn role_ok(roles: &BTreeSet<String>, r: &str, what: &str, skipped: &mut Vec<String>) -> bool {
    let ok = roles.contains(r);
    if !ok {
        skipped.push(format!("{what}: role '{r}' does not exist on the target"));
    }
    ok
}

/// `ALTER ROLE ... IN DATABASE ... SET`, for the roles the target has.
fn role_setting_statements(
    per_role: &serde_json::Map<String, Value>,
    db: &str,
    roles: &BTreeSet<String>,
    sql: &mut Vec<String>,
    skipped: &mut Vec<String>,
) {
    for (role, settings) in per_role {
        let Some(settings) = settings.as_object() else {
            continue;
        };
        if !role_ok(roles, role, "ALTER ROLE ... IN DATABASE", skipped) {
            continue;
        }
        for (k, v) in settings {
            if let Some(v) = v.as_str() {
                sql.push(format!(
                    "ALTER ROLE {} IN DATABASE {db} {}",
                    qi(role),
                    set_clause(k, v)
                ));
            }
        }
    }
}

/// The database's ACL: nothing when it is the built-in default, otherwise everything revoked
/// and each recorded grant replayed, the recorded owner's grants given to the actual owner.
fn acl_statements(
    acl: &[Value],
    db: &str,
    recorded_owner: &str,
    owner: &str,
    roles: &BTreeSet<String>,
    sql: &mut Vec<String>,
    skipped: &mut Vec<String>,
) {
    let items: Vec<AclItem> = acl
        .iter()
        .filter_map(Value::as_str)
        .filter_map(parse_aclitem)
        .collect();
    if is_default_acl(&items, recorded_owner) {
        return;
    }
    sql.push(format!("REVOKE ALL ON DATABASE {db} FROM PUBLIC"));
    sql.push(format!("REVOKE ALL ON DATABASE {db} FROM {}", qi(owner)));
    for item in &items {
        let who = match &item.grantee {
            None => "PUBLIC".to_string(),
            Some(g) if g == recorded_owner => qi(owner),
            Some(g) => {
                if !role_ok(roles, g, "GRANT ON DATABASE", skipped) {
                    continue;
                }
                qi(g)
            }
        };
        for grant_option in [false, true] {
            let names: Vec<&str> = item
                .privs
                .iter()
                .filter(|p| p.1 == grant_option)
                .filter_map(|p| priv_name(p.0))
                .collect();
            if !names.is_empty() {
                sql.push(format!(
                    "GRANT {} ON DATABASE {db} TO {who}{}",
                    names.join(", "),
                    if grant_option {
                        " WITH GRANT OPTION"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
}

/// The built-in default (`=Tc/owner`, `owner=CTc/owner`) needs nothing.
fn is_default_acl(items: &[AclItem], recorded_owner: &str) -> bool {
    let default = vec![
        AclItem {
            grantee: None,
            privs: vec![('T', false), ('c', false)],
        },
        AclItem {
            grantee: Some(recorded_owner.to_string()),
            privs: vec![('C', false), ('T', false), ('c', false)],
        },
    ];
    let norm = |v: &[AclItem]| {
        let mut s: Vec<(Option<String>, char, bool)> = v
            .iter()
            .flat_map(|i| i.privs.iter().map(|p| (i.grantee.clone(), p.0, p.1)))
            .collect();
        s.sort();
        s
    };
    norm(items) == norm(&default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_show_statements_without_their_values() {
        let s = format!(
            "ALTER DATABASE \"d\" {}",
            set_clause("app.jwt", "s3cret TO x")
        );
        assert_eq!(without_value(&s), "ALTER DATABASE \"d\" SET \"app.jwt\" TO");
        let c = format!("COMMENT ON DATABASE \"d\" IS {}", lit("s3cret"));
        assert_eq!(without_value(&c), "COMMENT ON DATABASE \"d\" IS");
        assert_eq!(
            without_value("REVOKE ALL ON DATABASE d FROM PUBLIC"),
            "REVOKE ALL ON DATABASE d FROM PUBLIC"
        );
    }

    fn roles() -> BTreeSet<String> {
        ["postgres", "anon", "authenticated", "app_owner"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn settings_comment_and_limits_as_pg_dump_writes_them() {
        let props = serde_json::json!({
            "owner": "postgres",
            "comment": "pgdr's sample",
            "connection_limit": 50,
            "acl": ["=Tc/postgres", "postgres=CTc/postgres"],
            "settings": {"app.settings.environment": "demo",
                          "search_path": "\"$user\", public, \"Auth\"\"x\""},
            "role_settings": {"authenticated": {"statement_timeout": "5s"},
                              "ghost": {"work_mem": "1MB"}}
        });
        let (sql, skipped) = statements(&props, "app_restoring", "postgres", &roles());
        assert_eq!(
            sql,
            vec![
                "COMMENT ON DATABASE \"app_restoring\" IS 'pgdr''s sample'",
                "ALTER DATABASE \"app_restoring\" CONNECTION LIMIT = 50",
                "ALTER DATABASE \"app_restoring\" SET \"app.settings.environment\" TO 'demo'",
                "ALTER DATABASE \"app_restoring\" SET \"search_path\" TO '$user', 'public', 'Auth\"x'",
                "ALTER ROLE \"authenticated\" IN DATABASE \"app_restoring\" SET \"statement_timeout\" TO '5s'",
            ]
        );
        assert_eq!(
            skipped,
            vec!["ALTER ROLE ... IN DATABASE: role 'ghost' does not exist on the target"]
        );
    }

    #[test]
    fn acl_replayed_only_when_not_the_default() {
        let props = serde_json::json!({
            "owner": "postgres",
            "acl": ["=T/postgres", "postgres=CTc/postgres", "anon=T*c*/postgres",
                    "app_owner=C/postgres", "\"Weird \"\"x\"=c/postgres"]
        });
        let (sql, skipped) = statements(&props, "app", "postgres", &roles());
        assert_eq!(
            sql,
            vec![
                "REVOKE ALL ON DATABASE \"app\" FROM PUBLIC",
                "REVOKE ALL ON DATABASE \"app\" FROM \"postgres\"",
                "GRANT TEMPORARY ON DATABASE \"app\" TO PUBLIC",
                "GRANT CREATE, TEMPORARY, CONNECT ON DATABASE \"app\" TO \"postgres\"",
                "GRANT TEMPORARY, CONNECT ON DATABASE \"app\" TO \"anon\" WITH GRANT OPTION",
                "GRANT CREATE ON DATABASE \"app\" TO \"app_owner\"",
            ]
        );
        assert_eq!(
            skipped,
            vec!["GRANT ON DATABASE: role 'Weird \"x' does not exist on the target"]
        );
        let default = serde_json::json!({"owner": "postgres",
                                         "acl": ["postgres=CTc/postgres", "=Tc/postgres"]});
        assert!(statements(&default, "app", "postgres", &roles())
            .0
            .is_empty());
    }

    #[test]
    fn locale() {
        let p = serde_json::json!({"collate": "C", "ctype": "C.UTF-8", "locale_provider": "libc"});
        assert_eq!(
            locale_clause(&p).unwrap(),
            "LC_COLLATE 'C' LC_CTYPE 'C.UTF-8'"
        );
        let p = serde_json::json!({"collate": "en_US.UTF-8", "ctype": "en_US.UTF-8",
                                   "locale_provider": "icu", "locale": "und"});
        assert!(locale_clause(&p)
            .unwrap()
            .ends_with("LOCALE_PROVIDER icu ICU_LOCALE 'und'"));
        assert_eq!(locale_clause(&serde_json::json!({})), None);
    }

    #[test]
    fn aclitems_and_lists_parse() {
        assert_eq!(
            parse_aclitem("=Tc/postgres"),
            Some(AclItem {
                grantee: None,
                privs: vec![('T', false), ('c', false)]
            })
        );
        assert_eq!(
            parse_aclitem("\"a\"\"b=\"=C*/x")
                .unwrap()
                .grantee
                .as_deref(),
            Some("a\"b=")
        );
        assert_eq!(split_guc_list(""), Vec::<String>::new());
        assert_eq!(split_guc_list("a, \"B,c\""), vec!["a", "B,c"]);
    }
}
