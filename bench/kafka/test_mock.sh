#!/bin/sh
# chronik-bench end to end against librdkafka's mock cluster (chronik-bench-mock): produce,
# the steady-state latency after a warm-up, consume to the end (of an empty topic too), e2e
# with and without a consumer group, and each failure the exit status must report: a consumer
# that falls short, refused messages, a topic with fewer partitions than asked, a missing topic,
# a bad command line; and watermarks asked while a partition's leadership moves.
#
# Usage: test_mock.sh CHRONIK_BENCH CHRONIK_BENCH_MOCK
# The mock keeps about 5 MB per partition, so every volume here stays far below that.
set -u
bench=$1
mock=$2
work=$(mktemp -d)
mock_pid=
passed=0
failed=0

cleanup() {
    [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null && wait "$mock_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

check() { # check NAME CONDITION-STATUS
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok: $1"
    else
        failed=$((failed + 1))
        echo "FAILED: $1"
        sed 's/^/    /' "$work/out" "$work/err" | tail -n 20
    fi
}

# run EXPECTED-STATUS ARGS...: runs chronik-bench against the mock, output in $work/out, err.
run() {
    want=$1
    shift
    "$bench" "$@" --brokers "$brokers" >"$work/out" 2>"$work/err"
    got=$?
    [ "$got" -eq "$want" ]
}

# json EXPR: a Python expression over the summary j must hold.
json() {
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($1) else 1)" \
        "$work/out"
}

# start_mock ARGS...: starts chronik-bench-mock ARGS (stopping the one before), sets brokers.
start_mock() {
    if [ -n "$mock_pid" ]; then
        exec 3>&-
        wait "$mock_pid" 2>/dev/null
        rm -f "$work/hold" "$work/bootstrap"
    fi
    mkfifo "$work/hold"
    "$mock" "$@" <"$work/hold" >"$work/bootstrap" 2>"$work/mock.err" &
    mock_pid=$!
    exec 3>"$work/hold" # the mock serves until this descriptor closes
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
        [ -s "$work/bootstrap" ] && break
        sleep 0.25
    done
    brokers=$(head -n 1 "$work/bootstrap")
    if [ -z "$brokers" ]; then
        echo "FAILED: the mock cluster did not start"
        cat "$work/mock.err"
        exit 1
    fi
}

start_mock 1 t:4 small:2 empty:3 warm:1

run 0 consume --topic empty --timeout-ms 20000 --json &&
    json 'j["ok"] and j["consume"]["messages"] == 0 and j["consume"]["elapsed_s"] < 10'
check "consuming an empty topic ends at once with nothing" $?

run 0 produce --topic t --messages 2000 --record-size 512 --json &&
    json 'j["ok"] and j["produce"]["messages"] == 2000 and j["produce"]["failed"] == 0 and
          j["produce"]["bytes"] == 2000 * 512 and j["produce"]["latency_ms"]["samples"] == 2000'
check "produce 2000 records, all acknowledged" $?

# 1000 records a second for 3 s: those sent after the first second alone form the steady-state
# figure (a record due within the pacing's minimum sleep of that second may go a little early).
run 0 produce --topic warm --messages 3000 --rate 1000 --warmup 1 --json \
    --client-stats "$work/stats.json" &&
    json 'j["ok"] and j["produce"]["latency_ms"]["samples"] == 3000 and j["produce"]["warmup_s"] == 1 and
          1990 <= j["produce"]["steady_latency_ms"]["samples"] <= 2000'
check "--warmup reports the records sent after the warm-up apart" $?

# The same 3 s run wrote librdkafka's statistics: a whole JSON document a line, about one a
# second from the producer, whose round trips client_stats.py splits from its queue time.
python3 -c '
import json, sys
docs = [json.loads(line) for line in open(sys.argv[1])]
prod = [d for d in docs if d["type"] == "producer"]
sent = sum(b["rtt"]["cnt"] for d in prod for b in d["brokers"].values() if b["nodeid"] >= 0)
sys.exit(0 if 2 <= len(prod) <= 4 and sent > 0 else 1)' "$work/stats.json" &&
    python3 "$(dirname "$0")/client_stats.py" "$work/stats.json" >"$work/out" 2>"$work/err" &&
    grep -q "^  rtt *p50 [0-9.]* ([0-9.]*)  p99 " "$work/out" &&
    grep -q "^  int_latency " "$work/out"
check "--client-stats writes the producer's statistics a line a second; client_stats.py reads them" $?

run 0 consume --topic t --json &&
    json 'j["ok"] and j["consume"]["messages"] == 2000 and j["consume"]["bytes"] == 2000 * 512 and
          j["consume"]["latency_ms"]["samples"] == 2000 and not j["consume"]["short"]'
check "consume reads the topic to its end" $?

run 1 consume --topic t --messages 5000 --timeout-ms 1000 --json &&
    json 'not j["ok"] and j["consume"]["short"] and j["consume"]["messages"] == 2000'
check "consume that falls short of --messages fails" $?

run 0 e2e --topic t --messages 1000 --record-size 100 --compression lz4 --json &&
    json 'j["ok"] and j["produce"]["messages"] == 1000 and j["consume"]["messages"] == 1000 and
          j["consume"]["expected"] == 1000 and j["consume"]["duplicates"] == 0 and
          j["consume"]["latency_ms"]["samples"] == 1000'
check "e2e counts exactly this run's messages" $?

run 0 e2e --topic small --messages 500 --rate 2000 --group g1 --commit-interval-ms 100 --json &&
    json 'j["ok"] and j["consume"]["messages"] == 500 and j["consume"]["rebalances"] >= 1 and
          j["consume"]["rebalance_first_ms"] > 0 and j["consume"]["commit_errors"] == 0'
check "e2e through a consumer group reports its rebalance" $?

run 1 produce --topic t --messages 50 --record-size 2000 -X message.max.bytes=1000 --json &&
    json 'not j["ok"] and j["produce"]["failed"] == 50 and j["produce"]["messages"] == 0'
check "refused messages are counted and fail the run" $?

run 1 produce --topic t --partitions 8 --messages 1 && grep -q "fewer than --partitions 8" "$work/err"
check "a topic with fewer partitions than --partitions is an error" $?

run 1 consume --topic missing && grep -q "does not exist" "$work/err"
check "consuming a missing topic is an error" $?

run 2 produce --acks 2 && grep -q -- "--acks" "$work/err"
check "a bad command line exits with status 2" $?

# A new replicated topic's leadership moves to its preferred replica right after creation: the
# watermarks asked before the first send then meet NOT_LEADER_OR_FOLLOWER (the replication
# bench failed on it), which is retried rather than ending the run.
start_mock 1 --not-leader-list-offsets 3 moved:2
run 0 produce --topic moved --messages 100 --json &&
    json 'j["ok"] and j["produce"]["messages"] == 100'
check "watermarks asked while the leadership moves are asked again" $?

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
