#!/usr/bin/env bash
# Runs Courier's whole test suite: formatting, lints, docs, then every test of the workspace.
# Tests talk only to servers they start themselves on loopback: in-process hyper servers, and real
# programs (nginx, tinyproxy, microsocks; Python's websockets and aiosmtpd for WebSocket and stream tasks; ip and unshare for a network namespace of the tests' own;
# systemd-socket-activate for the daemon's socket activation; curl and h2load, the bench's peer and
# ceiling), which this script installs from Debian when they are missing and the machine allows it. Last, the bench runs once, small (`--quick`): its figures are
# judged nowhere here, but every scenario checks what it moves, so a bench that stopped working is
# caught.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for program in nginx:nginx-light tinyproxy:tinyproxy microsocks:microsocks ip:iproute2 unshare:util-linux systemd-socket-activate:systemd curl:curl h2load:nghttp2-client; do
    name=${program%%:*}
    if ! command -v "$name" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$name" ] && [ ! -x "/usr/bin/$name" ]; then
        missing+=("${program#*:}")
    fi
done
# Python servers, run by Debian's Python: `websockets` (WebSocket tasks), `aiosmtpd` (STARTTLS for
# stream tasks) and `pyftpdlib` with pyOpenSSL (ftp: and FTPS).
for module in websockets:python3-websockets aiosmtpd:python3-aiosmtpd pyftpdlib:python3-pyftpdlib OpenSSL:python3-openssl; do
    if ! /usr/bin/python3 -c "import ${module%%:*}" >/dev/null 2>&1; then
        missing+=("${module#*:}")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "tests/run.sh: installing ${missing[*]} for the real-server tests"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "tests/run.sh: ${missing[*]} missing and cannot be installed here; their tests will be skipped" >&2
    fi
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
cargo test --workspace --locked
cargo run --locked --quiet -p courier-tests --bin courier-bench -- --quick
