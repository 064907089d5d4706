#!/usr/bin/env bash
# Full speed, then latency at half of it: run.sh's produce-1k scenario (acks=all, 1 KiB records,
# 8 partitions, librdkafka through chronik-bench) first as fast as it goes, compared with dd in
# the same run, then at a fixed rate of half the records a second it reached, with the disk's
# latency floor at that rate. A fresh broker for each step. Not part of the test suite.
#
# Usage: bench/kafka/half.sh [PATH-TO-CHRONIK]     (default: build/release/chronik)
# Environment: as run.sh (DATA_ROOT, PARTITIONS, BROKER_ARGS, ...), and
#   FULL_MESSAGES  records at full speed (default 8000000, about 7.6 GiB)
#   HALF_SECONDS   seconds at half speed (default 10)
#   WARMUP         the half-speed step also reports the records sent after this many seconds
#                  alone, the producer's start left out (default 2)
#   ROUNDS         times to do both steps (default 1)
# Prints run.sh's figures of each step, then one line a round: full speed MB/s, its share of dd's
# MB/s, the rate, and p50/p99 at that rate (and p99 after the warm-up) with the floor's p99.
# Exit status 1 when a step failed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
full_messages=${FULL_MESSAGES:-8000000}
half_seconds=${HALF_SECONDS:-10}
warmup=${WARMUP:-2}
rounds=${ROUNDS:-1}
summary=()

for round in $(seq "$rounds"); do
    echo "== round $round: full speed, $full_messages records"
    full=$(SCENARIOS=produce-1k MESSAGES_1K=$full_messages PRODUCE_ARGS='' "$here/run.sh" "$@" 2>&1)
    echo "$full"
    msgs=$(echo "$full" | sed -n 's/.*: \([0-9]*\) msg\/s, [0-9.]* MB\/s$/\1/p')
    mbs=$(echo "$full" | sed -n 's/.* msg\/s, \([0-9.]*\) MB\/s$/\1/p')
    share=$(echo "$full" | sed -n 's/^ *against dd: \(.*\)$/\1/p')
    if [ -z "$msgs" ] || [ "$msgs" -lt 2 ]; then
        echo "half.sh: no full-speed figure in round $round" >&2
        exit 1
    fi
    rate=$((msgs / 2))
    echo "== round $round: $rate records a second for $half_seconds s"
    half=$(SCENARIOS=produce-1k MESSAGES_1K=$((rate * half_seconds)) \
        PRODUCE_ARGS="--rate $rate --warmup $warmup" "$here/run.sh" "$@" 2>&1)
    echo "$half"
    lat=$(echo "$half" | sed -n 's/^ *latency ms: \(p50 [0-9.]*  p99 [0-9.]*\).*/\1/p')
    steady=$(echo "$half" | sed -n 's/^ *after the first [0-9]* s: p50 [0-9.]*  p99 \([0-9.]*\).*/\1/p')
    floor=$(echo "$half" | sed -n 's/.*; in order: .* p99 \([0-9.]*\) ms .*/\1/p')
    if [ -z "$lat" ]; then
        echo "half.sh: no latency figure in round $round" >&2
        exit 1
    fi
    summary+=("full speed $mbs MB/s ($share); at $rate msg/s: $lat ms, p99 ${steady:-?} ms after the first $warmup s (disk floor p99 ${floor:-?} ms)")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
