"""kafka-python 2.0.2 (Debian python3-kafka) against chronik.

Covers its admin client (create, describe, delete), its producer (keys, headers, null values,
explicit timestamps, a batch of exactly message.max.bytes and one byte over it, and the four
codecs: gzip is built in, snappy, lz4 and zstd come from python3-snappy, python3-lz4 and
python3-zstandard), and its consumer without a group: assign() with seek_to_beginning,
seek_to_end, seek to an offset and offsets_for_times. One broker serves the module.
"""

import kafka
import kafka.errors
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.codec import has_gzip, has_lz4, has_snappy, has_zstd

import helpers
from conftest import MESSAGE_MAX_BYTES

TIMEOUT_S = 30


def admin(broker):
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)


def create_topic(broker, topic, partitions=1):
    a = admin(broker)
    try:
        resp = a.create_topics([NewTopic(topic, partitions, 1)], timeout_ms=TIMEOUT_S * 1000)
        for name, code, *_ in resp.topic_errors:
            assert (name, code) == (topic, 0)
    finally:
        a.close()


def producer(broker, **extra):
    conf = {"bootstrap_servers": broker.bootstrap, "acks": "all", "linger_ms": 5,
            "request_timeout_ms": TIMEOUT_S * 1000}
    conf.update(extra)
    return KafkaProducer(**conf)


def produce(broker, topic, msgs, partition=0, **extra):
    """Produces msgs in order and returns the offsets the broker acknowledged."""
    p = producer(broker, **extra)
    try:
        futures = [p.send(topic, key=m["key"], value=m["value"], partition=partition,
                          headers=m["headers"] or None, timestamp_ms=m["ts"]) for m in msgs]
        p.flush(TIMEOUT_S)
        return [f.get(timeout=TIMEOUT_S).offset for f in futures]
    finally:
        p.close(timeout=TIMEOUT_S)


def consumer(broker):
    # group_id=None: no group coordinator is involved; positions come from assign() and seeks.
    return KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                         enable_auto_commit=False, auto_offset_reset="none",
                         fetch_max_wait_ms=100, request_timeout_ms=TIMEOUT_S * 1000 + 1000,
                         max_partition_fetch_bytes=2 * MESSAGE_MAX_BYTES)


def samples(salt, count=40):
    # kafka-python's producer asserts that header values are bytes: it cannot send nulls.
    return helpers.sample_messages(salt, count, null_header_values=False)


def record(r):
    return {"key": r.key, "value": r.value, "headers": list(r.headers), "ts": r.timestamp,
            "offset": r.offset}


def poll_until(c, tp, end_offset):
    """Polls until the consumer's position reaches end_offset; returns the records read."""
    got = []
    for _ in range(TIMEOUT_S * 10):
        if c.position(tp) >= end_offset:
            break
        for records in c.poll(timeout_ms=100).values():
            got.extend(record(r) for r in records)
    assert c.position(tp) == end_offset, "position %d, expected %d" % (c.position(tp), end_offset)
    return got


def read(broker, topic, start, partition=0):
    """Reads from start ("earliest", "latest" or an offset) to the end offset."""
    c = consumer(broker)
    try:
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        if start == "earliest":
            c.seek_to_beginning(tp)
        elif start == "latest":
            c.seek_to_end(tp)
        else:
            c.seek(tp, start)
        end = c.end_offsets([tp])[tp]
        return poll_until(c, tp, end)
    finally:
        c.close()


def test_codec_support_of_this_build():
    assert (has_gzip(), has_snappy(), has_lz4(), has_zstd()) == (True, True, True, True)


def test_admin_create_describe_delete(module_broker, topic):
    create_topic(module_broker, topic, partitions=3)
    c = consumer(module_broker)
    try:
        assert topic in c.topics()
        assert c.partitions_for_topic(topic) == {0, 1, 2}
    finally:
        c.close()
    a = admin(module_broker)
    try:
        (desc,) = a.describe_topics([topic])
        assert desc["topic"] == topic and desc["error_code"] == 0
        assert sorted(p["partition"] for p in desc["partitions"]) == [0, 1, 2]
        with pytest.raises(kafka.errors.TopicAlreadyExistsError):
            a.create_topics([NewTopic(topic, 3, 1)], timeout_ms=TIMEOUT_S * 1000)
        for part in range(3):
            assert produce(module_broker, topic, samples("p%d" % part, 3),
                           partition=part) == [0, 1, 2]
        resp = a.delete_topics([topic], timeout_ms=TIMEOUT_S * 1000)
        assert [tuple(e[:2]) for e in resp.topic_error_codes] == [(topic, 0)]
        assert topic not in a.list_topics()
    finally:
        a.close()


def test_produce_consume_earliest(module_broker, topic):
    create_topic(module_broker, topic)
    msgs = samples(topic)
    assert produce(module_broker, topic, msgs) == list(range(len(msgs)))
    got = read(module_broker, topic, "earliest")
    helpers.assert_same_records(got, msgs)
    assert [g["offset"] for g in got] == list(range(len(msgs)))


@pytest.mark.parametrize("codec", helpers.CODECS)
def test_codec(module_broker, topic, codec):
    create_topic(module_broker, topic)
    msgs = samples(topic, 60)
    offsets = produce(module_broker, topic, msgs[:30], compression_type=codec)
    offsets += produce(module_broker, topic, msgs[30:], compression_type=codec)
    assert offsets == list(range(60))
    helpers.assert_same_records(read(module_broker, topic, "earliest"), msgs)
    helpers.assert_same_records(read(module_broker, topic, 23), msgs[23:])


def test_record_up_to_message_max_bytes(module_broker, topic):
    create_topic(module_broker, topic)
    key = b"big"
    n = helpers.value_bytes_for_batch(MESSAGE_MAX_BYTES, key)
    big = {"key": key, "value": bytes(range(256)) * (n // 256) + b"y" * (n % 256), "headers": [],
           "ts": helpers.TS_BASE_MS}
    limits = {"max_request_size": 2 * MESSAGE_MAX_BYTES, "batch_size": 0}
    assert produce(module_broker, topic, [big], **limits) == [0]
    over = dict(big, value=big["value"] + b"!")
    with pytest.raises(kafka.errors.MessageSizeTooLargeError):
        produce(module_broker, topic, [over], **limits)
    helpers.assert_same_records(read(module_broker, topic, "earliest"), [big])


def test_consume_from_latest(module_broker, topic):
    create_topic(module_broker, topic)
    produce(module_broker, topic, samples(topic + "a", 10))
    after = samples(topic + "b", 5)
    c = consumer(module_broker)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_end(tp)
        # position() resolves "latest" through ListOffsets before anything new is produced.
        assert c.position(tp) == 10
        produce(module_broker, topic, after)
        got = poll_until(c, tp, 15)
        helpers.assert_same_records(got, after)
        assert [g["offset"] for g in got] == list(range(10, 15))
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 15}
    finally:
        c.close()


def test_consume_from_offset(module_broker, topic):
    create_topic(module_broker, topic)
    msgs = samples(topic)
    produce(module_broker, topic, msgs)
    for start in (0, 1, 13, len(msgs) - 1, len(msgs)):
        got = read(module_broker, topic, start)
        helpers.assert_same_records(got, msgs[start:])
        assert [g["offset"] for g in got] == list(range(start, len(msgs)))


def test_offsets_for_times(module_broker, topic):
    create_topic(module_broker, topic)
    msgs = samples(topic, 20)
    produce(module_broker, topic, msgs[:10])
    produce(module_broker, topic, msgs[10:], compression_type="gzip")
    c = consumer(module_broker)
    try:
        tp = TopicPartition(topic, 0)
        cases = [
            (helpers.TS_BASE_MS - 1, 0),
            (helpers.TS_BASE_MS + 7000, 7),
            (helpers.TS_BASE_MS + 7500, 8),
            (helpers.TS_BASE_MS + 10000, 10),
            (helpers.TS_BASE_MS + 14500, 15),  # inside the compressed batch
            (helpers.TS_BASE_MS + 19000, 19),
        ]
        for ts, want in cases:
            found = c.offsets_for_times({tp: ts})[tp]
            assert found is not None and found.offset == want, "timestamp %d: %r, expected %d" % (
                ts, found, want)
            assert found.timestamp == helpers.TS_BASE_MS + want * 1000
        # After the last record there is no answer: kafka-python reports None.
        assert c.offsets_for_times({tp: helpers.TS_BASE_MS + 19001})[tp] is None
        c.assign([tp])
        c.seek(tp, c.offsets_for_times({tp: helpers.TS_BASE_MS + 4200})[tp].offset)
        helpers.assert_same_records(poll_until(c, tp, 20), msgs[5:])
    finally:
        c.close()


def test_metadata_auto_create(module_broker, topic):
    # Sending to an unknown topic creates it through the producer's Metadata request.
    assert produce(module_broker, topic, samples(topic, 2)) == [0, 1]
    c = consumer(module_broker)
    try:
        assert c.partitions_for_topic(topic)
    finally:
        c.close()


def test_client_version_probe(module_broker):
    # kafka-python infers the broker's version from ApiVersions; (2, 1) or later is what it
    # needs to use zstd and record headers.
    c = KafkaConsumer(bootstrap_servers=module_broker.bootstrap, group_id=None)
    try:
        assert c.config["api_version"] >= (2, 1)
    finally:
        c.close()
    assert kafka.__version__ == "2.0.2"
