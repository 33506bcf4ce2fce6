//! What a pgdr killed outright (SIGKILL, the OOM killer: no `Drop`) leaves behind, and its
//! removal by the next run: scratch clusters (a running server and the restored, decrypted
//! rows on disk) and `--jobs` spool files (a decrypted dump).
//!
//! Each is marked with its owner: the pid AND the start time of the pgdr process that made it
//! (`/proc/<pid>/stat` field 22). It is an orphan when no process with that pid and start time
//! exists. Never "owned by me": one daemon runs several jobs at once, each with its own
//! cluster, and a pid reused after a restart (a container's pgdr is often pid 1) differs in
//! start time.

use std::path::Path;

use crate::config::ScratchSettings;

/// The folder prefix of a scratch cluster.
pub(crate) const SCRATCH_PREFIX: &str = "pgdr-scratch-";
/// The owner of a scratch cluster, "<pid> <start time>", in the cluster's folder.
pub(crate) const OWNER_FILE: &str = "pgdr.pid";
/// The file prefix of a spool file; the owner follows as "<pid>.<start time>-".
pub const SPOOL_PREFIX: &str = "pgdr-spool-";

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub pid: i32,
    /// Clock ticks after boot; 0 when unknown (then only the pid is checked).
    pub start: u64,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        let pid = std::process::id() as i32;
        Owner {
            pid,
            start: start_time(pid).unwrap_or(0),
        }
    }

    /// "<pid> <start>" as in the owner file; an owner file of older pgdr holds the pid only.
    pub fn parse(s: &str) -> Option<Owner> {
        let mut it = s.split_whitespace();
        let pid = it.next()?.parse().ok()?;
        let start = match it.next() {
            Some(t) => t.parse().ok()?,
            None => 0,
        };
        Some(Owner { pid, start })
    }

    pub fn to_file(self) -> String {
        format!("{} {}", self.pid, self.start)
    }

    /// Whether the owner still runs. A pid-only mark (older pgdr) is never this process:
    /// this process writes the start time.
    pub fn alive(&self) -> bool {
        if self.start == 0 {
            return self.pid != std::process::id() as i32 && process_exists(self.pid);
        }
        start_time(self.pid) == Some(self.start)
    }
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks after boot.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Remove what killed pgdr processes left: scratch clusters in `[scratch] temp_dir` (or the
/// system temp dir) and spool files in the system temp dir (the default spool directory).
/// Every command that starts a cluster or a spool runs it first, as do `verify --quick`,
/// `status` and the daemon's start. Best effort: failures are logged, never fatal.
pub async fn sweep_orphans(s: &ScratchSettings) {
    let parent = s.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let _ = tokio::task::spawn_blocking(move || {
        sweep_clusters(&parent);
        sweep_spools(&parent);
        let tmp = std::env::temp_dir();
        if tmp != parent {
            sweep_spools(&tmp);
        }
    })
    .await;
}

/// Whether `path` is a file (not a symlink) this user wrote: in a shared temp dir anyone can
/// plant names that look like ours.
fn ours(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file() && m.uid() == me)
}

/// Spool files in `dir` whose pgdr is gone: decrypted dumps nobody will remove otherwise.
pub fn sweep_spools(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(owner) = name
            .strip_prefix(SPOOL_PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|o| Owner::parse(&o.replace('.', " ")))
        else {
            continue;
        };
        let path = e.path();
        if owner.alive() || !ours(&path) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(file = %path.display(), owner = owner.pid, "removed a spool file left by a pgdr process that is gone")
            }
            Err(err) => {
                tracing::warn!(file = %path.display(), error = %err, "cannot remove a spool file left by a killed pgdr (a decrypted dump); remove it by hand")
            }
        }
    }
}

/// Scratch clusters in `parent` whose pgdr is gone: their postmaster is stopped (when the
/// process with the pid-file's pid really is the postmaster of that folder) and the folder
/// deleted.
fn sweep_clusters(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let dir = e.path();
        if !e.file_name().to_string_lossy().starts_with(SCRATCH_PREFIX)
            || !e.file_type().is_ok_and(|t| t.is_dir())
            || !ours(&dir.join(OWNER_FILE))
        {
            continue;
        }
        let Some(owner) = std::fs::read_to_string(dir.join(OWNER_FILE))
            .ok()
            .and_then(|s| Owner::parse(&s))
        else {
            continue;
        };
        if owner.alive() {
            continue;
        }
        let data = dir.join("data");
        if let Some(pm) = super::pid_file_line(&data, 0).and_then(|l| l.trim().parse::<i32>().ok())
        {
            if is_postmaster_of(pm, &data) {
                // SAFETY: kill has no memory-safety preconditions.
                if unsafe { libc::kill(pm, libc::SIGQUIT) } != 0 {
                    tracing::warn!(dir = %dir.display(), pid = pm, "cannot stop the server of a scratch cluster left by a killed pgdr; stop it and remove the folder by hand");
                    continue;
                }
                // Not our child: its pid file going away says it stopped.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while data.join("postmaster.pid").exists() && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                tracing::info!(dir = %dir.display(), owner = owner.pid, "removed a scratch cluster left by a pgdr process that is gone")
            }
            Err(err) => {
                tracing::warn!(dir = %dir.display(), error = %err, "cannot remove a scratch cluster left by a killed pgdr; remove it by hand")
            }
        }
    }
}

/// Whether `pid` runs postgres on `data` (a pid from an old pid file may be anything now).
fn is_postmaster_of(pid: i32, data: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
        let data = data.as_os_str().as_encoded_bytes();
        args.first().is_some_and(|a| a.ends_with(b"postgres")) && args.contains(&data)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_is_pid_and_start_time() {
        let me = Owner::me();
        assert_eq!(me.pid, std::process::id() as i32);
        assert!(me.start > 0, "start time of this process from /proc");
        assert!(me.alive(), "this process owns its own marks");
        assert_eq!(Owner::parse(&me.to_file()), Some(me));
        // The same pid with another start time: a process that is gone, its pid reused.
        let reused = Owner {
            start: me.start + 1,
            ..me
        };
        assert!(!reused.alive());
        // A pid-only mark (older pgdr) naming this process cannot be this process's own.
        assert!(!Owner::parse(&me.pid.to_string()).unwrap().alive());
        assert!(Owner::parse("x 1").is_none());
    }

    #[test]
    fn spool_files_of_gone_owners_are_removed_live_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let me = Owner::me();
        let live = d
            .path()
            .join(format!("{SPOOL_PREFIX}{}.{}-abc.dump", me.pid, me.start));
        let dead = d.path().join(format!(
            "{SPOOL_PREFIX}{}.{}-abc.dump",
            me.pid,
            me.start + 1
        ));
        let other = d.path().join("pgdr-spool-unrelated.dump");
        for p in [&live, &dead, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        sweep_spools(d.path());
        assert!(live.exists());
        assert!(!dead.exists());
        assert!(other.exists());
    }
}
