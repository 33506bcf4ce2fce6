//! Restoring onto a managed server (a new Supabase project, RDS, Cloud SQL) where pgdr connects
//! as an admin role without SUPERUSER. Nothing here is guessed at run time: [`plan`] reads the
//! backup's fingerprint and the target's catalog and names every decision before anything is
//! written; [`super::managed_run`] carries it out (the filtered TOC list, the owners, the
//! triggers) and narrows the proof to what was restored.
//!
//! Platform schemas (the target's own `auth`, `storage`, ...) are never re-created: only the
//! rows of the backup's tables in them are restored, into the existing tables, through
//! pg_dump's own `COPY t (columns) FROM stdin` (explicit column lists: columns the platform
//! added since keep their defaults).

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Client;

use crate::catalog::Manifest;
use crate::error::{PgdrError, Result};
use crate::sql::quote_ident as qi;

use super::db_message;

/// Schemas a Supabase project creates and migrates itself: platform-managed when the target
/// has them and ownership does not already say so.
pub const SUPABASE_PLATFORM: &[&str] = &[
    "_analytics",
    "_realtime",
    "auth",
    "cron",
    "extensions",
    "graphql",
    "graphql_public",
    "net",
    "pgbouncer",
    "pgsodium",
    "pgsodium_masks",
    "pgtle",
    "realtime",
    "storage",
    "supabase_functions",
    "supabase_migrations",
    "vault",
];

/// The operator's word on which schemas are whose (`--platform-schema`, `--app-schema`).
#[derive(Debug, Clone, Default)]
pub struct SchemaChoice {
    pub platform: Vec<String>,
    pub app: Vec<String>,
}

/// A schema of the backup that the target already has and manages itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlatformSchema {
    pub name: String,
    /// Its owner on the target.
    pub owner: String,
    /// Why it counts as the platform's.
    pub why: String,
}

/// Every decision of a restore onto a non-superuser target, made before anything is changed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ManagedPlan {
    /// The role pgdr connects as.
    pub role: String,
    /// The target database exists: restored into as it is (never dropped or renamed).
    pub database_exists: bool,
    pub platform: Vec<PlatformSchema>,
    /// The backup's other schemas: created and restored whole.
    pub app_schemas: Vec<String>,
    /// `schema.table` of the backup in platform schemas: rows restored into the target's table.
    pub platform_tables: Vec<String>,
    /// App schemas that already exist on the target with objects in them ("public: 3 tables").
    pub app_contents: Vec<String>,
    /// Owners of the backup's objects the connecting role cannot SET ROLE to yet: it is
    /// granted membership (CREATEROLE allows it for roles without SUPERUSER).
    pub grant_owners: Vec<String>,
    /// Owners it can never become (superusers): their objects are owned by the connecting role.
    pub foreign_owners: Vec<String>,
    /// `session_replication_role = replica` is allowed: the platform's triggers do not fire
    /// while its tables' rows are restored.
    pub replica: bool,
    /// Without `replica`: platform tables (`schema.table`) whose user triggers are disabled
    /// as their owner while their rows are restored, and put back as they were after.
    pub disable_triggers: Vec<(String, String)>,
    /// Extensions of the backup the target does not offer: not created.
    pub missing_extensions: Vec<String>,
    /// Event triggers of the backup: superuser-only, not created.
    pub event_triggers: Vec<String>,
    /// One line per decision, in operator words (plan, summary, record).
    pub decisions: Vec<String>,
    /// What stops the restore before anything is written.
    pub problems: Vec<String>,
    /// (schema, owner, kept): owners of objects in an application schema the target already
    /// has (`public`) need CREATE on it before pg_restore gives them their objects (the
    /// backup's grants come last); revoked afterwards unless the backup grants it (kept).
    pub create_grants: Vec<(String, String, bool)>,
    /// `--clean`: the application schemas are dropped and re-created (never the platform's).
    pub clean: bool,
    /// `host:port` of the target server, as restore marks name it (the key of the record of
    /// held triggers, [`super::managed_hold`]).
    #[serde(skip)]
    pub server: String,
}

impl ManagedPlan {
    pub fn is_platform(&self, schema: &str) -> bool {
        self.platform.iter().any(|p| p.name == schema)
    }
}

/// The backup's side: schemas, tables with their columns, owners, extensions, event triggers.
struct BackupFacts {
    schemas: BTreeSet<String>,
    /// (schema, table) → columns, from the data section (what COPY restores).
    tables: BTreeMap<(String, String), Vec<String>>,
    /// (object key, owner): keys start with the schema (`public.todos`, `public`).
    owners: Vec<(String, String)>,
    extensions: Vec<String>,
    event_triggers: Vec<String>,
    /// Schema → its ACL items in the backup.
    schema_acls: BTreeMap<String, Vec<String>>,
}

fn backup_facts(m: &Manifest) -> BackupFacts {
    let mut f = BackupFacts {
        schemas: BTreeSet::new(),
        tables: BTreeMap::new(),
        owners: Vec::new(),
        extensions: Vec::new(),
        event_triggers: Vec::new(),
        schema_acls: BTreeMap::new(),
    };
    let Some(fp) = &m.fingerprint else { return f };
    for t in &fp.data.tables {
        f.schemas.insert(t.schema.clone());
        f.tables
            .insert((t.schema.clone(), t.name.clone()), t.columns.clone());
    }
    if let Some(s) = &fp.schema {
        let keys = |sec: &str| s.sections.get(sec).into_iter().flat_map(|m| m.iter());
        f.schemas.extend(keys("schemas").map(|(k, _)| k.clone()));
        f.extensions = keys("extensions")
            .map(|(k, _)| k.clone())
            .filter(|e| e != "plpgsql")
            .collect();
        f.event_triggers = keys("event_triggers").map(|(k, _)| k.clone()).collect();
        for (k, v) in keys("schemas") {
            let acl = v
                .get("acl")
                .and_then(|a| a.as_array())
                .into_iter()
                .flatten();
            let acl = acl.filter_map(|x| x.as_str().map(String::from)).collect();
            f.schema_acls.insert(k.clone(), acl);
        }
        for (sec, objs) in &s.sections {
            if matches!(sec.as_str(), "roles" | "memberships" | "database") {
                continue;
            }
            for (k, v) in objs {
                if let Some(o) = v.get("owner").and_then(|o| o.as_str()) {
                    f.owners.push((k.clone(), o.to_string()));
                }
            }
        }
    }
    f.schemas.remove("public");
    f.schemas.insert("public".into());
    f
}

fn q(what: &'static str) -> impl Fn(tokio_postgres::Error) -> PgdrError {
    move |e| PgdrError::database(format!("reading the target ({what}): {}", db_message(&e)))
}

/// Plan a restore onto a non-superuser target. `db` is a connection to the target database
/// when it exists; `maint` to the server's maintenance database.
pub async fn plan(
    maint: &Client,
    db: Option<&Client>,
    m: &Manifest,
    choice: &SchemaChoice,
    clean: bool,
) -> Result<ManagedPlan> {
    let f = backup_facts(m);
    let role: String = maint
        .query_one("SELECT current_user::text", &[])
        .await
        .map_err(q("current role"))?
        .get(0);
    let mut p = ManagedPlan {
        role: role.clone(),
        database_exists: db.is_some(),
        clean,
        ..Default::default()
    };
    let c = db.unwrap_or(maint);
    classify_schemas(c, db.is_some(), &f, choice, &mut p).await?;
    if db.is_some() {
        check_platform_tables(c, &f, &mut p).await?;
        app_contents(c, &mut p).await?;
    }
    plan_owners(maint, &f, &mut p).await?;
    p.replica = replica_allowed(maint).await?;
    if !p.replica && !p.platform_tables.is_empty() {
        plan_trigger_disabling(c, &mut p).await?;
    }
    plan_extensions(maint, &f, &mut p).await?;
    p.event_triggers = f.event_triggers.clone();
    describe(&mut p, &f);
    Ok(p)
}

/// Which of the backup's schemas are the platform's: the flags first, then ownership on the
/// target (a schema the connecting role cannot act as the owner of), then Supabase's list.
async fn classify_schemas(
    c: &Client,
    exists: bool,
    f: &BackupFacts,
    choice: &SchemaChoice,
    p: &mut ManagedPlan,
) -> Result<()> {
    let rows = if exists {
        c.query(
            "SELECT nspname::text, pg_get_userbyid(nspowner)::text,
                    pg_has_role(current_user, nspowner, 'MEMBER')
               FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'",
            &[],
        )
        .await
        .map_err(q("schemas"))?
    } else {
        Vec::new()
    };
    let on_target: BTreeMap<String, (String, bool)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    for s in &f.schemas {
        let Some((owner, member)) = on_target.get(s) else {
            if choice.platform.contains(s) {
                p.problems.push(format!(
                    "--platform-schema {s}: the target has no schema {s} to restore its rows into"
                ));
            }
            p.app_schemas.push(s.clone());
            continue;
        };
        let why = if choice.app.contains(s) {
            None
        } else if choice.platform.contains(s) {
            Some("--platform-schema".to_string())
        } else if s == "public" {
            None
        } else if !member {
            Some(format!(
                "owned by {owner} on the target, a role {} cannot act as",
                p.role
            ))
        } else if SUPABASE_PLATFORM.contains(&s.as_str()) {
            Some("one of Supabase's platform schemas".to_string())
        } else {
            None
        };
        match why {
            Some(why) => p.platform.push(PlatformSchema {
                name: s.clone(),
                owner: owner.clone(),
                why,
            }),
            None => p.app_schemas.push(s.clone()),
        }
    }
    Ok(())
}

/// Every backup table in a platform schema must exist on the target with every column the
/// backup has (extra target columns are fine: they take their defaults), and hold no rows.
async fn check_platform_tables(c: &Client, f: &BackupFacts, p: &mut ManagedPlan) -> Result<()> {
    for ((schema, table), cols) in &f.tables {
        if !p.is_platform(schema) {
            continue;
        }
        let name = format!("{schema}.{table}");
        let have: Vec<String> = c
            .query(
                "SELECT a.attname::text FROM pg_attribute a
                   JOIN pg_class t ON t.oid = a.attrelid JOIN pg_namespace n ON n.oid = t.relnamespace
                  WHERE n.nspname = $1 AND t.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
                &[schema, table],
            )
            .await
            .map_err(q("platform columns"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if have.is_empty() {
            p.problems.push(format!(
                "table {name} of platform schema {schema} is not on the target: its rows have nowhere to go"
            ));
            continue;
        }
        let missing: Vec<&String> = cols.iter().filter(|c| !have.contains(c)).collect();
        if !missing.is_empty() {
            let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            p.problems.push(format!(
                "table {name} on the target lacks column(s) {} of the backup",
                list.join(", ")
            ));
            continue;
        }
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {}.{})", qi(schema), qi(table));
        let rows: bool = c
            .query_one(sql.as_str(), &[])
            .await
            .map_err(q("platform rows"))?
            .get(0);
        if rows {
            p.problems.push(format!(
                "platform table {name} already holds rows on the target: the backup's would be mixed with them"
            ));
        }
        p.platform_tables.push(name);
    }
    Ok(())
}

/// App schemas that already exist on the target with objects in them: refused without
/// `--clean`.
async fn app_contents(c: &Client, p: &mut ManagedPlan) -> Result<()> {
    let rows = c
        .query(
            "SELECT n.nspname::text,
                    (SELECT count(*) FROM pg_class r WHERE r.relnamespace = n.oid
                        AND r.relkind IN ('r','p','v','m','S','f')),
                    (SELECT count(*) FROM pg_proc f WHERE f.pronamespace = n.oid)
               FROM pg_namespace n WHERE n.nspname = ANY($1)",
            &[&p.app_schemas],
        )
        .await
        .map_err(q("application schemas"))?;
    for r in rows {
        let (s, rels, funcs): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
        if rels + funcs > 0 {
            p.app_contents
                .push(format!("{s}: {rels} relation(s), {funcs} function(s)"));
        }
    }
    if !p.app_contents.is_empty() && !p.clean {
        p.problems.push(format!(
            "application schema(s) already hold objects on the target ({}); pgdr does not write into them",
            p.app_contents.join("; ")
        ));
    }
    Ok(())
}

/// Owners the connecting role cannot act as: grantable (an existing or to-be-created role
/// without SUPERUSER) or foreign (a superuser: its objects go to the connecting role).
async fn plan_owners(c: &Client, f: &BackupFacts, p: &mut ManagedPlan) -> Result<()> {
    // Only the owners of what is restored: objects of the application schemas.
    let owners: BTreeSet<&String> = f
        .owners
        .iter()
        .filter(|(k, _)| {
            p.app_schemas
                .iter()
                .any(|s| k == s || k.starts_with(&format!("{s}.")))
        })
        .map(|(_, o)| o)
        .collect();
    schema_grants(f, p);
    for o in owners {
        if *o == p.role || o == "pg_database_owner" {
            continue;
        }
        let r = c
            .query_opt(
                "SELECT rolsuper, pg_has_role(current_user, oid, 'MEMBER') FROM pg_roles WHERE rolname = $1",
                &[o],
            )
            .await
            .map_err(q("owners"))?;
        match r.map(|r| (r.get::<_, bool>(0), r.get::<_, bool>(1))) {
            Some((_, true)) => {}
            Some((true, false)) => p.foreign_owners.push(o.clone()),
            // A role without SUPERUSER, or one the roles step creates.
            _ => p.grant_owners.push(o.clone()),
        }
    }
    Ok(())
}

/// Whether the connecting role may `SET session_replication_role` (a superuser, or PG15's
/// `GRANT SET ON PARAMETER`, as Supabase grants its `postgres` role).
async fn replica_allowed(c: &Client) -> Result<bool> {
    let r = c
        .query_one(
            "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                 OR (current_setting('server_version_num')::int >= 150000
                     AND has_parameter_privilege('session_replication_role', 'SET'))",
            &[],
        )
        .await
        .map_err(q("session_replication_role"))?;
    Ok(r.get(0))
}

async fn plan_extensions(c: &Client, f: &BackupFacts, p: &mut ManagedPlan) -> Result<()> {
    let offered: BTreeSet<String> = c
        .query("SELECT name::text FROM pg_available_extensions", &[])
        .await
        .map_err(q("extensions"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    p.missing_extensions = f
        .extensions
        .iter()
        .filter(|e| !offered.contains(*e))
        .cloned()
        .collect();
    Ok(())
}

/// The decisions in operator words; refusals for what cannot be done.
fn describe(p: &mut ManagedPlan, f: &BackupFacts) {
    let d = &mut p.decisions;
    d.push(format!(
        "managed target: {} is not a superuser; only what it may do is planned",
        p.role
    ));
    d.push(if p.database_exists {
        "database: the existing one is restored into (never dropped, renamed or re-created)".into()
    } else {
        format!("database: created, owned by {}", p.role)
    });
    for s in &p.platform {
        d.push(format!(
            "platform schema {} (owner {}; {}): not re-created; only the rows of the backup's tables in it are restored",
            s.name, s.owner, s.why
        ));
    }
    if !p.platform_tables.is_empty() {
        d.push(format!(
            "platform tables, rows restored into the existing tables (columns the target added keep their defaults): {}",
            p.platform_tables.join(", ")
        ));
        if p.replica {
            d.push("triggers on platform tables do not fire while their rows are restored (session_replication_role = replica)".into());
        }
        if !p.disable_triggers.is_empty() {
            d.push(format!(
                "triggers on platform tables disabled as their owner while their rows are restored, then put back as they were ({} may not SET session_replication_role): {}",
                p.role,
                p.disable_triggers
                    .iter()
                    .map(|(s, t)| format!("{s}.{t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    d.push(format!(
        "application schemas, restored whole: {}",
        p.app_schemas.join(", ")
    ));
    if p.clean && !p.app_contents.is_empty() {
        d.push(format!(
            "--clean: DROP SCHEMA ... CASCADE and re-create the application schemas holding objects ({}); platform schemas are not touched",
            p.app_contents.join("; ")
        ));
    }
    if !p.grant_owners.is_empty() {
        d.push(format!(
            "owners: {} is granted membership in {} so their objects keep their owner",
            p.role,
            p.grant_owners.join(", ")
        ));
    }
    if !p.foreign_owners.is_empty() {
        d.push(format!(
            "owners: objects of {} (superuser roles {} cannot act as) are owned by {} (pg_restore --no-owner); every other object is given back to its backup owner after the restore (ALTER ... OWNER TO)",
            p.foreign_owners.join(", "),
            p.role,
            p.role
        ));
    }
    for e in &p.missing_extensions {
        d.push(format!(
            "extension {e}: not offered by the target, not created (objects that need it fail)"
        ));
    }
    for e in &p.event_triggers {
        d.push(format!("event trigger {e}: superuser-only, skipped"));
    }
    d.push("subscriptions: superuser-only, skipped".into());
    let _ = f;
}

/// Without `session_replication_role = replica`, the platform's own triggers on its tables
/// would fire for every restored row: they are disabled per table as its owner
/// (`ALTER TABLE ... DISABLE TRIGGER USER`) where the connecting role has the owner's
/// privileges; a table whose owner it cannot act as is a named refusal.
async fn plan_trigger_disabling(c: &Client, p: &mut ManagedPlan) -> Result<()> {
    let rows = c
        .query(
            "SELECT n.nspname::text, r.relname::text,
                    pg_has_role(current_user, r.relowner, 'USAGE'),
                    pg_get_userbyid(r.relowner)::text,
                    string_agg(t.tgname, ', ' ORDER BY t.tgname)
               FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid
               JOIN pg_namespace n ON n.oid = r.relnamespace
              WHERE NOT t.tgisinternal AND t.tgenabled <> 'D'
                AND n.nspname || '.' || r.relname = ANY($1)
              GROUP BY 1, 2, 3, 4 ORDER BY 1, 2",
            &[&p.platform_tables],
        )
        .await
        .map_err(q("platform triggers"))?;
    let mut refused = Vec::new();
    for r in &rows {
        let (schema, table): (String, String) = (r.get(0), r.get(1));
        let (owner_ok, owner, names): (bool, String, String) = (r.get(2), r.get(3), r.get(4));
        if owner_ok {
            p.disable_triggers.push((schema, table));
        } else {
            refused.push(format!("{schema}.{table} ({names}; owner {owner})"));
        }
    }
    if !refused.is_empty() {
        p.problems.push(format!(
            "{} may not SET session_replication_role nor act as the owner of the platform tables whose triggers would fire for the restored rows: {} (grant it: GRANT SET ON PARAMETER session_replication_role TO {})",
            p.role,
            refused.join(", "),
            p.role
        ));
    }
    Ok(())
}

/// Owners of objects in `public` (which pg_dump never creates) need CREATE on it while
/// pg_restore hands them their objects.
fn schema_grants(f: &BackupFacts, p: &mut ManagedPlan) {
    let acl = f.schema_acls.get("public").cloned().unwrap_or_default();
    let owners: BTreeSet<&String> = f
        .owners
        .iter()
        .filter(|(k, _)| k.starts_with("public."))
        .map(|(_, o)| o)
        .filter(|o| **o != p.role)
        .collect();
    for o in owners {
        let kept = acl.iter().any(|a| {
            a.split_once('=').is_some_and(|(r, privs)| {
                r == o && privs.split('/').next().is_some_and(|x| x.contains('C'))
            })
        });
        p.create_grants.push(("public".into(), o.clone(), kept));
    }
}
