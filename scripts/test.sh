#!/usr/bin/env bash
# The one command that sets up and runs every test of the workspace.
#
# It installs what the tests need beyond cargo — fakesnow, the offline Snowflake stand-in,
# in a Python virtual environment next to its shim (crates/adapter-snowflake/tests/fakesnow)
# — and the static binary the empty-root tests run (scripts/build-static.sh), and then
# runs the whole suite. The Snowflake tests start fakesnow themselves on
# 127.0.0.1 and fail (never skip) when it cannot start.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/start-fakesnow.sh --install-only
# The empty-root tests (bins/ca-notify/tests/cli/empty_root.rs) run the static binary.
scripts/build-static.sh
cargo test --workspace --locked "$@"
