#!/usr/bin/env bash
# Captures golden request frames from real Kafka clients talking to chronik.
#
# For each client (kcat, confluent-kafka, kafka-python, kafkajs) it starts a fresh broker on a
# free port, records the loopback traffic with tshark while the client creates a topic by
# metadata, produces, looks up offsets and fetches, then reassembles each client-to-broker TCP
# stream, cuts it into frames at the 4-byte size prefixes, and writes the first request of each
# (API, version) among ApiVersions, Metadata, Produce, Fetch and ListOffsets to
# <client>/<api>_v<N>.bin: the raw request (header and body) after the size prefix.
#
# Usage: tests/golden/clients/capture.sh [PATH-TO-CHRONIK]   (default build/release/chronik)
# Needs tshark (Debian package tshark; root or the wireshark group to capture on lo), kcat,
# python3-confluent-kafka, python3-kafka and the integration tests' kafkajs (npm ci).
# Rewrites the .bin files of every client. Between runs, correlation ids may shift (they count
# the requests before on the same connection) and kcat's record timestamps (and so its batch
# CRC) change: commit a rerun when a client or the session changed, not for those.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
chronik=${1:-$repo/build/release/chronik}
it_dir=$repo/tests/integration
py=/usr/bin/python3

command -v tshark >/dev/null || {
    echo "capture.sh: tshark not found (apt-get install tshark)" >&2
    exit 1
}
[ -x "$chronik" ] || {
    echo "capture.sh: no chronik binary at $chronik" >&2
    exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/chronik-capture.XXXXXX")
broker_pid=
tshark_pid=
cleanup() {
    [ -n "$tshark_pid" ] && kill "$tshark_pid" 2>/dev/null && wait "$tshark_pid" 2>/dev/null
    [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

start_broker() { # start_broker NAME: sets $port and $broker_pid
    port=$(free_port)
    "$chronik" --port "$port" --data-dir "$work/$1-data" \
        --set "http.port=$(free_port)" --set "cluster.port=$(free_port)" \
        >"$work/$1-broker.out" 2>"$work/$1-broker.err" &
    broker_pid=$!
    for _ in $(seq 200); do
        grep -qs "chronik node" "$work/$1-broker.out" && return 0
        kill -0 "$broker_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "capture.sh: broker did not start:" >&2
    cat "$work/$1-broker.err" >&2
    exit 1
}

stop_broker() {
    kill -TERM "$broker_pid"
    wait "$broker_pid" || true
    broker_pid=
}

start_tshark() { # start_tshark NAME: captures tcp port $port into $work/NAME.pcap
    tshark -i lo -f "tcp port $port" -w "$work/$1.pcap" >"$work/$1-tshark.err" 2>&1 &
    tshark_pid=$!
    for _ in $(seq 200); do
        if grep -qs "Capturing on" "$work/$1-tshark.err"; then
            # tshark reports before its first packets are surely taken: give it a moment.
            sleep 1
            return 0
        fi
        sleep 0.05
    done
    echo "capture.sh: tshark did not start:" >&2
    cat "$work/$1-tshark.err" >&2
    exit 1
}

stop_tshark() {
    sleep 0.5 # let the last packets reach the capture
    kill -INT "$tshark_pid"
    wait "$tshark_pid" || true
    tshark_pid=
}

session_kcat() {
    local b=127.0.0.1:$port t=golden-kcat
    printf 'k1:v1\nk2:v2\nk3:v3\n' | kcat -b "$b" -P -t "$t" -p 0 -K : -X acks=all
    kcat -b "$b" -L -t "$t" >/dev/null
    kcat -b "$b" -C -t "$t" -p 0 -o beginning -e -q >/dev/null
    kcat -b "$b" -C -t "$t" -p 0 -o -1 -e -q >/dev/null
}

session_confluent_kafka() {
    "$py" - "127.0.0.1:$port" <<'EOF'
import sys
import confluent_kafka as ck
b, t = sys.argv[1], "golden-confluent-kafka"
# A long linger puts the three records in one batch on every run.
p = ck.Producer({"bootstrap.servers": b, "acks": "all", "enable.idempotence": False,
                 "linger.ms": 200})
for i in range(3):
    p.produce(t, key=b"k%d" % i, value=b"v%d" % i, partition=0, headers=[("h", b"x")],
              timestamp=1700000000000 + i)
assert p.flush(10) == 0
c = ck.Consumer({"bootstrap.servers": b, "group.id": "golden", "enable.auto.commit": False,
                 "enable.partition.eof": True})
c.offsets_for_times([ck.TopicPartition(t, 0, 1700000000001)], timeout=10)
c.get_watermark_offsets(ck.TopicPartition(t, 0), timeout=10)
c.assign([ck.TopicPartition(t, 0, ck.OFFSET_BEGINNING)])
for _ in range(100):
    m = c.poll(0.1)
    if m is not None and m.error() and m.error().code() == ck.KafkaError._PARTITION_EOF:
        break
c.close()
EOF
}

session_kafka_python() {
    "$py" - "127.0.0.1:$port" <<'EOF'
import sys
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
b, t = sys.argv[1], "golden-kafka-python"
p = KafkaProducer(bootstrap_servers=b, acks="all", linger_ms=200)
for i in range(3):
    p.send(t, key=b"k%d" % i, value=b"v%d" % i, partition=0, headers=[("h", b"x")],
           timestamp_ms=1700000000000 + i)
p.flush(10)
p.close()
c = KafkaConsumer(bootstrap_servers=b, group_id=None, enable_auto_commit=False)
tp = TopicPartition(t, 0)
c.assign([tp])
c.offsets_for_times({tp: 1700000000001})
c.seek_to_beginning(tp)
c.poll(timeout_ms=1000)
c.close()
EOF
}

session_kafkajs() {
    local b=127.0.0.1:$port t=golden-kafkajs
    run_js() { (cd "$it_dir" && node kafkajs_driver.js "$b") <<<"$1" >/dev/null; }
    # One record: key "k1", value "v1", header h=x (base64 in the driver's JSON).
    run_js '{"op":"produce","topic":"'$t'","partition":0,"autoCreate":true,"messages":[
        {"key":"azE=","value":"djE=","headers":[["h","eA=="]],"ts":1700000000000}]}'
    run_js '{"op":"offsets","topic":"'$t'","at":"timestamp","ts":1700000000000}'
    run_js '{"op":"fetch","topic":"'$t'","partition":0,"offset":0,"end":1}'
}

extract() { # extract NAME PCAP PORT OUTDIR
    tshark -r "$2" -Y "tcp.dstport == $3 && tcp.len > 0" -T fields \
        -e tcp.stream -e tcp.seq -e tcp.payload >"$work/$1.fields" 2>"$work/$1-read.err" || {
        cat "$work/$1-read.err" >&2
        exit 1
    }
    "$py" - "$work/$1.fields" "$4" <<'EOF'
import os
import struct
import sys

names = {0: "produce", 1: "fetch", 2: "list_offsets", 3: "metadata", 18: "api_versions"}
streams = {}
for line in open(sys.argv[1]):
    stream, seq, payload = line.split()
    streams.setdefault(int(stream), {})[int(seq)] = bytes.fromhex(payload.replace(":", ""))
written = set()
for stream in sorted(streams):
    data = b"".join(chunk for _, chunk in sorted(streams[stream].items()))
    off = 0
    while off + 4 <= len(data):
        size = struct.unpack(">i", data[off:off + 4])[0]
        frame = data[off + 4:off + 4 + size]
        off += 4 + size
        if size < 4 or len(frame) < size:
            break
        api_key, version = struct.unpack(">hh", frame[:4])
        if api_key in names and (api_key, version) not in written:
            written.add((api_key, version))
            path = os.path.join(sys.argv[2], "%s_v%d.bin" % (names[api_key], version))
            with open(path, "wb") as f:
                f.write(frame)
            print("  %s (%d bytes)" % (path, len(frame)))
missing = set(names) - {k for k, _ in written}
if missing:
    sys.exit("%s: no request captured for: %s" % (
        sys.argv[2], ", ".join(names[k] for k in sorted(missing))))
EOF
}

for client in kcat confluent_kafka kafka_python kafkajs; do
    dir=$here/${client//_/-}
    echo "== $client"
    start_broker "$client"
    start_tshark "$client"
    "session_$client"
    stop_tshark
    stop_broker
    rm -rf "$dir"
    mkdir -p "$dir"
    extract "$client" "$work/$client.pcap" "$port" "$dir"
done
