#!/bin/sh
# Tests of the chronik command line: --help, --version, --print-config with every source of
# configuration, bad values and bad options, and the start-up line of a valid configuration.
# Usage: test_cli.sh PATH-TO-CHRONIK. Prints one line per failed check; exits 1 if any failed.
set -u

chronik=${1:?usage: test_cli.sh PATH-TO-CHRONIK}
work=$(mktemp -d "${TMPDIR:-/tmp}/chronik-cli.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
failures=0
checks=0

fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# run ARGS...: runs chronik; its stdout, stderr and exit status go to $out, $err and $status.
out=$work/stdout
err=$work/stderr
status=0
run() {
    "$chronik" "$@" >"$out" 2>"$err"
    status=$?
}

expect_status() { # expect_status N WHAT
    checks=$((checks + 1))
    [ "$status" -eq "$1" ] || fail "$2: exit status $status, expected $1; stderr: $(cat "$err")"
}

expect_in() { # expect_in FILE TEXT WHAT
    checks=$((checks + 1))
    grep -qF -e "$2" "$1" || fail "$3: '$2' not in $(basename "$1"): $(cat "$1")"
}

expect_line() { # expect_line FILE LINE WHAT
    checks=$((checks + 1))
    grep -qxF -e "$2" "$1" || fail "$3: no line '$2' in $(basename "$1"): $(cat "$1")"
}

expect_empty() { # expect_empty FILE WHAT
    checks=$((checks + 1))
    [ ! -s "$1" ] || fail "$2: $(basename "$1") not empty: $(cat "$1")"
}

# --help lists every flag and where the docs are.
run --help
expect_status 0 "--help"
for flag in --config --set --data-dir --port --node-id --print-config --help --version; do
    expect_in "$out" "$flag" "--help lists $flag"
done
expect_in "$out" "docs/configuration.md" "--help names the docs"
run -h
expect_status 0 "-h"

# --version.
run --version
expect_status 0 "--version"
checks=$((checks + 1))
grep -qE '^chronik [0-9]+\.[0-9]+\.[0-9]+$' "$out" || fail "--version printed: $(cat "$out")"

# --print-config with nothing else: the defaults.
run --print-config
expect_status 0 "--print-config"
expect_line "$out" "node.id=1" "default node.id"
expect_line "$out" "log.dirs=./data" "default log.dirs"
expect_line "$out" "listeners=PLAINTEXT://127.0.0.1:9092" "default listeners"
expect_line "$out" "http.port=10092" "default http.port"
expect_line "$out" "cluster.port=11092" "default cluster.port"
expect_line "$out" "controller.quorum.voters=" "default controller.quorum.voters: standalone"
expect_line "$out" "broker.rack=" "default broker.rack: none"
expect_line "$out" "log.retention.ms=604800000" "default retention"
expect_empty "$err" "--print-config defaults"

# --config and --set: --set wins, synonyms resolve, unknown keys warn and are ignored.
cat >"$work/a.properties" <<'PROPS'
# A Kafka-style file.
node.id = 5
num.partitions: 3
log.retention.hours=1
log.dirs=/var/lib/\
         chronik
foo.bar=1
PROPS
run --config "$work/a.properties" --set num.partitions=4 --print-config
expect_status 0 "--config and --set"
expect_line "$out" "node.id=5" "node.id from --config"
expect_line "$out" "num.partitions=4" "--set over --config"
expect_line "$out" "log.retention.ms=3600000" "log.retention.hours from --config"
expect_line "$out" "log.dirs=/var/lib/chronik" "continuation line in --config"
expect_in "$err" "unknown configuration key 'foo.bar'" "unknown key warning"
expect_in "$err" "a.properties line 7" "unknown key warning names the line"

# The short flags win over everything, whatever their position.
run --port 19092 --node-id 7 --data-dir "$work/data" --set node.id=6 --config "$work/a.properties" --print-config
expect_status 0 "short flags"
expect_line "$out" "node.id=7" "--node-id"
expect_line "$out" "log.dirs=$work/data" "--data-dir"
expect_line "$out" "listeners=PLAINTEXT://127.0.0.1:19092" "--port"
expect_line "$out" "advertised.listeners=PLAINTEXT://127.0.0.1:19092" "--port advertised"
expect_line "$out" "http.port=20092" "http.port derived from --port"
expect_line "$out" "cluster.port=21092" "cluster.port derived from --port"

# The printed configuration loads back to itself.
run --set "log.dirs= /odd path\\#x " --set log.retention.minutes=3 --port=19500 --print-config
expect_status 0 "odd values"
cp "$out" "$work/printed.properties"
run --config "$work/printed.properties" --print-config
expect_status 0 "reloading printed config"
checks=$((checks + 1))
cmp -s "$out" "$work/printed.properties" || fail "printed config does not reload to itself"
expect_line "$out" "log.retention.ms=180000" "reloaded retention"

# Bad values exit 1 naming the key and the value, and print nothing on stdout.
run --set num.partitions=abc --print-config
expect_status 1 "bad --set value"
expect_in "$err" "num.partitions" "bad value names the key"
expect_in "$err" "'abc'" "bad value names the value"
expect_in "$err" "from 1 to 10000" "bad value says what is allowed"
expect_empty "$out" "bad value"
printf 'node.id=1\nmessage.max.bytes=10\n' >"$work/bad.properties"
run --config "$work/bad.properties"
expect_status 1 "bad file value"
expect_in "$err" "message.max.bytes" "bad file value names the key"
expect_in "$err" "bad.properties line 2" "bad file value names the line"
run --set listeners=SSL://localhost:9093
expect_status 1 "bad listener"
expect_in "$err" "listeners" "bad listener names the key"
run --port 70000
expect_status 1 "bad --port"
expect_in "$err" "--port" "bad --port names the flag"
run --set auto.create.topics.enable=yes
expect_status 1 "bad boolean"
expect_in "$err" "auto.create.topics.enable" "bad boolean names the key"

# Bad command lines exit 1.
run --bogus
expect_status 1 "unknown option"
expect_in "$err" "--bogus" "unknown option is named"
run --set
expect_status 1 "missing value"
run stray
expect_status 1 "stray argument"
run --config "$work/missing.properties"
expect_status 1 "missing config file"
expect_in "$err" "missing.properties" "missing config file is named"

# A valid configuration starts the broker: one start-up line, then it serves until SIGTERM and
# exits 0 after a clean shutdown, leaving its metadata in the data directory.
port=$((20000 + $$ % 20000))
"$chronik" --node-id 3 --port "$port" --data-dir "$work/data" >"$out" 2>"$err" &
pid=$!
i=0
while [ $i -lt 100 ] && ! grep -q "chronik node" "$out"; do
    sleep 0.05
    i=$((i + 1))
done
expect_line "$out" "chronik node 3: kafka PLAINTEXT://127.0.0.1:$port (advertised as 127.0.0.1:$port), http 127.0.0.1:$((port + 1000)), cluster 127.0.0.1:$((port + 2000)), data dir $work/data" "start-up line"
kill -TERM "$pid"
wait "$pid"
status=$?
expect_status 0 "clean shutdown after SIGTERM"
checks=$((checks + 1))
[ -d "$work/data/__cluster_metadata-0" ] || fail "no metadata log (__cluster_metadata-0) in the data directory"

echo "test_cli: $checks checks, $failures failed"
[ "$failures" -eq 0 ]
