#!/usr/bin/env bash
# Installs the Debian packages Chronik needs, and nothing when they are all there already.
#   scripts/deps.sh build   what building and running the broker needs
#   scripts/deps.sh test    that, plus what the test suite and the benchmarks need
# Runs `apt-get update` once, and only when something is missing. Idempotent.
set -euo pipefail

build_pkgs=(
    cmake ninja-build gcc make pkg-config python3
    zlib1g-dev libzstd-dev liblz4-dev libsnappy-dev
)
test_pkgs=(
    clang libclang-rt-14-dev libcmocka-dev
    librdkafka-dev kcat python3-pytest python3-confluent-kafka python3-kafka
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
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi
echo "deps: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
