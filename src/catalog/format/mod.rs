//! The repository's on-disk JSON, owned here and nowhere else.
//!
//! Every object pgdr stores as JSON has a stored struct in this module whose field names,
//! order, optional fields and enum spellings are exactly the bytes of that object; the runtime
//! types (the manifest's `ServerInfo` from `source`, `Compression` from `config`, the
//! fingerprint's structs, the records) are converted to and from them. Renaming a runtime field
//! therefore changes nothing on disk; changing a stored struct is a format change, and the
//! golden files in `tests/fixtures/format/` (real objects written by real runs) fail until the
//! format version is raised and the old version still reads.
//!
//! Versions:
//! - manifest 1: the schema fingerprint holds setting values and comments in clear.
//! - manifest 2: those values are sealed (`(encrypted)`) and kept in the encrypted `sensitive`
//!   object. Same shape as 1, so one set of structs reads both; the difference is content,
//!   handled by `fingerprint::sensitive`.
//! - records (verification, drill, restore, job state) 1; marks and leases are unversioned.
//! - capture state 1.
//! - capture segment entries and gaps 1; not-replayable windows 1.
//! - marks 1.
//! - held triggers (a managed restore's disabled triggers) 1.
//! - keep records 1. The manifest's optional `label`, `note` and `keep` (labelled backups)
//!   are absent unless set, so unlabelled manifests keep format 2's bytes; no version bump.
//! - records gain an optional `backup_signature` (how the backup was accepted: issue 19);
//!   absent in older records, so still version 1.
//! - key-check records (`pgdr drill --key-check`) 1.
//! - restore records 2: `pgdr restore --table` records, with mode `tables` and the `tables`
//!   object (`restored_tables`); full restores still write version 1.

pub mod capture;
pub mod fingerprint;
pub mod held_triggers;
pub mod jobs;
pub mod keep;
pub mod key_check;
pub mod manifest;
pub mod mark;
pub mod marks;
pub mod records;
pub mod replayable;
pub mod replayed;
pub mod restored_tables;
pub mod segments;
pub mod signature;

#[cfg(test)]
mod golden;

/// `impl Serialize + Deserialize for $runtime` through `$stored`, given
/// `From<&$runtime> for $stored` and `From<$stored> for $runtime`: the runtime type then has
/// one JSON shape, the stored one, wherever it is printed or stored.
macro_rules! via_stored {
    ($runtime:ty, $stored:ty) => {
        impl serde::Serialize for $runtime {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                serde::Serialize::serialize(&<$stored>::from(self), s)
            }
        }
        impl<'de> serde::Deserialize<'de> for $runtime {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                <$stored as serde::Deserialize>::deserialize(d).map(Into::into)
            }
        }
    };
}
pub(crate) use via_stored;

/// `From` both ways between a runtime enum and its stored mirror, variant by variant.
macro_rules! mirror_enum {
    ($runtime:ty, $stored:ty, [$($v:ident),+ $(,)?]) => {
        impl From<&$runtime> for $stored {
            fn from(v: &$runtime) -> Self {
                match v {
                    $(<$runtime>::$v => <$stored>::$v,)+
                }
            }
        }
        impl From<$stored> for $runtime {
            fn from(v: $stored) -> Self {
                match v {
                    $(<$stored>::$v => <$runtime>::$v,)+
                }
            }
        }
    };
}
pub(crate) use mirror_enum;
