//! Reading the target's roles, running the role changes, and the proof after the restore.

use super::*;
use crate::error::{PgdrError, Result};
use crate::restore::db_message;
use tokio_postgres::Client;

fn read_err(e: tokio_postgres::Error) -> PgdrError {
    PgdrError::database(format!("reading the target's roles: {}", db_message(&e)))
}

/// The target's roles (not `pg_*`), their role-wide settings, comments and password
/// verifiers (where `pg_authid` is readable), and memberships.
pub async fn read(client: &Client) -> Result<Actual> {
    let head = client
        .query_one(
            "SELECT current_user::text, current_setting('server_version_num')::int",
            &[],
        )
        .await
        .map_err(read_err)?;
    let mut a = Actual {
        current_user: head.get(0),
        version: head.get(1),
        ..Default::default()
    };
    read_roles(client, &mut a).await?;
    read_passwords(client, &mut a).await?;
    read_grants(client, &mut a).await?;
    Ok(a)
}

/// Attributes, role-wide settings and comments, from `pg_roles` (readable by anyone).
async fn read_roles(client: &Client, a: &mut Actual) -> Result<()> {
    let rows = client
        .query(
            "SELECT r.rolname::text, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb,
                    r.rolcanlogin, r.rolreplication, r.rolbypassrls, r.rolconnlimit,
                    CASE WHEN r.rolvaliduntil IS NULL OR r.rolvaliduntil = 'infinity' THEN NULL
                         ELSE extract(epoch FROM r.rolvaliduntil)::float8 END,
                    (SELECT pg_catalog.array_agg(s.s) FROM pg_catalog.pg_db_role_setting rs,
                            pg_catalog.unnest(rs.setconfig) AS s(s)
                      WHERE rs.setrole = r.oid AND rs.setdatabase = 0),
                    pg_catalog.shobj_description(r.oid, 'pg_authid')
               FROM pg_catalog.pg_roles r WHERE r.rolname !~ '^pg_'",
            &[],
        )
        .await
        .map_err(read_err)?;
    for r in rows {
        let settings: Option<Vec<String>> = r.get(10);
        let settings = settings
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| {
                let (k, v) = s.split_once('=')?;
                Some((k.to_lowercase(), v.to_string()))
            })
            .collect();
        let mut flags = [false; 7];
        for (i, f) in flags.iter_mut().enumerate() {
            *f = r.get(i + 1);
        }
        a.roles.insert(
            r.get(0),
            TargetRole {
                flags,
                connection_limit: r.get(8),
                valid_until: r.get(9),
                password: Verifier::Unreadable,
                settings,
                comment: r.get(11),
            },
        );
    }
    Ok(())
}

/// Managed services do not let pgdr read `pg_authid`: the verifiers then stay unknown.
async fn read_passwords(client: &Client, a: &mut Actual) -> Result<()> {
    match client
        .query(
            "SELECT rolname::text, rolpassword FROM pg_catalog.pg_authid",
            &[],
        )
        .await
    {
        Ok(rows) => {
            for r in rows {
                let name: String = r.get(0);
                let pw: Option<String> = r.get(1);
                if let Some(role) = a.roles.get_mut(&name) {
                    role.password = pw.map_or(Verifier::None, Verifier::Some);
                }
            }
        }
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {}
        Err(e) => return Err(read_err(e)),
    }
    Ok(())
}

/// Memberships, with INHERIT/SET options on PostgreSQL 16+.
async fn read_grants(client: &Client, a: &mut Actual) -> Result<()> {
    let options = if a.version >= 160000 {
        "pg_catalog.bool_or(a.inherit_option), pg_catalog.bool_or(a.set_option)"
    } else {
        "NULL::bool, NULL::bool"
    };
    let rows = client
        .query(
            &format!(
                "SELECT r.rolname::text, m.rolname::text, pg_catalog.bool_or(a.admin_option), {options}
                   FROM pg_catalog.pg_auth_members a
                   JOIN pg_catalog.pg_roles r ON r.oid = a.roleid
                   JOIN pg_catalog.pg_roles m ON m.oid = a.member
                  GROUP BY 1, 2"
            ),
            &[],
        )
        .await
        .map_err(read_err)?;
    for r in rows {
        a.grants.insert(
            (r.get(0), r.get(1)),
            TargetGrant {
                admin: r.get(2),
                inherit: r.get(3),
                set: r.get(4),
            },
        );
    }
    Ok(())
}

/// Run changes one by one; a failure is a line ("label: message"), the rest still run.
pub async fn apply(client: &Client, changes: &[Change]) -> Vec<String> {
    let mut errors = Vec::new();
    for c in changes {
        if let Err(e) = client.execute(c.sql.as_str(), &[]).await {
            let line = format!("{}: {}", c.label, db_message(&e));
            tracing::warn!("roles: {line}");
            errors.push(line);
        }
    }
    errors
}

/// After the restore and the proof of the data: run the changes to the connecting role (a
/// new password does not end the open session), read the roles again and judge them.
pub async fn finish(
    client: &Client,
    desired: &Desired,
    plan: &RolePlan,
    mode: RolesMode,
) -> Result<(Verdict, Vec<String>)> {
    let errors = apply(client, &plan.last).await;
    let after = read(client).await?;
    Ok((judge(desired, &after, plan, mode), errors))
}

/// The plan's lines for the operator before anything changes: what happens to each role of
/// the backup that exists on the target.
pub async fn preview(
    client: &Client,
    stmts: &[Parsed],
    m: &crate::catalog::Manifest,
    mode: RolesMode,
) -> Result<Vec<String>> {
    let d = desired(stmts, passwords_in(m));
    let a = read(client).await?;
    let mut lines = plan(&d, &a, mode).lines;
    if let Some(l) = Limits::of(&a) {
        // What the globals step cannot replay as written on a target without SUPERUSER.
        let mut existing = crate::restore::existing_globals(client).await?;
        existing.limits = Some(l);
        lines.extend(crate::restore::globals::plan(stmts, &existing, mode).limited);
    }
    if a.roles.values().all(|r| r.password == Verifier::Unreadable) {
        lines.push("passwords: pg_authid is not readable on the target, so pgdr cannot tell whether they equal the backup's".into());
    }
    Ok(lines)
}
