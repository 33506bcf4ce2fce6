//! What the roles step does with roles the target already has, and the verdict after it.

use super::*;
use crate::restore::globals::LIBRARY_SETTINGS;

/// One statement pgdr writes for an existing role. `sql` may hold a password verifier: it is
/// sent, never shown or logged; `label` is what messages say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub label: String,
    pub sql: String,
}

/// The plan for existing roles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolePlan {
    /// Operator lines: per existing role, each difference and what is done with it.
    pub lines: Vec<String>,
    /// For existing roles other than the connecting one: run in the roles step.
    pub now: Vec<Change>,
    /// For the role pgdr connects as: run after the proof of the data.
    pub last: Vec<Change>,
    /// Differences left although the mode would change them (never applied by pgdr).
    pub refused: Vec<String>,
    /// Roles of the backup that existed on the target before the restore.
    pub existed: BTreeSet<String>,
}

/// What the roles proof found: differences that are findings, and those the operator asked
/// to keep (or pgdr refused to change), listed, never called equal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub findings: Vec<String>,
    pub kept: Vec<String>,
}

/// The `ALTER ROLE ... WITH` that makes `role`'s attributes the backup's; for the connecting
/// role, what would stop pgdr (losing SUPERUSER or LOGIN, an expiry in the past) is left out
/// and named in `refused`.
fn attributes_sql(
    role: &str,
    want: &BackupRole,
    have: &TargetRole,
    connecting: bool,
    refused: &mut Vec<String>,
) -> String {
    let mut words = Vec::new();
    for (i, w) in desired_flags(&want.attrs).iter().enumerate() {
        let Some(w) = *w else { continue };
        if connecting && !w && have.flags[i] && (FLAGS[i] == "SUPERUSER" || FLAGS[i] == "LOGIN") {
            refused.push(format!(
                "role {role}: NO{} in the backup, {} on the target",
                FLAGS[i], FLAGS[i]
            ));
            continue;
        }
        words.push(format!("{}{}", if w { "" } else { "NO" }, FLAGS[i]));
    }
    words.push(format!(
        "CONNECTION LIMIT {}",
        want.attrs.connection_limit.unwrap_or(-1)
    ));
    // Only when it differs: no expiry can be written as 'infinity' but not back as NULL.
    let until = want
        .attrs
        .valid_until
        .clone()
        .unwrap_or_else(|| "infinity".into());
    let want_until = parse_valid_until(&until);
    let differs = match (want_until, have.valid_until) {
        (Some(x), Some(y)) => (x - y).abs() >= 0.001,
        (x, y) => x.is_some() || y.is_some(),
    };
    let past = want_until.is_some_and(|t| t < chrono::Utc::now().timestamp() as f64);
    if differs && connecting && past {
        refused.push(format!(
            "role {role}: VALID UNTIL {until} in the backup, differs on the target"
        ));
    } else if differs {
        words.push(format!("VALID UNTIL {}", lit(&until)));
    }
    format!("ALTER ROLE {} WITH {}", qi(role), words.join(" "))
}

/// Plan the changes to existing roles for `mode`.
pub fn plan(d: &Desired, a: &Actual, mode: RolesMode) -> RolePlan {
    let mut p = RolePlan::default();
    let diffs = differences(d, a);
    for (role, want) in &d.roles {
        let Some(have) = a.roles.get(role) else {
            continue;
        };
        p.existed.insert(role.clone());
        let connecting = *role == a.current_user;
        let mine: Vec<&Diff> = diffs.iter().filter(|x| x.role == *role).collect();
        let who = if connecting {
            format!("role '{role}' (pgdr connects as it)")
        } else {
            format!("role '{role}'")
        };
        let mut changes: Vec<Change> = Vec::new();
        let mut said: Vec<String> = Vec::new();
        let change = |label: &str, sql: String| Change {
            label: format!("{label} (role {role})"),
            sql,
        };
        let has = |x: Aspect| mine.iter().any(|m| m.aspect == x);
        let texts = |x: Aspect| {
            mine.iter()
                .filter(|m| m.aspect == x)
                .map(|m| {
                    m.text
                        .trim_start_matches(&format!("role {role}: "))
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        if has(Aspect::Attribute) {
            if mode == RolesMode::Overwrite {
                let before = p.refused.len();
                changes.push(change(
                    "ALTER ROLE ... WITH",
                    attributes_sql(role, want, have, connecting, &mut p.refused),
                ));
                let refused: Vec<String> = p.refused[before..].to_vec();
                said.push(format!(
                    "attributes ({}): made the backup's{}",
                    texts(Aspect::Attribute),
                    if refused.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", except what would stop pgdr from finishing: {}",
                            refused.join("; ")
                        )
                    }
                ));
            } else {
                said.push(format!(
                    "attributes ({}): kept ({})",
                    texts(Aspect::Attribute),
                    mode.flag()
                ));
            }
        }
        if !d.passwords && mode == RolesMode::Overwrite {
            said.push(
                "password: not in the backup (roles-only globals): kept, cannot be restored".into(),
            );
        } else if has(Aspect::Password) {
            let readable = have.password != Verifier::Unreadable;
            if mode == RolesMode::Overwrite {
                let pw = want
                    .attrs
                    .password
                    .as_deref()
                    .map_or("NULL".to_string(), lit);
                changes.push(change(
                    "ALTER ROLE ... PASSWORD",
                    format!("ALTER ROLE {} WITH PASSWORD {pw}", qi(role)),
                ));
                said.push(format!(
                    "password ({}): set to the backup's{}",
                    texts(Aspect::Password),
                    if want.attrs.password.is_none() {
                        " (none: cleared)"
                    } else {
                        ""
                    }
                ));
            } else {
                said.push(format!(
                    "password ({}): kept ({})",
                    texts(Aspect::Password),
                    mode.flag()
                ));
            }
            if !readable {
                p.refused.extend(
                    mine.iter()
                        .filter(|m| m.aspect == Aspect::Password)
                        .map(|m| m.text.clone()),
                );
            }
        }
        if has(Aspect::Setting) {
            if mode == RolesMode::Keep {
                said.push(format!(
                    "settings ({}): kept ({})",
                    texts(Aspect::Setting),
                    mode.flag()
                ));
            } else {
                settings_changes(role, want, have, &mut changes, &mut p.refused);
                said.push(format!(
                    "settings ({}): made the backup's{}",
                    texts(Aspect::Setting),
                    if connecting {
                        " (last, after the proof of the data)"
                    } else {
                        ""
                    }
                ));
            }
        }
        if has(Aspect::Comment) {
            if mode == RolesMode::Keep {
                said.push(format!("comment differs: kept ({})", mode.flag()));
            } else {
                let c = want.comment.as_deref().map_or("NULL".to_string(), lit);
                changes.push(change(
                    "COMMENT ON ROLE",
                    format!("COMMENT ON ROLE {} IS {c}", qi(role)),
                ));
                said.push("comment: made the backup's".into());
            }
        }
        if has(Aspect::Membership) {
            said.push(format!(
                "memberships ({}): granted",
                texts(Aspect::Membership)
            ));
            for ((r, m), g) in &d.grants {
                if m != role {
                    continue;
                }
                if let Some(h) = a.grants.get(&(r.clone(), m.clone())) {
                    let mut opts = Vec::new();
                    if g.admin && !h.admin {
                        opts.push("ADMIN OPTION".to_string());
                    }
                    if a.version >= 160000 {
                        for (w, t, n) in [(g.inherit, h.inherit, "INHERIT"), (g.set, h.set, "SET")]
                        {
                            if let (Some(w), Some(t)) = (w, t) {
                                if w != t {
                                    opts.push(format!("{n} {}", w.to_string().to_uppercase()));
                                }
                            }
                        }
                    }
                    if !opts.is_empty() {
                        changes.push(change(
                            "GRANT",
                            format!("GRANT {} TO {} WITH {}", qi(r), qi(m), opts.join(", ")),
                        ));
                    }
                }
            }
        }
        if has(Aspect::ExtraMembership) {
            if mode == RolesMode::Overwrite {
                for ((r, m), h) in &a.grants {
                    if m != role {
                        continue;
                    }
                    match d.grants.get(&(r.clone(), m.clone())) {
                        None => changes
                            .push(change("REVOKE", format!("REVOKE {} FROM {}", qi(r), qi(m)))),
                        Some(g) if !g.admin && h.admin => changes.push(change(
                            "REVOKE ADMIN OPTION",
                            format!("REVOKE ADMIN OPTION FOR {} FROM {}", qi(r), qi(m)),
                        )),
                        _ => {}
                    }
                }
                said.push(format!(
                    "memberships beyond the backup's ({}): revoked",
                    texts(Aspect::ExtraMembership)
                ));
            } else {
                said.push(format!(
                    "memberships beyond the backup's ({}): kept ({})",
                    texts(Aspect::ExtraMembership),
                    mode.flag()
                ));
            }
        }
        if mode == RolesMode::Keep {
            changes.clear();
        }
        if said.is_empty() {
            said.push("equal to the backup's".into());
        }
        p.lines.push(format!("{who} exists: {}", said.join("; ")));
        if connecting {
            p.last.extend(changes);
        } else {
            p.now.extend(changes);
        }
    }
    p
}

/// `ALTER ROLE r SET/RESET` for each setting that differs; settings that load libraries at
/// login are never applied (named in `refused`).
fn settings_changes(
    role: &str,
    want: &BackupRole,
    have: &TargetRole,
    changes: &mut Vec<Change>,
    refused: &mut Vec<String>,
) {
    for (k, v) in &want.settings {
        if have.settings.get(k).is_some_and(|s| setting_equal(k, v, s)) {
            continue;
        }
        if LIBRARY_SETTINGS.contains(&k.as_str()) {
            refused.push(format!(
                "role {role}: setting {k} is {} in the backup, {} on the target",
                v.join(", "),
                have.settings.get(k).map_or("not set", String::as_str)
            ));
            continue;
        }
        let vals: Vec<String> = v.iter().map(|x| lit(x)).collect();
        changes.push(Change {
            label: format!("ALTER ROLE ... SET {k} (role {role})"),
            sql: format!(
                "ALTER ROLE {} SET {} TO {}",
                qi(role),
                qi(k),
                vals.join(", ")
            ),
        });
    }
    for k in have.settings.keys() {
        if !want.settings.contains_key(k) {
            changes.push(Change {
                label: format!("ALTER ROLE ... RESET {k} (role {role})"),
                sql: format!("ALTER ROLE {} RESET {}", qi(role), qi(k)),
            });
        }
    }
}

/// Judge the roles after the restore: a difference is a finding unless the mode keeps it on
/// an existing role, or pgdr refused to change it (named at plan time).
pub fn judge(d: &Desired, after: &Actual, plan: &RolePlan, mode: RolesMode) -> Verdict {
    let mut v = Verdict::default();
    for x in differences(d, after) {
        let existed = plan.existed.contains(&x.role);
        let kept = existed
            && (plan.refused.contains(&x.text)
                || match mode {
                    RolesMode::Keep => true,
                    RolesMode::Merge => matches!(
                        x.aspect,
                        Aspect::Attribute | Aspect::Password | Aspect::ExtraMembership
                    ),
                    RolesMode::Overwrite => false,
                });
        if kept {
            v.kept.push(format!(
                "kept on the target, differs from the backup: {}",
                x.text
            ));
        } else {
            v.findings.push(x.text);
        }
    }
    v
}
