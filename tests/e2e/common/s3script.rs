//! The test S3 servers as their scripts run them (scripts/s3-server.sh for Garage,
//! scripts/s3-lock-server.sh for moto): `start` with a state dir, its `export` lines read back,
//! and every instance started by this process stopped at exit by one `atexit` hook, since Rust
//! tests have no global teardown. Values are passed to each test explicitly; the process
//! environment is never modified.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// One server script: its file and the variable that names its state dir.
pub struct Script {
    file: &'static str,
    dir_var: &'static str,
    log: &'static str,
}

pub const GARAGE: Script = Script {
    file: "scripts/s3-server.sh",
    dir_var: "PGDR_GARAGE_DIR",
    log: "garage.log",
};

pub const MOTO: Script = Script {
    file: "scripts/s3-lock-server.sh",
    dir_var: "PGDR_MOTO_DIR",
    log: "moto.log",
};

/// Instances to stop at exit, with their scripts.
static STARTED: Mutex<Vec<(&'static Script, PathBuf)>> = Mutex::new(Vec::new());

extern "C" fn stop_all_at_exit() {
    let started = match STARTED.lock() {
        Ok(mut g) => std::mem::take(&mut *g),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    };
    for (script, dir) in started {
        script.run_stop(&dir);
    }
}

/// What `start` printed: `export NAME=value` lines.
pub struct Exports {
    text: String,
    script: &'static str,
}

impl Exports {
    pub fn get(&self, name: &str) -> String {
        self.text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("export "))
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
            .unwrap_or_else(|| panic!("{} printed no {name}:\n{}", self.script, self.text))
    }
}

impl Script {
    fn path(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(self.file)
    }

    /// Start (or restart, when `dir` holds a stopped instance) the server whose state lives
    /// in `dir`; it is stopped at process exit unless [`Script::stop`] ran first.
    pub fn start(&'static self, dir: &Path) -> Exports {
        static HOOK: OnceLock<()> = OnceLock::new();
        HOOK.get_or_init(|| {
            // SAFETY: registers a plain extern "C" fn; it only runs child processes at exit.
            unsafe { libc::atexit(stop_all_at_exit) };
        });
        {
            let mut started = STARTED.lock().unwrap();
            if !started.iter().any(|(s, d)| s.file == self.file && d == dir) {
                started.push((self, dir.to_path_buf()));
            }
        }
        let out = Command::new(self.path())
            .arg("start")
            .env(self.dir_var, dir)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.file));
        assert!(
            out.status.success(),
            "{} start failed: {}\n(log: {}/{})",
            self.file,
            String::from_utf8_lossy(&out.stderr),
            dir.display(),
            self.log
        );
        Exports {
            text: String::from_utf8_lossy(&out.stdout).into_owned(),
            script: self.file,
        }
    }

    /// Stop the instance in `dir` now and remove its state.
    pub fn stop(&'static self, dir: &Path) {
        self.run_stop(dir);
        STARTED
            .lock()
            .unwrap()
            .retain(|(s, d)| !(s.file == self.file && d == dir));
    }

    fn run_stop(&self, dir: &Path) {
        let _ = Command::new(self.path())
            .arg("stop")
            .env(self.dir_var, dir)
            .status();
    }
}
