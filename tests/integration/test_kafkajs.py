"""kafkajs 2.2.4 (npm, tests/integration/package-lock.json) against chronik.

Each step runs kafkajs_driver.js under node with one JSON command. Covers kafkajs's admin
client (createTopics, listTopics and fetchTopicMetadata, deleteTopics, fetchTopicOffsets and
fetchTopicOffsetsByTimestamp), its producer (keys, headers with repeated keys and null values,
null values, explicit timestamps, a batch of exactly message.max.bytes and one byte over), and
reads from earliest, latest, a given offset and a timestamp. Codecs: kafkajs has gzip built in
and snappy from kafkajs-snappy; its lz4 and zstd codecs are separate packages with native
add-ons that the suite does not build, so those two are covered by the other clients only.
kafkajs has no assign(): see kafkajs_driver.js for how reads work without a consumer group.
"""

import base64
import json
import os
import subprocess

import pytest

import helpers
from conftest import MESSAGE_MAX_BYTES

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(HERE, "kafkajs_driver.js")
TIMEOUT_S = 60
KAFKAJS_CODECS = ["gzip", "snappy"]


def b64(b):
    return None if b is None else base64.b64encode(b).decode()


def unb64(s):
    return None if s is None else base64.b64decode(s)


def driver(broker, **cmd):
    proc = subprocess.run(["node", DRIVER, broker.bootstrap], input=json.dumps(cmd).encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT_S,
                          cwd=HERE)
    assert proc.returncode == 0, "node failed (%d): %s" % (proc.returncode, proc.stderr.decode())
    return json.loads(proc.stdout)


def ok(broker, **cmd):
    out = driver(broker, **cmd)
    assert "error" not in out, "kafkajs %s: %s" % (cmd["op"], out)
    return out["result"]


def create_topic(broker, topic, partitions=1):
    assert ok(broker, op="create", topic=topic, partitions=partitions) is True


def produce(broker, topic, msgs, partition=0, codec="none"):
    """Sends msgs in one producer.send call; returns the base offset the broker assigned."""
    res = ok(broker, op="produce", topic=topic, partition=partition, codec=codec, messages=[
        {"key": b64(m["key"]), "value": b64(m["value"]),
         "headers": [[k, b64(v)] for k, v in m["headers"]], "ts": m["ts"]} for m in msgs])
    assert len(res) == 1 and res[0]["errorCode"] == 0, res
    return res[0]["baseOffset"]


def samples(salt, count=40):
    # kafkajs's producer cannot encode a null header value (it calls Buffer.from on it).
    return helpers.sample_messages(salt, count, null_header_values=False)


def grouped_headers(headers):
    """Headers as kafkajs exposes them: repeated keys gathered under the key's first place."""
    order = []
    for k, _ in headers:
        if k not in order:
            order.append(k)
    return [(k, v) for key in order for k, v in headers if k == key]


def fetch(broker, topic, offset, end, partition=0):
    res = ok(broker, op="fetch", topic=topic, partition=partition, offset=offset, end=end)
    return [{"key": unb64(r["key"]), "value": unb64(r["value"]),
             "headers": [(k, unb64(v)) for k, v in r["headers"]], "ts": r["ts"],
             "offset": r["offset"]} for r in res]


def expect(msgs):
    return [dict(m, headers=grouped_headers(m["headers"])) for m in msgs]


def watermarks(broker, topic):
    return {p["partition"]: (p["low"], p["high"]) for p in ok(broker, op="offsets", topic=topic,
                                                              at="watermarks")}


def test_admin_create_metadata_delete(module_broker, topic):
    create_topic(module_broker, topic, partitions=3)
    md = ok(module_broker, op="metadata", topic=topic)
    assert topic in md["topics"]
    assert md["described"] == [{"name": topic, "partitions": [0, 1, 2]}]
    # kafkajs turns TOPIC_ALREADY_EXISTS for every topic into a result of false (not created);
    # any other error code would surface as an error here.
    assert driver(module_broker, op="create", topic=topic, partitions=3) == {"result": False}
    for part in range(3):
        assert produce(module_broker, topic, samples("p%d" % part, 3),
                       partition=part) == 0
    assert watermarks(module_broker, topic) == {0: (0, 3), 1: (0, 3), 2: (0, 3)}
    assert ok(module_broker, op="delete", topic=topic) is True
    assert topic not in ok(module_broker, op="metadata")["topics"]


def test_produce_fetch_earliest(module_broker, topic):
    create_topic(module_broker, topic)
    msgs = samples(topic)
    assert produce(module_broker, topic, msgs[:25]) == 0
    assert produce(module_broker, topic, msgs[25:]) == 25
    low, high = watermarks(module_broker, topic)[0]
    assert (low, high) == (0, len(msgs))
    got = fetch(module_broker, topic, low, high)
    helpers.assert_same_records(got, expect(msgs))
    assert [g["offset"] for g in got] == list(range(len(msgs)))


@pytest.mark.parametrize("codec", KAFKAJS_CODECS)
def test_codec(module_broker, topic, codec):
    create_topic(module_broker, topic)
    msgs = samples(topic, 60)
    assert produce(module_broker, topic, msgs[:30], codec=codec) == 0
    assert produce(module_broker, topic, msgs[30:], codec=codec) == 30
    helpers.assert_same_records(fetch(module_broker, topic, 0, 60), expect(msgs))
    helpers.assert_same_records(fetch(module_broker, topic, 41, 60), expect(msgs[41:]))


def test_record_up_to_message_max_bytes(module_broker, topic):
    create_topic(module_broker, topic)
    key = b"big"
    n = helpers.value_bytes_for_batch(MESSAGE_MAX_BYTES, key)
    big = {"key": key, "value": bytes(range(256)) * (n // 256) + b"q" * (n % 256),
           "headers": [], "ts": helpers.TS_BASE_MS}
    assert produce(module_broker, topic, [big]) == 0
    over = dict(big, value=big["value"] + b"!")
    out = driver(module_broker, op="produce", topic=topic, partition=0, codec="none", messages=[
        {"key": b64(over["key"]), "value": b64(over["value"]), "headers": [], "ts": over["ts"]}])
    assert out.get("type") == "MESSAGE_TOO_LARGE", out
    helpers.assert_same_records(fetch(module_broker, topic, 0, 1), [big])
    assert watermarks(module_broker, topic)[0] == (0, 1)


def test_latest_then_new_records(module_broker, topic):
    create_topic(module_broker, topic)
    produce(module_broker, topic, samples(topic + "a", 10))
    latest = watermarks(module_broker, topic)[0][1]
    assert latest == 10
    new = samples(topic + "b", 4)
    assert produce(module_broker, topic, new) == latest
    got = fetch(module_broker, topic, latest, latest + 4)
    helpers.assert_same_records(got, expect(new))
    assert [g["offset"] for g in got] == [10, 11, 12, 13]


def test_fetch_from_offset(module_broker, topic):
    create_topic(module_broker, topic)
    msgs = samples(topic, 30)
    produce(module_broker, topic, msgs)
    for start in (1, 17, 29):
        helpers.assert_same_records(fetch(module_broker, topic, start, 30), expect(msgs[start:]))


def test_offsets_by_timestamp(module_broker, topic):
    create_topic(module_broker, topic)
    msgs = samples(topic, 20)
    produce(module_broker, topic, msgs[:10])
    produce(module_broker, topic, msgs[10:], codec="gzip")
    for ts, want in [(helpers.TS_BASE_MS - 5, 0), (helpers.TS_BASE_MS + 6000, 6),
                     (helpers.TS_BASE_MS + 10500, 11), (helpers.TS_BASE_MS + 19000, 19),
                     # After the last record kafkajs substitutes the high watermark.
                     (helpers.TS_BASE_MS + 30000, 20)]:
        res = ok(module_broker, op="offsets", topic=topic, at="timestamp", ts=ts)
        assert res == [{"partition": 0, "offset": want}], "timestamp %d: %r" % (ts, res)
    start = ok(module_broker, op="offsets", topic=topic, at="timestamp",
               ts=helpers.TS_BASE_MS + 12000)[0]["offset"]
    helpers.assert_same_records(fetch(module_broker, topic, start, 20), expect(msgs[12:]))


def test_producer_auto_create(module_broker, topic):
    res = ok(module_broker, op="produce", topic=topic, partition=0, codec="none", autoCreate=True,
             messages=[{"key": None, "value": b64(b"x"), "headers": [], "ts": None}])
    assert res[0]["baseOffset"] == 0
    assert topic in ok(module_broker, op="metadata")["topics"]
