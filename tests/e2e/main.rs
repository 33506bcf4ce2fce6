//! End-to-end tests: the real pgdr binary against a real PostgreSQL cluster and a real S3
//! server (Garage), both started and stopped by the harness. One test binary, so the heavy
//! dependencies link once.

mod alerts;
mod anchor;
mod backup;
mod capture;
mod capture_alerts;
mod capture_anchor_sync;
mod capture_auto_add;
mod capture_crash;
mod capture_gap;
mod capture_memory;
mod capture_ops;
mod capture_run;
mod capture_schema;
mod capture_sequences;
mod chain;
mod common;
mod diff;
mod drill;
mod drill_capture;
mod drill_point;
mod globals;
mod guards;
mod labels;
mod managed;
mod managed_held;
mod managed_owners;
mod names;
mod pitr;
mod pitr_plan;
mod replay;
mod replication;
mod restore;
mod roles;
mod s3;
mod schedule;
mod schema;
mod secrets;
mod security;
mod signing;
mod tls;
mod typed_errors;
mod verify;
