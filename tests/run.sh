#!/usr/bin/env bash
# Runs Courier's whole test suite: formatting, lints, docs, then every test of the workspace.
# Tests talk only to servers they start themselves on loopback; nothing outside cargo is needed yet.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
cargo test --workspace --locked
