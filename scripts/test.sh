#!/usr/bin/env bash
# The test suite: formatting, lints, unit tests, and end-to-end tests against a real
# PostgreSQL (started by the tests) and a real S3 server (Garage, started by the tests).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PGDR_ROOT"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
