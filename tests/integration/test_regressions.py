"""Numbered regression tests, one per broker bug the integration suite found.

Each test names the bug, how it showed, and reproduces it with the smallest sequence of real
requests. Some bugs are memory errors that a release build may survive silently: they fail for
certain against the ASan build (CHRONIK_BIN=build/asan/chronik), where the broker aborts.
"""

import gzip
import socket
import subprocess
import time

import confluent_kafka as ck
import lz4.frame
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from conftest import CHRONIK_BIN, free_ports
import helpers
from kafka_wire import (batch_of, exchange, fetch_v4, fetch_v4_batches, list_offsets_v1,
                        list_offsets_v1_answer, produce_v3, produce_v3_answer, receive,
                        record_batch, records_section, send)
from test_confluent_kafka import produce as ck_produce, read as ck_read
from test_kafka_python import read as kp_read

TIMEOUT_S = 30


def serves(broker):
    """A real client still gets metadata and can produce to a fresh topic."""
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    p.produce("serves-%d" % time.monotonic_ns(), value=b"x", partition=0)
    assert p.flush(TIMEOUT_S) == 0
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=TIMEOUT_S)
    assert md.brokers


def test_0001_delete_topic_while_fetch_waits(broker, topic):
    # Bug 1: DeleteTopics freed a partition's replica while a long-polling Fetch still watched
    # it; when the fetch's wait timer fired, fetch_finish -> replica_watch_remove wrote into the
    # freed replica (heap-use-after-free under ASan, found by test_kcat's delete after reads).
    # Fixed in 62e3e33 (closing replicas answer their watchers); this test fails on 8d48c52.
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=TIMEOUT_S)
    waiting = [send(broker.port, fetch_v4(i, topic, 0, 0, 1500)) for i in range(3)]
    try:
        time.sleep(0.2)  # the fetches are parked, waiting for data at offset 0
        a.delete_topics([topic], operation_timeout=TIMEOUT_S)[topic].result(timeout=TIMEOUT_S)
        for s in waiting:
            outcome, _ = receive(s)  # an answer (an error for the partition) or a close
            assert outcome in ("response", "closed")
    finally:
        for s in waiting:
            s.close()
    time.sleep(0.2)
    assert broker.alive(), "the broker died: %s" % broker.stderr_text()
    serves(broker)


def test_0002_port_in_use_exits_with_status_2(tmp_path):
    # Bug 2: when the Kafka port was taken, broker_open's cleanup (broker_close) stopped the
    # retention timer before loop_timer_init had run on it; its zeroed heap_index tripped the
    # ASSERT in the epoll loop's timer heap (loop_epoll.c:134) and the process died of SIGABRT
    # instead of exiting with status 2 ("cannot start") after its message. Fixed in 5f54cf9.
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        http_port, cluster_port = free_ports(2)
        proc = subprocess.run(
            [CHRONIK_BIN, "--port", str(port), "--data-dir", str(tmp_path / "data"),
             "--set", "http.port=%d" % http_port, "--set", "cluster.port=%d" % cluster_port],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT_S)
    finally:
        taken.close()
    err = proc.stderr.decode("utf-8", "replace")
    assert "127.0.0.1:%d" % port in err and "in use" in err, err
    assert "assertion failed" not in err, err
    assert proc.returncode == 2, "exit status %d; stderr: %s" % (proc.returncode, err)
    assert proc.stdout == b"", "printed a start-up line without serving"


def test_0003_list_offsets_by_timestamp_answers_the_record(broker, topic):
    # Bug 3: ListOffsets by timestamp answered the base offset of the first batch whose max
    # timestamp reached the target, and echoed the requested timestamp, where Kafka answers the
    # first record at or after the target with that record's own timestamp (every client's
    # offsets_for_times test failed). Fixed in ea2099c.
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=TIMEOUT_S)
    batch = record_batch([b"r%d" % i for i in range(5)], ts_step_ms=1000)
    outcome, _ = exchange(broker.port, produce_v3(1, topic, batch))
    assert outcome == "response"
    base = helpers.TS_BASE_MS
    for target, want in [(base, (0, base, 0)), (base + 2500, (0, base + 3000, 3)),
                         (base + 4000, (0, base + 4000, 4)), (base + 4001, (0, -1, -1))]:
        outcome, payload = exchange(broker.port, list_offsets_v1(9, topic, 0, target))
        assert outcome == "response"
        assert list_offsets_v1_answer(payload, 9) == want, "target %d" % target


def test_0004_produce_to_internal_topic_is_refused(broker, topic):
    # Bug 4: a client could produce to __consumer_offsets, whose records the group coordinator
    # reads back as group state at start-up; Kafka refuses such appends with
    # INVALID_TOPIC_EXCEPTION ("Cannot append to internal topic").
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": topic})
    c.subscribe([topic])  # makes the client find a coordinator: __consumer_offsets exists
    deadline = time.monotonic() + TIMEOUT_S
    md = AdminClient({"bootstrap.servers": broker.bootstrap})
    while "__consumer_offsets" not in md.list_topics(timeout=TIMEOUT_S).topics:
        c.poll(0.2)
        assert time.monotonic() < deadline
    c.close()
    errors = []
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "retries": 0})
    p.produce("__consumer_offsets", value=b"junk", partition=0,
              on_delivery=lambda err, msg: errors.append(err))
    p.flush(TIMEOUT_S)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == ck.KafkaError.TOPIC_EXCEPTION, errors[0]
    serves(broker)


KAFKA_CORRUPT_MESSAGE, KAFKA_MESSAGE_TOO_LARGE, KAFKA_INVALID_RECORD = 2, 10, 87
CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD = 0, 1, 2, 3, 4
CODEC_NAMES = {"uncompressed": CODEC_NONE, "gzip": CODEC_GZIP, "snappy": CODEC_SNAPPY,
               "lz4": CODEC_LZ4, "zstd": CODEC_ZSTD}


def raw_produce(broker, topic, batch, correlation_id=1):
    outcome, payload = exchange(broker.port, produce_v3(correlation_id, topic, batch))
    assert outcome == "response", "the broker closed the connection"
    return produce_v3_answer(payload, correlation_id)


def stored_codecs(broker, topic, offset=0):
    """The codec of every batch stored from offset on, read with a raw Fetch."""
    outcome, payload = exchange(broker.port, fetch_v4(5, topic, 0, offset, 0))
    assert outcome == "response"
    error_code, batches = fetch_v4_batches(payload, 5)
    assert error_code == 0
    return [struct_u16(b, 21) & 7 for b in batches]


def struct_u16(b, at):
    return (b[at] << 8) | b[at + 1]


def create(broker, topic, **configs):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = a.create_topics([NewTopic(topic, 1, 1, config=configs)],
                              operation_timeout=TIMEOUT_S)
    futures[topic].result(timeout=TIMEOUT_S)


def bad_compressed_batches():
    """(name, batch, Kafka's answer): batches whose CRC is right but whose compressed records no
    consumer can decode, or decode to other records than the header promises."""
    values = [b"bad-%d" % i for i in range(5)]
    good = records_section(values)
    packed = gzip.compress(good)
    # Record 0 is: length, attributes, timestamp delta, offset delta, key length (-1 = 0x01).
    bad_key_length = good[:4] + b"\x7e" + good[5:]  # 63 bytes of key in a 12-byte record
    swapped_deltas = records_section(values[:2])
    first = swapped_deltas[0] + 1
    swapped_deltas = (swapped_deltas[:3] + b"\x02" + swapped_deltas[4:first + 3] + b"\x00" +
                      swapped_deltas[first + 4:])
    return [
        ("gzip garbage", batch_of(b"\x1f\x8b\x08\x00" + bytes(range(60)), 5, CODEC_GZIP),
         KAFKA_CORRUPT_MESSAGE),
        ("gzip truncated", batch_of(packed[:-7], 5, CODEC_GZIP), KAFKA_CORRUPT_MESSAGE),
        ("lz4 garbage", batch_of(b"\x04\x22\x4d\x18" + b"\xff" * 40, 5, CODEC_LZ4),
         KAFKA_CORRUPT_MESSAGE),
        ("fewer records than the header says", batch_of(packed, 6, CODEC_GZIP),
         KAFKA_INVALID_RECORD),
        ("more records than the header says", batch_of(packed, 4, CODEC_GZIP),
         KAFKA_INVALID_RECORD),
        ("a bad varint inside a record", batch_of(gzip.compress(bad_key_length), 5, CODEC_GZIP),
         KAFKA_INVALID_RECORD),
        ("offset deltas 1, 0", batch_of(lz4.frame.compress(swapped_deltas), 2, CODEC_LZ4),
         KAFKA_INVALID_RECORD),
    ]


def test_0050_compressed_batches_are_validated(broker, topic):
    # Bug 50 (issue 8 item 9): the broker checked a compressed batch by its header and CRC only,
    # so one client could store a batch whose records no consumer can decode, and every
    # consumer of the partition stopped there. Kafka decompresses and checks each record on
    # produce; so does the broker now, answering as Kafka: CORRUPT_MESSAGE for a payload that
    # does not decompress, INVALID_RECORD for records that do not match the header.
    create(broker, topic)
    good = [b"good-%d" % i for i in range(3)]
    assert raw_produce(broker, topic, batch_of(gzip.compress(records_section(good)), 3,
                                               CODEC_GZIP)) == (0, 0)
    for name, batch, code in bad_compressed_batches():
        assert raw_produce(broker, topic, batch)[0] == code, name
    assert raw_produce(broker, topic, record_batch([b"after"])) == (0, 3)
    # A consumer reads the good data and nothing of the bad batches.
    got = ck_read(broker, topic, 0)
    assert [(r["offset"], r["value"]) for r in got] == [(0, good[0]), (1, good[1]),
                                                        (2, good[2]), (3, b"after")]
    assert broker.alive()


def test_0051_topic_compression_type_recompresses(broker, topic):
    # Bug 51 (issue 8 item 12): a topic's compression.type other than producer was refused
    # with INVALID_CONFIG (librdkafka test 0081), where Kafka accepts it and recompresses on
    # produce. Here the topic asks for gzip, librdkafka sends uncompressed batches, and the
    # stored batches must be gzip with the very same records for both Python clients.
    create(broker, topic, **{"compression.type": "gzip"})
    msgs = helpers.sample_messages(topic, 30, null_header_values=False)
    offsets = ck_produce(broker, topic, msgs, **{"compression.type": "none"})
    assert offsets == list(range(30))
    codecs = stored_codecs(broker, topic)
    assert codecs and set(codecs) == {CODEC_GZIP}, codecs
    helpers.assert_same_records(ck_read(broker, topic, 0), msgs)
    helpers.assert_same_records(kp_read(broker, topic, 0), msgs)


def test_0052_compression_type_altered_and_inherited(make_broker, topic):
    # Bug 52 (issue 8 item 12): AlterConfigs with compression.type=lz4 was refused, and the
    # broker had no compression.type of its own for topics to inherit (Kafka's default is
    # producer). Each produce is stored with the codec in effect when it arrives.
    broker = make_broker(["--set", "compression.type=zstd"]).start()
    create(broker, topic)
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    described = a.describe_configs([res])[res].result(timeout=TIMEOUT_S)
    assert described["compression.type"].value == "zstd"
    msgs = helpers.sample_messages(topic, 12)
    ck_produce(broker, topic, msgs[:4], **{"compression.type": "gzip"})
    a.alter_configs([ConfigResource(ConfigResource.Type.TOPIC, topic,
                                    set_config={"compression.type": "lz4"})])[res].result(
        timeout=TIMEOUT_S)
    ck_produce(broker, topic, msgs[4:8], **{"compression.type": "snappy"})
    a.alter_configs([ConfigResource(ConfigResource.Type.TOPIC, topic,
                                    set_config={"compression.type": "uncompressed"})])[res].result(
        timeout=TIMEOUT_S)
    ck_produce(broker, topic, msgs[8:], **{"compression.type": "zstd"})
    codecs = stored_codecs(broker, topic)
    # The producer may split each group of four records into several batches.
    runs = [c for i, c in enumerate(codecs) if i == 0 or codecs[i - 1] != c]
    assert runs == [CODEC_ZSTD, CODEC_LZ4, CODEC_NONE], codecs
    helpers.assert_same_records(ck_read(broker, topic, 0), msgs)


def test_0053_recompressed_batch_over_max_message_bytes(broker, topic):
    # Bug 53 (issue 8 item 12): a batch that grows when the broker recompresses it (here
    # decompresses, for compression.type=uncompressed) must still fit max.message.bytes, as in
    # Kafka, which checks the size again after conversion: MESSAGE_TOO_LARGE otherwise.
    create(broker, topic, **{"compression.type": "uncompressed", "max.message.bytes": "4000"})
    big = batch_of(gzip.compress(records_section([b"\x00" * 20000])), 1, CODEC_GZIP)
    assert len(big) < 4000
    assert raw_produce(broker, topic, big)[0] == KAFKA_MESSAGE_TOO_LARGE
    small = batch_of(gzip.compress(records_section([b"\x00" * 2000])), 1, CODEC_GZIP)
    assert raw_produce(broker, topic, small) == (0, 0)
    assert stored_codecs(broker, topic) == [CODEC_NONE]
