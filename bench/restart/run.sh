#!/usr/bin/env bash
# Restart time with many partitions: for a clean shutdown (SIGTERM) and a crash (SIGKILL),
# creates a fresh data directory holding PARTITIONS partitions (topics of 1,000), writes one
# batch to each, stops the broker, starts it again and prints the times from exec to listening,
# to the first Metadata answer (every topic) and to every partition answering ListOffsets. Not
# part of the test suite; run it by hand. Segments are 256 KiB so that preallocation stays
# small (see restart.py).
#
# Usage: bench/restart/run.sh [PATH-TO-CHRONIK]      (default: build/release/chronik)
# Environment: PARTITIONS (default 10000); DATA_ROOT (default build/bench-data), on the disk
# under test; MODES (default "clean kill").
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
chronik=$(realpath "${1:-$repo/build/release/chronik}")
partitions=${PARTITIONS:-10000}
data_root=${DATA_ROOT:-$repo/build/bench-data}
modes=${MODES:-clean kill}

[ -x "$chronik" ] || { echo "run.sh: $chronik is not an executable" >&2; exit 1; }
mkdir -p "$data_root"
for mode in $modes; do
    root=$(mktemp -d "$data_root/restart.XXXXXX")
    status=0
    /usr/bin/python3 "$repo/bench/restart/restart.py" "$chronik" "$root" "$partitions" "$mode" ||
        status=$?
    rm -rf "$root"
    [ "$status" -eq 0 ] || { echo "run.sh: the $mode run failed" >&2; exit 1; }
done
