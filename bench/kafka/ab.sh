#!/usr/bin/env bash
# A/B comparison of broker binaries with run.sh's produce-1k scenario: runs them in turn, round
# after round, so a change of the machine's state (other jobs, a shared disk) falls on every
# binary alike, prints one line per run and, at the end, each binary's figures sorted with
# their median. On a shared machine identical runs differ by far more than most changes do, so
# compare medians over many rounds, never one pair. Not part of the test suite.
#
# Usage: bench/kafka/ab.sh ROUNDS NAME=PATH-TO-CHRONIK NAME=PATH-TO-CHRONIK...
# Environment: as run.sh (PRODUCE_ARGS, MESSAGES_1K, DURATION, DATA_ROOT, ...); SCENARIOS is
# always produce-1k. For example, latency at a fixed load, then throughput at full speed:
#   PRODUCE_ARGS="--rate 100000" MESSAGES_1K=800000 bench/kafka/ab.sh 5 a=/tmp/a b=/tmp/b
#   MESSAGES_1K=1600000 bench/kafka/ab.sh 5 a=/tmp/a b=/tmp/b
# Each line: the time, the 1-minute load average before the run, the name, dd's figure (run.sh
# measures the disk in every run: before the scenario, after it with --rate), with --rate the
# disk's latency floor p99 (measured after the scenario: what the disk allows with no broker, as
# one connection sees it), the MB/s delivered and the latency percentiles in ms.
set -uo pipefail

if [ $# -lt 2 ] || ! [ "$1" -gt 0 ] 2>/dev/null; then
    echo "usage: $0 ROUNDS NAME=PATH-TO-CHRONIK..." >&2
    exit 2
fi
rounds=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
results=$(mktemp)
trap 'rm -f "$results"' EXIT

for _ in $(seq "$rounds"); do
    for spec in "$@"; do
        name=${spec%%=*}
        path=${spec#*=}
        load=$(cut -d ' ' -f 1 /proc/loadavg)
        out=$(SCENARIOS=produce-1k "$here/run.sh" "$path" 2>&1)
        dd_mb=$(echo "$out" | sed -n 's/.* copied, .* s, \(.*\)$/\1/p')
        mbs=$(echo "$out" | sed -n 's/.* msg\/s, \([0-9.]*\) MB\/s$/\1/p')
        lat=$(echo "$out" | sed -n 's/^ *latency ms: //p')
        floor=$(echo "$out" | sed -n 's/.*; in order: .* p99 \([0-9.]*\) ms .*/\1/p')
        echo "$(date +%H:%M:%S) load $load $name dd ${dd_mb:-?}${floor:+ floor p99 $floor ms}" \
            "got ${mbs:-?} MB/s $lat"
        if [ -z "$mbs" ]; then
            echo "$out" | tail -n 8 | sed 's/^/    /'
            continue
        fi
        p99=$(echo "$lat" | sed -n 's/.*p99 \([0-9.]*\) .*/\1/p')
        echo "$name $mbs $p99 $floor" >>"$results"
    done
done

# median of the numbers on stdin, one a line
median() {
    sort -g | awk 'NF { v[++n] = $1 } END { if (n == 0) print "?"; else if (n % 2) print v[(n + 1) / 2]; else print (v[n / 2] + v[n / 2 + 1]) / 2 }'
}

echo "== sorted, with the median"
for spec in "$@"; do
    name=${spec%%=*}
    mine=$(awk -v n="$name" '$1 == n' "$results")
    echo "$name MB/s: $(echo "$mine" | awk '{ print $2 }' | sort -g | tr '\n' ' ')(median $(echo "$mine" | awk '{ print $2 }' | median))"
    echo "$name p99 ms: $(echo "$mine" | awk '{ print $3 }' | sort -g | tr '\n' ' ')(median $(echo "$mine" | awk '{ print $3 }' | median))"
    if [ -n "$(echo "$mine" | awk '{ print $4 }' | tr -d '\n')" ]; then
        echo "$name disk floor p99 ms: $(echo "$mine" | awk '{ print $4 }' | sort -g | tr '\n' ' ')(median $(echo "$mine" | awk '{ print $4 }' | median))"
    fi
done
