//! What the roles step does with roles the target already has, and the verdict after it.

use super::*;
use crate::restore::globals::LIBRARY_SETTINGS;

/// One statement pgdr writes for an existing role. `sql` may hold a password verifier: it is
/// sent, never shown or logged; `label` is what messages say.
#[derive(Clone, PartialEq, Eq)]
pub struct Change {
    pub label: String,
    pub sql: String,
}

/// The label only: `sql` may hold a password verifier.
impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Change({})", self.label)
    }
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
    limits: Option<Limits>,
    refused: &mut Vec<String>,
) -> String {
    let mut words = Vec::new();
    for (i, w) in desired_flags(&want.attrs).iter().enumerate() {
        let Some(w) = *w else { continue };
        if limits.is_some_and(|l| !l.may_set(i)) {
            // Named, not sent: one such word makes the server refuse the whole statement.
            if w != have.flags[i] {
                let word = |b: bool| format!("{}{}", if b { "" } else { "NO" }, FLAGS[i]);
                refused.push(format!(
                    "role {role}: {} in the backup, {} on the target",
                    word(w),
                    word(have.flags[i])
                ));
            }
            continue;
        }
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
    let limits = Limits::of(a);
    for (role, want) in &d.roles {
        let Some(have) = a.roles.get(role) else {
            continue;
        };
        p.existed.insert(role.clone());
        let connecting = *role == a.current_user;
        let mut r = One {
            role,
            want,
            have,
            mine: diffs.iter().filter(|x| x.role == *role).collect(),
            connecting,
            mode,
            limits,
            changes: Vec::new(),
            said: Vec::new(),
        };
        r.attributes(d, &mut p.refused);
        r.settings_and_comment(&mut p.refused);
        r.memberships(d, a);
        if mode == RolesMode::Keep {
            r.changes.clear();
        }
        if r.said.is_empty() {
            r.said.push("equal to the backup's".into());
        }
        let who = if connecting {
            format!("role '{role}' (pgdr connects as it)")
        } else {
            format!("role '{role}'")
        };
        p.lines.push(format!("{who} exists: {}", r.said.join("; ")));
        if connecting {
            p.last.extend(r.changes);
        } else {
            p.now.extend(r.changes);
        }
    }
    p
}

/// One existing role being planned: its differences, the changes and the plan's words.
struct One<'a> {
    role: &'a str,
    want: &'a BackupRole,
    have: &'a TargetRole,
    mine: Vec<&'a Diff>,
    connecting: bool,
    mode: RolesMode,
    /// The connecting role is not a superuser: what it may grant.
    limits: Option<Limits>,
    changes: Vec<Change>,
    said: Vec<String>,
}

impl One<'_> {
    fn has(&self, x: Aspect) -> bool {
        self.mine.iter().any(|m| m.aspect == x)
    }
    /// The differences of one aspect, without the `role r: ` prefix.
    fn texts(&self, x: Aspect) -> String {
        let prefix = format!("role {}: ", self.role);
        self.mine
            .iter()
            .filter(|m| m.aspect == x)
            .map(|m| m.text.trim_start_matches(&prefix).to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }
    fn change(&mut self, label: &str, sql: String) {
        self.changes.push(Change {
            label: format!("{label} (role {})", self.role),
            sql,
        });
    }

    /// Attributes and password.
    fn attributes(&mut self, d: &Desired, refused: &mut Vec<String>) {
        let (role, want, have, mode) = (self.role, self.want, self.have, self.mode);
        if self.has(Aspect::Attribute) {
            if mode == RolesMode::Overwrite {
                let before = refused.len();
                let sql = attributes_sql(role, want, have, self.connecting, self.limits, refused);
                self.change("ALTER ROLE ... WITH", sql);
                let except = if refused.len() == before {
                    String::new()
                } else {
                    format!(
                        ", except what would stop pgdr from finishing: {}",
                        refused[before..].join("; ")
                    )
                };
                let t = self.texts(Aspect::Attribute);
                self.said
                    .push(format!("attributes ({t}): made the backup's{except}"));
            } else {
                let t = self.texts(Aspect::Attribute);
                self.said
                    .push(format!("attributes ({t}): kept ({})", mode.flag()));
            }
        }
        if !d.passwords && mode == RolesMode::Overwrite {
            self.said.push(
                "password: not in the backup (roles-only globals): kept, cannot be restored".into(),
            );
        } else if self.has(Aspect::Password) {
            let t = self.texts(Aspect::Password);
            if mode == RolesMode::Overwrite {
                let pw = want
                    .attrs
                    .password
                    .as_deref()
                    .map_or("NULL".to_string(), lit);
                self.change(
                    "ALTER ROLE ... PASSWORD",
                    format!("ALTER ROLE {} WITH PASSWORD {pw}", qi(role)),
                );
                let cleared = if want.attrs.password.is_none() {
                    " (none: cleared)"
                } else {
                    ""
                };
                self.said
                    .push(format!("password ({t}): set to the backup's{cleared}"));
            } else {
                self.said
                    .push(format!("password ({t}): kept ({})", mode.flag()));
            }
        } else if self.has(Aspect::PasswordUnknown) && mode == RolesMode::Overwrite {
            // pg_authid is not readable: set it anyway, the proof names what it cannot compare.
            if let Some(pw) = want.attrs.password.as_deref() {
                let sql = format!("ALTER ROLE {} WITH PASSWORD {}", qi(role), lit(pw));
                self.change("ALTER ROLE ... PASSWORD", sql);
                self.said.push(
                    "password: set to the backup's (not comparable: pg_authid is not readable)"
                        .into(),
                );
            }
        }
    }

    fn settings_and_comment(&mut self, refused: &mut Vec<String>) {
        let keep = self.mode == RolesMode::Keep;
        if self.has(Aspect::Setting) {
            let t = self.texts(Aspect::Setting);
            if keep {
                self.said
                    .push(format!("settings ({t}): kept ({})", self.mode.flag()));
            } else {
                settings_changes(self.role, self.want, self.have, &mut self.changes, refused);
                let when = if self.connecting {
                    " (last, after the proof of the data)"
                } else {
                    ""
                };
                self.said
                    .push(format!("settings ({t}): made the backup's{when}"));
            }
        }
        if self.has(Aspect::Comment) {
            if keep {
                self.said
                    .push(format!("comment differs: kept ({})", self.mode.flag()));
            } else {
                let c = self.want.comment.as_deref().map_or("NULL".to_string(), lit);
                let sql = format!("COMMENT ON ROLE {} IS {c}", qi(self.role));
                self.change("COMMENT ON ROLE", sql);
                self.said.push("comment: made the backup's".into());
            }
        }
    }

    /// Memberships the backup has (the missing ones are granted by the globals step; options
    /// here) and those the target has beyond them.
    fn memberships(&mut self, d: &Desired, a: &Actual) {
        let role = self.role;
        if self.has(Aspect::Membership) {
            let t = self.texts(Aspect::Membership);
            self.said.push(format!("memberships ({t}): granted"));
            for ((r, m), g) in d.grants.iter().filter(|((_, m), _)| m == role) {
                let Some(h) = a.grants.get(&(r.clone(), m.clone())) else {
                    continue;
                };
                let mut opts = Vec::new();
                if g.admin && !h.admin {
                    opts.push("ADMIN OPTION".to_string());
                }
                if a.version >= 160000 {
                    for (w, t, n) in [(g.inherit, h.inherit, "INHERIT"), (g.set, h.set, "SET")] {
                        if let (Some(w), Some(t)) = (w, t) {
                            if w != t {
                                opts.push(format!("{n} {}", w.to_string().to_uppercase()));
                            }
                        }
                    }
                }
                if !opts.is_empty() {
                    let sql = format!("GRANT {} TO {} WITH {}", qi(r), qi(m), opts.join(", "));
                    self.change("GRANT", sql);
                }
            }
        }
        if self.has(Aspect::ExtraMembership) {
            let t = self.texts(Aspect::ExtraMembership);
            if self.mode != RolesMode::Overwrite {
                self.said.push(format!(
                    "memberships beyond the backup's ({t}): kept ({})",
                    self.mode.flag()
                ));
                return;
            }
            for ((r, m), h) in a.grants.iter().filter(|((_, m), _)| m == role) {
                match d.grants.get(&(r.clone(), m.clone())) {
                    None => self.change("REVOKE", format!("REVOKE {} FROM {}", qi(r), qi(m))),
                    Some(g) if !g.admin && h.admin => self.change(
                        "REVOKE ADMIN OPTION",
                        format!("REVOKE ADMIN OPTION FOR {} FROM {}", qi(r), qi(m)),
                    ),
                    _ => {}
                }
            }
            self.said
                .push(format!("memberships beyond the backup's ({t}): revoked"));
        }
    }
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
    let mut unknown = Vec::new();
    for x in differences(d, after) {
        if x.aspect == Aspect::PasswordUnknown {
            unknown.push(x.role);
            continue;
        }
        let existed = plan.existed.contains(&x.role);
        // Refused differences include those of roles the restore created (attributes a
        // non-superuser may not grant), named in the plan.
        let kept = plan.refused.contains(&x.text)
            || existed
                && (match mode {
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
    if !unknown.is_empty() {
        v.kept.push(format!(
            "passwords not compared (pg_authid is not readable on the target, as on managed services): {}",
            unknown.join(", ")
        ));
    }
    v
}
