//! `pgdr restore --table`: which TOC entries of a backup belong to the selected tables, read
//! from the archive's TOC as it streams (only the start of the dump object is fetched).
//!
//! pg_restore's `-t` restores a table and its data but leaves out its indexes, triggers and
//! policies; a generated `-L` list does not. An entry belongs to the selection when it
//! depends, directly or through another selected entry, on a selected table (data, indexes,
//! constraints, triggers, policies, row security, ACLs, comments, owned sequences and their
//! values). The list keeps archive order, so pg_restore can read the archive from a pipe.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write;

use crate::archive::{Header, Reader, Stop};
use crate::catalog::{self, Manifest};
use crate::codec::Identities;
use crate::error::{PgdrError, Result};

/// A TOC entry as a table selection needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocItem {
    pub dump_id: i32,
    pub desc: String,
    pub tag: String,
    pub namespace: String,
    pub dependencies: Vec<i32>,
}

/// What a selection restores, skips and (for `--replace`) must drop and re-create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selected {
    /// The selected tables, (schema, name), as the archive names them.
    pub tables: Vec<(String, String)>,
    /// Dump ids to restore, in archive order.
    pub keep: Vec<i32>,
    /// "INDEX public.orders_pkey" lines, in archive order, for the plan.
    pub objects: Vec<String>,
    /// Entries that belong to a selected table but are not restored, with why.
    pub skipped: Vec<String>,
    /// Their dump ids.
    pub skipped_ids: Vec<i32>,
    /// Foreign keys of tables that are not restored into a selected one ("public.x fk_name").
    pub incoming: Vec<String>,
    /// Their dump ids (restored again by `--replace --cascade`).
    pub incoming_ids: Vec<i32>,
    /// Partitions selected through their parent: ("public.events_2026_01", "public.events").
    pub partitions: Vec<(String, String)>,
}

/// The TOC entries that follow a table without being one of the things restored with it.
fn is_table(e: &TocItem) -> bool {
    e.desc == "TABLE"
}

/// Choose the entries of `wanted` tables (and every table of `schemas`). `into`: the tables
/// land beside the live ones, so a foreign key to a table that is not restored is skipped (it
/// would point at live rows); otherwise it is kept (the live table is still there).
pub fn select(
    toc: &[TocItem],
    wanted: &[(String, String)],
    schemas: &[String],
    into: bool,
) -> Result<Selected> {
    let by_id: HashMap<i32, &TocItem> = toc.iter().map(|e| (e.dump_id, e)).collect();
    let mut tables: HashSet<i32> = HashSet::new();
    let mut out = Selected::default();
    for e in toc.iter().filter(|e| is_table(e)) {
        let hit = wanted.iter().any(|(s, n)| *s == e.namespace && *n == e.tag)
            || schemas.contains(&e.namespace);
        if hit {
            tables.insert(e.dump_id);
            out.tables.push((e.namespace.clone(), e.tag.clone()));
        }
    }
    for (child, parent) in add_partitions(toc, &by_id, &mut tables) {
        let e = by_id[&child];
        out.tables.push((e.namespace.clone(), e.tag.clone()));
        out.partitions
            .push((format!("{}.{}", e.namespace, e.tag), parent));
    }
    for (s, n) in wanted {
        if !out.tables.iter().any(|(ts, tn)| ts == s && tn == n) {
            return Err(PgdrError::usage(format!("table {s}.{n} is not in the backup"))
                .hint("`pgdr restore --table` takes SCHEMA.NAME as the backup has it (see `pg_restore -l` of the dump)"));
        }
    }
    if out.tables.is_empty() {
        return Err(PgdrError::usage(
            "no table selected: the named schemas have no tables in the backup",
        )
        .hint("name tables with --table SCHEMA.NAME or a schema that has tables with --schema"));
    }
    let chosen = close_over(toc, &by_id, &tables);
    for e in toc.iter().filter(|e| chosen.contains(&e.dump_id)) {
        let name = format!("{} {}.{}", e.desc, e.namespace, e.tag);
        let other_tables: Vec<&TocItem> = e
            .dependencies
            .iter()
            .filter_map(|d| by_id.get(d).copied())
            .filter(|d| is_table(d) && !tables.contains(&d.dump_id))
            .collect();
        if e.desc == "FK CONSTRAINT" && !owner_selected(e, &out.tables) {
            out.incoming.push(format!("{}.{}", e.namespace, e.tag));
            out.incoming_ids.push(e.dump_id);
        } else if into && !other_tables.is_empty() {
            out.skipped_ids.push(e.dump_id);
            out.skipped.push(format!(
                "{name}: refers to {}, which is not restored",
                other_tables
                    .iter()
                    .map(|t| format!("{}.{}", t.namespace, t.tag))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else {
            out.keep.push(e.dump_id);
            out.objects.push(name);
        }
    }
    Ok(out)
}

/// A partitioned table is restored with its partitions (pg_restore would attach partitions
/// that are not there, and `--into` would move an empty parent): every partition of a
/// selected table, at every level, joins `tables`. pg_dump ties a partition to its parent
/// by a `TABLE ATTACH` entry named like the partition, depending on both; an inheritance
/// child (no such entry) is a table of its own and is not added. Returns the partitions
/// added, with their parents, in archive order.
fn add_partitions(
    toc: &[TocItem],
    by_id: &HashMap<i32, &TocItem>,
    tables: &mut HashSet<i32>,
) -> Vec<(i32, String)> {
    let mut added = Vec::new();
    loop {
        let before = added.len();
        for e in toc.iter().filter(|e| e.desc == "TABLE ATTACH") {
            let deps: Vec<&TocItem> = e
                .dependencies
                .iter()
                .filter_map(|d| by_id.get(d).copied())
                .filter(|d| is_table(d))
                .collect();
            let is_child = |d: &TocItem| d.namespace == e.namespace && d.tag == e.tag;
            let (Some(child), Some(parent)) = (
                deps.iter().find(|d| is_child(d)),
                deps.iter().find(|d| !is_child(d)),
            ) else {
                continue;
            };
            if tables.contains(&parent.dump_id) && tables.insert(child.dump_id) {
                added.push((
                    child.dump_id,
                    format!("{}.{}", parent.namespace, parent.tag),
                ));
            }
        }
        if added.len() == before {
            break;
        }
    }
    let order: HashMap<i32, usize> = toc
        .iter()
        .enumerate()
        .map(|(i, e)| (e.dump_id, i))
        .collect();
    added.sort_by_key(|(id, _)| order[id]);
    added
}

/// The selected tables and every entry that depends on them, directly or through another
/// chosen entry (a pass per level of dependency).
fn close_over(
    toc: &[TocItem],
    by_id: &HashMap<i32, &TocItem>,
    tables: &HashSet<i32>,
) -> BTreeSet<i32> {
    let mut chosen: BTreeSet<i32> = tables.iter().copied().collect();
    loop {
        let before = chosen.len();
        for e in toc {
            if !chosen.contains(&e.dump_id)
                && !is_table(e)
                && e.dependencies.iter().any(|d| chosen.contains(d))
            {
                chosen.insert(e.dump_id);
            }
            // A serial column's sequence goes with its table (dropped with it by --replace);
            // pg_dump ties them only through this entry, which depends on both.
            if e.desc == "SEQUENCE OWNED BY" && chosen.contains(&e.dump_id) {
                chosen.extend(
                    e.dependencies
                        .iter()
                        .filter(|d| by_id.get(d).is_some_and(|x| x.desc == "SEQUENCE")),
                );
            }
        }
        if chosen.len() == before {
            break;
        }
    }
    chosen
}

/// An FK CONSTRAINT's tag is "TABLE CONSTRAINT": whether its table is one of the selection.
fn owner_selected(e: &TocItem, tables: &[(String, String)]) -> bool {
    tables
        .iter()
        .any(|(s, n)| *s == e.namespace && e.tag.starts_with(&format!("{n} ")))
}

/// A `pg_restore --use-list` file restoring `ids` (archive order kept by the caller).
pub fn list_text(ids: &[i32]) -> String {
    let mut s = String::from("; pgdr restore --table: the selected tables' entries\n");
    for id in ids {
        s.push_str(&format!("{id};\n"));
    }
    s
}

/// The sink's outcome, shared with the caller: the TOC, or why it could not be read.
type TocDone = std::sync::Arc<std::sync::Mutex<Option<std::result::Result<Vec<TocItem>, String>>>>;

/// A sink that parses the header and TOC from the archive's first bytes, then stops the
/// download (by failing the write): the rest of the object is never fetched.
#[derive(Default)]
struct TocSink {
    buf: Vec<u8>,
    header: Option<Header>,
    count: usize,
    items: Vec<TocItem>,
    /// Shared with the caller: set once the TOC is complete.
    done: TocDone,
}

impl TocSink {
    /// Parse what the buffer holds; `Some` once the TOC is complete or broken.
    fn advance(&mut self) -> Option<std::result::Result<(), String>> {
        loop {
            if self.header.is_some() && self.items.len() == self.count {
                return Some(Ok(()));
            }
            let mut r = Reader::new(&self.buf, self.header.as_ref());
            let used = match &self.header {
                None => match r.header() {
                    Ok((h, n)) => {
                        self.header = Some(h);
                        self.count = n;
                        r.pos()
                    }
                    Err(Stop::Need(_)) => return None,
                    Err(Stop::Fail(e)) => return Some(Err(e.to_string())),
                },
                Some(_) => match r.toc_entry() {
                    Ok(e) => {
                        self.items.push(TocItem {
                            dump_id: e.dump_id,
                            desc: e.desc,
                            tag: e.tag,
                            namespace: e.namespace,
                            dependencies: e.dependencies,
                        });
                        r.pos()
                    }
                    Err(Stop::Need(_)) => return None,
                    Err(Stop::Fail(e)) => return Some(Err(e.to_string())),
                },
            };
            self.buf.drain(..used);
        }
    }
}

impl Write for TocSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        match self.advance() {
            None => Ok(b.len()),
            Some(r) => {
                let r = r.map(|()| std::mem::take(&mut self.items));
                *self.done.lock().expect("toc lock") = Some(r);
                Err(std::io::Error::other(
                    "pgdr: TOC read, rest of the archive not needed",
                ))
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The TOC of the backup's dump, from the start of the object (decrypted as it streams).
pub async fn read_toc(
    repo: &catalog::Repository,
    m: &Manifest,
    ids: Identities,
) -> Result<Vec<TocItem>> {
    let rec = m
        .object("dump")
        .ok_or_else(|| PgdrError::corrupt(format!("backup {} has no dump object", m.id)))?;
    let key = catalog::Key::object(&m.database, &m.id, &rec.file);
    let sink = TocSink::default();
    let done = sink.done.clone();
    // The sha256 cannot be checked on a prefix; the restore itself checks the whole object.
    let fetched = crate::pipeline::download(repo, &key, None, ids, sink).await;
    // The sink's state, not the error's text, says whether the stop was ours.
    let parsed = done.lock().expect("toc lock").take();
    match (parsed, fetched) {
        (Some(Ok(items)), _) => Ok(items),
        (Some(Err(e)), _) => Err(PgdrError::corrupt(format!(
            "backup {}: the dump's table of contents cannot be read: {e}",
            m.id
        ))),
        (None, Err(e)) => Err(e),
        (None, Ok(_)) => Err(PgdrError::corrupt(format!(
            "backup {}: the dump ends inside its table of contents",
            m.id
        ))),
    }
}

#[cfg(test)]
#[path = "tables_tests.rs"]
mod tests;
