#!/usr/bin/env bash
# The one command that sets up and runs every test of the workspace.
#
# It installs what the tests need beyond cargo — fakesnow, the offline Snowflake stand-in,
# and with it sqlglot (whose Snowflake dialect parses every statement the store builds), in
# a Python virtual environment next to its shim (crates/adapter-snowflake/tests/fakesnow)
# — and then runs the whole suite. The Snowflake tests start fakesnow themselves on
# 127.0.0.1 and fail (never skip) when it cannot start.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/start-fakesnow.sh --install-only
cargo test --workspace --locked "$@"
