//! Test harness: throwaway PostgreSQL clusters, the Garage S3 server, and running pgdr.
