//! Roles after a restore: the backup's roles (parsed from the globals object) compared with
//! the target's (`pg_authid` or `pg_roles`, `pg_db_role_setting`, `pg_auth_members`,
//! `pg_shdescription`), a plan for the roles that already exist there, and the proof that
//! says what remains different and why.
//!
//! `--roles=merge` (the default) brings settings, comments and memberships of existing roles to
//! the backup's (they are how the application behaves) and keeps their attributes, passwords
//! and any extra memberships (managed platforms grant their own). `--roles=overwrite` makes
//! every role equal to the backup's. `--roles=keep` changes no existing role. Changes to the
//! role pgdr connects as run last, after the proof of the data, and never one that would stop
//! pgdr from finishing (losing SUPERUSER or LOGIN, an expiry in the past).

use std::collections::{BTreeMap, BTreeSet};

use super::dumpall::{Grant, Parsed, RoleAttrs, Stmt};
use crate::sql::quote_ident as qi;

/// What to do with roles the target already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolesMode {
    /// Settings, comments and memberships brought to the backup's; attributes, passwords and
    /// extra memberships kept.
    #[default]
    Merge,
    /// Existing roles are not changed at all (formerly `skip-existing`).
    #[serde(alias = "skip-existing")]
    Keep,
    /// Every role made equal to the backup's: attributes, VALID UNTIL, password, settings,
    /// comments; memberships beyond the backup's revoked.
    Overwrite,
}

impl RolesMode {
    pub fn flag(self) -> &'static str {
        match self {
            RolesMode::Merge => "--roles=merge",
            RolesMode::Keep => "--roles=keep",
            RolesMode::Overwrite => "--roles=overwrite",
        }
    }
}

/// A role as the backup has it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackupRole {
    pub attrs: RoleAttrs,
    /// Role-wide settings (`ALTER ROLE r SET`), name lower-cased → values.
    pub settings: BTreeMap<String, Vec<String>>,
    pub comment: Option<String>,
}

/// The backup's roles and memberships.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub roles: BTreeMap<String, BackupRole>,
    /// (role, member) → the grant.
    pub grants: BTreeMap<(String, String), Grant>,
    /// False for `--roles-only --no-role-passwords` globals: passwords are unknown, not absent.
    pub passwords: bool,
}

/// Build the backup's state from the parsed globals object.
pub fn desired(stmts: &[Parsed], passwords: bool) -> Desired {
    let mut d = Desired {
        passwords,
        ..Default::default()
    };
    for p in stmts {
        match &p.stmt {
            Stmt::CreateRole(r) => {
                d.roles.entry(r.clone()).or_default();
            }
            Stmt::RoleAttrs { role, attrs } => {
                d.roles.entry(role.clone()).or_default().attrs = attrs.clone()
            }
            Stmt::RoleSetting {
                role,
                database: None,
                name,
                values,
            } => {
                d.roles
                    .entry(role.clone())
                    .or_default()
                    .settings
                    .insert(name.to_lowercase(), values.clone());
            }
            Stmt::RoleComment { role, comment } => {
                d.roles.entry(role.clone()).or_default().comment = Some(comment.clone())
            }
            Stmt::Membership(g) => {
                d.grants
                    .insert((g.role.clone(), g.member.clone()), g.clone());
            }
            _ => {}
        }
    }
    d
}

/// The password verifier as pgdr could read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verifier {
    /// `pg_authid` is not readable (managed services): unknown.
    Unreadable,
    None,
    Some(String),
}

/// A role as the target has it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRole {
    pub flags: [bool; 7],
    pub connection_limit: i32,
    /// Seconds since the epoch; `None` for no expiry (NULL or infinity).
    pub valid_until: Option<f64>,
    pub password: Verifier,
    /// Role-wide settings: name lower-cased → value as stored.
    pub settings: BTreeMap<String, String>,
    pub comment: Option<String>,
}

/// Membership options on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetGrant {
    pub admin: bool,
    pub inherit: Option<bool>,
    pub set: Option<bool>,
}

/// The target's roles and memberships.
#[derive(Debug, Clone, Default)]
pub struct Actual {
    pub roles: BTreeMap<String, TargetRole>,
    pub grants: BTreeMap<(String, String), TargetGrant>,
    pub current_user: String,
    /// `server_version_num`: INHERIT/SET options of memberships exist from 160000.
    pub version: i32,
}

/// Flag names in the order of [`TargetRole::flags`].
pub const FLAGS: [&str; 7] = [
    "SUPERUSER",
    "INHERIT",
    "CREATEROLE",
    "CREATEDB",
    "LOGIN",
    "REPLICATION",
    "BYPASSRLS",
];

fn desired_flags(a: &RoleAttrs) -> [Option<bool>; 7] {
    [
        a.superuser,
        a.inherit,
        a.createrole,
        a.createdb,
        a.login,
        a.replication,
        a.bypassrls,
    ]
}

/// Settings whose value is a list of names: stored as `"$user", public`, written by
/// pg_dumpall as one literal per element.
const LIST_SETTINGS: &[&str] = &[
    "search_path",
    "temp_tablespaces",
    "session_preload_libraries",
    "local_preload_libraries",
    "shared_preload_libraries",
];

/// A stored list value (`"$user", public`) as its elements.
fn split_list(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

/// Whether a stored setting equals the backup's values.
fn setting_equal(name: &str, values: &[String], stored: &str) -> bool {
    if values.len() > 1 || LIST_SETTINGS.contains(&name) {
        split_list(stored) == values
    } else {
        values.first().map(String::as_str) == Some(stored)
    }
}

/// A literal that reads the same whatever `standard_conforming_strings` is.
pub fn lit(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Seconds since the epoch of a `VALID UNTIL` text as pg_dumpall writes it; `None` for
/// infinity (no expiry, as NULL).
pub fn parse_valid_until(s: &str) -> Option<f64> {
    if s.eq_ignore_ascii_case("infinity") {
        return None;
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%#z"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(s, f) {
            return Some(t.timestamp_millis() as f64 / 1000.0);
        }
    }
    None
}

/// What part of a role differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Aspect {
    Missing,
    Attribute,
    Password,
    /// The password could not be compared (`pg_authid` is not readable: managed services): a
    /// named limitation of the proof, never a difference.
    PasswordUnknown,
    Setting,
    Membership,
    /// A membership, or its ADMIN option, the target has beyond the backup's.
    ExtraMembership,
    Comment,
}

/// One difference, in operator words (never a password).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diff {
    pub role: String,
    pub aspect: Aspect,
    pub text: String,
}

/// Every difference between the backup's roles and the target's. Roles only the target has
/// are not differences (the target's own); memberships it has beyond the backup's are, for
/// members the backup knows.
pub fn differences(d: &Desired, a: &Actual) -> Vec<Diff> {
    let mut out = Vec::new();
    let mut push = |role: &str, aspect: Aspect, text: String| {
        out.push(Diff {
            role: role.to_string(),
            aspect,
            text: format!("role {role}: {text}"),
        })
    };
    for (name, want) in &d.roles {
        let Some(have) = a.roles.get(name) else {
            push(name, Aspect::Missing, "missing on the target".into());
            continue;
        };
        role_differences(name, want, have, d.passwords, &mut push);
    }
    for ((role, member), g) in &d.grants {
        match a.grants.get(&(role.clone(), member.clone())) {
            None => push(
                member,
                Aspect::Membership,
                format!("member of {role} in the backup, not on the target"),
            ),
            Some(h) => {
                if g.admin && !h.admin {
                    push(member, Aspect::Membership, format!("member of {role} WITH ADMIN OPTION in the backup, without on the target"));
                }
                if !g.admin && h.admin {
                    push(member, Aspect::ExtraMembership, format!("member of {role} without ADMIN OPTION in the backup, with it on the target"));
                }
                for (what, w, t) in [("INHERIT", g.inherit, h.inherit), ("SET", g.set, h.set)] {
                    if let (Some(w), Some(t)) = (w, t) {
                        if w != t {
                            push(member, Aspect::Membership, format!("membership in {role}: {what} {} in the backup, {} on the target", w.to_string().to_uppercase(), t.to_string().to_uppercase()));
                        }
                    }
                }
            }
        }
    }
    for (role, member) in a.grants.keys() {
        if d.roles.contains_key(member) && !d.grants.contains_key(&(role.clone(), member.clone())) {
            push(
                member,
                Aspect::ExtraMembership,
                format!("member of {role} on the target, not in the backup"),
            );
        }
    }
    out.sort();
    out
}

/// Attributes, password, settings and comment of one role that exists on the target.
fn role_differences(
    name: &str,
    want: &BackupRole,
    have: &TargetRole,
    passwords: bool,
    push: &mut impl FnMut(&str, Aspect, String),
) {
    attribute_differences(name, want, have, push);
    if passwords {
        password_difference(name, want, have, push);
    }
    setting_differences(name, want, have, push);
    if want.comment != have.comment {
        push(
            name,
            Aspect::Comment,
            "comment differs from the backup's".into(),
        );
    }
}

/// The role's flags, connection limit and expiry (compared as times: the text forms differ
/// between servers).
fn attribute_differences(
    name: &str,
    want: &BackupRole,
    have: &TargetRole,
    push: &mut impl FnMut(&str, Aspect, String),
) {
    for (i, w) in desired_flags(&want.attrs).iter().enumerate() {
        if let Some(w) = w {
            if *w != have.flags[i] {
                let word = |b: bool| format!("{}{}", if b { "" } else { "NO" }, FLAGS[i]);
                push(
                    name,
                    Aspect::Attribute,
                    format!(
                        "{} in the backup, {} on the target",
                        word(*w),
                        word(have.flags[i])
                    ),
                );
            }
        }
    }
    let limit = want.attrs.connection_limit.unwrap_or(-1);
    if limit != have.connection_limit {
        push(
            name,
            Aspect::Attribute,
            format!(
                "CONNECTION LIMIT {limit} in the backup, {} on the target",
                have.connection_limit
            ),
        );
    }
    let until = want
        .attrs
        .valid_until
        .as_deref()
        .and_then(parse_valid_until);
    let same_until = match (until, have.valid_until) {
        (Some(x), Some(y)) => (x - y).abs() < 0.001,
        (x, y) => x.is_none() && y.is_none(),
    };
    if !same_until {
        let show = |v: Option<&str>| v.unwrap_or("none").to_string();
        push(
            name,
            Aspect::Attribute,
            format!(
                "VALID UNTIL {} in the backup, differs on the target",
                show(want.attrs.valid_until.as_deref())
            ),
        );
    }
}

/// The password verifier, when the backup carries passwords; a target whose pg_authid cannot
/// be read is said so rather than taken as equal.
fn password_difference(
    name: &str,
    want: &BackupRole,
    have: &TargetRole,
    push: &mut impl FnMut(&str, Aspect, String),
) {
    match (&want.attrs.password, &have.password) {
        (_, Verifier::Unreadable) => push(
            name,
            Aspect::PasswordUnknown,
            "password cannot be compared: pg_authid is not readable on the target".into(),
        ),
        (Some(w), Verifier::Some(h)) if w == h => {}
        (None, Verifier::None) => {}
        (Some(_), Verifier::Some(_)) => push(
            name,
            Aspect::Password,
            "password differs from the backup's".into(),
        ),
        (Some(_), Verifier::None) => push(
            name,
            Aspect::Password,
            "password in the backup, none on the target".into(),
        ),
        (None, Verifier::Some(_)) => push(
            name,
            Aspect::Password,
            "no password in the backup, one on the target".into(),
        ),
    }
}

/// The role's settings both ways: set in the backup and missing or different on the target,
/// and set on the target only.
fn setting_differences(
    name: &str,
    want: &BackupRole,
    have: &TargetRole,
    push: &mut impl FnMut(&str, Aspect, String),
) {
    // Setting values can be secrets (tokens, keys): differences name the setting only.
    for (k, v) in &want.settings {
        match have.settings.get(k) {
            Some(s) if setting_equal(k, v, s) => {}
            Some(_) => push(
                name,
                Aspect::Setting,
                format!("setting {k} differs from the backup's"),
            ),
            None => push(
                name,
                Aspect::Setting,
                format!("setting {k} set in the backup, not on the target"),
            ),
        }
    }
    for k in have.settings.keys() {
        if !want.settings.contains_key(k) {
            push(
                name,
                Aspect::Setting,
                format!("setting {k} not set in the backup, set on the target"),
            );
        }
    }
}

/// For the summary's proof line: roles that differ from the backup because `--roles` kept
/// them are never part of "equal".
pub fn kept_suffix(roles_kept: &[String]) -> String {
    let n = roles_kept
        .iter()
        .filter(|k| k.starts_with("kept on the target"))
        .count();
    if n == 0 {
        String::new()
    } else {
        format!("; roles: {n} difference(s) kept on the target as asked (listed below)")
    }
}

/// Whether the backup's globals hold passwords (not `--no-role-passwords`).
pub fn passwords_in(m: &crate::catalog::Manifest) -> bool {
    !m.tools
        .pg_dumpall_args
        .iter()
        .any(|a| a == "--no-role-passwords")
}

/// The roles step's state between the restore and the roles proof.
#[derive(Clone)]
pub struct Pending {
    pub desired: Desired,
    pub plan: RolePlan,
    pub mode: RolesMode,
}

/// Never prints the backup's password verifiers.
impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pending {{ roles: {}, mode: {:?} }}",
            self.desired.roles.len(),
            self.mode
        )
    }
}

#[path = "roles_plan.rs"]
mod plan_impl;
pub use plan_impl::*;

#[path = "roles_limits.rs"]
mod limits_impl;
pub use limits_impl::*;

#[path = "roles_read.rs"]
mod read_impl;
pub use read_impl::*;

#[cfg(test)]
#[path = "roles_tests.rs"]
mod tests;
