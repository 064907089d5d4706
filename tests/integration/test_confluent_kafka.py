"""confluent-kafka-python (Debian python3-confluent-kafka 1.7 on librdkafka 2.0.2) against chronik.

Covers its admin client (create, describe through metadata, delete), its producer (keys,
headers, null values, explicit timestamps, a batch of exactly message.max.bytes and one byte
over it, and each of the four codecs, all of which this librdkafka build supports), and its
consumer with assign() from earliest, latest, a given offset and a timestamp
(offsets_for_times). One broker serves the whole module; each test has its own topic.
"""

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

import helpers
from conftest import MESSAGE_MAX_BYTES

TIMEOUT_S = 30


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create_topic(broker, topic, partitions=1):
    # The admin handle must outlive its futures: destroying it fails them with _DESTROY.
    a = admin(broker)
    futures = a.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=TIMEOUT_S)
    futures[topic].result(timeout=TIMEOUT_S)


def producer(broker, **extra):
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "enable.idempotence": False,
    }
    conf.update(extra)
    return ck.Producer(conf)


def produce(broker, topic, msgs, partition=0, **extra):
    """Produces msgs in order and returns their offsets from the delivery reports."""
    p = producer(broker, **extra)
    reports = [None] * len(msgs)

    def on_delivery(index):
        def cb(err, msg):
            reports[index] = (err, msg.offset() if err is None else None)
        return cb

    for i, m in enumerate(msgs):
        kwargs = {"key": m["key"], "value": m["value"], "partition": partition,
                  "on_delivery": on_delivery(i)}
        if m["headers"]:
            kwargs["headers"] = m["headers"]
        if m["ts"] is not None:
            kwargs["timestamp"] = m["ts"]
        p.produce(topic, **kwargs)
        p.poll(0)
    assert p.flush(TIMEOUT_S) == 0, "messages still queued after flush"
    for i, (err, _) in enumerate(reports):
        assert err is None, "message %d not delivered: %s" % (i, err)
    return [off for _, off in reports]


def consumer(broker, **extra):
    # librdkafka's consumer needs a group.id even when it only uses assign(); with auto-commit
    # off and explicit offsets it never asks a group coordinator for anything.
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": "chronik-it",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        "fetch.wait.max.ms": 100,
    }
    conf.update(extra)
    return ck.Consumer(conf)


def record(msg):
    headers = msg.headers() or []
    return {"key": msg.key(), "value": msg.value(), "headers": list(headers),
            "ts": msg.timestamp()[1], "offset": msg.offset()}


def consume_to_end(c, topic, partition, offset):
    """Assigns at offset and reads until partition EOF; returns the records read."""
    c.assign([ck.TopicPartition(topic, partition, offset)])
    got = []
    deadline_polls = TIMEOUT_S * 10
    while deadline_polls > 0:
        msg = c.poll(0.1)
        deadline_polls -= 1
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == ck.KafkaError._PARTITION_EOF:
                return got
            raise AssertionError("consumer error: %s" % msg.error())
        got.append(record(msg))
    raise AssertionError("no partition EOF within %d s" % TIMEOUT_S)


def read(broker, topic, offset, partition=0, **extra):
    c = consumer(broker, **extra)
    try:
        return consume_to_end(c, topic, partition, offset)
    finally:
        c.close()


def test_admin_create_metadata_delete(module_broker, topic):
    create_topic(module_broker, topic, partitions=3)
    md = admin(module_broker).list_topics(timeout=TIMEOUT_S)
    assert topic in md.topics
    assert md.topics[topic].error is None
    assert sorted(md.topics[topic].partitions) == [0, 1, 2]
    for p in md.topics[topic].partitions.values():
        assert p.leader == list(md.brokers)[0]
        assert p.error is None
    # Creating it again is refused with TOPIC_ALREADY_EXISTS.
    a = admin(module_broker)
    futures = a.create_topics([NewTopic(topic, 3, 1)])
    with pytest.raises(ck.KafkaException) as info:
        futures[topic].result(timeout=TIMEOUT_S)
    assert info.value.args[0].code() == ck.KafkaError.TOPIC_ALREADY_EXISTS

    # Each partition takes records independently.
    for part in range(3):
        assert produce(module_broker, topic, helpers.sample_messages("p%d" % part, 3),
                       partition=part) == [0, 1, 2]

    a.delete_topics([topic], operation_timeout=TIMEOUT_S)[topic].result(timeout=TIMEOUT_S)
    md = admin(module_broker).list_topics(timeout=TIMEOUT_S)
    assert topic not in md.topics


def test_produce_consume_earliest(module_broker, topic):
    create_topic(module_broker, topic)
    msgs = helpers.sample_messages(topic)
    assert produce(module_broker, topic, msgs) == list(range(len(msgs)))
    got = read(module_broker, topic, ck.OFFSET_BEGINNING)
    helpers.assert_same_records(got, msgs)
    assert [g["offset"] for g in got] == list(range(len(msgs)))


@pytest.mark.parametrize("codec", helpers.CODECS)
def test_codec(module_broker, topic, codec):
    create_topic(module_broker, topic)
    msgs = helpers.sample_messages(topic, 60)
    # Two produce calls, so the log holds more than one compressed batch.
    offsets = produce(module_broker, topic, msgs[:30], **{"compression.type": codec})
    offsets += produce(module_broker, topic, msgs[30:], **{"compression.type": codec})
    assert offsets == list(range(60))
    helpers.assert_same_records(read(module_broker, topic, ck.OFFSET_BEGINNING), msgs)
    # A consumer starting inside a compressed batch sees only the records from its offset on.
    helpers.assert_same_records(read(module_broker, topic, 17), msgs[17:])


def test_record_up_to_message_max_bytes(module_broker, topic):
    create_topic(module_broker, topic)
    key = b"big"
    n = helpers.value_bytes_for_batch(MESSAGE_MAX_BYTES, key)
    big = {"key": key, "value": bytes(helpers.rng(topic).randrange(256) for _ in range(64)) *
           (n // 64) + b"z" * (n % 64), "headers": [], "ts": helpers.TS_BASE_MS}
    # The client's own limits are raised so the broker is the one that decides.
    limits = {"message.max.bytes": 2 * MESSAGE_MAX_BYTES, "batch.num.messages": 1}
    assert produce(module_broker, topic, [big], **limits) == [0]

    over = dict(big, value=big["value"] + b"!")
    p = producer(module_broker, **limits)
    errors = []
    p.produce(topic, key=over["key"], value=over["value"], partition=0,
              on_delivery=lambda err, msg: errors.append(err))
    p.flush(TIMEOUT_S)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == ck.KafkaError.MSG_SIZE_TOO_LARGE

    got = read(module_broker, topic, ck.OFFSET_BEGINNING)
    helpers.assert_same_records(got, [big])
    # KIP-74: a fetch returns the first batch whole even when it exceeds the fetch limits.
    small = {"fetch.max.bytes": 1024, "max.partition.fetch.bytes": 1024,
             "message.max.bytes": 1000, "receive.message.max.bytes": 2 * MESSAGE_MAX_BYTES}
    got = read(module_broker, topic, ck.OFFSET_BEGINNING, **small)
    helpers.assert_same_records(got, [big])


def test_acks_0_and_acks_1(module_broker, topic):
    create_topic(module_broker, topic)
    msgs = helpers.sample_messages(topic, 30)
    # acks=0 gets no produce response, so no offsets: the records must still land, in order.
    p = producer(module_broker, acks=0)
    for m in msgs[:15]:
        p.produce(topic, key=m["key"], value=m["value"], partition=0, headers=m["headers"],
                  timestamp=m["ts"])
    assert p.flush(TIMEOUT_S) == 0
    # flush() only means sent: wait for the broker to have appended them before the acks=1
    # producer's own connection races them.
    c = consumer(module_broker)
    try:
        helpers.wait_until(lambda: c.get_watermark_offsets(ck.TopicPartition(topic, 0),
                                                           timeout=TIMEOUT_S)[1] == 15,
                           TIMEOUT_S, "the acks=0 records")
    finally:
        c.close()
    assert produce(module_broker, topic, msgs[15:], acks=1) == list(range(15, 30))
    helpers.assert_same_records(read(module_broker, topic, ck.OFFSET_BEGINNING), msgs)


def test_consume_from_latest(module_broker, topic):
    create_topic(module_broker, topic)
    before = helpers.sample_messages(topic + "a", 10)
    after = helpers.sample_messages(topic + "b", 5)
    produce(module_broker, topic, before)
    c = consumer(module_broker)
    try:
        # Reaching EOF at "latest" before producing proves the consumer resolved the end offset.
        assert consume_to_end(c, topic, 0, ck.OFFSET_END) == []
        produce(module_broker, topic, after)
        got = []
        for _ in range(TIMEOUT_S * 10):
            msg = c.poll(0.1)
            if msg is not None and not msg.error():
                got.append(record(msg))
            if len(got) == len(after):
                break
        helpers.assert_same_records(got, after)
        assert [g["offset"] for g in got] == list(range(10, 15))
    finally:
        c.close()
    low, high = consumer(module_broker).get_watermark_offsets(ck.TopicPartition(topic, 0),
                                                              timeout=TIMEOUT_S)
    assert (low, high) == (0, 15)


def test_consume_from_offset(module_broker, topic):
    create_topic(module_broker, topic)
    msgs = helpers.sample_messages(topic)
    produce(module_broker, topic, msgs)
    for start in (0, 1, 13, len(msgs) - 1, len(msgs)):
        got = read(module_broker, topic, start)
        helpers.assert_same_records(got, msgs[start:])
        assert [g["offset"] for g in got] == list(range(start, len(msgs)))


def test_offsets_for_times(module_broker, topic):
    create_topic(module_broker, topic)
    msgs = helpers.sample_messages(topic, 20)
    produce(module_broker, topic, msgs[:10])
    produce(module_broker, topic, msgs[10:])
    c = consumer(module_broker)
    try:
        cases = [
            (helpers.TS_BASE_MS - 1, 0),  # before everything: the first record
            (helpers.TS_BASE_MS, 0),
            (helpers.TS_BASE_MS + 7000, 7),  # exactly record 7's timestamp
            (helpers.TS_BASE_MS + 7500, 8),  # between 7 and 8: the first at or after it
            (helpers.TS_BASE_MS + 10000, 10),  # the first record of the second batch
            (helpers.TS_BASE_MS + 19000, 19),
            (helpers.TS_BASE_MS + 19001, -1),  # after everything: no offset (-1)
        ]
        for ts, want in cases:
            res = c.offsets_for_times([ck.TopicPartition(topic, 0, ts)], timeout=TIMEOUT_S)
            assert res[0].error is None
            assert res[0].offset == want, "timestamp %d: offset %d, expected %d" % (
                ts, res[0].offset, want)
        start = c.offsets_for_times([ck.TopicPartition(topic, 0, helpers.TS_BASE_MS + 12500)],
                                    timeout=TIMEOUT_S)[0].offset
        helpers.assert_same_records(consume_to_end(c, topic, 0, start), msgs[13:])
    finally:
        c.close()


def test_auto_create_by_metadata(module_broker, topic):
    # A producer's metadata request for an unknown topic creates it (auto.create.topics.enable).
    assert produce(module_broker, topic, helpers.sample_messages(topic, 3)) == [0, 1, 2]
    md = admin(module_broker).list_topics(topic=topic, timeout=TIMEOUT_S)
    assert md.topics[topic].error is None
    assert len(md.topics[topic].partitions) >= 1
