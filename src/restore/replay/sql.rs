//! The statements replay runs, as text: pure functions of a mapped table and the columns a
//! change carries, so they are unit-tested without a server. Values never enter the text: they
//! travel as text parameters cast to the target column's type (`$1::text::<type>`), the type's
//! own input function, the one that reads what pgoutput's output function wrote.

use crate::sql::quote_ident;

/// A target table mapped from a source Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The target's OID of the table.
    pub oid: u32,
    /// `"schema"."name"`, quoted.
    pub ident: String,
    /// `schema.name`, for messages.
    pub display: String,
    /// A partitioned table (changes published via the root): a ctid is unique only together
    /// with the partition's `tableoid`.
    pub partitioned: bool,
    /// The columns in the order of the source Relation's columns (generated columns are not
    /// in the stream, so never here).
    pub columns: Vec<Col>,
    /// Positions of the replica identity key columns (the Relation's key flags).
    pub key: Vec<usize>,
    /// REPLICA IDENTITY FULL: old rows come whole and are located by all their columns.
    pub full: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Col {
    pub name: String,
    /// The target's `format_type(atttypid, atttypmod)`.
    pub ty: String,
    /// The type has an equality operator; without one (json, point, xml) a row is located
    /// by comparing the column's text form.
    pub has_eq: bool,
    /// `GENERATED ALWAYS AS IDENTITY`: INSERT needs `OVERRIDING SYSTEM VALUE`, and UPDATE
    /// may not set it at all (not even to its own value).
    pub identity_always: bool,
}

/// The column list of an INSERT or COPY: `("a", "b")`.
fn column_list(t: &Table) -> String {
    let names: Vec<String> = t.columns.iter().map(|c| quote_ident(&c.name)).collect();
    format!("({})", names.join(", "))
}

/// `$n::text::<type>`: a text parameter read by the column type's input function.
fn param(n: usize, c: &Col) -> String {
    format!("${n}::text::{}", c.ty)
}

/// One row; identity ALWAYS columns take the source's values (`OVERRIDING SYSTEM VALUE`).
pub fn insert(t: &Table) -> String {
    let values: Vec<String> = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| param(i + 1, c))
        .collect();
    format!(
        "INSERT INTO {} {} OVERRIDING SYSTEM VALUE VALUES ({})",
        t.ident,
        column_list(t),
        values.join(", ")
    )
}

/// A run of rows through COPY's text format (COPY always writes identity columns as given).
pub fn copy_in(t: &Table) -> String {
    format!("COPY {} {} FROM STDIN", t.ident, column_list(t))
}

/// How the old row is found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Locate {
    /// By the replica identity key columns (positions), with `=`.
    Key(Vec<usize>),
    /// REPLICA IDENTITY FULL: these columns (all old columns the change carries),
    /// `IS NOT DISTINCT FROM`, one row by ctid.
    Full(Vec<usize>),
}

impl Locate {
    pub fn columns(&self) -> &[usize] {
        match self {
            Locate::Key(c) | Locate::Full(c) => c,
        }
    }
}

/// The WHERE clause; its parameters start at `$first`.
fn where_clause(t: &Table, loc: &Locate, first: usize) -> String {
    match loc {
        Locate::Key(cols) => {
            let conds: Vec<String> = cols
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    let col = &t.columns[c];
                    format!("{} = {}", quote_ident(&col.name), param(first + i, col))
                })
                .collect();
            conds.join(" AND ")
        }
        Locate::Full(cols) => {
            let conds: Vec<String> = cols
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    let col = &t.columns[c];
                    let name = quote_ident(&col.name);
                    if col.has_eq {
                        format!("{name} IS NOT DISTINCT FROM {}", param(first + i, col))
                    } else {
                        format!("{name}::text IS NOT DISTINCT FROM ${}::text", first + i)
                    }
                })
                .collect();
            let conds = if conds.is_empty() {
                "true".to_string()
            } else {
                conds.join(" AND ")
            };
            // Exact duplicates are one row each on the source too: change one of them.
            if t.partitioned {
                format!(
                    "(tableoid, ctid) = (SELECT tableoid, ctid FROM {} WHERE {conds} LIMIT 1)",
                    t.ident
                )
            } else {
                format!(
                    "ctid = (SELECT ctid FROM {} WHERE {conds} LIMIT 1)",
                    t.ident
                )
            }
        }
    }
}

/// `UPDATE t SET <set columns> WHERE <locate>`: parameters are the set values, then the
/// locating values. Unchanged-TOAST columns are simply not among `set`.
pub fn update(t: &Table, set: &[usize], loc: &Locate) -> String {
    let assigns: Vec<String> = if set.is_empty() {
        // Nothing but unchanged TOAST values: still locate the row (divergence check).
        let c = &t.columns[loc.columns().first().copied().unwrap_or(0)];
        vec![format!("{0} = {0}", quote_ident(&c.name))]
    } else {
        set.iter()
            .enumerate()
            .map(|(i, &c)| {
                let col = &t.columns[c];
                format!("{} = {}", quote_ident(&col.name), param(i + 1, col))
            })
            .collect()
    };
    format!(
        "UPDATE {} SET {} WHERE {}",
        t.ident,
        assigns.join(", "),
        where_clause(t, loc, set.len() + 1)
    )
}

pub fn delete(t: &Table, loc: &Locate) -> String {
    format!("DELETE FROM {} WHERE {}", t.ident, where_clause(t, loc, 1))
}

/// `TRUNCATE ONLY a, ONLY b [RESTART IDENTITY] [CASCADE]`: pgoutput lists every truncated
/// table (the cascaded ones included), so ONLY each (ONLY binds to one name, not the list);
/// a partitioned root (published via the root) truncates its partitions, which PostgreSQL
/// requires by refusing ONLY there.
pub fn truncate(tables: &[&Table], cascade: bool, restart_identity: bool) -> String {
    let names: Vec<String> = tables
        .iter()
        .map(|t| {
            if t.partitioned {
                t.ident.clone()
            } else {
                format!("ONLY {}", t.ident)
            }
        })
        .collect();
    let mut s = format!("TRUNCATE {}", names.join(", "));
    if restart_identity {
        s.push_str(" RESTART IDENTITY");
    }
    if cascade {
        s.push_str(" CASCADE");
    }
    s
}

/// Append one value in COPY's text format: `\N` for NULL, backslash escapes for the bytes
/// COPY treats specially.
pub fn copy_value(out: &mut Vec<u8>, v: Option<&[u8]>) {
    let Some(v) = v else {
        out.extend_from_slice(b"\\N");
        return;
    };
    for &b in v {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.push(b),
        }
    }
}

/// A key for messages: `(id, region)=(42, eu)`, PostgreSQL's own shape, each value cut at 64
/// bytes so a TOASTed column cannot flood an error line.
pub fn describe_key(t: &Table, cols: &[usize], values: &[Option<&[u8]>]) -> String {
    let names: Vec<&str> = cols.iter().map(|&c| t.columns[c].name.as_str()).collect();
    let vals: Vec<String> = values
        .iter()
        .map(|v| match v {
            None => "NULL".to_string(),
            Some(b) => {
                let s = String::from_utf8_lossy(&b[..b.len().min(64)]).into_owned();
                if b.len() > 64 {
                    format!("{s}...")
                } else {
                    s
                }
            }
        })
        .collect();
    format!("({})=({})", names.join(", "), vals.join(", "))
}

#[cfg(test)]
#[path = "sql_tests.rs"]
mod tests;
