#!/usr/bin/env bash
# Configures and builds one flavour of Chronik into build/<flavour>.
#   release  gcc, -O2 -g, ASSERTs on (what `scripts/start` runs)
#   asan     clang with AddressSanitizer + UndefinedBehaviorSanitizer
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
case "$flavour" in
release) opts=(-DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
asan) opts=(-DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHRONIK_SANITIZE=ON) ;;
*)
    echo "usage: $0 [release|asan]" >&2
    exit 2
    ;;
esac
cmake -S . -B "build/$flavour" -G Ninja "${opts[@]}" >/dev/null
cmake --build "build/$flavour" -j "$(nproc)"
