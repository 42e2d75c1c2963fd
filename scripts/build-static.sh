#!/usr/bin/env bash
# Builds the one artefact: ca-notify as a static, stripped x86_64 Linux binary, with the
# machine's own toolchain (glibc's static libraries, `+crt-static`), rustls with bundled
# root certificates and name resolution in Rust (hickory), so it runs in an empty root.
#
#   scripts/build-static.sh            -> target/dist/ca-notify
#
# Extra arguments go to cargo (e.g. --no-default-features for a build without the demo).
# Fails when the result is not static or is larger than the 25 MB goal.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
limit=$((25 * 1024 * 1024))

# An explicit --target keeps RUSTFLAGS off build scripts and proc macros, which must stay
# dynamic; the static build lands in its own folder and leaves the usual builds alone.
# getrandom (0.3, 0.4) finds glibc's getrandom() through dlsym, which a static binary
# cannot answer, and then falls back to /dev/urandom — absent from an empty root. The
# linux_getrandom backend calls getrandom() directly (getrandom's README, "Opt-in
# backends").
RUSTFLAGS="-C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"" \
    cargo build --locked --profile static --target "$target" -p ca-notify "$@"

built="target/$target/static/ca-notify"
mkdir -p target/dist
cp "$built" target/dist/ca-notify

if readelf -l target/dist/ca-notify | grep -q 'INTERP'; then
    echo "build-static: target/dist/ca-notify asks for a dynamic loader" >&2
    exit 1
fi
size=$(stat -c %s target/dist/ca-notify)
echo "build-static: target/dist/ca-notify is static, $size bytes ($(target/dist/ca-notify --version))"
if [ "$size" -gt "$limit" ]; then
    echo "build-static: larger than the 25 MB goal ($limit bytes)" >&2
    exit 1
fi
