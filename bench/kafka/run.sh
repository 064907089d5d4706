#!/usr/bin/env bash
# The broker benchmark: starts chronik on a free port with a fresh data directory, measures the
# disk with dd (after the scenarios at a fixed rate, with the latency floor), runs the three
# scenarios below with chronik-bench, prints each summary and the broker's CPU seconds per GB
# moved, then stops the broker. Everything runs on 127.0.0.1 and every step is bounded in time.
# Run it by hand from anywhere; it is not part of the test suite.
#
#   acks=all, 1 KiB records     target >= 300 MB/s
#   acks=all, 100-byte records  target >= 500,000 msg/s
#   consume what scenario 1 wrote (see README: disk or page cache)  target >= 1 GB/s
#
# MB is 2^20 bytes, as chronik-bench and Kafka's perf tools report it.
#
# Usage: bench/kafka/run.sh [PATH-TO-CHRONIK]      (default: build/release/chronik)
# Environment (all optional):
#   BENCH         chronik-bench (default: build/release/bench/kafka/chronik-bench)
#   LOG_BENCH     log_bench, for the disk's latency floor (default: build/release/bench/log/log_bench)
#   DATA_ROOT     where the data directory and the dd file go (default: build/bench-data);
#                 it must be on the disk under test
#   PARTITIONS    partitions of each topic (default 8)
#   MESSAGES_1K   records in scenario 1 (default 3000000, about 2.9 GiB)
#   MESSAGES_100  records in scenario 2 (default 15000000)
#   DURATION      cap in seconds on each scenario (default 60)
#   PRODUCE_ARGS  extra chronik-bench options for both produce scenarios (e.g. "--linger-ms 10")
#   BROKER_ARGS   extra chronik options (e.g. "--set compression.type=lz4")
#   SCENARIOS     the scenarios to run, by name (default "produce-1k produce-100 consume-1k";
#                 consume-1k reads what produce-1k wrote)
#   KEEP_DATA=1   keep the data directory and logs afterwards
#   QUIET_MS      before dd and again before the first scenario, wait until QUIET_S seconds
#                 (default 5) pass with no probe sync slower than this (default 10; 0: do not
#                 wait), for at most QUIET_MAX_S seconds (default 90)
# Exit status: 0 when every scenario ran cleanly and met its target, 1 when a scenario failed
# (delivery errors, short consumption, the broker died), 2 when all ran but a target was missed.
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
chronik=$(realpath "${1:-$repo/build/release/chronik}")
bench=$(realpath "${BENCH:-$repo/build/release/bench/kafka/chronik-bench}")
log_bench=${LOG_BENCH:-$repo/build/release/bench/log/log_bench}
data_root=${DATA_ROOT:-$repo/build/bench-data}
partitions=${PARTITIONS:-8}
messages_1k=${MESSAGES_1K:-3000000}
messages_100=${MESSAGES_100:-15000000}
duration=${DURATION:-60}
produce_args=${PRODUCE_ARGS:-}
# The rate of a fixed-rate run (--rate N in PRODUCE_ARGS), empty at full speed.
fixed_rate=$(echo " $produce_args " | sed -n 's/.* --rate[ =]\([0-9][0-9]*\) .*/\1/p')
broker_args=${BROKER_ARGS:-}
scenarios=${SCENARIOS:-produce-1k produce-100 consume-1k}
ticks=$(getconf CLK_TCK)

for tool in "$chronik" "$bench"; do
    if [ ! -x "$tool" ]; then
        echo "run.sh: $tool is not an executable; build first (scripts/build.sh release)" >&2
        exit 1
    fi
done
command -v python3 >/dev/null || { echo "run.sh: needs python3" >&2; exit 1; }

mkdir -p "$data_root"
root=$(mktemp -d "$data_root/run.XXXXXX")
broker_pid=
failures=0
missed=0

# Stops the broker with SIGTERM (SIGKILL after 15 s); a broker that does not exit cleanly
# counts as a failure.
stop_broker() {
    [ -z "$broker_pid" ] && return
    kill -TERM "$broker_pid" 2>/dev/null
    for _ in $(seq 150); do
        kill -0 "$broker_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$broker_pid" 2>/dev/null
    wait "$broker_pid" 2>/dev/null
    local status=$?
    broker_pid=
    if [ "$status" -ne 0 ] && [ "$status" -ne 143 ]; then
        echo "== the broker did not stop cleanly: exit status $status; its log ends with:"
        tail -n 20 "$root/chronik.log" | sed 's/^/    /'
        failures=$((failures + 1))
    fi
}

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    stop_broker
    if [ "${KEEP_DATA:-0}" = 1 ]; then
        echo "data and logs kept in $root"
    else
        rm -rf "$root"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# A port p with p, p+1000 and p+2000 free (Kafka, HTTP and cluster ports of one node).
free_port() {
    python3 - <<'PY'
import random, socket
for _ in range(500):
    p = random.randint(20000, 40000)
    ok = True
    for q in (p, p + 1000, p + 2000):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", q))
        except OSError:
            ok = False
        finally:
            s.close()
    if ok:
        print(p)
        break
PY
}

broker_cpu_ticks() {
    # utime + stime: fields 14 and 15 of /proc/PID/stat, counted after the ")" ending field 2.
    sed 's/.*) //' "/proc/$broker_pid/stat" | awk '{ print $12 + $13 }'
}

# The CPU of this shell's children that have been waited for (cutime + cstime, fields 16 and
# 17): chronik-bench's, through timeout, once a scenario ends.
client_cpu_ticks() {
    sed 's/.*) //' "/proc/$$/stat" | awk '{ print $14 + $15 }'
}

# The machine's CPU times: total and idle ticks over all CPUs, from /proc/stat.
machine_ticks() {
    awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $5; exit }' /proc/stat
}

start_broker() {
    port=$(free_port)
    [ -n "$port" ] || { echo "run.sh: no free port found" >&2; exit 1; }
    mkdir -p "$root/data"
    # shellcheck disable=SC2086 # BROKER_ARGS is a list of options
    "$chronik" --data-dir "$root/data" --port "$port" $broker_args >"$root/chronik.log" 2>&1 &
    broker_pid=$!
    for _ in $(seq 100); do
        if ! kill -0 "$broker_pid" 2>/dev/null; then
            wait "$broker_pid"
            echo "run.sh: chronik exited with status $? before listening; its log:" >&2
            sed 's/^/    /' "$root/chronik.log" >&2
            broker_pid=
            exit 1
        fi
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return
        sleep 0.1
    done
    echo "run.sh: chronik is not listening on 127.0.0.1:$port after 10 s" >&2
    exit 1
}

# The file stays until the run's end (cleanup removes $root): on a disk mounted with `discard`,
# as this project's VM is, deleting 1 GiB just before a scenario put p99 latency at 200,000 msg/s
# at 114-165 ms instead of 15-25 ms while the device worked through the discards.
disk_figure() {
    echo "== disk: dd 1 GiB with fdatasync into $data_root"
    local line
    line=$(dd if=/dev/zero of="$root/dd.test" bs=1M count=1024 conv=fdatasync 2>&1 | tail -n 1)
    echo "$line"
    # "1073741824 bytes (...) copied, 0.93 s, 1.2 GB/s": in MB (2^20 bytes) a second, as below.
    dd_mb_s=$(echo "$line" | awk '{ for (i = 1; i < NF; i++) if ($(i + 1) == "s,") s = $i }
        s > 0 { printf "%.2f", $1 / 1048576 / s }')
}

# With a fixed rate (--rate N in PRODUCE_ARGS) and produce-1k to run: the latency this disk
# allows for the same bytes per second over as many files as partitions, written and fdatasynced
# with no broker in between (log_bench floor), measured after the scenarios (see below). acks=all
# latency cannot go below it; it varies with the disk's state far more than the broker does.
# Each write is 4 ms of the rate, about one produce request: librdkafka's defaults (sticky
# partitioner, linger 5 ms) sent 735 records a request on average at 200,000 msg/s.
latency_floor() {
    local rate=$fixed_rate
    case " $scenarios " in *" produce-1k "*) ;; *) return ;; esac
    [ -n "$rate" ] || return
    if [ ! -x "$log_bench" ]; then
        echo "== disk latency floor: skipped, $log_bench is not built"
        return
    fi
    local secs=$((messages_1k / rate))
    [ "$secs" -ge 1 ] || secs=1
    [ "$secs" -le "$duration" ] || secs=$duration
    local mb write_kib=$((rate * 4 / 1000))
    [ "$write_kib" -ge 1 ] || write_kib=1
    mb=$(awk -v r="$rate" 'BEGIN { printf "%.3f", r * 1024 / 1048576 }')
    echo "== disk latency floor: $rate KiB a second over $partitions files, no broker"
    timeout -k 10 $((secs + 60)) "$log_bench" floor "$root" "$partitions" "$mb" "$secs" \
        "$write_kib" 2>&1 |
        sed 's/^== floor: /   /'
}

# Waits until the disk is quiet: a probe appends 64 KiB and fdatasyncs it every 50 ms, and the
# disk is quiet once QUIET_S seconds of probes all took under QUIET_MS. On this project's VM
# (ext4 mounted with `discard`) deleting the gigabytes of a run before stalled single syncs for
# about 100 ms every 2-3 s over the next 15 s, which a scenario started then measured instead
# of the broker (and a dd then measured a slower disk than the broker would meet). The probe
# file stays until the run's end, like dd's.
disk_quiet() {
    [ "${QUIET_MS:-10}" != 0 ] || return 0
    timeout -k 5 $((${QUIET_MAX_S:-90} + 30)) python3 - "$root/quiet.probe" "${QUIET_MS:-10}" \
        "${QUIET_S:-5}" "${QUIET_MAX_S:-90}" <<'PY'
import os, sys, time
path, quiet_ms, quiet_s, max_s = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
block = b"\0" * 65536
start = time.monotonic()
since = start  # the start of the current run of quiet probes
slow, highest = 0, 0.0
while True:
    t0 = time.monotonic()
    os.write(fd, block)
    os.fdatasync(fd)
    t1 = time.monotonic()
    ms = (t1 - t0) * 1000
    if ms >= quiet_ms:
        slow += 1
        highest = max(highest, ms)
        since = t1
    if t1 - since >= quiet_s:
        print("== disk quiet after %.1f s (%d probe syncs of %.0f ms or more before, the slowest %.0f ms)"
              % (t1 - start, slow, quiet_ms, highest))
        break
    if t1 - start >= max_s:
        print("== disk not quiet after %.0f s (%d probe syncs of %.0f ms or more, the slowest %.0f ms); measuring anyway"
              % (max_s, slow, quiet_ms, highest))
        break
    time.sleep(max(0.0, 0.05 - (time.monotonic() - t0)))
os.close(fd)
PY
}

# report NAME SIDE CHECK TARGET STATUS CPU-TICKS CLIENT-TICKS MACHINE-TICKS IDLE-TICKS: prints
# the figures of $root/NAME.json (side "produce" or "consume"), the broker's CPU per GB, the
# client's CPU and how idle the machine was (near 0%: CPU-bound, client and broker together),
# the MB/s of a produce scenario judged by MB/s against dd's, and whether figure CHECK reached
# TARGET.
report() {
    python3 - "$root/$1.json" "$2" "$3" "$4" "$5" "$6" "$ticks" "$7" "$8" "$9" "${dd_mb_s:-}" \
        <<'PY'
import json, sys
path, side, check, target, status, cpu_ticks, ticks = sys.argv[1:8]
client_ticks, machine_ticks, idle_ticks, dd_mb_s = sys.argv[8:12]
try:
    j = json.load(open(path))
except (OSError, ValueError):
    print("   no summary (chronik-bench exit status %s)" % status)
    sys.exit(1)
s = j[side]
gb = s["bytes"] / 1e9
cpu = int(cpu_ticks) / int(ticks)
lat = s["latency_ms"]
print("   %d messages, %d bytes in %.3f s: %.0f msg/s, %.2f MB/s" %
      (s["messages"], s["bytes"], s["elapsed_s"], s["msg_per_s"], s["mb_per_s"]))
if lat:
    print("   latency ms: p50 %.3f  p99 %.3f  p999 %.3f  max %.3f" %
          (lat["p50"], lat["p99"], lat["p999"], lat["max"]))
steady = s.get("steady_latency_ms")
if steady:
    print("   after the first %d s: p50 %.3f  p99 %.3f  p999 %.3f  max %.3f" %
          (s["warmup_s"], steady["p50"], steady["p99"], steady["p999"], steady["max"]))
print("   broker CPU: %.2f s, %s s per GB" % (cpu, "%.3f" % (cpu / gb) if gb > 0 else "n/a"))
if int(machine_ticks) > 0:
    print("   client CPU: %.2f s; machine idle %.0f%%" %
          (int(client_ticks) / int(ticks), 100.0 * int(idle_ticks) / int(machine_ticks)))
if side == "produce" and check == "mb_per_s" and dd_mb_s:
    print("   against dd: %.0f%% of its %.2f MB/s" % (100.0 * s["mb_per_s"] / float(dd_mb_s),
                                                     float(dd_mb_s)))
value = s[check]
met = value >= float(target)
print("   target %s >= %s: %s (%.1f)" % (check, target, "met" if met else "MISSED", value))
if not j["ok"]:
    print("   run FAILED: see the log next to %s" % path)
    sys.exit(1)
sys.exit(0 if met else 2)
PY
    case $? in
    0) ;;
    2) missed=$((missed + 1)) ;;
    *) failures=$((failures + 1)) ;;
    esac
}

# scenario NAME SIDE CHECK TARGET CHRONIK-BENCH-ARGS...
scenario() {
    local name=$1 side=$2 check=$3 target=$4
    shift 4
    case " $scenarios " in
    *" $name "*) ;;
    *) return ;;
    esac
    echo "== $name"
    local before after status client_before client_after machine_before machine_after
    before=$(broker_cpu_ticks)
    client_before=$(client_cpu_ticks)
    machine_before=$(machine_ticks)
    # chronik-bench stops on SIGINT and reports; the KILL is for a client that hangs anyway.
    timeout -s INT -k 30 $((duration + 120)) \
        "$bench" "$@" --brokers "127.0.0.1:$port" --json >"$root/$name.json" 2>"$root/$name.log"
    status=$?
    if ! kill -0 "$broker_pid" 2>/dev/null; then
        echo "   the broker died; its log ends with:"
        tail -n 20 "$root/chronik.log" | sed 's/^/    /'
        failures=$((failures + 1))
        exit 1
    fi
    after=$(broker_cpu_ticks)
    client_after=$(client_cpu_ticks)
    machine_after=$(machine_ticks)
    report "$name" "$side" "$check" "$target" "$status" $((after - before)) \
        $((client_after - client_before)) \
        $((${machine_after% *} - ${machine_before% *})) \
        $((${machine_after#* } - ${machine_before#* }))
}

start_broker
echo "$("$chronik" --version 2>/dev/null | head -n 1) on 127.0.0.1:$port, pid $broker_pid, data in $root/data"
# With a fixed rate the disk's own figures come after the scenarios. Written just before, the
# floor's gigabytes into new blocks (and dd's) kept this project's VM busy for seconds more even
# once the probe found the disk quiet: on 2026-12-07 a fresh broker at half of full speed then
# had a 10 s p99 of 98-207 ms in four of five runs (its first 2 s), against 8.6-9.3 ms with
# nothing written before.
disk_quiet
if [ -z "$fixed_rate" ]; then
    disk_figure
    disk_quiet
fi

# shellcheck disable=SC2086 # PRODUCE_ARGS is a list of options
scenario produce-1k produce mb_per_s 300 produce --topic bench-1k --partitions "$partitions" \
    --record-size 1024 --acks all --messages "$messages_1k" --duration "$duration" $produce_args
# shellcheck disable=SC2086
scenario produce-100 produce msg_per_s 500000 produce --topic bench-100 \
    --partitions "$partitions" --record-size 100 --acks all --messages "$messages_100" \
    --duration "$duration" $produce_args
# No --duration: it reads to the end of each partition (the timeout above still bounds it).
scenario consume-1k consume mb_per_s 1024 consume --topic bench-1k

if [ -n "$fixed_rate" ]; then
    disk_quiet
    disk_figure
    latency_floor
fi
stop_broker
echo "== result: $failures failed, $missed targets missed"
[ "$failures" -eq 0 ] || exit 1
[ "$missed" -eq 0 ] || exit 2
exit 0
