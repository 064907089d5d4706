"""kcat 1.7.1 (Debian kcat, librdkafka 2.0.2 with gzip, snappy, lz4 and zstd) against chronik.

kcat has no admin commands: topics are created by producing to them (auto-creation through
the producer's Metadata request) and deleted with confluent-kafka's admin client, which runs on
the same librdkafka. Everything else goes through the kcat command line: produce with keys,
headers, null values (-Z), each codec (-z) and a file of exactly message.max.bytes; consume
with -o beginning, end, an offset, a relative offset from the end, and s@timestamp; -L lists
metadata. One broker serves the module.
"""

import json
import subprocess
import time

import pytest
from confluent_kafka.admin import AdminClient

import helpers
from conftest import MESSAGE_MAX_BYTES

TIMEOUT_S = 30


def kcat(broker, *args, stdin=b"", timeout=TIMEOUT_S):
    proc = subprocess.run(["kcat", "-b", broker.bootstrap] + list(args), input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    assert proc.returncode == 0, "kcat %s failed (%d): %s" % (
        " ".join(args), proc.returncode, proc.stderr.decode("utf-8", "replace"))
    return proc


def produce(broker, topic, msgs, *args):
    """Produces "key:value" lines; -Z turns empty values into nulls."""
    lines = b"".join(m["key"] + b":" + (m["value"] or b"") + b"\n" for m in msgs)
    proc = kcat(broker, "-P", "-t", topic, "-p", "0", "-K", ":", "-X", "acks=all", *args,
                stdin=lines)
    assert b"failed" not in proc.stderr.lower(), proc.stderr


def consume(broker, topic, *args):
    """Consumes partition 0 to its end with JSON output; returns the decoded records."""
    proc = kcat(broker, "-C", "-t", topic, "-p", "0", "-e", "-J", *args)
    recs = []
    for line in proc.stdout.decode().splitlines():
        j = json.loads(line)
        h = j.get("headers") or []
        recs.append({
            "key": None if j["key"] is None else j["key"].encode(),
            "value": None if j["payload"] is None else j["payload"].encode(),
            "headers": [(h[i], h[i + 1].encode()) for i in range(0, len(h), 2)],
            "ts": j["ts"],
            "offset": j["offset"],
        })
    return recs


def metadata(broker):
    proc = kcat(broker, "-L", "-J")
    return {t["topic"]: t for t in json.loads(proc.stdout)["topics"]}


def delete_topic(broker, topic):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.delete_topics([topic], operation_timeout=TIMEOUT_S)[topic].result(timeout=TIMEOUT_S)


def test_produce_consume_metadata_delete(module_broker, topic):
    msgs = helpers.text_messages(topic)
    produce(module_broker, topic, msgs)
    md = metadata(module_broker)
    assert topic in md
    assert [p["partition"] for p in md[topic]["partitions"]] == [0]
    got = consume(module_broker, topic, "-o", "beginning")
    helpers.assert_same_records(got, msgs, check_ts=False)
    assert [g["offset"] for g in got] == list(range(len(msgs)))
    delete_topic(module_broker, topic)
    assert topic not in metadata(module_broker)


def test_headers_and_null_values(module_broker, topic):
    msgs = [{"key": b"k%d" % i, "value": None if i % 3 == 0 else b"v%d" % i,
             "headers": [("trace", b"t-1"), ("empty", b""), ("trace", b"t-2")], "ts": None}
            for i in range(12)]
    produce(module_broker, topic, msgs, "-Z", "-H", "trace=t-1", "-H", "empty=", "-H",
            "trace=t-2")
    helpers.assert_same_records(consume(module_broker, topic, "-o", "beginning"), msgs)


@pytest.mark.parametrize("codec", helpers.CODECS)
def test_codec(module_broker, topic, codec):
    msgs = helpers.text_messages(topic, 200)
    produce(module_broker, topic, msgs[:100], "-z", codec)
    produce(module_broker, topic, msgs[100:], "-z", codec)
    helpers.assert_same_records(consume(module_broker, topic, "-o", "beginning"), msgs)
    got = consume(module_broker, topic, "-o", "150")
    helpers.assert_same_records(got, msgs[150:])
    assert got[0]["offset"] == 150


def test_file_of_message_max_bytes(module_broker, topic, tmp_path):
    # kcat -P with file arguments sends each file as one message without key.
    n = helpers.value_bytes_for_batch(MESSAGE_MAX_BYTES, None)
    data = (b"0123456789abcdef" * (n // 16 + 1))[:n]
    path = tmp_path / "big"
    path.write_bytes(data)
    kcat(module_broker, "-P", "-t", topic, "-p", "0", "-X", "acks=all", "-X",
         "message.max.bytes=%d" % (2 * MESSAGE_MAX_BYTES), str(path))
    got = consume(module_broker, topic, "-o", "beginning")
    assert len(got) == 1 and got[0]["key"] is None and got[0]["value"] == data


def test_offsets_end_relative_and_given(module_broker, topic):
    msgs = helpers.text_messages(topic, 30)
    produce(module_broker, topic, msgs)
    helpers.assert_same_records(consume(module_broker, topic, "-o", "-4"), msgs[-4:])
    helpers.assert_same_records(consume(module_broker, topic, "-o", "7"), msgs[7:])
    assert consume(module_broker, topic, "-o", "end") == []


def test_consume_from_latest_sees_only_new(module_broker, topic):
    produce(module_broker, topic, helpers.text_messages(topic + "old", 10))
    new = helpers.text_messages(topic + "new", 3)
    proc = subprocess.Popen(
        ["kcat", "-b", module_broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "end", "-c",
         str(len(new)), "-J"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # kcat reports reaching the partition's end before we produce: the "end" it resolved
        # is the offset before the new records.
        line = b""
        deadline = time.monotonic() + TIMEOUT_S
        while b"Reached end" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "kcat exited early"
        assert b"at offset 10" in line, line
        produce(module_broker, topic, new)
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    got = [json.loads(line) for line in out.decode().splitlines()]
    assert [(g["offset"], g["key"], g["payload"]) for g in got] == [
        (10 + i, m["key"].decode(), m["value"].decode()) for i, m in enumerate(new)]


def test_consume_from_timestamp(module_broker, topic):
    first = helpers.text_messages(topic + "1", 8)
    second = helpers.text_messages(topic + "2", 8)
    produce(module_broker, topic, first)
    # Broker-assigned create times are in ms: a pause makes the second run strictly later.
    time.sleep(0.05)
    produce(module_broker, topic, second)
    all_recs = consume(module_broker, topic, "-o", "beginning")
    ts_second = all_recs[8]["ts"]
    assert ts_second > max(r["ts"] for r in all_recs[:8])
    got = consume(module_broker, topic, "-o", "s@%d" % ts_second)
    helpers.assert_same_records(got, second, check_ts=False)
    assert got[0]["offset"] == 8
    # A timestamp inside the first run starts at the first record at or after it.
    mid = all_recs[3]["ts"]
    want = min(i for i, r in enumerate(all_recs) if r["ts"] >= mid)
    assert consume(module_broker, topic, "-o", "s@%d" % mid)[0]["offset"] == want


def test_librdkafka_features():
    # The codecs the tests above use are all compiled into this librdkafka.
    out = subprocess.run(["kcat", "-V"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=TIMEOUT_S).stdout.decode()
    for codec in helpers.CODECS:
        assert codec in out.split("builtin.features=")[1].split(")")[0].split(",")
