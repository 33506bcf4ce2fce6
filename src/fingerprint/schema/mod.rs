//! The schema part of a fingerprint: catalog queries that describe every user object, run on
//! the source inside the backup's snapshot transaction and again on a restored scratch
//! database, and a diff that names each difference in words an operator understands.
//!
//! The result is sorted, readable JSON: section → object key → properties, e.g.
//!
//! ```text
//! "policies": { "public.profiles.profiles_select": { "command": "SELECT", "permissive": true,
//!               "roles": ["anon", "authenticated"], "using": "(NOT is_private)" } }
//! ```
//!
//! Rules the queries follow:
//! - User objects only: schemas `pg_*` (pg_catalog, pg_toast*, pg_temp*) and
//!   information_schema are skipped, and so is everything that belongs to an extension
//!   (`pg_depend.deptype = 'e'`): the extension's version stands for it.
//! - Deterministic: every array is sorted (text in the "C" collation), ACLs that are NULL are
//!   replaced by the built-in default they stand for (`acldefault`), so an explicit grant of the
//!   defaults and no grant at all compare equal, as pg_dump/pg_restore make them.
//! - Deparsed text (`pg_get_*def`, `format_type`, `pg_get_expr`) depends on session settings,
//!   so [`capture`] pins them for its own duration (search_path = pg_catalog, which makes every
//!   user name schema-qualified, DateStyle, TimeZone, ...) and puts the previous values back.
//! - Everything is turned into JSON by the server (`jsonb_build_object`), so no catalog type
//!   (aclitem, pg_node_tree, name[]) has to be decoded by the client; NULL properties are left
//!   out (`jsonb_strip_nulls`) to keep the JSON short.
//!
//! Works on PostgreSQL 12 and newer; the few catalog columns that appeared later
//! (publication row filters, ICU locale, membership options) are read only where they exist.
//!
//! Files: `capture.rs` runs the queries (their SQL is in `src/fingerprint/sql/`, assembled by
//! `queries.rs`), `diff.rs` compares two fingerprints, `acl.rs` reads privileges,
//! `role_map.rs` rewrites the roles a restore replaced on purpose.

mod acl;
mod capture;
mod diff;
mod queries;
mod role_map;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::Value;

pub use capture::capture;
pub use diff::diff;
pub use role_map::map_roles;

/// Sorted, readable JSON: section → object key → properties.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, Default)]
pub struct SchemaFingerprint {
    pub sections: BTreeMap<String, BTreeMap<String, Value>>,
}

impl SchemaFingerprint {
    /// Number of objects over all sections.
    pub fn object_count(&self) -> usize {
        self.sections.values().map(|s| s.len()).sum()
    }
}

/// What [`diff`] compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffOptions {
    /// Compare the database-level section (owner, comment, ACL, encoding, locale,
    /// `ALTER DATABASE ... SET` and `ALTER ROLE ... IN DATABASE ... SET`). Off for restores
    /// into a database under another name that did not replay them (`pg_restore` without
    /// `--create`).
    pub database_properties: bool,
    /// Compare roles and memberships (cluster-wide). Off when the restore target is a cluster
    /// whose roles were not restored from the backup's globals.
    pub roles: bool,
    /// Compare object owners. Off for restores made with `--no-owner`.
    pub owners: bool,
    /// Compare privileges (ACLs, default privileges). Off for restores made with
    /// `--no-privileges` / `--no-acl`.
    pub privileges: bool,
    /// How sequence positions are compared.
    pub sequence_values: SequenceValues,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            database_properties: true,
            roles: true,
            owners: true,
            privileges: true,
            sequence_values: SequenceValues::Exact,
        }
    }
}

/// Sequences are not transactional: the value the fingerprint reads inside the snapshot is the
/// value at that moment, and pg_dump reads its own a little later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceValues {
    /// `last_value` and `is_called` must be identical (a quiet source, or a test).
    Exact,
    /// The restored sequence may be ahead of the fingerprint (in its increment's direction),
    /// never behind: a restored copy that would hand out already-used ids is still reported.
    NotBehind,
    /// Do not compare positions (definitions still are).
    Ignore,
}
