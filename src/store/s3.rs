//! S3 backend (placeholder until the S3 work lands; see issue 6).

use super::{ByteStream, ObjectInfo, Store};
use crate::config::S3Settings;
use crate::error::{PgdrError, Result};

pub struct S3Store {
    bucket: String,
    prefix: String,
}

impl S3Store {
    pub async fn new(bucket: &str, prefix: &str, _s: &S3Settings) -> Result<Self> {
        let _ = S3Store {
            bucket: bucket.into(),
            prefix: prefix.into(),
        };
        Err(PgdrError::repository("the S3 backend is not built yet"))
    }
}

#[async_trait::async_trait]
impl Store for S3Store {
    async fn put(&self, _key: &str, _body: ByteStream) -> Result<u64> {
        unreachable!()
    }
    async fn put_bytes(&self, _key: &str, _data: bytes::Bytes) -> Result<()> {
        unreachable!()
    }
    async fn get(&self, _key: &str) -> Result<ByteStream> {
        unreachable!()
    }
    async fn list(&self, _prefix: &str) -> Result<Vec<ObjectInfo>> {
        unreachable!()
    }
    async fn delete(&self, _key: &str) -> Result<()> {
        unreachable!()
    }
    async fn check_writable(&self) -> Result<()> {
        unreachable!()
    }
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}
