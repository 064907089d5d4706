#!/usr/bin/env bash
# README command 1 (scripts/start) must work on a fresh machine with only the build packages of
# `scripts/deps.sh build` installed (regression: it configured the tests, which failed with
# "Could not find CMOCKA_LIBRARY", and the quick start's kcat came only with the test packages).
# Checks: the broker flavour's configuration looks for neither cmocka nor librdkafka (the two
# libraries only the test packages bring), it builds the chronik binary, and kcat is a build
# package.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

grep -q 'scripts/build.sh broker' "$root/scripts/start" || {
    echo "FAIL: scripts/start does not build the broker flavour" >&2
    exit 1
}
# The build package list, as deps.sh would install it.
build_pkgs=$(sed -n '/^build_pkgs=(/,/^)/p' "$root/scripts/deps.sh")
grep -qw kcat <<<"$build_pkgs" || {
    echo "FAIL: kcat (README quick start) is not among the build packages" >&2
    exit 1
}
# Configure exactly as build.sh's broker flavour does, in a scratch directory.
opts=$(sed -n '/^broker)/,/;;/p' "$root/scripts/build.sh" | grep -o -- '-D[A-Za-z_]*=[A-Za-z0-9_]*')
# shellcheck disable=SC2086
cmake -S "$root" -B "$tmp/b" -G Ninja $opts >"$tmp/cmake.log" 2>&1 || {
    cat "$tmp/cmake.log" >&2
    echo "FAIL: the broker flavour does not configure" >&2
    exit 1
}
if grep -E '^(CMOCKA|RDKAFKA)' "$tmp/b/CMakeCache.txt" >&2; then
    echo "FAIL: the broker flavour looks for a test-only library" >&2
    exit 1
fi
cmake --build "$tmp/b" --target chronik >"$tmp/build.log" 2>&1 || {
    tail -20 "$tmp/build.log" >&2
    echo "FAIL: the broker flavour does not build chronik" >&2
    exit 1
}
"$tmp/b/chronik" --help >/dev/null
echo "ok: scripts/start needs only the build packages"
