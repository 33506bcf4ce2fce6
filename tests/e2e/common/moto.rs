//! The moto S3 server for the Object Lock tests (Garage has no Object Lock), run by
//! scripts/s3-lock-server.sh: one shared instance per test process, stopped at exit (see
//! [`super::s3script`]). Its bucket is versioned with Object Lock enabled; tests isolate by prefix.

use std::path::PathBuf;
use std::sync::OnceLock;

use super::garage::unique_prefix;
use super::s3script::MOTO;
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

static SHARED: OnceLock<Moto> = OnceLock::new();

/// The process-wide moto server (started on first use, stopped at exit).
pub fn moto() -> &'static Moto {
    SHARED.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pgdr-e2e-moto-{}", std::process::id()));
        let e = MOTO.start(&dir);
        Moto {
            endpoint: e.get("AWS_ENDPOINT_URL"),
            region: e.get("AWS_REGION"),
            access_key: e.get("AWS_ACCESS_KEY_ID"),
            secret_key: e.get("AWS_SECRET_ACCESS_KEY"),
            bucket: e.get("PGDR_S3_LOCK_BUCKET"),
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
