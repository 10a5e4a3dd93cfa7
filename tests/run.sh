#!/usr/bin/env bash
# Runs Courier's whole test suite: formatting, lints, docs, then every test of the workspace.
# Tests talk only to servers they start themselves on loopback: in-process hyper servers, and nginx,
# which this script installs (Debian's nginx-light) when it is missing and the machine allows it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "tests/run.sh: installing nginx-light for the real-server tests"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
    else
        echo "tests/run.sh: nginx is missing and cannot be installed here; its tests will be skipped" >&2
    fi
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
cargo test --workspace --locked
