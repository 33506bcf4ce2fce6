//! The spool for parallel restores: `pg_restore -j N` needs a seekable file, so the decrypted
//! archive is written to a private temp file (mode 0600) that is removed when dropped, after
//! success, failure or a graceful interrupt alike.

use std::path::{Path, PathBuf};

use crate::error::{PgdrError, Result};
use crate::progress::human_bytes;

/// Bytes available to an unprivileged writer in the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` is a properly sized out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// The spool needs the archive's size plus 10%.
pub fn needed_bytes(raw_dump_bytes: u64) -> u64 {
    raw_dump_bytes + raw_dump_bytes / 10
}

/// The spool directory: the one given, or the system temp dir.
pub fn dir(given: Option<&Path>) -> PathBuf {
    given
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

/// Refuse early, naming the directory and both numbers, when the spool would not fit.
pub fn check_space(dir: &Path, need: u64) -> Result<u64> {
    let free = free_bytes(dir).map_err(|e| {
        PgdrError::usage(format!(
            "spool directory {}: cannot read its free space: {e}",
            dir.display()
        ))
        .hint("pass --spool-dir DIR with an existing, writable directory")
    })?;
    if free < need {
        return Err(PgdrError::usage(format!(
            "not enough free space for the spool in {}: {} needed (the dump's size + 10%), {} free",
            dir.display(),
            human_bytes(need),
            human_bytes(free)
        ))
        .hint("pass --spool-dir DIR on a larger file system, or drop --jobs to stream the dump without a spool"));
    }
    Ok(free)
}

/// A new spool file in `dir` (mode 0600), removed on drop. Its name carries the owner (pid
/// and start time) so that a later run removes it should this process be killed; spool files
/// of killed runs in `dir` are removed first.
pub fn create(dir: &Path) -> Result<tempfile::NamedTempFile> {
    use crate::scratch::orphans::{sweep_spools, Owner, SPOOL_PREFIX};
    sweep_spools(dir);
    let me = Owner::me();
    tempfile::Builder::new()
        .prefix(&format!("{SPOOL_PREFIX}{}.{}-", me.pid, me.start))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .suffix(".dump")
        .tempfile_in(dir)
        .map_err(|e| {
            PgdrError::usage(format!(
                "cannot create a spool file in {}: {e}",
                dir.display()
            ))
            .hint("pass --spool-dir DIR with a writable directory")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_check_names_dir_and_numbers() {
        let d = std::env::temp_dir();
        assert!(free_bytes(&d).unwrap() > 0);
        let e = check_space(&d, u64::MAX / 2).unwrap_err();
        assert!(
            e.message.starts_with(&format!(
                "not enough free space for the spool in {}:",
                d.display()
            )),
            "{}",
            e.message
        );
        assert!(e.message.contains("needed"), "{}", e.message);
        assert_eq!(needed_bytes(1000), 1100);
        assert!(check_space(Path::new("/nonexistent/dir"), 1).is_err());
    }

    #[test]
    fn spool_file_is_private_and_names_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let f = create(d.path()).unwrap();
        let mode = std::fs::metadata(f.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let me = crate::scratch::orphans::Owner::me();
        let name = f.path().file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(&format!("pgdr-spool-{}.{}-", me.pid, me.start)),
            "{name}"
        );
        // A live owner's spool survives a sweep.
        crate::scratch::orphans::sweep_spools(d.path());
        assert!(f.path().exists());
    }
}
