#!/usr/bin/env bash
# Configures and builds one flavour of Chronik into build/<flavour>.
#   release  gcc, -O2 -g, ASSERTs on, with tests and benchmarks (what `scripts/test` runs)
#   asan     clang with AddressSanitizer + UndefinedBehaviorSanitizer
#   broker   the chronik binary alone (gcc, -O2 -g), no tests or benchmarks: what `scripts/start`
#            builds, with nothing but `scripts/deps.sh build` installed
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
targets=()
case "$flavour" in
release) opts=(-DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
asan) opts=(-DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHRONIK_SANITIZE=ON) ;;
broker)
    opts=(-DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF
        -DCHRONIK_BENCH=OFF)
    targets=(--target chronik)
    ;;
*)
    echo "usage: $0 [release|asan|broker]" >&2
    exit 2
    ;;
esac
cmake -S . -B "build/$flavour" -G Ninja "${opts[@]}" >/dev/null
cmake --build "build/$flavour" -j "$(nproc)" "${targets[@]}"
