#!/usr/bin/env bash
# Installs the Debian packages Chronik needs, and nothing when they are all there already.
#   scripts/deps.sh build   what building and running the broker needs, and kcat for the README's
#                           quick start
#   scripts/deps.sh test    that, plus what the test suite and the benchmarks need, and the
#                           integration tests' kafkajs (`npm ci` in tests/integration)
# Runs `apt-get update` once, and only when something is missing; runs `npm ci` only when
# tests/integration/package-lock.json changed since the last run. Idempotent.
set -euo pipefail

# kcat is here, not among the test packages, because the README's quick start uses it right after
# command 1.
build_pkgs=(
    cmake ninja-build gcc make pkg-config python3
    zlib1g-dev libzstd-dev liblz4-dev libsnappy-dev kcat
)
# python3-snappy, python3-lz4 and python3-zstandard give kafka-python its codecs; nodejs runs
# kafkajs (npm comes with it from NodeSource, else from Debian's npm package).
test_pkgs=(
    clang clang-format libclang-rt-14-dev libcmocka-dev
    librdkafka-dev python3-pytest python3-confluent-kafka python3-kafka
    python3-snappy python3-lz4 python3-zstandard nodejs
)

case "${1:-build}" in
build) want=("${build_pkgs[@]}") ;;
test) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
*)
    echo "usage: $0 [build|test]" >&2
    exit 2
    ;;
esac

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${1:-build}" = test ] && ! command -v npm >/dev/null 2>&1; then
    missing+=(npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    echo "deps: installing ${missing[*]}" >&2
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# kafkajs for the integration tests, at the versions package-lock.json pins. The lock file's
# hash, stored next to the modules, tells whether the installed tree is current.
if [ "${1:-build}" = test ]; then
    it_dir=$(cd "$(dirname "$0")/../tests/integration" && pwd)
    stamp=$it_dir/node_modules/.chronik-lock.sha256
    want_hash=$(sha256sum "$it_dir/package-lock.json" | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_hash" ]; then
        echo "deps: npm ci in tests/integration" >&2
        (cd "$it_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        echo "$want_hash" >"$stamp"
    fi
fi
