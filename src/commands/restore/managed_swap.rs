//! `--swap` on a managed target: possible only where the connecting role may rename the
//! target database (PostgreSQL asks for its owner, or a member of it, with CREATEDB, and not
//! the database pgdr is connected to), as an RDS or Cloud SQL master user may for the
//! databases it owns. Then it runs exactly as the superuser path's swap: restored into a new
//! `<name>_restoring` owned by the connecting role, proven, renamed into place.

use tokio_postgres::Client;

use crate::config::Database;
use crate::error::{PgdrError, Result};
use crate::restore::db_message;
use crate::restore::managed::ManagedPlan;

/// Refuse `--swap`, by name, where the connecting role cannot rename the target database.
pub(super) async fn check(maint: &Client, target: &Database) -> Result<()> {
    let name = target.conn.get_dbname().unwrap_or_default();
    let row = maint
        .query_one(
            "SELECT current_user::text, current_database()::text,
                    (SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user),
                    pg_get_userbyid(d.datdba)::text,
                    pg_has_role(current_user, d.datdba, 'USAGE')
               FROM pg_database d WHERE d.datname = $1",
            &[&name],
        )
        .await
        .map_err(|e| {
            PgdrError::database(format!(
                "reading the target (database {name}): {}",
                db_message(&e)
            ))
        })?;
    let (role, connected): (String, String) = (row.get(0), row.get(1));
    let (createdb, owner, owns): (bool, String, bool) = (row.get(2), row.get(3), row.get(4));
    let why = if name == connected {
        Some(format!(
            "'{name}' is the database {role} connects to by default (the server's maintenance database, as Supabase's `postgres`): it cannot be renamed"
        ))
    } else if !owns {
        Some(format!(
            "{role} does not own database '{name}' (its owner is {owner}) and cannot rename it"
        ))
    } else if !createdb {
        Some(format!(
            "{role} has no CREATEDB and cannot create '{name}_restoring' or rename '{name}'"
        ))
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(PgdrError::usage(format!(
            "--swap on the managed target {}: {why}",
            target.describe()
        ))
        .hint("use --clean to drop and re-create the application schemas (platform schemas are not touched)")
        .hint("or restore under another name: end --target with /NEWNAME")),
    }
}

/// The plan's `database:` decision, for a swap.
pub(super) fn describe(p: &mut ManagedPlan, target: &Database, previous: &str) {
    let name = target.conn.get_dbname().unwrap_or_default();
    let line = format!(
        "database: --swap: restored into '{name}_restoring', created owned by {role} (every schema of the backup restored whole); once proven, '{name}' is renamed '{previous}' and kept, the copy renamed '{name}' ({role} owns '{name}' and has CREATEDB)",
        role = p.role
    );
    match p.decisions.iter_mut().find(|d| d.starts_with("database:")) {
        Some(d) => *d = line,
        None => p.decisions.insert(0, line),
    }
}
