# The container image: the static binary and nothing else — no shell, no libc, no package
# manager, no certificate store (the binary carries Mozilla's roots).
#
#   scripts/build-static.sh          # -> target/dist/ca-notify
#   docker build -t ca-notify:0.1.0 .
#
# The binary is built on the build machine's own toolchain, not in a builder image, so
# the image holds exactly the file the empty-root test ran
# (bins/ca-notify/tests/empty_root.rs). Runs as a numeric non-root user: an empty image
# has no /etc/passwd to name one. Mount the SQLite state (when store.kind = sqlite) at
# /data and a writable /tmp; keep the root read-only. Secrets come from files:
# CA_NOTIFY__SECTION__KEY_FILE=/run/secrets/… (docs/operations.md, "Secrets from files").
FROM scratch

COPY --chmod=0555 target/dist/ca-notify /ca-notify

USER 65532:65532
WORKDIR /data
ENV CA_NOTIFY__STORE__PATH=/data/ca-notify.db \
    TMPDIR=/tmp

ENTRYPOINT ["/ca-notify"]
CMD ["run"]
