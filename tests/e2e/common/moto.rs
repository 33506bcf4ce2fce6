//! The moto S3 server for the Object Lock tests (Garage has no Object Lock), run by
//! scripts/s3-lock-server.sh: one shared instance per test process, stopped at exit by an
//! `atexit` hook. Its bucket is versioned with Object Lock enabled; tests isolate by prefix.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::garage::unique_prefix;
use super::Repo;

#[derive(Debug, Clone)]
pub struct Moto {
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    pub dir: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/s3-lock-server.sh")
}

static SHARED: OnceLock<Moto> = OnceLock::new();

extern "C" fn stop_at_exit() {
    if let Some(m) = SHARED.get() {
        let _ = Command::new(script())
            .arg("stop")
            .env("PGDR_MOTO_DIR", &m.dir)
            .status();
    }
}

/// The process-wide moto server (started on first use).
pub fn moto() -> &'static Moto {
    SHARED.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pgdr-e2e-moto-{}", std::process::id()));
        // SAFETY: registers a plain extern "C" fn; it only runs a child process at exit.
        unsafe { libc::atexit(stop_at_exit) };
        let out = Command::new(script())
            .arg("start")
            .env("PGDR_MOTO_DIR", &dir)
            .output()
            .expect("run scripts/s3-lock-server.sh");
        assert!(
            out.status.success(),
            "scripts/s3-lock-server.sh start failed: {}\n(log: {}/moto.log)",
            String::from_utf8_lossy(&out.stderr),
            dir.display()
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let get = |name: &str| {
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("export "))
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
                .unwrap_or_else(|| panic!("s3-lock-server.sh printed no {name}:\n{text}"))
        };
        Moto {
            endpoint: get("AWS_ENDPOINT_URL"),
            region: get("AWS_REGION"),
            access_key: get("AWS_ACCESS_KEY_ID"),
            secret_key: get("AWS_SECRET_ACCESS_KEY"),
            bucket: get("PGDR_S3_LOCK_BUCKET"),
            dir,
        }
    })
}

impl Moto {
    /// A repository under a fresh prefix of the locked bucket, and that prefix.
    pub fn repo(&self, name: &str) -> (Repo, String) {
        let prefix = unique_prefix(name);
        let repo = Repo::S3 {
            url: format!("s3://{}/{prefix}", self.bucket),
            env: vec![
                ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
                ("AWS_REGION".into(), self.region.clone()),
                ("AWS_ACCESS_KEY_ID".into(), self.access_key.clone()),
                ("AWS_SECRET_ACCESS_KEY".into(), self.secret_key.clone()),
            ],
        };
        (repo, prefix)
    }

    /// A plain SDK client, to read back what pgdr did (retentions, versions, delete markers).
    pub fn client(&self) -> aws_sdk_s3::Client {
        super::garage::sdk_client(
            &self.endpoint,
            &self.region,
            &self.access_key,
            &self.secret_key,
        )
    }
}
