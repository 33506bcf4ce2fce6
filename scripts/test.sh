#!/usr/bin/env bash
# The test suite: formatting, lints, unit tests, and end-to-end tests against a real
# PostgreSQL (started by the tests) and a real S3 server (Garage, started by the tests).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PGDR_ROOT"
cargo fmt --all -- --check
# No import cycle between top-level modules (ARCHITECTURE.md's rules).
python3 scripts/check-cycles.py >/dev/null || python3 scripts/check-cycles.py
# No file over 700 lines, no function over 80 (ARCHITECTURE.md's rules).
python3 scripts/check-sizes.py
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
