//! What a connecting role without SUPERUSER (a managed service's admin) may do to roles.
//!
//! PostgreSQL refuses an `ALTER ROLE ... WITH` as a whole when it names one attribute the
//! connecting role may not set, even to the value it already has (`NOSUPERUSER`): replayed as
//! pg_dumpall writes it, every attribute of the statement is lost. So on such a target the
//! statement is rewritten with only what may be set, and what the backup's role then lacks is
//! named; likewise `GRANTED BY` of a membership, which only a superuser may give.

use super::*;
use crate::restore::dumpall::Grant;

/// The connecting role's own attributes and the server version: what it may grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub version: i32,
    /// Its flags, in the order of [`FLAGS`].
    pub own: [bool; 7],
}

impl Limits {
    /// `None` when the connecting role is a superuser (everything is replayed as written).
    pub fn of(a: &Actual) -> Option<Limits> {
        let me = a.roles.get(&a.current_user)?;
        (!me.flags[0]).then_some(Limits {
            version: a.version,
            own: me.flags,
        })
    }

    /// Whether flag `i` may be named in `CREATE/ALTER ROLE`: never SUPERUSER; REPLICATION and
    /// BYPASSRLS only from PostgreSQL 16 and by a role that has them (15 keeps them for
    /// superusers); CREATEDB and CREATEROLE from 16 only by a role that has them.
    pub fn may_set(&self, i: usize) -> bool {
        match FLAGS[i] {
            "SUPERUSER" => false,
            "REPLICATION" | "BYPASSRLS" => self.version >= 160000 && self.own[i],
            "CREATEDB" | "CREATEROLE" => self.version < 160000 || self.own[i],
            _ => true,
        }
    }
}

/// The text of the roles proof's difference for a flag the backup's role has and the target's
/// lacks: the same words as [`differences`], so the proof can recognise it as named.
pub fn lost_flag_text(role: &str, i: usize) -> String {
    format!(
        "role {role}: {} in the backup, NO{} on the target",
        FLAGS[i], FLAGS[i]
    )
}

/// `ALTER ROLE r WITH ...` of a role the restore creates, with only the attributes `l` allows
/// (`None` when none is left), and the flags the role then lacks (indexes into [`FLAGS`]):
/// the backup has them on, a new role has them off.
pub fn limited_attrs_sql(role: &str, a: &RoleAttrs, l: &Limits) -> (Option<String>, Vec<usize>) {
    let mut words = Vec::new();
    let mut lost = Vec::new();
    for (i, w) in desired_flags(a).iter().enumerate() {
        let Some(w) = *w else { continue };
        if l.may_set(i) {
            words.push(format!("{}{}", if w { "" } else { "NO" }, FLAGS[i]));
        } else if w {
            lost.push(i);
        }
    }
    if let Some(n) = a.connection_limit {
        words.push(format!("CONNECTION LIMIT {n}"));
    }
    if let Some(p) = &a.password {
        words.push(format!("PASSWORD {}", lit(p)));
    }
    if let Some(v) = &a.valid_until {
        words.push(format!("VALID UNTIL {}", lit(v)));
    }
    let sql =
        (!words.is_empty()).then(|| format!("ALTER ROLE {} WITH {};", qi(role), words.join(" ")));
    (sql, lost)
}

/// `GRANT role TO member [WITH ...]` without `GRANTED BY`: the grantor becomes the connecting
/// role.
pub fn grant_sql_without_grantor(g: &Grant) -> String {
    let mut opts = Vec::new();
    if g.admin {
        opts.push("ADMIN OPTION".to_string());
    }
    for (name, v) in [("INHERIT", g.inherit), ("SET", g.set)] {
        if let Some(v) = v {
            opts.push(format!("{name} {}", if v { "TRUE" } else { "FALSE" }));
        }
    }
    let with = if opts.is_empty() {
        String::new()
    } else {
        format!(" WITH {}", opts.join(", "))
    };
    format!("GRANT {} TO {}{with};", qi(&g.role), qi(&g.member))
}
