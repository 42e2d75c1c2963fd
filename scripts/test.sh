#!/usr/bin/env bash
# The one command that sets up and runs every test of the workspace.
#
# It installs what the tests need beyond cargo — fakesnow, the offline Snowflake stand-in,
# and with it sqlglot (whose Snowflake dialect parses every statement the store builds), in
# a Python virtual environment next to its shim (crates/adapter-snowflake/tests/fakesnow)
# — and then runs the whole suite. The Snowflake tests start fakesnow themselves on
# 127.0.0.1 and fail (never skip) when it cannot start. The metrics tests start a real
# Prometheus Pushgateway, and the alerting rules are checked with promtool: both come
# from Debian (prometheus-pushgateway, prometheus), installed here when missing.
# The empty-root tests run the static binary (scripts/build-static.sh), built here too.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/start-fakesnow.sh --install-only
if ! command -v prometheus-pushgateway >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y --no-install-recommends \
        prometheus-pushgateway prometheus
fi
# The empty-root tests (bins/ca-notify/tests/cli/empty_root.rs) run the static binary.
scripts/build-static.sh
cargo test --workspace --locked "$@"
