//! The Garage S3 server for tests, run by scripts/s3-server.sh.
//!
//! One shared instance per test process (started on first use, stopped at process exit, see
//! [`super::s3script`]), plus private instances for tests that kill their server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use pgdr::config::{S3Settings, Secret, MIN_PART_SIZE};
use pgdr::store::s3::{S3Store, Timeouts};

use super::s3script::{Exports, GARAGE};

#[derive(Debug, Clone)]
pub struct Garage {
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    /// The state dir (PGDR_GARAGE_DIR) of this instance.
    pub dir: PathBuf,
    /// The server process, for tests that kill it.
    pub pid: i32,
}

static SHARED: OnceLock<Garage> = OnceLock::new();

/// The process-wide shared server (bucket `pgdr-test`); tests isolate themselves by prefix.
pub fn garage() -> &'static Garage {
    SHARED.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pgdr-e2e-garage-{}", std::process::id()));
        Garage::start(&dir)
    })
}

/// A unique repository prefix per call, so tests sharing the bucket never see each other.
pub fn unique_prefix(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "e2e-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Garage {
    /// Start (or restart, when `dir` holds a stopped instance) the server whose state lives in
    /// `dir`. It is stopped at process exit unless [`Garage::stop`] ran first.
    pub fn start(dir: &Path) -> Garage {
        from_exports(&GARAGE.start(dir), dir)
    }

    pub fn stop(&self) {
        GARAGE.stop(&self.dir);
    }

    /// Settings for this server: smallest legal parts, few retries.
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: Some(self.endpoint.clone()),
            region: Some(self.region.clone()),
            force_path_style: None,
            access_key_id: Some(Secret::new(&self.access_key)),
            secret_access_key: Some(Secret::new(&self.secret_key)),
            session_token: None,
            part_size: MIN_PART_SIZE,
            max_parts_in_flight: 4,
            max_attempts: 3,
            storage_class: None,
            server_side_encryption: None,
            sse_kms_key_id: None,
            object_lock: None,
            object_lock_max: pgdr::config::DEFAULT_OBJECT_LOCK_MAX,
        }
    }

    /// A store on the shared bucket under a fresh prefix.
    pub async fn store(&self, name: &str) -> S3Store {
        self.store_with(name, &self.settings()).await
    }

    pub async fn store_with(&self, name: &str, s: &S3Settings) -> S3Store {
        S3Store::with_timeouts(&self.bucket, &unique_prefix(name), s, short_timeouts())
            .await
            .expect("open S3 store")
    }

    /// A plain SDK client, to look at what the store did (ETags, raw listings).
    pub fn client(&self) -> aws_sdk_s3::Client {
        sdk_client(
            &self.endpoint,
            &self.region,
            &self.access_key,
            &self.secret_key,
        )
    }

    /// Run the garage CLI against this instance.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(garage_bin())
            .arg("-c")
            .arg(self.dir.join("garage.toml"))
            .args(args)
            .output()
            .expect("run garage");
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A new access key with no permission on any bucket: (key id, secret).
    pub fn key_without_permissions(&self, name: &str) -> (String, String) {
        self.cli(&["key", "create", name]);
        let info = self.cli(&["key", "info", "--show-secret", name]);
        let field = |label: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(label))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no '{label}' in garage key info output:\n{info}"))
        };
        (field("Key ID:"), field("Secret key:"))
    }

    /// Create another bucket, readable and writable by the test key.
    pub fn create_bucket(&self, name: &str) {
        self.cli(&["bucket", "create", name]);
        self.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            name,
            "--key",
            "pgdr-test-key",
        ]);
    }
}

/// Short enough that a dead server fails a test in seconds, long enough for a 5 MiB part.
pub fn short_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        read: Duration::from_secs(10),
    }
}

fn garage_bin() -> PathBuf {
    if let Some(paths) = std::env::var_os("PATH") {
        for p in std::env::split_paths(&paths) {
            let c = p.join("garage");
            if c.is_file() {
                return c;
            }
        }
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .expect("HOME is set");
    home.join("bin/garage")
}

fn from_exports(e: &Exports, dir: &Path) -> Garage {
    Garage {
        endpoint: e.get("AWS_ENDPOINT_URL"),
        region: e.get("AWS_REGION"),
        access_key: e.get("AWS_ACCESS_KEY_ID"),
        secret_key: e.get("AWS_SECRET_ACCESS_KEY"),
        bucket: e.get("PGDR_S3_BUCKET"),
        dir: dir.to_path_buf(),
        pid: e.get("PGDR_GARAGE_PID").parse().expect("numeric pid"),
    }
}

/// A plain SDK client of a local S3 server (Garage or moto), path-style, static keys.
pub fn sdk_client(
    endpoint: &str,
    region: &str,
    access_key: &str,
    secret_key: &str,
) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            access_key, secret_key, None, None, "e2e",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}
