//! S3 store tests against the real Garage server (see scripts/s3-server.sh).
